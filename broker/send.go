package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/broker/ha"
	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
)

// sendHeader is SEND_MESSAGE's header; code 10 uses long names, codes 310
// and 320 the short names a..n (PROTOCOL.md §2.3).
type sendHeader struct {
	producerGroup     string
	topic             string
	defaultTopicQueue int
	queueID           int32
	sysFlag           int32
	bornTimestamp     int64
	flag              int32
	properties        string
	reconsumeTimes    int32
	maxReconsumeTimes int32
	batch             bool
}

var (
	longSendKeys  = [...]string{"producerGroup", "topic", "defaultTopicQueueNums", "queueId", "sysFlag", "bornTimestamp", "flag", "properties", "reconsumeTimes", "maxReconsumeTimes", "batch"}
	shortSendKeys = [...]string{"a", "b", "d", "e", "f", "g", "h", "i", "j", "l", "m"}
)

func parseSendHeader(req *remoting.Command) (sendHeader, error) {
	keys := longSendKeys
	if req.Code != remoting.ReqSendMessage {
		keys = shortSendKeys
	}
	var h sendHeader
	var err error
	num := func(k string, bits int, required bool) int64 {
		v, ok := req.ExtFields[k]
		if !ok || v == "" {
			if required && err == nil {
				err = fmt.Errorf("header field %q is missing", k)
			}
			return 0
		}
		n, perr := strconv.ParseInt(v, 10, bits)
		if perr != nil && err == nil {
			err = fmt.Errorf("header field %q=%q is not a %d-bit integer", k, v, bits)
		}
		return n
	}
	h.producerGroup = req.ExtFields[keys[0]]
	h.topic = req.ExtFields[keys[1]]
	h.defaultTopicQueue = int(num(keys[2], 32, false))
	h.queueID = int32(num(keys[3], 32, true))
	h.sysFlag = int32(num(keys[4], 32, false))
	h.bornTimestamp = num(keys[5], 64, false)
	h.flag = int32(num(keys[6], 32, false))
	h.properties = req.ExtFields[keys[7]]
	h.reconsumeTimes = int32(num(keys[8], 32, false))
	h.maxReconsumeTimes = int32(num(keys[9], 32, false))
	h.batch = req.ExtFields[keys[10]] == "true" || req.Code == remoting.ReqSendBatchMessage
	if h.topic == "" && err == nil {
		err = fmt.Errorf("header field %q (topic) is missing", keys[1])
	}
	return h, err
}

func errResponse(req *remoting.Command, code int16, format string, args ...any) *remoting.Command {
	return remoting.NewResponse(req, code, fmt.Sprintf(format, args...))
}

// handleSend stores a message or a batch and answers with its offsets.
func (b *Broker) handleSend(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	h, err := parseSendHeader(req)
	if err != nil {
		return errResponse(req, remoting.RespMessageIllegal, "bad send header: %v", err)
	}
	if err := ValidateTopicName(h.topic); err != nil {
		return errResponse(req, remoting.RespMessageIllegal, "%v", err)
	}
	if len(req.Body) > b.cfg.MaxMessageSize {
		return errResponse(req, remoting.RespMessageIllegal, "message body of %d bytes exceeds the limit of %d", len(req.Body), b.cfg.MaxMessageSize)
	}
	if len(h.properties) > remoting.MaxPropertiesLen {
		return errResponse(req, remoting.RespMessageIllegal, "properties of %d bytes exceed the limit of %d", len(h.properties), remoting.MaxPropertiesLen)
	}
	half := isHalfSend(h.sysFlag, []byte(h.properties))
	if half && h.batch {
		return errResponse(req, remoting.RespMessageIllegal, "a batch cannot be transactional")
	}
	dlq := false
	if IsRetryTopic(h.topic) {
		// The client's fallback when CONSUMER_SEND_MSG_BACK fails: a retry
		// that has used up its attempts goes to the dead-letter topic, as
		// Java's send handler does.
		maxTimes := h.maxReconsumeTimes
		if maxTimes <= 0 {
			maxTimes = 16
		}
		if h.reconsumeTimes >= maxTimes {
			h.topic, h.queueID, dlq = DLQTopic(strings.TrimPrefix(h.topic, RetryTopicPrefix)), 0, true
			props := remoting.ParseProperties([]byte(h.properties))
			delete(props, remoting.PropDelay)
			h.properties = string(remoting.EncodeProperties(props))
		}
	}
	tc, resp := b.topicForSend(req, h.topic, h.defaultTopicQueue)
	if resp != nil {
		return resp
	}
	qid := h.queueID
	if qid < 0 {
		qid = rand.Int32N(int32(tc.WriteQueues))
	}
	if dlq {
		qid = 0
		half = false
	}
	if int(qid) >= tc.WriteQueues {
		return errResponse(req, remoting.RespSystemError, "queueId %d is illegal: topic %s has %d write queues", qid, h.topic, tc.WriteQueues)
	}
	born := peerAddr(c)
	base := remoting.MessageExt{
		Topic: h.topic, QueueID: qid, Flag: h.flag, SysFlag: h.sysFlag, BornTimestamp: h.bornTimestamp,
		BornHost: born, ReconsumeTimes: h.reconsumeTimes,
	}
	var msgs []remoting.MessageExt
	if h.batch {
		if msgs, err = decodeBatch(req.Body, base); err != nil {
			return errResponse(req, remoting.RespMessageIllegal, "bad batch body: %v", err)
		}
	} else {
		base.Body = req.Body
		base.Properties = []byte(h.properties)
		msgs = []remoting.MessageExt{base}
	}
	if half {
		// Delay, if any, applies from the commit on (transaction.go).
		halfMessage(&msgs[0], h.producerGroup)
		b.txn.noteProducer(h.producerGroup, c)
		return b.appendAndRespond(req, msgs)
	}
	for i := range msgs {
		if err := b.sched.divert(&msgs[i]); err != nil {
			return errResponse(req, remoting.RespMessageIllegal, "%v", err)
		}
	}
	return b.appendAndRespond(req, msgs)
}

// topicForSend returns the topic's config, creating it when allowed.
func (b *Broker) topicForSend(req *remoting.Command, topic string, queues int) (TopicConfig, *remoting.Command) {
	tc, ok := b.topics.Get(topic)
	if !ok {
		if !b.cfg.AutoCreateTopics && !IsRetryTopic(topic) && !IsDLQTopic(topic) {
			return tc, errResponse(req, remoting.RespTopicNotExist, "topic %s does not exist on broker %s and auto-creation is off; create it first", topic, b.cfg.BrokerName)
		}
		if queues <= 0 {
			queues = b.cfg.DefaultTopicQueues
		}
		var err error
		var created bool
		if tc, created, err = b.topics.AutoCreate(topic, queues); err != nil {
			return tc, errResponse(req, remoting.RespSystemError, "create topic %s: %v", topic, err)
		}
		if created {
			// Registered before the send is answered, so that a consumer
			// started once it is acknowledged finds the topic's route.
			b.log.Info("topic auto-created", "topic", topic, "queues", tc.WriteQueues)
			b.register()
		}
	}
	if int32(tc.Perm)&remoting.PermWrite == 0 {
		return tc, errResponse(req, remoting.RespNoPermission, "topic %s is not writable", topic)
	}
	if tc.WriteQueues <= 0 {
		return tc, errResponse(req, remoting.RespNoPermission, "topic %s has no write queues", topic)
	}
	return tc, nil
}

// appendAndRespond stores msgs and builds the send response.
func (b *Broker) appendAndRespond(req *remoting.Command, msgs []remoting.MessageExt) *remoting.Command {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := b.appendReplicated(ctx, msgs)
	code := remoting.RespSuccess
	remark := ""
	var notStored errNotStored
	switch {
	case err == nil:
	case errors.As(err, &notStored):
		return errResponse(req, remoting.RespServiceNotAvailable, "not stored: %v", err)
	case errors.Is(err, ha.ErrNotEnoughReplicas):
		code, remark = remoting.RespSlaveNotAvailable, err.Error()
	case errors.Is(err, ha.ErrReplicationTimeout):
		code, remark = remoting.RespFlushSlaveTimeout, err.Error()
	case errors.Is(err, store.ErrFlushTimeout):
		code, remark = remoting.RespFlushDiskTimeout, err.Error()
	case errors.Is(err, store.ErrDiskFull), errors.Is(err, store.ErrFailed), errors.Is(err, store.ErrClosed):
		b.log.Warn("send refused", "err", err)
		return errResponse(req, remoting.RespServiceNotAvailable, "service not available: %v", err)
	case errors.Is(err, store.ErrInvalidMessage), errors.Is(err, store.ErrMessageTooLarge):
		return errResponse(req, remoting.RespMessageIllegal, "%v", err)
	default:
		b.log.Error("append failed", "err", err)
		return errResponse(req, remoting.RespSystemError, "store: %v", err)
	}
	// One request carries one topic (delayed messages: one real topic).
	t := msgs[0].Topic
	if rt, ok := remoting.PropertyValue(msgs[0].Properties, remoting.PropRealTopic); ok && t == scheduleTopic {
		t = string(rt)
	}
	bodyBytes := 0
	for i := range msgs {
		bodyBytes += len(msgs[i].Body)
	}
	b.metrics.msgsIn.WithLabelValues(t).Add(float64(len(msgs)))
	b.metrics.bytesIn.WithLabelValues(t).Add(float64(bodyBytes))
	resp := remoting.NewResponse(req, code, remark)
	var ids strings.Builder
	for i := range msgs {
		if i > 0 {
			ids.WriteByte(',')
		}
		ids.WriteString(remoting.OffsetMsgID(b.storeHost, msgs[i].PhysicalOffset))
	}
	m := &msgs[0]
	queueID, queueOffset := m.QueueID, m.QueueOffset
	if rq, ok := remoting.PropertyValue(m.Properties, remoting.PropRealQID); ok && (m.Topic == scheduleTopic || m.Topic == TransHalfTopic) {
		// A delayed or half message reports its real queue, as Java does
		// (and, for a half message, its offset in the half queue, which
		// END_TRANSACTION echoes as tranStateTableOffset).
		if n, err := strconv.Atoi(string(rq)); err == nil {
			queueID = int32(n)
		}
	}
	resp.ExtFields = map[string]string{
		"msgId":       ids.String(),
		"queueId":     strconv.Itoa(int(queueID)),
		"queueOffset": strconv.FormatInt(queueOffset, 10),
		"MSG_REGION":  "DefaultRegion",
		"TRACE_ON":    "true",
	}
	if m.Topic == TransHalfTopic {
		// Java's transaction id of a half message is its UNIQ_KEY.
		if uk, ok := remoting.PropertyValue(m.Properties, remoting.PropUniqKey); ok {
			resp.ExtFields["transactionId"] = string(uk)
		}
	}
	return resp
}

// decodeBatch splits a SEND_BATCH_MESSAGE body (PROTOCOL.md §4.3) into
// messages that share base's topic, queue and born fields. Messages without
// a UNIQ_KEY get one.
func decodeBatch(body []byte, base remoting.MessageExt) ([]remoting.MessageExt, error) {
	var msgs []remoting.MessageExt
	be := binary.BigEndian
	for p := 0; p < len(body); {
		if len(body)-p < 4+4+4+4+4+2 {
			return nil, fmt.Errorf("message %d: %d trailing bytes are too short for a record", len(msgs), len(body)-p)
		}
		total := int(be.Uint32(body[p:]))
		if total < 22 || total > len(body)-p {
			return nil, fmt.Errorf("message %d: total size %d outside [22, %d]", len(msgs), total, len(body)-p)
		}
		rec := body[p : p+total]
		m := base
		m.Flag = int32(be.Uint32(rec[12:]))
		bl := int(be.Uint32(rec[16:]))
		if bl < 0 || 20+bl+2 > total {
			return nil, fmt.Errorf("message %d: body length %d overruns its record", len(msgs), bl)
		}
		m.Body = rec[20 : 20+bl]
		pl := int(be.Uint16(rec[20+bl:]))
		if 22+bl+pl != total {
			return nil, fmt.Errorf("message %d: properties length %d does not end its record", len(msgs), pl)
		}
		m.Properties = rec[22+bl : total]
		if _, ok := remoting.PropertyValue(m.Properties, remoting.PropUniqKey); !ok {
			props := make([]byte, 0, len(m.Properties)+48)
			props = append(props, m.Properties...)
			m.Properties = remoting.AppendProperty(props, remoting.PropUniqKey, newUniqID())
		}
		msgs = append(msgs, m)
		p += total
	}
	if len(msgs) == 0 {
		return nil, errors.New("empty batch")
	}
	return msgs, nil
}

var uniqCounter atomic.Uint32

// newUniqID makes a 32-hex-digit unique message id in the client's format:
// a prefix from the process (pid), then time and a counter.
func newUniqID() string {
	var b [16]byte
	be := binary.BigEndian
	be.PutUint32(b[0:], 0x7F000001)
	be.PutUint16(b[4:], uint16(os.Getpid()))
	be.PutUint32(b[6:], 0x53545241) // "STRA": marks broker-made ids
	be.PutUint32(b[10:], uint32(time.Now().UnixMilli()))
	be.PutUint16(b[14:], uint16(uniqCounter.Add(1)))
	return fmt.Sprintf("%X", b[:])
}

// peerAddr returns the connection's remote address (the message's born
// host), or an empty one.
func peerAddr(c *remoting.Conn) netip.AddrPort {
	ra := c.RemoteAddr()
	if ra == nil {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	ap, err := netip.ParseAddrPort(ra.String())
	if err != nil {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (b *Broker) kickRegister() {
	select {
	case b.regKick <- struct{}{}:
	default:
	}
}
