package e2e

// TestLambdaExample runs examples/lambda the way AWS Lambda's
// provided.al2023 runtime does: the test builds the function as a
// `bootstrap` binary, serves the Lambda Runtime API itself (an in-test
// HTTP server on loopback), and execs the bootstrap with
// AWS_LAMBDA_RUNTIME_API pointing at it, against a real strata process.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testlog"
)

// lambdaResult is examples/lambda's Result, as the function returns it.
type lambdaResult struct {
	MsgID  string `json:"msgId"`
	Topic  string `json:"topic"`
	Broker string `json:"broker"`
	Queue  int    `json:"queue"`
	Offset int64  `json:"offset"`
	Status string `json:"status"`
}

// lambdaError is the error document aws-lambda-go posts to
// /runtime/invocation/<id>/error.
type lambdaError struct {
	Message string `json:"errorMessage"`
	Type    string `json:"errorType"`
}

// TestLambdaExample builds examples/lambda with -tags lambda.norpc and runs
// it as Lambda would: five invocations whose messages must be stored with
// the request id as key, a freeze (SIGSTOP) during which strata restarts
// so that the function's pooled connections die, a thaw (SIGCONT) whose
// invocation must still succeed, an invocation with strata down that must
// fail as retryable within its deadline, and the SIGTERM shutdown.
func TestLambdaExample(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux: SIGSTOP/SIGCONT, /proc and Pdeathsig")
	}
	testStart := time.Now()

	bin := filepath.Join(t.TempDir(), "bootstrap")
	buildStart := time.Now()
	if err := buildLambda(bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %v", bin, time.Since(buildStart).Round(time.Millisecond))

	s := startStrata(t)
	topic := uniq("lambda")
	s.createTopic(t, topic, 4, false)

	rt := startRuntimeAPI(t)
	fn := startLambda(t, bin, rt.addr, s.namesrv, topic)

	// 1. Five invocations, the first one cold.
	events := []string{
		`{"order":1,"item":"widget","qty":3}`,
		`{"order":2,"nested":{"a":[1,2,3],"b":null},"note":"snowman \u2603 and ü"}`,
		`[1,"two",{"three":3}]`,
		`"just a string"`,
		`42`,
	}
	type sent struct {
		id     string
		event  string
		result lambdaResult
	}
	var sends []sent
	var warm []time.Duration
	for i, ev := range events {
		inv := rt.enqueue(ev, 10*time.Second)
		out := rt.await(t, fn, inv, 15*time.Second)
		res := checkResult(t, inv, out, topic)
		sends = append(sends, sent{inv.id, ev, res})
		if i == 0 {
			t.Logf("cold start: first invocation answered %v after the bootstrap was exec'd (handler ran %v)",
				out.at.Sub(fn.started).Round(time.Microsecond), out.at.Sub(out.handed).Round(time.Microsecond))
		} else {
			warm = append(warm, out.at.Sub(out.handed))
		}
	}
	t.Logf("warm invocations (event handed out → response posted): %v", roundAll(warm))

	// 2. Freeze, make the function's connections stale, thaw.
	if err := fn.signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	waitFor(t, 5*time.Second, "the bootstrap to be stopped", func() bool { return fn.state() == "T" },
		func() string { return "state " + fn.state() })
	if code, err := s.stop(15 * time.Second); err != nil || code != 0 {
		t.Fatalf("stop strata: exit code %d, err %v", code, err)
	}
	if err := s.restart(); err != nil {
		t.Fatalf("restart strata: %v\nlog:\n%s", err, s.logTail(40))
	}
	s.waitRoute(t, topic, 4)
	thawEvent := `{"order":6,"after":"thaw"}`
	inv := rt.enqueue(thawEvent, 10*time.Second) // pending when the process thaws, as in Lambda
	thawed := time.Now()
	if err := fn.signal(syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT: %v", err)
	}
	out := rt.await(t, fn, inv, 15*time.Second)
	res := checkResult(t, inv, out, topic)
	sends = append(sends, sent{inv.id, thawEvent, res})
	t.Logf("thawed invocation over a restarted strata answered %v after SIGCONT", out.at.Sub(thawed).Round(time.Microsecond))

	// 3. Every invocation's message is stored where its result says, with
	// its event as body and its request id as key.
	byPos := consumeLambdaTopic(t, s, topic)
	for _, sd := range sends {
		m, ok := byPos[msgPos{sd.result.Queue, sd.result.Offset}]
		if !ok {
			t.Errorf("invocation %s: no message at queue %d offset %d", sd.id, sd.result.Queue, sd.result.Offset)
			continue
		}
		if string(m.Body) != sd.event {
			t.Errorf("invocation %s: body %q, want the event %q", sd.id, m.Body, sd.event)
		}
		if len(m.Keys) != 1 || m.Keys[0] != sd.id {
			t.Errorf("invocation %s: keys %q, want the request id", sd.id, m.Keys)
		}
		if m.MsgID != sd.result.MsgID {
			t.Errorf("invocation %s: stored MsgID %s, result says %s", sd.id, m.MsgID, sd.result.MsgID)
		}
		if m.BrokerName != sd.result.Broker {
			t.Errorf("invocation %s: stored on broker %s, result says %s", sd.id, m.BrokerName, sd.result.Broker)
		}
	}
	if extra := len(byPos) - len(sends); extra > 0 {
		// Allowed (at least once), but worth knowing.
		t.Logf("%d more message(s) stored than invocations: a retried send stored a copy", extra)
	}

	// 4. With strata down, an invocation fails as retryable, in time.
	if code, err := s.stop(15 * time.Second); err != nil || code != 0 {
		t.Fatalf("stop strata: exit code %d, err %v", code, err)
	}
	inv = rt.enqueue(`{"order":7,"strata":"down"}`, 3*time.Second)
	out = rt.await(t, fn, inv, 6*time.Second)
	le := checkError(t, inv, out)
	if !strings.Contains(le.Message, "(retryable)") {
		t.Errorf("invocation with strata down: error %q does not say (retryable)", le.Message)
	}
	if !out.at.Before(inv.deadline) {
		t.Errorf("invocation with strata down: error posted %v after its deadline", out.at.Sub(inv.deadline))
	}
	t.Logf("invocation with strata down failed in %v (deadline 3s): %s: %s",
		out.at.Sub(out.handed).Round(time.Microsecond), le.Type, le.Message)

	// 5. Shutdown: SIGTERM runs the function's callback, which closes the
	// producer and exits, inside Lambda's 500 ms grace before SIGKILL.
	if err := fn.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	termAt := time.Now()
	select {
	case <-fn.exited:
		t.Logf("the bootstrap exited %v after SIGTERM: %v", time.Since(termAt).Round(time.Millisecond), fn.exitErr())
	case <-time.After(2 * time.Second):
		t.Errorf("the bootstrap still runs 2s after SIGTERM (Lambda would SIGKILL it after 500 ms)")
		if err := fn.kill(); err != nil {
			t.Errorf("SIGKILL: %v", err)
		}
	}
	if p := rt.problems(); len(p) > 0 {
		t.Errorf("Runtime API protocol problems:\n%s", strings.Join(p, "\n"))
	}
	if !rt.extensionRegistered() {
		t.Errorf("the function did not register aws-lambda-go's SIGTERM extension (GoLangEnableSIGTERM)")
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("bootstrap output:\n%s", fn.output())
	}
	t.Logf("TestLambdaExample took %v", time.Since(testStart).Round(time.Millisecond))
}

// checkResult fails the test unless out is a successful invocation whose
// response is a complete Result for topic, and returns it.
func checkResult(t *testing.T, inv *lambdaInvocation, out lambdaOutcome, topic string) lambdaResult {
	t.Helper()
	if out.kind != "response" {
		t.Fatalf("invocation %s (event %s): %s %s", inv.id, inv.event, out.kind, out.body)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(out.body, &fields); err != nil {
		t.Fatalf("invocation %s: response %q is not a JSON object: %v", inv.id, out.body, err)
	}
	for _, f := range []string{"msgId", "topic", "broker", "queue", "offset", "status"} {
		if _, ok := fields[f]; !ok {
			t.Fatalf("invocation %s: response %s has no %q", inv.id, out.body, f)
		}
	}
	var r lambdaResult
	if err := json.Unmarshal(out.body, &r); err != nil {
		t.Fatalf("invocation %s: response %q: %v", inv.id, out.body, err)
	}
	if r.MsgID == "" || r.Topic != topic || r.Broker == "" || r.Queue < 0 || r.Queue >= 4 || r.Offset < 0 || r.Status != "SEND_OK" {
		t.Fatalf("invocation %s: implausible result %s", inv.id, out.body)
	}
	return r
}

// checkError fails the test unless out is a failed invocation whose error
// document is a sendError, and returns it.
func checkError(t *testing.T, inv *lambdaInvocation, out lambdaOutcome) lambdaError {
	t.Helper()
	if out.kind != "error" {
		t.Fatalf("invocation %s (event %s): want an error, got %s %s", inv.id, inv.event, out.kind, out.body)
	}
	var le lambdaError
	if err := json.Unmarshal(out.body, &le); err != nil {
		t.Fatalf("invocation %s: error document %q: %v", inv.id, out.body, err)
	}
	if le.Type != "sendError" {
		t.Errorf("invocation %s: errorType %q, want sendError (%s)", inv.id, le.Type, out.body)
	}
	return le
}

// msgPos is where a message is stored.
type msgPos struct {
	queue  int
	offset int64
}

// consumeLambdaTopic reads topic from its first offset with a fresh
// consumer group until it has every message the broker holds, and returns
// them by position.
func consumeLambdaTopic(t *testing.T, s *strata, topic string) map[msgPos]client.MessageExt {
	t.Helper()
	var total int64
	for q := range 4 {
		total += s.maxOffset(t, topic, q)
	}
	cs, err := client.NewConsumer(client.NameServers(s.namesrv), client.ConsumerGroup(uniq("lambda_cg")),
		client.Subscribe(topic, "*"), client.StartFrom(client.FromFirstOffset), client.LongPoll(500*time.Millisecond))
	if err != nil {
		t.Fatalf("new consumer: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	defer func() {
		if err := cs.Close(ctx); err != nil {
			t.Errorf("consumer Close: %v", err)
		}
	}()
	out := map[msgPos]client.MessageExt{}
	for int64(len(out)) < total {
		msgs, err := cs.Receive(ctx, 0)
		if err != nil {
			t.Fatalf("Receive after %d of %d messages: %v", len(out), total, err)
		}
		for _, m := range msgs {
			out[msgPos{m.QueueID, m.QueueOffset}] = m
		}
	}
	return out
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Microsecond)
	}
	return out
}

// buildLambda builds examples/lambda for this machine as Lambda's
// provided.al2023 runtime wants it: a binary without the RPC mode.
func buildLambda(out string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goTool, "build", "-tags", "lambda.norpc", "-o", out, "./examples/lambda")
	build.Dir = ".." // the module root; tests run in the package directory
	if o, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -tags lambda.norpc ./examples/lambda: %w\n%s", err, o)
	}
	return nil
}

// ---------------------------------------------------------------------------
// The function's process.

// lambdaProc is the running bootstrap.
type lambdaProc struct {
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{} // closed once the process has exited
	waitErr error         // set before exited is closed
	out     *testlog.Buffer
}

// startLambda execs the bootstrap with the environment Lambda gives a
// provided.al2023 function (and nothing of the test's, so that no STRATA_*
// variable leaks in); it is killed when the test ends.
func startLambda(t *testing.T, bin, runtimeAPI, namesrv, topic string) *lambdaProc {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"LANG=en_US.UTF-8",
		"TZ=:UTC",
		"AWS_LAMBDA_RUNTIME_API=" + runtimeAPI,
		"AWS_LAMBDA_FUNCTION_NAME=strata-lambda-e2e",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/strata-lambda-e2e",
		"AWS_LAMBDA_LOG_STREAM_NAME=2025/01/01/[$LATEST]e2e",
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_REGION=us-east-1",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_EXECUTION_ENV=AWS_Lambda_provided.al2023",
		"LAMBDA_TASK_ROOT=" + filepath.Dir(bin),
		"LAMBDA_RUNTIME_DIR=" + filepath.Dir(bin),
		"_HANDLER=bootstrap",
		"STRATA_NAMESRV=" + namesrv,
		"STRATA_TOPIC=" + topic,
	}
	p := &lambdaProc{cmd: cmd, exited: make(chan struct{}), out: &testlog.Buffer{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// The child must not outlive the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Signal(syscall.SIGCONT) // in case the test stopped in a freeze
			if err := p.kill(); err != nil {
				t.Errorf("kill the bootstrap: %v", err)
			}
		}
	})
	return p
}

func (p *lambdaProc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// exitErr is the process's exit status; call it only after exited.
func (p *lambdaProc) exitErr() error { return p.waitErr }

func (p *lambdaProc) signal(sig os.Signal) error {
	if !p.running() {
		return fmt.Errorf("the bootstrap has exited: %v", p.waitErr)
	}
	return p.cmd.Process.Signal(sig)
}

// kill sends SIGKILL and waits up to 10 s for the process to go.
func (p *lambdaProc) kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("the bootstrap did not exit within 10s of SIGKILL")
	}
}

// state returns the process's state letter from /proc (R, S, T, …).
func (p *lambdaProc) state() string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/stat")
	if err != nil {
		return "?"
	}
	// pid (comm) state …; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+3 > len(s) {
		return "?"
	}
	return s[i+2 : i+3]
}

func (p *lambdaProc) output() string { return p.out.String() }

// ---------------------------------------------------------------------------
// The Lambda Runtime API (2018-06-01), and the Extensions API (2020-01-01)
// as far as aws-lambda-go's WithEnableSIGTERM uses it.

// lambdaInvocation is one event handed to the function.
type lambdaInvocation struct {
	id       string
	event    string
	deadline time.Time
	result   chan lambdaOutcome // buffered: the one answer
}

// lambdaOutcome is the function's answer to an invocation.
type lambdaOutcome struct {
	kind   string // "response" or "error"
	body   []byte
	handed time.Time // when GET /next returned the event
	at     time.Time // when the answer arrived
}

// runtimeAPI serves the Runtime API to one function process.
type runtimeAPI struct {
	addr    string
	pending chan *lambdaInvocation
	stop    chan struct{}

	mu       sync.Mutex
	inflight map[string]*lambdaInvocation // handed out, not answered
	handedAt map[string]time.Time
	bad      []string
	extID    string
}

// startRuntimeAPI serves the Runtime API on a loopback port until the test
// ends.
func startRuntimeAPI(t *testing.T) *runtimeAPI {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rt := &runtimeAPI{
		addr:     ln.Addr().String(),
		pending:  make(chan *lambdaInvocation, 16),
		stop:     make(chan struct{}),
		inflight: map[string]*lambdaInvocation{},
		handedAt: map[string]time.Time{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", rt.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		rt.answer(w, r, "response")
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", func(w http.ResponseWriter, r *http.Request) {
		rt.answer(w, r, "error")
	})
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rt.problem("init error: %s", body)
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST /2020-01-01/extension/register", rt.register)
	mux.HandleFunc("GET /2020-01-01/extension/event/next", func(w http.ResponseWriter, r *http.Request) {
		// Registered for no event: blocks for the process's lifetime.
		select {
		case <-r.Context().Done():
		case <-rt.stop:
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		rt.problem("unexpected request %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		close(rt.stop)
		_ = srv.Close()
	})
	return rt
}

// enqueue queues an invocation of event whose deadline is timeout from now.
func (rt *runtimeAPI) enqueue(event string, timeout time.Duration) *lambdaInvocation {
	inv := &lambdaInvocation{
		id:       newRequestID(),
		event:    event,
		deadline: time.Now().Add(timeout),
		result:   make(chan lambdaOutcome, 1),
	}
	rt.pending <- inv
	return inv
}

// await waits up to limit for inv's answer; it fails the test if the
// function exits or does not answer in time.
func (rt *runtimeAPI) await(t *testing.T, fn *lambdaProc, inv *lambdaInvocation, limit time.Duration) lambdaOutcome {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case out := <-inv.result:
		return out
	case <-fn.exited:
		t.Fatalf("invocation %s: the bootstrap exited: %v\noutput:\n%s", inv.id, fn.exitErr(), fn.output())
	case <-timer.C:
		t.Fatalf("invocation %s (event %s): no answer within %v\noutput:\n%s", inv.id, inv.event, limit, fn.output())
	}
	return lambdaOutcome{}
}

func (rt *runtimeAPI) next(w http.ResponseWriter, r *http.Request) {
	var inv *lambdaInvocation
	select {
	case inv = <-rt.pending:
	case <-r.Context().Done():
		return
	case <-rt.stop:
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	rt.mu.Lock()
	rt.inflight[inv.id] = inv
	rt.handedAt[inv.id] = time.Now()
	rt.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:strata-lambda-e2e")
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-"+strconv.FormatInt(time.Now().Unix(), 16)+"-"+inv.id[:24]+";Parent=0000000000000000;Sampled=0")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, inv.event)
}

func (rt *runtimeAPI) answer(w http.ResponseWriter, r *http.Request, kind string) {
	id := r.PathValue("id")
	body, err := io.ReadAll(r.Body)
	now := time.Now()
	if err != nil {
		rt.problem("%s of %s: reading the body: %v", kind, id, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rt.mu.Lock()
	inv, handed := rt.inflight[id], rt.handedAt[id]
	delete(rt.inflight, id)
	rt.mu.Unlock()
	if inv == nil {
		rt.problem("%s of unknown or already answered invocation %q: %s", kind, id, body)
		http.Error(w, "unknown request id", http.StatusBadRequest)
		return
	}
	inv.result <- lambdaOutcome{kind: kind, body: body, handed: handed, at: now}
	w.WriteHeader(http.StatusAccepted)
}

func (rt *runtimeAPI) register(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	name := r.Header.Get("Lambda-Extension-Name")
	if name == "" {
		rt.problem("extension register without Lambda-Extension-Name")
		http.Error(w, "no name", http.StatusBadRequest)
		return
	}
	id := newRequestID()
	rt.mu.Lock()
	rt.extID = name + "/" + id
	rt.mu.Unlock()
	w.Header().Set("Lambda-Extension-Identifier", id)
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"functionName":"strata-lambda-e2e","functionVersion":"$LATEST","handler":"bootstrap"}`)
}

func (rt *runtimeAPI) extensionRegistered() bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return strings.HasPrefix(rt.extID, "GoLangEnableSIGTERM/")
}

func (rt *runtimeAPI) problem(format string, args ...any) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.bad = append(rt.bad, fmt.Sprintf(format, args...))
}

func (rt *runtimeAPI) problems() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]string(nil), rt.bad...)
}

// newRequestID returns a request id shaped like Lambda's (a UUID).
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
