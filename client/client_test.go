package client

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
)

var hex32 = regexp.MustCompile(`^[0-9A-Fa-f]{32}$`)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pullAll reads every message of every queue of topic from offset 0.
func pullAll(t *testing.T, ctx context.Context, cs *Consumer, topic string) []MessageExt {
	t.Helper()
	queues, err := cs.Queues(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []MessageExt
	for _, mq := range queues {
		off := int64(0)
		for range 1000 {
			res, err := cs.Pull(ctx, mq, off, 7)
			if err != nil {
				t.Fatalf("Pull %s@%d: %v", mq, off, err)
			}
			if res.Status == PullNoNewMsg {
				break
			}
			if res.Status != PullFound {
				t.Fatalf("Pull %s@%d: status %v", mq, off, res.Status)
			}
			for i, m := range res.Messages {
				if m.QueueOffset != off+int64(i) || m.QueueID != mq.QueueID || m.BrokerName != mq.BrokerName || m.Topic != topic {
					t.Fatalf("Pull %s@%d: message %d is %s/%d@%d", mq, off, i, m.Topic, m.QueueID, m.QueueOffset)
				}
			}
			out = append(out, res.Messages...)
			off = res.NextBeginOffset
		}
	}
	return out
}

func TestProduceConsumeRoundTrip(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	c := s.client(t)
	ctx := testCtx(t)
	if err := c.CreateTopic(ctx, TopicConfig{Name: "orders", ReadQueues: 3, WriteQueues: 3}); err != nil {
		t.Fatal(err)
	}
	p, err := NewProducer(WithClient(c))
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	sent := map[string]SendResult{}
	perQueue := map[int]int{}
	for i := range n {
		res, err := p.Send(ctx, Message{
			Topic: "orders", Body: []byte("order-" + strconv.Itoa(i)), Tag: "tagA",
			Keys: []string{"k" + strconv.Itoa(i), "common"}, Properties: map[string]string{"user": strconv.Itoa(i)},
		})
		if err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		if len(res) != 1 {
			t.Fatalf("Send %d: %d results", i, len(res))
		}
		r := res[0]
		if r.Status != SendOK || !hex32.MatchString(r.MsgID) || !hex32.MatchString(r.OffsetMsgID) || r.BrokerName != "broker-a" || r.Topic != "orders" {
			t.Fatalf("Send %d: result %+v", i, r)
		}
		if r.QueueOffset != int64(perQueue[r.QueueID]) {
			t.Errorf("Send %d: queue %d offset %d, want %d", i, r.QueueID, r.QueueOffset, perQueue[r.QueueID])
		}
		perQueue[r.QueueID]++
		sent[r.MsgID] = r
	}
	if len(perQueue) != 3 || perQueue[0] != 4 || perQueue[1] != 4 || perQueue[2] != 4 {
		t.Errorf("round-robin spread over queues: %v, want 4 on each of 3", perQueue)
	}
	if len(sent) != n {
		t.Errorf("%d distinct MsgIDs for %d messages", len(sent), n)
	}

	cs, err := NewConsumer(WithClient(c), ConsumerGroup("g1"))
	if err != nil {
		t.Fatal(err)
	}
	got := pullAll(t, ctx, cs, "orders")
	if len(got) != n {
		t.Fatalf("pulled %d messages, want %d", len(got), n)
	}
	for _, m := range got {
		r, ok := sent[m.MsgID]
		if !ok {
			t.Fatalf("pulled unknown MsgID %s", m.MsgID)
		}
		i := m.Properties["user"]
		if string(m.Body) != "order-"+i || m.Tag != "tagA" || !slices.Equal(m.Keys, []string{"k" + i, "common"}) {
			t.Errorf("message %s: body %q tag %q keys %q user %q", m.MsgID, m.Body, m.Tag, m.Keys, i)
		}
		if m.QueueID != r.QueueID || m.QueueOffset != r.QueueOffset {
			t.Errorf("message %s at %d@%d, sent to %d@%d", m.MsgID, m.QueueID, m.QueueOffset, r.QueueID, r.QueueOffset)
		}
		if m.OffsetMsgID != r.OffsetMsgID {
			t.Errorf("message %s: pulled offset id %s, send said %s (store host %v)", m.MsgID, m.OffsetMsgID, r.OffsetMsgID, m.StoreHost)
		}
		if time.Since(m.StoreTime) > time.Minute || m.StoreTime.Before(m.BornTime.Add(-time.Second)) {
			t.Errorf("message %s: born %v stored %v", m.MsgID, m.BornTime, m.StoreTime)
		}
	}

	// A tag subscription keeps only matching messages.
	other, err := NewConsumer(WithClient(c), ConsumerGroup("g2"), Subscription("tagB||tagC"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mq := range mustQueues(t, ctx, other, "orders") {
		res, err := other.Pull(ctx, mq, 0, 32)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) != 0 || res.NextBeginOffset != 4 {
			t.Errorf("tagB||tagC pull of %s: %v, %d messages, next %d", mq, res.Status, len(res.Messages), res.NextBeginOffset)
		}
	}
}

func mustQueues(t *testing.T, ctx context.Context, cs *Consumer, topic string) []MessageQueue {
	t.Helper()
	qs, err := cs.Queues(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return qs
}

func TestSendBatch(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	c := s.client(t)
	ctx := testCtx(t)
	if err := c.CreateTopic(ctx, TopicConfig{Name: "batch", ReadQueues: 2, WriteQueues: 2}); err != nil {
		t.Fatal(err)
	}
	p, err := NewProducer(WithClient(c), ProducerGroup("pg"))
	if err != nil {
		t.Fatal(err)
	}
	// A single message first, so the batch does not start at offset 0.
	if _, err := p.Send(ctx, Message{Topic: "batch", Body: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	var msgs []Message
	for i := range 5 {
		msgs = append(msgs, Message{Topic: "batch", Body: []byte(fmt.Sprintf("b%d", i)), Tag: "t" + strconv.Itoa(i), Keys: []string{"key" + strconv.Itoa(i)}})
	}
	for round := range 2 {
		res, err := p.Send(ctx, msgs...)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 5 {
			t.Fatalf("%d results", len(res))
		}
		for i, r := range res {
			if r.QueueID != res[0].QueueID || r.QueueOffset != res[0].QueueOffset+int64(i) || !hex32.MatchString(r.MsgID) || !hex32.MatchString(r.OffsetMsgID) {
				t.Errorf("round %d result %d: %+v (first %+v)", round, i, r, res[0])
			}
		}
	}
	got := pullAll(t, ctx, mustConsumer(t, c, "g"), "batch")
	if len(got) != 11 {
		t.Fatalf("pulled %d messages, want 11", len(got))
	}
	count := map[string]int{}
	for _, m := range got {
		count[string(m.Body)]++
		if m.Properties["UNIQ_KEY"] == "" || m.MsgID != m.Properties["UNIQ_KEY"] {
			t.Errorf("message %q: MsgID %q, UNIQ_KEY %q", m.Body, m.MsgID, m.Properties["UNIQ_KEY"])
		}
		if b := string(m.Body); b != "first" && (m.Tag != "t"+b[1:] || !slices.Equal(m.Keys, []string{"key" + b[1:]})) {
			t.Errorf("message %q: tag %q keys %q", b, m.Tag, m.Keys)
		}
	}
	for i := range 5 {
		if count[fmt.Sprintf("b%d", i)] != 2 {
			t.Errorf("b%d pulled %d times, want 2", i, count[fmt.Sprintf("b%d", i)])
		}
	}

	// Mixed topics and empty bodies are refused before the network.
	if _, err := p.Send(ctx, Message{Topic: "batch", Body: []byte("x")}, Message{Topic: "other", Body: []byte("y")}); err == nil {
		t.Error("batch of two topics was accepted")
	}
	if _, err := p.Send(ctx, Message{Topic: "batch"}); err == nil {
		t.Error("empty body was accepted")
	}
	small, _ := NewProducer(WithClient(c), MaxMessageSize(10))
	if _, err := small.Send(ctx, Message{Topic: "batch", Body: make([]byte, 11)}); err == nil {
		t.Error("oversized body was accepted")
	}
}

func mustConsumer(t *testing.T, c *Client, group string, opts ...ConsumerOpt) *Consumer {
	t.Helper()
	cs, err := NewConsumer(append([]ConsumerOpt{WithClient(c), ConsumerGroup(group)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestOffsets(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	c := s.client(t)
	ctx := testCtx(t)
	if err := c.CreateTopic(ctx, TopicConfig{Name: "offs", ReadQueues: 1, WriteQueues: 1}); err != nil {
		t.Fatal(err)
	}
	p, _ := NewProducer(WithClient(c))
	cs := mustConsumer(t, c, "grp")
	mq := MessageQueue{Topic: "offs", BrokerName: "broker-a", QueueID: 0}

	var stamps []time.Time
	for i := range 6 {
		if i == 3 {
			time.Sleep(30 * time.Millisecond)
		}
		stamps = append(stamps, time.Now())
		if _, err := p.Send(ctx, Message{Topic: "offs", Body: []byte{byte('a' + i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := cs.MaxOffset(ctx, mq); err != nil || got != 6 {
		t.Errorf("MaxOffset = %d, %v; want 6", got, err)
	}
	if got, err := cs.MinOffset(ctx, mq); err != nil || got != 0 {
		t.Errorf("MinOffset = %d, %v; want 0", got, err)
	}

	// A new group: a Strata or Java broker answers 0 while the queue holds
	// its first message (QUERY_NOT_FOUND would be as good).
	if off, found, err := cs.QueryOffset(ctx, mq); err != nil || (found && off != 0) || (!found && off != -1) {
		t.Errorf("QueryOffset of a new group = %d, %v, %v; want 0 or not found", off, found, err)
	}
	if err := cs.CommitOffset(ctx, mq, 4); err != nil {
		t.Fatal(err)
	}
	if off, found, err := cs.QueryOffset(ctx, mq); err != nil || !found || off != 4 {
		t.Errorf("QueryOffset after commit = %d, %v, %v; want 4, true", off, found, err)
	}
	// Another group is independent.
	if off, found, err := mustConsumer(t, c, "other").QueryOffset(ctx, mq); err != nil || off == 4 || found && off != 0 {
		t.Errorf("other group's offset = %d, %v, %v; want 0 or not found", off, found, err)
	}

	// Search by time: the first message stored at or after the time.
	for _, tc := range []struct {
		t    time.Time
		want int64
	}{
		{time.Time{}, 0},
		{stamps[3], 3},
		{time.Now().Add(time.Hour), 6},
	} {
		if got, err := cs.SearchOffset(ctx, mq, tc.t); err != nil || got != tc.want {
			t.Errorf("SearchOffset(%v) = %d, %v; want %d", tc.t, got, err, tc.want)
		}
	}

	// Offsets outside the queue.
	res, err := cs.Pull(ctx, mq, 100, 10)
	if err != nil || res.Status != PullOffsetIllegal || res.NextBeginOffset != 6 {
		t.Errorf("Pull beyond the end = %+v, %v; want OFFSET_ILLEGAL next 6", res, err)
	}
	res, err = cs.Pull(ctx, mq, 6, 10)
	if err != nil || res.Status != PullNoNewMsg || res.NextBeginOffset != 6 || res.MaxOffset != 6 {
		t.Errorf("Pull at the end = %+v, %v; want NO_NEW_MSG next 6", res, err)
	}
	res, err = cs.Pull(ctx, mq, 4, 10)
	if err != nil || res.Status != PullFound || len(res.Messages) != 2 || string(res.Messages[0].Body) != "e" {
		t.Errorf("Pull from the committed offset = %+v, %v", res, err)
	}
}

func TestLongPoll(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	c := s.client(t)
	ctx := testCtx(t)
	if err := c.CreateTopic(ctx, TopicConfig{Name: "lp", ReadQueues: 1, WriteQueues: 1}); err != nil {
		t.Fatal(err)
	}
	p, _ := NewProducer(WithClient(c))
	cs := mustConsumer(t, c, "grp", LongPoll(5*time.Second))
	mq := MessageQueue{Topic: "lp", BrokerName: "broker-a"}
	done := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, err := p.Send(ctx, Message{Topic: "lp", Body: []byte("late")})
		done <- err
	}()
	start := time.Now()
	res, err := cs.Pull(ctx, mq, 0, 10)
	if err != nil || res.Status != PullFound || len(res.Messages) != 1 {
		t.Fatalf("long poll = %+v, %v", res, err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 4*time.Second {
		t.Errorf("long poll answered after %v", d)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestTopicNotFound(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	c := s.client(t)
	ctx := testCtx(t)
	if _, err := c.Route(ctx, "nope"); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("Route: %v, want ErrTopicNotFound", err)
	}
	p, _ := NewProducer(WithClient(c))
	if _, err := p.Send(ctx, Message{Topic: "nope", Body: []byte("x")}); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("Send: %v, want ErrTopicNotFound", err)
	}
	cs := mustConsumer(t, c, "g")
	if _, err := cs.Queues(ctx, "nope"); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("Queues: %v, want ErrTopicNotFound", err)
	}
	if _, err := c.DescribeTopic(ctx, "nope"); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("DescribeTopic: %v, want ErrTopicNotFound", err)
	}
	// A pull of a topic the broker does not have (route from another
	// topic's broker): TOPIC_NOT_EXIST from the broker.
	if err := c.CreateTopic(ctx, TopicConfig{Name: "exists"}); err != nil {
		t.Fatal(err)
	}
	addr, err := c.brokerAddr(ctx, "exists", "broker-a")
	if err != nil {
		t.Fatal(err)
	}
	c.routeMu.Lock()
	c.routes["ghost"] = cachedRoute{route: &Route{Topic: "ghost", Queues: []QueueData{{BrokerName: "broker-a", ReadQueueNums: 1, WriteQueueNums: 1, Perm: 6}},
		Brokers: []BrokerData{{BrokerName: "broker-a", Addrs: map[int64]string{0: addr}}}}, fetched: time.Now()}
	c.routeMu.Unlock()
	_, err = cs.Pull(ctx, MessageQueue{Topic: "ghost", BrokerName: "broker-a"}, 0, 1)
	var re *ResponseError
	if !errors.Is(err, ErrTopicNotFound) || !errors.As(err, &re) {
		t.Errorf("Pull of an unknown topic: %v, want a TOPIC_NOT_EXIST ResponseError", err)
	}
	// Bad names fail before the network.
	if _, err := c.Route(ctx, "bad topic"); err == nil || errors.Is(err, ErrTopicNotFound) {
		t.Errorf("Route of an invalid name: %v", err)
	}
}

func TestAutoCreateThroughTemplateTopic(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{autoCreate: true})
	c := s.client(t)
	ctx := testCtx(t)
	p, _ := NewProducer(WithClient(c))
	res, err := p.Send(ctx, Message{Topic: "fresh", Body: []byte("hello")})
	if err != nil {
		t.Fatalf("Send to a new topic with auto-creation: %v", err)
	}
	if res[0].QueueOffset != 0 {
		t.Errorf("first message at offset %d", res[0].QueueOffset)
	}
	// The broker registers the new topic; then it has its own route.
	deadline := time.Now().Add(waitLimit)
	for {
		if _, err := c.Route(ctx, "fresh"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no route for the auto-created topic: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Without the template fallback an unknown topic is not found.
	strict, _ := NewProducer(WithClient(c), CreateTopicKey(""))
	if _, err := strict.Send(ctx, Message{Topic: "fresh2", Body: []byte("x")}); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("Send without template: %v, want ErrTopicNotFound", err)
	}
}

func TestAdminTopics(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	c := s.client(t)
	ctx := testCtx(t)
	if err := c.CreateTopic(ctx, TopicConfig{Name: "t1", ReadQueues: 2, WriteQueues: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic(ctx, TopicConfig{Name: "t2", Cluster: "DefaultCluster"}); err != nil {
		t.Fatal(err)
	}
	topics, err := c.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(topics, "t1") || !slices.Contains(topics, "t2") || !slices.IsSorted(topics) {
		t.Errorf("ListTopics = %v", topics)
	}
	p, _ := NewProducer(WithClient(c))
	for range 3 {
		if _, err := p.Send(ctx, Message{Topic: "t1", Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	info, err := c.DescribeTopic(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Queues) != 2 || len(info.Route.Brokers) != 1 || info.Route.Brokers[0].LeaderAddr() != s.b.Addr() {
		t.Fatalf("DescribeTopic = %+v", info)
	}
	var total int64
	for _, q := range info.Queues {
		total += q.MaxOffset - q.MinOffset
	}
	if total != 3 {
		t.Errorf("describe counts %d messages, want 3: %+v", total, info.Queues)
	}
	// Updating the queue count is visible at once.
	if err := c.CreateTopic(ctx, TopicConfig{Name: "t1", ReadQueues: 5, WriteQueues: 5}); err != nil {
		t.Fatal(err)
	}
	if info, err := c.DescribeTopic(ctx, "t1"); err != nil || len(info.Queues) != 5 {
		t.Errorf("after update: %d queues, %v", len(info.Queues), err)
	}

	if err := c.CreateTopic(ctx, TopicConfig{Name: "t3", Cluster: "nowhere"}); err == nil {
		t.Error("CreateTopic in an unknown cluster succeeded")
	}
	if err := c.CreateTopic(ctx, TopicConfig{Name: "bad name"}); err == nil {
		t.Error("CreateTopic of an invalid name succeeded")
	}
	if err := c.CreateTopic(ctx, TopicConfig{Name: "t4", WriteQueues: 5000}); err == nil {
		t.Error("CreateTopic with 5000 queues succeeded")
	}
	if !IsSystemTopic("TBW102") || !IsSystemTopic("%RETRY%g") || IsSystemTopic("t1") {
		t.Error("IsSystemTopic")
	}
}

func TestNameServerUnreachable(t *testing.T) {
	checkGoroutines(t)
	// A port nothing listens on: listen, note it, close.
	addr := freePort(t)
	c, err := New(NameServers(addr+";"+addr), DialTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)
	start := time.Now()
	_, err = c.Route(ctx, "t")
	if !errors.Is(err, ErrNameServerUnreachable) || errors.Is(err, ErrTopicNotFound) {
		t.Errorf("Route: %v, want ErrNameServerUnreachable", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	if _, err := c.ListTopics(ctx); !errors.Is(err, ErrNameServerUnreachable) {
		t.Errorf("ListTopics: %v", err)
	}
	// One dead name server, one live: requests go through.
	s := startStandalone(t, standaloneOpts{})
	c2 := s.client(t, NameServers(addr+";"+s.nsAddr))
	if _, err := c2.ListTopics(ctx); err != nil {
		t.Errorf("ListTopics with one live name server: %v", err)
	}
	// A cancelled context is reported as such.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c2.ListTopics(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ListTopics with a cancelled context: %v", err)
	}
}

func TestRedialAndClose(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	ctx := testCtx(t)
	setup := s.client(t)
	if err := setup.CreateTopic(ctx, TopicConfig{Name: "rd", ReadQueues: 1, WriteQueues: 1}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let request goroutines of the setup finish
	base := runtime.NumGoroutine()

	c, err := New(NameServers(s.nsAddr))
	if err != nil {
		t.Fatal(err)
	}
	if n := runtime.NumGoroutine(); n != base {
		t.Errorf("New started goroutines: %d, was %d", n, base)
	}
	p, _ := NewProducer(WithClient(c))
	if _, err := p.Send(ctx, Message{Topic: "rd", Body: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	// Kill the broker connection under the client: the next send redials.
	c.mu.Lock()
	bc := c.conns[s.b.Addr()].conn
	c.mu.Unlock()
	bc.Close()
	if _, err := p.Send(ctx, Message{Topic: "rd", Body: []byte("2")}); err != nil {
		t.Fatalf("Send after the connection closed: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(ctx, Message{Topic: "rd", Body: []byte("3")}); !errors.Is(err, ErrClientClosed) {
		t.Errorf("Send after Close: %v, want ErrClientClosed", err)
	}
	// The client's readers are gone, and so are the server ends.
	waitGoroutines(t, base)
}
