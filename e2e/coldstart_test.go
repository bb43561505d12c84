package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/strata-mq/strata/client"
)

// coldStartRuns is how many times each program is exec'd per b.N.
const coldStartRuns = 50

// coldStartPrograms are the programs under e2e/coldstart that
// BenchmarkColdStart execs in turn.
var coldStartPrograms = []string{"strata", "rocketmq", "baseline"}

// BenchmarkColdStart measures, side by side in one run, how long a fresh
// process takes from exec to its first acknowledged send: once with
// Strata's client (e2e/coldstart/strata) and once with rocketmq-client-go
// (e2e/coldstart/rocketmq), against one strata standalone on loopback.
// Both programs are built here (not in TestMain, so that plain `go test`
// builds neither) and exec'd alternately, coldStartRuns times each per
// b.N; the parent passes its clock just before each exec in
// COLDSTART_T0_UNIX_NANO and the child prints the time to its send's
// acknowledgement, so exec, the Go runtime's start-up, the name server
// lookup, both dials and the send are all in the number. It reports the
// median and p99 of each, the p99 and median ratios (rocketmq / strata),
// and both binaries' sizes. A third program, e2e/coldstart/baseline, which
// only prints its start-up time, is exec'd alongside as a control: its
// numbers (baseline-*) are what exec and the Go runtime cost before any
// client code runs. Nothing is asserted. With coldStartRuns = 50
// and -benchtime 1x, p99 is the slowest of 50; use -benchtime 4x or more
// for a p99 that is not the maximum.
//
// It runs twice: against a broker with --flush sync, where every
// acknowledgement waits for an fdatasync (the durable default, so the
// disk's latency is in both programs' numbers), and with --flush async,
// which leaves mostly the clients' own cost.
//
//	go test -run '^$' -bench ColdStart -benchtime 1x ./e2e/
func BenchmarkColdStart(b *testing.B) {
	dir := b.TempDir()
	bins := map[string]string{}
	for _, name := range coldStartPrograms {
		bins[name] = filepath.Join(dir, name)
		if err := goBuild(bins[name], "./e2e/coldstart/"+name); err != nil {
			b.Fatal(err)
		}
	}
	for _, flush := range []string{"sync", "async"} {
		b.Run("flush="+flush, func(b *testing.B) { coldStart(b, bins, "--flush", flush) })
	}
}

// coldStart is one BenchmarkColdStart run against a standalone started
// with extra flags.
func coldStart(b *testing.B, bins map[string]string, extra ...string) {
	s := startStrata(b, extra...)
	topic := uniq("coldstart")
	s.createTopic(b, topic, 4, false)
	// A first send of each, unmeasured, so that neither pays for the
	// broker's first touch of the topic or a cold page cache of its binary.
	for _, name := range coldStartPrograms {
		if _, err := coldStartOnce(bins[name], s.namesrv, topic); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
	}
	lat := map[string][]time.Duration{}
	b.ResetTimer()
	for range b.N {
		for range coldStartRuns {
			for _, name := range coldStartPrograms {
				d, err := coldStartOnce(bins[name], s.namesrv, topic)
				if err != nil {
					b.Fatalf("%s: %v", name, err)
				}
				lat[name] = append(lat[name], d)
			}
		}
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	p50, p99 := map[string]time.Duration{}, map[string]time.Duration{}
	for name, l := range lat {
		slices.Sort(l)
		p50[name], p99[name] = l[len(l)/2], l[min(len(l)-1, len(l)*99/100)]
		b.ReportMetric(ms(p50[name]), name+"-median-ms")
		b.ReportMetric(ms(p99[name]), name+"-p99-ms")
		fi, err := os.Stat(bins[name])
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fi.Size())/(1<<20), name+"-bin-MB")
	}
	b.ReportMetric(float64(p99["rocketmq"])/float64(p99["strata"]), "ratio-p99")
	b.ReportMetric(float64(p50["rocketmq"])/float64(p50["strata"]), "ratio-median")
	b.ReportMetric(0, "ns/op") // an op is 3×coldStartRuns execs; the metrics above say more
}

// goBuild builds the main package pkg (relative to the module root) into
// out.
func goBuild(out, pkg string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goTool, "build", "-o", out, pkg)
	build.Dir = ".." // the module root; tests run in the package directory
	if o, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, o)
	}
	return nil
}

// coldStartOnce execs bin once and returns the exec → first-ack time it
// reports.
func coldStartOnce(bin, namesrv, topic string) (time.Duration, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, namesrv, topic)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done := make(chan error, 1)
	cmd.Env = append(os.Environ(), "COLDSTART_T0_UNIX_NANO="+strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return 0, fmt.Errorf("%s: %w\nstderr:\n%s", bin, err, stderr.Bytes())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return 0, fmt.Errorf("%s: no exit within 30s\nstderr:\n%s", bin, stderr.Bytes())
	}
	for line := range strings.Lines(stdout.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "coldstart-ns "); ok {
			ns, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: bad output %q: %w", bin, line, err)
			}
			return time.Duration(ns), nil
		}
	}
	return 0, fmt.Errorf("%s: no coldstart-ns line in its output:\n%s\nstderr:\n%s", bin, stdout.Bytes(), stderr.Bytes())
}

// BenchmarkSendAllocs measures the allocations of one synchronous send of
// a 100-byte message, with Strata's client and, for comparison, with
// rocketmq-client-go's SendSync, against a strata standalone child process
// (so that the broker's allocations are not counted, as they would be
// against an in-process broker). The route is resolved and the connections
// are open before the timer starts. The numbers include what the clients'
// own goroutines allocate meanwhile (for Strata: a connection's reader;
// for rocketmq-client-go: its background loops too).
//
//	go test -run '^$' -bench SendAllocs ./e2e/
func BenchmarkSendAllocs(b *testing.B) {
	s := startStrata(b, "--flush", "async")
	topic := uniq("allocs")
	s.createTopic(b, topic, 4, false)
	body := bytes.Repeat([]byte("x"), 100)
	ctx := context.Background()
	b.Run("client=strata", func(b *testing.B) {
		p, err := client.NewProducer(client.NameServers(s.namesrv), client.ProducerGroup(uniq("pg")))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if err := p.Close(ctx); err != nil {
				b.Errorf("Close: %v", err)
			}
		})
		send := func() {
			if _, err := p.Send(ctx, client.Message{Topic: topic, Body: body}); err != nil {
				b.Fatal(err)
			}
		}
		send()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			send()
		}
	})
	b.Run("client=rocketmq", func(b *testing.B) {
		p := s.newProducer(b)
		send := func() {
			r, err := p.SendSync(ctx, primitive.NewMessage(topic, body))
			if err == nil && r.Status != primitive.SendOK {
				err = fmt.Errorf("send status %v", r.Status)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		send()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			send()
		}
	})
}
