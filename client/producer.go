package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
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

// Producer sends messages. It is safe for concurrent use. It sends
// through its own Client, made by NewProducer (no connection and no
// goroutine until the first send) and closed by Close, or through a shared
// one (WithClient).
type Producer struct {
	c     *Client
	owned bool // c was made by NewProducer; Close closes it
	cfg   producerCfg
	next  atomic.Uint32 // round-robin position over the write queues

	slots   chan struct{} // one per pending SendAsync (MaxInFlight)
	pending sync.WaitGroup
	// abort ends the sends of SendAsync when Close gives up waiting.
	abort       context.Context
	abortCancel context.CancelFunc

	mu        sync.Mutex
	npending  int // SendAsync goroutines running
	closed    bool
	closing   chan struct{} // closed by the first Close
	closeErr  error
	closeDone chan struct{} // closed when the first Close has finished
}

// NewProducer returns a Producer configured by the environment (see the
// package doc, "Configuration") and opts, which win over it. opts may mix
// producer options (ProducerGroup, SendTimeout, …) with client options
// (NameServers, Logger, …), which configure the Producer's own Client, or
// name a shared Client with WithClient. It neither connects nor starts a
// goroutine.
//
//	p, err := client.NewProducer(client.NameServers("10.0.0.1:9876"), client.ProducerGroup("orders"))
func NewProducer(opts ...ProducerOpt) (*Producer, error) {
	pc := producerCfg{
		group:          DefaultProducerGroup,
		retries:        DefaultSendRetries,
		sendTimeout:    DefaultSendTimeout,
		createTopicKey: DefaultCreateTopicKey,
		maxMessageSize: DefaultMaxMessageSize,
		maxInFlight:    DefaultMaxInFlight,
	}
	e, err := readEnv()
	if err != nil {
		return nil, err
	}
	e.applyProducer(&pc)
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("client: NewProducer given a nil option")
		}
		o.applyProducer(&pc)
	}
	if err := pc.validate(); err != nil {
		return nil, err
	}
	c, owned, err := ownClient("NewProducer", pc.client, pc.clientOpts)
	if err != nil {
		return nil, err
	}
	pc.clientOpts = nil
	abort, cancel := context.WithCancel(context.Background())
	return &Producer{c: c, owned: owned, cfg: pc, slots: make(chan struct{}, pc.maxInFlight),
		abort: abort, abortCancel: cancel, closing: make(chan struct{}), closeDone: make(chan struct{})}, nil
}

// Client returns the Client the Producer sends through (its own, or the
// one of WithClient), for admin calls or a Consumer sharing its
// connections. A Client the Producer owns closes with it.
func (p *Producer) Client() *Client { return p.c }

// defaultTopicQueueNums is the queue count asked for a topic created from
// the template topic, and the most queues per broker used meanwhile
// (rocketmq-client-go: 4).
const defaultTopicQueueNums = 4

// outgoing is a validated, encoded send: one message or a batch.
type outgoing struct {
	topic string
	n     int
	ids   []string
	props [][]byte
	body  []byte
}

// prepare checks msgs and encodes them, giving each a fresh UNIQ_KEY.
func (p *Producer) prepare(msgs []Message) (*outgoing, error) {
	if len(msgs) == 0 {
		return nil, errors.New("client: Send of no message")
	}
	topic := msgs[0].Topic
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	o := &outgoing{topic: topic, n: len(msgs), ids: make([]string, len(msgs)), props: make([][]byte, len(msgs))}
	bodies := make([][]byte, len(msgs))
	size := 0
	for i := range msgs {
		m := &msgs[i]
		if m.Topic != topic {
			return nil, fmt.Errorf("client: a batch must have one topic: message %d is for %q, message 0 for %q", i, m.Topic, topic)
		}
		if len(m.Body) == 0 {
			return nil, fmt.Errorf("client: message %d has an empty body", i)
		}
		o.ids[i] = newUniqID()
		var err error
		if o.props[i], err = m.properties(o.ids[i]); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		bodies[i] = m.Body
		size += len(m.Body)
	}
	if len(msgs) == 1 {
		o.body = bodies[0]
	} else {
		o.body = encodeBatch(bodies, o.props)
		size = len(o.body)
	}
	if size > p.cfg.maxMessageSize {
		return nil, fmt.Errorf("client: message of %d bytes exceeds the limit of %d (MaxMessageSize)", size, p.cfg.maxMessageSize)
	}
	return o, nil
}

func (p *Producer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Send stores msgs, which must share one topic, and returns one result per
// message. One message goes with SEND_MESSAGE_V2; several go as one
// SEND_BATCH_MESSAGE into a single queue, with consecutive queue offsets.
// Every message gets a fresh UNIQ_KEY (SendResult.MsgID), kept across
// retries. A failure that may pass on another queue is retried there (see
// the package doc); the error of the last attempt is returned, wrapping
// ErrTopicNotFound when the topic does not exist, ErrTimeout when no
// answer came in time (see Retryable).
func (p *Producer) Send(ctx context.Context, msgs ...Message) ([]SendResult, error) {
	if p.isClosed() {
		return nil, ErrClientClosed
	}
	o, err := p.prepare(msgs)
	if err != nil {
		return nil, err
	}
	return p.send(ctx, o)
}

// SendAsync sends msgs as Send does, without waiting for the result: it
// checks and encodes them, waits for one of MaxInFlight slots, and returns;
// done (if not nil) is called later, once, from another goroutine, with
// what Send would have returned. Many SendAsync calls pipeline their
// requests over one connection per broker. done should return quickly:
// the slot is free by then, but Close waits for it (so done must not call
// Close).
//
// SendAsync returns an error, and done is not called, when msgs are
// invalid, when ctx ends before a slot frees up, or when the Producer is
// closing. ctx bounds the send itself too, so it must outlive the call
// (not a request context that ends when a handler returns); Close flushes
// what is pending. Message bodies must not be modified before done is
// called.
func (p *Producer) SendAsync(ctx context.Context, msgs []Message, done func([]SendResult, error)) error {
	if p.isClosed() {
		return ErrClientClosed
	}
	o, err := p.prepare(msgs)
	if err != nil {
		return err
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("client: SendAsync waiting for a free slot (MaxInFlight %d): %w", p.cfg.maxInFlight, timeoutError(ctx.Err()))
	case <-p.closing:
		return ErrClientClosed
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return ErrClientClosed
	}
	p.pending.Add(1)
	p.npending++
	p.mu.Unlock()
	go func() {
		defer func() {
			p.mu.Lock()
			p.npending--
			p.mu.Unlock()
			p.pending.Done()
		}()
		sctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(p.abort, cancel)
		res, err := p.send(sctx, o)
		stop()
		cancel()
		if err != nil && p.abort.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w: send abandoned by Producer.Close: %w", ErrClientClosed, err)
		}
		<-p.slots
		if done != nil {
			done(res, err)
		}
	}()
	return nil
}

// Close stops the Producer: later sends fail with ErrClientClosed, and
// SendAsync calls waiting for a slot return it. Close waits until every
// pending SendAsync has completed and called its done, or until ctx ends;
// then the sends still pending are cancelled (their done gets an error
// wrapping ErrClientClosed) and Close returns ctx's error, after they are
// gone. Last, Close closes the Producer's own Client (not one given with
// WithClient), which fails Send calls still running. No goroutine of the
// Producer outlives Close. Calling Close again waits for the first call
// and returns its result.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		select {
		case <-p.closeDone:
			return p.closeErr
		default:
		}
		select {
		case <-p.closeDone:
			return p.closeErr
		case <-ctx.Done():
			return fmt.Errorf("client: Producer.Close: %w", timeoutError(ctx.Err()))
		}
	}
	p.closed = true
	close(p.closing)
	npending := p.npending
	p.mu.Unlock()

	var errs []error
	if npending > 0 {
		errs = p.waitPending(ctx)
	}
	p.abortCancel()
	if p.owned {
		if err := p.c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	p.closeErr = errors.Join(errs...)
	close(p.closeDone)
	return p.closeErr
}

// waitPending waits for the pending SendAsync calls, or until ctx ends;
// then it cancels them and waits for them to return.
func (p *Producer) waitPending(ctx context.Context) []error {
	idle := make(chan struct{})
	go func() { // ends when the pending sends do, which waitPending waits for
		p.pending.Wait()
		close(idle)
	}()
	var errs []error
	select {
	case <-idle:
	case <-ctx.Done():
		p.abortCancel()
		<-idle
		errs = append(errs, fmt.Errorf("client: Producer.Close abandoned pending sends: %w", timeoutError(ctx.Err())))
	}
	return errs
}

// send sends o, retrying on other queues as the package doc says.
func (p *Producer) send(ctx context.Context, o *outgoing) ([]SendResult, error) {
	topic := o.topic
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
		mq := pickQueue(queues, start+attempt, lastBroker, p.c.faults.available)
		b, _ := route.Broker(mq.BrokerName)
		addr := b.LeaderAddr()
		req := p.sendRequest(mq, o.body, o.props, o.n)
		t0 := time.Now()
		resp, err := p.c.roundTrip(ctx, addr, req, p.cfg.sendTimeout, ErrBrokerUnreachable)
		var res []SendResult
		if err == nil {
			res, err = sendResults(addr, req, resp, mq, o.ids)
		}
		if ctx.Err() == nil {
			p.c.faults.report(mq.BrokerName, time.Since(t0), err)
		}
		if err == nil {
			return res, nil
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

// pickQueue returns the queue at position i (round-robin), or else the
// first one from there whose broker is not avoid (the broker the previous
// attempt failed on) and is available (not avoided after recent failures
// or slow answers), or else the first one whose broker is not avoid.
func pickQueue(queues []MessageQueue, i int, avoid string, available func(broker string) bool) MessageQueue {
	n := len(queues)
	i = ((i % n) + n) % n
	for k := range n {
		if q := queues[(i+k)%n]; q.BrokerName != avoid && available(q.BrokerName) {
			return q
		}
	}
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
