package tier

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// manifestTestStore is a map-backed ObjectStore for the manifest's tests,
// with call counters and fault hooks.
type manifestTestStore struct {
	mu   sync.Mutex
	objs map[string][]byte

	lists, gets, puts atomic.Int64

	// beforeGet, if set, runs before each GetRange; a non-nil error is
	// returned instead of the object.
	beforeGet func(key string) error
	// afterPut, if set, runs after each successful put; its error is
	// returned (the object stays stored: an ambiguous failure).
	afterPut func(key string) error
}

func newManifestTestStore() *manifestTestStore {
	return &manifestTestStore{objs: make(map[string][]byte)}
}

func (s *manifestTestStore) put(ctx context.Context, key string, r io.Reader, size int64, excl bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if int64(len(b)) != size {
		return fmt.Errorf("put %s: size %d, read %d", key, size, len(b))
	}
	s.mu.Lock()
	if _, ok := s.objs[key]; ok && excl {
		s.mu.Unlock()
		return fmt.Errorf("put %s: %w", key, ErrExists)
	}
	s.objs[key] = b
	hook := s.afterPut
	s.mu.Unlock()
	s.puts.Add(1)
	if hook != nil {
		return hook(key)
	}
	return nil
}

func (s *manifestTestStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return s.put(ctx, key, r, size, false)
}

func (s *manifestTestStore) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	return s.put(ctx, key, r, size, true)
}

func (s *manifestTestStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	s.gets.Add(1)
	s.mu.Lock()
	hook := s.beforeGet
	s.mu.Unlock()
	if hook != nil {
		if err := hook(key); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	b, ok := s.objs[key]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	if off > int64(len(b)) || (n >= 0 && off+n > int64(len(b))) {
		return nil, fmt.Errorf("get %s: range past the end", key)
	}
	b = b[off:]
	if n >= 0 {
		b = b[:n]
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (s *manifestTestStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objs[key]
	if !ok {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, ErrNotFound)
	}
	return ObjectInfo{Key: key, Size: int64(len(b))}, nil
}

func (s *manifestTestStore) List(ctx context.Context, prefix, startAfter string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		s.lists.Add(1)
		s.mu.Lock()
		var infos []ObjectInfo
		for k, b := range s.objs {
			if strings.HasPrefix(k, prefix) && k > startAfter {
				infos = append(infos, ObjectInfo{Key: k, Size: int64(len(b))})
			}
		}
		s.mu.Unlock()
		slices.SortFunc(infos, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
		for _, info := range infos {
			if err := ctx.Err(); err != nil {
				yield(ObjectInfo{}, err)
				return
			}
			if !yield(info, nil) {
				return
			}
		}
	}
}

func (s *manifestTestStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objs, key)
	return nil
}

func (s *manifestTestStore) set(key string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[key] = b
}

func (s *manifestTestStore) keys(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ks []string
	for k := range s.objs {
		if strings.HasPrefix(k, prefix) {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

const mtRoot = "strata/c1/b1"

func mtCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mtSeg returns a valid entry for log offsets [base, end) with the given
// queue ranges; timestamps derive from base.
func mtSeg(base, end int64, queues ...QueueRange) SegmentEntry {
	return SegmentEntry{
		Key: fmt.Sprintf("%s/%020d.seg", mtRoot, base), Base: base, End: end, Size: 100 + end - base,
		FooterCRC: uint32(base), Records: (end - base) / 100,
		MinTimestamp: 1_700_000_000_000 + base, MaxTimestamp: 1_700_000_000_000 + end - 1,
		Queues: queues,
	}
}

func mtQ(topic string, id int32, first, next int64) QueueRange {
	return QueueRange{Topic: topic, QueueID: id, First: first, Next: next, MinTimestamp: 1_700_000_000_000 + first, MaxTimestamp: 1_700_000_000_000 + next}
}

func mtLoad(t testing.TB, s ObjectStore) *Manifest {
	t.Helper()
	m, err := LoadManifest(mtCtx(t), s, mtRoot)
	if err != nil {
		t.Fatalf("LoadManifest: %v", err)
	}
	return m
}

func mtAppend(t testing.TB, m *Manifest, e SegmentEntry) SegmentEntry {
	t.Helper()
	got, err := m.Append(mtCtx(t), e)
	if err != nil {
		t.Fatalf("Append [%d,%d): %v", e.Base, e.End, err)
	}
	return got
}

// mtAppendN appends n segments of 1000 log bytes each from log offset 0,
// each holding 10 messages of queue T/0 and 5 of T/1.
func mtAppendN(t testing.TB, m *Manifest, n int) {
	t.Helper()
	for range n {
		base := m.EndOffset()
		i := base / 1000
		mtAppend(t, m, mtSeg(base, base+1000, mtQ("T", 0, i*10, i*10+10), mtQ("T", 1, i*5, i*5+5)))
	}
}

func mtSameEntries(t *testing.T, got, want []SegmentEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("entry %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestManifestEmpty(t *testing.T) {
	s := newManifestTestStore()
	m := mtLoad(t, s)
	if m.Len() != 0 || m.LastSeq() != 0 || m.EndOffset() != 0 || len(m.Entries()) != 0 || len(m.Queues()) != 0 {
		t.Fatalf("empty manifest: len %d last %d end %d", m.Len(), m.LastSeq(), m.EndOffset())
	}
	if _, _, ok := m.Find("T", 0, 0); ok {
		t.Fatal("Find in an empty manifest")
	}
	if _, ok := m.ByLogOffset(0); ok || m.HasBase(0) {
		t.Fatal("ByLogOffset/HasBase in an empty manifest")
	}
	if err := m.Snapshot(mtCtx(t)); err != nil {
		t.Fatal(err)
	}
	if n, err := m.Prune(mtCtx(t)); err != nil || n != 0 {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	if err := m.Reload(mtCtx(t)); err != nil {
		t.Fatal(err)
	}
	if ks := s.keys(""); len(ks) != 0 {
		t.Fatalf("an empty manifest wrote %v", ks)
	}
	for _, root := range []string{"/abs", "a/../b", "a//b"} {
		if _, err := LoadManifest(mtCtx(t), s, root); err == nil {
			t.Errorf("root %q accepted", root)
		}
	}
	if _, err := LoadManifest(mtCtx(t), nil, "x"); err == nil {
		t.Error("nil store accepted")
	}
}

func TestManifestAppendAndLookups(t *testing.T) {
	s := newManifestTestStore()
	m := mtLoad(t, s)
	ctx := mtCtx(t)
	// Segment 1: [0,1000) T/0 [0,10) T/1 [0,5)
	// Segment 2: [1000,2000) T/0 [10,20)
	// (log gap [2000,5000); T/0 gap [20,30); T/1 gap [5,8))
	// Segment 3: [5000,6000) T/0 [30,40) T/1 [8,9) U/3 [100,200)
	e1 := mtAppend(t, m, mtSeg(0, 1000, mtQ("T", 0, 0, 10), mtQ("T", 1, 0, 5)))
	e2 := mtAppend(t, m, mtSeg(1000, 2000, mtQ("T", 0, 10, 20)))
	e3 := mtAppend(t, m, mtSeg(5000, 6000, mtQ("T", 0, 30, 40), mtQ("T", 1, 8, 9), mtQ("U", 3, 100, 200)))
	if e1.Seq != 1 || e2.Seq != 2 || e3.Seq != 3 || m.LastSeq() != 3 || m.Len() != 3 {
		t.Fatalf("seqs %d %d %d, last %d len %d", e1.Seq, e2.Seq, e3.Seq, m.LastSeq(), m.Len())
	}
	if e1.Created.IsZero() || e1.Created.Location() != time.UTC {
		t.Fatalf("Created %v", e1.Created)
	}
	if m.EndOffset() != 6000 {
		t.Fatalf("EndOffset %d", m.EndOffset())
	}
	for _, c := range []struct {
		base int64
		want bool
	}{{0, true}, {1000, true}, {5000, true}, {2000, false}, {999, false}, {-1, false}, {7000, false}} {
		if got := m.HasBase(c.base); got != c.want {
			t.Errorf("HasBase(%d) = %v", c.base, got)
		}
	}
	for _, c := range []struct {
		off  int64
		base int64 // -1: none
	}{{0, 0}, {999, 0}, {1000, 1000}, {1999, 1000}, {2000, -1}, {4999, -1}, {5000, 5000}, {5999, 5000}, {6000, -1}, {-5, -1}} {
		e, ok := m.ByLogOffset(c.off)
		if (c.base < 0) == ok || (ok && e.Base != c.base) {
			t.Errorf("ByLogOffset(%d) = %d, %v; want base %d", c.off, e.Base, ok, c.base)
		}
	}
	for _, c := range []struct {
		topic      string
		id         int32
		off        int64
		base       int64 // -1: not found
		first, nxt int64
	}{
		{"T", 0, 0, 0, 0, 10},
		{"T", 0, 9, 0, 0, 10},
		{"T", 0, 10, 1000, 10, 20},
		{"T", 0, 19, 1000, 10, 20},
		{"T", 0, 20, 5000, 30, 40}, // in the hole [20,30): next segment
		{"T", 0, 29, 5000, 30, 40},
		{"T", 0, 39, 5000, 30, 40},
		{"T", 0, 40, -1, 0, 0},
		{"T", 0, -3, 0, 0, 10},
		{"T", 1, 4, 0, 0, 5},
		{"T", 1, 5, 5000, 8, 9}, // T/1 is not in segment 2
		{"T", 1, 9, -1, 0, 0},
		{"U", 3, 0, 5000, 100, 200}, // below the queue's first offset
		{"U", 3, 150, 5000, 100, 200},
		{"U", 2, 150, -1, 0, 0},
		{"V", 0, 0, -1, 0, 0},
	} {
		e, qr, ok := m.Find(c.topic, c.id, c.off)
		if (c.base < 0) == ok {
			t.Errorf("Find(%s/%d, %d): ok %v", c.topic, c.id, c.off, ok)
			continue
		}
		if ok && (e.Base != c.base || qr.First != c.first || qr.Next != c.nxt || qr.Topic != c.topic || qr.QueueID != c.id) {
			t.Errorf("Find(%s/%d, %d) = segment %d range %+v", c.topic, c.id, c.off, e.Base, qr)
		}
	}
	if f, n, ok := m.QueueBounds("T", 0); !ok || f != 0 || n != 40 {
		t.Errorf("QueueBounds(T/0) = %d, %d, %v", f, n, ok)
	}
	if f, n, ok := m.QueueBounds("U", 3); !ok || f != 100 || n != 200 {
		t.Errorf("QueueBounds(U/3) = %d, %d, %v", f, n, ok)
	}
	if _, _, ok := m.QueueBounds("U", 0); ok {
		t.Error("QueueBounds of an unknown queue")
	}
	qs := m.Queues()
	want := []QueueRange{
		{Topic: "T", QueueID: 0, First: 0, Next: 40, MinTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_040},
		{Topic: "T", QueueID: 1, First: 0, Next: 9, MinTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_009},
		{Topic: "U", QueueID: 3, First: 100, Next: 200, MinTimestamp: 1_700_000_000_100, MaxTimestamp: 1_700_000_000_200},
	}
	if !reflect.DeepEqual(qs, want) {
		t.Errorf("Queues() =\n%+v\nwant\n%+v", qs, want)
	}
	es := m.Entries()
	mtSameEntries(t, es, []SegmentEntry{e1, e2, e3})

	// A fresh load sees the same.
	m2 := mtLoad(t, s)
	mtSameEntries(t, m2.Entries(), es)
	if !reflect.DeepEqual(m2.Queues(), qs) {
		t.Errorf("reloaded Queues() = %+v", m2.Queues())
	}

	// The view Entries returned is not disturbed by later appends.
	mtAppend(t, m, mtSeg(6000, 7000, mtQ("T", 0, 40, 50)))
	if len(es) != 3 || m.Len() != 4 || len(m.Entries()) != 4 {
		t.Fatalf("view len %d, manifest len %d", len(es), m.Len())
	}
	if _, err := m.Append(ctx, mtSeg(7000, 8000)); err != nil {
		t.Fatalf("segment without queues: %v", err)
	}
}

func TestManifestAppendRejects(t *testing.T) {
	s := newManifestTestStore()
	m := mtLoad(t, s)
	ctx := mtCtx(t)
	mtAppend(t, m, mtSeg(1000, 2000, mtQ("T", 0, 10, 20)))
	bad := map[string]SegmentEntry{
		"log overlap":     mtSeg(1500, 2500, mtQ("T", 0, 20, 30)),
		"same base":       mtSeg(1000, 3000),
		"queue overlap":   mtSeg(2000, 3000, mtQ("T", 0, 19, 30)),
		"end before base": mtSeg(3000, 3000),
		"empty key":       func() SegmentEntry { e := mtSeg(2000, 3000); e.Key = ""; return e }(),
		"dotdot key":      func() SegmentEntry { e := mtSeg(2000, 3000); e.Key = "a/../b"; return e }(),
		"abs key":         func() SegmentEntry { e := mtSeg(2000, 3000); e.Key = "/a/b"; return e }(),
		"long key":        func() SegmentEntry { e := mtSeg(2000, 3000); e.Key = strings.Repeat("k", 1025); return e }(),
		"zero size":       func() SegmentEntry { e := mtSeg(2000, 3000); e.Size = 0; return e }(),
		"neg records":     func() SegmentEntry { e := mtSeg(2000, 3000); e.Records = -1; return e }(),
		"too many recs":   func() SegmentEntry { e := mtSeg(2000, 3000); e.Records = 1001; return e }(),
		"time range":      func() SegmentEntry { e := mtSeg(2000, 3000); e.MinTimestamp = e.MaxTimestamp + 1; return e }(),
		"neg time":        func() SegmentEntry { e := mtSeg(2000, 3000); e.MinTimestamp = -1; return e }(),
		"dup queue":       mtSeg(2000, 3000, mtQ("T", 0, 20, 30), mtQ("T", 0, 30, 40)),
		"empty topic":     mtSeg(2000, 3000, mtQ("", 0, 20, 30)),
		"control topic":   mtSeg(2000, 3000, mtQ("a\nb", 0, 20, 30)),
		"neg queue id":    mtSeg(2000, 3000, mtQ("T", -1, 20, 30)),
		"next < first":    mtSeg(2000, 3000, mtQ("T", 0, 30, 20)),
		"queue > log":     mtSeg(2000, 3000, mtQ("T", 0, 20, 2000)),
		"queue time":      mtSeg(2000, 3000, QueueRange{Topic: "T", First: 20, Next: 30, MinTimestamp: 5, MaxTimestamp: 4}),
		"far future": func() SegmentEntry {
			e := mtSeg(2000, 3000)
			e.Created = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
			return e
		}(),
	}
	puts := s.puts.Load()
	for name, e := range bad {
		_, err := m.Append(ctx, e)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if errors.Is(err, ErrManifestConflict) {
			t.Errorf("%s: %v is not a conflict", name, err)
		}
	}
	if s.puts.Load() != puts || m.Len() != 1 || m.LastSeq() != 1 {
		t.Fatalf("rejected appends wrote (%d puts) or changed the view (len %d)", s.puts.Load()-puts, m.Len())
	}
	// Gaps are allowed, and the caller's Seq is ignored.
	e := mtSeg(5000, 6000, mtQ("T", 0, 25, 30), mtQ("T", 1, 0, 3))
	e.Seq = 77
	e.Epoch = 3
	got := mtAppend(t, m, e)
	if got.Seq != 2 {
		t.Fatalf("seq %d", got.Seq)
	}
	// A lower epoch than the last entry's is a deposed leader.
	if _, err := m.Append(ctx, mtSeg(6000, 7000, mtQ("T", 0, 30, 31))); !errors.Is(err, ErrStaleEpoch) {
		t.Errorf("stale epoch: %v", err)
	}
	// The caller's Queues slice is not retained.
	e = mtSeg(6000, 7000, mtQ("T", 0, 30, 31))
	e.Epoch = 4
	got = mtAppend(t, m, e)
	e.Queues[0].First = 999
	if _, qr, _ := m.Find("T", 0, 30); qr.First != 30 || got.Queues[0].First != 30 {
		t.Fatalf("Append retained the caller's Queues: %+v", qr)
	}
}

// An empty queue range is recorded and checked for order, but never
// returned by lookups.
func TestManifestEmptyQueueRange(t *testing.T) {
	m := mtLoad(t, newManifestTestStore())
	mtAppend(t, m, mtSeg(0, 1000, mtQ("T", 0, 0, 10), mtQ("E", 0, 0, 0)))
	mtAppend(t, m, mtSeg(1000, 2000, mtQ("T", 0, 10, 10), mtQ("E", 0, 0, 4)))
	if _, err := m.Append(mtCtx(t), mtSeg(2000, 3000, mtQ("T", 0, 9, 12))); err == nil {
		t.Fatal("overlap with an empty range's predecessor accepted")
	}
	if e, _, ok := m.Find("T", 0, 9); !ok || e.Base != 0 {
		t.Fatalf("Find(T/0, 9) = %d, %v", e.Base, ok)
	}
	if _, _, ok := m.Find("T", 0, 10); ok {
		t.Fatal("Find returned an empty range")
	}
	if f, n, ok := m.QueueBounds("E", 0); !ok || f != 0 || n != 4 {
		t.Fatalf("QueueBounds(E/0) = %d %d %v", f, n, ok)
	}
	if len(m.Queues()) != 2 {
		t.Fatalf("Queues() = %+v", m.Queues())
	}
}

func TestManifestTimeLookups(t *testing.T) {
	m := mtLoad(t, newManifestTestStore())
	// Per-queue and per-segment time ranges, not monotonic (a clock step back
	// in segment 3).
	seg := func(base int64, minTs, maxTs int64, qs ...QueueRange) SegmentEntry {
		e := mtSeg(base, base+1000, qs...)
		e.MinTimestamp, e.MaxTimestamp = minTs, maxTs
		return e
	}
	q := func(first, next, minTs, maxTs int64) QueueRange {
		return QueueRange{Topic: "T", First: first, Next: next, MinTimestamp: minTs, MaxTimestamp: maxTs}
	}
	mtAppend(t, m, seg(0, 100, 200, q(0, 10, 100, 200)))
	mtAppend(t, m, seg(1000, 200, 300, q(10, 20, 210, 300)))
	mtAppend(t, m, seg(2000, 150, 250, q(20, 30, 150, 250)))
	mtAppend(t, m, seg(3000, 300, 400, q(30, 40, 310, 400)))
	for _, c := range []struct {
		ts    int64
		first int64 // -1: none
	}{{0, 0}, {100, 0}, {200, 0}, {201, 10}, {260, 10}, {300, 10}, {301, 30}, {400, 30}, {401, -1}} {
		_, qr, ok := m.SegmentsForTime("T", 0, c.ts)
		if (c.first < 0) == ok || (ok && qr.First != c.first) {
			t.Errorf("SegmentsForTime(%d) = %+v, %v; want first %d", c.ts, qr, ok, c.first)
		}
	}
	if _, _, ok := m.SegmentsForTime("X", 0, 0); ok {
		t.Error("SegmentsForTime of an unknown queue")
	}
	bases := func(es []SegmentEntry) []int64 {
		var out []int64
		for _, e := range es {
			out = append(out, e.Base)
		}
		return out
	}
	for _, c := range []struct {
		from, to int64
		want     []int64
	}{
		{0, 1000, []int64{3000, 2000, 1000, 0}},
		{0, 99, nil},
		{0, 100, []int64{0}},
		{201, 299, []int64{2000, 1000}},
		{251, 299, []int64{1000}},
		{260, 310, []int64{3000, 1000}},
		{400, 500, []int64{3000}},
		{401, 500, nil},
		{300, 200, nil},
	} {
		if got := bases(m.Segments(c.from, c.to)); !slices.Equal(got, c.want) {
			t.Errorf("Segments(%d, %d) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
}

func TestManifestSnapshotAndLoad(t *testing.T) {
	s := newManifestTestStore()
	ctx := mtCtx(t)
	m := mtLoad(t, s)
	mtAppendN(t, m, 5)
	if err := m.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if m.SnapshotSeq() != 5 {
		t.Fatalf("SnapshotSeq %d", m.SnapshotSeq())
	}
	snapKey := mtRoot + "/manifest/snapshot-00000000000000000005.json.gz"
	if _, err := s.Stat(ctx, snapKey); err != nil {
		t.Fatal(err)
	}
	puts := s.puts.Load()
	if err := m.Snapshot(ctx); err != nil || s.puts.Load() != puts {
		t.Fatalf("a second snapshot at the same sequence: %v, %d puts", err, s.puts.Load()-puts)
	}
	mtAppendN(t, m, 3)

	// Entries ≤ the snapshot's sequence are ignored, even corrupt ones.
	s.set(mtRoot+"/manifest/00000000000000000003.json", []byte("garbage"))
	// Unknown objects are ignored.
	s.set(mtRoot+"/manifest/README", []byte("x"))
	s.set(mtRoot+"/manifest/00000000000000000009.json.tmp", []byte("x"))
	m2 := mtLoad(t, s)
	want := m.Entries()
	mtSameEntries(t, m2.Entries(), want)
	if m2.LastSeq() != 8 || m2.SnapshotSeq() != 5 {
		t.Fatalf("last %d snapshot %d", m2.LastSeq(), m2.SnapshotSeq())
	}
	// A loader reads only the snapshot and the entries after it.
	gets := s.gets.Load()
	lists := s.lists.Load()
	mtLoad(t, s)
	if g, l := s.gets.Load()-gets, s.lists.Load()-lists; g != 4 || l != 2 {
		t.Fatalf("load: %d GETs, %d LISTs; want 4 (snapshot + 3 entries), 2", g, l)
	}

	// Prune deletes entries ≤ 5 and nothing else.
	mtAppendN(t, m, 1)
	if err := m.Snapshot(ctx); err != nil { // at 9: snapshot 5 becomes old
		t.Fatal(err)
	}
	n, err := m.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := s.keys(mtRoot + "/manifest/")
	wantKeys := []string{
		mtRoot + "/manifest/00000000000000000009.json.tmp",
		mtRoot + "/manifest/README",
		mtRoot + "/manifest/snapshot-00000000000000000009.json.gz",
	}
	if n != 10 || !slices.Equal(keys, wantKeys) { // 9 entries + snapshot 5
		t.Fatalf("Prune deleted %d, left %v", n, keys)
	}
	m3 := mtLoad(t, s)
	mtSameEntries(t, m3.Entries(), m.Entries())
	mtAppendN(t, m3, 2)
	if m3.LastSeq() != 11 {
		t.Fatalf("append after loading a snapshot: last %d", m3.LastSeq())
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	mtSameEntries(t, m.Entries(), m3.Entries())
	if n, err := m3.Prune(ctx); err != nil || n != 0 {
		t.Fatalf("Prune with nothing to prune = %d, %v", n, err)
	}
}

func TestManifestLoadErrors(t *testing.T) {
	ctx := mtCtx(t)
	build := func(t *testing.T, n int) *manifestTestStore {
		s := newManifestTestStore()
		mtAppendN(t, mtLoad(t, s), n)
		return s
	}
	entryKey := func(seq int64) string { return mtRoot + "/manifest/" + manifestEntryName(seq) }
	t.Run("corrupt entry", func(t *testing.T) {
		s := build(t, 4)
		s.set(entryKey(3), []byte(`{"v":1,"seq":3`))
		_, err := LoadManifest(ctx, s, mtRoot)
		if !errors.Is(err, ErrManifestCorrupt) || !strings.Contains(err.Error(), entryKey(3)) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unknown version", func(t *testing.T) {
		s := build(t, 2)
		b := s.objs[entryKey(2)]
		s.set(entryKey(2), bytes.Replace(b, []byte(`"v":1`), []byte(`"v":2`), 1))
		if _, err := LoadManifest(ctx, s, mtRoot); !errors.Is(err, ErrManifestCorrupt) || !strings.Contains(err.Error(), "version 2") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("entry under the wrong name", func(t *testing.T) {
		s := build(t, 3)
		s.set(entryKey(3), s.objs[entryKey(2)])
		if _, err := LoadManifest(ctx, s, mtRoot); !errors.Is(err, ErrManifestCorrupt) || !strings.Contains(err.Error(), entryKey(3)) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("entry out of order", func(t *testing.T) {
		s := build(t, 3)
		e, err := DecodeSegmentEntry(s.objs[entryKey(1)])
		if err != nil {
			t.Fatal(err)
		}
		e.Seq = 4 // a valid entry that overlaps the log
		b, err := EncodeSegmentEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		s.set(entryKey(4), b)
		if _, err := LoadManifest(ctx, s, mtRoot); !errors.Is(err, ErrManifestCorrupt) || !strings.Contains(err.Error(), entryKey(4)) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing entry", func(t *testing.T) {
		s := build(t, 4)
		s.Delete(ctx, entryKey(2))
		_, err := LoadManifest(ctx, s, mtRoot)
		if !errors.Is(err, ErrManifestCorrupt) || !strings.Contains(err.Error(), entryKey(2)) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing first entry", func(t *testing.T) {
		s := build(t, 2)
		s.Delete(ctx, entryKey(1))
		if _, err := LoadManifest(ctx, s, mtRoot); !errors.Is(err, ErrManifestCorrupt) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing entry after snapshot", func(t *testing.T) {
		s := build(t, 3)
		m := mtLoad(t, s)
		if err := m.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
		mtAppendN(t, m, 3)
		s.Delete(ctx, entryKey(5))
		if _, err := LoadManifest(ctx, s, mtRoot); !errors.Is(err, ErrManifestCorrupt) || !strings.Contains(err.Error(), entryKey(5)) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("corrupt snapshot", func(t *testing.T) {
		s := build(t, 3)
		m := mtLoad(t, s)
		if err := m.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
		key := mtRoot + "/manifest/" + manifestSnapshotName(3)
		b := slices.Clone(s.objs[key])
		b[len(b)/2] ^= 0xff
		s.set(key, b)
		if _, err := LoadManifest(ctx, s, mtRoot); !errors.Is(err, ErrManifestCorrupt) || !strings.Contains(err.Error(), key) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("snapshot under the wrong name", func(t *testing.T) {
		s := build(t, 3)
		m := mtLoad(t, s)
		if err := m.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
		s.set(mtRoot+"/manifest/"+manifestSnapshotName(4), s.objs[mtRoot+"/manifest/"+manifestSnapshotName(3)])
		if _, err := LoadManifest(ctx, s, mtRoot); !errors.Is(err, ErrManifestCorrupt) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("store unavailable", func(t *testing.T) {
		s := build(t, 3)
		s.beforeGet = func(string) error { return fmt.Errorf("503: %w", ErrUnavailable) }
		if _, err := LoadManifest(ctx, s, mtRoot); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrManifestCorrupt) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("store unavailable reading a snapshot", func(t *testing.T) {
		s := build(t, 3)
		if err := mtLoad(t, s).Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
		s.beforeGet = func(string) error { return fmt.Errorf("503: %w", ErrUnavailable) }
		if _, err := LoadManifest(ctx, s, mtRoot); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrManifestCorrupt) {
			t.Fatalf("err = %v", err)
		}
	})
}

// Two Manifest instances (two writers) on one root: each sequence has
// exactly one owner, the loser gets ErrManifestConflict and sees the
// winner's entry after Reload.
func TestManifestConcurrentWriters(t *testing.T) {
	s := newManifestTestStore()
	ctx := mtCtx(t)
	a, b := mtLoad(t, s), mtLoad(t, s)
	wins := map[string]int{}
	for round := range 40 {
		base := int64(round) * 1000
		type result struct {
			e   SegmentEntry
			err error
		}
		var res [2]result
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, m := range []*Manifest{a, b} {
			e := mtSeg(base, base+1000, mtQ("T", 0, int64(round)*10, int64(round)*10+10))
			e.Key = fmt.Sprintf("%s/writer%d/%020d.seg", mtRoot, i, base)
			wg.Go(func() {
				<-start
				res[i].e, res[i].err = m.Append(ctx, e)
			})
		}
		close(start)
		wg.Wait()
		if (res[0].err == nil) == (res[1].err == nil) {
			t.Fatalf("round %d: both or neither won: %v / %v", round, res[0].err, res[1].err)
		}
		w, l := 0, 1
		if res[0].err != nil {
			w, l = 1, 0
		}
		wins[fmt.Sprint(w)]++
		if !errors.Is(res[l].err, ErrManifestConflict) {
			t.Fatalf("round %d: loser got %v", round, res[l].err)
		}
		loser := []*Manifest{a, b}[l]
		if loser.LastSeq() != int64(round) {
			t.Fatalf("round %d: the loser's view moved to %d", round, loser.LastSeq())
		}
		if err := loser.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		es := loser.Entries()
		if len(es) != round+1 || !reflect.DeepEqual(es[round], res[w].e) {
			t.Fatalf("round %d: after Reload the loser sees %+v, want %+v", round, es[len(es)-1], res[w].e)
		}
		// The loser's retry is now out of log order.
		e := mtSeg(base, base+1000)
		if _, err := loser.Append(ctx, e); err == nil || errors.Is(err, ErrManifestConflict) {
			t.Fatalf("round %d: overlapping retry: %v", round, err)
		}
	}
	mtSameEntries(t, a.Entries(), b.Entries())
	mtSameEntries(t, mtLoad(t, s).Entries(), a.Entries())
	t.Logf("wins: %v", wins)
}

// A put that stored the entry but reported failure: the retry conflicts
// with itself, and after Reload HasBase says the entry is in.
func TestManifestAmbiguousPut(t *testing.T) {
	s := newManifestTestStore()
	ctx := mtCtx(t)
	m := mtLoad(t, s)
	mtAppendN(t, m, 1)
	var fail atomic.Bool
	fail.Store(true)
	s.afterPut = func(key string) error {
		if fail.CompareAndSwap(true, false) {
			return fmt.Errorf("timeout: %w", ErrUnavailable)
		}
		return nil
	}
	e := mtSeg(1000, 2000, mtQ("T", 0, 10, 20))
	if _, err := m.Append(ctx, e); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if m.Len() != 1 || m.HasBase(1000) {
		t.Fatal("a failed append changed the view")
	}
	if _, err := m.Append(ctx, e); !errors.Is(err, ErrManifestConflict) || !errors.Is(err, ErrExists) {
		t.Fatalf("retry: %v", err)
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if !m.HasBase(1000) || m.LastSeq() != 2 {
		t.Fatal("the stored entry is not visible after Reload")
	}
}

// A reader that polls with Reload follows the writer across its snapshots
// and prunes, with one LIST per Reload.
func TestManifestReloadAcrossPrune(t *testing.T) {
	s := newManifestTestStore()
	ctx := mtCtx(t)
	w := mtLoad(t, s)
	r := mtLoad(t, s)
	mtAppendN(t, w, 3)
	lists := s.lists.Load()
	if err := r.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if s.lists.Load()-lists != 1 || r.LastSeq() != 3 {
		t.Fatalf("Reload: %d LISTs, last %d", s.lists.Load()-lists, r.LastSeq())
	}
	// The writer moves on, snapshots and prunes what the reader never read.
	mtAppendN(t, w, 4)
	if err := w.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	mtAppendN(t, w, 2)
	lists = s.lists.Load()
	if err := r.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if s.lists.Load()-lists != 1 {
		t.Fatalf("Reload across a prune: %d LISTs", s.lists.Load()-lists)
	}
	mtSameEntries(t, r.Entries(), w.Entries())
	if r.SnapshotSeq() != 7 || r.LastSeq() != 9 {
		t.Fatalf("reader: snapshot %d last %d", r.SnapshotSeq(), r.LastSeq())
	}
	// Nothing new: no GETs.
	gets := s.gets.Load()
	if err := r.Reload(ctx); err != nil || s.gets.Load() != gets {
		t.Fatalf("idle Reload: %v, %d GETs", err, s.gets.Load()-gets)
	}
	// Without a snapshot covering it, a missing entry is an error.
	mtAppendN(t, w, 2) // 10, 11
	s.Delete(ctx, mtRoot+"/manifest/"+manifestEntryName(10))
	if err := r.Reload(ctx); !errors.Is(err, ErrManifestCorrupt) {
		t.Fatalf("Reload over a lost entry: %v", err)
	}
}

// A load that races a Prune by another process (the snapshot it listed is
// gone when it reads it) starts over and finds the newer snapshot.
func TestManifestLoadRacesPrune(t *testing.T) {
	s := newManifestTestStore()
	ctx := mtCtx(t)
	w := mtLoad(t, s)
	mtAppendN(t, w, 3)
	if err := w.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	mtAppendN(t, w, 3)
	old := mtRoot + "/manifest/" + manifestSnapshotName(3)
	var once sync.Once
	s.beforeGet = func(key string) error {
		if key == old {
			once.Do(func() {
				if err := w.Snapshot(ctx); err != nil {
					t.Error(err)
				}
				if _, err := w.Prune(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		return nil
	}
	r, err := LoadManifest(ctx, s, mtRoot)
	if err != nil {
		t.Fatal(err)
	}
	mtSameEntries(t, r.Entries(), w.Entries())
	if r.SnapshotSeq() != 6 {
		t.Fatalf("snapshot %d", r.SnapshotSeq())
	}
}

// Lookups run concurrently with appends and reloads (for -race).
func TestManifestConcurrentReaders(t *testing.T) {
	s := newManifestTestStore()
	ctx := mtCtx(t)
	w := mtLoad(t, s)
	r := mtLoad(t, s)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, m := range []*Manifest{w, r} {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _, _ = m.Find("T", 0, 55)
				_, _ = m.ByLogOffset(5500)
				_ = m.Segments(0, 1<<62)
				_ = m.Queues()
				for _, e := range m.Entries() {
					_ = e.Queues
				}
				_, _, _ = m.SegmentsForTime("T", 1, 1_700_000_000_010)
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := r.Reload(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := range 60 {
		mtAppendN(t, w, 1)
		if i%20 == 19 {
			if err := w.Snapshot(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Prune(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	if err := r.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	mtSameEntries(t, r.Entries(), w.Entries())
}

func TestManifestLoad10k(t *testing.T) {
	const n = 10_000
	s := newManifestTestStore()
	// Generous: with -race on a busy 2-core machine this takes seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Write the entry objects directly (Append's path is tested elsewhere).
	want := make([]SegmentEntry, 0, n)
	for i := range int64(n) {
		e := mtSeg(i*1000, i*1000+1000, mtQ("T", int32(i%4), i/4*10, i/4*10+10), mtQ("U", 0, i*3, i*3+3))
		e.Seq = i + 1
		e.Created = time.Unix(1_700_000_000+i, 0).UTC()
		b, err := EncodeSegmentEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		s.set(mtRoot+"/manifest/"+manifestEntryName(e.Seq), b)
		want = append(want, e)
	}
	start := time.Now()
	m, err := LoadManifest(ctx, s, mtRoot)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded %d entries in %v", n, time.Since(start))
	if m.Len() != n || m.LastSeq() != n || m.EndOffset() != n*1000 {
		t.Fatalf("len %d last %d end %d", m.Len(), m.LastSeq(), m.EndOffset())
	}
	mtSameEntries(t, m.Entries(), want)
	if e, qr, ok := m.Find("T", 3, 12345); !ok || qr.First != 12340 || e.Base != (1234*4+3)*1000 {
		t.Fatalf("Find = %d %+v %v", e.Base, qr, ok)
	}
	// Snapshot, prune, then a load that reads one object.
	if err := m.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := m.Prune(ctx); err != nil || n != 10_000 {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	gets := s.gets.Load()
	start = time.Now()
	m2, err := LoadManifest(ctx, s, mtRoot)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded a snapshot of %d entries in %v (%d bytes)", n, time.Since(start), len(s.objs[mtRoot+"/manifest/"+manifestSnapshotName(n)]))
	if s.gets.Load()-gets != 1 {
		t.Fatalf("%d GETs", s.gets.Load()-gets)
	}
	es := m2.Entries()
	if len(es) != n || m2.LastSeq() != n || !reflect.DeepEqual(es[0], want[0]) || !reflect.DeepEqual(es[n-1], want[n-1]) {
		t.Fatalf("loaded from the snapshot: %d entries, last seq %d", len(es), m2.LastSeq())
	}
	if f, nx, ok := m2.QueueBounds("U", 0); !ok || f != 0 || nx != 3*n {
		t.Fatalf("QueueBounds(U/0) = %d %d %v", f, nx, ok)
	}
}

func mtSnapshotBytes(t testing.TB, seq int64, es []SegmentEntry) []byte {
	t.Helper()
	b, err := EncodeSnapshot(seq, es)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mtGzip wraps b in a gzip stream of stored (uncompressed) deflate blocks,
// framed by hand: cheap enough for a fuzz target to call on every input
// (a gzip.Writer allocates most of a megabyte).
func mtGzip(b []byte) []byte {
	out := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}
	rest := b
	for {
		n := min(len(rest), 0xffff)
		final := byte(0)
		if n == len(rest) {
			final = 1
		}
		out = append(out, final)
		out = binary.LittleEndian.AppendUint16(out, uint16(n))
		out = binary.LittleEndian.AppendUint16(out, ^uint16(n))
		out = append(out, rest[:n]...)
		rest = rest[n:]
		if final == 1 {
			break
		}
	}
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(b))
	return binary.LittleEndian.AppendUint32(out, uint32(len(b)))
}

func mtSampleEntries() []SegmentEntry {
	var es []SegmentEntry
	for i := range int64(3) {
		e := mtSeg(i*1000, i*1000+1000, mtQ("T", 0, i*10, i*10+10), mtQ("Ü", 7, i, i+1))
		e.Seq = i + 2
		e.Epoch = i
		e.Created = time.Date(2025, 1, 2, 3, 4, 5, int(i)*1000, time.UTC)
		es = append(es, e)
	}
	return es
}

func TestManifestEntryCodec(t *testing.T) {
	for _, e := range mtSampleEntries() {
		b, err := EncodeSegmentEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeSegmentEntry(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
		}
	}
	valid := `{"v":1,"seq":1,"key":"a/b.seg","base":0,"end":10,"size":5,"footer_crc":1,"records":1,"min_ts":1,"max_ts":2,"epoch":0,"created":"2025-01-01T00:00:00Z","queues":[{"topic":"T","queue":0,"first":0,"next":1,"min_ts":1,"max_ts":2}]}`
	if _, err := DecodeSegmentEntry([]byte(valid)); err != nil {
		t.Fatalf("valid: %v", err)
	}
	if _, err := DecodeSegmentEntry([]byte(" " + valid + "\n")); err != nil {
		t.Fatalf("valid with white space: %v", err)
	}
	for name, s := range map[string]string{
		"empty":          ``,
		"null":           `null`,
		"array":          `[]`,
		"no version":     strings.Replace(valid, `"v":1,`, ``, 1),
		"version 2":      strings.Replace(valid, `"v":1`, `"v":2`, 1),
		"unknown field":  strings.Replace(valid, `"v":1`, `"v":1,"x":1`, 1),
		"trailing":       valid + `{}`,
		"trailing junk":  valid + `x`,
		"float":          strings.Replace(valid, `"end":10`, `"end":10.5`, 1),
		"string number":  strings.Replace(valid, `"end":10`, `"end":"10"`, 1),
		"huge number":    strings.Replace(valid, `"end":10`, `"end":99999999999999999999`, 1),
		"neg crc":        strings.Replace(valid, `"footer_crc":1`, `"footer_crc":-1`, 1),
		"seq 0":          strings.Replace(valid, `"seq":1`, `"seq":0`, 1),
		"bad created":    strings.Replace(valid, `2025-01-01T00:00:00Z`, `yesterday`, 1),
		"no created":     strings.Replace(valid, `,"created":"2025-01-01T00:00:00Z"`, ``, 1),
		"dotdot key":     strings.Replace(valid, `a/b.seg`, `a/../b.seg`, 1),
		"neg base":       strings.Replace(valid, `"base":0`, `"base":-1`, 1),
		"queue id range": strings.Replace(valid, `"queue":0`, `"queue":2147483648`, 1),
		"queues object":  strings.Replace(valid, `"queues":[`, `"queues":{"a":`, 1),
		"truncated":      valid[:len(valid)-3],
	} {
		if _, err := DecodeSegmentEntry([]byte(s)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := DecodeSegmentEntry(bytes.Repeat([]byte(" "), manifestMaxEntryBytes+1)); err == nil {
		t.Error("oversized entry accepted")
	}
	if _, err := EncodeSegmentEntry(SegmentEntry{}); err == nil {
		t.Error("encoded an invalid entry")
	}
}

func TestManifestSnapshotCodec(t *testing.T) {
	es := mtSampleEntries()
	b := mtSnapshotBytes(t, 9, es)
	seq, got, err := DecodeSnapshot(b)
	if err != nil || seq != 9 {
		t.Fatalf("DecodeSnapshot = %d, %v", seq, err)
	}
	mtSameEntries(t, got, es)
	if _, err := EncodeSnapshot(3, es); err == nil {
		t.Error("snapshot at a sequence below its entries encoded")
	}
	if _, err := EncodeSnapshot(9, []SegmentEntry{es[1], es[0]}); err == nil {
		t.Error("entries out of order encoded")
	}
	e1, _ := EncodeSegmentEntry(es[0])
	e2, _ := EncodeSegmentEntry(es[1])
	overlap := es[1]
	overlap.Seq, overlap.Base = 9, es[1].Base+1
	e3, _ := EncodeSegmentEntry(overlap)
	for name, s := range map[string]string{
		"not json":        `hello`,
		"no v":            `{"seq":5,"entries":[]}`,
		"v 2":             `{"v":2,"seq":5,"entries":[]}`,
		"no seq":          `{"v":1,"entries":[]}`,
		"seq 0":           `{"v":1,"seq":0,"entries":[]}`,
		"no entries":      `{"v":1,"seq":5}`,
		"entries null":    `{"v":1,"seq":5,"entries":null}`,
		"dup v":           `{"v":1,"v":1,"seq":5,"entries":[]}`,
		"dup entries":     `{"v":1,"seq":5,"entries":[],"entries":[]}`,
		"unknown":         `{"v":1,"seq":5,"entries":[],"x":0}`,
		"trailing":        `{"v":1,"seq":5,"entries":[]} {}`,
		"entry after seq": `{"v":1,"seq":2,"entries":[` + string(e1) + `,` + string(e2) + `]}`,
		"seq order":       `{"v":1,"seq":5,"entries":[` + string(e2) + `,` + string(e1) + `]}`,
		"log overlap":     `{"v":1,"seq":9,"entries":[` + string(e1) + `,` + string(e2) + `,` + string(e3) + `]}`,
		"bad entry":       `{"v":1,"seq":5,"entries":[{"v":1}]}`,
		"entry null":      `{"v":1,"seq":5,"entries":[null]}`,
		"unterminated":    `{"v":1,"seq":5,"entries":[`,
	} {
		if _, _, err := DecodeSnapshot(mtGzip([]byte(s))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := DecodeSnapshot(mtGzip([]byte(`{"v":1,"seq":5,"entries":[]}`))); err != nil {
		t.Errorf("empty snapshot: %v", err)
	}
	if _, _, err := DecodeSnapshot([]byte(`{"v":1,"seq":5,"entries":[]}`)); err == nil {
		t.Error("uncompressed snapshot accepted")
	}
	trunc := b[:len(b)-5]
	if _, _, err := DecodeSnapshot(trunc); err == nil {
		t.Error("truncated snapshot accepted")
	}
	bad := slices.Clone(b)
	bad[len(bad)-6] ^= 1 // CRC
	if _, _, err := DecodeSnapshot(bad); err == nil {
		t.Error("bad gzip checksum accepted")
	}
	if _, _, err := DecodeSnapshot(append(slices.Clone(b), 0, 1, 2)); err == nil {
		t.Error("trailing bytes after gzip accepted")
	}
}

func TestManifestTestGzip(t *testing.T) {
	for _, n := range []int{0, 1, 0xffff, 0x10000, 200_000} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		zr, err := gzip.NewReader(bytes.NewReader(mtGzip(b)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%d bytes: %v", n, err)
		}
	}
}

func TestManifestCapReader(t *testing.T) {
	r := &manifestCapReader{r: strings.NewReader("0123456789"), n: 4}
	b, err := io.ReadAll(r)
	if err == nil || string(b) != "0123" {
		t.Fatalf("cap 4: %q, %v", b, err)
	}
	r = &manifestCapReader{r: strings.NewReader("0123"), n: 4}
	if b, err := io.ReadAll(r); err != nil || string(b) != "0123" {
		t.Fatalf("exact: %q, %v", b, err)
	}
}

func FuzzDecodeSegmentEntry(f *testing.F) {
	for _, e := range mtSampleEntries() {
		b, err := EncodeSegmentEntry(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"seq":1,"key":"k","base":0,"end":1,"size":1,"created":"2025-01-01T00:00:00+02:00"}`))
	f.Add([]byte(`{"v":1,"queues":[{"topic":"\u0000"}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeSegmentEntry(b)
		if err != nil {
			return
		}
		b2, err := EncodeSegmentEntry(e)
		if err != nil {
			t.Fatalf("decoded entry does not encode: %v", err)
		}
		e2, err := DecodeSegmentEntry(b2)
		if err != nil || !reflect.DeepEqual(e, e2) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, e, e2)
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	es := mtSampleEntries()
	b, err := EncodeSnapshot(9, es)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		f.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain)
	f.Add([]byte(`{"v":1,"seq":5,"entries":[]}`))
	f.Add([]byte(`{"v":1,"seq":5,"entries":[{"v":1}]}`))
	f.Add([]byte(`{"entries":[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// As stored (mostly rejected by gzip), and as the JSON inside a
		// valid gzip stream (to reach the JSON decoder).
		for _, in := range [][]byte{b, mtGzip(b)} {
			seq, es, err := DecodeSnapshot(in)
			if err != nil {
				continue
			}
			b2, err := EncodeSnapshot(seq, es)
			if err != nil {
				t.Fatalf("decoded snapshot does not encode: %v", err)
			}
			seq2, es2, err := DecodeSnapshot(b2)
			if err != nil || seq2 != seq || !reflect.DeepEqual(es, es2) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

// BenchmarkManifestFind: 200k segments of 4 queues each.
func BenchmarkManifestFind(b *testing.B) {
	const segs, queues, perSeg = 200_000, 4, 1000
	st := newManifestState()
	created := time.Unix(1_700_000_000, 0).UTC()
	for i := range int64(segs) {
		e := SegmentEntry{
			Seq: i + 1, Key: fmt.Sprintf("p/c/b/%020d.seg", i<<30), Base: i << 30, End: (i + 1) << 30, Size: 1 << 29,
			Records: 4 * perSeg, MinTimestamp: 1_700_000_000_000 + i*10_000, MaxTimestamp: 1_700_000_000_000 + i*10_000 + 9_999,
			Created: created, Queues: make([]QueueRange, queues),
		}
		for q := range int32(queues) {
			e.Queues[q] = QueueRange{Topic: "bench", QueueID: q, First: i * perSeg, Next: (i + 1) * perSeg, MinTimestamp: e.MinTimestamp, MaxTimestamp: e.MaxTimestamp}
		}
		if err := st.check(&e); err != nil {
			b.Fatal(err)
		}
		st.add(e)
	}
	m := &Manifest{st: st}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		q := rng.Int32N(queues)
		off := rng.Int64N(segs * perSeg)
		e, qr, ok := m.Find("bench", q, off)
		if !ok || off < qr.First || off >= qr.Next || e.Base != off/perSeg<<30 {
			b.Fatalf("Find(%d, %d) = %d %+v %v", q, off, e.Base, qr, ok)
		}
	}
}
