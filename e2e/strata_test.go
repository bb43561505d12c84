package e2e

// The helpers of the end-to-end tests: build the strata binary once, run
// `strata standalone` as a child process, talk to it with the real
// rocketmq-client-go and with Strata's remoting package, and wait for
// conditions with deadlines.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/strata-mq/strata/remoting"
)

// strataBin is the binary built by TestMain.
var strataBin string

func TestMain(m *testing.M) {
	rlog.SetLogLevel("error")
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if bin := os.Getenv("STRATA_E2E_BIN"); bin != "" {
		strataBin = bin // a binary built elsewhere
		return finish(m.Run())
	}
	dir, err := os.MkdirTemp("", "strata-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	strataBin = filepath.Join(dir, "strata")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := []string{"build", "-o", strataBin}
	if os.Getenv("STRATA_E2E_RACE") != "" {
		args = append(args, "-race")
	}
	build := exec.Command(goTool, append(args, "./cmd/strata")...)
	build.Dir = ".." // the module root; tests run in the package directory
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/strata: %v\n%s", err, out)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "e2e: built %s in %v\n", strataBin, time.Since(start).Round(time.Millisecond))
	}
	return finish(m.Run())
}

// finish stops the shared server and folds its problems into the exit code.
func finish(code int) int {
	if err := stopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: shared broker:", err)
		code = 1
	}
	return code
}

// ---------------------------------------------------------------------------
// The strata process.

// strata is one `strata standalone` child process and its data directory;
// it can be stopped, killed and started again on the same directory and
// ports.
type strata struct {
	name    string
	dataDir string
	broker  string // ip:port of the broker's client port
	namesrv string // ip:port of the name server
	http    string // ip:port of /healthz and /metrics
	logPath string
	extra   []string
	env     []string // added to the child's environment

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the current process has exited
	waitErr error         // the current process's exit status, once exited
	runs    int
}

var serverSeq atomic.Int32

// newStrata prepares (without starting) a standalone server in dir.
func newStrata(name, dir string, extra ...string) (*strata, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	s := &strata{
		name:    fmt.Sprintf("%s#%d", name, serverSeq.Add(1)),
		dataDir: filepath.Join(dir, "data"),
		broker:  ports[0], namesrv: ports[1], http: ports[2],
		logPath: filepath.Join(dir, "strata.log"),
		extra:   extra,
	}
	return s, nil
}

// startStrata starts a standalone server owned by t: it is stopped (and
// its log checked for panics and data races) when the test ends.
func startStrata(t testing.TB, extra ...string) *strata {
	t.Helper()
	return startStrataEnv(t, nil, extra...)
}

// startStrataEnv is startStrata with variables added to the server's
// environment.
func startStrataEnv(t testing.TB, env []string, extra ...string) *strata {
	t.Helper()
	s, err := newStrata(t.Name(), t.TempDir(), extra...)
	if err != nil {
		t.Fatal(err)
	}
	s.env = env
	s.stopAtEnd(t, 80)
	if err := s.start(); err != nil {
		t.Fatalf("%s: %v\nlog:\n%s", s.name, err, s.logTail(80))
	}
	return s
}

// stopAtEnd stops s gracefully when t ends, fails t if its log reports
// problems, and shows the last tail lines of the log when t failed.
func (s *strata) stopAtEnd(t testing.TB, tail int) {
	t.Cleanup(func() {
		if s.running() {
			if code, err := s.stop(15 * time.Second); err != nil || code != 0 {
				t.Errorf("%s: graceful stop at the end of the test: exit code %d, err %v", s.name, code, err)
			}
		}
		if bad := s.logProblems(); len(bad) > 0 {
			t.Errorf("%s: its log reports problems:\n%s", s.name, strings.Join(bad, "\n"))
		}
		if t.Failed() || os.Getenv("STRATA_E2E_VERBOSE") != "" {
			t.Logf("%s: log tail:\n%s", s.name, s.logTail(tail))
		}
	})
}

// start runs the process and waits until it is ready: /healthz answers and
// the name server serves a route for TBW102 (the broker has registered).
func (s *strata) start() error {
	args := append([]string{"standalone",
		"--data-dir", s.dataDir,
		"--listen", s.broker,
		"--namesrv-listen", s.namesrv,
		"--http-listen", s.http,
		"--segment-size", "64MiB",
	}, s.extra...)
	if err := s.launch(args); err != nil {
		return err
	}
	if err := s.waitReady(20 * time.Second); err != nil {
		s.dumpAndKill()
		return err
	}
	return nil
}

// launch starts the strata binary with args, its output appended to the
// node's log; the caller waits for whatever readiness it needs.
func (s *strata) launch(args []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && !s.exitedLocked() {
		return errors.New("already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	s.runs++
	fmt.Fprintf(logf, "=== e2e: start #%d of %s at %s\n", s.runs, s.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(strataBin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(append(os.Environ(), "GORACE=halt_on_error=0"), s.env...)
	// The child must not outlive the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", strataBin, err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited, s.waitErr = cmd, exited, nil
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(exited)
	}()
	return nil
}

// waitClusterReady waits until /healthz answers and query (a cluster-info
// request to the node's name server, signed or over TLS as the node
// needs) succeeds and lists the node's broker, if it has one.
func (s *strata) waitClusterReady(timeout time.Duration, query func() (*remoting.Command, error)) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	healthy := false
	var last string
	for {
		if !s.running() {
			return fmt.Errorf("process exited before it was ready: %v", s.exitErr())
		}
		if !healthy {
			if resp, err := hc.Get("http://" + s.http + "/healthz"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				healthy = resp.StatusCode == http.StatusOK
			}
		}
		if healthy {
			resp, err := query()
			switch {
			case err != nil:
				last = err.Error()
			case resp.Code != remoting.RespSuccess:
				last = fmt.Sprintf("code %d %q", resp.Code, resp.Remark)
			case s.broker == "" || strings.Contains(string(resp.Body), `"`+s.broker+`"`):
				return nil
			default:
				last = "the broker is not registered yet"
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %v (healthz %v): %s", timeout, healthy, last)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (s *strata) exitedLocked() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// running reports whether the current process is alive.
func (s *strata) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil && !s.exitedLocked()
}

func (s *strata) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	for {
		if !s.running() {
			return fmt.Errorf("process exited before it was ready: %v", s.exitErr())
		}
		if resp, err := hc.Get("http://" + s.http + "/healthz"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("/healthz not ready within %v", timeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
	// The broker registers with the name server right after it starts.
	for {
		resp, err := invoke(s.namesrv, remoting.ReqGetBrokerClusterInfo, nil, nil)
		if err == nil && resp.Code == remoting.RespSuccess && bytes.Contains(resp.Body, []byte(`"`+s.broker+`"`)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("broker not registered with the name server within %v: %v %v", timeout, resp, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (s *strata) exitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waitErr
}

// signal sends sig to the current process.
func (s *strata) signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.exitedLocked() {
		return errors.New("not running")
	}
	return s.cmd.Process.Signal(sig)
}

// wait waits up to timeout for the process to exit and returns its exit
// code (-1 if killed by a signal).
func (s *strata) wait(timeout time.Duration) (int, error) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return 0, errors.New("never started")
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		return 0, fmt.Errorf("did not exit within %v", timeout)
	}
	return cmd.ProcessState.ExitCode(), nil
}

// stop sends SIGTERM and waits up to timeout for the exit code; a process
// still running then is dumped (its goroutines go to the log) and killed.
func (s *strata) stop(timeout time.Duration) (int, error) {
	if err := s.signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	code, err := s.wait(timeout)
	if err != nil {
		s.dumpAndKill()
	}
	return code, err
}

// dumpAndKill makes a hung process write its goroutines to its log
// (SIGQUIT), then kills it.
func (s *strata) dumpAndKill() {
	if s.signal(syscall.SIGQUIT) == nil {
		if _, err := s.wait(5 * time.Second); err == nil {
			return
		}
	}
	s.kill()
}

// kill sends SIGKILL and waits for the process to go.
func (s *strata) kill() error {
	if err := s.signal(syscall.SIGKILL); err != nil {
		return err
	}
	_, err := s.wait(10 * time.Second)
	return err
}

// restart starts the server again on the same data directory and ports.
func (s *strata) restart() error {
	if s.running() {
		return errors.New("still running")
	}
	return s.start()
}

// logProblems returns the log lines that show a crash or a data race.
func (s *strata) logProblems() []string {
	b, _ := os.ReadFile(s.logPath)
	var bad []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") ||
			strings.Contains(l, "WARNING: DATA RACE") || strings.Contains(l, "handler panic") {
			bad = append(bad, l)
		}
	}
	return bad
}

func (s *strata) logTail(n int) string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Ports for the servers come from below the kernel's ephemeral range, so
// that no client connection (nor a listener on port 0) can take one between
// the check here and the child's bind, and none is handed out twice.
var ports struct {
	mu   sync.Mutex
	used map[int]bool
}

// freePorts returns n distinct free loopback addresses.
func freePorts(n int) ([]string, error) {
	lo, hi := 10000, ephemeralLow()
	if hi-lo < 1000 {
		lo = 1024
	}
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
	}
	var out []string
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000 {
			return nil, errors.New("no free loopback port below the ephemeral range")
		}
		p := lo + mathrand.IntN(hi-lo)
		if ports.used[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		ports.used[p] = true
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// ephemeralLow returns the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 1024 {
				return n
			}
		}
	}
	return 32768
}

// The shared server serves the tests that need no process of their own.
var shared struct {
	once sync.Once
	s    *strata
	dir  string
	err  error
}

func sharedStrata(t testing.TB) *strata {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "strata-e2e-shared-")
		if shared.err != nil {
			return
		}
		shared.s, shared.err = newStrata("shared", shared.dir)
		if shared.err != nil {
			return
		}
		if shared.err = shared.s.start(); shared.err != nil {
			shared.err = fmt.Errorf("%w\nlog:\n%s", shared.err, shared.s.logTail(80))
		}
	})
	if shared.err != nil {
		t.Fatalf("shared strata: %v", shared.err)
	}
	return shared.s
}

// stopShared stops the shared server gracefully and checks its exit code
// and log.
func stopShared() error {
	if shared.s == nil {
		return nil
	}
	s := shared.s
	defer os.RemoveAll(shared.dir)
	var errs []error
	if s.running() {
		if code, err := s.stop(15 * time.Second); err != nil {
			errs = append(errs, err)
		} else if code != 0 {
			errs = append(errs, fmt.Errorf("exit code %d after SIGTERM", code))
		}
	}
	if bad := s.logProblems(); len(bad) > 0 {
		errs = append(errs, fmt.Errorf("log reports problems:\n%s", strings.Join(bad, "\n")))
	}
	if len(errs) > 0 || os.Getenv("STRATA_E2E_VERBOSE") != "" {
		fmt.Fprintf(os.Stderr, "e2e: shared strata log tail:\n%s\n", s.logTail(120))
	}
	return errors.Join(errs...)
}

// ---------------------------------------------------------------------------
// Raw remoting requests (Strata's own codec) for setup and inspection.

// invoke sends one request to addr on a fresh connection.
func invoke(addr string, code int16, ext map[string]string, body []byte) (*remoting.Command, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := remoting.Dial(ctx, addr, remoting.ConnOptions{})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Invoke(ctx, remoting.NewRequest(code, ext, body))
}

// route returns the name server's route body for topic.
func (s *strata) route(topic string) ([]byte, error) {
	resp, err := invoke(s.namesrv, remoting.ReqGetRouteInfoByTopic, map[string]string{"topic": topic}, nil)
	if err != nil {
		return nil, err
	}
	if resp.Code != remoting.RespSuccess || len(resp.Body) == 0 {
		return nil, fmt.Errorf("route of %s: code %d %s", topic, resp.Code, resp.Remark)
	}
	return resp.Body, nil
}

// waitRoute waits until the name server serves a route for topic with at
// least queues read queues.
func (s *strata) waitRoute(t testing.TB, topic string, queues int) {
	t.Helper()
	var last error
	waitFor(t, 10*time.Second, "route of "+topic, func() bool {
		body, err := s.route(topic)
		if err != nil {
			last = err
			return false
		}
		var r struct {
			QueueDatas []struct {
				ReadQueueNums int `json:"readQueueNums"`
			} `json:"queueDatas"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			last = fmt.Errorf("route body %q: %w", body, err)
			return false
		}
		n := 0
		for _, q := range r.QueueDatas {
			n += q.ReadQueueNums
		}
		last = fmt.Errorf("route has %d read queues", n)
		return n >= queues
	}, func() string { return fmt.Sprint(last) })
}

// createTopic creates a topic with the given queue count (UPDATE_AND_CREATE_TOPIC
// from loopback) and waits for its route.
func (s *strata) createTopic(t testing.TB, topic string, queues int, order bool) {
	t.Helper()
	resp, err := invoke(s.broker, remoting.ReqUpdateAndCreateTopic, map[string]string{
		"topic": topic, "defaultTopic": "TBW102", "readQueueNums": strconv.Itoa(queues),
		"writeQueueNums": strconv.Itoa(queues), "perm": "6", "topicFilterType": "SINGLE_TAG",
		"topicSysFlag": "0", "order": strconv.FormatBool(order),
	}, nil)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("create topic %s: code %d %s", topic, resp.Code, resp.Remark)
	}
	s.waitRoute(t, topic, queues)
}

// maxOffset returns GET_MAX_OFFSET of topic/queue.
func (s *strata) maxOffset(t testing.TB, topic string, queue int) int64 {
	t.Helper()
	resp, err := invoke(s.broker, remoting.ReqGetMaxOffset, map[string]string{"topic": topic, "queueId": strconv.Itoa(queue)}, nil)
	if err != nil {
		t.Fatalf("max offset of %s/%d: %v", topic, queue, err)
	}
	n, err := strconv.ParseInt(resp.Ext("offset"), 10, 64)
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("max offset of %s/%d: code %d %s, offset %q", topic, queue, resp.Code, resp.Remark, resp.Ext("offset"))
	}
	return n
}

// metric returns the sum of the samples of a Prometheus metric whose
// labels include each of labels (written name="value").
func (s *strata) metric(name string, labels ...string) (float64, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + s.http + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var sum float64
	found := false
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name) || (len(l) > len(name) && l[len(name)] != ' ' && l[len(name)] != '{') {
			continue
		}
		if !containsAll(l, labels) {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, err
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("metric %s not found", name)
	}
	return sum, sc.Err()
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------
// rocketmq-client-go clients.

var nameSeq atomic.Int64

// uniq makes a topic, group or instance name unique within the run.
func uniq(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), nameSeq.Add(1))
}

func (s *strata) resolver() primitive.NsResolver {
	return primitive.NewPassthroughResolver([]string{s.namesrv})
}

// newProducer starts a producer with its own group and client instance;
// it is shut down when the test ends.
func (s *strata) newProducer(t testing.TB, opts ...producer.Option) rocketmq.Producer {
	t.Helper()
	all := append([]producer.Option{
		producer.WithNsResolver(s.resolver()),
		producer.WithGroupName(uniq("pg")),
		producer.WithInstanceName(uniq("p")),
	}, opts...)
	p, err := rocketmq.NewProducer(all...)
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("start producer: %v", err)
	}
	t.Cleanup(func() { p.Shutdown() })
	return p
}

// pushConsumer is a push consumer with a view of the queues it holds.
type pushConsumer struct {
	rocketmq.PushConsumer
	name  string
	topic string // subscribed by subscribeAndStart
	// held returns the queue ids of topic currently assigned to it.
	held func(topic string) []int
	// committed returns, per queue of topic it holds, the offset it has
	// consumed up to (what it commits to the broker).
	committed func(topic string) map[int]int64
	closeOnce sync.Once
}

func (c *pushConsumer) shutdown() {
	c.closeOnce.Do(func() {
		if raceDetector && c.topic != "" {
			// The client's Shutdown races with its own in-flight first
			// rebalance (rmqClient.close); let that finish.
			settle(func() bool { return len(c.held(c.topic)) > 0 })
		}
		c.PushConsumer.Shutdown()
	})
}

// settle polls cond for up to 5 s; it is for the client's benefit only.
func settle(cond func() bool) {
	for deadline := time.Now().Add(5 * time.Second); !cond() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// newPushConsumer creates (without starting) a push consumer of group with
// its own client instance; it is shut down when the test ends.
func (s *strata) newPushConsumer(t testing.TB, group string, opts ...consumer.Option) *pushConsumer {
	t.Helper()
	name := uniq("c")
	all := append([]consumer.Option{
		consumer.WithNsResolver(s.resolver()),
		consumer.WithGroupName(group),
		consumer.WithInstance(name),
	}, opts...)
	pc, err := consumer.NewPushConsumer(all...)
	if err != nil {
		t.Fatalf("new push consumer: %v", err)
	}
	c := &pushConsumer{PushConsumer: pc, name: name}
	c.held = func(topic string) []int {
		var ids []int
		for mq := range pc.GetConsumerRunningInfo(false).MQTable {
			if mq.Topic == topic {
				ids = append(ids, mq.QueueId)
			}
		}
		return ids
	}
	c.committed = func(topic string) map[int]int64 {
		out := map[int]int64{}
		for mq, pq := range pc.GetConsumerRunningInfo(false).MQTable {
			if mq.Topic == topic {
				out[mq.QueueId] = pq.CommitOffset
			}
		}
		return out
	}
	t.Cleanup(c.shutdown)
	return c
}

// waitCommitted waits until c has consumed every queue of topic it holds up
// to the broker's max offset, so that its shutdown commits everything: a
// message handed to the callback counts only once the callback has
// returned.
func (s *strata) waitCommitted(t testing.TB, c *pushConsumer, topic string) {
	t.Helper()
	want := map[int]int64{}
	for q := range c.committed(topic) {
		want[q] = s.maxOffset(t, topic, q)
	}
	if len(want) == 0 {
		t.Fatalf("%s holds no queue of %s", c.name, topic)
	}
	waitFor(t, 15*time.Second, "the consumer's offsets to reach the end of "+topic, func() bool {
		got := c.committed(topic)
		for q, w := range want {
			if got[q] < w {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("committed %v, max offsets %v", c.committed(topic), want) })
}

// subscribeAndStart subscribes c to topic with expr and starts it.
func (c *pushConsumer) subscribeAndStart(t testing.TB, topic, expr string,
	f func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error)) {
	t.Helper()
	if err := c.Subscribe(topic, consumer.MessageSelector{Type: consumer.TAG, Expression: expr}, f); err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	c.topic = topic
	if err := c.Start(); err != nil {
		t.Fatalf("start consumer of %s: %v", topic, err)
	}
}

// ---------------------------------------------------------------------------
// Collecting consumed messages.

// got is one consumed message.
type got struct {
	consumer  string
	topic     string
	queue     int
	offset    int64
	msgID     string
	offsetID  string
	body      string
	tags      string
	keys      string
	props     map[string]string
	reconsume int32
	stored    time.Time
	at        time.Time
}

// collector records what consumers receive.
type collector struct {
	mu   sync.Mutex
	msgs []got
}

// handler returns a consume callback that records each message under the
// consumer's name and answers ConsumeSuccess.
func (c *collector) handler(name string) func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	return func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		c.add(name, msgs...)
		return consumer.ConsumeSuccess, nil
	}
}

func (c *collector) add(name string, msgs ...*primitive.MessageExt) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		c.msgs = append(c.msgs, got{
			consumer: name, topic: m.Topic, queue: m.Queue.QueueId, offset: m.QueueOffset,
			msgID: m.MsgId, offsetID: m.OffsetMsgId, body: string(m.Body), tags: m.GetTags(),
			keys: m.GetKeys(), props: m.GetProperties(), reconsume: m.ReconsumeTimes,
			stored: time.UnixMilli(m.StoreTimestamp), at: now,
		})
	}
}

func (c *collector) all() []got {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]got(nil), c.msgs...)
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// bodies counts the consumed messages by body.
func (c *collector) bodies() map[string]int {
	out := map[string]int{}
	for _, g := range c.all() {
		out[g.body]++
	}
	return out
}

// hasAll reports whether every body in want was consumed at least once.
func (c *collector) hasAll(want []string) bool {
	seen := c.bodies()
	for _, w := range want {
		if seen[w] == 0 {
			return false
		}
	}
	return true
}

// missing returns the bodies of want not consumed yet (at most 10).
func (c *collector) missing(want []string) []string {
	seen := c.bodies()
	var out []string
	for _, w := range want {
		if seen[w] == 0 {
			out = append(out, w)
			if len(out) == 10 {
				break
			}
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Waiting.

// waitFor polls cond every 20 ms until it holds or timeout passes, then
// fails the test with desc and, if given, detail().
func waitFor(t testing.TB, timeout time.Duration, desc string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("timed out after %v waiting for %s", timeout, desc)
			for _, d := range detail {
				msg += ": " + d()
			}
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sendSync sends msgs one by one and fails the test unless each is SendOK.
func sendSync(t testing.TB, p rocketmq.Producer, msgs ...*primitive.Message) []*primitive.SendResult {
	t.Helper()
	var out []*primitive.SendResult
	for _, m := range msgs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := p.SendSync(ctx, m)
		cancel()
		if err != nil {
			t.Fatalf("SendSync to %s: %v", m.Topic, err)
		}
		if r.Status != primitive.SendOK {
			t.Fatalf("SendSync to %s: status %v (%s)", m.Topic, r.Status, r)
		}
		out = append(out, r)
	}
	return out
}

// textMessages makes n messages for topic with bodies "<prefix>-<i>".
func textMessages(topic, prefix string, n int) ([]*primitive.Message, []string) {
	var msgs []*primitive.Message
	var bodies []string
	for i := range n {
		b := fmt.Sprintf("%s-%d", prefix, i)
		msgs = append(msgs, primitive.NewMessage(topic, []byte(b)))
		bodies = append(bodies, b)
	}
	return msgs, bodies
}
