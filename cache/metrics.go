package cache

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metric is one exported series, read from a Stats snapshot.
type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(Stats) float64
}

// collector exports a Cache's Stats as Prometheus metrics; every scrape
// reads one snapshot, so there is no second set of counters to keep in step.
type collector struct {
	c       *Cache
	metrics []metric
}

func newCollector(c *Cache) *collector {
	counter := func(name, help string, v func(Stats) uint64) metric {
		return metric{prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue,
			func(s Stats) float64 { return float64(v(s)) }}
	}
	gauge := func(name, help string, v func(Stats) float64) metric {
		return metric{prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, v}
	}
	return &collector{c: c, metrics: []metric{
		counter("strata_cache_hits_total", "Cold-block cache lookups served from memory.",
			func(s Stats) uint64 { return s.Hits }),
		counter("strata_cache_misses_total", "Cold-block cache lookups not served from memory (including those that joined a fetch in flight).",
			func(s Stats) uint64 { return s.Misses }),
		counter("strata_cache_coalesced_total", "Cold-block cache misses that joined a fetch already in flight.",
			func(s Stats) uint64 { return s.Coalesced }),
		counter("strata_cache_fetches_total", "Cold blocks fetched from the object store (by lookups and read-ahead).",
			func(s Stats) uint64 { return s.Fetches }),
		counter("strata_cache_fetch_errors_total", "Cold-block fetches that failed.",
			func(s Stats) uint64 { return s.FetchErrors }),
		counter("strata_cache_evictions_total", "Cold blocks evicted from the cache to make room.",
			func(s Stats) uint64 { return s.Evictions }),
		counter("strata_cache_prefetch_issued_total", "Read-ahead fetches queued.",
			func(s Stats) uint64 { return s.PrefetchIssued }),
		counter("strata_cache_prefetch_used_total", "Read-ahead blocks used by a reader.",
			func(s Stats) uint64 { return s.PrefetchUsed }),
		counter("strata_cache_prefetch_late_total", "Read-ahead blocks a reader had to wait for (the window was too small).",
			func(s Stats) uint64 { return s.PrefetchLate }),
		counter("strata_cache_prefetch_wasted_total", "Read-ahead blocks dropped before any reader used them.",
			func(s Stats) uint64 { return s.PrefetchWasted }),
		counter("strata_cache_prefetch_dropped_total", "Read-ahead requests skipped because the prefetch queue was full.",
			func(s Stats) uint64 { return s.PrefetchDropped }),
		gauge("strata_cache_bytes", "Bytes of cold blocks held in memory (values plus per-entry overhead).",
			func(s Stats) float64 { return float64(s.Bytes) }),
		gauge("strata_cache_max_bytes", "Configured bound of strata_cache_bytes (--cache-size).",
			func(s Stats) float64 { return float64(s.MaxBytes) }),
		gauge("strata_cache_entries", "Cold blocks held in memory.",
			func(s Stats) float64 { return float64(s.Entries) }),
		gauge("strata_cache_streams", "Sequential readers tracked for read-ahead.",
			func(s Stats) float64 { return float64(s.Streams) }),
		gauge("strata_cache_hit_ratio", "Hits / (hits + misses) since start; use the _total counters for rates over a window.",
			Stats.HitRatio),
		gauge("strata_cache_prefetch_waste_ratio", "Read-ahead blocks wasted / issued since start.",
			func(s Stats) float64 {
				if s.PrefetchIssued == 0 {
					return 0
				}
				return float64(s.PrefetchWasted) / float64(s.PrefetchIssued)
			}),
	}}
}

// Describe implements prometheus.Collector.
func (m *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range m.metrics {
		ch <- x.desc
	}
}

// Collect implements prometheus.Collector.
func (m *collector) Collect(ch chan<- prometheus.Metric) {
	s := m.c.Stats()
	for _, x := range m.metrics {
		ch <- prometheus.MustNewConstMetric(x.desc, x.kind, x.value(s))
	}
}

// Collector returns a prometheus.Collector exporting the cache's Stats as
// strata_cache_* metrics (hits, misses, bytes, prefetch used and wasted,
// hit ratio, …). To export two caches through one registry, wrap it with
// prometheus.WrapRegistererWith and a distinguishing label.
func (c *Cache) Collector() prometheus.Collector { return newCollector(c) }

// RegisterMetrics registers the cache's Collector with reg.
func (c *Cache) RegisterMetrics(reg prometheus.Registerer) error {
	if err := reg.Register(c.Collector()); err != nil {
		return fmt.Errorf("cache: register metrics: %w", err)
	}
	return nil
}
