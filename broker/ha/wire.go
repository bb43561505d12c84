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
	helloLen  = 32 // fixed part of a hello
	answerLen = 24
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
)

// ErrProtocol is a peer's violation of the replication protocol.
var ErrProtocol = errors.New("ha: protocol error")

// hello is the follower's opening message.
type hello struct {
	name        string
	id          int64
	segmentSize int64
	end         int64
}

func (h hello) encode() []byte {
	b := make([]byte, helloLen+len(h.name))
	copy(b, magic)
	b[4] = version
	binary.BigEndian.PutUint16(b[6:], uint16(len(h.name)))
	binary.BigEndian.PutUint64(b[8:], uint64(h.id))
	binary.BigEndian.PutUint64(b[16:], uint64(h.segmentSize))
	binary.BigEndian.PutUint64(b[24:], uint64(h.end))
	copy(b[helloLen:], h.name)
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
	}
	switch {
	case n == 0 || n > maxName:
		return h, 0, fmt.Errorf("%w: broker name of %d bytes", ErrProtocol, n)
	case h.id < 1:
		return h, 0, fmt.Errorf("%w: follower broker id %d", ErrProtocol, h.id)
	case h.segmentSize <= 0 || h.end < 0:
		return h, 0, fmt.Errorf("%w: segment size %d, log end %d", ErrProtocol, h.segmentSize, h.end)
	}
	return h, n, nil
}

// answer is the leader's reply to a hello.
type answer struct {
	status     int
	start, end int64
	msg        string
}

func (a answer) encode() []byte {
	msg := a.msg
	if len(msg) > maxMessage {
		msg = msg[:maxMessage]
	}
	b := make([]byte, answerLen+len(msg))
	copy(b, magic)
	b[4] = byte(a.status)
	binary.BigEndian.PutUint16(b[6:], uint16(len(msg)))
	binary.BigEndian.PutUint64(b[8:], uint64(a.start))
	binary.BigEndian.PutUint64(b[16:], uint64(a.end))
	copy(b[answerLen:], msg)
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
	a := answer{status: int(b[4]), start: int64(binary.BigEndian.Uint64(b[8:])), end: int64(binary.BigEndian.Uint64(b[16:]))}
	n := int(binary.BigEndian.Uint16(b[6:]))
	if n > maxMessage {
		return a, fmt.Errorf("%w: answer message of %d bytes", ErrProtocol, n)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return a, fmt.Errorf("ha: read the leader's answer: %w", err)
	}
	a.msg = string(msg)
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
