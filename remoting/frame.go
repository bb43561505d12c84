package remoting

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Bits of Command.Flag (Java RemotingCommand).
const (
	// FlagResponse marks a response; it is matched to its request by Opaque.
	FlagResponse int32 = 1
	// FlagOneway marks a request that expects no response. The Go client never
	// sets it, even for its fire-and-forget requests (PROTOCOL.md §1.2), so a
	// handler must not rely on it to decide whether to reply.
	FlagOneway int32 = 2
)

// DefaultMaxFrameSize is the largest frame accepted when an option leaves the
// limit at zero: 16 MiB, Java RocketMQ's frameMaxLength. It bounds the value of
// the 4-byte length prefix (the bytes that follow the prefix).
const DefaultMaxFrameSize = 16 << 20

// ProtocolVersion is the version Strata puts in the headers it creates: 317,
// RocketMQ V4_7_1, which is what rocketmq-client-go sends.
const ProtocolVersion int16 = 317

// Values of Command.Language.
const (
	// LanguageJava is what Java brokers and name servers send. NewResponse
	// uses it: every 4.x client knows it, and the Go client treats the field
	// as informational.
	LanguageJava = "JAVA"
	// LanguageGo is what rocketmq-client-go sends; NewRequest uses it.
	LanguageGo = "GO"
)

// SerializeType is the header encoding of a frame: the high byte of the
// second int32 of a frame (PROTOCOL.md §1.1).
type SerializeType byte

const (
	// SerializeJSON is the JSON header (PROTOCOL.md §1.2). Strata always
	// writes it; the Go client always sends it.
	SerializeJSON SerializeType = 0
	// SerializeRocketMQ is the binary header (PROTOCOL.md §1.3). Strata
	// decodes it and can encode it (AppendFrame), but does not send it.
	SerializeRocketMQ SerializeType = 1
)

const (
	// maxHeaderLen is the largest header the 24-bit length field can describe.
	maxHeaderLen = 1<<24 - 1
	// binaryFixedLen is the size of a binary header with no remark and no extFields.
	binaryFixedLen = 2 + 1 + 2 + 4 + 4 + 4 + 4
	// eagerFrameRead is the largest frame buffer allocated in one go before
	// its bytes have arrived; longer frames grow as data comes in, so a peer
	// must send the bytes it announces before they cost memory.
	eagerFrameRead = 64 << 10
	// pooledHeadCap is the largest header buffer returned to headPool.
	pooledHeadCap = 64 << 10
)

var (
	// ErrFrameTooLarge is wrapped by the errors of ReadCommand when a frame's
	// length prefix exceeds the limit (nothing is allocated for it), and by
	// the encoders and Conn's writes when a command does not fit a frame or
	// the connection's limit.
	ErrFrameTooLarge = errors.New("remoting: frame too large")
	// ErrMalformedFrame is wrapped by the errors of ReadCommand and
	// DecodeFrame for any frame that cannot be decoded: a length prefix below
	// 4, an unknown serialize type, a header length beyond the frame, or a
	// header that is not valid JSON/binary or has non-string extFields values.
	// The error text says which check failed.
	ErrMalformedFrame = errors.New("remoting: malformed frame")
	// ErrBadHeaderField is wrapped by Command.ExtInt64 and ExtInt32 when a
	// header field is missing or not a decimal integer; the text names the
	// field. Handlers answer such requests with an error response.
	ErrBadHeaderField = errors.New("remoting: bad header field")
)

// Command is one remoting frame: a request, a response, or a oneway request.
// Commands decoded from the wire own their strings; Body aliases the buffer
// the frame was read into (a fresh one per frame with ReadCommand and Conn).
type Command struct {
	// Code is a request code (Req*) on requests and a response code (Resp*)
	// on responses.
	Code int16
	// Language names the sender's implementation language ("JAVA", "GO").
	// Informational.
	Language string
	// Version is the sender's protocol version, informational (ProtocolVersion).
	Version int16
	// Opaque matches a response to its request; Conn.Invoke assigns it.
	Opaque int32
	// Flag holds FlagResponse and FlagOneway.
	Flag int32
	// Remark is the error text of a failed response; usually empty otherwise.
	Remark string
	// ExtFields is the request or response header (custom header). Decoding
	// leaves it nil when the frame carries no fields.
	ExtFields map[string]string
	// Body is the payload after the header; nil when empty.
	Body []byte
}

// NewRequest returns a request with Language "GO" and Version
// ProtocolVersion. ext and body are used as given, not copied. The opaque is
// assigned by Conn.Invoke or Conn.InvokeOneway.
func NewRequest(code int16, ext map[string]string, body []byte) *Command {
	return &Command{
		Code:      code,
		Language:  LanguageGo,
		Version:   ProtocolVersion,
		ExtFields: ext,
		Body:      body,
	}
}

// NewResponse returns a response to req with the given code and remark: it
// copies req's opaque and sets FlagResponse. Language is "JAVA" (see
// LanguageJava), Version is ProtocolVersion.
func NewResponse(req *Command, code int16, remark string) *Command {
	return &Command{
		Code:     code,
		Language: LanguageJava,
		Version:  ProtocolVersion,
		Opaque:   req.Opaque,
		Flag:     FlagResponse,
		Remark:   remark,
	}
}

// IsResponse reports whether c is a response (FlagResponse is set).
func (c *Command) IsResponse() bool { return c.Flag&FlagResponse != 0 }

// IsOneway reports whether c is a request that asked for no response
// (FlagOneway is set). See FlagOneway for why false proves nothing.
func (c *Command) IsOneway() bool { return c.Flag&FlagOneway != 0 }

// Ext returns the header field key, or "" if it is absent.
func (c *Command) Ext(key string) string { return c.ExtFields[key] }

// SetExt sets the header field key, allocating ExtFields if needed.
func (c *Command) SetExt(key, value string) {
	if c.ExtFields == nil {
		c.ExtFields = make(map[string]string)
	}
	c.ExtFields[key] = value
}

// ExtInt64 parses the header field key as a decimal int64. A missing field or
// a value that is not an integer gives an error that wraps ErrBadHeaderField
// and names the field.
func (c *Command) ExtInt64(key string) (int64, error) {
	v, ok := c.ExtFields[key]
	if !ok {
		return 0, fmt.Errorf("%w: %q is missing", ErrBadHeaderField, key)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not a 64-bit integer: %q", ErrBadHeaderField, key, v)
	}
	return n, nil
}

// ExtInt32 is ExtInt64 for int32 fields (queueId, sysFlag, maxMsgNums).
func (c *Command) ExtInt32(key string) (int32, error) {
	v, ok := c.ExtFields[key]
	if !ok {
		return 0, fmt.Errorf("%w: %q is missing", ErrBadHeaderField, key)
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not a 32-bit integer: %q", ErrBadHeaderField, key, v)
	}
	return int32(n), nil
}

// String describes c for logs and test failures (no body bytes).
func (c *Command) String() string {
	kind := "request"
	name := RequestCodeName(c.Code)
	if c.IsResponse() {
		kind = "response"
		name = ResponseCodeName(c.Code)
	}
	return fmt.Sprintf("%s %s opaque=%d flag=%d remark=%q ext=%v body=%dB",
		kind, name, c.Opaque, c.Flag, c.Remark, c.ExtFields, len(c.Body))
}

// sortedKeys returns the keys of m in byte order, using buf when it is large
// enough. Encoders sort so that headers are deterministic.
func sortedKeys(m map[string]string, buf []string) []string {
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// AppendJSONHeader appends c's JSON header (PROTOCOL.md §1.2) to dst: the
// keys code, language, version, opaque, flag, remark and extFields, in that
// order (the order rocketmq-client-go writes), extFields with its keys sorted
// and an empty object when there are none. Strings that are not valid UTF-8
// are written with U+FFFD in place of the bad bytes, as encoding/json does.
func (c *Command) AppendJSONHeader(dst []byte) []byte {
	dst = append(dst, `{"code":`...)
	dst = strconv.AppendInt(dst, int64(c.Code), 10)
	dst = append(dst, `,"language":`...)
	dst = appendJSONString(dst, c.Language)
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, int64(c.Version), 10)
	dst = append(dst, `,"opaque":`...)
	dst = strconv.AppendInt(dst, int64(c.Opaque), 10)
	dst = append(dst, `,"flag":`...)
	dst = strconv.AppendInt(dst, int64(c.Flag), 10)
	dst = append(dst, `,"remark":`...)
	dst = appendJSONString(dst, c.Remark)
	dst = append(dst, `,"extFields":{`...)
	var buf [16]string
	for i, k := range sortedKeys(c.ExtFields, buf[:]) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSONString(dst, c.ExtFields[k])
	}
	return append(dst, "}}"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// languageCodes are Java LanguageCode's byte values, used by the binary header.
var languageCodes = []string{
	"JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER",
	"HTTP", "GO", "PHP", "OMS", "RUST", "NODE_JS",
}

const languageOther = 7

func languageByte(name string) byte {
	if i := slices.Index(languageCodes, name); i >= 0 {
		return byte(i)
	}
	return languageOther
}

func languageName(b byte) string {
	if int(b) < len(languageCodes) {
		return languageCodes[b]
	}
	return languageCodes[languageOther]
}

// AppendBinaryHeader appends c's ROCKETMQ binary header (PROTOCOL.md §1.3) to
// dst, extFields sorted by key. Language is written as its Java LanguageCode
// byte; names Java does not know become OTHER. It fails if a key is longer
// than the format's 2-byte length allows.
func (c *Command) AppendBinaryHeader(dst []byte) ([]byte, error) {
	if len(c.Remark) > math.MaxInt32 {
		return dst, fmt.Errorf("%w: remark of %d bytes", ErrFrameTooLarge, len(c.Remark))
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.Code))
	dst = append(dst, languageByte(c.Language))
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.Version))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.Opaque))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.Flag))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(c.Remark)))
	dst = append(dst, c.Remark...)
	lenAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	var buf [16]string
	for _, k := range sortedKeys(c.ExtFields, buf[:]) {
		v := c.ExtFields[k]
		if len(k) > math.MaxInt16 {
			return dst, fmt.Errorf("%w: extFields key of %d bytes does not fit the binary header", ErrFrameTooLarge, len(k))
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(k)))
		dst = append(dst, k...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
		dst = append(dst, v...)
	}
	extLen := len(dst) - lenAt - 4
	if extLen > math.MaxInt32 {
		return dst, fmt.Errorf("%w: extFields of %d bytes", ErrFrameTooLarge, extLen)
	}
	binary.BigEndian.PutUint32(dst[lenAt:], uint32(extLen))
	return dst, nil
}

// appendHead appends the length prefix, the serialize type and header length
// word, and the header of c: everything of the frame but the body.
func (c *Command) appendHead(dst []byte, st SerializeType) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	var err error
	switch st {
	case SerializeJSON:
		dst = c.AppendJSONHeader(dst)
	case SerializeRocketMQ:
		dst, err = c.AppendBinaryHeader(dst)
	default:
		err = fmt.Errorf("remoting: unknown serialize type %d", st)
	}
	if err != nil {
		return dst[:start], err
	}
	hlen := len(dst) - start - 8
	if hlen > maxHeaderLen {
		return dst[:start], fmt.Errorf("%w: header of %d bytes exceeds the 24-bit header length", ErrFrameTooLarge, hlen)
	}
	total := 4 + hlen + len(c.Body)
	if total > math.MaxInt32 {
		return dst[:start], fmt.Errorf("%w: %d bytes do not fit the 4-byte length", ErrFrameTooLarge, total)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(total))
	binary.BigEndian.PutUint32(dst[start+4:], uint32(st)<<24|uint32(hlen))
	return dst, nil
}

// AppendFrame appends the whole frame of c, length prefix included, with the
// header encoded as st.
func (c *Command) AppendFrame(dst []byte, st SerializeType) ([]byte, error) {
	dst, err := c.appendHead(dst, st)
	if err != nil {
		return dst, err
	}
	return append(dst, c.Body...), nil
}

// headPool recycles the buffers WriteTo encodes headers into.
var headPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// WriteTo writes c as one frame with a JSON header. The length prefix and
// header go in one buffer and the body in a second, handed to w together as
// net.Buffers: a net.Conn gets them in a single writev, and the body is
// never copied. WriteTo does not check a size limit beyond what the format
// can express; Conn checks its MaxFrameSize before writing.
func (c *Command) WriteTo(w io.Writer) (int64, error) {
	bp := headPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= pooledHeadCap {
			headPool.Put(bp)
		}
	}()
	head, err := c.appendHead((*bp)[:0], SerializeJSON)
	*bp = head[:0]
	if err != nil {
		return 0, err
	}
	bufs := net.Buffers{head}
	if len(c.Body) > 0 {
		bufs = append(bufs, c.Body)
	}
	return bufs.WriteTo(w)
}

// frameFault describes a frame the reader refused, with what it could learn
// of the frame's header so that the peer can be told.
type frameFault struct {
	err        error // wraps ErrFrameTooLarge or ErrMalformedFrame
	opaque     int32
	hasOpaque  bool  // the header was readable enough to know the opaque
	isResponse bool  // the frame was flagged as a response (do not answer it)
	unread     int64 // bytes of the frame still in the stream
}

// probeHeaderMax bounds how much of an oversized frame's header readFrame
// reads to learn its opaque.
const probeHeaderMax = 64 << 10

// ReadCommand reads one frame from r and decodes it. It reads the 4-byte
// length prefix first and refuses a length below 4 (ErrMalformedFrame) or
// above maxFrame (ErrFrameTooLarge) before allocating anything for the
// frame; maxFrame <= 0 means DefaultMaxFrameSize. A stream that ends cleanly
// before a frame gives io.EOF; one that ends inside a frame gives an error
// wrapping io.ErrUnexpectedEOF. Decoding errors wrap ErrMalformedFrame. After
// any error other than a decoding error the stream is not usable: the frame
// boundary is lost.
func ReadCommand(r io.Reader, maxFrame int) (*Command, error) {
	cmd, fault, err := readFrame(r, maxFrame, nil)
	if fault != nil {
		return nil, fault.err
	}
	return cmd, err
}

// readFrame is ReadCommand with the details Conn needs to answer a bad frame.
// With probe set, an oversized frame's header is read (up to probeHeaderMax
// bytes) to learn its opaque; probe is called first, so the caller can bound
// how long a peer that announced a huge frame and went quiet may hold it.
func readFrame(r io.Reader, maxFrame int, probe func()) (*Command, *frameFault, error) {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameSize
	}
	var pfx [4]byte
	if n, err := io.ReadFull(r, pfx[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("remoting: stream ended inside a length prefix (%d of 4 bytes): %w", n, err)
		}
		return nil, nil, err
	}
	length := int64(int32(binary.BigEndian.Uint32(pfx[:])))
	if length < 4 {
		return nil, &frameFault{err: fmt.Errorf("%w: length prefix %d is below the minimum 4", ErrMalformedFrame, length)}, nil
	}
	if length > int64(maxFrame) {
		f := &frameFault{
			err:    fmt.Errorf("%w: frame of %d bytes exceeds the limit of %d bytes", ErrFrameTooLarge, length, maxFrame),
			unread: length,
		}
		if probe != nil {
			probe()
			probeOversized(r, f)
		}
		return nil, f, nil
	}
	frame, err := readFull(r, int(length))
	if err != nil {
		return nil, nil, err
	}
	cmd, err := DecodeFrame(frame)
	if err != nil {
		f := &frameFault{err: err}
		f.opaque, f.isResponse, f.hasOpaque = probeOpaque(frame)
		return nil, f, nil
	}
	return cmd, nil, nil
}

// probeOversized reads the serialize type, header length and header of a
// frame that is too large, to fill in f's opaque. Read errors are ignored:
// the connection is closed after a fault anyway.
func probeOversized(r io.Reader, f *frameFault) {
	var word [4]byte
	if _, err := io.ReadFull(r, word[:]); err != nil {
		return
	}
	f.unread -= 4
	hlen := int64(binary.BigEndian.Uint32(word[:]) & maxHeaderLen)
	if hlen > probeHeaderMax || hlen > f.unread {
		return
	}
	buf := make([]byte, 4+hlen)
	copy(buf, word[:])
	if _, err := io.ReadFull(r, buf[4:]); err != nil {
		return
	}
	f.unread -= hlen
	f.opaque, f.isResponse, f.hasOpaque = probeOpaque(buf)
}

// probeOpaque extracts the opaque and the response flag from a frame (after
// the length prefix) whose full decoding failed.
func probeOpaque(frame []byte) (opaque int32, isResponse, ok bool) {
	if len(frame) < 4 {
		return 0, false, false
	}
	word := binary.BigEndian.Uint32(frame)
	header := frame[4:]
	if hlen := int(word & maxHeaderLen); hlen < len(header) {
		header = header[:hlen]
	}
	switch SerializeType(word >> 24) {
	case SerializeRocketMQ:
		if len(header) < 13 {
			return 0, false, false
		}
		opaque = int32(binary.BigEndian.Uint32(header[5:]))
		flag := int32(binary.BigEndian.Uint32(header[9:]))
		return opaque, flag&FlagResponse != 0, true
	case SerializeJSON:
		// A header that is valid JSON but failed type checks (a number in
		// extFields) still tells its opaque.
		var p struct {
			Opaque json.RawMessage `json:"opaque"`
			Flag   json.RawMessage `json:"flag"`
		}
		if json.Unmarshal(header, &p) != nil {
			return 0, false, false
		}
		op, err := strconv.ParseInt(string(p.Opaque), 10, 32)
		if err != nil {
			return 0, false, false
		}
		flag, _ := strconv.ParseInt(string(p.Flag), 10, 32)
		return int32(op), int32(flag)&FlagResponse != 0, true
	}
	return 0, false, false
}

// readFull reads exactly n bytes. Up to eagerFrameRead bytes are allocated
// at once; beyond that the buffer grows as data arrives.
func readFull(r io.Reader, n int) ([]byte, error) {
	size := min(n, eagerFrameRead)
	buf := make([]byte, 0, size)
	for {
		got, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+got]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if err == io.ErrUnexpectedEOF {
				return nil, fmt.Errorf("remoting: stream ended inside a frame (%d of %d bytes): %w", len(buf), n, err)
			}
			return nil, fmt.Errorf("remoting: reading a frame of %d bytes: %w", n, err)
		}
		if len(buf) == n {
			return buf, nil
		}
		grown := make([]byte, len(buf), min(2*cap(buf), n))
		copy(grown, buf)
		buf = grown
	}
}

// DecodeFrame decodes a frame: the bytes after the 4-byte length prefix. The
// first byte is the serialize type (SerializeJSON or SerializeRocketMQ), the
// next three the header length, which must fit in the frame; the rest after
// the header is the body, which the returned Command aliases. Every error
// wraps ErrMalformedFrame and says what was wrong. DecodeFrame does not panic
// on any input.
//
// A JSON header must be an object. Unknown keys are ignored, missing or null
// ones leave zero values, and extFields values must be JSON strings (null
// counts as ""): a number there is an error naming the field, as it would
// break rocketmq-client-go. A binary header must be consumed exactly by its
// fields.
func DecodeFrame(frame []byte) (*Command, error) {
	if len(frame) < 4 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the serialize type and header length", ErrMalformedFrame, len(frame))
	}
	word := binary.BigEndian.Uint32(frame)
	hlen := int(word & maxHeaderLen)
	if hlen > len(frame)-4 {
		return nil, fmt.Errorf("%w: header length %d exceeds the %d bytes after it", ErrMalformedFrame, hlen, len(frame)-4)
	}
	header := frame[4 : 4+hlen]
	var (
		cmd *Command
		err error
	)
	switch st := SerializeType(word >> 24); st {
	case SerializeJSON:
		cmd, err = decodeJSONHeader(header)
	case SerializeRocketMQ:
		cmd, err = decodeBinaryHeader(header)
	default:
		err = fmt.Errorf("%w: unknown serialize type %d", ErrMalformedFrame, st)
	}
	if err != nil {
		return nil, err
	}
	if len(frame) > 4+hlen {
		cmd.Body = frame[4+hlen : len(frame) : len(frame)]
	}
	return cmd, nil
}

// jsonHeader is the JSON header as rocketmq-client-go's RemotingCommand
// spells it.
type jsonHeader struct {
	Code      int16             `json:"code"`
	Language  string            `json:"language"`
	Version   int16             `json:"version"`
	Opaque    int32             `json:"opaque"`
	Flag      int32             `json:"flag"`
	Remark    string            `json:"remark"`
	ExtFields map[string]string `json:"extFields"`
}

func decodeJSONHeader(header []byte) (*Command, error) {
	if trimmed := bytes.TrimLeft(header, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("%w: JSON header is not an object", ErrMalformedFrame)
	}
	if cmd, ok := decodeJSONHeaderFast(header); ok {
		return cmd, nil
	}
	var h jsonHeader
	if err := json.Unmarshal(header, &h); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "extFields" {
			return nil, fmt.Errorf("%w: JSON header: %s", ErrMalformedFrame, describeBadExtFields(header))
		}
		return nil, fmt.Errorf("%w: JSON header: %v", ErrMalformedFrame, err)
	}
	cmd := &Command{
		Code:     h.Code,
		Language: h.Language,
		Version:  h.Version,
		Opaque:   h.Opaque,
		Flag:     h.Flag,
		Remark:   h.Remark,
	}
	if len(h.ExtFields) > 0 {
		cmd.ExtFields = h.ExtFields
	}
	return cmd, nil
}

// describeBadExtFields names the first extFields entry (in key order) whose
// value is not a JSON string. Only called on the error path.
func describeBadExtFields(header []byte) string {
	var raw struct {
		ExtFields map[string]json.RawMessage `json:"extFields"`
	}
	if err := json.Unmarshal(header, &raw); err != nil || raw.ExtFields == nil {
		return "extFields must be an object of strings"
	}
	for _, k := range slices.Sorted(maps.Keys(raw.ExtFields)) {
		v := bytes.TrimSpace(raw.ExtFields[k])
		if len(v) > 0 && v[0] != '"' && !bytes.Equal(v, []byte("null")) {
			kind := "a number"
			switch v[0] {
			case '{':
				kind = "an object"
			case '[':
				kind = "an array"
			case 't', 'f':
				kind = "a boolean"
			}
			return fmt.Sprintf("extFields[%q] is %s (%.32s); header values must be JSON strings", k, kind, v)
		}
	}
	return "extFields must be an object of strings"
}

func decodeBinaryHeader(h []byte) (*Command, error) {
	if len(h) < binaryFixedLen {
		return nil, fmt.Errorf("%w: binary header of %d bytes, shorter than its fixed %d", ErrMalformedFrame, len(h), binaryFixedLen)
	}
	cmd := &Command{
		Code:     int16(binary.BigEndian.Uint16(h[0:])),
		Language: languageName(h[2]),
		Version:  int16(binary.BigEndian.Uint16(h[3:])),
		Opaque:   int32(binary.BigEndian.Uint32(h[5:])),
		Flag:     int32(binary.BigEndian.Uint32(h[9:])),
	}
	p := h[13:]
	remarkLen := int64(int32(binary.BigEndian.Uint32(p)))
	p = p[4:]
	if remarkLen < 0 || remarkLen > int64(len(p)) {
		return nil, fmt.Errorf("%w: binary header: remark length %d with %d bytes left", ErrMalformedFrame, remarkLen, len(p))
	}
	cmd.Remark = string(p[:remarkLen])
	p = p[remarkLen:]
	if len(p) < 4 {
		return nil, fmt.Errorf("%w: binary header: extFields length missing", ErrMalformedFrame)
	}
	extLen := int64(int32(binary.BigEndian.Uint32(p)))
	p = p[4:]
	if extLen < 0 || extLen > int64(len(p)) {
		return nil, fmt.Errorf("%w: binary header: extFields length %d with %d bytes left", ErrMalformedFrame, extLen, len(p))
	}
	if extLen < int64(len(p)) {
		return nil, fmt.Errorf("%w: binary header: %d bytes after extFields", ErrMalformedFrame, int64(len(p))-extLen)
	}
	for len(p) > 0 {
		if len(p) < 2 {
			return nil, fmt.Errorf("%w: binary header: truncated extFields key length", ErrMalformedFrame)
		}
		klen := int(int16(binary.BigEndian.Uint16(p)))
		p = p[2:]
		if klen < 0 || klen > len(p) {
			return nil, fmt.Errorf("%w: binary header: extFields key length %d with %d bytes left", ErrMalformedFrame, klen, len(p))
		}
		key := string(p[:klen])
		p = p[klen:]
		if len(p) < 4 {
			return nil, fmt.Errorf("%w: binary header: truncated length of extFields[%q]", ErrMalformedFrame, key)
		}
		vlen := int64(int32(binary.BigEndian.Uint32(p)))
		p = p[4:]
		if vlen < 0 || vlen > int64(len(p)) {
			return nil, fmt.Errorf("%w: binary header: extFields[%q] length %d with %d bytes left", ErrMalformedFrame, key, vlen, len(p))
		}
		if cmd.ExtFields == nil {
			cmd.ExtFields = make(map[string]string)
		}
		cmd.ExtFields[key] = string(p[:vlen])
		p = p[vlen:]
	}
	return cmd, nil
}
