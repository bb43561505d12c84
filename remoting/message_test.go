package remoting

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"maps"
	"net/netip"
	"strings"
	"testing"
)

// sampleMessage returns a message with every field set to a distinct value.
func sampleMessage(born, store netip.AddrPort) MessageExt {
	var props []byte
	props = AppendProperty(props, PropTags, "TagA")
	props = AppendProperty(props, PropKeys, "k1 k2")
	props = AppendProperty(props, PropUniqKey, "0A0B0C0D00002A9F0000000000000001")
	return MessageExt{
		Topic:                     "TopicTest",
		QueueID:                   3,
		Flag:                      -7,
		QueueOffset:               1<<40 + 5,
		PhysicalOffset:            1<<33 + 17,
		SysFlag:                   SysFlagMultiTags | SysFlagTxCommit,
		BornTimestamp:             1700000000123,
		BornHost:                  born,
		StoreTimestamp:            1700000000456,
		StoreHost:                 store,
		ReconsumeTimes:            2,
		PreparedTransactionOffset: -1,
		Body:                      []byte("hello, strata"),
		Properties:                props,
	}
}

var (
	v4a = netip.MustParseAddrPort("10.0.0.7:53211")
	v4b = netip.MustParseAddrPort("192.168.1.20:10911")
	v6a = netip.MustParseAddrPort("[2001:db8::1]:40000")
	v6b = netip.MustParseAddrPort("[fe80::abcd:1]:10911")
)

func encode(t testing.TB, m *MessageExt) []byte {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	b := make([]byte, m.Size())
	if n := m.Encode(b); n != len(b) {
		t.Fatalf("Encode wrote %d bytes, Size() = %d", n, len(b))
	}
	return b
}

// sameMessage compares every decoded field; hosts are compared unmapped.
func sameMessage(t testing.TB, got, want MessageExt) {
	t.Helper()
	type flat struct {
		Topic                   string
		QueueID, Flag           int32
		QueueOffset, PhysOffset int64
		BornTs, StoreTs         int64
		BornHost, StoreHost     netip.AddrPort
		Reconsume               int32
		Prepared                int64
		BodyCRC                 uint32
		Body, Props             string
		SysFlagWithoutHostBits  int32
	}
	f := func(m MessageExt) flat {
		return flat{
			Topic: m.Topic, QueueID: m.QueueID, Flag: m.Flag, QueueOffset: m.QueueOffset, PhysOffset: m.PhysicalOffset,
			BornTs: m.BornTimestamp, StoreTs: m.StoreTimestamp,
			BornHost:  netip.AddrPortFrom(m.BornHost.Addr().Unmap(), m.BornHost.Port()),
			StoreHost: netip.AddrPortFrom(m.StoreHost.Addr().Unmap(), m.StoreHost.Port()),
			Reconsume: m.ReconsumeTimes, Prepared: m.PreparedTransactionOffset, BodyCRC: m.BodyCRC,
			Body: string(m.Body), Props: string(m.Properties),
			SysFlagWithoutHostBits: m.SysFlag &^ (SysFlagBornHostV6 | SysFlagStoreHostV6),
		}
	}
	if g, w := f(got), f(want); g != w {
		t.Fatalf("decoded message differs:\n got %+v\nwant %+v", g, w)
	}
}

func TestMessageExtRoundTrip(t *testing.T) {
	cases := []struct {
		name               string
		born, store        netip.AddrPort
		bornV6, storeV6    bool
		wantSize           int
		mutate             func(*MessageExt)
		wantBody, wantProp int
	}{
		{name: "v4/v4", born: v4a, store: v4b},
		{name: "v6/v4", born: v6a, store: v4b, bornV6: true},
		{name: "v4/v6", born: v4a, store: v6b, storeV6: true},
		{name: "v6/v6", born: v6a, store: v6b, bornV6: true, storeV6: true},
		// A v4-mapped IPv6 address is written as IPv4 (8 bytes), as Java does
		// for an Inet4Address.
		{name: "v4-in-v6 is written as v4", born: netip.MustParseAddrPort("[::ffff:10.1.2.3]:99"), store: v4b},
		{name: "empty body and properties", born: v4a, store: v4b, mutate: func(m *MessageExt) {
			m.Body, m.Properties = nil, nil
		}},
		{name: "max topic, max properties", born: v6a, store: v6b, bornV6: true, storeV6: true, mutate: func(m *MessageExt) {
			m.Topic = strings.Repeat("t", MaxTopicLen)
			m.Properties = bytes.Repeat([]byte{'p'}, MaxPropertiesLen)
		}},
		{name: "extreme ints", born: v4a, store: v4b, mutate: func(m *MessageExt) {
			m.QueueID, m.Flag, m.ReconsumeTimes = -1<<31, 1<<31-1, -1
			m.QueueOffset, m.PhysicalOffset = -1<<63, 1<<63-1
			m.BornTimestamp, m.StoreTimestamp = -1, 1<<63-1
			m.SysFlag = -1 // every bit; the host bits are recomputed
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := sampleMessage(c.born, c.store)
			if c.mutate != nil {
				c.mutate(&m)
			}
			b := encode(t, &m)
			want := MinRecordSize + len(m.Body) + len(m.Topic) + len(m.Properties)
			if c.bornV6 {
				want += 12
			}
			if c.storeV6 {
				want += 12
			}
			if len(b) != want {
				t.Fatalf("encoded %d bytes, want %d", len(b), want)
			}
			if got := RecordSize(b); got != len(b) {
				t.Fatalf("RecordSize = %d, want %d", got, len(b))
			}
			be := binary.BigEndian
			if be.Uint32(b[OffMagic:]) != MessageMagic {
				t.Fatalf("magic %#x", be.Uint32(b[OffMagic:]))
			}
			sys := int32(be.Uint32(b[OffSysFlag:]))
			if (sys&SysFlagBornHostV6 != 0) != c.bornV6 || (sys&SysFlagStoreHostV6 != 0) != c.storeV6 {
				t.Fatalf("sysflag %#x: host bits do not match born v6=%v store v6=%v", sys, c.bornV6, c.storeV6)
			}
			if sys&^(SysFlagBornHostV6|SysFlagStoreHostV6) != m.SysFlag&^(SysFlagBornHostV6|SysFlagStoreHostV6) {
				t.Fatalf("sysflag %#x lost non-host bits of %#x", sys, m.SysFlag)
			}
			wantCRC := crc32.ChecksumIEEE(m.Body) & 0x7FFFFFFF
			if m.BodyCRC != wantCRC || be.Uint32(b[OffBodyCRC:]) != wantCRC {
				t.Fatalf("BODYCRC field %#x / m.BodyCRC %#x, want %#x", be.Uint32(b[OffBodyCRC:]), m.BodyCRC, wantCRC)
			}

			// Decode with trailing garbage: only TOTALSIZE bytes are used.
			buf := append(append([]byte(nil), b...), 0xEE, 0xFF, 0x00, 0x11)
			got, err := DecodeMessageExt(buf)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			sameMessage(t, got, m)
			if got.BornHost.Addr().Is6() != c.bornV6 || got.StoreHost.Addr().Is6() != c.storeV6 {
				t.Fatalf("decoded host families born=%v store=%v", got.BornHost, got.StoreHost)
			}
			// Body and Properties alias the buffer but cannot grow into it.
			if cap(got.Body) != len(got.Body) || cap(got.Properties) != len(got.Properties) {
				t.Fatalf("Body/Properties capacity exceeds length: %d/%d %d/%d",
					cap(got.Body), len(got.Body), cap(got.Properties), len(got.Properties))
			}
			// Re-encoding the decoded message reproduces the bytes.
			if again := encode(t, &got); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, b)
			}
		})
	}
}

func TestMinRecordSize(t *testing.T) {
	m := MessageExt{}
	if got := m.Size(); got != MinRecordSize || MinRecordSize != 91 {
		t.Fatalf("empty message size %d, MinRecordSize %d, want 91 (Java's 4.x layout with IPv4 hosts)", got, MinRecordSize)
	}
	b := encode(t, &m)
	got, err := DecodeMessageExt(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Topic != "" || len(got.Body) != 0 || len(got.Properties) != 0 {
		t.Fatalf("decoded %+v", got)
	}
	if got.BodyCRC != 0 { // crc32("") = 0
		t.Fatalf("BodyCRC of empty body = %#x", got.BodyCRC)
	}
}

// TestZeroHostEncodesAsZeroIPv4: an unset (invalid) AddrPort is written as
// 0.0.0.0:0 and decodes as such.
func TestZeroHostEncodesAsZeroIPv4(t *testing.T) {
	m := sampleMessage(netip.AddrPort{}, netip.AddrPort{})
	b := encode(t, &m)
	if len(b) != m.Size() || m.Size() != MinRecordSize+len(m.Body)+len(m.Topic)+len(m.Properties) {
		t.Fatalf("size %d", len(b))
	}
	got, err := DecodeMessageExt(b)
	if err != nil {
		t.Fatal(err)
	}
	zero := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if got.BornHost != zero || got.StoreHost != zero {
		t.Fatalf("hosts %v %v, want %v", got.BornHost, got.StoreHost, zero)
	}
}

func TestBodyChecksumClearsSignBit(t *testing.T) {
	// Find a body whose IEEE CRC has the top bit set, so the mask matters.
	var body []byte
	for i := 0; ; i++ {
		body = []byte{byte(i), byte(i >> 8)}
		if crc32.ChecksumIEEE(body)&0x80000000 != 0 {
			break
		}
	}
	want := crc32.ChecksumIEEE(body) & 0x7FFFFFFF
	if got := BodyChecksum(body); got != want || got&0x80000000 != 0 {
		t.Fatalf("BodyChecksum = %#x, want %#x", got, want)
	}
	// Known value: crc32("123456789") = 0xCBF43926 (the standard check value).
	if got := BodyChecksum([]byte("123456789")); got != 0xCBF43926&0x7FFFFFFF {
		t.Fatalf("BodyChecksum(123456789) = %#x", got)
	}
}

func TestValidateLimits(t *testing.T) {
	m := sampleMessage(v4a, v4b)
	m.Topic = strings.Repeat("x", MaxTopicLen+1)
	if err := m.Validate(); err == nil {
		t.Fatal("256-byte topic accepted")
	}
	m = sampleMessage(v4a, v4b)
	m.Properties = make([]byte, MaxPropertiesLen+1)
	if err := m.Validate(); err == nil {
		t.Fatal("32768-byte properties accepted")
	}
	m.Properties = make([]byte, MaxPropertiesLen)
	m.Topic = strings.Repeat("x", MaxTopicLen)
	if err := m.Validate(); err != nil {
		t.Fatalf("limits rejected: %v", err)
	}
}

func TestDecodeMessageExtRejects(t *testing.T) {
	good := sampleMessage(v6a, v4b)
	b := encode(t, &good)
	be := binary.BigEndian
	// Layout positions of the variable part for this message (born v6).
	bodyLenPos := OffBornHost + 20 + 8 + 8 + 4 + 8
	topicLenPos := bodyLenPos + 4 + len(good.Body)
	propLenPos := topicLenPos + 1 + len(good.Topic)
	cases := map[string]func([]byte) []byte{
		"empty":            func(b []byte) []byte { return nil },
		"shorter than min": func(b []byte) []byte { return b[:MinRecordSize-1] },
		"truncated":        func(b []byte) []byte { return b[:len(b)-1] },
		"bad magic":        func(b []byte) []byte { be.PutUint32(b[OffMagic:], BlankMagic); return b },
		"total too small":  func(b []byte) []byte { be.PutUint32(b[OffTotalSize:], MinRecordSize-1); return b },
		"total huge":       func(b []byte) []byte { be.PutUint32(b[OffTotalSize:], 0xFFFFFFFF); return b },
		"total one less":   func(b []byte) []byte { be.PutUint32(b[OffTotalSize:], uint32(len(b)-1)); return b },
		"total one more": func(b []byte) []byte {
			be.PutUint32(b[OffTotalSize:], uint32(len(b)+1))
			return append(b, 0)
		},
		"body length overruns": func(b []byte) []byte { be.PutUint32(b[bodyLenPos:], uint32(len(b))); return b },
		"body length huge":     func(b []byte) []byte { be.PutUint32(b[bodyLenPos:], 0xFFFFFFFF); return b },
		"topic length overruns": func(b []byte) []byte {
			b[topicLenPos] = 255
			return b
		},
		"negative properties length": func(b []byte) []byte { be.PutUint16(b[propLenPos:], 0x8001); return b },
		"properties too short":       func(b []byte) []byte { be.PutUint16(b[propLenPos:], uint16(len(good.Properties)-1)); return b },
		"v6 flag on a tiny record": func(b []byte) []byte {
			var e MessageExt
			x := make([]byte, e.Size())
			e.Encode(x)
			be.PutUint32(x[OffSysFlag:], uint32(SysFlagBornHostV6|SysFlagStoreHostV6))
			return x
		},
		"store v6 flag set": func(b []byte) []byte {
			// The born host is v6; claiming the store host is v6 too shifts
			// every later field by 12 bytes.
			be.PutUint32(b[OffSysFlag:], be.Uint32(b[OffSysFlag:])|uint32(SysFlagStoreHostV6))
			return b
		},
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			in := mut(append([]byte(nil), b...))
			_, err := DecodeMessageExt(in)
			if !errors.Is(err, ErrMalformedMessage) {
				t.Fatalf("err = %v, want ErrMalformedMessage", err)
			}
		})
	}
	if RecordSize(b[:3]) != 0 || RecordSize(nil) != 0 {
		t.Fatal("RecordSize of a short buffer is not 0")
	}
}

// TestDecodePortUpperBits documents that the 4-byte port field is read as
// a uint16: a record whose port field is >= 65536 (never written by Java or
// Go producers) decodes to the low 16 bits and re-encodes differently.
func TestDecodePortUpperBits(t *testing.T) {
	m := sampleMessage(v4a, v4b)
	b := encode(t, &m)
	binary.BigEndian.PutUint32(b[OffBornHost+4:], 0x00010000|53211)
	got, err := DecodeMessageExt(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.BornHost.Port() != 53211 {
		t.Fatalf("port %d", got.BornHost.Port())
	}
}

func TestPropertiesHelpers(t *testing.T) {
	var p []byte
	p = AppendProperty(p, "TAGS", "TagA")
	p = AppendProperty(p, "KEYS", "k1 k2")
	p = AppendProperty(p, "EMPTY", "")
	if want := "TAGS\x01TagA\x02KEYS\x01k1 k2\x02EMPTY\x01\x02"; string(p) != want {
		t.Fatalf("AppendProperty built %q, want %q", p, want)
	}
	for k, want := range map[string]string{"TAGS": "TagA", "KEYS": "k1 k2", "EMPTY": ""} {
		v, ok := PropertyValue(p, k)
		if !ok || string(v) != want {
			t.Fatalf("PropertyValue(%q) = %q, %v; want %q", k, v, ok, want)
		}
	}
	for _, k := range []string{"TAG", "TAGSX", "", "TagA", "k1"} {
		if v, ok := PropertyValue(p, k); ok {
			t.Fatalf("PropertyValue(%q) found %q", k, v)
		}
	}
	m := ParseProperties(p)
	if want := map[string]string{"TAGS": "TagA", "KEYS": "k1 k2", "EMPTY": ""}; !maps.Equal(m, want) {
		t.Fatalf("ParseProperties = %q, want %q", m, want)
	}
	// EncodeProperties sorts names, so equal maps give equal bytes, and it
	// round-trips through ParseProperties.
	enc := EncodeProperties(m)
	if want := "EMPTY\x01\x02KEYS\x01k1 k2\x02TAGS\x01TagA\x02"; string(enc) != want {
		t.Fatalf("EncodeProperties = %q, want %q", enc, want)
	}
	for i := 0; i < 20; i++ {
		if again := EncodeProperties(maps.Clone(m)); !bytes.Equal(again, enc) {
			t.Fatal("EncodeProperties is not deterministic")
		}
	}
	if !maps.Equal(ParseProperties(enc), m) {
		t.Fatal("EncodeProperties/ParseProperties do not round-trip")
	}
	if got := EncodeProperties(nil); len(got) != 0 {
		t.Fatalf("EncodeProperties(nil) = %q", got)
	}
	if got := ParseProperties(nil); len(got) != 0 {
		t.Fatalf("ParseProperties(nil) = %q", got)
	}

	// Malformed pairs are ignored by both decoders, as the Go client does:
	// no separator, two separators, no trailing \x02.
	odd := []byte("novalue\x02a\x01b\x01c\x02\x02x\x01y")
	if got := ParseProperties(odd); !maps.Equal(got, map[string]string{"x": "y"}) {
		t.Fatalf("ParseProperties(%q) = %q", odd, got)
	}
	for _, k := range []string{"novalue", "a"} {
		if _, ok := PropertyValue(odd, k); ok {
			t.Fatalf("PropertyValue found malformed pair %q", k)
		}
	}
	if v, ok := PropertyValue(odd, "x"); !ok || string(v) != "y" {
		t.Fatalf("PropertyValue(x) = %q, %v", v, ok)
	}
}

func TestPropertyValueAllocations(t *testing.T) {
	p := EncodeProperties(map[string]string{"TAGS": "t", "KEYS": "a b", "UNIQ_KEY": "u"})
	if n := testing.AllocsPerRun(100, func() { PropertyValue(p, "UNIQ_KEY") }); n != 0 {
		t.Fatalf("PropertyValue allocates %v times", n)
	}
}

// TestPropertyValueDuplicateKeyAgreesWithParse: when a name occurs twice,
// ParseProperties (like the Go client's UnmarshalProperties and Java's
// string2messageProperties, which fill a map) keeps the LAST value, and so
// must PropertyValue: the broker computes the consume-queue tag hash and
// key-index entries with it, so disagreeing would filter a message carrying
// two TAGS on a different tag than the one the consumer sees. (Regression
// test: PropertyValue used to return the first value; FuzzProperties found
// it, see testdata/fuzz/FuzzProperties.)
func TestPropertyValueDuplicateKeyAgreesWithParse(t *testing.T) {
	p := []byte("TAGS\x01TagA\x02KEYS\x01k\x02TAGS\x01TagB\x02")
	want := ParseProperties(p)["TAGS"]
	if want != "TagB" {
		t.Fatalf("ParseProperties kept %q, want the last value TagB (Go client semantics)", want)
	}
	if got, _ := PropertyValue(p, "TAGS"); string(got) != want {
		t.Errorf("PropertyValue(TAGS) = %q but ParseProperties (and clients) see %q", got, want)
	}
}

func TestTagHash(t *testing.T) {
	// Values of Java's String.hashCode (h = 31*h + c over the chars, int32
	// overflow); for ASCII the chars are the UTF-8 bytes.
	cases := map[string]int64{
		"":                   0,
		"a":                  97,
		"*":                  42,
		"abc":                96354,
		"TagA":               2598919,
		"TagB":               2598920,
		"tag1":               3552215,
		"hello":              99162322,
		"Hello World":        -862545276, // wraps negative
		"TagA||TagB":         1789476431,
		"zzzzzzzzzz":         -1580979136,
		"polygenelubricants": -2147483648, // Integer.MIN_VALUE, sign-extended
		// Non-ASCII: hashed over UTF-8 bytes as the Go client's HashString
		// does (Java's String.hashCode of "é" is 233, over UTF-16).
		"é": 195*31 + 169,
	}
	for s, want := range cases {
		if got := TagHash([]byte(s)); got != want {
			t.Errorf("TagHash(%q) = %d, want %d", s, got, want)
		}
	}
	// Derived from the formula: h("TagA"+"x") = 31*h("TagA") + 'x'.
	if got, want := TagHash([]byte("TagAx")), int64(int32(31*2598919+'x')); got != want {
		t.Errorf("TagHash(TagAx) = %d, want %d", got, want)
	}
}

// FuzzDecodeMessageExt: the decoder never panics, and whatever it accepts
// re-encodes to the same TOTALSIZE bytes, with three documented
// exceptions that Encode normalises on purpose or the decoder reads lossily:
//   - BODYCRC: Encode recomputes it from the body (the decoder does not check
//     it), so the expected bytes carry BodyChecksum(body) there;
//   - a host flagged IPv6 that holds a v4-mapped address (::ffff:a.b.c.d):
//     Encode writes it as an 8-byte IPv4 host and clears the flag, so the
//     record shrinks by 12 bytes; only field-level equality is checked then;
//   - the 4-byte port field is decoded as uint16, so its upper 16 bits are
//     dropped (see TestDecodePortUpperBits).
func FuzzDecodeMessageExt(f *testing.F) {
	for _, h := range [][2]netip.AddrPort{{v4a, v4b}, {v6a, v4b}, {v4a, v6b}, {v6a, v6b}} {
		m := sampleMessage(h[0], h[1])
		f.Add(encode(f, &m))
		m.Body, m.Properties, m.Topic = nil, nil, ""
		f.Add(encode(f, &m))
	}
	m := sampleMessage(v4a, v4b)
	b := encode(f, &m)
	f.Add(append(b, b...)) // two records back to back
	f.Add(b[:len(b)-3])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeMessageExt(in)
		if err != nil {
			if !errors.Is(err, ErrMalformedMessage) {
				t.Fatalf("error %v does not wrap ErrMalformedMessage", err)
			}
			return
		}
		total := RecordSize(in)
		if total < MinRecordSize || total > len(in) {
			t.Fatalf("accepted a record with TOTALSIZE %d of %d bytes", total, len(in))
		}
		if m.Size() != total && !hostNormalised(in) {
			t.Fatalf("decoded message has Size %d, TOTALSIZE %d", m.Size(), total)
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded message does not validate: %v", err)
		}
		out := make([]byte, m.Size())
		if n := m.Encode(out); n != len(out) {
			t.Fatalf("Encode wrote %d of %d", n, len(out))
		}
		again, err := DecodeMessageExt(out)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		sameMessage(t, again, m)
		if hostNormalised(in) {
			return
		}
		want := append([]byte(nil), in[:total]...)
		be := binary.BigEndian
		be.PutUint32(want[OffBodyCRC:], BodyChecksum(m.Body))
		sys := int32(be.Uint32(want[OffSysFlag:]))
		p := OffBornHost
		for _, v6 := range []bool{sys&SysFlagBornHostV6 != 0, sys&SysFlagStoreHostV6 != 0} {
			portPos := p + 4
			if v6 {
				portPos = p + 16
			}
			be.PutUint16(want[portPos:], 0) // upper half of the port
			p = portPos + 4 + 8             // past the port and the STORETIMESTAMP that follows BORNHOST
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", out, want)
		}
	})
}

// hostNormalised reports whether the record at the start of b flags a host
// as IPv6 whose 16 bytes are a v4-mapped address (Encode writes those as
// IPv4). b must hold a record DecodeMessageExt accepted.
func hostNormalised(b []byte) bool {
	sys := int32(binary.BigEndian.Uint32(b[OffSysFlag:]))
	p := OffBornHost
	mapped := func(ip []byte) bool { return netip.AddrFrom16([16]byte(ip)).Is4In6() }
	if sys&SysFlagBornHostV6 != 0 {
		if mapped(b[p : p+16]) {
			return true
		}
		p += 20
	} else {
		p += 8
	}
	p += 8
	return sys&SysFlagStoreHostV6 != 0 && mapped(b[p:p+16])
}

// FuzzProperties: PropertyValue and ParseProperties never panic and agree:
// a name is found by PropertyValue exactly when ParseProperties has it, with
// the same value. EncodeProperties of the parsed map parses back to it when
// no name or value contains a separator.
func FuzzProperties(f *testing.F) {
	f.Add([]byte("TAGS\x01TagA\x02KEYS\x01k1 k2\x02"), "TAGS")
	f.Add([]byte("a\x01b\x01c\x02\x01\x02x\x01"), "x")
	f.Add([]byte("\x02\x02\x01\x01"), "")
	f.Add([]byte("UNIQ_KEY\x01U1"), "UNIQ_KEY")
	f.Fuzz(func(t *testing.T, props []byte, probe string) {
		m := ParseProperties(props)
		for k, want := range m {
			v, ok := PropertyValue(props, k)
			if !ok || string(v) != want {
				t.Fatalf("PropertyValue(%q) = %q, %v; ParseProperties has %q", k, v, ok, want)
			}
		}
		v, ok := PropertyValue(props, probe)
		if want, has := m[probe]; ok != has || string(v) != want {
			t.Fatalf("PropertyValue(%q) = %q, %v; ParseProperties has %q, %v", probe, v, ok, want, has)
		}
		enc := EncodeProperties(m)
		if back := ParseProperties(enc); !maps.Equal(back, m) {
			t.Fatalf("EncodeProperties(%q) = %q parses back to %q", m, enc, back)
		}
		_ = TagHash(props)
		_ = AppendProperty(nil, probe, string(props))
	})
}
