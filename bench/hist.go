package bench

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histograms hold latencies in microseconds, from 1 µs to 10 minutes, to 3
// significant digits (HdrHistogram's usual precision: ±0.1%).
const (
	histMinMicros = 1
	histMaxMicros = int64(10 * time.Minute / time.Microsecond)
	histSigFigs   = 3
	histShards    = 8
)

// latencyHist is an HDR histogram that many goroutines record into at once:
// recordings spread over shards, each with its own lock, and are merged
// when read.
type latencyHist struct {
	next   atomic.Uint32
	shards [histShards]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
		_  [40]byte // keep the shards' locks on separate cache lines
	}
}

func newLatencyHist() *latencyHist {
	l := &latencyHist{}
	for i := range l.shards {
		l.shards[i].h = hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)
	}
	return l
}

// Record adds one latency; values beyond the range are clamped to it.
func (l *latencyHist) Record(d time.Duration) {
	us := int64(d / time.Microsecond)
	us = min(max(us, histMinMicros), histMaxMicros)
	s := &l.shards[l.next.Add(1)%histShards]
	s.mu.Lock()
	_ = s.h.RecordValue(us) // in range: cannot fail
	s.mu.Unlock()
}

// Snapshot returns the merge of every shard.
func (l *latencyHist) Snapshot() *hdrhistogram.Histogram {
	out := hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		out.Merge(s.h)
		s.mu.Unlock()
	}
	return out
}

// LatencySummary is a latency distribution's key figures, in milliseconds.
type LatencySummary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
	// Distribution is the percentile curve the charts draw: latency at
	// quantiles spaced evenly on a log scale of 1/(1-q), up to the
	// highest quantile the sample resolves, then the maximum.
	Distribution []QuantilePoint `json:"distribution,omitempty"`
}

// QuantilePoint is one point of a percentile curve.
type QuantilePoint struct {
	Quantile float64 `json:"q"`
	Ms       float64 `json:"ms"`
}

func microsToMs(us int64) float64 { return float64(us) / 1000 }

// summarize computes a LatencySummary from an HDR histogram.
func summarize(h *hdrhistogram.Histogram) LatencySummary {
	n := h.TotalCount()
	if n == 0 {
		return LatencySummary{}
	}
	s := LatencySummary{
		Count: n,
		Mean:  h.Mean() / 1000,
		P50:   microsToMs(h.ValueAtPercentile(50)),
		P90:   microsToMs(h.ValueAtPercentile(90)),
		P99:   microsToMs(h.ValueAtPercentile(99)),
		P999:  microsToMs(h.ValueAtPercentile(99.9)),
		Max:   microsToMs(h.Max()),
	}
	s.Distribution = distribution(h)
	return s
}

// distribution samples h's percentile curve at quantiles q with
// 1/(1-q) = 10^(k/10), k = 0, 1, …, while the sample has at least a
// couple of values beyond q, and ends with the maximum at q = 1-1/n.
func distribution(h *hdrhistogram.Histogram) []QuantilePoint {
	n := h.TotalCount()
	var pts []QuantilePoint
	for k := 0; ; k++ {
		q := 1 - math.Pow(10, -float64(k)/10)
		if (1-q)*float64(n) < 2 {
			break
		}
		pts = append(pts, QuantilePoint{Quantile: q, Ms: microsToMs(h.ValueAtPercentile(q * 100))})
	}
	if n > 1 {
		pts = append(pts, QuantilePoint{Quantile: 1 - 1/float64(n), Ms: microsToMs(h.Max())})
	}
	return pts
}
