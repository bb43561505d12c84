package broker

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
)

// Delayed delivery, as RocketMQ 4.x does it: a message with a DELAY level
// is stored in SCHEDULE_TOPIC_XXXX, queue level-1, with its real topic and
// queue in properties. The scheduler walks each level's queue in order
// (store time order, so the head is always the next due) and re-stores due
// messages to their real topic. Retries (CONSUMER_SEND_MSG_BACK) go through
// it with level 3 + reconsume times.

const (
	scheduleTopic = "SCHEDULE_TOPIC_XXXX"
	// scheduleGroup owns the per-level delivery cursors in the offset
	// manager, so they persist like consumer offsets.
	scheduleGroup = "%SCHEDULE%"
	// PropRetryTopic names the original topic of a retried message.
	propRetryTopic      = "RETRY_TOPIC"
	propOriginMessageID = "ORIGIN_MESSAGE_ID"
)

// delayLevels are RocketMQ's default levels (messageDelayLevel).
var delayLevels = [...]time.Duration{
	time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute, 5 * time.Minute,
	6 * time.Minute, 7 * time.Minute, 8 * time.Minute, 9 * time.Minute, 10 * time.Minute,
	20 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour,
}

type scheduler struct {
	b    *Broker
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	tick time.Duration
}

func newScheduler(b *Broker) *scheduler {
	return &scheduler{b: b, quit: make(chan struct{}), tick: 100 * time.Millisecond}
}

func (s *scheduler) start() {
	s.wg.Add(1)
	go s.loop()
}

func (s *scheduler) stop() {
	s.once.Do(func() { close(s.quit) })
	s.wg.Wait()
}

// divert rewrites m to the schedule topic when it carries a DELAY level.
func (s *scheduler) divert(m *remoting.MessageExt) error {
	v, ok := remoting.PropertyValue(m.Properties, remoting.PropDelay)
	if !ok || m.Topic == scheduleTopic {
		return nil
	}
	level, err := strconv.Atoi(string(v))
	if err != nil {
		return fmt.Errorf("property DELAY=%q is not a delay level", v)
	}
	if level <= 0 {
		return nil
	}
	level = min(level, len(delayLevels))
	props := make([]byte, 0, len(m.Properties)+64)
	props = append(props, m.Properties...)
	props = remoting.AppendProperty(props, remoting.PropRealTopic, m.Topic)
	props = remoting.AppendProperty(props, remoting.PropRealQID, strconv.Itoa(int(m.QueueID)))
	m.Properties = props
	m.Topic = scheduleTopic
	m.QueueID = int32(level - 1)
	return nil
}

func (s *scheduler) loop() {
	defer s.wg.Done()
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			for level := range delayLevels {
				s.deliver(level)
			}
		}
	}
}

// deliver re-stores the due messages of one level.
func (s *scheduler) deliver(level int) {
	st := s.b.store
	q := int32(level)
	off, ok := s.b.offsets.Query(scheduleGroup, scheduleTopic, q)
	if !ok {
		off = st.MinOffset(scheduleTopic, q)
	}
	for {
		select {
		case <-s.quit:
			return
		default:
		}
		r, err := st.Get(scheduleTopic, q, off, 32, 1<<20, nil)
		if err != nil {
			s.b.log.Warn("scheduler: read", "level", level+1, "err", err)
			return
		}
		if r.Status == store.OffsetTooSmall {
			off = r.NextOffset
			continue
		}
		if r.Status != store.Found {
			return
		}
		now := time.Now().UnixMilli()
		for _, rec := range r.Records {
			m, err := remoting.DecodeMessageExt(rec)
			if err != nil {
				s.b.log.Error("scheduler: undecodable record; skipping", "level", level+1, "offset", off, "err", err)
				off++
				continue
			}
			if m.StoreTimestamp+delayLevels[level].Milliseconds() > now {
				s.b.offsets.Commit(scheduleGroup, scheduleTopic, q, off)
				return
			}
			if err := s.restore(m); err != nil {
				s.b.log.Warn("scheduler: re-store failed; will retry", "level", level+1, "offset", off, "err", err)
				s.b.offsets.Commit(scheduleGroup, scheduleTopic, q, off)
				return
			}
			off++
		}
		s.b.offsets.Commit(scheduleGroup, scheduleTopic, q, off)
	}
}

// restore puts a due delayed message back into its real topic and queue.
func (s *scheduler) restore(m remoting.MessageExt) error {
	props := remoting.ParseProperties(m.Properties)
	topic, qs := props[remoting.PropRealTopic], props[remoting.PropRealQID]
	qid, err := strconv.Atoi(qs)
	if topic == "" || err != nil {
		return fmt.Errorf("delayed message without REAL_TOPIC/REAL_QID (%q, %q)", topic, qs)
	}
	delete(props, remoting.PropDelay)
	out := remoting.MessageExt{
		Topic: topic, QueueID: int32(qid), Flag: m.Flag, SysFlag: m.SysFlag, BornTimestamp: m.BornTimestamp,
		BornHost: m.BornHost, ReconsumeTimes: m.ReconsumeTimes, Body: m.Body, Properties: remoting.EncodeProperties(props),
	}
	if tc, ok := s.b.topics.Get(topic); ok && tc.WriteQueues > 0 && qid >= tc.WriteQueues {
		out.QueueID = int32(qid % tc.WriteQueues)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.b.store.Append(ctx, []remoting.MessageExt{out})
}

// handleSendBack is CONSUMER_SEND_MSG_BACK: the consumer failed a message;
// store it again in the group's retry topic with a delay, or in its
// dead-letter topic once it has been retried maxReconsumeTimes times.
func (b *Broker) handleSendBack(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	group := req.Ext("group")
	if group == "" {
		return errResponse(req, remoting.RespSystemError, `header field "group" is missing`)
	}
	off, err := req.ExtInt64("offset")
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	delayLevel, _ := req.ExtInt32("delayLevel")
	maxTimes, err := req.ExtInt32("maxReconsumeTimes")
	if err != nil || maxTimes <= 0 {
		maxTimes = 16
	}
	rec, err := b.readAt(context.Background(), off)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "no message at commit-log offset %d: %v", off, err)
	}
	orig, err := remoting.DecodeMessageExt(rec)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	if orig.Topic == TransHalfTopic || orig.Topic == TransOpHalfTopic {
		// Half messages are not consumable: a send-back must not copy an
		// uncommitted transaction into a retry topic.
		return errResponse(req, remoting.RespNoPermission, "the message at commit-log offset %d is a transaction record, not a consumable message", off)
	}
	props := remoting.ParseProperties(orig.Properties)
	if props[propRetryTopic] == "" {
		props[propRetryTopic] = orig.Topic
	}
	if props[propOriginMessageID] == "" {
		origID := req.Ext("originMsgId")
		if origID == "" {
			origID = props[remoting.PropUniqKey]
		}
		if origID == "" {
			origID = remoting.OffsetMsgID(orig.StoreHost, orig.PhysicalOffset)
		}
		props[propOriginMessageID] = origID
	}
	delete(props, remoting.PropDelay)
	delete(props, remoting.PropRealTopic)
	delete(props, remoting.PropRealQID)
	topic := RetryTopic(group)
	if orig.ReconsumeTimes >= maxTimes || delayLevel < 0 {
		topic = DLQTopic(group)
	} else {
		if delayLevel == 0 {
			delayLevel = 3 + orig.ReconsumeTimes
		}
		props[remoting.PropDelay] = strconv.Itoa(int(delayLevel))
	}
	if _, _, err := b.topics.AutoCreate(topic, 1); err != nil {
		return errResponse(req, remoting.RespSystemError, "create %s: %v", topic, err)
	}
	m := remoting.MessageExt{
		Topic: topic, QueueID: 0, Flag: orig.Flag, SysFlag: orig.SysFlag, BornTimestamp: orig.BornTimestamp,
		BornHost: orig.BornHost, ReconsumeTimes: orig.ReconsumeTimes + 1, Body: orig.Body,
		Properties: remoting.EncodeProperties(props),
	}
	if err := b.sched.divert(&m); err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	resp := b.appendAndRespond(req, []remoting.MessageExt{m})
	if resp.Code == remoting.RespSuccess {
		resp.ExtFields = nil
		if topic == DLQTopic(group) {
			b.log.Info("message moved to the dead-letter queue", "group", group, "origin", props[propOriginMessageID], "reconsume_times", orig.ReconsumeTimes)
		}
	}
	return resp
}
