package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testlog"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startStandalone runs 'strata standalone' in this process on free
// loopback ports and returns the name server address once the broker is
// registered. Cleanup stops it and waits for it.
func startStandalone(t *testing.T) string {
	t.Helper()
	nsAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testlog.Buffer{}
	// The data directory is made first so that its removal, a cleanup,
	// runs after the standalone's stop, registered later.
	args := []string{"standalone", "--data-dir", t.TempDir(), "--listen", freeAddr(t),
		"--namesrv-listen", nsAddr, "--http-listen", freeAddr(t), "--segment-size", "8MiB", "--log-level", "warn"}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, strings.NewReader(""), &testlog.Buffer{}, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("standalone: %v\n%s", err, logs.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("standalone did not stop\n%s", logs.String())
		}
	})
	c, err := client.New(client.NameServers(nsAddr), client.DialTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ci, err := c.ClusterInfo(context.Background())
		if err == nil && ci.Brokers["broker-a"].LeaderAddr() != "" {
			return nsAddr
		}
		select {
		case err := <-done:
			t.Fatalf("standalone exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("standalone not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// strata runs one command and returns its stdout, stderr and error,
// bounded in time.
func strata(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err := run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}

func mustStrata(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errs, err := strata(t, stdin, args...)
	if err != nil {
		t.Fatalf("strata %s: %v\nstderr: %s", strings.Join(args, " "), err, errs)
	}
	return out
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// checkGoroutines fails the test if goroutines started during it are still
// running after every other cleanup (the standalone's shutdown included).
func checkGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > base {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
	})
}

func TestToolsRoundTrip(t *testing.T) {
	checkGoroutines(t)
	ns := startStandalone(t)
	t.Setenv("STRATA_NAMESRV", ns) // the tools read it when --namesrv is absent

	out := mustStrata(t, "", "admin", "topic", "create", "--topic", "demo", "--queues", "2")
	if !strings.Contains(out, "demo") || !strings.Contains(out, "broker-a") {
		t.Errorf("create printed %q", out)
	}
	out = mustStrata(t, "hello\nworld\n\nthird\r\n", "produce", "--topic", "demo", "--tag", "tg", "--key", "k1")
	if got := lines(out); len(got) != 3 || !strings.HasPrefix(got[0], "msgId=") {
		t.Errorf("produce printed %q", out)
	}
	want := []string{"hello", "third", "world"}
	if got := sorted(lines(mustStrata(t, "", "consume", "--topic", "demo", "--group", "g1"))); !slices.Equal(got, want) {
		t.Errorf("consume = %q, want %q", got, want)
	}
	// The group's offsets were committed: a second run has nothing new.
	if out := mustStrata(t, "", "consume", "--topic", "demo", "--group", "g1"); out != "" {
		t.Errorf("second consume printed %q", out)
	}
	// --max stops early and commits exactly what was printed.
	first := lines(mustStrata(t, "", "consume", "--topic", "demo", "--group", "g2", "--max", "2"))
	rest := lines(mustStrata(t, "", "consume", "--topic", "demo", "--group", "g2"))
	if len(first) != 2 || !slices.Equal(sorted(append(first, rest...)), want) {
		t.Errorf("--max 2 then the rest: %q + %q", first, rest)
	}
	// --from-offset replays.
	if got := sorted(lines(mustStrata(t, "", "consume", "--topic", "demo", "--group", "g1", "--from-offset", "0"))); !slices.Equal(got, want) {
		t.Errorf("--from-offset 0 = %q", got)
	}
	// Tag filter.
	mustStrata(t, "other\n", "produce", "--topic", "demo", "--tag", "other")
	if got := sorted(lines(mustStrata(t, "", "consume", "--topic", "demo", "--group", "g3", "--tag", "other"))); !slices.Equal(got, []string{"other"}) {
		t.Errorf("--tag other = %q", got)
	}

	// --from-time: only what was stored since.
	time.Sleep(20 * time.Millisecond)
	since := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(20 * time.Millisecond)
	mustStrata(t, "late1\nlate2\n", "produce", "--topic", "demo")
	if got := sorted(lines(mustStrata(t, "", "consume", "--topic", "demo", "--group", "g4", "--from-time", since))); !slices.Equal(got, []string{"late1", "late2"}) {
		t.Errorf("--from-time = %q", got)
	}

	// --count: generated messages and a timing report.
	out = mustStrata(t, "", "produce", "--topic", "demo", "--count", "40", "--size", "100", "--concurrency", "4")
	for _, w := range []string{"sent 40 messages of 100 bytes", "msgs/s", "MiB/s", "p50", "p99"} {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q:\n%s", w, out)
		}
	}
	got := lines(mustStrata(t, "", "consume", "--topic", "demo", "--group", "g5", "--from-time", since))
	if len(got) != 42 || len(got[len(got)-1]) != 100 {
		t.Errorf("consumed %d messages after --count 40 (last %q)", len(got), got[len(got)-1])
	}

	// describe and list.
	out = mustStrata(t, "", "admin", "topic", "describe", "--topic", "demo")
	if !strings.Contains(out, "46 messages in 2 queues") || !strings.Contains(out, "broker-a") {
		t.Errorf("describe:\n%s", out)
	}
	out = mustStrata(t, "", "admin", "topic", "list")
	if !slices.Contains(lines(out), "demo") || strings.Contains(out, "TBW102") {
		t.Errorf("list:\n%s", out)
	}
	if out := mustStrata(t, "", "admin", "topic", "list", "--all"); !strings.Contains(out, "TBW102") {
		t.Errorf("list --all:\n%s", out)
	}

	// Standalone auto-creates topics on the first send.
	mustStrata(t, "auto\n", "produce", "--topic", "fresh")
	if got := lines(mustStrata(t, "", "consume", "--topic", "fresh", "--group", "g")); !slices.Equal(got, []string{"auto"}) {
		t.Errorf("auto-created topic: %q", got)
	}
	// With --max and too few messages, consume waits for more (bounded by --wait).
	done := make(chan []string, 1)
	go func() {
		out, _, err := strata(t, "", "consume", "--topic", "fresh", "--group", "g", "--max", "2", "--wait", "10s")
		if err != nil {
			t.Errorf("waiting consume: %v", err)
		}
		done <- lines(out)
	}()
	time.Sleep(300 * time.Millisecond)
	mustStrata(t, "w1\nw2\nw3\n", "produce", "--topic", "fresh")
	select {
	case got := <-done:
		if len(got) != 2 {
			t.Errorf("waiting consume got %q", got)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("waiting consume did not return")
	}
	// --wait without --max stops once idle that long.
	start := time.Now()
	got = lines(mustStrata(t, "", "consume", "--topic", "fresh", "--group", "g", "--wait", "300ms"))
	if len(got) != 1 || time.Since(start) < 300*time.Millisecond || time.Since(start) > 5*time.Second {
		t.Errorf("--wait 300ms: %q after %v", got, time.Since(start))
	}

}

func TestToolsErrors(t *testing.T) {
	checkGoroutines(t)
	ns := startStandalone(t)
	dead := freeAddr(t)
	for _, tc := range []struct {
		args  []string
		usage bool   // exit status 2
		want  string // in the error
	}{
		{[]string{"consume", "--topic", "nope", "--group", "g", "--namesrv", ns}, false, `topic "nope" does not exist`},
		{[]string{"admin", "topic", "describe", "--topic", "nope", "--namesrv", ns}, false, `topic "nope" does not exist`},
		{[]string{"consume", "--topic", "t", "--group", "g", "--namesrv", dead}, false, "cannot reach the name server at " + dead},
		{[]string{"produce", "--topic", "t", "--namesrv", dead}, false, "cannot reach the name server"},
		{[]string{"admin", "topic", "list", "--namesrv", dead}, false, "cannot reach the name server"},
		{[]string{"admin", "topic", "create", "--topic", "t", "--namesrv", dead}, false, "cannot reach the name server"},
		{[]string{"admin", "topic", "create", "--topic", "bad topic", "--namesrv", ns}, false, "not allowed"},
		{[]string{"admin", "tier", "status", "--namesrv", dead}, false, "cannot reach the name server"},
		{[]string{"produce"}, true, "--topic is required"},
		{[]string{"produce", "--topic", "t", "--count", "-1"}, true, "--count"},
		{[]string{"consume", "--topic", "t"}, true, "--group is required"},
		{[]string{"consume", "--topic", "t", "--group", "g", "--from-offset", "1", "--from-time", "2025-01-01T00:00:00Z"}, true, "exclude each other"},
		{[]string{"consume", "--topic", "t", "--group", "g", "--from-time", "yesterday"}, true, "RFC 3339"},
		{[]string{"consume", "--topic", "t", "--group", "g", "--bogus"}, true, "bogus"},
		{[]string{"consume", "--topic", "t", "--group", "g", "extra"}, true, "unexpected arguments"},
		{[]string{"admin"}, true, "admin needs a command"},
		{[]string{"admin", "topic", "drop"}, true, "unknown admin command"},
		{[]string{"admin", "topic", "create"}, true, "--topic is required"},
		{[]string{"admin", "topic", "create", "--topic", "t", "--queues", "0"}, true, "--queues"},
	} {
		_, _, err := strata(t, "x\n", tc.args...)
		if err == nil {
			t.Errorf("strata %q succeeded", tc.args)
			continue
		}
		if errors.Is(err, errUsage) != tc.usage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("strata %q: %v (usage %v), want %q (usage %v)", tc.args, err, errors.Is(err, errUsage), tc.want, tc.usage)
		}
	}
	// Environment errors are reported, not usage.
	t.Setenv("STRATA_MAX", "many")
	if _, _, err := strata(t, "", "consume", "--topic", "t", "--group", "g"); err == nil || errors.Is(err, errUsage) {
		t.Errorf("bad STRATA_MAX: %v", err)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if percentile(d, 0.5) != 50 || percentile(d, 0.99) != 99 || percentile(d[:1], 0.99) != 1 || percentile(nil, 0.5) != 0 {
		t.Error("percentile")
	}
	if b := generatedBody(7, 5); string(b) != "7 cde" {
		t.Errorf("generatedBody = %q", b)
	}
	if b := generatedBody(12345, 3); string(b) != "123" {
		t.Errorf("generatedBody = %q", b)
	}
}
