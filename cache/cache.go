// Package cache keeps decompressed cold-tier blocks in memory.
//
// A Cache is bounded by bytes, not by entries: it holds the most recently
// used blocks whose total cost (see Stats.Bytes) fits in Config.MaxBytes,
// evicting the least recently used ones first (hashicorp/golang-lru/v2 under
// the Cache's own mutex). Concurrent misses of one key share one fetch, and a
// Get that finds the key already being prefetched joins that prefetch.
//
// Sequential readers get adaptive read-ahead. A reader keeps a Stream (one
// per consumer group, topic and queue, say); after each Get it asks
// Stream.Window how many of the following blocks to Prefetch. The window
// starts at 1 and, up to Config.MaxWindow:
//
//   - doubles when a Get first uses a block this stream prefetched, whether
//     the block had arrived (a hit) or was still being fetched (a "late"
//     prefetch: the window was too small to hide the fetch latency);
//   - halves, down to 1, when a block this stream prefetched leaves the cache
//     (or is too large to enter it) before any Get used it: read-ahead that
//     the cache cannot hold is wasted work.
//
// Prefetches run on a fixed pool of workers owned by the Cache, fed by a
// bounded queue; a Prefetch that finds the queue full is dropped, never
// blocks. Close stops the workers and every fetch the Cache started, and
// waits for them.
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Defaults used for zero fields of Config.
const (
	// DefaultMaxBytes is the default byte bound (the --cache-size default).
	DefaultMaxBytes = 512 << 20
	// DefaultPrefetchWorkers is the default number of prefetch workers.
	DefaultPrefetchWorkers = 4
	// DefaultMaxWindow is the default read-ahead window cap, in blocks.
	DefaultMaxWindow = 16
	// DefaultMaxStreams is the default number of tracked read-ahead streams.
	DefaultMaxStreams = 4096
)

// EntryOverhead is the approximate memory, in bytes, that one cached entry
// costs besides its value's backing array (LRU list element, map slot, entry
// record). It is added to each entry's cost, with the key's length, so that
// Stats.Bytes tracks memory rather than payload alone.
const EntryOverhead = 192

// ErrClosed is returned by Get for a miss after Close, and to waiters whose
// fetch Close interrupted before it started.
var ErrClosed = errors.New("cache: closed")

// Config configures a Cache. Zero fields take the defaults above.
type Config struct {
	// MaxBytes bounds the total cost of cached values (default 512 MiB).
	// Besides the cache itself, memory holds the values being fetched (at
	// most PrefetchWorkers plus one per distinct key missed concurrently by
	// Get) and evicted values the garbage collector has not reclaimed yet;
	// a process that must stay near the bound should set GOMEMLIMIT.
	MaxBytes int64
	// PrefetchWorkers bounds the concurrency of background prefetches
	// (default 4).
	PrefetchWorkers int
	// PrefetchQueue is how many prefetches may wait for a worker before
	// further ones are dropped (default 4 × PrefetchWorkers × MaxWindow).
	PrefetchQueue int
	// MaxWindow caps a stream's read-ahead window, in blocks (default 16).
	// The window starts at 1.
	MaxWindow int
	// MaxStreams bounds the number of read-ahead streams tracked; the least
	// recently used one is forgotten beyond it (default 4096).
	MaxStreams int
	// Logger receives fetch failures of prefetches and recovered panics
	// (default slog.Default()).
	Logger *slog.Logger
}

// FetchFunc loads one value on a miss: typically a ranged GET of one block
// followed by LZ4 decompression. It must honour ctx. The slice it returns
// is cached as is (not copied) and must not be modified afterwards; it
// should own its backing array, whose capacity is what the cache accounts.
type FetchFunc func(ctx context.Context) ([]byte, error)

// Stats is a snapshot of a Cache's counters. Counters are totals since New.
type Stats struct {
	// Hits counts Gets served from the cache.
	Hits uint64
	// Misses counts Gets not served from the cache (including those that
	// joined a fetch already in flight, see Coalesced).
	Misses uint64
	// Fetches counts calls of a FetchFunc (by Gets and by prefetches).
	Fetches uint64
	// FetchErrors counts fetches that returned an error (or panicked).
	FetchErrors uint64
	// Coalesced counts Gets that joined a fetch already in flight instead
	// of starting their own.
	Coalesced uint64
	// Bytes is the current cost of the cached entries: for each, the
	// capacity of its value, the length of its key and EntryOverhead.
	// It never exceeds MaxBytes.
	Bytes int64
	// MaxBytes is the configured bound.
	MaxBytes int64
	// Entries is the number of cached entries.
	Entries int
	// Evictions counts entries removed to make room.
	Evictions uint64
	// Streams is the number of read-ahead streams tracked.
	Streams int
	// PrefetchIssued counts prefetches queued for a worker.
	PrefetchIssued uint64
	// PrefetchUsed counts prefetched blocks that a Get used, before or
	// while they arrived (each block at most once).
	PrefetchUsed uint64
	// PrefetchLate counts the part of PrefetchUsed whose Get had to wait
	// for the prefetch to finish.
	PrefetchLate uint64
	// PrefetchWasted counts prefetched blocks dropped unread: evicted
	// before any Get, or too large to cache.
	PrefetchWasted uint64
	// PrefetchDropped counts Prefetch calls skipped because the queue was
	// full.
	PrefetchDropped uint64
}

// HitRatio is Hits / (Hits + Misses), or 0 before the first Get.
func (s Stats) HitRatio() float64 {
	if n := s.Hits + s.Misses; n > 0 {
		return float64(s.Hits) / float64(n)
	}
	return 0
}

// entry is one cached value.
type entry struct {
	val  []byte
	cost int64
	// stream is the stream whose prefetch loaded the value, nil if a Get
	// loaded it; used records whether a Get has used it since.
	stream *Stream
	used   bool
}

// flight is one fetch in progress, shared by every Get of its key.
type flight struct {
	key   string
	fetch FetchFunc
	ctx   context.Context
	stop  context.CancelFunc
	done  chan struct{} // closed once val and err are set

	// Guarded by Cache.mu.
	waiters   int     // Gets waiting on done
	stream    *Stream // non-nil for a prefetch
	prefetch  bool    // started by Prefetch: not cancelled when waiters leave
	claimed   bool    // a Get joined this prefetch
	abandoned bool    // every waiter left: cancelled, result not cached

	// Written before done is closed.
	val []byte
	err error
}

// Cache is a byte-bounded LRU cache of blocks with request coalescing and
// read-ahead. All methods are safe for concurrent use.
type Cache struct {
	maxBytes  int64
	maxWindow int
	log       *slog.Logger

	ctx    context.Context // cancelled by Close; parent of every fetch
	cancel context.CancelFunc
	queue  chan *flight // prefetches waiting for a worker
	wg     sync.WaitGroup
	once   sync.Once

	mu      sync.Mutex
	closed  bool
	lru     *simplelru.LRU[string, *entry]
	streams *simplelru.LRU[string, *Stream]
	flights map[string]*flight
	bytes   int64
	st      Stats // counters only; gauges are filled in by Stats
}

// New returns a Cache with cfg's bounds and starts its prefetch workers.
// Close stops them.
func New(cfg Config) *Cache {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.PrefetchWorkers <= 0 {
		cfg.PrefetchWorkers = DefaultPrefetchWorkers
	}
	if cfg.MaxWindow <= 0 {
		cfg.MaxWindow = DefaultMaxWindow
	}
	if cfg.PrefetchQueue <= 0 {
		cfg.PrefetchQueue = 4 * cfg.PrefetchWorkers * cfg.MaxWindow
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// The entry count is unbounded: bytes are the bound, enforced by
	// evictLocked. Sizes are positive, so NewLRU cannot fail.
	lru, err := simplelru.NewLRU[string, *entry](math.MaxInt, nil)
	if err != nil {
		panic(err)
	}
	streams, err := simplelru.NewLRU[string, *Stream](cfg.MaxStreams, nil)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		maxBytes:  cfg.MaxBytes,
		maxWindow: cfg.MaxWindow,
		log:       cfg.Logger.With("component", "cache"),
		ctx:       ctx,
		cancel:    cancel,
		queue:     make(chan *flight, cfg.PrefetchQueue),
		lru:       lru,
		streams:   streams,
		flights:   make(map[string]*flight),
	}
	c.wg.Add(cfg.PrefetchWorkers)
	for range cfg.PrefetchWorkers {
		go c.worker()
	}
	return c
}

// Get returns the value cached under key or, on a miss, loads it with fetch
// and caches it. The returned slice is shared with the cache and with other
// callers: treat it as read-only.
//
// Concurrent Gets of one key, and a Prefetch of it in flight, share a single
// fetch; its error is returned to every waiter and is not cached, so the
// next Get fetches again. The fetch runs on a goroutine owned by the Cache
// with a context that Close cancels, not with the caller's: a caller whose
// ctx ends stops waiting and gets ctx's error, while the fetch goes on for
// the remaining waiters. When the last waiter of a Get-started fetch leaves,
// the fetch is cancelled and its result discarded (a prefetch is never
// cancelled this way). A value whose cost exceeds MaxBytes is returned but
// not cached. After Close, misses fail with ErrClosed.
func (c *Cache) Get(ctx context.Context, key string, fetch FetchFunc) ([]byte, error) {
	c.mu.Lock()
	if e, ok := c.lru.Get(key); ok {
		c.st.Hits++
		if e.stream != nil && !e.used {
			e.used = true
			c.st.PrefetchUsed++
			c.grow(e.stream)
		}
		c.mu.Unlock()
		return e.val, nil
	}
	c.st.Misses++
	f, ok := c.flights[key]
	if ok {
		c.st.Coalesced++
		if f.prefetch && !f.claimed {
			f.claimed = true
			c.st.PrefetchUsed++
			c.st.PrefetchLate++
			c.grow(f.stream)
		}
	} else {
		var err error
		switch {
		case c.closed:
			err = ErrClosed
		case fetch == nil:
			err = errors.New("cache: Get of an uncached key without a fetch function")
		default:
			err = ctx.Err()
		}
		if err != nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("cache: get %q: %w", key, err)
		}
		f = c.newFlight(key, fetch)
		c.st.Fetches++
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.run(f)
		}()
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	select {
	case <-f.done:
		// Finished while we took the lock: take the result after all.
		c.mu.Unlock()
		return f.val, f.err
	default:
	}
	f.waiters--
	if f.waiters == 0 && !f.prefetch && !f.abandoned {
		f.abandoned = true
		if c.flights[key] == f {
			delete(c.flights, key)
		}
		f.stop()
	}
	c.mu.Unlock()
	return nil, fmt.Errorf("cache: get %q: %w", key, ctx.Err())
}

// Prefetch loads key in the background on behalf of stream (which may be
// nil: no read-ahead accounting), unless it is cached, already being
// fetched, or the prefetch queue is full (counted in PrefetchDropped). It
// never blocks. The fetch runs on one of the Cache's workers with a context
// that Close cancels; its result is cached marked "prefetched by stream,
// unused" until a Get uses it. Fetch errors are logged and not cached.
// A cached key is moved to the front of the LRU, since it is about to be
// read. It reports whether fetch was queued (and so will run).
func (c *Cache) Prefetch(stream *Stream, key string, fetch FetchFunc) bool {
	if fetch == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	if _, ok := c.lru.Get(key); ok {
		return false
	}
	if _, ok := c.flights[key]; ok {
		return false
	}
	f := c.newFlight(key, fetch)
	f.prefetch = true
	f.stream = stream
	select {
	case c.queue <- f:
		c.st.PrefetchIssued++
		return true
	default:
		delete(c.flights, key)
		f.stop()
		c.st.PrefetchDropped++
		return false
	}
}

// Contains reports whether key is cached or being fetched (it does not
// count as a use and does not touch the LRU order).
func (c *Cache) Contains(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru.Contains(key) {
		return true
	}
	_, ok := c.flights[key]
	return ok
}

// Add caches val under key as prefetched by stream (which may be nil) and
// not yet used, as if Prefetch had loaded it: a fetch that brings several
// blocks at once (one ranged GET for a run of blocks) adds the others with
// it. A key already cached or being fetched keeps its value. The slice is
// kept: the caller must not modify it afterwards.
func (c *Cache) Add(stream *Stream, key string, val []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.lru.Contains(key) {
		return
	}
	if _, ok := c.flights[key]; ok {
		return
	}
	c.st.PrefetchIssued++
	c.insertLocked(&flight{key: key, prefetch: true, stream: stream}, val)
}

// Stream returns the read-ahead state of the sequential reader id (for
// example group, topic and queue), creating it with a window of 1 if it is
// not tracked. Only the MaxStreams most recently requested streams are
// tracked; a forgotten one starts afresh.
func (c *Cache) Stream(id string) *Stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.streams.Get(id); ok {
		return s
	}
	s := &Stream{id: id}
	s.window.Store(1)
	c.streams.Add(id, s)
	return s
}

// Stats returns a snapshot of the counters and current sizes.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.st
	s.Bytes = c.bytes
	s.MaxBytes = c.maxBytes
	s.Entries = c.lru.Len()
	s.Streams = c.streams.Len()
	return s
}

// Close cancels every fetch the Cache started, stops the prefetch workers,
// waits for all of them to return, and empties the cache. Waiters of an
// interrupted fetch get its error (usually context.Canceled) or ErrClosed.
// A FetchFunc that ignores its context delays Close until it returns.
// Close is idempotent.
func (c *Cache) Close() {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		close(c.queue) // no sends after closed is set (see Prefetch)
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.mu.Lock()
		c.lru.Purge()
		c.bytes = 0
		c.mu.Unlock()
	})
}

// worker runs queued prefetches until Close closes the queue. Prefetches
// still queued at Close finish with ErrClosed without fetching.
func (c *Cache) worker() {
	defer c.wg.Done()
	for f := range c.queue {
		if c.ctx.Err() != nil {
			c.finish(f, nil, ErrClosed)
			continue
		}
		c.mu.Lock()
		c.st.Fetches++
		c.mu.Unlock()
		c.run(f)
	}
}

func (c *Cache) newFlight(key string, fetch FetchFunc) *flight {
	ctx, stop := context.WithCancel(c.ctx)
	f := &flight{key: key, fetch: fetch, ctx: ctx, stop: stop, done: make(chan struct{})}
	c.flights[key] = f
	return f
}

// run calls f's fetch and publishes the result.
func (c *Cache) run(f *flight) {
	val, err := c.call(f)
	c.finish(f, val, err)
}

// call calls f's fetch, turning a panic into an error.
func (c *Cache) call(f *flight) (val []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("fetch panicked", "key", f.key, "panic", r, "stack", string(debug.Stack()))
			val, err = nil, fmt.Errorf("cache: fetch of %q panicked: %v", f.key, r)
		}
	}()
	val, err = f.fetch(f.ctx)
	if err != nil {
		err = fmt.Errorf("cache: fetch %q: %w", f.key, err)
	}
	return val, err
}

// finish records f's result, caches a value, and wakes f's waiters.
func (c *Cache) finish(f *flight, val []byte, err error) {
	f.stop()
	c.mu.Lock()
	f.val, f.err = val, err
	if c.flights[f.key] == f {
		delete(c.flights, f.key)
	}
	switch {
	case err != nil:
		if !errors.Is(err, ErrClosed) {
			c.st.FetchErrors++
		}
		if f.prefetch && c.ctx.Err() == nil {
			c.log.Debug("prefetch failed", "key", f.key, "err", err)
		}
	case f.abandoned || c.closed:
	default:
		c.insertLocked(f, val)
	}
	c.mu.Unlock()
	close(f.done)
}

// insertLocked caches val under f.key and evicts down to the byte bound.
func (c *Cache) insertLocked(f *flight, val []byte) {
	unread := f.prefetch && !f.claimed
	cost := int64(cap(val)) + int64(len(f.key)) + EntryOverhead
	if cost > c.maxBytes {
		if unread {
			c.wastedLocked(f.stream)
		}
		return
	}
	if c.lru.Contains(f.key) {
		// Cannot happen while every insert goes through a flight, but
		// keep the accounting right if it does: the older value stays.
		return
	}
	e := &entry{val: val, cost: cost}
	if f.prefetch {
		e.stream, e.used = f.stream, f.claimed
	}
	c.lru.Add(f.key, e)
	c.bytes += cost
	for c.bytes > c.maxBytes {
		_, old, ok := c.lru.RemoveOldest()
		if !ok {
			break
		}
		c.bytes -= old.cost
		c.st.Evictions++
		if old.stream != nil && !old.used {
			c.wastedLocked(old.stream)
		}
	}
}

// wastedLocked records a prefetch of s dropped unread (s may be nil).
func (c *Cache) wastedLocked(s *Stream) {
	c.st.PrefetchWasted++
	if s != nil {
		s.shrink()
	}
}

// grow widens s's window after one of its prefetches was used. Callers hold
// c.mu, which serialises every window update.
func (c *Cache) grow(s *Stream) {
	if s == nil {
		return
	}
	w := min(2*s.window.Load(), int64(c.maxWindow))
	s.window.Store(w)
}

// Stream is the read-ahead state of one sequential reader. Get it from
// Cache.Stream and pass it to Cache.Prefetch.
type Stream struct {
	id     string
	window atomic.Int64 // stored under Cache.mu, loaded without it
}

// ID returns the id the stream was created with.
func (s *Stream) ID() string { return s.id }

// Window returns how many blocks past the one just read the reader should
// prefetch: between 1 and Config.MaxWindow.
func (s *Stream) Window() int { return int(s.window.Load()) }

// shrink halves the window, down to 1. Callers hold Cache.mu.
func (s *Stream) shrink() {
	s.window.Store(max(s.window.Load()/2, 1))
}
