package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
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
// 8 MiB backlog in a MinIO cold tier, 3 cold starts, replication's four
// variants with 1 s cases) and checks that messages went both ways, the
// histograms hold them, and report.json and the SVG charts were written;
// for replication, that each variant ran its followers (their processes
// measured, in sync before the load) and the ratios to 1 copy and the
// goal's verdicts were computed. It measures nothing: it keeps `strata
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
		wantRuns := 1
		if w.Name == Replication {
			wantRuns = len(replicationVariants)
		}
		if len(w.Runs) != wantRuns {
			t.Fatalf("%s: %d runs, want %d: %+v", w.Name, len(w.Runs), wantRuns, w.Runs)
		}
		for _, run := range w.Runs {
			if run.Error != "" {
				t.Fatalf("%s on %s: %s", w.Name, run.Target, run.Error)
			}
		}
		run := w.Runs[0]
		wantCases := map[string]int{OneTopic: 3, Topics10k: 2, BacklogDrain: 2, ColdStart: 0, Replication: 2}[w.Name]
		wantCharts += wantCases // replication's variants share their cases' charts
		for _, run := range w.Runs {
			checkSmokeRun(t, w.Name, run, wantCases)
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
		case Replication:
			checkSmokeReplication(t, rep)
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
	if w := back.workload(Replication); w == nil || len(w.Replication) != len(replicationVariants) {
		t.Errorf("report.json lacks the replication ratios: %+v", w)
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
	if !strings.Contains(stdout.String(), "against 1 copy") {
		t.Errorf("no replication table in the text report")
	}
}

// checkSmokeRun checks one target run of a smoke run's workload.
func checkSmokeRun(t *testing.T, workload string, run TargetRun, wantCases int) {
	t.Helper()
	if len(run.IdleRSS) == 0 || run.IdleRSS[0].IdleRSS <= 0 {
		t.Errorf("%s on %s: no idle RSS: %+v", workload, run.Target, run.IdleRSS)
	}
	if len(run.Cases) != wantCases {
		t.Fatalf("%s on %s: %d cases, want %d", workload, run.Target, len(run.Cases), wantCases)
	}
	for _, c := range run.Cases {
		name := workload + " " + c.Case
		if run.Copies > 0 {
			name += fmt.Sprintf(" (copies=%d %s)", run.Copies, run.Replication)
		}
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
		// Replicated variants run at half 1 copy's maximum, which they
		// need not sustain on a small machine: that is what they measure.
		if c.Rate > 0 && (c.ProduceRate > c.Rate*1.1 || (c.ProduceRate < c.Rate*0.8 && run.Copies <= 1)) {
			t.Errorf("%s: produced %.0f msg/s at a fixed rate of %.0f", name, c.ProduceRate, c.Rate)
		}
		if len(c.Procs) == 0 || c.Procs[0].PeakRSS <= 0 || c.CPUSeconds <= 0 {
			t.Errorf("%s: process figures %+v", name, c.Procs)
		}
	}
}

// checkSmokeReplication checks the replication workload's runs: each
// variant as asked, every copy's process measured, every variant's
// fixed-rate case at half 1 copy's maximum, and the ratios and goals.
func checkSmokeReplication(t *testing.T, rep *Report) {
	t.Helper()
	w := rep.workload(Replication)
	var fixedRate float64
	for k, run := range w.Runs {
		v := replicationVariants[k]
		copies, mode := v.followers+1, cmp.Or(v.mode, "none")
		if run.Copies != copies || run.Replication != mode {
			t.Errorf("run %d (%s): copies %d replication %q, want %d %q", k, run.Target, run.Copies, run.Replication, copies, mode)
		}
		if want := fmt.Sprintf("copies=%d replication=%s", copies, v.mode); v.followers > 0 && !strings.Contains(run.Target, want) {
			t.Errorf("run %d is %q, want a name with %q", k, run.Target, want)
		}
		if len(run.IdleRSS) != copies {
			t.Errorf("%s: idle RSS of %d processes, want %d: %+v", run.Target, len(run.IdleRSS), copies, run.IdleRSS)
		}
		for i := 1; i < copies; i++ {
			if !strings.Contains(run.Note, fmt.Sprintf("follower %d: strata broker --broker-id %d", i, i)) {
				t.Errorf("%s: the note lacks follower %d's command line: %s", run.Target, i, run.Note)
			}
			if len(run.IdleRSS) == copies && !strings.HasSuffix(run.IdleRSS[i].Name, fmt.Sprintf("follower-%d", i)) {
				t.Errorf("%s: process %d is %q, want follower-%d", run.Target, i, run.IdleRSS[i].Name, i)
			}
		}
		for _, c := range run.Cases {
			if len(c.Procs) != copies {
				t.Errorf("%s %s: %d processes measured, want %d", run.Target, c.Case, len(c.Procs), copies)
				continue
			}
			for _, p := range c.Procs {
				if p.PeakRSS <= 0 {
					t.Errorf("%s %s: process %+v", run.Target, c.Case, p)
				}
			}
		}
		if len(run.Cases) != 2 || run.Cases[0].Case != "max" {
			continue // reported by checkSmokeRun
		}
		if k == 0 {
			fixedRate = math.Round(run.Cases[0].ProduceRate / 2)
		}
		if f := run.Cases[1]; f.Rate != fixedRate || f.Case != fmt.Sprintf("rate=%.0f", fixedRate) {
			t.Errorf("%s: fixed-rate case %q at %.0f msg/s, want half 1 copy's max: %.0f", run.Target, f.Case, f.Rate, fixedRate)
		}
	}
	if len(w.Replication) != len(replicationVariants) {
		t.Fatalf("replication ratios %+v", w.Replication)
	}
	for k, rr := range w.Replication {
		if rr.MaxShare <= 0 || rr.P99Multiple <= 0 || rr.ThroughputMet == nil || rr.LatencyMet == nil {
			t.Errorf("ratio %d: %+v", k, rr)
		}
	}
	if b := w.Replication[0]; b.MaxShare != 1 || b.P99Multiple != 1 {
		t.Errorf("1 copy against itself: %+v", b)
	}
	var goals int
	for _, g := range rep.Goals {
		if strings.HasPrefix(g.Goal, "replication:") {
			goals++
			if g.Met == nil {
				t.Errorf("goal %q not measured: %s", g.Goal, g.Measured)
			}
		}
	}
	if goals != 2 {
		t.Errorf("%d replication goals, want 2", goals)
	}
}

// TestStrataFollowers starts the Strata target with two followers under
// sync replication, sends to it, and checks that the followers copied the
// leader's whole log, that Pids covers all three processes and that Stop
// ends them all.
func TestStrataFollowers(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	s, err := NewStrata(StrataOptions{Binary: strataBin, Followers: 2, Replication: "sync", SegmentSize: "16MiB"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Name(), "strata flush=sync copies=3 replication=sync"; got != want {
		t.Errorf("name %q, want %q", got, want)
	}
	if err := s.Start(ctx, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = s.Stop(context.Background())
		}
	}()
	pids := s.Pids()
	if len(pids) != 3 {
		t.Fatalf("pids %v, want the leader and 2 followers", pids)
	}
	for i, want := range []string{"leader", "follower-1", "follower-2"} {
		if got := s.ProcLabel(pids[i]); got != want {
			t.Errorf("process %d is %q, want %q", i, got, want)
		}
	}
	if !strings.Contains(s.Note(), "--min-insync-replicas 3") || !strings.Contains(s.Note(), "follower 2: strata broker --broker-id 2") {
		t.Errorf("note %s", s.Note())
	}
	if err := s.CreateTopics(ctx, []string{"repl"}, 4); err != nil {
		t.Fatal(err)
	}
	p, err := s.Producer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := p.Send(ctx, "repl", []byte(fmt.Sprintf("message %d", i))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	_ = p.Close()

	cl, err := client.New(client.NameServers(s.NameServer()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	lead, err := cl.ReplicationStatus(ctx, s.broker)
	if err != nil {
		t.Fatal(err)
	}
	if lead.InSync != 3 || lead.Replication != "sync" || lead.MinInSync != 3 || lead.LogEnd <= 0 {
		t.Fatalf("leader's status %+v", lead)
	}
	// Under sync replication every acknowledged send is on every copy.
	s.mu.Lock()
	followers := slices.Clone(s.followers)
	s.mu.Unlock()
	for _, f := range followers {
		st, err := cl.ReplicationStatus(ctx, f.addr)
		if err != nil {
			t.Fatal(err)
		}
		if st.Role != "follower" || st.LogEnd < lead.LogEnd {
			t.Errorf("follower %d: role %s, log end %d, the leader's %d", f.id, st.Role, st.LogEnd, lead.LogEnd)
		}
	}

	stopped = true
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range followers {
		select {
		case <-f.exited:
		default:
			t.Errorf("follower %d still runs after Stop", f.id)
		}
	}
	if len(s.Pids()) != 0 {
		t.Errorf("pids after Stop: %v", s.Pids())
	}
}
