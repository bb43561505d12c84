package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// TestClusteringShareAndRebalance: two push consumers of one group split
// the topic's queues, every message is consumed exactly once across them;
// when one shuts down the other takes all queues and gets every later
// message.
func TestClusteringShareAndRebalance(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic, group := uniq("cluster"), uniq("g")
	s.createTopic(t, topic, 4, false)
	var col collector
	c1 := s.newPushConsumer(t, group)
	c1.subscribeAndStart(t, topic, "*", col.handler("c1"))
	c2 := s.newPushConsumer(t, group)
	c2.subscribeAndStart(t, topic, "*", col.handler("c2"))

	split := func() bool {
		a, b := c1.held(topic), c2.held(topic)
		if len(a) != 2 || len(b) != 2 {
			return false
		}
		all := append(a, b...)
		slices.Sort(all)
		return slices.Equal(all, []int{0, 1, 2, 3})
	}
	waitFor(t, 15*time.Second, "the two consumers to split the 4 queues", split,
		func() string { return fmt.Sprintf("c1 holds %v, c2 holds %v", c1.held(topic), c2.held(topic)) })

	p := s.newProducer(t)
	msgs, first := textMessages(topic, "one", 40)
	sendSync(t, p, msgs...)
	waitFor(t, 15*time.Second, "the first 40 messages consumed", func() bool { return col.hasAll(first) },
		func() string { return fmt.Sprint("missing ", col.missing(first)) })
	perConsumer := map[string]int{}
	for body, n := range col.bodies() {
		if n != 1 {
			t.Errorf("%s consumed %d times, want exactly once across the group", body, n)
		}
	}
	for _, g := range col.all() {
		perConsumer[g.consumer]++
	}
	if perConsumer["c1"] == 0 || perConsumer["c2"] == 0 {
		t.Errorf("messages per consumer %v: both should have consumed some", perConsumer)
	}

	// c2 leaves (having committed what it consumed): the broker notifies
	// c1, which takes every queue.
	s.waitCommitted(t, c2, topic)
	c2.shutdown()
	waitFor(t, 15*time.Second, "c1 to hold all 4 queues after c2 left",
		func() bool { return len(c1.held(topic)) == 4 },
		func() string { return fmt.Sprintf("c1 holds %v", c1.held(topic)) })
	before := col.len()
	msgs, second := textMessages(topic, "two", 40)
	sendSync(t, p, msgs...)
	waitFor(t, 15*time.Second, "the second 40 messages consumed", func() bool { return col.hasAll(second) },
		func() string { return fmt.Sprint("missing ", col.missing(second)) })
	counts := col.bodies()
	for _, b := range second {
		if counts[b] != 1 {
			t.Errorf("%s consumed %d times, want once", b, counts[b])
		}
	}
	for _, g := range col.all()[before:] {
		if g.consumer != "c1" {
			t.Errorf("%s consumed by %s after it shut down", g.body, g.consumer)
		}
		if strings.HasPrefix(g.body, "one-") {
			t.Errorf("%s (committed before the rebalance) consumed again after it", g.body)
		}
	}
}

// TestBroadcasting: each consumer of a BROADCASTING group gets every
// message.
func TestBroadcasting(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic, group := uniq("bcast"), uniq("g")
	s.createTopic(t, topic, 4, false)
	// Broadcasting consumers keep their offsets in
	// $HOME/.rocketmq_client_go/<group>/<client>; remove ours.
	if home, err := os.UserHomeDir(); err == nil {
		t.Cleanup(func() { os.RemoveAll(filepath.Join(home, ".rocketmq_client_go", group)) })
	}
	var col collector
	var cs []*pushConsumer
	for i := range 2 {
		c := s.newPushConsumer(t, group, consumer.WithConsumerModel(consumer.BroadCasting),
			consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
		c.subscribeAndStart(t, topic, "*", col.handler(fmt.Sprintf("c%d", i)))
		cs = append(cs, c)
	}
	waitFor(t, 15*time.Second, "both broadcasting consumers to hold all 4 queues", func() bool {
		return len(cs[0].held(topic)) == 4 && len(cs[1].held(topic)) == 4
	})
	p := s.newProducer(t)
	msgs, bodies := textMessages(topic, "b", 20)
	sendSync(t, p, msgs...)
	each := func(name string) map[string]int {
		out := map[string]int{}
		for _, g := range col.all() {
			if g.consumer == name {
				out[g.body]++
			}
		}
		return out
	}
	waitFor(t, 15*time.Second, "every message at both consumers", func() bool {
		a, b := each("c0"), each("c1")
		for _, w := range bodies {
			if a[w] == 0 || b[w] == 0 {
				return false
			}
		}
		return true
	}, func() string {
		return fmt.Sprintf("c0 has %d, c1 has %d of %d", len(each("c0")), len(each("c1")), len(bodies))
	})
	for name, m := range map[string]map[string]int{"c0": each("c0"), "c1": each("c1")} {
		for b, n := range m {
			if n != 1 {
				t.Errorf("%s got %s %d times", name, b, n)
			}
		}
	}
}

// TestTagFilter: a subscription "A || B" receives exactly the messages
// tagged A or B.
func TestTagFilter(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic := uniq("tags")
	s.createTopic(t, topic, 2, false)
	p := s.newProducer(t)
	var want []string
	var msgs []*primitive.Message
	for i := range 40 {
		tag := []string{"A", "B", "C", "D", ""}[i%5]
		b := fmt.Sprintf("tag%s-%d", tag, i)
		m := primitive.NewMessage(topic, []byte(b))
		if tag != "" {
			m.WithTag(tag)
		}
		if tag == "A" || tag == "B" {
			want = append(want, b)
		}
		msgs = append(msgs, m)
	}
	sendSync(t, p, msgs...)
	var col collector
	c := s.newPushConsumer(t, uniq("g"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "A || B", col.handler("c"))
	waitFor(t, 15*time.Second, "all A and B messages", func() bool { return col.hasAll(want) },
		func() string { return fmt.Sprint("missing ", col.missing(want)) })
	// A and B messages were interleaved with the others in every queue, so
	// by now a C, D or untagged message would have been delivered too.
	for _, g := range col.all() {
		if g.tags != "A" && g.tags != "B" {
			t.Errorf("received %s with tag %q through subscription \"A || B\"", g.body, g.tags)
		}
	}
	if n := col.len(); n != len(want) {
		t.Errorf("received %d messages, want %d", n, len(want))
	}
}

// TestConsumerResume: a consumer restarted with the same group resumes from
// its committed offset: no gap, and nothing it committed comes back.
func TestConsumerResume(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic, group := uniq("resume"), uniq("g")
	s.createTopic(t, topic, 4, false)
	p := s.newProducer(t)
	msgs, first := textMessages(topic, "first", 30)
	sendSync(t, p, msgs...)

	var col collector
	c1 := s.newPushConsumer(t, group, consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c1.subscribeAndStart(t, topic, "*", col.handler("c1"))
	waitFor(t, 15*time.Second, "the first 30 messages", func() bool { return col.hasAll(first) },
		func() string { return fmt.Sprint("missing ", col.missing(first)) })
	s.waitCommitted(t, c1, topic)
	c1.shutdown() // persists its offsets to the broker
	// rocketmq-client-go sends those commits one-way and closes its
	// connections at once: nothing orders them before the next client's
	// queries, so a restart is "after" them once the broker holds them.
	waitFor(t, 15*time.Second, "the broker to hold the offsets c1 committed on shutdown", func() bool {
		for q := range 4 {
			off, err := s.committedOffset(group, topic, q)
			if err != nil || off < s.maxOffset(t, topic, q) {
				return false
			}
		}
		return true
	}, func() string {
		var got []int64
		for q := range 4 {
			off, _ := s.committedOffset(group, topic, q)
			got = append(got, off)
		}
		return fmt.Sprint("committed offsets ", got)
	})

	msgs, second := textMessages(topic, "second", 30)
	sendSync(t, p, msgs...)
	c2 := s.newPushConsumer(t, group, consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c2.subscribeAndStart(t, topic, "*", col.handler("c2"))
	waitFor(t, 15*time.Second, "the second 30 messages after the restart", func() bool { return col.hasAll(second) },
		func() string { return fmt.Sprint("missing ", col.missing(second)) })
	redelivered := 0
	for _, g := range col.all() {
		if g.consumer == "c2" && strings.HasPrefix(g.body, "first-") {
			redelivered++
		}
	}
	// c1 committed everything it consumed when it shut down, so at-least-once
	// allows no redelivery here.
	if redelivered > 0 {
		t.Errorf("%d messages consumed and committed before the restart were delivered again", redelivered)
	}
}

// TestRetryAndDLQ: ConsumeRetryLater sends the message back; it comes back
// through %RETRY%<group> after its delay level, MaxReconsumeTimes times,
// and then lands in %DLQ%<group>.
func TestRetryAndDLQ(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic, group := uniq("retry"), uniq("g")
	s.createTopic(t, topic, 2, false)
	// The consumer learns its retry topic's route when it starts (then only
	// every 30 s): make it exist first.
	s.createTopic(t, "%RETRY%"+group, 1, false)
	const maxReconsume = 2
	var mu sync.Mutex
	var attempts []got
	c := s.newPushConsumer(t, group, consumer.WithMaxReconsumeTimes(maxReconsume))
	c.subscribeAndStart(t, topic, "*", func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		var col collector
		col.add("c", msgs...)
		mu.Lock()
		attempts = append(attempts, col.all()...)
		mu.Unlock()
		if cc, ok := primitive.GetConcurrentlyCtx(ctx); ok {
			cc.DelayLevelWhenNextConsume = 1 // 1 s instead of 10 s, 30 s, ...
		}
		return consumer.ConsumeRetryLater, nil
	})
	waitFor(t, 15*time.Second, "the consumer to hold its queues", func() bool { return len(c.held(topic)) == 2 })
	p := s.newProducer(t)
	r := sendSync(t, p, primitive.NewMessage(topic, []byte("poison")).WithTag("bad").WithKeys([]string{"poison-key"}))[0]

	snapshot := func() []got {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(attempts)
	}
	waitFor(t, 20*time.Second, fmt.Sprintf("%d deliveries (1 + %d retries)", 1+maxReconsume, maxReconsume),
		func() bool { return len(snapshot()) >= 1+maxReconsume },
		func() string { return fmt.Sprintf("%d deliveries", len(snapshot())) })

	// The DLQ is read by a consumer of another group.
	dlq := "%DLQ%" + group
	s.waitRoute(t, dlq, 1)
	var dead collector
	d := s.newPushConsumer(t, uniq("dlqreader"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	d.subscribeAndStart(t, dlq, "*", dead.handler("dlq"))
	waitFor(t, 15*time.Second, "the message in "+dlq, func() bool { return dead.len() > 0 })

	got := snapshot()
	if len(got) != 1+maxReconsume {
		t.Errorf("%d deliveries, want %d", len(got), 1+maxReconsume)
	}
	for i, g := range got {
		if g.body != "poison" || g.topic != topic || g.tags != "bad" {
			t.Errorf("delivery %d: body %q topic %q tag %q", i, g.body, g.topic, g.tags)
		}
		if g.reconsume != int32(i) {
			t.Errorf("delivery %d: ReconsumeTimes %d, want %d", i, g.reconsume, i)
		}
		if g.msgID != r.MsgID {
			t.Errorf("delivery %d: MsgId %s, want the original %s", i, g.msgID, r.MsgID)
		}
		if i > 0 {
			if g.props["RETRY_TOPIC"] != topic {
				t.Errorf("retry %d: RETRY_TOPIC %q, want %q (redelivered through %%RETRY%%%s)", i, g.props["RETRY_TOPIC"], topic, group)
			}
			if gap := g.at.Sub(got[i-1].at); gap < 900*time.Millisecond {
				t.Errorf("retry %d came %v after the previous delivery, want >= ~1s (delay level 1)", i, gap)
			}
		}
	}
	// The retries were stored in the group's retry topic.
	if n := s.maxOffset(t, "%RETRY%"+group, 0); n != maxReconsume {
		t.Errorf("%%RETRY%%%s holds %d messages, want %d", group, n, maxReconsume)
	}
	dm := dead.all()
	if len(dm) != 1 {
		t.Errorf("%d messages in the DLQ, want 1", len(dm))
	}
	if dm[0].body != "poison" || dm[0].keys != "poison-key" || dm[0].msgID != r.MsgID {
		t.Errorf("DLQ message: body %q keys %q msgId %s, want poison/poison-key/%s", dm[0].body, dm[0].keys, dm[0].msgID, r.MsgID)
	}
	if dm[0].props["RETRY_TOPIC"] != topic {
		t.Errorf("DLQ message RETRY_TOPIC = %q, want %q", dm[0].props["RETRY_TOPIC"], topic)
	}
}

// TestDelayLevel: a message sent with delay level 1 is delivered no sooner
// than ~1 s after it was sent.
func TestDelayLevel(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic := uniq("delay")
	s.createTopic(t, topic, 2, false)
	var col collector
	c := s.newPushConsumer(t, uniq("g"))
	c.subscribeAndStart(t, topic, "*", col.handler("c"))
	waitFor(t, 15*time.Second, "the consumer to hold its queues", func() bool { return len(c.held(topic)) == 2 })
	p := s.newProducer(t)
	sent := time.Now()
	sendSync(t, p, primitive.NewMessage(topic, []byte("later")).WithDelayTimeLevel(1))
	sendSync(t, p, primitive.NewMessage(topic, []byte("now")))
	waitFor(t, 15*time.Second, "the delayed message", func() bool { return col.hasAll([]string{"later", "now"}) })
	at := map[string]got{}
	for _, g := range col.all() {
		at[g.body] = g
	}
	later, now := at["later"], at["now"]
	if d := later.at.Sub(sent); d < 900*time.Millisecond || d > 8*time.Second {
		t.Errorf("delay level 1 delivered after %v, want ~1s", d)
	}
	if later.topic != topic {
		t.Errorf("delayed message consumed from %q, want %q", later.topic, topic)
	}
	if !now.at.Before(later.at) {
		t.Errorf("the undelayed message sent after the delayed one came %v later", now.at.Sub(later.at))
	}
}

// TestOrderly: a producer with a hash queue selector and an orderly
// consumer (LOCK_BATCH_MQ) keep the order of each sharding key.
func TestOrderly(t *testing.T) {
	if raceDetector {
		t.Skip("rocketmq-client-go's orderly consumer races on its process queue (processQueue.takeMessages vs putMessage); run without -race")
	}
	t.Parallel()
	s := sharedStrata(t)
	topic := uniq("orderly")
	s.createTopic(t, topic, 4, true)
	const keys, perKey = 8, 25
	var mu sync.Mutex
	seq := map[string][]int{}
	c := s.newPushConsumer(t, uniq("g"), consumer.WithConsumerOrder(true),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "*", func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		for _, m := range msgs {
			k, n, _ := strings.Cut(string(m.Body), ":")
			i, _ := strconv.Atoi(n)
			mu.Lock()
			seq[k] = append(seq[k], i)
			mu.Unlock()
		}
		return consumer.ConsumeSuccess, nil
	})
	p := s.newProducer(t, producer.WithQueueSelector(producer.NewHashQueueSelector()))
	queueOf := map[string]int{}
	for i := range perKey {
		for k := range keys {
			key := fmt.Sprintf("k%d", k)
			m := primitive.NewMessage(topic, []byte(fmt.Sprintf("%s:%d", key, i))).WithShardingKey(key)
			r := sendSync(t, p, m)[0]
			if q, ok := queueOf[key]; ok && q != r.MessageQueue.QueueId {
				t.Fatalf("key %s went to queues %d and %d", key, q, r.MessageQueue.QueueId)
			}
			queueOf[key] = r.MessageQueue.QueueId
		}
	}
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for k := range keys {
			if len(seq[fmt.Sprintf("k%d", k)]) < perKey {
				return false
			}
		}
		return true
	}
	waitFor(t, 20*time.Second, "every key's messages", done, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprint(seq)
	})
	// The consumer only consumed queues it had locked.
	if n, err := s.metric("strata_request_duration_seconds_count", `request="LOCK_BATCH_MQ"`); err != nil || n < 1 {
		t.Errorf("the broker answered %v LOCK_BATCH_MQ requests (%v), want >= 1", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, got := range seq {
		for i, n := range got {
			if n != i {
				t.Errorf("key %s consumed in order %v, want 0..%d", k, got, perKey-1)
				break
			}
		}
	}
}

// TestConsumeFromTimestamp: a new group with CONSUME_FROM_TIMESTAMP starts
// at the first message stored at or after the timestamp; the pull
// consumer's OffsetForTimestamp (SEARCH_OFFSET_BY_TIMESTAMP) agrees.
func TestConsumeFromTimestamp(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic := uniq("ts")
	s.createTopic(t, topic, 2, false)
	p := s.newProducer(t)
	msgs, old := textMessages(topic, "old", 10)
	oldRes := sendSync(t, p, msgs...)
	// CONSUME_FROM_TIMESTAMP has one-second precision: start at the next
	// whole second after the old messages.
	since := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(since) + 10*time.Millisecond) // wall-clock boundary, not synchronization
	msgs, fresh := textMessages(topic, "new", 10)
	newRes := sendSync(t, p, msgs...)

	var col collector
	c := s.newPushConsumer(t, uniq("g"), consumer.WithConsumeFromWhere(consumer.ConsumeFromTimestamp),
		consumer.WithConsumeTimestamp(since.UTC().Format("20060102150405")))
	c.subscribeAndStart(t, topic, "*", col.handler("c"))
	waitFor(t, 15*time.Second, "the messages stored after the timestamp", func() bool { return col.hasAll(fresh) },
		func() string { return fmt.Sprint("missing ", col.missing(fresh)) })
	oldSeen := 0
	for _, g := range col.all() {
		if strings.HasPrefix(g.body, "old-") {
			oldSeen++
		}
	}
	if oldSeen > 0 {
		t.Errorf("a new CONSUME_FROM_TIMESTAMP group got %d of the %d messages stored before its timestamp", oldSeen, len(old))
	}

	// SEARCH_OFFSET_BY_TIMESTAMP through the real client: per queue, the
	// offset of the first new message.
	firstNew := map[int]int64{}
	for _, r := range newRes {
		q := r.MessageQueue.QueueId
		if o, ok := firstNew[q]; !ok || r.QueueOffset < o {
			firstNew[q] = r.QueueOffset
		}
	}
	endOld := map[int]int64{}
	for _, r := range oldRes {
		endOld[r.MessageQueue.QueueId] = max(endOld[r.MessageQueue.QueueId], r.QueueOffset+1)
	}
	pc, err := consumer.NewPullConsumer(consumer.WithNsResolver(s.resolver()), consumer.WithGroupName(uniq("pull")),
		consumer.WithInstance(uniq("pc")))
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(topic, consumer.MessageSelector{}); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if raceDetector {
			settle(func() bool { return len(pc.GetConsumerRunningInfo(false).MQTable) > 0 })
		}
		pc.Shutdown()
	}()
	for q := range 2 {
		mq := &primitive.MessageQueue{Topic: topic, BrokerName: "broker-a", QueueId: q}
		off, err := pc.OffsetForTimestamp(mq, since.UnixMilli())
		if err != nil {
			t.Fatalf("OffsetForTimestamp %d: %v", q, err)
		}
		want, ok := firstNew[q]
		if !ok {
			want = endOld[q]
		}
		if off != want {
			t.Errorf("queue %d: offset for %v is %d, want %d", q, since, off, want)
		}
	}
}

// TestConsumeFromFirstOffset: a new group with CONSUME_FROM_FIRST_OFFSET gets
// what was sent before it existed.
func TestConsumeFromFirstOffset(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic := uniq("first")
	s.createTopic(t, topic, 4, false)
	p := s.newProducer(t)
	msgs, bodies := textMessages(topic, "early", 20)
	sendSync(t, p, msgs...)
	var col collector
	c := s.newPushConsumer(t, uniq("g"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "*", col.handler("c"))
	waitFor(t, 15*time.Second, "the messages sent before the group existed", func() bool { return col.hasAll(bodies) },
		func() string { return fmt.Sprint("missing ", col.missing(bodies)) })
	for b, n := range col.bodies() {
		if n != 1 {
			t.Errorf("%s consumed %d times", b, n)
		}
	}
}

// TestLongPolling: an idle consumer (its pulls held by the broker) gets a
// new message within a second of the send.
func TestLongPolling(t *testing.T) {
	t.Parallel()
	s := startStrata(t) // its own, so that the held-pull gauge is this consumer's
	topic := uniq("lp")
	s.createTopic(t, topic, 1, false)
	var col collector
	c := s.newPushConsumer(t, uniq("g"))
	c.subscribeAndStart(t, topic, "*", col.handler("c"))
	waitFor(t, 15*time.Second, "the consumer to hold the queue", func() bool { return len(c.held(topic)) == 1 })
	p := s.newProducer(t)
	for i := range 3 {
		// Let the consumer go idle: its pull is held by the broker.
		waitFor(t, 10*time.Second, "a held pull", func() bool {
			n, err := s.metric("strata_pulls_held")
			return err == nil && n >= 1
		})
		body := fmt.Sprintf("lp-%d", i)
		sent := time.Now()
		sendSync(t, p, primitive.NewMessage(topic, []byte(body)))
		waitFor(t, 5*time.Second, body, func() bool { return col.hasAll([]string{body}) })
		for _, g := range col.all() {
			if g.body == body {
				if d := g.at.Sub(sent); d > time.Second {
					t.Errorf("%s delivered %v after the send, want < 1s", body, d)
				}
			}
		}
	}
}

// TestOrderlyDLQ: an orderly consumer that keeps suspending a message
// retries it in place, then (past MaxReconsumeTimes) sends it straight to
// %DLQ%<group> (CONSUMER_SEND_MSG_BACK with delay level -1), and the
// messages behind it in the queue follow in order.
func TestOrderlyDLQ(t *testing.T) {
	if raceDetector {
		t.Skip("rocketmq-client-go's orderly consumer races on its process queue; run without -race")
	}
	t.Parallel()
	s := sharedStrata(t)
	topic, group := uniq("orderdlq"), uniq("g")
	s.createTopic(t, topic, 1, true)
	var mu sync.Mutex
	var seen []string
	c := s.newPushConsumer(t, group, consumer.WithConsumerOrder(true), consumer.WithMaxReconsumeTimes(2),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "*", func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			seen = append(seen, string(m.Body))
			if string(m.Body) == "poison" {
				return consumer.SuspendCurrentQueueAMoment, nil
			}
		}
		return consumer.ConsumeSuccess, nil
	})
	p := s.newProducer(t)
	for _, b := range []string{"a", "poison", "b", "c"} {
		sendSync(t, p, primitive.NewMessage(topic, []byte(b)))
	}
	snapshot := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
	waitFor(t, 30*time.Second, "the messages behind the poison one", func() bool { return slices.Contains(snapshot(), "c") },
		func() string { return fmt.Sprint(snapshot()) })
	dlq := "%DLQ%" + group
	s.waitRoute(t, dlq, 1)
	var dead collector
	d := s.newPushConsumer(t, uniq("dlqreader"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	d.subscribeAndStart(t, dlq, "*", dead.handler("dlq"))
	waitFor(t, 15*time.Second, "the poison message in "+dlq, func() bool { return dead.hasAll([]string{"poison"}) })
	// Deliveries with ReconsumeTimes 0..3: the client gives up once it
	// exceeds 2.
	want := []string{"a", "poison", "poison", "poison", "poison", "b", "c"}
	if got := snapshot(); !slices.Equal(got, want) {
		t.Errorf("consumed %v, want %v", got, want)
	}
}
