package store

// Key index: a durable on-disk hash index from message key / unique id to
// commit-log offset, for RocketMQ's "query message by key" and "by unique
// id". It is a hint: every candidate it returns is verified by the caller
// against the record itself, so hash collisions, duplicate entries and
// entries past a truncated log tail are harmless.
//
// Files. The index is a sequence of fixed-size files in one directory, named
// by the 20-digit zero-padded log offset of their first entry
// ("00000000000000001234.idx"; if that would not sort after the previous
// file, one past the previous file's name). Each file is preallocated with
// fallocate and mapped MAP_SHARED. All integers are big-endian.
//
//	header, 64 bytes:
//	   0  magic       uint32  "SKIX"
//	   4  version     uint32  1
//	   8  slots       uint32  hash slots in this file
//	  12  entries     uint32  entry capacity of this file
//	  16  count       uint32  entries durable as of the last sync
//	  20  reserved    uint32  0
//	  24  firstOffset int64   lowest log offset of entries [1, count]
//	  32  lastOffset  int64   highest log offset of entries [1, count]
//	  40  minStoreTs  int64   lowest store timestamp (ms) of entries [1, count]
//	  48  maxStoreTs  int64   highest store timestamp (ms) of entries [1, count]
//	  56  reserved    uint32  0
//	  60  crc         uint32  CRC32-C of bytes [0, 60)
//	slot array, slots × uint32: 1-based index of the newest entry whose
//	   keyHash % slots is this slot; 0 = empty
//	entry array, entries × 24 bytes:
//	   0  keyHash     uint32  keyIndexHash(topic, key)
//	   4  logOffset   int64
//	  12  storeTs     int64   ms since the epoch
//	  20  prev        uint32  1-based index of the previous (older) entry in
//	                          the same slot; 0 = none; always < this index
//
// Durability. Entries and slots are written through the mapping; the header
// is rewritten only by sync, after the data pages it describes have been
// msync'ed, so a header's count never covers entries that are not on disk.
// Slot pages may reach the disk ahead of the header, though, so after a crash
// a slot may point past count; open then rebuilds the slot array (and the
// prev links) of that file from its entries [1, count]. Entries past count
// are forgotten and overwritten; the caller re-adds everything past its
// checkpoint.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	keyIndexMagic      uint32 = 0x534B4958 // "SKIX"
	keyIndexVersion    uint32 = 1
	keyIndexHeaderSize        = 64
	keyIndexSlotSize          = 4
	keyIndexEntrySize         = 24
	// keyIndexMaxSlots and keyIndexMaxEntries bound the per-file sizes so
	// that 1-based uint32 indexes and file sizes cannot overflow.
	keyIndexMaxSlots   = 1 << 30
	keyIndexMaxEntries = 1 << 30
	keyIndexSuffix     = ".idx"
	keyIndexTmpSuffix  = ".idx.tmp"
	// keyIndexDedupeMap is the result size from which lookup dedupes with a
	// map instead of a linear scan.
	keyIndexDedupeMap = 32
)

// Header field offsets.
const (
	kihMagic    = 0
	kihVersion  = 4
	kihSlots    = 8
	kihEntries  = 12
	kihCount    = 16
	kihFirstOff = 24
	kihLastOff  = 32
	kihMinTs    = 40
	kihMaxTs    = 48
	kihCRC      = 60
)

// errKeyIndexCorrupt is wrapped by the errors openKeyIndex returns for an
// index file that fails validation; the caller may delete the directory and
// rebuild the index from the commit log.
var errKeyIndexCorrupt = errors.New("corrupt key index file")

// errKeyIndexClosed is returned by operations on a closed keyIndex.
var errKeyIndexClosed = errors.New("key index closed")

var (
	keyIndexCRCTable = crc32.MakeTable(crc32.Castagnoli)
	// keyIndexHostLE says whether the host is little-endian: slots are
	// accessed with sync/atomic, which uses the host byte order.
	keyIndexHostLE = binary.NativeEndian.Uint16([]byte{1, 0}) == 1
)

// keyIndex is the set of index files of one directory.
//
// Locking: syncMu serialises sync, dropBefore and close, and is held while
// files are msync'ed, so no file is unmapped under a running sync. mu
// serialises add and guards the files' dirty ranges. rw guards files: lookup
// holds its read lock while it reads mapped memory; files is changed only
// with both mu and rw held. Order: syncMu, mu, rw.
type keyIndex struct {
	dir     string
	slots   uint32 // for new files
	entries uint32 // for new files
	log     *slog.Logger

	syncMu sync.Mutex
	mu     sync.Mutex
	rw     sync.RWMutex
	files  []*keyIndexFile // ascending by base; the last one takes adds
	closed bool
}

// keyIndexFile is one mapped index file.
type keyIndexFile struct {
	path     string
	base     int64
	data     []byte // the whole file, mapped MAP_SHARED
	slots    uint32
	capacity uint32

	// count is the number of published entries; the remaining fields
	// describe entries [1, count] and are stored before count is.
	count          atomic.Uint32
	minOff, maxOff atomic.Int64
	minTs, maxTs   atomic.Int64

	// Byte ranges written since the last sync (lo >= hi: none), guarded by
	// keyIndex.mu.
	slotLo, slotHi int
	entLo, entHi   int
}

// keyIndexHeader is the decoded header of an index file.
type keyIndexHeader struct {
	slots, entries, count uint32
	firstOff, lastOff     int64
	minTs, maxTs          int64
}

// keyIndexFileSize returns the size of a file with the given geometry.
func keyIndexFileSize(slots, entries uint32) int64 {
	return keyIndexHeaderSize + keyIndexSlotSize*int64(slots) + keyIndexEntrySize*int64(entries)
}

// keyIndexFileName returns the file name for an index file whose first
// entry has log offset base.
func keyIndexFileName(base int64) string {
	return fmt.Sprintf("%020d%s", base, keyIndexSuffix)
}

// keyIndexHash is the 32-bit hash of topic + '#' + key stored in entries:
// FNV-1a followed by the MurmurHash3 finaliser, which spreads FNV's weak low
// bits (they choose the slot). It is part of the file format: changing it
// needs a new format version.
func keyIndexHash[K string | []byte](topic string, key K) uint32 {
	const prime = 16777619
	h := uint32(2166136261)
	for i := 0; i < len(topic); i++ {
		h ^= uint32(topic[i])
		h *= prime
	}
	h ^= '#'
	h *= prime
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= prime
	}
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// openKeyIndex opens or creates the index in dir (creating dir if missing).
// slots is the number of hash slots and entries the entry capacity of each
// new file; existing files keep the geometry they were created with.
func openKeyIndex(dir string, slots, entries int, log *slog.Logger) (*keyIndex, error) {
	if slots < 1 || slots > keyIndexMaxSlots {
		return nil, fmt.Errorf("key index: slots %d out of range [1, %d]", slots, keyIndexMaxSlots)
	}
	if entries < 1 || entries > keyIndexMaxEntries {
		return nil, fmt.Errorf("key index: entries %d out of range [1, %d]", entries, keyIndexMaxEntries)
	}
	if keyIndexFileSize(uint32(slots), uint32(entries)) > math.MaxInt {
		return nil, fmt.Errorf("key index: %d slots and %d entries do not fit in memory", slots, entries)
	}
	if log == nil {
		log = slog.Default()
	}
	x := &keyIndex{
		dir:     dir,
		slots:   uint32(slots),
		entries: uint32(entries),
		log:     log.With("component", "keyindex", "dir", dir),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("key index: %w", err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("key index: %w", err)
	}
	var bases []int64
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, keyIndexTmpSuffix) {
			// A file whose creation did not finish.
			x.log.Warn("removing unfinished key index file", "file", name)
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("key index: %w", err)
			}
			continue
		}
		base, ok := parseKeyIndexName(name)
		if !ok || !de.Type().IsRegular() {
			continue
		}
		bases = append(bases, base)
	}
	slices.Sort(bases)
	for _, base := range bases {
		path := filepath.Join(dir, keyIndexFileName(base))
		f, err := openKeyIndexFile(path, base)
		if err != nil {
			x.unmapAll()
			return nil, err
		}
		x.files = append(x.files, f)
		if f.count.Load() < f.capacity && f.repair() {
			x.log.Warn("rebuilt key index slots after an unclean shutdown",
				"file", path, "entries", f.count.Load())
		}
	}
	x.log.Info("key index opened", "files", len(x.files))
	return x, nil
}

// parseKeyIndexName returns the base offset encoded in an index file name.
func parseKeyIndexName(name string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, keyIndexSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	base, err := strconv.ParseInt(digits, 10, 64)
	return base, err == nil
}

// add records that the record at logOffset, stored at storeTs (ms since the
// epoch), carries key in topic. Calls must not overlap each other; they may
// overlap lookup, sync and dropBefore. add does not allocate except when it
// starts a new file.
func (x *keyIndex) add(topic string, key []byte, logOffset, storeTs int64) error {
	if logOffset < 0 {
		return fmt.Errorf("key index: negative log offset %d", logOffset)
	}
	return x.addHash(keyIndexHash(topic, key), logOffset, storeTs)
}

// addHash is add of a key whose keyIndexHash is h.
func (x *keyIndex) addHash(h uint32, logOffset, storeTs int64) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return errKeyIndexClosed
	}
	var f *keyIndexFile
	if n := len(x.files); n > 0 {
		f = x.files[n-1]
	}
	if f == nil || f.count.Load() >= f.capacity {
		var err error
		if f, err = x.newFileLocked(logOffset); err != nil {
			return err
		}
	}
	f.put(h, logOffset, storeTs)
	return nil
}

// newFileLocked creates the next index file, for an entry at first, and
// appends it to x.files. x.mu is held.
func (x *keyIndex) newFileLocked(first int64) (*keyIndexFile, error) {
	base := first
	if n := len(x.files); n > 0 && base <= x.files[n-1].base {
		base = x.files[n-1].base + 1
	}
	f, err := createKeyIndexFile(x.dir, base, x.slots, x.entries, x.log)
	if err != nil {
		return nil, fmt.Errorf("key index: new file for log offset %d: %w", first, err)
	}
	x.rw.Lock()
	x.files = append(x.files, f)
	x.rw.Unlock()
	x.log.Info("key index file created", "file", f.path, "slots", f.slots, "entries", f.capacity)
	return f, nil
}

// lookup returns up to max distinct log offsets of records that may carry
// key in topic and have a store timestamp in [begin, end] (ms, inclusive),
// newest first. It searches every file whose time range overlaps.
func (x *keyIndex) lookup(topic, key string, max int, begin, end int64) []int64 {
	if max <= 0 || begin > end {
		return nil
	}
	h := keyIndexHash(topic, key)
	c := keyIndexCollector{max: max}
	x.rw.RLock()
	defer x.rw.RUnlock()
	for i := len(x.files) - 1; i >= 0 && !c.full(); i-- {
		x.files[i].collect(h, begin, end, &c)
	}
	return c.out
}

// keyIndexCollector accumulates distinct lookup results.
type keyIndexCollector struct {
	max  int
	out  []int64
	seen map[int64]struct{} // built once out is long enough
}

func (c *keyIndexCollector) full() bool { return len(c.out) >= c.max }

func (c *keyIndexCollector) add(off int64) {
	if c.seen != nil {
		if _, dup := c.seen[off]; dup {
			return
		}
		c.seen[off] = struct{}{}
	} else if slices.Contains(c.out, off) {
		return
	}
	c.out = append(c.out, off)
	if c.seen == nil && len(c.out) >= keyIndexDedupeMap && len(c.out) < c.max {
		c.seen = make(map[int64]struct{}, 2*len(c.out))
		for _, o := range c.out {
			c.seen[o] = struct{}{}
		}
	}
}

// sync makes everything added so far durable: it msyncs (MS_SYNC) the pages
// written since the last sync, then the headers that describe them.
func (x *keyIndex) sync() error {
	x.syncMu.Lock()
	defer x.syncMu.Unlock()
	return x.syncLocked()
}

// keyIndexSyncItem is what sync writes for one file: the dirty ranges and
// the header describing them, snapshotted together under keyIndex.mu.
type keyIndexSyncItem struct {
	f              *keyIndexFile
	slotLo, slotHi int
	entLo, entHi   int
	hdr            keyIndexHeader
}

// syncLocked implements sync; x.syncMu is held.
func (x *keyIndex) syncLocked() error {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil
	}
	var items []keyIndexSyncItem
	for _, f := range x.files {
		if f.slotLo >= f.slotHi && f.entLo >= f.entHi {
			continue
		}
		items = append(items, keyIndexSyncItem{
			f: f, slotLo: f.slotLo, slotHi: f.slotHi, entLo: f.entLo, entHi: f.entHi,
			hdr: f.header(),
		})
		f.slotLo, f.slotHi, f.entLo, f.entHi = 0, 0, 0, 0
	}
	x.mu.Unlock()

	var errs []error
	for _, it := range items {
		if err := it.f.flush(it); err != nil {
			errs = append(errs, err)
			// Keep the ranges dirty so the next sync retries them.
			x.mu.Lock()
			it.f.markSlots(it.slotLo, it.slotHi)
			it.f.markEntries(it.entLo, it.entHi)
			x.mu.Unlock()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("key index sync: %w", err)
	}
	return nil
}

// dropBefore removes the index files all of whose entries have a log offset
// below off. The last file, which takes adds, is never removed.
func (x *keyIndex) dropBefore(off int64) error {
	x.syncMu.Lock()
	defer x.syncMu.Unlock()
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return errKeyIndexClosed
	}
	var keep, drop []*keyIndexFile
	for i, f := range x.files {
		if i < len(x.files)-1 && (f.count.Load() == 0 || f.maxOff.Load() < off) {
			drop = append(drop, f)
		} else {
			keep = append(keep, f)
		}
	}
	if len(drop) > 0 {
		x.rw.Lock()
		x.files = keep
		x.rw.Unlock()
	}
	x.mu.Unlock()
	if len(drop) == 0 {
		return nil
	}

	var errs []error
	for _, f := range drop {
		if err := f.unmap(); err != nil {
			errs = append(errs, err)
		}
		if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		x.log.Info("key index file dropped", "file", f.path, "lastOffset", f.maxOff.Load(), "before", off)
	}
	if err := syncDir(x.dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("key index drop before %d: %w", off, err)
	}
	return nil
}

// close syncs and unmaps every file; it must not overlap add. Later calls
// return nil; other operations on a closed index fail (add, dropBefore) or
// find nothing (lookup).
func (x *keyIndex) close() error {
	x.syncMu.Lock()
	defer x.syncMu.Unlock()
	err := x.syncLocked()
	if uerr := x.unmapAll(); uerr != nil {
		err = errors.Join(err, fmt.Errorf("key index close: %w", uerr))
	}
	return err
}

// unmapAll marks x closed and unmaps its files.
func (x *keyIndex) unmapAll() error {
	x.mu.Lock()
	x.rw.Lock()
	files := x.files
	x.files = nil
	x.closed = true
	x.rw.Unlock()
	x.mu.Unlock()
	var errs []error
	for _, f := range files {
		if err := f.unmap(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// createKeyIndexFile creates, preallocates and maps a new, empty index file.
// The file is built under a temporary name and renamed once its header is
// durable, so a file with a final name always has a valid header.
func createKeyIndexFile(dir string, base int64, slots, entries uint32, log *slog.Logger) (f *keyIndexFile, err error) {
	path := filepath.Join(dir, keyIndexFileName(base))
	tmp := strings.TrimSuffix(path, keyIndexSuffix) + keyIndexTmpSuffix
	size := keyIndexFileSize(slots, entries)
	fd, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	renamed := false
	defer func() {
		fd.Close()
		if err != nil {
			if renamed {
				os.Remove(path)
			} else {
				os.Remove(tmp)
			}
		}
	}()
	if err := keyIndexAllocate(fd, size, log); err != nil {
		return nil, err
	}
	var hb [keyIndexHeaderSize]byte
	encodeKeyIndexHeader(hb[:], keyIndexHeader{slots: slots, entries: entries})
	if _, err := fd.WriteAt(hb[:], 0); err != nil {
		return nil, err
	}
	if err := fdatasync(fd); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	data, err := unix.Mmap(int(fd.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, &os.PathError{Op: "mmap", Path: path, Err: err}
	}
	f = &keyIndexFile{path: path, base: base, data: data, slots: slots, capacity: entries}
	f.setRange(keyIndexHeader{})
	return f, nil
}

// openKeyIndexFile validates and maps an existing index file.
func openKeyIndexFile(path string, base int64) (*keyIndexFile, error) {
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("key index: %w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("key index: %w", err)
	}
	if st.Size() < keyIndexHeaderSize {
		return nil, fmt.Errorf("key index %s: %w: %d bytes, shorter than the header", path, errKeyIndexCorrupt, st.Size())
	}
	var hb [keyIndexHeaderSize]byte
	if _, err := fd.ReadAt(hb[:], 0); err != nil {
		return nil, fmt.Errorf("key index: read header: %w", err)
	}
	h, err := decodeKeyIndexHeader(hb[:])
	if err != nil {
		return nil, fmt.Errorf("key index %s: %w", path, err)
	}
	size := keyIndexFileSize(h.slots, h.entries)
	if st.Size() != size {
		return nil, fmt.Errorf("key index %s: %w: %d bytes, want %d for %d slots and %d entries",
			path, errKeyIndexCorrupt, st.Size(), size, h.slots, h.entries)
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("key index %s: %d bytes do not fit in memory", path, size)
	}
	data, err := unix.Mmap(int(fd.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("key index: %w", &os.PathError{Op: "mmap", Path: path, Err: err})
	}
	f := &keyIndexFile{path: path, base: base, data: data, slots: h.slots, capacity: h.entries}
	f.setRange(h)
	f.count.Store(h.count)
	return f, nil
}

// setRange sets the in-memory offset and time range from h (empty when
// h.count is 0).
func (f *keyIndexFile) setRange(h keyIndexHeader) {
	if h.count == 0 {
		f.minOff.Store(math.MaxInt64)
		f.maxOff.Store(math.MinInt64)
		f.minTs.Store(math.MaxInt64)
		f.maxTs.Store(math.MinInt64)
		return
	}
	f.minOff.Store(h.firstOff)
	f.maxOff.Store(h.lastOff)
	f.minTs.Store(h.minTs)
	f.maxTs.Store(h.maxTs)
}

// header returns the header describing the published entries. keyIndex.mu
// is held.
func (f *keyIndexFile) header() keyIndexHeader {
	h := keyIndexHeader{slots: f.slots, entries: f.capacity, count: f.count.Load()}
	if h.count > 0 {
		h.firstOff, h.lastOff = f.minOff.Load(), f.maxOff.Load()
		h.minTs, h.maxTs = f.minTs.Load(), f.maxTs.Load()
	}
	return h
}

// encodeKeyIndexHeader writes h, with the magic, version and CRC, to b.
func encodeKeyIndexHeader(b []byte, h keyIndexHeader) {
	be := binary.BigEndian
	clear(b[:keyIndexHeaderSize])
	be.PutUint32(b[kihMagic:], keyIndexMagic)
	be.PutUint32(b[kihVersion:], keyIndexVersion)
	be.PutUint32(b[kihSlots:], h.slots)
	be.PutUint32(b[kihEntries:], h.entries)
	be.PutUint32(b[kihCount:], h.count)
	be.PutUint64(b[kihFirstOff:], uint64(h.firstOff))
	be.PutUint64(b[kihLastOff:], uint64(h.lastOff))
	be.PutUint64(b[kihMinTs:], uint64(h.minTs))
	be.PutUint64(b[kihMaxTs:], uint64(h.maxTs))
	be.PutUint32(b[kihCRC:], crc32.Checksum(b[:kihCRC], keyIndexCRCTable))
}

// decodeKeyIndexHeader parses and validates a header. Its errors wrap
// errKeyIndexCorrupt.
func decodeKeyIndexHeader(b []byte) (keyIndexHeader, error) {
	be := binary.BigEndian
	if m := be.Uint32(b[kihMagic:]); m != keyIndexMagic {
		return keyIndexHeader{}, fmt.Errorf("%w: bad magic %#08x", errKeyIndexCorrupt, m)
	}
	if sum, want := crc32.Checksum(b[:kihCRC], keyIndexCRCTable), be.Uint32(b[kihCRC:]); sum != want {
		return keyIndexHeader{}, fmt.Errorf("%w: header checksum %#08x, want %#08x", errKeyIndexCorrupt, sum, want)
	}
	if v := be.Uint32(b[kihVersion:]); v != keyIndexVersion {
		return keyIndexHeader{}, fmt.Errorf("%w: unsupported format version %d (want %d)", errKeyIndexCorrupt, v, keyIndexVersion)
	}
	h := keyIndexHeader{
		slots:    be.Uint32(b[kihSlots:]),
		entries:  be.Uint32(b[kihEntries:]),
		count:    be.Uint32(b[kihCount:]),
		firstOff: int64(be.Uint64(b[kihFirstOff:])),
		lastOff:  int64(be.Uint64(b[kihLastOff:])),
		minTs:    int64(be.Uint64(b[kihMinTs:])),
		maxTs:    int64(be.Uint64(b[kihMaxTs:])),
	}
	switch {
	case h.slots < 1 || h.slots > keyIndexMaxSlots:
		return h, fmt.Errorf("%w: %d slots", errKeyIndexCorrupt, h.slots)
	case h.entries < 1 || h.entries > keyIndexMaxEntries:
		return h, fmt.Errorf("%w: capacity of %d entries", errKeyIndexCorrupt, h.entries)
	case h.count > h.entries:
		return h, fmt.Errorf("%w: %d entries in a file for %d", errKeyIndexCorrupt, h.count, h.entries)
	case h.count > 0 && (h.firstOff < 0 || h.firstOff > h.lastOff || h.minTs > h.maxTs):
		return h, fmt.Errorf("%w: bad ranges: offsets [%d, %d], timestamps [%d, %d]",
			errKeyIndexCorrupt, h.firstOff, h.lastOff, h.minTs, h.maxTs)
	}
	return h, nil
}

// slotPtr returns the slot word for bucket b. Slots are read and written
// atomically: lookup follows them while add links new entries.
func (f *keyIndexFile) slotPtr(b uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&f.data[keyIndexHeaderSize+keyIndexSlotSize*int(b)]))
}

// loadSlot reads a big-endian slot word atomically.
func loadSlot(p *uint32) uint32 {
	v := atomic.LoadUint32(p)
	if keyIndexHostLE {
		v = bits.ReverseBytes32(v)
	}
	return v
}

// storeSlot writes a big-endian slot word atomically.
func storeSlot(p *uint32, v uint32) {
	if keyIndexHostLE {
		v = bits.ReverseBytes32(v)
	}
	atomic.StoreUint32(p, v)
}

// entry returns the bytes of entry i (1-based, 1 <= i <= capacity).
func (f *keyIndexFile) entry(i uint32) []byte {
	off := f.entryOffset(i)
	return f.data[off : off+keyIndexEntrySize : off+keyIndexEntrySize]
}

func (f *keyIndexFile) entryOffset(i uint32) int {
	return keyIndexHeaderSize + keyIndexSlotSize*int(f.slots) + keyIndexEntrySize*int(i-1)
}

// put appends an entry and publishes it. keyIndex.mu is held and the file
// has room.
func (f *keyIndexFile) put(h uint32, off, ts int64) {
	n := f.count.Load() + 1
	b := h % f.slots
	sp := f.slotPtr(b)
	prev := loadSlot(sp)
	if prev >= n {
		prev = 0 // cannot happen after open's repair; never link forwards
	}
	e := f.entry(n)
	binary.BigEndian.PutUint32(e[0:], h)
	binary.BigEndian.PutUint64(e[4:], uint64(off))
	binary.BigEndian.PutUint64(e[12:], uint64(ts))
	binary.BigEndian.PutUint32(e[20:], prev)
	// The entry is complete before the slot points to it (atomic store), so
	// a concurrent lookup that reaches it reads a whole entry.
	storeSlot(sp, n)

	if n == 1 || off < f.minOff.Load() {
		f.minOff.Store(off)
	}
	if n == 1 || off > f.maxOff.Load() {
		f.maxOff.Store(off)
	}
	if n == 1 || ts < f.minTs.Load() {
		f.minTs.Store(ts)
	}
	if n == 1 || ts > f.maxTs.Load() {
		f.maxTs.Store(ts)
	}
	so := keyIndexHeaderSize + keyIndexSlotSize*int(b)
	f.markSlots(so, so+keyIndexSlotSize)
	eo := f.entryOffset(n)
	f.markEntries(eo, eo+keyIndexEntrySize)
	f.count.Store(n)
}

// markSlots and markEntries extend the dirty ranges; keyIndex.mu is held.
func (f *keyIndexFile) markSlots(lo, hi int) {
	f.slotLo, f.slotHi = extendRange(f.slotLo, f.slotHi, lo, hi)
}

func (f *keyIndexFile) markEntries(lo, hi int) {
	f.entLo, f.entHi = extendRange(f.entLo, f.entHi, lo, hi)
}

func extendRange(lo, hi, addLo, addHi int) (int, int) {
	if addLo >= addHi {
		return lo, hi
	}
	if lo >= hi {
		return addLo, addHi
	}
	return min(lo, addLo), max(hi, addHi)
}

// collect adds to c the log offsets of the entries of f with hash h and a
// store timestamp in [begin, end], newest first. Values read from the file
// are bounds-checked: a corrupt chain ends the walk, it never panics or
// loops (prev must decrease).
func (f *keyIndexFile) collect(h uint32, begin, end int64, c *keyIndexCollector) {
	n := f.count.Load()
	if n == 0 || f.minTs.Load() > end || f.maxTs.Load() < begin {
		return
	}
	i := loadSlot(f.slotPtr(h % f.slots))
	for steps := uint32(0); i != 0 && i <= f.capacity && steps < f.capacity && !c.full(); steps++ {
		e := f.entry(i)
		// Entries past n are being added: complete (the slot or prev that
		// led here was stored after them) but not yet published.
		if i <= n && binary.BigEndian.Uint32(e) == h {
			if ts := int64(binary.BigEndian.Uint64(e[12:])); ts >= begin && ts <= end {
				c.add(int64(binary.BigEndian.Uint64(e[4:])))
			}
		}
		prev := binary.BigEndian.Uint32(e[20:])
		if prev >= i {
			break
		}
		i = prev
	}
}

// repair rebuilds the slot array and prev links from entries [1, count] if
// any slot points past count, as it can after a crash (slot pages written
// back, header not). It runs at open, before the file is shared, and reports
// whether it rebuilt anything.
func (f *keyIndexFile) repair() bool {
	n := f.count.Load()
	stale := false
	for b := range f.slots {
		if loadSlot(f.slotPtr(b)) > n {
			stale = true
			break
		}
	}
	if !stale {
		return false
	}
	slotsEnd := keyIndexHeaderSize + keyIndexSlotSize*int(f.slots)
	clear(f.data[keyIndexHeaderSize:slotsEnd])
	f.markSlots(keyIndexHeaderSize, slotsEnd)
	for i := uint32(1); i <= n; i++ {
		e := f.entry(i)
		sp := f.slotPtr(binary.BigEndian.Uint32(e) % f.slots)
		if prev := loadSlot(sp); binary.BigEndian.Uint32(e[20:]) != prev {
			binary.BigEndian.PutUint32(e[20:], prev) // write only if changed: keep pages clean
			eo := f.entryOffset(i)
			f.markEntries(eo, eo+keyIndexEntrySize)
		}
		storeSlot(sp, i)
	}
	return true
}

// flush msyncs the ranges of it, then writes and msyncs the header.
func (f *keyIndexFile) flush(it keyIndexSyncItem) error {
	if err := f.msync(it.slotLo, it.slotHi); err != nil {
		return err
	}
	if err := f.msync(it.entLo, it.entHi); err != nil {
		return err
	}
	encodeKeyIndexHeader(f.data[:keyIndexHeaderSize], it.hdr)
	return f.msync(0, keyIndexHeaderSize)
}

// msync writes the pages holding bytes [lo, hi) of f to disk (MS_SYNC).
func (f *keyIndexFile) msync(lo, hi int) error {
	if lo >= hi {
		return nil
	}
	lo &^= os.Getpagesize() - 1
	if err := unix.Msync(f.data[lo:hi], unix.MS_SYNC); err != nil {
		return &os.PathError{Op: "msync", Path: f.path, Err: err}
	}
	return nil
}

// unmap releases the mapping of f.
func (f *keyIndexFile) unmap() error {
	if f.data == nil {
		return nil
	}
	err := unix.Munmap(f.data)
	f.data = nil
	if err != nil {
		return &os.PathError{Op: "munmap", Path: f.path, Err: err}
	}
	return nil
}

// keyIndexAllocate reserves size bytes of disk for fd with fallocate, so a
// write through the mapping can never fault for lack of space (a sparse
// file would SIGBUS the process when the disk fills). Where fallocate is not
// supported it writes zeros instead.
func keyIndexAllocate(fd *os.File, size int64, log *slog.Logger) error {
	for {
		err := unix.Fallocate(int(fd.Fd()), 0, 0, size)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EOPNOTSUPP:
			log.Warn("fallocate not supported; writing zeros to reserve key index space", "file", fd.Name())
			return keyIndexWriteZeros(fd, size)
		default:
			return &os.PathError{Op: "fallocate", Path: fd.Name(), Err: err}
		}
	}
}

// keyIndexWriteZeros fills the first size bytes of fd with zeros.
func keyIndexWriteZeros(fd *os.File, size int64) error {
	zero := make([]byte, min(size, 1<<20))
	for off := int64(0); off < size; {
		n := min(int64(len(zero)), size-off)
		if _, err := fd.WriteAt(zero[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}
