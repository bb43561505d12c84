package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// Client holds what producers, consumers and admin calls share: the name
// server list, the route cache and one connection per server address. It is
// safe for concurrent use. New starts no goroutine and opens no connection;
// each open connection has one reader goroutine, which Close stops.
type Client struct {
	cfg   cfg
	log   *slog.Logger
	epoch time.Time // monotonic base of pooledConn's clocks

	// nsNext is the index of the name server to ask first: the last one
	// that answered.
	nsNext atomic.Uint32

	idOnce sync.Once
	id     string

	mu     sync.Mutex
	closed bool
	conns  map[string]*connSlot // by address
	// members are the Consumers in a group through this Client, by group
	// (Consumer.Receive and Run join; Close and Run's end leave).
	members map[string]*Consumer

	routeMu sync.Mutex
	routes  map[string]cachedRoute // by topic

	faults *faultTracker // brokers sends avoid for now
}

// connSlot is the pool entry of one address. sem (capacity 1) is held while
// the slot's connection is checked or dialled, so concurrent first uses of
// an address dial once.
type connSlot struct {
	sem  chan struct{}
	conn *pooledConn // nil until dialled; replaced when closed or idle too long
}

// pooledConn is a connection of the pool and its use, in nanoseconds since
// Client.epoch.
type pooledConn struct {
	*remoting.Conn
	lastUsed atomic.Int64 // a request started or ended
	lastResp atomic.Int64 // a response arrived
	inFlight atomic.Int32 // requests waiting for their response
}

type cachedRoute struct {
	route   *Route
	fetched time.Time
}

// New returns a Client configured by the environment (see the package doc,
// "Configuration") and opts, which win over it. It checks the
// configuration but does not connect: the first request dials.
func New(opts ...Opt) (*Client, error) {
	c := defaultCfg()
	e, err := readEnv()
	if err != nil {
		return nil, err
	}
	e.applyClient(&c)
	if c.tls, err = e.tlsConfig(); err != nil {
		return nil, err
	}
	for _, o := range opts {
		o.apply(&c)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	log := c.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: c, log: log, epoch: time.Now(), conns: make(map[string]*connSlot),
		routes: make(map[string]cachedRoute), faults: newFaultTracker()}, nil
}

// NameServerAddrs returns the configured name server addresses.
func (c *Client) NameServerAddrs() []string { return append([]string(nil), c.cfg.nameServers...) }

// ClientID returns the id this client gives brokers (see the ClientID
// option); a default one is made on the first call.
func (c *Client) ClientID() string {
	c.idOnce.Do(func() {
		c.id = c.cfg.clientID
		if c.id == "" {
			ip := localIPv4()
			var r [4]byte
			_, _ = rand.Read(r[:])
			c.id = netip.AddrFrom4(ip).String() + "@" + strconv.Itoa(os.Getpid()) + "#" + hex.EncodeToString(r[:])
		}
	})
	return c.id
}

// Close closes every connection and waits for their reader goroutines.
// Requests in flight fail; later calls return ErrClientClosed. Close is
// idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	slots := make([]*connSlot, 0, len(c.conns))
	for _, s := range c.conns {
		slots = append(slots, s)
	}
	c.mu.Unlock()
	var errs []error
	for _, s := range slots {
		s.sem <- struct{}{} // waits for a dial in progress, bounded by DialTimeout
		if s.conn != nil {
			if err := s.conn.Close(); err != nil {
				errs = append(errs, err)
			}
			s.conn = nil
		}
		<-s.sem
	}
	return errors.Join(errs...)
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// now returns the time since c.epoch, on the monotonic clock.
func (c *Client) now() int64 { return int64(time.Since(c.epoch)) }

// conn returns the open connection to addr, dialling it if there is none,
// the last one closed, or it sat unused longer than IdleConnTimeout.
// reused tells whether the connection served requests before: a request
// that fails because a reused connection turns out dead may be retried on
// a new one.
func (c *Client) conn(ctx context.Context, addr string) (pc *pooledConn, reused bool, err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, ErrClientClosed
	}
	s := c.conns[addr]
	if s == nil {
		s = &connSlot{sem: make(chan struct{}, 1)}
		c.conns[addr] = s
	}
	c.mu.Unlock()

	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	defer func() { <-s.sem }()
	if pc := s.conn; pc != nil {
		idle := time.Duration(c.now() - pc.lastUsed.Load())
		select {
		case <-pc.Done():
			c.log.Debug("client: connection closed; redialling", "addr", addr, "cause", pc.Err())
		default:
			if c.cfg.idleConnTimeout <= 0 || idle <= c.cfg.idleConnTimeout || pc.inFlight.Load() > 0 {
				pc.lastUsed.Store(c.now())
				return pc, true, nil
			}
			c.log.Debug("client: connection idle too long; redialling", "addr", addr, "idle", idle)
		}
		_ = pc.Close() // reaps the reader goroutine
		s.conn = nil
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.dialTimeout)
	defer cancel()
	nc, err := c.dial(dctx, addr)
	if err != nil {
		if ctx.Err() == nil && dctx.Err() != nil {
			return nil, false, fmt.Errorf("%w: no connection within %v (DialTimeout): %w", ErrTimeout, c.cfg.dialTimeout, err)
		}
		return nil, false, err
	}
	conn := remoting.NewConn(nc, remoting.ConnOptions{Logger: c.log, WriteTimeout: c.cfg.requestTimeout,
		Handler: remoting.HandlerFunc(c.serveRequest)})
	if c.isClosed() { // Close ran while we dialled; it will not see this conn
		_ = conn.Close()
		return nil, false, ErrClientClosed
	}
	c.log.Debug("client: connected", "addr", addr, "local", conn.LocalAddr().String())
	pc = &pooledConn{Conn: conn}
	pc.lastUsed.Store(c.now())
	s.conn = pc
	return pc, false, nil
}

// dial opens a TCP connection to addr.
func (c *Client) dial(ctx context.Context, addr string) (net.Conn, error) {
	if c.cfg.dial != nil {
		return c.cfg.dial(ctx, addr)
	}
	var nc net.Conn
	var err error
	if c.cfg.tls != nil {
		d := tls.Dialer{Config: c.cfg.tls}
		nc, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return nc, nil
}

// invoke sends req over pc and waits for the response, keeping pc's clocks.
func (c *Client) invoke(ctx context.Context, pc *pooledConn, req *remoting.Command) (*remoting.Command, error) {
	pc.inFlight.Add(1)
	resp, err := pc.Invoke(ctx, req)
	pc.inFlight.Add(-1)
	now := c.now()
	pc.lastUsed.Store(now)
	if err == nil {
		pc.lastResp.Store(now)
	}
	return resp, err
}

// roundTrip sends req to addr and waits for the response, for at most
// timeout beyond which the server counts as unreachable. A failure to
// connect or to get an answer is wrapped in unreachable (when not nil); a
// cancelled ctx gives ctx's error, a passed deadline ErrTimeout too.
//
// Two rules deal with connections that died unseen (a process frozen
// between invocations while the peer or a NAT dropped the connection): a
// request that fails because a reused connection closed under it is sent
// again, once, on a new connection; and a request that times out on a
// connection that delivered no response meanwhile closes that connection,
// so the next request dials afresh instead of waiting on a half-open one.
// Every request Strata's client sends is idempotent or, for sends, carries
// a unique id (delivery is at least once), so the retry is safe.
func (c *Client) roundTrip(ctx context.Context, addr string, req *remoting.Command, timeout time.Duration, unreachable error) (*remoting.Command, error) {
	op := remoting.RequestCodeName(req.Code)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("client: %s to %s: %w", op, addr, timeoutError(err))
	}
	c.cfg.creds.sign(req)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for try := 0; ; try++ {
		var pc *pooledConn
		var reused bool
		pc, reused, err = c.conn(rctx, addr)
		if err != nil {
			break
		}
		start := c.now()
		var resp *remoting.Command
		if resp, err = c.invoke(rctx, pc, req); err == nil {
			return resp, nil
		}
		if try == 0 && reused && errors.Is(err, remoting.ErrConnClosed) && rctx.Err() == nil && !c.isClosed() {
			c.log.Debug("client: connection failed under a request; retrying on a new one", "addr", addr, "op", op, "err", err)
			continue
		}
		if errors.Is(rctx.Err(), context.DeadlineExceeded) && pc.lastResp.Load() < start {
			c.log.Debug("client: no response on the connection in time; closing it", "addr", addr, "op", op)
			_ = pc.Close()
		}
		break
	}
	switch {
	case errors.Is(err, ErrClientClosed):
		return nil, err
	case c.isClosed(): // Close failed the request
		return nil, fmt.Errorf("%w: %s to %s interrupted", ErrClientClosed, op, addr)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("client: %s to %s: %w", op, addr, timeoutError(ctx.Err()))
	case rctx.Err() != nil:
		err = fmt.Errorf("%w: no answer within %v", ErrTimeout, timeout)
	}
	if unreachable == nil {
		return nil, fmt.Errorf("%s to %s: %w", op, addr, err)
	}
	return nil, fmt.Errorf("%w: %s to %s: %w", unreachable, op, addr, err)
}

// brokerCall sends req to a broker with the default request timeout.
func (c *Client) brokerCall(ctx context.Context, addr string, req *remoting.Command) (*remoting.Command, error) {
	return c.roundTrip(ctx, addr, req, c.cfg.requestTimeout, ErrBrokerUnreachable)
}

// nameServerCall sends req to the name servers in turn, starting with the
// last one that answered, until one answers (whatever the code).
func (c *Client) nameServerCall(ctx context.Context, req *remoting.Command) (*remoting.Command, string, error) {
	ns := c.cfg.nameServers
	start := int(c.nsNext.Load())
	var errs []error
	for i := range ns {
		idx := (start + i) % len(ns)
		addr := ns[idx]
		resp, err := c.roundTrip(ctx, addr, req, c.cfg.requestTimeout, nil)
		if err == nil {
			c.nsNext.Store(uint32(idx))
			return resp, addr, nil
		}
		if ctx.Err() != nil || errors.Is(err, ErrClientClosed) {
			return nil, addr, err
		}
		c.log.Debug("client: name server failed; trying the next", "addr", addr, "err", err)
		errs = append(errs, err)
	}
	return nil, "", fmt.Errorf("%w: %w", ErrNameServerUnreachable, joinErrors(errs))
}

// errorList joins errors on one line, "; "-separated (errors.Join uses
// newlines, awkward in a command's one-line error).
type errorList []error

func (l errorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func (l errorList) Unwrap() []error { return l }

func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errorList(errs)
}
