package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"text/tabwriter"
	"time"
)

// replicationVariants are the replication workload's targets, run one
// after the other, the first (one copy) the others' measure.
var replicationVariants = []struct {
	followers int
	mode      string // TargetNeeds.Replication
}{{0, ""}, {1, "async"}, {1, "sync"}, {2, "sync"}}

// The replication goal: sync replication with 3 copies keeps at least
// this share of one copy's maximum rate, and its publish p99 at the same
// fixed rate is at most this multiple of one copy's.
const (
	replicationGoalShare = 0.70
	replicationGoalP99   = 2.0
)

// runReplication runs the replication workload on fresh targets from f,
// one for each variant, one after the other, and returns a run for each
// (with its error, nil when it succeeded). A target that does not
// replicate (it does not implement Replicated) gets one run with a note,
// and no error.
func runReplication(ctx context.Context, o *Options, idx int, f TargetFactory, dataDir string, progress *progressLine) ([]TargetRun, []error) {
	var runs []TargetRun
	var errs []error
	var baseMax float64 // one copy's max-case rate
	for k, v := range replicationVariants {
		mode := v.mode
		if mode == "" {
			mode = "none"
		}
		run := TargetRun{Copies: v.followers + 1, Replication: mode}
		t, err := f(TargetNeeds{Followers: v.followers, Replication: v.mode, SegmentSize: o.replicationSegmentSize()})
		if err == nil {
			run.Target = t.Name()
			r, ok := t.(Replicated)
			switch {
			case !ok && k == 0:
				run.Copies, run.Replication = 0, ""
				run.Note = "not measured: the target runs no followers (it does not implement bench.Replicated)"
				return []TargetRun{run}, []error{nil}
			case !ok:
				err = errors.New("the target does not replicate")
			case r.Copies() != run.Copies:
				err = fmt.Errorf("the target keeps %d copies, want %d", r.Copies(), run.Copies)
			}
		}
		if err == nil {
			label := fmt.Sprintf("[%s | %s]", Replication, t.Name())
			dir := filepath.Join(dataDir, fmt.Sprintf("%s-%d-%d", Replication, idx, k))
			err = withTarget(ctx, t, dir, &run, progress, label, func(idle map[int]int64) error {
				return runReplicationVariant(ctx, t, o, &run, idle, progress, label, k == 0, &baseMax)
			})
		}
		runs = append(runs, run)
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return runs, errs
}

// runReplicationVariant runs one variant's cases: the maximum rate, then
// a fixed rate of half one copy's maximum (*baseMax, which the first
// variant, base, sets), so that the p99s compare at the same load.
func runReplicationVariant(ctx context.Context, t Target, o *Options, run *TargetRun, idle map[int]int64, progress *progressLine, label string, base bool, baseMax *float64) error {
	topics := []string{"bench-1t"}
	start := time.Now()
	if err := t.CreateTopics(ctx, topics, 16); err != nil {
		return err
	}
	run.SetupSeconds = time.Since(start).Seconds()
	warmup, duration := o.replicationWindow()
	spec := caseSpec{topics: topics, queues: 16, consume: true, warmup: warmup, duration: duration}
	maxc := spec
	maxc.name, maxc.senders = "max", o.Concurrency
	r, err := runCase(ctx, t, o, maxc, idle, progress, label+" max")
	if err != nil {
		return fmt.Errorf("case max: %w", err)
	}
	run.Cases = append(run.Cases, r)
	if base {
		*baseMax = r.ProduceRate
	}
	rate := math.Round(*baseMax / 2)
	note := fmt.Sprintf("rate: half of 1 copy's max-case rate (%.0f msg/s), the same for every variant", *baseMax)
	if rate < 1 {
		rate = float64(o.Rate)
		note = fmt.Sprintf("rate: --rate (%d msg/s), as 1 copy's max-case rate is unknown", o.Rate)
	}
	fixed := spec
	fixed.name, fixed.rate, fixed.senders = fmt.Sprintf("rate=%.0f", rate), rate, o.InFlight
	r, err = runCase(ctx, t, o, fixed, idle, progress, label+" "+fixed.name)
	if err != nil {
		return fmt.Errorf("case %s: %w", fixed.name, err)
	}
	r.Notes = append(r.Notes, note)
	run.Cases = append(run.Cases, r)
	return nil
}

// ReplicationRatio is one replication variant's figures next to one
// copy's. The goal is for sync replication with 3 copies: at least 70% of
// one copy's maximum rate, and a publish p99 at most 2× one copy's at the
// same fixed rate; the other variants are held to it too, for reference.
type ReplicationRatio struct {
	Target      string `json:"target"`
	Copies      int    `json:"copies"`
	Replication string `json:"replication"`
	// MaxRate is the max case's throughput (msg/s); MaxShare the share of
	// one copy's it is.
	MaxRate  float64 `json:"max_produce_rate"`
	MaxShare float64 `json:"max_rate_share"`
	// FixedRate is the fixed-rate case's rate (msg/s), P99 its publish
	// p99 (ms), P99Multiple that p99 ÷ one copy's at the same rate.
	FixedRate   float64 `json:"fixed_rate"`
	P99         float64 `json:"fixed_rate_publish_p99_ms"`
	P99Multiple float64 `json:"fixed_rate_p99_multiple"`
	// FellBehind tells that the variant did not keep up with the fixed
	// rate: its p99 (counted from the due times) holds the queue.
	FellBehind bool `json:"fixed_rate_fell_behind,omitempty"`
	// ThroughputMet and LatencyMet hold the variant to the goal's bounds;
	// nil when not measured.
	ThroughputMet *bool `json:"throughput_goal_met"`
	LatencyMet    *bool `json:"latency_goal_met"`
}

// fixedCase returns run's fixed-rate case.
func fixedCase(run *TargetRun) *CaseResult {
	for i := range run.Cases {
		if run.Cases[i].Rate > 0 {
			return &run.Cases[i]
		}
	}
	return nil
}

// replicationRatios compares the replication workload's variants (the
// runs with Copies set) with its one-copy run.
func replicationRatios(runs []TargetRun) []ReplicationRatio {
	var base *TargetRun
	for i := range runs {
		if runs[i].Copies == 1 {
			base = &runs[i]
			break
		}
	}
	if base == nil {
		return nil
	}
	bmax, bfix := base.findCase("max"), fixedCase(base)
	var out []ReplicationRatio
	for i := range runs {
		run := &runs[i]
		if run.Copies == 0 {
			continue
		}
		rr := ReplicationRatio{Target: run.Target, Copies: run.Copies, Replication: run.Replication}
		if c := run.findCase("max"); c != nil && c.Produced > 0 {
			rr.MaxRate = c.ProduceRate
			if bmax != nil && bmax.Produced > 0 && bmax.ProduceRate > 0 {
				rr.MaxShare = ratio(c.ProduceRate, bmax.ProduceRate)
				rr.ThroughputMet = met(rr.MaxShare >= replicationGoalShare)
			}
		}
		if c := fixedCase(run); c != nil && c.Produced > 0 {
			rr.FixedRate, rr.P99 = c.Rate, c.Publish.P99
			rr.FellBehind = c.ProduceRate < 0.95*c.Rate || c.Unsent > 0
			if bfix != nil && bfix.Produced > 0 && bfix.Publish.P99 > 0 && bfix.Rate == c.Rate {
				rr.P99Multiple = ratio(c.Publish.P99, bfix.Publish.P99)
				rr.LatencyMet = met(rr.P99Multiple <= replicationGoalP99)
			}
		}
		out = append(out, rr)
	}
	return out
}

// replicationGoals holds sync replication with 3 copies to the goal.
func (r *Report) replicationGoals() []Goal {
	tg := Goal{Goal: fmt.Sprintf("replication: sync with 3 copies keeps ≥ %.0f%% of 1 copy's throughput (max rate)", 100*replicationGoalShare),
		Measured: "not measured (needs --workload " + Replication + ")"}
	lg := Goal{Goal: fmt.Sprintf("replication: sync with 3 copies has a publish p99 ≤ %.0f× 1 copy's (at half 1 copy's max rate)", replicationGoalP99),
		Measured: tg.Measured}
	w := r.workload(Replication)
	if w == nil {
		return []Goal{tg, lg}
	}
	var base, sync3 *ReplicationRatio
	for i := range w.Replication {
		switch rr := &w.Replication[i]; {
		case rr.Copies == 1:
			base = rr
		case rr.Copies == 3 && rr.Replication == "sync":
			sync3 = rr
		}
	}
	if base != nil && sync3 != nil {
		if sync3.ThroughputMet != nil {
			tg.Measured = fmt.Sprintf("%.0f vs %.0f msg/s: %.0f%%", sync3.MaxRate, base.MaxRate, 100*sync3.MaxShare)
			tg.Met = sync3.ThroughputMet
		}
		if sync3.LatencyMet != nil {
			lg.Measured = fmt.Sprintf("p99 %.2f vs %.2f ms at %.0f msg/s: ×%.2f", sync3.P99, base.P99, sync3.FixedRate, sync3.P99Multiple)
			lg.Met = sync3.LatencyMet
		}
	}
	return []Goal{tg, lg}
}

// writeReplicationTable prints the replication variants against one copy
// (cores: the machine's, which all copies share).
func writeReplicationTable(w io.Writer, rs []ReplicationRatio, cores int) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "against 1 copy (the goal, for sync with 3 copies: ≥ %.0f%% of its max rate, publish p99 ≤ %.0f× at the same fixed rate):\n",
		100*replicationGoalShare, replicationGoalP99)
	verdict := func(m *bool) string {
		if m == nil {
			return "n/a"
		}
		return map[bool]string{true: "met", false: "NOT met"}[*m]
	}
	pct := func(x float64) string {
		if x == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", 100*x)
	}
	times := func(x float64) string {
		if x == 0 {
			return "-"
		}
		return fmt.Sprintf("×%.2f", x)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "copies\treplication\tmax msg/s\tshare\tgoal\tfixed msg/s\tpublish p99 ms\tmultiple\tgoal\t")
	behind := false
	for _, r := range rs {
		p99 := ms(r.P99)
		if r.FellBehind {
			p99, behind = p99+" *", true
		}
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%s\t%s\t%.0f\t%s\t%s\t%s\t\n", r.Copies, r.Replication, r.MaxRate, pct(r.MaxShare),
			verdict(r.ThroughputMet), r.FixedRate, p99, times(r.P99Multiple), verdict(r.LatencyMet))
	}
	tw.Flush()
	if behind {
		fmt.Fprintln(w, "* fell behind the fixed rate: the p99, counted from when each send was due, holds the queue")
	}
	if cores > 0 {
		fmt.Fprintf(w, "(every copy runs on this machine: the followers share its %d cores and its disk with the leader and the bench's clients)\n", cores)
	}
}
