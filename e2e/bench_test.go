package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
)

// BenchmarkProduce measures durable (flush=sync) produce throughput and
// latency of 1 KiB messages sent with the real rocketmq-client-go SendSync
// from concurrent goroutines to a strata standalone process, and, in the
// same run on the same disk, the store's own Append with the same
// concurrency and message count. The ratio shows what the network path
// (client, remoting, broker) keeps of the store's throughput.
//
//	go test -run '^$' -bench Produce -benchtime 20000x ./e2e/
func BenchmarkProduce(b *testing.B) {
	for _, writers := range []int{16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := startStrata(b)
			p := s.newProducer(b)
			topic := uniq("bench")
			s.createTopic(b, topic, 4, false)
			body := make([]byte, 1024)
			ctx := context.Background()
			if _, err := p.SendSync(ctx, primitive.NewMessage(topic, body)); err != nil {
				b.Fatal(err)
			}
			n := max(b.N, writers)
			b.SetBytes(1024)
			b.ResetTimer()
			net := sendLoad(b, writers, n, func() error {
				r, err := p.SendSync(ctx, primitive.NewMessage(topic, body))
				if err == nil && r.Status != primitive.SendOK {
					err = fmt.Errorf("send status %v", r.Status)
				}
				return err
			})
			b.StopTimer()
			st, err := store.Open(ctx, store.Config{Dir: b.TempDir(), SegmentSize: 64 << 20,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			var q atomic.Int32
			base := sendLoad(b, writers, n, func() error {
				m := []remoting.MessageExt{{Topic: "bench", QueueID: q.Add(1) % 4, Body: body}}
				return st.Append(ctx, m)
			})
			b.ReportMetric(net.rate, "msgs/s")
			b.ReportMetric(float64(net.p50.Microseconds()), "p50-µs")
			b.ReportMetric(float64(net.p99.Microseconds()), "p99-µs")
			b.ReportMetric(base.rate, "store-msgs/s")
			b.ReportMetric(float64(base.p99.Microseconds()), "store-p99-µs")
			b.ReportMetric(net.rate/base.rate, "ratio")
		})
	}
}

type loadStats struct {
	rate     float64
	p50, p99 time.Duration
}

// sendLoad calls send n times from writers goroutines and measures it.
func sendLoad(b *testing.B, writers, n int, send func() error) loadStats {
	var next atomic.Int64
	lats := make([][]time.Duration, writers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				if err := send(); err != nil {
					b.Error(err)
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	all := slices.Concat(lats...)
	slices.Sort(all)
	if len(all) == 0 {
		return loadStats{}
	}
	return loadStats{rate: float64(len(all)) / el.Seconds(), p50: all[len(all)/2], p99: all[len(all)*99/100]}
}
