package namesrv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
)

const waitLimit = 10 * time.Second

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		<-tick.C
	}
}

// checkNoLeaks waits until no goroutine of a name server, a remoting
// server or a remoting connection is left.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	var stacks string
	deadline := time.Now().Add(waitLimit)
	for {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "namesrv.(*Server)") &&
			!strings.Contains(stacks, "remoting.(*Conn).readLoop") &&
			!strings.Contains(stacks, "remoting.(*Server).Serve") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left after Shutdown:\n%s", stacks)
		}
		time.Sleep(2 * time.Millisecond) // polling, bounded by deadline
	}
}

// testLogger writes the server's logs to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// startNamesrv starts a name server on a loopback port; cleanup shuts it
// down and checks that no goroutine is left (so tests are not parallel).
// prepare, if set, runs before Start (to install a fake clock).
func startNamesrv(t *testing.T, cfg Config, prepare ...func(*Server)) (*Server, string) {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s := New(cfg)
	for _, p := range prepare {
		p(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	addr, err := s.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		checkNoLeaks(t)
	})
	return s, addr.String()
}

func dial(t *testing.T, addr string) *remoting.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := remoting.Dial(ctx, addr, remoting.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func invoke(t *testing.T, c *remoting.Conn, req *remoting.Command) *remoting.Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	resp, err := c.Invoke(ctx, req)
	if err != nil {
		t.Fatalf("Invoke %v: %v", req, err)
	}
	return resp
}

func register(t *testing.T, c *remoting.Conn, r Registration) RegisterResult {
	t.Helper()
	req, err := NewRegisterBrokerRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	res, err := DecodeRegisterBrokerResponse(invoke(t, c, req))
	if err != nil {
		t.Fatalf("registering %s: %v", r.BrokerAddr, err)
	}
	return res
}

func queryRoute(t *testing.T, c *remoting.Conn, topic string) (RouteData, *remoting.Command) {
	t.Helper()
	resp := invoke(t, c, NewGetRouteInfoRequest(topic))
	if resp.Code != remoting.RespSuccess {
		return RouteData{}, resp
	}
	r, err := DecodeRouteResponse(resp)
	if err != nil {
		t.Fatalf("route of %q: %v (body %s)", topic, err, resp.Body)
	}
	return r, resp
}

func brokerNames(r RouteData) []string {
	var names []string
	for _, bd := range r.BrokerDatas {
		names = append(names, bd.BrokerName)
	}
	return names
}

func TestServerRegisterAndRoute(t *testing.T) {
	s, addr := startNamesrv(t, Config{})
	leader, follower, other, client := dial(t, addr), dial(t, addr), dial(t, addr), dial(t, addr)
	topics := map[string]TopicConfig{"T": tc(4, 4, 6)}

	res := register(t, leader, registration("c1", "broker-a", "127.0.0.1:10911", 0, topics))
	equal(t, "leader result", res, RegisterResult{})
	res = register(t, follower, registration("c1", "broker-a", "127.0.0.1:10921", 1, topics))
	equal(t, "follower result", res, RegisterResult{MasterAddr: "127.0.0.1:10911", HAServerAddr: "127.0.0.1:11911"})
	register(t, other, registration("c1", "broker-b", "127.0.0.1:10931", 0, map[string]TopicConfig{"T": tc(2, 2, 4)}))

	r, resp := queryRoute(t, client, "T")
	want := RouteData{
		QueueDatas: []QueueData{
			{BrokerName: "broker-a", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6},
			{BrokerName: "broker-b", ReadQueueNums: 2, WriteQueueNums: 2, Perm: 4},
		},
		BrokerDatas: []BrokerData{
			{Cluster: "c1", BrokerName: "broker-a", BrokerAddrs: BrokerAddrs{0: "127.0.0.1:10911", 1: "127.0.0.1:10921"}},
			{Cluster: "c1", BrokerName: "broker-b", BrokerAddrs: BrokerAddrs{0: "127.0.0.1:10931"}},
		},
	}
	equal(t, "route", r, want)
	local, ok := s.Routes("T")
	equal(t, "Routes", local, want)
	if !ok {
		t.Fatal("Routes: no route")
	}
	if hasJSONWhitespace(resp.Body) {
		t.Fatalf("route body has whitespace: %s", resp.Body)
	}
	cr, err := clientDecode(string(resp.Body))
	if err != nil || cr.BrokerDatas[0].BrokerAddresses[1] != "127.0.0.1:10921" {
		t.Fatalf("client view = %+v, %v", cr, err)
	}

	// Unknown topic: 17 with a remark naming it; no body.
	_, resp = queryRoute(t, client, "NoSuchTopic")
	if resp.Code != remoting.RespTopicNotExist || !strings.Contains(resp.Remark, "NoSuchTopic") || len(resp.Body) != 0 {
		t.Fatalf("unknown topic: %v", resp)
	}
	if _, err := DecodeRouteResponse(resp); !errors.Is(err, ErrTopicNotExist) {
		t.Fatalf("DecodeRouteResponse: %v", err)
	}
	// No topic at all: an error, not a crash.
	resp = invoke(t, client, remoting.NewRequest(remoting.ReqGetRouteInfoByTopic, nil, nil))
	if resp.Code != remoting.RespSystemError {
		t.Fatalf("route without topic: %v", resp)
	}

	snap := s.Snapshot()
	if len(snap.Brokers) != 3 || snap.BrokerNames != 2 || snap.Topics != 1 || snap.Clusters != 1 {
		t.Fatalf("Snapshot = %+v", snap)
	}
}

func TestServerClusterInfoAndTopicList(t *testing.T) {
	_, addr := startNamesrv(t, Config{})
	b, client := dial(t, addr), dial(t, addr)
	register(t, b, registration("c1", "broker-b", "127.0.0.1:10931", 0, map[string]TopicConfig{"T": tc(4, 4, 6), "B": tc(1, 1, 6)}))
	register(t, b, registration("c2", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"A": tc(4, 4, 6)}))

	resp := invoke(t, client, remoting.NewRequest(remoting.ReqGetBrokerClusterInfo, nil, nil))
	want := `{"brokerAddrTable":{"broker-a":{"cluster":"c2","brokerName":"broker-a","brokerAddrs":{"0":"127.0.0.1:10911"}},` +
		`"broker-b":{"cluster":"c1","brokerName":"broker-b","brokerAddrs":{"0":"127.0.0.1:10931"}}},` +
		`"clusterAddrTable":{"c1":["broker-b"],"c2":["broker-a"]}}`
	if resp.Code != remoting.RespSuccess || string(resp.Body) != want {
		t.Fatalf("cluster info: %v\n got %s\nwant %s", resp, resp.Body, want)
	}
	resp = invoke(t, client, remoting.NewRequest(remoting.ReqGetAllTopicListFromNameServer, nil, nil))
	if resp.Code != remoting.RespSuccess || string(resp.Body) != `{"topicList":["A","B","T"]}` {
		t.Fatalf("topic list: %v %s", resp, resp.Body)
	}
}

func TestServerUnregister(t *testing.T) {
	s, addr := startNamesrv(t, Config{})
	b := dial(t, addr)
	register(t, b, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}))
	register(t, b, registration("c1", "broker-a", "127.0.0.1:10921", 1, map[string]TopicConfig{"T": tc(4, 4, 6)}))

	resp := invoke(t, b, NewUnregisterBrokerRequest("c1", "127.0.0.1:10911", "broker-a", 0))
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("unregister: %v", resp)
	}
	r, _ := s.Routes("T")
	equal(t, "addrs", r.BrokerDatas[0].BrokerAddrs, BrokerAddrs{1: "127.0.0.1:10921"})
	// Unknown brokers are fine; missing fields are not.
	if resp := invoke(t, b, NewUnregisterBrokerRequest("c1", "127.0.0.1:1", "nobody", 0)); resp.Code != remoting.RespSuccess {
		t.Fatalf("unregister of an unknown broker: %v", resp)
	}
	if resp := invoke(t, b, remoting.NewRequest(remoting.ReqUnregisterBroker, map[string]string{"brokerId": "x"}, nil)); resp.Code != remoting.RespSystemError {
		t.Fatalf("unregister with a bad header: %v", resp)
	}
	if resp := invoke(t, b, remoting.NewRequest(remoting.ReqUnregisterBroker, map[string]string{"brokerId": "0"}, nil)); resp.Code != remoting.RespSystemError {
		t.Fatalf("unregister without an address: %v", resp)
	}
	invoke(t, b, NewUnregisterBrokerRequest("c1", "127.0.0.1:10921", "broker-a", 1))
	if _, ok := s.Routes("T"); ok {
		t.Fatal("route left after both brokers unregistered")
	}
}

func TestServerBadRegistration(t *testing.T) {
	s, addr := startNamesrv(t, Config{})
	b := dial(t, addr)
	req, _ := NewRegisterBrokerRequest(registration("c1", "broker-a", "127.0.0.1:10911", 0, nil))
	req.ExtFields["brokerAddr"] = "not an address"
	resp := invoke(t, b, req)
	if resp.Code != remoting.RespSystemError || !strings.Contains(resp.Remark, "brokerAddr") {
		t.Fatalf("bad registration: %v", resp)
	}
	if _, err := DecodeRegisterBrokerResponse(resp); !errors.Is(err, ErrRejected) {
		t.Fatalf("DecodeRegisterBrokerResponse: %v", err)
	}
	if n := len(s.Snapshot().Brokers); n != 0 {
		t.Fatalf("%d brokers after a refused registration", n)
	}
}

func TestServerConnectionCloseRemovesBroker(t *testing.T) {
	closed := make(chan string, 16) // local addresses of the closed client conns
	s, addr := startNamesrv(t, Config{}, func(s *Server) {
		s.afterConnClose = func(c *remoting.Conn) { closed <- c.RemoteAddr().String() }
	})
	a, b := dial(t, addr), dial(t, addr)
	register(t, a, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}))
	register(t, b, registration("c1", "broker-b", "127.0.0.1:10931", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}))
	// broker-c registers on one connection, then again on another: closing
	// the first must not remove it.
	c1, c2 := dial(t, addr), dial(t, addr)
	register(t, c1, registration("c1", "broker-c", "127.0.0.1:10941", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}))
	register(t, c2, registration("c1", "broker-c", "127.0.0.1:10941", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}))

	_ = a.Close()
	_ = c1.Close()
	want := map[string]bool{a.LocalAddr().String(): true, c1.LocalAddr().String(): true}
	for len(want) > 0 {
		select {
		case got := <-closed:
			delete(want, got)
		case <-time.After(waitLimit):
			t.Fatalf("close hooks not run for %v", want)
		}
	}
	r, _ := s.Routes("T")
	equal(t, "brokers after the closes", brokerNames(r), []string{"broker-b", "broker-c"})
}

func TestServerExpiryWithShortTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s, addr := startNamesrv(t, Config{BrokerTimeout: timeout, ScanInterval: 10 * time.Millisecond})
	b, client := dial(t, addr), dial(t, addr)
	start := time.Now()
	register(t, b, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}))
	if _, ok := s.Routes("T"); !ok && time.Since(start) < timeout {
		t.Fatal("no route right after registering")
	}
	// The connection stays open and silent: the scanner must remove the
	// registration once the timeout has passed.
	waitFor(t, "the scanner to remove the silent broker", func() bool { return s.table.stored() == 0 })
	if elapsed := time.Since(start); elapsed < timeout {
		t.Fatalf("broker removed after %v, before the %v timeout", elapsed, timeout)
	}
	if _, resp := queryRoute(t, client, "T"); resp.Code != remoting.RespTopicNotExist {
		t.Fatalf("route after expiry: %v", resp)
	}
	if b.Err() != nil {
		t.Fatalf("the broker's connection closed: %v", b.Err())
	}
	// Registering again brings it back.
	again := time.Now()
	register(t, b, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}))
	if r, _ := queryRoute(t, client, "T"); len(r.BrokerDatas) != 1 && time.Since(again) < timeout {
		t.Fatalf("route after re-registering: %+v", r)
	}
}

// fakeClock is a clock tests move by hand; safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestServerExpiryWithFakeClock(t *testing.T) {
	clock := &fakeClock{now: t0}
	_, addr := startNamesrv(t, Config{}, func(s *Server) { s.now = clock.Now })
	b, client := dial(t, addr), dial(t, addr)
	register(t, b, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}))
	clock.Advance(DefaultBrokerTimeout)
	if r, resp := queryRoute(t, client, "T"); resp.Code != remoting.RespSuccess || len(r.QueueDatas) != 1 {
		t.Fatalf("route at the timeout: %v", resp)
	}
	clock.Advance(time.Millisecond)
	if _, resp := queryRoute(t, client, "T"); resp.Code != remoting.RespTopicNotExist {
		t.Fatalf("route after the timeout: %v", resp)
	}
}

func TestServerUnsupportedCodes(t *testing.T) {
	_, addr := startNamesrv(t, Config{})
	c := dial(t, addr)
	for _, tc := range []struct {
		code int16
		name string
	}{
		{remoting.ReqGetKVConfig, "GET_KV_CONFIG"},
		{remoting.ReqSendMessage, "SEND_MESSAGE"},
		{12345, "12345"},
		// Admin codes from loopback: allowed through, but not implemented.
		{remoting.ReqPutKVConfig, "PUT_KV_CONFIG"},
		{reqUpdateNamesrvConfig, "UPDATE_NAMESRV_CONFIG"},
		{reqGetNamesrvConfig, "GET_NAMESRV_CONFIG"},
	} {
		resp := invoke(t, c, remoting.NewRequest(tc.code, nil, nil))
		if resp.Code != remoting.RespRequestCodeNotSupported || !strings.Contains(resp.Remark, tc.name) ||
			!strings.Contains(resp.Remark, fmt.Sprint(tc.code)) {
			t.Errorf("code %d: %v; want REQUEST_CODE_NOT_SUPPORTED naming %s", tc.code, resp, tc.name)
		}
	}
}

func TestServerDeleteTopicFromLoopback(t *testing.T) {
	s, addr := startNamesrv(t, Config{})
	c := dial(t, addr)
	register(t, c, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6), "U": tc(4, 4, 6)}))
	resp := invoke(t, c, remoting.NewRequest(remoting.ReqDeleteTopicInNameSrv, map[string]string{"topic": "T"}, nil))
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("delete topic: %v", resp)
	}
	if _, ok := s.Routes("T"); ok {
		t.Fatal("T still routed")
	}
	if _, ok := s.Routes("U"); !ok {
		t.Fatal("U lost")
	}
	if resp := invoke(t, c, remoting.NewRequest(remoting.ReqDeleteTopicInNameSrv, nil, nil)); resp.Code != remoting.RespSystemError {
		t.Fatalf("delete without topic: %v", resp)
	}
}

// addrConn is a net.Conn that claims another remote address.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// TestServerRefusesAdminFromNonLoopback drives the server's handler over an
// in-memory pipe whose server end claims a non-loopback peer.
func TestServerRefusesAdminFromNonLoopback(t *testing.T) {
	s := New(Config{Logger: testLogger(t)})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = s.Shutdown(ctx)
		checkNoLeaks(t)
	})
	serverEnd, clientEnd := net.Pipe()
	peer := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 40000}
	sc := remoting.NewConn(addrConn{serverEnd, peer}, remoting.ConnOptions{Handler: remoting.HandlerFunc(s.serveRemoting)})
	cc := remoting.NewConn(clientEnd, remoting.ConnOptions{})
	t.Cleanup(func() { _ = cc.Close(); _ = sc.Close() })

	// Brokers are remote: registration is not an admin request.
	register(t, cc, registration("c1", "broker-a", "10.1.2.3:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}))
	for _, code := range []int16{remoting.ReqDeleteTopicInNameSrv, remoting.ReqPutKVConfig, reqDeleteKVConfig,
		reqUpdateNamesrvConfig, reqGetNamesrvConfig, reqWipeWritePermOfBroker, reqAddWritePermOfBroker, reqRegisterTopicInNameSrv} {
		resp := invoke(t, cc, remoting.NewRequest(code, map[string]string{"topic": "T", "configStorePath": "/etc/x"}, nil))
		if resp.Code != remoting.RespNoPermission || !strings.Contains(resp.Remark, codeName(code)) {
			t.Errorf("code %d from %v: %v; want NO_PERMISSION naming %s", code, peer, resp, codeName(code))
		}
	}
	if _, ok := s.Routes("T"); !ok {
		t.Fatal("a refused DELETE_TOPIC_IN_NAMESRV deleted the topic")
	}
	if r, _ := queryRoute(t, cc, "T"); len(r.QueueDatas) != 1 {
		t.Fatalf("route for a remote client: %+v", r)
	}
}

func TestConfigChangeAllowed(t *testing.T) {
	for _, c := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("127.8.9.10"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("0.0.0.0"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 1, Zone: "eth0"}, false},
		{&net.TCPAddr{}, false},
		{(*net.TCPAddr)(nil), false},
		{nil, false},
		{&net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1}, true},
		{&net.UDPAddr{IP: net.ParseIP("192.168.1.1"), Port: 1}, false},
		{&net.UnixAddr{Name: "/tmp/sock", Net: "unix"}, false},
		{fakeAddr("127.0.0.1:5"), true},
		{fakeAddr("[::1]:5"), true},
		{fakeAddr("localhost:5"), false}, // names are not resolved
		{fakeAddr("garbage"), false},
	} {
		if got := configChangeAllowed(c.addr); got != c.want {
			t.Errorf("configChangeAllowed(%v) = %v, want %v", c.addr, got, c.want)
		}
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

func TestServerRouteExtender(t *testing.T) {
	var fail bool
	var mu sync.Mutex
	ext := func(topic string, brokers []BrokerState) map[string]json.RawMessage {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return map[string]json.RawMessage{"tier": json.RawMessage(`{broken`)}
		}
		return map[string]json.RawMessage{"tier": json.RawMessage(fmt.Sprintf(`{"topic":%q,"n":%d}`, topic, len(brokers)))}
	}
	_, addr := startNamesrv(t, Config{RouteExtender: ext})
	c := dial(t, addr)
	register(t, c, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}))
	r, resp := queryRoute(t, c, "T")
	if string(r.Extra["tier"]) != `{"topic":"T","n":1}` || !strings.HasSuffix(string(resp.Body), `,"tier":{"topic":"T","n":1}}`) {
		t.Fatalf("route with extension: %s", resp.Body)
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	r, resp = queryRoute(t, c, "T")
	if resp.Code != remoting.RespSuccess || r.Extra != nil || len(r.QueueDatas) != 1 {
		t.Fatalf("route with a faulty extension: %v %s", resp, resp.Body)
	}
}

func TestServerLifecycle(t *testing.T) {
	s := New(Config{Listen: "127.0.0.1:0"})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx); err == nil {
		t.Fatal("second Start succeeded")
	}
	// A second listener served by the caller's goroutine.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c := dial(t, ln.Addr().String())
	register(t, c, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}))

	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	select {
	case err := <-served:
		if !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Serve did not return")
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln2); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	if _, err := ln2.Accept(); err == nil {
		t.Fatal("Serve after Shutdown left the listener open")
	}
	if _, err := s.Start(ctx); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Start after Shutdown: %v", err)
	}
	if c.Err() == nil {
		waitFor(t, "the client connection to close", func() bool { return c.Err() != nil })
	}
	checkNoLeaks(t)

	// Start on a busy port fails, and may be tried again.
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	busy := New(Config{Listen: other.Addr().String()})
	if _, err := busy.Start(ctx); err == nil {
		t.Fatal("Start on a busy port succeeded")
	}
	busy.cfg.Listen = "127.0.0.1:0"
	if _, err := busy.Start(ctx); err != nil {
		t.Fatalf("Start after a failed Start: %v", err)
	}
	if err := busy.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t)
}

func TestServerShutdownBeforeStart(t *testing.T) {
	s := New(Config{})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t)
}

var _ io.Writer = tWriter{}
