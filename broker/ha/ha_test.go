package ha

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/internal/testlog"
	"github.com/strata-mq/strata/remoting"
)

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{
		Dir: dir, SegmentSize: 256 << 10, MaxMessageSize: 32 << 10, WriteBufferSize: 256 << 10,
		QueueFileEntries: 1000, IndexSlots: 1024, IndexEntries: 4096,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// group is a leader store with its Leader on a loopback port.
type group struct {
	t      *testing.T
	log    *store.Store
	leader *Leader
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

func startLeader(t *testing.T, s *store.Store, cfg LeaderConfig) *group {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log, cfg.Logger = s, testlog.OnFailure(t)
	if cfg.BrokerName == "" {
		cfg.BrokerName = "b"
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &group{t: t, log: s, leader: NewLeader(cfg), addr: ln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() { defer close(g.done); g.leader.Serve(ctx, ln) }()
	return g
}

func (g *group) stop() {
	g.cancel()
	<-g.done
	g.leader.Close()
}

// replica is a follower store copying from addr.
type replica struct {
	log    *store.Store
	f      *Follower
	cancel context.CancelFunc
	done   chan struct{}
}

func startFollower(t *testing.T, s *store.Store, id int64, name, addr string) *replica {
	ctx, cancel := context.WithCancel(context.Background())
	f := NewFollower(FollowerConfig{BrokerName: name, BrokerID: id, Log: s, Leader: func() string { return addr }, Logger: testlog.OnFailure(t)})
	r := &replica{log: s, f: f, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); f.Run(ctx) }()
	return r
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

func msg(topic string, q int32, n int) remoting.MessageExt {
	body := bytes.Repeat([]byte{byte('a' + n%26)}, 300+n%700)
	copy(body, fmt.Sprintf("%s/%d/%d|", topic, q, n))
	return remoting.MessageExt{Topic: topic, QueueID: q, Body: body,
		Properties: remoting.AppendProperty(nil, remoting.PropKeys, fmt.Sprintf("k%d", n)), BornTimestamp: 1}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sameBytes compares the two logs' segment files up to end.
func sameBytes(t *testing.T, a, b *store.Store, end int64) {
	t.Helper()
	as, bs := a.Segments(), b.Segments()
	if len(as) != len(bs) {
		t.Fatalf("%d segments and %d", len(as), len(bs))
	}
	for i := range as {
		n := min(as[i].Size, end-as[i].Base)
		if as[i].Base != bs[i].Base || n <= 0 {
			if as[i].Base != bs[i].Base {
				t.Fatalf("segment %d: base %d and %d", i, as[i].Base, bs[i].Base)
			}
			continue
		}
		x, err1 := os.ReadFile(as[i].Path)
		y, err2 := os.ReadFile(bs[i].Path)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !bytes.Equal(x[:n], y[:n]) {
			t.Fatalf("segment %d differs", as[i].Base)
		}
	}
}

func TestSyncReplication(t *testing.T) {
	ctx := context.Background()
	ls := openStore(t, t.TempDir())
	defer ls.Close()
	base := runtime.NumGoroutine()
	g := startLeader(t, ls, LeaderConfig{MinInSync: 3, MaxLag: 2 * time.Second, ChunkSize: 64 << 10})
	defer g.stop()

	// No follower yet: sends fail fast.
	if err := g.leader.Check(); !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("Check with no followers: %v", err)
	}
	fdirs := []string{t.TempDir(), t.TempDir()}
	var reps []*replica
	for i, d := range fdirs {
		reps = append(reps, startFollower(t, openStore(t, d), int64(i+1), "b", g.addr))
	}
	waitFor(t, "two followers in sync", func() bool { return g.leader.InSync() == 3 })

	// Concurrent producers; every acked append is on both followers.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 150; i++ {
				m := []remoting.MessageExt{msg("t", int32(w%4), w*1000+i)}
				if err := g.leader.Check(); err != nil {
					errs <- err
					return
				}
				if err := ls.Append(ctx, m); err != nil {
					errs <- err
					return
				}
				end := store.RecordEnd(&m[0])
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := g.leader.WaitReplicated(wctx, end)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				for _, r := range reps {
					if st := r.f.Status(); st.LogEnd < end {
						errs <- fmt.Errorf("append acked at %d, follower has %d", end, st.LogEnd)
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	end := ls.LogEnd()
	if len(ls.Segments()) < 3 {
		t.Fatalf("%d segments; the test wants rolls", len(ls.Segments()))
	}
	for _, r := range reps {
		waitFor(t, "follower at the leader's end", func() bool { return r.log.LogEnd() == end })
		sameBytes(t, ls, r.log, end)
		if a, b := ls.MaxOffset("t", 3), r.log.MaxOffset("t", 3); a != b || a == 0 {
			t.Fatalf("queue t/3: leader %d, follower %d", a, b)
		}
	}
	st := g.leader.Followers()
	if len(st) != 2 || !st[0].InSync || st[1].LagBytes != 0 {
		t.Fatalf("followers: %+v", st)
	}

	// One follower stops: with MinInSync 3 sends fail fast; the other
	// copies keep up.
	reps[1].stop()
	reps[1].log.Close()
	waitFor(t, "follower 2 gone", func() bool { return g.leader.InSync() == 2 })
	if err := g.leader.Check(); !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("Check with one follower of two: %v", err)
	}
	m := []remoting.MessageExt{msg("t", 0, 99999)}
	if err := ls.Append(ctx, m); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := g.leader.WaitReplicated(ctx, store.RecordEnd(&m[0])); !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("WaitReplicated with too few in sync: %v", err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("WaitReplicated took %v to fail", d)
	}

	// It comes back (reopened: recovery) and catches up.
	reps[1] = startFollower(t, openStore(t, fdirs[1]), 2, "b", g.addr)
	waitFor(t, "follower 2 back in sync", func() bool { return g.leader.InSync() == 3 })
	if err := g.leader.WaitReplicated(ctx, store.RecordEnd(&m[0])); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, ls, reps[1].log, ls.LogEnd())
	for _, r := range reps {
		r.stop()
		r.log.Close()
	}
	g.stop()
	checkGoroutines(t, base)
}

func TestFollowersRefused(t *testing.T) {
	ctx := context.Background()
	ls := openStore(t, t.TempDir())
	defer ls.Close()
	if err := ls.Append(ctx, []remoting.MessageExt{msg("t", 0, 1)}); err != nil {
		t.Fatal(err)
	}
	g := startLeader(t, ls, LeaderConfig{MinInSync: 2})
	defer g.stop()
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
	good := hello{name: "b", id: 1, segmentSize: ls.SegmentSize()}
	for _, tc := range []struct {
		mod    func(*hello)
		status int
	}{
		{func(h *hello) { h.name = "other" }, statusWrongName},
		{func(h *hello) { h.segmentSize *= 2 }, statusSegmentSize},
		{func(h *hello) { h.end = ls.LogEnd() + 100 }, statusAhead},
	} {
		h := good
		tc.mod(&h)
		if a := try(h); a.status != tc.status || a.msg == "" {
			t.Errorf("hello %+v: answer %+v, want status %d", h, a, tc.status)
		}
	}
	if a := try(good); a.status != statusOK || a.end != ls.LogEnd() {
		t.Fatalf("good hello: %+v", a)
	}
	// Garbage gets the connection closed, and the leader keeps serving.
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n......"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 10)); err == nil {
		t.Fatalf("garbage hello answered with %d bytes", n)
	}
	c.Close()
	if a := try(good); a.status != statusOK {
		t.Fatalf("good hello after garbage: %+v", a)
	}
}

// checkGoroutines fails if goroutines started since base do not stop.
func checkGoroutines(t *testing.T, base int) {
	t.Helper()
	waitFor(t, "goroutines to stop", func() bool { return runtime.NumGoroutine() <= base })
}

func FuzzParseHello(f *testing.F) {
	f.Add(hello{name: "broker-a", id: 1, segmentSize: 1 << 30, end: 12345}.encode())
	f.Add([]byte("STRP"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := parseHello(b)
		if err == nil && (n == 0 || n > maxName || h.id < 0 || h.end < 0) {
			t.Fatalf("accepted %+v with a %d-byte name", h, n)
		}
		if _, err := readHello(bytes.NewReader(b)); err == nil && len(b) < helloLen {
			t.Fatal("read a hello from a short input")
		}
		readAnswer(bytes.NewReader(b))
		if fh, err := parseFrameHeader(b, 1<<20); err == nil && (fh.n > 1<<20 || fh.off < 0 || fh.leaderEnd < fh.off+int64(fh.n)) {
			t.Fatalf("accepted frame %+v", fh)
		}
	})
}
