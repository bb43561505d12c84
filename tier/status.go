package tier

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type tierMetrics struct {
	uploadBytes     prometheus.Counter
	uploadSeconds   prometheus.Histogram
	uploadErrors    prometheus.Counter
	offloaded       prometheus.Counter
	coldReadBytes   prometheus.Counter
	coldReadSeconds prometheus.Histogram
	corruptObjects  prometheus.Counter
}

func newTierMetrics(t *Tier, reg prometheus.Registerer) *tierMetrics {
	m := &tierMetrics{
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_tier_upload_bytes_total",
			Help: "Bytes of segment objects uploaded to the cold tier."}),
		uploadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "strata_tier_upload_seconds",
			Help: "Time to build, upload and verify one segment object.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		uploadErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_tier_upload_errors_total",
			Help: "Failed segment uploads (each is retried with backoff)."}),
		offloaded: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_tier_segments_offloaded_total",
			Help: "Segments whose object and manifest entry are durable."}),
		coldReadBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_tier_cold_read_bytes_total",
			Help: "Message bytes served from the cold tier."}),
		coldReadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "strata_tier_cold_read_seconds",
			Help: "Latency of cold reads (one pull's worth of messages).", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18)}),
		corruptObjects: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_tier_corrupt_objects_total",
			Help: "Corrupt or truncated segment objects detected (never served)."}),
	}
	if reg != nil {
		pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_tier_pending_segments",
			Help: "Sealed segments waiting for offload (upload lag)."}, func() float64 {
			// Not Status: that walks every manifest entry, on each scrape.
			t.mu.Lock()
			defer t.mu.Unlock()
			return float64(len(t.pending))
		})
		for _, c := range []prometheus.Collector{m.uploadBytes, m.uploadSeconds, m.uploadErrors, m.offloaded,
			m.coldReadBytes, m.coldReadSeconds, m.corruptObjects, pending} {
			reg.MustRegister(c)
		}
		if t.ownsC {
			t.cache.RegisterMetrics(reg)
		}
	}
	return m
}

// Status is the cold tier's state, for `strata admin tier status`.
type Status struct {
	Ready           bool         `json:"ready"` // manifest loaded
	Objects         int          `json:"objects"`
	Bytes           int64        `json:"bytes"`
	EndOffset       int64        `json:"endOffset"` // log offset after the last offloaded segment
	PendingSegments int          `json:"pendingSegments"`
	PendingBytes    int64        `json:"pendingBytes"`
	OldestPending   int64        `json:"oldestPendingBase,omitempty"`
	LastError       string       `json:"lastError,omitempty"`
	LastErrorAt     time.Time    `json:"lastErrorAt,omitzero"`
	Queues          []QueueRange `json:"queues"`
	CacheHitRatio   float64      `json:"cacheHitRatio"`
}

// Status reports what the cold tier holds and what waits for upload.
func (t *Tier) Status() Status {
	var st Status
	t.mu.Lock()
	st.PendingSegments = len(t.pending)
	for _, b := range t.pendingBasesLocked() {
		u := t.pending[b]
		if st.OldestPending == 0 {
			st.OldestPending = b
		}
		st.PendingBytes += u.seg.Size
	}
	if t.lastErr != nil {
		st.LastError, st.LastErrorAt = t.lastErr.Error(), t.lastErrT
	} else if t.loadErr != nil {
		st.LastError = t.loadErr.Error()
	}
	m := t.man
	t.mu.Unlock()
	if m != nil {
		st.Ready = true
		for _, e := range m.Entries() {
			st.Objects++
			st.Bytes += e.Size
		}
		st.EndOffset = m.EndOffset()
		st.Queues = m.Queues()
	}
	cs := t.cache.Stats()
	if n := cs.Hits + cs.Misses; n > 0 {
		st.CacheHitRatio = float64(cs.Hits) / float64(n)
	}
	return st
}
