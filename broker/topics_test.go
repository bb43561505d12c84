package broker

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestValidateTopicName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"orders", true},
		{"Orders_2024-v1", true},
		{"%RETRY%group", true},
		{"%DLQ%group", true},
		{"ns%topic", true},
		{"a|b", true},
		{"TBW102", true},
		{strings.Repeat("x", MaxTopicNameLen), true},
		{"", false},
		{strings.Repeat("x", MaxTopicNameLen+1), false},
		{"has space", false},
		{"dot.ted", false},
		{"slash/", false},
		{"../etc", false},
		{"tab\t", false},
		{"ünïcode", false},
		{"nul\x00", false},
	}
	for _, tt := range tests {
		err := ValidateTopicName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateTopicName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidTopicName) {
			t.Errorf("ValidateTopicName(%q) = %v, not ErrInvalidTopicName", tt.name, err)
		}
	}
}

func TestValidateTopicNameMessage(t *testing.T) {
	err := ValidateTopicName("bad.name")
	if err == nil || !strings.Contains(err.Error(), `'.'`) || !strings.Contains(err.Error(), "at 3") {
		t.Fatalf("error %v should name the byte and its position", err)
	}
}

func TestTopicNameHelpers(t *testing.T) {
	tests := []struct {
		name                  string
		system, retry, dlq    bool
		sendForbidden         bool
		invalidForCheckedSend bool
	}{
		{name: "orders"},
		{name: "TBW102", system: true, sendForbidden: true},
		{name: "TBW1020"},
		{name: "%RETRY%g", system: true, retry: true},
		{name: "%DLQ%g", system: true, dlq: true},
		{name: "SCHEDULE_TOPIC_XXXX", system: true, sendForbidden: true},
		{name: "RMQ_SYS_TRACE_TOPIC", system: true},
		{name: "RMQ_SYS_TRANS_HALF_TOPIC", system: true, sendForbidden: true},
		{name: "RMQ_SYS_TRANS_OP_HALF_TOPIC", system: true, sendForbidden: true},
		{name: "rmq_sys_TRACE_DATA_x", system: true},
		{name: "my%RETRY%"},
		{name: "bad name", invalidForCheckedSend: true},
	}
	for _, tt := range tests {
		if got := IsSystemTopic(tt.name); got != tt.system {
			t.Errorf("IsSystemTopic(%q) = %v", tt.name, got)
		}
		if got := IsRetryTopic(tt.name); got != tt.retry {
			t.Errorf("IsRetryTopic(%q) = %v", tt.name, got)
		}
		if got := IsDLQTopic(tt.name); got != tt.dlq {
			t.Errorf("IsDLQTopic(%q) = %v", tt.name, got)
		}
		err := CheckSendTopic(tt.name)
		switch {
		case tt.sendForbidden:
			if !errors.Is(err, ErrReservedTopic) {
				t.Errorf("CheckSendTopic(%q) = %v, want ErrReservedTopic", tt.name, err)
			}
		case tt.invalidForCheckedSend:
			if !errors.Is(err, ErrInvalidTopicName) {
				t.Errorf("CheckSendTopic(%q) = %v, want ErrInvalidTopicName", tt.name, err)
			}
		case err != nil:
			t.Errorf("CheckSendTopic(%q) = %v", tt.name, err)
		}
	}
	if got := RetryTopic("cg"); got != "%RETRY%cg" {
		t.Errorf("RetryTopic = %q", got)
	}
	if got := DLQTopic("cg"); got != "%DLQ%cg" {
		t.Errorf("DLQTopic = %q", got)
	}
}

func TestTopicConfigValidate(t *testing.T) {
	ok := TopicConfig{Name: "t", ReadQueues: 4, WriteQueues: 4, Perm: 6}
	tests := []struct {
		desc string
		mod  func(*TopicConfig)
		want error
	}{
		{"valid", func(*TopicConfig) {}, nil},
		{"read only", func(c *TopicConfig) { c.Perm = 4 }, nil},
		{"write only", func(c *TopicConfig) { c.Perm = 2 }, nil},
		{"inherit", func(c *TopicConfig) { c.Perm = 7 }, nil},
		{"priority", func(c *TopicConfig) { c.Perm = 14 }, nil},
		{"max queues", func(c *TopicConfig) { c.ReadQueues, c.WriteQueues = MaxQueueNums, MaxQueueNums }, nil},
		{"different counts", func(c *TopicConfig) { c.ReadQueues, c.WriteQueues = 8, 2 }, nil},
		{"perm 0", func(c *TopicConfig) { c.Perm = 0 }, ErrInvalidTopicConfig},
		{"perm inherit only", func(c *TopicConfig) { c.Perm = 1 }, ErrInvalidTopicConfig},
		{"perm 16", func(c *TopicConfig) { c.Perm = 16 | 6 }, ErrInvalidTopicConfig},
		{"perm negative", func(c *TopicConfig) { c.Perm = -1 }, ErrInvalidTopicConfig},
		{"zero read", func(c *TopicConfig) { c.ReadQueues = 0 }, ErrInvalidTopicConfig},
		{"zero write", func(c *TopicConfig) { c.WriteQueues = 0 }, ErrInvalidTopicConfig},
		{"too many", func(c *TopicConfig) { c.WriteQueues = MaxQueueNums + 1 }, ErrInvalidTopicConfig},
		{"negative sysflag", func(c *TopicConfig) { c.SysFlag = -1 }, ErrInvalidTopicConfig},
		{"bad name", func(c *TopicConfig) { c.Name = "a b" }, ErrInvalidTopicName},
	}
	for _, tt := range tests {
		c := ok
		tt.mod(&c)
		err := c.Validate()
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: Validate() = %v, want %v", tt.desc, err, tt.want)
		}
	}
}

func openTopics(t *testing.T, dir string, d TopicDefaults) *TopicManager {
	t.Helper()
	m, err := OpenTopicManager(dir, d, nil)
	if err != nil {
		t.Fatalf("OpenTopicManager: %v", err)
	}
	return m
}

func TestTopicManagerTBW102FollowsAutoCreate(t *testing.T) {
	dir := t.TempDir()
	m := openTopics(t, dir, TopicDefaults{AutoCreate: true})
	tbw, ok := m.Get(AutoCreateTopicKey)
	want := TopicConfig{Name: "TBW102", ReadQueues: DefaultTopicQueueNums, WriteQueues: DefaultTopicQueueNums, Perm: 7}
	if !ok || tbw != want {
		t.Fatalf("TBW102 = %+v, %v; want %+v", tbw, ok, want)
	}
	if err := m.Delete(AutoCreateTopicKey); !errors.Is(err, ErrReservedTopic) {
		t.Fatalf("Delete(TBW102) = %v, want ErrReservedTopic", err)
	}
	// An admin may change TBW102; the stored config wins over the defaults.
	tbw.WriteQueues = 2
	if err := m.CreateOrUpdate(tbw); err != nil {
		t.Fatal(err)
	}
	m = openTopics(t, dir, TopicDefaults{AutoCreate: true, Queues: 16})
	if got, _ := m.Get(AutoCreateTopicKey); got.WriteQueues != 2 {
		t.Fatalf("stored TBW102 not kept: %+v", got)
	}

	m = openTopics(t, dir, TopicDefaults{AutoCreate: false})
	if _, ok := m.Get(AutoCreateTopicKey); ok {
		t.Fatal("TBW102 present with auto-create off")
	}
	if err := m.CreateOrUpdate(want); !errors.Is(err, ErrReservedTopic) {
		t.Fatalf("CreateOrUpdate(TBW102) with auto-create off = %v", err)
	}
	m = openTopics(t, dir, TopicDefaults{AutoCreate: false})
	if _, ok := m.Get(AutoCreateTopicKey); ok {
		t.Fatal("TBW102 back after reopen")
	}

	m = openTopics(t, dir, TopicDefaults{AutoCreate: true, Queues: 16})
	if got, _ := m.Get(AutoCreateTopicKey); got.WriteQueues != 16 || got.ReadQueues != 16 {
		t.Fatalf("recreated TBW102 = %+v, want 16 queues", got)
	}
}

func TestOpenTopicManagerBadDefaults(t *testing.T) {
	for _, q := range []int{-1, MaxQueueNums + 1} {
		if _, err := OpenTopicManager(t.TempDir(), TopicDefaults{AutoCreate: true, Queues: q}, nil); err == nil {
			t.Errorf("Queues=%d accepted", q)
		}
	}
}

func TestTopicManagerPersistence(t *testing.T) {
	dir := t.TempDir()
	m := openTopics(t, dir, TopicDefaults{})
	ts0, c0 := m.DataVersion()
	if c0 != 0 || ts0 != 0 {
		t.Fatalf("fresh DataVersion = %d,%d", ts0, c0)
	}
	clock := time.UnixMilli(1_700_000_000_000)
	m.now = func() time.Time { clock = clock.Add(time.Second); return clock }

	a := TopicConfig{Name: "a", ReadQueues: 4, WriteQueues: 4, Perm: 6}
	b := TopicConfig{Name: "b", ReadQueues: 2, WriteQueues: 1, Perm: 4, SysFlag: 3, Order: true}
	c := TopicConfig{Name: "c", ReadQueues: 1, WriteQueues: 1, Perm: 6}
	for _, cfg := range []TopicConfig{a, b, c} {
		if err := m.CreateOrUpdate(cfg); err != nil {
			t.Fatal(err)
		}
	}
	a.WriteQueues = 8
	if err := m.CreateOrUpdate(a); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete("c"); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete("c"); !errors.Is(err, ErrTopicNotExist) {
		t.Fatalf("second Delete = %v, want ErrTopicNotExist", err)
	}
	ts, cnt := m.DataVersion()
	if cnt != 5 || ts != clock.UnixMilli() {
		t.Fatalf("DataVersion = %d,%d; want %d,5", ts, cnt, clock.UnixMilli())
	}
	// An identical update is not a change.
	if err := m.CreateOrUpdate(b); err != nil {
		t.Fatal(err)
	}
	if _, cnt2 := m.DataVersion(); cnt2 != cnt {
		t.Fatalf("no-op update bumped the version to %d", cnt2)
	}

	// Reopening compacts the journal into topics.json, which uses Java's
	// field names.
	m2 := openTopics(t, dir, TopicDefaults{})
	raw, err := os.ReadFile(filepath.Join(dir, "topics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"topicName", "readQueueNums", "writeQueueNums", "perm", "topicSysFlag", "order"} {
		if _, ok := generic["topicConfigTable"]["b"].(map[string]any)[key]; !ok {
			t.Errorf("topics.json lacks %q: %s", key, raw)
		}
	}
	if generic["dataVersion"]["counter"] != float64(5) {
		t.Errorf("topics.json dataVersion = %v", generic["dataVersion"])
	}

	got := m2.List()
	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("after reopen List = %+v, want [%+v %+v]", got, a, b)
	}
	if ts2, cnt2 := m2.DataVersion(); ts2 != ts || cnt2 != cnt {
		t.Fatalf("DataVersion after reopen = %d,%d, want %d,%d", ts2, cnt2, ts, cnt)
	}
	topics, ts3, cnt3 := m2.Snapshot()
	if len(topics) != 2 || ts3 != ts || cnt3 != cnt {
		t.Fatalf("Snapshot = %v %d %d", topics, ts3, cnt3)
	}
}

func TestTopicManagerCorruptFile(t *testing.T) {
	tests := []struct {
		desc, content string
	}{
		{"garbage", "not json"},
		{"truncated", `{"topicConfigTable":{"a":{"topicName":"a"`},
		{"empty", ""},
		{"invalid config", `{"topicConfigTable":{"a":{"topicName":"a","readQueueNums":0,"writeQueueNums":1,"perm":6}}}`},
		{"name mismatch", `{"topicConfigTable":{"a":{"topicName":"b","readQueueNums":1,"writeQueueNums":1,"perm":6}}}`},
		{"wrong type", `{"topicConfigTable":[]}`},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		path := filepath.Join(dir, "topics.json")
		if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := OpenTopicManager(dir, TopicDefaults{AutoCreate: true}, nil)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: OpenTopicManager = %v, want an error naming %s", tt.desc, err, path)
		}
		if b, _ := os.ReadFile(path); string(b) != tt.content {
			t.Errorf("%s: corrupt file was rewritten", tt.desc)
		}
	}
}

func TestTopicManagerStaleTempFile(t *testing.T) {
	dir := t.TempDir()
	m := openTopics(t, dir, TopicDefaults{AutoCreate: true})
	if err := m.CreateOrUpdate(TopicConfig{Name: "a", ReadQueues: 1, WriteQueues: 1, Perm: 6}); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "topics.json.tmp")
	if err := os.WriteFile(tmp, []byte("half-writ"), 0o644); err != nil {
		t.Fatal(err)
	}
	m = openTopics(t, dir, TopicDefaults{AutoCreate: true})
	if _, ok := m.Get("a"); !ok {
		t.Fatal("topic lost")
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("stale temp file left: %v", err)
	}
}

func TestTopicManagerWriteFailureKeepsState(t *testing.T) {
	dir := t.TempDir()
	m := openTopics(t, dir, TopicDefaults{AutoCreate: true})
	_, cnt := m.DataVersion()
	// A directory where the temporary file goes makes the write fail (even
	// for root, unlike permissions).
	for _, name := range []string{"topics.json.tmp", "topics.log"} {
		p := filepath.Join(dir, name)
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err := m.CreateOrUpdate(TopicConfig{Name: "a", ReadQueues: 1, WriteQueues: 1, Perm: 6})
	if err == nil {
		t.Fatal("CreateOrUpdate succeeded with an unwritable file")
	}
	if _, ok := m.Get("a"); ok {
		t.Fatal("failed create is visible")
	}
	if _, cnt2 := m.DataVersion(); cnt2 != cnt {
		t.Fatal("failed create bumped the version")
	}
	select {
	case <-m.Changed():
		// The open wrote TBW102; drain that signal and check no other.
		select {
		case <-m.Changed():
			t.Fatal("failed create signalled a change")
		default:
		}
	default:
	}
	for _, name := range []string{"topics.json.tmp", "topics.log"} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, created, err := m.AutoCreate("a", 4); err != nil || !created {
		t.Fatalf("AutoCreate after recovery = %v, %v", created, err)
	}
}

func TestTopicManagerAutoCreate(t *testing.T) {
	tests := []struct {
		desc      string
		auto      bool
		name      string
		queues    int
		want      TopicConfig
		wantErr   error
		tbwQueues int
	}{
		{desc: "client asks fewer", auto: true, name: "t", queues: 4, want: TopicConfig{Name: "t", ReadQueues: 4, WriteQueues: 4, Perm: 6}},
		{desc: "capped by TBW102", auto: true, name: "t", queues: 16, want: TopicConfig{Name: "t", ReadQueues: 8, WriteQueues: 8, Perm: 6}},
		{desc: "zero takes TBW102's", auto: true, name: "t", queues: 0, want: TopicConfig{Name: "t", ReadQueues: 8, WriteQueues: 8, Perm: 6}},
		{desc: "small TBW102", auto: true, tbwQueues: 2, name: "t", queues: 4, want: TopicConfig{Name: "t", ReadQueues: 2, WriteQueues: 2, Perm: 6}},
		{desc: "retry", auto: true, name: "%RETRY%g", queues: 4, want: TopicConfig{Name: "%RETRY%g", ReadQueues: 1, WriteQueues: 1, Perm: 6}},
		{desc: "retry, auto off", name: "%RETRY%g", queues: 4, want: TopicConfig{Name: "%RETRY%g", ReadQueues: 1, WriteQueues: 1, Perm: 6}},
		{desc: "dlq, auto off", name: "%DLQ%g", queues: 4, want: TopicConfig{Name: "%DLQ%g", ReadQueues: 1, WriteQueues: 1, Perm: 6}},
		{desc: "auto off", name: "t", queues: 4, wantErr: ErrTopicNotExist},
		{desc: "template", auto: true, name: "TBW102", queues: 4, wantErr: nil, want: TopicConfig{Name: "TBW102", ReadQueues: 8, WriteQueues: 8, Perm: 7}},
		{desc: "template, auto off", name: "TBW102", queues: 4, wantErr: ErrReservedTopic},
		{desc: "schedule", auto: true, name: ScheduleTopic, queues: 4, wantErr: ErrReservedTopic},
		{desc: "bad name", auto: true, name: "a/b", queues: 4, wantErr: ErrInvalidTopicName},
	}
	for _, tt := range tests {
		m := openTopics(t, t.TempDir(), TopicDefaults{AutoCreate: tt.auto, Queues: tt.tbwQueues})
		got, created, err := m.AutoCreate(tt.name, tt.queues)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: AutoCreate err = %v, want %v", tt.desc, err, tt.wantErr)
			}
			if _, ok := m.Get(tt.name); ok && tt.name != AutoCreateTopicKey {
				t.Errorf("%s: topic exists after failure", tt.desc)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: AutoCreate = %+v, %v; want %+v", tt.desc, got, err, tt.want)
			continue
		}
		wantCreated := tt.name != AutoCreateTopicKey
		if created != wantCreated {
			t.Errorf("%s: created = %v", tt.desc, created)
		}
		again, created, err := m.AutoCreate(tt.name, 1)
		if err != nil || created || again != tt.want {
			t.Errorf("%s: second AutoCreate = %+v, %v, %v", tt.desc, again, created, err)
		}
	}
}

func TestTopicManagerAutoCreateNotInheritable(t *testing.T) {
	m := openTopics(t, t.TempDir(), TopicDefaults{AutoCreate: true})
	if err := m.CreateOrUpdate(TopicConfig{Name: AutoCreateTopicKey, ReadQueues: 8, WriteQueues: 8, Perm: 6}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.AutoCreate("t", 4); !errors.Is(err, ErrTopicNotExist) {
		t.Fatalf("AutoCreate with non-inheritable TBW102 = %v", err)
	}
}

func TestTopicManagerChanged(t *testing.T) {
	m := openTopics(t, t.TempDir(), TopicDefaults{})
	select {
	case <-m.Changed():
		t.Fatal("signal without change")
	default:
	}
	cfg := TopicConfig{Name: "a", ReadQueues: 1, WriteQueues: 1, Perm: 6}
	for range 3 { // coalesced into one signal
		cfg.ReadQueues++
		if err := m.CreateOrUpdate(cfg); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-m.Changed():
	default:
		t.Fatal("no signal after change")
	}
	select {
	case <-m.Changed():
		t.Fatal("signals not coalesced")
	default:
	}
	if err := m.CreateOrUpdate(cfg); err != nil { // no-op
		t.Fatal(err)
	}
	select {
	case <-m.Changed():
		t.Fatal("signal after no-op")
	default:
	}
}

func TestTopicManagerConcurrent(t *testing.T) {
	m := openTopics(t, t.TempDir(), TopicDefaults{AutoCreate: true})
	var wg sync.WaitGroup
	var mu sync.Mutex
	createdCount := map[string]int{}
	names := []string{"a", "b", "c", "%RETRY%g"}
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				name := names[(i+j)%len(names)]
				_, created, err := m.AutoCreate(name, 4)
				if err != nil {
					t.Error(err)
					return
				}
				if created {
					mu.Lock()
					createdCount[name]++
					mu.Unlock()
				}
				m.Get(name)
				m.List()
				m.DataVersion()
			}
		})
	}
	wg.Wait()
	for _, n := range names {
		if createdCount[n] != 1 {
			t.Errorf("%s created %d times", n, createdCount[n])
		}
	}
	if _, cnt := m.DataVersion(); cnt != int64(1+len(names)) {
		t.Errorf("DataVersion counter = %d, want %d", cnt, 1+len(names))
	}
}

func BenchmarkTopicGet(b *testing.B) {
	m, err := OpenTopicManager(b.TempDir(), TopicDefaults{AutoCreate: true}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Get(AutoCreateTopicKey)
		}
	})
}
