package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cqEntrySize is the size of one consume-queue entry: commit-log offset (8),
// record size (4), tag hash (8), big-endian, as RocketMQ's ConsumeQueue.
const cqEntrySize = 20

// Entry is one consume-queue entry.
type Entry struct {
	LogOffset int64 // commit-log offset of the record
	Size      int32 // record size (TOTALSIZE, without the CRC trailer)
	TagHash   int64 // hash of the TAGS property (remoting.TagHash), 0 if none
}

func putEntry(b []byte, e Entry) {
	binary.BigEndian.PutUint64(b, uint64(e.LogOffset))
	binary.BigEndian.PutUint32(b[8:], uint32(e.Size))
	binary.BigEndian.PutUint64(b[12:], uint64(e.TagHash))
}

func getEntry(b []byte) Entry {
	return Entry{
		LogOffset: int64(binary.BigEndian.Uint64(b)),
		Size:      int32(binary.BigEndian.Uint32(b[8:])),
		TagHash:   int64(binary.BigEndian.Uint64(b[12:])),
	}
}

// consumeQueue is the offset index of one topic/queue: entry N (queue offset
// N) lives at byte 20·(N mod perFile) of the file whose first entry is
// N - N mod perFile. New entries are kept in memory (tail) until the
// checkpointer writes them; they are readable from the moment they are
// dispatched.
type consumeQueue struct {
	topic   string
	id      int32
	dir     string
	perFile int64

	flushMu sync.Mutex // serialises flush/sync/drop

	mu      sync.RWMutex
	files   []*cqFile // ascending by first
	count   int64     // entries dispatched: the queue's max offset
	written int64     // entries [.., written) are in files
	tail    []byte    // entries [written, count)
	dirty   bool      // files written since the last sync
	// pendingSince is when a checkpoint first saw the tail non-empty.
	pendingSince time.Time
	// minCache remembers the min offset computed for a log start.
	minLog, minOff int64
	// floor is the offset the queue was started at by rebase (persisted in
	// the startFile): recovery never truncates below it, since the entries
	// under it are history held elsewhere (the cold tier), not torn writes.
	floor int64
}

// startFile records a queue's floor.
const startFile = "start"

type cqFile struct {
	first int64
	f     *os.File
}

func openConsumeQueue(dir, topic string, id int32, perFile int64) (*consumeQueue, error) {
	q := &consumeQueue{topic: topic, id: id, dir: dir, perFile: perFile, minLog: -1}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var firsts []int64
	for _, e := range ents {
		if len(e.Name()) != 20 {
			continue
		}
		if n, err := strconv.ParseInt(e.Name(), 10, 64); err == nil {
			firsts = append(firsts, n)
		}
	}
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	for _, first := range firsts {
		f, err := os.OpenFile(filepath.Join(dir, segmentName(first)), os.O_RDWR, 0o644)
		if err != nil {
			q.close()
			return nil, err
		}
		q.files = append(q.files, &cqFile{first: first, f: f})
	}
	// Every file but the last must be full and follow its predecessor; a
	// short or missing one (a crash between writing two files' entries and
	// the checkpoint's sync) ends the queue there: recovery rebuilds the
	// rest from the log.
	for i := 0; i+1 < len(q.files); i++ {
		f := q.files[i]
		st, err := f.f.Stat()
		if err != nil {
			q.close()
			return nil, err
		}
		if st.Size() >= perFile*cqEntrySize && q.files[i+1].first == f.first+perFile {
			continue
		}
		for _, later := range q.files[i+1:] {
			later.f.Close()
			if err := os.Remove(later.f.Name()); err != nil {
				q.files = q.files[:i+1]
				q.close()
				return nil, err
			}
		}
		q.files = q.files[:i+1]
		break
	}
	if n := len(q.files); n > 0 {
		last := q.files[n-1]
		st, err := last.f.Stat()
		if err != nil {
			q.close()
			return nil, err
		}
		entries := min(st.Size()/cqEntrySize, perFile)
		if st.Size() != entries*cqEntrySize {
			if err := last.f.Truncate(entries * cqEntrySize); err != nil {
				q.close()
				return nil, err
			}
		}
		q.count = last.first + entries
		q.written = q.count
	}
	if b, err := os.ReadFile(filepath.Join(dir, startFile)); err == nil {
		n, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil || n < 0 {
			q.close()
			return nil, fmt.Errorf("consume queue %s: bad start file %q", dir, b)
		}
		q.floor = n
		if q.count < n {
			if err := q.rebase(n); err != nil {
				q.close()
				return nil, err
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		q.close()
		return nil, err
	}
	return q, nil
}

// first returns the first entry still held (0 for a fresh queue).
func (q *consumeQueue) firstLocked() int64 {
	if len(q.files) > 0 {
		return q.files[0].first
	}
	return q.written
}

// maxOffset returns the number of entries dispatched (the next offset).
func (q *consumeQueue) maxOffset() int64 {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return q.count
}

// append adds the next entry. Called only by the dispatcher.
func (q *consumeQueue) append(e Entry) {
	var b [cqEntrySize]byte
	putEntry(b[:], e)
	q.mu.Lock()
	q.tail = append(q.tail, b[:]...)
	q.count++
	q.mu.Unlock()
}

// read returns up to n entries from offset from, appended to dst, and the
// offset of the first one returned (from, or the first held entry if from
// precedes it).
func (q *consumeQueue) read(from int64, n int, dst []Entry) ([]Entry, int64, error) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if first := q.firstLocked(); from < first {
		from = first
	}
	end := min(q.count, from+int64(n))
	var buf [64 * cqEntrySize]byte
	for i := from; i < end; {
		if i >= q.written {
			b := q.tail[(i-q.written)*cqEntrySize : (end-q.written)*cqEntrySize]
			for ; len(b) > 0; b = b[cqEntrySize:] {
				dst = append(dst, getEntry(b))
			}
			break
		}
		f := q.fileFor(i)
		if f == nil {
			return dst, from, fmt.Errorf("consume queue %s/%d: no file holds offset %d", q.topic, q.id, i)
		}
		k := min(end, q.written, f.first+q.perFile, i+int64(len(buf)/cqEntrySize)) - i
		b := buf[:k*cqEntrySize]
		if _, err := f.f.ReadAt(b, (i-f.first)*cqEntrySize); err != nil {
			return dst, from, fmt.Errorf("read consume queue %s/%d at %d: %w", q.topic, q.id, i, err)
		}
		for ; len(b) > 0; b = b[cqEntrySize:] {
			dst = append(dst, getEntry(b))
		}
		i += k
	}
	return dst, from, nil
}

// entry returns entry i.
func (q *consumeQueue) entry(i int64) (Entry, error) {
	var one [1]Entry
	es, from, err := q.read(i, 1, one[:0])
	if err != nil {
		return Entry{}, err
	}
	if len(es) == 0 || from != i {
		return Entry{}, fmt.Errorf("consume queue %s/%d: offset %d not held", q.topic, q.id, i)
	}
	return es[0], nil
}

func (q *consumeQueue) fileFor(i int64) *cqFile {
	k := sort.Search(len(q.files), func(j int) bool { return q.files[j].first > i }) - 1
	if k < 0 {
		return nil
	}
	return q.files[k]
}

// flush writes the in-memory tail to the files. On error (a full disk) the
// tail stays in memory and the next flush tries again.
func (q *consumeQueue) flush() error {
	q.flushMu.Lock()
	defer q.flushMu.Unlock()
	q.mu.RLock()
	start, data := q.written, q.tail
	q.mu.RUnlock()
	if len(data) == 0 {
		return nil
	}
	for off := 0; off < len(data); {
		i := start + int64(off/cqEntrySize)
		f, err := q.writableFile(i)
		if err != nil {
			return err
		}
		k := min(int64(len(data)-off)/cqEntrySize, f.first+q.perFile-i)
		if _, err := f.f.WriteAt(data[off:off+int(k)*cqEntrySize], (i-f.first)*cqEntrySize); err != nil {
			return fmt.Errorf("write consume queue %s/%d: %w", q.topic, q.id, err)
		}
		off += int(k) * cqEntrySize
	}
	q.mu.Lock()
	n := len(data)
	q.written += int64(n / cqEntrySize)
	rest := copy(q.tail, q.tail[n:])
	q.tail = q.tail[:rest]
	q.dirty = true
	q.pendingSince = time.Time{}
	q.mu.Unlock()
	return nil
}

// writableFile returns the file for entry i, creating it if needed. Only
// called with flushMu held.
func (q *consumeQueue) writableFile(i int64) (*cqFile, error) {
	q.mu.RLock()
	f := q.fileFor(i)
	q.mu.RUnlock()
	if f != nil && i < f.first+q.perFile {
		return f, nil
	}
	first := i - i%q.perFile
	path := filepath.Join(q.dir, segmentName(first))
	fh, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create consume queue file: %w", err)
	}
	f = &cqFile{first: first, f: fh}
	q.mu.Lock()
	q.files = append(q.files, f)
	q.mu.Unlock()
	return f, nil
}

// pending reports how many entries wait in memory, the log offset of the
// first, and since when a checkpoint has seen them waiting (stamping now if
// this is the first time).
func (q *consumeQueue) pending(now time.Time) (n int, firstLog int64, since time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = len(q.tail) / cqEntrySize
	if n == 0 {
		q.pendingSince = time.Time{}
		return 0, 0, time.Time{}
	}
	if q.pendingSince.IsZero() {
		q.pendingSince = now
	}
	return n, getEntry(q.tail).LogOffset, q.pendingSince
}

func (q *consumeQueue) isDirty() bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return q.dirty
}

func (q *consumeQueue) markClean() {
	q.mu.Lock()
	q.dirty = false
	q.mu.Unlock()
}

// truncate drops entries [n, count). Used by recovery only.
func (q *consumeQueue) truncate(n int64) error {
	q.flushMu.Lock()
	defer q.flushMu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	n = max(n, q.floor) // below the floor is history held elsewhere
	if n >= q.count {
		return nil
	}
	q.minLog = -1
	if n >= q.written {
		q.tail = q.tail[:(n-q.written)*cqEntrySize]
		q.count = n
		return nil
	}
	q.tail = q.tail[:0]
	keep := q.files[:0]
	for _, f := range q.files {
		if f.first >= n && len(keep) > 0 {
			f.f.Close()
			if err := os.Remove(f.f.Name()); err != nil {
				return err
			}
			continue
		}
		if n < f.first+q.perFile {
			if err := f.f.Truncate(max(0, n-f.first) * cqEntrySize); err != nil {
				return err
			}
		}
		keep = append(keep, f)
	}
	q.files = keep
	q.count, q.written = n, n
	q.dirty = true
	q.minLog = -1
	return nil
}

// pad appends zero entries (holes: size 0, skipped by reads) up to offset n.
func (q *consumeQueue) pad(n int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.count < n {
		q.tail = append(q.tail, make([]byte, cqEntrySize)...)
		q.count++
	}
}

// rebase makes the queue start at offset n with no entries, when the log
// holds entries the queue lost (recovery). Entries below n read as zeros
// (size 0): holes that reads skip.
func (q *consumeQueue) rebase(n int64) error {
	q.flushMu.Lock()
	defer q.flushMu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, f := range q.files {
		f.f.Close()
		if err := os.Remove(f.f.Name()); err != nil {
			return err
		}
	}
	first := n - n%q.perFile
	fh, err := os.OpenFile(filepath.Join(q.dir, segmentName(first)), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if err := fh.Truncate((n - first) * cqEntrySize); err != nil {
		fh.Close()
		return err
	}
	q.files = []*cqFile{{first: first, f: fh}}
	q.tail = q.tail[:0]
	q.count, q.written = n, n
	q.dirty = true
	q.minLog = -1
	if n > q.floor {
		// Record the start durably: its entries are all holes, which
		// recovery would otherwise take for a torn tail and drop.
		if err := fh.Sync(); err != nil {
			return err
		}
		tmp := filepath.Join(q.dir, startFile+".tmp")
		if err := os.WriteFile(tmp, []byte(strconv.FormatInt(n, 10)), 0o644); err != nil {
			return err
		}
		if err := syncFile(tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(q.dir, startFile)); err != nil {
			return err
		}
		if err := syncDir(q.dir); err != nil {
			return err
		}
		q.floor = n
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// truncateFromLog drops trailing entries that point at or past logEnd.
func (q *consumeQueue) truncateFromLog(logEnd int64) error {
	q.mu.RLock()
	n, first := q.count, max(q.firstLocked(), q.floor)
	q.mu.RUnlock()
	for n > first {
		e, err := q.entry(n - 1)
		if err != nil {
			return err
		}
		if e.LogOffset < logEnd && e.Size > 0 {
			break
		}
		n--
	}
	return q.truncate(n)
}

// minOffset returns the first offset whose entry points at or after logMin,
// the start of the commit log.
func (q *consumeQueue) minOffset(logMin int64) int64 {
	q.mu.RLock()
	lo, hi := q.firstLocked(), q.count
	if q.minLog == logMin && q.minOff >= lo {
		// Entries only ever append after it, so the answer still holds.
		m := q.minOff
		q.mu.RUnlock()
		return m
	}
	q.mu.RUnlock()
	// Binary search over [lo, hi) for the first entry with LogOffset >= logMin.
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, err := q.entry(mid)
		if err != nil {
			return lo // do not cache a guess
		}
		if e.LogOffset < logMin {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	q.mu.Lock()
	q.minLog, q.minOff = logMin, lo
	q.mu.Unlock()
	return lo
}

// dropBefore removes files all of whose entries point before logMin.
func (q *consumeQueue) dropBefore(logMin int64) error {
	q.flushMu.Lock()
	defer q.flushMu.Unlock()
	for {
		q.mu.RLock()
		if len(q.files) < 2 {
			q.mu.RUnlock()
			return nil
		}
		f, next := q.files[0], q.files[1]
		q.mu.RUnlock()
		var b [cqEntrySize]byte
		if _, err := f.f.ReadAt(b[:], (next.first-f.first-1)*cqEntrySize); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // a short file: keep it
			}
			return err
		}
		if getEntry(b[:]).LogOffset >= logMin {
			return nil
		}
		q.mu.Lock()
		q.files = q.files[1:]
		q.mu.Unlock()
		f.f.Close()
		if err := os.Remove(f.f.Name()); err != nil {
			return err
		}
	}
}

func (q *consumeQueue) close() error {
	var err error
	for _, f := range q.files {
		if e := f.f.Close(); err == nil {
			err = e
		}
	}
	return err
}
