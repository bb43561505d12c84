package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// SendStatus is how a stored message was acknowledged.
type SendStatus int

const (
	// SendOK: stored (and, under sync flush, durable).
	SendOK SendStatus = iota
	// SendFlushDiskTimeout: stored, but not flushed in time (FLUSH_DISK_TIMEOUT).
	SendFlushDiskTimeout
	// SendFlushSlaveTimeout: stored, but a replica did not ack in time.
	SendFlushSlaveTimeout
	// SendSlaveNotAvailable: stored, but no replica was reachable.
	SendSlaveNotAvailable
)

func (s SendStatus) String() string {
	switch s {
	case SendOK:
		return "SEND_OK"
	case SendFlushDiskTimeout:
		return "FLUSH_DISK_TIMEOUT"
	case SendFlushSlaveTimeout:
		return "FLUSH_SLAVE_TIMEOUT"
	case SendSlaveNotAvailable:
		return "SLAVE_NOT_AVAILABLE"
	}
	return "SendStatus(" + strconv.Itoa(int(s)) + ")"
}

// SendResult describes one stored message.
type SendResult struct {
	Status SendStatus
	// MsgID is the message's unique id (its UNIQ_KEY property, made by the
	// producer); consumers see it as MessageExt.MsgID.
	MsgID string
	// OffsetMsgID is the broker's id of the stored record (store host and
	// commit-log offset).
	OffsetMsgID string
	Topic       string
	BrokerName  string
	QueueID     int
	QueueOffset int64
}

// Queue returns the queue the message was stored in.
func (r SendResult) Queue() MessageQueue {
	return MessageQueue{Topic: r.Topic, BrokerName: r.BrokerName, QueueID: r.QueueID}
}

// Producer sends messages through a Client. It is safe for concurrent use
// and holds no resources of its own: closing the Client ends it.
type Producer struct {
	c    *Client
	cfg  producerCfg
	next atomic.Uint32 // round-robin position over the write queues
}

// NewProducer returns a Producer that sends through c.
func NewProducer(c *Client, opts ...ProducerOpt) (*Producer, error) {
	pc := producerCfg{
		group:          DefaultProducerGroup,
		retries:        DefaultSendRetries,
		sendTimeout:    DefaultSendTimeout,
		createTopicKey: DefaultCreateTopicKey,
		maxMessageSize: DefaultMaxMessageSize,
	}
	for _, o := range opts {
		o.applyProducer(&pc)
	}
	if err := pc.validate(); err != nil {
		return nil, err
	}
	return &Producer{c: c, cfg: pc}, nil
}

// defaultTopicQueueNums is the queue count asked for a topic created from
// the template topic, and the most queues per broker used meanwhile
// (rocketmq-client-go: 4).
const defaultTopicQueueNums = 4

// Send stores msgs, which must share one topic, and returns one result per
// message. One message goes with SEND_MESSAGE_V2; several go as one
// SEND_BATCH_MESSAGE into a single queue, with consecutive queue offsets.
// Every message gets a fresh UNIQ_KEY (SendResult.MsgID), kept across
// retries. A failure that may pass on another queue is retried there (see
// the package doc); the error of the last attempt is returned, wrapping
// ErrTopicNotFound when the topic does not exist.
func (p *Producer) Send(ctx context.Context, msgs ...Message) ([]SendResult, error) {
	if len(msgs) == 0 {
		return nil, errors.New("client: Send of no message")
	}
	topic := msgs[0].Topic
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	ids := make([]string, len(msgs))
	bodies := make([][]byte, len(msgs))
	props := make([][]byte, len(msgs))
	size := 0
	for i := range msgs {
		m := &msgs[i]
		if m.Topic != topic {
			return nil, fmt.Errorf("client: a batch must have one topic: message %d is for %q, message 0 for %q", i, m.Topic, topic)
		}
		if len(m.Body) == 0 {
			return nil, fmt.Errorf("client: message %d has an empty body", i)
		}
		ids[i] = newUniqID()
		var err error
		if props[i], err = m.properties(ids[i]); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		bodies[i] = m.Body
		size += len(m.Body)
	}
	var body []byte
	if len(msgs) == 1 {
		body = bodies[0]
	} else {
		body = encodeBatch(bodies, props)
		size = len(body)
	}
	if size > p.cfg.maxMessageSize {
		return nil, fmt.Errorf("client: message of %d bytes exceeds the limit of %d (MaxMessageSize)", size, p.cfg.maxMessageSize)
	}

	route, err := p.route(ctx, topic)
	if err != nil {
		return nil, err
	}
	queues := route.WriteQueues()
	if len(queues) == 0 {
		p.c.forgetRoute(topic)
		return nil, fmt.Errorf("%w: topic %s has no writable queue with a live leader", ErrNoQueue, topic)
	}

	attempts := p.cfg.retries + 1
	start := int(p.next.Add(1))
	var lastErr error
	lastBroker := ""
	for attempt := range attempts {
		mq := pickQueue(queues, start+attempt, lastBroker)
		b, _ := route.Broker(mq.BrokerName)
		addr := b.LeaderAddr()
		req := p.sendRequest(mq, body, props, len(msgs))
		t0 := time.Now()
		resp, err := p.c.roundTrip(ctx, addr, req, p.cfg.sendTimeout, ErrBrokerUnreachable)
		if err == nil {
			var res []SendResult
			if res, err = sendResults(addr, req, resp, mq, ids); err == nil {
				return res, nil
			}
		}
		lastErr = err
		if ctx.Err() != nil || !retryableSend(err) {
			break
		}
		p.c.forgetRoute(topic)
		if attempt+1 < attempts {
			p.c.log.Debug("client: send failed; retrying on another queue", "queue", mq.String(), "addr", addr,
				"attempt", attempt+1, "elapsed", time.Since(t0), "err", err)
		}
		lastBroker = mq.BrokerName
	}
	if attempts > 1 && retryableSend(lastErr) {
		return nil, fmt.Errorf("client: send to %s failed after %d attempts: %w", topic, attempts, lastErr)
	}
	return nil, lastErr
}

// route returns topic's route or, when the topic is unknown and a
// CreateTopicKey is set, a route over the template topic's brokers (at most
// defaultTopicQueueNums queues each) whose brokers create the topic on the
// first send, if they auto-create topics.
func (p *Producer) route(ctx context.Context, topic string) (*Route, error) {
	r, err := p.c.Route(ctx, topic)
	if err == nil || !errors.Is(err, ErrTopicNotFound) || p.cfg.createTopicKey == "" || topic == p.cfg.createTopicKey {
		return r, err
	}
	tr, terr := p.c.Route(ctx, p.cfg.createTopicKey)
	if terr != nil {
		if errors.Is(terr, ErrTopicNotFound) {
			return nil, err // the topic's own not-found is the useful message
		}
		return nil, terr
	}
	fr := &Route{Topic: topic, Brokers: tr.Brokers}
	for _, q := range tr.Queues {
		q.ReadQueueNums = min(q.ReadQueueNums, defaultTopicQueueNums)
		q.WriteQueueNums = min(q.WriteQueueNums, defaultTopicQueueNums)
		fr.Queues = append(fr.Queues, q)
	}
	p.c.log.Debug("client: topic unknown to the name servers; sending through the template topic", "topic", topic, "template", p.cfg.createTopicKey)
	return fr, nil
}

// pickQueue returns the queue at position i (round-robin), or the first
// one from there on another broker than avoid, if there is one.
func pickQueue(queues []MessageQueue, i int, avoid string) MessageQueue {
	n := len(queues)
	i = ((i % n) + n) % n
	if avoid != "" {
		for k := range n {
			if q := queues[(i+k)%n]; q.BrokerName != avoid {
				return q
			}
		}
	}
	return queues[i]
}

// sendRequest builds SEND_MESSAGE_V2 (one message) or SEND_BATCH_MESSAGE
// (several) with the short header names a..n (PROTOCOL.md §2.3).
func (p *Producer) sendRequest(mq MessageQueue, body []byte, props [][]byte, n int) *remoting.Command {
	code, batch, properties := remoting.ReqSendMessageV2, "false", string(props[0])
	if n > 1 {
		code, batch, properties = remoting.ReqSendBatchMessage, "true", ""
	}
	defaultTopic := p.cfg.createTopicKey
	if defaultTopic == "" {
		defaultTopic = DefaultCreateTopicKey
	}
	ext := map[string]string{
		"a": p.cfg.group,
		"b": mq.Topic,
		"c": defaultTopic,
		"d": strconv.Itoa(defaultTopicQueueNums),
		"e": strconv.Itoa(mq.QueueID),
		"f": "0", // sysFlag: bodies are sent uncompressed
		"g": strconv.FormatInt(time.Now().UnixMilli(), 10),
		"h": "0",
		"i": properties,
		"j": "0",
		"k": "false",
		"l": "0",
		"m": batch,
		"n": mq.BrokerName,
	}
	return remoting.NewRequest(code, ext, body)
}

// sendResults maps a send response onto one result per message.
func sendResults(addr string, req, resp *remoting.Command, mq MessageQueue, ids []string) ([]SendResult, error) {
	status := SendOK
	switch resp.Code {
	case remoting.RespSuccess:
	case remoting.RespFlushDiskTimeout:
		status = SendFlushDiskTimeout
	case remoting.RespFlushSlaveTimeout:
		status = SendFlushSlaveTimeout
	case remoting.RespSlaveNotAvailable:
		status = SendSlaveNotAvailable
	default:
		return nil, responseError(addr, req, resp)
	}
	qid, err := resp.ExtInt32("queueId")
	if err != nil {
		return nil, fmt.Errorf("client: send response from %s: %w", addr, err)
	}
	off, err := resp.ExtInt64("queueOffset")
	if err != nil {
		return nil, fmt.Errorf("client: send response from %s: %w", addr, err)
	}
	offIDs := strings.Split(resp.Ext("msgId"), ",")
	res := make([]SendResult, len(ids))
	for i := range ids {
		res[i] = SendResult{Status: status, MsgID: ids[i], Topic: mq.Topic, BrokerName: mq.BrokerName,
			QueueID: int(qid), QueueOffset: off + int64(i)}
		if len(offIDs) == len(ids) {
			res[i].OffsetMsgID = offIDs[i]
		}
	}
	return res, nil
}
