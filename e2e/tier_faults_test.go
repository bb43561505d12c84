package e2e

// Fault tests of the cold tier: a real MinIO behind a fault-injecting proxy
// (503 SlowDown, connection resets, a black hole), a missing bucket, wrong
// credentials, and an empty data directory whose tier cannot be read.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/strata-mq/strata/internal/miniotest"
	"github.com/strata-mq/strata/remoting"
)

// coldReadBound is how long a cold pull against an unavailable store may
// take: the tier's 10 s read timeout plus slack for a broker built with
// -race on a busy machine. The client's own timeout (30 s) must never be
// what ends it.
const coldReadBound = 15 * time.Second

// maxAckWait bounds how long a send may wait for its ack while the object
// store is failing (normally milliseconds; generous for -race on 2 cores).
const maxAckWait = 5 * time.Second

// minioEnv returns the environment that hands srv's root credentials to a
// strata child process.
func minioEnv(srv *miniotest.Server, secret string) []string {
	return []string{"MINIO_ROOT_USER=" + srv.AccessKey, "MINIO_ROOT_PASSWORD=" + secret}
}

// TestTierFaults: the cold tier's object store fails (answers 503
// SlowDown, resets connections, swallows requests) or is misconfigured (no
// bucket, wrong credentials) under a running broker, and a broker starts on
// an empty data directory whose tier cannot be read. One MinIO serves every
// case, each with its own bucket (and proxy) and broker. The broker on the
// empty data directory waits a minute for the manifest before it gives up,
// so it is started first and checked last.
func TestTierFaults(t *testing.T) {
	t.Parallel()
	srv := miniotest.Start(t)
	empty := startEmptyDataDir(t, srv)
	t.Run("Live", func(t *testing.T) {
		for _, c := range []struct {
			name string
			mode miniotest.Mode
		}{{"Outage503", miniotest.Mode503}, {"OutageReset", miniotest.ModeReset}, {"OutageBlackhole", miniotest.ModeBlackhole}} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				testTierOutage(t, srv, c.mode)
			})
		}
		t.Run("MissingBucket", func(t *testing.T) {
			t.Parallel()
			testTierMissingBucket(t, srv)
		})
		t.Run("WrongCredentials", func(t *testing.T) {
			t.Parallel()
			testTierWrongCredentials(t, srv)
		})
	})
	t.Run("EmptyDataDir", func(t *testing.T) { empty.check(t, srv) })
}

// testTierOutage: the object store behind the broker answers 503 SlowDown,
// resets every connection, or swallows requests without answering, for a
// while. Produce keeps working; offload stays pending and says why; no
// segment leaves the disk without its object and manifest entry; cold reads
// of offloaded offsets fail fast with SYSTEM_BUSY instead of hanging. Once
// the store is back, offload catches up, the hot segments go, and every
// message produced before, during and after the outage reads back at the
// offset its send was acknowledged with.
func testTierOutage(t *testing.T, srv *miniotest.Server, mode miniotest.Mode) {
	const queues, perPhase = 2, 160
	bucket := srv.NewBucket(t)
	proxy := miniotest.NewProxy(t, srv.Endpoint)
	s := startStrataEnv(t, minioEnv(srv, srv.SecretKey),
		"--tier", fmt.Sprintf("minio://%s/%s/cold", proxy.Addr, bucket),
		"--segment-size", "1MiB", "--hot-retention", "0", "--segment-max-age", "2s")
	topic := uniq("Outage")
	s.createTopic(t, topic, queues, false)
	p := s.newProducer(t)
	sent := newSentLog()

	// Before the outage: offloaded, and gone from the disk.
	sent.send(t, p, topic, "before", perPhase)
	waitTier(t, s, func(st tierStatus) bool {
		return st.Tier != nil && st.Tier.PendingSegments == 0 && queuesCold(st, topic) == perPhase && hotEmpty(st, topic)
	})
	errsBefore := metricOr0(s, "strata_tier_upload_errors_total")

	// The outage. Produce is unaffected.
	proxy.SetMode(mode)
	outageStart := time.Now()
	firstDuring := sent.next()
	sent.send(t, p, topic, "during", perPhase)
	sent.checkFast(t, "during", maxAckWait)
	// The segments that hold them (past the offloaded end of the log);
	// none may leave the disk before the store is back.
	kept := segmentFiles(t, s.dataDir, tierEndOffset(t, s))

	// A cold read of an offloaded offset (never read before, so no block of
	// it is cached) answers SYSTEM_BUSY within the read timeout; a hot read
	// of a message sent during the outage is served as usual.
	resp, took, err := pullOnce(s, topic, 0, 0, 30*time.Second)
	if err != nil {
		t.Fatalf("cold pull during the %s outage: %v after %v", mode, err, took)
	}
	if resp.Code != remoting.RespSystemBusy || !strings.Contains(resp.Remark, "retry later") {
		t.Fatalf("cold pull during the %s outage: code %s %q, want SYSTEM_BUSY with \"retry later\"",
			mode, remoting.ResponseCodeName(resp.Code), resp.Remark)
	}
	if took > coldReadBound {
		t.Fatalf("cold pull during the %s outage took %v, want at most %v", mode, took.Round(time.Millisecond), coldReadBound)
	}
	t.Logf("%s: cold pull answered %s in %v: %s", mode, remoting.ResponseCodeName(resp.Code), took.Round(time.Millisecond), resp.Remark)
	resp, _, err = pullOnce(s, topic, 0, firstDuring[0], 10*time.Second)
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("hot pull during the %s outage: %v %v", mode, err, resp)
	}

	// Offload stays pending, and says why.
	var last tierStatus
	waitFor(t, 60*time.Second, "offload to fail and stay pending", func() bool {
		last = tierStatusOf(t, s)
		if last.Tier == nil || last.Tier.PendingSegments == 0 {
			return false
		}
		switch mode {
		case miniotest.Mode503:
			return metricOr0(s, "strata_tier_upload_errors_total") >= errsBefore+2 &&
				strings.Contains(last.Tier.LastError, "SlowDown") &&
				strings.Contains(last.Tier.LastError, "object store unavailable")
		case miniotest.ModeReset:
			return metricOr0(s, "strata_tier_upload_errors_total") >= errsBefore+2 &&
				strings.Contains(last.Tier.LastError, "object store unavailable")
		default:
			// A black hole stalls an upload until the store client gives
			// up: three attempts of 30 s each (miniostore's response-header
			// timeout and minio-go's retries), so no upload error is
			// recorded for a minute and a half; the restart below checks
			// the error the broker reports. The read above already held
			// the outage for the read timeout.
			return true
		}
	}, func() string { b, _ := json.Marshal(last); return string(b) })
	if v := metricOr0(s, "strata_tier_pending_segments"); v < 1 {
		t.Errorf("strata_tier_pending_segments is %v during the outage", v)
	}
	if got := queuesCold(last, topic); got != perPhase {
		t.Fatalf("the cold tier grew to %d messages during the outage, want %d", got, perPhase)
	}
	if mode != miniotest.ModeBlackhole && !strings.Contains(readLog(t, s), "segment upload failed; will retry") {
		t.Errorf("the log does not report the failed uploads")
	}

	// Nothing sent during the outage has left the disk (the offloader has
	// failed twice and the retention loop has had seconds to act).
	if n := hotSegmentsBytes(t, s.dataDir); n < sent.bytes("during") {
		t.Fatalf("%d bytes of segments on disk, fewer than the %d sent during the outage", n, sent.bytes("during"))
	}
	now := segmentFiles(t, s.dataDir, 0)
	for name := range kept {
		if _, ok := now[name]; !ok {
			t.Fatalf("segment %s was deleted while the object store was down (before: %v, now: %v)", name, keys(kept), keys(now))
		}
	}
	checkHotHolds(t, tierStatusOf(t, s), topic, firstDuring, sent.next())
	t.Logf("%s: outage held for %v; %d segments pending; last error: %s", mode,
		time.Since(outageStart).Round(time.Millisecond), last.Tier.PendingSegments, last.Tier.LastError)

	if mode == miniotest.ModeBlackhole {
		// A broker restarted while the store swallows every request starts
		// anyway (its disk holds the log; offload waits), serves produce,
		// says why offload waits, and answers cold reads with SYSTEM_BUSY.
		if code, err := s.stop(20 * time.Second); err != nil || code != 0 {
			t.Fatalf("stop during the outage: exit code %d, %v", code, err)
		}
		restarted := time.Now()
		if err := s.start(); err != nil {
			t.Fatalf("restart during the outage: %v\n%s", err, s.logTail(40))
		}
		t.Logf("%s: restarted during the outage in %v", mode, time.Since(restarted).Round(time.Millisecond))
		p = s.newProducer(t)
		sent.send(t, p, topic, "restarted", perPhase/4)
		sent.checkFast(t, "restarted", maxAckWait)
		st := waitPendingWithError(t, s, topic, "load manifest", "object store unavailable")
		checkHotHolds(t, st, topic, firstDuring, sent.next())
		checkLogSays(t, s, "cold tier unavailable at start", "load manifest")
		resp, took, err := pullOnce(s, topic, 1, 0, 30*time.Second)
		if err != nil || resp.Code != remoting.RespSystemBusy || took > coldReadBound {
			t.Fatalf("cold pull after the restart during the outage: %v after %v: %v", err, took, resp)
		}
		now := segmentFiles(t, s.dataDir, 0)
		for name := range kept {
			if _, ok := now[name]; !ok {
				t.Fatalf("segment %s was deleted while the object store was down (before: %v, now: %v)", name, keys(kept), keys(now))
			}
		}
	}

	// The store is back: offload catches up and the hot tier empties.
	proxy.SetMode(miniotest.ModePass)
	recovered := time.Now()
	waitTier(t, s, func(st tierStatus) bool {
		return st.Tier != nil && st.Tier.PendingSegments == 0 && queuesCold(st, topic) == sent.total() && hotEmpty(st, topic)
	})
	t.Logf("%s: offload caught up %v after the store came back", mode, time.Since(recovered).Round(time.Millisecond))

	sent.send(t, p, topic, "after", perPhase)
	sent.check(t, s, topic, queues)
}

// misconfiguredBroker starts a broker without a cold tier, produces a first
// batch, and restarts it with tierURL and env, so that it starts on a data
// directory that already holds a log.
func misconfiguredBroker(t *testing.T, srv *miniotest.Server, tierURL string, env []string) (*strata, rocketmq.Producer, string, *sentLog) {
	t.Helper()
	const queues = 2
	s := startStrataEnv(t, minioEnv(srv, srv.SecretKey),
		"--tier", "none", "--segment-size", "1MiB", "--hot-retention", "0", "--segment-max-age", "2s")
	topic := uniq("Misconf")
	s.createTopic(t, topic, queues, false)
	sent := newSentLog()
	p := s.newProducer(t)
	sent.send(t, p, topic, "first", 60)
	if code, err := s.stop(20 * time.Second); err != nil || code != 0 {
		t.Fatalf("stop: exit code %d, %v", code, err)
	}
	s.extra = replaceFlag(s.extra, "--tier", tierURL)
	s.env = env
	if err := s.start(); err != nil {
		t.Fatalf("start with a misconfigured tier: %v\n%s", err, s.logTail(60))
	}
	// Produce works; the sealed segments wait for the tier.
	p = s.newProducer(t)
	sent.send(t, p, topic, "second", 60)
	return s, p, topic, sent
}

// testTierMissingBucket: a broker whose bucket does not exist starts on its
// data directory, serves produce, says which bucket is missing (log, tier
// status, admin tool) and keeps its segments; once the bucket is created,
// offload catches up.
func testTierMissingBucket(t *testing.T, srv *miniotest.Server) {
	bucket := fmt.Sprintf("strata-missing-%d", os.Getpid())
	s, p, topic, sent := misconfiguredBroker(t, srv,
		fmt.Sprintf("minio://%s/%s/cold", srv.Endpoint, bucket), minioEnv(srv, srv.SecretKey))

	what := []string{`"` + bucket + `"`, "does not exist"}
	st := waitPendingWithError(t, s, topic, what...)
	checkLogSays(t, s, "cold tier unavailable at start", `\"`+bucket+`\"`, "does not exist")
	checkHotHolds(t, st, topic, map[int]int64{0: 0, 1: 0}, sent.next())
	checkAdminTierStatus(t, s, "ready=false", "does not exist", bucket)

	// The operator creates the bucket: the manifest loader's next retry
	// finds it and offload catches up.
	srv.Bucket(t, bucket)
	total := sent.total()
	waitTier(t, s, func(st tierStatus) bool {
		return st.Tier != nil && st.Tier.Ready && st.Tier.PendingSegments == 0 && queuesCold(st, topic) == total && hotEmpty(st, topic)
	})
	sent.send(t, p, topic, "third", 40)
	sent.check(t, s, topic, 2)
}

// testTierWrongCredentials: a broker whose credentials the store rejects
// starts, serves produce, says the credentials are rejected and keeps its
// segments; restarted with the right ones, it offloads them.
func testTierWrongCredentials(t *testing.T, srv *miniotest.Server) {
	bucket := srv.NewBucket(t)
	s, _, topic, sent := misconfiguredBroker(t, srv,
		fmt.Sprintf("minio://%s/%s/cold", srv.Endpoint, bucket), minioEnv(srv, "not-the-secret"))

	st := waitPendingWithError(t, s, topic, "credentials rejected", "SignatureDoesNotMatch")
	checkLogSays(t, s, "cold tier unavailable at start", "credentials rejected", "SignatureDoesNotMatch")
	checkHotHolds(t, st, topic, map[int]int64{0: 0, 1: 0}, sent.next())
	checkAdminTierStatus(t, s, "ready=false", "credentials rejected")

	// The operator fixes the credentials and restarts: offload catches up.
	if code, err := s.stop(20 * time.Second); err != nil || code != 0 {
		t.Fatalf("stop: exit code %d, %v", code, err)
	}
	s.env = minioEnv(srv, srv.SecretKey)
	if err := s.start(); err != nil {
		t.Fatalf("restart with the right credentials: %v\n%s", err, s.logTail(60))
	}
	total := sent.total()
	waitTier(t, s, func(st tierStatus) bool {
		return st.Tier != nil && st.Tier.Ready && st.Tier.PendingSegments == 0 && queuesCold(st, topic) == total && hotEmpty(st, topic)
	})
	sent.send(t, s.newProducer(t), topic, "third", 40)
	sent.check(t, s, topic, 2)
}

// emptyDataDir is a broker started on an empty data directory whose tier
// bucket does not exist.
type emptyDataDir struct {
	bucket, tierURL  string
	dataDir, logPath string
	cmd              *exec.Cmd
	started          time.Time
	exited           chan struct{} // closed when cmd has exited
	waitErr          error         // cmd's exit status, once exited
}

// startEmptyDataDir starts `strata standalone` on an empty data directory
// with a missing bucket, without waiting for it; it is killed when the test
// ends if still running.
func startEmptyDataDir(t *testing.T, srv *miniotest.Server) *emptyDataDir {
	t.Helper()
	e := &emptyDataDir{bucket: fmt.Sprintf("strata-nobucket-%d", os.Getpid()), exited: make(chan struct{})}
	e.tierURL = fmt.Sprintf("minio://%s/%s/cold", srv.Endpoint, e.bucket)
	addrs, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e.dataDir, e.logPath = filepath.Join(dir, "data"), filepath.Join(dir, "strata.log")
	logf, err := os.Create(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own copy
	e.cmd = exec.Command(strataBin, "standalone", "--data-dir", e.dataDir, "--listen", addrs[0],
		"--namesrv-listen", addrs[1], "--http-listen", addrs[2], "--segment-size", "1MiB", "--tier", e.tierURL)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	e.cmd.Env = append(append(os.Environ(), "GORACE=halt_on_error=0"), minioEnv(srv, srv.SecretKey)...)
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	e.started = time.Now()
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { e.waitErr = e.cmd.Wait(); close(e.exited) }()
	t.Cleanup(func() {
		select {
		case <-e.exited:
		default:
			_ = e.cmd.Process.Kill()
			<-e.exited
		}
	})
	return e
}

// check: on an empty data directory the broker must read the manifest
// before it writes anything; with the bucket missing it waits for it (a
// minute), then exits non-zero saying why, without having written a
// segment. With the bucket created, the same configuration starts.
func (e *emptyDataDir) check(t *testing.T, srv *miniotest.Server) {
	select {
	case <-e.exited:
	default:
		select {
		case <-e.exited:
		case <-time.After(time.Until(e.started.Add(120 * time.Second))):
			t.Fatalf("the broker on an empty data directory with a missing bucket did not exit within 120 s")
		}
	}
	out, _ := os.ReadFile(e.logPath)
	t.Logf("exited after %v: %v", time.Since(e.started).Round(time.Millisecond), e.waitErr)
	if e.cmd.ProcessState.ExitCode() == 0 {
		t.Fatalf("exit code 0 on an empty data directory with a missing bucket; output:\n%s", out)
	}
	for _, want := range []string{"the data directory is empty and the cold tier's manifest cannot be read",
		`"` + e.bucket + `"`, "does not exist"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Fatalf("the exit message does not say %q; output:\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte("panic:")) || bytes.Contains(out, []byte("DATA RACE")) {
		t.Fatalf("the broker's output reports a crash or a race:\n%s", out)
	}
	if ents, err := os.ReadDir(filepath.Join(e.dataDir, "store", "commitlog")); err == nil && len(ents) > 0 {
		t.Fatalf("the broker wrote %d commit-log files before knowing where its history ends", len(ents))
	}

	// With the bucket there, the same configuration starts and serves.
	srv.Bucket(t, e.bucket)
	s := startStrataEnv(t, minioEnv(srv, srv.SecretKey), "--tier", e.tierURL, "--segment-size", "1MiB")
	topic := uniq("Fresh")
	s.createTopic(t, topic, 1, false)
	sendSync(t, s.newProducer(t), primitive.NewMessage(topic, []byte("fresh")))
}

// ---------------------------------------------------------------------------
// Helpers.

// sentLog records, per queue, the body acknowledged at each queue offset.
type sentLog struct {
	mu      sync.Mutex
	byQueue map[int]map[int64]string
	phase   map[string]int64         // bytes sent per phase
	slowest map[string]time.Duration // longest wait for an ack per phase
}

func newSentLog() *sentLog {
	return &sentLog{byQueue: map[int]map[int64]string{}, phase: map[string]int64{}, slowest: map[string]time.Duration{}}
}

// send sends n messages of about 1 KB with bodies "<phase>-<i>|…" from 8
// goroutines and records where each was acknowledged; any failure fails the
// test.
func (l *sentLog) send(t *testing.T, p rocketmq.Producer, topic, phase string, n int) {
	t.Helper()
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				body := bytes.Repeat([]byte{byte('a' + i%26)}, 1000)
				copy(body, fmt.Sprintf("%s-%d|", phase, i))
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				start := time.Now()
				r, err := p.SendSync(ctx, primitive.NewMessage(topic, body))
				took := time.Since(start)
				cancel()
				if err == nil && r.Status != primitive.SendOK {
					err = fmt.Errorf("status %v", r.Status)
				}
				if err != nil {
					errs <- fmt.Errorf("send %s-%d: %w", phase, i, err)
					return
				}
				l.mu.Lock()
				q := l.byQueue[r.MessageQueue.QueueId]
				if q == nil {
					q = map[int64]string{}
					l.byQueue[r.MessageQueue.QueueId] = q
				}
				q[r.QueueOffset] = string(body)
				l.phase[phase] += int64(len(body))
				l.slowest[phase] = max(l.slowest[phase], took)
				l.mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("%s phase: %v", phase, err)
	}
}

// next returns, per queue, the offset after the last acknowledged one.
func (l *sentLog) next() map[int]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[int]int64{}
	for q, offs := range l.byQueue {
		for off := range offs {
			out[q] = max(out[q], off+1)
		}
	}
	return out
}

func (l *sentLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, offs := range l.byQueue {
		n += len(offs)
	}
	return n
}

// checkFast fails the test if an ack of phase took longer than max: an
// outage of the object store must not slow produce down.
func (l *sentLog) checkFast(t *testing.T, phase string, limit time.Duration) {
	t.Helper()
	l.mu.Lock()
	d := l.slowest[phase]
	l.mu.Unlock()
	if d > limit {
		t.Fatalf("%s phase: a send waited %v for its ack, more than %v", phase, d.Round(time.Millisecond), limit)
	}
}

func (l *sentLog) bytes(phase string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.phase[phase]
}

// check reads every queue from offset 0 with raw pulls (across the cold and
// hot tiers) and checks that the acknowledged offsets are dense and that
// each reads back with the body acknowledged there.
func (l *sentLog) check(t *testing.T, s *strata, topic string, queues int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	total := 0
	for q := range queues {
		want := l.byQueue[q]
		n := int64(len(want))
		for off := range n {
			if _, ok := want[off]; !ok {
				t.Fatalf("queue %d: no send was acknowledged at offset %d (of %d)", q, off, n)
			}
		}
		if got := s.maxOffset(t, topic, q); got != n {
			t.Fatalf("queue %d: max offset %d, want %d", q, got, n)
		}
		recs := pullAll(t, s, topic, q, 0, int(n))
		for i, rec := range recs[:n] {
			m, err := remoting.DecodeMessageExt(rec)
			if err != nil {
				t.Fatalf("queue %d record %d: %v", q, i, err)
			}
			if m.QueueOffset != int64(i) || string(m.Body) != want[int64(i)] {
				t.Fatalf("queue %d record %d: offset %d body %.20q, want offset %d body %.20q",
					q, i, m.QueueOffset, m.Body, i, want[int64(i)])
			}
		}
		total += int(n)
	}
	t.Logf("read back %d messages in order across both tiers", total)
}

// pullOnce sends one non-suspending PULL_MESSAGE and reports how long the
// answer took.
func pullOnce(s *strata, topic string, queue int, off int64, timeout time.Duration) (*remoting.Command, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	c, err := remoting.Dial(ctx, s.broker, remoting.ConnOptions{})
	if err != nil {
		return nil, time.Since(start), err
	}
	defer c.Close()
	resp, err := c.Invoke(ctx, remoting.NewRequest(remoting.ReqPullMessage, map[string]string{
		"consumerGroup": "fault-reader", "topic": topic, "queueId": strconv.Itoa(queue),
		"queueOffset": strconv.FormatInt(off, 10), "maxMsgNums": "32", "sysFlag": "0",
		"commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*", "subVersion": "0",
	}, nil))
	return resp, time.Since(start), err
}

// hotEmpty reports whether the hot tier holds no message of topic.
func hotEmpty(st tierStatus, topic string) bool {
	for _, q := range st.Queues {
		if q.Topic == topic && q.HotMax > q.HotMin {
			return false
		}
	}
	return true
}

// checkHotHolds fails the test unless, per queue of topic, the hot tier
// still holds [from[q], to[q]).
func checkHotHolds(t *testing.T, st tierStatus, topic string, from, to map[int]int64) {
	t.Helper()
	for q, end := range to {
		found := false
		for _, qs := range st.Queues {
			if qs.Topic != topic || int(qs.QueueID) != q {
				continue
			}
			found = true
			if qs.HotMin > from[q] || qs.HotMax < end {
				t.Fatalf("queue %d: the hot tier holds [%d,%d), but [%d,%d) is not offloaded yet",
					q, qs.HotMin, qs.HotMax, from[q], end)
			}
		}
		if !found {
			t.Fatalf("queue %d of %s missing from the tier status", q, topic)
		}
	}
}

// waitPendingWithError waits until the tier status shows sealed segments of
// topic pending and a last error containing each of what.
func waitPendingWithError(t *testing.T, s *strata, topic string, what ...string) tierStatus {
	t.Helper()
	var last tierStatus
	waitFor(t, 30*time.Second, "offload pending with an error that says "+strings.Join(what, ", "), func() bool {
		last = tierStatusOf(t, s)
		return last.Tier != nil && !last.Tier.Ready && last.Tier.PendingSegments > 0 &&
			containsAll(last.Tier.LastError, what)
	}, func() string { b, _ := json.Marshal(last); return string(b) })
	t.Logf("tier status: %d segments pending; last error: %s", last.Tier.PendingSegments, last.Tier.LastError)
	return last
}

// checkLogSays fails the test unless one line of the broker's log contains
// each of what.
func checkLogSays(t *testing.T, s *strata, what ...string) {
	t.Helper()
	for l := range strings.SplitSeq(readLog(t, s), "\n") {
		if containsAll(l, what) {
			return
		}
	}
	t.Fatalf("no line of the broker's log contains all of %q; log tail:\n%s", what, s.logTail(40))
}

// checkAdminTierStatus runs `strata admin tier status` and checks its output
// contains each of what.
func checkAdminTierStatus(t *testing.T, s *strata, what ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, strataBin, "admin", "tier", "status", "--namesrv", s.namesrv).CombinedOutput()
	if err != nil {
		t.Fatalf("strata admin tier status: %v\n%s", err, out)
	}
	if !containsAll(string(out), what) || !strings.Contains(string(out), "upload lag: ") ||
		strings.Contains(string(out), "upload lag: 0 segments") {
		t.Fatalf("strata admin tier status does not show pending uploads and %q:\n%s", what, out)
	}
}

func readLog(t *testing.T, s *strata) string {
	t.Helper()
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// segmentFiles returns the commit-log segments on disk that start at or
// after log offset from, by name (their 20-digit base offset).
func segmentFiles(t *testing.T, dataDir string, from int64) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dataDir, "store", "commitlog"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		if e.IsDir() || len(e.Name()) != 20 {
			continue
		}
		if base, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && base >= from {
			out[e.Name()] = true
		}
	}
	return out
}

// tierEndOffset returns the log offset up to which segments are offloaded.
func tierEndOffset(t *testing.T, s *strata) int64 {
	t.Helper()
	resp, err := invoke(s.broker, remoting.ReqGetTierStatus, nil, nil)
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("tier status: %v %v", err, resp)
	}
	var st struct {
		Tier *struct {
			EndOffset int64 `json:"endOffset"`
		} `json:"tier"`
	}
	if err := json.Unmarshal(resp.Body, &st); err != nil || st.Tier == nil {
		t.Fatalf("tier status %s: %v", resp.Body, err)
	}
	return st.Tier.EndOffset
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// metricOr0 is s.metric, with 0 for a metric not exposed (yet).
func metricOr0(s *strata, name string) float64 {
	v, _ := s.metric(name)
	return v
}
