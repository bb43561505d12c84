package broker

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/strata-mq/strata/broker/ha"
	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
)

// RoleFollower is a replica of its leader's commit log (broker id 1 and
// up): it copies the log over the replication port, serves pulls from its
// copy, refuses writes and sends offset requests to the leader.
const RoleFollower Role = "follower"

// Replication modes.
const (
	// ReplicationAsync acknowledges a send once the leader holds it;
	// followers copy it soon after.
	ReplicationAsync = "async"
	// ReplicationSync acknowledges a send once MinInSyncReplicas copies,
	// the leader's included, hold it durably.
	ReplicationSync = "sync"
)

// replication is the broker's side of broker/ha.
type replication struct {
	leader   *ha.Leader                  // a leader's follower sessions
	follower atomic.Pointer[ha.Follower] // a follower's copy of its leader
	ln       net.Listener                // a leader's replication port
	addr     string                      // the replication address a leader advertises
	// leaderHA is a follower's leader's replication address, from its
	// configuration or the name servers' answer to its registration.
	leaderHA atomic.Pointer[string]
	cancel   context.CancelFunc
}

// role is what the broker does now (under failover, as the controller
// says).
func (b *Broker) role() Role {
	switch {
	case !b.cfg.Failover:
		return b.cfg.Role
	case b.leads():
		return RoleLeader
	}
	return RoleFollower
}

// follower reports whether the broker is a replica.
func (b *Broker) follower() bool {
	if b.cfg.Failover {
		return !b.fo.leading.Load()
	}
	return b.cfg.Role == RoleFollower
}

// haListenAddr is the replication address: Config.HAListen, or the client
// address's host with the next port (10911 → 10912; port 0 stays 0).
func haListenAddr(cfg *Config) (string, error) {
	if cfg.HAListen != "" {
		return cfg.HAListen, nil
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("broker: listen address %q: %w", cfg.Listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", fmt.Errorf("broker: listen port %q: %w", port, err)
	}
	if p != 0 {
		p++
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

// startReplication opens the leader's replication port or starts the
// follower's copy. It runs from Start, once.
func (b *Broker) startReplication(ctx context.Context) error {
	switch {
	case b.reader():
		return nil
	case b.follower() && !b.cfg.Failover:
		b.startFollower()
		return nil
	}
	addr, err := haListenAddr(&b.cfg)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil && b.cfg.HAListen == "" && errors.Is(err, syscall.EADDRINUSE) {
		// The default (the client port + 1) is taken: any port will do,
		// since followers learn it from the name servers.
		host, _, _ := net.SplitHostPort(addr)
		b.log.Warn("the default replication port is taken; using another (set --ha-listen to choose)", "wanted", addr, "err", err)
		ln, err = lc.Listen(ctx, "tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return fmt.Errorf("broker: replication listen: %w", err)
	}
	adv, err := advertised(ln.Addr().String())
	if err != nil {
		ln.Close()
		return err
	}
	if host := b.storeHost.Addr(); host.IsValid() {
		// Followers reach the replication port on the advertised host.
		adv = netip.AddrPortFrom(host, adv.Port())
	}
	if b.cfg.TLS != nil {
		ln = tls.NewListener(ln, b.cfg.TLS)
	}
	b.repl.ln, b.repl.addr = ln, adv.String()
	if b.cfg.HAAdvertise != "" {
		b.repl.addr = b.cfg.HAAdvertise
	}
	b.repl.leader = ha.NewLeader(ha.LeaderConfig{
		BrokerName: b.cfg.BrokerName, Log: b.store, MinInSync: b.cfg.MinInSyncReplicas,
		MaxLag: b.cfg.ReplicaMaxLag, ChunkSize: b.cfg.MaxMessageSize + 256<<10, Logger: b.cfg.Logger,
		Standby:      b.cfg.Failover, // the controller says when to lead
		Authenticate: b.authenticateFollower(),
	})
	sctx, cancel := context.WithCancel(context.Background())
	b.repl.cancel = cancel
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := b.repl.leader.Serve(sctx, ln); err != nil {
			b.log.Error("replication port", "err", err)
		}
	}()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.releaseLoop(sctx)
	}()
	b.log.Info("replication port open", "listen", ln.Addr().String(), "advertise", b.repl.addr,
		"replication", b.cfg.Replication, "min_insync_replicas", b.cfg.MinInSyncReplicas)
	return nil
}

func (b *Broker) startFollower() {
	if b.cfg.ReplicateFrom != "" {
		from := b.cfg.ReplicateFrom
		b.repl.leaderHA.Store(&from)
	}
	f := ha.NewFollower(b.followerConfig(func() string {
		if p := b.repl.leaderHA.Load(); p != nil {
			return *p
		}
		return ""
	}))
	b.repl.follower.Store(f)
	ctx, cancel := context.WithCancel(context.Background())
	b.repl.cancel = cancel
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f.Run(ctx)
	}()
}

// followerConfig is the configuration of this broker's copy of the leader
// at leader(), in either mode (failover adds its epochs).
func (b *Broker) followerConfig(leader func() string) ha.FollowerConfig {
	return ha.FollowerConfig{
		BrokerName: b.cfg.BrokerName, BrokerID: b.cfg.BrokerID, Log: b.store,
		MaxFrame: b.cfg.MaxMessageSize + 1<<20, Logger: b.cfg.Logger, TLS: b.cfg.ClientTLS, Sign: b.signHello(),
		Leader: leader, Behind: b.behindLeader,
	}
}

// stopReplication ends the follower sessions or the copy (Shutdown).
func (b *Broker) stopReplication() {
	if b.repl.cancel != nil {
		b.repl.cancel()
	}
	if b.repl.leader != nil {
		b.repl.leader.Close()
	}
}

// learnLeader records the leader's replication address a name server gave
// in answer to a follower's registration.
func (b *Broker) learnLeader(haAddr string) {
	if !b.follower() || b.cfg.Failover || haAddr == "" || b.cfg.ReplicateFrom != "" {
		return
	}
	if old := b.repl.leaderHA.Load(); old == nil || *old != haAddr {
		b.log.Info("leader's replication address", "addr", haAddr)
		b.repl.leaderHA.Store(&haAddr)
	}
}

// syncReplication reports whether sends wait for followers.
func (b *Broker) syncReplication() bool {
	return b.repl.leader != nil && b.leads() && b.cfg.Replication == ReplicationSync && b.cfg.MinInSyncReplicas > 1
}

// errNotStored marks an error that left the messages unstored.
type errNotStored struct{ err error }

func (e errNotStored) Error() string { return e.err.Error() }
func (e errNotStored) Unwrap() error { return e.err }

// appendReplicated stores msgs and, under sync replication, waits until
// enough copies hold them. With too few copies in sync it stores nothing
// and fails at once with an errNotStored.
func (b *Broker) appendReplicated(ctx context.Context, msgs []remoting.MessageExt) error {
	if err := b.writable(); err != nil {
		return errNotStored{err}
	}
	if b.syncReplication() {
		if err := b.repl.leader.Check(); err != nil {
			return errNotStored{err}
		}
	}
	if err := b.store.Append(ctx, msgs); err != nil || !b.syncReplication() {
		return err
	}
	return b.repl.leader.WaitReplicated(ctx, store.RecordEnd(&msgs[len(msgs)-1]))
}

// syncTopicsFromLeader copies the leader's topic table, so a follower
// serves and registers the same topics.
func (b *Broker) syncTopicsFromLeader() {
	var body struct {
		TopicConfigTable map[string]TopicConfig `json:"topicConfigTable"`
	}
	err := b.fromLeader(remoting.ReqGetAllTopicConfig, &body)
	if err == nil {
		err = b.topics.replaceAll(body.TopicConfigTable)
	}
	if err != nil && !errors.Is(err, errNoLeader) {
		b.log.Warn("copy the leader's topics", "err", err)
	}
}

// syncOffsetsFromLeader copies the leader's consumer offsets, so that a
// follower that becomes leader knows where each group was.
func (b *Broker) syncOffsetsFromLeader() {
	var body struct {
		OffsetTable map[string]map[int32]int64 `json:"offsetTable"`
	}
	err := b.fromLeader(remoting.ReqGetAllConsumerOffset, &body)
	if err == nil {
		b.offsets.Load(body.OffsetTable)
	} else if !errors.Is(err, errNoLeader) {
		b.log.Warn("copy the leader's consumer offsets", "err", err)
	}
}

var errNoLeader = errors.New("no leader known")

// fromLeader asks a follower's leader for code's JSON answer.
func (b *Broker) fromLeader(code int16, into any) error {
	addr := b.members.Load().leader
	if !b.follower() || addr == "" {
		return errNoLeader
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := b.leaderLink.invoke(ctx, addr, remoting.NewRequest(code, nil, nil))
	switch {
	case err != nil:
		return fmt.Errorf("leader %s: %w", addr, err)
	case resp.Code != remoting.RespSuccess:
		return fmt.Errorf("leader %s: code %d: %s", addr, resp.Code, resp.Remark)
	}
	if err := json.Unmarshal(resp.Body, into); err != nil {
		return fmt.Errorf("leader %s: %w", addr, err)
	}
	return nil
}

// ReplicationStatus is a broker's part of `strata admin cluster status`.
type ReplicationStatus struct {
	BrokerName  string `json:"brokerName"`
	BrokerID    int64  `json:"brokerId"`
	Role        Role   `json:"role"`
	Addr        string `json:"addr"`
	HAAddr      string `json:"haAddr,omitempty"`
	Replication string `json:"replication,omitempty"`
	MinInSync   int    `json:"minInSyncReplicas,omitempty"`
	InSync      int    `json:"inSyncReplicas,omitempty"`
	// Epoch is the broker group's leadership epoch; 0 until a failover
	// controller assigns epochs.
	Epoch     int64               `json:"epoch"`
	LogStart  int64               `json:"logStart"`
	LogEnd    int64               `json:"logEnd"`
	Followers []ha.FollowerStatus `json:"followers,omitempty"`
	Replica   *ha.ReplicaStatus   `json:"replica,omitempty"`
}

// Replication returns the broker's replication state.
func (b *Broker) Replication() ReplicationStatus {
	st := ReplicationStatus{BrokerName: b.cfg.BrokerName, BrokerID: b.cfg.BrokerID, Role: b.role(), Addr: b.addr, Epoch: b.fo.epoch.Load()}
	if b.store != nil {
		st.LogStart, st.LogEnd = b.store.LogStart(), b.store.LogEnd()
	}
	if l := b.repl.leader; l != nil && b.leads() {
		st.HAAddr, st.Replication, st.MinInSync = b.repl.addr, b.cfg.Replication, b.cfg.MinInSyncReplicas
		st.InSync, st.Followers = l.InSync(), l.Followers()
	}
	if f := b.repl.follower.Load(); f != nil {
		rs := f.Status()
		st.Replica = &rs
	}
	return st
}

func (b *Broker) handleReplicationStatus(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	body, err := json.Marshal(b.Replication())
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	return okResponse(req, nil, body)
}

// isFollower reports whether broker id is one of a leader's followers
// rather than a tier reader.
func (b *Broker) isFollower(id int64) bool {
	return b.repl.leader != nil && b.repl.leader.IsFollower(id)
}

// followerReadBytes is how far behind the log end a pull must read for the
// leader to send the consumer to a follower: such reads come from disk, and
// a follower that holds the data spares the leader's disk and CPU for
// writes (RocketMQ suggests its slave for data that is no longer in
// memory).
const followerReadBytes = 64 << 20

// suggestFollower picks the follower a leader sends a lagging consumer to
// after serving recs of queue, or 0 to keep it.
func (b *Broker) suggestFollower(queue int32, recs [][]byte) int64 {
	if b.repl.leader == nil || len(recs) == 0 {
		return 0
	}
	first := int64(binary.BigEndian.Uint64(recs[0][remoting.OffPhysicalOffset:]))
	lastRec := recs[len(recs)-1]
	last := int64(binary.BigEndian.Uint64(lastRec[remoting.OffPhysicalOffset:]))
	if b.store.LogEnd()-first < followerReadBytes {
		return 0
	}
	// The follower must hold the whole next stretch, not just these.
	id := b.repl.leader.Holding(last+int64(len(lastRec))+followerReadBytes/2, int(queue))
	if id == 0 && b.cfg.Failover {
		id = b.cfg.BrokerID // replica 0 follows under the leader's own id (routeID)
	}
	return id
}

// followerPull adjusts a follower's pull answer: an offset this replica
// does not hold (not copied yet, or older than its log) goes to the leader
// without moving the consumer's offset; a consumer reading history stays.
func (b *Broker) followerPull(req *remoting.Command, h *pullHeader, r store.GetResult) (*remoting.Command, bool) {
	switch r.Status {
	case store.Found, store.NoMatchedMessage:
		return nil, false
	case store.OffsetOverflowOne:
		// Caught up with this copy: new messages arrive at the leader first.
		return b.pullResponse(req, remoting.RespPullNotFound, h.topic, h.offset, r.MinOffset, r.MaxOffset, nil), true
	}
	return b.pullResponse(req, remoting.RespPullRetryImmediately, h.topic, h.offset, r.MinOffset, max(r.MaxOffset, h.offset), nil), true
}

// handleAllConsumerOffsets is GET_ALL_CONSUMER_OFFSET: every group's
// offsets, as Java's ConsumerOffsetSerializeWrapper.
func (b *Broker) handleAllConsumerOffsets(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	body, err := json.Marshal(map[string]any{"offsetTable": b.offsets.Table()})
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	return okResponse(req, nil, body)
}

// Under sync replication consumers read only what enough copies hold (the
// leader's Confirmed end, Kafka's high watermark): a message a consumer
// got is never taken back by a failover. Held pulls are woken when their
// messages become readable, not when the leader stores them.

// visNotice is a dispatch whose pulls wait for the copies: queue reached
// max once the log up to end is confirmed.
type visNotice struct {
	topic string
	queue int32
	max   int64
	end   int64
}

// visibility holds the dispatch notices waiting for confirmation.
type visibility struct {
	mu      sync.Mutex
	pending []visNotice
	// released counts each queue's releases, so that a pull held after
	// it read knows whether it missed one.
	released map[queueKey]uint64
}

// releases returns how often topic/queue's messages were released.
func (v *visibility) releases(topic string, queue int32) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.released[queueKey{topic, queue}]
}

// onDispatch is the store's OnDispatch.
func (b *Broker) onDispatch(topic string, queue int32, max int64) {
	if !b.syncReplication() || b.store == nil {
		b.holds.notify(topic, queue, max)
		return
	}
	b.vis.mu.Lock()
	b.vis.pending = append(b.vis.pending, visNotice{topic, queue, max, b.store.LogEnd()})
	b.vis.mu.Unlock()
}

// releaseLoop wakes the held pulls whose messages became readable.
func (b *Broker) releaseLoop(ctx context.Context) {
	var confirmed int64
	for {
		c, err := b.repl.leader.WaitConfirmed(ctx, confirmed)
		if err != nil {
			return
		}
		confirmed = c
		b.vis.mu.Lock()
		n := 0
		for n < len(b.vis.pending) && b.vis.pending[n].end <= c {
			n++
		}
		ready := slices.Clone(b.vis.pending[:n])
		b.vis.pending = append(b.vis.pending[:0], b.vis.pending[n:]...)
		if b.vis.released == nil {
			b.vis.released = map[queueKey]uint64{}
		}
		for _, v := range ready {
			b.vis.released[queueKey{v.topic, v.queue}]++
		}
		b.vis.mu.Unlock()
		for _, v := range ready {
			b.holds.notify(v.topic, v.queue, v.max)
		}
	}
}

// visibleRecords drops the records a consumer may not read yet (past the
// confirmed end) and returns the queue offset of the first one dropped.
func (b *Broker) visibleRecords(recs [][]byte) ([][]byte, int64, bool) {
	if !b.syncReplication() || len(recs) == 0 {
		return recs, 0, false
	}
	limit := b.repl.leader.Confirmed()
	for i, rec := range recs {
		off := int64(binary.BigEndian.Uint64(rec[remoting.OffPhysicalOffset:]))
		if off+int64(len(rec))+4 > limit { // + the record's CRC trailer
			return recs[:i], int64(binary.BigEndian.Uint64(rec[remoting.OffQueueOffset:])), true
		}
	}
	return recs, 0, false
}
