package tier_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/cache"
	"github.com/strata-mq/strata/internal/miniotest"
	"github.com/strata-mq/strata/remoting"
	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/fsstore"
	"github.com/strata-mq/strata/tier/miniostore"
)

// Cold-tier benchmarks. Each reports ratios measured in the same run, never
// asserts on time:
//
//	go test -run '^$' -bench 'Cold|P99' -benchtime 3x ./tier/
//
//   - BenchmarkColdReplay/{minio,fs}: one consumer replays a queue from the
//     cold tier; compared with GETting the same objects whole, one after
//     the other, with the same store client (ratio ≥ 0.8 is the goal; it
//     means little for fs, whose raw GET is a page-cache copy), and the
//     read-ahead hit ratio (≥ 0.9 is the goal).
//   - BenchmarkHotProduceP99DuringReplay/{minio,fs}: p99 of hot appends
//     (FlushSync, 16 writers) alone and while a consumer replays the cold
//     tier in a loop (p99-ratio ≤ 1.1 is the goal).
//   - BenchmarkColdSealToVisible/{minio,fs}: time from a segment's seal to
//     its object and manifest entry being durable (the real path: the
//     store's OnSeal hook calls Tier.Offload).
//
// The cold data set (STRATA_BENCH_COLD_MB MiB of 1 KiB messages in one
// queue, default 128) is produced and offloaded once per test process and
// shared by the benchmarks; the MinIO server and every directory they
// create are removed by TestMain after the last benchmark.
// STRATA_BENCH_BLOCK_KB sets the segment objects' block size (default: the
// tier's, 1 MiB) and STRATA_BENCH_PREFETCH_WORKERS the replay caches'
// prefetch workers (default: the cache's, 4); see each benchmark for its
// other knobs.

// Benchmark parameters.
const (
	benchTopic      = "bench-cold"
	benchMsgSize    = 1024
	benchSegSize    = 8 << 20
	benchBatch      = 32 // messages per Append while building the data set
	benchCacheBytes = 64 << 20
	benchPullMsgs   = 32 // a consumer's pull: at most this many messages…
	benchPullBytes  = 256 << 10
	benchStream     = "bench-stream"
	benchRoot       = "bench/cold"
	p99Writers      = 16
	p99Rounds       = 4 // rounds of both phases per iteration
)

// TestMain runs the tests and benchmarks, then releases what the shared
// benchmark set-up holds (it outlives any single benchmark).
func TestMain(m *testing.M) {
	code := m.Run()
	benchCleanup.run()
	os.Exit(code)
}

// cleanups is a LIFO list of functions run by TestMain.
type cleanups struct {
	mu sync.Mutex
	fs []func()
}

func (c *cleanups) add(f func()) {
	c.mu.Lock()
	c.fs = append(c.fs, f)
	c.mu.Unlock()
}

func (c *cleanups) run() {
	c.mu.Lock()
	fs := c.fs
	c.fs = nil
	c.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

var benchCleanup cleanups

// processTB lends miniotest a testing.TB whose cleanups and temporary
// directories belong to the test process (run by TestMain) rather than to
// the benchmark that happened to start the server, and whose logs are
// dropped (the server keeps its log function after that benchmark ends).
// Fatal and Skip still act on the benchmark, during the call.
type processTB struct {
	testing.TB
}

func (processTB) Cleanup(f func())    { benchCleanup.add(f) }
func (processTB) Logf(string, ...any) {}
func (p processTB) TempDir() string   { return mustTempDir(p.TB, "strata-bench-") }

// mustTempDir creates a directory removed by TestMain.
func mustTempDir(tb testing.TB, pattern string) string {
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		tb.Fatalf("temporary directory: %v", err)
	}
	benchCleanup.add(func() { os.RemoveAll(d) })
	return d
}

// coldSet is the shared data set offloaded to one object store.
type coldSet struct {
	name     string
	store    tier.ObjectStore
	entries  []tier.SegmentEntry
	objBytes int64 // total size of the segment objects
	units    int   // data blocks plus queue sections: cache entries one full replay needs
	msgs     int64 // messages in the queue
	blocks   []objRange
	// prefetchWorkers configures the replay caches (0: the default).
	prefetchWorkers int
}

// objRange is a byte range of an object: one data block.
type objRange struct {
	key  string
	off  int64
	size int64
}

// benchEnv is the process-wide benchmark state, built lazily.
var benchEnv struct {
	hotOnce sync.Once
	hotErr  error
	hot     *store.Store
	msgs    int64

	minioOnce sync.Once
	minioErr  error
	mstore    *miniostore.Store
	minioSet  *coldSet

	fsOnce sync.Once
	fsErr  error
	fsSet  *coldSet

	roots atomic.Int64
}

var errEarlier = errors.New("set-up failed in an earlier benchmark")

// benchEnvInt returns the positive integer in the environment variable
// name, or def if it is not set.
func benchEnvInt(tb testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// benchBody returns a message body of n bytes that compresses like an
// application's: a JSON-ish text part with varying fields, then random bytes
// (an id, a hash, an encrypted field...), about half and half, so LZ4
// neither shrinks it to nothing nor leaves it as is.
func benchBody(rng *rand.Rand, i int64, n int) []byte {
	words := [...]string{"order", "created", "shipped", "payment", "accepted", "customer", "warehouse",
		"priority", "standard", "express", "Berlin", "Lisbon", "Osaka", "Toronto", "quantity", "discount",
		"invoice", "pending", "refund", "status", "the", "of", "and", "item", "color", "size"}
	b := make([]byte, 0, n)
	b = fmt.Appendf(b, `{"id":%d,"ts":%d,"user":"u%06d","amount":%d.%02d,"note":"`,
		i, 1700000000000+i*7, rng.IntN(1000000), rng.IntN(10000), rng.IntN(100))
	for len(b) < n/2 {
		b = append(b, words[rng.IntN(len(words))]...)
		b = append(b, ' ')
	}
	b = append(b, `","blob":"`...)
	for len(b) < n {
		b = append(b, byte(rng.Uint32()))
	}
	return b[:n]
}

// benchProps returns the properties a RocketMQ producer sets.
func benchProps(i int64) []byte {
	var p []byte
	p = remoting.AppendProperty(p, remoting.PropTags, "TagA")
	p = remoting.AppendProperty(p, remoting.PropUniqKey, fmt.Sprintf("7F0000010001%020X", i))
	return p
}

var benchBornHost = netip.MustParseAddrPort("10.0.0.7:52100")

// coldHot returns the hot store holding the data set, producing it on
// first use: STRATA_BENCH_COLD_MB MiB of 1 KiB messages in one queue, with
// every segment sealed.
func coldHot(b *testing.B) *store.Store {
	b.Helper()
	e := &benchEnv
	e.hotOnce.Do(func() {
		e.hotErr = errEarlier // if this function exits through Fatal
		dir := mustTempDir(b, "strata-bench-hot-")
		s, err := store.Open(context.Background(), store.Config{Dir: dir, SegmentSize: benchSegSize,
			Flush: store.FlushAsync, Logger: quiet})
		if err != nil {
			e.hotErr = err
			return
		}
		benchCleanup.add(func() { s.Close() })
		n := int64(benchEnvInt(b, "STRATA_BENCH_COLD_MB", 128)) << 20 / benchMsgSize
		rng := rand.New(rand.NewPCG(1, 2))
		born := time.Now().UnixMilli()
		batch := make([]remoting.MessageExt, 0, benchBatch)
		for i := range n {
			batch = append(batch, remoting.MessageExt{Topic: benchTopic, QueueID: 0, Body: benchBody(rng, i, benchMsgSize),
				Properties: benchProps(i), BornTimestamp: born, BornHost: benchBornHost})
			if len(batch) == cap(batch) || i == n-1 {
				if err := s.Append(context.Background(), batch); err != nil {
					e.hotErr = fmt.Errorf("produce the cold data set: %w", err)
					return
				}
				batch = batch[:0]
			}
		}
		if err := s.Seal(); err != nil {
			e.hotErr = fmt.Errorf("seal: %w", err)
			return
		}
		e.hot, e.msgs, e.hotErr = s, n, nil
	})
	if e.hotErr != nil {
		b.Fatal(e.hotErr)
	}
	return e.hot
}

// minioSet returns the data set offloaded to the shared MinIO server,
// starting the server and offloading on first use.
func minioSet(b *testing.B) *coldSet {
	b.Helper()
	if os.Getenv(miniotest.SkipEnv) == "1" {
		b.Skipf("%s=1", miniotest.SkipEnv)
	}
	e := &benchEnv
	e.minioOnce.Do(func() {
		e.minioErr = errEarlier
		srv := miniotest.Start(processTB{b})
		bucket := srv.Bucket(b, "strata-bench")
		ms, err := miniostore.New(context.Background(), miniostore.Config{Endpoint: srv.Endpoint, Bucket: bucket,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
		if err != nil {
			e.minioErr = err
			return
		}
		set, err := offloadSet(b, "minio", ms)
		if err != nil {
			e.minioErr = err
			return
		}
		e.mstore, e.minioSet, e.minioErr = ms, set, nil
	})
	if e.minioErr != nil {
		b.Fatal(e.minioErr)
	}
	return e.minioSet
}

// fsSet returns the data set offloaded to a local directory.
func fsSet(b *testing.B) *coldSet {
	b.Helper()
	e := &benchEnv
	e.fsOnce.Do(func() {
		e.fsErr = errEarlier
		fs, err := fsstore.New(mustTempDir(b, "strata-bench-fs-"))
		if err != nil {
			e.fsErr = err
			return
		}
		e.fsSet, e.fsErr = offloadSet(b, "fs", fs)
	})
	if e.fsErr != nil {
		b.Fatal(e.fsErr)
	}
	return e.fsSet
}

// offloadSet offloads every sealed segment of the hot data set to obj under
// benchRoot and describes the result.
func offloadSet(b *testing.B, name string, obj tier.ObjectStore) (*coldSet, error) {
	hs := coldHot(b)
	ctx := context.Background()
	c := cache.New(cache.Config{MaxBytes: 8 << 20, Logger: quiet})
	defer c.Close()
	tr, err := tier.New(ctx, tier.Config{Store: obj, Root: benchRoot, StagingDir: mustTempDir(b, "strata-bench-stage-"),
		Cache: c, Logger: quiet, LocalSegment: localSegments(hs), BlockSize: benchEnvInt(b, "STRATA_BENCH_BLOCK_KB", 0) << 10})
	if err != nil {
		return nil, err
	}
	tr.Start()
	defer tr.Close()
	var sealed []store.SegmentInfo
	for _, sg := range hs.Segments() {
		if sg.Sealed {
			sealed = append(sealed, sg)
			tr.Offload(tier.SegmentFile{Base: sg.Base, Size: sg.Size, Path: sg.Path})
		}
	}
	err = waitUntil(10*time.Minute, func() bool {
		for _, sg := range sealed {
			if !tr.Offloaded(sg.Base) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("offload the data set to %s: %w (status %+v)", name, err, tr.Status())
	}
	m, err := tr.Manifest()
	if err != nil {
		return nil, err
	}
	set := &coldSet{name: name, store: obj, entries: m.Entries(), msgs: benchEnv.msgs,
		prefetchWorkers: benchEnvInt(b, "STRATA_BENCH_PREFETCH_WORKERS", 0)}
	for _, en := range set.entries {
		f, err := tier.ReadFooter(ctx, obj, en.Key, en.Size)
		if err != nil {
			return nil, err
		}
		set.objBytes += en.Size
		set.units += len(f.Blocks) + len(f.Queues)
		for _, bl := range f.Blocks {
			set.blocks = append(set.blocks, objRange{en.Key, bl.ObjOffset, int64(bl.CompLen)})
		}
	}
	return set, nil
}

// waitUntil polls cond until it holds or timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met after %v", timeout)
		}
		<-tick.C
	}
	return nil
}

// freshTier opens a new Tier with its own new cache (64 MiB, default
// read-ahead) over set: what a tier reader starting a replay has. The
// manifest is loaded before it returns. Close the tier, then the cache.
func freshTier(ctx context.Context, set *coldSet, staging string) (*tier.Tier, *cache.Cache, error) {
	c := cache.New(cache.Config{MaxBytes: benchCacheBytes, Logger: quiet, PrefetchWorkers: set.prefetchWorkers})
	tr, err := tier.New(ctx, tier.Config{Store: set.store, Root: benchRoot, StagingDir: staging, Cache: c, Logger: quiet})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return tr, c, nil
}

// replayQueue reads the whole queue from offset 0 as one consumer's pulls
// would, calling onBatch (may be nil) with each batch's record bytes.
// It returns the number of records and their bytes.
func replayQueue(ctx context.Context, tr *tier.Tier, onBatch func(int)) (int64, int64, error) {
	var n, bytes int64
	for off := int64(0); ; {
		r, err := tr.Read(ctx, benchTopic, 0, off, benchPullMsgs, benchPullBytes, nil, benchStream)
		if err != nil {
			return n, bytes, fmt.Errorf("cold read at %d: %w", off, err)
		}
		switch r.Status {
		case tier.ReadNotCold:
			return n, bytes, nil
		case tier.ReadFound:
			nb := 0
			for _, rec := range r.Records {
				nb += len(rec)
			}
			n += int64(len(r.Records))
			bytes += int64(nb)
			if onBatch != nil {
				onBatch(nb)
			}
		}
		if r.NextOffset <= off {
			return n, bytes, fmt.Errorf("cold read at %d: next offset %d does not advance", off, r.NextOffset)
		}
		off = r.NextOffset
	}
}

// rawGet GETs every segment object of set whole, one after the other, and
// returns the bytes read.
func rawGet(ctx context.Context, set *coldSet) (int64, error) {
	var total int64
	for _, en := range set.entries {
		rc, err := set.store.GetRange(ctx, en.Key, 0, -1)
		if err != nil {
			return total, err
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		total += n
		if err != nil {
			return total, fmt.Errorf("read %s: %w", en.Key, err)
		}
	}
	return total, nil
}

// rawGetBlocks GETs every data block of set (the ranges the cold reader
// fetches, one ranged GET each), one after the other, and returns the bytes
// read.
func rawGetBlocks(ctx context.Context, set *coldSet) (int64, error) {
	var total int64
	for _, r := range set.blocks {
		rc, err := set.store.GetRange(ctx, r.key, r.off, r.size)
		if err != nil {
			return total, err
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		total += n
		if err != nil {
			return total, fmt.Errorf("read %s [%d,+%d): %w", r.key, r.off, r.size, err)
		}
	}
	return total, nil
}

// replayResult is one timed replay.
type replayResult struct {
	d          time.Duration
	recs, recB int64
	st         cache.Stats
}

// timedReplay replays set with a fresh tier and cache; the manifest load is
// not timed (a tier reader has it already).
func timedReplay(b *testing.B, set *coldSet, staging string) replayResult {
	b.Helper()
	ctx := context.Background()
	tr, c, err := freshTier(ctx, set, staging)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	defer tr.Close()
	start := time.Now()
	n, bytes, err := replayQueue(ctx, tr, nil)
	d := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if n != set.msgs {
		b.Fatalf("replay read %d messages, want %d", n, set.msgs)
	}
	return replayResult{d: d, recs: n, recB: bytes, st: c.Stats()}
}

// timedRawGet times get over set and checks it read want bytes.
func timedRawGet(b *testing.B, set *coldSet, get func(context.Context, *coldSet) (int64, error), want int64) time.Duration {
	b.Helper()
	start := time.Now()
	n, err := get(context.Background(), set)
	d := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if n != want {
		b.Fatalf("raw GETs read %d bytes, want %d", n, want)
	}
	return d
}

// BenchmarkColdReplay measures one consumer replaying a queue from the cold
// tier against the raw throughput of GETting the same objects whole with
// the same store client.
//
// Every iteration does three passes: raw (each segment object GET whole and
// discarded, sequentially), raw blocks (each data block GET with its own
// ranged GET and discarded, sequentially: the requests the cold reader
// makes, without decompression or read-ahead) and a replay (a fresh Tier and
// a fresh 64 MiB cache with default read-ahead; pulls of up to 32 messages /
// 256 KiB from offset 0 to the end, as a consumer's pulls; manifest load
// untimed). The order alternates between iterations (raw, blocks, replay;
// then replay, blocks, raw), and one untimed raw pass and one untimed replay
// run first, so every pass reads objects the store's host already has in
// its page cache and none is favoured.
//
// Metrics:
//   - ratio: raw time / replay time over all iterations (replay speed
//     relative to raw GETs of the same bytes; goal ≥ 0.8);
//   - rawget-MB/s: object bytes / raw time; rawblock-MB/s: block bytes /
//     raw blocks time (how much the request pattern alone costs);
//   - replay-MB/s: record (message) bytes / replay time; replay-obj-MB/s:
//     object bytes / replay time (comparable with rawget-MB/s);
//   - readahead-hit: the fraction of the cache entries a replay needs (each
//     data block and each queue section, read once in sequence) that were
//     prefetched by read-ahead: Stats.PrefetchUsed / (blocks + sections),
//     counting late prefetches (the consumer joined a fetch read-ahead had
//     started); readahead-late: the fraction of them whose prefetch was
//     late (the consumer waited); goal readahead-hit ≥ 0.9;
//   - cache-hit: Stats.HitRatio, cache gets of every record (many per
//     block) served from the cache.
func BenchmarkColdReplay(b *testing.B) {
	b.Run("minio", func(b *testing.B) { benchReplay(b, minioSet(b)) })
	b.Run("fs", func(b *testing.B) { benchReplay(b, fsSet(b)) })
}

func benchReplay(b *testing.B, set *coldSet) {
	staging := b.TempDir()
	var blockBytes int64
	for _, r := range set.blocks {
		blockBytes += r.size
	}
	timedRawGet(b, set, rawGet, set.objBytes) // warm-up, untimed
	timedReplay(b, set, staging)
	var raw, rawBlocks, rep time.Duration
	var recB, used, late, units, hits, gets uint64
	i := 0
	for b.Loop() {
		var r replayResult
		if i%2 == 0 {
			raw += timedRawGet(b, set, rawGet, set.objBytes)
			rawBlocks += timedRawGet(b, set, rawGetBlocks, blockBytes)
			r = timedReplay(b, set, staging)
		} else {
			r = timedReplay(b, set, staging)
			rawBlocks += timedRawGet(b, set, rawGetBlocks, blockBytes)
			raw += timedRawGet(b, set, rawGet, set.objBytes)
		}
		i++
		rep += r.d
		recB += uint64(r.recB)
		used += r.st.PrefetchUsed
		late += r.st.PrefetchLate
		units += uint64(set.units)
		hits += r.st.Hits
		gets += r.st.Hits + r.st.Misses
	}
	mb := func(bytes uint64, d time.Duration) float64 { return float64(bytes) / (1 << 20) / d.Seconds() }
	objB := uint64(set.objBytes) * uint64(i)
	b.ReportMetric(raw.Seconds()/rep.Seconds(), "ratio")
	b.ReportMetric(mb(objB, raw), "rawget-MB/s")
	b.ReportMetric(mb(uint64(blockBytes)*uint64(i), rawBlocks), "rawblock-MB/s")
	b.ReportMetric(mb(recB, rep), "replay-MB/s")
	b.ReportMetric(mb(objB, rep), "replay-obj-MB/s")
	b.ReportMetric(float64(used)/float64(units), "readahead-hit")
	b.ReportMetric(float64(late)/float64(max(used, 1)), "readahead-late")
	b.ReportMetric(float64(hits)/float64(max(gets, 1)), "cache-hit")
	b.ReportMetric(float64(set.objBytes)/float64(recB/uint64(i)), "obj/rec-bytes")
}

// replayLoop replays a cold set over and over, each pass with a fresh tier
// and cache, until stop.
type replayLoop struct {
	cancel  context.CancelFunc
	done    chan struct{}
	started chan struct{} // closed after the first batch
	bytes   atomic.Int64
	err     error // set before done is closed
}

// startReplayLoop starts replaying set in a loop; mbps > 0 paces the replay
// to that many MiB/s of records (a consumer that processes at that rate).
func startReplayLoop(set *coldSet, staging string, mbps int) *replayLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &replayLoop{cancel: cancel, done: make(chan struct{}), started: make(chan struct{})}
	var once sync.Once
	begin := time.Now()
	pace := func() {
		if mbps <= 0 {
			return
		}
		due := begin.Add(time.Duration(float64(l.bytes.Load()) / float64(mbps<<20) * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}
	}
	go func() {
		defer close(l.done)
		for ctx.Err() == nil {
			tr, c, err := freshTier(ctx, set, staging)
			if err != nil {
				if ctx.Err() == nil {
					l.err = err
				}
				return
			}
			_, _, err = replayQueue(ctx, tr, func(n int) {
				l.bytes.Add(int64(n))
				once.Do(func() { close(l.started) })
				pace()
			})
			tr.Close()
			c.Close()
			if err != nil {
				if ctx.Err() == nil {
					l.err = err
				}
				return
			}
		}
	}()
	return l
}

// stop stops the loop, waits for it, and returns its error if it failed.
func (l *replayLoop) stop() error {
	l.cancel()
	<-l.done
	return l.err
}

// produceHot appends perWriter 1 KiB messages from each of p99Writers
// goroutines, one message per Append as a producer's send, and returns each
// Append's latency.
func produceHot(b *testing.B, s *store.Store, perWriter int, seed uint64) []time.Duration {
	b.Helper()
	lat := make([][]time.Duration, p99Writers)
	errs := make([]error, p99Writers)
	var wg sync.WaitGroup
	for w := range p99Writers {
		lat[w] = make([]time.Duration, 0, perWriter)
		body := benchBody(rand.New(rand.NewPCG(seed, uint64(w))), int64(w), benchMsgSize)
		wg.Go(func() {
			for i := range perWriter {
				m := []remoting.MessageExt{{Topic: "bench-hot", QueueID: int32(w % 4), Body: body,
					Properties: benchProps(int64(i)), BornTimestamp: time.Now().UnixMilli(), BornHost: benchBornHost}}
				start := time.Now()
				if err := s.Append(context.Background(), m); err != nil {
					errs[w] = err
					return
				}
				lat[w] = append(lat[w], time.Since(start))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return slices.Concat(lat...)
}

// percentile returns the p-quantile (0 < p ≤ 1) of ds, which it sorts.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds))*p+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// BenchmarkHotProduceP99DuringReplay measures hot produce latency (store
// FlushSync, the default: an Append returns after fdatasync; 16 writers,
// one 1 KiB message per Append; STRATA_BENCH_P99_MSGS messages per writer
// per phase and iteration, default 1000) alone and while a goroutine of
// the same process replays the cold tier in a loop (fresh tier and cache
// each pass). Each iteration runs 4 rounds of both phases, alternating
// which runs first. The replay is running before the writers of its phase
// start and stopped after they end. The minio variant replays from the
// MinIO server (a process on the same host); the fs variant from a local
// directory, which leaves out the object store's own CPU use.
//
// Metrics: p99-ms (alone), p99-replay-ms (during the replay), p99-ratio
// (their quotient; goal ≤ 1.1), the same for p50, and replay-MB/s, the
// replay's record throughput while the writers ran (it shows the replay
// really overlapped). STRATA_BENCH_REPLAY_MBPS, if set, paces the replay
// to that many MiB/s of records (default: as fast as it goes).
func BenchmarkHotProduceP99DuringReplay(b *testing.B) {
	b.Run("minio", func(b *testing.B) { benchP99(b, minioSet(b)) })
	b.Run("fs", func(b *testing.B) { benchP99(b, fsSet(b)) })
}

func benchP99(b *testing.B, set *coldSet) {
	perWriter := benchEnvInt(b, "STRATA_BENCH_P99_MSGS", 1000)
	mbps := benchEnvInt(b, "STRATA_BENCH_REPLAY_MBPS", 1<<30)
	if mbps == 1<<30 {
		mbps = 0 // unpaced
	}
	s, err := store.Open(context.Background(), store.Config{Dir: b.TempDir(), SegmentSize: 64 << 20, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	staging := b.TempDir()
	produceHot(b, s, 50, 0) // warm-up: segment, queues, index, buffers

	var alone, during []time.Duration
	var replayBytes int64
	var replayTime time.Duration
	withReplay := func(perWriter int, seed uint64) {
		l := startReplayLoop(set, staging, mbps)
		defer func() { // also when produceHot fails the benchmark
			if err := l.stop(); err != nil {
				b.Errorf("replay during produce: %v", err)
			}
		}()
		select {
		case <-l.started:
		case <-l.done:
		case <-time.After(time.Minute):
		}
		before := l.bytes.Load()
		start := time.Now()
		during = append(during, produceHot(b, s, perWriter, seed)...)
		replayTime += time.Since(start)
		replayBytes += l.bytes.Load() - before
	}
	// Each iteration runs p99Rounds rounds of both phases, alternating
	// their order, so a disturbance from outside (other processes on the
	// host) tends to hit both phases alike.
	chunk := max(1, perWriter/p99Rounds)
	round := uint64(0)
	for b.Loop() {
		for range p99Rounds {
			if round%2 == 0 {
				alone = append(alone, produceHot(b, s, chunk, 2*round+1)...)
				withReplay(chunk, 2*round+2)
			} else {
				withReplay(chunk, 2*round+2)
				alone = append(alone, produceHot(b, s, chunk, 2*round+1)...)
			}
			round++
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	p99a, p99d := percentile(alone, 0.99), percentile(during, 0.99)
	p50a, p50d := percentile(alone, 0.50), percentile(during, 0.50)
	b.ReportMetric(ms(p99a), "p99-ms")
	b.ReportMetric(ms(p99d), "p99-replay-ms")
	b.ReportMetric(ms(p99d)/ms(p99a), "p99-ratio")
	b.ReportMetric(ms(p50a), "p50-ms")
	b.ReportMetric(ms(p50d), "p50-replay-ms")
	b.ReportMetric(ms(p50d)/ms(p50a), "p50-ratio")
	b.ReportMetric(float64(replayBytes)/(1<<20)/replayTime.Seconds(), "replay-MB/s")
}

// BenchmarkColdSealToVisible measures the time from a segment's seal to its
// object and manifest entry being durable, on the broker's path: the store's
// OnSeal hook calls Tier.Offload, and Config.OnOffloaded marks it visible.
// Each iteration appends 1 KiB messages (FlushSync, batches of 32) until an
// 8 MiB segment seals, then waits until it is visible; nothing else is in
// flight, so this is the latency of one offload (build the object with LZ4,
// upload, verify size and footer, append the manifest entry), not a
// backlog. Metrics: seal-to-visible-ms (mean) and seal-to-visible-max-ms
// (ns/op also counts producing the segment).
func BenchmarkColdSealToVisible(b *testing.B) {
	b.Run("minio", func(b *testing.B) {
		minioSet(b)
		benchSealToVisible(b, benchEnv.mstore)
	})
	b.Run("fs", func(b *testing.B) {
		fs, err := fsstore.New(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		benchSealToVisible(b, fs)
	})
}

func benchSealToVisible(b *testing.B, obj tier.ObjectStore) {
	var (
		mu      sync.Mutex
		sealed  = map[int64]time.Time{}
		visible = map[int64]time.Time{}
		kick    = make(chan struct{}, 1)
		tr      *tier.Tier
		hs      *store.Store
	)
	notify := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	c := cache.New(cache.Config{MaxBytes: 8 << 20, Logger: quiet})
	b.Cleanup(c.Close)
	root := fmt.Sprintf("bench/seal-%d", benchEnv.roots.Add(1))
	tr, err := tier.New(context.Background(), tier.Config{Store: obj, Root: root, StagingDir: b.TempDir(), Cache: c,
		Logger: quiet, LocalSegment: func(base int64) (tier.SegmentFile, bool) { return localSegments(hs)(base) },
		OnOffloaded: func(e tier.SegmentEntry) {
			mu.Lock()
			visible[e.Base] = time.Now()
			mu.Unlock()
			notify()
		}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close() })
	hs, err = store.Open(context.Background(), store.Config{Dir: b.TempDir(), SegmentSize: benchSegSize, Logger: quiet,
		OnSeal: func(sg store.SegmentInfo) {
			mu.Lock()
			sealed[sg.Base] = time.Now()
			mu.Unlock()
			tr.Offload(tier.SegmentFile{Base: sg.Base, Size: sg.Size, Path: sg.Path})
			notify()
		}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hs.Close() })
	tr.Start() // after hs is set: LocalSegment reads it
	rng := rand.New(rand.NewPCG(3, 4))
	var seq int64
	nsealed := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(sealed)
	}
	var lats []time.Duration
	batch := make([]remoting.MessageExt, 0, benchBatch)
	for b.Loop() {
		want := nsealed() + 1
		for nsealed() < want {
			batch = batch[:0]
			for range benchBatch {
				batch = append(batch, remoting.MessageExt{Topic: benchTopic, QueueID: 0, Body: benchBody(rng, seq, benchMsgSize),
					Properties: benchProps(seq), BornTimestamp: time.Now().UnixMilli(), BornHost: benchBornHost})
				seq++
			}
			if err := hs.Append(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
		// Wait until every sealed segment is visible.
		deadline := time.NewTimer(2 * time.Minute)
		for {
			mu.Lock()
			all := len(visible) == len(sealed)
			mu.Unlock()
			if all {
				break
			}
			select {
			case <-kick:
			case <-deadline.C:
				b.Fatalf("a sealed segment is not visible after 2 minutes: %+v", tr.Status())
			}
		}
		deadline.Stop()
	}
	b.StopTimer()
	mu.Lock()
	for base, t0 := range sealed {
		lats = append(lats, visible[base].Sub(t0))
	}
	mu.Unlock()
	var sum time.Duration
	for _, d := range lats {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(sum)/float64(len(lats)), "seal-to-visible-ms")
	b.ReportMetric(ms(slices.Max(lats)), "seal-to-visible-max-ms")
}
