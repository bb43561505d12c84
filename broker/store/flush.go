package store

import (
	"fmt"
	"time"
)

// The write path is a two-stage pipeline, each stage one goroutine:
//
//	writeLoop: takes everything appended since its last turn (one epoch),
//	           writes it with one pwritev per buffer, and hands a commit to
//	syncLoop:  fdatasyncs the segments the commit wrote (FlushSync),
//	           dispatches its records to consume queues and the index, and
//	           releases the epoch's waiters.
//
// While syncLoop waits for one epoch's fdatasync, writeLoop already writes
// the next epoch, so a commit cycle costs about max(write, fdatasync) rather
// than their sum. Commits pass through a FIFO channel, so epochs complete
// and records become readable in log order.

// commit is one epoch handed from writeLoop to syncLoop.
type commit struct {
	ep      *epoch
	ranges  []dispatchRange // records to dispatch, in log order
	written []*segment      // segments written (to fdatasync under FlushSync)
	retired []*wbuf         // buffers to return to the free list
	end     int64           // log end after this commit
	err     error           // write error: fail the epoch
}

type dispatchRange struct {
	b *wbuf
	n int
}

// writeLoop is the first pipeline stage.
func (s *Store) writeLoop() {
	defer s.wg.Done()
	defer close(s.commits)
	for {
		select {
		case <-s.kick:
			s.writeOnce()
		case <-s.quit:
			for s.writeOnce() {
			}
			return
		}
	}
}

// writeOnce writes one epoch and passes it on. It reports whether there was
// anything to write.
func (s *Store) writeOnce() bool {
	s.mu.Lock()
	if s.werr != nil {
		s.mu.Unlock()
		return false
	}
	jobs := s.pending
	s.pending = nil
	cur := s.cur
	curN := cur.n
	if len(jobs) == 0 && curN == cur.flushedN {
		s.mu.Unlock()
		return false
	}
	c := &commit{ep: s.ep, retired: jobs, end: cur.seg.base + cur.start + int64(curN)}
	s.ep = newEpoch()
	s.mu.Unlock()

	c.err = s.writeCommit(c, jobs, cur, curN)
	if c.err != nil {
		// Stop writing: nothing after a failed write may become durable
		// ahead of it. syncLoop fails this epoch and every later one.
		s.setFailed(c.err)
	}
	s.commits <- c
	return c.err == nil
}

func (s *Store) writeCommit(c *commit, jobs []*wbuf, cur *wbuf, curN int) error {
	for _, j := range jobs {
		if err := s.writeBuf(c, j, j.n, false); err != nil {
			return err
		}
		c.ranges = append(c.ranges, dispatchRange{j, j.n})
		if j.seal {
			// The marker must be durable before anything is written to the
			// next segment, so recovery never finds data past an unsealed
			// end. Sealing is rare; this sync is off the common path.
			if err := s.fsync(j.seg); err != nil {
				return err
			}
		}
	}
	if err := s.writeBuf(c, cur, curN, true); err != nil {
		return err
	}
	c.ranges = append(c.ranges, dispatchRange{cur, curN})
	return nil
}

// writeBuf writes b.data[flushedN:n] to b's segment. With direct I/O it
// writes whole aligned blocks from the block containing flushedN; the last
// partial block is zero-padded (through the scratch block when live, as
// appenders may be filling the rest of b).
func (s *Store) writeBuf(c *commit, b *wbuf, n int, live bool) error {
	if n <= b.flushedN {
		return nil
	}
	seg := b.seg
	if !seg.dirSynced {
		// The new segment's directory entry must be durable before its
		// data counts as durable.
		if err := syncDir(s.logDir); err != nil {
			return err
		}
		seg.dirSynced = true
	}
	if len(c.written) == 0 || c.written[len(c.written)-1] != seg {
		c.written = append(c.written, seg)
	}
	t0 := time.Now()
	defer func() { s.stats.writeNanos.Add(int64(time.Since(t0))) }()
	if !seg.direct {
		if _, err := seg.w.WriteAt(b.data[b.flushedN:n], b.start+int64(b.flushedN)); err != nil {
			return fmt.Errorf("write segment %s: %w", seg.path, err)
		}
		s.stats.writes.Add(1)
		b.flushedN = n
		return nil
	}
	from := alignDown(b.flushedN, s.align)
	full := alignDown(n, s.align)
	if !live {
		end := alignUp(n, s.align)
		clear(b.data[n:end])
		full = end
	}
	// One write per buffer: each O_DIRECT write waits for the device.
	iov := s.iov[:0]
	if full > from {
		iov = append(iov, b.data[from:full])
	}
	if live && n > full {
		k := copy(s.scratch, b.data[full:n])
		clear(s.scratch[k:])
		iov = append(iov, s.scratch)
	}
	s.iov = iov[:0]
	if s.pw != nil {
		n := 0
		for _, v := range iov {
			n += len(v)
		}
		s.pw.claim(seg, b.start+int64(from+n))
	}
	if err := pwritev(seg.w, iov, b.start+int64(from)); err != nil {
		return fmt.Errorf("write segment %s: %w", seg.path, err)
	}
	s.stats.writes.Add(1)
	b.flushedN = n
	return nil
}

func (s *Store) fsync(seg *segment) error {
	if s.cfg.syncHook != nil {
		if err := s.cfg.syncHook(); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if err := fdatasync(seg.w); err != nil {
		return err
	}
	s.stats.syncNanos.Add(int64(time.Since(t0)))
	s.stats.syncs.Add(1)
	return nil
}

// syncLoop is the second pipeline stage. Under FlushAsync it also
// fdatasyncs written segments every FlushInterval.
func (s *Store) syncLoop() {
	defer s.wg.Done()
	defer close(s.idxCh)
	var tick <-chan time.Time
	if s.cfg.Flush == FlushAsync {
		t := time.NewTicker(s.cfg.FlushInterval)
		defer t.Stop()
		tick = t.C
	}
	var failed error
	lastEnd := s.flushed.Load() // end of the last commit received (written)
	unsynced := map[*segment]bool{}
	syncAll := func() error {
		for seg := range unsynced {
			if err := s.fsync(seg); err != nil {
				return err
			}
			delete(unsynced, seg)
		}
		s.synced.Store(lastEnd)
		return nil
	}
	for {
		select {
		case c, ok := <-s.commits:
			if !ok {
				if failed == nil {
					if err := syncAll(); err != nil {
						s.log.Error("final fdatasync failed", "err", err)
					}
				}
				return
			}
			for _, seg := range c.written {
				unsynced[seg] = true
			}
			if c.err == nil {
				lastEnd = c.end
			}
			err := c.err
			if err == nil && failed == nil && s.cfg.Flush == FlushSync {
				err = syncAll()
			}
			if err != nil && failed == nil {
				failed = err
				s.log.Error("commit log write failed; the store refuses appends until reopened", "err", err)
				s.setFailed(err)
			}
			if failed != nil {
				c.ep.err = fmt.Errorf("%w: %w", ErrFailed, failed)
				close(c.ep.done)
				for _, b := range c.retired {
					s.free <- b
				}
				continue
			}
			s.complete(c, unsynced)
		case <-tick:
			if failed == nil {
				if err := syncAll(); err != nil {
					failed = err
					s.log.Error("periodic fdatasync failed; the store refuses appends until reopened", "err", err)
					s.setFailed(err)
				}
			}
		}
	}
}

// complete makes a durable commit's records readable and releases its
// waiters.
func (s *Store) complete(c *commit, unsynced map[*segment]bool) {
	// The log end moves first: a record that a pull can find through its
	// queue must already be readable by log offset (a consumer's send-back
	// reads it that way at once).
	s.flushed.Store(c.end)
	for _, r := range c.ranges {
		if s.tail != nil && r.n > r.b.dispFrom {
			s.tail.add(r.b.seg.base+r.b.start+int64(r.b.dispFrom), r.b.data[r.b.dispFrom:r.n])
		}
		s.dispatchBuf(r.b, r.n)
	}
	s.dispatched.Store(c.end)
	s.publishKeys(c.end)
	s.notifyTouched()
	s.notifyEnd()
	s.stats.commits.Add(1)
	// A segment sealed by this commit is marked sealed (and OnSeal told)
	// before the waiters go, so Seal returns with the segment sealed.
	for _, b := range c.retired {
		if b.seal {
			delete(unsynced, b.seg)
			s.afterSeal(b.seg, b.start+int64(b.n))
		}
	}
	close(c.ep.done)
	for _, b := range c.retired {
		s.free <- b
	}
}

// afterSeal releases a sealed segment's write handle and the unused space
// after its marker (an early, age-driven seal leaves most of a preallocated
// segment unused), and tells OnSeal. used is the file position after the
// marker.
func (s *Store) afterSeal(seg *segment, used int64) {
	if s.pw != nil {
		s.pw.retire(seg)
	}
	if rest := seg.size - alignUp64(used, maxAlign); rest >= 1<<20 && seg.w != nil {
		if err := punchHole(seg.w, seg.size-rest, rest); err != nil {
			s.log.Warn("cannot release the unused end of a sealed segment", "path", seg.path, "err", err)
		}
	}
	s.segMu.Lock()
	seg.sealed = true
	seg.sealedAt = time.Now()
	w := seg.w
	seg.w = nil
	info := seg.info(seg.base + seg.size)
	s.segMu.Unlock()
	if w != nil {
		w.Close()
	}
	if s.cfg.OnSeal != nil {
		s.cfg.OnSeal(info)
	}
}

// setFailed makes an I/O error sticky and fails the epoch that appenders
// are gathering in, which no write will ever carry now.
func (s *Store) setFailed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.werr != nil {
		return // already failed; the gathering epoch was failed then
	}
	s.werr = err
	s.ep.err = fmt.Errorf("%w: %w", ErrFailed, s.werr)
	close(s.ep.done)
	s.ep = newEpoch()
	s.ep.err = fmt.Errorf("%w: %w", ErrFailed, s.werr)
	close(s.ep.done)
}
