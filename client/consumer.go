package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// Consumer reads queues for one consumer group, pull-style: the caller
// chooses queues and offsets, and commits offsets when it wants the group
// to resume there. It is safe for concurrent use and holds no resources of
// its own.
type Consumer struct {
	c     *Client
	group string
	cfg   consumerCfg
	tags  map[string]bool // nil: every tag
}

// maxPullMessages bounds the messages asked for in one pull (the broker's
// own limit).
const maxPullMessages = 1024

// NewConsumer returns a Consumer of group that reads through c.
func NewConsumer(c *Client, group string, opts ...ConsumerOpt) (*Consumer, error) {
	if err := checkName("consumer group", group, 255); err != nil {
		return nil, err
	}
	cc := consumerCfg{subscription: DefaultSubscription}
	for _, o := range opts {
		o.applyConsumer(&cc)
	}
	if err := cc.validate(); err != nil {
		return nil, err
	}
	cs := &Consumer{c: c, group: group, cfg: cc}
	if expr := strings.TrimSpace(cc.subscription); expr != "*" {
		cs.tags = make(map[string]bool)
		for _, t := range strings.Split(expr, "||") {
			if t = strings.TrimSpace(t); t != "" {
				cs.tags[t] = true
			}
		}
		if len(cs.tags) == 0 {
			return nil, fmt.Errorf("client: subscription %q names no tag", cc.subscription)
		}
	}
	return cs, nil
}

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
func (c *Client) queueCall(ctx context.Context, mq MessageQueue, req *remoting.Command, timeout time.Duration) (*remoting.Command, string, error) {
	addr, err := c.brokerAddr(ctx, mq.Topic, mq.BrokerName)
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

// Pull reads up to max messages (1..1024; 0 means 32) of mq from offset. It
// never commits an offset. With LongPoll set, a pull at the end of the
// queue waits for a message up to that long.
func (cs *Consumer) Pull(ctx context.Context, mq MessageQueue, offset int64, max int) (PullResult, error) {
	if max <= 0 {
		max = 32
	}
	max = min(max, maxPullMessages)
	sysFlag := remoting.PullFlagSubscription
	if cs.cfg.longPoll > 0 {
		sysFlag |= remoting.PullFlagSuspend
	}
	req := remoting.NewRequest(remoting.ReqPullMessage, map[string]string{
		"consumerGroup":        cs.group,
		"topic":                mq.Topic,
		"queueId":              strconv.Itoa(mq.QueueID),
		"queueOffset":          strconv.FormatInt(offset, 10),
		"maxMsgNums":           strconv.Itoa(max),
		"sysFlag":              strconv.Itoa(int(sysFlag)),
		"commitOffset":         "0",
		"suspendTimeoutMillis": strconv.FormatInt(cs.cfg.longPoll.Milliseconds(), 10),
		"subscription":         cs.cfg.subscription,
		"subVersion":           "0",
		"expressionType":       "TAG",
		"bname":                mq.BrokerName,
	}, nil)
	resp, addr, err := cs.c.queueCall(ctx, mq, req, cs.c.cfg.requestTimeout+cs.cfg.longPoll)
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
	if res.Status != PullFound {
		return res, nil
	}
	msgs, err := decodeMessages(resp.Body, mq.BrokerName)
	if err != nil {
		return PullResult{}, fmt.Errorf("client: pull %s at %d from %s: %w", mq, offset, addr, err)
	}
	if cs.tags != nil {
		// Brokers filter by tag hash; hashes collide, so check the tag.
		kept := msgs[:0]
		for _, m := range msgs {
			if cs.tags[m.Tag] {
				kept = append(kept, m)
			}
		}
		msgs = kept
	}
	res.Messages = msgs
	return res, nil
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
