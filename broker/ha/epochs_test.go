package ha

import (
	"context"
	"net"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
)

func TestHistory(t *testing.T) {
	h := History{{1, 0}, {2, 500}, {4, 900}}
	for _, c := range []struct{ end, at int64 }{{0, 1}, {499, 1}, {500, 2}, {899, 2}, {900, 4}, {5000, 4}} {
		if got := h.At(c.end); got != c.at {
			t.Errorf("At(%d) = %d, want %d", c.end, got, c.at)
		}
	}
	for _, c := range []struct{ e, end int64 }{{0, 0}, {1, 500}, {2, 900}, {3, 900}, {4, 1000}} {
		if got := h.EndOf(c.e, 1000); got != c.end {
			t.Errorf("EndOf(%d) = %d, want %d", c.e, got, c.end)
		}
	}
	if got := h.Lead(5, 700); !reflect.DeepEqual(got, History{{1, 0}, {2, 500}, {5, 700}}) {
		t.Errorf("Lead(5, 700) = %v", got)
	}
	path := filepath.Join(t.TempDir(), "epochs")
	if got, err := LoadHistory(path); err != nil || got != nil {
		t.Fatalf("missing file: %v, %v", got, err)
	}
	if err := SaveHistory(path, h); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadHistory(path); err != nil || !reflect.DeepEqual(got, h) {
		t.Fatalf("reloaded %v, %v", got, err)
	}
	if err := SaveHistory(path, History{{2, 0}, {1, 5}}); err == nil {
		t.Fatal("saved a history that goes back")
	}
}

// TestDivergedTailTruncated: an old leader that wrote past what its
// follower copied, after the follower led a newer epoch, is told to cut its
// log where its epoch ended on the new leader, and then copies the new
// leader's log.
func TestDivergedTailTruncated(t *testing.T) {
	ctx := context.Background()
	oldDir := t.TempDir()
	old := openStore(t, oldDir)
	fresh := openStore(t, t.TempDir())
	defer func() { fresh.Close() }()
	appendN := func(s *store.Store, topic string, n int) {
		for i := 0; i < n; i++ {
			if err := s.Append(ctx, []remoting.MessageExt{msg(topic, 0, i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Epoch 1: old leads, fresh copies.
	g := startLeader(t, old, LeaderConfig{Standby: true})
	g.leader.Lead(1, History{{1, 0}})
	var freshHist atomic.Pointer[History]
	freshHist.Store(&History{})
	fcfg := func(s *store.Store, addr string, hist *atomic.Pointer[History], cut *atomic.Int64) FollowerConfig {
		return FollowerConfig{BrokerName: "b", BrokerID: 1, Log: s, Leader: func() string { return addr },
			History: func() History { return *hist.Load() }, SetHistory: func(h History) error { hist.Store(&h); return nil },
			Truncate: func(off int64) { cut.Store(off) }, Logger: g.leader.log}
	}
	var noCut atomic.Int64
	noCut.Store(-1)
	f := NewFollower(fcfg(fresh, g.addr, &freshHist, &noCut))
	fctx, stopF := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); f.Run(fctx) }()
	appendN(old, "a", 50)
	waitFor(t, "the copy", func() bool { return fresh.LogEnd() == old.LogEnd() })
	stopF()
	<-done
	copied := fresh.LogEnd()
	appendN(old, "a", 30) // never copied: unacknowledged under sync
	g.stop()
	if h := *freshHist.Load(); !reflect.DeepEqual(h, History{{1, 0}}) {
		t.Fatalf("the follower kept epochs %v", h)
	}

	// Epoch 2: fresh leads and writes; old comes back as its follower.
	g2 := startLeader(t, fresh, LeaderConfig{Standby: true})
	defer g2.stop()
	g2.leader.Lead(2, freshHist.Load().Lead(2, fresh.LogEnd()))
	appendN(fresh, "b", 20)
	oldHist := atomic.Pointer[History]{}
	oldHist.Store(&History{{1, 0}})
	var cut atomic.Int64
	cut.Store(-1)
	f2 := NewFollower(fcfg(old, g2.addr, &oldHist, &cut))
	f2.Run(ctx) // returns once told to truncate
	if cut.Load() != copied {
		t.Fatalf("told to truncate to %d, want %d (where epoch 1 ended on the new leader)", cut.Load(), copied)
	}
	old.Close()
	cfg := store.Config{Dir: oldDir, SegmentSize: 256 << 10, MaxMessageSize: 32 << 10, WriteBufferSize: 256 << 10,
		QueueFileEntries: 1000, IndexSlots: 1024, IndexEntries: 4096, Truncate: true, TruncateTo: cut.Load()}
	old, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	var noCut2 atomic.Int64
	noCut2.Store(-1)
	f3 := NewFollower(fcfg(old, g2.addr, &oldHist, &noCut2))
	f3ctx, stopF3 := context.WithCancel(ctx)
	done3 := make(chan struct{})
	go func() { defer close(done3); f3.Run(f3ctx) }()
	waitFor(t, "the old leader to copy the new one", func() bool { return old.LogEnd() == fresh.LogEnd() })
	stopF3()
	<-done3
	sameBytes(t, fresh, old, fresh.LogEnd())
	if old.MaxOffset("a", 0) != 50 || old.MaxOffset("b", 0) != 20 {
		t.Fatalf("the old leader holds %d of a/0 and %d of b/0, want 50 and 20", old.MaxOffset("a", 0), old.MaxOffset("b", 0))
	}
	if h := *oldHist.Load(); !reflect.DeepEqual(h, History{{1, 0}, {2, copied}}) {
		t.Fatalf("the old leader's epochs: %v", h)
	}
}

// TestConfirmedAfterPromotion: a promoted replica's log is readable only
// as far as a follower confirms it (its tail may be on it alone).
func TestConfirmedAfterPromotion(t *testing.T) {
	ctx := context.Background()
	ls := openStore(t, t.TempDir())
	defer ls.Close()
	for i := 0; i < 20; i++ {
		if err := ls.Append(ctx, []remoting.MessageExt{msg("t", 0, i)}); err != nil {
			t.Fatal(err)
		}
	}
	g := startLeader(t, ls, LeaderConfig{Standby: true, MinInSync: 2})
	defer g.stop()
	g.leader.Lead(1, History{{1, ls.LogEnd()}})
	if c := g.leader.Confirmed(); c != 0 {
		t.Fatalf("confirmed %d before any follower", c)
	}
	fs := openStore(t, t.TempDir())
	defer fs.Close()
	r := startFollower(t, fs, 1, "b", g.addr)
	defer r.stop()
	waitFor(t, "the follower's copy to be confirmed", func() bool { return g.leader.Confirmed() == ls.LogEnd() })
}

// TestEmptyFollowerJoins: a follower whose log holds no bytes (rebuilt
// from the cold tier, so it starts where it ends) has nothing that can
// have diverged: the leader streams from its end instead of telling it to
// truncate where an epoch it never saw ended. A follower that lacks what
// the leader has deleted is refused, and Behind decides what it does.
func TestEmptyFollowerJoins(t *testing.T) {
	ctx := context.Background()
	ls := openStore(t, t.TempDir())
	defer ls.Close()
	for i := range 600 {
		if err := ls.Append(ctx, []remoting.MessageExt{msg("t", 0, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ls.Seal(); err != nil {
		t.Fatal(err)
	}
	mid := ls.LogEnd() // a segment base
	g := startLeader(t, ls, LeaderConfig{Standby: true})
	defer g.stop()
	g.leader.Lead(3, History{{1, 0}, {3, 1000}})
	try := func(h hello) answer {
		t.Helper()
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(h.encode())
		a, err := readAnswer(c)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	h := hello{name: "b", id: 1, segmentSize: ls.SegmentSize(), end: mid}
	if a := try(h); a.status != statusTruncate || a.start != 0 {
		t.Fatalf("a log of epoch 0 ending at %d: %+v, want truncation at 0 (where epoch 1 began)", mid, a)
	}
	h.empty = true
	if a := try(h); a.status != statusOK || a.start != mid {
		t.Fatalf("an empty log at %d: %+v, want streaming from there", mid, a)
	}

	// The leader deletes its first segments: an empty follower at 0 lacks them.
	waitFor(t, "the leader's first segments deleted", func() bool {
		ls.DeleteSegments(func(info store.SegmentInfo) bool { return info.Base+info.Size <= mid })
		return ls.LogStart() > 0
	})
	fs := openStore(t, t.TempDir())
	defer fs.Close()
	var asked atomic.Int64
	f := NewFollower(FollowerConfig{BrokerName: "b", BrokerID: 1, Log: fs, Leader: func() string { return g.addr },
		Behind: func() bool { return asked.Add(1) == 2 }, Logger: g.leader.log})
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after Behind asked for a rebuild")
	}
	if asked.Load() != 2 || fs.LogEnd() != 0 {
		t.Fatalf("Behind asked %d times (want 2: the first answer was false), log end %d", asked.Load(), fs.LogEnd())
	}
}
