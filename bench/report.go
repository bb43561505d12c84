package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything a run measured; report.json holds it.
type Report struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Command  []string  `json:"command,omitempty"`
	Machine  Machine   `json:"machine"`
	Options  struct {
		Workloads    []string `json:"workloads"`
		Duration     string   `json:"duration"`
		Warmup       string   `json:"warmup"`
		Rate         int      `json:"rate"`
		Concurrency  int      `json:"concurrency"`
		InFlight     int      `json:"in_flight"`
		MessageSize  int      `json:"message_size"`
		Topics       int      `json:"topics"`
		BacklogBytes int64    `json:"backlog_bytes"`
		Smoke        bool     `json:"smoke"`
	} `json:"options"`
	Ceilings    Ceilings         `json:"ceilings"`
	Workloads   []WorkloadResult `json:"workloads"`
	Comparisons []Comparison     `json:"comparisons"`
	Goals       []Goal           `json:"goals"`
	// Charts lists the SVG files written, relative to the output directory.
	Charts []string `json:"charts"`
	Notes  []string `json:"notes,omitempty"`
}

// Comparison is a ratio of the subject's (Strata's) figure to a peer's or
// a ceiling's: "×" ratios above 1 mean Strata has more of it.
type Comparison struct {
	Workload string  `json:"workload"`
	Case     string  `json:"case"`
	Against  string  `json:"against"`
	Figure   string  `json:"figure"`
	Subject  float64 `json:"subject"`
	Other    float64 `json:"other"`
	Ratio    float64 `json:"ratio"`
}

// Goal is one of the issues' goals (issue 8's, replication's) with what
// this run measured.
type Goal struct {
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	// Met is nil when the run lacks what the goal needs (a peer, a case).
	Met *bool `json:"met"`
}

func newReport(o Options) *Report {
	r := &Report{Started: time.Now(), Command: o.Command}
	r.Options.Workloads = o.Workloads
	r.Options.Duration = o.Duration.String()
	r.Options.Warmup = o.Warmup.String()
	r.Options.Rate = o.Rate
	r.Options.Concurrency = o.Concurrency
	r.Options.InFlight = o.InFlight
	r.Options.MessageSize = o.MessageSize
	r.Options.Topics = o.Topics
	r.Options.BacklogBytes = o.BacklogBytes
	r.Options.Smoke = o.Smoke
	return r
}

// workload returns the result of workload name, if it ran.
func (r *Report) workload(name string) *WorkloadResult {
	for i := range r.Workloads {
		if r.Workloads[i].Name == name {
			return &r.Workloads[i]
		}
	}
	return nil
}

// findCase returns run's case named name.
func (run *TargetRun) findCase(name string) *CaseResult {
	for i := range run.Cases {
		if run.Cases[i].Case == name {
			return &run.Cases[i]
		}
	}
	return nil
}

// subjectCase returns the subject's (first target's) case of a workload.
func (r *Report) subjectCase(workload, cs string) *CaseResult {
	w := r.workload(workload)
	if w == nil || len(w.Runs) == 0 {
		return nil
	}
	return w.Runs[0].findCase(cs)
}

// peerRun returns the run of a peer whose name contains sub.
func (w *WorkloadResult) peerRun(sub string) *TargetRun {
	for i := 1; i < len(w.Runs); i++ {
		if strings.Contains(w.Runs[i].Target, sub) {
			return &w.Runs[i]
		}
	}
	return nil
}

func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return 0
	}
	return a / b
}

// computeComparisons fills Comparisons and Goals from the results.
func (r *Report) computeComparisons() {
	r.Comparisons, r.Goals = nil, nil
	for i := range r.Workloads {
		if w := &r.Workloads[i]; w.Name == Replication {
			w.Replication = replicationRatios(w.Runs)
		}
	}
	for _, w := range r.Workloads {
		if len(w.Runs) == 0 {
			continue
		}
		subj := w.Runs[0]
		peers := w.Runs[1:]
		if w.Name == Replication {
			peers = nil // the other runs are the subject's variants: see Replication
		}
		for _, sc := range subj.Cases {
			for _, peer := range peers {
				pc := peer.findCase(sc.Case)
				if pc == nil || pc.Produced == 0 || sc.Produced == 0 {
					continue
				}
				add := func(fig string, a, b float64) {
					if a > 0 && b > 0 {
						r.Comparisons = append(r.Comparisons, Comparison{w.Name, sc.Case, peer.Target, fig, a, b, ratio(a, b)})
					}
				}
				// half-max runs each target at half its own peak: only
				// the latencies compare.
				sameRate := !strings.HasPrefix(sc.Case, "half")
				if sameRate {
					add("produce msg/s", sc.ProduceRate, pc.ProduceRate)
				}
				add("publish p99 ms", sc.Publish.P99, pc.Publish.P99)
				add("end-to-end p99 ms", sc.EndToEnd.P99, pc.EndToEnd.P99)
				if sameRate {
					add("CPU s per million msgs", sc.CPUPerMillion, pc.CPUPerMillion)
				}
			}
			if d := r.Ceilings.Disk; d != nil && sc.Rate == 0 {
				best := d.Best()
				r.Comparisons = append(r.Comparisons, Comparison{w.Name, sc.Case,
					fmt.Sprintf("disk ceiling (%s O_DIRECT writes + fdatasync)", humanBytes(int64(best.BlockSize))),
					"MiB/s", sc.ProduceMiBps, best.MiBPerSec, ratio(sc.ProduceMiBps, best.MiBPerSec)})
			}
		}
		if b := subj.Backlog; b != nil {
			if nd, d := subj.findCase("no-drain"), subj.findCase("drain"); nd != nil && d != nil {
				r.Comparisons = append(r.Comparisons, Comparison{w.Name, "drain", "no-drain", "publish p99 ms",
					d.Publish.P99, nd.Publish.P99, ratio(d.Publish.P99, nd.Publish.P99)})
				if pd := d.PublishDuring; pd != nil && pd.Count > 0 {
					r.Comparisons = append(r.Comparisons, Comparison{w.Name, "drain", "no-drain", "publish p99 ms while draining",
						pd.P99, nd.Publish.P99, ratio(pd.P99, nd.Publish.P99)})
				}
			}
			if oc := b.ObjectStore; oc != nil && b.DrainMiBps > 0 {
				r.Comparisons = append(r.Comparisons, Comparison{w.Name, "drain", "object store ceiling (1 MiB ranged GETs)",
					"MiB/s", b.DrainMiBps, oc.RangedMiBPerSec, ratio(b.DrainMiBps, oc.RangedMiBPerSec)})
			}
		}
	}
	r.Goals = r.goals()
}

func met(ok bool) *bool { return &ok }

// goals checks issue 8's goals against the subject's figures.
func (r *Report) goals() []Goal {
	var gs []Goal
	one := r.workload(OneTopic)
	subjMax := r.subjectCase(OneTopic, "max")
	vsPeer := func(sub, goal string, check func(s, p *CaseResult) (string, bool)) {
		g := Goal{Goal: goal, Measured: "not measured (needs --workload " + OneTopic + " with --peer jetstream)"}
		if one != nil && subjMax != nil {
			if pr := one.peerRun(sub); pr != nil {
				if pc := pr.findCase("max"); pc != nil && pc.Produced > 0 {
					m, ok := check(subjMax, pc)
					g.Measured, g.Met = m, met(ok)
				}
			}
		}
		gs = append(gs, g)
	}
	vsPeer("always", "flush=sync throughput ≥ 10× JetStream's with an fsync per write (max rate)", func(s, p *CaseResult) (string, bool) {
		x := ratio(s.ProduceRate, p.ProduceRate)
		return fmt.Sprintf("%.0f vs %.0f msg/s: ×%.2f", s.ProduceRate, p.ProduceRate, x), x >= 10
	})
	vsPeer("default", "flush=sync throughput ≥ 1× JetStream's non-durable default, with a lower publish p99 (max rate)", func(s, p *CaseResult) (string, bool) {
		x := ratio(s.ProduceRate, p.ProduceRate)
		return fmt.Sprintf("%.0f vs %.0f msg/s: ×%.2f; p99 %.2f vs %.2f ms", s.ProduceRate, p.ProduceRate, x, s.Publish.P99, p.Publish.P99),
			x >= 1 && s.Publish.P99 < p.Publish.P99
	})
	g := Goal{Goal: "≥ 80% of the disk ceiling (max-rate payload MiB/s ÷ best O_DIRECT + fdatasync MiB/s)", Measured: "not measured"}
	if d := r.Ceilings.Disk; d != nil && subjMax != nil {
		best := d.Best()
		x := ratio(subjMax.ProduceMiBps, best.MiBPerSec)
		g.Measured = fmt.Sprintf("%.1f of %.0f MiB/s: %.1f%%", subjMax.ProduceMiBps, best.MiBPerSec, 100*x)
		g.Met = met(x >= 0.8)
	}
	gs = append(gs, g)
	g = Goal{Goal: "topics-10k ≥ 90% of 1-topic (max rate)", Measured: "not measured (needs both workloads)"}
	if tt := r.subjectCase(Topics10k, "max"); tt != nil && subjMax != nil && subjMax.ProduceRate > 0 {
		x := ratio(tt.ProduceRate, subjMax.ProduceRate)
		g.Measured = fmt.Sprintf("%.0f vs %.0f msg/s: %.0f%%", tt.ProduceRate, subjMax.ProduceRate, 100*x)
		g.Met = met(x >= 0.9)
	}
	gs = append(gs, g)
	g = Goal{Goal: "publish p99 ≤ 2 ms at 50% of peak", Measured: "not measured"}
	if h := r.subjectCase(OneTopic, "half-max"); h != nil && h.Produced > 0 {
		g.Measured = fmt.Sprintf("p99 %.2f ms at %.0f msg/s", h.Publish.P99, h.Rate)
		g.Met = met(h.Publish.P99 <= 2)
	}
	gs = append(gs, g)
	g = Goal{Goal: "backlog-drain raises publish p99 by ≤ 10%", Measured: "not measured"}
	if nd, d := r.subjectCase(BacklogDrain, "no-drain"), r.subjectCase(BacklogDrain, "drain"); nd != nil && d != nil && nd.Publish.P99 > 0 {
		p99, what := d.Publish.P99, "over the drain case's window"
		if pd := d.PublishDuring; pd != nil && pd.Count >= 100 {
			p99, what = pd.P99, fmt.Sprintf("over the %d sends made while draining", pd.Count)
		}
		x := ratio(p99, nd.Publish.P99)
		g.Measured = fmt.Sprintf("p99 %.2f ms with the drain (%s), %.2f ms without: %+.0f%%", p99, what, nd.Publish.P99, 100*(x-1))
		g.Met = met(x <= 1.10)
	}
	gs = append(gs, g)
	g = Goal{Goal: "CPU per million messages ≤ JetStream's (fixed rate, 1-topic)", Measured: "not measured (needs --peer jetstream)"}
	if one != nil && len(one.Runs) > 1 {
		var parts []string
		ok, any := true, false
		for _, s := range one.Runs[0].Cases {
			if s.Rate == 0 || strings.HasPrefix(s.Case, "half") {
				continue
			}
			for _, p := range one.Runs[1:] {
				if pc := p.findCase(s.Case); pc != nil && pc.CPUPerMillion > 0 && s.CPUPerMillion > 0 {
					any = true
					ok = ok && s.CPUPerMillion <= pc.CPUPerMillion
					parts = append(parts, fmt.Sprintf("%.1f vs %.1f s (%s)", s.CPUPerMillion, pc.CPUPerMillion, p.Target))
				}
			}
		}
		if any {
			g.Measured, g.Met = strings.Join(parts, "; "), met(ok)
		}
	}
	gs = append(gs, g)
	g = Goal{Goal: "broker RSS idle ≤ 50 MiB", Measured: "not measured"}
	if one != nil && len(one.Runs) > 0 && len(one.Runs[0].IdleRSS) > 0 {
		rss := one.Runs[0].IdleRSS[0].IdleRSS
		g.Measured = fmt.Sprintf("%.1f MiB", float64(rss)/(1<<20))
		g.Met = met(rss <= 50<<20)
	}
	gs = append(gs, g)
	g = Goal{Goal: "broker peak RSS under 1-topic-16-queues-1kb ≤ 256 MiB plus the cache (no cold tier here, so no cache)", Measured: "not measured"}
	if one != nil && len(one.Runs) > 0 {
		var peak int64
		for _, c := range one.Runs[0].Cases {
			if len(c.Procs) > 0 {
				peak = max(peak, c.Procs[0].PeakRSS)
			}
		}
		if peak > 0 {
			g.Measured = fmt.Sprintf("%.1f MiB", float64(peak)/(1<<20))
			g.Met = met(peak <= 256<<20)
		}
	}
	gs = append(gs, g)
	return append(gs, r.replicationGoals()...)
}

var unsafeFile = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// write writes report.json and the charts into dir.
func (r *Report) write(dir string) error {
	var errs []error
	r.Charts = nil
	for _, w := range r.Workloads {
		cases := map[string]bool{}
		var order []string
		for _, run := range w.Runs {
			for _, c := range run.Cases {
				if !cases[c.Case] {
					cases[c.Case] = true
					order = append(order, c.Case)
				}
			}
		}
		for _, cs := range order {
			var series []chartSeries
			for i, run := range w.Runs {
				c := run.findCase(cs)
				if c == nil {
					continue
				}
				series = append(series,
					chartSeries{label: run.Target + " publish", color: i, pts: c.Publish.Distribution},
					chartSeries{label: run.Target + " end-to-end", color: i, dashed: true, pts: c.EndToEnd.Distribution})
				if pd := c.PublishDuring; pd != nil {
					series = append(series, chartSeries{label: run.Target + " publish while draining", color: i, dotted: true, pts: pd.Distribution})
				}
			}
			name := unsafeFile.ReplaceAllString(w.Name+"_"+cs, "-") + ".svg"
			if err := writePercentileChart(filepath.Join(dir, name), w.Name+" "+cs+": latency by percentile", series); err != nil {
				errs = append(errs, err)
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				r.Charts = append(r.Charts, name)
			}
		}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("report: %w", err))...)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		errs = append(errs, fmt.Errorf("report: %w", err))
	}
	return errors.Join(errs...)
}

func mib(b int64) string { return fmt.Sprintf("%.0f", float64(b)/(1<<20)) }

func ms(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// WriteText prints the report's tables.
func (r *Report) WriteText(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "\nmachine: %s, %d cores, %s RAM, %s, %s; load average %.1f at the start, %.1f at the end\n",
		m.CPUModel, m.Cores, humanBytes(m.MemBytes), m.Kernel, m.GoVersion, m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "disk: %s (%s on %s, mounted at %s)\n", m.Disk.Dir, m.Disk.FSType, m.Disk.Device, m.Disk.Mount)
	if d := r.Ceilings.Disk; d != nil {
		fmt.Fprintf(w, "\n== ceiling: sequential writes, each followed by fdatasync (O_DIRECT: %v)\n", d.Direct)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "block\tMiB/s\twrites/s\tp50 ms\tp99 ms\t")
		for _, b := range d.Blocks {
			fmt.Fprintf(tw, "%s\t%.1f\t%.0f\t%s\t%s\t\n", humanBytes(int64(b.BlockSize)), b.MiBPerSec, b.WritesPerSec, ms(b.Latency.P50), ms(b.Latency.P99))
		}
		for _, f := range d.Fio {
			fmt.Fprintf(tw, "fio %s\t%.1f\t%.0f\t\t\t\n", humanBytes(int64(f.BlockSize)), f.MiBPerSec, f.IOPS)
		}
		tw.Flush()
		if d.FioNote != "" {
			fmt.Fprintf(w, "(%s)\n", d.FioNote)
		}
	}
	if o := r.Ceilings.ObjectStore; o != nil {
		fmt.Fprintf(w, "\n== ceiling: raw GETs from the cold tier's MinIO (%d objects of %s)\n", o.Objects, humanBytes(o.ObjectSize))
		fmt.Fprintf(w, "whole objects, 1 at a time: %.0f MiB/s; 1 MiB ranges, %d at a time: %.0f MiB/s (p99 %s ms)\n",
			o.WholeMiBPerSec, o.RangedConcurrency, o.RangedMiBPerSec, ms(o.RangedLatency.P99))
	}
	for _, wr := range r.Workloads {
		fmt.Fprintf(w, "\n== %s: %s\n", wr.Name, wr.Description)
		if wr.Name == ColdStart {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "target\truns\tmin ms\tmedian ms\tp99 ms\tmax ms\tbinary MiB\t")
			for _, run := range wr.Runs {
				if c := run.ColdStart; c != nil {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.1f\t\n", run.Target, c.Runs, ms(c.MinMs), ms(c.MedianMs), ms(c.P99Ms), ms(c.MaxMs), float64(c.BinaryBytes)/(1<<20))
				}
			}
			tw.Flush()
		} else {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "target\tcase\tproduce/s\tconsume/s\tMiB/s\tpublish ms p50\tp99\tp99.9\tmax\te2e ms p50\tp99\tp99.9\tmax\terrors\tCPU s/M msgs\tpeak RSS MiB\t")
			for _, run := range wr.Runs {
				for _, c := range run.Cases {
					var peak int64
					if len(c.Procs) > 0 {
						peak = c.Procs[0].PeakRSS
					}
					fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.1f\t%s\t\n",
						run.Target, c.Case, c.ProduceRate, c.ConsumeRate, c.ProduceMiBps,
						ms(c.Publish.P50), ms(c.Publish.P99), ms(c.Publish.P999), ms(c.Publish.Max),
						ms(c.EndToEnd.P50), ms(c.EndToEnd.P99), ms(c.EndToEnd.P999), ms(c.EndToEnd.Max),
						c.Errors, c.CPUPerMillion, mib(peak))
				}
			}
			tw.Flush()
		}
		for _, run := range wr.Runs {
			var idle []string
			for _, p := range run.IdleRSS {
				idle = append(idle, fmt.Sprintf("%s %s MiB", p.Name, mib(p.IdleRSS)))
			}
			line := fmt.Sprintf("%s: started in %.1fs", run.Target, run.StartSeconds)
			if len(idle) > 0 {
				line += ", idle RSS " + strings.Join(idle, ", ")
			}
			if run.SetupSeconds > 0.05 {
				line += fmt.Sprintf(", topics created in %.1fs", run.SetupSeconds)
			}
			fmt.Fprintln(w, line)
			if b := run.Backlog; b != nil {
				cold := "no cold tier"
				if b.ColdFraction >= 0 {
					cold = fmt.Sprintf("%.0f%% of it cold when the drain began", 100*b.ColdFraction)
				}
				done := "not finished within the case"
				if b.Complete {
					done = "complete"
				}
				fmt.Fprintf(w, "  backlog: %d messages (%s) preloaded at %.0f msg/s, %s; drained %d in %.1fs = %.0f msg/s, %.1f MiB/s (%s)\n",
					b.Messages, humanBytes(b.Bytes), b.PreloadRate, cold, b.Drained, b.DrainSeconds, b.DrainRate, b.DrainMiBps, done)
			}
			for _, c := range run.Cases {
				if pd := c.PublishDuring; pd != nil && pd.Count > 0 {
					fmt.Fprintf(w, "  %s: publish while draining (%d sends): p50 %s, p99 %s, p99.9 %s, max %s ms\n",
						c.Case, pd.Count, ms(pd.P50), ms(pd.P99), ms(pd.P999), ms(pd.Max))
				}
				if len(c.Procs) > 1 {
					var ps []string
					for _, p := range c.Procs {
						ps = append(ps, fmt.Sprintf("%s %.1f CPU s, peak RSS %s MiB", p.Name, p.CPUSeconds, mib(p.PeakRSS)))
					}
					fmt.Fprintf(w, "  %s: processes: %s\n", c.Case, strings.Join(ps, "; "))
				}
				for _, n := range c.Notes {
					fmt.Fprintf(w, "  %s: %s\n", c.Case, n)
				}
				for _, e := range c.ErrorSamples {
					fmt.Fprintf(w, "  %s: error: %s\n", c.Case, e)
				}
			}
			if run.Note != "" {
				fmt.Fprintf(w, "  setup: %s\n", run.Note)
			}
			if run.Error != "" {
				fmt.Fprintf(w, "  ERROR: %s\n", run.Error)
			}
		}
		writeReplicationTable(w, wr.Replication, r.Machine.Cores)
		var cmp []Comparison
		for _, c := range r.Comparisons {
			if c.Workload == wr.Name {
				cmp = append(cmp, c)
			}
		}
		if len(cmp) > 0 && len(wr.Runs) > 0 {
			fmt.Fprintf(w, "ratios, %s ÷ …:\n", wr.Runs[0].Target)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, c := range cmp {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%.4g ÷ %.4g\t= ×%.3g\n", c.Case, c.Against, c.Figure, c.Subject, c.Other, c.Ratio)
			}
			tw.Flush()
		}
	}
	if len(r.Goals) > 0 {
		fmt.Fprintf(w, "\n== goals\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, g := range r.Goals {
			v := "n/a"
			if g.Met != nil {
				v = map[bool]string{true: "met", false: "NOT met"}[*g.Met]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", v, g.Goal, g.Measured)
		}
		tw.Flush()
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
