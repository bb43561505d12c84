package client

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// quietGoroutines waits until the goroutine count stops falling (request
// goroutines of a setup finishing) and returns it.
func quietGoroutines(t *testing.T) int {
	t.Helper()
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}

func TestNewProducerOwnsItsClient(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	ctx := testCtx(t)
	if err := s.client(t).CreateTopic(ctx, TopicConfig{Name: "own", ReadQueues: 1, WriteQueues: 1}); err != nil {
		t.Fatal(err)
	}
	base := quietGoroutines(t)

	p, err := NewProducer(NameServers(s.nsAddr), ProducerGroup("g1"), RequestTimeout(4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if n := runtime.NumGoroutine(); n > base {
		t.Errorf("NewProducer started goroutines: %d, was %d", n, base)
	}
	p.c.mu.Lock()
	conns := len(p.c.conns)
	p.c.mu.Unlock()
	if conns != 0 || p.Client().cfg.requestTimeout != 4*time.Second || p.cfg.group != "g1" {
		t.Errorf("before the first send: %d connections, request timeout %v, group %q", conns, p.Client().cfg.requestTimeout, p.cfg.group)
	}
	sendOne(t, ctx, p, "own", "x")
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := p.Send(ctx, Message{Topic: "own", Body: []byte("y")}); !errors.Is(err, ErrClientClosed) || Retryable(err) {
		t.Errorf("Send after Close: %v", err)
	}
	if err := p.SendAsync(ctx, []Message{{Topic: "own", Body: []byte("y")}}, nil); !errors.Is(err, ErrClientClosed) {
		t.Errorf("SendAsync after Close: %v", err)
	}
	if _, err := p.Client().ListTopics(ctx); !errors.Is(err, ErrClientClosed) {
		t.Errorf("the owned Client is still open: %v", err)
	}
	waitGoroutines(t, base)

	// A shared Client stays open.
	c := s.client(t)
	shared, err := NewProducer(WithClient(c))
	if err != nil {
		t.Fatal(err)
	}
	sendOne(t, ctx, shared, "own", "z")
	if err := shared.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListTopics(ctx); err != nil {
		t.Errorf("the shared Client was closed: %v", err)
	}
	if _, err := NewProducer(WithClient(c), NameServers(s.nsAddr)); err == nil {
		t.Error("WithClient with NameServers accepted")
	}
}

func TestSendAsync(t *testing.T) {
	checkGoroutines(t)
	s := startStandalone(t, standaloneOpts{})
	ctx := testCtx(t)
	c := s.client(t)
	if err := c.CreateTopic(ctx, TopicConfig{Name: "async", ReadQueues: 2, WriteQueues: 2}); err != nil {
		t.Fatal(err)
	}
	p := newTestProducer(t, s, MaxInFlight(4))
	const n = 100
	var mu sync.Mutex
	var results []SendResult
	var errs []error
	calls := 0
	for i := range n {
		msgs := []Message{{Topic: "async", Body: []byte(fmt.Sprint(i))}}
		if i%10 == 0 { // some batches of two
			msgs = append(msgs, Message{Topic: "async", Body: []byte(fmt.Sprint(i, "b"))})
		}
		err := p.SendAsync(ctx, msgs, func(res []SendResult, err error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			results = append(results, res...)
			if err != nil {
				errs = append(errs, err)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.SendAsync(ctx, []Message{{Topic: "async"}}, nil); err == nil {
		t.Error("SendAsync of an empty body accepted")
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != n || len(errs) != 0 || len(results) != n+n/10 {
		t.Fatalf("%d callbacks, %d results, errors %v", calls, len(results), errs)
	}
	ids := map[string]bool{}
	offsets := map[int]map[int64]bool{}
	for _, r := range results {
		ids[r.MsgID] = true
		if offsets[r.QueueID] == nil {
			offsets[r.QueueID] = map[int64]bool{}
		}
		offsets[r.QueueID][r.QueueOffset] = true
	}
	if len(ids) != len(results) {
		t.Errorf("%d distinct ids for %d messages", len(ids), len(results))
	}
	for q, offs := range offsets {
		for o := range int64(len(offs)) {
			if !offs[o] {
				t.Errorf("queue %d: offset %d missing of %d", q, o, len(offs))
			}
		}
	}
	cs := mustConsumer(t, c, "async-check")
	if got := pullAll(t, ctx, cs, "async"); len(got) != len(results) {
		t.Errorf("pulled %d messages, sent %d", len(got), len(results))
	}
}

// A broker that never answers: SendAsync blocks once MaxInFlight sends are
// pending, and Close with a deadline abandons them and leaves no goroutine.
func TestSendAsyncBoundedAndAbandoned(t *testing.T) {
	checkGoroutines(t)
	b := startFake(t, func(*remoting.Command) *remoting.Command { return nil })
	ns := fakeNamesrv(t, "T", map[string]string{"b1": b.addr})
	base := quietGoroutines(t)
	p, err := NewProducer(NameServers(ns.addr), MaxInFlight(2), SendTimeout(time.Minute), SendRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	done := make(chan error, 3)
	cb := func(_ []SendResult, err error) { done <- err }
	msg := []Message{{Topic: "T", Body: []byte("x")}}
	for range 2 {
		if err := p.SendAsync(ctx, msg, cb); err != nil {
			t.Fatal(err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := p.SendAsync(sctx, msg, cb); !errors.Is(err, ErrTimeout) {
		t.Errorf("SendAsync with no free slot: %v, want ErrTimeout", err)
	}
	select {
	case err := <-done:
		t.Fatalf("a send ended early: %v", err)
	default:
	}
	cctx, ccancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer ccancel()
	if err := p.Close(cctx); !errors.Is(err, ErrTimeout) {
		t.Errorf("Close with sends pending past its deadline: %v, want ErrTimeout", err)
	}
	for range 2 {
		select {
		case err := <-done:
			if !errors.Is(err, ErrClientClosed) || !strings.Contains(err.Error(), "abandoned") {
				t.Errorf("abandoned send: %v", err)
			}
		default:
			t.Fatal("Close returned before the callbacks ran")
		}
	}
	waitGoroutines(t, base)
}

func TestSendAsyncCancelled(t *testing.T) {
	checkGoroutines(t)
	b := startFake(t, func(*remoting.Command) *remoting.Command { return nil })
	ns := fakeNamesrv(t, "T", map[string]string{"b1": b.addr})
	base := quietGoroutines(t)
	p, err := NewProducer(NameServers(ns.addr), SendTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	if err := p.SendAsync(ctx, []Message{{Topic: "T", Body: []byte("x")}}, func(_ []SendResult, err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	// Wait until the request is at the broker, then cancel.
	for deadline := time.Now().Add(waitLimit); len(b.requests()) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the send did not reach the broker")
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || Retryable(err) {
			t.Errorf("cancelled send: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the cancelled send did not end")
	}
	if err := p.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	waitGoroutines(t, base)
}

func TestEnvironment(t *testing.T) {
	for _, k := range []string{"NAMESRV", "CLIENT_ID", "DIAL_TIMEOUT", "REQUEST_TIMEOUT", "ROUTE_TTL", "SEND_TIMEOUT", "PRODUCER_GROUP"} {
		t.Setenv(EnvPrefix+k, "") // empty counts as unset
	}
	p, err := NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	c := p.Client()
	if got := c.NameServerAddrs(); len(got) != 1 || got[0] != DefaultNameServer || c.cfg.dialTimeout != DefaultDialTimeout ||
		c.cfg.requestTimeout != DefaultRequestTimeout || p.cfg.sendTimeout != DefaultSendTimeout || p.cfg.group != DefaultProducerGroup {
		t.Errorf("defaults: %+v %+v", c.cfg, p.cfg)
	}
	if id := c.ClientID(); !strings.Contains(id, "@") || id != c.ClientID() {
		t.Errorf("default client id %q", id)
	}

	t.Setenv("STRATA_NAMESRV", "10.0.0.1:9876; 10.0.0.2:9876")
	t.Setenv("STRATA_CLIENT_ID", "fn-1")
	t.Setenv("STRATA_DIAL_TIMEOUT", "2s")
	t.Setenv("STRATA_REQUEST_TIMEOUT", "7s")
	t.Setenv("STRATA_ROUTE_TTL", "1m")
	t.Setenv("STRATA_SEND_TIMEOUT", "1500ms")
	t.Setenv("STRATA_PRODUCER_GROUP", "env-group")
	p, err = NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	c = p.Client()
	if got := c.NameServerAddrs(); len(got) != 2 || got[1] != "10.0.0.2:9876" || c.ClientID() != "fn-1" || c.cfg.dialTimeout != 2*time.Second ||
		c.cfg.requestTimeout != 7*time.Second || c.cfg.routeTTL != time.Minute || p.cfg.sendTimeout != 1500*time.Millisecond || p.cfg.group != "env-group" {
		t.Errorf("from the environment: %+v %+v", c.cfg, p.cfg)
	}
	// Options win.
	p, err = NewProducer(NameServers("10.0.0.3:1"), ClientID("opt"), RequestTimeout(9*time.Second), SendTimeout(time.Second), ProducerGroup("opt-group"))
	if err != nil {
		t.Fatal(err)
	}
	c = p.Client()
	if got := c.NameServerAddrs(); len(got) != 1 || got[0] != "10.0.0.3:1" || c.ClientID() != "opt" || c.cfg.dialTimeout != 2*time.Second ||
		c.cfg.requestTimeout != 9*time.Second || p.cfg.sendTimeout != time.Second || p.cfg.group != "opt-group" {
		t.Errorf("options over the environment: %+v %+v", c.cfg, p.cfg)
	}
	// A Client reads the environment too; a shared one gives the producer
	// only its producer settings.
	c, err = New(DialTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.dialTimeout != time.Second || c.cfg.requestTimeout != 7*time.Second {
		t.Errorf("New: %+v", c.cfg)
	}
	// Bad values name the variable's field and fail.
	for k, v := range map[string]string{"STRATA_DIAL_TIMEOUT": "soon", "STRATA_REQUEST_TIMEOUT": "0s", "STRATA_NAMESRV": "nohost"} {
		t.Run(k, func(t *testing.T) {
			t.Setenv(k, v)
			if _, err := NewProducer(); err == nil {
				t.Errorf("%s=%q accepted", k, v)
			}
		})
	}
	t.Setenv("STRATA_SEND_TIMEOUT", "-1s")
	if _, err := NewProducer(WithClient(c)); err == nil {
		t.Error("STRATA_SEND_TIMEOUT=-1s accepted")
	}
}

func TestErrorSentinels(t *testing.T) {
	re := func(code int16) error {
		return fmt.Errorf("wrapped: %w", &ResponseError{Op: "SEND_MESSAGE_V2", Addr: "a", Code: code})
	}
	for _, tc := range []struct {
		name      string
		err       error
		is        error
		retryable bool
	}{
		{"not found", re(remoting.RespTopicNotExist), ErrTopicNotFound, false},
		{"busy", re(remoting.RespSystemBusy), ErrThrottled, true},
		{"no permission", re(remoting.RespNoPermission), ErrAuth, false},
		{"system error", re(remoting.RespSystemError), nil, true},
		{"service not available", re(remoting.RespServiceNotAvailable), nil, true},
		{"illegal", re(remoting.RespMessageIllegal), nil, false},
		{"timeout", timeoutError(context.DeadlineExceeded), ErrTimeout, true},
		{"cancelled", timeoutError(context.Canceled), context.Canceled, false},
		{"unreachable", fmt.Errorf("%w: x", ErrBrokerUnreachable), ErrBrokerUnreachable, true},
		{"no name server", fmt.Errorf("%w: x", ErrNameServerUnreachable), ErrNameServerUnreachable, true},
		{"closed", ErrClientClosed, ErrClientClosed, false},
		{"plain", errors.New("client: bad"), nil, false},
		{"nil", nil, nil, false},
	} {
		if tc.is != nil && !errors.Is(tc.err, tc.is) {
			t.Errorf("%s: %v is not %v", tc.name, tc.err, tc.is)
		}
		if got := Retryable(tc.err); got != tc.retryable {
			t.Errorf("%s: Retryable(%v) = %v", tc.name, tc.err, got)
		}
	}
	if errors.Is(re(remoting.RespSystemBusy), ErrAuth) || errors.Is(re(remoting.RespNoPermission), ErrThrottled) {
		t.Error("response codes map to the wrong sentinel")
	}
}
