package tier

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// ---------------------------------------------------------------------------
// Fixtures

// segTestRec is one record of a test segment.
type segTestRec struct {
	off   int64
	topic string
	qid   int32
	qoff  int64
	ts    int64
	tag   int64
	keys  []string
	rec   []byte // without the CRC trailer
}

// segTestSpec describes a record to put in a test segment.
type segTestSpec struct {
	topic  string
	qid    int32
	body   int  // body size
	random bool // incompressible body
	keys   []string
	tag    string
}

var segTestStoreHost = netip.MustParseAddrPort("10.0.0.1:10911")

// segTestEncode encodes m at log offset off with its CRC trailer.
func segTestEncode(m remoting.MessageExt, off int64) []byte {
	m.PhysicalOffset = off
	m.StoreHost = segTestStoreHost
	m.BornHost = netip.MustParseAddrPort("10.0.0.2:5555")
	b := make([]byte, m.Size()+segRecordTrailer)
	n := m.Encode(b)
	binary.BigEndian.PutUint32(b[n:], segCRC(b[:n]))
	return b
}

// segTestProps encodes TAGS, KEYS and UNIQ_KEY properties.
func segTestProps(tag string, keys []string, uniq string) []byte {
	var p []byte
	if tag != "" {
		p = remoting.AppendProperty(p, remoting.PropTags, tag)
	}
	if len(keys) > 0 {
		p = remoting.AppendProperty(p, remoting.PropKeys, strings.Join(keys, " "))
	}
	if uniq != "" {
		p = remoting.AppendProperty(p, remoting.PropUniqKey, uniq)
	}
	return p
}

// segTestSegment builds a segment of size bytes at base holding specs (with
// dense queue offsets starting at 100·qid, non-decreasing timestamps and a
// blank marker to the end; the marker's tail is filled with garbage to
// show it is never read). It returns the segment and its records.
func segTestSegment(t testing.TB, base, size int64, specs []segTestSpec) ([]byte, []segTestRec) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, uint64(len(specs))))
	seg := make([]byte, 0, size)
	next := map[string]int64{}
	var recs []segTestRec
	ts := int64(1700000000000)
	for i, s := range specs {
		qk := fmt.Sprintf("%s/%d", s.topic, s.qid)
		if _, ok := next[qk]; !ok {
			next[qk] = 100 * int64(s.qid)
		}
		pat := fmt.Sprintf("body %d of %s; ", i, qk)
		body := bytes.Repeat([]byte(pat), s.body/len(pat)+1)[:s.body]
		if s.random {
			for j := range body {
				body[j] = byte(rng.Uint32())
			}
		}
		uniq := fmt.Sprintf("U%08d", i)
		ts += int64(i % 3)
		m := remoting.MessageExt{Topic: s.topic, QueueID: s.qid, QueueOffset: next[qk], Body: body,
			Properties: segTestProps(s.tag, s.keys, uniq), BornTimestamp: ts - 5, StoreTimestamp: ts}
		off := base + int64(len(seg))
		b := segTestEncode(m, off)
		if int64(len(seg)+len(b)+segMarkerSize) > size {
			t.Fatalf("spec %d does not fit in a %d-byte segment", i, size)
		}
		seg = append(seg, b...)
		var tag int64
		if s.tag != "" {
			tag = remoting.TagHash([]byte(s.tag))
		}
		recs = append(recs, segTestRec{off: off, topic: s.topic, qid: s.qid, qoff: next[qk], ts: ts, tag: tag,
			keys: append(slices.Clone(s.keys), uniq), rec: b[:len(b)-segRecordTrailer]})
		next[qk]++
	}
	var marker [segMarkerSize]byte
	binary.BigEndian.PutUint32(marker[:], uint32(size-int64(len(seg))))
	binary.BigEndian.PutUint32(marker[4:], remoting.BlankMagic)
	seg = append(seg, marker[:]...)
	for int64(len(seg)) < size {
		seg = append(seg, 0xEE)
	}
	return seg, recs
}

// segTestSpecs returns n varied specs over a few topics and queues.
func segTestSpecs(n int) []segTestSpec {
	topics := []string{"orders", "payments", "T"}
	specs := make([]segTestSpec, n)
	for i := range specs {
		specs[i] = segTestSpec{
			topic:  topics[i%len(topics)],
			qid:    int32(i % 4),
			body:   50 + (i*37)%700,
			random: i%5 == 0,
			keys:   []string{fmt.Sprintf("key-%d", i), fmt.Sprintf("k%d", i%10)},
			tag:    fmt.Sprintf("tag%d", i%3),
		}
		if i%7 == 0 {
			specs[i].keys = nil
			specs[i].tag = ""
		}
	}
	return specs
}

// segTestBuild builds the object of seg.
func segTestBuild(t testing.TB, seg []byte, base int64, blockSize int) (*Footer, []byte) {
	t.Helper()
	var out bytes.Buffer
	f, n, err := BuildSegmentObject(context.Background(), &out, bytes.NewReader(seg), base, int64(len(seg)), BuildOptions{BlockSize: blockSize})
	if err != nil {
		t.Fatalf("BuildSegmentObject: %v", err)
	}
	if n != int64(out.Len()) || f.ObjectSize != n {
		t.Fatalf("object size %d (footer %d), wrote %d", n, f.ObjectSize, out.Len())
	}
	return f, out.Bytes()
}

// segTestStore is a map-backed ObjectStore that counts GETs.
type segTestStore struct {
	mu   sync.Mutex
	objs map[string][]byte
	gets int
}

func newSegTestStore() *segTestStore { return &segTestStore{objs: map[string][]byte{}} }

func (s *segTestStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if int64(len(b)) != size {
		return fmt.Errorf("put %s: %d bytes, want %d", key, len(b), size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[key] = b
	return nil
}

func (s *segTestStore) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	s.mu.Lock()
	_, ok := s.objs[key]
	s.mu.Unlock()
	if ok {
		return ErrExists
	}
	return s.Put(ctx, key, r, size)
}

func (s *segTestStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	b, ok := s.objs[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if n < 0 {
		n = int64(len(b)) - off
	}
	if off < 0 || n < 0 || off+n > int64(len(b)) {
		return nil, fmt.Errorf("%s: range [%d,+%d) past the end %d", key, off, n, len(b))
	}
	return io.NopCloser(bytes.NewReader(b[off : off+n])), nil
}

func (s *segTestStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objs[key]
	if !ok {
		return ObjectInfo{}, ErrNotFound
	}
	return ObjectInfo{Key: key, Size: int64(len(b))}, nil
}

func (s *segTestStore) List(ctx context.Context, prefix, startAfter string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {}
}

func (s *segTestStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objs, key)
	return nil
}

func (s *segTestStore) getCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

// segTestCheckObject reads every record, queue and key of recs back from
// the object through the store, and checks the block layout.
func segTestCheckObject(t *testing.T, f *Footer, obj []byte, recs []segTestRec, blockSize int) {
	t.Helper()
	ctx := context.Background()
	st := newSegTestStore()
	const key = "root/seg"
	if err := st.Put(ctx, key, bytes.NewReader(obj), int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	rf, err := ReadFooter(ctx, st, key, int64(len(obj)))
	if err != nil {
		t.Fatalf("ReadFooter: %v", err)
	}
	if !reflect.DeepEqual(rf, f) {
		t.Fatalf("footer read back differs:\n got %+v\nwant %+v", rf, f)
	}
	if int64(len(recs)) != f.Records {
		t.Fatalf("footer has %d records, want %d", f.Records, len(recs))
	}

	// Blocks: contiguous, on record boundaries, about blockSize.
	starts := map[int64]int{}
	for i, r := range recs {
		starts[r.off] = i
	}
	for i, b := range f.Blocks {
		ri, ok := starts[b.LogOffset]
		if !ok {
			t.Fatalf("block %d starts at %d, not a record boundary", i, b.LogOffset)
		}
		end := b.LogOffset + int64(b.RawLen)
		if int(b.RawLen) > blockSize {
			if next := recs[ri].off + int64(len(recs[ri].rec)) + segRecordTrailer; next != end {
				t.Fatalf("block %d of %d bytes > block size %d holds more than one record", i, b.RawLen, blockSize)
			}
		}
		if i+1 < len(f.Blocks) {
			if f.Blocks[i+1].LogOffset != end {
				t.Fatalf("block %d ends at %d, next starts at %d", i, end, f.Blocks[i+1].LogOffset)
			}
			nr := recs[starts[end]]
			if int(b.RawLen)+len(nr.rec)+segRecordTrailer <= blockSize {
				t.Fatalf("block %d cut at %d bytes although the next record (%d) fits in %d", i, b.RawLen, len(nr.rec), blockSize)
			}
		} else if end != f.DataEnd {
			t.Fatalf("last block ends at %d, data at %d", end, f.DataEnd)
		}
	}

	// Every record, byte-identical.
	blocks := map[int][]byte{}
	for _, r := range recs {
		bi, ok := f.BlockFor(r.off)
		if !ok {
			t.Fatalf("no block for %d", r.off)
		}
		blk, ok := blocks[bi]
		if !ok {
			if blk, err = ReadBlock(ctx, st, key, f.Blocks[bi]); err != nil {
				t.Fatalf("ReadBlock %d: %v", bi, err)
			}
			blocks[bi] = blk
		}
		got, err := RecordAt(blk, f.Blocks[bi], r.off, int32(len(r.rec)))
		if err != nil {
			t.Fatalf("RecordAt %d: %v", r.off, err)
		}
		if !bytes.Equal(got, r.rec) {
			t.Fatalf("record at %d differs", r.off)
		}
	}

	// Queues.
	type qk struct {
		topic string
		qid   int32
	}
	byQueue := map[qk][]segTestRec{}
	for _, r := range recs {
		byQueue[qk{r.topic, r.qid}] = append(byQueue[qk{r.topic, r.qid}], r)
	}
	if len(f.Queues) != len(byQueue) {
		t.Fatalf("%d queues, want %d", len(f.Queues), len(byQueue))
	}
	for k, rs := range byQueue {
		qi, ok := f.Queue(k.topic, k.qid)
		if !ok {
			t.Fatalf("queue %v missing", k)
		}
		if qi.First != rs[0].qoff || qi.Count != int64(len(rs)) {
			t.Fatalf("queue %v: first %d count %d, want %d %d", k, qi.First, qi.Count, rs[0].qoff, len(rs))
		}
		ents, err := ReadQueueEntries(ctx, st, key, *qi)
		if err != nil {
			t.Fatalf("ReadQueueEntries %v: %v", k, err)
		}
		minTs, maxTs := rs[0].ts, rs[0].ts
		for i, r := range rs {
			want := QueueEntry{LogOffset: r.off, Size: int32(len(r.rec)), TagHash: r.tag, StoreTimestamp: r.ts}
			if ents[i] != want {
				t.Fatalf("queue %v entry %d: %+v, want %+v", k, i, ents[i], want)
			}
			minTs, maxTs = min(minTs, r.ts), max(maxTs, r.ts)
		}
		if qi.MinTimestamp != minTs || qi.MaxTimestamp != maxTs {
			t.Fatalf("queue %v timestamps [%d,%d], want [%d,%d]", k, qi.MinTimestamp, qi.MaxTimestamp, minTs, maxTs)
		}
	}
	if _, ok := f.Queue("absent", 0); ok {
		t.Fatal("found a queue that is not there")
	}

	// Keys.
	for _, r := range recs {
		for _, k := range r.keys {
			offs, err := ReadKeyCandidates(ctx, st, key, f, k)
			if err != nil {
				t.Fatalf("ReadKeyCandidates %q: %v", k, err)
			}
			if !slices.Contains(offs, r.off) {
				t.Fatalf("key %q: candidates %v lack %d", k, offs, r.off)
			}
		}
	}
	if offs, err := ReadKeyCandidates(ctx, st, key, f, "no such key"); err != nil || len(offs) != 0 {
		t.Fatalf("absent key: %v, %v", offs, err)
	}
}

// ---------------------------------------------------------------------------
// Tests

func TestSegmentObjectRoundTrip(t *testing.T) {
	const base = 3 << 30
	for _, bs := range []int{1 << 10, 4 << 10, 64 << 10} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			seg, recs := segTestSegment(t, base, 256<<10, segTestSpecs(300))
			f, obj := segTestBuild(t, seg, base, bs)
			if f.Base != base || f.End != base+int64(len(seg)) || f.DataEnd != recs[len(recs)-1].off+int64(len(recs[len(recs)-1].rec))+segRecordTrailer {
				t.Fatalf("footer range base %d data end %d end %d", f.Base, f.DataEnd, f.End)
			}
			if f.MinTimestamp != recs[0].ts || f.MaxTimestamp != recs[len(recs)-1].ts {
				t.Fatalf("timestamps [%d,%d]", f.MinTimestamp, f.MaxTimestamp)
			}
			raw, lz := 0, 0
			for _, b := range f.Blocks {
				if b.Flags&BlockFlagRaw != 0 {
					raw++
				} else {
					lz++
				}
			}
			if lz == 0 {
				t.Errorf("no block compressed (%d raw)", raw)
			}
			segTestCheckObject(t, f, obj, recs, bs)
			// Deterministic output.
			if _, obj2 := segTestBuild(t, seg, base, bs); !bytes.Equal(obj, obj2) {
				t.Fatal("two builds of one segment differ")
			}
		})
	}
}

func TestSegmentObjectIncompressible(t *testing.T) {
	specs := []segTestSpec{{topic: "R", body: 8000, random: true}, {topic: "R", body: 9000, random: true}}
	seg, recs := segTestSegment(t, 0, 64<<10, specs)
	f, obj := segTestBuild(t, seg, 0, 4<<10)
	if len(f.Blocks) != 2 {
		t.Fatalf("%d blocks, want 2", len(f.Blocks))
	}
	for i, b := range f.Blocks {
		if b.Flags != BlockFlagRaw || b.CompLen != b.RawLen {
			t.Fatalf("block %d: flags %#x comp %d raw %d, want raw", i, b.Flags, b.CompLen, b.RawLen)
		}
	}
	segTestCheckObject(t, f, obj, recs, 4<<10)
}

func TestSegmentObjectBigRecord(t *testing.T) {
	specs := []segTestSpec{
		{topic: "A", body: 100}, {topic: "A", body: 200},
		{topic: "A", body: 20000}, // larger than the block size
		{topic: "B", qid: 1, body: 100}, {topic: "A", body: 30000, random: true}, {topic: "B", qid: 1, body: 10},
	}
	seg, recs := segTestSegment(t, 1000, 128<<10, specs)
	f, obj := segTestBuild(t, seg, 1000, 4096)
	bi, _ := f.BlockFor(recs[2].off)
	if b := f.Blocks[bi]; b.LogOffset != recs[2].off || int(b.RawLen) != len(recs[2].rec)+segRecordTrailer {
		t.Fatalf("big record's block: %+v", b)
	}
	if len(f.Blocks) != 5 {
		t.Fatalf("%d blocks, want 5: %+v", len(f.Blocks), f.Blocks)
	}
	segTestCheckObject(t, f, obj, recs, 4096)
}

func TestSegmentObjectEmpty(t *testing.T) {
	seg, _ := segTestSegment(t, 1<<20, 4096, nil)
	f, obj := segTestBuild(t, seg, 1<<20, 0)
	if f.Records != 0 || len(f.Blocks) != 0 || len(f.Queues) != 0 || f.KeyCount != 0 || f.DataEnd != f.Base || f.End != f.Base+4096 {
		t.Fatalf("empty segment footer: %+v", f)
	}
	if _, ok := f.BlockFor(f.Base); ok {
		t.Fatal("BlockFor found a block in an empty segment")
	}
	if _, n := f.KeyRange("x"); n != 0 {
		t.Fatalf("KeyRange in an empty segment: %d bytes", n)
	}
	segTestCheckObject(t, f, obj, nil, DefaultBlockSize)
	// The smallest segment: just the marker.
	seg, _ = segTestSegment(t, 0, segMarkerSize, nil)
	f, obj = segTestBuild(t, seg, 0, 0)
	if f.End != segMarkerSize || f.DataEnd != 0 {
		t.Fatalf("marker-only footer %+v", f)
	}
	segTestCheckObject(t, f, obj, nil, DefaultBlockSize)
}

func TestSegmentObjectManyQueuesLargeFooter(t *testing.T) {
	var specs []segTestSpec
	for i := range 1500 {
		specs = append(specs, segTestSpec{topic: fmt.Sprintf("topic-with-a-rather-long-name-%04d", i), qid: int32(i % 3), body: 10})
	}
	seg, recs := segTestSegment(t, 0, 1<<20, specs)
	f, obj := segTestBuild(t, seg, 0, 0)
	st := newSegTestStore()
	if err := st.Put(context.Background(), "k", bytes.NewReader(obj), int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	footerLen := binary.BigEndian.Uint32(obj[len(obj)-segTrailerSize:])
	if footerLen <= FooterTailSize {
		t.Fatalf("footer of %d bytes; the test wants one larger than the tail", footerLen)
	}
	_, err := DecodeFooter(obj[len(obj)-FooterTailSize:], int64(len(obj)))
	var short *ShortTailError
	if !errors.As(err, &short) || !errors.Is(err, ErrShortTail) || short.Need != int64(footerLen)+segTrailerSize {
		t.Fatalf("DecodeFooter of a short tail: %v", err)
	}
	rf, err := ReadFooter(context.Background(), st, "k", int64(len(obj)))
	if err != nil {
		t.Fatal(err)
	}
	if g := st.getCount(); g != 2 {
		t.Fatalf("ReadFooter made %d GETs, want 2", g)
	}
	if !reflect.DeepEqual(rf, f) {
		t.Fatal("footer read back differs")
	}
	segTestCheckObject(t, f, obj, recs, DefaultBlockSize)
}

func TestReadFooterOneGet(t *testing.T) {
	seg, _ := segTestSegment(t, 0, 256<<10, segTestSpecs(300))
	_, obj := segTestBuild(t, seg, 0, 8<<10)
	st := newSegTestStore()
	if err := st.Put(context.Background(), "k", bytes.NewReader(obj), int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFooter(context.Background(), st, "k", int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	if g := st.getCount(); g != 1 {
		t.Fatalf("ReadFooter made %d GETs, want 1", g)
	}
	if _, err := ReadFooter(context.Background(), st, "missing", int64(len(obj))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
}

func TestSegmentObjectKeyFences(t *testing.T) {
	// 1500 records × 100 keys = 150k keys: more than 2048 fences of 64.
	var specs []segTestSpec
	for i := range 1500 {
		keys := make([]string, 100)
		for j := range keys {
			keys[j] = fmt.Sprintf("k-%d-%d", i, j)
		}
		specs = append(specs, segTestSpec{topic: "K", qid: int32(i % 2), body: 8, keys: keys})
	}
	seg, recs := segTestSegment(t, 0, 4<<20, specs)
	f, obj := segTestBuild(t, seg, 0, 0)
	if f.KeyCount != 1500*101 {
		t.Fatalf("%d keys, want %d", f.KeyCount, 1500*101)
	}
	if len(f.fences) > segMaxFences || f.KeyFenceInterval <= segMinFenceInterval {
		t.Fatalf("%d fences every %d keys", len(f.fences), f.KeyFenceInterval)
	}
	st := newSegTestStore()
	if err := st.Put(context.Background(), "k", bytes.NewReader(obj), int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if i%10 != 0 {
			continue
		}
		for _, k := range r.keys[:3] {
			off, n := f.KeyRange(k)
			if n <= 0 || n > 3*int64(f.KeyFenceInterval)*KeyEntrySize || off < f.KeyOffset || off+n > f.KeyOffset+f.KeyCount*KeyEntrySize {
				t.Fatalf("KeyRange(%q) = [%d,+%d), section [%d,+%d)", k, off, n, f.KeyOffset, f.KeyCount*KeyEntrySize)
			}
			offs := LookupKey(obj[off:off+n], k)
			if !slices.Contains(offs, r.off) {
				t.Fatalf("key %q: %v lacks %d", k, offs, r.off)
			}
			offs, err := ReadKeyCandidates(context.Background(), st, "k", f, k)
			if err != nil || !slices.Contains(offs, r.off) {
				t.Fatalf("ReadKeyCandidates(%q) = %v, %v", k, offs, err)
			}
		}
	}
}

func TestBuildSegmentObjectCorruptSegment(t *testing.T) {
	const base = 4096
	specs := segTestSpecs(20)
	seg, recs := segTestSegment(t, base, 32<<10, specs)
	pos := func(r segTestRec) int { return int(r.off - base) }
	reCRC := func(b []byte, r segTestRec) {
		p := pos(r)
		binary.BigEndian.PutUint32(b[p+len(r.rec):], segCRC(b[p:p+len(r.rec)]))
	}
	cases := []struct {
		name string
		mod  func(b []byte) []byte
		size int64 // 0: len(b)
	}{
		{"body bit flip", func(b []byte) []byte { b[pos(recs[5])+100] ^= 1; return b }, 0},
		{"crc trailer", func(b []byte) []byte { b[pos(recs[5])+len(recs[5].rec)] ^= 0x80; return b }, 0},
		{"bad magic", func(b []byte) []byte { b[pos(recs[3])+5] ^= 1; return b }, 0},
		{"wrong physical offset", func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[pos(recs[4])+remoting.OffPhysicalOffset:], 1)
			reCRC(b, recs[4])
			return b
		}, 0},
		{"queue offset gap", func(b []byte) []byte {
			r := recs[13] // the second record of its queue
			binary.BigEndian.PutUint64(b[pos(r)+remoting.OffQueueOffset:], uint64(r.qoff+1))
			reCRC(b, r)
			return b
		}, 0},
		{"queue offset repeat", func(b []byte) []byte {
			r := recs[13]
			binary.BigEndian.PutUint64(b[pos(r)+remoting.OffQueueOffset:], uint64(r.qoff-1))
			reCRC(b, r)
			return b
		}, 0},
		{"size too small", func(b []byte) []byte { binary.BigEndian.PutUint32(b[pos(recs[2]):], 10); return b }, 0},
		{"size past the end", func(b []byte) []byte { binary.BigEndian.PutUint32(b[pos(recs[2]):], 1<<30); return b }, 0},
		{"inconsistent fields", func(b []byte) []byte {
			r := recs[6]
			binary.BigEndian.PutUint16(b[pos(r)+len(r.rec)-2-propsLen(r):], 0x7FFF)
			reCRC(b, r)
			return b
		}, 0},
		{"zeros instead of marker", func(b []byte) []byte {
			end := pos(recs[len(recs)-1]) + len(recs[len(recs)-1].rec) + segRecordTrailer
			clear(b[end:])
			return b
		}, 0},
		{"marker size wrong", func(b []byte) []byte {
			end := pos(recs[len(recs)-1]) + len(recs[len(recs)-1].rec) + segRecordTrailer
			binary.BigEndian.PutUint32(b[end:], 12)
			return b
		}, 0},
		{"file shorter than size", func(b []byte) []byte { return b[:pos(recs[10])+50] }, 32 << 10},
		{"size cuts the marker", func(b []byte) []byte {
			return b[:pos(recs[len(recs)-1])+len(recs[len(recs)-1].rec)+segRecordTrailer+4]
		}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.mod(slices.Clone(seg))
			size := c.size
			if size == 0 {
				size = int64(len(b))
			}
			_, _, err := BuildSegmentObject(context.Background(), io.Discard, bytes.NewReader(b), base, size, BuildOptions{BlockSize: 2048})
			if !errors.Is(err, ErrCorruptSegment) {
				t.Fatalf("build: %v, want ErrCorruptSegment", err)
			}
		})
	}
}

// propsLen returns the length of a record's properties.
func propsLen(r segTestRec) int {
	v, err := remoting.ParseRecordFields(r.rec)
	if err != nil {
		panic(err)
	}
	return len(v.Properties)
}

type segFailWriter struct{ n int }

func (w *segFailWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

type segFailReader struct{}

func (segFailReader) Read(p []byte) (int, error) { return 0, errors.New("read error") }

func TestBuildSegmentObjectErrors(t *testing.T) {
	seg, _ := segTestSegment(t, 0, 2<<20, segTestSpecs(2000))
	_, obj := segTestBuild(t, seg, 0, 16<<10)
	ctx := context.Background()
	if _, _, err := BuildSegmentObject(ctx, io.Discard, bytes.NewReader(seg), 0, int64(len(seg)), BuildOptions{BlockSize: -1}); err == nil {
		t.Fatal("negative block size accepted")
	}
	if _, _, err := BuildSegmentObject(ctx, io.Discard, bytes.NewReader(seg), 0, int64(len(seg)), BuildOptions{BlockSize: MaxBlockSize + 1}); err == nil {
		t.Fatal("huge block size accepted")
	}
	if _, _, err := BuildSegmentObject(ctx, io.Discard, bytes.NewReader(seg), -1, int64(len(seg)), BuildOptions{}); err == nil {
		t.Fatal("negative base accepted")
	}
	if _, _, err := BuildSegmentObject(ctx, io.Discard, bytes.NewReader(seg), 0, 4, BuildOptions{}); err == nil {
		t.Fatal("4-byte segment accepted")
	}
	for _, n := range []int{0, 10 << 10, len(obj) / 2, len(obj) - 10} {
		if _, _, err := BuildSegmentObject(ctx, &segFailWriter{n: n}, bytes.NewReader(seg), 0, int64(len(seg)), BuildOptions{BlockSize: 16 << 10}); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("failing writer after %d bytes: %v", n, err)
		}
	}
	_, _, err := BuildSegmentObject(ctx, io.Discard, segFailReader{}, 0, int64(len(seg)), BuildOptions{})
	if err == nil || errors.Is(err, ErrCorruptSegment) {
		t.Fatalf("failing reader: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := BuildSegmentObject(cctx, io.Discard, bytes.NewReader(seg), 0, int64(len(seg)), BuildOptions{BlockSize: 4096}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled build: %v", err)
	}
}

func TestSegmentObjectCorruptionDetected(t *testing.T) {
	seg, _ := segTestSegment(t, 0, 64<<10, segTestSpecs(60))
	f, obj := segTestBuild(t, seg, 0, 2048)
	size := int64(len(obj))
	footerStart := f.KeyOffset + f.KeyCount*KeyEntrySize
	// Flip one bit of every byte (a different bit each time) and decode
	// the part of the object that holds it, as a reader would: the damage
	// is detected, or (inside an LZ4 match that points at identical bytes)
	// it changes nothing that decodes.
	same := 0
	for i := range size {
		bit := byte(1) << (i % 8)
		obj[i] ^= bit
		var err error
		changed, inLZ4 := false, false
		switch {
		case i >= footerStart:
			_, err = DecodeFooter(obj, size)
			if err == nil {
				t.Fatalf("flipping byte %d of the footer/trailer went undetected", i)
			}
		case i >= f.KeyOffset:
			g := (i - f.KeyOffset) / KeyEntrySize / int64(f.KeyFenceInterval)
			lo := f.KeyOffset + g*int64(f.KeyFenceInterval)*KeyEntrySize
			hi := min(lo+int64(f.KeyFenceInterval)*KeyEntrySize, footerStart)
			if segCRC(obj[lo:hi]) != f.fences[g].crc {
				err = segCorrupt("key group %d", g)
			}
		default:
			if _, err = DecodeFooter(obj, size); err != nil {
				t.Fatalf("flipping byte %d before the footer broke the footer: %v", i, err)
			}
			for _, q := range f.Queues {
				if i >= q.SectionOffset && i < q.SectionOffset+q.SectionLen {
					_, err = DecodeQueueSection(obj[q.SectionOffset:q.SectionOffset+q.SectionLen], q)
				}
			}
			for _, b := range f.Blocks {
				if i >= b.ObjOffset && i < b.ObjOffset+int64(b.CompLen) {
					var raw []byte
					raw, err = DecodeBlock(obj[b.ObjOffset:b.ObjOffset+int64(b.CompLen)], b)
					changed = err == nil && !bytes.Equal(raw, seg[b.LogOffset-f.Base:b.LogOffset-f.Base+int64(b.RawLen)])
					inLZ4 = b.Flags&BlockFlagRaw == 0
				}
			}
		}
		obj[i] ^= bit
		switch {
		case errors.Is(err, ErrCorruptObject):
		case err == nil && !changed && inLZ4:
			same++
		default:
			t.Fatalf("flipping bit %#x of byte %d of %d: %v (decoded differently: %v)", bit, i, size, err, changed)
		}
	}
	t.Logf("object of %d bytes; %d flips decode to the same data", size, same)
	if same > len(obj)/50 {
		t.Fatalf("%d flips undetected", same)
	}
	// Truncated or extended objects.
	for _, n := range []int{0, 1, segTrailerSize - 1, segTrailerSize, len(obj) / 2, len(obj) - 1} {
		if _, err := DecodeFooter(obj[:n], int64(n)); !errors.Is(err, ErrCorruptObject) {
			t.Fatalf("object cut to %d bytes: %v", n, err)
		}
		if _, err := DecodeFooter(obj[len(obj)-n:], int64(len(obj))+1); !errors.Is(err, ErrCorruptObject) && !errors.Is(err, ErrShortTail) {
			t.Fatalf("tail of %d with a wrong object size: %v", n, err)
		}
	}
	longer := append(slices.Clone(obj[:100]), obj...)
	if _, err := DecodeFooter(longer, int64(len(longer))); !errors.Is(err, ErrCorruptObject) {
		t.Fatalf("object with 100 extra bytes: %v", err)
	}
	if _, err := DecodeFooter(obj, int64(len(obj))-1); !errors.Is(err, ErrCorruptObject) {
		t.Fatalf("tail longer than the object: %v", err)
	}
	// Short tails ask for more.
	for _, n := range []int{0, 5, segTrailerSize, segTrailerSize + 10} {
		tail := obj[len(obj)-n:]
		for round := 0; ; round++ {
			_, err := DecodeFooter(tail, int64(len(obj)))
			if err == nil {
				break
			}
			var st *ShortTailError
			if round == 2 || !errors.As(err, &st) || st.Need <= int64(len(tail)) || st.Need > int64(len(obj)) {
				t.Fatalf("tail of %d, round %d: %v", n, round, err)
			}
			tail = obj[int64(len(obj))-st.Need:]
		}
	}
}

func TestDecodeBlockBounds(t *testing.T) {
	seg, recs := segTestSegment(t, 0, 64<<10, segTestSpecs(40))
	f, obj := segTestBuild(t, seg, 0, 4096)
	b := f.Blocks[0]
	comp := obj[b.ObjOffset : b.ObjOffset+int64(b.CompLen)]
	bad := []BlockInfo{
		{RawLen: 0, CompLen: b.CompLen, CRC: b.CRC},
		{RawLen: -1, CompLen: b.CompLen, CRC: b.CRC},
		{RawLen: MaxBlockSize + 1, CompLen: b.CompLen, CRC: b.CRC},
		{RawLen: b.RawLen, CompLen: b.CompLen + 1, CRC: b.CRC, Flags: b.Flags},
		{RawLen: b.RawLen, CompLen: b.CompLen, CRC: b.CRC, Flags: 0x82},
		{RawLen: b.RawLen + 1, CompLen: b.CompLen, CRC: b.CRC, Flags: b.Flags},
		{RawLen: b.RawLen - 1, CompLen: b.CompLen, CRC: b.CRC, Flags: b.Flags},
		{RawLen: b.RawLen, CompLen: b.CompLen, CRC: b.CRC ^ 1, Flags: b.Flags},
		{RawLen: b.RawLen, CompLen: b.CompLen, CRC: b.CRC, Flags: b.Flags ^ BlockFlagRaw},
	}
	for i, bi := range bad {
		if _, err := DecodeBlock(comp, bi); !errors.Is(err, ErrCorruptObject) {
			t.Fatalf("case %d (%+v): %v", i, bi, err)
		}
	}
	st := newSegTestStore()
	if err := st.Put(context.Background(), "k", bytes.NewReader(obj), int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	for _, bi := range []BlockInfo{{CompLen: 0, RawLen: 10}, {CompLen: -5, RawLen: 10}, {CompLen: 1 << 30, RawLen: 10}, {ObjOffset: -1, CompLen: 10, RawLen: 10}} {
		if _, err := ReadBlock(context.Background(), st, "k", bi); !errors.Is(err, ErrCorruptObject) {
			t.Fatalf("ReadBlock(%+v): %v", bi, err)
		}
	}
	if st.getCount() != 0 {
		t.Fatal("ReadBlock fetched a block whose info is out of range")
	}

	// RecordAt: out of range, wrong size, wrong offset.
	raw, err := DecodeBlock(comp, b)
	if err != nil {
		t.Fatal(err)
	}
	r0 := recs[0]
	sz := int32(len(r0.rec))
	for _, c := range []struct {
		off  int64
		size int32
	}{
		{r0.off - 1, sz}, {r0.off + 1, sz}, {r0.off, sz - 1}, {r0.off, sz + 1}, {r0.off, 0}, {r0.off, -1},
		{r0.off, int32(len(raw))}, {b.LogOffset + int64(len(raw)), sz}, {1 << 62, sz}, {-1 << 62, sz},
	} {
		if _, err := RecordAt(raw, b, c.off, c.size); !errors.Is(err, ErrCorruptObject) {
			t.Fatalf("RecordAt(%d, %d): %v", c.off, c.size, err)
		}
	}
	damaged := slices.Clone(raw)
	damaged[len(r0.rec)-1] ^= 1
	if _, err := RecordAt(damaged, b, r0.off, sz); !errors.Is(err, ErrCorruptObject) {
		t.Fatalf("RecordAt of a damaged record: %v", err)
	}
}

func TestQueueSectionBounds(t *testing.T) {
	seg, _ := segTestSegment(t, 0, 64<<10, segTestSpecs(40))
	f, obj := segTestBuild(t, seg, 0, 4096)
	q := f.Queues[0]
	sec := obj[q.SectionOffset : q.SectionOffset+q.SectionLen]
	if _, err := DecodeQueueSection(sec, q); err != nil {
		t.Fatal(err)
	}
	for i, bq := range []QueueIndex{
		{Count: 0, SectionLen: 0, CRC: q.CRC},
		{Count: q.Count + 1, SectionLen: q.SectionLen, CRC: q.CRC},
		{Count: q.Count, SectionLen: q.SectionLen - 1, CRC: q.CRC},
		{Count: q.Count, SectionLen: q.SectionLen, CRC: q.CRC + 1},
		{Count: 1 << 40, SectionLen: 28 << 40, CRC: q.CRC},
	} {
		if _, err := DecodeQueueSection(sec, bq); !errors.Is(err, ErrCorruptObject) {
			t.Fatalf("case %d: %v", i, err)
		}
	}
	// A section whose CRC matches but whose offsets do not ascend.
	bad := slices.Clone(sec)
	copy(bad[QueueEntrySize:], sec[:QueueEntrySize])
	bq := q
	bq.CRC = segCRC(bad)
	if _, err := DecodeQueueSection(bad, bq); !errors.Is(err, ErrCorruptObject) {
		t.Fatalf("unordered section: %v", err)
	}
	st := newSegTestStore()
	if _, err := ReadQueueEntries(context.Background(), st, "k", QueueIndex{Count: 1 << 40, SectionLen: 28 << 40}); !errors.Is(err, ErrCorruptObject) || st.getCount() != 0 {
		t.Fatalf("ReadQueueEntries of a huge section: %v", err)
	}
	if e := QueueEntryAt(sec, q.Count); e != (QueueEntry{}) {
		t.Fatalf("QueueEntryAt past the end: %+v", e)
	}
	if e := QueueEntryAt(sec, -1); e != (QueueEntry{}) {
		t.Fatalf("QueueEntryAt(-1): %+v", e)
	}
}

func TestReadKeyCandidatesCorrupt(t *testing.T) {
	seg, recs := segTestSegment(t, 0, 64<<10, segTestSpecs(60))
	f, obj := segTestBuild(t, seg, 0, 4096)
	st := newSegTestStore()
	bad := slices.Clone(obj)
	bad[f.KeyOffset+3] ^= 0x10
	if err := st.Put(context.Background(), "k", bytes.NewReader(bad), int64(len(bad))); err != nil {
		t.Fatal(err)
	}
	// Every key whose range covers the damaged group sees the damage.
	hit := false
	for _, r := range recs {
		for _, k := range r.keys {
			off, n := f.KeyRange(k)
			if off > f.KeyOffset+3 || off+n <= f.KeyOffset+3 {
				continue
			}
			hit = true
			if _, err := ReadKeyCandidates(context.Background(), st, "k", f, k); !errors.Is(err, ErrCorruptObject) {
				t.Fatalf("key %q over a damaged group: %v", k, err)
			}
		}
	}
	if !hit {
		t.Fatal("no key covers the damaged group")
	}
}

// segGenReader streams a synthetic segment of size bytes without holding
// it: records of a few queues with keys from a fixed pool, then the blank
// marker and zeros.
type segGenReader struct {
	base, size int64
	pos        int64
	rec        []byte // backing store of buf
	buf        []byte // pending bytes of the current record
	m          remoting.MessageExt
	props      [][]byte
	next       [8]int64
	n          int
	done       bool
	rng        *rand.Rand
}

func newSegGenReader(base, size int64) *segGenReader {
	g := &segGenReader{base: base, size: size, rec: make([]byte, 4096), rng: rand.New(rand.NewPCG(7, 7))}
	for i := range 256 {
		g.props = append(g.props, segTestProps(fmt.Sprintf("tag%d", i%5), []string{fmt.Sprintf("order-%d", i)}, fmt.Sprintf("U%08d", i)))
	}
	body := bytes.Repeat([]byte("some moderately compressible payload 0123456789 "), 20)[:900]
	g.m = remoting.MessageExt{Topic: "bench", Body: body, StoreHost: segTestStoreHost,
		BornHost: netip.MustParseAddrPort("10.0.0.2:5555"), BornTimestamp: 1700000000000}
	return g
}

func (g *segGenReader) fill() {
	m := &g.m
	q := g.n % len(g.next)
	m.QueueID, m.QueueOffset, m.PhysicalOffset = int32(q), g.next[q], g.base+g.pos
	m.StoreTimestamp = 1700000000000 + int64(g.n/100)
	m.Properties = g.props[g.n%len(g.props)]
	// A varying head (ids, amounts) before the repetitive rest of the body.
	const hexDigits = "0123456789abcdef"
	for i := range 64 {
		m.Body[i] = hexDigits[g.rng.IntN(16)]
	}
	need := m.Size() + segRecordTrailer
	if g.pos+int64(need)+segMarkerSize > g.size {
		g.buf = g.rec[:segMarkerSize]
		binary.BigEndian.PutUint32(g.buf, uint32(g.size-g.pos))
		binary.BigEndian.PutUint32(g.buf[4:], remoting.BlankMagic)
		g.done = true
		return
	}
	g.buf = g.rec[:need]
	n := m.Encode(g.buf)
	binary.BigEndian.PutUint32(g.buf[n:], segCRC(g.buf[:n]))
	g.next[q]++
	g.n++
}

func (g *segGenReader) Read(p []byte) (int, error) {
	if len(g.buf) == 0 {
		if g.done {
			// Past the marker: zeros until the end.
			if g.pos >= g.size {
				return 0, io.EOF
			}
			n := int(min(int64(len(p)), g.size-g.pos))
			clear(p[:n])
			g.pos += int64(n)
			return n, nil
		}
		g.fill()
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	g.pos += int64(n)
	return n, nil
}

// segTailWriter keeps the last FooterTailSize bytes written.
type segTailWriter struct {
	n    int64
	tail []byte
}

func (w *segTailWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	w.tail = append(w.tail, p...)
	if len(w.tail) > 2*FooterTailSize {
		w.tail = append(w.tail[:0], w.tail[len(w.tail)-FooterTailSize:]...)
	}
	return len(p), nil
}

func TestBuildSegmentObjectBoundedMemory(t *testing.T) {
	const size = 64 << 20
	gen := newSegGenReader(1<<30, size)
	w := &segTailWriter{tail: make([]byte, 0, 3*FooterTailSize)}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f, n, err := BuildSegmentObject(context.Background(), w, gen, 1<<30, size, BuildOptions{})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d records, %d blocks, object %d bytes (%.1f%%), %d queues, %d keys; allocated %.1f MiB",
		f.Records, len(f.Blocks), n, 100*float64(n)/size, len(f.Queues), f.KeyCount, float64(alloc)/(1<<20))
	if n != w.n || f.Records != int64(gen.n) {
		t.Fatalf("object %d bytes, wrote %d; %d records, generated %d", n, w.n, f.Records, gen.n)
	}
	// Tables: a 32-byte entry per record and twice 16 bytes per key (the
	// chunks, then the sorted copy), plus the block, compression and I/O
	// buffers. The segment is 64 MiB.
	tables := uint64(f.Records*32 + f.KeyCount*2*KeyEntrySize)
	if limit := tables + 6*DefaultBlockSize; alloc > limit || alloc > size/4 {
		t.Fatalf("building a %d MiB segment allocated %d bytes, want < %d", size>>20, alloc, limit)
	}
	for i, b := range f.Blocks[:len(f.Blocks)-1] {
		if b.RawLen > DefaultBlockSize || b.RawLen < DefaultBlockSize-2048 {
			t.Fatalf("block %d holds %d bytes", i, b.RawLen)
		}
	}
	tail := w.tail[len(w.tail)-min(len(w.tail), FooterTailSize):]
	df, err := DecodeFooter(tail, n)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(df, f) {
		t.Fatal("decoded footer differs from the built one")
	}
}

func BenchmarkBuildSegmentObject(b *testing.B) {
	const size = 16 << 20
	seg, err := io.ReadAll(newSegGenReader(0, size))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := BuildSegmentObject(context.Background(), io.Discard, bytes.NewReader(seg), 0, size, BuildOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBlock(b *testing.B) {
	const size = 4 << 20
	seg, err := io.ReadAll(newSegGenReader(0, size))
	if err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	f, _, err := BuildSegmentObject(context.Background(), &out, bytes.NewReader(seg), 0, size, BuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	obj := out.Bytes()
	blk := f.Blocks[0]
	b.SetBytes(int64(blk.RawLen))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBlock(obj[blk.ObjOffset:blk.ObjOffset+int64(blk.CompLen)], blk); err != nil {
			b.Fatal(err)
		}
	}
}

// ---------------------------------------------------------------------------
// Fuzz targets

// segFuzzObject is a small real object for seeding the fuzz targets.
func segFuzzObject(t testing.TB) (*Footer, []byte) {
	specs := segTestSpecs(40)
	specs = append(specs, segTestSpec{topic: "R", body: 3000, random: true})
	seg, _ := segTestSegment(t, 1<<20, 64<<10, specs)
	return segTestBuild(t, seg, 1<<20, 2048)
}

// FuzzDecodeFooter decodes fuzzed objects. With fix set the harness first
// repairs the trailer's CRC, so that the fuzzer reaches the footer's
// consistency checks. Go minimizes every new-coverage input for up to
// -fuzzminimizetime (default 60s), which stalls short campaigns on these
// large inputs: run it with e.g. -fuzzminimizetime 50x.
func FuzzDecodeFooter(f *testing.F) {
	_, obj := segFuzzObject(f)
	seg, _ := segTestSegment(f, 0, 4096, nil)
	_, empty := segTestBuild(f, seg, 0, 0)
	f.Add(obj, uint16(0), false)
	f.Add(obj, uint16(100), false)
	f.Add(obj, uint16(0), true)
	f.Add(empty, uint16(0), false)
	f.Add(empty, uint16(0), true)
	f.Add([]byte{}, uint16(0), false)
	f.Add(bytes.Repeat([]byte{0xFF}, 40), uint16(3), true)
	f.Fuzz(func(t *testing.T, obj []byte, cut uint16, fix bool) {
		if fix && len(obj) >= segTrailerSize {
			tr := obj[len(obj)-segTrailerSize:]
			if fl := int(binary.BigEndian.Uint32(tr)); fl <= len(obj)-segTrailerSize {
				binary.BigEndian.PutUint32(tr[4:], segFooterCRC(obj[len(obj)-segTrailerSize-fl:len(obj)-segTrailerSize], tr))
			}
		}
		// The tail is obj minus its first cut bytes; the object is obj.
		tail := obj[min(int(cut), len(obj)):]
		ft, err := DecodeFooter(tail, int64(len(obj)))
		if err != nil {
			var st *ShortTailError
			if errors.As(err, &st) {
				if st.Need <= int64(len(tail)) || st.Need > int64(len(obj)) {
					t.Fatalf("ShortTailError asks for %d bytes of a %d-byte object with a %d-byte tail", st.Need, len(obj), len(tail))
				}
				return
			}
			if !errors.Is(err, ErrCorruptObject) {
				t.Fatalf("error %v does not wrap ErrCorruptObject", err)
			}
			return
		}
		// A footer that decodes is self-consistent: every range lies in
		// the object and the lookups do not panic.
		for _, b := range ft.Blocks {
			if b.ObjOffset < 0 || b.ObjOffset+int64(b.CompLen) > int64(len(obj)) {
				t.Fatalf("block %+v outside the object", b)
			}
			if i, ok := ft.BlockFor(b.LogOffset); !ok || ft.Blocks[i] != b {
				t.Fatalf("BlockFor(%d) = %d, %v", b.LogOffset, i, ok)
			}
			_, _ = DecodeBlock(obj[b.ObjOffset:b.ObjOffset+int64(b.CompLen)], b)
		}
		for _, q := range ft.Queues {
			if q.SectionOffset < 0 || q.SectionOffset+q.SectionLen > int64(len(obj)) {
				t.Fatalf("queue %+v outside the object", q)
			}
			if p, ok := ft.Queue(q.Topic, q.QueueID); !ok || p.First != q.First {
				t.Fatalf("Queue(%q, %d) not found", q.Topic, q.QueueID)
			}
			_, _ = DecodeQueueSection(obj[q.SectionOffset:q.SectionOffset+q.SectionLen], q)
		}
		for _, k := range []string{"key-1", "U00000003", "x"} {
			off, n := ft.KeyRange(k)
			if n < 0 || (n > 0 && (off < ft.KeyOffset || off+n > ft.KeyOffset+ft.KeyCount*KeyEntrySize || off+n > int64(len(obj)))) {
				t.Fatalf("KeyRange(%q) = [%d,+%d) outside the key section", k, off, n)
			}
			if n > 0 {
				_ = LookupKey(obj[off:off+n], k)
			}
		}
		_, _ = ft.BlockFor(ft.Base - 1)
		_, _ = ft.BlockFor(ft.DataEnd)
	})
}

func FuzzDecodeBlock(f *testing.F) {
	ft, obj := segFuzzObject(f)
	for _, b := range ft.Blocks {
		f.Add(obj[b.ObjOffset:b.ObjOffset+int64(b.CompLen)], b.LogOffset, b.RawLen, b.CRC, b.Flags, int32(200))
	}
	f.Add([]byte{}, int64(0), int32(1), uint32(0), uint8(0), int32(0))
	f.Add([]byte{0xF0, 0xFF, 0xFF, 0xFF}, int64(0), int32(1<<20), uint32(0), uint8(0), int32(0))
	f.Fuzz(func(t *testing.T, comp []byte, logOff int64, rawLen int32, crc uint32, flags uint8, probe int32) {
		if rawLen > 4<<20 {
			rawLen = 4 << 20 // keep each run cheap; the bound itself is tested elsewhere
		}
		bi := BlockInfo{LogOffset: logOff, RawLen: rawLen, CompLen: int32(len(comp)), CRC: crc, Flags: flags}
		raw, err := DecodeBlock(comp, bi)
		if err != nil {
			if !errors.Is(err, ErrCorruptObject) {
				t.Fatalf("error %v does not wrap ErrCorruptObject", err)
			}
			return
		}
		if len(raw) != int(rawLen) || segCRC(raw) != crc {
			t.Fatalf("decoded %d bytes with CRC %#x, want %d %#x", len(raw), segCRC(raw), rawLen, crc)
		}
		// Walk the records as a reader would.
		for pos := int64(0); pos+8 <= int64(len(raw)); {
			size := int32(binary.BigEndian.Uint32(raw[pos:]))
			rec, err := RecordAt(raw, bi, logOff+pos, size)
			if err != nil {
				break
			}
			if int64(len(rec)) != int64(size) {
				t.Fatalf("RecordAt returned %d bytes, want %d", len(rec), size)
			}
			pos += int64(size) + segRecordTrailer
		}
		_, _ = RecordAt(raw, bi, logOff+int64(probe), probe)
	})
}

func FuzzDecodeQueueSection(f *testing.F) {
	ft, obj := segFuzzObject(f)
	for _, q := range ft.Queues {
		f.Add(obj[q.SectionOffset:q.SectionOffset+q.SectionLen], q.Count, q.CRC)
	}
	f.Add([]byte{}, int64(0), uint32(0))
	f.Add(make([]byte, 28), int64(1), uint32(0))
	f.Fuzz(func(t *testing.T, sec []byte, count int64, crc uint32) {
		q := QueueIndex{Topic: "T", Count: count, SectionLen: int64(len(sec)), CRC: crc}
		ents, err := DecodeQueueSection(sec, q)
		if err != nil {
			if !errors.Is(err, ErrCorruptObject) {
				t.Fatalf("error %v does not wrap ErrCorruptObject", err)
			}
			return
		}
		if int64(len(ents)) != count {
			t.Fatalf("%d entries, want %d", len(ents), count)
		}
		for i, e := range ents {
			if QueueEntryAt(sec, int64(i)) != e {
				t.Fatalf("QueueEntryAt(%d) differs", i)
			}
		}
	})
}

func FuzzLookupKey(f *testing.F) {
	ft, obj := segFuzzObject(f)
	f.Add(obj[ft.KeyOffset:ft.KeyOffset+ft.KeyCount*KeyEntrySize], "key-1")
	f.Add([]byte{1, 2, 3}, "")
	f.Fuzz(func(t *testing.T, sec []byte, key string) {
		h := segKeyHash([]byte(key))
		for _, off := range LookupKey(sec, key) {
			found := false
			for i := 0; i+KeyEntrySize <= len(sec); i += KeyEntrySize {
				if binary.BigEndian.Uint64(sec[i:]) == h && int64(binary.BigEndian.Uint64(sec[i+8:])) == off {
					found = true
				}
			}
			if !found {
				t.Fatalf("LookupKey returned %d, which is not an entry of %q", off, key)
			}
		}
	})
}

// TestSegmentObjectTimeout makes sure a build honours a deadline that
// passes while it runs.
func TestSegmentObjectTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	gen := newSegGenReader(0, 8<<20)
	if _, _, err := BuildSegmentObject(ctx, io.Discard, gen, 0, 8<<20, BuildOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("build after the deadline: %v", err)
	}
}
