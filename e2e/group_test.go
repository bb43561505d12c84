package e2e

// Strata's group consumer (client.Consumer's Receive and Run) against a
// real strata process: sharing a group's queues with a rocketmq-client-go
// push consumer by AllocateByAveragely, taking a departed member's queues
// over, short-lived Receive invocations (a serverless function's life), and
// redelivery of a failed message through the group's retry topic.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testlog"
	"github.com/strata-mq/strata/remoting"
)

// Consumer names in the collectors of these tests.
const (
	memberRMQ    = "rmq"
	memberStrata = "strata"
)

// TestMixedGroupSharesQueues: a rocketmq-client-go push consumer and a
// Strata consumer (Run) in one clustering group split an 8-queue topic as
// AllocateByAveragely over their sorted client ids says, 4 queues each,
// and once the split is stable every message is consumed exactly once,
// each by the member that holds its queue.
func TestMixedGroupSharesQueues(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	t0 := time.Now()
	g := startMixedGroup(t, s, 8)
	t.Logf("group ready (both members joined, split stable) in %v", time.Since(t0).Round(time.Millisecond))

	const n = 400
	bodies := groupBodies("share", n)
	t1 := time.Now()
	res := sendStrata(t, g.p, g.topic, bodies, 10) // 40 batches, 5 per queue
	t.Logf("sent %d messages in %v", n, time.Since(t1).Round(time.Millisecond))
	waitFor(t, 20*time.Second, "every message consumed", func() bool { return g.col.hasAll(bodies) },
		func() string { return fmt.Sprint("missing ", g.col.missing(bodies)) })
	t.Logf("consumed %d messages %v after the first send", n, time.Since(t1).Round(time.Millisecond))

	sentAt := map[string]client.SendResult{}
	for i, r := range res {
		sentAt[bodies[i]] = r
	}
	counts := map[string]int{}
	perMember := map[string]int{}
	queuesOf := map[string]map[int]bool{memberRMQ: {}, memberStrata: {}}
	for _, m := range g.col.all() {
		r, ok := sentAt[m.body]
		if !ok {
			continue // warm-up
		}
		counts[m.body]++
		perMember[m.consumer]++
		queuesOf[m.consumer][m.queue] = true
		if m.queue != r.QueueID || m.offset != r.QueueOffset {
			t.Errorf("%s: consumed at %d/%d, sent to %d/%d", m.body, m.queue, m.offset, r.QueueID, r.QueueOffset)
		}
		if want := g.owner[m.queue]; m.consumer != want {
			t.Errorf("%s (queue %d) consumed by %s; AllocateByAveragely gives the queue to %s", m.body, m.queue, m.consumer, want)
		}
	}
	dups := 0
	for _, b := range bodies {
		if counts[b] != 1 {
			dups++
			if dups <= 10 {
				t.Errorf("%s consumed %d times, want exactly once across the group", b, counts[b])
			}
		}
	}
	t.Logf("messages per member %v, duplicates %d", perMember, dups)
	if perMember[memberRMQ] == 0 || perMember[memberStrata] == 0 {
		t.Errorf("messages per member %v: both should have a share", perMember)
	}
	rq, sq := slices.Sorted(maps.Keys(queuesOf[memberRMQ])), slices.Sorted(maps.Keys(queuesOf[memberStrata]))
	for _, q := range rq {
		if queuesOf[memberStrata][q] {
			t.Errorf("queue %d was read by both members (rocketmq %v, strata %v)", q, rq, sq)
		}
	}
	if want := g.share(memberRMQ); !slices.Equal(rq, want) {
		t.Errorf("the push consumer received from queues %v, want its AllocateByAveragely share %v", rq, want)
	}
	if want := g.share(memberStrata); !slices.Equal(sq, want) {
		t.Errorf("the Strata consumer received from queues %v, want its AllocateByAveragely share %v", sq, want)
	}
	if len(rq) != 4 || len(sq) != 4 {
		t.Errorf("queues per member: rocketmq %v, strata %v; want 4 each", rq, sq)
	}
	if held := slices.Sorted(slices.Values(g.push.held(g.topic))); !slices.Equal(held, g.share(memberRMQ)) {
		t.Errorf("the push consumer holds %v at the end, want %v", held, g.share(memberRMQ))
	}

	// Leave cleanly: the push consumer commits what it consumed, Run
	// commits on its way out. The push consumer goes first: a
	// rocketmq-client-go consumer shut down while it rebalances (on the
	// notice that the Strata member left) races with itself.
	s.waitCommitted(t, g.push, g.topic)
	g.push.shutdown()
	g.run.stop(t)
}

// TestMixedGroupFailover: the rocketmq-client-go member of a mixed group
// shuts down while messages are still being produced; the Strata consumer
// takes its queues over and the group consumes everything. A message may
// come twice only on a queue that changed hands, at or after the offset
// the departed member had committed.
func TestMixedGroupFailover(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	g := startMixedGroup(t, s, 8)
	pushQueues := g.share(memberRMQ)

	const half = 200
	bodies := groupBodies("failover", 2*half)
	gate := make(chan struct{})
	sendDone := make(chan error, 1)
	var sentN atomic.Int64
	t0 := time.Now()
	go func() {
		// One message per send, so that the stream lasts: the first half,
		// then (once the shutdown begins) the second.
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		if err := sendStrataCtx(ctx, g.p, g.topic, bodies[:half], 1, nil, &sentN); err != nil {
			sendDone <- err
			return
		}
		select {
		case <-gate:
		case <-ctx.Done():
			sendDone <- fmt.Errorf("waiting for the shutdown to begin: %w", ctx.Err())
			return
		}
		sendDone <- sendStrataCtx(ctx, g.p, g.topic, bodies[half:], 1, nil, &sentN)
	}()
	isMain := func(body string) bool { return strings.HasPrefix(body, "failover-") }
	consumedBy := func(member string) int {
		n := 0
		for _, m := range g.col.all() {
			if m.consumer == member && isMain(m.body) {
				n++
			}
		}
		return n
	}
	waitFor(t, 15*time.Second, "the push consumer to consume part of the stream",
		func() bool { return consumedBy(memberRMQ) >= 30 },
		func() string { return fmt.Sprintf("push consumer consumed %d", consumedBy(memberRMQ)) })

	// What the push consumer has committed so far is a lower bound of its
	// last commit: the group must not go back behind it.
	floor := map[int]int64{}
	for _, q := range pushQueues {
		off, err := s.committedOffset(g.group, g.topic, q)
		if err != nil {
			t.Fatalf("committed offset of queue %d: %v", q, err)
		}
		floor[q] = off
	}
	pushedBefore, sentBefore := consumedBy(memberRMQ), sentN.Load()
	shutdownAt := time.Now()
	close(gate)
	g.push.shutdown()
	t.Logf("push consumer shut down in %v, %v into the stream (%d of %d sent, the rest sent during and after the shutdown), having consumed %d; its committed offsets before: %v",
		time.Since(shutdownAt).Round(time.Microsecond), shutdownAt.Sub(t0).Round(time.Millisecond), sentBefore, len(bodies), pushedBefore, floor)

	select {
	case err := <-sendDone:
		if err != nil {
			t.Fatalf("send: %v", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("the producer did not finish within 45 s")
	}
	waitFor(t, 30*time.Second, "the Strata consumer to consume the rest", func() bool {
		g.run.alive(t)
		return g.col.hasAll(bodies)
	}, func() string { return fmt.Sprint("missing ", g.col.missing(bodies)) })
	t.Logf("all %d messages consumed %v after the shutdown began", len(bodies), time.Since(shutdownAt).Round(time.Millisecond))

	type queueView struct {
		strataStart int64 // first offset Strata read after the shutdown began; -1: none
		pushEnd     int64 // offset after the last message the push consumer got
	}
	views := map[int]*queueView{}
	for _, q := range pushQueues {
		views[q] = &queueView{strataStart: -1}
	}
	counts := map[string]map[string]int{} // body → member → deliveries
	var mainMsgs []got
	for _, m := range g.col.all() {
		if v := views[m.queue]; v != nil {
			if m.consumer == memberStrata && !m.at.Before(shutdownAt) && (v.strataStart < 0 || m.offset < v.strataStart) {
				v.strataStart = m.offset
			}
			if m.consumer == memberRMQ {
				v.pushEnd = max(v.pushEnd, m.offset+1)
			}
		}
		if !isMain(m.body) {
			continue
		}
		mainMsgs = append(mainMsgs, m)
		if counts[m.body] == nil {
			counts[m.body] = map[string]int{}
		}
		counts[m.body][m.consumer]++
	}
	for _, q := range pushQueues {
		v := views[q]
		switch {
		case v.strataStart < 0:
			t.Errorf("queue %d: the Strata consumer never read it after the push consumer left", q)
		case v.strataStart < floor[q]:
			t.Errorf("queue %d: the Strata consumer took over at offset %d, behind the %d the push consumer had committed",
				q, v.strataStart, floor[q])
		}
		t.Logf("queue %d: push consumer committed >= %d before its shutdown, consumed up to %d; Strata took over at %d (%d redelivered)",
			q, floor[q], v.pushEnd, v.strataStart, max(v.pushEnd-max(v.strataStart, 0), 0))
	}
	dups, reported := 0, 0
	seenDup := map[string]bool{}
	for _, m := range mainMsgs {
		c := counts[m.body]
		if c[memberRMQ]+c[memberStrata] <= 1 || seenDup[m.body] {
			continue
		}
		seenDup[m.body] = true
		dups++
		v := views[m.queue]
		if v == nil || c[memberRMQ] > 1 || c[memberStrata] > 1 || m.offset < floor[m.queue] {
			if reported++; reported <= 10 {
				t.Errorf("%s (queue %d, offset %d) consumed %v: duplicates are allowed only on a queue that changed hands, once per member, at or after the departed member's commit (%d)",
					m.body, m.queue, m.offset, c, floor[m.queue])
			}
		}
	}
	t.Logf("%d messages: %d deliveries to the push consumer, %d to the Strata consumer, %d consumed twice (at-least-once across the takeover)",
		len(bodies), consumedBy(memberRMQ), consumedBy(memberStrata), dups)
	g.run.stop(t)
}

// TestReceiveServerless: a function's life, several times over: each
// invocation makes a Consumer (with a Client of its own), Receives up to K
// messages, Commits and Closes. Since each commits before it closes, the
// invocations together get every message exactly once, and each one is the
// group's only member (its predecessor left on Close), so it holds every
// queue. The time from NewConsumer to the first messages (a cold start) is
// logged per invocation.
func TestReceiveServerless(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic, group := uniq("faas"), uniq("g")
	const queues, n, k = 4, 200, 30
	s.createTopic(t, topic, queues, false)
	p := newStrataProducer(t, s)
	bodies := groupBodies("faas", n)
	sendStrata(t, p, topic, bodies, 10)

	counts := map[string]int{}
	var colds []time.Duration
	invocation := func(i, tries int) (msgs []client.MessageExt, cold time.Duration) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		cs, err := client.NewConsumer(client.NameServers(s.namesrv), client.Logger(groupLogger(t)),
			client.ConsumerGroup(group), client.Subscribe(topic, "*"), client.StartFrom(client.FromFirstOffset),
			client.LongPoll(time.Second))
		if err != nil {
			t.Fatalf("invocation %d: NewConsumer: %v", i, err)
		}
		defer func() {
			if err := cs.Close(ctx); err != nil {
				t.Errorf("invocation %d: Close: %v", i, err)
			}
		}()
		// An empty answer means no queue had a message within LongPoll.
		for try := 0; len(msgs) == 0 && try < tries; try++ {
			if msgs, err = cs.Receive(ctx, k); err != nil {
				t.Fatalf("invocation %d: Receive: %v", i, err)
			}
		}
		cold = time.Since(start)
		if len(msgs) > k {
			t.Errorf("invocation %d: Receive(%d) returned %d messages", i, k, len(msgs))
		}
		if a, err := cs.Assignment(ctx); err != nil {
			t.Errorf("invocation %d: Assignment: %v", i, err)
		} else if len(a) != queues {
			t.Errorf("invocation %d: assigned %v; the group's only member should hold all %d queues", i, a, queues)
		}
		if err := cs.Commit(ctx); err != nil {
			t.Fatalf("invocation %d: Commit: %v", i, err)
		}
		return msgs, cold
	}
	got := 0
	for i := 0; got < n; i++ {
		if i >= 3*n/k {
			t.Fatalf("%d invocations got %d of %d messages", i, got, n)
		}
		msgs, cold := invocation(i, 3)
		if len(msgs) == 0 {
			t.Fatalf("invocation %d received nothing with %d of %d messages still unconsumed", i, n-got, n)
		}
		colds = append(colds, cold)
		for _, m := range msgs {
			if m.Topic != topic {
				t.Errorf("invocation %d: message from topic %q", i, m.Topic)
			}
			if counts[string(m.Body)]++; counts[string(m.Body)] == 1 {
				got++
			} else {
				t.Errorf("invocation %d: %s (%d/%d) delivered again though an earlier invocation committed it",
					i, m.Body, m.QueueID, m.QueueOffset)
			}
		}
		t.Logf("invocation %d: %d messages, first ones %v after NewConsumer", i, len(msgs), cold.Round(100*time.Microsecond))
	}
	for _, b := range bodies {
		if counts[b] != 1 {
			t.Errorf("%s delivered %d times, want once", b, counts[b])
		}
	}
	// One more invocation finds nothing left (its Receive long-polls 1 s).
	last, _ := invocation(len(colds), 1)
	if len(last) != 0 {
		t.Errorf("an invocation after everything was committed received %d messages, first %s", len(last), last[0].Body)
	}
	sorted := slices.Sorted(slices.Values(colds))
	t.Logf("cold start (NewConsumer to first messages) over %d invocations: min %v, median %v, max %v",
		len(sorted), sorted[0].Round(100*time.Microsecond), sorted[len(sorted)/2].Round(100*time.Microsecond),
		sorted[len(sorted)-1].Round(100*time.Microsecond))
}

// TestRunRetryInterop: a message sent by rocketmq-client-go whose Run
// Handler fails once is sent back (CONSUMER_SEND_MSG_BACK) and redelivered
// through %RETRY%<group> after the broker's first retry delay (10 s), with
// ReconsumeTimes 1, its original Topic, message id, tag, keys and
// properties; the other messages are consumed once.
func TestRunRetryInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the broker's 10 s retry delay")
	}
	t.Parallel()
	s := sharedStrata(t)
	topic, group := uniq("runretry"), uniq("g")
	s.createTopic(t, topic, 2, false)

	type delivery struct {
		m  client.MessageExt
		at time.Time
	}
	var mu sync.Mutex
	var seen []delivery
	snapshot := func() []delivery {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
	cs, err := client.NewConsumer(client.NameServers(s.namesrv), client.Logger(groupLogger(t)),
		client.ConsumerGroup(group), client.Subscribe(topic, "*"), client.StartFrom(client.FromFirstOffset))
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	run := startRun(t, cs, func(_ context.Context, msgs []client.MessageExt) error {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		fail := false
		for _, m := range msgs {
			seen = append(seen, delivery{m, now})
			fail = fail || (string(m.Body) == "poison" && m.ReconsumeTimes == 0)
		}
		if fail {
			return errors.New("poison: failing its first delivery")
		}
		return nil
	})

	p := s.newProducer(t)
	var sent []*primitive.SendResult
	var poisonSent time.Time
	for _, b := range []string{"ok-0", "poison", "ok-1"} {
		m := primitive.NewMessage(topic, []byte(b)).WithTag("T" + b).WithKeys([]string{"key-" + b})
		m.WithProperty("origin", "rocketmq "+b)
		if b == "poison" {
			poisonSent = time.Now()
		}
		sent = append(sent, sendSync(t, p, m)[0])
	}
	poisonID := sent[1].MsgID

	poison := func() []delivery {
		var out []delivery
		for _, d := range snapshot() {
			if string(d.m.Body) == "poison" {
				out = append(out, d)
			}
		}
		return out
	}
	waitFor(t, 15*time.Second, "the first delivery of the messages", func() bool {
		run.alive(t)
		return len(poison()) >= 1
	})
	t.Logf("first delivery of the poison message %v after its send", poison()[0].at.Sub(poisonSent).Round(time.Millisecond))
	waitFor(t, 40*time.Second, "the poison message's redelivery through %RETRY%"+group, func() bool {
		run.alive(t)
		return len(poison()) >= 2
	}, func() string { return fmt.Sprintf("%d deliveries", len(poison())) })

	ds := poison()
	first, retry := ds[0], ds[1]
	gap := retry.at.Sub(first.at)
	t.Logf("redelivered %v after the failed delivery", gap.Round(time.Millisecond))
	if first.m.ReconsumeTimes != 0 || first.m.Topic != topic {
		t.Errorf("first delivery: ReconsumeTimes %d topic %q, want 0 and %q", first.m.ReconsumeTimes, first.m.Topic, topic)
	}
	if retry.m.ReconsumeTimes != 1 {
		t.Errorf("redelivery: ReconsumeTimes %d, want 1", retry.m.ReconsumeTimes)
	}
	if retry.m.Topic != topic {
		t.Errorf("redelivery: Topic %q, want the original %q", retry.m.Topic, topic)
	}
	if got := retry.m.Properties["RETRY_TOPIC"]; got != topic {
		t.Errorf("redelivery: RETRY_TOPIC %q, want %q", got, topic)
	}
	if retry.m.MsgID != poisonID || first.m.MsgID != poisonID {
		t.Errorf("MsgIDs %s then %s, want rocketmq's %s both times", first.m.MsgID, retry.m.MsgID, poisonID)
	}
	if retry.m.Tag != "Tpoison" || !slices.Equal(retry.m.Keys, []string{"key-poison"}) || retry.m.Properties["origin"] != "rocketmq poison" {
		t.Errorf("redelivery: tag %q keys %q origin %q, want Tpoison [key-poison] %q",
			retry.m.Tag, retry.m.Keys, retry.m.Properties["origin"], "rocketmq poison")
	}
	if gap < 9*time.Second || gap > 30*time.Second {
		t.Errorf("redelivered %v after the failure, want about 10 s (the first retry's delay level)", gap)
	}

	// The retry went through the group's retry topic: one message there.
	ictx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inspect, err := client.NewConsumer(client.NameServers(s.namesrv), client.ConsumerGroup(uniq("inspect")))
	if err != nil {
		t.Fatal(err)
	}
	defer inspect.Close(ictx)
	rqs, err := inspect.Queues(ictx, client.RetryTopic(group))
	if err != nil {
		t.Fatalf("queues of %s: %v", client.RetryTopic(group), err)
	}
	var stored int64
	for _, mq := range rqs {
		n, err := inspect.MaxOffset(ictx, mq)
		if err != nil {
			t.Fatalf("max offset of %s: %v", mq, err)
		}
		stored += n
	}
	if stored != 1 {
		t.Errorf("%s holds %d messages, want 1", client.RetryTopic(group), stored)
	}

	run.stop(t)
	counts := map[string]int{}
	for _, d := range snapshot() {
		counts[string(d.m.Body)]++
	}
	if counts["ok-0"] != 1 || counts["ok-1"] != 1 || counts["poison"] != 2 {
		t.Errorf("deliveries %v, want ok-0 and ok-1 once, poison twice", counts)
	}
}

// ---------------------------------------------------------------------------
// A mixed group: one rocketmq-client-go push consumer and one Strata
// consumer in Run.

type mixedGroup struct {
	topic, group string
	queues       int
	col          *collector
	push         *pushConsumer
	run          *runningConsumer
	p            *client.Producer
	// owner names the member AllocateByAveragely gives each queue id.
	owner map[int]string
}

// share returns the queue ids AllocateByAveragely gives member, sorted.
func (g *mixedGroup) share(member string) []int {
	var out []int
	for q, m := range g.owner {
		if m == member {
			out = append(out, q)
		}
	}
	slices.Sort(out)
	return out
}

// startMixedGroup creates a topic with queues queues and starts a group of
// a push consumer and a Strata consumer (Run), both from the first offset,
// recording what they consume. It returns once both are members, the push
// consumer holds its AllocateByAveragely share and two warm-up rounds (a
// message per queue) were consumed exactly once, each by its queue's
// owner: the split is stable.
func startMixedGroup(t *testing.T, s *strata, queues int) *mixedGroup {
	t.Helper()
	g := &mixedGroup{topic: uniq("mixed"), group: uniq("g"), queues: queues, col: &collector{}}
	s.createTopic(t, g.topic, queues, false)
	g.p = newStrataProducer(t, s)

	g.push = s.newPushConsumer(t, g.group, consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	g.push.subscribeAndStart(t, g.topic, "*", g.col.handler(memberRMQ))
	waitFor(t, 15*time.Second, "the push consumer to hold every queue", func() bool { return len(g.push.held(g.topic)) == queues },
		func() string { return fmt.Sprintf("holds %v", g.push.held(g.topic)) })

	cs, err := client.NewConsumer(client.NameServers(s.namesrv), client.Logger(groupLogger(t)),
		client.ConsumerGroup(g.group), client.Subscribe(g.topic, "*"), client.StartFrom(client.FromFirstOffset))
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	strataID := cs.Client().ClientID()
	col := g.col
	g.run = startRun(t, cs, func(_ context.Context, msgs []client.MessageExt) error {
		col.addClient(memberStrata, msgs)
		return nil
	})
	// At the end, the push consumer shuts down before Run stops (see
	// TestMixedGroupSharesQueues).
	t.Cleanup(g.push.shutdown)

	var ids []string
	var idErr error
	waitFor(t, 15*time.Second, "both members in the broker's consumer list", func() bool {
		g.run.alive(t)
		ids, idErr = s.groupIDs(g.group)
		return idErr == nil && len(ids) == 2 && slices.Contains(ids, strataID)
	}, func() string { return fmt.Sprintf("ids %v (strata %s), err %v", ids, strataID, idErr) })
	g.owner = map[int]string{}
	for i, id := range ids { // sorted
		member := memberRMQ
		if id == strataID {
			member = memberStrata
		}
		for _, q := range averageShare(queues, len(ids), i) {
			g.owner[q] = member
		}
	}
	t.Logf("members %q (strata is %s): rocketmq gets queues %v, strata %v", ids, strataID, g.share(memberRMQ), g.share(memberStrata))
	// The push consumer rebalances when notified and every 20 s.
	waitFor(t, 25*time.Second, "the push consumer to hold its share", func() bool {
		return slices.Equal(slices.Sorted(slices.Values(g.push.held(g.topic))), g.share(memberRMQ))
	}, func() string { return fmt.Sprintf("holds %v, want %v", g.push.held(g.topic), g.share(memberRMQ)) })
	g.warmUp(t, 2)
	return g
}

// warmUp sends rounds of one message per queue until clean consecutive
// rounds were each consumed exactly once, every message by its queue's
// owner.
func (g *mixedGroup) warmUp(t *testing.T, clean int) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for round, ok := 0, 0; ok < clean; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("the group's split did not settle within 40 s (%d rounds)", round)
		}
		bodies := groupBodies(fmt.Sprintf("warm%d", round), g.queues)
		res := sendStrata(t, g.p, g.topic, bodies, 1) // round-robin: one per queue
		waitFor(t, 15*time.Second, fmt.Sprintf("warm-up round %d consumed", round), func() bool {
			g.run.alive(t)
			return g.col.hasAll(bodies)
		}, func() string { return fmt.Sprint("missing ", g.col.missing(bodies)) })
		queueOf := map[string]int{}
		for i, r := range res {
			queueOf[bodies[i]] = r.QueueID
		}
		var problems []string
		counts := map[string]int{}
		for _, m := range g.col.all() {
			q, mine := queueOf[m.body]
			if !mine {
				continue
			}
			if counts[m.body]++; counts[m.body] > 1 {
				problems = append(problems, m.body+" twice")
			}
			if m.consumer != g.owner[q] {
				problems = append(problems, fmt.Sprintf("%s (queue %d) to %s", m.body, q, m.consumer))
			}
		}
		if len(problems) == 0 {
			ok++
		} else {
			ok = 0
			t.Logf("warm-up round %d: the split is not stable yet: %s", round, strings.Join(problems, ", "))
		}
	}
}

// averageShare returns the indexes, among n sorted queues, that
// AllocateByAveragely gives the member at index of m sorted members: a
// contiguous block, one larger for the first n%m members.
func averageShare(n, m, index int) []int {
	if index < 0 || index >= m || n == 0 {
		return nil
	}
	size, start := n/m, index*(n/m)+min(index, n%m)
	if index < n%m {
		size++
	}
	if n <= m {
		size, start = 1, index
	}
	var out []int
	for i := range size {
		if start+i < n {
			out = append(out, start+i)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Strata clients.

// runningConsumer is a Strata Consumer in Run, on a goroutine of its own.
type runningConsumer struct {
	cs     *client.Consumer
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, once done is closed
	once   sync.Once
}

// startRun runs cs with h until stop (or the end of the test).
func startRun(t testing.TB, cs *client.Consumer, h client.Handler) *runningConsumer {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningConsumer{cs: cs, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = cs.Run(ctx, h)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// alive fails the test if Run has returned although it was not stopped.
func (r *runningConsumer) alive(t testing.TB) {
	t.Helper()
	select {
	case <-r.done:
		t.Fatalf("Run returned early: %v", r.err)
	default:
	}
}

// stop ends Run, waits for it to return (after its final commit) and
// closes the Consumer.
func (r *runningConsumer) stop(t testing.TB) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		timer := time.NewTimer(20 * time.Second)
		defer timer.Stop()
		select {
		case <-r.done:
			if r.err != nil {
				t.Errorf("Run: %v", r.err)
			}
		case <-timer.C:
			t.Errorf("Run did not return within 20 s of its context's end")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.cs.Close(ctx); err != nil {
			t.Errorf("close the Strata consumer: %v", err)
		}
	})
}

// newStrataProducer returns a Strata producer, closed when the test ends.
func newStrataProducer(t testing.TB, s *strata) *client.Producer {
	t.Helper()
	p, err := client.NewProducer(client.NameServers(s.namesrv), client.ProducerGroup(uniq("pg")))
	if err != nil {
		t.Fatalf("strata producer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("close strata producer: %v", err)
		}
	})
	return p
}

// sendStrata sends one message per body, batch at a time (a batch goes to
// one queue; the producer takes the queues in turn), and returns each
// body's result.
func sendStrata(t testing.TB, p *client.Producer, topic string, bodies []string, batch int) []client.SendResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := make([]client.SendResult, 0, len(bodies))
	if err := sendStrataCtx(ctx, p, topic, bodies, batch, &out, nil); err != nil {
		t.Fatal(err)
	}
	return out
}

// sendStrataCtx is sendStrata for any goroutine: it returns the first
// failure, appends the results to out unless out is nil, and counts the
// messages sent in sent unless sent is nil.
func sendStrataCtx(ctx context.Context, p *client.Producer, topic string, bodies []string, batch int,
	out *[]client.SendResult, sent *atomic.Int64) error {
	for lo := 0; lo < len(bodies); lo += batch {
		hi := min(lo+batch, len(bodies))
		msgs := make([]client.Message, 0, hi-lo)
		for _, b := range bodies[lo:hi] {
			msgs = append(msgs, client.Message{Topic: topic, Body: []byte(b)})
		}
		rs, err := p.Send(ctx, msgs...)
		if err != nil {
			return fmt.Errorf("send %s..%s: %w", bodies[lo], bodies[hi-1], err)
		}
		for i, r := range rs {
			if r.Status != client.SendOK {
				return fmt.Errorf("send %s: status %v", bodies[lo+i], r.Status)
			}
		}
		if out != nil {
			*out = append(*out, rs...)
		}
		if sent != nil {
			sent.Add(int64(len(rs)))
		}
	}
	return nil
}

// groupBodies returns n distinct bodies "<prefix>-<i>".
func groupBodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + "-" + strconv.Itoa(i)
	}
	return out
}

// addClient records messages a Strata consumer received, as add does
// rocketmq-client-go's.
func (c *collector) addClient(name string, msgs []client.MessageExt) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		c.msgs = append(c.msgs, got{
			consumer: name, topic: m.Topic, queue: m.QueueID, offset: m.QueueOffset,
			msgID: m.MsgID, offsetID: m.OffsetMsgID, body: string(m.Body), tags: m.Tag,
			keys: strings.Join(m.Keys, " "), props: m.Properties, reconsume: int32(m.ReconsumeTimes),
			stored: m.StoreTime, at: now,
		})
	}
}

// groupLogger returns a debug logger for a Strata client that keeps its
// output in memory and prints the end of it if the test fails.
func groupLogger(t testing.TB) *slog.Logger {
	l := &testlog.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			lines := strings.Split(strings.TrimRight(l.String(), "\n"), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("strata client log (tail):\n%s", strings.Join(lines, "\n"))
		}
	})
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// ---------------------------------------------------------------------------
// Group state on the broker.

// groupIDs returns the client ids of group's members as the broker lists
// them (GET_CONSUMER_LIST_BY_GROUP), sorted.
func (s *strata) groupIDs(group string) ([]string, error) {
	resp, err := invoke(s.broker, remoting.ReqGetConsumerListByGroup, map[string]string{"consumerGroup": group}, nil)
	if err != nil {
		return nil, err
	}
	if resp.Code != remoting.RespSuccess {
		return nil, fmt.Errorf("GET_CONSUMER_LIST_BY_GROUP %s: code %d %s", group, resp.Code, resp.Remark)
	}
	var body struct {
		ConsumerIDList []string `json:"consumerIdList"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return nil, fmt.Errorf("GET_CONSUMER_LIST_BY_GROUP %s: body %q: %w", group, resp.Body, err)
	}
	slices.Sort(body.ConsumerIDList)
	return body.ConsumerIDList, nil
}

// committedOffset returns group's committed offset of topic/queue
// (QUERY_CONSUMER_OFFSET); -1 when the broker has none.
func (s *strata) committedOffset(group, topic string, queue int) (int64, error) {
	resp, err := invoke(s.broker, remoting.ReqQueryConsumerOffset, map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(queue)}, nil)
	if err != nil {
		return 0, err
	}
	switch resp.Code {
	case remoting.RespSuccess:
		return resp.ExtInt64("offset")
	case remoting.RespQueryNotFound:
		return -1, nil
	}
	return 0, fmt.Errorf("QUERY_CONSUMER_OFFSET %s %s/%d: code %d %s", group, topic, queue, resp.Code, resp.Remark)
}
