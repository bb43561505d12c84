package broker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-mq/strata/remoting"
)

// metrics are the broker's Prometheus metrics.
type metrics struct {
	msgsIn, bytesIn, msgsOut, bytesOut *prometheus.CounterVec
	requests                           *prometheus.HistogramVec
}

func newMetrics(b *Broker, reg prometheus.Registerer) *metrics {
	m := &metrics{
		msgsIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_messages_in_total",
			Help: "Messages stored, by topic."}, []string{"topic"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_bytes_in_total",
			Help: "Message body bytes stored, by topic."}, []string{"topic"}),
		msgsOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_messages_out_total",
			Help: "Messages delivered by pulls, by topic."}, []string{"topic"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_bytes_out_total",
			Help: "Record bytes delivered by pulls, by topic."}, []string{"topic"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_request_duration_seconds",
			Help:    "Time from a request's arrival to its response, by request code (held pulls excluded).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"request"}),
	}
	if reg == nil {
		return m
	}
	st := func(f func() float64) func() float64 { return f }
	reg.MustRegister(m.msgsIn, m.bytesIn, m.msgsOut, m.bytesOut, m.requests,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_pulls_held", Help: "Pulls waiting for messages (long polling)."},
			st(func() float64 { return float64(b.holds.heldCount()) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_store_syncs_total", Help: "fdatasync calls on commit-log segments."},
			st(func() float64 { return float64(b.store.Stats().Syncs) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_store_sync_seconds_total", Help: "Time spent in commit-log fdatasync; divide by strata_store_syncs_total for the mean flush latency."},
			st(func() float64 { return b.store.Stats().SyncTime.Seconds() })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_store_commits_total", Help: "Group commits."},
			st(func() float64 { return float64(b.store.Stats().Commits) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_store_write_seconds_total", Help: "Time spent writing commit-log segments."},
			st(func() float64 { return b.store.Stats().WriteTime.Seconds() })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_store_tail_reads_total", Help: "Queue reads served from the in-memory tail of the commit log."},
			st(func() float64 { return float64(b.store.Stats().TailReads) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_store_file_reads_total", Help: "Queue reads served from commit-log segment files."},
			st(func() float64 { return float64(b.store.Stats().FileReads) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_store_prewritten_bytes_total", Help: "Zeros written ahead of the commit-log end, so that group commits overwrite written blocks."},
			st(func() float64 { return float64(b.store.Stats().Prewritten) })),
	)
	return m
}

func (m *metrics) observe(code int16, start time.Time) {
	m.requests.WithLabelValues(remoting.RequestCodeName(code)).Observe(time.Since(start).Seconds())
}
