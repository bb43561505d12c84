package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newTest returns a Cache closed at the end of the test.
func newTest(t testing.TB, cfg Config) *Cache {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := New(cfg)
	t.Cleanup(c.Close)
	return c
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// value returns a FetchFunc that yields a fresh n-byte slice.
func value(n int) FetchFunc {
	return func(context.Context) ([]byte, error) { return make([]byte, n), nil }
}

// gate is a fetch that blocks until released (or its context ends), and
// reports each call.
type gate struct {
	calls   atomic.Int32
	started chan struct{} // one token per call
	release chan struct{}
	val     []byte
	err     error
}

func newGate(val []byte, err error) *gate {
	return &gate{started: make(chan struct{}, 100), release: make(chan struct{}), val: val, err: err}
}

func (g *gate) fetch(ctx context.Context) ([]byte, error) {
	g.calls.Add(1)
	g.started <- struct{}{}
	select {
	case <-g.release:
		return g.val, g.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// waitStarted waits for the gate's next call.
func (g *gate) waitStarted(t testing.TB) {
	t.Helper()
	select {
	case <-g.started:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a fetch to start")
	}
}

// checkInvariants verifies the byte accounting against the entries.
func checkInvariants(t testing.TB, c *Cache) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum int64
	for _, k := range c.lru.Keys() {
		e, _ := c.lru.Peek(k)
		if want := int64(cap(e.val)) + int64(len(k)) + EntryOverhead; e.cost != want {
			t.Fatalf("entry %q cost %d, want %d", k, e.cost, want)
		}
		sum += e.cost
	}
	if sum != c.bytes {
		t.Fatalf("bytes = %d, entries sum to %d", c.bytes, sum)
	}
	if c.bytes > c.maxBytes {
		t.Fatalf("bytes %d > max %d", c.bytes, c.maxBytes)
	}
}

func cost(key string, n int) int64 { return int64(n) + int64(len(key)) + EntryOverhead }

func TestHitMiss(t *testing.T) {
	c := newTest(t, Config{MaxBytes: 1 << 20})
	ctx := context.Background()
	var calls int
	fetch := func(context.Context) ([]byte, error) { calls++; return []byte("block-0"), nil }
	for i := range 3 {
		v, err := c.Get(ctx, "k", fetch)
		if err != nil || string(v) != "block-0" {
			t.Fatalf("Get #%d = %q, %v", i, v, err)
		}
	}
	if calls != 1 {
		t.Fatalf("fetch called %d times, want 1", calls)
	}
	s := c.Stats()
	if s.Hits != 2 || s.Misses != 1 || s.Fetches != 1 || s.Entries != 1 || s.Coalesced != 0 {
		t.Fatalf("stats %+v", s)
	}
	if s.Bytes != cost("k", cap([]byte("block-0"))) && s.Bytes != cost("k", 7) {
		t.Fatalf("bytes %d", s.Bytes)
	}
	if r := s.HitRatio(); r < 0.66 || r > 0.67 {
		t.Fatalf("hit ratio %v", r)
	}
	checkInvariants(t, c)
}

func TestDefaults(t *testing.T) {
	c := newTest(t, Config{})
	if s := c.Stats(); s.MaxBytes != DefaultMaxBytes {
		t.Fatalf("MaxBytes %d", s.MaxBytes)
	}
	if c.maxWindow != DefaultMaxWindow || cap(c.queue) != 4*DefaultPrefetchWorkers*DefaultMaxWindow {
		t.Fatalf("window %d queue %d", c.maxWindow, cap(c.queue))
	}
	if w := c.Stream("s").Window(); w != 1 {
		t.Fatalf("initial window %d", w)
	}
}

func TestByteBoundUnderChurn(t *testing.T) {
	const maxB = 64 << 10
	c := newTest(t, Config{MaxBytes: maxB})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var inserted int64
	for i := 0; inserted < 10*maxB; i++ {
		n := 1 + rng.IntN(16<<10)
		key := fmt.Sprintf("seq/%d", i)
		v, err := c.Get(ctx, key, value(n))
		if err != nil || len(v) != n {
			t.Fatalf("Get: %d bytes, %v", len(v), err)
		}
		inserted += int64(n)
		if s := c.Stats(); s.Bytes > maxB {
			t.Fatalf("after %d bytes inserted: Bytes %d > %d", inserted, s.Bytes, maxB)
		}
		checkInvariants(t, c)
	}
	if c.Stats().Evictions == 0 {
		t.Fatal("no evictions")
	}

	// Concurrently: Gets, coalesced Gets and prefetches over a key space
	// larger than the cache, with a checker watching the bound.
	stop := make(chan struct{})
	var checker sync.WaitGroup
	checker.Add(1)
	var over atomic.Int64
	go func() {
		defer checker.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if b := c.Stats().Bytes; b > maxB {
				over.Store(b)
			}
			runtime.Gosched()
		}
	}()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			s := c.Stream(fmt.Sprint("stream", g))
			for range 500 {
				k := rng.IntN(100)
				key := fmt.Sprintf("conc/%d", k)
				n := 1 + (k*997)%(16<<10)
				if rng.IntN(3) == 0 {
					c.Prefetch(s, key, value(n))
					continue
				}
				if v, err := c.Get(ctx, key, value(n)); err != nil || len(v) != n {
					t.Errorf("Get %s: %d bytes, %v", key, len(v), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	checker.Wait()
	if b := over.Load(); b != 0 {
		t.Fatalf("Bytes reached %d > %d", b, maxB)
	}
	checkInvariants(t, c)
}

func TestOversizedValueNotCached(t *testing.T) {
	c := newTest(t, Config{MaxBytes: 4096})
	ctx := context.Background()
	if _, err := c.Get(ctx, "small", value(100)); err != nil {
		t.Fatal(err)
	}
	v, err := c.Get(ctx, "big", value(8192))
	if err != nil || len(v) != 8192 {
		t.Fatalf("Get big: %d bytes, %v", len(v), err)
	}
	s := c.Stats()
	if s.Entries != 1 || s.Evictions != 0 {
		t.Fatalf("oversized value was cached or evicted others: %+v", s)
	}
	if _, err := c.Get(ctx, "big", value(8192)); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Fetches != 3 {
		t.Fatalf("Fetches %d, want 3 (oversized value fetched each time)", s.Fetches)
	}
}

func TestConcurrentGetsShareOneFetch(t *testing.T) {
	const n = 50
	c := newTest(t, Config{MaxBytes: 1 << 20})
	g := newGate([]byte("payload"), nil)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Get(context.Background(), "k", g.fetch)
			if err == nil && string(v) != "payload" {
				err = fmt.Errorf("got %q", v)
			}
			errs <- err
		}()
	}
	g.waitStarted(t)
	waitFor(t, "all Gets to join the fetch", func() bool { return c.Stats().Coalesced == n-1 })
	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if calls := g.calls.Load(); calls != 1 {
		t.Fatalf("fetch called %d times", calls)
	}
	if s := c.Stats(); s.Fetches != 1 || s.Misses != n || s.Entries != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFetchErrorPropagatedNotCached(t *testing.T) {
	const n = 5
	c := newTest(t, Config{MaxBytes: 1 << 20})
	boom := errors.New("boom")
	g := newGate(nil, boom)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Get(context.Background(), "k", g.fetch)
			errs <- err
		}()
	}
	g.waitStarted(t)
	waitFor(t, "all Gets to join the fetch", func() bool { return c.Stats().Coalesced == n-1 })
	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, boom) {
			t.Fatalf("waiter got %v, want %v", err, boom)
		}
	}
	if s := c.Stats(); s.Entries != 0 || s.FetchErrors != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Not cached: the next Get fetches again.
	v, err := c.Get(context.Background(), "k", value(10))
	if err != nil || len(v) != 10 {
		t.Fatalf("Get after error: %d bytes, %v", len(v), err)
	}
	if s := c.Stats(); s.Fetches != 2 {
		t.Fatalf("Fetches %d, want 2", s.Fetches)
	}
}

func TestFetchPanicBecomesError(t *testing.T) {
	c := newTest(t, Config{MaxBytes: 1 << 20})
	_, err := c.Get(context.Background(), "k", func(context.Context) ([]byte, error) { panic("corrupt block") })
	if err == nil {
		t.Fatal("no error from panicking fetch")
	}
	if _, err := c.Get(context.Background(), "k", value(1)); err != nil {
		t.Fatal(err)
	}
}

func TestWaiterCancelDoesNotBreakOthers(t *testing.T) {
	c := newTest(t, Config{MaxBytes: 1 << 20})
	g := newGate([]byte("v"), nil)
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	errA := make(chan error, 1)
	go func() {
		_, err := c.Get(ctxA, "k", g.fetch)
		errA <- err
	}()
	g.waitStarted(t)
	type result struct {
		v   []byte
		err error
	}
	resB := make(chan result, 1)
	go func() {
		v, err := c.Get(context.Background(), "k", g.fetch)
		resB <- result{v, err}
	}()
	waitFor(t, "B to join", func() bool { return c.Stats().Coalesced == 1 })
	cancelA()
	select {
	case err := <-errA:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("A got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled waiter did not return")
	}
	close(g.release)
	r := <-resB
	if r.err != nil || string(r.v) != "v" {
		t.Fatalf("B got %q, %v", r.v, r.err)
	}
	if calls := g.calls.Load(); calls != 1 {
		t.Fatalf("fetch called %d times", calls)
	}
	if s := c.Stats(); s.Entries != 1 {
		t.Fatalf("value not cached: %+v", s)
	}
}

func TestLastWaiterLeavingCancelsFetch(t *testing.T) {
	c := newTest(t, Config{MaxBytes: 1 << 20})
	cancelled := make(chan struct{})
	fetch := func(ctx context.Context) ([]byte, error) {
		<-ctx.Done()
		close(cancelled)
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := c.Get(ctx, "k", fetch)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get = %v, want DeadlineExceeded", err)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("abandoned fetch not cancelled")
	}
	// A new Get starts a new fetch rather than joining the abandoned one.
	v, err := c.Get(context.Background(), "k", value(3))
	if err != nil || len(v) != 3 {
		t.Fatalf("Get: %d bytes, %v", len(v), err)
	}
	if s := c.Stats(); s.Fetches != 2 {
		t.Fatalf("Fetches %d, want 2", s.Fetches)
	}
	// A ctx already done on a miss fails without fetching.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if _, err := c.Get(done, "other", value(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with done ctx = %v", err)
	}
	if _, err := c.Get(context.Background(), "other", nil); err == nil {
		t.Fatal("Get of a miss with nil fetch succeeded")
	}
}

func TestPrefetchThenGet(t *testing.T) {
	c := newTest(t, Config{MaxBytes: 1 << 20, MaxWindow: 4})
	s := c.Stream("g/t/0")
	if s.ID() != "g/t/0" || s.Window() != 1 {
		t.Fatalf("new stream %q window %d", s.ID(), s.Window())
	}
	c.Prefetch(s, "b1", value(100))
	waitFor(t, "prefetch to land", func() bool { return c.Stats().Entries == 1 })
	if _, err := c.Get(context.Background(), "b1", nil); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.PrefetchIssued != 1 || st.PrefetchUsed != 1 || st.Hits != 1 || st.PrefetchLate != 0 {
		t.Fatalf("stats %+v", st)
	}
	if w := s.Window(); w != 2 {
		t.Fatalf("window %d after a used prefetch, want 2", w)
	}
	// Only the first use counts.
	if _, err := c.Get(context.Background(), "b1", nil); err != nil {
		t.Fatal(err)
	}
	if w, u := s.Window(), c.Stats().PrefetchUsed; w != 2 || u != 1 {
		t.Fatalf("second Get: window %d used %d", w, u)
	}
	// Growth stops at MaxWindow.
	for i := 2; i < 6; i++ {
		key := fmt.Sprint("b", i)
		c.Prefetch(s, key, value(100))
		waitFor(t, "prefetch "+key, func() bool { return c.Stats().Entries == i })
		if _, err := c.Get(context.Background(), key, nil); err != nil {
			t.Fatal(err)
		}
	}
	if w := s.Window(); w != 4 {
		t.Fatalf("window %d, want MaxWindow 4", w)
	}
	// A Prefetch of a cached key does nothing.
	c.Prefetch(s, "b1", value(100))
	if st := c.Stats(); st.PrefetchIssued != 5 {
		t.Fatalf("PrefetchIssued %d, want 5", st.PrefetchIssued)
	}
	// A nil stream prefetches without read-ahead accounting.
	c.Prefetch(nil, "anon", value(10))
	waitFor(t, "anonymous prefetch", func() bool { return c.Stats().Entries == 6 })
	if _, err := c.Get(context.Background(), "anon", nil); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, c)
}

func TestGetJoinsPrefetchInFlight(t *testing.T) {
	c := newTest(t, Config{MaxBytes: 4096})
	s := c.Stream("s")
	g := newGate(make([]byte, 1000), nil)
	c.Prefetch(s, "b", g.fetch)
	g.waitStarted(t)
	c.Prefetch(s, "b", g.fetch) // in flight: skipped
	res := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), "b", nil)
		res <- err
	}()
	waitFor(t, "Get to join the prefetch", func() bool { return c.Stats().Coalesced == 1 })
	if w := s.Window(); w != 2 {
		t.Fatalf("window %d after a late prefetch, want 2", w)
	}
	close(g.release)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.Fetches != 1 || st.PrefetchIssued != 1 || st.PrefetchUsed != 1 || st.PrefetchLate != 1 || st.Entries != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The entry arrived used: evicting it is not waste, a hit is not a
	// second use.
	if _, err := c.Get(context.Background(), "b", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "big", value(3500)); err != nil {
		t.Fatal(err)
	}
	st = c.Stats()
	if st.Evictions != 1 || st.PrefetchWasted != 0 || st.PrefetchUsed != 1 || s.Window() != 2 {
		t.Fatalf("stats %+v window %d", st, s.Window())
	}
}

func TestWastedPrefetchShrinksWindow(t *testing.T) {
	const blk = 1000
	c := newTest(t, Config{MaxBytes: 4 * (blk + 300), MaxWindow: 16})
	s := c.Stream("s")
	ctx := context.Background()
	// Three used prefetches: 1 → 8.
	for i := range 3 {
		key := fmt.Sprint("used", i)
		c.Prefetch(s, key, value(blk))
		waitFor(t, "prefetch "+key, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.lru.Contains(key)
		})
		if _, err := c.Get(ctx, key, nil); err != nil {
			t.Fatal(err)
		}
	}
	if w := s.Window(); w != 8 {
		t.Fatalf("window %d, want 8", w)
	}
	// Two prefetches never read, pushed out by other reads.
	for i := range 2 {
		key := fmt.Sprint("unread", i)
		c.Prefetch(s, key, value(blk))
		waitFor(t, "prefetch "+key, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.lru.Contains(key)
		})
	}
	for i := range 4 {
		if _, err := c.Get(ctx, fmt.Sprint("other", i), value(blk)); err != nil {
			t.Fatal(err)
		}
	}
	st := c.Stats()
	if st.PrefetchWasted != 2 || st.PrefetchUsed != 3 {
		t.Fatalf("stats %+v", st)
	}
	if w := s.Window(); w != 2 {
		t.Fatalf("window %d after two wasted prefetches, want 2", w)
	}
	// Never below 1.
	for i := range 3 {
		key := fmt.Sprint("unread-more", i)
		c.Prefetch(s, key, value(6000)) // larger than the cache: wasted at once
		waitFor(t, "prefetch "+key, func() bool { return c.Stats().PrefetchWasted == uint64(3+i) })
	}
	if w := s.Window(); w != 1 {
		t.Fatalf("window %d, want 1", w)
	}
	checkInvariants(t, c)
}

func TestPrefetchQueueFullDrops(t *testing.T) {
	c := newTest(t, Config{MaxBytes: 1 << 20, PrefetchWorkers: 1, PrefetchQueue: 1})
	s := c.Stream("s")
	g := newGate([]byte("x"), nil)
	c.Prefetch(s, "a", g.fetch)
	g.waitStarted(t) // the only worker is busy
	c.Prefetch(s, "b", g.fetch)
	c.Prefetch(s, "c", g.fetch) // queue (1) is full
	st := c.Stats()
	if st.PrefetchIssued != 2 || st.PrefetchDropped != 1 {
		t.Fatalf("stats %+v", st)
	}
	close(g.release)
	waitFor(t, "prefetches to land", func() bool { return c.Stats().Entries == 2 })
	// A dropped key is not in flight: a Get fetches it.
	if v, err := c.Get(context.Background(), "c", value(2)); err != nil || len(v) != 2 {
		t.Fatalf("Get c: %d bytes, %v", len(v), err)
	}
}

func TestPrefetchErrorNotCached(t *testing.T) {
	c := newTest(t, Config{MaxBytes: 1 << 20})
	boom := errors.New("boom")
	c.Prefetch(c.Stream("s"), "k", func(context.Context) ([]byte, error) { return nil, boom })
	waitFor(t, "prefetch to fail", func() bool { return c.Stats().FetchErrors == 1 })
	if st := c.Stats(); st.Entries != 0 {
		t.Fatalf("failed prefetch cached: %+v", st)
	}
	if v, err := c.Get(context.Background(), "k", value(4)); err != nil || len(v) != 4 {
		t.Fatalf("Get: %d bytes, %v", len(v), err)
	}
}

// TestSequentialReader walks 1000 blocks the way the cold-tier reader
// does: Get the block, then Prefetch the next Window() blocks. Fetches take
// a few milliseconds, like an object-store GET; the reader is paced at one
// block per millisecond, slower than the workers' combined throughput, so
// read-ahead can hide the latency once the window has grown.
func TestSequentialReader(t *testing.T) {
	const (
		blocks  = 1000
		blk     = 4096
		latency = 2 * time.Millisecond
	)
	c := newTest(t, Config{MaxBytes: 64 * (blk + 256), PrefetchWorkers: 4, MaxWindow: 16})
	ctx := context.Background()
	fetch := func(i int) FetchFunc {
		return func(ctx context.Context) ([]byte, error) {
			tm := time.NewTimer(latency)
			defer tm.Stop()
			select {
			case <-tm.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			b := make([]byte, blk)
			b[0] = byte(i)
			return b, nil
		}
	}
	key := func(i int) string { return fmt.Sprintf("seg/00000000000000000000.seg#%d", i) }
	s := c.Stream("group/topic/0")
	pace := time.NewTicker(time.Millisecond)
	defer pace.Stop()
	for i := range blocks {
		v, err := c.Get(ctx, key(i), fetch(i))
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if v[0] != byte(i) {
			t.Fatalf("block %d: wrong value", i)
		}
		for j := 1; j <= s.Window() && i+j < blocks; j++ {
			c.Prefetch(s, key(i+j), fetch(i+j))
		}
		<-pace.C
	}
	st := c.Stats()
	t.Logf("hits %d misses %d late %d used %d issued %d wasted %d dropped %d window %d",
		st.Hits, st.Misses, st.PrefetchLate, st.PrefetchUsed, st.PrefetchIssued, st.PrefetchWasted, st.PrefetchDropped, s.Window())
	if r := st.HitRatio(); r < 0.9 {
		t.Errorf("hit ratio %.3f < 0.9", r)
	}
	if r := float64(st.PrefetchUsed) / blocks; r < 0.9 {
		t.Errorf("read-ahead use ratio %.3f < 0.9", r)
	}
	if st.PrefetchWasted != 0 || st.PrefetchDropped != 0 {
		t.Errorf("wasted %d dropped %d, want 0", st.PrefetchWasted, st.PrefetchDropped)
	}
	if w := s.Window(); w != 16 {
		t.Errorf("window %d, want MaxWindow", w)
	}
	if st.Fetches != blocks {
		t.Errorf("Fetches %d, want %d (each block once)", st.Fetches, blocks)
	}
}

func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	c := New(Config{MaxBytes: 1 << 20, PrefetchWorkers: 2, PrefetchQueue: 8, Logger: slog.New(slog.DiscardHandler)})
	s := c.Stream("s")
	g := newGate([]byte("x"), nil) // blocks until its context ends
	for i := range 6 {
		c.Prefetch(s, fmt.Sprint("p", i), g.fetch)
	}
	g.waitStarted(t)
	g.waitStarted(t) // both workers busy, four queued
	errs := make(chan error, 2)
	go func() { // waits on a Get-started fetch
		_, err := c.Get(context.Background(), "get", g.fetch)
		errs <- err
	}()
	go func() { // waits on a queued prefetch
		_, err := c.Get(context.Background(), "p5", nil)
		errs <- err
	}()
	g.waitStarted(t)
	waitFor(t, "the Get to join p5", func() bool { return c.Stats().Coalesced == 1 })
	c.Close()
	for range 2 {
		select {
		case err := <-errs:
			if err == nil {
				t.Fatal("waiter of an interrupted fetch got no error")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("waiter not released by Close")
		}
	}
	if calls := g.calls.Load(); calls != 3 {
		t.Fatalf("fetch called %d times, want 3 (queued prefetches must not run after Close)", calls)
	}
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })

	// After Close: hits are gone, misses fail, Prefetch is a no-op, Close
	// is idempotent.
	if _, err := c.Get(context.Background(), "x", value(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	c.Prefetch(s, "y", value(1))
	c.Close()
	if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("stats after Close %+v", st)
	}
}

func TestMaxStreams(t *testing.T) {
	const maxS = 8
	c := newTest(t, Config{MaxBytes: 1 << 20, MaxStreams: maxS})
	first := c.Stream("s0")
	c.grow(first)
	for i := range 3 * maxS {
		c.Stream(fmt.Sprint("s", i))
	}
	if n := c.Stats().Streams; n != maxS {
		t.Fatalf("%d streams tracked, want %d", n, maxS)
	}
	again := c.Stream("s0")
	if again == first || again.Window() != 1 {
		t.Fatal("a forgotten stream kept its state")
	}
	if c.Stream("s0") != again {
		t.Fatal("Stream did not return the tracked stream")
	}
	if n := c.Stats().Streams; n != maxS {
		t.Fatalf("%d streams tracked, want %d", n, maxS)
	}
}

// TestMemoryBounded replays 20× the cache size in 1 MiB blocks and checks
// that the live heap stays within the cache bound plus a small constant.
func TestMemoryBounded(t *testing.T) {
	const (
		maxB  = 8 << 20
		blk   = 1 << 20
		slack = 2 << 20
	)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	c := newTest(t, Config{MaxBytes: maxB})
	s := c.Stream("replay")
	ctx := context.Background()
	key := func(i int) string { return fmt.Sprint("blk#", i) }
	var peak uint64
	for i := range 20 * maxB / blk {
		v, err := c.Get(ctx, key(i), value(blk))
		if err != nil || len(v) != blk {
			t.Fatalf("Get %d: %d bytes, %v", i, len(v), err)
		}
		for j := 1; j <= s.Window(); j++ {
			c.Prefetch(s, key(i+j), value(blk))
		}
		if i%8 == 7 {
			// Measure at rest: values being fetched are not the cache's
			// yet, and allocations during a GC cycle survive it.
			waitFor(t, "prefetches to finish", func() bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				return len(c.flights) == 0
			})
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			if ms.HeapAlloc > base+maxB+slack {
				t.Fatalf("after %d blocks: heap %d MiB above baseline, bound %d MiB + %d MiB",
					i+1, (ms.HeapAlloc-base)>>20, maxB>>20, slack>>20)
			}
		}
	}
	if st := c.Stats(); st.Bytes > maxB || st.Evictions == 0 {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("peak live heap %.1f MiB above baseline (bound %d MiB)", float64(int64(peak)-int64(base))/(1<<20), maxB>>20)
}

func BenchmarkGetHit(b *testing.B) {
	c := newTest(b, Config{MaxBytes: 64 << 20})
	ctx := context.Background()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("seg/%020d.seg#%d", i/64, i%64)
		if _, err := c.Get(ctx, keys[i], value(4096)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := c.Get(ctx, keys[i&1023], nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkGetHitParallel(b *testing.B) {
	c := newTest(b, Config{MaxBytes: 64 << 20})
	ctx := context.Background()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("seg/%020d.seg#%d", i/64, i%64)
		if _, err := c.Get(ctx, keys[i], value(4096)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(1024)
		for pb.Next() {
			if _, err := c.Get(ctx, keys[i&1023], nil); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// TestAddAndContains: a value added for a stream counts as a prefetch; its
// first Get is a hit that uses it and widens the stream's window.
func TestAddAndContains(t *testing.T) {
	c := New(Config{MaxBytes: 1 << 20})
	defer c.Close()
	s := c.Stream("s")
	if c.Contains("k") {
		t.Fatal("empty cache contains k")
	}
	c.Add(s, "k", []byte("v"))
	if !c.Contains("k") {
		t.Fatal("added key not contained")
	}
	c.Add(s, "k", []byte("other")) // keeps the first value
	v, err := c.Get(context.Background(), "k", func(context.Context) ([]byte, error) {
		t.Fatal("fetch of an added key")
		return nil, nil
	})
	if err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	st := c.Stats()
	if st.PrefetchIssued != 1 || st.PrefetchUsed != 1 || st.Hits != 1 || s.Window() < 2 {
		t.Fatalf("stats %+v, window %d", st, s.Window())
	}
}
