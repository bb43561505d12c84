package ha

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	magic     = "STRP"
	version   = 1
	helloLen  = 40 // fixed part of a hello
	answerLen = 36
	frameLen  = 20
	ackLen    = 8
	// maxName bounds a broker name in a hello (RocketMQ's limit is 127).
	maxName = 255
	// maxMessage bounds a refusal's message.
	maxMessage = 1024
)

// Answer statuses.
const (
	statusOK = iota
	statusWrongName
	statusSegmentSize
	statusAhead
	statusBehind
	statusNotLeader
	statusTruncate
	statusStale
	statusDenied
)

// ErrProtocol is a peer's violation of the replication protocol.
var ErrProtocol = errors.New("ha: protocol error")

// hello is the follower's opening message.
type hello struct {
	name        string
	id          int64
	segmentSize int64
	end         int64
	epoch       int64 // the epoch that wrote the follower's last bytes
	// empty: the follower's log holds no bytes (it starts where it ends,
	// e.g. rebuilt from the cold tier), so it has nothing that can have
	// diverged from the leader's.
	empty bool
	// accessKey and signature authenticate the follower when the leader
	// checks ACLs: the signature (remoting.Signature) is over fields().
	accessKey, signature string
}

// Hello flags (byte 5).
const (
	helloEmpty = 1 // the follower's log is empty
	helloAuth  = 2 // an access key and a signature follow the name
	helloFlags = helloEmpty | helloAuth
	// maxAuthField bounds the access key and the signature.
	maxAuthField = 255
)

// fields are what a hello's signature covers.
func (h hello) fields() map[string]string {
	return map[string]string{
		"brokerName": h.name, "brokerId": fmt.Sprint(h.id), "segmentSize": fmt.Sprint(h.segmentSize),
		"logEnd": fmt.Sprint(h.end), "epoch": fmt.Sprint(h.epoch),
	}
}

func (h hello) encode() []byte {
	b := make([]byte, helloLen+len(h.name), helloLen+len(h.name)+4+len(h.accessKey)+len(h.signature))
	copy(b, magic)
	b[4] = version
	if h.empty {
		b[5] |= helloEmpty
	}
	if h.accessKey != "" {
		b[5] |= helloAuth
	}
	binary.BigEndian.PutUint16(b[6:], uint16(len(h.name)))
	binary.BigEndian.PutUint64(b[8:], uint64(h.id))
	binary.BigEndian.PutUint64(b[16:], uint64(h.segmentSize))
	binary.BigEndian.PutUint64(b[24:], uint64(h.end))
	binary.BigEndian.PutUint64(b[32:], uint64(h.epoch))
	copy(b[helloLen:], h.name)
	if h.accessKey != "" {
		for _, f := range []string{h.accessKey, h.signature} {
			b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
			b = append(b, f...)
		}
	}
	return b
}

// readHello reads and checks a hello; it allocates nothing beyond the
// bounded name.
func readHello(r io.Reader) (hello, error) {
	var b [helloLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return hello{}, fmt.Errorf("ha: read hello: %w", err)
	}
	h, n, err := parseHello(b[:])
	if err != nil {
		return h, err
	}
	name := make([]byte, n)
	if _, err := io.ReadFull(r, name); err != nil {
		return hello{}, fmt.Errorf("ha: read hello: %w", err)
	}
	h.name = string(name)
	if b[5]&helloAuth != 0 {
		for _, f := range []*string{&h.accessKey, &h.signature} {
			var n [2]byte
			if _, err := io.ReadFull(r, n[:]); err != nil {
				return hello{}, fmt.Errorf("ha: read hello: %w", err)
			}
			l := int(binary.BigEndian.Uint16(n[:]))
			if l == 0 || l > maxAuthField {
				return hello{}, fmt.Errorf("%w: hello credential field of %d bytes", ErrProtocol, l)
			}
			v := make([]byte, l)
			if _, err := io.ReadFull(r, v); err != nil {
				return hello{}, fmt.Errorf("ha: read hello: %w", err)
			}
			*f = string(v)
		}
	}
	return h, nil
}

// parseHello decodes a hello's fixed part and returns its name length.
func parseHello(b []byte) (hello, int, error) {
	if len(b) < helloLen || string(b[:4]) != magic {
		return hello{}, 0, fmt.Errorf("%w: not a replication hello", ErrProtocol)
	}
	if b[4] != version {
		return hello{}, 0, fmt.Errorf("%w: protocol version %d, want %d", ErrProtocol, b[4], version)
	}
	n := int(binary.BigEndian.Uint16(b[6:]))
	h := hello{
		id:          int64(binary.BigEndian.Uint64(b[8:])),
		segmentSize: int64(binary.BigEndian.Uint64(b[16:])),
		end:         int64(binary.BigEndian.Uint64(b[24:])),
		epoch:       int64(binary.BigEndian.Uint64(b[32:])),
		empty:       b[5]&helloEmpty != 0,
	}
	switch {
	case b[5]&^helloFlags != 0:
		return h, 0, fmt.Errorf("%w: unknown hello flags %#x", ErrProtocol, b[5])
	case n == 0 || n > maxName:
		return h, 0, fmt.Errorf("%w: broker name of %d bytes", ErrProtocol, n)
	case h.id < 0: // under failover, replica 0 may follow
		return h, 0, fmt.Errorf("%w: follower broker id %d", ErrProtocol, h.id)
	case h.segmentSize <= 0 || h.end < 0 || h.epoch < 0:
		return h, 0, fmt.Errorf("%w: segment size %d, log end %d, epoch %d", ErrProtocol, h.segmentSize, h.end, h.epoch)
	}
	return h, n, nil
}

// answer is the leader's reply to a hello.
type answer struct {
	status     int
	start, end int64
	epoch      int64   // the leader's epoch
	history    History // the leader's epochs (accepted followers keep them)
	msg        string
}

func (a answer) encode() []byte {
	msg := a.msg
	if len(msg) > maxMessage {
		msg = msg[:maxMessage]
	}
	h := a.history
	if len(h) > maxHistory {
		h = h[len(h)-maxHistory:]
	}
	b := make([]byte, answerLen+len(msg)+16*len(h))
	copy(b, magic)
	b[4] = byte(a.status)
	binary.BigEndian.PutUint16(b[6:], uint16(len(msg)))
	binary.BigEndian.PutUint64(b[8:], uint64(a.start))
	binary.BigEndian.PutUint64(b[16:], uint64(a.end))
	binary.BigEndian.PutUint64(b[24:], uint64(a.epoch))
	binary.BigEndian.PutUint32(b[32:], uint32(len(h)))
	p := answerLen + copy(b[answerLen:], msg)
	for _, e := range h {
		binary.BigEndian.PutUint64(b[p:], uint64(e.Epoch))
		binary.BigEndian.PutUint64(b[p+8:], uint64(e.Start))
		p += 16
	}
	return b
}

func readAnswer(r io.Reader) (answer, error) {
	var b [answerLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return answer{}, fmt.Errorf("ha: read the leader's answer: %w", err)
	}
	if string(b[:4]) != magic {
		return answer{}, fmt.Errorf("%w: not a replication answer", ErrProtocol)
	}
	a := answer{status: int(b[4]), start: int64(binary.BigEndian.Uint64(b[8:])), end: int64(binary.BigEndian.Uint64(b[16:])),
		epoch: int64(binary.BigEndian.Uint64(b[24:]))}
	n, k := int(binary.BigEndian.Uint16(b[6:])), int(binary.BigEndian.Uint32(b[32:]))
	if n > maxMessage || k > maxHistory {
		return a, fmt.Errorf("%w: answer with a %d-byte message and %d epochs", ErrProtocol, n, k)
	}
	rest := make([]byte, n+16*k)
	if _, err := io.ReadFull(r, rest); err != nil {
		return a, fmt.Errorf("ha: read the leader's answer: %w", err)
	}
	a.msg = string(rest[:n])
	for p := n; p < len(rest); p += 16 {
		a.history = append(a.history, Epoch{Epoch: int64(binary.BigEndian.Uint64(rest[p:])), Start: int64(binary.BigEndian.Uint64(rest[p+8:]))})
	}
	if !a.history.valid() {
		return a, fmt.Errorf("%w: the leader's epochs do not increase", ErrProtocol)
	}
	return a, nil
}

// frameHeader precedes a frame's log bytes.
type frameHeader struct {
	off, leaderEnd int64
	n              int
}

func (f frameHeader) put(b []byte) {
	binary.BigEndian.PutUint64(b, uint64(f.off))
	binary.BigEndian.PutUint64(b[8:], uint64(f.leaderEnd))
	binary.BigEndian.PutUint32(b[16:], uint32(f.n))
}

// parseFrameHeader decodes a frame header, refusing lengths over max.
func parseFrameHeader(b []byte, max int) (frameHeader, error) {
	if len(b) < frameLen {
		return frameHeader{}, fmt.Errorf("%w: short frame header", ErrProtocol)
	}
	f := frameHeader{
		off:       int64(binary.BigEndian.Uint64(b)),
		leaderEnd: int64(binary.BigEndian.Uint64(b[8:])),
		n:         int(binary.BigEndian.Uint32(b[16:])),
	}
	if f.n > max || f.off < 0 || f.leaderEnd < f.off+int64(f.n) {
		return f, fmt.Errorf("%w: frame of %d bytes at %d (leader end %d, limit %d)", ErrProtocol, f.n, f.off, f.leaderEnd, max)
	}
	return f, nil
}
