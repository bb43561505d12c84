package client

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// PullStatus is the outcome of a pull.
type PullStatus int

const (
	// PullFound: messages were read (PullResult.Messages may still be empty
	// when the client-side tag filter dropped them all).
	PullFound PullStatus = iota
	// PullNoNewMsg: the offset is the queue's end; nothing to read yet.
	PullNoNewMsg
	// PullNoMatchedMsg: messages were scanned but none matched the
	// subscription; continue from NextBeginOffset.
	PullNoMatchedMsg
	// PullOffsetIllegal: the offset is outside the queue (below its min,
	// beyond its max); continue from NextBeginOffset.
	PullOffsetIllegal
)

func (s PullStatus) String() string {
	switch s {
	case PullFound:
		return "FOUND"
	case PullNoNewMsg:
		return "NO_NEW_MSG"
	case PullNoMatchedMsg:
		return "NO_MATCHED_MSG"
	case PullOffsetIllegal:
		return "OFFSET_ILLEGAL"
	}
	return "PullStatus(" + strconv.Itoa(int(s)) + ")"
}

// PullResult is what a pull returns.
type PullResult struct {
	Status PullStatus
	// NextBeginOffset is where the next pull of the queue starts.
	NextBeginOffset int64
	// MinOffset and MaxOffset are the queue's bounds when the broker
	// answered (MaxOffset is the next offset to be written).
	MinOffset, MaxOffset int64
	// SuggestBrokerID is the broker id the broker suggests for the next
	// pull (0: the leader; tier readers come later).
	SuggestBrokerID int64
	Messages        []MessageExt
}

// Consumer reads the queues of one consumer group. It offers three ways to
// read, from the lowest level up:
//
//   - Pull, QueryOffset, CommitOffset and the offset lookups: the caller
//     chooses queues and offsets itself, and the Consumer holds no state.
//   - Receive, Commit, Seek and SeekTime: the Consumer joins the group,
//     shares the subscribed topics' queues with the group's other members
//     (rebalancing as RocketMQ clustering consumers do, so that Strata and
//     RocketMQ consumers can share a group), tracks a position per queue,
//     and commits when told to. It runs no goroutine between calls, so it
//     suits functions that are frozen between invocations.
//   - Run: a long-running loop that does all of that in the background and
//     calls a Handler, retrying failed messages through the group's retry
//     topic, as a RocketMQ push consumer does.
//
// Receive and Run exclude each other. A Consumer is safe for concurrent
// use; Receive, Commit, Seek and SeekTime take turns.
type Consumer struct {
	c     *Client
	owned bool // c was made by NewConsumer; Close closes it
	group string
	cfg   consumerCfg
	// subs holds the subscribed topics' filters; def filters the others.
	subs map[string]*tagFilter
	def  *tagFilter

	// turn (capacity 1) is held by Receive, Commit, Seek, SeekTime and Run.
	turn chan struct{}
	// changed is signalled when a broker says the group's members changed
	// (NOTIFY_CONSUMER_IDS_CHANGED).
	changed chan struct{}

	// nodes holds, per MessageQueue, the broker id the last pull's answer
	// suggested for the next one (suggestWhichBrokerId: a tier reader for
	// history, the leader for the hot tier).
	nodes sync.Map
	// subVersion is the subscriptions' version in heartbeats.
	subVersion int64

	mu     sync.Mutex
	mode   consumeMode
	closed bool

	// g is the group membership of Receive and Run, guarded by turn.
	g membership
}

type consumeMode int

const (
	modeNone consumeMode = iota
	modeReceive
	modeRun
)

// tagFilter is a parsed tag expression; tags is nil for "*".
type tagFilter struct {
	expr string
	tags map[string]bool
}

// match reports whether a message with tag passes the filter.
func (f *tagFilter) match(tag string) bool { return f.tags == nil || f.tags[tag] }

// parseTags parses a tag expression: "*" or tags joined by "||".
func parseTags(expr string) (*tagFilter, error) {
	expr = strings.TrimSpace(expr)
	if expr == "*" || expr == "" {
		return &tagFilter{expr: "*"}, nil
	}
	f := &tagFilter{expr: expr, tags: make(map[string]bool)}
	for _, t := range strings.Split(expr, "||") {
		if t = strings.TrimSpace(t); t != "" {
			f.tags[t] = true
		}
	}
	if len(f.tags) == 0 {
		return nil, fmt.Errorf("client: tag expression %q names no tag", expr)
	}
	return f, nil
}

// maxPullMessages bounds the messages asked for in one pull (the broker's
// own limit).
const maxPullMessages = 1024

// NewConsumer returns a Consumer configured by the environment (see the
// package doc, "Configuration") and opts, which win over it. opts may mix
// consumer options (ConsumerGroup, Subscribe, …) with client options
// (NameServers, Logger, …), which configure the Consumer's own Client, or
// name a shared Client with WithClient. It neither connects nor starts a
// goroutine.
//
//	cs, err := client.NewConsumer(client.ConsumerGroup("billing"), client.Subscribe("orders", "*"))
func NewConsumer(opts ...ConsumerOpt) (*Consumer, error) {
	cc := consumerCfg{
		subscription: DefaultSubscription,
		start:        FromLastOffset,
		pullBatch:    DefaultPullBatchSize,
		handlerBatch: DefaultHandlerBatchSize,
		maxReconsume: DefaultMaxReconsumeTimes,
	}
	e, err := readEnv()
	if err != nil {
		return nil, err
	}
	e.applyConsumer(&cc)
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("client: NewConsumer given a nil option")
		}
		o.applyConsumer(&cc)
	}
	if err := cc.validate(); err != nil {
		return nil, err
	}
	cs := &Consumer{group: cc.group, cfg: cc, subs: make(map[string]*tagFilter, len(cc.subs)),
		turn: make(chan struct{}, 1), changed: make(chan struct{}, 1), subVersion: time.Now().UnixNano()}
	if cs.def, err = parseTags(cc.subscription); err != nil {
		return nil, err
	}
	for _, s := range cc.subs {
		cs.subs[s.topic], _ = parseTags(s.expr) // checked by validate
	}
	if cs.c, cs.owned, err = ownClient("NewConsumer", cc.client, cc.clientOpts); err != nil {
		return nil, err
	}
	cs.cfg.clientOpts = nil
	return cs, nil
}

// Client returns the Client the Consumer works through (its own, or the
// one of WithClient).
func (cs *Consumer) Client() *Client { return cs.c }

// filter returns the tag filter of topic.
func (cs *Consumer) filter(topic string) *tagFilter {
	if f := cs.subs[topic]; f != nil {
		return f
	}
	if strings.HasPrefix(topic, "%RETRY%") {
		return matchAll // redeliveries passed the filter once already
	}
	return cs.def
}

// matchAll is the filter "*".
var matchAll = &tagFilter{expr: "*"}

// Group returns the consumer group.
func (cs *Consumer) Group() string { return cs.group }

// Queues returns the readable queues of topic, by broker name then id.
func (cs *Consumer) Queues(ctx context.Context, topic string) ([]MessageQueue, error) {
	r, err := cs.c.Route(ctx, topic)
	if err != nil {
		return nil, err
	}
	return r.ReadQueues(), nil
}

// queueCall sends a request about mq to its broker's leader and returns the
// response, whatever its code.
// Reads (pulls, offset lookups) go to a tier reader of the broker name
// when it has no live leader: its offloaded history stays readable.
func (c *Client) queueCall(ctx context.Context, mq MessageQueue, req *remoting.Command, timeout time.Duration) (*remoting.Command, string, error) {
	addr, err := c.brokerAddr(ctx, mq.Topic, mq.BrokerName)
	if err != nil && errors.Is(err, ErrNoQueue) && readRequest(req.Code) {
		if r, rerr := c.Route(ctx, mq.Topic); rerr == nil {
			if b, ok := r.Broker(mq.BrokerName); ok {
				if ids := b.Readers(); len(ids) > 0 {
					addr, err = b.Addrs[ids[0]], nil
				}
			}
		}
	}
	if err != nil {
		return nil, "", err
	}
	if timeout <= 0 {
		timeout = c.cfg.requestTimeout
	}
	resp, err := c.roundTrip(ctx, addr, req, timeout, ErrBrokerUnreachable)
	if err != nil && errors.Is(err, ErrBrokerUnreachable) {
		c.forgetRoute(mq.Topic) // the broker may have moved or died
	}
	return resp, addr, err
}

// Pull reads up to max messages (1..1024; 0 means 32) of mq from offset,
// filtered by the topic's tag expression (Subscribe, Subscription). It
// never commits an offset. With LongPoll set, a pull at the end of the
// queue waits for a message up to that long.
func (cs *Consumer) Pull(ctx context.Context, mq MessageQueue, offset int64, max int) (PullResult, error) {
	if max <= 0 {
		max = 32
	}
	return cs.pull(ctx, mq, offset, min(max, maxPullMessages), cs.cfg.longPoll)
}

// pull reads up to max messages of mq from offset; a broker holds it up to
// hold when there is nothing to read yet.
func (cs *Consumer) pull(ctx context.Context, mq MessageQueue, offset int64, max int, hold time.Duration) (PullResult, error) {
	sysFlag := remoting.PullFlagSubscription
	if hold > 0 {
		sysFlag |= remoting.PullFlagSuspend
	}
	f := cs.filter(mq.Topic)
	req := remoting.NewRequest(remoting.ReqPullMessage, map[string]string{
		"consumerGroup":        cs.group,
		"topic":                mq.Topic,
		"queueId":              strconv.Itoa(mq.QueueID),
		"queueOffset":          strconv.FormatInt(offset, 10),
		"maxMsgNums":           strconv.Itoa(max),
		"sysFlag":              strconv.Itoa(int(sysFlag)),
		"commitOffset":         "0",
		"suspendTimeoutMillis": strconv.FormatInt(hold.Milliseconds(), 10),
		"subscription":         f.expr,
		"subVersion":           "0",
		"expressionType":       "TAG",
		"bname":                mq.BrokerName,
	}, nil)
	resp, addr, err := cs.pullCall(ctx, mq, offset, req, cs.c.cfg.requestTimeout+hold)
	if err != nil {
		return PullResult{}, err
	}
	var res PullResult
	switch resp.Code {
	case remoting.RespSuccess:
		res.Status = PullFound
	case remoting.RespPullNotFound:
		res.Status = PullNoNewMsg
	case remoting.RespPullRetryImmediately:
		res.Status = PullNoMatchedMsg
	case remoting.RespPullOffsetMoved:
		res.Status = PullOffsetIllegal
	default:
		return PullResult{}, responseError(addr, req, resp)
	}
	// Missing fields read as 0, as rocketmq-client-go does.
	res.NextBeginOffset, _ = strconv.ParseInt(resp.Ext("nextBeginOffset"), 10, 64)
	res.MinOffset, _ = strconv.ParseInt(resp.Ext("minOffset"), 10, 64)
	res.MaxOffset, _ = strconv.ParseInt(resp.Ext("maxOffset"), 10, 64)
	res.SuggestBrokerID, _ = strconv.ParseInt(resp.Ext("suggestWhichBrokerId"), 10, 64)
	cs.nodes.Store(mq, res.SuggestBrokerID)
	if res.Status != PullFound {
		return res, nil
	}
	msgs, err := decodeMessages(resp.Body, mq.BrokerName)
	if err != nil {
		return PullResult{}, fmt.Errorf("client: pull %s at %d from %s: %w", mq, offset, addr, err)
	}
	if f.tags != nil {
		// Brokers filter by tag hash; hashes collide, so check the tag.
		kept := msgs[:0]
		for _, m := range msgs {
			if f.match(m.Tag) {
				kept = append(kept, m)
			}
		}
		msgs = kept
	}
	res.Messages = msgs
	return res, nil
}

// readRequest reports whether a request only reads a queue, so that a
// tier reader can serve it.
func readRequest(code int16) bool {
	switch code {
	case remoting.ReqPullMessage, remoting.ReqGetMaxOffset, remoting.ReqGetMinOffset,
		remoting.ReqSearchOffsetByTimestamp, remoting.ReqGetEarliestMsgStoreTime:
		return true
	}
	return false
}

// pullCall sends a pull of mq at offset to the member of mq's broker name
// that serves it best: the one the last pull's answer suggested, else a
// tier reader when the route's tier bounds place offset in the cold tier,
// else the leader. When a reader cannot be reached the pull goes to the
// leader, which serves every offset.
func (cs *Consumer) pullCall(ctx context.Context, mq MessageQueue, offset int64, req *remoting.Command, timeout time.Duration) (*remoting.Command, string, error) {
	r, err := cs.c.Route(ctx, mq.Topic)
	if err != nil {
		return nil, "", err
	}
	b, ok := r.Broker(mq.BrokerName)
	if !ok {
		return cs.c.queueCall(ctx, mq, req, timeout)
	}
	id := int64(leaderID)
	if v, ok := cs.nodes.Load(mq); ok {
		id = v.(int64)
	}
	readers := b.Readers()
	if _, live := b.Addrs[id]; (!live || id == leaderID) && len(readers) > 0 && (r.coldAt(mq, offset) || b.LeaderAddr() == "") {
		// No suggestion, or one naming a member that is gone: a reader,
		// spreading the queues of a group over them.
		h := fnv.New32a()
		h.Write([]byte(cs.group))
		h.Write([]byte(mq.String()))
		id = readers[h.Sum32()%uint32(len(readers))]
	}
	addr := b.Addrs[id]
	if id == leaderID || addr == "" {
		return cs.c.queueCall(ctx, mq, req, timeout)
	}
	if timeout <= 0 {
		timeout = cs.c.cfg.requestTimeout
	}
	resp, err := cs.c.roundTrip(ctx, addr, req, timeout, ErrBrokerUnreachable)
	if err == nil {
		return resp, addr, nil
	}
	if !errors.Is(err, ErrBrokerUnreachable) || ctx.Err() != nil {
		return nil, addr, err
	}
	cs.c.log.Debug("client: tier reader unreachable; pulling from the leader", "queue", mq.String(), "reader", addr, "err", err)
	cs.nodes.Delete(mq)
	cs.c.forgetRoute(mq.Topic) // the reader may be gone for good
	return cs.c.queueCall(ctx, mq, req, timeout)
}

// QueryOffset returns the group's committed offset of mq: the next offset
// to consume. found is false when the broker has none stored
// (QUERY_NOT_FOUND); a Strata or Java broker answers 0 rather than
// not-found while the queue still holds its first message.
func (cs *Consumer) QueryOffset(ctx context.Context, mq MessageQueue) (offset int64, found bool, err error) {
	req := remoting.NewRequest(remoting.ReqQueryConsumerOffset, map[string]string{
		"consumerGroup": cs.group, "topic": mq.Topic, "queueId": strconv.Itoa(mq.QueueID), "bname": mq.BrokerName,
	}, nil)
	resp, addr, err := cs.c.queueCall(ctx, mq, req, 0)
	if err != nil {
		return 0, false, err
	}
	switch resp.Code {
	case remoting.RespSuccess:
		off, err := resp.ExtInt64("offset")
		if err != nil {
			return 0, false, fmt.Errorf("client: QUERY_CONSUMER_OFFSET from %s: %w", addr, err)
		}
		return off, true, nil
	case remoting.RespQueryNotFound:
		return -1, false, nil
	}
	return 0, false, responseError(addr, req, resp)
}

// CommitOffset stores offset (the next offset to consume) as the group's
// position in mq, and waits for the broker to acknowledge it. Brokers
// persist offsets every few seconds, and on a clean shutdown.
func (cs *Consumer) CommitOffset(ctx context.Context, mq MessageQueue, offset int64) error {
	req := remoting.NewRequest(remoting.ReqUpdateConsumerOffset, map[string]string{
		"consumerGroup": cs.group, "topic": mq.Topic, "queueId": strconv.Itoa(mq.QueueID),
		"commitOffset": strconv.FormatInt(offset, 10), "bname": mq.BrokerName,
	}, nil)
	resp, addr, err := cs.c.queueCall(ctx, mq, req, 0)
	if err != nil {
		return err
	}
	if resp.Code != remoting.RespSuccess {
		return responseError(addr, req, resp)
	}
	return nil
}

// MaxOffset returns mq's next offset to be written (one past the last
// message).
func (cs *Consumer) MaxOffset(ctx context.Context, mq MessageQueue) (int64, error) {
	return cs.c.queueOffset(ctx, mq, remoting.ReqGetMaxOffset, nil)
}

// MinOffset returns mq's smallest readable offset.
func (cs *Consumer) MinOffset(ctx context.Context, mq MessageQueue) (int64, error) {
	return cs.c.queueOffset(ctx, mq, remoting.ReqGetMinOffset, nil)
}

// SearchOffset returns the offset of mq's first message stored at or after
// t, or MaxOffset when there is none.
func (cs *Consumer) SearchOffset(ctx context.Context, mq MessageQueue, t time.Time) (int64, error) {
	return cs.c.queueOffset(ctx, mq, remoting.ReqSearchOffsetByTimestamp,
		map[string]string{"timestamp": strconv.FormatInt(t.UnixMilli(), 10)})
}

// queueOffset sends one of the offset requests (29, 30, 31) and reads the
// "offset" field of the answer.
func (c *Client) queueOffset(ctx context.Context, mq MessageQueue, code int16, more map[string]string) (int64, error) {
	ext := map[string]string{"topic": mq.Topic, "queueId": strconv.Itoa(mq.QueueID), "bname": mq.BrokerName}
	for k, v := range more {
		ext[k] = v
	}
	req := remoting.NewRequest(code, ext, nil)
	resp, addr, err := c.queueCall(ctx, mq, req, 0)
	if err != nil {
		return 0, err
	}
	if resp.Code != remoting.RespSuccess {
		return 0, responseError(addr, req, resp)
	}
	off, err := resp.ExtInt64("offset")
	if err != nil {
		return 0, fmt.Errorf("client: %s from %s: %w", remoting.RequestCodeName(code), addr, err)
	}
	return off, nil
}

// checkName applies the RocketMQ 4.x name rules of topics and groups: 1 to
// maxLen bytes of letters, digits, '%', '|', '_' and '-', so that a typo
// fails here with a clear message rather than at the broker.
func checkName(kind, s string, maxLen int) error {
	if s == "" {
		return fmt.Errorf("client: %s is empty", kind)
	}
	if len(s) > maxLen {
		return fmt.Errorf("client: %s %.20q...: %d bytes, longer than %d", kind, s, len(s), maxLen)
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '%', b == '|', b == '_', b == '-':
		default:
			return fmt.Errorf("client: %s %q: byte %q at %d is not allowed (letters, digits, '%%', '|', '_', '-')", kind, s, b, i)
		}
	}
	return nil
}
