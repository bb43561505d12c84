package client

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// tcpProxy forwards loopback TCP connections to a target and can break
// the ones it holds the way networks do, to test stale connections.
type tcpProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu       sync.Mutex
	links    map[*proxyLink]bool
	accepted int
	closed   bool
}

// proxyLink is one proxied connection. Its state decides what the pumps
// do with the bytes they read.
type proxyLink struct {
	client, upstream net.Conn

	mu    sync.Mutex
	state linkState
}

type linkState int

const (
	linkForward linkState = iota
	// linkDropped: the upstream side is closed (the broker saw the
	// connection end) while the client side stays open and silent, as
	// after a NAT or broker dropped an idle connection of a frozen
	// process; the client's next write gets a reset.
	linkDropped
	// linkBlackhole: bytes go nowhere in either direction and nothing
	// closes: a half-open connection whose peer is silently gone.
	linkBlackhole
)

func (l *proxyLink) get() linkState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, links: make(map[*proxyLink]bool)}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

// acceptedCount returns how many connections the proxy accepted.
func (p *tcpProxy) acceptedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *tcpProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		l := &proxyLink{client: c, upstream: u}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		p.links[l] = true
		p.accepted++
		p.wg.Add(2)
		p.mu.Unlock()
		go p.clientToUpstream(l)
		go p.upstreamToClient(l)
	}
}

func (p *tcpProxy) clientToUpstream(l *proxyLink) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := l.client.Read(buf)
		if n > 0 {
			switch l.get() {
			case linkDropped:
				// Reset, as a NAT or a host that forgot the connection does.
				if tc, ok := l.client.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				l.client.Close()
				p.forget(l)
				return
			case linkBlackhole:
				continue
			}
			if _, werr := l.upstream.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			l.client.Close()
			l.upstream.Close()
			p.forget(l)
			return
		}
	}
}

func (p *tcpProxy) upstreamToClient(l *proxyLink) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := l.upstream.Read(buf)
		st := l.get()
		if n > 0 && st == linkForward {
			if _, werr := l.client.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if st == linkForward || !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				l.client.Close()
			}
			l.upstream.Close()
			return
		}
	}
}

func (p *tcpProxy) forget(l *proxyLink) {
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// setAll puts every current link in state st; new connections are
// forwarded. linkDropped also closes the upstream side.
func (p *tcpProxy) setAll(st linkState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.links {
		l.mu.Lock()
		l.state = st
		l.mu.Unlock()
		if st == linkDropped {
			l.upstream.Close()
		}
	}
}

func (p *tcpProxy) close() {
	p.mu.Lock()
	p.closed = true
	for l := range p.links {
		l.client.Close()
		l.upstream.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}
