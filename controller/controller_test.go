package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

const (
	testElection = 600 * time.Millisecond
	testLease    = 300 * time.Millisecond
	beatEvery    = 40 * time.Millisecond
)

// logBuf collects a test's log lines; they are printed when the test fails.
type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.lines = append(b.lines, strings.TrimRight(string(p), "\n"))
	b.mu.Unlock()
	return len(p), nil
}

func (b *logBuf) count(substr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, l := range b.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func testLogger(t *testing.T) (*slog.Logger, *logBuf) {
	t.Helper()
	b := &logBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			b.mu.Lock()
			defer b.mu.Unlock()
			for _, l := range b.lines {
				t.Log(l)
			}
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func open(t *testing.T, cfg Config) *Controller {
	t.Helper()
	if cfg.ElectionTimeout == 0 {
		cfg.ElectionTimeout, cfg.LeaseTimeout = testElection, testLease
	}
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func openSingle(t *testing.T, log *slog.Logger) *Controller {
	t.Helper()
	c := open(t, Config{Bind: "127.0.0.1:0", Dir: t.TempDir(), Logger: log})
	waitServing(t, c)
	return c
}

func waitServing(t *testing.T, c *Controller) {
	t.Helper()
	waitFor(t, 10*time.Second, "the controller to serve as raft leader", func() bool {
		_, err := c.serving()
		return err == nil
	})
}

func hb(id, logEnd int64, minInSync int) Heartbeat {
	return Heartbeat{
		Cluster: "c", Group: "g", ID: id,
		Addr:   fmt.Sprintf("10.0.0.%d:10911", id+1),
		HAAddr: fmt.Sprintf("10.0.0.%d:10912", id+1),
		LogEnd: logEnd, MinInSync: minInSync,
	}
}

// beater is a replica heartbeating to a set of controllers.
type beater struct {
	t       *testing.T
	hb      Heartbeat
	targets func() []*Controller

	mu       sync.Mutex
	last     Assignment // the last answer from a serving raft leader
	from     map[*Controller]Assignment
	at       time.Time // when last arrived
	maxEpoch int64
	errs     map[*Controller]error // last error per controller

	stopCh chan struct{}
	done   chan struct{}
}

func startBeater(t *testing.T, targets func() []*Controller, h Heartbeat) *beater {
	b := &beater{t: t, hb: h, targets: targets, from: map[*Controller]Assignment{},
		errs: map[*Controller]error{}, stopCh: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	t.Cleanup(b.stop)
	return b
}

func (b *beater) run() {
	defer close(b.done)
	tick := time.NewTicker(beatEvery)
	defer tick.Stop()
	for {
		for _, c := range b.targets() {
			a, err := c.Heartbeat(context.Background(), b.hb)
			b.mu.Lock()
			b.errs[c] = err
			if err == nil {
				if a.Epoch < b.maxEpoch {
					b.t.Errorf("replica %d: epoch went down from %d to %d", b.hb.ID, b.maxEpoch, a.Epoch)
				}
				b.maxEpoch = max(b.maxEpoch, a.Epoch)
				b.last, b.from[c], b.at = a, a, time.Now()
			}
			b.mu.Unlock()
		}
		select {
		case <-b.stopCh:
			return
		case <-tick.C:
		}
	}
}

func (b *beater) stop() {
	select {
	case <-b.stopCh:
	default:
		close(b.stopCh)
	}
	<-b.done
}

func (b *beater) answer() Assignment {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

func (b *beater) answerFrom(c *Controller) (Assignment, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.from[c]
	return a, ok
}

func (b *beater) errFrom(c *Controller) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.errs[c]
}

func one(c *Controller) func() []*Controller { return func() []*Controller { return []*Controller{c} } }

func leaderIs(b *beater, epoch, leader int64) func() bool {
	return func() bool {
		a := b.answer()
		return a.Epoch == epoch && a.Leader == leader
	}
}

func checkAssignment(t *testing.T, who string, a Assignment, epoch, leader int64, lease bool) {
	t.Helper()
	want := Assignment{Epoch: epoch, Leader: leader, LeaderAddr: hb(leader, 0, 0).Addr, LeaderHA: hb(leader, 0, 0).HAAddr}
	if lease {
		want.LeaseMillis = testLease.Milliseconds()
	}
	if a != want {
		t.Fatalf("%s: assignment %+v, want %+v", who, a, want)
	}
}

func groupStatus(t *testing.T, c *Controller, name string) (GroupStatus, bool) {
	t.Helper()
	for _, g := range c.Groups() {
		if g.Group == name {
			return g, true
		}
	}
	return GroupStatus{}, false
}

// TestFailoverSingleController: member 0 of a new group is elected at once;
// when it goes silent the member with the greatest log end among those
// heard after its lease is elected after ElectionTimeout, with a lease, and
// the others are told.
func TestFailoverSingleController(t *testing.T) {
	log, _ := testLogger(t)
	c := openSingle(t, log)
	b0 := startBeater(t, one(c), hb(0, 120, 2))
	b1 := startBeater(t, one(c), hb(1, 100, 2))
	b2 := startBeater(t, one(c), hb(2, 90, 2))

	waitFor(t, 5*time.Second, "0 elected at epoch 1", leaderIs(b0, 1, 0))
	checkAssignment(t, "replica 0", b0.answer(), 1, 0, true)
	waitFor(t, 5*time.Second, "1 told 0 leads", leaderIs(b1, 1, 0))
	checkAssignment(t, "replica 1", b1.answer(), 1, 0, false)
	waitFor(t, 5*time.Second, "2 told 0 leads", leaderIs(b2, 1, 0))

	b0.stop()
	stopped := time.Now()
	waitFor(t, 5*time.Second, "1 elected at epoch 2", leaderIs(b1, 2, 1))
	elapsed := time.Since(stopped)
	if elapsed < testElection-2*beatEvery {
		t.Fatalf("1 elected %s after 0 went silent, before the election timeout %s", elapsed, testElection)
	}
	if elapsed > testElection+2*time.Second {
		t.Fatalf("1 elected only %s after 0 went silent", elapsed)
	}
	checkAssignment(t, "replica 1 (new leader)", b1.answer(), 2, 1, true)
	waitFor(t, 5*time.Second, "2 told 1 leads", leaderIs(b2, 2, 1))
	checkAssignment(t, "replica 2", b2.answer(), 2, 1, false)

	// The old leader comes back: it is told who leads now, without a lease.
	a, err := c.Heartbeat(context.Background(), hb(0, 120, 2))
	if err != nil {
		t.Fatal(err)
	}
	checkAssignment(t, "replica 0 back", a, 2, 1, false)

	g, ok := groupStatus(t, c, "g")
	if !ok || g.Epoch != 2 || g.Leader != 1 || g.MinInSync != 2 || len(g.Members) != 3 || g.Cluster != "c" {
		t.Fatalf("status %+v", g)
	}
	for _, m := range g.Members {
		if !m.Alive || m.Addr != hb(m.ID, 0, 0).Addr || m.HAAddr != hb(m.ID, 0, 0).HAAddr || m.LastSeenMillis == 0 {
			t.Fatalf("member status %+v", m)
		}
	}
}

// TestNotEnoughCandidates: 3 members, MinInSync 2: with the leader silent
// and only one other member heard, a send acknowledged by the leader and
// the silent member could be missing from the only candidate, so nothing is
// elected (and the reason is logged) until the other member is heard again.
func TestNotEnoughCandidates(t *testing.T) {
	log, logs := testLogger(t)
	c := openSingle(t, log)
	b0 := startBeater(t, one(c), hb(0, 120, 2))
	b1 := startBeater(t, one(c), hb(1, 100, 2))
	b2 := startBeater(t, one(c), hb(2, 90, 2))
	waitFor(t, 5*time.Second, "0 elected at epoch 1", leaderIs(b0, 1, 0))
	waitFor(t, 5*time.Second, "1 knows 0 leads", leaderIs(b1, 1, 0))

	b0.stop()
	b1.stop()
	waitFor(t, 5*time.Second, "the controller to log why it cannot elect", func() bool {
		return logs.count("cannot elect a leader") > 0
	})
	// Well past the election timeout: still no election.
	since := c.checks.Load()
	waitFor(t, 5*time.Second, "more checker passes", func() bool { return c.checks.Load() >= since+5 })
	checkAssignment(t, "replica 2", b2.answer(), 1, 0, false)
	if n := logs.count("cannot elect a leader"); n != 1 {
		t.Fatalf("the reason was logged %d times, want once (rate limited)", n)
	}

	// 1 is heard again: now both other members reported final log ends.
	b1 = startBeater(t, one(c), hb(1, 100, 2))
	waitFor(t, 5*time.Second, "1 elected at epoch 2", leaderIs(b1, 2, 1))
	checkAssignment(t, "replica 1", b1.answer(), 2, 1, true)
}

// TestAsyncOneCandidate: with MinInSync 1 one candidate is enough, and a
// member not heard since the leader's lease ran out is no candidate even
// with a greater log end.
func TestAsyncOneCandidate(t *testing.T) {
	log, _ := testLogger(t)
	c := openSingle(t, log)
	b0 := startBeater(t, one(c), hb(0, 120, 1))
	b1 := startBeater(t, one(c), hb(1, 100, 1))
	b2 := startBeater(t, one(c), hb(2, 50, 1))
	waitFor(t, 5*time.Second, "0 elected at epoch 1", leaderIs(b0, 1, 0))
	waitFor(t, 5*time.Second, "1 knows 0 leads", leaderIs(b1, 1, 0))

	b0.stop()
	b1.stop()
	waitFor(t, 5*time.Second, "2 elected at epoch 2", leaderIs(b2, 2, 2))
	checkAssignment(t, "replica 2", b2.answer(), 2, 2, true)
}

// TestNewGroupWithoutMemberZero: a new group without member 0 gets, once it
// has been known for ElectionTimeout, the alive member with the greatest log
// end, the lowest id among equals.
func TestNewGroupWithoutMemberZero(t *testing.T) {
	log, _ := testLogger(t)
	c := openSingle(t, log)
	start := time.Now()
	b1 := startBeater(t, one(c), hb(1, 10, 2))
	b2 := startBeater(t, one(c), hb(2, 20, 2))
	b3 := startBeater(t, one(c), hb(3, 20, 2))
	waitFor(t, 5*time.Second, "2 elected at epoch 1", leaderIs(b2, 1, 2))
	if elapsed := time.Since(start); elapsed < testElection {
		t.Fatalf("elected %s after the group appeared, before the election timeout", elapsed)
	}
	checkAssignment(t, "replica 2", b2.answer(), 1, 2, true)
	waitFor(t, 5*time.Second, "1 and 3 told 2 leads", func() bool { return leaderIs(b1, 1, 2)() && leaderIs(b3, 1, 2)() })
}

// TestThreeControllers: only the raft leader answers; the others name it.
// When the raft leader dies together with the group's leader, a new raft
// leader takes over with the replicated state, waits a full ElectionTimeout
// and elects as a single controller would; the epoch only goes up.
func TestThreeControllers(t *testing.T) {
	log, _ := testLogger(t)
	addrs := freeAddrs(t, 3)
	var mu sync.Mutex
	var cs []*Controller
	for i, a := range addrs {
		c := open(t, Config{Bind: a, Peers: addrs, Dir: filepath.Join(t.TempDir(), fmt.Sprint(i)),
			Logger: log.With("node", i)})
		cs = append(cs, c)
	}
	live := func() []*Controller {
		mu.Lock()
		defer mu.Unlock()
		return append([]*Controller(nil), cs...)
	}
	leader := func() *Controller {
		for _, c := range live() {
			if _, err := c.serving(); err == nil {
				return c
			}
		}
		return nil
	}
	waitFor(t, 10*time.Second, "a serving raft leader known to all", func() bool {
		l := leader()
		if l == nil {
			return false
		}
		for _, c := range live() {
			if c.LeaderAddr() != l.cfg.Advertise {
				return false
			}
		}
		return true
	})
	rl := leader()
	if !rl.IsLeader() {
		t.Fatal("IsLeader false on the raft leader")
	}
	for _, c := range live() {
		if c == rl {
			continue
		}
		if c.IsLeader() {
			t.Fatal("IsLeader true on a follower")
		}
		_, err := c.Heartbeat(context.Background(), hb(0, 120, 2))
		if !errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), rl.cfg.Advertise) {
			t.Fatalf("follower's answer: %v; want ErrNotLeader naming %s", err, rl.cfg.Advertise)
		}
	}

	b0 := startBeater(t, live, hb(0, 120, 2))
	b1 := startBeater(t, live, hb(1, 100, 2))
	b2 := startBeater(t, live, hb(2, 90, 2))
	waitFor(t, 5*time.Second, "0 elected at epoch 1", leaderIs(b0, 1, 0))
	waitFor(t, 5*time.Second, "1 and 2 told 0 leads", func() bool { return leaderIs(b1, 1, 0)() && leaderIs(b2, 1, 0)() })
	waitFor(t, 5*time.Second, "every controller's FSM at epoch 1", func() bool {
		for _, c := range live() {
			if g, ok := groupStatus(t, c, "g"); !ok || g.Epoch != 1 || len(g.Members) != 3 {
				return false
			}
		}
		return true
	})
	for _, c := range live() {
		if c != rl && !errors.Is(b0.errFrom(c), ErrNotLeader) {
			t.Fatalf("a follower answered a heartbeat: %v", b0.errFrom(c))
		}
	}

	// The raft leader and the group's leader die together.
	b0.stop()
	mu.Lock()
	for i, c := range cs {
		if c == rl {
			cs = append(cs[:i], cs[i+1:]...)
			break
		}
	}
	mu.Unlock()
	if err := rl.Close(); err != nil {
		t.Fatal(err)
	}
	var nl *Controller
	waitFor(t, 10*time.Second, "a new serving raft leader", func() bool { nl = leader(); return nl != nil })
	nl.mu.Lock()
	since := nl.since
	nl.mu.Unlock()
	if g, ok := groupStatus(t, nl, "g"); !ok || g.Epoch != 1 || g.Leader != 0 || len(g.Members) != 3 || g.MinInSync != 2 {
		t.Fatalf("new raft leader's state %+v", g)
	}
	waitFor(t, 10*time.Second, "1 elected at epoch 2 by the new raft leader", func() bool {
		a, ok := b1.answerFrom(nl)
		return ok && a.Epoch == 2 && a.Leader == 1
	})
	if elapsed := time.Since(since); elapsed < testElection {
		t.Fatalf("the new raft leader elected %s after it took over, before the election timeout", elapsed)
	}
	a, _ := b1.answerFrom(nl)
	checkAssignment(t, "replica 1", a, 2, 1, true)
	waitFor(t, 5*time.Second, "2 told 1 leads", func() bool {
		a, ok := b2.answerFrom(nl)
		return ok && a.Epoch == 2 && a.Leader == 1
	})
	for _, c := range live() {
		if c == nl {
			continue
		}
		_, err := c.Heartbeat(context.Background(), hb(1, 100, 2))
		if !errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), nl.cfg.Advertise) {
			t.Fatalf("follower's answer: %v; want ErrNotLeader naming %s", err, nl.cfg.Advertise)
		}
		waitFor(t, 5*time.Second, "the follower's FSM at epoch 2", func() bool {
			g, ok := groupStatus(t, c, "g")
			return ok && g.Epoch == 2 && g.Leader == 1
		})
	}
}

// TestRestartRestoresState: a single controller restarted on the same Dir
// has the groups' epochs, leaders and members, replayed from the raft log or
// restored from a snapshot.
func TestRestartRestoresState(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", snapshot), func(t *testing.T) {
			log, _ := testLogger(t)
			dir := t.TempDir()
			bind := freeAddrs(t, 1)[0]
			c := open(t, Config{Bind: bind, Dir: dir, Logger: log})
			waitServing(t, c)
			b0 := startBeater(t, one(c), hb(0, 120, 2))
			b1 := startBeater(t, one(c), hb(1, 100, 2))
			b2 := startBeater(t, one(c), hb(2, 90, 2))
			waitFor(t, 5*time.Second, "0 elected", leaderIs(b0, 1, 0))
			b0.stop()
			waitFor(t, 5*time.Second, "1 elected at epoch 2", leaderIs(b1, 2, 1))
			b1.stop()
			b2.stop()
			if snapshot {
				if err := c.raft.Snapshot().Error(); err != nil {
					t.Fatal(err)
				}
				if snaps, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*")); len(snaps) == 0 {
					t.Fatal("no snapshot written")
				}
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}

			c = open(t, Config{Bind: bind, Dir: dir, Logger: log})
			waitServing(t, c)
			g, ok := groupStatus(t, c, "g")
			if !ok || g.Epoch != 2 || g.Leader != 1 || g.MinInSync != 2 || g.Cluster != "c" || len(g.Members) != 3 {
				t.Fatalf("restored state %+v", g)
			}
			for _, m := range g.Members {
				if m.Addr != hb(m.ID, 0, 0).Addr || m.HAAddr != hb(m.ID, 0, 0).HAAddr || m.Alive {
					t.Fatalf("restored member %+v", m)
				}
			}
			a, err := c.Heartbeat(context.Background(), hb(1, 100, 2))
			if err != nil {
				t.Fatal(err)
			}
			checkAssignment(t, "replica 1 after restart", a, 2, 1, true)
		})
	}
}

// TestCloseStopsGoroutines: after Close every goroutine the controllers
// started has ended, with a single controller and with a raft group of
// three.
func TestCloseStopsGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	log, _ := testLogger(t)

	single := open(t, Config{Bind: "127.0.0.1:0", Dir: t.TempDir(), Logger: log})
	waitServing(t, single)
	if _, err := single.Heartbeat(context.Background(), hb(0, 1, 1)); err != nil {
		t.Fatal(err)
	}

	addrs := freeAddrs(t, 3)
	var cs []*Controller
	for i, a := range addrs {
		cs = append(cs, open(t, Config{Bind: a, Peers: addrs, Dir: filepath.Join(t.TempDir(), fmt.Sprint(i)), Logger: log}))
	}
	waitFor(t, 10*time.Second, "a raft leader", func() bool {
		for _, c := range cs {
			if _, err := c.serving(); err == nil {
				_, err := c.Heartbeat(context.Background(), hb(0, 1, 1))
				return err == nil
			}
		}
		return false
	})
	waitFor(t, 5*time.Second, "every FSM to have the group", func() bool {
		for _, c := range cs {
			if _, ok := groupStatus(t, c, "g"); !ok {
				return false
			}
		}
		return true
	})

	for _, c := range append(cs, single) {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil { // idempotent
			t.Fatal(err)
		}
	}
	if _, err := single.Heartbeat(context.Background(), hb(0, 1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("heartbeat after Close: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOpenValidates(t *testing.T) {
	dir := t.TempDir()
	for _, cfg := range []Config{
		{Dir: dir},
		{Bind: "127.0.0.1:0"},
		{Bind: "127.0.0.1:0", Dir: dir, ElectionTimeout: time.Second, LeaseTimeout: time.Second},
		{Bind: "127.0.0.1:0", Dir: dir, Peers: []string{"127.0.0.1:1", "127.0.0.1:2"}},
		{Bind: "0.0.0.0:0", Dir: dir},
	} {
		if c, err := Open(cfg); err == nil {
			c.Close()
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
}

// TestPick checks the candidate rule: who counts as a candidate and how many
// are needed for a given member count and MinInSync.
func TestPick(t *testing.T) {
	t0 := time.Now()
	c := &Controller{cfg: Config{ElectionTimeout: testElection, LeaseTimeout: testLease},
		since: t0, raftLease: 100 * time.Millisecond}
	fence := t0.Add(100*time.Millisecond + testLease) // since + raft lease + lease
	now := t0.Add(10 * time.Second)
	type m struct {
		id        int64
		seen      time.Time
		logEnd    int64
		lastEpoch int64
	}
	for _, tc := range []struct {
		name    string
		members int
		n       int
		heard   []m // the leader is 0
		want    int64
	}{
		{"3 members N=2, 1 heard", 3, 2, []m{{2, now, 9, 0}}, -1},
		{"3 members N=2, 2 heard", 3, 2, []m{{1, now, 5, 0}, {2, now, 9, 0}}, 2},
		{"3 members N=3, 1 heard", 3, 3, []m{{1, now, 5, 0}}, 1},
		{"3 members N=1, 1 heard", 3, 1, []m{{2, now, 5, 0}}, 2},
		{"3 members N=0, 1 heard", 3, 0, []m{{2, now, 5, 0}}, 2},
		{"5 members N=2, 3 heard", 5, 2, []m{{1, now, 5, 0}, {2, now, 7, 0}, {3, now, 7, 0}}, -1},
		{"5 members N=2, 4 heard", 5, 2, []m{{1, now, 5, 0}, {2, now, 7, 0}, {3, now, 7, 0}, {4, now, 6, 0}}, 2},
		{"5 members N=3, 3 heard", 5, 3, []m{{1, now, 5, 0}, {2, now, 4, 0}, {4, now, 6, 0}}, 4},
		{"5 members N=9, 1 heard", 5, 9, []m{{3, now, 1, 0}}, 3},
		{"1 member", 1, 1, nil, -1},
		{"heard before the fence", 3, 1, []m{{1, fence, 5, 0}, {2, fence.Add(-time.Millisecond), 9, 0}}, -1},
		{"heard just after the fence", 3, 1, []m{{1, fence.Add(time.Millisecond), 5, 0}}, 1},
		{"leader heard", 3, 1, []m{{0, now.Add(-testElection / 2), 5, 0}, {1, now, 5, 0}}, -1},
		{"leader heard long ago", 3, 1, []m{{0, now.Add(-2 * testElection), 5, 0}, {1, now, 5, 0}}, 1},
		{"leader lease fence", 3, 1, []m{{0, now.Add(-2 * testElection), 5, 0}, {1, now.Add(-2*testElection + testLease), 5, 0}}, -1},
		// An old leader's longer tail of epoch 1 loses to the acknowledged
		// log of epoch 2.
		{"newer epoch beats a longer log", 3, 2, []m{{1, now, 900, 1}, {2, now, 500, 2}}, 2},
		{"same epoch: longer log", 3, 2, []m{{1, now, 900, 2}, {2, now, 500, 2}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := groupState{Epoch: 3, Leader: 0, MinInSync: tc.n, Members: map[int64]member{}}
			for i := range tc.members {
				g.Members[int64(i)] = member{}
			}
			gl := &groupLive{known: t0, members: map[int64]*liveness{}}
			for _, h := range tc.heard {
				gl.members[h.id] = &liveness{seen: h.seen, logEnd: h.logEnd, lastEpoch: h.lastEpoch}
			}
			got, why := c.pick(g, gl, now)
			if got != tc.want {
				t.Fatalf("picked %d (%s), want %d", got, why, tc.want)
			}
			if got < 0 && tc.name != "leader heard" && why == "" {
				t.Fatal("no reason given")
			}
		})
	}
}

// TestFSM checks the elect fencing and the snapshot round trip.
func TestFSM(t *testing.T) {
	f := newFSM()
	apply := func(c command) interface{} {
		data, _ := json.Marshal(c)
		return f.Apply(&raft.Log{Type: raft.LogCommand, Data: data})
	}
	if r := apply(command{Op: opElect, Group: "g", Epoch: 1, Leader: 0}).(electResult); r.Applied {
		t.Fatal("elect applied to an unknown group")
	}
	apply(command{Op: opJoin, Group: "g", Cluster: "c", ID: 0, Addr: "a0", HAAddr: "h0", MinInSync: 2})
	apply(command{Op: opJoin, Group: "g", ID: 1, Addr: "a1", HAAddr: "h1", MinInSync: 3})
	if r := apply(command{Op: opElect, Group: "g", Epoch: 2, Leader: 0}).(electResult); r.Applied {
		t.Fatal("elect of epoch 2 applied at epoch 0")
	}
	if r := apply(command{Op: opElect, Group: "g", Epoch: 1, Leader: 7}).(electResult); r.Applied {
		t.Fatal("elect of a non-member applied")
	}
	if r := apply(command{Op: opElect, Group: "g", Epoch: 1, Leader: 1}).(electResult); !r.Applied || r.Epoch != 1 {
		t.Fatalf("elect: %+v", r)
	}
	if r := apply(command{Op: opElect, Group: "g", Epoch: 1, Leader: 0}).(electResult); r.Applied || r.Leader != 1 {
		t.Fatalf("a second elect of epoch 1: %+v", r)
	}
	apply(command{Op: opMinInSync, Group: "g", MinInSync: 1})
	apply(command{Op: opJoin, Group: "g", ID: 1, Addr: "a1b", HAAddr: "h1b"})
	if err, _ := apply(command{Op: "bogus", Group: "g"}).(error); err == nil {
		t.Fatal("bogus command accepted")
	}

	want := groupState{Cluster: "c", Epoch: 1, Leader: 1, MinInSync: 1,
		Members: map[int64]member{0: {"a0", "h0"}, 1: {"a1b", "h1b"}}}
	check := func(f *fsm) {
		t.Helper()
		g, ok := f.group("g")
		if !ok || fmt.Sprint(g) != fmt.Sprint(want) {
			t.Fatalf("state %+v, want %+v", g, want)
		}
	}
	check(f)

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	apply(command{Op: opElect, Group: "g", Epoch: 2, Leader: 0}) // after the snapshot
	g := newFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	check(g)
}

type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }
