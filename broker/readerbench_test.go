package broker_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/miniotest"
	"github.com/strata-mq/strata/namesrv"
	"github.com/strata-mq/strata/remoting"
	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/miniostore"
)

// BenchmarkReaderReplay (issue 7) replays a cold history with 0 (the leader
// alone), 1, 2 and 4 tier readers, side by side in one run over one data
// set, and measures the leader's produce latency while each replay runs:
//
//	go test -run '^$' -bench ReaderReplay -benchtime 1x ./broker/
//
// Set-up, once per run of the benchmark (not timed): a MinIO server
// (internal/miniotest; STRATA_SKIP_MINIO=1 skips the benchmark), an
// in-process name server and leader (16 MiB segments, hot retention 0,
// flush=sync), STRATA_BENCH_READER_MB MiB (default 256) of 1 KiB messages
// produced with Strata's client over 8 queues of one topic (batches of 32,
// spread over the queues in turn, so every block of every segment holds
// messages of every queue), then sealed and waited for until every queue
// lives only in the cold tier and the route's tier bounds say so. Every
// node's block cache is STRATA_BENCH_READER_CACHE_MB MiB (default 128).
//
// Sub-benchmarks, in this order:
//
//   - rawGET: MinIO's raw GET throughput over the same segment objects with
//     a fresh store client: whole objects with 8 concurrent GETs (the
//     replay's 8 consumers; a reader's read-ahead fetches runs of up to 16
//     blocks, most of a 16 MiB segment, in one GET), and the objects' data
//     blocks one ranged GET each, 8 and 16 at a time (4 readers × 4
//     prefetch workers). Each pattern runs 3 times and its fastest pass
//     counts; the fastest pattern is the ceiling the replays are compared
//     with. An untimed pass first warms MinIO's page cache, which the
//     replays then enjoy too.
//   - baseline: the leader's produce latency with no replay, for
//     STRATA_BENCH_BASELINE_SEC seconds (default 10): 16 senders, each
//     sending one 1 KiB message synchronously every 10 ms (1600 msg/s in
//     all) to another topic.
//   - readers=N (N = 0, 1, 2, 4): start N fresh tier readers (broker ids
//     1..N, in-process, each with its own MinIO client and a fresh cache),
//     wait until routes list them and the leader points cold pulls at them
//     (or, for N = 0, at nobody), then replay: one Strata consumer (its own
//     client and connections) per queue pulls [0, cold end) with
//     client.Consumer.Pull (32 messages per pull, STRATA_BENCH_PULL_BATCH),
//     which sends cold offsets straight to a reader; messages are counted
//     and their queue offsets checked. The latency senders run throughout.
//     The readers stop afterwards, so every iteration reads the object
//     store again. With N = 0 the leader serves the replay from its own
//     cache, which (by default) is smaller than the data set, so a second
//     iteration does not hit the blocks of the first (an LRU cache scanned
//     cyclically by more than it holds).
//
// Metrics of a replay: MB/s (message bodies, MiB/s) and msgs/s; obj-MB/s,
// the data set's segment-object bytes over the replay time, and vs-rawGET,
// obj-MB/s over the rawGET ceiling; get-MB/s and get-amp, the bytes the
// nodes actually GET from MinIO (per second, and over the data set's object
// bytes); leader-served, the share of the replayed messages the leader
// served (its strata_messages_out_total); p50_ms, p99_ms and p99_ratio (p99
// over the baseline's) of the leader's produce latency during the replay;
// CPU use in cores of this process, of MinIO and of the whole machine
// (busy-cores, out of nproc), and what that leaves for the host's other
// processes (other-cores: other tests running on a shared machine). The table the last sub-benchmark logs also
// shows the leader's mean server-side send time and mean fdatasync time in
// each window, which tell the broker's own delays from scheduling delays.
//
// Everything (leader, readers, consumers, latency senders) shares this
// process's Go runtime and, with MinIO, the machine's cores: the readers
// compete with the leader for CPU and garbage collection, unlike readers on
// their own hosts. The numbers are what this machine measures, not a
// deployment's. The last sub-benchmark (readers=4) logs a table of every
// measurement of the run.
func BenchmarkReaderReplay(b *testing.B) {
	e := setupReaderBench(b)
	b.Run("rawGET", func(b *testing.B) { e.benchRawGET(b) })
	b.Run("baseline", func(b *testing.B) { e.benchBaseline(b) })
	counts := []int{0, 1, 2, 4}
	for i, n := range counts {
		b.Run(fmt.Sprintf("readers=%d", n), func(b *testing.B) {
			e.benchReaders(b, n)
			if i == len(counts)-1 {
				// Here rather than in the parent, whose log go test
				// prints only with -v.
				e.logSummary(b)
			}
		})
	}
}

// Benchmark parameters.
const (
	rbTopic        = "reader-replay"
	rbLatTopic     = "reader-latency"
	rbQueues       = 8
	rbMsgSize      = 1024
	rbBatch        = 32 // messages per send while producing the data set
	rbSegSize      = 16 << 20
	rbPrefix       = "readerbench"
	rbBrokerName   = "broker-a"
	rbSenders      = 16
	rbSendInterval = 10 * time.Millisecond
	rbProbeGroups  = 32 // groups the leader's suggestions are sampled with
	rbRawRepeats   = 3  // passes of each rawGET pattern; the fastest counts
	rbWaitTimeout  = 2 * time.Minute
)

var rbQuiet = slog.New(slog.DiscardHandler)

// readerBench is the state shared by the sub-benchmarks: one data set, one
// MinIO, one name server and one leader.
type readerBench struct {
	srv      *miniotest.Server
	bucket   string
	nsAddr   string
	leader   *node
	minioPID int // 0 when not found

	objects  []tier.SegmentEntry // the data set's segment objects
	objBytes int64
	blocks   []objRange
	coldEnd  [rbQueues]int64
	msgs     int64 // messages in the data set
	payload  int64 // their body bytes

	lat       *client.Producer
	pullBatch int
	cacheSize int64 // every node's block cache
	baseDur   time.Duration

	raw  *rawResult // last rawGET result
	base *row       // last baseline
	rows []*row     // replays, in order
}

// objRange is a byte range of an object.
type objRange struct {
	key       string
	off, size int64
}

// rbEnvInt returns the positive integer in the environment variable name,
// or def when it is unset.
func rbEnvInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// countingStore counts the GET requests and bytes one node makes.
type countingStore struct {
	tier.ObjectStore
	gets  atomic.Int64
	bytes atomic.Int64
}

// GetRange counts the request and, as they are read, its bytes.
func (s *countingStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	rc, err := s.ObjectStore.GetRange(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	s.gets.Add(1)
	return &countingReader{ReadCloser: rc, n: &s.bytes}, nil
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// newObjectStore returns a new MinIO client (its own connection pool, as a
// separate process would have) wrapped to count GETs.
func (e *readerBench) newObjectStore(b testing.TB) *countingStore {
	b.Helper()
	ms, err := miniostore.New(context.Background(), miniostore.Config{Endpoint: e.srv.Endpoint, Bucket: e.bucket,
		AccessKey: e.srv.AccessKey, SecretKey: e.srv.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	return &countingStore{ObjectStore: ms}
}

// waitFor polls cond every 20 ms until it holds, failing the benchmark
// after timeout.
func waitFor(b testing.TB, what string, timeout time.Duration, cond func() (bool, error)) {
	b.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			b.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-deadline.C:
			b.Fatalf("%s: not after %v", what, timeout)
		case <-tick.C:
		}
	}
}

// newClient returns a Strata client of the benchmark's name server, closed
// when b ends.
func (e *readerBench) newClient(b *testing.B, opts ...client.Opt) *client.Client {
	b.Helper()
	c, err := client.New(append([]client.Opt{client.NameServers(e.nsAddr), client.Logger(rbQuiet)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// node is one in-process broker of the group, with its own MinIO client
// (counting GETs) and metrics registry.
type node struct {
	id  int64
	b   *broker.Broker
	obj *countingStore
	reg *prometheus.Registry
}

// startNode starts a leader (id 0) or tier reader of rbBrokerName, shut
// down when b ends if not before.
func (e *readerBench) startNode(b *testing.B, role broker.Role, id int64) *node {
	b.Helper()
	n := &node{id: id, obj: e.newObjectStore(b), reg: prometheus.NewRegistry()}
	br, err := broker.New(context.Background(), broker.Config{
		DataDir: b.TempDir(), Listen: "127.0.0.1:0", BrokerName: rbBrokerName, Role: role, BrokerID: id,
		AutoCreateTopics: true, NameServers: []string{e.nsAddr}, Logger: rbQuiet, Metrics: n.reg,
		Store: store.Config{SegmentSize: rbSegSize},
		Tier:  broker.TierConfig{Store: n.obj, Prefix: rbPrefix, CacheSize: e.cacheSize},
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := br.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	n.b = br
	b.Cleanup(func() { stopBroker(b, br) })
	return n
}

// stopBroker shuts br down (a second call does nothing).
func stopBroker(b *testing.B, br *broker.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := br.Shutdown(ctx); err != nil {
		b.Errorf("shut down broker %s: %v", br.Addr(), err)
	}
}

// setupReaderBench starts MinIO, a name server and a leader, and produces
// and offloads the data set.
func setupReaderBench(b *testing.B) *readerBench {
	b.Helper()
	if os.Getenv(miniotest.SkipEnv) == "1" {
		b.Skipf("%s=1: BenchmarkReaderReplay needs a real MinIO server", miniotest.SkipEnv)
	}
	ctx := context.Background()
	start := time.Now()
	e := &readerBench{pullBatch: rbEnvInt(b, "STRATA_BENCH_PULL_BATCH", 32),
		cacheSize: int64(rbEnvInt(b, "STRATA_BENCH_READER_CACHE_MB", 128)) << 20,
		baseDur:   time.Duration(rbEnvInt(b, "STRATA_BENCH_BASELINE_SEC", 10)) * time.Second}
	e.srv = miniotest.Start(b)
	e.bucket = e.srv.Bucket(b, "strata-readerbench")
	e.minioPID = findMinioPID(e.srv.Endpoint)

	ns := namesrv.New(namesrv.Config{Listen: "127.0.0.1:0", Logger: rbQuiet})
	nsAddr, err := ns.Start(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ns.Shutdown(ctx)
	})
	e.nsAddr = nsAddr.String()
	e.leader = e.startNode(b, broker.RoleLeader, 0)

	admin := e.newClient(b)
	for _, tc := range []client.TopicConfig{
		{Name: rbTopic, ReadQueues: rbQueues, WriteQueues: rbQueues},
		{Name: rbLatTopic, ReadQueues: 4, WriteQueues: 4},
	} {
		// The leader registers with the name server as it starts: until
		// then no broker takes the topic.
		waitFor(b, "topic "+tc.Name+" to be created", rbWaitTimeout, func() (bool, error) {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			err := admin.CreateTopic(cctx, tc)
			if errors.Is(err, client.ErrNoQueue) {
				return false, nil
			}
			return err == nil, err
		})
	}
	e.produceDataSet(b, admin)
	e.describeDataSet(b)

	e.lat, err = client.NewProducer(client.NameServers(e.nsAddr), client.Logger(rbQuiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.lat.Close(ctx)
	})
	for range 50 { // warm-up: connection, route, queues
		if _, err := e.lat.Send(ctx, client.Message{Topic: rbLatTopic, Body: make([]byte, rbMsgSize)}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("set-up: %d messages (%.0f MiB of bodies) in %d segment objects (%.0f MiB) over %d queues, %d blocks; %v",
		e.msgs, mib(e.payload), len(e.objects), mib(e.objBytes), rbQueues, len(e.blocks), time.Since(start).Round(time.Second))
	return e
}

// rbBody returns a 1 KiB message body that compresses like an
// application's: a JSON-like text half with varying fields, then random
// bytes.
func rbBody(rng *rand.Rand, i int64) []byte {
	words := [...]string{"order", "created", "shipped", "payment", "accepted", "customer", "warehouse",
		"priority", "standard", "express", "Berlin", "Lisbon", "Osaka", "Toronto", "quantity", "discount",
		"invoice", "pending", "refund", "status", "the", "of", "and", "item", "color", "size"}
	p := make([]byte, 0, rbMsgSize+8)
	p = fmt.Appendf(p, `{"id":%d,"user":"u%06d","amount":%d.%02d,"note":"`, i, rng.IntN(1000000), rng.IntN(10000), rng.IntN(100))
	for len(p) < rbMsgSize/2 {
		p = append(p, words[rng.IntN(len(words))]...)
		p = append(p, ' ')
	}
	p = append(p, `","blob":"`...)
	for len(p) < rbMsgSize {
		p = binary.LittleEndian.AppendUint64(p, rng.Uint64())
	}
	return p[:rbMsgSize]
}

// produceDataSet sends STRATA_BENCH_READER_MB MiB of 1 KiB messages to
// rbTopic in batches of rbBatch (the producer spreads the batches over the
// queues in turn), seals the log and waits until every queue lives only in
// the cold tier and routes carry its tier bound.
func (e *readerBench) produceDataSet(b *testing.B, c *client.Client) {
	b.Helper()
	ctx := context.Background()
	p, err := client.NewProducer(client.WithClient(c))
	if err != nil {
		b.Fatal(err)
	}
	total := int64(rbEnvInt(b, "STRATA_BENCH_READER_MB", 256)) << 20 / rbMsgSize
	total -= total % (rbBatch * rbQueues)
	rng := rand.New(rand.NewPCG(7, 11))
	var (
		mu      sync.Mutex
		sendErr error
	)
	for i := int64(0); i < total; i += rbBatch {
		msgs := make([]client.Message, rbBatch)
		for j := range msgs {
			msgs[j] = client.Message{Topic: rbTopic, Tag: "TagA", Body: rbBody(rng, i+int64(j))}
		}
		err := p.SendAsync(ctx, msgs, func(_ []client.SendResult, err error) {
			if err != nil {
				mu.Lock()
				sendErr = errors.Join(sendErr, err)
				mu.Unlock()
			}
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := p.Close(cctx); err != nil {
		b.Fatal(err)
	}
	if sendErr != nil {
		b.Fatalf("produce the data set: %v", sendErr)
	}
	e.msgs, e.payload = total, total*rbMsgSize
	if err := e.leader.b.Store().Seal(); err != nil {
		b.Fatal(err)
	}
	hs := e.leader.b.Store()
	waitFor(b, "the data set to leave the hot tier", 10*time.Minute, func() (bool, error) {
		var sum int64
		for q := range int32(rbQueues) {
			maxOff := hs.MaxOffset(rbTopic, q)
			_, next, ok := e.leader.b.Tier().Bounds(rbTopic, q)
			if !ok || next != maxOff || hs.MinOffset(rbTopic, q) != maxOff {
				return false, nil
			}
			e.coldEnd[q] = next
			sum += next
		}
		if sum != total {
			return false, fmt.Errorf("the queues hold %d messages, %d were sent", sum, total)
		}
		return true, nil
	})
	rc := e.newClient(b, client.RouteTTL(0))
	waitFor(b, "routes to carry the tier bounds", rbWaitTimeout, func() (bool, error) {
		r, err := rc.Route(ctx, rbTopic)
		if err != nil {
			return false, nil
		}
		for q := range rbQueues {
			if r.HotStart[rbBrokerName][q] != e.coldEnd[q] {
				return false, nil
			}
		}
		return true, nil
	})
}

// describeDataSet records the data set's segment objects and their blocks.
func (e *readerBench) describeDataSet(b *testing.B) {
	b.Helper()
	m, err := e.leader.b.Tier().Manifest()
	if err != nil {
		b.Fatal(err)
	}
	var recs int64
	for _, en := range m.Entries() {
		f, err := tier.ReadFooter(context.Background(), e.leader.obj, en.Key, en.Size)
		if err != nil {
			b.Fatal(err)
		}
		e.objects = append(e.objects, en)
		e.objBytes += en.Size
		recs += en.Records
		for _, bl := range f.Blocks {
			e.blocks = append(e.blocks, objRange{key: en.Key, off: bl.ObjOffset, size: int64(bl.CompLen)})
		}
	}
	if recs != e.msgs {
		b.Fatalf("the cold tier holds %d records, want the data set's %d", recs, e.msgs)
	}
}

// rawResult is one rawGET measurement, in MiB/s.
type rawResult struct {
	whole8, blocks8, blocks16 float64
	ceiling                   float64
}

// getAll GETs every range with conc concurrent requests, checks the sizes,
// and returns the bytes and the time taken.
func getAll(ctx context.Context, obj tier.ObjectStore, ranges []objRange, conc int) (int64, time.Duration, error) {
	var total atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	start := time.Now()
	for _, r := range ranges {
		g.Go(func() error {
			rc, err := obj.GetRange(gctx, r.key, r.off, r.size)
			if err != nil {
				return err
			}
			defer rc.Close()
			n, err := io.Copy(io.Discard, rc)
			if err != nil {
				return fmt.Errorf("read %s [%d,+%d): %w", r.key, r.off, r.size, err)
			}
			if n != r.size {
				return fmt.Errorf("read %s [%d,+%d): got %d bytes", r.key, r.off, r.size, n)
			}
			total.Add(n)
			return nil
		})
	}
	err := g.Wait()
	return total.Load(), time.Since(start), err
}

// measureRaw measures MinIO's raw GET throughput over the data set's
// objects and blocks: each pattern rbRawRepeats times per iteration, the
// fastest pass counting (a ceiling; single passes vary with the other
// load of the host). Only the GETs are timed when timer is not nil.
func (e *readerBench) measureRaw(tb testing.TB, iters int, timer *testing.B) *rawResult {
	ctx := context.Background()
	obj := e.newObjectStore(tb)
	whole := make([]objRange, len(e.objects))
	for i, en := range e.objects {
		whole[i] = objRange{key: en.Key, size: en.Size}
	}
	if _, _, err := getAll(ctx, obj, whole, 8); err != nil { // warm-up
		tb.Fatal(err)
	}
	r := &rawResult{}
	for range iters {
		for _, pass := range []struct {
			ranges []objRange
			conc   int
			best   *float64
		}{{whole, 8, &r.whole8}, {e.blocks, 8, &r.blocks8}, {e.blocks, 16, &r.blocks16}} {
			for range rbRawRepeats {
				if timer != nil {
					timer.StartTimer()
				}
				n, d, err := getAll(ctx, obj, pass.ranges, pass.conc)
				if timer != nil {
					timer.StopTimer()
				}
				if err != nil {
					tb.Fatal(err)
				}
				*pass.best = max(*pass.best, mib(n)/d.Seconds())
			}
		}
	}
	r.ceiling = max(r.whole8, r.blocks8, r.blocks16)
	e.raw = r
	return r
}

// benchRawGET measures MinIO's raw GET throughput over the data set.
func (e *readerBench) benchRawGET(b *testing.B) {
	b.StopTimer()
	r := e.measureRaw(b, b.N, b)
	b.ReportMetric(r.whole8, "whole-c8-MB/s")
	b.ReportMetric(r.blocks8, "block-c8-MB/s")
	b.ReportMetric(r.blocks16, "block-c16-MB/s")
	b.ReportMetric(r.ceiling, "ceiling-MB/s")
}

// ensureRaw measures rawGET (untimed) when its sub-benchmark did not run,
// so that the replays have a ceiling to compare with.
func (e *readerBench) ensureRaw(b *testing.B) *rawResult {
	if e.raw == nil {
		e.measureRaw(b, 1, nil)
	}
	return e.raw
}

// latResult summarizes produce latencies.
type latResult struct {
	p50, p99, max time.Duration
	sends         int
	errors        int
}

func summarize(lats []time.Duration, errs int) latResult {
	lats = slices.Clone(lats)
	slices.Sort(lats)
	q := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		i := int(float64(len(lats))*p+0.999999) - 1
		return lats[min(max(i, 0), len(lats)-1)]
	}
	r := latResult{p50: q(0.5), p99: q(0.99), sends: len(lats), errors: errs}
	if len(lats) > 0 {
		r.max = lats[len(lats)-1]
	}
	return r
}

// prober sends 1 KiB messages to the leader from rbSenders goroutines,
// each synchronously, one every rbSendInterval (a tick missed while a send
// is slow is skipped), and records each send's start and latency.
type prober struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	at     []time.Time
	lat    []time.Duration
	errs   []time.Time
}

func startProber(p *client.Producer) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	pr := &prober{cancel: cancel}
	body := make([]byte, rbMsgSize)
	for w := range rbSenders {
		pr.wg.Go(func() {
			// Stagger the senders over one interval.
			first := time.NewTimer(time.Duration(w) * rbSendInterval / rbSenders)
			select {
			case <-first.C:
			case <-ctx.Done():
				first.Stop()
				return
			}
			tick := time.NewTicker(rbSendInterval)
			defer tick.Stop()
			for {
				t0 := time.Now()
				_, err := p.Send(ctx, client.Message{Topic: rbLatTopic, Body: body})
				d := time.Since(t0)
				if ctx.Err() != nil {
					return
				}
				pr.mu.Lock()
				if err != nil {
					pr.errs = append(pr.errs, t0)
				} else {
					pr.at = append(pr.at, t0)
					pr.lat = append(pr.lat, d)
				}
				pr.mu.Unlock()
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	return pr
}

func (pr *prober) count() int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return len(pr.lat)
}

// window returns the latencies of the sends that started in [from, to)
// and how many of them failed.
func (pr *prober) window(from, to time.Time) ([]time.Duration, int) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	var lats []time.Duration
	for i, t := range pr.at {
		if !t.Before(from) && t.Before(to) {
			lats = append(lats, pr.lat[i])
		}
	}
	errs := 0
	for _, t := range pr.errs {
		if !t.Before(from) && t.Before(to) {
			errs++
		}
	}
	return lats, errs
}

func (pr *prober) stop() {
	pr.cancel()
	pr.wg.Wait()
}

// startWarmProber starts the latency senders and waits until they run.
func (e *readerBench) startWarmProber(tb testing.TB) *prober {
	tb.Helper()
	pr := startProber(e.lat)
	waitFor(tb, "the latency senders to start", 30*time.Second, func() (bool, error) { return pr.count() >= 2*rbSenders, nil })
	return pr
}

// gathered reads the metric family name of reg, summed over the series
// whose label has value (any series when label is ""): a counter's value,
// or a histogram's sample sum and count.
func gathered(reg *prometheus.Registry, name, label, value string) (v, count float64) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				match = match || lp.GetName() == label && lp.GetValue() == value
			}
			if !match {
				continue
			}
			if c := m.GetCounter(); c != nil {
				v += c.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				v += h.GetSampleSum()
				count += float64(h.GetSampleCount())
			}
		}
	}
	return v, count
}

// snapshot is a reading of every counter a measurement window compares.
type snapshot struct {
	at              time.Time
	cpu             cpuSnap
	getBytes        map[int64]int64   // bytes GET from MinIO, by node id
	served          map[int64]float64 // rbTopic messages pulled, by node id
	syncs, syncSecs float64           // the leader's fdatasyncs
	sends, sendSecs float64           // the leader's SEND_MESSAGE_V2 requests, server side
}

func (e *readerBench) snap(nodes []*node) snapshot {
	s := snapshot{at: time.Now(), cpu: readCPU(e.minioPID), getBytes: map[int64]int64{}, served: map[int64]float64{}}
	for _, n := range nodes {
		s.getBytes[n.id] = n.obj.bytes.Load()
		s.served[n.id], _ = gathered(n.reg, "strata_messages_out_total", "topic", rbTopic)
	}
	reg := e.leader.reg
	s.syncs, _ = gathered(reg, "strata_store_syncs_total", "", "")
	s.syncSecs, _ = gathered(reg, "strata_store_sync_seconds_total", "", "")
	s.sendSecs, s.sends = gathered(reg, "strata_request_duration_seconds", "request", remoting.RequestCodeName(remoting.ReqSendMessageV2))
	return s
}

// window is what changed between two snapshots, summed over the windows
// (iterations) of one row.
type window struct {
	d                     time.Duration
	proc, minio, busy     time.Duration // CPU time
	getBytes, leaderBytes int64
	served                map[int64]float64
	syncs, syncSecs       float64
	sends, sendSecs       float64
}

func (w *window) add(s0, s1 snapshot) {
	w.d += s1.at.Sub(s0.at)
	w.proc += s1.cpu.proc - s0.cpu.proc
	w.minio += s1.cpu.minio - s0.cpu.minio
	w.busy += time.Duration(s1.cpu.busy-s0.cpu.busy) * clockTick
	for id, v := range s1.getBytes {
		w.getBytes += v - s0.getBytes[id]
		if id == 0 {
			w.leaderBytes += v - s0.getBytes[id]
		}
	}
	if w.served == nil {
		w.served = map[int64]float64{}
	}
	for id, v := range s1.served {
		w.served[id] += v - s0.served[id]
	}
	w.syncs += s1.syncs - s0.syncs
	w.syncSecs += s1.syncSecs - s0.syncSecs
	w.sends += s1.sends - s0.sends
	w.sendSecs += s1.sendSecs - s0.sendSecs
}

// cores returns CPU time over the window's length, in cores.
func (w *window) cores(cpu time.Duration) float64 { return cpu.Seconds() / w.d.Seconds() }

// fsyncMs is the leader's mean fdatasync time in the window.
func (w *window) fsyncMs() float64 { return w.syncSecs * 1000 / max(w.syncs, 1) }

// sendMs is the leader's mean server-side send time in the window.
func (w *window) sendMs() float64 { return w.sendSecs * 1000 / max(w.sends, 1) }

// leaderShare is the fraction of the replayed messages the leader served.
func (w *window) leaderShare() float64 {
	var all float64
	for _, v := range w.served {
		all += v
	}
	if all == 0 {
		return 0
	}
	return w.served[0] / all
}

// row is the result of the baseline (readers < 0) or of a replay.
type row struct {
	readers     int
	iters       int
	msgs, bytes int64
	lat         latResult
	w           window
}

// measureBaseline measures the leader's produce latency with no replay
// for baseDur, timing only the window when timer is not nil.
func (e *readerBench) measureBaseline(tb testing.TB, timer *testing.B) *row {
	pr := e.startWarmProber(tb)
	r := &row{readers: -1, iters: 1}
	nodes := []*node{e.leader}
	s0 := e.snap(nodes)
	if timer != nil {
		timer.StartTimer()
	}
	t := time.NewTimer(e.baseDur) // the measurement window
	<-t.C
	if timer != nil {
		timer.StopTimer()
	}
	s1 := e.snap(nodes)
	pr.stop()
	lats, errs := pr.window(s0.at, s1.at)
	r.lat = summarize(lats, errs)
	r.w.add(s0, s1)
	if errs > 0 {
		tb.Errorf("%d latency sends failed", errs)
	}
	e.base = r
	return r
}

// benchBaseline measures the leader's produce latency with no replay.
func (e *readerBench) benchBaseline(b *testing.B) {
	b.StopTimer()
	var r *row
	for range b.N {
		r = e.measureBaseline(b, b)
	}
	b.ReportMetric(ms(r.lat.p50), "p50_ms")
	b.ReportMetric(ms(r.lat.p99), "p99_ms")
	b.ReportMetric(float64(r.lat.sends)/r.w.d.Seconds(), "sends/s")
	b.ReportMetric(r.w.fsyncMs(), "fsync_ms")
	b.ReportMetric(r.w.cores(r.w.busy), "busy-cores")
	b.ReportMetric(r.w.cores(r.w.busy-r.w.proc-r.w.minio), "other-cores")
}

// ensureBase measures the baseline when its sub-benchmark did not run.
func (e *readerBench) ensureBase(b *testing.B) *row {
	if e.base == nil {
		e.measureBaseline(b, nil)
	}
	return e.base
}

// startReaders starts n tier readers (ids 1..n) and waits until the route
// lists exactly them and the leader suggests them (or, for n = 0, no
// reader) for cold pulls.
func (e *readerBench) startReaders(b *testing.B, n int) []*node {
	b.Helper()
	var rs []*node
	want := map[int64]string{0: e.leader.b.Addr()}
	for id := int64(1); id <= int64(n); id++ {
		r := e.startNode(b, broker.RoleReader, id)
		rs = append(rs, r)
		want[id] = r.b.Addr()
	}
	rc := e.newClient(b, client.RouteTTL(0))
	waitFor(b, fmt.Sprintf("routes to list %d tier readers", n), rbWaitTimeout, func() (bool, error) {
		r, err := rc.Route(context.Background(), rbTopic)
		if err != nil {
			return false, nil
		}
		bd, ok := r.Broker(rbBrokerName)
		if !ok || len(bd.Addrs) != len(want) {
			return false, nil
		}
		for id, addr := range want {
			if bd.Addrs[id] != addr {
				return false, nil
			}
		}
		return r.HotStart[rbBrokerName][0] == e.coldEnd[0], nil
	})
	waitFor(b, fmt.Sprintf("the leader to point cold pulls at %d tier readers", n), rbWaitTimeout, func() (bool, error) {
		got, err := e.leaderSuggestions()
		if err != nil {
			return false, err
		}
		if n == 0 {
			return len(got) == 1 && got[0], nil
		}
		if len(got) != n {
			return false, nil
		}
		for id := int64(1); id <= int64(n); id++ {
			if !got[id] {
				return false, nil
			}
		}
		return true, nil
	})
	return rs
}

// leaderSuggestions pulls cold messages of queue 0 from the leader at
// rbProbeGroups offsets spread over its cold range and returns the broker
// ids it suggests for the next pull: the readers it knows (taking turns by
// segment spans), or 0.
func (e *readerBench) leaderSuggestions() (map[int64]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := remoting.Dial(ctx, e.leader.b.Addr(), remoting.ConnOptions{})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	got := map[int64]bool{}
	for i := range rbProbeGroups {
		resp, err := conn.Invoke(ctx, remoting.NewRequest(remoting.ReqPullMessage, map[string]string{
			"consumerGroup": "probe-" + strconv.Itoa(i), "topic": rbTopic, "queueId": "0",
			"queueOffset": strconv.FormatInt(int64(i)*e.coldEnd[0]/rbProbeGroups, 10),
			"maxMsgNums":  "1", "sysFlag": "0", "commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*"}, nil))
		if err != nil {
			return nil, err
		}
		if resp.Code != remoting.RespSuccess {
			return nil, fmt.Errorf("probe pull from the leader: code %d: %s", resp.Code, resp.Remark)
		}
		id, err := strconv.ParseInt(resp.Ext("suggestWhichBrokerId"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("probe pull: suggestWhichBrokerId %q: %w", resp.Ext("suggestWhichBrokerId"), err)
		}
		got[id] = true
	}
	return got, nil
}

// newConsumers returns one consumer per queue, each with its own client
// (connections) and the route already fetched.
func (e *readerBench) newConsumers(b *testing.B, group string) []*client.Consumer {
	b.Helper()
	var css []*client.Consumer
	for range rbQueues {
		cs, err := client.NewConsumer(client.WithClient(e.newClient(b)), client.ConsumerGroup(group))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cs.Queues(context.Background(), rbTopic); err != nil {
			b.Fatal(err)
		}
		css = append(css, cs)
	}
	return css
}

// replay pulls every queue from 0 to its cold end, one goroutine and
// consumer per queue, checking that offsets are dense, and returns the
// messages and their body bytes.
func replay(ctx context.Context, css []*client.Consumer, coldEnd [rbQueues]int64, batch int) (msgs, bytes int64, err error) {
	var nm, nb atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for q := range rbQueues {
		g.Go(func() error {
			mq := client.MessageQueue{Topic: rbTopic, BrokerName: rbBrokerName, QueueID: q}
			for off := int64(0); off < coldEnd[q]; {
				res, err := css[q].Pull(gctx, mq, off, batch)
				if err != nil {
					return fmt.Errorf("pull %s at %d: %w", mq, off, err)
				}
				switch res.Status {
				case client.PullFound:
					var n int64
					for i, m := range res.Messages {
						if m.QueueOffset != off+int64(i) {
							return fmt.Errorf("pull %s at %d: message %d has offset %d", mq, off, i, m.QueueOffset)
						}
						n += int64(len(m.Body))
					}
					nm.Add(int64(len(res.Messages)))
					nb.Add(n)
				case client.PullNoMatchedMsg:
				default:
					return fmt.Errorf("pull %s at %d (cold end %d): %v", mq, off, coldEnd[q], res.Status)
				}
				if res.NextBeginOffset <= off {
					return fmt.Errorf("pull %s at %d: next offset %d", mq, off, res.NextBeginOffset)
				}
				off = res.NextBeginOffset
			}
			return nil
		})
	}
	err = g.Wait()
	return nm.Load(), nb.Load(), err
}

// benchReaders replays the data set with n tier readers up.
func (e *readerBench) benchReaders(b *testing.B, n int) {
	b.StopTimer()
	raw, base := e.ensureRaw(b), e.ensureBase(b)
	r := &row{readers: n, iters: b.N}
	var lats []time.Duration
	errs := 0
	for i := range b.N {
		readers := e.startReaders(b, n)
		css := e.newConsumers(b, fmt.Sprintf("replay-r%d-i%d-%d", n, i, time.Now().UnixNano()))
		pr := e.startWarmProber(b)
		nodes := append([]*node{e.leader}, readers...)
		s0 := e.snap(nodes)
		b.StartTimer()
		msgs, bytes, err := replay(context.Background(), css, e.coldEnd, e.pullBatch)
		b.StopTimer()
		s1 := e.snap(nodes)
		pr.stop()
		if err != nil {
			b.Fatal(err)
		}
		if msgs != e.msgs || bytes != e.payload {
			b.Fatalf("replay read %d messages (%d bytes), want %d (%d)", msgs, bytes, e.msgs, e.payload)
		}
		for _, rd := range readers {
			stopBroker(b, rd.b)
		}
		l, failed := pr.window(s0.at, s1.at)
		lats, errs = append(lats, l...), errs+failed
		r.w.add(s0, s1)
		r.msgs += msgs
		r.bytes += bytes
	}
	r.lat = summarize(lats, errs)
	e.rows = append(e.rows, r)

	secs := r.w.d.Seconds()
	objMBps := mib(e.objBytes) * float64(b.N) / secs
	b.ReportMetric(mib(r.bytes)/secs, "MB/s")
	b.ReportMetric(float64(r.msgs)/secs, "msgs/s")
	b.ReportMetric(objMBps, "obj-MB/s")
	b.ReportMetric(objMBps/raw.ceiling, "vs-rawGET")
	b.ReportMetric(mib(r.w.getBytes)/secs, "get-MB/s")
	b.ReportMetric(float64(r.w.getBytes)/float64(e.objBytes)/float64(b.N), "get-amp")
	b.ReportMetric(r.w.leaderShare(), "leader-served")
	b.ReportMetric(ms(r.lat.p50), "p50_ms")
	b.ReportMetric(ms(r.lat.p99), "p99_ms")
	b.ReportMetric(ms(r.lat.p99)/ms(base.lat.p99), "p99_ratio")
	b.ReportMetric(r.w.cores(r.w.proc), "proc-cores")
	b.ReportMetric(r.w.cores(r.w.minio), "minio-cores")
	b.ReportMetric(r.w.cores(r.w.busy), "busy-cores")
	b.ReportMetric(r.w.cores(r.w.busy-r.w.proc-r.w.minio), "other-cores")
	if errs > 0 {
		b.Errorf("%d latency sends failed during the replays", errs)
	}
}

// cpuSnap is a reading of CPU counters.
type cpuSnap struct {
	proc, minio time.Duration
	busy        int64 // machine-wide busy clock ticks from /proc/stat
}

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// readCPU reads this process's CPU time, MinIO's (pid, when known) and the
// machine's busy ticks; what cannot be read stays 0.
func readCPU(minioPID int) cpuSnap {
	var s cpuSnap
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.proc = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if minioPID > 0 {
		if st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(minioPID), "stat")); err == nil {
			// Fields after the command's closing parenthesis: state is
			// field 3, utime 14 and stime 15.
			if i := strings.LastIndexByte(string(st), ')'); i >= 0 {
				f := strings.Fields(string(st[i+1:]))
				if len(f) > 12 {
					ut, _ := strconv.ParseInt(f[11], 10, 64)
					stt, _ := strconv.ParseInt(f[12], 10, 64)
					s.minio = time.Duration(ut+stt) * clockTick
				}
			}
		}
	}
	if pf, err := os.Open("/proc/stat"); err == nil {
		sc := bufio.NewScanner(pf)
		if sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) > 5 && f[0] == "cpu" {
				for i, v := range f[1:] {
					n, _ := strconv.ParseInt(v, 10, 64)
					if i >= 8 { // guest time is already in user time
						break
					}
					if i != 3 && i != 4 { // idle, iowait
						s.busy += n
					}
				}
			}
		}
		pf.Close()
	}
	return s
}

// findMinioPID returns the pid of this process's MinIO child serving
// endpoint, or 0.
func findMinioPID(endpoint string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	for _, en := range ents {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), "\x00"+endpoint+"\x00") {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", en.Name(), "stat"))
		if err != nil {
			continue
		}
		if i := strings.LastIndexByte(string(st), ')'); i >= 0 {
			f := strings.Fields(string(st[i+1:]))
			if len(f) > 1 && f[1] == strconv.Itoa(self) {
				return pid
			}
		}
	}
	return 0
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// logSummary logs a table of every measurement of this run.
func (e *readerBench) logSummary(b *testing.B) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\ndata set: %d msgs, %.0f MiB of bodies, %d segment objects of %.0f MiB, %d queues; pull batch %d; caches %d MiB\n",
		e.msgs, mib(e.payload), len(e.objects), mib(e.objBytes), rbQueues, e.pullBatch, e.cacheSize>>20)
	ceiling := 0.0
	if e.raw != nil {
		ceiling = e.raw.ceiling
		fmt.Fprintf(&sb, "rawGET MiB/s (best of %d): whole objects c8 %.0f, blocks c8 %.0f, blocks c16 %.0f; ceiling %.0f\n",
			rbRawRepeats, e.raw.whole8, e.raw.blocks8, e.raw.blocks16, ceiling)
	}
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "replay\ttime s\tMiB/s\tmsgs/s\tobj MiB/s\tvs rawGET\tGET MiB/s\tGET amp\tserved by id (%)\t"+
		"p50 ms\tp99 ms\tp99 ratio\tsend srv ms\tfsync ms\tproc cores\tminio cores\tother cores\tbusy cores\t")
	// CPU of MinIO and of the host's other processes (other tests).
	minio := func(w *window) string {
		if e.minioPID == 0 {
			return "?\t?"
		}
		return fmt.Sprintf("%.2f\t%.2f", w.cores(w.minio), w.cores(w.busy-w.proc-w.minio))
	}
	rows := e.rows
	if e.base != nil {
		rows = append([]*row{e.base}, rows...)
	}
	for _, r := range rows {
		w := &r.w
		ratio := "-"
		if e.base != nil && e.base.lat.p99 > 0 {
			ratio = fmt.Sprintf("%.2f", ms(r.lat.p99)/ms(e.base.lat.p99))
		}
		replayCols := "none (baseline)\t" + fmt.Sprintf("%.1f", w.d.Seconds()) + strings.Repeat("\t-", 7)
		if r.readers >= 0 {
			secs := w.d.Seconds()
			objMBps := mib(e.objBytes) * float64(r.iters) / secs
			var served []string
			var all float64
			for _, v := range w.served {
				all += v
			}
			ids := slices.Sorted(maps.Keys(w.served))
			for _, id := range ids {
				served = append(served, fmt.Sprintf("%d:%.0f", id, 100*w.served[id]/max(all, 1)))
			}
			vs := "?"
			if ceiling > 0 {
				vs = fmt.Sprintf("%.2f", objMBps/ceiling)
			}
			replayCols = fmt.Sprintf("readers=%d\t%.1f\t%.0f\t%.0f\t%.0f\t%s\t%.0f\t%.2f\t%s", r.readers, secs,
				mib(r.bytes)/secs, float64(r.msgs)/secs, objMBps, vs, mib(w.getBytes)/secs,
				float64(w.getBytes)/float64(e.objBytes)/float64(r.iters), strings.Join(served, " "))
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%s\t%.2f\t%.2f\t%.2f\t%s\t%.2f\t\n", replayCols,
			ms(r.lat.p50), ms(r.lat.p99), ratio, w.sendMs(), w.fsyncMs(), w.cores(w.proc), minio(w), w.cores(w.busy))
	}
	tw.Flush()
	b.Logf("%s", sb.String())
}
