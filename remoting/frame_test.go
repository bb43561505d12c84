package remoting

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// rawFrame builds a frame (length prefix included) from a serialize type, a
// header and a body, without going through the encoders.
func rawFrame(st byte, header, body []byte) []byte {
	f := binary.BigEndian.AppendUint32(nil, uint32(4+len(header)+len(body)))
	f = binary.BigEndian.AppendUint32(f, uint32(st)<<24|uint32(len(header)))
	f = append(f, header...)
	return append(f, body...)
}

func sampleCommands() []*Command {
	return []*Command{
		{Code: ReqHeartBeat, Language: "GO", Version: 317, Opaque: 1},
		{Code: ReqPullMessage, Language: "GO", Version: 317, Opaque: 2,
			ExtFields: map[string]string{"consumerGroup": "cg", "topic": "t", "queueId": "3", "queueOffset": "12345678901", "sysFlag": "2", "subscription": ""}},
		{Code: RespSuccess, Language: "JAVA", Version: 317, Opaque: -7, Flag: FlagResponse,
			ExtFields: map[string]string{"msgId": "7F00000100002A9F0000000000000000"}, Body: []byte("body bytes")},
		{Code: RespSystemError, Language: "JAVA", Version: 1, Opaque: 1<<31 - 1, Flag: FlagResponse,
			Remark: "quote \" backslash \\ newline \n tab \t nul \x00 \x1f unicode é 日本 \u2028 <&>"},
		{Code: ReqSendMessage, Language: "GO", Version: 317, Opaque: 3, Flag: FlagOneway,
			ExtFields: map[string]string{"properties": "TAGS\x01a\x02UNIQ_KEY\x01ABC\x02", "": "empty key", "k\"\\": "v\x7f"},
			Body:      bytes.Repeat([]byte{0, 1, 2, 0xff}, 1000)},
		{Code: -1, Language: "", Version: -1, Opaque: -1 << 31, Flag: -1},
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, want := range sampleCommands() {
		frame, err := want.AppendFrame(nil, SerializeJSON)
		if err != nil {
			t.Fatalf("AppendFrame(%v): %v", want, err)
		}
		var w bytes.Buffer
		if n, err := want.WriteTo(&w); err != nil || n != int64(len(frame)) || !bytes.Equal(w.Bytes(), frame) {
			t.Fatalf("WriteTo(%v) = %d, %v; bytes differ from AppendFrame: %v", want, n, err, !bytes.Equal(w.Bytes(), frame))
		}
		if hdr := frame[8 : 8+binary.BigEndian.Uint32(frame[4:])&maxHeaderLen]; !json.Valid(hdr) {
			t.Fatalf("header is not valid JSON: %s", hdr)
		}
		got, err := ReadCommand(bytes.NewReader(frame), 0)
		if err != nil {
			t.Fatalf("ReadCommand(%v): %v", want, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip:\n got %#v\nwant %#v", got, want)
		}
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	for _, want := range sampleCommands() {
		frame, err := want.AppendFrame(nil, SerializeRocketMQ)
		if err != nil {
			t.Fatalf("AppendFrame(%v): %v", want, err)
		}
		got, err := ReadCommand(bytes.NewReader(frame), 0)
		if err != nil {
			t.Fatalf("ReadCommand(%v): %v", want, err)
		}
		if want.Language == "" {
			want.Language = "OTHER" // the binary header has no empty language
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip:\n got %#v\nwant %#v", got, want)
		}
	}
}

// TestBinaryHeaderDecode decodes a binary header laid out by hand as
// PROTOCOL.md §1.3 and Java's RocketMQSerializable write it.
func TestBinaryHeaderDecode(t *testing.T) {
	var h []byte
	h = binary.BigEndian.AppendUint16(h, 105)        // code
	h = append(h, 9)                                 // language GO
	h = binary.BigEndian.AppendUint16(h, 317)        // version
	h = binary.BigEndian.AppendUint32(h, 0xfffffffe) // opaque -2
	h = binary.BigEndian.AppendUint32(h, 1)          // flag: response
	h = binary.BigEndian.AppendUint32(h, 3)          // remark
	h = append(h, "bad"...)
	var ext []byte
	for _, kv := range [][2]string{{"topic", "TopicTest"}, {"bname", ""}} {
		ext = binary.BigEndian.AppendUint16(ext, uint16(len(kv[0])))
		ext = append(ext, kv[0]...)
		ext = binary.BigEndian.AppendUint32(ext, uint32(len(kv[1])))
		ext = append(ext, kv[1]...)
	}
	h = binary.BigEndian.AppendUint32(h, uint32(len(ext)))
	h = append(h, ext...)

	got, err := ReadCommand(bytes.NewReader(rawFrame(1, h, []byte{1, 2, 3})), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := &Command{Code: 105, Language: "GO", Version: 317, Opaque: -2, Flag: 1, Remark: "bad",
		ExtFields: map[string]string{"topic": "TopicTest", "bname": ""}, Body: []byte{1, 2, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}

	// Java's language byte 0 and an unknown byte.
	h[2] = 0
	if got, err := DecodeFrame(rawFrame(1, h, nil)[4:]); err != nil || got.Language != "JAVA" || got.Body != nil {
		t.Fatalf("language 0: %v, %v", got, err)
	}
	h[2] = 200
	if got, err := DecodeFrame(rawFrame(1, h, nil)[4:]); err != nil || got.Language != "OTHER" {
		t.Fatalf("language 200: %v, %v", got, err)
	}
}

// TestGoldenClientHeader checks the exact header bytes rocketmq-client-go
// (internal/remote/codec.go, jsoniter over its RemotingCommand struct)
// writes: Strata decodes them, and encodes the same command to the same
// bytes.
func TestGoldenClientHeader(t *testing.T) {
	cases := []struct {
		header string
		body   []byte
		want   *Command
	}{
		{
			header: `{"code":34,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{}}`,
			body:   []byte(`{"clientID":"10.0.0.5@12345","producerDataSet":[{"groupName":"pg"}],"consumerDataSet":[]}`),
			want:   &Command{Code: ReqHeartBeat, Language: "GO", Version: 317, Opaque: 1},
		},
		{
			header: `{"code":14,"language":"GO","version":317,"opaque":42,"flag":0,"remark":"","extFields":{"bname":"broker-a","consumerGroup":"cg","queueId":"0","topic":"TopicTest"}}`,
			want: &Command{Code: ReqQueryConsumerOffset, Language: "GO", Version: 317, Opaque: 42,
				ExtFields: map[string]string{"consumerGroup": "cg", "topic": "TopicTest", "queueId": "0", "bname": "broker-a"}},
		},
	}
	for _, tc := range cases {
		tc.want.Body = tc.body
		frame := rawFrame(0, []byte(tc.header), tc.body)
		got, err := ReadCommand(bytes.NewReader(frame), 0)
		if err != nil {
			t.Fatalf("decode %s: %v", tc.header, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("decode %s:\n got %#v\nwant %#v", tc.header, got, tc.want)
		}
		enc, err := tc.want.AppendFrame(nil, SerializeJSON)
		if err != nil || !bytes.Equal(enc, frame) {
			t.Fatalf("encode:\n got %q\nwant %q (%v)", enc, frame, err)
		}
	}

	// What the client decodes without error must decode here too: a Java
	// broker's "JAVA", a null extFields, missing and unknown keys.
	for _, hdr := range []string{
		`{"code":0,"language":"JAVA","version":373,"opaque":5,"flag":1,"remark":null,"extFields":null}`,
		`{"code":0,"flag":1,"opaque":5,"language":"JAVA","version":373,"serializeTypeCurrentRPC":"JSON"}`,
		` {"opaque":5,"flag":1,"code":0,"language":"JAVA","version":373,"extFields":{}}`,
	} {
		got, err := DecodeFrame(rawFrame(0, []byte(hdr), nil)[4:])
		want := &Command{Language: "JAVA", Version: 373, Opaque: 5, Flag: 1}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("decode %s = %#v, %v", hdr, got, err)
		}
	}
}

// onceLengthReader yields a length prefix of n and then an endless stream of
// zeros, counting what it hands out.
type onceLengthReader struct {
	prefix [4]byte
	read   int64
}

func (r *onceLengthReader) Read(p []byte) (int, error) {
	for i := range p {
		if r.read < 4 {
			p[i] = r.prefix[r.read]
		} else {
			p[i] = 0
		}
		r.read++
	}
	return len(p), nil
}

func TestReadCommandRefusesOversizedWithoutAllocating(t *testing.T) {
	newReader := func() *onceLengthReader {
		r := &onceLengthReader{}
		binary.BigEndian.PutUint32(r.prefix[:], 1<<30) // 1 GiB announced
		return r
	}
	r := newReader()
	_, err := ReadCommand(r, 1<<20)
	if !errors.Is(err, ErrFrameTooLarge) || !strings.Contains(err.Error(), "1073741824") {
		t.Fatalf("err = %v, want ErrFrameTooLarge naming the size", err)
	}
	if r.read != 4 {
		t.Fatalf("read %d bytes, want only the 4-byte prefix", r.read)
	}

	allocs := testing.AllocsPerRun(100, func() {
		_, _ = ReadCommand(newReader(), 1<<20)
	})
	if allocs > 10 { // the reader, the error and its formatting; none sized by the frame
		t.Errorf("%v allocations per refused frame", allocs)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		_, _ = ReadCommand(newReader(), 0)
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Errorf("100 refused frames allocated %d bytes", d)
	}

	// The limit is inclusive.
	frame := rawFrame(0, []byte(`{"code":1}`), make([]byte, 100))
	limit := len(frame) - 4
	if _, err := ReadCommand(bytes.NewReader(frame), limit); err != nil {
		t.Errorf("frame of exactly the limit: %v", err)
	}
	if _, err := ReadCommand(bytes.NewReader(frame), limit-1); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("frame one byte over the limit: %v", err)
	}
}

func TestReadCommandBadLengths(t *testing.T) {
	for _, length := range []uint32{0, 1, 3, 0x80000000, 0xffffffff} {
		in := binary.BigEndian.AppendUint32(nil, length)
		in = append(in, make([]byte, 16)...)
		_, err := ReadCommand(bytes.NewReader(in), 0)
		if !errors.Is(err, ErrMalformedFrame) {
			t.Errorf("length %#x: err = %v, want ErrMalformedFrame", length, err)
		}
	}
}

func TestReadCommandTruncated(t *testing.T) {
	frame := rawFrame(0, []byte(`{"code":10,"opaque":3}`), []byte("0123456789"))
	if _, err := ReadCommand(bytes.NewReader(nil), 0); err != io.EOF {
		t.Errorf("empty stream: err = %v, want io.EOF", err)
	}
	for cut := 1; cut < len(frame); cut++ {
		_, err := ReadCommand(bytes.NewReader(frame[:cut]), 0)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: err = %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
	// Several frames back to back, read one byte at a time.
	stream := append(append([]byte{}, frame...), frame...)
	r := iotest.OneByteReader(bytes.NewReader(stream))
	for i := range 2 {
		if c, err := ReadCommand(r, 0); err != nil || c.Opaque != 3 || string(c.Body) != "0123456789" {
			t.Fatalf("frame %d: %v, %v", i, c, err)
		}
	}
	if _, err := ReadCommand(r, 0); err != io.EOF {
		t.Fatalf("after the frames: %v", err)
	}
}

func TestReadCommandLargeFrameGrows(t *testing.T) {
	want := &Command{Code: RespSuccess, Flag: FlagResponse, Opaque: 9, Language: "JAVA", Body: make([]byte, 3*eagerFrameRead+17)}
	for i := range want.Body {
		want.Body[i] = byte(i * 7)
	}
	frame, err := want.AppendFrame(nil, SerializeJSON)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadCommand(iotest.HalfReader(bytes.NewReader(frame)), 0)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("large frame: err %v, equal %v", err, reflect.DeepEqual(got, want))
	}
	_, err = ReadCommand(bytes.NewReader(frame[:len(frame)-1]), 0)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated large frame: %v", err)
	}
}

func TestDecodeFrameErrors(t *testing.T) {
	binHeader := func(mod func(h []byte) []byte) []byte {
		c := &Command{Code: 1, Opaque: 2, Remark: "r", ExtFields: map[string]string{"k": "v"}}
		h, _ := c.AppendBinaryHeader(nil)
		return mod(h)
	}
	cases := []struct {
		name  string
		frame []byte
		want  string
	}{
		{"empty", nil, "shorter than"},
		{"three bytes", []byte{0, 0, 0}, "shorter than"},
		{"header beyond frame", rawFrame(0, []byte(`{}`), nil)[4 : 5+3], "exceeds"},
		{"unknown type", rawFrame(2, []byte(`{}`), nil)[4:], "unknown serialize type 2"},
		{"type 0xff", rawFrame(0xff, []byte(`{}`), nil)[4:], "unknown serialize type 255"},
		{"empty JSON header", rawFrame(0, nil, []byte("body"))[4:], "not an object"},
		{"JSON null", rawFrame(0, []byte(`null`), nil)[4:], "not an object"},
		{"JSON array", rawFrame(0, []byte(`[1,2]`), nil)[4:], "not an object"},
		{"JSON string", rawFrame(0, []byte(`"x"`), nil)[4:], "not an object"},
		{"JSON syntax", rawFrame(0, []byte(`{"code":1`), nil)[4:], "JSON header"},
		{"JSON trailing", rawFrame(0, []byte(`{"code":1} x`), nil)[4:], "JSON header"},
		{"code overflow", rawFrame(0, []byte(`{"code":40000}`), nil)[4:], "code"},
		{"code string", rawFrame(0, []byte(`{"code":"10"}`), nil)[4:], "code"},
		{"language number", rawFrame(0, []byte(`{"language":9}`), nil)[4:], "language"},
		{"extFields number", rawFrame(0, []byte(`{"code":11,"opaque":4,"extFields":{"topic":"t","queueId":3}}`), nil)[4:], `extFields["queueId"] is a number`},
		{"extFields bool", rawFrame(0, []byte(`{"extFields":{"unitMode":false}}`), nil)[4:], `extFields["unitMode"] is a boolean`},
		{"extFields object", rawFrame(0, []byte(`{"extFields":{"a":{}}}`), nil)[4:], `extFields["a"] is an object`},
		{"extFields array", rawFrame(0, []byte(`{"extFields":[]}`), nil)[4:], "extFields must be an object"},
		{"binary short", rawFrame(1, make([]byte, 20), nil)[4:], "shorter than its fixed 21"},
		{"binary remark too long", rawFrame(1, binHeader(func(h []byte) []byte { h[16] = 99; return h }), nil)[4:], "remark length 99"},
		{"binary remark negative", rawFrame(1, binHeader(func(h []byte) []byte { h[13] = 0x80; return h }), nil)[4:], "remark length -"},
		{"binary ext too long", rawFrame(1, binHeader(func(h []byte) []byte { h[21] = 99; return h }), nil)[4:], "extFields length 99"},
		{"binary trailing", rawFrame(1, binHeader(func(h []byte) []byte { return append(h, 0) }), nil)[4:], "1 bytes after extFields"},
		{"binary key too long", rawFrame(1, binHeader(func(h []byte) []byte { h[23] = 50; return h }), nil)[4:], "key length 50"},
		{"binary value too long", rawFrame(1, binHeader(func(h []byte) []byte { h[28] = 50; return h }), nil)[4:], `extFields["k"] length 50`},
	}
	for _, tc := range cases {
		c, err := DecodeFrame(tc.frame)
		if err == nil {
			t.Errorf("%s: decoded %v, want an error", tc.name, c)
			continue
		}
		if !errors.Is(err, ErrMalformedFrame) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrMalformedFrame containing %q", tc.name, err, tc.want)
		}
	}
}

func TestProbeOpaque(t *testing.T) {
	cases := []struct {
		frame            []byte
		opaque           int32
		isResponse, know bool
	}{
		{rawFrame(0, []byte(`{"code":11,"opaque":4,"extFields":{"queueId":3}}`), nil)[4:], 4, false, true},
		{rawFrame(0, []byte(`{"opaque":5,"flag":1,"extFields":{"queueId":3}}`), nil)[4:], 5, true, true},
		{rawFrame(0, []byte(`{"opaque":"5"}`), nil)[4:], 0, false, false},
		{rawFrame(0, []byte(`{"opaque":5`), nil)[4:], 0, false, false},
		{rawFrame(1, binaryHeaderWithOpaque(77, 0), nil)[4:], 77, false, true},
		{rawFrame(1, binaryHeaderWithOpaque(78, 3), nil)[4:], 78, true, true},
		{rawFrame(3, []byte(`{"opaque":5}`), nil)[4:], 0, false, false},
	}
	for i, tc := range cases {
		op, resp, ok := probeOpaque(tc.frame)
		if op != tc.opaque || resp != tc.isResponse || ok != tc.know {
			t.Errorf("case %d: probeOpaque = %d, %v, %v; want %d, %v, %v", i, op, resp, ok, tc.opaque, tc.isResponse, tc.know)
		}
	}
}

// binaryHeaderWithOpaque is a binary header cut short after the flag.
func binaryHeaderWithOpaque(opaque, flag int32) []byte {
	h := []byte{0, 10, 9, 1, 61}
	h = binary.BigEndian.AppendUint32(h, uint32(opaque))
	return binary.BigEndian.AppendUint32(h, uint32(flag))
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "\"\\/", "\x00\x01\x1f\x7f", "é日本\U0001F600", "\u2028\u2029", "<&>", "bad \xff\xfe utf8 \xe2\x82", "\r\n\t\b\f"} {
		enc := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, enc, err)
		}
		std, _ := json.Marshal(s)
		var stdBack string
		_ = json.Unmarshal(std, &stdBack)
		if back != stdBack {
			t.Errorf("%q: decodes to %q, encoding/json's to %q", s, back, stdBack)
		}
	}
}

func TestExtAccessors(t *testing.T) {
	c := NewRequest(ReqPullMessage, map[string]string{"queueOffset": "9007199254740993", "queueId": "3", "bad": "3x", "big": "4294967296"}, nil)
	if v, err := c.ExtInt64("queueOffset"); err != nil || v != 9007199254740993 {
		t.Errorf("ExtInt64 = %d, %v", v, err)
	}
	if v, err := c.ExtInt32("queueId"); err != nil || v != 3 {
		t.Errorf("ExtInt32 = %d, %v", v, err)
	}
	for _, tc := range []struct {
		key  string
		fn   func(string) error
		want string
	}{
		{"missing", func(k string) error { _, err := c.ExtInt64(k); return err }, `"missing" is missing`},
		{"bad", func(k string) error { _, err := c.ExtInt64(k); return err }, `"bad" is not a 64-bit integer: "3x"`},
		{"big", func(k string) error { _, err := c.ExtInt32(k); return err }, `"big" is not a 32-bit integer`},
		{"missing", func(k string) error { _, err := c.ExtInt32(k); return err }, `"missing" is missing`},
	} {
		err := tc.fn(tc.key)
		if !errors.Is(err, ErrBadHeaderField) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrBadHeaderField containing %q", tc.key, err, tc.want)
		}
	}
	var r Command
	r.SetExt("offset", "5")
	if r.Ext("offset") != "5" || r.Ext("none") != "" {
		t.Errorf("SetExt/Ext: %v", r.ExtFields)
	}
}

func TestNewRequestResponse(t *testing.T) {
	req := NewRequest(ReqHeartBeat, nil, []byte("{}"))
	req.Opaque = 11
	if req.Language != "GO" || req.Version != 317 || req.IsResponse() || req.IsOneway() {
		t.Errorf("NewRequest = %#v", req)
	}
	resp := NewResponse(req, RespSuccess, "")
	if resp.Opaque != 11 || !resp.IsResponse() || resp.Language != "JAVA" || resp.Version != 317 {
		t.Errorf("NewResponse = %#v", resp)
	}
	if s := resp.String(); !strings.Contains(s, "response SUCCESS") || !strings.Contains(s, "opaque=11") {
		t.Errorf("String() = %q", s)
	}
}

func TestCodeNames(t *testing.T) {
	for code, name := range map[int16]string{10: "SEND_MESSAGE", 310: "SEND_MESSAGE_V2", 105: "GET_ROUTEINFO_BY_TOPIC", 206: "GET_ALL_TOPIC_LIST_FROM_NAMESERVER", 9999: "9999"} {
		if got := RequestCodeName(code); got != name {
			t.Errorf("RequestCodeName(%d) = %q, want %q", code, got, name)
		}
	}
	for code, name := range map[int16]string{0: "SUCCESS", 19: "PULL_NOT_FOUND", 26: "SUBSCRIPTION_GROUP_NOT_EXIST", -5: "-5"} {
		if got := ResponseCodeName(code); got != name {
			t.Errorf("ResponseCodeName(%d) = %q, want %q", code, got, name)
		}
	}
	if PullFlagSuspend|PullFlagSubscription != 6 || PermReadWrite != 6 {
		t.Error("flag values drifted from the Java constants")
	}
}

func TestEncodeLimits(t *testing.T) {
	c := &Command{ExtFields: map[string]string{strings.Repeat("k", 1<<15): "v"}}
	if _, err := c.AppendFrame(nil, SerializeRocketMQ); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("binary key of 32768 bytes: %v", err)
	}
	c = &Command{Remark: strings.Repeat("r", maxHeaderLen)}
	if _, err := c.AppendFrame(nil, SerializeJSON); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("header over 16 MiB: %v", err)
	}
	if _, err := (&Command{}).AppendFrame(nil, 7); err == nil {
		t.Error("unknown serialize type encoded")
	}
}

// fuzzSeeds are valid frames (after the length prefix) of both header types.
func fuzzSeeds(f *testing.F) {
	for _, c := range sampleCommands() {
		for _, st := range []SerializeType{SerializeJSON, SerializeRocketMQ} {
			frame, err := c.AppendFrame(nil, st)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(frame)
		}
	}
	f.Add(rawFrame(0, []byte(`{"code":34,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{}}`), []byte(`{"clientID":"x"}`)))
	f.Add(rawFrame(0, []byte(`{"code":11,"opaque":4,"extFields":{"queueId":3}}`), nil))
	f.Add(rawFrame(0, []byte(`{"extFields":null,"remark":null,"CODE":7}`), nil))
	f.Add(rawFrame(1, binaryHeaderWithOpaque(1, 0), nil))
}

func FuzzDecodeFrame(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		frame := data[4:] // the seeds carry a length prefix; skip it
		cmd, err := DecodeFrame(frame)
		if err != nil {
			if !errors.Is(err, ErrMalformedFrame) {
				t.Fatalf("error does not wrap ErrMalformedFrame: %v", err)
			}
			return
		}
		checkReencode(t, cmd, SerializeType(frame[0]))
	})
}

// checkReencode encodes cmd with st and checks that it decodes back equal.
func checkReencode(t *testing.T, cmd *Command, st SerializeType) {
	t.Helper()
	enc, err := cmd.AppendFrame(nil, st)
	if err != nil {
		t.Fatalf("re-encoding %v: %v", cmd, err)
	}
	if n := binary.BigEndian.Uint32(enc); int(n) != len(enc)-4 {
		t.Fatalf("length prefix %d for %d bytes", n, len(enc)-4)
	}
	again, err := DecodeFrame(enc[4:])
	if err != nil {
		t.Fatalf("decoding re-encoded %v: %v\n%q", cmd, err, enc)
	}
	if !reflect.DeepEqual(again, cmd) {
		t.Fatalf("re-encode changed the command:\n got %#v\nwant %#v", again, cmd)
	}
}

func FuzzReadCommand(f *testing.F) {
	fuzzSeeds(f)
	f.Add(append(rawFrame(0, []byte(`{"code":1}`), nil), rawFrame(1, binaryHeaderWithOpaque(1, 0), nil)...))
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			cmd, err := ReadCommand(r, 4096)
			if err != nil {
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) &&
					!errors.Is(err, ErrMalformedFrame) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			// JSON cannot carry bytes that are not UTF-8, the binary header
			// cannot carry a language Java does not know: check what each can.
			if utf8Clean(cmd) {
				checkReencode(t, cmd, SerializeJSON)
			}
			if languageName(languageByte(cmd.Language)) == cmd.Language {
				checkReencode(t, cmd, SerializeRocketMQ)
			}
		}
	})
}

// utf8Clean reports whether every string of c survives JSON encoding.
func utf8Clean(c *Command) bool {
	ok := func(s string) bool { return strings.ToValidUTF8(s, "\x00") == s }
	if !ok(c.Language) || !ok(c.Remark) {
		return false
	}
	for k, v := range c.ExtFields {
		if !ok(k) || !ok(v) {
			return false
		}
	}
	return true
}
