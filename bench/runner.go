package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// WorkloadResult is one workload's outcome on every target.
type WorkloadResult struct {
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Runs        []TargetRun `json:"runs"`
	// Replication compares the replication workload's variants with its
	// first, one copy (computed from Runs with the report's comparisons).
	Replication []ReplicationRatio `json:"replication_ratios,omitempty"`
}

// TargetRun is one target's part in a workload.
type TargetRun struct {
	Target string `json:"target"`
	// Copies and Replication are the replication workload's variant:
	// copies of each message, the leader's included, and "none", "async"
	// or "sync".
	Copies      int    `json:"copies,omitempty"`
	Replication string `json:"replication,omitempty"`
	// Note describes the target's setup, when it says (JetStream's topic
	// mapping, for instance).
	Note string `json:"note,omitempty"`
	// Error is why the run failed or stopped early, if it did.
	Error string `json:"error,omitempty"`
	// StartSeconds is how long Start took (provisioning included).
	StartSeconds float64 `json:"start_seconds"`
	// SetupSeconds is how long creating the workload's topics took.
	SetupSeconds float64 `json:"topic_setup_seconds"`
	// IdleRSS holds each server process's resident set size after start,
	// before any load.
	IdleRSS   []ProcStats      `json:"idle_rss"`
	Cases     []CaseResult     `json:"cases,omitempty"`
	Backlog   *BacklogResult   `json:"backlog,omitempty"`
	ColdStart *ColdStartResult `json:"coldstart,omitempty"`
}

// BacklogResult is backlog-drain's own figures for one target.
type BacklogResult struct {
	Messages       int64   `json:"messages"`
	Bytes          int64   `json:"bytes"`
	PreloadSeconds float64 `json:"preload_seconds"`
	PreloadRate    float64 `json:"preload_rate"`
	// ColdFraction is the share of the backlog that was in the cold tier
	// only when the drain began (-1: the target has no cold tier).
	ColdFraction float64 `json:"cold_fraction"`
	// Drained counts the backlog's messages the draining group received
	// while producers kept their rate; DrainSeconds is how long from the
	// drain's start to its last message (or to the end of the case).
	Drained      int64   `json:"drained"`
	DrainSeconds float64 `json:"drain_seconds"`
	DrainRate    float64 `json:"drain_rate"`
	DrainMiBps   float64 `json:"drain_mib_per_s"`
	// Complete tells whether the whole backlog was drained before the end
	// of the case.
	Complete bool `json:"complete"`
	// ObjectStore is the raw GET speed of the cold tier's object store,
	// measured right after the drain.
	ObjectStore *ObjectStoreCeiling `json:"object_store_ceiling,omitempty"`
}

// describe returns a workload's one-line description for the options.
func describe(w string, o *Options) string {
	switch w {
	case OneTopic:
		return fmt.Sprintf("1 topic × 16 queues, %d-byte messages: %d msg/s fixed rate, the maximum rate (%d synchronous senders), and half the maximum; consumers keep up",
			o.MessageSize, o.Rate, o.Concurrency)
	case Topics10k:
		return fmt.Sprintf("%d topics × 1 queue, %d-byte messages: %d msg/s in all, fixed rate, and the maximum rate; consumers keep up",
			o.Topics, o.MessageSize, o.Rate)
	case BacklogDrain:
		return fmt.Sprintf("%s backlog preloaded (Strata: into the cold tier), then %d msg/s produced and consumed, without and with one consumer group draining the backlog from its first offset",
			humanBytes(o.BacklogBytes), o.Rate)
	case ColdStart:
		return fmt.Sprintf("a fresh client process, exec → first acknowledged send → exit, %d runs", o.ColdStartRuns)
	case Replication:
		return fmt.Sprintf("1 topic × 16 queues, %d-byte messages, consumers keep up, on Strata with 1 copy, then with followers (async 2 copies, sync 2 and 3 copies; one after the other, each fresh): the maximum rate (%d synchronous senders) and a fixed rate of half 1 copy's maximum",
			o.MessageSize, o.Concurrency)
	}
	return ""
}

// Run measures the ceilings, runs the workloads against a fresh target from
// each factory in turn (the first is the subject, Strata; the others its
// peers), writes report.json and the SVG charts to o.Out, prints the
// tables to o.Stdout and returns the report. A target that fails a
// workload is reported and the run goes on; the error then lists the
// failures. When ctx ends, Run stops the running target, writes what it
// has and returns ctx's error.
func Run(ctx context.Context, o Options, factories []TargetFactory) (*Report, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(factories) == 0 {
		return nil, errors.New("bench: no target")
	}
	progress := newProgressLine(o.Progress)
	rep := newReport(o)
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("bench: output directory: %w", err)
	}
	dataDir := o.DataDir
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "strata-bench-"); err != nil {
			return nil, fmt.Errorf("bench: data directory: %w", err)
		}
		defer os.RemoveAll(dataDir)
	} else if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: data directory: %w", err)
	}
	rep.Machine = machineInfo(dataDir)

	if !o.SkipCeilings {
		progress.logf("ceiling: O_DIRECT writes + fdatasync in %s …", dataDir)
		d, err := measureDisk(ctx, filepath.Join(dataDir, "ceiling"), o.CeilingDuration)
		if err != nil {
			if ctx.Err() != nil {
				return rep, finish(rep, o, ctx.Err())
			}
			rep.Notes = append(rep.Notes, "disk ceiling: "+err.Error())
		}
		rep.Ceilings.Disk = d
	}

	var failures []error
	for _, wl := range o.Workloads {
		wr := WorkloadResult{Name: wl, Description: describe(wl, &o)}
		for i, f := range factories {
			var runs []TargetRun
			var errs []error
			if wl == Replication {
				runs, errs = runReplication(ctx, &o, i, f, dataDir, progress)
			} else {
				run, err := runWorkload(ctx, &o, wl, i, f, dataDir, progress)
				runs, errs = []TargetRun{run}, []error{err}
			}
			for k, run := range runs {
				if run.Target == "" {
					run.Target = fmt.Sprintf("target %d", i)
				}
				if err := errs[k]; err != nil {
					run.Error = err.Error()
					failures = append(failures, fmt.Errorf("%s on %s: %w", wl, run.Target, err))
					progress.logf("%s on %s failed: %v", wl, run.Target, err)
				}
				wr.Runs = append(wr.Runs, run)
			}
			if ctx.Err() != nil {
				rep.Workloads = append(rep.Workloads, wr)
				return rep, finish(rep, o, ctx.Err())
			}
		}
		rep.Workloads = append(rep.Workloads, wr)
		// The object store's ceiling comes from the first target's tier.
		for _, r := range wr.Runs {
			if r.Backlog != nil && r.Backlog.ObjectStore != nil && rep.Ceilings.ObjectStore == nil {
				rep.Ceilings.ObjectStore = r.Backlog.ObjectStore
			}
		}
	}
	return rep, finish(rep, o, errors.Join(failures...))
}

// finish completes the report, writes it and returns err.
func finish(rep *Report, o Options, err error) error {
	rep.Finished = time.Now()
	rep.Machine.LoadEnd = loadAvg()
	if m := rep.Machine; m.Cores > 0 && max(m.LoadStart, m.LoadEnd) > float64(m.Cores) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the machine was busy (1-minute load average %.1f at the start, %.1f at the end, on %d cores): other work shared the CPUs and the disk, so the figures are noisy",
			m.LoadStart, m.LoadEnd, m.Cores))
	}
	rep.computeComparisons()
	if werr := rep.write(o.Out); werr != nil {
		err = errors.Join(err, werr)
	}
	if o.Stdout != nil {
		rep.WriteText(o.Stdout)
		fmt.Fprintf(o.Stdout, "\nreport: %s\n", filepath.Join(o.Out, "report.json"))
	}
	return err
}

// runWorkload starts a fresh target from f, runs workload wl on it and
// stops it.
func runWorkload(ctx context.Context, o *Options, wl string, idx int, f TargetFactory, dataDir string, progress *progressLine) (run TargetRun, err error) {
	needs := TargetNeeds{ColdTier: wl == BacklogDrain}
	if wl == Topics10k {
		needs.Topics = map[string]int{}
		for _, t := range manyTopics(o.Topics) {
			needs.Topics[t] = 1
		}
	}
	if needs.ColdTier {
		needs.SegmentSize, needs.SealAfter = o.backlogSegmentSize(), o.backlogSealAfter()
	}
	t, err := f(needs)
	if err != nil {
		return run, err
	}
	run.Target = t.Name()
	label := fmt.Sprintf("[%s | %s]", wl, t.Name())
	if wl == ColdStart {
		if _, ok := t.(ColdStarter); !ok {
			run.Note = "not measured: the target offers no cold-start client (bench.ColdStarter)"
			return run, nil
		}
	}
	dir := filepath.Join(dataDir, fmt.Sprintf("%s-%d", wl, idx))
	err = withTarget(ctx, t, dir, &run, progress, label, func(idle map[int]int64) (err error) {
		switch wl {
		case OneTopic:
			err = runOneTopic(ctx, t, o, &run, idle, progress, label)
		case Topics10k:
			err = runTopics10k(ctx, t, o, &run, idle, progress, label)
		case BacklogDrain:
			err = runBacklogDrain(ctx, t, o, &run, idle, progress, label)
		case ColdStart:
			run.ColdStart, err = runColdStart(ctx, t, t.(ColdStarter), o.ColdStartRuns, "bench-coldstart", progress)
		}
		return err
	})
	return run, err
}

// withTarget starts t with its data in dir, records in run how long that
// took and the idle RSS of its processes, runs body, then stops t (and
// records its Note) and removes dir.
func withTarget(ctx context.Context, t Target, dir string, run *TargetRun, progress *progressLine, label string, body func(idle map[int]int64) error) (err error) {
	defer os.RemoveAll(dir)
	progress.logf("%s starting", label)
	start := time.Now()
	if err := t.Start(ctx, dir); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	run.StartSeconds = time.Since(start).Seconds()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if serr := t.Stop(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop: %w", serr))
		}
		if n, ok := t.(interface{ Note() string }); ok {
			run.Note = n.Note()
		}
	}()
	idle := idleRSS(t.Pids())
	for _, pid := range t.Pids() {
		run.IdleRSS = append(run.IdleRSS, ProcStats{Pid: pid, Name: procLabel(t, pid, procName(pid)), IdleRSS: idle[pid]})
	}
	return body(idle)
}

func runOneTopic(ctx context.Context, t Target, o *Options, run *TargetRun, idle map[int]int64, progress *progressLine, label string) error {
	topics := []string{"bench-1t"}
	start := time.Now()
	if err := t.CreateTopics(ctx, topics, 16); err != nil {
		return err
	}
	run.SetupSeconds = time.Since(start).Seconds()
	base := caseSpec{topics: topics, queues: 16, consume: true, warmup: o.Warmup, duration: o.Duration}
	fixed := base
	fixed.name, fixed.rate, fixed.senders = fmt.Sprintf("rate=%d", o.Rate), float64(o.Rate), o.InFlight
	maxc := base
	maxc.name, maxc.senders = "max", o.Concurrency
	for _, c := range []caseSpec{fixed, maxc} {
		r, err := runCase(ctx, t, o, c, idle, progress, label+" "+c.name)
		if err != nil {
			return fmt.Errorf("case %s: %w", c.name, err)
		}
		run.Cases = append(run.Cases, r)
	}
	peak := run.Cases[1].ProduceRate
	if peak < 2 {
		return nil
	}
	half := base
	half.name, half.rate, half.senders = "half-max", peak/2, o.InFlight
	r, err := runCase(ctx, t, o, half, idle, progress, label+" "+half.name)
	if err != nil {
		return fmt.Errorf("case %s: %w", half.name, err)
	}
	r.Notes = append(r.Notes, fmt.Sprintf("rate: half of this target's max-case rate (%.0f msg/s)", peak))
	run.Cases = append(run.Cases, r)
	return nil
}

func runTopics10k(ctx context.Context, t Target, o *Options, run *TargetRun, idle map[int]int64, progress *progressLine, label string) error {
	topics := manyTopics(o.Topics)
	progress.logf("%s creating %d topics", label, len(topics))
	start := time.Now()
	if err := t.CreateTopics(ctx, topics, 1); err != nil {
		return err
	}
	run.SetupSeconds = time.Since(start).Seconds()
	progress.logf("%s created %d topics in %.1fs", label, len(topics), run.SetupSeconds)
	base := caseSpec{topics: topics, queues: 1, consume: true, warmup: o.Warmup, duration: o.Duration}
	fixed := base
	fixed.name, fixed.rate, fixed.senders = fmt.Sprintf("rate=%d", o.Rate), float64(o.Rate), o.InFlight
	maxc := base
	maxc.name, maxc.senders = "max", o.Concurrency
	for _, c := range []caseSpec{fixed, maxc} {
		r, err := runCase(ctx, t, o, c, idle, progress, label+" "+c.name)
		if err != nil {
			return fmt.Errorf("case %s: %w", c.name, err)
		}
		run.Cases = append(run.Cases, r)
	}
	return nil
}

func runBacklogDrain(ctx context.Context, t Target, o *Options, run *TargetRun, idle map[int]int64, progress *progressLine, label string) error {
	live, backlog := "bench-live", "bench-backlog"
	start := time.Now()
	if err := t.CreateTopics(ctx, []string{live, backlog}, 16); err != nil {
		return err
	}
	run.SetupSeconds = time.Since(start).Seconds()
	n := o.BacklogBytes / int64(o.MessageSize)
	br := &BacklogResult{Messages: n, Bytes: n * int64(o.MessageSize), ColdFraction: -1}
	run.Backlog = br
	took, err := sendCount(ctx, t, []string{backlog}, n, o.Concurrency, o.MessageSize, progress, label)
	if err != nil {
		return err
	}
	br.PreloadSeconds = took.Seconds()
	br.PreloadRate = float64(n) / took.Seconds()
	progress.logf("%s preloaded %d messages in %.1fs", label, n, br.PreloadSeconds)
	ct, hasTier := t.(ColdTier)
	if hasTier {
		wait := 3 * time.Minute
		if o.Smoke {
			wait = 30 * time.Second
		}
		progress.logf("%s waiting (up to %v) for the backlog to reach the cold tier", label, wait)
		wctx, cancel := context.WithTimeout(ctx, wait)
		frac, err := ct.WaitCold(wctx, backlog, n)
		cancel()
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		br.ColdFraction = frac
		progress.logf("%s %.0f%% of the backlog is in the cold tier only", label, frac*100)
	}

	base := caseSpec{topics: []string{live}, queues: 16, consume: true, rate: float64(o.Rate), senders: o.InFlight,
		warmup: o.Warmup, duration: o.Duration}
	plain := base
	plain.name = "no-drain"
	r, err := runCase(ctx, t, o, plain, idle, progress, label+" no-drain")
	if err != nil {
		return fmt.Errorf("case no-drain: %w", err)
	}
	run.Cases = append(run.Cases, r)

	// The drain: one consumer group from the backlog's first offset,
	// started as the measured window opens, so that the window sees it
	// from its first second.
	var drained, lastAt, startedAt atomic.Int64
	var draining atomic.Bool
	dctx, stopDrain := context.WithCancel(ctx)
	defer stopDrain()
	drainDone := make(chan error, 1)
	withDrain := base
	withDrain.name, withDrain.during = "drain", &draining
	withDrain.atWindow = func() {
		startedAt.Store(time.Now().UnixNano())
		draining.Store(true)
		go func() {
			drainDone <- t.Consume(dctx, []string{backlog}, true, func([]byte) {
				if drained.Add(1) == n {
					draining.Store(false)
				}
				lastAt.Store(time.Now().UnixNano())
			})
		}()
	}
	r, err = runCase(ctx, t, o, withDrain, idle, progress, label+" drain")
	stopDrain()
	var derr error
	if startedAt.Load() != 0 {
		derr = <-drainDone
	}
	if err != nil {
		return fmt.Errorf("case drain: %w", err)
	}
	if startedAt.Load() == 0 {
		return errors.New("case drain: the drain never started")
	}
	drainStart := time.Unix(0, startedAt.Load())
	end := time.Now()
	br.Drained = drained.Load()
	br.Complete = br.Drained >= n
	if br.Complete {
		end = time.Unix(0, lastAt.Load())
	}
	br.DrainSeconds = end.Sub(drainStart).Seconds()
	if br.DrainSeconds > 0 {
		br.DrainRate = float64(br.Drained) / br.DrainSeconds
		br.DrainMiBps = br.DrainRate * float64(o.MessageSize) / (1 << 20)
	}
	if derr != nil && ctx.Err() == nil {
		r.Notes = append(r.Notes, "drain consumer: "+derr.Error())
	}
	windowEnd := drainStart.Add(o.Duration)
	if br.Complete && end.Before(windowEnd) {
		r.Notes = append(r.Notes, fmt.Sprintf("the backlog was drained in the first %.1fs of the %v window: its publish latencies over the whole window mix time with and without the drain (see \"while draining\")",
			end.Sub(drainStart).Seconds(), o.Duration))
	}
	run.Cases = append(run.Cases, r)

	if hasTier && !o.SkipCeilings {
		if info, ok := ct.ObjectStore(); ok {
			progress.logf("%s ceiling: raw GETs from the tier's MinIO", label)
			c, err := measureObjectStore(ctx, info, o.CeilingDuration)
			if err != nil {
				r := &run.Cases[len(run.Cases)-1]
				r.Notes = append(r.Notes, "object store ceiling: "+err.Error())
			}
			br.ObjectStore = c
		}
	}
	return nil
}

// manyTopics names topics-10k's n topics.
func manyTopics(n int) []string {
	topics := make([]string, n)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench-tt-%05d", i)
	}
	return topics
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// joinArgs joins a command line, quoting arguments with spaces.
func joinArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = fmt.Sprintf("%q", a)
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
