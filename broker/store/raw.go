package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/strata-mq/strata/remoting"
)

// Replication copies a leader's commit log byte for byte: ReadLog gives the
// leader's log bytes from an offset, AppendRaw writes them into a
// follower's store at the same offsets. The follower's consume queues and
// key index are built from the copied records as they would be from its own
// appends, so offset message ids, queue offsets and log offsets agree on
// every replica.

// ErrLogMismatch says that raw log bytes do not continue this store's log:
// they start elsewhere than its end, or a record's queue offset does not
// follow the queue's last one. The log diverged from the leader's.
var ErrLogMismatch = errors.New("store: log bytes do not continue this log")

// LogEnd returns the end of the log that is durable (FlushSync) or written
// (FlushAsync): the offset after its last readable byte.
func (s *Store) LogEnd() int64 { return s.flushed.Load() }

// LogStart returns the first log offset the store still holds.
func (s *Store) LogStart() int64 { return s.minLog.Load() }

// SegmentSize returns the size of new segments. Replicas must agree on it,
// since a segment's end marker is part of the log.
func (s *Store) SegmentSize() int64 { return s.cfg.SegmentSize }

// WaitLogEnd waits until LogEnd passes past and returns it. It returns
// LogEnd and ctx's error when ctx ends first, ErrClosed once the store is
// closing.
func (s *Store) WaitLogEnd(ctx context.Context, past int64) (int64, error) {
	for {
		s.endMu.Lock()
		if s.endCh == nil {
			s.endCh = make(chan struct{})
		}
		ch := s.endCh
		s.endMu.Unlock()
		if e := s.flushed.Load(); e > past {
			return e, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return s.flushed.Load(), ctx.Err()
		case <-s.quit:
			return s.flushed.Load(), ErrClosed
		}
	}
}

// notifyEnd wakes WaitLogEnd callers after the log end moved.
func (s *Store) notifyEnd() {
	s.endMu.Lock()
	if s.endCh != nil {
		close(s.endCh)
		s.endCh = nil
	}
	s.endMu.Unlock()
}

// ReadLog copies log bytes from off into buf: whole records only, up to
// LogEnd, and never past the end of off's segment. When the bytes end with
// a segment's end marker, next is the following segment's first offset;
// otherwise it is off+n. n is 0 when off is at the log end. buf must hold
// the largest record (MaxMessageSize plus a few bytes).
func (s *Store) ReadLog(off int64, buf []byte) (n int, next int64, err error) {
	end := s.flushed.Load()
	switch {
	case off == end:
		return 0, off, nil
	case off > end:
		return 0, off, fmt.Errorf("%w: offset %d is past the log end %d", ErrLogMismatch, off, end)
	case off < s.minLog.Load():
		return 0, off, fmt.Errorf("%w: log offset %d was deleted (the log starts at %d)", ErrNotFound, off, s.minLog.Load())
	}
	s.segMu.RLock()
	defer s.segMu.RUnlock()
	seg := s.segmentForLocked(off)
	if seg == nil {
		return 0, off, fmt.Errorf("%w: log offset %d", ErrNotFound, off)
	}
	k := int(min(int64(len(buf)), min(end, seg.base+seg.size)-off))
	if s.tail == nil || !s.tail.read(off, buf[:k]) {
		if _, err := seg.r.ReadAt(buf[:k], off-seg.base); err != nil {
			return 0, off, fmt.Errorf("store: read %s: %w", seg.path, err)
		}
	}
	p := 0
	for p+8 <= k {
		total := int(binary.BigEndian.Uint32(buf[p:]))
		switch binary.BigEndian.Uint32(buf[p+4:]) {
		case remoting.BlankMagic:
			if int64(total) != seg.base+seg.size-(off+int64(p)) {
				return 0, off, fmt.Errorf("%w: bad segment end marker at log offset %d", ErrCorrupt, off+int64(p))
			}
			return p + markerSize, seg.base + seg.size, nil
		case remoting.MessageMagic:
			if total < remoting.MinRecordSize {
				return 0, off, fmt.Errorf("%w: record at log offset %d", ErrCorrupt, off+int64(p))
			}
			if p+total+recordOverhead > k {
				goto done
			}
			p += total + recordOverhead
		default:
			return 0, off, fmt.Errorf("%w: no record at log offset %d", ErrCorrupt, off+int64(p))
		}
	}
done:
	if p == 0 && k == len(buf) {
		return 0, off, fmt.Errorf("store: ReadLog: a %d-byte buffer does not hold the record at %d", len(buf), off)
	}
	if p == 0 {
		return 0, off, fmt.Errorf("%w: log bytes before the end %d at %d are not a record", ErrCorrupt, end, off)
	}
	return p, off + int64(p), nil
}

// AppendRaw appends log bytes read with ReadLog from another store (the
// leader's), which must start at this store's log end and be whole records
// and segment end markers. Every record is checked (CRC, its log offset,
// its queue offset following the queue's last one) before it is taken; a
// marker seals the active segment and continues in the next one, as on
// the leader (segment sizes must agree). On error the records before the
// bad one are appended. Under FlushSync, wait on the returned Pending for
// the bytes to be durable; end is the log end after them.
func (s *Store) AppendRaw(ctx context.Context, off int64, data []byte) (p Pending, end int64, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Pending{}, 0, ErrClosed
	}
	if e := s.active.base + s.wpos; off != e {
		s.mu.Unlock()
		return Pending{}, 0, fmt.Errorf("%w: bytes for log offset %d, the log ends at %d", ErrLogMismatch, off, e)
	}
	var spare *wbuf
	msgs, bytes := 0, 0
	for pos := 0; pos < len(data) && err == nil; {
		if s.closed {
			err = ErrClosed
			break
		}
		if s.werr != nil {
			err = fmt.Errorf("%w: %w", ErrFailed, s.werr)
			break
		}
		rec := data[pos:]
		kind, n := classify(rec, s.active.base, s.wpos, s.active.size, s.cfg.MaxMessageSize)
		at := s.active.base + s.wpos
		if kind == kindShort {
			err = fmt.Errorf("%w: truncated record at log offset %d", ErrCorrupt, at)
			break
		}
		// The buffer needs room for the record and a marker after it.
		if kind == kindMarker || kind == kindRecord && s.cur.n+n+markerSize > len(s.cur.data) {
			if spare == nil {
				var waited bool
				if spare, waited, err = s.takeFreeLocked(ctx); err != nil || waited {
					continue // look again: s.mu was released
				}
			}
			if kind == kindMarker {
				if err = s.rollLocked(spare); err == nil {
					spare = nil
					pos += markerSize
				}
				continue
			}
			s.swapLocked(spare)
			spare = nil
		}
		if kind != kindRecord {
			err = fmt.Errorf("%w: log bytes at offset %d are not a record", ErrCorrupt, at)
			break
		}
		v, perr := remoting.ParseRecordFields(rec[:n-recordOverhead])
		if perr != nil {
			err = fmt.Errorf("%w: record at log offset %d: %w", ErrCorrupt, at, perr)
			break
		}
		q, qerr := s.queueLocked(string(v.Topic), v.QueueID)
		if qerr != nil {
			err = qerr
			break
		}
		if v.QueueOffset != q.next {
			err = fmt.Errorf("%w: record at log offset %d has queue offset %d in %s/%d, which is at %d",
				ErrLogMismatch, at, v.QueueOffset, v.Topic, v.QueueID, q.next)
			break
		}
		b := s.cur
		copy(b.data[b.n:], rec[:n])
		b.n += n
		s.wpos += int64(n)
		q.next++
		s.lastTs = max(s.lastTs, v.StoreTimestamp)
		pos += n
		msgs++
		bytes += n - recordOverhead
	}
	ep := s.ep
	end = s.active.base + s.wpos
	s.mu.Unlock()
	s.putFree(spare)
	s.stats.messages.Add(int64(msgs))
	s.stats.bytes.Add(int64(bytes))
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return Pending{s: s, ep: ep}, end, err
}

// Pending is the durability of an AppendRaw.
type Pending struct {
	s  *Store
	ep *epoch
}

// Wait returns once the appended bytes are durable (FlushSync) or written,
// with the same errors as Append.
func (p Pending) Wait(ctx context.Context) error {
	if p.s == nil {
		return nil
	}
	return p.s.wait(ctx, p.ep)
}

// RecordEnd returns the log offset after the record of m, a message that
// Append stored: what a replica must hold for m to be on it.
func RecordEnd(m *remoting.MessageExt) int64 {
	return m.PhysicalOffset + int64(m.Size()) + recordOverhead
}
