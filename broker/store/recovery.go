package store

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// recover rebuilds the in-memory state from disk: segments, consume queues,
// and everything the log holds past the checkpoint.
func (s *Store) recover(ctx context.Context) error {
	started := time.Now()
	// A queue whose entries did not reach the disk before a crash starts
	// where its records in the log say (the scan re-adds them), not at
	// QueueStart: the cold tier may already hold records the local log
	// still has. Queues the log holds nothing of start at QueueStart
	// afterwards (startEmptyQueues).
	s.recovering = true
	defer func() { s.recovering = false }()
	ckpt, ckptTs, hasCkpt, err := readCheckpoint(s.cfg.Dir)
	if err != nil {
		return err
	}
	if err := s.loadQueues(); err != nil {
		return err
	}
	bases, err := listSegments(s.logDir)
	if err != nil {
		return fmt.Errorf("store: list segments: %w", err)
	}
	for _, b := range bases {
		sg, err := openSegment(s.logDir, b, false, false)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		sg.sealed = true // until the scan finds the end
		s.segs = append(s.segs, sg)
	}
	if n := len(s.segs); n > 0 {
		if err := s.repairShortSegment(s.segs[n-1]); err != nil {
			return err
		}
	}
	start := s.cfg.StartOffset // an empty store continues the cold tier's log
	if len(s.segs) > 0 {
		start = s.segs[0].base
	}
	if hasCkpt && ckpt > start {
		start = ckpt
	}
	limit := int64(math.MaxInt64)
	if s.cfg.Truncate {
		if len(s.segs) > 0 && s.cfg.TruncateTo < s.segs[0].base {
			return fmt.Errorf("store: cannot truncate to %d: the log starts at %d", s.cfg.TruncateTo, s.segs[0].base)
		}
		limit = s.cfg.TruncateTo
		if start > limit {
			// The checkpoint is past the cut: the scan starts at the cut,
			// which must be where a record (or a segment) starts.
			if err := s.checkRecordStart(limit); err != nil {
				return err
			}
			start = limit
		}
	}
	if len(s.segs) > 0 {
		s.minLog.Store(s.segs[0].base)
	}
	// Entries past the checkpoint may be partly written: drop them; the scan
	// re-adds what the log holds.
	for _, q := range s.allQueues() {
		if err := q.cq.truncateFromLog(start); err != nil {
			return fmt.Errorf("store: recover consume queue %s/%d: %w", q.topic.name, q.id, err)
		}
		q.next = q.cq.count
	}
	end, lastTs, scanned, err := s.scan(ctx, start, limit)
	if err != nil {
		return err
	}
	if s.cfg.Truncate {
		s.log.Warn("truncating the log", "to", limit, "end_before", end)
	}
	s.lastTs = max(lastTs, ckptTs)
	if err := s.fixTail(end); err != nil {
		return err
	}
	if err := s.startEmptyQueues(); err != nil {
		return err
	}
	for _, q := range s.allQueues() {
		q.next = q.cq.count
	}
	s.flushed.Store(end)
	s.dispatched.Store(end)
	s.indexed.Store(end)
	s.synced.Store(end)
	s.ckptDone = -1
	if err := s.checkpointAt(time.Now(), true); err != nil {
		return fmt.Errorf("store: checkpoint after recovery: %w", err)
	}
	s.log.Info("recovered", "from", start, "to", end, "scanned_bytes", scanned, "checkpoint", hasCkpt,
		"took", time.Since(started).Round(time.Microsecond))
	return nil
}

// startEmptyQueues starts the queues recovery left empty at QueueStart,
// as createQueue does outside recovery.
func (s *Store) startEmptyQueues() error {
	if s.cfg.QueueStart == nil {
		return nil
	}
	for _, q := range s.allQueues() {
		if q.cq.count != 0 {
			continue
		}
		if n := s.cfg.QueueStart(q.topic.name, q.id); n > 0 {
			if err := q.cq.rebase(n); err != nil {
				return fmt.Errorf("store: start consume queue %s/%d at %d: %w", q.topic.name, q.id, n, err)
			}
		}
	}
	return nil
}

// loadQueues opens every consume queue under cqDir.
func (s *Store) loadQueues() error {
	topics, err := os.ReadDir(s.cqDir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, t := range topics {
		if !t.IsDir() {
			continue
		}
		qdirs, err := os.ReadDir(filepath.Join(s.cqDir, t.Name()))
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		for _, qd := range qdirs {
			id, err := strconv.Atoi(qd.Name())
			if err != nil || !qd.IsDir() || id < 0 || id >= MaxQueueID {
				continue
			}
			if _, err := s.createQueue(t.Name(), int32(id)); err != nil {
				return err
			}
		}
	}
	return nil
}

// scan reads the log from start, verifying and dispatching every record,
// and returns the offset of the end of the valid log.
func (s *Store) scan(ctx context.Context, start, limit int64) (end, lastTs, scanned int64, err error) {
	if len(s.segs) == 0 {
		return start, 0, 0, nil
	}
	i := len(s.segs) - 1
	for j, sg := range s.segs {
		if start < sg.base+sg.size {
			i = j
			break
		}
	}
	sg := s.segs[i]
	if start >= sg.base+sg.size { // the checkpoint sits at the end of the last segment
		return start, 0, 0, nil
	}
	buf := make([]byte, 4<<20+s.cfg.MaxMessageSize)
	pos := start - sg.base
	if pos < 0 {
		pos = 0
	}
	for {
		if err := ctx.Err(); err != nil {
			return 0, 0, 0, err
		}
		n, rerr := sg.r.ReadAt(buf[:min(int64(len(buf)), sg.size-pos)], pos)
		if rerr != nil && rerr != io.EOF {
			return 0, 0, 0, fmt.Errorf("store: read %s: %w", sg.path, rerr)
		}
		p := 0
	chunk:
		for {
			if at := sg.base + pos + int64(p); at >= limit {
				if at > limit {
					return 0, 0, 0, fmt.Errorf("%w: cannot truncate the log to %d: no record starts there (one starts at %d)", ErrCorrupt, limit, at)
				}
				return at, lastTs, scanned, nil
			}
			kind, sz := classify(buf[p:n], sg.base, pos+int64(p), sg.size, s.cfg.MaxMessageSize)
			switch kind {
			case kindRecord:
				rec := buf[p : p+sz-recordOverhead]
				off := sg.base + pos + int64(p)
				ts, ok := s.recoverRecord(rec, off)
				if !ok {
					return off, lastTs, scanned, nil
				}
				lastTs = ts
				p += sz
				scanned += int64(sz)
			case kindMarker:
				if i+1 >= len(s.segs) {
					return sg.base + sg.size, lastTs, scanned, nil
				}
				i++
				sg = s.segs[i]
				pos = 0
				break chunk
			case kindShort:
				if p == 0 {
					// A record that claims more bytes than the segment holds.
					s.log.Warn("recovery: record runs past the end of its segment; truncating",
						"offset", sg.base+pos)
					return sg.base + pos, lastTs, scanned, nil
				}
				pos += int64(p)
				break chunk
			case kindEnd:
				return sg.base + pos + int64(p), lastTs, scanned, nil
			default:
				off := sg.base + pos + int64(p)
				s.log.Warn("recovery: torn or corrupt record; truncating the log here", "offset", off)
				return off, lastTs, scanned, nil
			}
		}
	}
}

// recoverRecord dispatches one scanned record. It returns false when the
// record does not continue its queue (a stale record from before an earlier
// truncation): the log ends before it.
func (s *Store) recoverRecord(rec []byte, off int64) (int64, bool) {
	v, err := remoting.ParseRecordFields(rec)
	if err != nil || v.QueueID < 0 || v.QueueID >= MaxQueueID {
		s.log.Warn("recovery: record with inconsistent fields; truncating the log here", "offset", off)
		return 0, false
	}
	q := s.lookupQueue(string(v.Topic), v.QueueID)
	if q == nil {
		if q, err = s.createQueue(string(v.Topic), v.QueueID); err != nil {
			s.log.Warn("recovery: cannot open queue; truncating the log here", "offset", off, "err", err)
			return 0, false
		}
	}
	switch want := q.cq.maxOffset(); {
	case v.QueueOffset < want:
		// An offset its queue already holds: not a continuation of the log
		// but a stale or forged record. The log ends before it.
		s.log.Warn("recovery: record repeats an offset of its queue; truncating the log here",
			"offset", off, "topic", q.topic.name, "queue", q.id, "queue_offset", v.QueueOffset, "want", want)
		return 0, false
	case v.QueueOffset > want:
		// The consume queue lost entries (damaged or deleted) while the log,
		// whose CRC and position check out, still has the record: re-base
		// the queue on the log rather than drop the log.
		s.log.Warn("recovery: consume queue is missing entries; re-basing it on the log",
			"offset", off, "topic", q.topic.name, "queue", q.id, "queue_offset", v.QueueOffset, "had", want)
		var err error
		if gap := v.QueueOffset - want; want > 0 && gap <= maxQueueGap {
			q.cq.pad(v.QueueOffset) // keep the entries it has; holes read as skipped
		} else {
			err = q.cq.rebase(v.QueueOffset)
		}
		if err != nil {
			s.log.Error("recovery: cannot re-base consume queue; truncating the log here", "err", err)
			return 0, false
		}
	}
	s.dispatchRecord(rec, off)
	return v.StoreTimestamp, true
}

// maxQueueGap bounds how many lost consume-queue entries recovery fills
// with holes; a larger gap re-bases the queue instead.
const maxQueueGap = 1 << 20

// fixTail makes the segment holding end the active one: later segments are
// removed (they cannot hold acknowledged data), the rest of it is zeroed so
// stale bytes are never mistaken for records, and it is reopened for
// writing. If end is the end of a sealed segment, a new one is created.
func (s *Store) fixTail(end int64) error {
	for _, q := range s.touched { // recovery dispatch needs no notifications
		q.mark = false
	}
	s.touched = s.touched[:0]
	k := len(s.segs) - 1
	for k >= 0 && s.segs[k].base > end {
		k--
	}
	if k >= 0 && end == s.segs[k].base+s.segs[k].size {
		// end is a sealed boundary; a segment starting there may exist.
		if k+1 < len(s.segs) && s.segs[k+1].base == end {
			k++
		}
	}
	for _, sg := range s.segs[k+1:] {
		if sg.base > end && segmentHasData(sg) && !(s.cfg.Truncate && end == s.cfg.TruncateTo) {
			// A later segment holds data only if this one was sealed, so
			// the log does not really end here: a record in the middle is
			// damaged. Truncating would drop acknowledged messages.
			return fmt.Errorf("%w: the log is damaged at offset %d but segment %s after it holds data; "+
				"refusing to truncate acknowledged messages (inspect the segment, or move the later segments away to accept the loss)",
				ErrCorrupt, end, sg.path)
		}
	}
	for _, sg := range s.segs[k+1:] {
		s.log.Warn("recovery: removing segment past the end of the log", "path", sg.path)
		sg.close()
		if err := os.Remove(sg.path); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	s.segs = s.segs[:k+1]
	if k < 0 || end == s.segs[k].base+s.segs[k].size {
		seg, err := createSegment(s.logDir, end, s.cfg.SegmentSize, !s.cfg.DisableDirectIO)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if err := syncDir(s.logDir); err != nil {
			return err
		}
		s.segs = append(s.segs, seg)
		if len(s.segs) == 1 {
			s.minLog.Store(seg.base)
		}
	} else {
		old := s.segs[k]
		if err := s.quarantineTail(old, end); err != nil {
			return err
		}
		old.close()
		seg, err := openSegment(s.logDir, old.base, true, !s.cfg.DisableDirectIO)
		if err != nil {
			return err
		}
		if err := zeroRange(seg.w, end-seg.base, seg.size-(end-seg.base)); err != nil {
			seg.close()
			return fmt.Errorf("store: zero tail of %s: %w", seg.path, err)
		}
		if err := fdatasync(seg.w); err != nil {
			seg.close()
			return err
		}
		s.segs[k] = seg
	}
	s.active = s.segs[len(s.segs)-1]
	s.active.sealed = false
	s.direct = s.active.direct
	s.align = defaultBlockSize
	if s.active.direct {
		if s.align = dioAlignment(s.active.w); s.align > maxAlign {
			// Segment sizes are multiples of maxAlign; a device that needs
			// more is written through the page cache instead.
			s.log.Warn("direct I/O alignment too large; using buffered I/O", "align", s.align)
			seg := s.active
			seg.close()
			s.cfg.DisableDirectIO = true
			nseg, err := openSegment(s.logDir, seg.base, true, false)
			if err != nil {
				return err
			}
			s.segs[len(s.segs)-1], s.active = nseg, nseg
			s.align = defaultBlockSize
		}
	}
	s.wpos = end - s.active.base
	start := alignDown(int(s.wpos), s.align)
	b := &wbuf{data: alignedBuffer(s.cfg.WriteBufferSize, s.align)}
	b.reset(s.active, int64(start))
	if s.wpos > int64(start) {
		if _, err := s.active.r.ReadAt(b.data[:int(s.wpos)-start], int64(start)); err != nil {
			return fmt.Errorf("store: read tail block: %w", err)
		}
	}
	b.n = int(s.wpos) - start
	b.flushedN, b.dispFrom = b.n, b.n
	s.cur = b
	return nil
}

// repairShortSegment extends the last segment when its file is not a whole
// number of maxAlign units (it was cut short outside the store): its marker
// and direct-I/O writes need a size the store itself would have chosen.
func (s *Store) repairShortSegment(sg *segment) error {
	if sg.size%maxAlign == 0 && sg.size > 0 {
		return nil
	}
	size := alignUp64(sg.size+markerSize, maxAlign)
	if sg.size == 0 {
		// Created but its preallocation never became durable.
		size = s.cfg.SegmentSize
	}
	s.log.Warn("recovery: segment file is cut short; extending it", "path", sg.path, "size", sg.size, "new_size", size)
	f, err := os.OpenFile(sg.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	if err := preallocate(f, size); err != nil {
		return fmt.Errorf("store: extend %s: %w", sg.path, err)
	}
	sg.size = size
	return nil
}

// segmentHasData reports whether a segment's first bytes are not zero.
func segmentHasData(sg *segment) bool {
	var b [8]byte
	n, _ := sg.r.ReadAt(b[:], 0)
	return n == len(b) && b != [8]byte{}
}

// quarantineTail copies the bytes recovery is about to discard from the
// end of sg (at most what can have been in flight, plus slack) to
// commitlog/quarantine/<offset>, if any of them is not zero, so that damage
// can be examined and nothing is destroyed silently.
func (s *Store) quarantineTail(sg *segment, end int64) error {
	pos := end - sg.base
	n := min(sg.size-pos, int64(s.cfg.WriteBuffers*s.cfg.WriteBufferSize+maxAlign))
	if n <= 0 {
		return nil
	}
	buf := make([]byte, n)
	got, err := sg.r.ReadAt(buf, pos)
	if err != nil && err != io.EOF {
		return fmt.Errorf("store: read tail of %s: %w", sg.path, err)
	}
	buf = buf[:got]
	last := len(buf)
	for last > 0 && buf[last-1] == 0 {
		last--
	}
	if last == 0 {
		return nil
	}
	dir := filepath.Join(s.logDir, "quarantine")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	path := filepath.Join(dir, segmentName(end))
	if err := os.WriteFile(path, buf[:last], 0o644); err != nil {
		return fmt.Errorf("store: quarantine discarded tail: %w", err)
	}
	s.log.Warn("recovery: discarded tail saved", "path", path, "bytes", last)
	return nil
}

// checkRecordStart checks that a record, a segment or the end of the log
// starts at log offset off.
func (s *Store) checkRecordStart(off int64) error {
	var sg *segment
	for _, g := range s.segs {
		if off >= g.base && off < g.base+g.size {
			sg = g
		}
		if off == g.base {
			return nil
		}
	}
	if sg == nil {
		return nil // past every segment: the end of the log
	}
	buf := make([]byte, min(int64(s.cfg.MaxMessageSize+recordOverhead), sg.size-(off-sg.base)))
	n, err := sg.r.ReadAt(buf, off-sg.base)
	if err != nil && err != io.EOF {
		return fmt.Errorf("store: read %s: %w", sg.path, err)
	}
	switch kind, _ := classify(buf[:n], sg.base, off-sg.base, sg.size, s.cfg.MaxMessageSize); kind {
	case kindRecord, kindEnd, kindMarker:
		return nil
	}
	return fmt.Errorf("%w: cannot truncate the log to %d: no record starts there", ErrCorrupt, off)
}
