package store

import (
	"log/slog"
	"sync"
	"sync/atomic"
)

// prewriter keeps the active segment written with zeros ahead of the log
// end, so that the flusher's direct writes overwrite blocks that are
// already written.
//
// A preallocated (fallocate'd) segment consists of unwritten extents: the
// first write to each block converts it to written, a metadata change that
// the following fdatasync must commit to the filesystem journal before it
// returns. On ext4 that made every group commit pay for a journal commit
// besides its data, and a direct write contend with the fdatasync in
// flight: the store's 64-writer append rate measured 2 to 4 times lower on
// fallocate'd segments than on segments written in advance (RocketMQ
// "warms" its mapped files for the same reason). Writing zeros ahead in
// large chunks, each synced by the prewriter itself, moves those
// conversions off the commit path: one journal commit per chunk instead of
// one per group commit. The price is that every byte of the log is written
// twice; disk bandwidth is rarely what limits a durable log, fsync latency
// is.
//
// The flusher tells the prewriter how far it has written (claim); the
// prewriter works only past that end plus a margin, and the flusher waits
// for an in-flight chunk before writing into it, so the two never write the
// same bytes at once and zeros never land on data. Sealing a segment
// retires it first, so no chunk is written after its handle closes.
type prewriter struct {
	log    *slog.Logger
	chunk  int64 // bytes per zero write
	lead   int64 // keep this much written ahead of the flusher
	margin int64 // never start a chunk closer than this to the flusher's end
	zeros  []byte
	bytes  atomic.Int64 // zeros written

	mu   sync.Mutex
	cond sync.Cond
	seg  *segment // segment being prewritten; nil: none
	end  int64    // the flusher's write end in seg
	done int64    // seg's bytes from the flusher's first claim to done are written
	busy *segment // segment of the chunk in flight, which starts at done
	quit bool
	wg   sync.WaitGroup
}

// newPrewriter starts a prewriter keeping lead bytes ahead in chunks of
// chunk bytes (both multiples of maxAlign), starting margin bytes past the
// flusher's end.
func newPrewriter(log *slog.Logger, lead, chunk, margin int64) *prewriter {
	p := &prewriter{log: log, chunk: chunk, lead: lead, margin: margin,
		zeros: alignedBuffer(int(chunk), maxAlign)}
	p.cond.L = &p.mu
	p.wg.Add(1)
	go p.run()
	return p
}

// claim tells that the flusher is about to write seg up to file offset end,
// and waits while a chunk in flight overlaps that write.
func (p *prewriter) claim(seg *segment, end int64) {
	p.mu.Lock()
	if p.seg != seg {
		p.seg, p.done = seg, end
	}
	p.end = max(p.end, end)
	for p.busy == seg && end > p.done {
		p.cond.Wait()
	}
	if _, _, _, due := p.next(); due {
		p.cond.Broadcast() // wake run only when there is work: claim is per commit
	}
	p.mu.Unlock()
}

// retire stops prewriting seg (it is being sealed) and waits for a chunk
// in flight on it, after which its write handle may close.
func (p *prewriter) retire(seg *segment) {
	p.mu.Lock()
	if p.seg == seg {
		p.seg = nil
	}
	for p.busy == seg {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

// stop ends the prewriter after the chunk in flight.
func (p *prewriter) stop() {
	p.mu.Lock()
	p.quit = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

// next returns the chunk due now, if any. Called with mu held.
func (p *prewriter) next() (seg *segment, from, to int64, ok bool) {
	if p.seg == nil || p.busy != nil {
		return nil, 0, 0, false
	}
	from = max(p.done, alignUp64(p.end+p.margin, maxAlign))
	if from >= p.seg.size || from-p.end >= p.lead {
		return nil, 0, 0, false
	}
	return p.seg, from, min(from+p.chunk, p.seg.size), true
}

func (p *prewriter) run() {
	defer p.wg.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		seg, from, to, ok := p.next()
		if p.quit {
			return
		}
		if !ok {
			p.cond.Wait()
			continue
		}
		p.done, p.busy = from, seg
		p.mu.Unlock()
		err := pwritev(seg.w, [][]byte{p.zeros[:to-from]}, from)
		if err == nil {
			err = fdatasync(seg.w)
		}
		p.mu.Lock()
		p.busy = nil
		if err != nil {
			// Harmless for the log (the flusher writes those blocks
			// itself, only slower); stop prewriting this segment.
			p.log.Warn("cannot prewrite the active segment; continuing without", "path", seg.path, "err", err)
			if p.seg == seg {
				p.seg = nil
			}
		} else {
			p.bytes.Add(to - from)
			if p.seg == seg {
				p.done = to
			}
		}
		p.cond.Broadcast()
	}
}
