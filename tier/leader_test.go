package tier_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/cache"
	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/fsstore"
)

// groupTier is one replica's Tier of a broker group: standby until Lead,
// offloading at most up to limit.
func groupTier(t *testing.T, os tier.ObjectStore, hs *store.Store, limit *atomic.Int64, calls *atomic.Int64) *tier.Tier {
	t.Helper()
	c := cache.New(cache.Config{MaxBytes: 4 << 20, Logger: quiet})
	t.Cleanup(c.Close)
	tr, err := tier.New(context.Background(), tier.Config{Store: os, Root: "cl/b", StagingDir: t.TempDir(), Cache: c, Logger: quiet,
		BlockSize: 32 << 10, ReadTimeout: 2 * time.Second, LocalSegment: localSegments(hs), Standby: true,
		OffloadLimit: func() int64 { calls.Add(1); return limit.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	t.Cleanup(func() { tr.Close() })
	return tr
}

func sealedSegments(hs *store.Store) []store.SegmentInfo {
	var out []store.SegmentInfo
	for _, sg := range hs.Segments() {
		if sg.Sealed {
			out = append(out, sg)
		}
	}
	return out
}

func epochs(t *testing.T, tr *tier.Tier) string {
	t.Helper()
	m, err := tr.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	s := ""
	for _, e := range m.Entries() {
		s += fmt.Sprintf("%d@%d ", e.Base, e.Epoch)
	}
	return s
}

// TestOffloadFollowsLeadership: two replicas of a group share one cold
// tier. A standby replica uploads nothing; a leader offloads only up to
// its limit (what its followers hold), its entries carrying its epoch; a
// new leader continues where the old one stopped; the old leader, once a
// newer epoch has written the manifest, stops offloading and records
// nothing more.
func TestOffloadFollowsLeadership(t *testing.T) {
	ctx := context.Background()
	hs := hot(t)
	produce(t, hs, "T", 4, 1200, 1000)
	segs := sealedSegments(hs)
	if len(segs) < 4 {
		t.Fatalf("%d sealed segments, want at least 4", len(segs))
	}
	segs = segs[:4]
	os, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Both replicas hold the same log (a follower's is a byte-for-byte copy).
	var limitA, limitB, callsA, callsB atomic.Int64
	limitA.Store(segs[0].Base + segs[0].Size)
	limitB.Store(math.MaxInt64)
	a := groupTier(t, os, hs, &limitA, &callsA)
	b := groupTier(t, os, hs, &limitB, &callsB)
	for _, sg := range segs {
		for _, tr := range []*tier.Tier{a, b} {
			tr.Offload(tier.SegmentFile{Base: sg.Base, Size: sg.Size, Path: sg.Path})
		}
	}

	a.Lead(1)
	waitFor(t, 10*time.Second, "the leader to offload its first segment", func() bool { return a.Offloaded(segs[0].Base) },
		func() string { return fmt.Sprintf("%+v", a.Status()) })
	// The offloader looks at the limit again (twice) and still holds the rest.
	n0 := callsA.Load()
	waitFor(t, 10*time.Second, "the offloader to look at its limit again", func() bool { return callsA.Load() >= n0+2 },
		func() string { return "" })
	if got := epochs(t, a); got != fmt.Sprintf("%d@1 ", segs[0].Base) {
		t.Fatalf("manifest past the leader's limit: %s", got)
	}
	if callsB.Load() != 0 {
		t.Errorf("a standby replica asked for its offload limit %d times", callsB.Load())
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.Offloaded(segs[0].Base) || b.Offloaded(segs[1].Base) {
		t.Fatalf("the standby replica's view: %s", epochs(t, b))
	}

	// Failover: b leads epoch 2 and continues.
	b.Lead(2)
	waitFor(t, 10*time.Second, "the new leader to offload the rest", func() bool { return b.Offloaded(segs[3].Base) },
		func() string { return fmt.Sprintf("%+v", b.Status()) })
	want := fmt.Sprintf("%d@1 %d@2 %d@2 %d@2 ", segs[0].Base, segs[1].Base, segs[2].Base, segs[3].Base)
	if got := epochs(t, b); got != want {
		t.Fatalf("manifest %s, want %s", got, want)
	}

	// The old leader, not told, goes on: what the new leader recorded it
	// takes as offloaded (the same bytes, the same object); a segment of
	// its own it may not record under its stale epoch.
	produce(t, hs, "T", 4, 400, 1000)
	more := sealedSegments(hs)
	if len(more) < 5 {
		t.Fatalf("%d sealed segments, want 5", len(more))
	}
	extra := more[4]
	a.Offload(tier.SegmentFile{Base: extra.Base, Size: extra.Size, Path: extra.Path})
	limitA.Store(math.MaxInt64)
	waitFor(t, 20*time.Second, "the deposed leader to stop offloading", func() bool { _, ok := a.Leading(); return !ok },
		func() string { return fmt.Sprintf("%+v", a.Status()) })
	for _, sg := range segs {
		if !a.Offloaded(sg.Base) {
			t.Errorf("the old leader does not count segment %d (recorded by the new leader) as offloaded", sg.Base)
		}
	}
	if a.Offloaded(extra.Base) {
		t.Errorf("the deposed leader recorded segment %d", extra.Base)
	}
	if st := a.Status(); !strings.Contains(st.LastError, "stale leader epoch") {
		t.Errorf("the deposed leader reports %q, want the stale epoch", st.LastError)
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := epochs(t, b); got != want {
		t.Fatalf("manifest after the deposed leader's attempt: %s, want %s", got, want)
	}
	// The new leader records it, under its epoch.
	b.Offload(tier.SegmentFile{Base: extra.Base, Size: extra.Size, Path: extra.Path})
	waitFor(t, 10*time.Second, "the new leader to offload the next segment", func() bool { return b.Offloaded(extra.Base) },
		func() string { return fmt.Sprintf("%+v", b.Status()) })
	if got := epochs(t, b); got != want+fmt.Sprintf("%d@2 ", extra.Base) {
		t.Fatalf("manifest %s", got)
	}
}
