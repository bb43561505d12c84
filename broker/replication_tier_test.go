package broker

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/fsstore"
)

// sendBigRT sends message i (body m-<i> padded to 2 KiB) to RT/0.
func sendBigRT(t *testing.T, c *remoting.Conn, i int) {
	t.Helper()
	body := append([]byte(fmt.Sprintf("m-%04d", i)), bytes.Repeat([]byte{'.'}, 2042)...)
	resp := invoke(t, c, remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
		"a": "pg", "b": "RT", "c": "TBW102", "d": "1", "e": "0", "f": "0", "g": "1700000000000", "h": "0",
		"i": "", "j": "0", "k": "false", "l": "0"}, body))
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("send %d: %d %q", i, resp.Code, resp.Remark)
	}
}

// TestFollowersWithColdTier: the leader of a group offloads; its follower
// offloads nothing, deletes what the leader offloaded and serves it from
// the cold tier; a follower that was down while the leader deleted what it
// lacks rebuilds its log from the cold tier (Run restarts it) and catches
// up; a new follower on an empty disk starts where the cold tier ends.
func TestFollowersWithColdTier(t *testing.T) {
	ns := startNamesrv(t)
	os, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	withTier := func(c *Config) {
		c.Replication, c.MinInSyncReplicas = ReplicationAsync, 0
		c.ReaderRefresh = 100 * time.Millisecond
		c.Store.Flush, c.Store.CheckpointInterval, c.Store.QueueFlushDelay = store.FlushAsync, 50*time.Millisecond, 50*time.Millisecond
		c.Tier = TierConfig{Store: os, CacheSize: 4 << 20, ManifestWait: 5 * time.Second,
			Tier: tier.Config{BlockSize: 32 << 10, ReadTimeout: 2 * time.Second}}
	}
	leader := startReplica(t, ns, 0, withTier)
	lc := pipeTo(t, leader, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40020})
	f1 := startReplica(t, ns, 1, withTier)
	f2Dir := t.TempDir()
	f2 := startReplica(t, ns, 2, func(c *Config) { withTier(c); c.DataDir = f2Dir })
	n := 0
	for ; n < 100; n++ {
		sendBigRT(t, lc, n)
	}
	waitUntil(t, "follower 2 to copy the first messages", func() bool { return f2.Store().MaxOffset("RT", 0) == 100 })
	shutdown(f2)
	f2End := f2.Store().LogEnd()

	for ; n < 800; n++ {
		sendBigRT(t, lc, n)
	}
	if err := leader.Store().Seal(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the leader to offload and delete past follower 2's log", func() bool {
		return leader.Store().LogStart() > f2End && leader.Tier().Offloaded(leader.Store().LogStart()-leader.Store().SegmentSize())
	})
	waitUntil(t, "the leader to offload every sealed segment", func() bool {
		m, err := leader.Tier().Manifest()
		return err == nil && m.EndOffset() == leader.Store().LogEnd()
	})
	waitUntil(t, "follower 1 to copy everything, see it offloaded and delete it", func() bool {
		_, known := f1.topics.Get("RT")
		return f1.Store().LogEnd() == leader.Store().LogEnd() && f1.Store().LogStart() == f1.Store().LogEnd() &&
			f1.Tier().Status().PendingSegments == 0 && known
	})
	if st := f1.Tier().Status(); st.LastError != "" {
		t.Errorf("follower 1's tier: %+v", st)
	}
	m, err := leader.Tier().Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range m.Entries() {
		if e.Epoch != 0 {
			t.Errorf("entry %d written at epoch %d by a classic leader", e.Base, e.Epoch)
		}
	}
	// Follower 1 serves the deleted history from the cold tier.
	fc := pipeTo(t, f1, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40021})
	for off := int64(0); off < 100; {
		resp := pullAt(t, fc, off)
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("follower 1, pull at %d: %d %q", off, resp.Code, resp.Remark)
		}
		off = checkBodies(t, resp.Body, off)
	}

	// Follower 2 comes back behind the leader's log: it rebuilds from the
	// cold tier.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cfg Config
	first := startReplica(t, ns, 2, func(c *Config) { withTier(c); c.DataDir = f2Dir; cfg = *c })
	restarted := make(chan *Broker, 4)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, func(b *Broker) { restarted <- b }, first) }()
	var f2b *Broker
	select {
	case f2b = <-restarted:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("follower 2 did not restart to rebuild from the cold tier")
	}
	waitUntil(t, "the rebuilt follower 2 to catch up", func() bool {
		_, known := f2b.topics.Get("RT")
		return f2b.Store().LogEnd() == leader.Store().LogEnd() && f2b.Store().MaxOffset("RT", 0) == int64(n) && known
	})
	if f2b.Store().LogStart() <= f2End {
		t.Errorf("the rebuilt log starts at %d, before the old end %d", f2b.Store().LogStart(), f2End)
	}
	// What the leader writes now, the rebuilt follower copies.
	for ; n < 850; n++ {
		sendBigRT(t, lc, n)
	}
	waitUntil(t, "the rebuilt follower 2 to copy new messages", func() bool {
		return f2b.Store().LogEnd() == leader.Store().LogEnd() && f2b.Store().MaxOffset("RT", 0) == int64(n)
	})
	fc2 := pipeTo(t, f2b, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40022})
	for _, off := range []int64{0, 400, 790, int64(n - 5)} {
		resp := pullAt(t, fc2, off)
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("rebuilt follower, pull at %d: %d %q", off, resp.Code, resp.Remark)
		}
		checkBodies(t, resp.Body, off)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}

	// A new follower on an empty disk starts where the cold tier ends.
	f3 := startReplica(t, ns, 3, withTier)
	waitUntil(t, "a new follower to catch up", func() bool {
		return f3.Store().LogEnd() == leader.Store().LogEnd() && f3.Store().MaxOffset("RT", 0) == int64(n)
	})
}
