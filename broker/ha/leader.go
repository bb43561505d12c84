package ha

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"time"
)

// Log is the leader's commit log as replication reads it (store.Store).
type Log interface {
	LogEnd() int64
	LogStart() int64
	SegmentSize() int64
	ReadLog(off int64, buf []byte) (n int, next int64, err error)
	WaitLogEnd(ctx context.Context, past int64) (int64, error)
}

// ErrNotEnoughReplicas: fewer copies than MinInSync are in sync, so a send
// cannot be acknowledged durably enough; it was not stored (Check) or it was
// stored on fewer copies than asked (WaitReplicated).
var ErrNotEnoughReplicas = errors.New("ha: not enough in-sync replicas")

// ErrReplicationTimeout: the in-sync followers did not ack in time.
var ErrReplicationTimeout = errors.New("ha: followers did not confirm in time")

// LeaderConfig configures a Leader.
type LeaderConfig struct {
	// BrokerName is the broker group's name; followers of another name are
	// refused.
	BrokerName string
	// Log is the leader's commit log.
	Log Log
	// MinInSync is how many copies, the leader's included, must hold a
	// message before WaitReplicated returns. 0 or 1: the leader's alone.
	MinInSync int
	// MaxLag is how long a follower may go without catching up with the
	// leader's log end and still count as in sync. Default 10s.
	MaxLag time.Duration
	// ChunkSize bounds the log bytes of one frame; it must hold the largest
	// record. Default 1 MiB.
	ChunkSize int
	// Heartbeat is how often an idle stream sends an empty frame. Default 1s.
	Heartbeat time.Duration
	// Standby starts the Leader refusing followers until Lead is called
	// (a replica under a failover controller). Without it the Leader leads
	// epoch 0 with no history: classic leader/follower without failover.
	Standby bool
	// Authenticate, if set, checks a follower's access key and the
	// signature of its hello (over the fields given); a follower that
	// does not pass is refused with "access denied".
	Authenticate func(accessKey, signature string, fields map[string]string) error
	// Logger receives the leader's logs. Default slog.Default().
	Logger *slog.Logger
}

// Leader serves followers on the replication port and tracks how far each
// has copied the log.
type Leader struct {
	cfg LeaderConfig
	log *slog.Logger

	mu      sync.Mutex
	peers   map[int64]*peer
	seen    map[int64]bool // broker ids that ever connected as followers
	leading bool
	epoch   int64
	history History
	// confirmed is the log end that MinInSync copies hold: what consumers
	// may read under sync replication (Kafka's high watermark). It only
	// moves forward.
	confirmed int64
	changed   chan struct{} // closed when an ack or a membership change arrives
	conns     map[net.Conn]struct{}
	closed    bool

	wg sync.WaitGroup
}

// peer is one connected follower; its fields are guarded by Leader.mu.
type peer struct {
	id          int64
	addr        string
	conn        net.Conn
	acked       int64     // durable log end the follower reported
	caughtUp    time.Time // last time it had everything the leader had then
	connectedAt time.Time
	samples     []sample // frames sent and not yet acked past
}

// sample is the leader's log end when a frame was read, and when.
type sample struct {
	end int64
	at  time.Time
}

const maxSamples = 4096

// NewLeader returns a Leader; call Serve to accept followers.
func NewLeader(cfg LeaderConfig) *Leader {
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = 10 * time.Second
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 1 << 20
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// A classic leader serves the log it has; a replica that may be
	// promoted learns what is confirmed from its followers' acks (a new
	// leader's tail, copied from the old one, may be on it alone).
	confirmed := cfg.Log.LogEnd()
	if cfg.Standby {
		confirmed = 0
	}
	return &Leader{cfg: cfg, log: cfg.Logger.With("component", "ha-leader"), leading: !cfg.Standby, confirmed: confirmed,
		peers: map[int64]*peer{}, seen: map[int64]bool{}, conns: map[net.Conn]struct{}{}, changed: make(chan struct{})}
}

// Lead makes the Leader serve followers as the leader of epoch, whose
// epochs are history (ending with epoch). Followers of an older epoch are
// disconnected; they reconnect and are told where their logs diverged.
func (l *Leader) Lead(epoch int64, history History) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leading && l.epoch == epoch {
		return
	}
	l.leading, l.epoch, l.history = true, epoch, slices.Clone(history)
	l.dropPeersLocked()
}

// StepDown stops leading: followers are disconnected and refused until
// Lead.
func (l *Leader) StepDown() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leading = false
	l.dropPeersLocked()
}

func (l *Leader) dropPeersLocked() {
	for _, p := range l.peers {
		p.conn.Close()
	}
	l.broadcastLocked()
}

// Epoch returns the epoch the Leader leads, and whether it leads.
func (l *Leader) Epoch() (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch, l.leading
}

// Serve accepts followers on ln until ctx ends or Close; it closes ln.
func (l *Leader) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Temporary errors (EMFILE): back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("accept", "err", err)
			select {
			case <-time.After(delay):
				continue
			case <-ctx.Done():
				return nil
			}
		}
		delay = 0
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return nil
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			l.serveConn(ctx, c)
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		}()
	}
}

// Close disconnects every follower and waits for their goroutines. The
// caller stops Serve through its context or listener.
func (l *Leader) Close() {
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// serveConn runs one follower's session: hello, then the stream one way
// and acks the other.
func (l *Leader) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	h, err := readHello(c)
	if err != nil {
		l.log.Warn("replication hello", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	a := l.admit(h)
	if _, err := c.Write(a.encode()); err != nil || a.status != statusOK {
		if a.status != statusOK {
			l.log.Warn("follower refused", "remote", c.RemoteAddr().String(), "id", h.id, "reason", a.msg)
		}
		return
	}
	c.SetDeadline(time.Time{})
	p := &peer{id: h.id, addr: c.RemoteAddr().String(), conn: c, acked: h.end, connectedAt: time.Now()}
	l.mu.Lock()
	if old := l.peers[h.id]; old != nil {
		old.conn.Close() // a follower that reconnected: its old session ends
	}
	l.peers[h.id] = p
	l.seen[h.id] = true
	l.broadcastLocked()
	l.mu.Unlock()
	l.log.Info("follower connected", "id", h.id, "remote", p.addr, "from", h.end, "leader_end", a.end)

	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.readAcks(p); cancel() }()
	serr := l.send(sctx, p, a.start)
	cancel()
	c.Close()
	rerr := <-done
	l.mu.Lock()
	if l.peers[h.id] == p {
		delete(l.peers, h.id)
	}
	l.broadcastLocked()
	l.mu.Unlock()
	l.log.Info("follower disconnected", "id", h.id, "remote", p.addr, "send_err", serr, "ack_err", rerr)
}

// admit checks a hello against the leader's log and epochs.
func (l *Leader) admit(h hello) answer {
	lg := l.cfg.Log
	end, start := lg.LogEnd(), lg.LogStart()
	l.mu.Lock()
	leading, epoch, history := l.leading, l.epoch, slices.Clone(l.history)
	l.mu.Unlock()
	a := answer{start: h.end, end: end, epoch: epoch, history: history}
	switch {
	case l.cfg.Authenticate != nil && l.cfg.Authenticate(h.accessKey, h.signature, h.fields()) != nil:
		a = answer{status: statusDenied, msg: "access denied"}
	case !leading:
		a.status, a.msg = statusNotLeader, "this broker is not the group's leader"
	case h.name != l.cfg.BrokerName:
		a.status, a.msg = statusWrongName, fmt.Sprintf("this leader is broker %q, not %q", l.cfg.BrokerName, h.name)
	case h.segmentSize != lg.SegmentSize():
		a.status, a.msg = statusSegmentSize, fmt.Sprintf("segment size %d differs from the leader's %d (--segment-size must match)", h.segmentSize, lg.SegmentSize())
	case h.epoch > epoch:
		a.status, a.msg = statusStale, fmt.Sprintf("the follower's log has epoch %d, newer than this leader's %d", h.epoch, epoch)
	case len(history) > 0 && !h.empty && h.end > history.EndOf(h.epoch, end):
		// Kafka's divergence rule: the follower's last epoch ended, here,
		// at EndOf; bytes past it were never the leader's.
		a.status, a.start = statusTruncate, history.EndOf(h.epoch, end)
		a.msg = fmt.Sprintf("the follower's log of epoch %d runs to %d; this leader's ends at %d: truncate", h.epoch, h.end, a.start)
	case h.end > end:
		a.status, a.msg = statusAhead, fmt.Sprintf("the follower's log ends at %d, past the leader's end %d: its tail diverged and must be truncated", h.end, end)
	case h.end < start:
		a.status, a.msg = statusBehind, fmt.Sprintf("the follower's log ends at %d, before the leader's first offset %d", h.end, start)
	}
	return a
}

// send streams the log to p from off until ctx ends or a write fails.
func (l *Leader) send(ctx context.Context, p *peer, off int64) error {
	lg := l.cfg.Log
	buf := make([]byte, l.cfg.ChunkSize)
	var hdr [frameLen]byte
	for {
		n, next, err := lg.ReadLog(off, buf)
		if err != nil {
			return err
		}
		end := lg.LogEnd()
		if n == 0 {
			wctx, cancel := context.WithTimeout(ctx, l.cfg.Heartbeat)
			_, err := lg.WaitLogEnd(wctx, off)
			cancel()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == nil {
				continue // new bytes
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
		}
		l.mu.Lock()
		if len(p.samples) == maxSamples {
			// A follower far behind: forget the older half (its catch-up
			// time then counts from later, never earlier).
			p.samples = append(p.samples[:0], p.samples[maxSamples/2:]...)
		}
		p.samples = append(p.samples, sample{end: end, at: time.Now()})
		l.mu.Unlock()
		frameHeader{off: off, leaderEnd: end, n: n}.put(hdr[:])
		p.conn.SetWriteDeadline(time.Now().Add(5 * l.cfg.Heartbeat))
		bufs := net.Buffers{hdr[:], buf[:n]}
		if _, err := bufs.WriteTo(p.conn); err != nil {
			return fmt.Errorf("ha: write to follower %d: %w", p.id, err)
		}
		if n > 0 {
			off = next
		}
	}
}

// readAcks reads p's acks until the connection fails.
func (l *Leader) readAcks(p *peer) error {
	var b [ackLen]byte
	for {
		p.conn.SetReadDeadline(time.Now().Add(5 * l.cfg.Heartbeat))
		if _, err := io.ReadFull(p.conn, b[:]); err != nil {
			return err
		}
		acked := int64(binary.BigEndian.Uint64(b[:]))
		l.mu.Lock()
		if acked < p.acked {
			l.mu.Unlock()
			return fmt.Errorf("%w: follower %d acked %d after %d", ErrProtocol, p.id, acked, p.acked)
		}
		p.acked = acked
		i := 0
		for i < len(p.samples) && p.samples[i].end <= acked {
			p.caughtUp = p.samples[i].at
			i++
		}
		p.samples = append(p.samples[:0], p.samples[i:]...)
		l.confirmLocked()
		l.broadcastLocked()
		l.mu.Unlock()
	}
}

func (l *Leader) broadcastLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// inSyncLocked reports whether p counts as in sync at now.
func (l *Leader) inSyncLocked(p *peer, now time.Time) bool {
	return !p.caughtUp.IsZero() && now.Sub(p.caughtUp) <= l.cfg.MaxLag
}

// need is how many followers must hold a message.
func (l *Leader) need() int { return l.cfg.MinInSync - 1 }

// Check returns ErrNotEnoughReplicas when fewer than MinInSync copies are
// in sync, so that a send fails fast instead of waiting.
func (l *Leader) Check() error {
	need := l.need()
	if need <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.inSyncCountLocked(time.Now()); n < need {
		return fmt.Errorf("%w: %d of %d copies in sync", ErrNotEnoughReplicas, n+1, l.cfg.MinInSync)
	}
	return nil
}

func (l *Leader) inSyncCountLocked(now time.Time) int {
	n := 0
	for _, p := range l.peers {
		if l.inSyncLocked(p, now) {
			n++
		}
	}
	return n
}

// WaitReplicated returns once MinInSync-1 followers hold the log up to end
// durably. It fails with ErrNotEnoughReplicas as soon as too few followers
// are in sync to get there, and with ErrReplicationTimeout when ctx ends.
func (l *Leader) WaitReplicated(ctx context.Context, end int64) error {
	need := l.need()
	if need <= 0 {
		return nil
	}
	var timer *time.Timer
	for {
		now := time.Now()
		l.mu.Lock()
		have, syncing := 0, 0
		for _, p := range l.peers {
			if p.acked >= end {
				have++
			} else if l.inSyncLocked(p, now) {
				syncing++
			}
		}
		ch := l.changed
		l.mu.Unlock()
		if have >= need {
			return nil
		}
		if have+syncing < need {
			return fmt.Errorf("%w: %d of %d copies hold log offset %d and too few others are in sync", ErrNotEnoughReplicas, have+1, l.cfg.MinInSync, end)
		}
		// Wake on acks and disconnections; look again now and then, as an
		// in-sync follower that went silent drops out after MaxLag.
		if timer == nil {
			timer = time.NewTimer(l.cfg.MaxLag / 4)
			defer timer.Stop()
		} else {
			timer.Reset(l.cfg.MaxLag / 4)
		}
		select {
		case <-ch:
		case <-timer.C:
		case <-ctx.Done():
			return fmt.Errorf("%w: log offset %d: %w", ErrReplicationTimeout, end, ctx.Err())
		}
	}
}

// FollowerStatus is a follower as the leader sees it.
type FollowerStatus struct {
	ID        int64     `json:"brokerId"`
	Addr      string    `json:"addr"`
	Acked     int64     `json:"ackedOffset"`
	LagBytes  int64     `json:"lagBytes"`
	LagMillis int64     `json:"lagMillis"`
	InSync    bool      `json:"inSync"`
	Since     time.Time `json:"connectedSince"`
}

// Followers returns the connected followers by broker id.
func (l *Leader) Followers() []FollowerStatus {
	end := l.cfg.Log.LogEnd()
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]FollowerStatus, 0, len(l.peers))
	for _, p := range l.peers {
		st := FollowerStatus{ID: p.id, Addr: p.addr, Acked: p.acked, LagBytes: max(0, end-p.acked),
			InSync: l.inSyncLocked(p, now), Since: p.connectedAt}
		if st.LagBytes > 0 {
			if p.caughtUp.IsZero() {
				st.LagMillis = now.Sub(p.connectedAt).Milliseconds()
			} else {
				st.LagMillis = now.Sub(p.caughtUp).Milliseconds()
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// InSync returns how many copies, the leader's included, are in sync.
func (l *Leader) InSync() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inSyncCountLocked(time.Now()) + 1
}

// IsFollower reports whether broker id ever connected as a follower since
// the leader started (the broker tells followers from tier readers so).
func (l *Leader) IsFollower(id int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[id]
}

// Holding returns the id of an in-sync follower that holds the log up to
// end, picking among them by pick; 0 if none does.
func (l *Leader) Holding(end int64, pick int) int64 {
	now := time.Now()
	l.mu.Lock()
	var ids []int64
	for id, p := range l.peers {
		if p.acked >= end && l.inSyncLocked(p, now) {
			ids = append(ids, id)
		}
	}
	l.mu.Unlock()
	if len(ids) == 0 {
		return 0
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids[pick%len(ids)]
}

// confirmLocked moves confirmed to the end MinInSync-1 followers hold.
func (l *Leader) confirmLocked() {
	need := l.need()
	if need <= 0 {
		return
	}
	acked := make([]int64, 0, len(l.peers))
	for _, p := range l.peers {
		acked = append(acked, p.acked)
	}
	if len(acked) < need {
		return
	}
	slices.Sort(acked)
	l.confirmed = max(l.confirmed, acked[len(acked)-need])
}

// Confirmed returns the log end that MinInSync copies hold (the whole
// log without sync replication): consumers read up to it, so that a
// failover never takes back a message someone consumed.
func (l *Leader) Confirmed() int64 {
	if l.need() <= 0 {
		return l.cfg.Log.LogEnd()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.confirmed
}

// Settled returns the log end that no failover can take back, so that the
// cold tier offloads only below it: under sync replication what MinInSync
// copies hold (Confirmed); otherwise what every in-sync follower holds
// (Kafka's high watermark), the whole log while none is in sync.
func (l *Leader) Settled() int64 {
	if l.need() > 0 {
		return l.Confirmed()
	}
	end := l.cfg.Log.LogEnd()
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.peers {
		if l.inSyncLocked(p, now) {
			end = min(end, p.acked)
		}
	}
	return end
}

// WaitConfirmed waits until Confirmed passes past and returns it, or
// ctx's error.
func (l *Leader) WaitConfirmed(ctx context.Context, past int64) (int64, error) {
	for {
		l.mu.Lock()
		c, ch := l.confirmed, l.changed
		l.mu.Unlock()
		if c > past {
			return c, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return c, ctx.Err()
		}
	}
}
