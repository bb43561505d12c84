package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/namesrv"
	"github.com/strata-mq/strata/remoting"
)

// Role is what a broker process does in its broker group.
type Role string

const (
	// RoleLeader takes writes and keeps the hot tier (broker id 0).
	RoleLeader Role = "leader"
	// RoleReader is a tier reader: no local log, it serves a broker name's
	// offloaded history from the object store (pulls, search by time,
	// query by key) under its own broker id, holds no state that must
	// survive, and sends consumers back to the leader for hot offsets.
	RoleReader Role = "reader"
)

// readerDir is the reader's scratch directory inside DataDir, emptied at
// every start.
const readerDir = "reader"

// defaultReaderRefresh is how often a tier reader reloads the manifest.
const defaultReaderRefresh = 2 * time.Second

// reader reports whether the broker is a tier reader.
func (b *Broker) reader() bool { return b.cfg.Role == RoleReader }

// prepareReader checks a reader's configuration and empties its scratch
// directory, refusing a data directory that holds a leader's log.
func prepareReader(cfg *Config) error {
	if cfg.Tier.Store == nil {
		return errors.New("broker: a tier reader needs a cold tier (--tier)")
	}
	if cfg.BrokerID < 1 {
		return fmt.Errorf("broker: a tier reader needs a broker id of 1 or more (--broker-id), not %d", cfg.BrokerID)
	}
	if store.HasLog(filepath.Join(cfg.DataDir, "store")) {
		return fmt.Errorf("broker: %s holds a broker's log; a tier reader keeps nothing and must not share a leader's data directory", cfg.DataDir)
	}
	dir := filepath.Join(cfg.DataDir, readerDir)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("broker: empty the reader's scratch directory: %w", err)
	}
	cfg.DataDir = dir
	return nil
}

// readerLoop keeps a tier reader's view current: it reloads the manifest
// and publishes its topics (read-only) so that routes list the reader.
func (b *Broker) readerLoop() {
	defer b.wg.Done()
	tick := time.NewTicker(b.cfg.ReaderRefresh)
	defer tick.Stop()
	for {
		b.syncReaderTopics()
		select {
		case <-b.quit:
			return
		case <-tick.C:
			b.refreshManifest(context.Background())
		}
	}
}

// refreshManifest reloads the manifest so that it is at least as new as
// the call, and reports whether that reload succeeded. Concurrent callers
// share a reload that started after they arrived, and reloads start at
// most every 200 ms (a caller waits for its turn), however many pulls ask
// (a pull for an offset the reader does not know yet asks).
func (b *Broker) refreshManifest(ctx context.Context) bool {
	arrived := time.Now()
	r := &b.refresh
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started.After(arrived) {
		return r.ok // a reload that began after this call covers it
	}
	if wait := time.Until(r.started.Add(200 * time.Millisecond)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r.started = time.Now()
	err := b.tier.Reload(ctx)
	r.ok = err == nil
	if err != nil {
		b.log.Warn("reload the cold tier manifest", "err", err)
	}
	return r.ok
}

// manifestRefresh paces a reader's manifest reloads.
type manifestRefresh struct {
	mu      sync.Mutex
	started time.Time // of the last reload
	ok      bool
}

// syncReaderTopics creates, read-only, the topics the manifest knows with
// the queue counts it knows.
func (b *Broker) syncReaderTopics() {
	m, err := b.tier.Manifest()
	if err != nil {
		return
	}
	queues := map[string]int{}
	for _, q := range m.Queues() {
		queues[q.Topic] = max(queues[q.Topic], int(q.QueueID)+1)
	}
	for name, n := range queues {
		if tc, ok := b.topics.Get(name); ok && tc.ReadQueues >= n {
			continue
		}
		tc := TopicConfig{Name: name, ReadQueues: n, WriteQueues: n, Perm: int(remoting.PermRead)}
		if err := b.topics.CreateOrUpdate(tc); err != nil {
			b.log.Warn("publish a topic of the cold tier", "topic", name, "err", err)
		}
	}
}

// readerHandler is a tier reader's handler of code when it differs from a
// leader's: writes are refused, consumer offsets go to the leader.
func (b *Broker) readerHandler(code int16) (handlerFunc, bool) {
	switch code {
	case remoting.ReqSendMessage, remoting.ReqSendMessageV2, remoting.ReqSendBatchMessage,
		remoting.ReqConsumerSendMsgBack, remoting.ReqEndTransaction,
		remoting.ReqUpdateAndCreateTopic, remoting.ReqDeleteTopicInBroker,
		remoting.ReqUpdateBrokerConfig, remoting.ReqPutKVConfig,
		remoting.ReqLockBatchMQ, remoting.ReqUnlockBatchMQ:
		return b.refuseOnReader, true
	case remoting.ReqQueryConsumerOffset, remoting.ReqUpdateConsumerOffset:
		return b.forwardToLeader, true
	}
	return nil, false
}

func (b *Broker) refuseOnReader(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	return errResponse(req, remoting.RespNoPermission, "broker %s id %d is a %s: %s goes to the leader (broker id 0)",
		b.cfg.BrokerName, b.cfg.BrokerID, b.role(), remoting.RequestCodeName(req.Code))
}

// forwardToLeader passes a consumer-offset request to the leader, which
// owns the group's offsets, and relays its answer.
func (b *Broker) forwardToLeader(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	addr := b.members.Load().leader
	if addr == "" {
		return errResponse(req, remoting.RespSystemError, "broker %s has no live leader to keep consumer offsets; retry later", b.cfg.BrokerName)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	fwd := remoting.NewRequest(req.Code, req.ExtFields, req.Body)
	lresp, err := b.leaderLink.invoke(ctx, addr, fwd)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "forward %s to the leader %s: %v", remoting.RequestCodeName(req.Code), addr, err)
	}
	resp := remoting.NewResponse(req, lresp.Code, lresp.Remark)
	resp.ExtFields, resp.Body = lresp.ExtFields, lresp.Body
	return resp
}

// link is one lazily dialled connection, redialled when it closes.
type link struct {
	opts remoting.ConnOptions // the broker's dialOptions
	mu   sync.Mutex
	addr string
	conn *remoting.Conn
}

func (l *link) invoke(ctx context.Context, addr string, req *remoting.Command) (*remoting.Command, error) {
	l.mu.Lock()
	c := l.conn
	if c != nil && l.addr != addr {
		c.Close()
		c = nil
	}
	if c != nil {
		select {
		case <-c.Done():
			c = nil
		default:
		}
	}
	if c == nil {
		var err error
		if c, err = remoting.Dial(ctx, addr, l.opts); err != nil {
			l.mu.Unlock()
			return nil, err
		}
		l.conn, l.addr = c, addr
	}
	l.mu.Unlock()
	return c.Invoke(ctx, req)
}

func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
}

// brokerMembers is what the name servers say of this broker name's
// members: the leader's address and the ids of the others (tier readers).
type brokerMembers struct {
	leader  string
	readers []int64
}

// refreshMembers asks a name server for this broker name's members.
func (b *Broker) refreshMembers() {
	for _, addr := range b.cfg.NameServers {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		ci, err := b.clusterInfo(ctx, addr)
		cancel()
		if err != nil {
			b.log.Debug("cluster info from name server", "namesrv", addr, "err", err)
			continue
		}
		gm := &brokerMembers{}
		if bd, ok := ci.BrokerAddrTable[b.cfg.BrokerName]; ok {
			gm.leader = bd.BrokerAddrs[0]
			for id := range bd.BrokerAddrs {
				if id != 0 && !b.isFollower(id) {
					gm.readers = append(gm.readers, id)
				}
			}
			slices.Sort(gm.readers)
		}
		if old := b.members.Load(); !slices.Equal(old.readers, gm.readers) {
			b.log.Info("broker group members", "leader", gm.leader, "readers", gm.readers)
		}
		b.members.Store(gm)
		return
	}
}

func (b *Broker) clusterInfo(ctx context.Context, addr string) (namesrv.ClusterInfo, error) {
	c, err := b.ns.conn(ctx, addr)
	if err != nil {
		return namesrv.ClusterInfo{}, err
	}
	resp, err := c.Invoke(ctx, remoting.NewRequest(remoting.ReqGetBrokerClusterInfo, nil, nil))
	if err != nil {
		return namesrv.ClusterInfo{}, err
	}
	if resp.Code != remoting.RespSuccess {
		return namesrv.ClusterInfo{}, fmt.Errorf("GET_BROKER_CLUSTER_INFO: code %d: %s", resp.Code, resp.Remark)
	}
	return namesrv.DecodeClusterInfo(resp.Body)
}

// segmentsPerReader is how many consecutive segment objects one tier
// reader serves before the next reader's turn.
const segmentsPerReader = 4

// suggestReader picks the tier reader a cold pull that read segment seq
// (manifest sequence) should continue at: readers take turns by spans of
// segmentsPerReader segments. Every queue's messages are spread over every
// block of a segment, so sending all the queues' consumers of a segment to
// one reader has it fetch and decompress each block once for all of them,
// where spreading them by queue would have every reader fetch everything;
// spans (rather than single segments) keep read-ahead, which runs into the
// next segment, mostly on the node that will serve it. 0 (the leader) when
// no reader is up.
func (b *Broker) suggestReader(seq int64) int64 {
	rs := b.members.Load().readers
	if len(rs) == 0 {
		return 0
	}
	return rs[(max(seq, 1)-1)/segmentsPerReader%int64(len(rs))]
}

// membersPtr holds the latest brokerMembers (never nil).
type membersPtr struct{ atomic.Pointer[brokerMembers] }

func (p *membersPtr) Load() *brokerMembers {
	if m := p.Pointer.Load(); m != nil {
		return m
	}
	return &brokerMembers{}
}

// setSuggest sets a pull response's suggestWhichBrokerId.
func setSuggest(resp *remoting.Command, id int64) {
	if resp != nil && resp.ExtFields != nil {
		resp.ExtFields["suggestWhichBrokerId"] = strconv.FormatInt(id, 10)
	}
}
