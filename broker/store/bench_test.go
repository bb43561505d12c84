package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// Benchmarks report ratios against the disk's own ceiling measured in the
// same run: BenchmarkRawDirectSync writes aligned blocks with O_DIRECT and
// calls fdatasync after each, for the batch sizes group commit produces.
//
//	go test -run '^$' -bench . -benchtime 3s ./broker/store/
//
// STRATA_BENCH_DIR chooses the directory (default: a temp dir under
// $TMPDIR, which must be on the disk being measured).

func benchDir(b *testing.B) string {
	b.Helper()
	root := os.Getenv("STRATA_BENCH_DIR")
	d, err := os.MkdirTemp(root, "strata-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func benchConfig(dir string) Config {
	c := Config{
		Dir:         dir,
		SegmentSize: 256 << 20,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if d, err := time.ParseDuration(os.Getenv("STRATA_BENCH_CHECKPOINT")); err == nil {
		c.CheckpointInterval = d
	}
	// STRATA_BENCH_PREWRITE=-1 turns the prewriter off, for A/B runs.
	if n, err := strconv.ParseInt(os.Getenv("STRATA_BENCH_PREWRITE"), 10, 64); err == nil {
		c.PrewriteAhead = n
	}
	return c
}

// rawDirectSync writes batch bytes (rounded up to 4 KiB) n times at
// sequential offsets with O_DIRECT, each followed by fdatasync, and returns
// the elapsed time.
func rawDirectSync(b *testing.B, dir string, batch, n int) time.Duration {
	path := filepath.Join(dir, "raw")
	os.Remove(path)
	w, r, direct, err := openSegmentFile(path, true, true)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	defer r.Close()
	if !direct {
		b.Log("O_DIRECT refused: measuring buffered writes")
	}
	const fileSize = 1 << 30
	if err := preallocate(w, fileSize); err != nil {
		b.Fatal(err)
	}
	align := dioAlignment(w)
	buf := alignedBuffer(alignUp(batch, align), align)
	for i := range buf {
		buf[i] = byte(i)
	}
	var off int64
	start := time.Now()
	for i := 0; i < n; i++ {
		if off+int64(len(buf)) > fileSize {
			off = 0
		}
		if _, err := w.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
		if err := fdatasync(w); err != nil {
			b.Fatal(err)
		}
		off += int64(len(buf))
	}
	return time.Since(start)
}

// BenchmarkRawDirectSync is the ceiling: one aligned O_DIRECT write of the
// batch plus one fdatasync per iteration. msgs/s counts 1 KiB messages.
func BenchmarkRawDirectSync(b *testing.B) {
	for _, kib := range []int{1, 16, 64, 256, 1024} {
		b.Run(fmt.Sprintf("batch=%dKiB", kib), func(b *testing.B) {
			dir := benchDir(b)
			b.SetBytes(int64(kib) << 10)
			b.ResetTimer()
			el := rawDirectSync(b, dir, kib<<10, b.N)
			b.ReportMetric(float64(b.N)*float64(kib)/el.Seconds(), "msgs/s")
			b.ReportMetric(float64(el.Microseconds())/float64(b.N), "µs/sync")
		})
	}
}

// loadResult is what runLoad measured.
type loadResult struct {
	msgs    int64
	elapsed time.Duration
	lat     []time.Duration // per Append, sorted
	stats   Stats
}

func (r loadResult) rate() float64 { return float64(r.msgs) / r.elapsed.Seconds() }
func (r loadResult) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

// runLoad appends total 1 KiB messages from writers goroutines spread over
// queues (topics of 4 queues each) and, when interval > 0, paces each
// writer to one append per interval.
func runLoad(b *testing.B, s *Store, writers, queues int, total int64, interval time.Duration) loadResult {
	body := make([]byte, 1024)
	topics := make([]string, (queues+3)/4)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench-%05d", i)
	}
	var next atomic.Int64
	lats := make([][]time.Duration, writers)
	before := s.Stats()
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			msg := make([]remoting.MessageExt, 1)
			tick := time.Now()
			for {
				n := next.Add(1) - 1
				if n >= total {
					return
				}
				if interval > 0 {
					tick = tick.Add(interval)
					if d := time.Until(tick); d > 0 {
						time.Sleep(d)
					}
				}
				q := int(n) % queues
				msg[0] = remoting.MessageExt{Topic: topics[q/4], QueueID: int32(q % 4), Body: body}
				t0 := time.Now()
				if err := s.Append(context.Background(), msg); err != nil {
					b.Error(err)
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	r := loadResult{msgs: total, elapsed: time.Since(start)}
	for _, l := range lats {
		r.lat = append(r.lat, l...)
	}
	slices.Sort(r.lat)
	after := s.Stats()
	r.stats = Stats{Messages: after.Messages - before.Messages, Syncs: after.Syncs - before.Syncs,
		Writes: after.Writes - before.Writes, Commits: after.Commits - before.Commits, Bytes: after.Bytes - before.Bytes,
		WriteTime: after.WriteTime - before.WriteTime, SyncTime: after.SyncTime - before.SyncTime}
	return r
}

func report(b *testing.B, r loadResult) {
	b.ReportMetric(r.rate(), "msgs/s")
	b.ReportMetric(float64(r.stats.Bytes)/r.elapsed.Seconds()/(1<<20), "MiB/s")
	b.ReportMetric(float64(r.stats.Messages)/float64(max(1, r.stats.Syncs)), "msgs/sync")
	b.ReportMetric(float64(r.pct(0.50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(r.pct(0.99).Microseconds()), "p99-µs")
	if c := float64(max(1, r.stats.Commits)); testing.Verbose() {
		b.Logf("per commit: %.1f msgs, %.1f writes, write %.0fµs, fdatasync %.0fµs; commit cycle %.0fµs",
			float64(r.stats.Messages)/c, float64(r.stats.Writes)/c, float64(r.stats.WriteTime.Microseconds())/c,
			float64(r.stats.SyncTime.Microseconds())/c, float64(r.elapsed.Microseconds())/c)
	}
}

// BenchmarkAppend measures durable (flush=sync) appends of 1 KiB messages
// and, in the same run, the raw ceiling for the batch a group commit of that
// many writers produces (writers × 1 KiB, capped at 1 MiB).
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			dir := benchDir(b)
			s := openTest(b, benchConfig(filepath.Join(dir, "store")))
			defer s.Close()
			b.SetBytes(1024)
			b.ResetTimer()
			r := runLoad(b, s, writers, 16, int64(b.N), 0)
			b.StopTimer()
			report(b, r)
			// Ceilings: raw write+fdatasync of the batch a commit actually
			// carried (the store's overhead) and of one message per writer
			// (how well group commit packs closed-loop writers).
			observed := int(r.stats.Bytes / max(1, r.stats.Commits))
			for _, c := range []struct {
				name  string
				batch int
			}{{"ceiling-same-batch", observed}, {"ceiling-all-writers", min(writers, 1024) * int(r.stats.Bytes/max(1, r.stats.Messages))}} {
				n := max(300, int(r.stats.Commits)/4)
				raw := rawDirectSync(b, dir, c.batch, n)
				ceiling := float64(n) * float64(c.batch) / raw.Seconds() / float64(r.stats.Bytes/max(1, r.stats.Messages))
				b.ReportMetric(ceiling, c.name+"-msgs/s")
				b.ReportMetric(r.rate()/ceiling, "ratio-"+c.name)
			}
		})
	}
}

// BenchmarkAppendQueues compares one queue with 10,000 (2,500 topics × 4
// queues) under the same load: 64 writers, flush=sync.
func BenchmarkAppendQueues(b *testing.B) {
	for _, queues := range []int{1, 10000} {
		b.Run(fmt.Sprintf("queues=%d", queues), func(b *testing.B) {
			s := openTest(b, benchConfig(benchDir(b)))
			defer s.Close()
			if queues > 1 { // create the queues outside the timed region
				runLoad(b, s, 64, queues, int64(queues), 0)
				// Let the creation of 20,000 directories reach the disk
				// before timing the steady state.
				if err := s.checkpointAt(time.Now(), true); err != nil {
					b.Fatal(err)
				}
			}
			// Earlier rounds' directory trees were just removed: let the
			// filesystem write that out too, or its journal commits ride on
			// the timed fdatasyncs.
			syscall.Sync()
			b.SetBytes(1024)
			b.ResetTimer()
			r := runLoad(b, s, 64, queues, int64(b.N), 0)
			b.StopTimer()
			report(b, r)
		})
	}
}

// BenchmarkLatencyHalfPeak measures the peak rate with 64 writers, then
// paces the same writers at half of it and reports append latency there.
func BenchmarkLatencyHalfPeak(b *testing.B) {
	s := openTest(b, benchConfig(benchDir(b)))
	defer s.Close()
	peak := runLoad(b, s, 64, 16, 100_000, 0).rate()
	interval := time.Duration(float64(time.Second) * 64 / (peak / 2))
	b.ResetTimer()
	r := runLoad(b, s, 64, 16, int64(max(b.N, 20_000)), interval)
	b.StopTimer()
	report(b, r)
	b.ReportMetric(peak, "peak-msgs/s")
}

// BenchmarkRestart measures Open on a 2 GiB log: after a clean Close, with
// the checkpoint 256 MiB behind the end (what a kill leaves after about a
// second of heavy writes), and with no checkpoint at all (full scan).
func BenchmarkRestart(b *testing.B) {
	dir := benchDir(b)
	cfg := benchConfig(dir)
	s := openTest(b, cfg)
	const logSize = 2 << 30
	body := make([]byte, 1000)
	msgs := make([]remoting.MessageExt, 64)
	for i := range msgs {
		msgs[i] = remoting.MessageExt{Topic: "restart", QueueID: int32(i % 8), Body: body}
	}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := slices.Clone(msgs)
			for s.Stats().FlushedTo < logSize {
				if err := s.Append(context.Background(), batch); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	end := s.Stats().FlushedTo
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	open := func(b *testing.B) {
		t0 := time.Now()
		s, err := Open(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(t0).Milliseconds()), "open-ms")
		s.Close()
	}
	b.Run("clean", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			open(b)
		}
	})
	b.Run("checkpoint-256MiB-behind", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := writeCheckpoint(dir, end-256<<20, 0); err != nil {
				b.Fatal(err)
			}
			open(b)
		}
	})
	b.Run("no-checkpoint", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			os.Remove(filepath.Join(dir, ckptName))
			open(b)
		}
	})
}

// BenchmarkFio prints fio's sequential O_DIRECT write + fdatasync result if
// fio is installed.
func BenchmarkFio(b *testing.B) {
	fio, err := exec.LookPath("fio")
	if err != nil {
		b.Skip("fio not installed")
	}
	dir := benchDir(b)
	for i := 0; i < b.N; i++ {
		out, err := exec.Command(fio, "--name=strata", "--directory="+dir, "--rw=write", "--bs=64k", "--size=512m",
			"--direct=1", "--fdatasync=1", "--ioengine=psync", "--output-format=terse", "--terse-version=3").CombinedOutput()
		if err != nil {
			b.Fatalf("fio: %v\n%s", err, out)
		}
		b.Logf("fio (bs=64k, direct, fdatasync each): %s", out)
	}
}
