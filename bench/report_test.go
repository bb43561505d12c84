package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 8 0 100 2000000 500 18446744073709551615"
	got, err := parseStatCPU([]byte(line))
	if err != nil || got != 3.25 {
		t.Fatalf("parseStatCPU = %v, %v; want 3.25 s", got, err)
	}
	if _, err := parseStatCPU([]byte("1234 (x) S 1 2")); err == nil {
		t.Fatal("short line parsed")
	}
}

func TestParseStatusMem(t *testing.T) {
	status := "Name:\tstrata\nVmPeak:\t 900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nThreads:\t9\n"
	rss, peak, err := parseStatusMem([]byte(status))
	if err != nil || rss != 40<<20 || peak != 50<<20 {
		t.Fatalf("parseStatusMem = %d, %d, %v", rss, peak, err)
	}
	if _, _, err := parseStatusMem([]byte("Name:\tkthreadd\n")); err == nil {
		t.Fatal("status without memory lines parsed")
	}
}

// TestProcSelf reads this process's figures and resets its peak RSS.
func TestProcSelf(t *testing.T) {
	pid := os.Getpid()
	m := startMeter([]int{pid}, idleRSS([]int{pid}))
	buf := make([]byte, 32<<20)
	for i := range buf { // touch it: RSS and CPU both grow
		buf[i] = byte(i)
	}
	ps := m.stop()
	if len(ps) != 1 || ps[0].CPUSeconds < 0 || ps[0].PeakRSS < 32<<20 || ps[0].IdleRSS <= 0 {
		t.Fatalf("self: %+v", ps)
	}
	if ps[0].Name == "" || ps[0].Name == "?" {
		t.Fatalf("no name: %+v", ps[0])
	}
	_ = buf[len(buf)-1]
}

func TestColdStartStats(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	r := coldStartStats(ds)
	if r.Runs != 100 || r.MinMs != 1 || r.MaxMs != 100 || r.MedianMs != 50.5 || r.P99Ms != 99 {
		t.Fatalf("stats %+v", r)
	}
	r = coldStartStats(ds[:3]) // 100, 99, 98 ms
	if r.MedianMs != 99 || r.P99Ms != 100 {
		t.Fatalf("3 runs: %+v", r)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"64MiB": 64 << 20, "1GiB": 1 << 30, "512KiB": 512 << 10, "4096": 4096} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v", in, got, err)
		}
	}
	if _, err := parseSize("lots"); err == nil {
		t.Error("parseSize(lots) succeeded")
	}
}

// fakeCase makes a CaseResult with a latency distribution.
func fakeCase(name, target string, rate float64, p99 float64) CaseResult {
	h := newLatencyHist()
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(float64(i)/1000*p99/0.99*float64(time.Millisecond)) + time.Microsecond)
	}
	lat := summarize(h.Snapshot())
	return CaseResult{Case: name, Target: target, ProduceRate: rate, ProduceMiBps: rate / 1024, Produced: int64(rate * 10),
		Consumed: int64(rate * 10), Publish: lat, EndToEnd: lat, CPUPerMillion: 10, Procs: []ProcStats{{Name: "x", PeakRSS: 100 << 20}}}
}

// TestReportComparisonsAndFiles: ratios to the peers and the ceilings,
// the goals, the text tables, report.json and the SVG charts.
func TestReportComparisonsAndFiles(t *testing.T) {
	o, err := Options{Smoke: true}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	r := newReport(o)
	r.Ceilings.Disk = &DiskCeiling{Blocks: []DiskBlockResult{{BlockSize: 1 << 20, MiBPerSec: 500}, {BlockSize: 4096, MiBPerSec: 5}}}
	strata, always, def := "strata flush=sync", "jetstream sync_interval=always", "jetstream sync_interval=default"
	r.Workloads = []WorkloadResult{{Name: OneTopic, Runs: []TargetRun{
		{Target: strata, IdleRSS: []ProcStats{{Name: "strata", IdleRSS: 20 << 20}}, Cases: []CaseResult{
			fakeCase("max", strata, 100000, 1), fakeCase("half-max", strata, 50000, 1.5)}},
		{Target: always, Cases: []CaseResult{fakeCase("max", always, 4000, 20)}},
		{Target: def, Cases: []CaseResult{fakeCase("max", def, 50000, 3)}},
	}}}
	r.computeComparisons()
	var found bool
	for _, c := range r.Comparisons {
		if c.Case == "max" && c.Against == always && c.Figure == "produce msg/s" {
			found = true
			if c.Ratio != 25 {
				t.Errorf("throughput ratio to %s = %v, want 25", always, c.Ratio)
			}
		}
	}
	if !found {
		t.Fatalf("no throughput comparison with %s: %+v", always, r.Comparisons)
	}
	goals := map[string]*bool{}
	for _, g := range r.Goals {
		goals[g.Goal] = g.Met
	}
	check := func(prefix string, want *bool) {
		t.Helper()
		for g, m := range goals {
			if strings.HasPrefix(g, prefix) {
				if (m == nil) != (want == nil) || (m != nil && *m != *want) {
					t.Errorf("goal %q: met %v, want %v", g, m, want)
				}
				return
			}
		}
		t.Errorf("no goal %q", prefix)
	}
	check("flush=sync throughput ≥ 10×", met(true))
	check("flush=sync throughput ≥ 1×", met(true))
	check("≥ 80% of the disk ceiling", met(false)) // 97.7 of 500 MiB/s
	check("publish p99 ≤ 2 ms", met(true))
	check("topics-10k", nil)
	check("broker RSS idle", met(true))

	dir := t.TempDir()
	if err := r.write(dir); err != nil {
		t.Fatal(err)
	}
	if len(r.Charts) != 2 {
		t.Fatalf("charts %v, want one per case", r.Charts)
	}
	for _, c := range r.Charts {
		b, err := os.ReadFile(filepath.Join(dir, c))
		if err != nil || !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte("99.9%")) {
			t.Fatalf("chart %s: %v, %.200s", c, err, b)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || len(back.Workloads) != 1 || len(back.Goals) != len(r.Goals) {
		t.Fatalf("report.json: %v", err)
	}
	var text bytes.Buffer
	r.WriteText(&text)
	for _, want := range []string{"== " + OneTopic, "ratios, strata flush=sync", "NOT met", "jetstream sync_interval=always"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil || o.Rate != DefaultRate || o.Topics != 10000 || o.Duration != 30*time.Second || len(o.Workloads) != 5 {
		t.Fatalf("defaults %+v, %v", o, err)
	}
	if _, err := (Options{Workloads: []string{"nope"}}).withDefaults(); err == nil || !strings.Contains(err.Error(), `unknown workload "nope"`) {
		t.Fatalf("unknown workload: %v", err)
	}
	if _, err := (Options{Concurrency: -1}).withDefaults(); err == nil {
		t.Fatal("negative concurrency accepted")
	}
}

// TestDiskCeilingQuick runs the direct-write ceiling briefly.
func TestDiskCeilingQuick(t *testing.T) {
	d, err := measureDisk(t.Context(), t.TempDir(), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Blocks) != len(diskCeilingBlocks) || d.Best().MiBPerSec <= 0 || (d.FioNote == "" && len(d.Fio) == 0) {
		t.Fatalf("disk ceiling %+v", d)
	}
	for _, b := range d.Blocks {
		if b.Writes == 0 || b.Latency.Count != b.Writes {
			t.Fatalf("block %+v", b)
		}
	}
}

func TestMachineInfo(t *testing.T) {
	m := machineInfo(t.TempDir())
	if m.Cores < 1 || m.Kernel == "" || m.GoVersion == "" || m.Disk.Mount == "" || m.Disk.FSType == "" {
		t.Fatalf("machine %+v", m)
	}
}

func TestProgressLine(t *testing.T) {
	var plain bytes.Buffer
	p := newProgressLine(&plain)
	if p.tty {
		t.Fatal("a buffer is a terminal")
	}
	p.update("one")
	p.update("two") // within the second: dropped
	p.logf("note %d", 1)
	p.done()
	if got := plain.String(); got != "one\nnote 1\n" {
		t.Fatalf("plain output %q", got)
	}
	var term bytes.Buffer
	p = &progressLine{w: &term, tty: true}
	p.update("longer line")
	p.update("short")
	p.done()
	if got := term.String(); got != "\rlonger line\rshort      \n" {
		t.Fatalf("terminal output %q", got)
	}
	var nilp *progressLine
	nilp.update("x")
	nilp.logf("x")
	nilp.done()
}

// TestReplicationRatios: the replication variants against 1 copy, the
// goal's verdicts, and their table.
func TestReplicationRatios(t *testing.T) {
	o, err := Options{Smoke: true}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	r := newReport(o)
	variant := func(copies int, mode string, maxRate, p99 float64) TargetRun {
		name := fmt.Sprintf("strata flush=sync copies=%d replication=%s", copies, mode)
		fixed := fakeCase("rate=500", name, 500, p99)
		fixed.Rate = 500
		if copies == 3 {
			fixed.ProduceRate, fixed.Unsent = 450, 500 // behind
		}
		return TargetRun{Target: name, Copies: copies, Replication: mode,
			Cases: []CaseResult{fakeCase("max", name, maxRate, 1), fixed}}
	}
	r.Workloads = []WorkloadResult{{Name: Replication, Runs: []TargetRun{
		variant(1, "none", 1000, 2), variant(2, "async", 900, 2.5), variant(2, "sync", 750, 3.8), variant(3, "sync", 600, 5),
		{Target: "jetstream sync_interval=always", Note: "not measured"},
	}}}
	r.computeComparisons()
	rs := r.Workloads[0].Replication
	if len(rs) != 4 {
		t.Fatalf("ratios %+v", rs)
	}
	for _, c := range r.Comparisons {
		if c.Workload == Replication && c.Against != "" && strings.Contains(c.Against, "copies=") {
			t.Errorf("a variant compared as a peer: %+v", c)
		}
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 0.03*b }
	want := []struct {
		share, mult float64
		tput, lat   bool
	}{{1, 1, true, true}, {0.9, 1.25, true, true}, {0.75, 1.9, true, true}, {0.6, 2.5, false, false}}
	for i, w := range want {
		got := rs[i]
		if !near(got.MaxShare, w.share) || !near(got.P99Multiple, w.mult) || got.FixedRate != 500 ||
			got.ThroughputMet == nil || *got.ThroughputMet != w.tput || got.LatencyMet == nil || *got.LatencyMet != w.lat ||
			got.FellBehind != (i == 3) {
			t.Errorf("variant %d: %+v, want share %.2f (met %v), p99 ×%.2f (met %v)", i, got, w.share, w.tput, w.mult, w.lat)
		}
	}
	var goals int
	for _, g := range r.Goals {
		if strings.HasPrefix(g.Goal, "replication: sync with 3 copies") {
			goals++
			if g.Met == nil || *g.Met {
				t.Errorf("goal %q: met %v (%s), want not met", g.Goal, g.Met, g.Measured)
			}
		}
	}
	if goals != 2 {
		t.Errorf("%d replication goals, want 2: %+v", goals, r.Goals)
	}
	var text bytes.Buffer
	r.WriteText(&text)
	for _, want := range []string{"against 1 copy", "NOT met", "×2.50", "60%", "5.00 *", "fell behind"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if strings.Contains(text.String(), "ratios, ") {
		t.Errorf("the variants are listed as peers:\n%s", text.String())
	}

	// Without the workload, the goals say so.
	r.Workloads = nil
	r.computeComparisons()
	for _, g := range r.Goals {
		if strings.HasPrefix(g.Goal, "replication:") && (g.Met != nil || !strings.Contains(g.Measured, "not measured")) {
			t.Errorf("goal without the workload: %+v", g)
		}
	}
}
