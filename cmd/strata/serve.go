package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/internal/tlsconf"
	"github.com/strata-mq/strata/namesrv"
	"github.com/strata-mq/strata/tier/storeurl"
)

// serverConfig is the configuration of the server commands (the
// command-line contract of ARCHITECTURE.md).
type serverConfig struct {
	DataDir          string        `env:"DATA_DIR"`
	Listen           string        `env:"LISTEN"`
	NamesrvListen    string        `env:"NAMESRV_LISTEN"`
	Namesrv          string        `env:"NAMESRV"`
	HTTPListen       string        `env:"HTTP_LISTEN"`
	SegmentSize      byteSize      `env:"SEGMENT_SIZE"`
	Flush            string        `env:"FLUSH"`
	SegmentMaxAge    time.Duration `env:"SEGMENT_MAX_AGE"`
	Role             string        `env:"ROLE"`
	Cluster          string        `env:"CLUSTER"`
	BrokerName       string        `env:"BROKER_NAME"`
	BrokerID         int64         `env:"BROKER_ID"`
	Advertise        string        `env:"ADVERTISE"`
	AutoCreateTopics bool          `env:"AUTO_CREATE_TOPICS"`
	LogLevel         string        `env:"LOG_LEVEL"`
	Tier             string        `env:"TIER"`
	HotRetention     string        `env:"HOT_RETENTION"`
	CacheSize        byteSize      `env:"CACHE_SIZE"`
	HAListen         string        `env:"HA_LISTEN"`
	HAAdvertise      string        `env:"HA_ADVERTISE"`
	Replication      string        `env:"REPLICATION"`
	MinInsync        int           `env:"MIN_INSYNC_REPLICAS"`
	ReplicateFrom    string        `env:"REPLICATE_FROM"`
	Failover         string        `env:"FAILOVER"`
	ControllerListen string        `env:"CONTROLLER_LISTEN"`
	ControllerPeers  string        `env:"CONTROLLER_PEERS"`
	MaxConns         int           `env:"MAX_CONNS"`
	MaxConnsPerIP    int           `env:"MAX_CONNS_PER_IP"`
	MaxInflight      int           `env:"MAX_INFLIGHT"`
	MaxHeldPulls     int           `env:"MAX_HELD_PULLS"`
	TLSCert          string        `env:"TLS_CERT"`
	TLSKey           string        `env:"TLS_KEY"`
	TLSCA            string        `env:"TLS_CA"`
	TLSClientAuth    bool          `env:"TLS_CLIENT_AUTH"`
	ACLFile          string        `env:"ACL_FILE"`
	RequireAuth      bool          `env:"REQUIRE_AUTH"`
	// AccessKey and SecretKey sign a broker's own requests; from the
	// environment only (STRATA_ACCESS_KEY, STRATA_SECRET_KEY), never flags.
	AccessKey string `env:"ACCESS_KEY"`
	SecretKey string `env:"SECRET_KEY"`
	// TransactionTimeout and TransactionCheckInterval tune the check-back
	// of transactional half messages (tests make them small).
	TransactionTimeout       time.Duration `env:"TRANSACTION_TIMEOUT"`
	TransactionCheckInterval time.Duration `env:"TRANSACTION_CHECK_INTERVAL"`
}

func (c *serverConfig) brokerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "hot tier and local state")
	fs.StringVar(&c.Listen, "listen", c.Listen, "broker client address")
	fs.StringVar(&c.Namesrv, "namesrv", c.Namesrv, "name servers, host:port;host:port")
	fs.Var(&c.SegmentSize, "segment-size", "commit-log segment size (64MiB, 1GiB)")
	fs.StringVar(&c.Flush, "flush", c.Flush, "sync (acknowledge after fdatasync) or async")
	fs.DurationVar(&c.SegmentMaxAge, "segment-max-age", c.SegmentMaxAge, "seal the active segment after this long even if not full")
	fs.StringVar(&c.Role, "role", c.Role, "leader (broker id 0), follower (a replica of the leader's log; the default for --broker-id 1 and up), or reader: a tier reader serving --broker-name's offloaded history from --tier (needs --broker-id 1 or more)")
	fs.StringVar(&c.Cluster, "cluster", c.Cluster, "cluster name")
	fs.StringVar(&c.BrokerName, "broker-name", c.BrokerName, "broker name")
	fs.Int64Var(&c.BrokerID, "broker-id", c.BrokerID, "0 for the leader; 1 and up for followers and tier readers")
	fs.StringVar(&c.HAListen, "ha-listen", c.HAListen, "a leader's replication address (default: --listen's host, next port: 10912)")
	fs.StringVar(&c.HAAdvertise, "ha-advertise", c.HAAdvertise, "the replication address followers dial (default: --advertise's host, --ha-listen's port)")
	fs.StringVar(&c.Replication, "replication", c.Replication, "async, or sync: acknowledge a send once --min-insync-replicas copies hold it")
	fs.IntVar(&c.MinInsync, "min-insync-replicas", c.MinInsync, "copies, the leader's included, a send needs under --replication sync (default 2); fewer in sync: sends fail at once")
	fs.StringVar(&c.ReplicateFrom, "replicate-from", c.ReplicateFrom, "a follower's leader replication address (default: learnt from the name servers)")
	fs.StringVar(&c.Failover, "failover", c.Failover, "on: the name servers' controller elects the group's leader among its replicas; off: the leader is broker id 0")
	fs.StringVar(&c.Advertise, "advertise", c.Advertise, "ip:port clients dial (default: --listen, 0.0.0.0 as 127.0.0.1)")
	fs.BoolVar(&c.AutoCreateTopics, "auto-create-topics", c.AutoCreateTopics, "create topics on first send")
	fs.StringVar(&c.Tier, "tier", c.Tier, "cold tier URL: file:///path, s3://bucket/prefix?endpoint=…&region=…, minio://host:port/bucket/prefix (standalone default: file://<data-dir>/tier; \"none\" disables it)")
	fs.StringVar(&c.HotRetention, "hot-retention", c.HotRetention, "keep offloaded segments locally up to this size (10GiB), share of the disk (80%) or age (24h); 0 deletes them once offloaded")
	fs.Var(&c.CacheSize, "cache-size", "bytes of decompressed cold blocks kept in memory")
	fs.IntVar(&c.MaxInflight, "max-inflight", c.MaxInflight, "requests one connection may have being served (default 1024); more are answered SYSTEM_BUSY")
	fs.IntVar(&c.MaxHeldPulls, "max-held-pulls", c.MaxHeldPulls, "pulls held for new messages at most (default 100000); more are answered after a second")
	fs.DurationVar(&c.TransactionTimeout, "transaction-timeout", c.TransactionTimeout, "check an unresolved transactional half message with its producer this long after it was stored")
	fs.DurationVar(&c.TransactionCheckInterval, "transaction-check-interval", c.TransactionCheckInterval, "how often unresolved transactional half messages are checked")
}

func (c *serverConfig) controllerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "the failover controller's raft state (in <data-dir>/controller)")
	fs.StringVar(&c.ControllerListen, "controller-listen", c.ControllerListen, "run the failover controller, its raft peers dialling this address (host:port); empty: no controller")
	fs.StringVar(&c.ControllerPeers, "controller-peers", c.ControllerPeers, "every name server's --controller-listen, host:port;host:port (default: this one alone)")
}

func (c *serverConfig) commonFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ACLFile, "acl-file", c.ACLFile, "accounts and permissions (YAML, RocketMQ plain_acl.yml fields); every request must then be signed; reloaded when it changes")
	fs.BoolVar(&c.RequireAuth, "require-auth", c.RequireAuth, "refuse to start without --acl-file")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate chain: the client, name-server and replication ports take TLS only (reloaded when the file changes)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key of --tls-cert")
	fs.StringVar(&c.TLSCA, "tls-ca", c.TLSCA, "PEM CA certificates: verify the servers this process connects to (default: the system's roots) and, with --tls-client-auth, the clients")
	fs.BoolVar(&c.TLSClientAuth, "tls-client-auth", c.TLSClientAuth, "require client certificates signed by --tls-ca (mutual TLS)")
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "client connections at most (default 10000); more are closed at once")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", c.MaxConnsPerIP, "connections from one address at most (default 1000)")
	fs.StringVar(&c.HTTPListen, "http-listen", c.HTTPListen, "address of /metrics and /healthz")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
}

func defaultServerConfig(standalone bool) serverConfig {
	c := serverConfig{
		DataDir: "./strata-data", Listen: ":10911", NamesrvListen: ":9876", Namesrv: "127.0.0.1:9876",
		HTTPListen: "127.0.0.1:8080", SegmentSize: 1 << 30, Flush: "sync", SegmentMaxAge: 10 * time.Minute,
		Replication: "async", Failover: "off", Cluster: "DefaultCluster", BrokerName: "broker-a", LogLevel: "info",
		HotRetention: "80%", CacheSize: 512 << 20,
		TransactionTimeout: 6 * time.Second, TransactionCheckInterval: 5 * time.Second,
	}
	if standalone {
		c.Listen, c.NamesrvListen, c.AutoCreateTopics = "127.0.0.1:10911", "127.0.0.1:9876", true
	}
	return c
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ";") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func (c *serverConfig) brokerConfig(ctx context.Context, log *slog.Logger, reg prometheus.Registerer, standalone bool) (broker.Config, error) {
	role := broker.Role(c.Role)
	if role == "" {
		role = broker.RoleLeader
		if c.BrokerID > 0 {
			role = broker.RoleFollower
		}
	}
	switch role {
	case broker.RoleLeader:
	case broker.RoleFollower:
		if standalone {
			return broker.Config{}, errors.New("--role follower is for `strata broker`; standalone runs a leader")
		}
		if c.BrokerID < 1 {
			return broker.Config{}, errors.New("--role follower needs --broker-id 1 or more")
		}
	case broker.RoleReader:
		if standalone {
			return broker.Config{}, errors.New("--role reader is for `strata broker`; standalone runs a leader")
		}
		if c.Tier == "" || c.Tier == "none" {
			return broker.Config{}, errors.New("--role reader needs --tier: the object store whose history it serves")
		}
	default:
		return broker.Config{}, fmt.Errorf("--role %q: leader, follower or reader", c.Role)
	}
	flush, err := store.ParseFlushMode(c.Flush)
	if err != nil {
		return broker.Config{}, err
	}
	if c.Failover != "on" && c.Failover != "off" {
		return broker.Config{}, fmt.Errorf("--failover %q: on or off", c.Failover)
	}
	bc := broker.Config{
		DataDir: c.DataDir, Listen: c.Listen, AdvertiseAddr: c.Advertise, ClusterName: c.Cluster,
		BrokerName: c.BrokerName, BrokerID: c.BrokerID, Role: role, NameServers: splitAddrs(c.Namesrv),
		AutoCreateTopics: c.AutoCreateTopics, Logger: log, Metrics: reg,
		TransactionTimeout: c.TransactionTimeout, TransactionCheckInterval: c.TransactionCheckInterval,
		HAListen: c.HAListen, HAAdvertise: c.HAAdvertise, Replication: c.Replication, MinInSyncReplicas: c.MinInsync, ReplicateFrom: c.ReplicateFrom,
		Failover: c.Failover == "on",
		Limits:   broker.Limits{MaxConns: c.MaxConns, MaxConnsPerIP: c.MaxConnsPerIP, MaxInflight: c.MaxInflight, MaxHeldPulls: c.MaxHeldPulls},
		Store:    store.Config{SegmentSize: int64(c.SegmentSize), Flush: flush, SegmentMaxAge: c.SegmentMaxAge},
	}
	tierURL := c.Tier
	if tierURL == "" && standalone {
		abs, err := filepath.Abs(filepath.Join(c.DataDir, "tier"))
		if err != nil {
			return broker.Config{}, err
		}
		tierURL = "file://" + abs
	}
	if tierURL != "" && tierURL != "none" {
		hr, err := parseHotRetention(c.HotRetention)
		if err != nil {
			return broker.Config{}, fmt.Errorf("--hot-retention: %w", err)
		}
		objs, prefix, err := storeurl.Open(ctx, tierURL)
		if err != nil {
			return broker.Config{}, fmt.Errorf("--tier: %w", err)
		}
		bc.Tier = broker.TierConfig{Store: objs, Prefix: prefix, HotRetention: hr, CacheSize: int64(c.CacheSize)}
		log.Info("cold tier", "url", tierURL, "hot_retention", c.HotRetention, "cache_size", c.CacheSize.String())
	}
	return bc, nil
}

func runStandalone(ctx context.Context, args []string, stderr io.Writer) error {
	c := defaultServerConfig(true)
	fs := flag.NewFlagSet("strata standalone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := parseConfig(&c, fs, args, func(fs *flag.FlagSet) {
		c.brokerFlags(fs)
		c.commonFlags(fs)
		fs.StringVar(&c.NamesrvListen, "namesrv-listen", c.NamesrvListen, "name server address")
	}); err != nil {
		return err
	}
	return serve(ctx, c, stderr, true, true)
}

func runNamesrv(ctx context.Context, args []string, stderr io.Writer) error {
	c := defaultServerConfig(false)
	fs := flag.NewFlagSet("strata namesrv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := parseConfig(&c, fs, args, func(fs *flag.FlagSet) {
		c.commonFlags(fs)
		fs.StringVar(&c.NamesrvListen, "namesrv-listen", c.NamesrvListen, "name server address")
		c.controllerFlags(fs)
	}); err != nil {
		return err
	}
	return serve(ctx, c, stderr, true, false)
}

func runBroker(ctx context.Context, args []string, stderr io.Writer) error {
	c := defaultServerConfig(false)
	fs := flag.NewFlagSet("strata broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := parseConfig(&c, fs, args, func(fs *flag.FlagSet) {
		c.brokerFlags(fs)
		c.commonFlags(fs)
	}); err != nil {
		return err
	}
	return serve(ctx, c, stderr, false, true)
}

// serve runs a name server and/or a broker until ctx is cancelled (SIGINT,
// SIGTERM), then shuts them down gracefully.
func serve(ctx context.Context, c serverConfig, stderr io.Writer, withNamesrv, withBroker bool) error {
	log, err := newLogger(stderr, c.LogLevel)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var listens []string
	if withNamesrv {
		listens = append(listens, c.NamesrvListen)
	}
	if withBroker {
		listens = append(listens, c.Listen)
	}
	acls, err := openACL(c, log, listens...)
	if err != nil {
		return err
	}
	if c.HTTPListen != "" && !loopbackListen(c.HTTPListen) {
		log.Warn("the HTTP port (/metrics, /healthz, /debug/pprof) takes no authentication and is reachable from other machines; "+
			"keep it on a private network", "http_listen", c.HTTPListen)
	}
	if acls != nil {
		actx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); acls.Run(actx, 0) }()
		defer func() { stop(); <-done }()
	}
	var tlsl *tlsconf.Loader
	if c.TLSCert != "" || c.TLSKey != "" {
		if tlsl, err = tlsconf.Load(tlsconf.Files{CertFile: c.TLSCert, KeyFile: c.TLSKey, CAFile: c.TLSCA, ClientAuth: c.TLSClientAuth}, log); err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		log.Info("TLS on", "cert", c.TLSCert, "client_auth", c.TLSClientAuth)
	} else if c.TLSClientAuth {
		return errors.New("--tls-client-auth needs --tls-cert and --tls-key")
	}
	var ns *namesrv.Server
	if withNamesrv {
		ctl, err := openController(c, tlsl, log)
		if err != nil {
			return err
		}
		nc := namesrv.Config{Listen: c.NamesrvListen, Logger: log, ACL: acls, MaxConns: c.MaxConns, MaxConnsPerIP: c.MaxConnsPerIP}
		if tlsl != nil {
			nc.TLS = tlsl.Server()
		}
		if ctl != nil {
			defer ctl.Close()
			nc.Failover = failoverHandler{ctl}
		}
		ns = namesrv.New(nc)
		addr, err := ns.Start(ctx)
		if err != nil {
			return err
		}
		if withBroker && c.Namesrv == "127.0.0.1:9876" {
			c.Namesrv = advertiseLoopback(addr)
		}
		log.Info("name server listening", "addr", addr.String())
	}
	// The broker's metrics live in a registry of their own, replaced when
	// a failover restart makes a new broker.
	var brokerReg swapGatherer
	var b *broker.Broker
	brokerDone := make(chan error, 1)
	if withBroker {
		bc, err := c.brokerConfig(ctx, log, reg, withNamesrv)
		if err != nil {
			shutdownAll(ns, nil, log)
			return err
		}
		bc.ACL, bc.Credentials = acls, brokerCredentials(c, acls, log)
		if tlsl != nil {
			bc.TLS, bc.ClientTLS = tlsl.Server(), tlsl.Client()
		}
		if b, err = startBroker(ctx, bc, &brokerReg); err != nil {
			shutdownAll(ns, nil, log)
			return err
		}
		// Restarts (a deposed leader, a follower whose log is truncated
		// or rebuilt from the cold tier) happen in broker.Run; the first
		// incarnation is b.
		first := b
		go func() {
			brokerDone <- broker.Run(ctx, bc, func(nb *broker.Broker) { brokerReg.set(nb.MetricsRegistry()) }, first)
		}()
		b = nil // Run owns it
	}
	hs, err := startHTTP(c.HTTPListen, prometheus.Gatherers{reg, &brokerReg}, log)
	if err != nil {
		shutdownAll(ns, b, log)
		return err
	}
	log.Info("strata ready", "namesrv", withNamesrv, "broker", withBroker, "http", c.HTTPListen)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-brokerDone:
		log.Error("broker stopped", "err", runErr)
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	if withBroker && b == nil && runErr == nil {
		runErr = <-brokerDone // Run shuts its broker down once ctx ends
	}
	return errors.Join(runErr, shutdownAll(ns, b, log))
}

// startBroker starts a broker whose metrics go to a fresh registry.
func startBroker(ctx context.Context, bc broker.Config, g *swapGatherer) (*broker.Broker, error) {
	r := prometheus.NewRegistry()
	bc.Metrics = r
	b, err := broker.New(ctx, bc)
	if err != nil {
		return nil, err
	}
	if _, err := b.Start(ctx); err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b.Shutdown(sctx)
		return nil, err
	}
	g.set(r)
	return b, nil
}

// swapGatherer gathers from the current broker's registry.
type swapGatherer struct {
	mu sync.Mutex
	g  prometheus.Gatherer
}

func (s *swapGatherer) set(g prometheus.Gatherer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.g = g
}

func (s *swapGatherer) Gather() ([]*dto.MetricFamily, error) {
	s.mu.Lock()
	g := s.g
	s.mu.Unlock()
	if g == nil {
		return nil, nil
	}
	return g.Gather()
}

func advertiseLoopback(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return net.JoinHostPort("127.0.0.1", port)
}

func shutdownAll(ns *namesrv.Server, b *broker.Broker, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if b != nil {
		errs = append(errs, b.Shutdown(ctx))
	}
	if ns != nil {
		errs = append(errs, ns.Shutdown(ctx))
	}
	err := errors.Join(errs...)
	if err != nil {
		log.Error("shutdown", "err", err)
	}
	return err
}

// startHTTP serves /metrics and /healthz.
func startHTTP(addr string, reg prometheus.Gatherer, log *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	// Profiles, on the same (by default loopback-only) listener.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http-listen: %w", err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http", "err", err)
		}
	}()
	return hs, nil
}
