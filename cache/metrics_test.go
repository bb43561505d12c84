package cache

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetrics(t *testing.T) {
	c := newTest(t, Config{MaxBytes: 1 << 20})
	ctx := context.Background()
	for range 3 {
		if _, err := c.Get(ctx, "k", value(100)); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	if err := c.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterMetrics(reg); err == nil {
		t.Fatal("registering twice succeeded")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		switch {
		case m.GetCounter() != nil:
			got[mf.GetName()] = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"strata_cache_hits_total":             2,
		"strata_cache_misses_total":           1,
		"strata_cache_fetches_total":          1,
		"strata_cache_entries":                1,
		"strata_cache_bytes":                  float64(cost("k", 100)),
		"strata_cache_max_bytes":              1 << 20,
		"strata_cache_prefetch_used_total":    0,
		"strata_cache_prefetch_wasted_total":  0,
		"strata_cache_prefetch_waste_ratio":   0,
		"strata_cache_prefetch_dropped_total": 0,
	}
	for name, v := range want {
		if g, ok := got[name]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", name, g, ok, v)
		}
	}
	if r := got["strata_cache_hit_ratio"]; r < 0.66 || r > 0.67 {
		t.Errorf("hit ratio %v", r)
	}
}
