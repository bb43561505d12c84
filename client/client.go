package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// Client holds what producers, consumers and admin calls share: the name
// server list, the route cache and one connection per server address. It is
// safe for concurrent use. New starts no goroutine; each open connection
// has one reader goroutine, which Close stops.
type Client struct {
	cfg cfg
	log *slog.Logger

	// nsNext is the index of the name server to ask first: the last one
	// that answered.
	nsNext atomic.Uint32

	mu     sync.Mutex
	closed bool
	conns  map[string]*connSlot // by address

	routeMu sync.Mutex
	routes  map[string]cachedRoute // by topic
}

// connSlot is the pool entry of one address. sem (capacity 1) is held while
// the slot's connection is checked or dialled, so concurrent first uses of
// an address dial once.
type connSlot struct {
	sem  chan struct{}
	conn *remoting.Conn // nil until dialled; replaced when Done
}

type cachedRoute struct {
	route   *Route
	fetched time.Time
}

// New returns a Client configured by opts. It checks the options but does
// not connect: the first request dials.
func New(opts ...Opt) (*Client, error) {
	c := defaultCfg()
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
	return &Client{cfg: c, log: log, conns: make(map[string]*connSlot), routes: make(map[string]cachedRoute)}, nil
}

// NameServerAddrs returns the configured name server addresses.
func (c *Client) NameServerAddrs() []string { return append([]string(nil), c.cfg.nameServers...) }

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

// conn returns the open connection to addr, dialling it if there is none
// or the last one closed.
func (c *Client) conn(ctx context.Context, addr string) (*remoting.Conn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClientClosed
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
		return nil, ctx.Err()
	}
	defer func() { <-s.sem }()
	if s.conn != nil {
		select {
		case <-s.conn.Done():
			c.log.Debug("client: connection closed; redialling", "addr", addr, "cause", s.conn.Err())
			_ = s.conn.Close() // reaps the reader goroutine
			s.conn = nil
		default:
			return s.conn, nil
		}
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.dialTimeout)
	defer cancel()
	conn, err := remoting.Dial(dctx, addr, remoting.ConnOptions{Logger: c.log, WriteTimeout: c.cfg.requestTimeout})
	if err != nil {
		return nil, err
	}
	if c.isClosed() { // Close ran while we dialled; it will not see this conn
		_ = conn.Close()
		return nil, ErrClientClosed
	}
	c.log.Debug("client: connected", "addr", addr, "local", conn.LocalAddr().String())
	s.conn = conn
	return conn, nil
}

// roundTrip sends req to addr and waits for the response, for at most
// timeout beyond which the server counts as unreachable. A failure to
// connect or to get an answer is wrapped in unreachable (when not nil); a
// cancelled ctx gives ctx's error.
func (c *Client) roundTrip(ctx context.Context, addr string, req *remoting.Command, timeout time.Duration, unreachable error) (*remoting.Command, error) {
	op := remoting.RequestCodeName(req.Code)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("client: %s to %s: %w", op, addr, err)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := c.conn(rctx, addr)
	if err == nil {
		var resp *remoting.Command
		if resp, err = conn.Invoke(rctx, req); err == nil {
			return resp, nil
		}
	}
	switch {
	case errors.Is(err, ErrClientClosed):
		return nil, err
	case c.isClosed(): // Close failed the request
		return nil, fmt.Errorf("%w: %s to %s interrupted", ErrClientClosed, op, addr)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("client: %s to %s: %w", op, addr, ctx.Err())
	case rctx.Err() != nil:
		err = fmt.Errorf("no answer within %v", timeout)
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
