package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// Errors returned by the store.
var (
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrFlushTimeout: Append stored the messages (they have offsets) but
	// they were not durable within FlushTimeout or the caller's deadline.
	// The broker answers FLUSH_DISK_TIMEOUT.
	ErrFlushTimeout = errors.New("store: flush to disk timed out; stored, durability unknown")
	// ErrDiskFull: no space for a new segment; nothing of the failed append
	// was stored. Appends work again once space returns.
	ErrDiskFull = errors.New("store: disk full")
	// ErrFailed: a write or fdatasync failed; the store refuses appends until
	// it is reopened (recovery decides what is durable).
	ErrFailed = errors.New("store: failed after an I/O error; reopen to recover")
	// ErrInvalidMessage: the message cannot be stored (empty or too long
	// topic, bad queue id, oversized properties).
	ErrInvalidMessage = errors.New("store: invalid message")
	// ErrMessageTooLarge: the message or batch exceeds MaxMessageSize.
	ErrMessageTooLarge = errors.New("store: message too large")
	// ErrCorrupt: stored bytes failed their checksum or structure check.
	ErrCorrupt = errors.New("store: corrupt data")
	// ErrNotFound: no record at that log offset.
	ErrNotFound = errors.New("store: not found")
)

// MaxQueueID bounds queue ids (exclusive).
const MaxQueueID = 1 << 16

// Stats are cumulative counters of the write path.
type Stats struct {
	Messages  int64 // messages appended
	Bytes     int64 // bytes appended (records and trailers)
	Writes    int64 // write syscalls to segments
	Syncs     int64 // fdatasync calls on segments
	Commits   int64 // group commits (flush cycles that wrote data)
	DirectIO  bool  // segments are written with O_DIRECT
	FlushedTo int64 // durable (sync) or written (async) log end
	// WriteTime and SyncTime are the total time spent in segment writes and
	// fdatasync calls.
	WriteTime, SyncTime time.Duration
	// Prewritten is the bytes of zeros written ahead of the log end (see
	// Config.PrewriteAhead).
	Prewritten int64
	// TailReads and FileReads count the record reads of queue reads served
	// from the tail cache and from segment files.
	TailReads, FileReads int64
}

// Store is the hot tier: a commit log of preallocated segments shared by
// all topics, a consume queue per topic/queue, a key index and a checkpoint.
// All methods are safe for concurrent use.
type Store struct {
	cfg    Config
	log    *slog.Logger
	logDir string
	cqDir  string
	align  int
	direct bool       // segments use O_DIRECT (set at Open)
	pw     *prewriter // nil without direct I/O or when disabled
	tail   *tailCache // nil when disabled
	// recovering is set while recover runs (one goroutine, before the
	// store is shared): queues then start where the log says, not at
	// Config.QueueStart.
	recovering bool

	// Write state, guarded by mu.
	mu      sync.Mutex
	active  *segment
	wpos    int64 // position in active of the next record
	cur     *wbuf
	pending []*wbuf
	ep      *epoch
	lastTs  int64
	werr    error
	closed  bool

	free chan *wbuf
	kick chan struct{}
	quit chan struct{}
	wg   sync.WaitGroup

	segMu sync.RWMutex
	segs  []*segment // ascending by base

	qmu    sync.RWMutex
	topics map[string]*topicQueues

	flushed    atomic.Int64 // log end that is durable (sync) / written (async)
	synced     atomic.Int64 // log end known to be fdatasynced
	dispatched atomic.Int64 // log end whose records are in consume queues
	minLog     atomic.Int64 // first log offset still held

	idx *keyIndex

	commits chan *commit // writeLoop -> syncLoop
	scratch []byte       // writeLoop-owned
	iov     [][]byte     // writeLoop-owned
	touched []*queue     // syncLoop-owned
	// keys gathers the key-index entries of the records being dispatched
	// (syncLoop-owned); complete hands them to indexLoop through idxCh,
	// off the commit path: an index put writes a random page of a mapped
	// file and may fault.
	keys  []keyEntry
	idxCh chan keyBatch
	// indexed is the log end whose keys are in the index.
	indexed atomic.Int64
	idxMu   sync.Mutex
	idxCond sync.Cond // broadcast when indexed moves
	// Key-index failures pause indexing briefly (owned by whoever indexes:
	// recovery, then indexLoop).
	idxPaused  bool
	idxRetryAt time.Time

	// endCh is closed when the log end moves, if WaitLogEnd made one.
	endMu sync.Mutex
	endCh chan struct{}

	ckptMu   sync.Mutex
	ckptDone int64 // log offset of the last checkpoint

	stats struct {
		messages, bytes, writes, syncs, commits atomic.Int64
		tailReads, fileReads                    atomic.Int64
		writeNanos, syncNanos                   atomic.Int64
	}
}

type topicQueues struct {
	name   string
	queues []*queue
}

type queue struct {
	topic *topicQueues
	id    int32
	cq    *consumeQueue
	next  int64 // next offset to assign, guarded by Store.mu
	mark  bool  // flusher scratch: already in touched
}

// wbuf is an aligned write buffer holding the bytes of seg from file
// position start.
type wbuf struct {
	seg      *segment
	data     []byte
	start    int64 // aligned file position of data[0]
	n        int   // bytes filled (guarded by Store.mu while it is cur)
	flushedN int   // bytes [0, flushedN) written to the file (writeLoop-owned)
	dispFrom int   // bytes [dispFrom, n) not yet dispatched (syncLoop-owned)
	seal     bool  // ends with the segment's marker
}

func (b *wbuf) reset(seg *segment, start int64) {
	b.seg, b.start, b.n, b.flushedN, b.dispFrom, b.seal = seg, start, 0, 0, 0, false
}

// epoch is one group commit: every append encoded before the flusher took
// it waits for done and then reads err.
type epoch struct {
	done chan struct{}
	err  error
}

func newEpoch() *epoch { return &epoch{done: make(chan struct{})} }

// Open opens or creates the store in cfg.Dir and recovers it: it scans the
// commit log from the last checkpoint, truncates a torn tail and rebuilds
// consume-queue and index entries past the checkpoint.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Store{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "store"),
		logDir: filepath.Join(cfg.Dir, logDirName),
		cqDir:  filepath.Join(cfg.Dir, "consumequeue"),
		topics: make(map[string]*topicQueues),
		kick:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		ep:     newEpoch(),
	}
	s.idxCond.L = &s.idxMu
	for _, d := range []string{s.logDir, s.cqDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	idx, err := openKeyIndex(filepath.Join(cfg.Dir, "index"), cfg.IndexSlots, cfg.IndexEntries, s.log)
	if err != nil {
		return nil, fmt.Errorf("store: open index: %w", err)
	}
	s.idx = idx
	if err := s.recover(ctx); err != nil {
		s.closeFiles()
		return nil, err
	}
	s.scratch = alignedBuffer(s.align, s.align)
	s.free = make(chan *wbuf, cfg.WriteBuffers)
	for i := 1; i < cfg.WriteBuffers; i++ {
		s.free <- &wbuf{data: alignedBuffer(cfg.WriteBufferSize, s.align)}
	}
	mode := "direct"
	if !s.active.direct {
		mode = "buffered+fdatasync"
		if !cfg.DisableDirectIO {
			s.log.Warn("filesystem refuses O_DIRECT; using buffered I/O with fdatasync", "dir", s.logDir)
		}
	}
	s.log.Info("store open", "dir", cfg.Dir, "io", mode, "align", s.align, "flush", cfg.Flush.String(),
		"log_start", s.minLog.Load(), "log_end", s.flushed.Load())
	if s.active.direct && cfg.PrewriteAhead > 0 {
		chunk := min(2<<20, max(maxAlign, alignUp64(cfg.SegmentSize/16, maxAlign)), cfg.PrewriteAhead)
		s.pw = newPrewriter(s.log, cfg.PrewriteAhead, chunk, chunk)
	}
	if cfg.TailCacheSize > 0 {
		s.tail = newTailCache(cfg.TailCacheSize)
	}
	s.commits = make(chan *commit)
	s.idxCh = make(chan keyBatch, 64)
	s.wg.Add(4)
	go s.writeLoop()
	go s.syncLoop()
	go s.indexLoop()
	go s.housekeepLoop()
	return s, nil
}

// Close flushes everything pending, writes a checkpoint (so the next Open
// rescans nothing) and releases all files. It waits for the store's
// goroutines to stop.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	s.wg.Wait()
	if s.pw != nil {
		s.pw.stop()
	}
	var err error
	if s.werr == nil {
		err = s.checkpointAt(time.Now(), true)
	}
	if e := s.closeFiles(); err == nil {
		err = e
	}
	return err
}

func (s *Store) closeFiles() error {
	var err error
	s.segMu.Lock()
	for _, sg := range s.segs {
		if e := sg.close(); err == nil {
			err = e
		}
	}
	s.segs = nil
	s.segMu.Unlock()
	s.qmu.Lock()
	for _, t := range s.topics {
		for _, q := range t.queues {
			if q != nil {
				if e := q.cq.close(); err == nil {
					err = e
				}
			}
		}
	}
	s.qmu.Unlock()
	if s.idx != nil {
		if e := s.idx.close(); err == nil {
			err = e
		}
	}
	return err
}

// SetStoreHost changes the STOREHOST written into records from now on (a
// broker learns its port only when it binds).
func (s *Store) SetStoreHost(ap netip.AddrPort) {
	s.mu.Lock()
	s.cfg.StoreHost = ap
	s.mu.Unlock()
}

// Stats returns the write-path counters.
func (s *Store) Stats() Stats {
	st := Stats{
		Messages:  s.stats.messages.Load(),
		Bytes:     s.stats.bytes.Load(),
		Writes:    s.stats.writes.Load(),
		Syncs:     s.stats.syncs.Load(),
		Commits:   s.stats.commits.Load(),
		DirectIO:  s.direct,
		FlushedTo: s.flushed.Load(),
		WriteTime: time.Duration(s.stats.writeNanos.Load()),
		SyncTime:  time.Duration(s.stats.syncNanos.Load()),
		TailReads: s.stats.tailReads.Load(),
		FileReads: s.stats.fileReads.Load(),
	}
	if s.pw != nil {
		st.Prewritten = s.pw.bytes.Load()
	}
	return st
}

func (s *Store) validate(m *remoting.MessageExt) error {
	switch {
	case m.Topic == "":
		return fmt.Errorf("%w: empty topic", ErrInvalidMessage)
	case m.QueueID < 0 || m.QueueID >= MaxQueueID:
		return fmt.Errorf("%w: queue id %d outside [0, %d)", ErrInvalidMessage, m.QueueID, MaxQueueID)
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if sz := m.Size(); sz > s.cfg.MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, sz, s.cfg.MaxMessageSize)
	}
	return nil
}

// Append stores msgs atomically (all or none get offsets) and, under
// FlushSync, returns once they are durable. Each message's QueueOffset,
// PhysicalOffset, StoreTimestamp and StoreHost are filled in. The batch's
// total size is bounded by MaxMessageSize. On ErrFlushTimeout the messages
// are stored and their fields are valid.
func (s *Store) Append(ctx context.Context, msgs []remoting.MessageExt) error {
	if len(msgs) == 0 {
		return nil
	}
	total := 0
	for i := range msgs {
		if err := s.validate(&msgs[i]); err != nil {
			return err
		}
		total += msgs[i].Size() + recordOverhead
	}
	if total > s.cfg.MaxMessageSize+recordOverhead {
		return fmt.Errorf("%w: batch of %d bytes, limit %d", ErrMessageTooLarge, total, s.cfg.MaxMessageSize)
	}
	var qbuf [4]*queue
	qs := qbuf[:0]
	if len(msgs) > len(qbuf) {
		qs = make([]*queue, 0, len(msgs))
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	for i := range msgs {
		q, err := s.queueLocked(msgs[i].Topic, msgs[i].QueueID)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		qs = append(qs, q)
	}
	var spare *wbuf
	for {
		if s.closed {
			s.mu.Unlock()
			s.putFree(spare)
			return ErrClosed
		}
		if s.werr != nil {
			err := s.werr
			s.mu.Unlock()
			s.putFree(spare)
			return fmt.Errorf("%w: %w", ErrFailed, err)
		}
		needSeg := s.wpos+int64(total)+markerSize > s.active.size
		if !needSeg && s.cur.n+total+markerSize <= len(s.cur.data) {
			break
		}
		if spare == nil {
			b, waited, err := s.takeFreeLocked(ctx)
			if err != nil {
				s.mu.Unlock()
				return err
			}
			spare = b
			if waited {
				continue // s.mu was released: look again
			}
		}
		if needSeg {
			if err := s.rollLocked(spare); err != nil {
				s.mu.Unlock()
				s.putFree(spare)
				return err
			}
		} else {
			s.swapLocked(spare)
		}
		spare = nil
	}

	ts := time.Now().UnixMilli()
	if ts < s.lastTs {
		ts = s.lastTs
	}
	s.lastTs = ts
	b := s.cur
	for i := range msgs {
		m := &msgs[i]
		q := qs[i]
		m.QueueOffset = q.next
		q.next++
		m.PhysicalOffset = s.active.base + s.wpos
		m.StoreTimestamp = ts
		m.StoreHost = s.cfg.StoreHost
		dst := b.data[b.n:]
		n := m.Encode(dst)
		binary.BigEndian.PutUint32(dst[n:], crc32.Checksum(dst[:n], castagnoli))
		b.n += n + recordOverhead
		s.wpos += int64(n + recordOverhead)
	}
	ep := s.ep
	s.mu.Unlock()
	s.putFree(spare)
	s.stats.messages.Add(int64(len(msgs)))
	s.stats.bytes.Add(int64(total))

	select {
	case s.kick <- struct{}{}:
	default:
	}
	return s.wait(ctx, ep)
}

func (s *Store) wait(ctx context.Context, ep *epoch) error {
	select {
	case <-ep.done:
		return ep.err
	default:
	}
	var timeout <-chan time.Time
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > s.cfg.FlushTimeout {
		t := timerPool.Get().(*time.Timer)
		t.Reset(s.cfg.FlushTimeout)
		defer func() { t.Stop(); timerPool.Put(t) }()
		timeout = t.C
	}
	select {
	case <-ep.done:
		return ep.err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrFlushTimeout, ctx.Err())
	case <-timeout:
		return fmt.Errorf("%w: after %v", ErrFlushTimeout, s.cfg.FlushTimeout)
	}
}

// timerPool saves a timer allocation per durable append. Since Go 1.23 a
// stopped timer's channel holds no stale value, so reuse is safe.
var timerPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// takeFreeLocked takes a free write buffer. If none is free it waits with
// s.mu released, and reports that it did; s.mu is held again on return.
func (s *Store) takeFreeLocked(ctx context.Context) (b *wbuf, waited bool, err error) {
	select {
	case b = <-s.free:
		return b, false, nil
	default:
	}
	s.mu.Unlock()
	defer s.mu.Lock()
	select {
	case b = <-s.free:
		return b, true, nil
	case <-ctx.Done():
		return nil, true, fmt.Errorf("store: waiting for a write buffer: %w", ctx.Err())
	case <-s.quit:
		return nil, true, ErrClosed
	}
}

func (s *Store) putFree(b *wbuf) {
	if b != nil {
		s.free <- b
	}
}

// queueLocked returns the queue for topic/id, creating it. s.mu is held.
func (s *Store) queueLocked(topic string, id int32) (*queue, error) {
	s.qmu.RLock()
	t := s.topics[topic]
	var q *queue
	if t != nil && int(id) < len(t.queues) {
		q = t.queues[id]
	}
	s.qmu.RUnlock()
	if q != nil {
		return q, nil
	}
	return s.createQueue(topic, id)
}

// EnsureQueue creates topic/queueID if the store does not hold it yet
// (starting at QueueStart's offset), so that the queue's start is recorded
// on local disk: a broker rebuilt from the cold tier creates every queue the
// tier knows, and later starts never depend on the tier to number them.
func (s *Store) EnsureQueue(topic string, queueID int32) error {
	if queueID < 0 || queueID >= MaxQueueID {
		return fmt.Errorf("%w: queue id %d", ErrInvalidMessage, queueID)
	}
	if s.lookupQueue(topic, queueID) != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.queueLocked(topic, queueID)
	return err
}

func (s *Store) createQueue(topic string, id int32) (*queue, error) {
	if err := checkTopicPath(topic); err != nil {
		return nil, err
	}
	cq, err := openConsumeQueue(filepath.Join(s.cqDir, topic, fmt.Sprint(id)), topic, id, int64(s.cfg.QueueFileEntries))
	if err != nil {
		return nil, fmt.Errorf("store: open consume queue %s/%d: %w", topic, id, err)
	}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	t := s.topics[topic]
	if t == nil {
		t = &topicQueues{name: topic}
		s.topics[topic] = t
	}
	for int(id) >= len(t.queues) {
		t.queues = append(t.queues, nil)
	}
	if q := t.queues[id]; q != nil { // lost a race with recovery or another creator
		cq.close()
		return q, nil
	}
	if cq.count == 0 && s.cfg.QueueStart != nil && !s.recovering {
		if n := s.cfg.QueueStart(topic, id); n > 0 {
			if err := cq.rebase(n); err != nil {
				cq.close()
				return nil, fmt.Errorf("store: start consume queue %s/%d at %d: %w", topic, id, n, err)
			}
		}
	}
	q := &queue{topic: t, id: id, cq: cq, next: cq.count}
	t.queues[id] = q
	return q, nil
}

// checkTopicPath refuses topic names that would escape the consume-queue
// directory. The broker applies RocketMQ's stricter name rules before this.
func checkTopicPath(topic string) error {
	if topic == "." || topic == ".." || len(topic) > remoting.MaxTopicLen {
		return fmt.Errorf("%w: topic %q", ErrInvalidMessage, topic)
	}
	for i := 0; i < len(topic); i++ {
		if c := topic[i]; c == '/' || c == '\\' || c == 0 {
			return fmt.Errorf("%w: topic %q contains %q", ErrInvalidMessage, topic, c)
		}
	}
	return nil
}

// lookupQueue returns the queue or nil.
func (s *Store) lookupQueue(topic string, id int32) *queue {
	s.qmu.RLock()
	defer s.qmu.RUnlock()
	t := s.topics[topic]
	if t == nil || id < 0 || int(id) >= len(t.queues) {
		return nil
	}
	return t.queues[id]
}

func alignDown(x, a int) int { return x &^ (a - 1) }
func alignUp(x, a int) int   { return (x + a - 1) &^ (a - 1) }

func alignUp64(x int64, a int) int64 { return (x + int64(a) - 1) &^ int64(a-1) }

// swapLocked retires the full current buffer to pending and continues in
// spare, carrying the partial last block so it is rewritten whole.
func (s *Store) swapLocked(spare *wbuf) {
	old := s.cur
	a := alignDown(old.n, s.align)
	spare.reset(old.seg, old.start+int64(a))
	spare.n = copy(spare.data, old.data[a:old.n])
	spare.dispFrom = spare.n
	s.pending = append(s.pending, old)
	s.cur = spare
}

// rollLocked seals the active segment with a marker and continues in a new
// segment, written through spare.
func (s *Store) rollLocked(spare *wbuf) error {
	base := s.active.base + s.active.size
	seg, err := createSegment(s.logDir, base, s.cfg.SegmentSize, !s.cfg.DisableDirectIO)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			s.log.Error("cannot create segment: disk full", "base", base, "err", err)
			return fmt.Errorf("%w: %w", ErrDiskFull, err)
		}
		return fmt.Errorf("store: %w", err)
	}
	s.sealActiveLocked()
	spare.reset(seg, 0)
	s.cur = spare
	s.segMu.Lock()
	s.segs = append(s.segs, seg)
	s.segMu.Unlock()
	s.active = seg
	s.wpos = 0
	return nil
}

// sealActiveLocked writes the marker that ends the active segment into the
// current buffer and retires the buffer. The caller installs a new cur.
func (s *Store) sealActiveLocked() {
	putMarker(s.cur.data[s.cur.n:], s.active.size-s.wpos)
	s.cur.n += markerSize
	s.cur.seal = true
	s.pending = append(s.pending, s.cur)
	s.cur = nil
	s.wpos = s.active.size
}

// dispatchBuf adds consume-queue and index entries for the records in
// b.data[dispFrom:n].
func (s *Store) dispatchBuf(b *wbuf, n int) {
	base := b.seg.base + b.start
	for p := b.dispFrom; p < n; {
		rec := b.data[p:n]
		if binary.BigEndian.Uint32(rec[4:]) == remoting.BlankMagic {
			break
		}
		total := int(binary.BigEndian.Uint32(rec))
		s.dispatchRecord(rec[:total], base+int64(p))
		p += total + recordOverhead
	}
	b.dispFrom = n
}

// dispatchRecord adds the consume-queue and index entries of one record.
// Records come in log order, so each queue's entries come in offset order.
func (s *Store) dispatchRecord(rec []byte, off int64) {
	v, err := remoting.ParseRecordFields(rec)
	if err != nil {
		s.log.Error("dispatch: unparsable record", "offset", off, "err", err)
		return
	}
	s.qmu.RLock()
	t := s.topics[string(v.Topic)]
	var q *queue
	if t != nil && v.QueueID >= 0 && int(v.QueueID) < len(t.queues) {
		q = t.queues[v.QueueID]
	}
	s.qmu.RUnlock()
	if q == nil {
		s.log.Error("dispatch: record for unknown queue", "offset", off, "topic", string(v.Topic), "queue", v.QueueID)
		return
	}
	q.cq.append(Entry{LogOffset: off, Size: int32(len(rec)), TagHash: remoting.PropsTagHash(v.Properties)})
	remoting.ForEachKey(v.Properties, func(k []byte) {
		e := keyEntry{hash: keyIndexHash(t.name, k), off: off, ts: v.StoreTimestamp}
		if s.idxCh == nil { // recovery: index at once
			s.indexKeys([]keyEntry{e})
			return
		}
		s.keys = append(s.keys, e)
	})
	if !q.mark {
		q.mark = true
		s.touched = append(s.touched, q)
	}
}

// keyEntry is one key-index entry waiting for indexLoop.
type keyEntry struct {
	hash    uint32
	off, ts int64
}

// keyBatch is a commit's key-index entries; end is the commit's log end.
type keyBatch struct {
	keys []keyEntry
	end  int64
}

// publishKeys hands the keys gathered since the last call, up to log end,
// to indexLoop (syncLoop-owned).
func (s *Store) publishKeys(end int64) {
	b := keyBatch{keys: s.keys, end: end}
	s.keys = nil
	s.idxCh <- b
}

// indexLoop adds the published keys to the key index, in log order.
func (s *Store) indexLoop() {
	defer s.wg.Done()
	defer s.setIndexed(math.MaxInt64) // nobody waits for a closed store
	for b := range s.idxCh {
		s.indexKeys(b.keys)
		s.setIndexed(b.end)
	}
}

func (s *Store) setIndexed(end int64) {
	s.idxMu.Lock()
	s.indexed.Store(end)
	s.idxMu.Unlock()
	s.idxCond.Broadcast()
}

// indexKeys adds es to the key index.
func (s *Store) indexKeys(es []keyEntry) {
	if s.idxPaused && time.Now().After(s.idxRetryAt) {
		s.idxPaused = false
	}
	for _, e := range es {
		if s.idxPaused {
			return
		}
		if err := s.idx.addHash(e.hash, e.off, e.ts); err != nil {
			// Most likely a full disk: stop trying for a while rather
			// than fail (and log) once per key.
			s.idxPaused, s.idxRetryAt = true, time.Now().Add(time.Second)
			s.log.Warn("key index add failed; keys of messages stored in the next second are not indexed", "offset", e.off, "err", err)
		}
	}
}

// waitIndexed waits until the keys of the log below end are in the index.
func (s *Store) waitIndexed(end int64) {
	s.idxMu.Lock()
	for s.indexed.Load() < end {
		s.idxCond.Wait()
	}
	s.idxMu.Unlock()
}

func (s *Store) notifyTouched() {
	for _, q := range s.touched {
		q.mark = false
		if s.cfg.OnDispatch != nil {
			s.cfg.OnDispatch(q.topic.name, q.id, q.cq.maxOffset())
		}
	}
	clear(s.touched)
	s.touched = s.touched[:0]
}

// housekeepLoop checkpoints and seals aged segments.
func (s *Store) housekeepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			if err := s.checkpoint(); err != nil {
				s.log.Warn("checkpoint failed; will retry", "err", err)
			}
			if s.cfg.SegmentMaxAge > 0 {
				s.sealIfOld()
			}
			if _, err := s.applyRetention(); err != nil {
				s.log.Warn("retention failed; will retry", "err", err)
			}
		}
	}
}

// sealIfOld seals the active segment once it is older than SegmentMaxAge
// and holds data.
func (s *Store) sealIfOld() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.werr != nil || s.wpos == 0 || time.Since(s.active.created) < s.cfg.SegmentMaxAge {
		return
	}
	var spare *wbuf
	select {
	case spare = <-s.free:
	default:
		return // busy; try next tick
	}
	if err := s.rollLocked(spare); err != nil {
		s.free <- spare
		s.log.Warn("age seal failed", "err", err)
		return
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Seal seals the active segment now if it holds data (tests, tools).
func (s *Store) Seal() error {
	var spare *wbuf
	select {
	case spare = <-s.free:
	case <-s.quit:
		return ErrClosed
	}
	s.mu.Lock()
	if s.closed || s.werr != nil || s.wpos == 0 {
		s.mu.Unlock()
		s.free <- spare
		return nil
	}
	err := s.rollLocked(spare)
	ep := s.ep
	s.mu.Unlock()
	if err != nil {
		s.free <- spare
		return err
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return s.wait(context.Background(), ep)
}

// Segments lists the commit-log segments, oldest first.
func (s *Store) Segments() []SegmentInfo {
	s.segMu.RLock()
	defer s.segMu.RUnlock()
	out := make([]SegmentInfo, 0, len(s.segs))
	flushed := s.flushed.Load()
	for _, sg := range s.segs {
		end := sg.base + sg.size
		if !sg.sealed {
			end = min(end, flushed)
		}
		out = append(out, sg.info(end))
	}
	return out
}

// DeleteSegments deletes sealed segments from the oldest while canDelete
// approves them and their records are checkpointed (recovery never needs
// them). It returns how many it deleted. The tier passes a predicate that
// approves only segments whose object and manifest are durable.
func (s *Store) DeleteSegments(canDelete func(SegmentInfo) bool) (int, error) {
	s.ckptMu.Lock()
	ckpt := s.ckptDone
	s.ckptMu.Unlock()
	n := 0
	for {
		// The predicate runs without the segment lock: it may be slow (the
		// tier) or call back into the store.
		s.segMu.RLock()
		if len(s.segs) < 2 {
			s.segMu.RUnlock()
			break
		}
		sg := s.segs[0]
		info := sg.info(sg.base + sg.size)
		sealed := sg.sealed
		s.segMu.RUnlock()
		if !sealed || info.End > ckpt || !canDelete(info) {
			break
		}
		s.segMu.Lock()
		if len(s.segs) < 2 || s.segs[0] != sg {
			s.segMu.Unlock()
			continue // someone else deleted it
		}
		s.segs = s.segs[1:]
		s.minLog.Store(s.segs[0].base)
		s.segMu.Unlock()
		sg.close()
		if err := os.Remove(sg.path); err != nil {
			return n, fmt.Errorf("store: delete segment: %w", err)
		}
		n++
	}
	if n > 0 {
		minLog := s.minLog.Load()
		for _, q := range s.allQueues() {
			if err := q.cq.dropBefore(minLog); err != nil {
				return n, err
			}
		}
		if err := s.idx.dropBefore(minLog); err != nil {
			return n, err
		}
	}
	return n, nil
}

// applyRetention deletes the oldest sealed segments that RetentionBytes or
// RetentionAge no longer keep and CanDelete approves.
func (s *Store) applyRetention() (int, error) {
	if s.cfg.RetentionBytes <= 0 && s.cfg.RetentionAge <= 0 {
		return 0, nil
	}
	var total int64
	for _, sg := range s.Segments() {
		total += sg.Size
	}
	return s.DeleteSegments(func(info SegmentInfo) bool {
		over := (s.cfg.RetentionBytes > 0 && total > s.cfg.RetentionBytes) ||
			(s.cfg.RetentionAge > 0 && time.Since(info.SealedAt) > s.cfg.RetentionAge)
		if !over || (s.cfg.CanDelete != nil && !s.cfg.CanDelete(info)) {
			return false
		}
		total -= info.Size
		return true
	})
}

func (s *Store) allQueues() []*queue {
	s.qmu.RLock()
	defer s.qmu.RUnlock()
	var out []*queue
	for _, t := range s.topics {
		for _, q := range t.queues {
			if q != nil {
				out = append(out, q)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].topic.name != out[j].topic.name {
			return out[i].topic.name < out[j].topic.name
		}
		return out[i].id < out[j].id
	})
	return out
}

// segmentFor returns the segment holding log offset off. segMu is held.
func (s *Store) segmentForLocked(off int64) *segment {
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].base > off }) - 1
	if i < 0 {
		return nil
	}
	return s.segs[i]
}
