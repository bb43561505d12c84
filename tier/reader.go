package tier

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/strata-mq/strata/cache"
	"github.com/strata-mq/strata/remoting"
)

// ReadStatus says what a cold read found.
type ReadStatus int

const (
	// ReadFound: Records holds at least one message.
	ReadFound ReadStatus = iota
	// ReadNoMatch: entries were scanned but none passed the filter;
	// NextOffset is past them.
	ReadNoMatch
	// ReadNotCold: the cold tier does not hold this offset (it is past the
	// offloaded range, or the queue was never offloaded).
	ReadNotCold
	// ReadTooSmall: the offset precedes the queue's first offloaded offset;
	// NextOffset is that first offset.
	ReadTooSmall
)

// ReadResult is what Read returns.
type ReadResult struct {
	Status ReadStatus
	// Records are MessageExt records exactly as a hot read returns them.
	// They point into cached blocks: read-only.
	Records [][]byte
	// NextOffset is where the next read should start.
	NextOffset int64
	// First and Next bound the queue's cold range [First, Next).
	First, Next int64
	// Segment is the manifest sequence of the segment object read (0 when
	// none was): nodes that share reads route by it.
	Segment int64
}

// maxColdScan bounds how many entries one filtered read scans.
const maxColdScan = 800

// Read returns up to maxMsgs records (at most maxBytes, but at least one)
// of topic/queueID from offset, from the cold tier. filter, if not nil,
// selects entries by tag hash. stream names the sequential reader (for
// read-ahead), e.g. group/topic/queue. A read never crosses a segment: the
// next read continues in the next one. An unavailable object store yields
// an error wrapping ErrUnavailable within Config.ReadTimeout.
func (t *Tier) Read(ctx context.Context, topic string, queueID int32, offset int64, maxMsgs, maxBytes int, filter func(int64) bool, stream string) (ReadResult, error) {
	m, err := t.Manifest()
	if err != nil {
		return ReadResult{}, err
	}
	first, next, ok := m.QueueBounds(topic, queueID)
	r := ReadResult{First: first, Next: next}
	switch {
	case !ok || offset >= next:
		r.Status, r.NextOffset = ReadNotCold, offset
		return r, nil
	case offset < first:
		r.Status, r.NextOffset = ReadTooSmall, first
		return r, nil
	}
	seg, qr, ok := m.Find(topic, queueID, offset)
	if !ok {
		r.Status, r.NextOffset = ReadNotCold, offset
		return r, nil
	}
	if offset < qr.First { // a hole in the queue's cold history: skip it
		r.Status, r.NextOffset = ReadNoMatch, qr.First
		return r, nil
	}
	r.Segment = seg.Seq
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ReadTimeout)
	defer cancel()
	start := time.Now()
	foot, tail, err := t.footerAndTail(ctx, seg)
	if err != nil {
		return r, err
	}
	qi, ok := foot.Queue(topic, queueID)
	if !ok || qi.First != qr.First {
		return r, t.corrupt(seg, fmt.Errorf("%w: object %s has no index for %s/%d at %d", ErrCorruptObject, seg.Key, topic, queueID, qr.First))
	}
	if qi.First+qi.Count != qr.Next {
		// The manifest promises offsets the object does not hold: reading
		// on would answer "no match" at the same offset forever.
		err := fmt.Errorf("%w: entry %d says %s/%d spans [%d,%d) in %s, whose queue index holds [%d,%d)",
			ErrManifestCorrupt, seg.Seq, topic, queueID, qr.First, qr.Next, seg.Key, qi.First, qi.First+qi.Count)
		t.setErr(err)
		t.log.Error("manifest disagrees with a segment object; not served", "err", err)
		return r, err
	}
	section, err := t.queueSection(ctx, seg, qi, tail)
	if err != nil {
		return r, err
	}
	maxMsgs = max(1, maxMsgs)
	scan := maxMsgs
	if filter != nil {
		scan = max(scan, maxColdScan)
	}
	idx := offset - qi.First
	bytes := 0
	var sel []QueueEntry
	for ; idx < qi.Count && scan > 0 && len(sel) < maxMsgs; idx++ {
		e := QueueEntryAt(section, idx)
		if len(sel) > 0 && bytes+int(e.Size) > maxBytes {
			break
		}
		scan--
		if filter != nil && !filter(e.TagHash) {
			continue
		}
		sel = append(sel, e)
		bytes += int(e.Size)
	}
	r.NextOffset = qi.First + idx
	if len(sel) == 0 {
		r.Status = ReadNoMatch
		return r, nil
	}
	var st *cache.Stream
	if stream != "" {
		st = t.cache.Stream(stream)
	}
	r.Records = make([][]byte, 0, len(sel))
	lastBlock := -1
	for _, e := range sel {
		rec, bi, err := t.record(ctx, seg, foot, e.LogOffset, e.Size)
		if err != nil {
			return r, err
		}
		lastBlock = bi
		r.Records = append(r.Records, rec)
		t.met.coldReadBytes.Add(float64(len(rec)))
	}
	t.met.coldReadSeconds.Observe(time.Since(start).Seconds())
	if st != nil {
		t.readAhead(m, seg, foot, section, qi, idx, lastBlock, filter, st)
	}
	r.Status = ReadFound
	return r, nil
}

// readAhead prefetches the blocks the stream's next reads will need: the
// blocks after lastBlock holding the entries from idx on, up to the stream's
// window, continuing into the queue's next segment when this one ends.
func (t *Tier) readAhead(m *Manifest, seg SegmentEntry, foot *Footer, section []byte, qi *QueueIndex, idx int64, lastBlock int, filter func(int64) bool, s *cache.Stream) {
	w := t.prefetchBlocks(seg, foot, section, qi, idx, lastBlock, filter, s, s.Window())
	if w <= 0 {
		return
	}
	next, _, ok := m.Find(qi.Topic, qi.QueueID, qi.First+qi.Count)
	if !ok || next.Base == seg.Base {
		return
	}
	// The next segment's footer and queue section first, then its blocks.
	topic, q := qi.Topic, qi.QueueID
	t.cache.Prefetch(s, sectionCacheKey(next.Key, topic, q), t.bounded(func(ctx context.Context) ([]byte, error) {
		nf, tail, err := t.footerAndTail(ctx, next)
		if err != nil {
			return nil, err
		}
		nqi, ok := nf.Queue(topic, q)
		if !ok {
			return nil, t.corrupt(next, fmt.Errorf("%w: object %s has no index for %s/%d", ErrCorruptObject, next.Key, topic, q))
		}
		b, err := t.fetchSection(ctx, next, nqi, tail)
		if err == nil {
			t.prefetchBlocks(next, nf, b, nqi, 0, -1, filter, s, w)
		}
		return b, err
	}))
}

// bounded gives a read-ahead fetch the deadline of a read. The cache runs
// prefetches with its own context, which only Close cancels, and a Get of a
// key being prefetched waits for that prefetch: without a deadline, one
// request the object store never answers would leave its block unreadable
// until restart.
func (t *Tier) bounded(f cache.FetchFunc) cache.FetchFunc {
	return func(ctx context.Context) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, t.cfg.ReadTimeout)
		defer cancel()
		return f(ctx)
	}
}

// prefetchBlocks prefetches up to w blocks after lastBlock that hold the
// entries of section from idx on; it returns how much of w is left when the
// section ends. Consecutive blocks missing from the cache are fetched with
// one ranged GET per run (up to maxRunBlocks): an object store spends far
// more per request than per byte. So that the window is refilled in runs
// rather than a block per pull, nothing is fetched while the next block is
// already on its way and fewer than minRunBlocks of the window are missing.
func (t *Tier) prefetchBlocks(seg SegmentEntry, foot *Footer, section []byte, qi *QueueIndex, idx int64, lastBlock int, filter func(int64) bool, s *cache.Stream, w int) int {
	var want []int
	idx = entriesPast(foot, section, qi, idx, lastBlock)
	for scanned := 0; idx < qi.Count && len(want) < w; idx, scanned = idx+1, scanned+1 {
		if scanned >= 64*maxColdScan {
			w = len(want) // a sparse filter: stop looking
			break
		}
		e := QueueEntryAt(section, idx)
		if filter != nil && !filter(e.TagHash) {
			continue
		}
		bi, ok := foot.BlockFor(e.LogOffset)
		if !ok || bi <= lastBlock {
			continue
		}
		lastBlock = bi
		want = append(want, bi)
		idx = entriesPast(foot, section, qi, idx, bi) - 1 // the loop adds 1
	}
	var missing []int
	for _, bi := range want {
		key := blockCacheKey(seg.Key, bi)
		if _, riding := t.runBlocks.Load(key); !riding && !t.cache.Contains(key) {
			missing = append(missing, bi)
		}
	}
	if len(missing) > 0 && (missing[0] == want[0] || len(missing) >= minRunBlocks || len(want) < w) {
		for len(missing) > 0 {
			n := 1
			for n < len(missing) && n < maxRunBlocks && missing[n] == missing[n-1]+1 {
				n++
			}
			t.prefetchRun(seg, foot, missing[:n], s)
			missing = missing[n:]
		}
	}
	return w - len(want)
}

const (
	// minRunBlocks is how many blocks of a read-ahead window must be
	// missing before they are fetched (unless the next one is).
	minRunBlocks = 8
	// maxRunBlocks caps one ranged GET of consecutive blocks.
	maxRunBlocks = 16
)

// prefetchRun fetches the consecutive blocks run (object order) with one
// ranged GET: the first through the cache's prefetch (so concurrent readers
// share it), the others added to the cache as it arrives. Until then the
// others are listed in runBlocks, so that other streams' read-ahead (every
// queue of a segment reads the same blocks) does not fetch them again.
func (t *Tier) prefetchRun(seg SegmentEntry, foot *Footer, run []int, s *cache.Stream) {
	if len(run) == 1 {
		t.cache.Prefetch(s, blockCacheKey(seg.Key, run[0]), t.bounded(t.blockFetch(seg, foot.Blocks[run[0]])))
		return
	}
	riders := make([]string, 0, len(run)-1)
	for _, bi := range run[1:] {
		key := blockCacheKey(seg.Key, bi)
		if _, loaded := t.runBlocks.LoadOrStore(key, struct{}{}); !loaded {
			riders = append(riders, key)
		}
	}
	release := func() {
		for _, key := range riders {
			t.runBlocks.Delete(key)
		}
	}
	first, last := foot.Blocks[run[0]], foot.Blocks[run[len(run)-1]]
	queued := t.cache.Prefetch(s, blockCacheKey(seg.Key, run[0]), t.bounded(func(ctx context.Context) ([]byte, error) {
		defer release() // after the Adds below: the cache holds them then
		n := last.ObjOffset + int64(last.CompLen) - first.ObjOffset
		comp, err := segGet(ctx, t.store, seg.Key, first.ObjOffset, n)
		if err != nil {
			return nil, err
		}
		var head []byte
		for _, bi := range run {
			b := foot.Blocks[bi]
			lo := b.ObjOffset - first.ObjOffset
			if lo < 0 || lo+int64(b.CompLen) > int64(len(comp)) {
				return nil, t.corrupt(seg, fmt.Errorf("%w: block %d of %s lies outside its run", ErrCorruptObject, bi, seg.Key))
			}
			raw, err := DecodeBlock(comp[lo:lo+int64(b.CompLen)], b)
			if err != nil {
				return nil, t.corrupt(seg, err)
			}
			if b.Flags&BlockFlagRaw != 0 {
				raw = bytes.Clone(raw) // not a view into the whole run
			}
			if head == nil {
				head = raw
			} else {
				t.cache.Add(s, blockCacheKey(seg.Key, bi), raw)
			}
		}
		return head, nil
	}))
	if !queued {
		release()
	}
}

// entriesPast returns the index of the first entry of section, from idx on,
// that lies past block bi (idx itself if bi is not a block). A queue
// section's entries are in log order (DecodeQueueSection checks it), so the
// entries of one block, hundreds of them, are skipped with a binary search
// instead of one BlockFor each: read-ahead runs after every pull and would
// otherwise scan its whole window of entries each time.
func entriesPast(foot *Footer, section []byte, qi *QueueIndex, idx int64, bi int) int64 {
	if bi < 0 || bi >= len(foot.Blocks) || idx >= qi.Count {
		return idx
	}
	end := foot.Blocks[bi].LogOffset + int64(foot.Blocks[bi].RawLen)
	n := sort.Search(int(qi.Count-idx), func(j int) bool { return QueueEntryAt(section, idx+int64(j)).LogOffset >= end })
	return idx + int64(n)
}

func sectionCacheKey(objKey, topic string, q int32) string {
	return objKey + "#q" + topic + "/" + strconv.Itoa(int(q))
}

func blockCacheKey(objKey string, i int) string { return objKey + "#b" + strconv.Itoa(i) }

func (t *Tier) blockFetch(seg SegmentEntry, blk BlockInfo) func(context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		b, err := ReadBlock(ctx, t.store, seg.Key, blk)
		if err != nil {
			return nil, t.corrupt(seg, err)
		}
		return b, nil
	}
}

// record returns the record at log offset off of an offloaded segment.
func (t *Tier) record(ctx context.Context, seg SegmentEntry, foot *Footer, off int64, size int32) ([]byte, int, error) {
	bi, ok := foot.BlockFor(off)
	if !ok {
		return nil, 0, t.corrupt(seg, fmt.Errorf("%w: object %s has no block for log offset %d", ErrCorruptObject, seg.Key, off))
	}
	blk := foot.Blocks[bi]
	block, err := t.cache.Get(ctx, blockCacheKey(seg.Key, bi), t.blockFetch(seg, blk))
	if err != nil {
		return nil, 0, err
	}
	if size <= 0 {
		rel := off - blk.LogOffset
		if rel < 0 || rel+4 > int64(len(block)) {
			return nil, 0, t.corrupt(seg, fmt.Errorf("%w: log offset %d outside block %d of %s", ErrCorruptObject, off, bi, seg.Key))
		}
		size = int32(binary.BigEndian.Uint32(block[rel:]))
	}
	rec, err := RecordAt(block, blk, off, size)
	if err != nil {
		return nil, 0, t.corrupt(seg, err)
	}
	return rec, bi, nil
}

// footer returns the segment object's footer (cached).
func (t *Tier) footer(ctx context.Context, seg SegmentEntry) (*Footer, error) {
	f, _, err := t.footerAndTail(ctx, seg)
	return f, err
}

// footerAndTail is footer that also returns, when it had to fetch the
// footer, the object's tail it fetched (its last len(tail) bytes): the tail
// is fetched large enough that it usually holds the queue sections too, so
// a first read of a segment takes one GET instead of two.
func (t *Tier) footerAndTail(ctx context.Context, seg SegmentEntry) (*Footer, []byte, error) {
	if f, ok := t.footers.Get(seg.Key); ok {
		return f, nil, nil
	}
	n := min(seg.Size, tailFetchSize(seg.Size))
	tail, err := segGet(ctx, t.store, seg.Key, seg.Size-n, n)
	if err != nil {
		return nil, nil, err
	}
	f, err := DecodeFooter(tail, seg.Size)
	if errors.Is(err, ErrShortTail) {
		tail = nil
		f, err = ReadFooter(ctx, t.store, seg.Key, seg.Size)
	}
	if err != nil {
		return nil, nil, t.corrupt(seg, err)
	}
	if f.Base != seg.Base || f.End != seg.End {
		return nil, nil, t.corrupt(seg, fmt.Errorf("%w: object %s covers [%d,%d), the manifest says [%d,%d)", ErrCorruptObject, seg.Key, f.Base, f.End, seg.Base, seg.End))
	}
	t.footers.Add(seg.Key, f)
	return f, tail, nil
}

// tailFetchSize is how much of an object's end a footer read fetches: a
// sixteenth of the object (which holds the footer and the queue sections
// of a segment of small messages), between FooterTailSize and 1 MiB.
func tailFetchSize(size int64) int64 {
	return min(max(size/16, FooterTailSize), 1<<20)
}

// sectionFromTail returns a copy of qi's section if the tail (the object's
// last len(tail) bytes) holds it, else nil.
func sectionFromTail(tail []byte, objSize int64, qi *QueueIndex) []byte {
	off := qi.SectionOffset - (objSize - int64(len(tail)))
	if tail == nil || off < 0 || off+qi.SectionLen > int64(len(tail)) {
		return nil
	}
	return bytes.Clone(tail[off : off+qi.SectionLen])
}

// queueSection returns the raw consume-queue section of one queue in a
// segment object (cached like a block, verified when fetched), taken from
// tail when it holds it.
func (t *Tier) queueSection(ctx context.Context, seg SegmentEntry, qi *QueueIndex, tail []byte) ([]byte, error) {
	return t.cache.Get(ctx, sectionCacheKey(seg.Key, qi.Topic, qi.QueueID), func(ctx context.Context) ([]byte, error) {
		return t.fetchSection(ctx, seg, qi, tail)
	})
}

func (t *Tier) fetchSection(ctx context.Context, seg SegmentEntry, qi *QueueIndex, tail []byte) ([]byte, error) {
	b := sectionFromTail(tail, seg.Size, qi)
	if b == nil {
		var err error
		if b, err = segGet(ctx, t.store, seg.Key, qi.SectionOffset, qi.SectionLen); err != nil {
			return nil, err
		}
	}
	if _, err := DecodeQueueSection(b, *qi); err != nil {
		return nil, t.corrupt(seg, err)
	}
	return b, nil
}

// corrupt reports a corrupt object: it counts it, logs it and asks for a
// re-upload from the local copy. Errors that are not corruption pass
// through unchanged.
func (t *Tier) corrupt(seg SegmentEntry, err error) error {
	if !errors.Is(err, ErrCorruptObject) {
		return err
	}
	t.met.corruptObjects.Inc()
	t.setErr(err)
	repaired := t.repair(seg.Base)
	t.log.Error("corrupt segment object; not served", "key", seg.Key, "err", err, "reupload_from_local_copy", repaired)
	return err
}

// OffsetForTime returns the first cold offset of topic/queueID stored at or
// after ts (ms), and false if every offloaded message is older.
func (t *Tier) OffsetForTime(ctx context.Context, topic string, queueID int32, ts int64) (int64, bool, error) {
	m, err := t.Manifest()
	if err != nil {
		return 0, false, err
	}
	seg, qr, ok := m.SegmentsForTime(topic, queueID, ts)
	if !ok {
		return 0, false, nil
	}
	if ts <= qr.MinTimestamp {
		return qr.First, true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ReadTimeout)
	defer cancel()
	foot, err := t.footer(ctx, seg)
	if err != nil {
		return 0, false, err
	}
	qi, ok := foot.Queue(topic, queueID)
	if !ok {
		return qr.First, true, nil
	}
	section, err := t.queueSection(ctx, seg, qi, nil)
	if err != nil {
		return 0, false, err
	}
	i := sort.Search(int(qi.Count), func(i int) bool { return QueueEntryAt(section, int64(i)).StoreTimestamp >= ts })
	return qi.First + int64(i), true, nil
}

// QueryByKey returns up to max records of topic whose KEYS contain key or
// whose UNIQ_KEY is key, stored within [begin, end] (ms), newest segments
// first.
func (t *Tier) QueryByKey(ctx context.Context, topic, key string, maxN int, begin, end int64) ([][]byte, error) {
	m, err := t.Manifest()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ReadTimeout)
	defer cancel()
	var out [][]byte
	for _, seg := range m.Segments(begin, end) {
		if len(out) >= maxN {
			break
		}
		foot, err := t.footer(ctx, seg)
		if err != nil {
			return out, err
		}
		offs, err := ReadKeyCandidates(ctx, t.store, seg.Key, foot, key)
		if err != nil {
			return out, t.corrupt(seg, err)
		}
		for i := len(offs) - 1; i >= 0 && len(out) < maxN; i-- {
			rec, _, err := t.record(ctx, seg, foot, offs[i], 0)
			if err != nil {
				return out, err
			}
			v, err := remoting.ParseRecordFields(rec)
			if err != nil || string(v.Topic) != topic || v.StoreTimestamp < begin || v.StoreTimestamp > end ||
				!remoting.HasKey(v.Properties, key) {
				continue
			}
			out = append(out, rec)
		}
	}
	return out, nil
}

// ReadAt returns the record at log offset off, if an offloaded segment
// holds it (view by message id).
func (t *Tier) ReadAt(ctx context.Context, off int64) ([]byte, error) {
	m, err := t.Manifest()
	if err != nil {
		return nil, err
	}
	seg, ok := m.ByLogOffset(off)
	if !ok {
		return nil, fmt.Errorf("%w: no offloaded segment holds log offset %d", ErrNotFound, off)
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ReadTimeout)
	defer cancel()
	foot, err := t.footer(ctx, seg)
	if err != nil {
		return nil, err
	}
	rec, _, err := t.record(ctx, seg, foot, off, 0)
	return rec, err
}

// Bounds returns the cold range [first, next) of topic/queueID.
func (t *Tier) Bounds(topic string, queueID int32) (first, next int64, ok bool) {
	m, err := t.Manifest()
	if err != nil {
		return 0, 0, false
	}
	return m.QueueBounds(topic, queueID)
}
