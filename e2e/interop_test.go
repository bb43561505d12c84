package e2e

// Issue 6: interoperability both ways between Strata's client and
// rocketmq-client-go, through a Strata broker: what one client sends, the
// other receives with body, tag, keys, user properties and message id
// intact.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/strata-mq/strata/client"
)

// interopMsg is one message of the interop tests, as sent.
type interopMsg struct {
	body  string
	tag   string
	keys  []string
	props map[string]string
}

// interopMessages makes n distinct messages: tags alternate, each has
// three keys and user properties whose values hold spaces, punctuation and
// non-ASCII text.
func interopMessages(prefix string, n int) []interopMsg {
	out := make([]interopMsg, n)
	for i := range out {
		out[i] = interopMsg{
			body: fmt.Sprintf("%s-body-%d", prefix, i),
			tag:  []string{"TagA", "TagB", "TagC"}[i%3],
			keys: []string{fmt.Sprintf("%s-k%d", prefix, i), "order-" + strconv.Itoa(1000+i), "shared-key"},
			props: map[string]string{
				"seq":      strconv.Itoa(i),
				"origin":   prefix,
				"note":     fmt.Sprintf("héllo wörld #%d: a=b;c ✓", i),
				"trace-id": fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15),
			},
		}
	}
	return out
}

// TestInteropStrataToRocketMQ: messages sent by Strata's client, singly and
// in batches, reach a rocketmq-client-go push consumer with body, tag,
// keys, user properties, message id and position as the send reported.
func TestInteropStrataToRocketMQ(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic := uniq("interop_s2r")
	s.createTopic(t, topic, 4, false)

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

	const singles, batches, batchLen = 8, 3, 4
	sent := interopMessages("s2r", singles+batches*batchLen)
	toClient := func(m interopMsg) client.Message {
		return client.Message{Topic: topic, Body: []byte(m.body), Tag: m.tag, Keys: m.keys, Properties: m.props}
	}
	results := make(map[string]client.SendResult, len(sent)) // by body
	send := func(ms []interopMsg) {
		t.Helper()
		cms := make([]client.Message, len(ms))
		for i, m := range ms {
			cms[i] = toClient(m)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rs, err := p.Send(ctx, cms...)
		if err != nil {
			t.Fatalf("strata Send of %d message(s): %v", len(cms), err)
		}
		if len(rs) != len(cms) {
			t.Fatalf("strata Send of %d message(s) returned %d results", len(cms), len(rs))
		}
		for i, r := range rs {
			if r.Status != client.SendOK {
				t.Fatalf("strata Send %s: status %v", ms[i].body, r.Status)
			}
			if r.MsgID == "" {
				t.Fatalf("strata Send %s: empty MsgID", ms[i].body)
			}
			if len(ms) > 1 && (r.QueueID != rs[0].QueueID || r.QueueOffset != rs[0].QueueOffset+int64(i)) {
				t.Errorf("batch message %d: stored at %d/%d, want %d/%d (one queue, consecutive offsets)",
					i, r.QueueID, r.QueueOffset, rs[0].QueueID, rs[0].QueueOffset+int64(i))
			}
			results[ms[i].body] = r
		}
	}
	for i := range singles {
		send(sent[i : i+1])
	}
	for b := range batches {
		lo := singles + b*batchLen
		send(sent[lo : lo+batchLen])
	}
	ids := map[string]bool{}
	for _, r := range results {
		if ids[r.MsgID] {
			t.Errorf("MsgID %s returned twice", r.MsgID)
		}
		ids[r.MsgID] = true
	}

	bodies := make([]string, len(sent))
	for i, m := range sent {
		bodies[i] = m.body
	}
	var col collector
	c := s.newPushConsumer(t, uniq("g"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "*", col.handler("c"))
	waitFor(t, 20*time.Second, "rocketmq-client-go to consume every message", func() bool { return col.hasAll(bodies) },
		func() string { return fmt.Sprint("missing ", col.missing(bodies)) })

	byBody := map[string]got{}
	for _, g := range col.all() {
		// Delivery is at least once: a redelivery must carry the same
		// message, which the checks below see through the last copy.
		byBody[g.body] = g
	}
	for _, m := range sent {
		g, r := byBody[m.body], results[m.body]
		if g.topic != topic {
			t.Errorf("%s: topic %q, want %q", m.body, g.topic, topic)
		}
		if g.tags != m.tag {
			t.Errorf("%s: GetTags %q, want %q", m.body, g.tags, m.tag)
		}
		if want := strings.Join(m.keys, " "); g.keys != want {
			t.Errorf("%s: GetKeys %q, want %q", m.body, g.keys, want)
		}
		for k, v := range m.props {
			if g.props[k] != v {
				t.Errorf("%s: property %s = %q, want %q", m.body, k, g.props[k], v)
			}
		}
		if g.msgID != r.MsgID {
			t.Errorf("%s: MsgId %s, want the Strata SendResult.MsgID %s", m.body, g.msgID, r.MsgID)
		}
		if g.offsetID != r.OffsetMsgID {
			t.Errorf("%s: OffsetMsgId %s, want the Strata SendResult.OffsetMsgID %s", m.body, g.offsetID, r.OffsetMsgID)
		}
		if g.queue != r.QueueID || g.offset != r.QueueOffset {
			t.Errorf("%s: consumed at %d/%d, sent to %d/%d", m.body, g.queue, g.offset, r.QueueID, r.QueueOffset)
		}
	}
	// Let the consumer commit before its shutdown, so it leaves cleanly.
	s.waitCommitted(t, c, topic)
}

// TestInteropRocketMQToStrata: messages sent by rocketmq-client-go
// (WithTag, WithKeys, WithProperty) are read by Strata's pull consumer,
// over every queue from offset 0, with body, tag, keys, user properties,
// message id and position as rocketmq-client-go's send reported.
func TestInteropRocketMQToStrata(t *testing.T) {
	t.Parallel()
	s := sharedStrata(t)
	topic := uniq("interop_r2s")
	s.createTopic(t, topic, 4, false)

	sent := interopMessages("r2s", 20)
	p := s.newProducer(t)
	results := make(map[string]*primitive.SendResult, len(sent)) // by body
	for _, m := range sent {
		pm := primitive.NewMessage(topic, []byte(m.body)).WithTag(m.tag).WithKeys(m.keys)
		for k, v := range m.props {
			pm.WithProperty(k, v)
		}
		r := sendSync(t, p, pm)[0]
		if r.MsgID == "" {
			t.Fatalf("rocketmq send %s: empty MsgID", m.body)
		}
		results[m.body] = r
	}

	c, err := client.New(client.NameServers(s.namesrv))
	if err != nil {
		t.Fatalf("strata client: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close strata client: %v", err)
		}
	})
	cs, err := client.NewConsumer(client.WithClient(c), client.ConsumerGroup(uniq("g")))
	if err != nil {
		t.Fatalf("strata consumer: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	queues, err := cs.Queues(ctx, topic)
	if err != nil {
		t.Fatalf("queues of %s: %v", topic, err)
	}
	if len(queues) != 4 {
		t.Fatalf("queues of %s: %v, want 4", topic, queues)
	}
	byBody := map[string]client.MessageExt{}
	for _, mq := range queues {
		for off := int64(0); ; {
			res, err := cs.Pull(ctx, mq, off, 7) // small pulls: several per queue
			if err != nil {
				t.Fatalf("pull %v at %d: %v", mq, off, err)
			}
			if res.Status == client.PullNoNewMsg {
				break
			}
			if res.Status != client.PullFound {
				t.Fatalf("pull %v at %d: status %v", mq, off, res.Status)
			}
			if res.NextBeginOffset <= off {
				t.Fatalf("pull %v at %d: found %d message(s), next offset %d", mq, off, len(res.Messages), res.NextBeginOffset)
			}
			for i, m := range res.Messages {
				if m.QueueOffset != off+int64(i) {
					t.Errorf("pull %v at %d: message %d at offset %d", mq, off, i, m.QueueOffset)
				}
				if _, dup := byBody[string(m.Body)]; dup {
					t.Errorf("%s: read twice", m.Body)
				}
				byBody[string(m.Body)] = m
			}
			off = res.NextBeginOffset
		}
	}
	if len(byBody) != len(sent) {
		t.Errorf("read %d distinct messages, sent %d", len(byBody), len(sent))
	}
	for _, m := range sent {
		g, ok := byBody[m.body]
		if !ok {
			t.Errorf("%s: not read", m.body)
			continue
		}
		r := results[m.body]
		if g.Topic != topic {
			t.Errorf("%s: topic %q, want %q", m.body, g.Topic, topic)
		}
		if g.Tag != m.tag {
			t.Errorf("%s: tag %q, want %q", m.body, g.Tag, m.tag)
		}
		if !slices.Equal(g.Keys, m.keys) {
			t.Errorf("%s: keys %q, want %q", m.body, g.Keys, m.keys)
		}
		for k, v := range m.props {
			if g.Properties[k] != v {
				t.Errorf("%s: property %s = %q, want %q", m.body, k, g.Properties[k], v)
			}
		}
		if g.MsgID != r.MsgID {
			t.Errorf("%s: MsgID %s, want rocketmq's SendResult.MsgID %s", m.body, g.MsgID, r.MsgID)
		}
		if g.OffsetMsgID != r.OffsetMsgID {
			t.Errorf("%s: OffsetMsgID %s, want rocketmq's SendResult.OffsetMsgID %s", m.body, g.OffsetMsgID, r.OffsetMsgID)
		}
		if g.QueueID != r.MessageQueue.QueueId || g.QueueOffset != r.QueueOffset {
			t.Errorf("%s: read at %d/%d, sent to %d/%d", m.body, g.QueueID, g.QueueOffset, r.MessageQueue.QueueId, r.QueueOffset)
		}
	}
}
