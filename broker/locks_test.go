package broker

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// goClientLockBody is what rocketmq-client-go/v2 sends for LOCK_BATCH_MQ
// (consumer.lockBatchRequestBody marshalled by jsoniter).
const goClientLockBody = `{"consumerGroup":"og","clientId":"10.0.0.5@12345","mqSet":[{"topic":"t","brokerName":"broker-a","queueId":0},{"topic":"t","brokerName":"broker-a","queueId":3}]}`

func TestParseLockRequest(t *testing.T) {
	req, err := ParseLockRequest([]byte(goClientLockBody))
	if err != nil {
		t.Fatal(err)
	}
	want := LockRequest{ConsumerGroup: "og", ClientID: "10.0.0.5@12345", MQSet: []MessageQueue{
		{Topic: "t", BrokerName: "broker-a", QueueID: 0}, {Topic: "t", BrokerName: "broker-a", QueueID: 3}}}
	if req.ConsumerGroup != want.ConsumerGroup || req.ClientID != want.ClientID || !slices.Equal(req.MQSet, want.MQSet) {
		t.Fatalf("ParseLockRequest = %+v, want %+v", req, want)
	}
	// Round trip through the encoder.
	again, err := ParseLockRequest(EncodeLockRequest(req))
	if err != nil || !slices.Equal(again.MQSet, req.MQSet) || again.ClientID != req.ClientID {
		t.Fatalf("round trip = %+v, %v", again, err)
	}
	// Java's extra field is ignored; an empty set is fine.
	if _, err := ParseLockRequest([]byte(`{"consumerGroup":"g","clientId":"c","mqSet":[],"onlyThisBroker":true}`)); err != nil {
		t.Fatal(err)
	}

	bad := []struct{ desc, body string }{
		{"empty", ``},
		{"not json", `x`},
		{"null", `null`},
		{"no group", `{"clientId":"c","mqSet":[]}`},
		{"no client", `{"consumerGroup":"g","mqSet":[]}`},
		{"empty topic", `{"consumerGroup":"g","clientId":"c","mqSet":[{"topic":"","queueId":1}]}`},
		{"negative queue", `{"consumerGroup":"g","clientId":"c","mqSet":[{"topic":"t","queueId":-1}]}`},
		{"queue id too big", `{"consumerGroup":"g","clientId":"c","mqSet":[{"topic":"t","queueId":4294967296}]}`},
		{"queue id string", `{"consumerGroup":"g","clientId":"c","mqSet":[{"topic":"t","queueId":"1"}]}`},
		{"mqSet object", `{"consumerGroup":"g","clientId":"c","mqSet":{}}`},
	}
	for _, tt := range bad {
		if _, err := ParseLockRequest([]byte(tt.body)); !errors.Is(err, ErrBadLockBody) {
			t.Errorf("%s: ParseLockRequest = %v, want ErrBadLockBody", tt.desc, err)
		}
	}
}

func TestLockResponseBody(t *testing.T) {
	b, err := EncodeLockResponse(nil)
	if err != nil || string(b) != `{"lockOKMQSet":[]}` {
		t.Fatalf("EncodeLockResponse(nil) = %s, %v", b, err)
	}
	mqs := []MessageQueue{{Topic: "t", BrokerName: "b", QueueID: 2}}
	b, err = EncodeLockResponse(mqs)
	if err != nil || string(b) != `{"lockOKMQSet":[{"topic":"t","brokerName":"b","queueId":2}]}` {
		t.Fatalf("EncodeLockResponse = %s, %v", b, err)
	}
	got, err := ParseLockResponse(b)
	if err != nil || !slices.Equal(got, mqs) {
		t.Fatalf("ParseLockResponse = %v, %v", got, err)
	}
	if got, err := ParseLockResponse(nil); err != nil || got != nil {
		t.Fatalf("empty body = %v, %v", got, err)
	}
	if _, err := ParseLockResponse([]byte("{")); !errors.Is(err, ErrBadLockBody) {
		t.Fatalf("bad body = %v", err)
	}
}

func FuzzParseLockRequest(f *testing.F) {
	f.Add([]byte(goClientLockBody))
	f.Add([]byte(`{"consumerGroup":"g","clientId":"c","mqSet":[{"topic":"t","brokerName":"b","queueId":1},{"topic":"t","brokerName":"b","queueId":1}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseLockRequest(body)
		if err != nil {
			return
		}
		m := NewLockManager(0)
		now := time.Unix(0, 0)
		locked := m.TryLock(req.ConsumerGroup, req.ClientID, req.MQSet, now)
		for _, mq := range locked {
			if id, ok := m.Holder(req.ConsumerGroup, mq, now); !ok || id != req.ClientID {
				t.Fatalf("locked %v but holder is %q", mq, id)
			}
		}
		m.Unlock(req.ConsumerGroup, req.ClientID, req.MQSet)
		if n := m.Expire(now.Add(time.Hour)); n != 0 {
			t.Fatalf("%d locks left after unlock", n)
		}
	})
}

func TestLockManager(t *testing.T) {
	q := func(id int32) MessageQueue { return MessageQueue{Topic: "t", BrokerName: "b", QueueID: id} }
	m := NewLockManager(0) // 60 s
	t0 := time.Unix(1_700_000_000, 0)
	steps := []struct {
		desc   string
		group  string
		client string
		unlock bool
		mqs    []MessageQueue
		at     time.Duration
		want   []MessageQueue
	}{
		{desc: "A locks 0,1", group: "g", client: "A", mqs: []MessageQueue{q(0), q(1)}, want: []MessageQueue{q(0), q(1)}},
		{desc: "B wants 1,2: gets 2", group: "g", client: "B", mqs: []MessageQueue{q(1), q(2)}, at: time.Second, want: []MessageQueue{q(2)}},
		{desc: "other group is independent", group: "h", client: "B", mqs: []MessageQueue{q(0)}, at: time.Second, want: []MessageQueue{q(0)}},
		{desc: "A renews 0 at 50s", group: "g", client: "A", mqs: []MessageQueue{q(0)}, at: 50 * time.Second, want: []MessageQueue{q(0)}},
		{desc: "B at exactly 60s after A's lock of 1: still held", group: "g", client: "B", mqs: []MessageQueue{q(1)}, at: 60 * time.Second, want: []MessageQueue{}},
		{desc: "B after 1's expiry takes it; 0 was renewed", group: "g", client: "B", mqs: []MessageQueue{q(0), q(1)}, at: 61 * time.Second, want: []MessageQueue{q(1)}},
		{desc: "A unlocks 1 (held by B): no effect", group: "g", client: "A", unlock: true, mqs: []MessageQueue{q(1)}, at: 62 * time.Second},
		{desc: "A cannot take 1", group: "g", client: "A", mqs: []MessageQueue{q(1)}, at: 62 * time.Second, want: []MessageQueue{}},
		{desc: "B unlocks 1", group: "g", client: "B", unlock: true, mqs: []MessageQueue{q(1)}, at: 63 * time.Second},
		{desc: "A takes 1; duplicates once", group: "g", client: "A", mqs: []MessageQueue{q(1), q(1), q(0)}, at: 63 * time.Second, want: []MessageQueue{q(1), q(0)}},
		{desc: "empty client locks nothing", group: "g", client: "", mqs: []MessageQueue{q(9)}, at: 63 * time.Second, want: nil},
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		if s.unlock {
			m.Unlock(s.group, s.client, s.mqs)
			continue
		}
		got := m.TryLock(s.group, s.client, s.mqs, now)
		if !slices.Equal(got, s.want) {
			t.Fatalf("%s: TryLock = %v, want %v", s.desc, got, s.want)
		}
	}
	holders := []struct {
		group string
		mq    MessageQueue
		at    time.Duration
		id    string
		ok    bool
	}{
		{"g", q(0), 63 * time.Second, "A", true},
		{"g", q(1), 63 * time.Second, "A", true},
		{"g", q(2), 61 * time.Second, "B", true}, // B locked 2 at 1s
		{"g", q(2), 61*time.Second + time.Millisecond, "", false},
		{"h", q(0), 61 * time.Second, "B", true},
		{"h", q(0), 61*time.Second + time.Millisecond, "", false},
		{"g", q(9), 0, "", false},
		{"none", q(0), 0, "", false},
	}
	for _, h := range holders {
		id, ok := m.Holder(h.group, h.mq, t0.Add(h.at))
		if id != h.id || ok != h.ok {
			t.Errorf("Holder(%s, %d, +%v) = %q, %v; want %q, %v", h.group, h.mq.QueueID, h.at, id, ok, h.id, h.ok)
		}
	}
	// g/2 and h/0 (locked at 1 s) expire first, the rest (63 s) later.
	if n := m.Expire(t0.Add(62 * time.Second)); n != 2 { // g/2 and h/0
		t.Fatalf("Expire at 62s = %d, want 2", n)
	}
	if n := m.Expire(t0.Add(63*time.Second + DefaultLockExpiry + 1)); n != 2 {
		t.Fatalf("final Expire = %d, want 2", n)
	}
	if len(m.groups) != 0 {
		t.Fatalf("groups left: %v", m.groups)
	}
}

func TestLockManagerCustomExpiry(t *testing.T) {
	m := NewLockManager(5 * time.Second)
	mq := []MessageQueue{{Topic: "t", QueueID: 0}}
	t0 := time.Unix(0, 0)
	m.TryLock("g", "A", mq, t0)
	if got := m.TryLock("g", "B", mq, t0.Add(5*time.Second)); len(got) != 0 {
		t.Fatal("taken before expiry")
	}
	if got := m.TryLock("g", "B", mq, t0.Add(6*time.Second)); len(got) != 1 {
		t.Fatal("not taken after expiry")
	}
}

func TestLockManagerLargeBatch(t *testing.T) {
	m := NewLockManager(0)
	var mqs []MessageQueue
	for i := range int32(100) {
		mqs = append(mqs, MessageQueue{Topic: "t", QueueID: i % 50})
	}
	if got := m.TryLock("g", "A", mqs, time.Unix(0, 0)); len(got) != 50 {
		t.Fatalf("locked %d, want 50 distinct", len(got))
	}
}

func TestLockManagerConcurrent(t *testing.T) {
	m := NewLockManager(0)
	mqs := []MessageQueue{{Topic: "t", QueueID: 0}, {Topic: "t", QueueID: 1}}
	now := time.Unix(0, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := map[MessageQueue][]string{}
	for _, id := range []string{"A", "B", "C", "D"} {
		wg.Go(func() {
			for _, mq := range m.TryLock("g", id, mqs, now) {
				mu.Lock()
				winners[mq] = append(winners[mq], id)
				mu.Unlock()
			}
			m.Holder("g", mqs[0], now)
			m.Expire(now)
		})
	}
	wg.Wait()
	for _, mq := range mqs {
		if len(winners[mq]) != 1 {
			t.Errorf("queue %d locked by %v", mq.QueueID, winners[mq])
		}
	}
}
