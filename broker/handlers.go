package broker

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
	"github.com/strata-mq/strata/tier"
)

func okResponse(req *remoting.Command, ext map[string]string, body []byte) *remoting.Command {
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.ExtFields = ext
	resp.Body = body
	return resp
}

// topicQueue reads the topic and queueId header fields.
func topicQueue(req *remoting.Command) (string, int32, error) {
	q, err := req.ExtInt32("queueId")
	if err != nil {
		return "", 0, err
	}
	t := req.Ext("topic")
	if t == "" {
		return "", 0, errors.New(`header field "topic" is missing`)
	}
	return t, q, nil
}

func (b *Broker) handleQueryOffset(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	topic, q, err := topicQueue(req)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	group := req.Ext("consumerGroup")
	if off, ok := b.offsets.Query(group, topic, q); ok {
		return okResponse(req, map[string]string{"offset": strconv.FormatInt(off, 10)}, nil)
	}
	// Like Java: a group new to a queue whose first message is still held
	// starts at 0, so nothing sent before the group's first pull is
	// skipped; otherwise the client applies its ConsumeFromWhere. A group
	// that asked to start from a timestamp gets QUERY_NOT_FOUND, so that
	// its client searches by time: Java answers 0 there too and so ignores
	// the timestamp on young queues (apache/rocketmq#2286). Its retry
	// topic still starts at 0: nothing in it predates the group.
	fromTime := b.clients.ConsumeFromWhere(group) == "CONSUME_FROM_TIMESTAMP" && !IsRetryTopic(topic)
	if b.firstMessageHot(topic, q) && !fromTime {
		return okResponse(req, map[string]string{"offset": "0"}, nil)
	}
	return errResponse(req, remoting.RespQueryNotFound, "no offset stored for group %s on %s/%d", group, topic, q)
}

// firstMessageHot reports whether a new group on topic/q starts at 0: the
// queue's first message is still in the hot tier, or the queue is empty in
// both tiers. Once offset 0 lives only in the cold tier the queue is no
// longer young (Java answers QUERY_NOT_FOUND once it is not even in memory):
// answering 0 would make every new CONSUME_FROM_LAST_OFFSET group replay
// the whole offloaded history.
func (b *Broker) firstMessageHot(topic string, q int32) bool {
	if b.store.MinOffset(topic, q) != 0 {
		return false
	}
	if b.store.MaxOffset(topic, q) > 0 {
		return true // the hot tier holds offset 0
	}
	if b.tier == nil {
		return true
	}
	_, _, cold := b.tier.Bounds(topic, q)
	return !cold
}

func (b *Broker) handleUpdateOffset(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	topic, q, err := topicQueue(req)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	off, err := req.ExtInt64("commitOffset")
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	if group := req.Ext("consumerGroup"); group != "" {
		b.offsets.Commit(group, topic, q, off)
	}
	return okResponse(req, nil, nil)
}

func (b *Broker) handleSearchOffset(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	topic, q, err := topicQueue(req)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	ts, err := req.ExtInt64("timestamp")
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	off, err := b.offsetForTime(context.Background(), topic, q, ts)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "search %s/%d by time: %v", topic, q, err)
	}
	return okResponse(req, map[string]string{"offset": strconv.FormatInt(off, 10)}, nil)
}

func (b *Broker) handleMaxOffset(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	topic, q, err := topicQueue(req)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	return okResponse(req, map[string]string{"offset": strconv.FormatInt(b.maxOffset(topic, q), 10)}, nil)
}

func (b *Broker) handleMinOffset(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	topic, q, err := topicQueue(req)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	return okResponse(req, map[string]string{"offset": strconv.FormatInt(b.minOffset(topic, q), 10)}, nil)
}

func (b *Broker) handleEarliestTime(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	topic, q, err := topicQueue(req)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	var rec []byte
	if b.tier != nil {
		// The earliest message may be in the cold tier.
		if first, _, ok := b.tier.Bounds(topic, q); ok && (first < b.store.MinOffset(topic, q) || b.store.MaxOffset(topic, q) == 0) {
			cr, err := b.tier.Read(context.Background(), topic, q, first, 1, 1, nil, "")
			if err != nil {
				return errResponse(req, remoting.RespSystemBusy, "cold tier read of %s/%d failed, retry later: %v", topic, q, err)
			}
			if cr.Status == tier.ReadFound {
				rec = cr.Records[0]
			}
		}
	}
	if rec == nil {
		r, err := b.store.Get(topic, q, b.store.MinOffset(topic, q), 1, 1, nil)
		if err != nil || r.Status != store.Found {
			return errResponse(req, remoting.RespSystemError, "no message in %s/%d", topic, q)
		}
		rec = r.Records[0]
	}
	m, err := remoting.DecodeMessageExt(rec)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	return okResponse(req, map[string]string{"timestamp": strconv.FormatInt(m.StoreTimestamp, 10)}, nil)
}

func (b *Broker) handleHeartbeat(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	hb, err := ParseHeartbeat(req.Body)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "bad heartbeat body: %v", err)
	}
	for _, cd := range hb.ConsumerDataSet {
		// A push consumer also pulls its retry topic; make sure it exists
		// (a follower copies it from its leader instead).
		if cd.MessageModel != "BROADCASTING" && cd.GroupName != "" && !b.follower() {
			if _, created, err := b.topics.AutoCreate(RetryTopic(cd.GroupName), 1); err != nil {
				b.log.Warn("create retry topic", "group", cd.GroupName, "err", err)
			} else if created {
				b.kickRegister() // so that routes list it now, not in 30 s
			}
		}
	}
	b.notifyGroups(b.clients.Heartbeat(c, hb, time.Now()))
	resp := okResponse(req, nil, nil)
	return resp
}

func (b *Broker) handleUnregisterClient(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	b.notifyGroups(b.clients.Unregister(c))
	return okResponse(req, nil, nil)
}

func (b *Broker) handleConsumerList(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	ids := b.clients.ConsumerIDs(req.Ext("consumerGroup"))
	if ids == nil {
		ids = []string{}
	}
	body, _ := json.Marshal(map[string][]string{"consumerIdList": ids})
	return okResponse(req, nil, body)
}

func (b *Broker) handleLock(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	lr, err := ParseLockRequest(req.Body)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "bad lock body: %v", err)
	}
	locked := b.locks.TryLock(lr.ConsumerGroup, lr.ClientID, lr.MQSet, time.Now())
	body, err := EncodeLockResponse(locked)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	return okResponse(req, nil, body)
}

func (b *Broker) handleUnlock(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	lr, err := ParseLockRequest(req.Body)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "bad unlock body: %v", err)
	}
	b.locks.Unlock(lr.ConsumerGroup, lr.ClientID, lr.MQSet)
	return okResponse(req, nil, nil)
}

// handleQueryMessage answers QUERY_MESSAGE (by key) with the matching
// records concatenated.
func (b *Broker) handleQueryMessage(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	topic, key := req.Ext("topic"), req.Ext("key")
	maxNum, err := req.ExtInt32("maxNum")
	if err != nil || maxNum <= 0 {
		maxNum = 32
	}
	begin, _ := req.ExtInt64("beginTimestamp")
	end, err := req.ExtInt64("endTimestamp")
	if err != nil || end <= 0 {
		end = 1<<63 - 1
	}
	recs, err := b.queryByKey(context.Background(), topic, key, int(min(maxNum, 64)), begin, end)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "query %s by key: %v", topic, err)
	}
	if len(recs) == 0 {
		return errResponse(req, remoting.RespQueryNotFound, "no message with key %q in topic %s", key, topic)
	}
	var body []byte
	for _, r := range recs {
		body = append(body, r...)
	}
	return okResponse(req, map[string]string{"indexLastUpdateTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
		"indexLastUpdatePhyoffset": "0"}, body)
}

// handleViewMessage answers VIEW_MESSAGE_BY_ID: the record at a commit-log
// offset (taken from an offset message id).
func (b *Broker) handleViewMessage(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	off, err := req.ExtInt64("offset")
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	rec, err := b.readAt(context.Background(), off)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "no message at commit-log offset %d: %v", off, err)
	}
	return okResponse(req, nil, rec)
}

// handleCreateTopic is UPDATE_AND_CREATE_TOPIC (admin).
func (b *Broker) handleCreateTopic(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	if !b.adminAllowed(c) {
		return errResponse(req, remoting.RespNoPermission, "topic administration is only accepted from loopback without an ACL (--acl-file)")
	}
	tc := TopicConfig{Name: req.Ext("topic"), ReadQueues: 4, WriteQueues: 4, Perm: int(remoting.PermReadWrite)}
	for k, dst := range map[string]*int{"readQueueNums": &tc.ReadQueues, "writeQueueNums": &tc.WriteQueues, "perm": &tc.Perm, "topicSysFlag": &tc.SysFlag} {
		if v := req.Ext(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return errResponse(req, remoting.RespSystemError, "header field %q=%q is not an integer", k, v)
			}
			*dst = n
		}
	}
	tc.Order = req.Ext("order") == "true"
	if err := b.topics.CreateOrUpdate(tc); err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	b.log.Info("topic created or updated", "topic", tc.Name, "read", tc.ReadQueues, "write", tc.WriteQueues, "perm", tc.Perm)
	b.kickRegister()
	return okResponse(req, nil, nil)
}

func (b *Broker) handleDeleteTopic(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	if !b.adminAllowed(c) {
		return errResponse(req, remoting.RespNoPermission, "topic administration is only accepted from loopback without an ACL (--acl-file)")
	}
	if err := b.topics.Delete(req.Ext("topic")); err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	b.kickRegister()
	return okResponse(req, nil, nil)
}

// handleAllTopicConfig answers GET_ALL_TOPIC_CONFIG with the topic table.
func (b *Broker) handleAllTopicConfig(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	table := map[string]TopicConfig{}
	for _, tc := range b.topics.List() {
		table[tc.Name] = tc
	}
	body, err := json.Marshal(map[string]any{"topicConfigTable": table})
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	return okResponse(req, nil, body)
}

// handleConfigChange refuses runtime configuration changes: none are
// supported, and from anywhere but loopback they are not even considered.
func (b *Broker) handleConfigChange(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	if !b.adminAllowed(c) {
		b.log.Warn("refused a configuration change from a remote peer", "peer", c.RemoteAddr().String(), "code", req.Code)
		return errResponse(req, remoting.RespNoPermission, "configuration changes are only accepted from loopback without an ACL (--acl-file)")
	}
	return errResponse(req, remoting.RespRequestCodeNotSupported, "runtime configuration changes are not supported; restart with new flags")
}
