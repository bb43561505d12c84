package tier

// The manifest: the broker's record of what is in the cold tier.
//
// Layout under <root>/manifest/ (root is <prefix>/<cluster>/<broker>):
//
//	00000000000000000001.json            one entry object per offloaded segment,
//	00000000000000000002.json            named by its 20-digit manifest sequence,
//	…                                    created with PutIfAbsent, never rewritten
//	snapshot-00000000000000001000.json.gz   every entry up to sequence 1000, folded
//
// An entry object is one JSON document (see EncodeSegmentEntry). A snapshot is
// a gzip-compressed JSON document {"v":1,"seq":N,"entries":[…]} whose entries
// have the entry objects' own form. Snapshots are gzip-compressed because they
// fold hundreds of thousands of entries whose JSON repeats the same field names
// and topics: compression shrinks them several times, and the loader streams
// them (gzip → JSON decoder → index) without holding the document in memory.
//
// Loading. Entry names sort before snapshot names ("0"–"9" < "s"), so a
// listing that starts after an entry name yields the later entries first and
// then every snapshot. LoadManifest lists <root>/manifest/snapshot- (a handful
// of keys: Prune removes older snapshots), streams the newest snapshot, then
// makes one pass over List(<root>/manifest/, startAfter = name of the entry at
// the snapshot's sequence), fetching the later entries (concurrently) and
// applying them in order. Reload is that same single pass from the last
// sequence it holds; when another process has meanwhile written a snapshot
// and pruned the entries this one had not read, the pass sees the newer
// snapshot at its end and loads it instead.
//
// The loader never guesses: a corrupt entry or snapshot object, an entry
// whose content disagrees with its name, an entry that breaks log order, or a
// sequence missing between present ones (a lost write) makes loading fail
// with an error that wraps ErrManifestCorrupt and names the object. The
// broker must not silently lose history: an operator repairs the object (or
// removes it knowingly) instead. Objects under manifest/ with other names are
// ignored.

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"
)

// Limits of the manifest formats, checked before anything is allocated from
// untrusted sizes.
const (
	manifestVersion = 1
	// manifestMaxEntryBytes bounds one entry object.
	manifestMaxEntryBytes = 4 << 20
	// manifestMaxSnapshotJSON bounds a snapshot's decompressed size.
	manifestMaxSnapshotJSON = 4 << 30
	// manifestMaxKeyLen bounds a segment object key (S3's own limit).
	manifestMaxKeyLen = 1024
	// manifestMaxTopicLen bounds a topic name.
	manifestMaxTopicLen = 255
	// manifestMaxQueues bounds the queues of one segment.
	manifestMaxQueues = 1 << 16
	// manifestFetchConcurrency bounds concurrent GETs/DELETEs of entry objects.
	manifestFetchConcurrency = 16
	// manifestLoadAttempts: a load that races a Prune by another process
	// (an object listed, then deleted before it is read) starts over.
	manifestLoadAttempts = 3
)

var (
	// ErrManifestConflict is returned (wrapped) by Append when another
	// writer already owns the sequence it tried to create. The in-memory
	// view is unchanged; the caller must Reload before appending again, and
	// never overwrites the other writer's entry.
	ErrManifestConflict = errors.New("tier: manifest sequence taken by another writer")
	// ErrManifestCorrupt is returned (wrapped, with the object's key) when a
	// manifest object cannot be trusted: undecodable, inconsistent with its
	// name or with the entries before it, or missing between present ones.
	ErrManifestCorrupt = errors.New("tier: manifest corrupt")
	// ErrStaleEpoch is returned (wrapped) by Append for an entry whose leader
	// epoch is below that of the manifest's last entry: the caller has been
	// deposed by a newer leader and must stop offloading.
	ErrStaleEpoch = errors.New("tier: manifest entry from a stale leader epoch")
)

// SegmentEntry describes one offloaded segment object: one manifest entry.
type SegmentEntry struct {
	// Seq is the manifest sequence, assigned by Append (≥ 1).
	Seq int64
	// Key is the object key of the segment object.
	Key string
	// Base and End are the log offsets [Base, End) the segment covers.
	Base, End int64
	// Size is the object's size in bytes.
	Size int64
	// FooterCRC is the CRC32C of the object's footer: it verifies the
	// upload and detects a replaced object.
	FooterCRC uint32
	// Records is the number of message records in the segment.
	Records int64
	// MinTimestamp and MaxTimestamp are the range of the records' store
	// timestamps, in ms.
	MinTimestamp, MaxTimestamp int64
	// Epoch is the leader epoch of the writer.
	Epoch int64
	// Queues lists the consume-queue ranges the segment holds, one per
	// topic/queue (no duplicates).
	Queues []QueueRange
	// Created is when the entry was appended.
	Created time.Time
}

// QueueRange is the part of one consume queue that a segment holds.
type QueueRange struct {
	Topic   string
	QueueID int32
	// First and Next are the queue offsets [First, Next) in the segment.
	First, Next int64
	// MinTimestamp and MaxTimestamp are the store timestamps (ms) of the
	// queue's messages in the segment.
	MinTimestamp, MaxTimestamp int64
}

// Manifest is the in-memory view of a broker's cold-tier manifest, backed by
// its objects in an ObjectStore. It is safe for concurrent use: lookups run
// under a read lock and never wait for I/O; Append and Reload are
// serialized with each other.
//
// Lookups are binary searches: over the segments by log offset, and per
// queue over a compact sorted array of (first, next, segment) items. The
// entries lookups return share their Queues slices with the manifest: treat
// them as read-only.
//
// Memory: about 150 bytes per segment plus about 90 per queue range it
// holds (the range itself and its index item); topic strings are shared.
type Manifest struct {
	store  ObjectStore
	prefix string // "<root>/manifest/"
	log    *slog.Logger

	// writeMu serializes the operations that advance the state: Append and
	// Reload. It is held across their I/O; mu is not.
	writeMu sync.Mutex

	mu      sync.RWMutex
	st      *manifestState
	snapSeq int64 // newest snapshot known durable (written or loaded)
}

// manifestState is the index of a manifest's entries. Entries are appended,
// never modified in place, so views of entries[:n] stay valid.
type manifestState struct {
	entries []SegmentEntry
	maxTs   []int64 // maxTs[i]: max MaxTimestamp of entries[0..i]
	queues  map[manifestQueueKey]*manifestQueue
	lastSeq int64
}

type manifestQueueKey struct {
	topic string
	id    int32
}

// manifestQueue is one queue's sorted array of ranges. Empty ranges
// (First == Next) are checked for order but not indexed.
type manifestQueue struct {
	topic        string // the interned topic every entry of this queue shares
	id           int32
	items        []manifestQueueItem
	next         int64 // Next of the queue's last range: the next range starts at or after it
	seen         bool  // a range (possibly empty) has been added
	minTs, maxTs int64 // over the indexed ranges
}

// manifestQueueItem locates one range: entries[seg].Queues[qi].
type manifestQueueItem struct {
	first, next int64
	runMaxTs    int64 // max MaxTimestamp of this and every earlier item
	seg, qi     int32
}

func newManifestState() *manifestState {
	return &manifestState{queues: make(map[manifestQueueKey]*manifestQueue)}
}

// check reports whether e may follow the state's entries: log order (Base
// at or after the previous End; a gap is allowed) and, per queue, First at
// or after the queue's previous Next.
func (s *manifestState) check(e *SegmentEntry) error {
	if e.Seq <= s.lastSeq {
		return fmt.Errorf("sequence %d does not follow %d", e.Seq, s.lastSeq)
	}
	if len(s.entries) >= math.MaxInt32 {
		return errors.New("too many segments")
	}
	if n := len(s.entries); n > 0 && e.Base < s.entries[n-1].End {
		return fmt.Errorf("segment [%d, %d) overlaps the previous one [%d, %d)", e.Base, e.End, s.entries[n-1].Base, s.entries[n-1].End)
	}
	for _, qr := range e.Queues {
		if q := s.queues[manifestQueueKey{qr.Topic, qr.QueueID}]; q != nil && q.seen && qr.First < q.next {
			return fmt.Errorf("queue %s/%d: range [%d, %d) overlaps the previous one, which ends at %d", qr.Topic, qr.QueueID, qr.First, qr.Next, q.next)
		}
	}
	return nil
}

// add appends a checked entry. It interns e's topics (so the caller must
// own e.Queues) and takes ownership of e.
func (s *manifestState) add(e SegmentEntry) {
	seg := int32(len(s.entries))
	for i := range e.Queues {
		qr := &e.Queues[i]
		k := manifestQueueKey{qr.Topic, qr.QueueID}
		q := s.queues[k]
		if q == nil {
			q = &manifestQueue{topic: qr.Topic, id: qr.QueueID}
			s.queues[k] = q
		}
		qr.Topic = q.topic
		q.seen = true
		q.next = qr.Next
		if qr.Next == qr.First {
			continue
		}
		run := qr.MaxTimestamp
		if len(q.items) == 0 {
			q.minTs, q.maxTs = qr.MinTimestamp, qr.MaxTimestamp
		} else {
			run = max(run, q.items[len(q.items)-1].runMaxTs)
			q.minTs, q.maxTs = min(q.minTs, qr.MinTimestamp), max(q.maxTs, qr.MaxTimestamp)
		}
		q.items = append(q.items, manifestQueueItem{first: qr.First, next: qr.Next, runMaxTs: run, seg: seg, qi: int32(i)})
	}
	run := e.MaxTimestamp
	if n := len(s.maxTs); n > 0 {
		run = max(run, s.maxTs[n-1])
	}
	s.maxTs = append(s.maxTs, run)
	s.entries = append(s.entries, e)
	s.lastSeq = e.Seq
}

// LoadManifest loads the manifest under <root>/manifest/ from s: the newest
// snapshot plus the entries after it. No manifest at all is an empty
// manifest. It fails (wrapping ErrManifestCorrupt, naming the object) on a
// corrupt object or a missing sequence; see the package notes in
// manifest.go.
func LoadManifest(ctx context.Context, s ObjectStore, root string) (*Manifest, error) {
	if s == nil {
		return nil, errors.New("tier: load manifest: nil object store")
	}
	root = strings.TrimRight(root, "/")
	if root != "" {
		if err := checkObjectKey(root); err != nil {
			return nil, fmt.Errorf("tier: load manifest: root %q: %w", root, err)
		}
	}
	m := &Manifest{
		store:  s,
		prefix: "manifest/",
		log:    slog.Default().With("component", "tier-manifest"),
		st:     newManifestState(),
	}
	if root != "" {
		m.prefix = root + "/manifest/"
	}
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	err := m.retry(ctx, func() error {
		if m.LastSeq() == 0 {
			if err := m.loadNewestSnapshot(ctx); err != nil {
				return err
			}
		}
		return m.catchUp(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("tier: load manifest %s: %w", m.prefix, err)
	}
	return m, nil
}

// retry runs f again when it failed on an object that vanished between a
// listing and its read (a concurrent Prune).
func (m *Manifest) retry(ctx context.Context, f func() error) error {
	var err error
	for range manifestLoadAttempts {
		if err = f(); err == nil || !errors.Is(err, ErrNotFound) || ctx.Err() != nil {
			return err
		}
		m.log.Debug("manifest object vanished while loading; starting over", "err", err)
	}
	return err
}

// Reload picks up the entries (and snapshots) written by other processes
// since this view was loaded: one List from the last sequence it holds.
// Tier readers poll it; a writer calls it after ErrManifestConflict.
// Entries are applied in order; if one is corrupt, those before it stay
// applied and the error names the corrupt one.
func (m *Manifest) Reload(ctx context.Context) error {
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	if err := m.retry(ctx, func() error { return m.catchUp(ctx) }); err != nil {
		return fmt.Errorf("tier: reload manifest %s: %w", m.prefix, err)
	}
	return nil
}

// loadNewestSnapshot lists the snapshots and loads the newest, if any.
func (m *Manifest) loadNewestSnapshot(ctx context.Context) error {
	var newest int64
	for info, err := range m.store.List(ctx, m.prefix+"snapshot-", "") {
		if err != nil {
			return fmt.Errorf("list snapshots: %w", err)
		}
		if seq, ok := parseManifestSnapshotName(strings.TrimPrefix(info.Key, m.prefix)); ok {
			newest = max(newest, seq)
		}
	}
	if newest == 0 {
		return nil
	}
	st, err := m.readSnapshot(ctx, newest)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.st = st
	m.snapSeq = max(m.snapSeq, newest)
	m.mu.Unlock()
	return nil
}

// catchUp is one pass of List from the state's last sequence: it applies
// the entries after it, or, when some are missing but a newer snapshot
// covers them, loads that snapshot and the entries after it. Callers hold
// writeMu.
func (m *Manifest) catchUp(ctx context.Context) error {
	last := m.LastSeq()
	var seqs, snaps []int64
	for info, err := range m.store.List(ctx, m.prefix, m.prefix+manifestEntryName(last)) {
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		name := strings.TrimPrefix(info.Key, m.prefix)
		if seq, ok := parseManifestEntryName(name); ok {
			if seq > last {
				seqs = append(seqs, seq)
			}
		} else if seq, ok := parseManifestSnapshotName(name); ok {
			snaps = append(snaps, seq)
		} else {
			m.log.Debug("ignoring unexpected object in the manifest", "key", info.Key)
		}
	}
	slices.Sort(seqs) // the listing is sorted already; do not rely on it
	seqs = slices.Compact(seqs)
	contiguous := last
	i := 0
	for i < len(seqs) && seqs[i] == contiguous+1 {
		contiguous++
		i++
	}
	var newestSnap int64
	if len(snaps) > 0 {
		newestSnap = slices.Max(snaps)
	}
	if i == len(seqs) && newestSnap <= contiguous {
		if len(seqs) == 0 {
			return nil
		}
		entries, err := m.fetchEntries(ctx, seqs)
		if err != nil {
			return err
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, e := range entries {
			if err := m.st.check(&e); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrManifestCorrupt, m.prefix+manifestEntryName(e.Seq), err)
			}
			m.st.add(e)
		}
		return nil
	}
	if newestSnap <= contiguous {
		return fmt.Errorf("%w: entry %s is missing (a lost write) and no snapshot covers it; next present entry is %s",
			ErrManifestCorrupt, m.prefix+manifestEntryName(contiguous+1), m.prefix+manifestEntryName(seqs[i]))
	}
	// Entries this view has not read were pruned: start from the snapshot.
	st, err := m.readSnapshot(ctx, newestSnap)
	if err != nil {
		return err
	}
	var rest []int64
	for _, seq := range seqs {
		if seq > newestSnap {
			rest = append(rest, seq)
		}
	}
	for j, seq := range rest {
		if seq != newestSnap+int64(j)+1 {
			return fmt.Errorf("%w: entry %s is missing (a lost write); next present entry is %s",
				ErrManifestCorrupt, m.prefix+manifestEntryName(newestSnap+int64(j)+1), m.prefix+manifestEntryName(seq))
		}
	}
	entries, err := m.fetchEntries(ctx, rest)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := st.check(&e); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrManifestCorrupt, m.prefix+manifestEntryName(e.Seq), err)
		}
		st.add(e)
	}
	m.mu.Lock()
	m.st = st
	m.snapSeq = max(m.snapSeq, newestSnap)
	m.mu.Unlock()
	return nil
}

// fetchEntries reads and decodes the entry objects of seqs concurrently.
func (m *Manifest) fetchEntries(ctx context.Context, seqs []int64) ([]SegmentEntry, error) {
	out := make([]SegmentEntry, len(seqs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(manifestFetchConcurrency)
	for i, seq := range seqs {
		g.Go(func() error {
			key := m.prefix + manifestEntryName(seq)
			b, err := m.readObject(gctx, key, manifestMaxEntryBytes)
			if err != nil {
				return err
			}
			e, err := DecodeSegmentEntry(b)
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrManifestCorrupt, key, err)
			}
			if e.Seq != seq {
				return fmt.Errorf("%w: %s: holds sequence %d", ErrManifestCorrupt, key, e.Seq)
			}
			out[i] = e
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// readObject reads a whole object of at most limit bytes.
func (m *Manifest) readObject(ctx context.Context, key string, limit int64) ([]byte, error) {
	rc, err := m.store.GetRange(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrManifestCorrupt, key, limit)
	}
	return b, nil
}

// readSnapshot streams the snapshot at seq into a new state.
func (m *Manifest) readSnapshot(ctx context.Context, seq int64) (*manifestState, error) {
	key := m.prefix + manifestSnapshotName(seq)
	rc, err := m.store.GetRange(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	st := newManifestState()
	got, err := decodeManifestSnapshot(rc, st)
	if err != nil {
		var re *manifestReadError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("read %s: %w", key, re.err)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrManifestCorrupt, key, err)
	}
	if got != seq {
		return nil, fmt.Errorf("%w: %s: holds sequence %d", ErrManifestCorrupt, key, got)
	}
	st.lastSeq = seq
	return st, nil
}

// Append adds e as the next manifest entry: it assigns e.Seq (the caller's
// is ignored) and Created (if zero), checks e, writes its entry object with
// PutIfAbsent and only then updates the in-memory view. It returns the entry
// as recorded. e is not retained (Append copies e.Queues).
//
// Entries go in log order: e.Base must be ≥ the previous End (a gap, e.g.
// segments lost before offload, is allowed and logged; an overlap is
// rejected), and per queue First ≥ that queue's previous Next (likewise).
// e.Epoch below the last entry's epoch fails with ErrStaleEpoch.
//
// If another writer owns the sequence, the error wraps ErrManifestConflict
// (and ErrExists): Reload, then decide. Any other store error (wrapped; it
// may be ErrUnavailable) leaves it unknown whether the entry was written: a
// retry then either succeeds or conflicts, and after Reload HasBase(e.Base)
// tells whether this entry is the one recorded.
func (m *Manifest) Append(ctx context.Context, e SegmentEntry) (SegmentEntry, error) {
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	e.Queues = slices.Clone(e.Queues)
	if len(e.Queues) == 0 {
		e.Queues = nil
	}
	if e.Created.IsZero() {
		e.Created = time.Now()
	}
	e.Created = e.Created.UTC().Round(0)

	m.mu.RLock()
	e.Seq = m.st.lastSeq + 1
	err := validateSegmentEntry(&e)
	var prev *SegmentEntry
	if n := len(m.st.entries); n > 0 {
		prev = &m.st.entries[n-1]
	}
	if err == nil && prev != nil && e.Epoch < prev.Epoch {
		err = fmt.Errorf("%w: epoch %d, the manifest's last entry has %d", ErrStaleEpoch, e.Epoch, prev.Epoch)
	}
	if err == nil {
		err = m.st.check(&e)
	}
	var gap int64
	if prev != nil && err == nil {
		gap = e.Base - prev.End
	}
	var queueGaps []any
	if err == nil {
		for _, qr := range e.Queues {
			if q := m.st.queues[manifestQueueKey{qr.Topic, qr.QueueID}]; q != nil && q.seen && qr.First > q.next {
				queueGaps = append(queueGaps, fmt.Sprintf("%s/%d:[%d,%d)", qr.Topic, qr.QueueID, q.next, qr.First))
			}
		}
	}
	m.mu.RUnlock()
	if err != nil {
		return SegmentEntry{}, fmt.Errorf("tier: manifest append of segment %d: %w", e.Base, err)
	}

	b, err := encodeSegmentEntry(&e)
	if err != nil {
		return SegmentEntry{}, fmt.Errorf("tier: manifest append of segment %d: %w", e.Base, err)
	}
	key := m.prefix + manifestEntryName(e.Seq)
	if err := m.store.PutIfAbsent(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		if errors.Is(err, ErrExists) {
			return SegmentEntry{}, fmt.Errorf("%w: %s: %w", ErrManifestConflict, key, err)
		}
		return SegmentEntry{}, fmt.Errorf("tier: manifest append %s: %w", key, err)
	}
	m.mu.Lock()
	m.st.add(e)
	m.mu.Unlock()
	if gap > 0 {
		m.log.Warn("cold tier has a gap in the log before this segment", "base", e.Base, "previous_end", e.Base-gap, "bytes", gap, "seq", e.Seq)
	}
	if len(queueGaps) > 0 {
		m.log.Warn("cold tier has gaps in queues before this segment", "base", e.Base, "seq", e.Seq, "gaps", queueGaps)
	}
	return e, nil
}

// Snapshot writes a snapshot folding every entry up to the current last
// sequence (created with PutIfAbsent; an existing snapshot at that sequence
// folds the same immutable entries and counts as written). It does nothing
// when there are no entries or the newest snapshot is already at the last
// sequence. Prune then may delete what it covers.
func (m *Manifest) Snapshot(ctx context.Context) error {
	m.mu.RLock()
	seq := m.st.lastSeq
	entries := m.st.entries[:len(m.st.entries):len(m.st.entries)]
	done := m.snapSeq >= seq
	m.mu.RUnlock()
	if seq == 0 || done {
		return nil
	}
	b, err := encodeManifestSnapshot(seq, entries)
	if err != nil {
		return fmt.Errorf("tier: manifest snapshot %d: %w", seq, err)
	}
	key := m.prefix + manifestSnapshotName(seq)
	if err := m.store.PutIfAbsent(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("tier: manifest snapshot %s: %w", key, err)
	}
	m.mu.Lock()
	m.snapSeq = max(m.snapSeq, seq)
	m.mu.Unlock()
	m.log.Debug("manifest snapshot written", "key", key, "entries", len(entries), "bytes", len(b))
	return nil
}

// Prune deletes the entry objects and older snapshots covered by the newest
// snapshot this view knows (written by Snapshot or loaded), and returns how
// many objects it deleted. Entries after the snapshot are never touched.
// Readers that had not read the pruned entries pick up the snapshot instead
// on their next Reload.
func (m *Manifest) Prune(ctx context.Context) (int, error) {
	m.mu.RLock()
	snap := m.snapSeq
	m.mu.RUnlock()
	if snap == 0 {
		return 0, nil
	}
	var keys []string
	for info, err := range m.store.List(ctx, m.prefix, "") {
		if err != nil {
			return 0, fmt.Errorf("tier: manifest prune: list: %w", err)
		}
		name := strings.TrimPrefix(info.Key, m.prefix)
		seq, ok := parseManifestEntryName(name)
		if !ok {
			if strings.HasPrefix(name, "snapshot-") {
				break // entries sort before snapshots
			}
			continue
		}
		if seq > snap {
			break
		}
		keys = append(keys, info.Key)
	}
	for info, err := range m.store.List(ctx, m.prefix+"snapshot-", "") {
		if err != nil {
			return 0, fmt.Errorf("tier: manifest prune: list snapshots: %w", err)
		}
		if seq, ok := parseManifestSnapshotName(strings.TrimPrefix(info.Key, m.prefix)); ok && seq < snap {
			keys = append(keys, info.Key)
		}
	}
	var (
		mu      sync.Mutex
		deleted int
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(manifestFetchConcurrency)
	for _, key := range keys {
		g.Go(func() error {
			if err := m.store.Delete(gctx, key); err != nil {
				return fmt.Errorf("delete %s: %w", key, err)
			}
			mu.Lock()
			deleted++
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return deleted, fmt.Errorf("tier: manifest prune: %w", err)
	}
	return deleted, nil
}

// Entries returns every entry, in sequence (and log) order. The slice is a
// read-only view shared with the manifest, not a copy: the caller must not
// modify it or its entries' Queues. It stays valid and unchanged after
// later appends.
func (m *Manifest) Entries() []SegmentEntry {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := len(m.st.entries)
	return m.st.entries[:n:n]
}

// Len returns the number of entries.
func (m *Manifest) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.st.entries)
}

// LastSeq returns the sequence of the last entry (or of the newest snapshot
// loaded, if later), 0 for an empty manifest.
func (m *Manifest) LastSeq() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.st.lastSeq
}

// SnapshotSeq returns the sequence of the newest snapshot this view wrote or
// loaded (0 if none). LastSeq()-SnapshotSeq() is how many entries a new
// snapshot would fold beyond it.
func (m *Manifest) SnapshotSeq() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.snapSeq
}

// EndOffset returns the End of the last segment (0 if none): where a hot log
// rebuilt from the cold tier must start.
func (m *Manifest) EndOffset() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if n := len(m.st.entries); n > 0 {
		return m.st.entries[n-1].End
	}
	return 0
}

// HasBase reports whether the segment with this base offset is offloaded.
func (m *Manifest) HasBase(base int64) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	es := m.st.entries
	i := sort.Search(len(es), func(i int) bool { return es[i].Base >= base })
	return i < len(es) && es[i].Base == base
}

// ByLogOffset returns the segment whose [Base, End) holds log offset off.
func (m *Manifest) ByLogOffset(off int64) (SegmentEntry, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	es := m.st.entries
	i := sort.Search(len(es), func(i int) bool { return es[i].End > off })
	if i < len(es) && es[i].Base <= off {
		return es[i], true
	}
	return SegmentEntry{}, false
}

// Find returns the segment that holds queue offset offset of the queue, and
// the queue's range in it. If offset falls in a hole of the cold tier (in a
// gap between two segments' ranges, or below the queue's first offset), it
// returns the first segment after the hole, whose range then starts above
// offset (qr.First > offset): a reader continues from qr.First. ok is false
// only for an unknown queue or offset ≥ the queue's Next (not offloaded
// yet).
func (m *Manifest) Find(topic string, queueID int32, offset int64) (SegmentEntry, QueueRange, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	q := m.st.queues[manifestQueueKey{topic, queueID}]
	if q == nil {
		return SegmentEntry{}, QueueRange{}, false
	}
	items := q.items
	i := sort.Search(len(items), func(i int) bool { return items[i].next > offset })
	if i == len(items) {
		return SegmentEntry{}, QueueRange{}, false
	}
	e := m.st.entries[items[i].seg]
	return e, e.Queues[items[i].qi], true
}

// QueueBounds returns the queue offsets [first, next) the cold tier spans
// for the queue (holes included); ok is false if it holds none of it.
func (m *Manifest) QueueBounds(topic string, queueID int32) (first, next int64, ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	q := m.st.queues[manifestQueueKey{topic, queueID}]
	if q == nil || len(q.items) == 0 {
		return 0, 0, false
	}
	return q.items[0].first, q.items[len(q.items)-1].next, true
}

// Queues returns, for every queue the cold tier holds messages of, its
// overall range: First of its first segment, Next of its last, and the
// time range over all its segments. Sorted by topic, then queue id.
func (m *Manifest) Queues() []QueueRange {
	m.mu.RLock()
	out := make([]QueueRange, 0, len(m.st.queues))
	for _, q := range m.st.queues {
		if len(q.items) == 0 {
			continue
		}
		out = append(out, QueueRange{
			Topic: q.topic, QueueID: q.id,
			First: q.items[0].first, Next: q.items[len(q.items)-1].next,
			MinTimestamp: q.minTs, MaxTimestamp: q.maxTs,
		})
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b QueueRange) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.QueueID, b.QueueID))
	})
	return out
}

// SegmentsForTime returns the first segment (in queue order) of the queue
// whose range's MaxTimestamp is ≥ ts, with that range: where a seek by
// timestamp starts. Timestamps need not be monotonic. ok is false if no
// segment of the queue has a message at or after ts.
func (m *Manifest) SegmentsForTime(topic string, queueID int32, ts int64) (SegmentEntry, QueueRange, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	q := m.st.queues[manifestQueueKey{topic, queueID}]
	if q == nil {
		return SegmentEntry{}, QueueRange{}, false
	}
	items := q.items
	i := sort.Search(len(items), func(i int) bool { return items[i].runMaxTs >= ts })
	if i == len(items) {
		return SegmentEntry{}, QueueRange{}, false
	}
	e := m.st.entries[items[i].seg]
	return e, e.Queues[items[i].qi], true
}

// Segments returns the segments whose time range overlaps [fromTs, toTs]
// (MaxTimestamp ≥ fromTs and MinTimestamp ≤ toTs), newest first: the
// candidates of a query by message key. The segments before the first one
// that reaches fromTs are skipped by binary search; the newer ones are
// scanned.
func (m *Manifest) Segments(fromTs, toTs int64) []SegmentEntry {
	if fromTs > toTs {
		return nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	es, run := m.st.entries, m.st.maxTs
	lo := sort.Search(len(run), func(i int) bool { return run[i] >= fromTs })
	var out []SegmentEntry
	for i := len(es) - 1; i >= lo; i-- {
		if es[i].MaxTimestamp >= fromTs && es[i].MinTimestamp <= toTs {
			out = append(out, es[i])
		}
	}
	return out
}

// ---- names ----

func manifestEntryName(seq int64) string { return fmt.Sprintf("%020d.json", seq) }

func manifestSnapshotName(seq int64) string { return fmt.Sprintf("snapshot-%020d.json.gz", seq) }

// parseManifestEntryName parses "<20 digits>.json" (sequence ≥ 1).
func parseManifestEntryName(name string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, ".json")
	return parseManifestSeq(digits, ok)
}

// parseManifestSnapshotName parses "snapshot-<20 digits>.json.gz".
func parseManifestSnapshotName(name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, "snapshot-")
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(rest, ".json.gz")
	return parseManifestSeq(digits, ok)
}

func parseManifestSeq(digits string, ok bool) (int64, bool) {
	if !ok || len(digits) != 20 {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	seq, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || seq < 1 {
		return 0, false
	}
	return seq, true
}

// ---- entry format ----

// manifestEntryWire is the JSON form of a SegmentEntry (an entry object, and
// each element of a snapshot's "entries").
type manifestEntryWire struct {
	V         int                 `json:"v"`
	Seq       int64               `json:"seq"`
	Key       string              `json:"key"`
	Base      int64               `json:"base"`
	End       int64               `json:"end"`
	Size      int64               `json:"size"`
	FooterCRC uint32              `json:"footer_crc"`
	Records   int64               `json:"records"`
	MinTs     int64               `json:"min_ts"`
	MaxTs     int64               `json:"max_ts"`
	Epoch     int64               `json:"epoch"`
	Created   string              `json:"created"`
	Queues    []manifestQueueWire `json:"queues"`
}

type manifestQueueWire struct {
	Topic string `json:"topic"`
	Queue int32  `json:"queue"`
	First int64  `json:"first"`
	Next  int64  `json:"next"`
	MinTs int64  `json:"min_ts"`
	MaxTs int64  `json:"max_ts"`
}

// EncodeSegmentEntry returns the JSON entry object of e:
//
//	{"v":1,"seq":7,"key":"p/c/b/00000000000000001024.seg","base":1024,"end":2048,
//	 "size":900,"footer_crc":1234,"records":10,"min_ts":1700000000000,
//	 "max_ts":1700000000500,"epoch":0,"created":"2024-05-01T10:00:00.123Z",
//	 "queues":[{"topic":"T","queue":0,"first":40,"next":50,"min_ts":…,"max_ts":…}]}
//
// It fails if e does not pass DecodeSegmentEntry's validation.
func EncodeSegmentEntry(e SegmentEntry) ([]byte, error) {
	return encodeSegmentEntry(&e)
}

func encodeSegmentEntry(e *SegmentEntry) ([]byte, error) {
	if err := validateSegmentEntry(e); err != nil {
		return nil, err
	}
	w := manifestEntryWire{
		V: manifestVersion, Seq: e.Seq, Key: e.Key, Base: e.Base, End: e.End, Size: e.Size,
		FooterCRC: e.FooterCRC, Records: e.Records, MinTs: e.MinTimestamp, MaxTs: e.MaxTimestamp,
		Epoch: e.Epoch, Created: e.Created.UTC().Format(time.RFC3339Nano),
		Queues: make([]manifestQueueWire, len(e.Queues)),
	}
	for i, q := range e.Queues {
		w.Queues[i] = manifestQueueWire{Topic: q.Topic, Queue: q.QueueID, First: q.First, Next: q.Next, MinTs: q.MinTimestamp, MaxTs: q.MaxTimestamp}
	}
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("encode manifest entry: %w", err)
	}
	if len(b) > manifestMaxEntryBytes {
		return nil, fmt.Errorf("manifest entry of %d bytes exceeds %d", len(b), manifestMaxEntryBytes)
	}
	return b, nil
}

// DecodeSegmentEntry decodes and validates an entry object (the form
// EncodeSegmentEntry writes). It rejects, without panicking: other versions
// than "v":1, unknown fields, trailing data, objects over 4 MiB, and entries
// that fail validation: Seq ≥ 1; a key that is non-empty, at most 1024
// bytes, relative, valid UTF-8 without control characters and without
// empty, "." or ".." segments; 0 ≤ Base < End; Size > 0; 0 ≤ Records ≤
// End-Base; 0 ≤ MinTimestamp ≤ MaxTimestamp; Epoch ≥ 0; Created within years
// 1–9999; at most 65536 queues, no queue twice, each with a topic of 1–255
// bytes (UTF-8, no control characters), QueueID ≥ 0, 0 ≤ First ≤ Next,
// Next-First ≤ End-Base, 0 ≤ MinTimestamp ≤ MaxTimestamp.
func DecodeSegmentEntry(b []byte) (SegmentEntry, error) {
	if len(b) > manifestMaxEntryBytes {
		return SegmentEntry{}, fmt.Errorf("manifest entry of %d bytes exceeds %d", len(b), manifestMaxEntryBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w manifestEntryWire
	if err := dec.Decode(&w); err != nil {
		return SegmentEntry{}, fmt.Errorf("decode manifest entry: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return SegmentEntry{}, errors.New("decode manifest entry: trailing data")
	}
	return w.entry()
}

// entry converts and validates a decoded wire entry.
func (w *manifestEntryWire) entry() (SegmentEntry, error) {
	if w.V != manifestVersion {
		return SegmentEntry{}, fmt.Errorf("manifest entry: unsupported version %d", w.V)
	}
	if len(w.Queues) > manifestMaxQueues {
		return SegmentEntry{}, fmt.Errorf("manifest entry: %d queues, more than %d", len(w.Queues), manifestMaxQueues)
	}
	created, err := time.Parse(time.RFC3339Nano, w.Created)
	if err != nil {
		return SegmentEntry{}, fmt.Errorf("manifest entry: created: %w", err)
	}
	e := SegmentEntry{
		Seq: w.Seq, Key: w.Key, Base: w.Base, End: w.End, Size: w.Size, FooterCRC: w.FooterCRC,
		Records: w.Records, MinTimestamp: w.MinTs, MaxTimestamp: w.MaxTs, Epoch: w.Epoch,
		Created: created.UTC(),
	}
	if len(w.Queues) > 0 {
		e.Queues = make([]QueueRange, len(w.Queues))
		for i, q := range w.Queues {
			e.Queues[i] = QueueRange{Topic: q.Topic, QueueID: q.Queue, First: q.First, Next: q.Next, MinTimestamp: q.MinTs, MaxTimestamp: q.MaxTs}
		}
	}
	if err := validateSegmentEntry(&e); err != nil {
		return SegmentEntry{}, err
	}
	return e, nil
}

// validateSegmentEntry checks one entry on its own (not its order).
func validateSegmentEntry(e *SegmentEntry) error {
	switch {
	case e.Seq < 1:
		return fmt.Errorf("manifest entry: sequence %d < 1", e.Seq)
	case e.Base < 0 || e.End <= e.Base:
		return fmt.Errorf("manifest entry: bad log range [%d, %d)", e.Base, e.End)
	case e.Size <= 0:
		return fmt.Errorf("manifest entry: bad size %d", e.Size)
	case e.Records < 0 || e.Records > e.End-e.Base:
		return fmt.Errorf("manifest entry: %d records in %d bytes", e.Records, e.End-e.Base)
	case e.MinTimestamp < 0 || e.MaxTimestamp < e.MinTimestamp:
		return fmt.Errorf("manifest entry: bad time range [%d, %d]", e.MinTimestamp, e.MaxTimestamp)
	case e.Epoch < 0:
		return fmt.Errorf("manifest entry: bad epoch %d", e.Epoch)
	case e.Created.Year() < 1 || e.Created.Year() > 9999:
		return fmt.Errorf("manifest entry: created %v out of range", e.Created)
	case len(e.Queues) > manifestMaxQueues:
		return fmt.Errorf("manifest entry: %d queues, more than %d", len(e.Queues), manifestMaxQueues)
	}
	if err := checkObjectKey(e.Key); err != nil {
		return fmt.Errorf("manifest entry: key %q: %w", e.Key, err)
	}
	var seen map[manifestQueueKey]struct{}
	if len(e.Queues) > 8 {
		seen = make(map[manifestQueueKey]struct{}, len(e.Queues))
	}
	for i, q := range e.Queues {
		switch {
		case q.Topic == "" || len(q.Topic) > manifestMaxTopicLen || !cleanText(q.Topic):
			return fmt.Errorf("manifest entry: bad topic %q", q.Topic)
		case q.QueueID < 0:
			return fmt.Errorf("manifest entry: %s: bad queue id %d", q.Topic, q.QueueID)
		case q.First < 0 || q.Next < q.First || q.Next-q.First > e.End-e.Base:
			return fmt.Errorf("manifest entry: %s/%d: bad queue range [%d, %d)", q.Topic, q.QueueID, q.First, q.Next)
		case q.MinTimestamp < 0 || q.MaxTimestamp < q.MinTimestamp:
			return fmt.Errorf("manifest entry: %s/%d: bad time range [%d, %d]", q.Topic, q.QueueID, q.MinTimestamp, q.MaxTimestamp)
		}
		k := manifestQueueKey{q.Topic, q.QueueID}
		dup := false
		if seen != nil {
			_, dup = seen[k]
			seen[k] = struct{}{}
		} else {
			for _, p := range e.Queues[:i] {
				dup = dup || (p.Topic == q.Topic && p.QueueID == q.QueueID)
			}
		}
		if dup {
			return fmt.Errorf("manifest entry: queue %s/%d listed twice", q.Topic, q.QueueID)
		}
	}
	return nil
}

// checkObjectKey accepts a relative slash-separated key of clean segments.
func checkObjectKey(key string) error {
	if key == "" || len(key) > manifestMaxKeyLen {
		return fmt.Errorf("length %d not in 1..%d", len(key), manifestMaxKeyLen)
	}
	if !cleanText(key) {
		return errors.New("invalid UTF-8 or control characters")
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("empty, '.' or '..' path segment")
		}
	}
	return nil
}

func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// ---- snapshot format ----

// EncodeSnapshot returns the snapshot object (gzip-compressed JSON) folding
// entries up to sequence seq. Entries must be valid and in order as
// DecodeSnapshot requires.
func EncodeSnapshot(seq int64, entries []SegmentEntry) ([]byte, error) {
	st := newManifestState()
	for i := range entries {
		e := entries[i]
		e.Queues = slices.Clone(e.Queues)
		if err := validateSegmentEntry(&e); err != nil {
			return nil, err
		}
		if err := st.check(&e); err != nil {
			return nil, fmt.Errorf("manifest snapshot: entry %d: %w", e.Seq, err)
		}
		st.add(e)
	}
	if seq < 1 || st.lastSeq > seq {
		return nil, fmt.Errorf("manifest snapshot: sequence %d with entries up to %d", seq, st.lastSeq)
	}
	return encodeManifestSnapshot(seq, entries)
}

// encodeManifestSnapshot encodes entries already known valid and in order.
func encodeManifestSnapshot(seq int64, entries []SegmentEntry) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	fmt.Fprintf(zw, `{"v":%d,"seq":%d,"entries":[`, manifestVersion, seq)
	for i := range entries {
		b, err := encodeSegmentEntry(&entries[i])
		if err != nil {
			return nil, fmt.Errorf("manifest snapshot: entry %d: %w", entries[i].Seq, err)
		}
		if i > 0 {
			zw.Write([]byte{','})
		}
		zw.Write(b)
	}
	zw.Write([]byte("]}\n"))
	if err := zw.Close(); err != nil { // writes to a bytes.Buffer cannot fail; Close reports any
		return nil, fmt.Errorf("manifest snapshot: gzip: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeSnapshot decodes and validates a snapshot object (the bytes of
// <root>/manifest/snapshot-<seq>.json.gz): gzip of {"v":1,"seq":N,
// "entries":[…]}. It rejects, without panicking: bad gzip or checksum,
// more than 4 GiB decompressed, versions other than 1, missing, duplicate
// or unknown fields, trailing data, any entry DecodeSegmentEntry would
// reject, entries whose sequences are not increasing or exceed N, and
// entries out of log or queue order (as Append requires).
func DecodeSnapshot(b []byte) (seq int64, entries []SegmentEntry, err error) {
	st := newManifestState()
	seq, err = decodeManifestSnapshot(bytes.NewReader(b), st)
	if err != nil {
		return 0, nil, err
	}
	return seq, st.entries, nil
}

// manifestReadError marks a failure to read the snapshot's bytes from the
// store (as opposed to bad content).
type manifestReadError struct{ err error }

func (e *manifestReadError) Error() string { return e.err.Error() }
func (e *manifestReadError) Unwrap() error { return e.err }

// manifestReadTracker wraps the store's reader to tell its errors from the
// content's.
type manifestReadTracker struct{ r io.Reader }

func (t manifestReadTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		err = &manifestReadError{err}
	}
	return n, err
}

// manifestCapReader fails once more than n bytes come out of r.
type manifestCapReader struct {
	r io.Reader
	n int64
}

func (c *manifestCapReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		var one [1]byte
		if k, err := c.r.Read(one[:]); k > 0 {
			return 0, errors.New("snapshot exceeds the decompressed size limit")
		} else if err != nil {
			return 0, err
		}
		return 0, nil
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	k, err := c.r.Read(p)
	c.n -= int64(k)
	return k, err
}

// decodeManifestSnapshot streams a snapshot from r into st (empty) and
// returns its sequence. st.lastSeq is left at the last entry's sequence.
func decodeManifestSnapshot(r io.Reader, st *manifestState) (int64, error) {
	zr, err := gzip.NewReader(manifestReadTracker{r})
	if err != nil {
		return 0, fmt.Errorf("manifest snapshot: gzip: %w", err)
	}
	defer zr.Close()
	dec := json.NewDecoder(&manifestCapReader{r: zr, n: manifestMaxSnapshotJSON})
	dec.DisallowUnknownFields()
	fail := func(format string, args ...any) (int64, error) {
		return 0, fmt.Errorf("manifest snapshot: "+format, args...)
	}
	if err := expectManifestDelim(dec, '{'); err != nil {
		return fail("%w", err)
	}
	var (
		v                        int
		seq                      int64
		haveV, haveSeq, haveList bool
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail("%w", err)
		}
		name, _ := tok.(string)
		switch name {
		case "v":
			if haveV {
				return fail("duplicate field v")
			}
			haveV = true
			if err := dec.Decode(&v); err != nil {
				return fail("v: %w", err)
			}
			if v != manifestVersion {
				return fail("unsupported version %d", v)
			}
		case "seq":
			if haveSeq {
				return fail("duplicate field seq")
			}
			haveSeq = true
			if err := dec.Decode(&seq); err != nil {
				return fail("seq: %w", err)
			}
		case "entries":
			if haveList {
				return fail("duplicate field entries")
			}
			haveList = true
			if err := expectManifestDelim(dec, '['); err != nil {
				return fail("entries: %w", err)
			}
			for dec.More() {
				var w manifestEntryWire
				if err := dec.Decode(&w); err != nil {
					return fail("entry %d: %w", len(st.entries), err)
				}
				e, err := w.entry()
				if err != nil {
					return fail("entry %d: %w", len(st.entries), err)
				}
				if err := st.check(&e); err != nil {
					return fail("entry %d: %w", e.Seq, err)
				}
				st.add(e)
			}
			if err := expectManifestDelim(dec, ']'); err != nil {
				return fail("entries: %w", err)
			}
		default:
			return fail("unexpected field %v", tok)
		}
	}
	if err := expectManifestDelim(dec, '}'); err != nil {
		return fail("%w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var re *manifestReadError
		if errors.As(err, &re) {
			return 0, err
		}
		return fail("trailing data or bad checksum (%v)", err)
	}
	switch {
	case !haveV || !haveSeq || !haveList:
		return fail("missing field (v, seq and entries are required)")
	case seq < 1:
		return fail("bad sequence %d", seq)
	case st.lastSeq > seq:
		return fail("entry %d after the snapshot's sequence %d", st.lastSeq, seq)
	}
	return seq, nil
}

func expectManifestDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %v, found %v", want, tok)
	}
	return nil
}
