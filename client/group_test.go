package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/testlog"
)

func TestAllocateAveragely(t *testing.T) {
	mqs := func(n int) []MessageQueue {
		out := make([]MessageQueue, n)
		for i := range out {
			out[i] = MessageQueue{Topic: "t", BrokerName: "b", QueueID: i}
		}
		return out
	}
	ids := func(qs []MessageQueue) []int {
		out := []int{}
		for _, q := range qs {
			out = append(out, q.QueueID)
		}
		return out
	}
	cids := []string{"a", "b", "c"}
	for _, tc := range []struct {
		queues int
		id     string
		want   []int
	}{
		// Worked by hand from rocketmq-client-go's AllocateByAveragely.
		{8, "a", []int{0, 1, 2}}, {8, "b", []int{3, 4, 5}}, {8, "c", []int{6, 7}},
		{9, "a", []int{0, 1, 2}}, {9, "b", []int{3, 4, 5}}, {9, "c", []int{6, 7, 8}},
		{2, "a", []int{0}}, {2, "b", []int{1}}, {2, "c", []int{}},
		{3, "c", []int{2}}, {0, "a", []int{}}, {4, "x", []int{}},
	} {
		if got := ids(allocateAveragely(tc.id, mqs(tc.queues), cids)); !slices.Equal(got, tc.want) {
			t.Errorf("%d queues, member %s: got %v, want %v", tc.queues, tc.id, got, tc.want)
		}
	}
	// Every queue goes to exactly one member, whatever the counts.
	for n := range 20 {
		for m := 1; m < 7; m++ {
			members := make([]string, m)
			for i := range members {
				members[i] = fmt.Sprintf("m%d", i)
			}
			seen := map[int]int{}
			for _, id := range members {
				for _, q := range allocateAveragely(id, mqs(n), members) {
					seen[q.QueueID]++
				}
			}
			for q := range n {
				if seen[q] != 1 {
					t.Fatalf("%d queues, %d members: queue %d allocated %d times", n, m, q, seen[q])
				}
			}
		}
	}
}

// groupTopic creates topic with queues queues and sends n messages to it,
// with bodies prefix0..prefix<n-1>.
func groupTopic(t *testing.T, c *Client, topic string, queues int) {
	t.Helper()
	if err := c.CreateTopic(testCtx(t), TopicConfig{Name: topic, ReadQueues: queues, WriteQueues: queues}); err != nil {
		t.Fatal(err)
	}
}

func sendN(t *testing.T, c *Client, topic, prefix string, n int) {
	t.Helper()
	p, err := NewProducer(WithClient(c))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := p.Send(testCtx(t), Message{Topic: topic, Body: fmt.Appendf(nil, "%s%d", prefix, i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// member returns a Consumer of group on a Client of its own (a group
// member of its own), closed at the end of the test.
func member(t *testing.T, s *standalone, group string, opts ...ConsumerOpt) *Consumer {
	t.Helper()
	cs := mustConsumer(t, s.client(t), group, opts...)
	t.Cleanup(func() { _ = cs.Close(context.Background()) })
	return cs
}

// receiveN calls Receive until it has n messages, checks that no body
// repeats and that each queue's offsets increase, and returns the bodies.
func receiveN(t *testing.T, cs *Consumer, n int) []string {
	t.Helper()
	ctx := testCtx(t)
	var bodies []string
	last := map[MessageQueue]int64{}
	seen := map[string]bool{}
	for len(bodies) < n {
		msgs, err := cs.Receive(ctx, 7)
		if err != nil {
			t.Fatalf("Receive after %d of %d: %v", len(bodies), n, err)
		}
		for _, m := range msgs {
			mq := MessageQueue{Topic: m.Topic, BrokerName: m.BrokerName, QueueID: m.QueueID}
			if prev, ok := last[mq]; ok && m.QueueOffset <= prev {
				t.Fatalf("%s: offset %d after %d", mq, m.QueueOffset, prev)
			}
			last[mq] = m.QueueOffset
			if seen[string(m.Body)] {
				t.Fatalf("%q received twice", m.Body)
			}
			seen[string(m.Body)] = true
			bodies = append(bodies, string(m.Body))
		}
	}
	if len(bodies) != n {
		t.Fatalf("received %d messages, want %d", len(bodies), n)
	}
	return bodies
}

func TestReceiveCommitResume(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	c := s.client(t)
	ctx := testCtx(t)
	groupTopic(t, c, "recv", 4)
	sendN(t, c, "recv", "a", 40)

	a := member(t, s, "g", Subscribe("recv", "*"), StartFrom(FromFirstOffset))
	receiveN(t, a, 40)
	if msgs, err := a.Receive(ctx, 10); err != nil || len(msgs) != 0 {
		t.Fatalf("Receive at the end = %d messages, %v; want none", len(msgs), err)
	}
	if err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Receive(ctx, 1); !errors.Is(err, ErrClientClosed) {
		t.Errorf("Receive after Close: %v", err)
	}

	// The next member starts at the commit.
	sendN(t, c, "recv", "b", 10)
	b := member(t, s, "g", Subscribe("recv", "*"), StartFrom(FromFirstOffset))
	got := receiveN(t, b, 10)
	for _, body := range got {
		if !strings.HasPrefix(body, "b") {
			t.Fatalf("member after the commit received %q", body)
		}
	}
	// Without a Commit the next member gets them again (at least once).
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c2 := member(t, s, "g", Subscribe("recv", "*"))
	receiveN(t, c2, 10)

	// A tag filter: only tagged messages, and the positions pass the rest.
	p, _ := NewProducer(WithClient(c))
	for i := range 8 {
		tag := "x"
		if i%2 == 0 {
			tag = "y"
		}
		if _, err := p.Send(ctx, Message{Topic: "recv", Tag: tag, Body: fmt.Appendf(nil, "t%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	d := member(t, s, "tagged", Subscribe("recv", "y"), StartFrom(FromFirstOffset))
	for _, body := range receiveN(t, d, 4) {
		if body != "t0" && body != "t2" && body != "t4" && body != "t6" {
			t.Errorf("tag filter let %q through", body)
		}
	}
}

func TestReceiveRebalance(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	c := s.client(t)
	ctx := testCtx(t)
	groupTopic(t, c, "rebal", 4)

	a := member(t, s, "g", Subscribe("rebal", "*"))
	got, err := a.Assignment(ctx)
	if err != nil || len(got) != 4 {
		t.Fatalf("alone: %v, %v; want all 4 queues", got, err)
	}
	b := member(t, s, "g", Subscribe("rebal", "*"))
	gotB, err := b.Assignment(ctx)
	if err != nil || len(gotB) != 2 {
		t.Fatalf("second member: %v, %v; want 2 queues", gotB, err)
	}
	// The broker tells a; its next call rebalances.
	gotA := waitAssignment(t, a, 2)
	for _, q := range gotA {
		if slices.Contains(gotB, q) {
			t.Fatalf("%s assigned to both members: %v and %v", q, gotA, gotB)
		}
	}
	// Order of client ids decides who gets the first half, as in RocketMQ.
	first := a
	if b.Client().ClientID() < a.Client().ClientID() {
		first = b
	}
	if f, _ := first.Assignment(ctx); f[0].QueueID != 0 || f[1].QueueID != 1 {
		t.Errorf("the member with the smaller client id has %v, want queues 0 and 1", f)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitAssignment(t, a, 4)
}

// waitAssignment calls Assignment until it has n queues.
func waitAssignment(t *testing.T, cs *Consumer, n int) []MessageQueue {
	t.Helper()
	ctx := testCtx(t)
	for {
		got, err := cs.Assignment(ctx)
		if err == nil && len(got) == n {
			return got
		}
		select {
		case <-ctx.Done():
			t.Fatalf("assignment %v, %v; want %d queues", got, err, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestSeek(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	c := s.client(t)
	ctx := testCtx(t)
	groupTopic(t, c, "seek", 2)
	before := time.Now().Add(-time.Second)
	sendN(t, c, "seek", "s", 20)

	// (FromLastOffset would start at 0 here: brokers answer 0 for a new
	// group while a queue still holds its first message.)
	cs := member(t, s, "g", Subscribe("seek", "*"), StartFrom(FromTime(time.Now().Add(time.Hour))))
	if msgs, err := cs.Receive(ctx, 10); err != nil || len(msgs) != 0 {
		t.Fatalf("new group from a future time got %d messages, %v", len(msgs), err)
	}
	mqs, err := cs.Assignment(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, mq := range mqs {
		if err := cs.Seek(ctx, mq, 0); err != nil {
			t.Fatal(err)
		}
	}
	receiveN(t, cs, 20)
	if err := cs.SeekTime(ctx, before); err != nil {
		t.Fatal(err)
	}
	receiveN(t, cs, 20)
	if err := cs.SeekTime(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if msgs, err := cs.Receive(ctx, 10); err != nil || len(msgs) != 0 {
		t.Fatalf("after SeekTime(future): %d messages, %v", len(msgs), err)
	}
	err = cs.Seek(ctx, MessageQueue{Topic: "seek", BrokerName: "broker-a", QueueID: 9}, 0)
	if !errors.Is(err, ErrNotAssigned) {
		t.Errorf("Seek of an unassigned queue: %v", err)
	}
	// Run is refused on a Consumer that used Receive.
	if err := cs.Run(ctx, func(context.Context, []MessageExt) error { return nil }); err == nil {
		t.Error("Run after Receive was accepted")
	}
}

func TestReceiveLongPoll(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	c := s.client(t)
	ctx := testCtx(t)
	groupTopic(t, c, "lp", 4)
	cs := member(t, s, "g", Subscribe("lp", "*"), LongPoll(5*time.Second))
	if _, err := cs.Assignment(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := NewProducer(WithClient(c))
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond) // the Receive below is waiting by then, most likely
		_, err := p.Send(context.Background(), Message{Topic: "lp", Body: []byte("late0")})
		sent <- err
	}()
	start := time.Now()
	msgs, err := cs.Receive(ctx, 10)
	if serr := <-sent; serr != nil {
		t.Fatalf("send: %v", serr)
	}
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "late0" {
		t.Fatalf("long-polling Receive: %v, %v", msgs, err)
	}
	t.Logf("message arrived after %v", time.Since(start))
}

func TestRun(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	c := s.client(t)
	groupTopic(t, c, "run", 4)
	cs := member(t, s, "g", Subscribe("run", "*"), StartFrom(FromFirstOffset), HandlerBatchSize(4))

	var mu sync.Mutex
	got := map[string]int{}
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() {
		done <- cs.Run(ctx, func(ctx context.Context, msgs []MessageExt) error {
			if len(msgs) > 4 {
				return fmt.Errorf("batch of %d", len(msgs))
			}
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				got[string(m.Body)]++
			}
			return nil
		})
	}()
	sendN(t, c, "run", "r", 50)
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 50
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for body, n := range got {
		if n != 1 {
			t.Errorf("%s handled %d times", body, n)
		}
	}
	// Run committed what it consumed when it stopped.
	q := mustConsumer(t, c, "g")
	total := int64(0)
	for id := range 4 {
		off, found, err := q.QueryOffset(testCtx(t), MessageQueue{Topic: "run", BrokerName: "broker-a", QueueID: id})
		if err != nil || !found {
			t.Fatalf("queue %d: %d, %v, %v", id, off, found, err)
		}
		total += off
	}
	if total != 50 {
		t.Errorf("committed offsets sum to %d, want 50", total)
	}
}

func TestRunRedelivers(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the broker's 10 s retry delay")
	}
	t.Parallel()
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	c := s.client(t)
	groupTopic(t, c, "redo", 1)
	cs := mustConsumer(t, s.client(t, Logger(testlog.OnFailure(t))), "g", Subscribe("redo", "*"), StartFrom(FromFirstOffset))
	t.Cleanup(func() { _ = cs.Close(context.Background()) })

	type delivery struct {
		topic    string
		body     string
		reconsum int
	}
	var mu sync.Mutex
	var seen []delivery
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- cs.Run(ctx, func(ctx context.Context, msgs []MessageExt) error {
			mu.Lock()
			defer mu.Unlock()
			m := msgs[0]
			seen = append(seen, delivery{m.Topic, string(m.Body), m.ReconsumeTimes})
			if string(m.Body) == "bad0" && m.ReconsumeTimes == 0 {
				return errors.New("not now")
			}
			return nil
		})
	}()
	sendN(t, c, "redo", "bad", 1)
	sendN(t, c, "redo", "good", 1)
	deadline := time.Now().Add(40 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries so far: %v", seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []delivery{{"redo", "bad0", 0}, {"redo", "good0", 0}, {"redo", "bad0", 1}}
	if !slices.Equal(seen, want) {
		t.Errorf("deliveries %v, want %v", seen, want)
	}
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
