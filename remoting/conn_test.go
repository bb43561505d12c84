package remoting

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const waitLimit = 10 * time.Second

// waitFor polls cond until it holds or waitLimit passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// recv receives from ch or fails the test after waitLimit.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// checkNoLeaks waits until no goroutine of this package's connections or
// servers is left.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	var stacks string
	waitFor(t, "connection and server goroutines to exit", func() bool {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(stacks, "remoting.(*Conn).readLoop") &&
			!strings.Contains(stacks, "remoting.(*Server).Serve")
	})
}

type testServer struct {
	*Server
	addr     string
	serveErr chan error
}

// startServer serves on a loopback port; cleanup shuts it down and checks
// that no goroutine is left behind (so use one server per test).
func startServer(t *testing.T, opts ServerOptions) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{Server: NewServer(opts), addr: ln.Addr().String(), serveErr: make(chan error, 1)}
	go func() { s.serveErr <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := recv(t, s.serveErr, "Serve to return"); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		checkNoLeaks(t)
	})
	return s
}

func dial(t *testing.T, addr string, opts ConnOptions) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := Dial(ctx, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func invoke(t *testing.T, c *Conn, req *Command) *Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	resp, err := c.Invoke(ctx, req)
	if err != nil {
		t.Fatalf("Invoke %v: %v", req, err)
	}
	return resp
}

// echo answers every request with SUCCESS and its ext field "n" copied.
var echo = HandlerFunc(func(c *Conn, req *Command) {
	resp := NewResponse(req, RespSuccess, "")
	resp.SetExt("n", req.Ext("n"))
	resp.Body = req.Body
	_ = c.Reply(resp)
})

func TestInvokeMatchesOutOfOrderResponses(t *testing.T) {
	const n = 50
	reqs := make(chan *Command, n)
	var serverConn atomic.Pointer[Conn]
	srv := startServer(t, ServerOptions{Conn: ConnOptions{Handler: HandlerFunc(func(c *Conn, req *Command) {
		serverConn.Store(c)
		reqs <- req // buffered: the handler does not block
	})}})
	client := dial(t, srv.addr, ConnOptions{})

	// Answer all 50 in reverse order of arrival, from another goroutine.
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		var held []*Command
		for range n {
			held = append(held, recv(t, reqs, "a request"))
		}
		for i := len(held) - 1; i >= 0; i-- {
			resp := NewResponse(held[i], RespSuccess, "")
			resp.SetExt("echo", held[i].Ext("n"))
			if err := serverConn.Load().Reply(resp); err != nil {
				t.Errorf("Reply: %v", err)
			}
		}
	}()

	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			req := NewRequest(ReqSendMessage, map[string]string{"n": strconv.Itoa(i)}, nil)
			resp, err := client.Invoke(ctx, req)
			if err != nil {
				t.Errorf("Invoke %d: %v", i, err)
				return
			}
			if got := resp.Ext("echo"); got != strconv.Itoa(i) || resp.Opaque != req.Opaque {
				t.Errorf("Invoke %d got the response for %s (opaque %d vs %d)", i, got, resp.Opaque, req.Opaque)
			}
		})
	}
	wg.Wait()
	<-answered
	if n := client.pendingCount(); n != 0 {
		t.Errorf("%d pending entries left", n)
	}
}

func TestInvokeContextTimeoutRemovesPending(t *testing.T) {
	held := make(chan *Command, 1)
	srv := startServer(t, ServerOptions{Conn: ConnOptions{Handler: HandlerFunc(func(c *Conn, req *Command) {
		if req.Code == ReqPullMessage {
			held <- req // answered late, by the test
			return
		}
		echo(c, req)
	})}})
	client := dial(t, srv.addr, ConnOptions{})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := client.Invoke(ctx, NewRequest(ReqPullMessage, nil, nil))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "PULL_MESSAGE") {
		t.Fatalf("err = %v, want DeadlineExceeded naming the request", err)
	}
	if n := client.pendingCount(); n != 0 {
		t.Fatalf("%d pending entries after the timeout", n)
	}

	// The late response is dropped; the connection keeps working.
	late := recv(t, held, "the held request")
	srvConn := srv.Conns()[0]
	if err := srvConn.Reply(NewResponse(late, RespSuccess, "late")); err != nil {
		t.Fatal(err)
	}
	resp := invoke(t, client, NewRequest(ReqHeartBeat, map[string]string{"n": "after"}, nil))
	if resp.Ext("n") != "after" || resp.Remark == "late" {
		t.Fatalf("got %v", resp)
	}

	// A context already done fails before anything is sent.
	cancel()
	if _, err := client.Invoke(ctx, NewRequest(ReqHeartBeat, nil, nil)); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		t.Fatalf("done context: %v", err)
	}
	if n := client.pendingCount(); n != 0 {
		t.Fatalf("%d pending entries", n)
	}
}

func TestCloseFailsPendingInvokes(t *testing.T) {
	srv := startServer(t, ServerOptions{Conn: ConnOptions{Handler: HandlerFunc(func(*Conn, *Command) {})}})
	client := dial(t, srv.addr, ConnOptions{})

	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := client.Invoke(context.Background(), NewRequest(ReqPullMessage, nil, nil))
			errs <- err
		}()
	}
	waitFor(t, "5 pending invokes", func() bool { return client.pendingCount() == n })
	if err := client.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range n {
		if err := recv(t, errs, "a failed invoke"); !errors.Is(err, ErrConnClosed) {
			t.Errorf("pending Invoke returned %v, want ErrConnClosed", err)
		}
	}
	select {
	case <-client.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if err := client.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := client.Invoke(context.Background(), NewRequest(ReqHeartBeat, nil, nil)); !errors.Is(err, ErrConnClosed) {
		t.Errorf("Invoke after Close: %v", err)
	}
	if err := client.InvokeOneway(context.Background(), NewRequest(ReqHeartBeat, nil, nil)); !errors.Is(err, ErrConnClosed) {
		t.Errorf("InvokeOneway after Close: %v", err)
	}
	if err := client.Reply(&Command{Flag: FlagResponse}); !errors.Is(err, ErrConnClosed) {
		t.Errorf("Reply after Close: %v", err)
	}
}

// TestPeerCloseFromHandler closes the server side from inside its handler
// (which must not deadlock); the client's invoke fails with the peer's EOF.
func TestPeerCloseFromHandler(t *testing.T) {
	closed := make(chan error, 1)
	srv := startServer(t, ServerOptions{Conn: ConnOptions{Handler: HandlerFunc(func(c *Conn, req *Command) {
		closed <- c.Close()
	})}})
	client := dial(t, srv.addr, ConnOptions{})
	_, err := client.Invoke(context.Background(), NewRequest(ReqUnregisterClient, nil, nil))
	if !errors.Is(err, ErrConnClosed) || !errors.Is(err, io.EOF) {
		t.Fatalf("err = %v, want ErrConnClosed wrapping io.EOF", err)
	}
	if err := recv(t, closed, "Close in the handler"); err != nil {
		t.Fatalf("Close in handler: %v", err)
	}
	if err := client.Err(); !errors.Is(err, io.EOF) {
		t.Fatalf("Err() = %v", err)
	}
	waitFor(t, "the server to forget the connection", func() bool { return len(srv.Conns()) == 0 })
}

// sendRaw writes bytes on a fresh TCP connection and returns it.
func sendRaw(t *testing.T, addr string, data []byte) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(waitLimit))
	if _, err := nc.Write(data); err != nil {
		t.Fatal(err)
	}
	return nc
}

func TestServerRefusesGarbage(t *testing.T) {
	var closes atomic.Int32
	srv := startServer(t, ServerOptions{
		Conn:        ConnOptions{Handler: echo, MaxFrameSize: 1 << 20},
		OnConnClose: func(*Conn) { closes.Add(1) },
	})
	good := dial(t, srv.addr, ConnOptions{})
	invoke(t, good, NewRequest(ReqHeartBeat, nil, nil))

	bigHeader := []byte(`{"code":10,"opaque":78,"extFields":{"topic":"t"}}`)
	big := binary.BigEndian.AppendUint32(nil, 2<<20) // 2 MiB announced, limit 1 MiB
	big = binary.BigEndian.AppendUint32(big, uint32(len(bigHeader)))
	big = append(big, bigHeader...)
	big = append(big, make([]byte, 64<<10)...) // part of the body, then silence

	answered := []struct {
		name   string
		data   []byte
		opaque int32
		remark string
	}{
		{"number in extFields", rawFrame(0, []byte(`{"code":11,"opaque":77,"extFields":{"topic":"t","queueId":3}}`), nil), 77, `extFields["queueId"] is a number`},
		{"oversized frame", big, 78, "exceeds the limit of 1048576 bytes"},
		{"binary remark length", rawFrame(1, append(binaryHeaderWithOpaque(79, 0), 0, 0, 0, 9, 0, 0, 0, 0), nil), 79, "remark length 9"},
	}
	for _, tc := range answered {
		nc := sendRaw(t, srv.addr, tc.data)
		resp, err := ReadCommand(nc, 0)
		if err != nil {
			t.Fatalf("%s: reading the error response: %v", tc.name, err)
		}
		if resp.Code != RespSystemError || resp.Opaque != tc.opaque || !resp.IsResponse() || !strings.Contains(resp.Remark, tc.remark) {
			t.Errorf("%s: got %v, want SYSTEM_ERROR for opaque %d mentioning %q", tc.name, resp, tc.opaque, tc.remark)
		}
		if _, err := ReadCommand(nc, 0); err != io.EOF {
			t.Errorf("%s: after the error response: %v, want EOF", tc.name, err)
		}
		_ = nc.Close() // ends the server's linger
	}

	// Frames whose opaque cannot be known, or that are responses, are not
	// answered: the connection just closes.
	silent := []struct {
		name string
		data []byte
	}{
		{"length below 4", []byte{0, 0, 0, 2, 0, 0}},
		{"negative length", []byte{0xff, 0xff, 0xff, 0xff}},
		{"unknown serialize type", rawFrame(7, []byte(`{"opaque":1}`), nil)},
		{"JSON syntax error", rawFrame(0, []byte(`{"opaque":1,`), nil)},
		{"bad response", rawFrame(0, []byte(`{"opaque":1,"flag":1,"extFields":{"a":1}}`), nil)},
	}
	for _, tc := range silent {
		nc := sendRaw(t, srv.addr, tc.data)
		if c, err := ReadCommand(nc, 0); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: got %v, %v; want the connection closed", tc.name, c, err)
		}
	}

	waitFor(t, "every refused connection to be closed", func() bool {
		return closes.Load() == int32(len(answered)+len(silent))
	})
	// The well-behaved connection is unaffected.
	if resp := invoke(t, good, NewRequest(ReqHeartBeat, map[string]string{"n": "still"}, nil)); resp.Ext("n") != "still" {
		t.Fatalf("good connection: %v", resp)
	}
	if n := len(srv.Conns()); n != 1 {
		t.Fatalf("%d server connections, want 1", n)
	}
}

func TestShutdownWaitsForReaders(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var closed atomic.Int32
	srv := startServer(t, ServerOptions{
		Conn: ConnOptions{Handler: HandlerFunc(func(c *Conn, req *Command) {
			if req.Code == ReqPullMessage {
				close(entered)
				<-release // a handler that blocks (badly) holds its reader
				return
			}
			echo(c, req)
		})},
		OnConnClose: func(c *Conn) {
			if !errors.Is(c.Err(), errServerShutdown) {
				t.Errorf("server conn closed with %v", c.Err())
			}
			closed.Add(1)
		},
	})
	client := dial(t, srv.addr, ConnOptions{})
	other := dial(t, srv.addr, ConnOptions{})
	invoke(t, other, NewRequest(ReqHeartBeat, nil, nil))

	invokeErr := make(chan error, 1)
	go func() {
		_, err := client.Invoke(context.Background(), NewRequest(ReqPullMessage, nil, nil))
		invokeErr <- err
	}()
	recv(t, entered, "the handler to start")

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a reader stuck in its handler = %v, want DeadlineExceeded", err)
	}
	if err := recv(t, srv.serveErr, "Serve to return"); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	srv.serveErr <- ErrServerClosed // for the cleanup
	if _, err := net.Dial("tcp", srv.addr); err == nil {
		t.Error("listener still accepting after Shutdown")
	}
	if err := recv(t, invokeErr, "the client's invoke to fail"); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("client Invoke = %v", err)
	}

	close(release)
	ctx2, cancel2 := context.WithTimeout(context.Background(), waitLimit)
	defer cancel2()
	if err := srv.Shutdown(ctx2); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	// Shutdown returned only after every reader ran its OnConnClose hook.
	if n := closed.Load(); n != 2 {
		t.Fatalf("OnConnClose ran %d times, want 2", n)
	}
	if n := len(srv.Conns()); n != 0 {
		t.Fatalf("%d connections left", n)
	}
	if err := srv.Serve(newUnusedListener(t)); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown = %v", err)
	}
}

func newUnusedListener(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestShutdownFromHandler(t *testing.T) {
	var srvPtr atomic.Pointer[testServer]
	done := make(chan error, 1)
	srv := startServer(t, ServerOptions{Conn: ConnOptions{Handler: HandlerFunc(func(c *Conn, req *Command) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		done <- srvPtr.Load().Shutdown(ctx) // must not wait for its own reader
	})}})
	srvPtr.Store(srv)
	client := dial(t, srv.addr, ConnOptions{})
	_ = client.InvokeOneway(context.Background(), NewRequest(ReqUpdateBrokerConfig, nil, nil))
	if err := recv(t, done, "Shutdown in a handler"); err != nil {
		t.Fatalf("Shutdown from a handler: %v", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	causes := make(chan error, 1)
	srv := startServer(t, ServerOptions{
		Conn:        ConnOptions{Handler: echo, IdleTimeout: 100 * time.Millisecond},
		OnConnClose: func(c *Conn) { causes <- c.Err() },
	})
	client := dial(t, srv.addr, ConnOptions{})
	invoke(t, client, NewRequest(ReqHeartBeat, nil, nil))
	recv(t, client.Done(), "the idle connection to close")
	if err := recv(t, causes, "the server side to close"); !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "idle") {
		t.Fatalf("server closed with %v, want an idle timeout", err)
	}
}

func TestOneway(t *testing.T) {
	got := make(chan *Command, 1)
	srv := startServer(t, ServerOptions{Conn: ConnOptions{Handler: HandlerFunc(func(c *Conn, req *Command) {
		got <- req
	})}})
	client := dial(t, srv.addr, ConnOptions{})
	if err := client.InvokeOneway(context.Background(), NewRequest(ReqUpdateConsumerOffset, map[string]string{"commitOffset": "5"}, nil)); err != nil {
		t.Fatal(err)
	}
	req := recv(t, got, "the oneway request")
	if !req.IsOneway() || req.Ext("commitOffset") != "5" {
		t.Fatalf("got %v", req)
	}
}

func TestNilHandlerAnswersNotSupported(t *testing.T) {
	bare := startServer(t, ServerOptions{})
	c2 := dial(t, bare.addr, ConnOptions{})
	resp := invoke(t, c2, NewRequest(ReqQueryMessage, nil, nil))
	if resp.Code != RespRequestCodeNotSupported || !strings.Contains(resp.Remark, "12") {
		t.Fatalf("no handler: %v", resp)
	}
}

func TestMaxConns(t *testing.T) {
	srv := startServer(t, ServerOptions{Conn: ConnOptions{Handler: echo}, MaxConns: 1})
	first := dial(t, srv.addr, ConnOptions{})
	invoke(t, first, NewRequest(ReqHeartBeat, nil, nil))

	second := dial(t, srv.addr, ConnOptions{})
	recv(t, second.Done(), "the connection over the limit to be closed")
	if _, err := second.Invoke(context.Background(), NewRequest(ReqHeartBeat, nil, nil)); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Invoke over the limit: %v", err)
	}

	_ = first.Close()
	waitFor(t, "the server to drop the first connection", func() bool { return len(srv.Conns()) == 0 })
	third := dial(t, srv.addr, ConnOptions{})
	invoke(t, third, NewRequest(ReqHeartBeat, nil, nil))
}

func TestOutgoingFrameTooLarge(t *testing.T) {
	srv := startServer(t, ServerOptions{Conn: ConnOptions{Handler: echo}})
	client := dial(t, srv.addr, ConnOptions{MaxFrameSize: 1024})
	_, err := client.Invoke(context.Background(), NewRequest(ReqSendMessage, nil, make([]byte, 2000)))
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	if n := client.pendingCount(); n != 0 {
		t.Fatalf("%d pending entries", n)
	}
	resp := invoke(t, client, NewRequest(ReqSendMessage, map[string]string{"n": "small"}, make([]byte, 500)))
	if resp.Ext("n") != "small" || len(resp.Body) != 500 {
		t.Fatalf("small invoke after refusal: %v", resp)
	}
	if err := client.Reply(NewRequest(ReqHeartBeat, nil, nil)); err == nil {
		t.Fatal("Reply of a request accepted")
	}
}

func TestHandlerPanic(t *testing.T) {
	srv := startServer(t, ServerOptions{Conn: ConnOptions{Handler: HandlerFunc(func(*Conn, *Command) {
		panic("handler bug")
	})}})
	client := dial(t, srv.addr, ConnOptions{})
	resp := invoke(t, client, NewRequest(ReqHeartBeat, nil, nil))
	if resp.Code != RespSystemError {
		t.Fatalf("got %v, want SYSTEM_ERROR", resp)
	}
	recv(t, client.Done(), "the connection to close after the panic")
}

// TestServerInvokesClient runs a broker-to-client request over the client's
// own connection, the way CHECK_TRANSACTION_STATE and
// GET_CONSUMER_RUNNING_INFO travel.
func TestServerInvokesClient(t *testing.T) {
	type clientIDKey struct{}
	registered := make(chan *Conn, 1)
	srv := startServer(t, ServerOptions{Conn: ConnOptions{Handler: HandlerFunc(func(c *Conn, req *Command) {
		c.SetValue(clientIDKey{}, "10.0.0.5@123")
		_ = c.Reply(NewResponse(req, RespSuccess, ""))
		registered <- c
	})}})
	client := dial(t, srv.addr, ConnOptions{Handler: HandlerFunc(func(c *Conn, req *Command) {
		resp := NewResponse(req, RespSuccess, "")
		resp.Body = []byte(`{"running":true}`)
		_ = c.Reply(resp)
	})})
	invoke(t, client, NewRequest(ReqHeartBeat, nil, nil))
	sc := recv(t, registered, "the heartbeat")
	if sc.Value(clientIDKey{}) != "10.0.0.5@123" || sc.Value("other") != nil {
		t.Fatalf("values: %v", sc.Value(clientIDKey{}))
	}
	sc.SetValue(clientIDKey{}, nil)
	if sc.Value(clientIDKey{}) != nil {
		t.Fatal("SetValue(nil) did not delete")
	}
	resp := invoke(t, sc, NewRequest(ReqGetConsumerRunningInfo, map[string]string{"consumerGroup": "g"}, nil))
	if !bytes.Equal(resp.Body, []byte(`{"running":true}`)) {
		t.Fatalf("got %v", resp)
	}
	if sc.RemoteAddr().String() != client.LocalAddr().String() || sc.LocalAddr().String() != client.RemoteAddr().String() {
		t.Fatalf("addresses: %v %v / %v %v", sc.RemoteAddr(), sc.LocalAddr(), client.LocalAddr(), client.RemoteAddr())
	}
}

func TestWriteTimeoutClosesStuckConnection(t *testing.T) {
	// The peer never reads: a large frame fills the socket buffers and the
	// write deadline closes the connection.
	ln := newUnusedListener(t)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			accepted <- nc
		}
	}()
	client := dial(t, ln.Addr().String(), ConnOptions{WriteTimeout: 100 * time.Millisecond})
	peer := recv(t, accepted, "the accept")
	defer peer.Close()
	err := client.InvokeOneway(context.Background(), NewRequest(ReqSendMessage, nil, make([]byte, 15<<20)))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want a write timeout", err)
	}
	if errors.Is(err, ErrConnClosed) {
		recv(t, client.Done(), "Done after a partial write")
	}
}

func TestDialError(t *testing.T) {
	ln := newUnusedListener(t)
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := Dial(ctx, addr, ConnOptions{}); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
}

func TestGoroutineID(t *testing.T) {
	a := goroutineID()
	b := make(chan uint64)
	go func() { b <- goroutineID() }()
	if other := <-b; a == 0 || other == 0 || a == other {
		t.Fatalf("goroutine ids %d and %d", a, other)
	}
}

func ExampleConn_Invoke() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := NewServer(ServerOptions{Conn: ConnOptions{Handler: HandlerFunc(func(c *Conn, req *Command) {
		resp := NewResponse(req, RespSuccess, "")
		resp.SetExt("offset", "42")
		_ = c.Reply(resp)
	})}})
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Shutdown(context.Background()) }()

	ctx := context.Background()
	c, _ := Dial(ctx, ln.Addr().String(), ConnOptions{})
	defer c.Close()
	resp, _ := c.Invoke(ctx, NewRequest(ReqGetMaxOffset, map[string]string{"topic": "t", "queueId": "0"}, nil))
	off, _ := resp.ExtInt64("offset")
	fmt.Println(ResponseCodeName(resp.Code), off)
	// Output: SUCCESS 42
}

// TestRequestsServedAfterPeerLeft: a peer sends requests and closes its
// connection without reading the answers (rocketmq-client-go's shutdown
// commits its offsets so). Writing the answers fails, yet every request
// it sent is still served.
func TestRequestsServedAfterPeerLeft(t *testing.T) {
	var served atomic.Int32
	s := startServer(t, ServerOptions{Conn: ConnOptions{Handler: HandlerFunc(func(c *Conn, req *Command) {
		served.Add(1)
		_ = c.Reply(NewResponse(req, RespSuccess, strings.Repeat("x", 4096)))
	})}})
	const n = 200
	var frames []byte
	for i := range n {
		req := NewRequest(ReqUpdateConsumerOffset, map[string]string{"commitOffset": strconv.Itoa(i)}, nil)
		req.Opaque = int32(i + 1)
		var err error
		if frames, err = req.AppendFrame(frames, SerializeJSON); err != nil {
			t.Fatal(err)
		}
	}
	nc := sendRaw(t, s.addr, frames)
	// Closing with the first answers unread makes the kernel reset the
	// connection: the server's next writes fail.
	if err := nc.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every request to be served", func() bool { return served.Load() == n })
}
