package miniotest

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Mode selects how a Proxy treats connections.
type Mode int

// Proxy modes.
const (
	// ModePass forwards connections to the target unchanged.
	ModePass Mode = iota
	// Mode503 answers every HTTP request with 503 SlowDown and an S3 XML
	// error body, without contacting the target.
	Mode503
	// ModeReset resets every connection (TCP RST) as soon as it is accepted.
	ModeReset
	// ModeBlackhole accepts connections and reads requests but never
	// answers: clients stall until their deadline.
	ModeBlackhole
	// ModeDelay forwards like ModePass but holds every chunk of the
	// target's responses for the delay set with SetDelay.
	ModeDelay
)

func (m Mode) String() string {
	switch m {
	case ModePass:
		return "pass"
	case Mode503:
		return "503"
	case ModeReset:
		return "reset"
	case ModeBlackhole:
		return "blackhole"
	case ModeDelay:
		return "delay"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Proxy is a fault-injecting TCP proxy, on a free loopback port, in front of
// an HTTP server such as MinIO. Changing its mode closes every open
// connection, so clients reconnect and meet the new mode at once.
type Proxy struct {
	// Addr is the proxy's address, "127.0.0.1:port".
	Addr string

	target string
	ln     net.Listener

	mu     sync.Mutex
	mode   Mode
	delay  time.Duration
	conns  map[net.Conn]struct{}
	closed bool

	accepted atomic.Int64
	answered atomic.Int64
	wg       sync.WaitGroup
}

// NewProxy starts a proxy to target ("host:port") in ModePass and closes it
// when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("miniotest: proxy listen: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

// URL returns the proxy's base URL, "http://127.0.0.1:port".
func (p *Proxy) URL() string { return "http://" + p.Addr }

// SetMode switches the mode and closes all open connections.
func (p *Proxy) SetMode(m Mode) {
	p.mu.Lock()
	p.mode = m
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// SetDelay sets the delay ModeDelay adds to each chunk of a response.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// Accepted returns how many connections the proxy has accepted.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Answered503 returns how many requests Mode503 has answered.
func (p *Proxy) Answered503() int64 { return p.answered.Load() }

// Close stops the proxy, closes all connections and waits for its
// goroutines. It is idempotent.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	_ = p.ln.Close()
	for c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
}

// track registers c so SetMode and Close can close it; false if closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // listener closed
		}
		p.accepted.Add(1)
		p.mu.Lock()
		mode, delay := p.mode, p.delay
		p.mu.Unlock()
		if !p.track(c) {
			_ = c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			switch mode {
			case ModePass:
				p.pass(c, 0)
			case ModeDelay:
				p.pass(c, delay)
			case Mode503:
				p.serve503(c)
			case ModeReset:
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // Close sends RST
				}
			case ModeBlackhole:
				_, _ = io.Copy(io.Discard, c) // until the client or SetMode closes it
			}
		}()
	}
}

func (p *Proxy) pass(c net.Conn, delay time.Duration) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(up) {
		_ = up.Close()
		return
	}
	defer p.untrack(up)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(up, c)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	})
	if delay > 0 {
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				time.Sleep(delay) // the injected fault itself
				if _, werr := c.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
	} else {
		_, _ = io.Copy(c, up)
	}
	_ = c.Close()
	_ = up.Close()
	wg.Wait()
}

// serve503 answers each request on c with 503 SlowDown and closes c.
func (p *Proxy) serve503(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	p.answered.Add(1)
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>`+
		`<Resource>%s</Resource><RequestId>strata-proxy-%d</RequestId></Error>`,
		xmlEscape(req.URL.Path), p.answered.Load())
	hdr := fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\n"+
		"Content-Type: application/xml\r\nContent-Length: %d\r\nRetry-After: 1\r\n"+
		"x-amz-request-id: strata-proxy\r\nConnection: close\r\n\r\n", len(body))
	out := hdr
	if req.Method != http.MethodHead {
		out += body
	}
	if _, err := io.WriteString(c, out); err != nil {
		return
	}
	// Lingering close: stop writing, drain what the client still sends
	// (a request body) for a moment so it reads the answer, not a reset.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.Copy(io.Discard, br)
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
