package broker

import (
	"context"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/strata-mq/strata/remoting"
)

func openOffsets(t *testing.T, dir string) *OffsetManager {
	t.Helper()
	m, err := OpenOffsetManager(dir, nil)
	if err != nil {
		t.Fatalf("OpenOffsetManager: %v", err)
	}
	return m
}

func TestOffsetCommitQuery(t *testing.T) {
	m := openOffsets(t, t.TempDir())
	if _, ok := m.Query("g", "t", 0); ok {
		t.Fatal("offset of an empty table")
	}
	m.Commit("g", "t", 0, 10)
	m.Commit("g", "t", 1, 20)
	m.Commit("g2", "t", 0, 30)
	m.Commit("g", "t", 0, 5)  // backwards (offset reset) is allowed
	m.Commit("g", "t", 1, -1) // ignored
	m.Commit("g", "t", -1, 7) // ignored
	tests := []struct {
		group, topic string
		queue        int32
		want         int64
		ok           bool
	}{
		{"g", "t", 0, 5, true},
		{"g", "t", 1, 20, true},
		{"g2", "t", 0, 30, true},
		{"g", "t", 2, 0, false},
		{"g", "u", 0, 0, false},
		{"g", "t", -1, 0, false},
	}
	for _, tt := range tests {
		got, ok := m.Query(tt.group, tt.topic, tt.queue)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Query(%s,%s,%d) = %d,%v; want %d,%v", tt.group, tt.topic, tt.queue, got, ok, tt.want, tt.ok)
		}
	}
}

func TestOffsetsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	m := openOffsets(t, dir)
	m.Commit("g", "t", 0, 10)
	m.Commit("g", "%RETRY%g", 0, 3)
	m.Commit("other|grp", "t", 1023, 1<<40)
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	m.Commit("g", "t", 0, 11) // not flushed: lost, as after a crash
	m2 := openOffsets(t, dir)
	want := map[string]map[string]map[int32]int64{
		"g":         {"t": {0: 10}, "%RETRY%g": {0: 3}},
		"other|grp": {"t": {1023: 1 << 40}},
	}
	for g, topics := range want {
		got := m2.Offsets(g)
		if len(got) != len(topics) {
			t.Errorf("Offsets(%s) = %v, want %v", g, got, topics)
		}
		for topic, queues := range topics {
			if !maps.Equal(got[topic], queues) {
				t.Errorf("Offsets(%s)[%s] = %v, want %v", g, topic, got[topic], queues)
			}
		}
	}
	if got := m2.Groups(); !slices.Equal(got, []string{"g", "other|grp"}) {
		t.Errorf("Groups = %v", got)
	}
}

func TestOffsetFlushOnlyWhenChanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "offsets.json")
	m := openOffsets(t, dir)
	exists := func() bool {
		_, err := os.Stat(path)
		return err == nil
	}
	if err := m.Flush(); err != nil || exists() {
		t.Fatalf("Flush of an unchanged empty table wrote a file (err %v)", err)
	}
	m.Commit("g", "t", 0, 1)
	if err := m.Flush(); err != nil || !exists() {
		t.Fatalf("Flush after a change wrote nothing (err %v)", err)
	}
	// Remove the file: a Flush that writes would bring it back.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	m.Commit("g", "t", 0, 1) // same value: no change
	if err := m.Flush(); err != nil || exists() {
		t.Fatalf("Flush after re-committing the same offset wrote (err %v)", err)
	}
	m.Commit("g", "t", 0, 2)
	if err := m.Flush(); err != nil || !exists() {
		t.Fatalf("Flush after a change wrote nothing (err %v)", err)
	}
}

func TestOffsetFlushFailureRetries(t *testing.T) {
	dir := t.TempDir()
	m := openOffsets(t, dir)
	m.Commit("g", "t", 0, 1)
	tmp := filepath.Join(dir, "offsets.json.tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil { // makes the write fail, even for root
		t.Fatal(err)
	}
	if err := m.Flush(); err == nil {
		t.Fatal("Flush succeeded with an unwritable file")
	}
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	if off, ok := openOffsets(t, dir).Query("g", "t", 0); !ok || off != 1 {
		t.Fatalf("after retry: %d, %v", off, ok)
	}
}

func TestOffsetDelete(t *testing.T) {
	dir := t.TempDir()
	m := openOffsets(t, dir)
	m.Commit("g1", "a", 0, 1)
	m.Commit("g1", "b", 0, 2)
	m.Commit("g2", "a", 0, 3)
	m.Commit("g3", "b", 0, 4)
	if !m.DeleteGroup("g1") || m.DeleteGroup("g1") {
		t.Fatal("DeleteGroup result")
	}
	if !m.DeleteTopic("b") || m.DeleteTopic("b") {
		t.Fatal("DeleteTopic result")
	}
	if got := m.Groups(); !slices.Equal(got, []string{"g2"}) {
		t.Fatalf("Groups = %v", got)
	}
	if got := m.Offsets("g1"); got == nil || len(got) != 0 {
		t.Fatalf("Offsets of a deleted group = %#v", got)
	}
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := openOffsets(t, dir).Groups(); !slices.Equal(got, []string{"g2"}) {
		t.Fatalf("Groups after reopen = %v", got)
	}
}

func TestOffsetCorruptFile(t *testing.T) {
	tests := []struct{ desc, content string }{
		{"garbage", "{{"},
		{"empty", ""},
		{"version", `{"version":2,"offsetTable":{}}`},
		{"negative offset", `{"version":1,"offsetTable":{"g":{"t":{"0":-5}}}}`},
		{"negative queue", `{"version":1,"offsetTable":{"g":{"t":{"-1":5}}}}`},
		{"bad queue key", `{"version":1,"offsetTable":{"g":{"t":{"x":5}}}}`},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		path := filepath.Join(dir, "offsets.json")
		if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := OpenOffsetManager(dir, nil)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: OpenOffsetManager = %v, want an error naming %s", tt.desc, err, path)
		}
	}
}

func TestOffsetCommitAllocs(t *testing.T) {
	m := openOffsets(t, t.TempDir())
	group, topic := "group", "topic"
	m.Commit(group, topic, 3, 1)
	var off int64
	allocs := testing.AllocsPerRun(1000, func() {
		off++
		m.Commit(group, topic, 3, off)
		m.Query(group, topic, 3)
	})
	if allocs != 0 {
		t.Fatalf("Commit+Query of an existing key allocates %v times", allocs)
	}
}

func TestOffsetConcurrent(t *testing.T) {
	dir := t.TempDir()
	m := openOffsets(t, dir)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				m.Commit("g", "t", int32(i), int64(j))
				m.Query("g", "t", int32(i))
				if j%50 == 0 {
					if err := m.Flush(); err != nil {
						t.Error(err)
					}
					m.Offsets("g")
					m.Groups()
				}
			}
		})
	}
	wg.Wait()
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	m2 := openOffsets(t, dir)
	for i := range int32(8) {
		if off, _ := m2.Query("g", "t", i); off != 199 {
			t.Errorf("queue %d: %d after restart, want 199", i, off)
		}
	}
}

func BenchmarkOffsetCommit(b *testing.B) {
	m, err := OpenOffsetManager(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		off++
		m.Commit("group", "topic", int32(off&7), off)
	}
}

// TestOneWayCommitsApplyInOrder: offset commits sent one-way on one
// connection (how rocketmq-client-go persists offsets) take effect in the
// order sent, and before the connection's next request is served.
func TestOneWayCommitsApplyInOrder(t *testing.T) {
	b := newTestBroker(t)
	defer b.Shutdown(context.Background())
	c := pipeTo(t, b, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000})
	ctx := context.Background()
	const n = 300
	for round := range 5 {
		for i := 1; i <= n; i++ {
			req := remoting.NewRequest(remoting.ReqUpdateConsumerOffset, map[string]string{
				"consumerGroup": "g", "topic": "T", "queueId": "0", "commitOffset": strconv.Itoa(round*n + i)}, nil)
			if err := c.InvokeOneway(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		resp := invoke(t, c, remoting.NewRequest(remoting.ReqQueryConsumerOffset, map[string]string{
			"consumerGroup": "g", "topic": "T", "queueId": "0"}, nil))
		if got, want := resp.Ext("offset"), strconv.Itoa((round+1)*n); resp.Code != remoting.RespSuccess || got != want {
			t.Fatalf("round %d: query after the commits: %d %q offset %s, want %s", round, resp.Code, resp.Remark, got, want)
		}
	}
}
