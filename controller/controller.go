// Package controller is the failover controller embedded in the name
// servers: it elects a broker group's leader replica when the leader stops
// heartbeating.
//
// The controllers of the name servers form a hashicorp/raft group (or one
// runs alone). The replicated state (raft FSM) is, per broker group, the
// epoch, the leader's identity, the leader's min in-sync replica count and
// the members' addresses. Liveness (when each replica was last heard, its
// log end) is kept in memory by the raft leader only; a controller that has
// just become raft leader treats every member as heard at that moment, so it
// waits a full ElectionTimeout before it elects anything.
//
// Timing: the group's leader may acknowledge sends until LeaseTimeout after
// it sent its last answered heartbeat. A deposed raft leader may keep
// answering heartbeats for up to raft's LeaderLeaseTimeout after the new raft
// leader took over; the new raft leader takes both into account before it
// trusts a candidate's reported log end.
package controller

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/strata-mq/strata/namesrv"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Config configures a Controller.
type Config struct {
	// ID is this controller's raft server id and Bind the raft TCP address
	// ("127.0.0.1:9878"). ID defaults to the advertised address (which
	// defaults to Bind): with several Peers the raft ids are the peers'
	// addresses, so ID must then equal Advertise.
	ID, Bind string
	// Advertise is the raft address peers dial (default Bind).
	Advertise string
	// Peers are the raft addresses of every controller, this one's included.
	// Empty: this one alone. They are used only to bootstrap a controller
	// with no raft state in Dir.
	Peers []string
	// Dir holds the raft log, stable store and snapshots.
	Dir string
	// ElectionTimeout is how long a group's leader may go without a
	// heartbeat before another replica is elected (default 3s). LeaseTimeout
	// is how long a leader may keep acknowledging sends after its last
	// answered heartbeat (default 2s); it must be shorter than
	// ElectionTimeout.
	ElectionTimeout, LeaseTimeout time.Duration
	// ServerTLS and ClientTLS, if set, make the raft peers talk TLS:
	// ServerTLS accepts peers (it should require their certificates, so
	// that only controllers join), ClientTLS dials them.
	ServerTLS, ClientTLS *tls.Config
	// Logger default slog.Default().
	Logger *slog.Logger
}

// Heartbeat is what a replica reports (every 500 ms) to every name
// server; the wire type is the name server's.
type Heartbeat = namesrv.ControllerHeartbeat

// Assignment is the controller's answer: the group's current epoch and
// leader.
type Assignment = namesrv.ControllerAssignment

// GroupStatus is a group's state for status displays.
type GroupStatus struct {
	Group     string
	Epoch     int64
	Leader    int64
	MinInSync int
	Members   []MemberStatus
	// Cluster is the group's cluster name.
	Cluster string
	// InSync is the in-sync replica set the leader last reported (only on
	// the raft leader).
	InSync []int64
}

// MemberStatus is a replica's state for status displays. The liveness
// fields (LogEnd, Alive, LastSeenMillis, Epoch, Leading) are known only to
// the raft leader, and only for what it heard since it became leader.
type MemberStatus struct {
	ID             int64
	Addr, HAAddr   string
	LogEnd         int64
	Alive          bool
	LastSeenMillis int64 // Unix milliseconds of its last heartbeat; 0: not heard
	// Epoch and Leading are what the replica last reported.
	Epoch   int64
	Leading bool
}

var (
	// ErrNotLeader is returned (wrapped, with the raft leader's address when
	// known) by a controller that is not the raft leader.
	ErrNotLeader = errors.New("controller: not the raft leader")
	// ErrNotReady is returned by a raft leader that has not yet caught up
	// with the log of its predecessors; it answers shortly.
	ErrNotReady = errors.New("controller: the raft leader is not ready yet")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("controller: closed")
)

const (
	applyTimeout       = 2 * time.Second
	warnEvery          = 5 * time.Second
	raftTimeout        = 500 * time.Millisecond // raft heartbeat and election timeouts
	raftMaxLeaderLease = 250 * time.Millisecond
)

// Controller is one name server's failover controller.
type Controller struct {
	cfg       Config
	log       *slog.Logger
	fsm       *fsm
	raft      *raft.Raft
	stream    *tcpStream
	store     *raftboltdb.BoltStore
	raftLease time.Duration // raft's LeaderLeaseTimeout

	mu     sync.Mutex
	term   uint64                // raft term it serves heartbeats in as raft leader; 0: not serving
	since  time.Time             // when it started serving
	groups map[string]*groupLive // liveness, while serving

	checks atomic.Int64 // checker passes, for tests

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// groupLive is the raft leader's in-memory view of a group's replicas.
type groupLive struct {
	known    time.Time // when this raft leader first knew the group
	members  map[int64]*liveness
	electing int64 // the epoch of an elect command being applied, 0: none
	lastWarn time.Time
}

type liveness struct {
	seen      time.Time // when its last heartbeat arrived
	logEnd    int64
	lastEpoch int64
	epoch     int64
	leading   bool
	minInSync int
	inSync    []int64
}

// Open starts a controller: it bootstraps the raft group when Dir holds no
// raft state, and joins the raft group as recorded in Dir otherwise.
func Open(cfg Config) (*Controller, error) {
	if cfg.Bind == "" {
		return nil, errors.New("controller: no bind address")
	}
	if cfg.Dir == "" {
		return nil, errors.New("controller: no directory")
	}
	if cfg.ElectionTimeout == 0 {
		cfg.ElectionTimeout = 3 * time.Second
	}
	if cfg.LeaseTimeout == 0 {
		cfg.LeaseTimeout = 2 * time.Second
	}
	if cfg.ElectionTimeout < 0 || cfg.LeaseTimeout < 0 || cfg.LeaseTimeout >= cfg.ElectionTimeout {
		return nil, fmt.Errorf("controller: lease timeout %s must be positive and shorter than election timeout %s", cfg.LeaseTimeout, cfg.ElectionTimeout)
	}
	// A deposed raft leader may answer heartbeats (and grant leases) until
	// raft's leader lease runs out; that plus LeaseTimeout must stay under
	// ElectionTimeout (see pick).
	raftLease := min(raftMaxLeaderLease, (cfg.ElectionTimeout-cfg.LeaseTimeout)/2)
	if raftLease < 5*time.Millisecond {
		return nil, fmt.Errorf("controller: election timeout %s must exceed lease timeout %s by at least 10ms", cfg.ElectionTimeout, cfg.LeaseTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("component", "controller")
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("controller: listen: %w", err)
	}
	fail := func(err error, closers ...func() error) (*Controller, error) {
		for _, c := range closers {
			_ = c()
		}
		_ = ln.Close()
		return nil, err
	}
	if cfg.Advertise == "" {
		cfg.Advertise = ln.Addr().String()
	}
	host, _, err := net.SplitHostPort(cfg.Advertise)
	if err != nil {
		return fail(fmt.Errorf("controller: advertise address %q: %w", cfg.Advertise, err))
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return fail(fmt.Errorf("controller: advertise address %q is not reachable by peers; set Advertise", cfg.Advertise))
	}
	if cfg.ID == "" {
		cfg.ID = cfg.Advertise
	}
	peers := dedupe(cfg.Peers)
	if len(peers) == 0 {
		peers = []string{cfg.Advertise}
	}
	if !contains(peers, cfg.Advertise) {
		return fail(fmt.Errorf("controller: peers %v do not include this controller's address %s", peers, cfg.Advertise))
	}
	if len(peers) > 1 && cfg.ID != cfg.Advertise {
		return fail(fmt.Errorf("controller: with several peers the raft id must be the address (%s), not %q", cfg.Advertise, cfg.ID))
	}
	cfg.Peers = peers

	hcl := raftLogger(log)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hcl)
	if err != nil {
		return fail(fmt.Errorf("controller: snapshot store: %w", err))
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(cfg.Dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second}, // fail instead of blocking when another process holds it
	})
	if err != nil {
		return fail(fmt.Errorf("controller: raft store %s: %w", filepath.Join(cfg.Dir, "raft.db"), err))
	}
	logs, err := raft.NewLogCache(256, store)
	if err != nil {
		return fail(fmt.Errorf("controller: %w", err), store.Close)
	}
	stream := newTCPStream(ln, stringAddr(cfg.Advertise))
	stream.srvTLS, stream.cliTLS = cfg.ServerTLS, cfg.ClientTLS
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: 2 * time.Second,
		Logger:  hcl,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = raftTimeout
	rc.ElectionTimeout = raftTimeout
	rc.LeaderLeaseTimeout = raftLease
	rc.CommitTimeout = 20 * time.Millisecond
	rc.SnapshotThreshold = 1024
	rc.TrailingLogs = 1024
	rc.Logger = hcl
	if err := raft.ValidateConfig(rc); err != nil {
		return fail(fmt.Errorf("controller: raft config: %w", err), trans.Close, store.Close)
	}

	has, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		return fail(fmt.Errorf("controller: raft state: %w", err), trans.Close, store.Close)
	}
	if !has {
		var servers []raft.Server
		for _, p := range peers {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p), Address: raft.ServerAddress(p)})
		}
		if len(peers) == 1 {
			servers[0].ID = rc.LocalID
		}
		if err := raft.BootstrapCluster(rc, logs, store, snaps, trans, raft.Configuration{Servers: servers}); err != nil {
			return fail(fmt.Errorf("controller: bootstrap: %w", err), trans.Close, store.Close)
		}
		log.Info("controller: bootstrapped raft group", "peers", peers)
	}

	f := newFSM()
	r, err := raft.NewRaft(rc, f, logs, store, snaps, trans)
	if err != nil {
		return fail(fmt.Errorf("controller: raft: %w", err), trans.Close, store.Close)
	}
	if has { // Peers only bootstrap: say when the recorded raft group differs
		if fut := r.GetConfiguration(); fut.Error() == nil {
			var cur []string
			self := false
			for _, s := range fut.Configuration().Servers {
				cur = append(cur, string(s.Address))
				self = self || s.ID == rc.LocalID
			}
			sort.Strings(cur)
			if !self {
				log.Error("controller: this controller is not in the raft group recorded in its directory; it will not take part",
					"id", cfg.ID, "recorded", cur, "dir", cfg.Dir)
			} else if fmt.Sprint(cur) != fmt.Sprint(peers) {
				log.Warn("controller: peers differ from the raft group recorded in the directory, which is used",
					"peers", peers, "recorded", cur)
			}
		}
	}
	c := &Controller{
		cfg:       cfg,
		log:       log,
		fsm:       f,
		raft:      r,
		stream:    stream,
		store:     store,
		raftLease: raftLease,
		stop:      make(chan struct{}),
	}
	c.wg.Add(2)
	go c.leaderLoop()
	go c.checker()
	log.Info("controller: started", "id", cfg.ID, "addr", cfg.Advertise, "peers", peers, "dir", cfg.Dir,
		"election_timeout", cfg.ElectionTimeout, "lease_timeout", cfg.LeaseTimeout)
	return c, nil
}

// Close stops the controller; every goroutine it started has ended when it
// returns.
func (c *Controller) Close() error {
	c.closeOnce.Do(func() {
		close(c.stop)
		err := c.raft.Shutdown().Error() // also closes the transport
		c.wg.Wait()
		_ = c.stream.Close()
		c.closeErr = errors.Join(err, c.store.Close())
	})
	return c.closeErr
}

// LeaderAddr returns the raft leader's address, "" if unknown.
func (c *Controller) LeaderAddr() string {
	addr, _ := c.raft.LeaderWithID()
	return string(addr)
}

// IsLeader reports whether this controller is the raft leader.
func (c *Controller) IsLeader() bool { return c.raft.State() == raft.Leader }

func (c *Controller) notLeader() error {
	if addr := c.LeaderAddr(); addr != "" && addr != c.cfg.Advertise {
		return fmt.Errorf("%w; the raft leader is %s", ErrNotLeader, addr)
	}
	return fmt.Errorf("%w; the raft leader is unknown", ErrNotLeader)
}

func (c *Controller) closed() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// serving returns the raft term in which this controller answers
// heartbeats, or why it does not.
func (c *Controller) serving() (uint64, error) {
	if c.closed() {
		return 0, ErrClosed
	}
	if c.raft.State() != raft.Leader {
		return 0, c.notLeader()
	}
	c.mu.Lock()
	term := c.term
	c.mu.Unlock()
	if term == 0 || term != c.raft.CurrentTerm() {
		return 0, ErrNotReady
	}
	return term, nil
}

// Heartbeat records a replica's heartbeat and returns its group's
// assignment. Only the raft leader answers; the others return ErrNotLeader.
func (c *Controller) Heartbeat(ctx context.Context, hb Heartbeat) (Assignment, error) {
	if err := ctx.Err(); err != nil {
		return Assignment{}, err
	}
	if hb.Group == "" {
		return Assignment{}, errors.New("controller: heartbeat without a group")
	}
	if hb.ID < 0 {
		return Assignment{}, fmt.Errorf("controller: heartbeat with replica id %d", hb.ID)
	}
	term, err := c.serving()
	if err != nil {
		return Assignment{}, err
	}

	now := time.Now()
	c.mu.Lock()
	if c.term != term {
		c.mu.Unlock()
		return Assignment{}, ErrNotReady
	}
	gl := c.groups[hb.Group]
	if gl == nil { // a group new to the controller
		gl = &groupLive{known: now, members: map[int64]*liveness{}}
		c.groups[hb.Group] = gl
	}
	lv := gl.members[hb.ID]
	if lv == nil {
		lv = &liveness{}
		gl.members[hb.ID] = lv
	}
	if !now.Before(lv.seen) {
		*lv = liveness{seen: now, logEnd: hb.LogEnd, lastEpoch: hb.LastEpoch, epoch: hb.Epoch, leading: hb.Leading,
			minInSync: hb.MinInSync, inSync: append([]int64(nil), hb.InSync...)}
	}
	c.mu.Unlock()

	// Membership and the leader's min in-sync setting go through raft.
	g, ok := c.fsm.group(hb.Group)
	m, isMember := g.Members[hb.ID]
	if !ok || !isMember || m.Addr != hb.Addr || m.HAAddr != hb.HAAddr || (hb.Cluster != "" && hb.Cluster != g.Cluster) {
		if _, err := c.apply(command{Op: opJoin, Group: hb.Group, Cluster: hb.Cluster, ID: hb.ID,
			Addr: hb.Addr, HAAddr: hb.HAAddr, MinInSync: hb.MinInSync}); err != nil {
			return Assignment{}, err
		}
		if isMember {
			c.log.Info("controller: member addresses changed", "group", hb.Group, "id", hb.ID, "addr", hb.Addr, "ha_addr", hb.HAAddr)
		} else {
			c.log.Info("controller: member joined", "group", hb.Group, "id", hb.ID, "addr", hb.Addr, "ha_addr", hb.HAAddr)
		}
		g, _ = c.fsm.group(hb.Group)
	}
	if hb.ID == g.Leader && hb.MinInSync > 0 && hb.MinInSync != g.MinInSync {
		if _, err := c.apply(command{Op: opMinInSync, Group: hb.Group, MinInSync: hb.MinInSync}); err != nil {
			return Assignment{}, err
		}
		c.log.Info("controller: min in-sync replicas changed", "group", hb.Group, "from", g.MinInSync, "to", hb.MinInSync)
	}
	if g.Leader < 0 {
		c.maybeElect(term, hb.Group)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.term != term {
		return Assignment{}, ErrNotReady
	}
	g, _ = c.fsm.group(hb.Group)
	a := Assignment{Epoch: g.Epoch, Leader: g.Leader}
	if l, ok := g.Members[g.Leader]; ok {
		a.LeaderAddr, a.LeaderHA = l.Addr, l.HAAddr
	}
	// No lease while an election of the group is being applied and not yet
	// in the FSM: it was decided on the current leader's silence.
	if g.Leader == hb.ID && g.Epoch >= gl.electing {
		a.LeaseMillis = c.cfg.LeaseTimeout.Milliseconds()
	}
	return a, nil
}

// apply proposes a command through raft and waits for the FSM to apply it.
func (c *Controller) apply(cmd command) (interface{}, error) {
	data, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	f := c.raft.Apply(data, applyTimeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
			return nil, fmt.Errorf("controller: %s %s: %w", cmd.Op, cmd.Group, c.notLeader())
		case errors.Is(err, raft.ErrRaftShutdown):
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("controller: raft apply %s %s: %w", cmd.Op, cmd.Group, err)
	}
	if err, ok := f.Response().(error); ok {
		return nil, err
	}
	return f.Response(), nil
}

// leaderLoop starts serving heartbeats when this controller becomes raft
// leader and stops when it is not.
func (c *Controller) leaderLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case leader := <-c.raft.LeaderCh():
			if leader {
				c.startServing()
			} else {
				c.stopServing()
			}
		}
	}
}

func (c *Controller) stopServing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.term != 0 {
		c.log.Info("controller: no longer the raft leader", "term", c.term)
	}
	c.term, c.groups = 0, nil
}

func (c *Controller) startServing() {
	term := c.raft.CurrentTerm()
	c.mu.Lock()
	same := c.term != 0 && c.term == term
	c.mu.Unlock()
	if same {
		return
	}
	c.stopServing()
	// Apply everything earlier leaders committed before answering from the
	// FSM.
	for {
		if c.closed() || c.raft.State() != raft.Leader || c.raft.CurrentTerm() != term {
			return
		}
		err := c.raft.Barrier(applyTimeout).Error()
		if err == nil {
			break
		}
		c.log.Warn("controller: raft barrier failed", "term", term, "err", err)
		select {
		case <-c.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	if c.raft.State() != raft.Leader || c.raft.CurrentTerm() != term {
		return
	}
	now := time.Now()
	groups := map[string]*groupLive{}
	for _, name := range c.fsm.groupNames() {
		groups[name] = &groupLive{known: now, members: map[int64]*liveness{}}
	}
	n := len(groups)
	c.mu.Lock()
	c.term, c.since, c.groups = term, now, groups
	c.mu.Unlock()
	c.log.Info("controller: raft leader, serving heartbeats", "term", term, "groups", n)
}

// checker elects leaders for the groups whose leader went silent.
func (c *Controller) checker() {
	defer c.wg.Done()
	t := time.NewTicker(max(c.cfg.ElectionTimeout/10, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if term, err := c.serving(); err == nil {
			for _, name := range c.fsm.groupNames() {
				if c.closed() {
					return
				}
				c.maybeElect(term, name)
			}
		}
		c.checks.Add(1)
	}
}

// maybeElect elects a leader for the group when it needs one and can have
// one.
func (c *Controller) maybeElect(term uint64, group string) {
	c.mu.Lock()
	if c.term != term {
		c.mu.Unlock()
		return
	}
	g, ok := c.fsm.group(group)
	if !ok {
		c.mu.Unlock()
		return
	}
	gl := c.groups[group]
	if gl == nil {
		gl = &groupLive{known: time.Now(), members: map[int64]*liveness{}}
		c.groups[group] = gl
	}
	if gl.electing != 0 {
		c.mu.Unlock()
		return
	}
	now := time.Now()
	leader, why := c.pick(g, gl, now)
	if leader < 0 {
		if why != "" && now.Sub(gl.lastWarn) >= warnEvery {
			gl.lastWarn = now
			c.log.Warn("controller: cannot elect a leader", "group", group, "epoch", g.Epoch, "leader", g.Leader, "reason", why)
		}
		c.mu.Unlock()
		return
	}
	gl.electing = g.Epoch + 1
	c.mu.Unlock()

	res, err := c.apply(command{Op: opElect, Group: group, Epoch: g.Epoch + 1, Leader: leader})

	c.mu.Lock()
	gl.electing = 0
	c.mu.Unlock()
	switch r, _ := res.(electResult); {
	case err != nil:
		c.log.Warn("controller: election failed", "group", group, "epoch", g.Epoch+1, "leader", leader, "err", err)
	case !r.Applied:
		c.log.Info("controller: stale election dropped", "group", group, "epoch", g.Epoch+1, "leader", leader, "current_epoch", r.Epoch)
	default:
		c.log.Warn("controller: elected group leader", "group", group, "epoch", r.Epoch, "leader", leader, "previous", g.Leader)
	}
}

// pick chooses the group's next leader, -1 when it needs none or cannot
// have one (then why says why, when worth logging). c.mu is held.
func (c *Controller) pick(g groupState, gl *groupLive, now time.Time) (int64, string) {
	et := c.cfg.ElectionTimeout
	ids := g.memberIDs()
	alive := func(id int64) bool {
		lv := gl.members[id]
		return lv != nil && now.Sub(lv.seen) <= et
	}
	best := func(cands []int64) int64 { // most log: (last epoch, log end), then lowest id (cands ascending)
		b := int64(-1)
		for _, id := range cands {
			x := gl.members[id]
			if b < 0 {
				b = id
				continue
			}
			y := gl.members[b]
			if x.lastEpoch > y.lastEpoch || x.lastEpoch == y.lastEpoch && x.logEnd > y.logEnd {
				b = id
			}
		}
		return b
	}

	if g.Leader < 0 { // a new group
		if _, ok := g.Members[0]; ok && alive(0) {
			return 0, ""
		}
		if now.Sub(gl.known) < et {
			return -1, ""
		}
		var cands []int64
		for _, id := range ids {
			if alive(id) {
				cands = append(cands, id)
			}
		}
		if len(cands) == 0 {
			return -1, "no member of the new group is alive"
		}
		return best(cands), ""
	}

	seen := c.since
	if lv := gl.members[g.Leader]; lv != nil && lv.seen.After(seen) {
		seen = lv.seen
	}
	silent := now.Sub(seen)
	if silent <= et {
		return -1, ""
	}
	// The leader may have acknowledged sends until LeaseTimeout after its
	// last answered heartbeat: the last one this controller answered, or
	// one the previous raft leader answered until its own raft lease ran
	// out. A member heard after that reports a final log end.
	fence := seen
	if f := c.since.Add(c.raftLease); f.After(fence) {
		fence = f
	}
	fence = fence.Add(c.cfg.LeaseTimeout)
	var cands []int64
	for _, id := range ids {
		if lv := gl.members[id]; id != g.Leader && lv != nil && lv.seen.After(fence) {
			cands = append(cands, id)
		}
	}
	f, n := len(g.Members)-1, g.MinInSync
	need := 1
	if n >= 2 {
		// A send acknowledged by n copies is on n-1 of the f followers:
		// any f-n+2 of them include one.
		need = max(1, f-n+2)
	}
	if len(cands) < need {
		return -1, fmt.Sprintf("leader %d silent for %s; %d of the %d other members reported since its lease ran out, %d needed (min in-sync %d)",
			g.Leader, silent.Round(time.Millisecond), len(cands), f, need, n)
	}
	return best(cands), ""
}

// Groups returns every group's replicated state, with liveness as this
// controller sees it when it is the raft leader.
func (c *Controller) Groups() []GroupStatus {
	names := c.fsm.groupNames()
	c.mu.Lock()
	defer c.mu.Unlock()
	serving := c.term != 0 && c.raft.State() == raft.Leader && c.term == c.raft.CurrentTerm()
	now := time.Now()
	out := make([]GroupStatus, 0, len(names))
	for _, name := range names {
		g, ok := c.fsm.group(name)
		if !ok {
			continue
		}
		gs := GroupStatus{Group: name, Cluster: g.Cluster, Epoch: g.Epoch, Leader: g.Leader, MinInSync: g.MinInSync}
		var gl *groupLive
		if serving {
			gl = c.groups[name]
		}
		for _, id := range g.memberIDs() {
			m := g.Members[id]
			ms := MemberStatus{ID: id, Addr: m.Addr, HAAddr: m.HAAddr}
			if gl != nil {
				if lv := gl.members[id]; lv != nil {
					ms.LogEnd, ms.Epoch, ms.Leading = lv.logEnd, lv.epoch, lv.leading
					ms.Alive = now.Sub(lv.seen) <= c.cfg.ElectionTimeout
					ms.LastSeenMillis = lv.seen.UnixMilli()
					if id == g.Leader {
						gs.InSync = append([]int64(nil), lv.inSync...)
					}
				}
			}
			gs.Members = append(gs.Members, ms)
		}
		out = append(out, gs)
	}
	return out
}

type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
