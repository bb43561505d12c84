package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/strata-mq/strata/remoting"
)

// The limits TestLoadProtection runs the broker with.
const (
	limMaxConns      = 200
	limMaxConnsPerIP = 20
	limMaxInflight   = 16
	limMaxHeldPulls  = 50
	// limGoodQueues is the well-behaved client's topic's queue count.
	limGoodQueues = 2
	// limGoodHolds is how many pulls the well-behaved consumer may have
	// held: one per queue it reads, its group's retry topic (one queue)
	// included.
	limGoodHolds = limGoodQueues + 1
	// limProgress is how many more messages the well-behaved client must
	// send and receive to count as progressing.
	limProgress = 25
)

// TestLoadProtection (issue 11): a well-behaved producer and push consumer
// (rocketmq-client-go, from 127.0.0.1) send and receive all along while
// attackers from other loopback addresses open connections past the
// per-address limit, hold connections open with frames sent one byte at a
// time, pipeline thousands of requests on one connection without reading
// the answers, and park more long-polling pulls than the broker holds. The
// extra connections are closed at once, the flood is answered SYSTEM_BUSY
// past --max-inflight, no more than --max-held-pulls pulls are held, the
// broker's memory stays bounded, and every message the good client sent is
// received.
func TestLoadProtection(t *testing.T) {
	t.Parallel()
	began := time.Now()
	s := startStrata(t,
		"--max-conns", strconv.Itoa(limMaxConns),
		"--max-conns-per-ip", strconv.Itoa(limMaxConnsPerIP),
		"--max-inflight", strconv.Itoa(limMaxInflight),
		"--max-held-pulls", strconv.Itoa(limMaxHeldPulls))
	topic := uniq("guarded")
	s.createTopic(t, topic, limGoodQueues, false)
	heldTopic := uniq("hoarded")
	s.createTopic(t, heldTopic, 1, false)

	// The attackers dial from other addresses of 127/8 (all routed to lo on
	// Linux), so that the per-address limit does not hit the good client.
	if nc, err := limDial(s.broker, 2); err != nil {
		t.Skipf("cannot dial from 127.0.0.2 (needs all of 127/8 on the loopback interface, as on Linux): %v", err)
	} else {
		nc.Close()
	}

	samp := limStartSampler(s)
	defer samp.stop()

	// 1. The well-behaved client, for the whole test.
	g := limStartGood(t, s, topic)
	defer g.stop()
	g.progress(t, "before the attacks")
	// PULL_MESSAGE requests answered at once (held pulls are not counted).
	pullMetric := func() float64 {
		v, _ := s.metric("strata_request_duration_seconds_count", `request="PULL_MESSAGE"`)
		return v
	}
	p0, p0At := pullMetric(), time.Now()
	g.progress(t, "before the attacks (pull rate baseline)")
	basePulls, baseSecs := pullMetric()-p0, time.Since(p0At).Seconds()

	// 2. Connections past the per-address limit.
	g.setPhase("connections past the per-address limit")
	t.Run("ConnsPerIP", func(t *testing.T) {
		const n = limMaxConnsPerIP + 10
		var conns []net.Conn
		defer func() {
			for _, nc := range conns {
				nc.Close()
			}
		}()
		for range n {
			nc, err := limDial(s.broker, 2)
			if err != nil {
				t.Fatalf("dial from 127.0.0.2: %v", err)
			}
			conns = append(conns, nc)
		}
		served, closed := limProbeAll(t, conns, topic)
		t.Logf("%d connections from 127.0.0.2: %d served, %d closed by the broker at once (limit %d per address)",
			n, served, closed, limMaxConnsPerIP)
		if served > limMaxConnsPerIP {
			t.Errorf("%d connections from one address served, want at most %d", served, limMaxConnsPerIP)
		} else if served < limMaxConnsPerIP {
			t.Errorf("only %d of %d connections from one address served, want exactly the limit %d", served, n, limMaxConnsPerIP)
		}
		if served+closed != n {
			t.Errorf("%d served + %d closed of %d connections", served, closed, n)
		}
		g.progress(t, "with 20 connections open from 127.0.0.2")
		for _, nc := range conns {
			nc.Close()
		}
		conns = nil
		// The address's count goes down as its connections close: it may
		// open as many again.
		var last string
		waitFor(t, 15*time.Second, "127.0.0.2 to be allowed 20 connections again after closing its first ones", func() bool {
			var again []net.Conn
			defer func() {
				for _, nc := range again {
					nc.Close()
				}
			}()
			for range limMaxConnsPerIP {
				nc, err := limDial(s.broker, 2)
				if err != nil {
					last = err.Error()
					return false
				}
				again = append(again, nc)
			}
			served, closed := limProbeAll(t, again, topic)
			last = fmt.Sprintf("%d served, %d closed", served, closed)
			return served == limMaxConnsPerIP
		}, func() string { return last })
	})
	if t.Failed() {
		return
	}

	// 3. Slow frames (slowloris): 15 connections each announce a 1 MiB frame
	// and send it 1 byte every 200 ms, until the end of the test.
	g.setPhase("slow frames")
	rss0 := metricOr0(s, "process_resident_memory_bytes")
	slow := limStartSlowloris(t, s, 15)
	defer slow.stop()
	g.progress(t, "while 15 connections from 127.0.0.3 send 1 MiB frames 1 byte per 200 ms")
	t.Logf("slowloris: broker resident memory %.0f MiB before, %.0f MiB with the 15 slow frames in progress",
		rss0/(1<<20), metricOr0(s, "process_resident_memory_bytes")/(1<<20))

	// 4. Flood: one connection pipelines 5000 requests and reads nothing
	// for a while.
	g.setPhase("request flood")
	t.Run("Flood", func(t *testing.T) {
		const n = 5000
		nc, err := limDial(s.broker, 4)
		if err != nil {
			t.Fatalf("dial from 127.0.0.4: %v", err)
		}
		defer nc.Close()
		var buf []byte
		for i := 1; i <= n; i++ {
			buf = limAppendRequest(t, buf, remoting.ReqGetMaxOffset, int32(i), map[string]string{"topic": topic, "queueId": "0"})
		}
		rssBefore, _ := s.metric("process_resident_memory_bytes")
		// The broker stops reading while its replies cannot be written
		// (TCP backpressure), so the write goes on in the background
		// while this end does not read.
		nc.SetDeadline(time.Now().Add(40 * time.Second))
		writeDone := make(chan error, 1)
		go func() {
			_, err := nc.Write(buf)
			writeDone <- err
		}()
		g.progress(t, "while 127.0.0.4 pipelines 5000 requests without reading the replies")
		rssDuring, _ := s.metric("process_resident_memory_bytes")
		// Now read everything.
		seen := make(map[int32]bool, n)
		var success, busy, other int
		var closed bool
		var readErr error
		for len(seen) < n {
			resp, err := remoting.ReadCommand(nc, 1<<20)
			if err != nil {
				if isClosed(err) {
					closed = true
				} else {
					readErr = err
				}
				break
			}
			if !resp.IsResponse() || resp.Opaque < 1 || resp.Opaque > n || seen[resp.Opaque] {
				t.Errorf("unexpected frame: %v", resp)
				continue
			}
			seen[resp.Opaque] = true
			switch resp.Code {
			case remoting.RespSuccess:
				success++
			case remoting.RespSystemBusy:
				busy++
			default:
				other++
				if other <= 3 {
					t.Errorf("flood reply with code %d: %v", resp.Code, resp)
				}
			}
		}
		werr := <-writeDone
		rssAfter, _ := s.metric("process_resident_memory_bytes")
		t.Logf("flood of %d pipelined GET_MAX_OFFSET: %d SUCCESS, %d SYSTEM_BUSY, %d other; connection closed by the broker: %v; write error: %v; "+
			"broker resident memory %.0f MiB before, %.0f MiB while unread, %.0f MiB after",
			n, success, busy, other, closed, werr, rssBefore/(1<<20), rssDuring/(1<<20), rssAfter/(1<<20))
		if readErr != nil {
			t.Errorf("reading the flood's replies: %v (after %d replies)", readErr, len(seen))
		}
		if busy == 0 && !closed {
			t.Errorf("all %d pipelined requests were served: none answered SYSTEM_BUSY past --max-inflight %d, and the connection stayed open", n, limMaxInflight)
		}
		if !closed && len(seen) != n {
			t.Errorf("%d of %d requests answered", len(seen), n)
		}
		for _, rss := range []float64{rssBefore, rssDuring, rssAfter} {
			if rss >= 1<<30 {
				t.Errorf("broker resident memory %.0f MiB, want below 1 GiB", rss/(1<<20))
			}
		}
		g.progress(t, "after the flood")
	})
	if t.Failed() {
		return
	}

	// 5. Held pulls: 100 long-polling pulls on an empty queue; at most 50
	// are held, the others are answered at once.
	g.setPhase("held pulls")
	t.Run("HeldPulls", func(t *testing.T) {
		const conns, perConn = 10, 10 // under --max-inflight on each connection
		const total = conns * perConn
		group := uniq("hoarder")
		var mu sync.Mutex
		answers := map[int32]*remoting.Command{}
		var readErrs []error
		stopping := make(chan struct{})
		var readers sync.WaitGroup
		var ncs []net.Conn
		defer func() {
			close(stopping)
			for _, nc := range ncs {
				nc.Close()
			}
			readers.Wait()
		}()
		answered := func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(answers)
		}
		for i := range conns {
			nc, err := limDial(s.broker, 5)
			if err != nil {
				t.Fatalf("dial from 127.0.0.5: %v", err)
			}
			ncs = append(ncs, nc)
			nc.SetDeadline(time.Now().Add(50 * time.Second))
			readers.Add(1)
			go func() {
				defer readers.Done()
				for {
					resp, err := remoting.ReadCommand(nc, 16<<20)
					if err != nil {
						select {
						case <-stopping:
						default:
							mu.Lock()
							readErrs = append(readErrs, err)
							mu.Unlock()
						}
						return
					}
					mu.Lock()
					answers[resp.Opaque] = resp
					mu.Unlock()
				}
			}()
			var buf []byte
			for j := range perConn {
				buf = limAppendRequest(t, buf, remoting.ReqPullMessage, int32(i*perConn+j+1), map[string]string{
					"consumerGroup": group, "topic": heldTopic, "queueId": "0", "queueOffset": "0",
					"maxMsgNums": "32", "sysFlag": strconv.Itoa(int(remoting.PullFlagSuspend)), "commitOffset": "0",
					"suspendTimeoutMillis": "20000", "subscription": "*", "subVersion": "0",
				})
			}
			if _, err := nc.Write(buf); err != nil {
				t.Fatalf("sending pulls: %v", err)
			}
		}
		// Every pull is either answered or held (the gauge also counts the
		// good consumer's held pulls, limGoodHolds at most).
		var heldNow float64
		waitFor(t, 10*time.Second, fmt.Sprintf("the pulls past the %d held to be answered at once", limMaxHeldPulls), func() bool {
			heldNow, _ = s.metric("strata_pulls_held")
			n := answered()
			return n >= total-limMaxHeldPulls && float64(n)+heldNow >= total
		}, func() string {
			mu.Lock()
			defer mu.Unlock()
			return fmt.Sprintf("%d of %d answered, the broker holds %v pulls (limit %d), read errors %v", len(answers), total, heldNow, limMaxHeldPulls, readErrs)
		})
		mu.Lock()
		early := map[int32]bool{}
		for op, resp := range answers {
			early[op] = true
			if resp.Code != remoting.RespPullNotFound {
				t.Errorf("pull %d answered at once with code %d %q, want PULL_NOT_FOUND (%d)", op, resp.Code, resp.Remark, remoting.RespPullNotFound)
			}
		}
		mu.Unlock()
		held := total - len(early)
		t.Logf("%d long-polling pulls on an empty queue: %d answered PULL_NOT_FOUND at once, %d held (limit %d; strata_pulls_held %v)",
			total, len(early), held, limMaxHeldPulls, heldNow)
		if held > limMaxHeldPulls {
			t.Errorf("%d pulls held, want at most %d", held, limMaxHeldPulls)
		}
		if held < limMaxHeldPulls-limGoodHolds {
			t.Errorf("only %d pulls held, want at least %d (the limit %d less the good consumer's %d)",
				held, limMaxHeldPulls-limGoodHolds, limMaxHeldPulls, limGoodHolds)
		}

		// While every hold slot is taken, the good consumer's pulls that
		// find nothing are answered at once too.
		p1, p1At := pullMetric(), time.Now()
		g.progress(t, "while the held pulls take every slot")
		satPulls, satSecs := pullMetric()-p1, time.Since(p1At).Seconds()
		t.Logf("PULL_MESSAGE answered at once (held ones excluded): %.0f/s while the hold slots were full, %.0f/s before the attacks "+
			"(a good pull that finds no slot is answered PULL_NOT_FOUND after a pause of at most a second)",
			satPulls/satSecs, basePulls/baseSecs)
		if n := answered(); n != len(early) {
			t.Errorf("%d more pulls answered while no message arrived: held pulls must wait for a message or their timeout", n-len(early))
		}

		// A message wakes every held pull.
		sendSync(t, g.p, primitive.NewMessage(heldTopic, []byte("wake")))
		waitFor(t, 10*time.Second, "every held pull to be answered once a message arrived", func() bool { return answered() == total },
			func() string { return fmt.Sprintf("%d of %d answered", answered(), total) })
		mu.Lock()
		woken := 0
		for op, resp := range answers {
			if early[op] {
				continue
			}
			woken++
			if resp.Code != remoting.RespSuccess || len(resp.Body) == 0 {
				t.Errorf("held pull %d answered with code %d %q and %d body bytes, want SUCCESS with the message",
					op, resp.Code, resp.Remark, len(resp.Body))
			}
		}
		if len(readErrs) > 0 {
			t.Errorf("reading pull answers: %v", readErrs)
		}
		mu.Unlock()
		t.Logf("one message sent: the %d held pulls answered SUCCESS with it", woken)
	})

	// The end: every message the good client sent was received.
	g.setPhase("end")
	g.stop()
	sent, fails := g.result()
	waitFor(t, 30*time.Second, "every message sent by the good producer to be received", func() bool { return g.col.hasAll(sent) },
		func() string { return fmt.Sprintf("missing %v", g.col.missing(sent)) })
	if len(fails) > 0 {
		for i, f := range fails {
			if i == 10 {
				t.Errorf("... %d send failures in all", len(fails))
				break
			}
			t.Errorf("the good producer's send of %s failed during %q (%v into the test): %v", f.body, f.phase, f.at.Sub(began).Round(time.Millisecond), f.err)
		}
	}
	dups := g.col.len() - len(sent)
	t.Logf("good client: %d messages sent, %d received (%d duplicates), %d send failures", len(sent), g.col.len(), dups, len(fails))

	slow.stop()
	slow.report(t)

	samp.stop()
	t.Logf("sampled over the test: broker resident memory at most %.0f MiB, strata_pulls_held at most %.0f", samp.maxRSS/(1<<20), samp.maxHeld)
	if samp.maxRSS >= 1<<30 {
		t.Errorf("broker resident memory reached %.0f MiB, want below 1 GiB", samp.maxRSS/(1<<20))
	}
	if samp.maxHeld > limMaxHeldPulls {
		t.Errorf("strata_pulls_held reached %.0f, want at most --max-held-pulls %d", samp.maxHeld, limMaxHeldPulls)
	}
	if !s.running() {
		t.Fatalf("the broker exited: %v", s.exitErr())
	}
	t.Logf("TestLoadProtection took %v", time.Since(began).Round(time.Millisecond))
}

// limDial connects to addr from 127.0.0.<host>.
func limDial(addr string, host byte) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, host)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// limAppendRequest appends a request frame with a JSON header to buf.
func limAppendRequest(t testing.TB, buf []byte, code int16, opaque int32, ext map[string]string) []byte {
	t.Helper()
	req := remoting.NewRequest(code, ext, nil)
	req.Opaque = opaque
	buf, err := req.AppendFrame(buf, remoting.SerializeJSON)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

// limProbeAll sends one GET_MAX_OFFSET on each connection and counts those
// served and those the broker closed.
func limProbeAll(t testing.TB, conns []net.Conn, topic string) (served, closed int) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, nc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := limProbe(nc, int32(i+1), topic)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case ok:
				served++
			case isClosed(err):
				closed++
			default:
				t.Errorf("connection %d: neither served nor closed: %v", i, err)
			}
		}()
	}
	wg.Wait()
	return served, closed
}

// limProbe sends one request on nc and reports whether it was answered.
func limProbe(nc net.Conn, opaque int32, topic string) (bool, error) {
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	defer nc.SetDeadline(time.Time{})
	req := remoting.NewRequest(remoting.ReqGetMaxOffset, map[string]string{"topic": topic, "queueId": "0"}, nil)
	req.Opaque = opaque
	if _, err := req.WriteTo(nc); err != nil {
		return false, err
	}
	resp, err := remoting.ReadCommand(nc, 1<<20)
	if err != nil {
		return false, err
	}
	if resp.Code != remoting.RespSuccess || resp.Opaque != opaque {
		return false, fmt.Errorf("unexpected answer %v", resp)
	}
	return true, nil
}

// ---------------------------------------------------------------------------
// The well-behaved client.

type limFailure struct {
	at    time.Time
	phase string
	body  string
	err   error
}

// limGood is a producer sending one message every 20 ms and a push
// consumer receiving them.
type limGood struct {
	p   rocketmq.Producer
	col collector

	mu    sync.Mutex
	phase string
	sent  []string
	fails []limFailure

	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
}

func limStartGood(t *testing.T, s *strata, topic string) *limGood {
	t.Helper()
	g := &limGood{phase: "warm-up", quit: make(chan struct{}), done: make(chan struct{})}
	c := s.newPushConsumer(t, uniq("good"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "*", g.col.handler("good"))
	g.p = s.newProducer(t)
	go func() {
		defer close(g.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-g.quit:
				return
			case <-tick.C:
			}
			body := "good-" + strconv.Itoa(i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			r, err := g.p.SendSync(ctx, primitive.NewMessage(topic, []byte(body)))
			cancel()
			if err == nil && r.Status != primitive.SendOK {
				err = fmt.Errorf("status %v", r.Status)
			}
			g.mu.Lock()
			if err != nil {
				g.fails = append(g.fails, limFailure{at: time.Now(), phase: g.phase, body: body, err: err})
			} else {
				g.sent = append(g.sent, body)
			}
			g.mu.Unlock()
		}
	}()
	return g
}

func (g *limGood) setPhase(p string) {
	g.mu.Lock()
	g.phase = p
	g.mu.Unlock()
}

func (g *limGood) counts() (sent, failed, received int) {
	g.mu.Lock()
	sent, failed = len(g.sent), len(g.fails)
	g.mu.Unlock()
	return sent, failed, g.col.len()
}

// progress waits until the good client has sent and received limProgress
// more messages.
func (g *limGood) progress(t testing.TB, during string) {
	t.Helper()
	s0, _, r0 := g.counts()
	waitFor(t, 20*time.Second, "the good producer and consumer to progress "+during, func() bool {
		s, _, r := g.counts()
		return s >= s0+limProgress && r >= r0+limProgress
	}, func() string {
		s, f, r := g.counts()
		msg := fmt.Sprintf("sent %d (+%d), received %d (+%d), %d send failures", s, s-s0, r, r-r0, f)
		g.mu.Lock()
		defer g.mu.Unlock()
		if f > 0 {
			msg += fmt.Sprintf(", last: %v", g.fails[f-1].err)
		}
		return msg
	})
}

func (g *limGood) stop() {
	g.stopOnce.Do(func() { close(g.quit) })
	<-g.done
}

func (g *limGood) result() (sent []string, fails []limFailure) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.sent...), append([]limFailure(nil), g.fails...)
}

// ---------------------------------------------------------------------------
// Slow frames.

type limSlowConn struct {
	nc       net.Conn
	sent     int // bytes of the frame after the length prefix
	err      error
	closedAt time.Time
}

// limSlowloris drips frames on connections from 127.0.0.3.
type limSlowloris struct {
	conns    []*limSlowConn
	began    time.Time
	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
}

const limSlowFrame = 1 << 20

func limStartSlowloris(t *testing.T, s *strata, n int) *limSlowloris {
	t.Helper()
	sl := &limSlowloris{began: time.Now(), quit: make(chan struct{}), done: make(chan struct{})}
	for range n {
		nc, err := limDial(s.broker, 3)
		if err != nil {
			t.Fatalf("dial from 127.0.0.3: %v", err)
		}
		sl.conns = append(sl.conns, &limSlowConn{nc: nc})
		nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write(prefix(limSlowFrame, nil)); err != nil {
			t.Fatalf("slow frame's length prefix: %v", err)
		}
	}
	go func() {
		defer close(sl.done)
		tick := time.NewTicker(200 * time.Millisecond) // pacing the attacker's slow writes
		defer tick.Stop()
		for {
			select {
			case <-sl.quit:
				return
			case <-tick.C:
			}
			for _, c := range sl.conns {
				if c.err != nil {
					continue
				}
				c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.nc.Write([]byte{0}); err != nil {
					c.err, c.closedAt = err, time.Now()
				} else {
					c.sent++
				}
			}
		}
	}()
	return sl
}

func (sl *limSlowloris) stop() {
	sl.stopOnce.Do(func() {
		close(sl.quit)
		<-sl.done
		for _, c := range sl.conns {
			c.nc.Close()
		}
	})
}

// report logs what became of the slow connections (after stop).
func (sl *limSlowloris) report(t testing.TB) {
	t.Helper()
	open, most := 0, 0
	var closed []string
	for _, c := range sl.conns {
		most = max(most, c.sent)
		if c.err == nil {
			open++
			continue
		}
		var how string
		switch {
		case errors.Is(c.err, syscall.EPIPE), errors.Is(c.err, syscall.ECONNRESET):
			how = "closed by the broker"
		default:
			how = c.err.Error()
		}
		closed = append(closed, fmt.Sprintf("after %v: %s", c.closedAt.Sub(sl.began).Round(time.Millisecond), how))
	}
	t.Logf("slowloris: %d of %d connections still open after %v, each at most %d bytes into its %d-byte frame; "+
		"the broker waits for the frame until its idle timeout (1.5 x the 120 s client timeout = 180 s) closes them: "+
		"expected, the per-address limit (%d) bounds how many one address holds", open, len(sl.conns),
		time.Since(sl.began).Round(time.Second), most, limSlowFrame, limMaxConnsPerIP)
	if len(closed) > 0 {
		t.Logf("slowloris: connections closed early: %s", strings.Join(closed, "; "))
	}
}

// ---------------------------------------------------------------------------
// Sampling the broker's metrics.

type limSampler struct {
	maxRSS, maxHeld float64
	stopOnce        sync.Once
	quit            chan struct{}
	done            chan struct{}
}

func limStartSampler(s *strata) *limSampler {
	sm := &limSampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(sm.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sm.quit:
				return
			case <-tick.C:
			}
			if v, err := s.metric("process_resident_memory_bytes"); err == nil {
				sm.maxRSS = max(sm.maxRSS, v)
			}
			if v, err := s.metric("strata_pulls_held"); err == nil {
				sm.maxHeld = max(sm.maxHeld, v)
			}
		}
	}()
	return sm
}

// stop ends the sampling; maxRSS and maxHeld may be read after it.
func (sm *limSampler) stop() {
	sm.stopOnce.Do(func() { close(sm.quit); <-sm.done })
}
