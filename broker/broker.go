// Package broker is Strata's broker: the remoting server that serves
// RocketMQ clients on top of broker/store, with consumer offsets, client and
// group registry, long-polling pulls, retries with delay levels, dead-letter
// queues and registration with the name servers.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-mq/strata/acl"
	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/cache"
	"github.com/strata-mq/strata/remoting"
	"github.com/strata-mq/strata/tier"
)

// Config configures a Broker. Zero values mean the documented defaults.
type Config struct {
	// DataDir holds the store and the broker's configuration files.
	DataDir string
	// Listen is the client port's address. Default 127.0.0.1:10911.
	Listen string
	// AdvertiseAddr is the ip:port clients dial, as put in routes and in
	// every message's STOREHOST. Default: Listen, with an unspecified IP
	// replaced by 127.0.0.1.
	AdvertiseAddr string
	// ClusterName and BrokerName identify the broker. Defaults
	// "DefaultCluster" and "broker-a".
	ClusterName, BrokerName string
	// BrokerID is 0 for the leader; followers and tier readers have 1 and
	// up.
	BrokerID int64
	// Role is RoleLeader (the default for broker id 0), RoleFollower (the
	// default for ids 1 and up): a replica of the leader's log, or
	// RoleReader: a tier reader serves the offloaded history of BrokerName
	// from Tier, with no local log; its DataDir holds only scratch files,
	// emptied at start.
	Role Role
	// HAListen is a leader's replication port. Default: Listen's host with
	// the next port (10912).
	HAListen string
	// HAAdvertise is the replication address followers dial. Default:
	// the advertised client host with HAListen's port.
	HAAdvertise string
	// Replication is ReplicationAsync (the default) or ReplicationSync:
	// a send is acknowledged once MinInSyncReplicas copies hold it, and
	// refused at once while fewer copies are in sync.
	Replication string
	// MinInSyncReplicas is how many copies, the leader's included, a send
	// needs under sync replication. Default 1 (async), 2 (sync).
	MinInSyncReplicas int
	// ReplicaMaxLag is how long a follower may go without catching up with
	// the leader and still count as in sync. Default 10s.
	ReplicaMaxLag time.Duration
	// ReplicateFrom, on a follower, is the leader's replication address;
	// empty: learnt from the name servers.
	ReplicateFrom string
	// Failover lets the name servers' controller choose the group's
	// leader among its replicas (see Run): Role and the leader's broker id
	// 0 are then only where things start.
	Failover bool
	// ReaderRefresh is how often a tier reader, or a follower with a cold
	// tier, reloads the manifest to see newly offloaded segments.
	// Default 2s.
	ReaderRefresh time.Duration
	// ACL, if set, authenticates every request (RocketMQ's signed
	// requests) and authorizes it by account; nil: authentication off, and
	// topic and configuration changes only from loopback.
	ACL *acl.ACL
	// Credentials sign the broker's own requests to name servers and its
	// leader, for when they check ACLs.
	Credentials Credentials
	// NameServers are the name servers to register with ("ip:port").
	NameServers []string
	// AutoCreateTopics creates a topic on its first send (and keeps the
	// TBW102 template topic so clients can find a route for new topics).
	AutoCreateTopics bool
	// DefaultTopicQueues is the queue count of auto-created topics. Default 4.
	DefaultTopicQueues int
	// MaxMessageSize bounds a message body (or a batch body). Default 4 MiB.
	MaxMessageSize int
	// Store configures the hot tier; Dir, StoreHost and OnDispatch are set
	// by the broker.
	Store store.Config
	// RegisterInterval is how often the broker re-registers with the name
	// servers. Default 30s.
	RegisterInterval time.Duration
	// ClientTimeout expires clients that sent no heartbeat. Default 120s.
	ClientTimeout time.Duration
	// OffsetFlushInterval is how often consumer offsets are persisted.
	// Default 5s.
	OffsetFlushInterval time.Duration
	// MaxPullHold caps how long a pull is held waiting for messages
	// (clients ask for 20 s and time out at 30 s). Default 25s.
	MaxPullHold time.Duration
	// Limits bound what clients can make the broker hold.
	Limits Limits
	// TLS, if set, makes the client and replication ports TLS-only.
	TLS *tls.Config
	// ClientTLS, if set, is used for the broker's own connections: to the
	// name servers, and a follower's or reader's to its leader.
	ClientTLS *tls.Config
	// Logger receives the broker's logs. Default slog.Default().
	Logger *slog.Logger
	// Metrics, if set, receives the broker's Prometheus metrics.
	Metrics prometheus.Registerer
	// Tier, if its Store is set, offloads sealed segments to object storage
	// and serves the offloaded history.
	Tier TierConfig
	// TransactionTimeout is how long after it was stored a half message
	// with no outcome is first checked with its producer (Java
	// transactionTimeOut). A producer may ask for longer with the message
	// property CHECK_IMMUNITY_TIME_IN_SECONDS. Default 6s.
	TransactionTimeout time.Duration
	// TransactionCheckInterval is how often unresolved half messages are
	// checked (Java transactionCheckInterval, 60 s there). Default 5s.
	TransactionCheckInterval time.Duration
	// TransactionCheckMax is how many checks an unresolved half message
	// gets before it is rolled back (Java transactionCheckMax). Default 15.
	TransactionCheckMax int
}

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		return errors.New("broker: DataDir is empty")
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:10911"
	}
	if c.Role == "" {
		c.Role = RoleLeader
		if c.BrokerID != 0 {
			c.Role = RoleFollower
		}
	}
	switch c.Role {
	case RoleLeader:
		if c.BrokerID != 0 {
			return fmt.Errorf("broker: a leader has broker id 0, not %d", c.BrokerID)
		}
	case RoleFollower:
		if c.BrokerID < 1 {
			return fmt.Errorf("broker: a follower needs a broker id of 1 or more, not %d", c.BrokerID)
		}
	case RoleReader:
		if err := prepareReader(c); err != nil {
			return err
		}
	default:
		return fmt.Errorf("broker: unknown role %q (leader, follower or reader)", c.Role)
	}
	switch c.Replication {
	case "":
		c.Replication = ReplicationAsync
	case ReplicationAsync, ReplicationSync:
	default:
		return fmt.Errorf("broker: replication %q: async or sync", c.Replication)
	}
	if c.MinInSyncReplicas <= 0 {
		c.MinInSyncReplicas = 1
		if c.Replication == ReplicationSync {
			c.MinInSyncReplicas = 2
		}
	}
	if c.Failover {
		switch {
		case c.Role == RoleReader:
			return errors.New("broker: a tier reader takes no part in failover")
		case len(c.NameServers) == 0:
			return errors.New("broker: failover needs name servers (their controller elects leaders)")
		}
	}
	if c.MinInSyncReplicas > 1 && c.Replication != ReplicationSync {
		return fmt.Errorf("broker: --min-insync-replicas %d needs --replication sync", c.MinInSyncReplicas)
	}
	if c.ReaderRefresh <= 0 {
		c.ReaderRefresh = defaultReaderRefresh
	}
	if c.ClusterName == "" {
		c.ClusterName = "DefaultCluster"
	}
	if c.BrokerName == "" {
		c.BrokerName = "broker-a"
	}
	if c.DefaultTopicQueues <= 0 {
		c.DefaultTopicQueues = 4
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = 4 << 20
	}
	if c.RegisterInterval <= 0 {
		c.RegisterInterval = 30 * time.Second
	}
	if c.ClientTimeout <= 0 {
		c.ClientTimeout = 120 * time.Second
	}
	if c.OffsetFlushInterval <= 0 {
		c.OffsetFlushInterval = 5 * time.Second
	}
	if c.MaxPullHold <= 0 {
		c.MaxPullHold = 25 * time.Second
	}
	c.Limits.setDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.TransactionTimeout <= 0 {
		c.TransactionTimeout = 6 * time.Second
	}
	if c.TransactionCheckInterval <= 0 {
		c.TransactionCheckInterval = 5 * time.Second
	}
	if c.TransactionCheckMax <= 0 {
		c.TransactionCheckMax = 15
	}
	return nil
}

// Broker serves RocketMQ clients.
type Broker struct {
	cfg       Config
	log       *slog.Logger
	store     *store.Store
	topics    *TopicManager
	offsets   *OffsetManager
	clients   *ClientRegistry
	locks     *LockManager
	holds     *holdService
	sched     *scheduler
	txn       *txnService
	srv       *remoting.Server
	storeHost netip.AddrPort
	addr      string // advertised ip:port

	mu       sync.Mutex
	closing  bool
	stopping chan struct{}  // closed when Shutdown starts
	inflight sync.WaitGroup // request goroutines
	quit     chan struct{}
	wg       sync.WaitGroup // background loops
	regKick  chan struct{}
	ns       nameServers
	metrics  *metrics

	tier         *tier.Tier   // nil without a cold tier
	cache        *cache.Cache // the tier's block cache
	hotRetention HotRetention
	retKick      chan struct{}
	rebuilding   string // the rebuild marker's path while a rebuild is unfinished

	repl       replication     // broker/ha: a leader's followers or a follower's copy
	fo         failoverState   // with Config.Failover
	vis        visibility      // dispatches waiting for the copies (sync replication)
	members    membersPtr      // this broker name's members, from the name servers
	leaderLink link            // a reader's connection to its leader
	refresh    manifestRefresh // a reader's manifest reloads
}

// New opens the broker's store and configuration. Call Serve or Start to
// accept clients and Shutdown to stop.
func New(ctx context.Context, cfg Config) (*Broker, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, log: cfg.Logger.With("component", "broker", "broker", cfg.BrokerName),
		quit: make(chan struct{}), stopping: make(chan struct{}), regKick: make(chan struct{}, 1), retKick: make(chan struct{}, 1)}
	b.fo.restart = make(chan Restart, 1)
	b.ns.opts, b.leaderLink.opts = b.dialOptions(), b.dialOptions()
	adv := cfg.AdvertiseAddr
	if adv == "" {
		adv = cfg.Listen
	}
	ap, err := advertised(adv)
	if err != nil {
		return nil, err
	}
	b.storeHost, b.addr = ap, ap.String()
	b.holds = newHoldService(b)
	sc := cfg.Store
	sc.Dir = filepath.Join(cfg.DataDir, "store")
	sc.StoreHost = ap
	sc.Logger = cfg.Logger
	if seg := sc.SegmentSize; seg > 0 && int64(cfg.MaxMessageSize)+64<<10 > seg/2 {
		// Small segments (tests, tiny deployments): a message must fit in a
		// segment with room to spare.
		cfg.MaxMessageSize = int(seg / 4)
		b.cfg.MaxMessageSize = cfg.MaxMessageSize
		b.log.Warn("segment size is small: messages are limited to a quarter of it", "segment_size", seg, "max_message_size", cfg.MaxMessageSize)
	}
	if sc.MaxMessageSize == 0 {
		sc.MaxMessageSize = cfg.MaxMessageSize + 64<<10
	}
	sc.OnDispatch = b.onDispatch
	confDir := filepath.Join(cfg.DataDir, "config")
	if b.topics, err = OpenTopicManager(confDir, TopicDefaults{AutoCreate: cfg.AutoCreateTopics, Queues: cfg.DefaultTopicQueues}, b.log); err != nil {
		return nil, err
	}
	if b.offsets, err = OpenOffsetManager(confDir, b.log); err != nil {
		return nil, err
	}
	b.clients = NewClientRegistry()
	b.locks = NewLockManager(0)
	if cfg.Tier.Store != nil {
		if err := b.setupTier(ctx, &sc); err != nil {
			b.closeTier()
			return nil, err
		}
	}
	if b.store, err = store.Open(ctx, sc); err != nil {
		b.closeTier()
		return nil, err
	}
	b.sched = newScheduler(b)
	b.txn = newTxnService(b, confDir)
	if err := b.txn.load(ctx); err != nil {
		b.store.Close()
		b.closeTier()
		return nil, err
	}
	b.metrics = newMetrics(b, cfg.Metrics)
	return b, nil
}

// advertised resolves an ip:port to advertise; an unspecified IP becomes
// 127.0.0.1 (standalone and tests) — set AdvertiseAddr on real hosts.
func advertised(addr string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("broker: address %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(host, port))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("broker: advertised address %q must be ip:port: %w", addr, err)
	}
	return ap, nil
}

// Addr returns the advertised client address.
func (b *Broker) Addr() string { return b.addr }

// Store returns the broker's hot tier (tests, tools).
func (b *Broker) Store() *store.Store { return b.store }

// Start listens on Config.Listen and serves in the background. It returns
// the bound address (useful with port 0).
func (b *Broker) Start(ctx context.Context) (net.Addr, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", b.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker: listen: %w", err)
	}
	if b.cfg.TLS != nil {
		ln = tls.NewListener(ln, b.cfg.TLS)
	}
	if b.cfg.AdvertiseAddr == "" {
		// With port 0 the advertised port is the bound one.
		if ap, err := advertised(ln.Addr().String()); err == nil {
			b.storeHost, b.addr = ap, ap.String()
			b.store.SetStoreHost(ap)
		}
	}
	if err := b.startReplication(ctx); err != nil {
		ln.Close()
		return nil, err
	}
	if b.cfg.Failover {
		if err := b.startFailover(); err != nil {
			ln.Close()
			return nil, err
		}
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := b.Serve(ln); err != nil && !errors.Is(err, remoting.ErrServerClosed) {
			b.log.Error("serve", "err", err)
		}
	}()
	return ln.Addr(), nil
}

// Serve accepts clients on ln until Shutdown.
func (b *Broker) Serve(ln net.Listener) error {
	b.mu.Lock()
	if b.srv == nil {
		b.srv = remoting.NewServer(remoting.ServerOptions{
			Conn: remoting.ConnOptions{Handler: b, Logger: b.log, IdleTimeout: 3 * b.cfg.ClientTimeout / 2,
				WriteTimeout: b.cfg.Limits.WriteTimeout, MaxReplyBacklog: b.cfg.Limits.MaxReplyBacklog},
			MaxConns:      b.cfg.Limits.MaxConns,
			MaxConnsPerIP: b.cfg.Limits.MaxConnsPerIP,
			Logger:        b.log,
			OnConnClose:   b.connClosed,
		})
		b.wg.Add(1)
		go b.backgroundLoop()
		if !b.follower() { // a follower's copy carries what these write
			b.fo.startOnce.Do(b.startWriters)
		}
		b.startTier()
	}
	srv := b.srv
	b.mu.Unlock()
	b.log.Info("broker serving", "listen", ln.Addr().String(), "advertise", b.addr, "cluster", b.cfg.ClusterName)
	return srv.Serve(ln)
}

// Shutdown stops accepting requests, finishes those in flight, answers
// held pulls, flushes offsets and closes the store.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return nil
	}
	b.closing = true
	close(b.stopping)
	srv := b.srv
	b.mu.Unlock()
	b.unregister(ctx)
	// In-flight requests (sends waiting for fdatasync) finish first.
	done := make(chan struct{})
	go func() { b.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		b.log.Warn("shutdown: in-flight requests did not finish", "err", ctx.Err())
	}
	b.holds.releaseAll()
	var errs []error
	if srv != nil {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	close(b.quit)
	b.stopReplication()
	b.sched.stop()
	b.wg.Wait()
	if err := b.offsets.Flush(); err != nil {
		errs = append(errs, err)
	}
	if err := b.txn.save(); err != nil {
		errs = append(errs, err)
	}
	b.closeTier()
	b.leaderLink.close()
	if err := b.store.Close(); err != nil {
		errs = append(errs, err)
	}
	b.log.Info("broker stopped")
	return errors.Join(errs...)
}

// backgroundLoop persists offsets, expires clients and registers with the
// name servers.
func (b *Broker) backgroundLoop() {
	defer b.wg.Done()
	flush := time.NewTicker(b.cfg.OffsetFlushInterval)
	defer flush.Stop()
	expire := time.NewTicker(10 * time.Second)
	defer expire.Stop()
	reg := time.NewTicker(b.cfg.RegisterInterval)
	defer reg.Stop()
	// Members (tier readers for a leader, the leader for a reader) are
	// looked up more often than registrations, so that a new reader gets
	// traffic within seconds.
	members := time.NewTicker(membersInterval)
	defer members.Stop()
	b.register()
	b.refreshMembers()
	for {
		select {
		case <-b.quit:
			return
		case <-flush.C:
			if err := b.offsets.Flush(); err != nil {
				b.log.Warn("persist consumer offsets", "err", err)
			}
		case now := <-expire.C:
			b.notifyGroups(b.clients.Expire(now, b.cfg.ClientTimeout))
		case <-reg.C:
			b.register()
		case <-b.regKick:
			b.register()
		case <-b.topics.Changed():
			b.register()
		case <-members.C:
			b.refreshMembers()
			if b.follower() {
				b.syncTopicsFromLeader()
				b.syncOffsetsFromLeader()
				if b.repl.leaderHA.Load() == nil && !b.cfg.Failover {
					b.register() // the answer names the leader's replication port
				}
			}
		}
	}
}

// membersInterval is how often a broker asks the name servers for its
// broker name's members.
const membersInterval = 2 * time.Second

// ServeRemoting dispatches one request. Requests that may block (sends wait
// for fdatasync, pulls read the disk) run on their own goroutine so the
// connection keeps reading.
func (b *Broker) ServeRemoting(c *remoting.Conn, req *remoting.Command) {
	b.mu.Lock()
	closing := b.closing
	if !closing {
		b.inflight.Add(1)
	}
	b.mu.Unlock()
	if closing {
		c.Reply(remoting.NewResponse(req, remoting.RespServiceNotAvailable, "broker is shutting down"))
		return
	}
	acct, deny := b.authorize(c, req)
	if deny == nil && !b.admit(c) {
		deny = remoting.NewResponse(req, remoting.RespSystemBusy, fmt.Sprintf(
			"too many requests in flight on this connection (limit %d); retry later", b.cfg.Limits.MaxInflight))
	}
	if deny != nil {
		b.inflight.Done()
		c.Reply(deny)
		return
	}
	h := b.handler(req.Code)
	if h == nil {
		b.inflight.Done()
		b.release(c)
		c.Reply(remoting.NewResponse(req, remoting.RespRequestCodeNotSupported,
			fmt.Sprintf("request code %d (%s) is not supported", req.Code, remoting.RequestCodeName(req.Code))))
		return
	}
	serve := func() {
		defer b.inflight.Done()
		defer b.release(c)
		start := time.Now()
		if deny := b.authorizeRecord(c, req, acct); deny != nil {
			c.Reply(deny)
			return
		}
		if resp := h(c, req); resp != nil {
			if acct != nil && resp.Code == remoting.RespSuccess && adminChange(req.Code) {
				b.cfg.ACL.AdminChange(req, c.RemoteIP(), acct, "topic", req.Ext("topic"))
			}
			c.Reply(resp)
			b.metrics.observe(req.Code, start)
		}
	}
	if b.servedInOrder(req.Code) {
		serve()
		return
	}
	go serve()
}

// servedInOrder tells the requests served on the connection's own
// goroutine, in the order they arrived, rather than each on a goroutine of
// its own. An offset commit is one: clients send them one-way
// (rocketmq-client-go persists its offsets that way on shutdown, then
// unregisters), so served concurrently a commit could land after the
// client's next request, after a later commit of the same queue (moving
// the offset back), or after the client was already gone and its
// successor had read the old offset. A leader's commit is a map update; a
// reader forwards it to the leader, which may block, so a reader does not.
func (b *Broker) servedInOrder(code int16) bool {
	return code == remoting.ReqUpdateConsumerOffset && !b.reader() && !b.follower()
}

type handlerFunc func(c *remoting.Conn, req *remoting.Command) *remoting.Command

func (b *Broker) handler(code int16) handlerFunc {
	if code == remoting.ReqGetReplicationStatus {
		return b.handleReplicationStatus
	}
	if b.reader() || b.follower() {
		if h, ok := b.readerHandler(code); ok {
			return h
		}
	}
	switch code {
	case remoting.ReqSendMessage, remoting.ReqSendMessageV2, remoting.ReqSendBatchMessage:
		return b.handleSend
	case remoting.ReqPullMessage:
		return b.handlePull
	case remoting.ReqQueryConsumerOffset:
		return b.handleQueryOffset
	case remoting.ReqUpdateConsumerOffset:
		return b.handleUpdateOffset
	case remoting.ReqSearchOffsetByTimestamp:
		return b.handleSearchOffset
	case remoting.ReqGetMaxOffset:
		return b.handleMaxOffset
	case remoting.ReqGetMinOffset:
		return b.handleMinOffset
	case remoting.ReqGetEarliestMsgStoreTime:
		return b.handleEarliestTime
	case remoting.ReqHeartBeat:
		return b.handleHeartbeat
	case remoting.ReqUnregisterClient:
		return b.handleUnregisterClient
	case remoting.ReqGetConsumerListByGroup:
		return b.handleConsumerList
	case remoting.ReqConsumerSendMsgBack:
		return b.handleSendBack
	case remoting.ReqEndTransaction:
		return b.handleEndTransaction
	case remoting.ReqLockBatchMQ:
		return b.handleLock
	case remoting.ReqUnlockBatchMQ:
		return b.handleUnlock
	case remoting.ReqQueryMessage:
		return b.handleQueryMessage
	case remoting.ReqViewMessageByID:
		return b.handleViewMessage
	case remoting.ReqUpdateAndCreateTopic:
		return b.handleCreateTopic
	case remoting.ReqDeleteTopicInBroker:
		return b.handleDeleteTopic
	case remoting.ReqGetAllTopicConfig:
		return b.handleAllTopicConfig
	case remoting.ReqGetAllConsumerOffset:
		return b.handleAllConsumerOffsets
	case remoting.ReqUpdateBrokerConfig, remoting.ReqPutKVConfig:
		return b.handleConfigChange
	case remoting.ReqGetTierStatus:
		return b.handleTierStatus
	}
	return nil
}

// adminAllowed reports whether c may change topics or configuration
// without an ACL: only from this machine (the class of CVE-2023-33246, where
// an unauthenticated config update ran a command). With an ACL, authorize
// has let only admin accounts through.
func (b *Broker) adminAllowed(c *remoting.Conn) bool {
	return b.cfg.ACL != nil || c.RemoteIP().IsLoopback()
}

func (b *Broker) connClosed(c *remoting.Conn) {
	b.txn.forgetConn(c)
	b.notifyGroups(b.clients.Unregister(c))
}

// notifyGroups tells every member of each group that membership changed
// (NOTIFY_CONSUMER_IDS_CHANGED), so clients rebalance at once.
func (b *Broker) notifyGroups(groups []string) {
	for _, g := range groups {
		for _, h := range b.clients.Conns(g) {
			c, ok := h.(*remoting.Conn)
			if !ok {
				continue
			}
			req := remoting.NewRequest(remoting.ReqNotifyConsumerIDsChanged, map[string]string{"consumerGroup": g}, nil)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := c.InvokeOneway(ctx, req); err != nil {
				b.log.Debug("notify consumer ids changed", "group", g, "err", err)
			}
			cancel()
		}
	}
}
