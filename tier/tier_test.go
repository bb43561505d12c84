package tier_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/cache"
	"github.com/strata-mq/strata/remoting"
	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/faultstore"
	"github.com/strata-mq/strata/tier/fsstore"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// hot opens a hot store with small segments.
func hot(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{Dir: t.TempDir(), SegmentSize: 256 << 10,
		MaxMessageSize: 64 << 10, Logger: quiet, CheckpointInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// produce appends n messages round-robin over queues of topic, with tags
// t0..t2 and keys k-<i>.
func produce(t *testing.T, s *store.Store, topic string, queues, n, size int) {
	t.Helper()
	for i := range n {
		body := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		copy(body, fmt.Sprintf("%s-%d|", topic, i))
		var props []byte
		props = remoting.AppendProperty(props, remoting.PropTags, fmt.Sprintf("t%d", (i/queues)%3))
		props = remoting.AppendProperty(props, remoting.PropKeys, fmt.Sprintf("k-%d", i))
		m := []remoting.MessageExt{{Topic: topic, QueueID: int32(i % queues), Body: body, Properties: props,
			BornTimestamp: time.Now().UnixMilli()}}
		if err := s.Append(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

func localSegments(s *store.Store) func(int64) (tier.SegmentFile, bool) {
	return func(base int64) (tier.SegmentFile, bool) {
		for _, sg := range s.Segments() {
			if sg.Base == base && sg.Sealed {
				return tier.SegmentFile{Base: sg.Base, Size: sg.Size, Path: sg.Path}, true
			}
		}
		return tier.SegmentFile{}, false
	}
}

func newTier(t *testing.T, os tier.ObjectStore, hs *store.Store) *tier.Tier {
	t.Helper()
	c := cache.New(cache.Config{MaxBytes: 4 << 20, Logger: quiet})
	t.Cleanup(c.Close)
	cfg := tier.Config{Store: os, Root: "cl/b", StagingDir: t.TempDir(), Cache: c, Logger: quiet,
		BlockSize: 32 << 10, ReadTimeout: 2 * time.Second}
	if hs != nil {
		cfg.LocalSegment = localSegments(hs)
	}
	tr, err := tier.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	t.Cleanup(func() { tr.Close() })
	return tr
}

// offloadAll queues every sealed segment and waits until all are offloaded.
func offloadAll(t *testing.T, hs *store.Store, tr *tier.Tier, timeout time.Duration) []store.SegmentInfo {
	t.Helper()
	var sealed []store.SegmentInfo
	for _, sg := range hs.Segments() {
		if sg.Sealed {
			sealed = append(sealed, sg)
			tr.Offload(tier.SegmentFile{Base: sg.Base, Size: sg.Size, Path: sg.Path})
		}
	}
	waitFor(t, timeout, "every sealed segment offloaded", func() bool {
		for _, sg := range sealed {
			if !tr.Offloaded(sg.Base) {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("%+v", tr.Status()) })
	return sealed
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, detail func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, detail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readCold reads topic/queue from the cold tier from offset 0 up to next.
func readCold(t *testing.T, tr *tier.Tier, topic string, q int32, filter func(int64) bool) ([][]byte, int64) {
	t.Helper()
	var out [][]byte
	off := int64(0)
	for range 100000 {
		r, err := tr.Read(context.Background(), topic, q, off, 7, 64<<10, filter, "g/"+topic)
		if err != nil {
			t.Fatalf("cold read %s/%d at %d: %v", topic, q, off, err)
		}
		switch r.Status {
		case tier.ReadFound:
			out = append(out, r.Records...)
		case tier.ReadNoMatch:
		case tier.ReadNotCold:
			return out, off
		default:
			t.Fatalf("cold read %s/%d at %d: status %v", topic, q, off, r.Status)
		}
		if r.NextOffset <= off {
			t.Fatalf("cold read %s/%d at %d: next offset %d does not advance", topic, q, off, r.NextOffset)
		}
		off = r.NextOffset
	}
	t.Fatal("cold read does not end")
	return nil, 0
}

// readHot reads topic/queue from the hot store from offset 0 below end.
func readHot(t *testing.T, hs *store.Store, topic string, q int32, end int64, filter func(int64) bool) [][]byte {
	t.Helper()
	var out [][]byte
	for off := int64(0); off < end; {
		r, err := hs.Get(topic, q, off, 32, 1<<20, filter)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range r.Records {
			if m, _ := remoting.DecodeMessageExt(rec); m.QueueOffset < end {
				out = append(out, append([]byte(nil), rec...))
			}
		}
		off = r.NextOffset
	}
	return out
}

// TestOffloadAndReadBack: sealed segments go to the object store with a
// manifest; every offloaded offset reads byte-identical to the hot tier,
// with and without a tag filter; seek by time, query by key and read by log
// offset reach the cold tier; a new Tier on the same objects (disaster
// recovery) sees the same.
func TestOffloadAndReadBack(t *testing.T) {
	hs := hot(t)
	produce(t, hs, "T", 3, 1500, 700)
	if err := hs.Seal(); err != nil {
		t.Fatal(err)
	}
	os, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tr := newTier(t, os, hs)
	sealed := offloadAll(t, hs, tr, 20*time.Second)
	if len(sealed) < 3 {
		t.Fatalf("only %d sealed segments", len(sealed))
	}
	tag1 := remoting.TagHash([]byte("t1"))
	onlyT1 := func(h int64) bool { return h == tag1 }
	check := func(tr *tier.Tier) {
		for q := range int32(3) {
			cold, next := readCold(t, tr, "T", q, nil)
			if next != 500 {
				t.Fatalf("queue %d: cold range ends at %d, want 500", q, next)
			}
			want := readHot(t, hs, "T", q, next, nil)
			if len(cold) != len(want) {
				t.Fatalf("queue %d: %d cold records, %d hot", q, len(cold), len(want))
			}
			for i := range want {
				if !bytes.Equal(cold[i], want[i]) {
					t.Fatalf("queue %d record %d differs between tiers", q, i)
				}
			}
			coldF, _ := readCold(t, tr, "T", q, onlyT1)
			wantF := readHot(t, hs, "T", q, next, onlyT1)
			if len(coldF) != len(wantF) || len(wantF) == 0 {
				t.Fatalf("queue %d filtered: %d cold, %d hot", q, len(coldF), len(wantF))
			}
			for i := range wantF {
				if !bytes.Equal(coldF[i], wantF[i]) {
					t.Fatalf("queue %d filtered record %d differs", q, i)
				}
			}
		}
		// Seek by time: the store time of queue 1's offset 200.
		m, _ := remoting.DecodeMessageExt(readHot(t, hs, "T", 1, 201, nil)[200])
		off, ok, err := tr.OffsetForTime(context.Background(), "T", 1, m.StoreTimestamp)
		if err != nil || !ok || off > 200 {
			t.Fatalf("OffsetForTime = %d, %v, %v; want ≤ 200", off, ok, err)
		}
		if hot, _ := hs.OffsetForTime("T", 1, m.StoreTimestamp); hot != off {
			t.Fatalf("cold OffsetForTime %d, hot %d", off, hot)
		}
		// Query by key and read by log offset.
		recs, err := tr.QueryByKey(context.Background(), "T", "k-301", 10, 0, 1<<62)
		if err != nil || len(recs) != 1 {
			t.Fatalf("QueryByKey: %d records, %v", len(recs), err)
		}
		km, _ := remoting.DecodeMessageExt(recs[0])
		if !bytes.HasPrefix(km.Body, []byte("T-301|")) {
			t.Fatalf("QueryByKey found %q", km.Body[:10])
		}
		rec, err := tr.ReadAt(context.Background(), km.PhysicalOffset)
		if err != nil || !bytes.Equal(rec, recs[0]) {
			t.Fatalf("ReadAt(%d): %v", km.PhysicalOffset, err)
		}
	}
	check(tr)
	// Disaster recovery: a new Tier knows everything from the manifest.
	tr2 := newTier(t, os, nil)
	m, err := tr2.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != len(sealed) || m.EndOffset() != sealed[len(sealed)-1].Base+sealed[len(sealed)-1].Size {
		t.Fatalf("rebuilt manifest: %d segments ending at %d", m.Len(), m.EndOffset())
	}
	check(tr2)
	if st := tr.Status(); st.Objects != len(sealed) || st.PendingSegments != 0 || st.LastError != "" {
		t.Fatalf("status %+v", st)
	}
}

// TestCorruptObjectNotServed: a damaged object is detected, never served
// as data, and re-uploaded from the local copy.
func TestCorruptObjectNotServed(t *testing.T) {
	hs := hot(t)
	produce(t, hs, "C", 1, 400, 700)
	if err := hs.Seal(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := newTier(t, os, hs)
	sealed := offloadAll(t, hs, tr, 20*time.Second)
	key := tier.SegmentKey("cl/b", sealed[0].Base)
	// Flip one byte in the first block of the first object.
	good := readObject(t, os, key)
	bad := append([]byte(nil), good...)
	bad[100] ^= 0xff
	if err := os.Put(context.Background(), key, bytes.NewReader(bad), int64(len(bad))); err != nil {
		t.Fatal(err)
	}
	_, err = tr.Read(context.Background(), "C", 0, 0, 4, 1<<20, nil, "")
	if !errors.Is(err, tier.ErrCorruptObject) {
		t.Fatalf("read of a corrupt block: %v, want ErrCorruptObject", err)
	}
	waitFor(t, 20*time.Second, "the object re-uploaded from the local copy", func() bool {
		return bytes.Equal(readObject(t, os, key), good)
	}, func() string { return fmt.Sprintf("%+v", tr.Status()) })
	cold, _ := readCold(t, tr, "C", 0, nil)
	if len(cold) != 400 && int64(len(cold)) < 1 {
		t.Fatalf("after repair: %d records", len(cold))
	}
}

func readObject(t *testing.T, os tier.ObjectStore, key string) []byte {
	t.Helper()
	rc, err := os.GetRange(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReplayMemoryBounded: replaying far more history than the cache holds
// keeps the heap within the cache size plus a small constant.
func TestReplayMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	s, err := store.Open(context.Background(), store.Config{Dir: t.TempDir(), SegmentSize: 1 << 20,
		MaxMessageSize: 64 << 10, Logger: quiet, Flush: store.FlushAsync, WriteBufferSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n, size = 40000, 1000 // 40 MB of history
	batch := make([]remoting.MessageExt, 0, 20)
	for i := range n {
		body := bytes.Repeat([]byte{byte(i)}, size)
		batch = append(batch, remoting.MessageExt{Topic: "M", QueueID: 0, Body: body, BornTimestamp: 1})
		if len(batch) == cap(batch) {
			if err := s.Append(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	os, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const cacheSize = 4 << 20
	c := cache.New(cache.Config{MaxBytes: cacheSize, Logger: quiet})
	defer c.Close()
	tr, err := tier.New(context.Background(), tier.Config{Store: os, Root: "m", StagingDir: t.TempDir(), Cache: c,
		Logger: quiet, LocalSegment: localSegments(s)})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	defer tr.Close()
	offloadAll(t, s, tr, 60*time.Second)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	base := heap()
	var peak uint64
	read := 0
	for off := int64(0); ; {
		r, err := tr.Read(context.Background(), "M", 0, off, 32, 256<<10, nil, "replay")
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == tier.ReadNotCold {
			break
		}
		read += len(r.Records)
		off = r.NextOffset
		if read%4096 < 32 {
			peak = max(peak, heap())
		}
	}
	peak = max(peak, heap())
	if read != n {
		t.Fatalf("replayed %d of %d messages", read, n)
	}
	const slack = 8 << 20
	if peak > base+cacheSize+slack {
		t.Fatalf("heap grew from %d to %d bytes replaying %d MB with a %d-byte cache", base, peak, n*size>>20, cacheSize)
	}
	st := c.Stats()
	t.Logf("heap %d → peak %d; cache %+v", base, peak, st)
}

// TestOffloadOutage: while the object store is down, offload stays pending
// (nothing is reported offloaded, so nothing may be deleted), cold reads of
// already offloaded history fail fast with a retriable error, and once the
// store is back the offloader catches up on its own; a lost response (the
// put landed, the answer did not) does not duplicate or lose a segment.
func TestOffloadOutage(t *testing.T) {
	hs := hot(t)
	produce(t, hs, "O", 2, 600, 700)
	if err := hs.Seal(); err != nil {
		t.Fatal(err)
	}
	inner, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fs := faultstore.New(inner)
	tr := newTier(t, fs, hs)
	first := offloadAll(t, hs, tr, 20*time.Second)

	fs.SetDown(true)
	produce(t, hs, "O", 2, 600, 700)
	if err := hs.Seal(); err != nil {
		t.Fatal(err)
	}
	var later []store.SegmentInfo
	for _, sg := range hs.Segments() {
		if sg.Sealed && sg.Base >= first[len(first)-1].Base+sg.Size {
			later = append(later, sg)
			tr.Offload(tier.SegmentFile{Base: sg.Base, Size: sg.Size, Path: sg.Path})
		}
	}
	waitFor(t, 20*time.Second, "an upload failure to be reported", func() bool {
		st := tr.Status()
		return st.PendingSegments == len(later) && st.LastError != "" && fs.Failures(faultstore.OpPut) > 0
	}, func() string { return fmt.Sprintf("%+v", tr.Status()) })
	for _, sg := range later {
		if tr.Offloaded(sg.Base) {
			t.Fatalf("segment %d reported offloaded while the store is down", sg.Base)
		}
	}
	wants := map[int32][][]byte{}
	for q := range int32(2) {
		wants[q] = readHot(t, hs, "O", q, 600, nil)
	}
	// Retention asks the tier: nothing of the later segments may go.
	if _, err := hs.DeleteSegments(func(info store.SegmentInfo) bool { return tr.Offloaded(info.Base) }); err != nil {
		t.Fatal(err)
	}
	for _, sg := range later {
		if !hasSegment(hs, sg.Base) {
			t.Fatalf("segment %d deleted before it was offloaded", sg.Base)
		}
	}
	// A cold read of history the tier already had fails fast and retriably.
	start := time.Now()
	_, err = tr.Read(context.Background(), "O", 0, 0, 4, 1<<20, nil, "")
	if !errors.Is(err, tier.ErrUnavailable) {
		t.Fatalf("cold read while the store is down: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("cold read took %v while the store was down", d)
	}

	// Back up; the first object put and the first manifest entry land but
	// their answers are lost.
	fs.FailNextAfter(faultstore.OpPut, 1)
	fs.FailNextAfter(faultstore.OpPutIfAbsent, 1)
	fs.SetDown(false)
	waitFor(t, 60*time.Second, "offload to catch up", func() bool {
		for _, sg := range later {
			if !tr.Offloaded(sg.Base) {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("%+v", tr.Status()) })
	m, err := tr.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != len(first)+len(later) {
		t.Fatalf("manifest holds %d segments, want %d", m.Len(), len(first)+len(later))
	}
	if fs.Failures(faultstore.OpPutIfAbsent) == 0 {
		t.Fatal("no manifest put failed: the lost-answer case was not exercised")
	}
	for q := range int32(2) {
		cold, next := readCold(t, tr, "O", q, nil)
		if next != 600 || len(cold) != 600 {
			t.Fatalf("queue %d: %d cold records, range ends at %d", q, len(cold), next)
		}
		want := wants[q]
		if len(want) != len(cold) {
			t.Fatalf("queue %d: %d cold records, %d hot", q, len(cold), len(want))
		}
		for i := range want {
			if !bytes.Equal(cold[i], want[i]) {
				t.Fatalf("queue %d record %d differs", q, i)
			}
		}
	}
}

func hasSegment(s *store.Store, base int64) bool {
	for _, sg := range s.Segments() {
		if sg.Base == base {
			return true
		}
	}
	return false
}
