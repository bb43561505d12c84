package bench

import (
	"sync"
	"testing"
	"time"
)

// virtualClock is a clock whose time moves only when a test moves it or a
// sleeper sleeps.
type virtualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *virtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *virtualClock) SleepUntil(t time.Time, stop <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
}

func (c *virtualClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var t0 = time.Unix(1_700_000_000, 0)

// TestPacerOnTime: a sender faster than the rate sends exactly at the
// schedule, rate × duration sends, each with the latency of the send only.
func TestPacerOnTime(t *testing.T) {
	clk := &virtualClock{now: t0}
	p := newPacer(clk, 100, t0, t0.Add(time.Second))
	var n int64
	for {
		i, due, ok := p.claim(nil)
		if !ok {
			break
		}
		if want := t0.Add(time.Duration(i) * 10 * time.Millisecond); !due.Equal(want) {
			t.Fatalf("send %d due at %v, want %v", i, due.Sub(t0), want.Sub(t0))
		}
		if !clk.Now().Equal(due) {
			t.Fatalf("send %d went at %v, due %v", i, clk.Now().Sub(t0), due.Sub(t0))
		}
		clk.advance(3 * time.Millisecond) // the send
		if lat := clk.Now().Sub(due); lat != 3*time.Millisecond {
			t.Fatalf("send %d: latency %v, want 3ms", i, lat)
		}
		n++
	}
	if n != 100 {
		t.Fatalf("%d sends in 1s at 100/s, want 100", n)
	}
}

// TestPacerNoCoordinatedOmission: a sender that takes twice the interval
// falls behind, and each send's latency counts from when it was due, so the
// queueing shows (a closed-loop measurement would report 2 ms throughout).
// The run still ends on time, with the sends it never got to unsent.
func TestPacerNoCoordinatedOmission(t *testing.T) {
	clk := &virtualClock{now: t0}
	end := t0.Add(time.Second)
	p := newPacer(clk, 1000, t0, end)
	h := newLatencyHist()
	var n int64
	for {
		i, due, ok := p.claim(nil)
		if !ok {
			break
		}
		clk.advance(2 * time.Millisecond)
		lat := clk.Now().Sub(due)
		// Send i starts at 2i ms (the sender is always late after the
		// first) and ends at 2(i+1) ms; it was due at i ms.
		if want := time.Duration(i+2) * time.Millisecond; lat != want {
			t.Fatalf("send %d: latency %v, want %v", i, lat, want)
		}
		h.Record(lat)
		n++
	}
	if n != 500 || clk.Now().After(end.Add(2*time.Millisecond)) {
		t.Fatalf("%d sends, ending at %v: want 500 (what 2 ms sends fit in 1 s), ending on time", n, clk.Now().Sub(t0))
	}
	if unsent := p.dueBy(end.Add(-time.Nanosecond)) - n; unsent != 500 {
		t.Fatalf("%d sends due and never made, want 500", unsent)
	}
	s := summarize(h.Snapshot())
	if s.P50 < 248 || s.P50 > 256 || s.P99 < 490 || s.P99 > 500 || s.Max < 500 {
		t.Fatalf("p50 %.1f ms, p99 %.1f ms, max %.1f ms: want about 252, 497 and 501", s.P50, s.P99, s.Max)
	}
}

// TestPacerMaxRate: at rate 0 every claim goes at once, latency counting
// from the claim, until the end.
func TestPacerMaxRate(t *testing.T) {
	clk := &virtualClock{now: t0}
	p := newPacer(clk, 0, t0, t0.Add(10*time.Millisecond))
	var n int64
	for {
		_, from, ok := p.claim(nil)
		if !ok {
			break
		}
		if !from.Equal(clk.Now()) {
			t.Fatalf("claim %d counts from %v, not now (%v)", n, from, clk.Now())
		}
		clk.advance(time.Millisecond)
		n++
	}
	if n != 10 {
		t.Fatalf("%d sends of 1 ms in 10 ms, want 10", n)
	}
}

func TestPacerStop(t *testing.T) {
	clk := &virtualClock{now: t0}
	p := newPacer(clk, 10, t0, t0.Add(time.Hour))
	stop := make(chan struct{})
	if _, _, ok := p.claim(stop); !ok {
		t.Fatal("claim before stop failed")
	}
	close(stop)
	if _, _, ok := p.claim(stop); ok {
		t.Fatal("claim after stop succeeded")
	}
}

func TestPacerDueBy(t *testing.T) {
	p := newPacer(&virtualClock{now: t0}, 50000, t0, t0.Add(time.Minute))
	for _, c := range []struct {
		at   time.Duration
		want int64
	}{{-time.Second, 0}, {0, 0}, {time.Nanosecond, 1}, {time.Millisecond, 51}, {time.Second, 50001}} {
		if got := p.dueBy(t0.Add(c.at)); got != c.want {
			t.Errorf("dueBy(%v) = %d, want %d", c.at, got, c.want)
		}
	}
	// dueAt and dueBy agree: send i is due by its own due time.
	for _, i := range []int64{0, 1, 7, 49999, 3_000_000} {
		if got := p.dueBy(p.dueAt(i).Add(time.Nanosecond)); got < i+1 {
			t.Errorf("dueBy(dueAt(%d)) = %d", i, got)
		}
	}
}

func TestWindow(t *testing.T) {
	w := window{from: t0, to: t0.Add(2 * time.Second)}
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{{-time.Nanosecond, false}, {0, true}, {time.Second, true}, {2*time.Second - 1, true}, {2 * time.Second, false}} {
		if got := w.contains(t0.Add(c.at)); got != c.want {
			t.Errorf("contains(%v) = %v", c.at, got)
		}
	}
	if w.seconds() != 2 {
		t.Errorf("seconds = %v", w.seconds())
	}
}

// TestRealClockSleepUntil: a real sleep ends at its time, or at once when
// stopped.
func TestRealClockSleepUntil(t *testing.T) {
	start := time.Now()
	realClock{}.SleepUntil(start.Add(20*time.Millisecond), nil)
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Fatalf("slept %v, want at least 20ms", el)
	}
	stop := make(chan struct{})
	close(stop)
	start = time.Now()
	realClock{}.SleepUntil(start.Add(time.Hour), stop)
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("stopped sleep took %v", el)
	}
}

func TestLatencyHist(t *testing.T) {
	h := newLatencyHist()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for v := g; v < 100000; v += 4 {
				h.Record(time.Duration(v+1) * time.Microsecond) // 1 µs … 100 ms
			}
		})
	}
	wg.Wait()
	h.Record(time.Hour) // clamped to the range
	s := summarize(h.Snapshot())
	near := func(got, want float64) bool { return got >= want*0.99 && got <= want*1.01 }
	if s.Count != 100001 || !near(s.P50, 50) || !near(s.P99, 99) || !near(s.P999, 99.9) || !near(s.Max, 600000) {
		t.Fatalf("summary %+v", s)
	}
	d := s.Distribution
	if len(d) < 40 || d[0].Quantile != 0 || d[len(d)-1].Ms != s.Max {
		t.Fatalf("distribution of %d points: first %+v, last %+v", len(d), d[0], d[len(d)-1])
	}
	for i := 1; i < len(d); i++ {
		if d[i].Quantile <= d[i-1].Quantile || d[i].Ms < d[i-1].Ms {
			t.Fatalf("distribution not increasing at %d: %+v then %+v", i, d[i-1], d[i])
		}
	}
	if summarize(newLatencyHist().Snapshot()).Count != 0 {
		t.Fatal("empty histogram has a count")
	}
}
