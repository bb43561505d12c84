package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/strata-mq/strata/remoting"
)

var hex32 = regexp.MustCompile(`^[0-9A-F]{32}$`)

// TestSendSync: SendOK, the queue and queue offset echoed back (dense per
// queue, starting at 0 on an auto-created topic), a 32-hex-digit offset
// message id, and a consumer that sees each message where the send result
// said it was.
func TestSendSync(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic := uniq("sync")
	p := s.newProducer(t)
	msgs, bodies := textMessages(topic, "sync", 12)
	for i, m := range msgs {
		m.WithTag("T").WithKeys([]string{"key-" + strconv.Itoa(i)}).WithProperty("seq", strconv.Itoa(i))
	}
	results := sendSync(t, p, msgs...)
	next := map[int]int64{}
	type where struct {
		queue  int
		offset int64
	}
	sentAt := map[string]where{}
	for i, r := range results {
		if r.MessageQueue == nil || r.MessageQueue.Topic != topic {
			t.Fatalf("send %d: message queue %v, want topic %s", i, r.MessageQueue, topic)
		}
		q := r.MessageQueue.QueueId
		if r.QueueOffset != next[q] {
			t.Errorf("send %d: queue %d offset %d, want %d (dense per queue)", i, q, r.QueueOffset, next[q])
		}
		next[q] = r.QueueOffset + 1
		if !hex32.MatchString(r.OffsetMsgID) {
			t.Errorf("send %d: OffsetMsgID %q is not 32 upper-case hex digits", i, r.OffsetMsgID)
		}
		if r.MsgID == "" {
			t.Errorf("send %d: empty MsgID", i)
		}
		sentAt[bodies[i]] = where{q, r.QueueOffset}
	}
	if len(next) < 2 {
		t.Errorf("12 sends used %d queue(s); the producer should spread them over the auto-created topic's queues", len(next))
	}

	var col collector
	c := s.newPushConsumer(t, uniq("g"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "*", col.handler("c"))
	waitFor(t, 15*time.Second, "all messages consumed", func() bool { return col.hasAll(bodies) },
		func() string { return fmt.Sprint("missing ", col.missing(bodies)) })
	byBody := map[string]got{}
	for _, g := range col.all() {
		byBody[g.body] = g
	}
	for i, b := range bodies {
		g, w := byBody[b], sentAt[b]
		if g.queue != w.queue || g.offset != w.offset {
			t.Errorf("%s: consumed at %d/%d, sent to %d/%d", b, g.queue, g.offset, w.queue, w.offset)
		}
		if g.offsetID != results[i].OffsetMsgID {
			t.Errorf("%s: consumed OffsetMsgId %s, send result said %s", b, g.offsetID, results[i].OffsetMsgID)
		}
		if g.msgID != results[i].MsgID {
			t.Errorf("%s: consumed MsgId %s, send result said %s", b, g.msgID, results[i].MsgID)
		}
		if g.tags != "T" || g.keys != "key-"+strconv.Itoa(i) || g.props["seq"] != strconv.Itoa(i) {
			t.Errorf("%s: tags %q keys %q seq %q", b, g.tags, g.keys, g.props["seq"])
		}
	}
}

// TestSendAsync: 50 SendAsync calls in flight at once, all acknowledged
// with distinct queue offsets (responses matched by opaque), all consumed.
func TestSendAsync(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic := uniq("async")
	s.createTopic(t, topic, 4, false)
	p := s.newProducer(t)
	// One send first, so that the 50 below do not all look the route up
	// at once (the client serializes those lookups; under -race they can
	// time out).
	sendSync(t, p, primitive.NewMessage(topic, []byte("warm-up")))
	msgs, bodies := textMessages(topic, "async", 50)
	type res struct {
		r   *primitive.SendResult
		err error
	}
	results := make([]res, len(msgs))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, m := range msgs {
		wg.Add(1)
		go func() {
			<-start
			err := p.SendAsync(context.Background(), func(_ context.Context, r *primitive.SendResult, err error) {
				results[i] = res{r, err}
				wg.Done()
			}, m)
			if err != nil {
				results[i] = res{nil, err}
				wg.Done()
			}
		}()
	}
	close(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("not every SendAsync callback ran within 20s")
	}
	type qo struct {
		q int
		o int64
	}
	seen := map[qo]int{}
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("SendAsync %d: %v", i, r.err)
		}
		if r.r.Status != primitive.SendOK || !hex32.MatchString(r.r.OffsetMsgID) {
			t.Fatalf("SendAsync %d: %s", i, r.r)
		}
		k := qo{r.r.MessageQueue.QueueId, r.r.QueueOffset}
		if j, dup := seen[k]; dup {
			t.Errorf("SendAsync %d and %d both at queue %d offset %d", j, i, k.q, k.o)
		}
		seen[k] = i
	}
	var col collector
	c := s.newPushConsumer(t, uniq("g"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "*", col.handler("c"))
	waitFor(t, 15*time.Second, "all async messages consumed", func() bool { return col.hasAll(bodies) },
		func() string { return fmt.Sprint("missing ", col.missing(bodies)) })
}

// TestSendOneWay: oneway sends get no answer, yet every one is stored.
func TestSendOneWay(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic := uniq("oneway")
	s.createTopic(t, topic, 2, false)
	p := s.newProducer(t)
	msgs, bodies := textMessages(topic, "oneway", 20)
	for _, m := range msgs {
		if err := p.SendOneWay(context.Background(), m); err != nil {
			t.Fatalf("SendOneWay: %v", err)
		}
	}
	var col collector
	c := s.newPushConsumer(t, uniq("g"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "*", col.handler("c"))
	waitFor(t, 15*time.Second, "all oneway messages consumed", func() bool { return col.hasAll(bodies) },
		func() string { return fmt.Sprint("missing ", col.missing(bodies)) })
}

// TestBatchSend: one SendSync of 3 messages (SEND_BATCH_MESSAGE) comes out
// as 3 messages with their own properties, tags and keys, at consecutive
// offsets.
func TestBatchSend(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic := uniq("batch")
	s.createTopic(t, topic, 2, false)
	p := s.newProducer(t)
	var msgs []*primitive.Message
	var bodies []string
	for i := range 3 {
		b := fmt.Sprintf("batch-%d", i)
		m := primitive.NewMessage(topic, []byte(b)).WithTag(fmt.Sprintf("tag%d", i)).WithKeys([]string{fmt.Sprintf("k%d", i)})
		m.WithProperty("color", []string{"red", "green", "blue"}[i])
		msgs = append(msgs, m)
		bodies = append(bodies, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := p.SendSync(ctx, msgs...)
	if err != nil {
		t.Fatalf("batch SendSync: %v", err)
	}
	if r.Status != primitive.SendOK {
		t.Fatalf("batch SendSync: %s", r)
	}
	var col collector
	c := s.newPushConsumer(t, uniq("g"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "*", col.handler("c"))
	waitFor(t, 15*time.Second, "the 3 batch messages consumed", func() bool { return col.hasAll(bodies) },
		func() string { return fmt.Sprint("missing ", col.missing(bodies)) })
	gots := map[string]got{}
	ids := map[string]bool{}
	for _, g := range col.all() {
		gots[g.body] = g
		ids[g.msgID] = true
	}
	if len(col.all()) != 3 {
		t.Errorf("consumed %d messages, want 3", len(col.all()))
	}
	if len(ids) != 3 {
		t.Errorf("the 3 messages have %d distinct msg ids: %v", len(ids), ids)
	}
	for i, b := range bodies {
		g := gots[b]
		if g.queue != r.MessageQueue.QueueId || g.offset != r.QueueOffset+int64(i) {
			t.Errorf("%s at %d/%d, want %d/%d", b, g.queue, g.offset, r.MessageQueue.QueueId, r.QueueOffset+int64(i))
		}
		if g.tags != fmt.Sprintf("tag%d", i) || g.keys != fmt.Sprintf("k%d", i) || g.props["color"] != []string{"red", "green", "blue"}[i] {
			t.Errorf("%s: tags %q keys %q color %q", b, g.tags, g.keys, g.props["color"])
		}
	}
}

// TestLargeBody: a 64 KiB body is compressed by the client (sysFlag bit 0,
// stored compressed) and consumed as the original bytes.
func TestLargeBody(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic := uniq("large")
	s.createTopic(t, topic, 1, false)
	p := s.newProducer(t)
	// Compressible but not trivial: words from a small vocabulary.
	words := []string{"strata", "rocket", "queue", "offset", "segment", "tier", "broker", "commit"}
	var buf bytes.Buffer
	rng := rand.New(rand.NewPCG(1, 2))
	for buf.Len() < 64<<10 {
		buf.WriteString(words[rng.IntN(len(words))])
		buf.WriteByte(' ')
	}
	body := buf.Bytes()[:64<<10]
	r := sendSync(t, p, primitive.NewMessage(topic, body).WithTag("big"))[0]

	// The stored record holds the client's compressed body.
	resp, err := invoke(s.broker, remoting.ReqPullMessage, map[string]string{
		"consumerGroup": uniq("raw"), "topic": topic, "queueId": strconv.Itoa(r.MessageQueue.QueueId),
		"queueOffset": strconv.FormatInt(r.QueueOffset, 10), "maxMsgNums": "1", "sysFlag": "0",
		"commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*", "subVersion": "0",
	}, nil)
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("raw pull: %v %v", err, resp)
	}
	stored, err := remoting.DecodeMessageExt(resp.Body)
	if err != nil {
		t.Fatalf("decode the pulled record: %v", err)
	}
	if stored.SysFlag&1 == 0 || len(stored.Body) >= len(body) {
		t.Errorf("stored sysFlag %#x, body %d bytes: want the client's compressed body (flag bit 0, < %d bytes)", stored.SysFlag, len(stored.Body), len(body))
	}

	var col collector
	c := s.newPushConsumer(t, uniq("g"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "*", col.handler("c"))
	waitFor(t, 15*time.Second, "the large message consumed", func() bool { return col.len() > 0 })
	g := col.all()[0]
	if g.body != string(body) {
		t.Errorf("consumed body of %d bytes differs from the %d bytes sent", len(g.body), len(body))
	}
}

// TestQueryByKeyAndID: messages sent by the real client are found by key
// (QUERY_MESSAGE) and by offset message id (VIEW_MESSAGE_BY_ID). The Go
// client has no API for either, so the requests are sent as Java's admin
// tools send them.
func TestQueryByKeyAndID(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic := uniq("query")
	s.createTopic(t, topic, 2, false)
	p := s.newProducer(t)
	var msgs []*primitive.Message
	for i := range 6 {
		m := primitive.NewMessage(topic, []byte(fmt.Sprintf("q-%d", i))).WithKeys([]string{"order-" + strconv.Itoa(i%2), "all"})
		msgs = append(msgs, m)
	}
	results := sendSync(t, p, msgs...)

	for _, tc := range []struct {
		key  string
		want []string
	}{
		{"order-0", []string{"q-0", "q-2", "q-4"}},
		{"order-1", []string{"q-1", "q-3", "q-5"}},
		{"all", []string{"q-0", "q-1", "q-2", "q-3", "q-4", "q-5"}},
	} {
		resp, err := invoke(s.broker, remoting.ReqQueryMessage, map[string]string{
			"topic": topic, "key": tc.key, "maxNum": "32", "beginTimestamp": "0",
			"endTimestamp": strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10)}, nil)
		if err != nil || resp.Code != remoting.RespSuccess {
			t.Fatalf("query by key %s: %v %v", tc.key, resp, err)
		}
		var got []string
		for b := resp.Body; len(b) > 0; {
			n := remoting.RecordSize(b)
			if n <= 0 || n > len(b) {
				t.Fatalf("query by key %s: bad record size %d of %d bytes", tc.key, n, len(b))
			}
			m, err := remoting.DecodeMessageExt(b[:n])
			if err != nil {
				t.Fatalf("query by key %s: %v", tc.key, err)
			}
			got = append(got, string(m.Body))
			b = b[n:]
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("query by key %s: %v, want %v", tc.key, got, tc.want)
		}
	}
	if resp, err := invoke(s.broker, remoting.ReqQueryMessage, map[string]string{"topic": topic, "key": "nope", "maxNum": "32"}, nil); err != nil || resp.Code != remoting.RespQueryNotFound {
		t.Errorf("query by an unknown key: %v %v, want QUERY_NOT_FOUND", resp, err)
	}

	for i, r := range results {
		_, off, err := remoting.ParseOffsetMsgID(r.OffsetMsgID)
		if err != nil {
			t.Fatalf("offset msg id %s: %v", r.OffsetMsgID, err)
		}
		resp, err := invoke(s.broker, remoting.ReqViewMessageByID, map[string]string{"offset": strconv.FormatInt(off, 10)}, nil)
		if err != nil || resp.Code != remoting.RespSuccess {
			t.Fatalf("view message %s: %v %v", r.OffsetMsgID, resp, err)
		}
		m, err := remoting.DecodeMessageExt(resp.Body)
		if err != nil || string(m.Body) != fmt.Sprintf("q-%d", i) || m.QueueOffset != r.QueueOffset {
			t.Errorf("view message %s: body %q offset %d (%v), want q-%d at %d", r.OffsetMsgID, m.Body, m.QueueOffset, err, i, r.QueueOffset)
		}
		// An offset inside the record is not a message id.
		if resp, err := invoke(s.broker, remoting.ReqViewMessageByID, map[string]string{"offset": strconv.FormatInt(off+1, 10)}, nil); err != nil || resp.Code == remoting.RespSuccess {
			t.Errorf("view message at offset %d (inside a record): %v %v, want an error", off+1, resp, err)
		}
	}
}

// TestAutoCreateOff: with --auto-create-topics=false a send to an unknown
// topic fails with TOPIC_NOT_EXIST (the client tries TBW102's route, which
// does not exist either) and a consumer of it does not start; once the
// topic is created both work.
func TestAutoCreateOff(t *testing.T) {
	t.Parallel()
	s := startStrata(t, "--auto-create-topics=false")
	topic := uniq("manual")
	p := s.newProducer(t, producer.WithRetry(0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte("x"))); err == nil {
		t.Fatalf("send to an unknown topic with auto-creation off: %s", r)
	}
	if _, err := s.route(topic); err == nil {
		t.Fatal("the failed send created a route")
	}
	s.createTopic(t, topic, 2, false)
	p2 := s.newProducer(t)
	sendSync(t, p2, primitive.NewMessage(topic, []byte("y")))
	var col collector
	c := s.newPushConsumer(t, uniq("g"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "*", col.handler("c"))
	waitFor(t, 15*time.Second, "the message", func() bool { return col.hasAll([]string{"y"}) })
}
