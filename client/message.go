package client

import (
	"bytes"
	"compress/zlib"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// Message is a message to send, or the user part of a received one.
type Message struct {
	// Topic is the topic the message goes to (or came from).
	Topic string
	// Body is the payload; it must not be empty.
	Body []byte
	// Tag is the message's tag (TAGS property), which consumers filter on.
	Tag string
	// Keys are the message's keys (KEYS property, space-separated), for
	// lookups by key; a key must not contain a space.
	Keys []string
	// Properties are user properties. Names and values must not contain
	// the separators \x01 and \x02. On received messages it holds every
	// property, TAGS, KEYS and UNIQ_KEY included.
	Properties map[string]string
}

// MessageExt is a received message: the message and where it is stored.
type MessageExt struct {
	Message
	// MsgID is the producer's unique id (UNIQ_KEY property), or OffsetMsgID
	// when the message has none.
	MsgID string
	// OffsetMsgID is the store id: store host and commit-log offset.
	OffsetMsgID     string
	BrokerName      string
	QueueID         int
	QueueOffset     int64
	CommitLogOffset int64
	BornTime        time.Time
	BornHost        netip.AddrPort
	StoreTime       time.Time
	StoreHost       netip.AddrPort
	ReconsumeTimes  int
	SysFlag         int32
	Flag            int32
}

// properties encodes m's properties for the wire, adding TAGS, KEYS and,
// when uniq is set, UNIQ_KEY. It fails when a name or value holds a
// separator, or the result is too long for the record's 2-byte length.
func (m *Message) properties(uniq string) ([]byte, error) {
	props := make(map[string]string, len(m.Properties)+3)
	for k, v := range m.Properties {
		if k == "" || strings.ContainsAny(k, "\x01\x02") || strings.ContainsAny(v, "\x01\x02") {
			return nil, fmt.Errorf("client: property %q: names must be non-empty and neither names nor values may contain \\x01 or \\x02", k)
		}
		props[k] = v
	}
	if m.Tag != "" {
		if strings.ContainsAny(m.Tag, "\x01\x02") {
			return nil, errors.New("client: tag contains \\x01 or \\x02")
		}
		props[remoting.PropTags] = m.Tag
	}
	if len(m.Keys) > 0 {
		for _, k := range m.Keys {
			if k == "" || strings.ContainsAny(k, " \x01\x02") {
				return nil, fmt.Errorf("client: key %q: keys must be non-empty, without spaces, \\x01 or \\x02", k)
			}
		}
		props[remoting.PropKeys] = strings.Join(m.Keys, " ")
	}
	if uniq != "" {
		props[remoting.PropUniqKey] = uniq
	}
	b := remoting.EncodeProperties(props)
	if len(b) > remoting.MaxPropertiesLen {
		return nil, fmt.Errorf("client: properties of %d bytes exceed %d", len(b), remoting.MaxPropertiesLen)
	}
	return b, nil
}

// encodeBatch encodes a SEND_BATCH_MESSAGE body (PROTOCOL.md §4.3): per
// message TOTALSIZE, MAGICCODE 0, BODYCRC 0, FLAG, body with a 4-byte
// length, properties with a 2-byte length.
func encodeBatch(bodies, props [][]byte) []byte {
	n := 0
	for i := range bodies {
		n += 22 + len(bodies[i]) + len(props[i])
	}
	out := make([]byte, 0, n)
	be := binary.BigEndian
	for i, body := range bodies {
		total := 22 + len(body) + len(props[i])
		out = be.AppendUint32(out, uint32(total))
		out = be.AppendUint32(out, 0) // magic
		out = be.AppendUint32(out, 0) // body CRC
		out = be.AppendUint32(out, 0) // flag
		out = be.AppendUint32(out, uint32(len(body)))
		out = append(out, body...)
		out = be.AppendUint16(out, uint16(len(props[i])))
		out = append(out, props[i]...)
	}
	return out
}

// maxInflated bounds a decompressed body, so a hostile compressed body
// cannot exhaust memory: the largest frame.
const maxInflated = remoting.DefaultMaxFrameSize

// decodeMessages decodes a PULL_MESSAGE body: MessageExt records back to
// back (PROTOCOL.md §4.1). Each record must be well-formed; the loop ends
// because each record takes at least remoting.MinRecordSize bytes.
func decodeMessages(body []byte, brokerName string) ([]MessageExt, error) {
	var out []MessageExt
	for p := 0; p < len(body); {
		m, err := remoting.DecodeMessageExt(body[p:])
		if err != nil {
			return out, fmt.Errorf("client: pulled message %d at byte %d: %w", len(out), p, err)
		}
		p += remoting.RecordSize(body[p:])
		x, err := toMessageExt(&m, brokerName)
		if err != nil {
			return out, fmt.Errorf("client: pulled message %d (%s/%d@%d): %w", len(out), m.Topic, m.QueueID, m.QueueOffset, err)
		}
		out = append(out, x)
	}
	return out, nil
}

func toMessageExt(m *remoting.MessageExt, brokerName string) (MessageExt, error) {
	props := remoting.ParseProperties(m.Properties)
	body := m.Body
	if m.SysFlag&remoting.SysFlagCompressed != 0 {
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return MessageExt{}, fmt.Errorf("compressed body: %w", err)
		}
		var buf bytes.Buffer
		n, err := io.Copy(&buf, io.LimitReader(zr, maxInflated+1))
		if err != nil {
			return MessageExt{}, fmt.Errorf("compressed body: %w", err)
		}
		if n > maxInflated {
			return MessageExt{}, fmt.Errorf("compressed body inflates beyond %d bytes", maxInflated)
		}
		body = buf.Bytes()
	} else {
		body = bytes.Clone(body) // do not pin the whole response buffer
	}
	x := MessageExt{
		Message: Message{
			Topic:      m.Topic,
			Body:       body,
			Tag:        props[remoting.PropTags],
			Properties: props,
		},
		OffsetMsgID:     remoting.OffsetMsgID(m.StoreHost, m.PhysicalOffset),
		BrokerName:      brokerName,
		QueueID:         int(m.QueueID),
		QueueOffset:     m.QueueOffset,
		CommitLogOffset: m.PhysicalOffset,
		BornTime:        time.UnixMilli(m.BornTimestamp),
		BornHost:        m.BornHost,
		StoreTime:       time.UnixMilli(m.StoreTimestamp),
		StoreHost:       m.StoreHost,
		ReconsumeTimes:  int(m.ReconsumeTimes),
		SysFlag:         m.SysFlag,
		Flag:            m.Flag,
	}
	if k := props[remoting.PropKeys]; k != "" {
		x.Keys = strings.Fields(k)
	}
	x.MsgID = props[remoting.PropUniqKey]
	if x.MsgID == "" {
		x.MsgID = x.OffsetMsgID
	}
	return x, nil
}

// Unique message ids (UNIQ_KEY), in rocketmq-client-go's layout
// (PROTOCOL.md §3): 20 upper-case hex digits of a per-process prefix, then
// 12 lower-case hex digits of milliseconds since the start of the month
// (int32) and a counter (int16). The prefix is the host's IPv4 address, the
// pid and, where Java has a class-loader hash and the Go client a zero, 4
// random bytes: serverless processes often share a pid (1) and an address
// behind NAT, and the random part keeps their ids apart.
var uniq struct {
	once   sync.Once
	prefix string
	month  time.Time // start of the month the prefix was made in
	next   atomic.Uint32
}

func newUniqID() string {
	uniq.once.Do(func() {
		var b [10]byte
		ip := localIPv4()
		copy(b[:4], ip[:])
		binary.BigEndian.PutUint16(b[4:], uint16(os.Getpid()))
		_, _ = rand.Read(b[6:])
		uniq.prefix = strings.ToUpper(hex.EncodeToString(b[:]))
		now := time.Now()
		uniq.month = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, now.Location())
	})
	var b [6]byte
	binary.BigEndian.PutUint32(b[:], uint32(time.Since(uniq.month).Milliseconds()))
	binary.BigEndian.PutUint16(b[4:], uint16(uniq.next.Add(1)))
	return uniq.prefix + hex.EncodeToString(b[:])
}

// localIPv4 returns the first non-loopback IPv4 address of the host, or
// 127.0.0.1.
func localIPv4() [4]byte {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() {
				if ip4 := n.IP.To4(); ip4 != nil {
					return [4]byte(ip4)
				}
			}
		}
	}
	return [4]byte{127, 0, 0, 1}
}
