package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/provision"
)

// jsSkipEnv, set to 1, skips the tests that need a real nats-server.
const jsSkipEnv = "STRATA_SKIP_NATS"

var (
	jsBinOnce sync.Once
	jsBin     string
	jsBinErr  error
)

// jsServerBinary builds nats-server once per machine (a minute or more
// the first time) and returns its path, or skips the test when
// STRATA_SKIP_NATS=1.
func jsServerBinary(t *testing.T) string {
	t.Helper()
	if os.Getenv(jsSkipEnv) == "1" {
		t.Skipf("%s=1: SKIPPING a test that needs a real nats-server (JetStream peer of strata bench)", jsSkipEnv)
	}
	jsBinOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		start := time.Now()
		jsBin, jsBinErr = provision.GoBinary(ctx, NATSServerModule, NATSServerVersion, "nats-server", t.Logf)
		t.Logf("nats-server %s ready in %v: %s", NATSServerVersion, time.Since(start).Round(time.Millisecond), jsBin)
	})
	if jsBinErr != nil {
		t.Fatalf("%v (set %s=1 to skip tests that need nats-server)", jsBinErr, jsSkipEnv)
	}
	return jsBin
}

// jsTestLogger sends the target's logs to t.Log.
func jsTestLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(jsTestWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type jsTestWriter struct{ t *testing.T }

func (w jsTestWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// jsStart starts a JetStream target for the test and stops it at
// its end.
func jsStart(t *testing.T, o JetStreamOptions) (*JetStream, string) {
	t.Helper()
	o.Binary = jsServerBinary(t)
	o.Logger = jsTestLogger(t)
	j := NewJetStream(o).(*JetStream)
	dir := t.TempDir()
	if err := j.Start(t.Context(), dir); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := j.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if pids := j.Pids(); pids != nil {
			t.Errorf("Pids after Stop = %v", pids)
		}
	})
	if len(j.Pids()) != 1 {
		t.Fatalf("Pids = %v, want one", j.Pids())
	}
	return j, dir
}

// jsProduce sends n distinct bodies ("<topic>/<tag>/<i>" padded to 1 KiB)
// to topics round-robin from 8 goroutines and returns the bodies sent.
func jsProduce(t *testing.T, p Producer, topics []string, tag string, n int) map[string]bool {
	t.Helper()
	var (
		mu   sync.Mutex
		sent = make(map[string]bool, n)
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make(chan error, 8)
	)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				topic := topics[i%len(topics)]
				body := fmt.Appendf(nil, "%s/%s/%d/", topic, tag, i)
				body = append(body, strings.Repeat("x", 1024-len(body))...)
				if err := p.Send(t.Context(), topic, body); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				sent[string(body)] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Send: %v", err)
	}
	return sent
}

// jsCollector gathers consumed bodies and signals when it has want of them.
type jsCollector struct {
	mu   sync.Mutex
	got  map[string]int
	want int
	full chan struct{}
}

func jsNewCollector(want int) *jsCollector {
	return &jsCollector{got: make(map[string]int), want: want, full: make(chan struct{})}
}

func (c *jsCollector) handle(body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got[string(body)]++
	if len(c.got) == c.want {
		close(c.full)
	}
}

// jsConsume runs Consume until the jsCollector is full (or a deadline) and
// returns what it got.
func jsConsume(t *testing.T, j *JetStream, topics []string, fromStart bool, c *jsCollector, whileRunning func()) map[string]int {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- j.Consume(ctx, topics, fromStart, c.handle) }()
	if whileRunning != nil {
		whileRunning()
	}
	select {
	case <-c.full:
	case err := <-done:
		t.Fatalf("Consume returned early: %v", err)
	case <-time.After(20 * time.Second):
		c.mu.Lock()
		n := len(c.got)
		c.mu.Unlock()
		t.Fatalf("consumed %d distinct messages of %d in 20 s", n, c.want)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Consume: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Consume did not return 10 s after its context ended")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got
}

func jsCheckSame(t *testing.T, sent map[string]bool, got map[string]int) {
	t.Helper()
	for body := range sent {
		if got[body] == 0 {
			t.Fatalf("message %.20q... sent but not consumed", body)
		}
	}
	for body, n := range got {
		if !sent[body] {
			t.Fatalf("consumed %.20q..., which was not sent", body)
		}
		if n != 1 {
			t.Errorf("message %.20q... consumed %d times", body, n)
		}
	}
}

// TestJetStreamRoundTrip produces 1000 messages over a topic's 16 queues
// and reads them back, with each durability setting.
func TestJetStreamRoundTrip(t *testing.T) {
	for _, syncAlways := range []bool{true, false} {
		t.Run("sync_always="+strconv.FormatBool(syncAlways), func(t *testing.T) {
			j, dir := jsStart(t, JetStreamOptions{SyncAlways: syncAlways})
			wantName := "jetstream sync_interval=default"
			if syncAlways {
				wantName = "jetstream sync_interval=always"
			}
			if j.Name() != wantName {
				t.Errorf("Name = %q, want %q", j.Name(), wantName)
			}
			conf, err := os.ReadFile(filepath.Join(dir, "nats-server.conf"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(string(conf), "sync_interval: always"); got != syncAlways {
				t.Errorf("config has sync_interval: always = %v, want %v:\n%s", got, syncAlways, conf)
			}

			topics := []string{"bench-1kb"}
			if err := j.CreateTopics(t.Context(), topics, 16); err != nil {
				t.Fatalf("CreateTopics: %v", err)
			}
			p, err := j.Producer(t.Context())
			if err != nil {
				t.Fatalf("Producer: %v", err)
			}
			defer p.Close()
			start := time.Now()
			sent := jsProduce(t, p, topics, "rt", 1000)
			t.Logf("%s: produced 1000 messages in %v", j.Name(), time.Since(start).Round(time.Millisecond))

			start = time.Now()
			got := jsConsume(t, j, topics, true, jsNewCollector(len(sent)), nil)
			t.Logf("%s: consumed them in %v", j.Name(), time.Since(start).Round(time.Millisecond))
			jsCheckSame(t, sent, got)
			if !strings.Contains(j.Note(), "stream-per-topic") {
				t.Errorf("Note = %q, want it to name the stream-per-topic mapping", j.Note())
			}
		})
	}
}

// TestJetStreamOneStreamNew reads, under the shared-stream mapping, only
// the topic asked for and only what is produced after Consume starts.
func TestJetStreamOneStreamNew(t *testing.T) {
	j, _ := jsStart(t, JetStreamOptions{Mapping: JetStreamOneStream})
	if err := j.CreateTopics(t.Context(), []string{"a", "b"}, 4); err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	p, err := j.Producer(t.Context())
	if err != nil {
		t.Fatalf("Producer: %v", err)
	}
	defer p.Close()
	old := jsProduce(t, p, []string{"a", "b"}, "old", 100) // before Consume: not wanted

	c := jsNewCollector(200)
	var sent map[string]bool
	got := jsConsume(t, j, []string{"a"}, false, c, func() {
		// Consume has started when its consumer exists; wait for it.
		jsWaitFor(t, 10*time.Second, "the consumer to exist", func() bool {
			info, err := j.js.Stream(t.Context(), JetStreamSharedStream)
			return err == nil && info.CachedInfo().State.Consumers == 1
		})
		all := jsProduce(t, p, []string{"a", "b"}, "new", 400)
		sent = make(map[string]bool)
		for body := range all {
			if strings.HasPrefix(body, "a/") {
				sent[body] = true
			}
		}
	})
	for body := range got {
		if old[body] {
			t.Fatalf("consumed %.20q..., produced before Consume started", body)
		}
	}
	jsCheckSame(t, sent, got)
}

// jsWaitFor polls cond until it holds or d passes.
func jsWaitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		<-tick.C
	}
}

// TestJetStreamStartErrors checks the errors a missing binary, a failed
// install or a taken port give, without nats-server.
func TestJetStreamStartErrors(t *testing.T) {
	missing := NewJetStream(JetStreamOptions{Binary: "/nonexistent/nats-server"})
	err := missing.Start(t.Context(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/nats-server") {
		t.Errorf("Start with a missing binary: %v", err)
	}
	if err := missing.Stop(t.Context()); err != nil {
		t.Errorf("Stop after a failed Start: %v", err)
	}

	if _, err := os.Stat("/bin/false"); err == nil {
		exits := NewJetStream(JetStreamOptions{Binary: "/bin/false", Logger: jsTestLogger(t)})
		err := exits.Start(t.Context(), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "exited before accepting clients") {
			t.Errorf("Start with a server that exits at once: %v", err)
		}
		if pids := exits.Pids(); pids != nil {
			t.Errorf("Pids after a failed Start = %v", pids)
		}
	}

	// Install failures: no go command, and a module the proxy refuses.
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // os.UserCacheDir: keep the real cache clean
	t.Setenv("GOPROXY", "off")
	refused := NewJetStream(JetStreamOptions{Version: "v2.0.0-strata-test-no-such-version", Logger: jsTestLogger(t)})
	err = refused.Start(t.Context(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "install nats-server v2.0.0-strata-test-no-such-version") ||
		!strings.Contains(err.Error(), "GOPROXY=off") {
		t.Errorf("Start with the proxy refusing the module: %v", err)
	}
	t.Logf("proxy refused: %v", err)
	t.Setenv("PATH", "")
	noGo := NewJetStream(JetStreamOptions{Version: "v2.0.0-strata-test-no-such-version", Logger: jsTestLogger(t)})
	err = noGo.Start(t.Context(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "go command") {
		t.Errorf("Start without the go command: %v", err)
	}
	t.Logf("no go command: %v", err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	taken := NewJetStream(JetStreamOptions{Binary: "/nonexistent/nats-server", Port: port})
	err = taken.Start(t.Context(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "port "+strconv.Itoa(port)+" on 127.0.0.1 is taken") {
		t.Errorf("Start on a taken port: %v", err)
	}
	t.Logf("port taken: %v", err)
	if _, err := taken.Producer(t.Context()); err == nil {
		t.Error("Producer on a target that is not started: no error")
	}
}

func TestJetStreamTopicNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"bench-1kb": true, "T_0001": true, "%RETRY%g": true,
		"": false, "a.b": false, "a*": false, "a>": false, "a b": false, "a/b": false, JetStreamSharedStream: false,
	} {
		if err := jsCheckTopic(name); (err == nil) != ok {
			t.Errorf("jsCheckTopic(%q) = %v, want ok=%v", name, err, ok)
		}
	}
	subjects := jsTopicSubjects("t", 3)
	if !slices.Equal(subjects, []string{"strata.t.0", "strata.t.1", "strata.t.2"}) {
		t.Errorf("jsTopicSubjects = %v", subjects)
	}
}

// jsMeasureEnv, set to 1, runs TestJetStreamMeasure: 64 synchronous
// publishers of 1 KiB for 10 s against each durability setting (and the
// 10,000-topic mappings), logging msgs/s and publish latency quantiles.
const jsMeasureEnv = "STRATA_NATS_MEASURE"

func TestJetStreamMeasure(t *testing.T) {
	if os.Getenv(jsMeasureEnv) != "1" {
		t.Skipf("set %s=1 to measure the JetStream peer", jsMeasureEnv)
	}
	dur := 10 * time.Second
	if d, err := time.ParseDuration(os.Getenv("STRATA_NATS_MEASURE_DURATION")); err == nil {
		dur = d
	}
	topics10k := make([]string, 10000)
	for i := range topics10k {
		topics10k[i] = fmt.Sprintf("t%05d", i)
	}
	for _, c := range []struct {
		name    string
		sync    bool
		mapping JetStreamMapping
		topics  []string
		queues  int
	}{
		{"1-topic-16-queues", true, JetStreamMappingAuto, []string{"bench"}, 16},
		{"1-topic-16-queues", false, JetStreamMappingAuto, []string{"bench"}, 16},
		{"10k-topics-one-stream", true, JetStreamOneStream, topics10k, 16},
		{"10k-topics-one-stream", false, JetStreamOneStream, topics10k, 16},
		{"10k-topics-stream-per-topic", true, JetStreamStreamPerTopic, topics10k, 16},
		{"10k-topics-stream-per-topic", false, JetStreamStreamPerTopic, topics10k, 16},
	} {
		if f := os.Getenv("STRATA_NATS_MEASURE_ONLY"); f != "" && !strings.Contains(c.name, f) {
			continue
		}
		t.Run(fmt.Sprintf("%s/sync_always=%v", c.name, c.sync), func(t *testing.T) {
			conns, _ := strconv.Atoi(os.Getenv("STRATA_NATS_MEASURE_CONNS"))
			j, _ := jsStart(t, JetStreamOptions{SyncAlways: c.sync, Mapping: c.mapping, PublishConns: conns})
			start := time.Now()
			if err := j.CreateTopics(t.Context(), c.topics, c.queues); err != nil {
				t.Fatalf("CreateTopics: %v", err)
			}
			created := time.Since(start)
			p, err := j.Producer(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			body := make([]byte, 1024)
			lats := make([][]time.Duration, 64)
			var next atomic.Uint64
			var wg sync.WaitGroup
			end := time.Now().Add(dur)
			begin := time.Now()
			for g := range lats {
				wg.Go(func() {
					for time.Now().Before(end) {
						topic := c.topics[(next.Add(1)-1)%uint64(len(c.topics))]
						s := time.Now()
						if err := p.Send(t.Context(), topic, body); err != nil {
							t.Errorf("Send: %v", err)
							return
						}
						lats[g] = append(lats[g], time.Since(s))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(begin)
			all := slices.Concat(lats...)
			slices.Sort(all)
			q := func(f float64) time.Duration { return all[min(len(all)-1, int(f*float64(len(all))))] }
			rss := ""
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", j.Pids()[0])); err == nil {
				for l := range strings.Lines(string(b)) {
					if strings.HasPrefix(l, "VmHWM:") {
						rss = strings.Join(strings.Fields(l)[1:], " ")
					}
				}
			}
			t.Logf("RESULT %s %s: created %d topics in %v; %d msgs in %v = %.0f msg/s; publish p50 %v p99 %v p99.9 %v max %v; server peak RSS %s",
				j.Name(), c.name, len(c.topics), created.Round(time.Millisecond), len(all), elapsed.Round(time.Millisecond),
				float64(len(all))/elapsed.Seconds(), q(0.5), q(0.99), q(0.999), all[len(all)-1], rss)

			// Drain the backlog from the start.
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var got atomic.Int64
			want := int64(len(all))
			drained := make(chan struct{})
			begin = time.Now()
			go func() {
				_ = j.Consume(ctx, c.topics, true, func([]byte) {
					if got.Add(1) == want {
						close(drained)
					}
				})
			}()
			select {
			case <-drained:
				t.Logf("RESULT %s %s: drained %d msgs in %v = %.0f msg/s", j.Name(), c.name, want,
					time.Since(begin).Round(time.Millisecond), float64(want)/time.Since(begin).Seconds())
			case <-time.After(2 * time.Minute):
				t.Errorf("drained %d of %d msgs in 2 min", got.Load(), want)
			}
		})
	}
}
