package namesrv

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/acl"
	"github.com/strata-mq/strata/remoting"
)

// Defaults of Config.
const (
	// DefaultListen is the name server's address when Config.Listen is empty.
	DefaultListen = ":9876"
	// DefaultScanInterval is how often expired registrations are removed:
	// 10 s, as Java's name server scans.
	DefaultScanInterval = 10 * time.Second
)

const (
	// minIdleTimeout is the least time a connection may stay silent before
	// it is closed: Java name servers close channels idle for 120 s, and the
	// Go client drops links idle that long itself. A broker connection that
	// stays silent longer than BrokerTimeout has expired anyway.
	minIdleTimeout = 120 * time.Second
	// writeTimeout bounds each response write, so a peer that does not read
	// cannot hold its connection's reader forever.
	writeTimeout = 10 * time.Second
)

// ErrServerClosed is returned by Serve after Shutdown (it is
// remoting.ErrServerClosed).
var ErrServerClosed = remoting.ErrServerClosed

// Request codes the name server knows besides those in remoting (Java
// RequestCode). Except GET_NAMESRV_CONFIG they change the name server's
// state, so they are refused to non-loopback peers (see
// configChangeAllowed).
const (
	reqDeleteKVConfig         int16 = 102
	reqWipeWritePermOfBroker  int16 = 205
	reqRegisterTopicInNameSrv int16 = 217
	reqUpdateNamesrvConfig    int16 = 318
	reqGetNamesrvConfig       int16 = 319
	reqAddWritePermOfBroker   int16 = 327
)

var localCodeNames = map[int16]string{
	reqDeleteKVConfig:         "DELETE_KV_CONFIG",
	reqWipeWritePermOfBroker:  "WIPE_WRITE_PERM_OF_BROKER",
	reqRegisterTopicInNameSrv: "REGISTER_TOPIC_IN_NAMESRV",
	reqUpdateNamesrvConfig:    "UPDATE_NAMESRV_CONFIG",
	reqGetNamesrvConfig:       "GET_NAMESRV_CONFIG",
	reqAddWritePermOfBroker:   "ADD_WRITE_PERM_OF_BROKER",
}

func codeName(code int16) string {
	if n, ok := localCodeNames[code]; ok {
		return n
	}
	return remoting.RequestCodeName(code)
}

// adminCodes are the requests that change the name server's configuration
// or routes outside broker registration, plus GET_NAMESRV_CONFIG, which
// discloses it: the CVE-2023-37582 class (UPDATE_NAMESRV_CONFIG rewrote
// the config path and wrote files). Until ACLs exist they are accepted from
// loopback peers only.
var adminCodes = map[int16]bool{
	remoting.ReqPutKVConfig:          true,
	reqDeleteKVConfig:                true,
	reqWipeWritePermOfBroker:         true,
	remoting.ReqDeleteTopicInNameSrv: true,
	reqRegisterTopicInNameSrv:        true,
	reqUpdateNamesrvConfig:           true,
	reqGetNamesrvConfig:              true,
	reqAddWritePermOfBroker:          true,
}

// Config configures a Server. The zero value serves on DefaultListen with
// Java's timings.
type Config struct {
	// Listen is the TCP address Start listens on, "host:port". Empty means
	// DefaultListen (":9876").
	Listen string
	// BrokerTimeout: a broker that has not registered for this long drops
	// out of routes. Zero means DefaultBrokerTimeout (120 s); brokers
	// register every 30 s. Tests use a few hundred milliseconds.
	BrokerTimeout time.Duration
	// ScanInterval is how often dead registrations are removed from memory
	// (and logged). Routes never include dead brokers whatever the
	// interval. Zero means DefaultScanInterval (10 s).
	ScanInterval time.Duration
	// Logger receives registrations and removals (info), expiries (warn),
	// refused requests (warn) and connection events (debug). Nil discards.
	Logger *slog.Logger
	// RouteExtender, if set, adds fields to every route (issue 7); see
	// RouteExtender.
	RouteExtender RouteExtender
	// Failover, if set, is the failover controller the name server embeds:
	// it answers brokers' STRATA_CONTROLLER_HEARTBEAT.
	Failover Failover
	// TLS, if set, makes the port TLS-only.
	TLS *tls.Config
	// MaxConns caps the open connections (default DefaultMaxConns) and
	// MaxConnsPerIP those from one address (DefaultMaxConnsPerIP); a
	// connection past either is closed at once.
	MaxConns, MaxConnsPerIP int
	// ACL, if set, authenticates every request (RocketMQ's signed
	// requests): route and cluster queries need any account, everything
	// else (broker registration, controller heartbeats, configuration) an
	// admin account. Nil: authentication off, and admin requests only from
	// loopback.
	ACL *acl.ACL
}

// Connection limits of a name server (Config).
const (
	DefaultMaxConns      = 10000
	DefaultMaxConnsPerIP = 1000
	// maxReplyBacklog bounds the replies queued for a peer that does not
	// read them (a route or cluster answer is small).
	maxReplyBacklog = 16 << 20
)

// Failover is a failover controller as a name server serves it: it takes a
// replica's heartbeat (JSON) and answers with its group's assignment
// (JSON), or an error (a controller that is not the raft leader names the
// one that is).
type Failover interface {
	HandleHeartbeat(ctx context.Context, body []byte) ([]byte, error)
}

// Server is a name server: a Table behind a remoting server, and a ticker
// that removes dead registrations. Its goroutines are the scanner (started
// by the first Start or Serve), the accept loop Start runs, and one reader
// per connection; Shutdown stops them all and waits for them.
type Server struct {
	cfg   Config
	log   *slog.Logger
	table *Table
	rs    *remoting.Server
	now   func() time.Time // time.Now; tests may replace it before starting

	// afterConnClose, if set (by tests, before starting), runs at the end
	// of every connection's close hook.
	afterConnClose func(*remoting.Conn)

	nextConn atomic.Uint64

	mu        sync.Mutex
	closed    bool
	quit      chan struct{} // closed by Shutdown
	scanDone  chan struct{} // closed when the scanner exits; nil until started
	serveDone chan struct{} // closed when Start's Serve returns; nil without Start
}

// New returns a Server configured by cfg; Start or Serve starts it.
func New(cfg Config) *Server {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.BrokerTimeout <= 0 {
		cfg.BrokerTimeout = DefaultBrokerTimeout
	}
	if cfg.ScanInterval <= 0 {
		cfg.ScanInterval = DefaultScanInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:   cfg,
		log:   log,
		table: NewTable(TableConfig{BrokerTimeout: cfg.BrokerTimeout, RouteExtender: cfg.RouteExtender}),
		now:   time.Now,
		quit:  make(chan struct{}),
	}
	s.rs = remoting.NewServer(remoting.ServerOptions{
		Conn: remoting.ConnOptions{
			Handler:         remoting.HandlerFunc(s.serveRemoting),
			IdleTimeout:     max(cfg.BrokerTimeout, minIdleTimeout),
			WriteTimeout:    writeTimeout,
			MaxReplyBacklog: maxReplyBacklog,
		},
		MaxConns:      cmp.Or(cfg.MaxConns, DefaultMaxConns),
		MaxConnsPerIP: cmp.Or(cfg.MaxConnsPerIP, DefaultMaxConnsPerIP),
		Logger:        log,
		OnConnClose:   s.connClosed,
	})
	return s
}

// Start listens on Config.Listen and serves in a goroutine the Server owns
// until Shutdown. ctx bounds the listen only. It returns the address
// listened on (useful with port 0). Start may succeed once.
func (s *Server) Start(ctx context.Context) (net.Addr, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrServerClosed
	}
	if s.serveDone != nil {
		s.mu.Unlock()
		return nil, errors.New("namesrv: Start called twice")
	}
	done := make(chan struct{})
	s.serveDone = done
	s.mu.Unlock()

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		s.mu.Lock()
		s.serveDone = nil // Start may be tried again
		s.mu.Unlock()
		close(done)
		return nil, fmt.Errorf("namesrv: listen on %s: %w", s.cfg.Listen, err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.log.Info("namesrv: listening", "addr", ln.Addr().String(),
		"broker_timeout", s.cfg.BrokerTimeout, "scan_interval", s.cfg.ScanInterval)
	go func() {
		defer close(done)
		if err := s.Serve(ln); err != nil && !errors.Is(err, ErrServerClosed) {
			s.log.Error("namesrv: serve failed", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return ln.Addr(), nil
}

// Serve accepts connections on ln until Shutdown and returns
// ErrServerClosed then (or the accept error that stopped it); it closes
// ln. It starts the expiry scanner if it is not running.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.startScanner(); err != nil {
		_ = ln.Close()
		return err
	}
	return s.rs.Serve(ln)
}

func (s *Server) startScanner() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrServerClosed
	}
	if s.scanDone == nil {
		s.scanDone = make(chan struct{})
		go s.scanLoop(s.quit, s.scanDone)
	}
	return nil
}

// scanLoop removes dead registrations every ScanInterval until quit closes.
func (s *Server) scanLoop(quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.ScanInterval)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
			for _, b := range s.table.Expire(s.now()) {
				s.log.Warn("namesrv: broker expired: no registration within the broker timeout",
					brokerAttrs(b, "last_update", b.LastUpdate, "broker_timeout", s.cfg.BrokerTimeout)...)
			}
		}
	}
}

// Shutdown stops the server: it closes the listener and every connection
// and stops the scanner, then waits for all of the Server's goroutines, or
// until ctx ends (returning ctx.Err()). It may be called more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
	waits := []chan struct{}{s.scanDone, s.serveDone}
	s.mu.Unlock()

	if err := s.rs.Shutdown(ctx); err != nil {
		return err
	}
	for _, ch := range waits {
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Routes returns topic's route now, as GET_ROUTEINFO_BY_TOPIC would.
func (s *Server) Routes(topic string) (RouteData, bool) {
	return s.table.Route(s.now(), topic)
}

// Snapshot summarises the live registrations, for admin tools and metrics.
func (s *Server) Snapshot() Snapshot {
	return s.table.Snapshot(s.now())
}

type connIDKey struct{}

// connID returns the ConnID of c, assigning one on first use. Only c's
// reader goroutine calls it (handler, close hook), so there is no race.
func (s *Server) connID(c *remoting.Conn) ConnID {
	if id, ok := c.Value(connIDKey{}).(ConnID); ok {
		return id
	}
	id := ConnID(s.nextConn.Add(1))
	c.SetValue(connIDKey{}, id)
	return id
}

// connClosed removes the brokers whose latest registration came over c.
func (s *Server) connClosed(c *remoting.Conn) {
	if id, ok := c.Value(connIDKey{}).(ConnID); ok {
		for _, b := range s.table.ConnClosed(id) {
			s.log.Info("namesrv: broker removed: its connection closed",
				brokerAttrs(b, "remote", c.RemoteAddr().String(), "cause", c.Err())...)
		}
	}
	if s.afterConnClose != nil {
		s.afterConnClose(c)
	}
}

// serveRemoting handles one request on c's reader goroutine. Every handler
// is quick: table work under one mutex and a JSON encoding.
func (s *Server) serveRemoting(c *remoting.Conn, req *remoting.Command) {
	resp := s.handle(c, req)
	if req.IsOneway() {
		return
	}
	if err := c.Reply(resp); err != nil {
		s.log.Debug("namesrv: reply failed", "remote", c.RemoteAddr().String(), "request", codeName(req.Code), "err", err)
	}
}

func (s *Server) handle(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	if a := s.cfg.ACL; a != nil {
		remote := c.RemoteIP()
		acct, err := a.Authenticate(req, remote)
		if err != nil {
			return remoting.NewResponse(req, remoting.RespNoPermission, err.Error())
		}
		if !acct.Admin() && !queryCodes[req.Code] {
			a.Denied(req, remote, acct.AccessKey(), "needs an admin account")
			return remoting.NewResponse(req, remoting.RespNoPermission, acl.ErrDenied.Error())
		}
		resp := s.serve(c, req)
		if adminCodes[req.Code] && resp.Code == remoting.RespSuccess {
			a.AdminChange(req, remote, acct, "topic", req.Ext("topic"))
		}
		return resp
	}
	if adminCodes[req.Code] && !configChangeAllowed(c.RemoteAddr()) {
		s.log.Warn("namesrv: refused admin request from a non-loopback peer",
			"remote", c.RemoteAddr().String(), "request", codeName(req.Code))
		return remoting.NewResponse(req, remoting.RespNoPermission, fmt.Sprintf(
			"%s (%d) is only accepted from loopback addresses without an ACL (--acl-file)", codeName(req.Code), req.Code))
	}
	return s.serve(c, req)
}

// queryCodes are the requests any authenticated account may send: the
// routes and cluster view clients need.
var queryCodes = map[int16]bool{
	remoting.ReqGetRouteInfoByTopic:           true,
	remoting.ReqGetBrokerClusterInfo:          true,
	remoting.ReqGetAllTopicListFromNameServer: true,
}

func (s *Server) serve(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	switch req.Code {
	case remoting.ReqRegisterBroker:
		return s.registerBroker(c, req)
	case remoting.ReqUnregisterBroker:
		return s.unregisterBroker(c, req)
	case remoting.ReqGetRouteInfoByTopic:
		return s.routeInfo(req)
	case remoting.ReqGetBrokerClusterInfo:
		return s.clusterInfo(req)
	case remoting.ReqGetAllTopicListFromNameServer:
		return s.topicList(req)
	case remoting.ReqDeleteTopicInNameSrv:
		return s.deleteTopic(c, req)
	case remoting.ReqControllerHeartbeat:
		return s.controllerHeartbeat(req)
	}
	return remoting.NewResponse(req, remoting.RespRequestCodeNotSupported, fmt.Sprintf(
		"request code %d (%s) is not supported by the Strata name server", req.Code, codeName(req.Code)))
}

func (s *Server) registerBroker(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	reg, err := DecodeRegisterBrokerRequest(req)
	if err != nil {
		s.log.Warn("namesrv: refused registration", "remote", c.RemoteAddr().String(), "err", err)
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	res, fresh, err := s.table.Register(s.now(), reg, s.connID(c))
	if err != nil { // DecodeRegisterBrokerRequest checked already
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	if res.Warning != "" {
		s.log.Warn("namesrv: registration accepted in part", "broker_name", reg.BrokerName, "broker_id", reg.BrokerID,
			"broker_addr", reg.BrokerAddr, "warning", res.Warning, "remote", c.RemoteAddr().String())
	}
	level := slog.LevelDebug
	if fresh {
		level = slog.LevelInfo
	}
	s.log.Log(context.Background(), level, "namesrv: broker registered",
		"cluster", reg.ClusterName, "broker_name", reg.BrokerName, "broker_id", reg.BrokerID,
		"broker_addr", reg.BrokerAddr, "topics", len(reg.Topics), "fresh", fresh,
		"remote", c.RemoteAddr().String())
	return NewRegisterBrokerResponse(req, res)
}

func (s *Server) unregisterBroker(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	id, err := req.ExtInt64(extBrokerID)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	addr, name := req.Ext(extBrokerAddr), req.Ext(extBrokerName)
	if addr == "" || name == "" {
		return remoting.NewResponse(req, remoting.RespSystemError, "brokerAddr and brokerName are required")
	}
	if s.table.Unregister(req.Ext(extClusterName), addr, name, id) {
		s.log.Info("namesrv: broker unregistered", "cluster", req.Ext(extClusterName),
			"broker_name", name, "broker_id", id, "broker_addr", addr, "remote", c.RemoteAddr().String())
	}
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

func (s *Server) routeInfo(req *remoting.Command) *remoting.Command {
	topic := req.Ext(extTopic)
	if topic == "" {
		return remoting.NewResponse(req, remoting.RespSystemError, "header field topic is missing")
	}
	route, ok := s.table.Route(s.now(), topic)
	if !ok {
		return remoting.NewResponse(req, remoting.RespTopicNotExist,
			"No topic route info in name server for the topic: "+topic)
	}
	body, err := json.Marshal(route)
	if err != nil && route.Extra != nil {
		// A faulty extension must not cost standard clients their route.
		// The table's own tier bounds are built from decoded numbers and
		// always encode.
		s.log.Error("namesrv: route extension does not encode; serving the route without it", "topic", topic, "err", err)
		tb, ok := route.Extra[TierBoundsKey]
		route.Extra = nil
		if ok {
			route.Extra = map[string]json.RawMessage{TierBoundsKey: tb}
			body, err = json.Marshal(route)
		}
		if err != nil {
			route.Extra = nil
			body, err = json.Marshal(route)
		}
	}
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "encoding route: "+err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}

func (s *Server) clusterInfo(req *remoting.Command) *remoting.Command {
	body, err := json.Marshal(s.table.ClusterInfo(s.now()))
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "encoding cluster info: "+err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}

func (s *Server) topicList(req *remoting.Command) *remoting.Command {
	body, err := json.Marshal(topicList{TopicList: s.table.Topics(s.now())})
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "encoding topic list: "+err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}

func (s *Server) deleteTopic(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	topic := req.Ext(extTopic)
	if topic == "" {
		return remoting.NewResponse(req, remoting.RespSystemError, "header field topic is missing")
	}
	cluster := req.Ext(extClusterName)
	found := s.table.DeleteTopic(topic, cluster)
	s.log.Info("namesrv: topic deleted", "topic", topic, "cluster", cluster, "found", found,
		"remote", c.RemoteAddr().String())
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

// configChangeAllowed reports whether a peer at remote may send admin
// requests (adminCodes): only loopback peers may, IPv4-mapped IPv6
// loopback included, until ACLs exist. An address it cannot parse is not
// loopback.
func configChangeAllowed(remote net.Addr) bool {
	switch a := remote.(type) {
	case *net.TCPAddr:
		if a == nil {
			return false
		}
		return a.IP.IsLoopback()
	case nil:
		return false
	}
	host, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.Unmap().IsLoopback()
}

func brokerAttrs(b BrokerState, more ...any) []any {
	return append([]any{"cluster", b.ClusterName, "broker_name", b.BrokerName,
		"broker_id", b.BrokerID, "broker_addr", b.BrokerAddr}, more...)
}

// ControllerHeartbeat is the body of STRATA_CONTROLLER_HEARTBEAT: what a
// replica reports (every 500 ms) to every name server's failover controller.
type ControllerHeartbeat struct {
	Cluster string `json:"cluster"`
	Group   string `json:"group"`  // broker name
	ID      int64  `json:"id"`     // replica identity (configured broker id)
	Addr    string `json:"addr"`   // client address ip:port
	HAAddr  string `json:"haAddr"` // replication address ip:port
	LogEnd  int64  `json:"logEnd"` // durable log end
	// LastEpoch is the epoch that wrote the replica's last bytes. Logs are
	// compared by (LastEpoch, LogEnd), as Raft compares (term, index): a
	// longer log of an older epoch (an old leader's tail nobody
	// acknowledged) loses to a shorter one of a newer epoch.
	LastEpoch int64   `json:"lastEpoch"`
	Epoch     int64   `json:"epoch"`     // the newest epoch the replica knows
	Leading   bool    `json:"leading"`   // it acts as the leader of Epoch
	MinInSync int     `json:"minInSync"` // copies a send needs (the leader's --min-insync-replicas; 1 for async)
	InSync    []int64 `json:"inSync"`    // a leader's in-sync replica ids (itself included), for status
}

// ControllerAssignment is the failover controller's answer: the group's current epoch and
// leader.
type ControllerAssignment struct {
	Epoch      int64  `json:"epoch"`
	Leader     int64  `json:"leader"` // identity of the leader, -1 when none
	LeaderAddr string `json:"leaderAddr"`
	LeaderHA   string `json:"leaderHA"`
	// Lease: when Leader == the caller, it may act as leader until
	// LeaseTimeout after it SENT this heartbeat.
	LeaseMillis int64 `json:"leaseMillis"`
}

// controllerHeartbeat passes a replica's heartbeat to the failover
// controller.
func (s *Server) controllerHeartbeat(req *remoting.Command) *remoting.Command {
	if s.cfg.Failover == nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "this name server runs no failover controller (--controller-listen)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	body, err := s.cfg.Failover.HandleHeartbeat(ctx, req.Body)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}
