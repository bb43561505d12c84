package remoting

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// ErrServerClosed is returned by Server.Serve after Shutdown, and by Serve
// calls made after Shutdown.
var ErrServerClosed = errors.New("remoting: server closed")

// errServerShutdown is the cause recorded on connections closed by Shutdown.
var errServerShutdown = errors.New("server shutting down")

// ServerOptions configures a Server.
type ServerOptions struct {
	// Conn configures every accepted connection (handler, frame limit,
	// timeouts). A nil Conn.Logger inherits Logger.
	Conn ConnOptions
	// MaxConns caps the open connections; a connection accepted above it is
	// closed at once. Zero means unlimited.
	MaxConns int
	// MaxConnsPerIP caps the open connections from one source address;
	// above it a new connection is closed at once. Zero means unlimited.
	MaxConnsPerIP int
	// Logger receives server events (accept errors, refused connections).
	// Nil discards them.
	Logger *slog.Logger
	// OnConnClose, if set, is called once for each accepted connection after
	// it has closed (c.Err() says why), from that connection's reader
	// goroutine, before Shutdown stops waiting for it. The broker
	// unregisters the connection's clients here. It must not block for long.
	OnConnClose func(c *Conn)
}

// Server accepts remoting connections and serves each with a Conn. It has no
// goroutines of its own: Serve runs the accept loop on the caller's goroutine
// and each Conn has its reader.
type Server struct {
	opts ServerOptions
	log  *slog.Logger

	mu        sync.Mutex
	closed    bool
	done      chan struct{}                  // closed by Shutdown
	listeners map[net.Listener]chan struct{} // each closed when its Serve returns
	conns     map[*Conn]struct{}
	perIP     map[netip.Addr]int
}

// NewServer returns a Server; call Serve to start accepting.
func NewServer(opts ServerOptions) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Conn.Logger == nil {
		opts.Conn.Logger = log
	}
	return &Server{
		opts:      opts,
		log:       log,
		done:      make(chan struct{}),
		listeners: make(map[net.Listener]chan struct{}),
		conns:     make(map[*Conn]struct{}),
		perIP:     make(map[netip.Addr]int),
	}
}

// Serve accepts connections on ln until Shutdown, then returns
// ErrServerClosed; it closes ln. Temporary accept errors (out of file
// descriptors) are logged and retried with backoff; other errors end Serve
// and are returned. Serve may be called for several listeners.
func (s *Server) Serve(ln net.Listener) error {
	exited := make(chan struct{})
	defer close(exited)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = exited
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		_ = ln.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if !temporaryAcceptError(err) {
				return err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("remoting: accept failed; retrying", "err", err, "delay", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		s.accept(nc)
	}
}

func temporaryAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// accept registers and starts a Conn for nc, or closes nc if the server is
// full or shutting down.
func (s *Server) accept(nc net.Conn) {
	opts := s.opts.Conn
	opts.onClose = s.connClosed
	c := newConn(nc, opts)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	if s.opts.MaxConns > 0 && len(s.conns) >= s.opts.MaxConns {
		s.mu.Unlock()
		s.log.Warn("remoting: connection limit reached; closing new connection",
			"remote", addrString(nc.RemoteAddr()), "max_conns", s.opts.MaxConns)
		_ = nc.Close()
		return
	}
	ip := sourceIP(nc.RemoteAddr())
	if s.opts.MaxConnsPerIP > 0 && s.perIP[ip] >= s.opts.MaxConnsPerIP {
		s.mu.Unlock()
		s.log.Warn("remoting: connection limit of this source address reached; closing new connection",
			"remote", addrString(nc.RemoteAddr()), "max_conns_per_ip", s.opts.MaxConnsPerIP)
		_ = nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.perIP[ip]++
	s.mu.Unlock()
	c.start()
}

// sourceIP is the IP address a connection comes from (the zero Addr if it
// has none: every such connection counts as one source).
func sourceIP(a net.Addr) netip.Addr {
	switch ta := a.(type) {
	case *net.TCPAddr:
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	case nil:
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr().Unmap()
		}
	}
	return netip.Addr{}
}

// connClosed runs on a connection's reader goroutine after it has closed.
func (s *Server) connClosed(c *Conn) {
	s.mu.Lock()
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		ip := sourceIP(c.RemoteAddr())
		if s.perIP[ip]--; s.perIP[ip] <= 0 {
			delete(s.perIP, ip)
		}
	}
	s.mu.Unlock()
	if s.opts.OnConnClose != nil {
		s.opts.OnConnClose(c)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Conns returns the open connections, in no particular order.
func (s *Server) Conns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// Shutdown stops the server: it closes the listeners (Serve returns
// ErrServerClosed), closes every connection (their pending Invoke calls fail
// with ErrConnClosed), and waits until every Serve call has returned and
// every connection's reader goroutine has exited, OnConnClose hooks
// included, or until ctx ends, returning ctx.Err() then. It does not wait
// for a reader it is called from (a handler that shuts the server down).
// Requests held by handlers (long polls) should be answered before, as
// their connections go away. Shutdown may be called more than once; later
// calls wait again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
		for ln := range s.listeners {
			_ = ln.Close()
		}
	}
	serving := make([]chan struct{}, 0, len(s.listeners))
	for _, exited := range s.listeners {
		serving = append(serving, exited)
	}
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	for _, c := range conns {
		c.markClosed(errServerShutdown)
		_ = c.nc.Close()
	}
	for _, c := range conns {
		if c.onReaderGoroutine() {
			continue
		}
		select {
		case <-c.readerDone:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, exited := range serving {
		select {
		case <-exited:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
