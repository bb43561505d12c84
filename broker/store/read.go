package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/strata-mq/strata/remoting"
)

// GetStatus says what Get found; it mirrors RocketMQ's GetMessageStatus so
// the broker can map it onto pull response codes.
type GetStatus int

const (
	// Found: Records holds at least one message.
	Found GetStatus = iota
	// NoMatchedMessage: entries were scanned but none passed the filter;
	// NextOffset is past them.
	NoMatchedMessage
	// NoMatchedQueue: the topic/queue has never been written.
	NoMatchedQueue
	// NoMessageInQueue: the queue holds no entries.
	NoMessageInQueue
	// OffsetTooSmall: the offset precedes the queue's min offset.
	OffsetTooSmall
	// OffsetOverflowOne: the offset equals the max offset (caught up).
	OffsetOverflowOne
	// OffsetOverflowBadly: the offset is past the max offset.
	OffsetOverflowBadly
	// MessageRemoved: the entries point into a segment deleted meanwhile.
	MessageRemoved
)

var statusNames = [...]string{"FOUND", "NO_MATCHED_MESSAGE", "NO_MATCHED_LOGIC_QUEUE", "NO_MESSAGE_IN_QUEUE",
	"OFFSET_TOO_SMALL", "OFFSET_OVERFLOW_ONE", "OFFSET_OVERFLOW_BADLY", "MESSAGE_WAS_REMOVING"}

func (g GetStatus) String() string {
	if int(g) < len(statusNames) {
		return statusNames[g]
	}
	return fmt.Sprintf("GetStatus(%d)", int(g))
}

// GetResult is what Get returns.
type GetResult struct {
	Status GetStatus
	// Records are MessageExt records exactly as stored, ready to be sent as
	// a pull response body one after another.
	Records [][]byte
	// NextOffset is where the next pull should start.
	NextOffset int64
	// MinOffset and MaxOffset bound the queue: [MinOffset, MaxOffset).
	MinOffset, MaxOffset int64
}

// maxFilterScan is how many entries one Get scans at most when a filter
// rejects them (RocketMQ scans 16,000 bytes of consume queue: 800 entries).
const maxFilterScan = 800

// Get returns up to maxMsgs records (and at most maxBytes of them, though
// always at least one) of topic/queueID from offset. filter, if not nil,
// selects entries by tag hash before their records are read.
func (s *Store) Get(topic string, queueID int32, offset int64, maxMsgs, maxBytes int, filter func(tagHash int64) bool) (GetResult, error) {
	q := s.lookupQueue(topic, queueID)
	if q == nil {
		return GetResult{Status: NoMatchedQueue}, nil
	}
	r := GetResult{MaxOffset: q.cq.maxOffset(), MinOffset: q.cq.minOffset(s.minLog.Load())}
	switch {
	case r.MaxOffset == 0:
		r.Status, r.NextOffset = NoMessageInQueue, 0
		return r, nil
	case offset < r.MinOffset:
		r.Status, r.NextOffset = OffsetTooSmall, r.MinOffset
		return r, nil
	case offset == r.MaxOffset:
		r.Status, r.NextOffset = OffsetOverflowOne, offset
		return r, nil
	case offset > r.MaxOffset:
		r.Status, r.NextOffset = OffsetOverflowBadly, r.MaxOffset
		return r, nil
	}
	maxMsgs = max(1, maxMsgs)
	scan := maxMsgs
	if filter != nil {
		scan = max(scan, maxFilterScan)
	}
	var ebuf [64]Entry
	var sel []Entry
	scanned, bytes := int64(0), 0
	for scanned < int64(scan) && len(sel) < maxMsgs {
		es, from, err := q.cq.read(offset+scanned, min(len(ebuf), scan-int(scanned)), ebuf[:0])
		if err != nil {
			return r, err
		}
		if from != offset+scanned {
			r.Status, r.NextOffset = OffsetTooSmall, from
			return r, nil
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if len(sel) == maxMsgs || (len(sel) > 0 && bytes+int(e.Size) > maxBytes) {
				scan = 0
				break
			}
			scanned++
			if e.Size == 0 { // a hole left by recovery: the entry was lost
				continue
			}
			if filter != nil && !filter(e.TagHash) {
				continue
			}
			if sel == nil {
				sel = make([]Entry, 0, min(maxMsgs, 64))
			}
			sel = append(sel, e)
			bytes += int(e.Size)
		}
	}
	r.NextOffset = offset + scanned
	if len(sel) == 0 {
		r.Status = NoMatchedMessage
		return r, nil
	}
	recs, err := s.readRecords(sel)
	if err != nil {
		if err == ErrNotFound {
			r.Status = MessageRemoved
			return r, nil
		}
		return r, err
	}
	r.Status, r.Records = Found, recs
	return r, nil
}

// readRecords reads the records of es. Records that follow each other in
// one segment are read with one pread; each is checked against its CRC.
func (s *Store) readRecords(es []Entry) ([][]byte, error) {
	total := 0
	for _, e := range es {
		if e.Size < remoting.MinRecordSize || int(e.Size) > s.cfg.MaxMessageSize || e.LogOffset < 0 {
			return nil, fmt.Errorf("%w: consume-queue entry points at %d with size %d", ErrCorrupt, e.LogOffset, e.Size)
		}
		total += int(e.Size) + recordOverhead
	}
	buf := make([]byte, total)
	out := make([][]byte, 0, len(es))
	s.segMu.RLock()
	defer s.segMu.RUnlock()
	if es[0].LogOffset < s.minLog.Load() {
		return nil, ErrNotFound
	}
	for i := 0; i < len(es); {
		seg := s.segmentForLocked(es[i].LogOffset)
		if seg == nil {
			return nil, ErrNotFound
		}
		j, end := i+1, es[i].LogOffset+int64(es[i].Size)+recordOverhead
		for j < len(es) && es[j].LogOffset == end && end < seg.base+seg.size {
			end += int64(es[j].Size) + recordOverhead
			j++
		}
		n := int(end - es[i].LogOffset)
		chunk := buf[:n]
		buf = buf[n:]
		if s.tail != nil && s.tail.read(es[i].LogOffset, chunk) {
			s.stats.tailReads.Add(1)
		} else {
			if _, err := seg.r.ReadAt(chunk, es[i].LogOffset-seg.base); err != nil {
				return nil, fmt.Errorf("store: read %s at %d: %w", seg.path, es[i].LogOffset-seg.base, err)
			}
			s.stats.fileReads.Add(1)
		}
		for ; i < j; i++ {
			sz := int(es[i].Size)
			rec := chunk[:sz]
			if err := checkRecord(chunk[:sz+recordOverhead], es[i]); err != nil {
				return nil, err
			}
			out = append(out, rec[:sz:sz])
			chunk = chunk[sz+recordOverhead:]
		}
	}
	return out, nil
}

func checkRecord(b []byte, e Entry) error {
	sz := len(b) - recordOverhead
	if remoting.RecordSize(b) != sz || binary.BigEndian.Uint32(b[4:]) != remoting.MessageMagic ||
		crc32.Checksum(b[:sz], castagnoli) != binary.BigEndian.Uint32(b[sz:]) {
		return fmt.Errorf("%w: record at log offset %d (size %d) fails its check", ErrCorrupt, e.LogOffset, e.Size)
	}
	return nil
}

// ReadAt returns the record stored at log offset off (the commit-log offset
// inside an offset message id).
func (s *Store) ReadAt(off int64) ([]byte, error) {
	if off < s.minLog.Load() || off >= s.flushed.Load() {
		return nil, fmt.Errorf("%w: log offset %d", ErrNotFound, off)
	}
	s.segMu.RLock()
	defer s.segMu.RUnlock()
	seg := s.segmentForLocked(off)
	if seg == nil {
		return nil, fmt.Errorf("%w: log offset %d", ErrNotFound, off)
	}
	var hdr [8]byte
	if _, err := seg.r.ReadAt(hdr[:], off-seg.base); err != nil {
		return nil, fmt.Errorf("store: read %s: %w", seg.path, err)
	}
	sz := int(binary.BigEndian.Uint32(hdr[:]))
	if binary.BigEndian.Uint32(hdr[4:]) != remoting.MessageMagic || sz < remoting.MinRecordSize ||
		sz > s.cfg.MaxMessageSize || off-seg.base+int64(sz)+recordOverhead > seg.size {
		return nil, fmt.Errorf("%w: no record starts at log offset %d", ErrNotFound, off)
	}
	b := make([]byte, sz+recordOverhead)
	if _, err := seg.r.ReadAt(b, off-seg.base); err != nil {
		return nil, fmt.Errorf("store: read %s: %w", seg.path, err)
	}
	if err := checkRecord(b, Entry{LogOffset: off, Size: int32(sz)}); err != nil {
		return nil, err
	}
	if int64(binary.BigEndian.Uint64(b[remoting.OffPhysicalOffset:])) != off {
		return nil, fmt.Errorf("%w: no record starts at log offset %d", ErrNotFound, off)
	}
	return b[:sz:sz], nil
}

// MaxOffset returns the queue's next offset (0 for an unknown queue).
func (s *Store) MaxOffset(topic string, queueID int32) int64 {
	if q := s.lookupQueue(topic, queueID); q != nil {
		return q.cq.maxOffset()
	}
	return 0
}

// MinOffset returns the queue's first offset still held in the hot tier.
func (s *Store) MinOffset(topic string, queueID int32) int64 {
	if q := s.lookupQueue(topic, queueID); q != nil {
		return q.cq.minOffset(s.minLog.Load())
	}
	return 0
}

// Entries returns up to n consume-queue entries of topic/queueID from
// offset from (the tier builds its per-queue index from them).
func (s *Store) Entries(topic string, queueID int32, from int64, n int) ([]Entry, error) {
	q := s.lookupQueue(topic, queueID)
	if q == nil {
		return nil, nil
	}
	es, _, err := q.cq.read(from, n, nil)
	return es, err
}

// Queues lists every topic/queue the store holds.
func (s *Store) Queues() []QueueInfo {
	qs := s.allQueues()
	out := make([]QueueInfo, 0, len(qs))
	minLog := s.minLog.Load()
	for _, q := range qs {
		out = append(out, QueueInfo{Topic: q.topic.name, QueueID: q.id, MinOffset: q.cq.minOffset(minLog), MaxOffset: q.cq.maxOffset()})
	}
	return out
}

// QueueInfo describes one queue.
type QueueInfo struct {
	Topic                string
	QueueID              int32
	MinOffset, MaxOffset int64
}

// storeTimeAt reads the STORETIMESTAMP of the record at log offset off.
func (s *Store) storeTimeAt(off int64) (int64, error) {
	s.segMu.RLock()
	defer s.segMu.RUnlock()
	seg := s.segmentForLocked(off)
	if seg == nil || off < s.minLog.Load() {
		return 0, ErrNotFound
	}
	var b [remoting.OffBornHost + 20 + 8]byte
	if _, err := seg.r.ReadAt(b[:], off-seg.base); err != nil {
		return 0, fmt.Errorf("store: read %s: %w", seg.path, err)
	}
	p := remoting.StoreTimestampPos(int32(binary.BigEndian.Uint32(b[remoting.OffSysFlag:])))
	return int64(binary.BigEndian.Uint64(b[p:])), nil
}

// OffsetForTime returns the first offset of topic/queueID whose message was
// stored at or after ts (ms since the epoch), or the max offset if none was.
// Store timestamps never decrease along the log, so this is a binary search.
func (s *Store) OffsetForTime(topic string, queueID int32, ts int64) (int64, error) {
	q := s.lookupQueue(topic, queueID)
	if q == nil {
		return 0, nil
	}
	lo, hi := q.cq.minOffset(s.minLog.Load()), q.cq.maxOffset()
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, err := q.cq.entry(mid)
		if err != nil {
			return 0, err
		}
		t, err := s.storeTimeAt(e.LogOffset)
		if err == ErrNotFound { // deleted meanwhile: everything before is gone
			lo = mid + 1
			continue
		}
		if err != nil {
			return 0, err
		}
		if t < ts {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// QueryByKey returns up to max records of topic whose KEYS contain key or
// whose UNIQ_KEY is key, stored within [begin, end] (ms), newest first.
func (s *Store) QueryByKey(topic, key string, max int, begin, end int64) ([][]byte, error) {
	// Every message acknowledged before the query is found by it.
	s.waitIndexed(s.flushed.Load())
	offs := s.idx.lookup(topic, key, max*2+8, begin, end)
	var out [][]byte
	seen := make(map[int64]bool, len(offs))
	for _, off := range offs {
		if len(out) == max {
			break
		}
		if seen[off] {
			continue
		}
		seen[off] = true
		rec, err := s.ReadAt(off)
		if err != nil {
			continue // truncated away, deleted, or a stale index entry
		}
		v, err := remoting.ParseRecordFields(rec)
		if err != nil || string(v.Topic) != topic || !remoting.HasKey(v.Properties, key) || v.StoreTimestamp < begin || v.StoreTimestamp > end {
			continue
		}
		out = append(out, rec)
	}
	slices.SortStableFunc(out, func(a, b []byte) int {
		oa := int64(binary.BigEndian.Uint64(a[remoting.OffPhysicalOffset:]))
		ob := int64(binary.BigEndian.Uint64(b[remoting.OffPhysicalOffset:]))
		return cmp.Compare(ob, oa)
	})
	return out, nil
}
