package bench

import (
	"sync/atomic"
	"time"
)

// clock is the time source of a pacer; tests substitute a virtual one.
type clock interface {
	Now() time.Time
	// SleepUntil returns at t (or at once when t has passed), or early
	// when stop is closed.
	SleepUntil(t time.Time, stop <-chan struct{})
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(t time.Time, stop <-chan struct{}) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-stop:
	}
}

// pacer hands out the sends of one run to its workers.
//
// At a fixed rate it is open-loop: send i is due at start + i/rate
// whatever happened to earlier sends, a worker that claims it waits until
// then (or goes at once when it is late), and its latency counts from the
// due time, not from when a worker got round to it. A target that stalls
// therefore shows the stall in every send that was due meanwhile (no
// coordinated omission), as wrk2 and the OpenMessaging Benchmark measure.
// The number of workers bounds the sends in flight. The run ends at end
// whatever is still due: sends a slow target never got to are not made
// (the runner counts them as unsent).
//
// At rate 0 (as fast as possible) each worker sends again as soon as its
// previous send returns, and a send's latency counts from its start.
type pacer struct {
	clk   clock
	rate  float64 // sends per second; 0: as fast as possible
	start time.Time
	end   time.Time // no send is due at or after end
	next  atomic.Int64
}

func newPacer(clk clock, rate float64, start, end time.Time) *pacer {
	return &pacer{clk: clk, rate: rate, start: start, end: end}
}

// dueAt returns when send i is due at a fixed rate.
func (p *pacer) dueAt(i int64) time.Time {
	return p.start.Add(time.Duration(float64(i) * float64(time.Second) / p.rate))
}

// dueBy returns how many sends are due by t at a fixed rate.
func (p *pacer) dueBy(t time.Time) int64 {
	if !t.After(p.start) {
		return 0
	}
	return int64(t.Sub(p.start).Seconds()*p.rate) + 1
}

// claim returns the next send's index and the time its latency counts
// from, first waiting until it is due; ok is false when the run is over
// (or stop was closed).
func (p *pacer) claim(stop <-chan struct{}) (i int64, from time.Time, ok bool) {
	select {
	case <-stop:
		return 0, time.Time{}, false
	default:
	}
	i = p.next.Add(1) - 1
	if p.rate <= 0 {
		now := p.clk.Now()
		if !now.Before(p.end) {
			return 0, time.Time{}, false
		}
		return i, now, true
	}
	due := p.dueAt(i)
	if !due.Before(p.end) || !p.clk.Now().Before(p.end) {
		return 0, time.Time{}, false
	}
	p.clk.SleepUntil(due, stop)
	select {
	case <-stop:
		return 0, time.Time{}, false
	default:
	}
	return i, due, true
}

// window is the measured part of a run: sends due in [from, to) count.
type window struct{ from, to time.Time }

func (w window) contains(t time.Time) bool { return !t.Before(w.from) && t.Before(w.to) }

func (w window) seconds() float64 { return w.to.Sub(w.from).Seconds() }
