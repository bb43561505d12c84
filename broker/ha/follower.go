package ha

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/strata-mq/strata/broker/store"
)

// FollowerLog is a follower's commit log as replication writes it
// (store.Store).
type FollowerLog interface {
	LogStart() int64
	LogEnd() int64
	SegmentSize() int64
	AppendRaw(ctx context.Context, off int64, data []byte) (store.Pending, int64, error)
}

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	// BrokerName and BrokerID identify the follower (id 1 and up).
	BrokerName string
	BrokerID   int64
	// Log is the follower's commit log.
	Log FollowerLog
	// Leader returns the current leader's replication address, or "" while
	// none is known (the broker learns it from the name servers).
	Leader func() string
	// MaxFrame bounds the log bytes of one frame. Default 16 MiB.
	MaxFrame int
	// Heartbeat is the leader's heartbeat interval; a leader silent for 5
	// of them is given up. Default 1s.
	Heartbeat time.Duration
	// History returns the follower's epochs and SetHistory stores the
	// leader's, durably, before any of its bytes are appended. Both nil:
	// no epochs (classic leader/follower).
	History    func() History
	SetHistory func(History) error
	// MinEpoch, if set, returns the newest epoch the broker knows of; a
	// leader of an older one is stale and refused.
	MinEpoch func() int64
	// Truncate is called when the leader finds that the follower's log
	// diverged from its own at off; Run returns after it. The broker
	// reopens its store truncated there and starts a new Follower.
	Truncate func(off int64)
	// Behind, if set, is called when the leader refuses the follower
	// because its log ends before the leader's first offset (the leader
	// deleted what the follower lacks). If it returns true, Run returns:
	// the broker rebuilds its log from the cold tier, which holds that
	// range, and starts a new Follower. Otherwise Run keeps retrying.
	Behind func() bool
	// TLS, if set, makes the follower dial its leader with it.
	TLS *tls.Config
	// Sign, if set, returns the access key and signature of a hello's
	// fields, for a leader that checks ACLs.
	Sign func(fields map[string]string) (accessKey, signature string)
	// Logger receives the follower's logs. Default slog.Default().
	Logger *slog.Logger
}

// errTruncate ends Run: the log must be truncated first.
var errTruncate = errors.New("ha: the log diverged from the leader's; truncating")

// errRebuild ends Run: the log is rebuilt from the cold tier first.
var errRebuild = errors.New("ha: the leader no longer holds what the log lacks; rebuilding from the cold tier")

// Follower copies its leader's log.
type Follower struct {
	cfg FollowerConfig
	log *slog.Logger

	mu     sync.Mutex
	st     ReplicaStatus
	caught time.Time // last time the log held everything the leader had reported
}

// ReplicaStatus is a follower's view of its replication.
type ReplicaStatus struct {
	Leader    string `json:"leader"`
	Connected bool   `json:"connected"`
	LogEnd    int64  `json:"logEnd"`
	LeaderEnd int64  `json:"leaderEnd"`
	LagBytes  int64  `json:"lagBytes"`
	LagMillis int64  `json:"lagMillis"`
	LastError string `json:"lastError,omitempty"`
}

// NewFollower returns a Follower; Run copies the log.
func NewFollower(cfg FollowerConfig) *Follower {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = 16 << 20
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Follower{cfg: cfg, log: cfg.Logger.With("component", "ha-follower")}
}

// Run copies the leader's log until ctx ends, reconnecting with backoff.
func (f *Follower) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		addr := f.cfg.Leader()
		var err error
		if addr == "" {
			err = errors.New("no leader known")
		} else {
			t0 := time.Now()
			err = f.session(ctx, addr)
			if time.Since(t0) > 10*time.Second {
				backoff = 100 * time.Millisecond // it was a working session
			}
		}
		if ctx.Err() != nil || errors.Is(err, errTruncate) || errors.Is(err, errRebuild) {
			return
		}
		f.mu.Lock()
		f.st.Connected = false
		f.st.LastError = err.Error()
		f.mu.Unlock()
		f.log.Warn("replication interrupted", "leader", addr, "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// pendingAck is an appended frame whose durability the acker waits for.
type pendingAck struct {
	p   store.Pending
	end int64
}

// session is one connection to the leader.
func (f *Follower) session(ctx context.Context, addr string) error {
	var c net.Conn
	var err error
	if f.cfg.TLS != nil {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 3 * time.Second}, Config: f.cfg.TLS}
		c, err = d.DialContext(ctx, "tcp", addr)
	} else {
		d := net.Dialer{Timeout: 3 * time.Second}
		c, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	lg := f.cfg.Log
	end := lg.LogEnd()
	var epoch int64
	if f.cfg.History != nil {
		epoch = f.cfg.History().At(end)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	h := hello{name: f.cfg.BrokerName, id: f.cfg.BrokerID, segmentSize: lg.SegmentSize(), end: end, epoch: epoch, empty: lg.LogStart() >= end}
	if f.cfg.Sign != nil {
		h.accessKey, h.signature = f.cfg.Sign(h.fields())
	}
	if _, err := c.Write(h.encode()); err != nil {
		return fmt.Errorf("ha: send hello: %w", err)
	}
	a, err := readAnswer(c)
	if err != nil {
		return err
	}
	if f.cfg.MinEpoch != nil && a.status != statusNotLeader {
		if min := f.cfg.MinEpoch(); a.epoch < min {
			return fmt.Errorf("ha: %s leads epoch %d, older than the group's %d: a stale leader", addr, a.epoch, min)
		}
	}
	switch {
	case a.status == statusTruncate && f.cfg.Truncate != nil:
		f.log.Warn("the log diverged from the leader's; truncating", "leader", addr, "log_end", end, "epoch", epoch,
			"truncate_to", a.start, "leader_epoch", a.epoch)
		f.cfg.Truncate(a.start)
		return errTruncate
	case a.status == statusBehind && f.cfg.Behind != nil && f.cfg.Behind():
		f.log.Warn("the leader no longer holds what this log lacks; rebuilding from the cold tier", "leader", addr, "log_end", end, "why", a.msg)
		return errRebuild
	case a.status != statusOK:
		return fmt.Errorf("ha: the leader refused this follower: %s", a.msg)
	}
	if f.cfg.SetHistory != nil && len(a.history) > 0 {
		if err := f.cfg.SetHistory(a.history); err != nil {
			return err
		}
	}
	if a.start != end {
		return fmt.Errorf("%w: the leader starts the stream at %d, the log ends at %d", ErrProtocol, a.start, end)
	}
	c.SetDeadline(time.Time{})
	f.mu.Lock()
	f.st.Leader, f.st.Connected, f.st.LeaderEnd, f.st.LastError = addr, true, a.end, ""
	f.mu.Unlock()
	f.log.Info("replicating", "leader", addr, "from", end, "leader_end", a.end)

	acks := make(chan pendingAck, 256)
	ackErr := make(chan error, 1)
	go func() { ackErr <- f.ack(ctx, c, acks) }()
	err = f.receive(ctx, c, end, acks)
	close(acks)
	c.Close()
	if aerr := <-ackErr; err == nil {
		err = aerr
	}
	return err
}

// receive reads frames and appends them until the connection fails.
func (f *Follower) receive(ctx context.Context, c net.Conn, off int64, acks chan<- pendingAck) error {
	r := bufio.NewReaderSize(c, 256<<10)
	var hdr [frameLen]byte
	buf := make([]byte, 0, 1<<20)
	for {
		c.SetReadDeadline(time.Now().Add(5 * f.cfg.Heartbeat))
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return fmt.Errorf("ha: read from the leader: %w", err)
		}
		h, err := parseFrameHeader(hdr[:], f.cfg.MaxFrame)
		if err != nil {
			return err
		}
		if h.n > 0 && h.off != off {
			return fmt.Errorf("%w: frame for log offset %d, expected %d", ErrProtocol, h.off, off)
		}
		if cap(buf) < h.n {
			buf = make([]byte, h.n)
		}
		data := buf[:h.n]
		if _, err := io.ReadFull(r, data); err != nil {
			return fmt.Errorf("ha: read from the leader: %w", err)
		}
		var p store.Pending
		if h.n > 0 {
			var aerr error
			p, off, aerr = f.cfg.Log.AppendRaw(ctx, h.off, data)
			if aerr != nil {
				// The records before the bad one were taken; ack them and
				// start over from the new end.
				acks <- pendingAck{p, off}
				return fmt.Errorf("ha: append the leader's log at %d: %w", h.off, aerr)
			}
		}
		f.mu.Lock()
		f.st.LeaderEnd = h.leaderEnd
		f.mu.Unlock()
		acks <- pendingAck{p, off}
	}
}

// ack sends each appended frame's log end once it is durable.
func (f *Follower) ack(ctx context.Context, c net.Conn, acks <-chan pendingAck) error {
	w := bufio.NewWriterSize(c, 4096)
	var b [ackLen]byte
	var failed error
	for a := range acks {
		if failed != nil {
			continue // drain until receive stops
		}
		if err := a.p.Wait(ctx); err != nil {
			failed = fmt.Errorf("ha: local log: %w", err)
			c.Close()
			continue
		}
		binary.BigEndian.PutUint64(b[:], uint64(a.end))
		w.Write(b[:])
		f.mu.Lock()
		f.st.LogEnd = a.end
		if a.end >= f.st.LeaderEnd {
			f.caught = time.Now()
		}
		f.mu.Unlock()
		if len(acks) == 0 {
			c.SetWriteDeadline(time.Now().Add(5 * f.cfg.Heartbeat))
			if err := w.Flush(); err != nil {
				failed = fmt.Errorf("ha: ack to the leader: %w", err)
				c.Close()
			}
		}
	}
	return failed
}

// Status returns the follower's view of its replication.
func (f *Follower) Status() ReplicaStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	if !st.Connected {
		st.LogEnd = f.cfg.Log.LogEnd()
	}
	st.LagBytes = max(0, st.LeaderEnd-st.LogEnd)
	if st.LagBytes > 0 && !f.caught.IsZero() {
		st.LagMillis = time.Since(f.caught).Milliseconds()
	}
	return st
}
