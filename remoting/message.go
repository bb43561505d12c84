package remoting

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
)

// Magic codes of the 4.x (V1) commit-log record format.
const (
	// MessageMagic starts every stored message record.
	MessageMagic uint32 = 0xDAA320A7
	// BlankMagic marks the unused end of a commit-log segment. It is never
	// sent to a client.
	BlankMagic uint32 = 0xCBD43194
)

// Bits of a message's SysFlag.
const (
	SysFlagCompressed  int32 = 0x1  // body is zlib-compressed by the producer
	SysFlagMultiTags   int32 = 0x2  // TAGS holds several tags
	SysFlagTxPrepared  int32 = 0x4  // transactional half message
	SysFlagTxCommit    int32 = 0x8  // transaction committed
	SysFlagTxRollback  int32 = 0xC  // transaction rolled back
	SysFlagTxMask      int32 = 0xC  // transaction type bits
	SysFlagBornHostV6  int32 = 0x10 // BORNHOST is 16+4 bytes
	SysFlagStoreHostV6 int32 = 0x20 // STOREHOST is 16+4 bytes
)

// Limits of the record format.
const (
	// MaxTopicLen is the longest topic the record can carry (1-byte length).
	MaxTopicLen = 255
	// MaxPropertiesLen is the longest properties string (signed 2-byte length).
	MaxPropertiesLen = 32767
)

// Byte offsets of the fixed-position fields of a MessageExt record.
const (
	OffTotalSize      = 0
	OffMagic          = 4
	OffBodyCRC        = 8
	OffQueueID        = 12
	OffFlag           = 16
	OffQueueOffset    = 20
	OffPhysicalOffset = 28
	OffSysFlag        = 36
	OffBornTimestamp  = 40
	OffBornHost       = 48
)

// MinRecordSize is the size of a record with IPv4 hosts, an empty body, an
// empty topic and no properties.
const MinRecordSize = OffBornHost + 8 + 8 + 8 + 4 + 8 + 4 + 1 + 2

// ErrMalformedMessage is returned (wrapped) by DecodeMessageExt for any record
// whose fields do not fit together.
var ErrMalformedMessage = errors.New("remoting: malformed message record")

// MessageExt is one stored message as RocketMQ's MessageExt record lays it
// out (PROTOCOL.md §4.1). Body and Properties alias the decoded buffer.
type MessageExt struct {
	Topic                     string
	QueueID                   int32
	Flag                      int32
	QueueOffset               int64
	PhysicalOffset            int64 // commit-log offset of the record
	SysFlag                   int32 // the host-size bits are derived from BornHost/StoreHost on encode
	BornTimestamp             int64 // ms since the epoch
	BornHost                  netip.AddrPort
	StoreTimestamp            int64 // ms since the epoch
	StoreHost                 netip.AddrPort
	ReconsumeTimes            int32
	PreparedTransactionOffset int64
	BodyCRC                   uint32 // filled by Encode, checked by nobody on the Go side
	Body                      []byte
	Properties                []byte // encoded properties string (see AppendProperty)
}

func hostLen(a netip.AddrPort) int {
	if a.Addr().Is6() && !a.Addr().Is4In6() {
		return 20
	}
	return 8
}

// Size returns the encoded length of m in bytes.
func (m *MessageExt) Size() int {
	return OffBornHost + hostLen(m.BornHost) + 8 + hostLen(m.StoreHost) + 4 + 8 +
		4 + len(m.Body) + 1 + len(m.Topic) + 2 + len(m.Properties)
}

// Validate reports whether m can be encoded.
func (m *MessageExt) Validate() error {
	if len(m.Topic) > MaxTopicLen {
		return fmt.Errorf("remoting: topic of %d bytes exceeds %d", len(m.Topic), MaxTopicLen)
	}
	if len(m.Properties) > MaxPropertiesLen {
		return fmt.Errorf("remoting: properties of %d bytes exceed %d", len(m.Properties), MaxPropertiesLen)
	}
	return nil
}

// BodyChecksum is the BODYCRC value Java brokers store: CRC32 (IEEE) of the
// body with the sign bit cleared.
func BodyChecksum(body []byte) uint32 { return crc32.ChecksumIEEE(body) & 0x7FFFFFFF }

// Encode writes m into dst, which must hold at least m.Size() bytes, and
// returns the number of bytes written. It fills BODYCRC and the host-size
// bits of SYSFLAG. The caller must have checked Validate.
func (m *MessageExt) Encode(dst []byte) int {
	n := m.Size()
	b := dst[:n]
	be := binary.BigEndian
	sys := m.SysFlag &^ (SysFlagBornHostV6 | SysFlagStoreHostV6)
	if hostLen(m.BornHost) == 20 {
		sys |= SysFlagBornHostV6
	}
	if hostLen(m.StoreHost) == 20 {
		sys |= SysFlagStoreHostV6
	}
	m.BodyCRC = BodyChecksum(m.Body)
	be.PutUint32(b[OffTotalSize:], uint32(n))
	be.PutUint32(b[OffMagic:], MessageMagic)
	be.PutUint32(b[OffBodyCRC:], m.BodyCRC)
	be.PutUint32(b[OffQueueID:], uint32(m.QueueID))
	be.PutUint32(b[OffFlag:], uint32(m.Flag))
	be.PutUint64(b[OffQueueOffset:], uint64(m.QueueOffset))
	be.PutUint64(b[OffPhysicalOffset:], uint64(m.PhysicalOffset))
	be.PutUint32(b[OffSysFlag:], uint32(sys))
	be.PutUint64(b[OffBornTimestamp:], uint64(m.BornTimestamp))
	p := OffBornHost
	p += putHost(b[p:], m.BornHost)
	be.PutUint64(b[p:], uint64(m.StoreTimestamp))
	p += 8
	p += putHost(b[p:], m.StoreHost)
	be.PutUint32(b[p:], uint32(m.ReconsumeTimes))
	p += 4
	be.PutUint64(b[p:], uint64(m.PreparedTransactionOffset))
	p += 8
	be.PutUint32(b[p:], uint32(len(m.Body)))
	p += 4
	p += copy(b[p:], m.Body)
	b[p] = byte(len(m.Topic))
	p++
	p += copy(b[p:], m.Topic)
	be.PutUint16(b[p:], uint16(len(m.Properties)))
	p += 2
	copy(b[p:], m.Properties)
	return n
}

func putHost(b []byte, a netip.AddrPort) int {
	if hostLen(a) == 20 {
		ip := a.Addr().As16()
		copy(b, ip[:])
		binary.BigEndian.PutUint32(b[16:], uint32(a.Port()))
		return 20
	}
	var ip [4]byte
	if a.Addr().Is4() || a.Addr().Is4In6() {
		ip = a.Addr().Unmap().As4()
	}
	copy(b, ip[:])
	binary.BigEndian.PutUint32(b[4:], uint32(a.Port()))
	return 8
}

func getHost(b []byte, v6 bool) (netip.AddrPort, int) {
	if v6 {
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[:16])), uint16(binary.BigEndian.Uint32(b[16:]))), 20
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), uint16(binary.BigEndian.Uint32(b[4:]))), 8
}

// DecodeMessageExt decodes the record at the start of b. The record's
// TOTALSIZE must fit in b and match the sum of its fields exactly; the magic
// must be MessageMagic. Body, Properties alias b.
func DecodeMessageExt(b []byte) (MessageExt, error) {
	var m MessageExt
	if len(b) < MinRecordSize {
		return m, fmt.Errorf("%w: %d bytes is shorter than the minimum %d", ErrMalformedMessage, len(b), MinRecordSize)
	}
	be := binary.BigEndian
	total := int64(be.Uint32(b[OffTotalSize:]))
	if total < MinRecordSize || total > int64(len(b)) {
		return m, fmt.Errorf("%w: total size %d outside [%d, %d]", ErrMalformedMessage, total, MinRecordSize, len(b))
	}
	if magic := be.Uint32(b[OffMagic:]); magic != MessageMagic {
		return m, fmt.Errorf("%w: magic %#x", ErrMalformedMessage, magic)
	}
	b = b[:total]
	m.BodyCRC = be.Uint32(b[OffBodyCRC:])
	m.QueueID = int32(be.Uint32(b[OffQueueID:]))
	m.Flag = int32(be.Uint32(b[OffFlag:]))
	m.QueueOffset = int64(be.Uint64(b[OffQueueOffset:]))
	m.PhysicalOffset = int64(be.Uint64(b[OffPhysicalOffset:]))
	m.SysFlag = int32(be.Uint32(b[OffSysFlag:]))
	m.BornTimestamp = int64(be.Uint64(b[OffBornTimestamp:]))
	need := MinRecordSize
	if m.SysFlag&SysFlagBornHostV6 != 0 {
		need += 12
	}
	if m.SysFlag&SysFlagStoreHostV6 != 0 {
		need += 12
	}
	if int(total) < need {
		return m, fmt.Errorf("%w: total size %d too small for its host fields", ErrMalformedMessage, total)
	}
	p := OffBornHost
	var n int
	m.BornHost, n = getHost(b[p:], m.SysFlag&SysFlagBornHostV6 != 0)
	p += n
	m.StoreTimestamp = int64(be.Uint64(b[p:]))
	p += 8
	m.StoreHost, n = getHost(b[p:], m.SysFlag&SysFlagStoreHostV6 != 0)
	p += n
	m.ReconsumeTimes = int32(be.Uint32(b[p:]))
	p += 4
	m.PreparedTransactionOffset = int64(be.Uint64(b[p:]))
	p += 8
	bodyLen := int64(be.Uint32(b[p:]))
	p += 4
	// Remaining after the body: 1 (topic len) + 2 (properties len) at least.
	if bodyLen > total-int64(p)-3 {
		return m, fmt.Errorf("%w: body length %d overruns the record", ErrMalformedMessage, bodyLen)
	}
	m.Body = b[p : p+int(bodyLen) : p+int(bodyLen)]
	p += int(bodyLen)
	topicLen := int(b[p])
	p++
	if topicLen > int(total)-p-2 {
		return m, fmt.Errorf("%w: topic length %d overruns the record", ErrMalformedMessage, topicLen)
	}
	m.Topic = string(b[p : p+topicLen])
	p += topicLen
	propLen := int(int16(be.Uint16(b[p:])))
	p += 2
	if propLen < 0 || p+propLen != int(total) {
		return m, fmt.Errorf("%w: properties length %d does not end the record (%d of %d bytes)", ErrMalformedMessage, propLen, p, total)
	}
	m.Properties = b[p : p+propLen : p+propLen]
	return m, nil
}

// RecordSize returns the TOTALSIZE field of the record at the start of b, or
// 0 if b is too short to hold one.
func RecordSize(b []byte) int {
	if len(b) < 4 {
		return 0
	}
	return int(binary.BigEndian.Uint32(b))
}

// OffsetMsgID is the offset message id of a stored message (Java
// MessageDecoder.createMessageId): upper-case hex of the store host's IP (4
// or 16 bytes), its port (4 bytes) and the commit-log offset (8 bytes).
func OffsetMsgID(storeHost netip.AddrPort, commitLogOffset int64) string {
	var b [28]byte
	n := putHost(b[:], storeHost)
	binary.BigEndian.PutUint64(b[n:], uint64(commitLogOffset))
	const hexUpper = "0123456789ABCDEF"
	out := make([]byte, 2*(n+8))
	for i, c := range b[:n+8] {
		out[2*i], out[2*i+1] = hexUpper[c>>4], hexUpper[c&15]
	}
	return string(out)
}

// ParseOffsetMsgID splits an offset message id into store host and
// commit-log offset.
func ParseOffsetMsgID(id string) (netip.AddrPort, int64, error) {
	if len(id) != 32 && len(id) != 56 {
		return netip.AddrPort{}, 0, fmt.Errorf("remoting: offset message id %q has %d hex digits, want 32 or 56", id, len(id))
	}
	b := make([]byte, len(id)/2)
	for i := range b {
		hi, lo := unhex(id[2*i]), unhex(id[2*i+1])
		if hi < 0 || lo < 0 {
			return netip.AddrPort{}, 0, fmt.Errorf("remoting: offset message id %q is not hex", id)
		}
		b[i] = byte(hi<<4 | lo)
	}
	host, n := getHost(b, len(b) == 28)
	return host, int64(binary.BigEndian.Uint64(b[n:])), nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// ValidNameByte reports whether b may appear in a topic or group name
// (RocketMQ 4.x: ASCII letters, digits, '%', '|', '_' and '-').
func ValidNameByte(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	case b == '%', b == '|', b == '_', b == '-':
		return true
	}
	return false
}
