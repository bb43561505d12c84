package controller

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// tcpStream is raft's TCP stream layer (like raft.NewTCPTransport's) that
// also remembers its connections and closes them all on Close. raft's own
// TCPStreamLayer only closes the listener, so a connection a live peer keeps
// open would keep this controller's connection handler goroutine alive after
// Close.
type tcpStream struct {
	ln        net.Listener
	advertise net.Addr
	// srvTLS and cliTLS, if set, wrap accepted and dialled connections.
	srvTLS, cliTLS *tls.Config

	mu     sync.Mutex
	closed bool
	conns  map[*trackedConn]struct{}
}

var _ raft.StreamLayer = (*tcpStream)(nil)

func newTCPStream(ln net.Listener, advertise net.Addr) *tcpStream {
	return &tcpStream{ln: ln, advertise: advertise, conns: map[*trackedConn]struct{}{}}
}

func (s *tcpStream) track(c net.Conn) (net.Conn, error) {
	tc := &trackedConn{Conn: c, s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	s.conns[tc] = struct{}{}
	return tc, nil
}

// Dial implements raft.StreamLayer.
func (s *tcpStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	if s.cliTLS != nil {
		host, _, _ := net.SplitHostPort(string(address))
		cfg := s.cliTLS.Clone()
		cfg.ServerName = host
		tc := tls.Client(c, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	return s.track(c)
}

// Accept implements net.Listener.
func (s *tcpStream) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	if s.srvTLS != nil {
		c = tls.Server(c, s.srvTLS) // the handshake runs at the first read
	}
	return s.track(c)
}

// Close closes the listener and every connection.
func (s *tcpStream) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = map[*trackedConn]struct{}{}
	s.mu.Unlock()
	err := s.ln.Close()
	for c := range conns {
		c.Conn.Close()
	}
	return err
}

// Addr implements net.Listener: the advertised address.
func (s *tcpStream) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.ln.Addr()
}

type trackedConn struct {
	net.Conn
	s    *tcpStream
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// raftLogger returns an hclog.Logger for raft that passes warnings and
// errors to log.
func raftLogger(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclog.Warn,
		Output:      slogWriter{log},
		DisableTime: true,
	})
}

// slogWriter turns hclog's formatted lines into slog records.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		level := slog.LevelWarn
		if strings.HasPrefix(line, "[ERROR]") {
			level = slog.LevelError
		}
		w.log.Log(context.Background(), level, line)
	}
	return len(p), nil
}
