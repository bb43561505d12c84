package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-mq/strata/broker/ha"
	"github.com/strata-mq/strata/namesrv"
	"github.com/strata-mq/strata/remoting"
)

// Failover: with Config.Failover the name servers' controller decides which
// replica of the group leads. Every replica heartbeats to the controller
// (ReqControllerHeartbeat) and does what the answer says:
//
//   - named leader of a newer epoch: it stops copying, records the epoch as
//     starting at its log end, serves followers and takes writes, but only
//     while its lease (renewed by every answered heartbeat) runs: a leader
//     cut off from the controller stops acknowledging sends before the
//     controller elects another;
//   - told another replica leads while it leads itself: it restarts as a
//     follower (Restarts), since its unacknowledged tail may have to go;
//   - a follower copies the named leader, and when that leader finds its
//     log diverged it restarts with the store truncated there.
//
// A replica's route id is 0 while it leads; a follower registers under its
// own broker id, or under the leader's when its own is 0, so the ids of a
// group stay distinct for RocketMQ clients, which send to id 0.

// heartbeatInterval is how often a replica reports to the controller.
const heartbeatInterval = 500 * time.Millisecond

// Restart asks the broker's owner to shut the broker down and start it
// again with the same configuration, the store truncated at TruncateTo when
// Truncate is set, or rebuilt from the cold tier when Rebuild is (Run does
// it).
type Restart struct {
	Reason     string
	Truncate   bool
	TruncateTo int64
	// Rebuild: the local log is removed and the new broker starts it
	// where the cold tier's manifest ends (a follower whose leader no
	// longer holds what it lacks; the cold tier holds all of its log).
	Rebuild bool
}

// failoverState is a replica's view of its group under a controller.
type failoverState struct {
	epoch      atomic.Int64 // newest epoch known
	leaderID   atomic.Int64 // the group's leader (identity), -1 unknown
	leading    atomic.Bool
	leaseUntil atomic.Int64 // unix nanoseconds until which it may acknowledge sends
	history    atomic.Pointer[ha.History]
	restart    chan Restart

	// Owned by the heartbeat loop.
	followAddr   string
	followCancel context.CancelFunc
	followDone   chan struct{}
	startOnce    sync.Once
}

func (b *Broker) historyPath() string { return filepath.Join(b.cfg.DataDir, "store", "epochs.json") }

// Restarts delivers the broker's requests to be restarted (failover only).
func (b *Broker) Restarts() <-chan Restart { return b.fo.restart }

func (b *Broker) requestRestart(r Restart) {
	select {
	case b.fo.restart <- r:
		b.log.Warn("restart requested", "reason", r.Reason, "truncate", r.Truncate, "truncate_to", r.TruncateTo, "rebuild", r.Rebuild)
	default:
	}
}

// leads reports whether the broker acts as its group's leader.
func (b *Broker) leads() bool {
	if b.cfg.Failover {
		return b.fo.leading.Load()
	}
	return b.cfg.Role == RoleLeader
}

// writable returns nil when the broker may take writes, else why not.
func (b *Broker) writable() error {
	if !b.cfg.Failover {
		return nil
	}
	if !b.fo.leading.Load() {
		return fmt.Errorf("broker %s id %d is not its group's leader (epoch %d); routes will name the leader", b.cfg.BrokerName, b.cfg.BrokerID, b.fo.epoch.Load())
	}
	if time.Now().UnixNano() >= b.fo.leaseUntil.Load() {
		return fmt.Errorf("broker %s lost contact with the failover controller: sends are refused until it is confirmed as leader", b.cfg.BrokerName)
	}
	return nil
}

// routeID is the broker id the broker registers under.
func (b *Broker) routeID() int64 {
	if !b.cfg.Failover {
		return b.cfg.BrokerID
	}
	if b.fo.leading.Load() {
		return 0
	}
	if b.cfg.BrokerID != 0 {
		return b.cfg.BrokerID
	}
	if l := b.fo.leaderID.Load(); l > 0 {
		return l // the leader's own id is free while it registers as 0
	}
	return -1 // not registered until the group has a leader
}

// startFailover loads the epochs and starts the heartbeat loop.
func (b *Broker) startFailover() error {
	h, err := ha.LoadHistory(b.historyPath())
	if err != nil {
		return err
	}
	b.fo.history.Store(&h)
	b.fo.epoch.Store(h.Last())
	b.fo.leaderID.Store(-1)
	b.wg.Add(1)
	go b.heartbeatLoop()
	return nil
}

func (b *Broker) heartbeatLoop() {
	defer b.wg.Done()
	defer b.stopFollowing()
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		b.heartbeat()
		select {
		case <-b.quit:
			return
		case <-t.C:
		}
	}
}

// heartbeat reports to every name server and applies the controller's
// answer.
func (b *Broker) heartbeat() {
	end := b.store.LogEnd()
	hb := namesrv.ControllerHeartbeat{Cluster: b.cfg.ClusterName, Group: b.cfg.BrokerName, ID: b.cfg.BrokerID, Addr: b.addr,
		HAAddr: b.repl.addr, LogEnd: end, LastEpoch: b.fo.history.Load().At(end), Epoch: b.fo.epoch.Load(),
		Leading: b.fo.leading.Load(), MinInSync: 1}
	if b.cfg.Replication == ReplicationSync {
		hb.MinInSync = b.cfg.MinInSyncReplicas
	}
	body, err := json.Marshal(hb)
	if err != nil {
		return
	}
	sent := time.Now()
	type answer struct {
		a   namesrv.ControllerAssignment
		err error
	}
	answers := make(chan answer, len(b.cfg.NameServers))
	for _, addr := range b.cfg.NameServers {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), heartbeatInterval)
			defer cancel()
			c, err := b.ns.conn(ctx, addr)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			resp, err := c.Invoke(ctx, remoting.NewRequest(remoting.ReqControllerHeartbeat, nil, body))
			if err == nil && resp.Code != remoting.RespSuccess {
				err = fmt.Errorf("%s: code %d: %s", addr, resp.Code, resp.Remark)
			}
			var a namesrv.ControllerAssignment
			if err == nil {
				err = json.Unmarshal(resp.Body, &a)
			}
			answers <- answer{a, err}
		}()
	}
	var errs []error
	for range b.cfg.NameServers {
		r := <-answers
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		b.apply(r.a, sent)
		return
	}
	b.log.Debug("no controller answered the heartbeat", "err", errors.Join(errs...))
}

// apply acts on the controller's assignment.
func (b *Broker) apply(a namesrv.ControllerAssignment, sent time.Time) {
	if a.Epoch < b.fo.epoch.Load() {
		return // an answer from a controller that lags
	}
	b.fo.epoch.Store(a.Epoch)
	b.fo.leaderID.Store(a.Leader)
	switch {
	case a.Leader == b.cfg.BrokerID:
		if !b.fo.leading.Load() {
			if _, ahead := b.coldTierAhead(); ahead {
				// The cold tier is the log's settled prefix. A replica
				// elected without all of it (async replication, no
				// in-sync follower left) continues after it rather than
				// writing other bytes at offsets it already lists.
				b.requestRestart(Restart{Reason: fmt.Sprintf("elected for epoch %d with a log that ends before the cold tier's", a.Epoch), Rebuild: true})
				return
			}
			if err := b.promote(a.Epoch); err != nil {
				b.log.Error("cannot take the leadership", "epoch", a.Epoch, "err", err)
				b.requestRestart(Restart{Reason: "promotion failed: " + err.Error()})
				return
			}
		}
		b.fo.leaseUntil.Store(sent.Add(time.Duration(a.LeaseMillis) * time.Millisecond).UnixNano())
	case b.fo.leading.Load():
		// Deposed: another replica leads a newer epoch. What this one
		// wrote since may not be on the new leader; start over as its
		// follower, which truncates what diverged.
		b.fo.leaseUntil.Store(0)
		b.requestRestart(Restart{Reason: fmt.Sprintf("replica %d leads epoch %d", a.Leader, a.Epoch)})
	case a.Leader >= 0 && a.LeaderHA != "":
		b.follow(a.LeaderHA)
	}
}

// promote makes the replica the leader of epoch.
func (b *Broker) promote(epoch int64) error {
	b.stopFollowing()
	end := b.store.LogEnd()
	h := (*b.fo.history.Load()).Lead(epoch, end)
	if err := ha.SaveHistory(b.historyPath(), h); err != nil {
		return err
	}
	b.fo.history.Store(&h)
	b.repl.leader.Lead(epoch, h)
	b.fo.leading.Store(true)
	if b.tier != nil {
		b.tier.Lead(epoch) // continues where the old leader stopped
	}
	b.log.Warn("leading the group", "epoch", epoch, "log_end", end)
	b.fo.startOnce.Do(b.startWriters)
	b.kickRegister()
	return nil
}

// follow copies the leader at haAddr, restarting the copy when the leader
// changes.
func (b *Broker) follow(haAddr string) {
	if b.fo.followAddr == haAddr && b.fo.followDone != nil {
		select {
		case <-b.fo.followDone:
		default:
			return // copying it
		}
	}
	b.stopFollowing()
	b.fo.followAddr = haAddr
	b.repl.leaderHA.Store(&haAddr)
	fc := b.followerConfig(func() string { return haAddr })
	fc.History = func() ha.History { return *b.fo.history.Load() }
	fc.SetHistory = func(h ha.History) error {
		if err := ha.SaveHistory(b.historyPath(), h); err != nil {
			return err
		}
		b.fo.history.Store(&h)
		return nil
	}
	fc.MinEpoch = b.fo.epoch.Load
	fc.Truncate = func(off int64) {
		b.requestRestart(Restart{Reason: "the log diverged from the leader's", Truncate: true, TruncateTo: off})
	}
	f := ha.NewFollower(fc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.fo.followCancel, b.fo.followDone = cancel, done
	b.repl.follower.Store(f)
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	b.kickRegister()
}

func (b *Broker) stopFollowing() {
	if b.fo.followCancel != nil {
		b.fo.followCancel()
		<-b.fo.followDone
		b.fo.followCancel = nil
	}
}

// startWriters starts what only a leader runs: delayed delivery and
// transaction checks.
func (b *Broker) startWriters() {
	b.sched.start()
	b.wg.Add(1)
	go b.txn.loop()
}

// MetricsRegistry returns the registry the broker's metrics are in (nil
// when Config.Metrics is not a Gatherer).
func (b *Broker) MetricsRegistry() prometheus.Gatherer {
	g, _ := b.cfg.Metrics.(prometheus.Gatherer)
	return g
}

// Run serves with first, a started broker, until ctx ends, and restarts it
// whenever it asks to (failover: a deposed leader, a follower whose log
// must be truncated): the broker is shut down and a new one started with
// cfg, its metrics in a new registry, its store truncated as asked.
// started is called with each new broker once it serves. Run shuts the
// last broker down before it returns.
func Run(ctx context.Context, cfg Config, started func(*Broker), first *Broker) error {
	b := first
	for {
		var r Restart
		restart := false
		select {
		case <-ctx.Done():
		case r = <-b.Restarts():
			restart = true
		}
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := b.Shutdown(sctx)
		cancel()
		if !restart || ctx.Err() != nil {
			return err
		}
		cfg.Logger.Warn("broker restarting", "reason", r.Reason)
		cfg.Store.Truncate, cfg.Store.TruncateTo = r.Truncate, r.TruncateTo
		if r.Rebuild {
			// behindLeader checked that the cold tier holds every byte
			// of this log.
			dir := filepath.Join(cfg.DataDir, "store")
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("broker: remove the log to rebuild it from the cold tier: %w", err)
			}
			cfg.Logger.Warn("local log removed; rebuilding from the cold tier", "dir", dir)
		}
		cfg.Metrics = prometheus.NewRegistry()
		if b, err = New(ctx, cfg); err != nil {
			return err
		}
		if _, err := b.Start(ctx); err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			b.Shutdown(sctx)
			cancel()
			return err
		}
		if started != nil {
			started(b)
		}
	}
}
