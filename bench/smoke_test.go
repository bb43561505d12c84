package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/miniotest"
)

// strataBin is the strata binary TestMain builds for the smoke test
// (STRATA_BENCH_BIN names one built elsewhere instead).
var strataBin string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if bin := os.Getenv("STRATA_BENCH_BIN"); bin != "" {
		strataBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "strata-bench-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	strataBin = filepath.Join(dir, "strata")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goTool, "build", "-o", strataBin, "./cmd/strata")
	build.Dir = ".." // the module root; tests run in the package directory
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: go build ./cmd/strata: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// TestSmoke runs every workload against Strata for seconds at tiny rates
// (Options.Smoke: 200 msg/s, 2 s cases, topics-10k with 50 topics, an
// 8 MiB backlog in a MinIO cold tier, 3 cold starts) and checks that
// messages went both ways, the histograms hold them, and report.json and
// the SVG charts were written. It measures nothing: it keeps `strata
// bench` working. STRATA_SKIP_MINIO=1 leaves out backlog-drain.
func TestSmoke(t *testing.T) {
	workloads := WorkloadNames()
	if os.Getenv(miniotest.SkipEnv) == "1" {
		t.Logf("%s=1: leaving out %s", miniotest.SkipEnv, BacklogDrain)
		workloads = slices.DeleteFunc(workloads, func(w string) bool { return w == BacklogDrain })
	} else {
		// Build MinIO (once per machine) before the clock starts.
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
		_, err := miniotest.EnsureBinary(ctx, t.Logf)
		cancel()
		if err != nil {
			t.Fatalf("MinIO: %v (set %s=1 to skip)", err, miniotest.SkipEnv)
		}
	}
	out := t.TempDir()
	var stdout, progress strings.Builder
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, Options{
		Workloads: workloads, Smoke: true, Out: out, DataDir: t.TempDir(),
		Stdout: &stdout, Progress: &progress, Command: []string{"go", "test"},
	}, []TargetFactory{StrataFactory(StrataOptions{Binary: strataBin, Logf: t.Logf})})
	took := time.Since(start)
	t.Logf("smoke run took %v\n%s", took.Round(time.Millisecond), stdout.String())
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, tail(progress.String(), 4000))
	}
	if took > 90*time.Second {
		t.Errorf("the smoke run took %v; it should stay under a minute", took)
	}

	if len(rep.Workloads) != len(workloads) {
		t.Fatalf("%d workload results, want %d", len(rep.Workloads), len(workloads))
	}
	wantCharts := 0
	for _, w := range rep.Workloads {
		if len(w.Runs) != 1 || w.Runs[0].Error != "" {
			t.Fatalf("%s: runs %+v", w.Name, w.Runs)
		}
		run := w.Runs[0]
		if len(run.IdleRSS) == 0 || run.IdleRSS[0].IdleRSS <= 0 {
			t.Errorf("%s: no idle RSS: %+v", w.Name, run.IdleRSS)
		}
		wantCases := map[string]int{OneTopic: 3, Topics10k: 2, BacklogDrain: 2, ColdStart: 0}[w.Name]
		if len(run.Cases) != wantCases {
			t.Fatalf("%s: %d cases, want %d", w.Name, len(run.Cases), wantCases)
		}
		wantCharts += wantCases
		for _, c := range run.Cases {
			name := w.Name + " " + c.Case
			if c.Produced == 0 || c.Errors != 0 {
				t.Errorf("%s: produced %d, errors %d %v", name, c.Produced, c.Errors, c.ErrorSamples)
			}
			if c.Consumed < c.Produced*9/10 {
				t.Errorf("%s: consumed %d of %d", name, c.Consumed, c.Produced)
			}
			if c.Publish.Count != c.Produced || c.EndToEnd.Count != c.Consumed || len(c.Publish.Distribution) < 2 {
				t.Errorf("%s: histograms hold %d publish, %d end-to-end latencies (produced %d, consumed %d)",
					name, c.Publish.Count, c.EndToEnd.Count, c.Produced, c.Consumed)
			}
			if c.Publish.P50 <= 0 || c.Publish.P99 < c.Publish.P50 || c.Publish.Max < c.Publish.P99 {
				t.Errorf("%s: publish latency %+v", name, c.Publish)
			}
			if c.Rate > 0 && (c.ProduceRate < c.Rate*0.8 || c.ProduceRate > c.Rate*1.1) {
				t.Errorf("%s: produced %.0f msg/s at a fixed rate of %.0f", name, c.ProduceRate, c.Rate)
			}
			if len(c.Procs) == 0 || c.Procs[0].PeakRSS <= 0 || c.CPUSeconds <= 0 {
				t.Errorf("%s: process figures %+v", name, c.Procs)
			}
		}
		switch w.Name {
		case Topics10k:
			if run.Cases[0].Topics != 50 {
				t.Errorf("topics-10k smoke ran %d topics, want 50", run.Cases[0].Topics)
			}
		case BacklogDrain:
			b := run.Backlog
			if b == nil || b.Messages == 0 || b.Drained == 0 || b.DrainRate <= 0 || b.ColdFraction < 0.5 {
				t.Errorf("backlog %+v", b)
			}
			if d := run.Cases[1].PublishDuring; d == nil || d.Count == 0 {
				t.Errorf("no publish latencies while draining: %+v", d)
			}
			if b != nil && (b.ObjectStore == nil || b.ObjectStore.RangedMiBPerSec <= 0) {
				t.Errorf("no object store ceiling: %+v", b.ObjectStore)
			}
		case ColdStart:
			c := run.ColdStart
			if c == nil || c.Runs != 3 || c.MedianMs <= 0 || c.BinaryBytes <= 0 {
				t.Errorf("coldstart %+v", c)
			}
		}
	}
	if d := rep.Ceilings.Disk; d == nil || d.Best().MiBPerSec <= 0 {
		t.Errorf("disk ceiling %+v", d)
	}

	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if len(back.Workloads) != len(workloads) || back.Machine.Cores == 0 || len(back.Goals) == 0 {
		t.Errorf("report.json lacks results: %d workloads, machine %+v", len(back.Workloads), back.Machine)
	}
	if len(rep.Charts) != wantCharts {
		t.Errorf("charts %v, want %d", rep.Charts, wantCharts)
	}
	for _, c := range rep.Charts {
		svg, err := os.ReadFile(filepath.Join(out, c))
		if err != nil || !strings.Contains(string(svg), "<svg") {
			t.Errorf("chart %s: %v", c, err)
		}
	}
	if !strings.Contains(progress.String(), "sent") {
		t.Errorf("no progress lines:\n%s", progress.String())
	}
}
