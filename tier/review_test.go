package tier_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-mq/strata/cache"
	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/faultstore"
	"github.com/strata-mq/strata/tier/fsstore"
)

// TestPrefetchHangDoesNotWedgeBlock: a read-ahead fetch that the object
// store never answers (a black hole) fails within ReadTimeout, so a later
// read of that block fetches it again once the store answers, instead of
// joining the hung prefetch forever.
func TestPrefetchHangDoesNotWedgeBlock(t *testing.T) {
	hs := hot(t)
	produce(t, hs, "P", 1, 400, 700)
	if err := hs.Seal(); err != nil {
		t.Fatal(err)
	}
	inner, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fs := faultstore.New(inner)
	c := cache.New(cache.Config{MaxBytes: 4 << 20, Logger: quiet})
	t.Cleanup(c.Close)
	tr, err := tier.New(context.Background(), tier.Config{Store: fs, Root: "cl/b", StagingDir: t.TempDir(), Cache: c,
		Logger: quiet, BlockSize: 32 << 10, ReadTimeout: 300 * time.Millisecond, LocalSegment: localSegments(hs)})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	t.Cleanup(func() { tr.Close() })
	offloadAll(t, hs, tr, 20*time.Second)
	read := func(off int64, stream string) (tier.ReadResult, error) {
		return tr.Read(context.Background(), "P", 0, off, 1, 1<<20, nil, stream)
	}
	// Footer, queue section and block 0 into the cache.
	if r, err := read(0, ""); err != nil || r.Status != tier.ReadFound {
		t.Fatalf("warm-up read: %v %v", r.Status, err)
	}
	// The store stops answering; a sequential read of cached data asks for
	// read-ahead of the next block, which hangs.
	fs.SetLatency(time.Hour)
	gets := fs.Calls(faultstore.OpGetRange)
	if r, err := read(0, "s"); err != nil || r.Status != tier.ReadFound {
		t.Fatalf("cached read: %v %v", r.Status, err)
	}
	waitFor(t, 5*time.Second, "the read-ahead fetch to start", func() bool { return fs.Calls(faultstore.OpGetRange) > gets },
		func() string { return "" })
	fs.SetLatency(0)
	// The first offset whose block is not cached is the one read ahead.
	var off int64
	for off = 1; off < 400; off++ {
		if _, err := read(off, ""); err != nil {
			break
		}
	}
	if off == 400 {
		t.Fatal("every block was cached: read-ahead was not exercised")
	}
	waitFor(t, 5*time.Second, fmt.Sprintf("offset %d readable once the store answers again", off), func() bool {
		r, err := read(off, "")
		return err == nil && r.Status == tier.ReadFound
	}, func() string { _, err := read(off, ""); return fmt.Sprint(err) })
}

// TestReadManifestFooterMismatch: a manifest entry that claims more of a
// queue than the object's queue index holds yields an error, not an
// endless NoMatch at the same offset (a consumer would retry it forever).
func TestReadManifestFooterMismatch(t *testing.T) {
	hs := hot(t)
	produce(t, hs, "M", 1, 300, 700)
	if err := hs.Seal(); err != nil {
		t.Fatal(err)
	}
	os, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tr := newTier(t, os, hs)
	offloadAll(t, hs, tr, 20*time.Second)
	m, err := tr.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	last := m.Entries()[m.Len()-1]
	key := fmt.Sprintf("cl/b/manifest/%020d.json", last.Seq)
	e, err := tier.DecodeSegmentEntry(readObject(t, os, key))
	if err != nil {
		t.Fatal(err)
	}
	oldNext := e.Queues[0].Next
	e.Queues[0].Next += 3
	b, err := tier.EncodeSegmentEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Put(context.Background(), key, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
	tr2 := newTier(t, os, nil)
	r, err := tr2.Read(context.Background(), "M", 0, oldNext, 4, 1<<20, nil, "")
	if err == nil {
		t.Fatalf("read of offset %d, past the object's queue index: status %v next %d, no error", oldNext, r.Status, r.NextOffset)
	}
	if r.NextOffset > oldNext || !errors.Is(err, tier.ErrManifestCorrupt) {
		t.Fatalf("read of offset %d: next %d, %v; want an error wrapping ErrManifestCorrupt", oldNext, r.NextOffset, err)
	}
}

// TestRepairWithoutLocalCopyGivesUp: a corrupt object whose local copy
// vanishes before the re-upload reads it (retention deleted it meanwhile)
// does not stay pending forever.
func TestRepairWithoutLocalCopyGivesUp(t *testing.T) {
	hs := hot(t)
	produce(t, hs, "R", 1, 300, 700)
	if err := hs.Seal(); err != nil {
		t.Fatal(err)
	}
	store, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(t.TempDir(), "deleted")
	c := cache.New(cache.Config{MaxBytes: 4 << 20, Logger: quiet})
	t.Cleanup(c.Close)
	tr, err := tier.New(context.Background(), tier.Config{Store: store, Root: "cl/b", StagingDir: t.TempDir(), Cache: c,
		Logger: quiet, BlockSize: 32 << 10, ReadTimeout: 2 * time.Second,
		LocalSegment: func(base int64) (tier.SegmentFile, bool) {
			return tier.SegmentFile{Base: base, Size: 256 << 10, Path: gone}, true
		}})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	t.Cleanup(func() { tr.Close() })
	sealed := offloadAll(t, hs, tr, 20*time.Second)
	key := tier.SegmentKey("cl/b", sealed[0].Base)
	bad := readObject(t, store, key)
	bad[100] ^= 0xff
	if err := store.Put(context.Background(), key, bytes.NewReader(bad), int64(len(bad))); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Read(context.Background(), "R", 0, 0, 4, 1<<20, nil, ""); !errors.Is(err, tier.ErrCorruptObject) {
		t.Fatalf("read of a corrupt block: %v", err)
	}
	waitFor(t, 5*time.Second, "the impossible repair dropped", func() bool { return tr.Status().PendingSegments == 0 },
		func() string { return fmt.Sprintf("%+v", tr.Status()) })
}

// TestStagingCleanedAtStart: staging files left by a crash mid-upload are
// removed when the tier starts.
func TestStagingCleanedAtStart(t *testing.T) {
	staging := t.TempDir()
	stale := filepath.Join(staging, fmt.Sprintf("%020d.seg", 0))
	if err := os.WriteFile(stale, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tier.New(context.Background(), tier.Config{Store: store, Root: "cl/b", StagingDir: staging, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale staging file still there: %v", err)
	}
}
