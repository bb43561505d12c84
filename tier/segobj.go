package tier

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"sort"

	"github.com/pierrec/lz4/v4"

	"github.com/strata-mq/strata/remoting"
)

// Sizes and limits of the segment object format (see the package
// documentation for the layout).
const (
	// SegmentObjectVersion is the format version BuildSegmentObject writes
	// and the only one DecodeFooter accepts.
	SegmentObjectVersion = 1
	// DefaultBlockSize is the uncompressed size data blocks are cut at when
	// BuildOptions.BlockSize is zero.
	DefaultBlockSize = 1 << 20
	// MaxBlockSize bounds the uncompressed length of one data block; a
	// record (with its trailer) larger than this cannot be stored.
	MaxBlockSize = 64 << 20
	// MaxFooterSize bounds the encoded footer.
	MaxFooterSize = 64 << 20
	// FooterTailSize is how many bytes at the end of an object a reader
	// fetches first; it usually holds the whole footer.
	FooterTailSize = 64 << 10
	// QueueEntrySize is the encoded size of one QueueEntry.
	QueueEntrySize = 28
	// KeyEntrySize is the encoded size of one key-section entry.
	KeyEntrySize = 16

	// BlockFlagRaw marks a data block stored uncompressed (LZ4 did not
	// make it smaller).
	BlockFlagRaw uint8 = 1
)

const (
	segTrailerSize   = 20
	segTrailerMagic  = 0x5354524154534547 // "STRATSEG"
	segBlockInfoSize = 13
	segQueueMinSize  = 1 + 1 + 4 + 8*4 + 4
	segFenceSize     = 8
	// segMaxFences caps the key fence index in the footer (16 KiB).
	segMaxFences = 2048
	// segMinFenceInterval is the fewest key entries per fence group.
	segMinFenceInterval = 64
	// segMaxQueueSection bounds the allocation of one queue-section read.
	segMaxQueueSection = 512 << 20
	// segMaxKeyRead bounds the allocation of one key-section read.
	segMaxKeyRead = 64 << 20
	// segMarkerSize is the blank end-of-segment marker (TOTALSIZE, magic).
	segMarkerSize = 8
	// segRecordTrailer is the CRC32C that follows every record.
	segRecordTrailer = 4
	// segMinSaving: a block is stored compressed only if LZ4 saves at
	// least 1/segMinSaving of its size; otherwise decompressing is not
	// worth it.
	segMinSaving = 32
	// segWriteBuffer is the write buffer of BuildSegmentObject.
	segWriteBuffer = 256 << 10
	// segReadBuffer is the read buffer of BuildSegmentObject.
	segReadBuffer = 256 << 10
)

var segCRCTable = crc32.MakeTable(crc32.Castagnoli)

func segCRC(b []byte) uint32 { return crc32.Checksum(b, segCRCTable) }

var (
	// ErrCorruptObject is wrapped by every error that reports a segment
	// object (or a part of one) that is corrupt, truncated or inconsistent.
	ErrCorruptObject = errors.New("tier: corrupt segment object")
	// ErrCorruptSegment is wrapped by BuildSegmentObject's errors for a
	// segment file that is corrupt: a bad CRC, a record that does not fit,
	// a missing end-of-segment marker, a wrong physical offset, queue
	// offsets that are not dense.
	ErrCorruptSegment = errors.New("tier: corrupt commit-log segment")
	// ErrShortTail is matched (errors.Is) by the *ShortTailError that
	// DecodeFooter returns when the tail it was given does not hold the
	// whole footer.
	ErrShortTail = errors.New("tier: object tail does not hold the whole footer")
)

// ShortTailError is DecodeFooter's request for a longer tail: the last Need
// bytes of the object hold the whole footer.
type ShortTailError struct {
	Need int64
}

// Error implements error.
func (e *ShortTailError) Error() string {
	return fmt.Sprintf("%v: need the last %d bytes", ErrShortTail, e.Need)
}

// Is makes errors.Is(err, ErrShortTail) true.
func (e *ShortTailError) Is(target error) bool { return target == ErrShortTail }

func segCorrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptObject, fmt.Sprintf(format, args...))
}

// BuildOptions tune BuildSegmentObject.
type BuildOptions struct {
	// BlockSize is the uncompressed size at which data blocks are cut
	// (default DefaultBlockSize, at most MaxBlockSize). Blocks end on record
	// boundaries, so most are a little smaller; a record larger than
	// BlockSize is a block of its own.
	BlockSize int
}

// BlockInfo locates one data block of a segment object.
type BlockInfo struct {
	// LogOffset is the log offset of the block's first record.
	LogOffset int64
	// RawLen is the uncompressed length: whole records with their CRC
	// trailers, exactly as in the segment file.
	RawLen int32
	// ObjOffset and CompLen are the block's byte range in the object.
	ObjOffset int64
	CompLen   int32
	// CRC is the CRC32C (Castagnoli) of the uncompressed bytes.
	CRC uint32
	// Flags: BlockFlagRaw or 0 (LZ4 block compression).
	Flags uint8
}

// QueueIndex describes one topic/queue of a segment object and locates its
// queue section.
type QueueIndex struct {
	Topic   string
	QueueID int32
	// First is the queue offset of the queue's first entry in the segment;
	// the segment holds queue offsets [First, First+Count), densely.
	First, Count int64
	// MinTimestamp and MaxTimestamp bound the entries' store timestamps
	// (ms since the epoch).
	MinTimestamp, MaxTimestamp int64
	// SectionOffset and SectionLen are the queue section's byte range in
	// the object.
	SectionOffset, SectionLen int64
	// CRC is the CRC32C of the whole queue section.
	CRC uint32
}

// QueueEntry is one consume-queue entry of a queue section.
type QueueEntry struct {
	// LogOffset is the record's commit-log offset.
	LogOffset int64
	// Size is the record's TOTALSIZE (without the CRC trailer).
	Size int32
	// TagHash is the consume-queue tag code (remoting.PropsTagHash).
	TagHash int64
	// StoreTimestamp is the record's store timestamp (ms since the epoch).
	StoreTimestamp int64
}

// Footer is the decoded index of a segment object.
type Footer struct {
	// Version is the format version (SegmentObjectVersion).
	Version int
	// Base and End: the segment covered log offsets [Base, End); End is
	// the next segment's base.
	Base, End int64
	// DataEnd is where the segment's blank marker began: records cover
	// [Base, DataEnd).
	DataEnd int64
	// Records is the number of records in the segment.
	Records int64
	// MinTimestamp and MaxTimestamp bound the records' store timestamps
	// (both 0 when there are no records).
	MinTimestamp, MaxTimestamp int64
	// Blocks are the data blocks in log-offset order; they cover
	// [Base, DataEnd) without gaps.
	Blocks []BlockInfo
	// Queues are the segment's topic/queues sorted by topic, then queue id.
	Queues []QueueIndex
	// KeyOffset is the byte offset of the key section in the object and
	// KeyCount its number of entries.
	KeyOffset, KeyCount int64
	// KeyFenceInterval is the number of key entries per fence group.
	KeyFenceInterval int
	// ObjectSize is the size of the whole object.
	ObjectSize int64
	// CRC is the footer's CRC32C as the trailer records it: a fingerprint
	// of the object's whole index.
	CRC uint32

	fences []segKeyFence
}

// segKeyFence is one fence of the key section: the top 32 bits of the hash
// of the first entry of a group and the CRC32C of the group's bytes.
type segKeyFence struct {
	prefix uint32
	crc    uint32
}

// segKeyHash is the 64-bit FNV-1a hash of a message key.
func segKeyHash(k []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range k {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// ---------------------------------------------------------------------------
// Building

type segQueueBuild struct {
	topic        string
	qid          int32
	first, next  int64
	minTs, maxTs int64
	entries      segChunks[QueueEntry]
}

// segChunks is an append-only list kept in chunks that double up to
// segMaxChunk elements, so growing it never copies what it holds.
type segChunks[T any] struct {
	chunks [][]T
	n      int
}

const segMaxChunk = 4096

func (c *segChunks[T]) add(v T) {
	k := len(c.chunks) - 1
	if k < 0 || len(c.chunks[k]) == cap(c.chunks[k]) {
		size := 16
		if k >= 0 {
			size = min(2*cap(c.chunks[k]), segMaxChunk)
		}
		c.chunks = append(c.chunks, make([]T, 0, size))
		k++
	}
	c.chunks[k] = append(c.chunks[k], v)
	c.n++
}

type segKeyEntry struct {
	hash uint64
	off  int64
}

// segCountWriter counts the bytes written through it.
type segCountWriter struct {
	w *bufio.Writer
	n int64
}

func (c *segCountWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// BuildSegmentObject reads a sealed segment sequentially from r (the
// segment file: bytes [0,size) cover log offsets [base, base+size)) and
// writes its object to w, streaming: memory stays O(BlockSize + the queue
// and key tables), never the whole segment. It verifies every record's CRC,
// physical offset and queue offset as it goes and fails with an error
// wrapping ErrCorruptSegment on a corrupt segment. It returns the object's
// footer and size. The segment must end with its blank marker; bytes after
// the marker's header are not read.
func BuildSegmentObject(ctx context.Context, w io.Writer, r io.Reader, base, size int64, opt BuildOptions) (*Footer, int64, error) {
	blockSize := opt.BlockSize
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	if blockSize < 0 || blockSize > MaxBlockSize {
		return nil, 0, fmt.Errorf("tier: block size %d outside [1, %d]", blockSize, MaxBlockSize)
	}
	if base < 0 || size < segMarkerSize || base > math.MaxInt64-size {
		return nil, 0, fmt.Errorf("tier: segment base %d size %d out of range", base, size)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("tier: build segment object %020d: %w", base, err)
	}
	b := &segBuilder{
		ctx:       ctx,
		blockSize: blockSize,
		base:      base,
		size:      size,
		out:       &segCountWriter{w: bufio.NewWriterSize(w, segWriteBuffer)},
		topics:    make(map[string]map[int32]*segQueueBuild),
		f:         &Footer{Version: SegmentObjectVersion, Base: base, End: base + size},
	}
	if err := b.readRecords(bufio.NewReaderSize(r, segReadBuffer)); err != nil {
		return nil, 0, err
	}
	if err := b.finish(); err != nil {
		return nil, 0, err
	}
	return b.f, b.f.ObjectSize, nil
}

type segBuilder struct {
	ctx       context.Context
	blockSize int
	base      int64
	size      int64
	out       *segCountWriter
	topics    map[string]map[int32]*segQueueBuild
	last      *segQueueBuild
	keys      segChunks[segKeyEntry]
	f         *Footer

	block      []byte // the records of the block being filled
	blockStart int64  // log offset of block[0]
	comp       []byte
	lz         lz4.Compressor
}

func (b *segBuilder) segErr(pos int64, format string, args ...any) error {
	return fmt.Errorf("%w: segment %020d at log offset %d: %s", ErrCorruptSegment, b.base, b.base+pos, fmt.Sprintf(format, args...))
}

func (b *segBuilder) readRecords(r *bufio.Reader) error {
	var hdr [segMarkerSize]byte
	pos := int64(0)
	b.blockStart = b.base
	for {
		if pos+segMarkerSize > b.size {
			return b.segErr(pos, "no end-of-segment marker")
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return b.readErr(pos, err)
		}
		total := int64(binary.BigEndian.Uint32(hdr[:]))
		magic := binary.BigEndian.Uint32(hdr[4:])
		if magic == remoting.BlankMagic {
			if total != b.size-pos {
				return b.segErr(pos, "blank marker of %d bytes, %d remain", total, b.size-pos)
			}
			break
		}
		if magic != remoting.MessageMagic {
			return b.segErr(pos, "bad magic %#x", magic)
		}
		n := total + segRecordTrailer
		if total < remoting.MinRecordSize || pos+n+segMarkerSize > b.size || n > MaxBlockSize {
			return b.segErr(pos, "record size %d does not fit", total)
		}
		if len(b.block) > 0 && int64(len(b.block))+n > int64(b.blockSize) {
			if err := b.flushBlock(); err != nil {
				return err
			}
		}
		start := len(b.block)
		if cap(b.block)-start < int(n) {
			b.block = slices.Grow(b.block, max(int(n), b.blockSize-start))
		}
		b.block = b.block[:start+int(n)]
		rec := b.block[start:]
		copy(rec, hdr[:])
		if _, err := io.ReadFull(r, rec[segMarkerSize:]); err != nil {
			return b.readErr(pos, err)
		}
		if err := b.addRecord(pos, rec[:total], binary.BigEndian.Uint32(rec[total:])); err != nil {
			return err
		}
		pos += n
		if len(b.block) >= b.blockSize {
			if err := b.flushBlock(); err != nil {
				return err
			}
		}
	}
	if len(b.block) > 0 {
		if err := b.flushBlock(); err != nil {
			return err
		}
	}
	b.f.DataEnd = b.base + pos
	return nil
}

func (b *segBuilder) readErr(pos int64, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return b.segErr(pos, "segment file ends early: %v", err)
	}
	return fmt.Errorf("tier: read segment %020d at log offset %d: %w", b.base, b.base+pos, err)
}

func (b *segBuilder) addRecord(pos int64, rec []byte, crc uint32) error {
	if segCRC(rec) != crc {
		return b.segErr(pos, "record CRC mismatch")
	}
	off := b.base + pos
	if po := int64(binary.BigEndian.Uint64(rec[remoting.OffPhysicalOffset:])); po != off {
		return b.segErr(pos, "record says physical offset %d", po)
	}
	fields, err := remoting.ParseRecordFields(rec)
	if err != nil {
		return b.segErr(pos, "%v", err)
	}
	q := b.last
	if q == nil || q.qid != fields.QueueID || q.topic != string(fields.Topic) {
		qs := b.topics[string(fields.Topic)]
		if qs == nil {
			qs = make(map[int32]*segQueueBuild)
			b.topics[string(fields.Topic)] = qs
		}
		q = qs[fields.QueueID]
		if q == nil {
			q = &segQueueBuild{topic: string(fields.Topic), qid: fields.QueueID, first: fields.QueueOffset, next: fields.QueueOffset,
				minTs: fields.StoreTimestamp, maxTs: fields.StoreTimestamp}
			qs[fields.QueueID] = q
		}
		b.last = q
	}
	if fields.QueueOffset < 0 {
		return b.segErr(pos, "negative queue offset %d", fields.QueueOffset)
	}
	if fields.QueueOffset != q.next {
		return b.segErr(pos, "queue %s/%d: queue offset %d, want %d (offsets must be dense)", q.topic, q.qid, fields.QueueOffset, q.next)
	}
	q.next++
	ts := fields.StoreTimestamp
	q.minTs, q.maxTs = min(q.minTs, ts), max(q.maxTs, ts)
	q.entries.add(QueueEntry{LogOffset: off, Size: int32(len(rec)), TagHash: remoting.PropsTagHash(fields.Properties), StoreTimestamp: ts})

	f := b.f
	if f.Records == 0 {
		f.MinTimestamp, f.MaxTimestamp = ts, ts
	}
	f.MinTimestamp, f.MaxTimestamp = min(f.MinTimestamp, ts), max(f.MaxTimestamp, ts)
	f.Records++
	remoting.ForEachKey(fields.Properties, func(k []byte) {
		b.keys.add(segKeyEntry{hash: segKeyHash(k), off: off})
	})
	return nil
}

func (b *segBuilder) flushBlock() error {
	if err := b.ctx.Err(); err != nil {
		return fmt.Errorf("tier: build segment object %020d: %w", b.base, err)
	}
	raw := b.block
	bound := lz4.CompressBlockBound(len(raw))
	if cap(b.comp) < bound {
		b.comp = make([]byte, lz4.CompressBlockBound(max(len(raw), b.blockSize)))
	}
	b.comp = b.comp[:bound]
	info := BlockInfo{LogOffset: b.blockStart, RawLen: int32(len(raw)), ObjOffset: b.out.n, CRC: segCRC(raw)}
	n, err := b.lz.CompressBlock(raw, b.comp)
	data := b.comp[:n]
	if err != nil || n == 0 || n > len(raw)-len(raw)/segMinSaving {
		data = raw
		info.Flags = BlockFlagRaw
	}
	info.CompLen = int32(len(data))
	if _, err := b.out.Write(data); err != nil {
		return fmt.Errorf("tier: write segment object %020d: %w", b.base, err)
	}
	b.f.Blocks = append(b.f.Blocks, info)
	b.blockStart += int64(len(raw))
	b.block = b.block[:0]
	return nil
}

// finish writes the queue sections, the key section, the footer and the
// trailer.
func (b *segBuilder) finish() error {
	f := b.f
	werr := func(err error) error {
		return fmt.Errorf("tier: write segment object %020d: %w", b.base, err)
	}
	// Queue sections, in topic / queue id order.
	var queues []*segQueueBuild
	for _, qs := range b.topics {
		for _, q := range qs {
			queues = append(queues, q)
		}
	}
	slices.SortFunc(queues, func(x, y *segQueueBuild) int {
		return cmp.Or(cmp.Compare(x.topic, y.topic), cmp.Compare(x.qid, y.qid))
	})
	if len(queues) > 0 {
		f.Queues = make([]QueueIndex, 0, len(queues))
	}
	for _, q := range queues {
		if err := b.ctx.Err(); err != nil {
			return fmt.Errorf("tier: build segment object %020d: %w", b.base, err)
		}
		count := q.next - q.first
		qi := QueueIndex{Topic: q.topic, QueueID: q.qid, First: q.first, Count: count,
			MinTimestamp: q.minTs, MaxTimestamp: q.maxTs, SectionOffset: b.out.n, SectionLen: count * QueueEntrySize}
		var buf [64 * QueueEntrySize]byte
		for _, chunk := range q.entries.chunks {
			for len(chunk) > 0 {
				n := min(len(chunk), 64)
				for i, e := range chunk[:n] {
					putQueueEntry(buf[i*QueueEntrySize:], e)
				}
				qi.CRC = crc32.Update(qi.CRC, segCRCTable, buf[:n*QueueEntrySize])
				if _, err := b.out.Write(buf[:n*QueueEntrySize]); err != nil {
					return werr(err)
				}
				chunk = chunk[n:]
			}
		}
		q.entries = segChunks[QueueEntry]{}
		f.Queues = append(f.Queues, qi)
	}
	// Key section: (hash, log offset) sorted, duplicates dropped, in fence
	// groups.
	keys := make([]segKeyEntry, 0, b.keys.n)
	for _, c := range b.keys.chunks {
		keys = append(keys, c...)
	}
	b.keys = segChunks[segKeyEntry]{}
	slices.SortFunc(keys, func(x, y segKeyEntry) int {
		return cmp.Or(cmp.Compare(x.hash, y.hash), cmp.Compare(x.off, y.off))
	})
	keys = slices.Compact(keys)
	f.KeyOffset = b.out.n
	f.KeyCount = int64(len(keys))
	interval := max(segMinFenceInterval, (len(keys)+segMaxFences-1)/segMaxFences)
	f.KeyFenceInterval = interval
	var group [segMinFenceInterval * KeyEntrySize]byte
	for g := 0; g < len(keys); g += interval {
		ents := keys[g:min(g+interval, len(keys))]
		crc := uint32(0)
		for len(ents) > 0 {
			n := min(len(ents), segMinFenceInterval)
			for i, e := range ents[:n] {
				binary.BigEndian.PutUint64(group[i*KeyEntrySize:], e.hash)
				binary.BigEndian.PutUint64(group[i*KeyEntrySize+8:], uint64(e.off))
			}
			crc = crc32.Update(crc, segCRCTable, group[:n*KeyEntrySize])
			if _, err := b.out.Write(group[:n*KeyEntrySize]); err != nil {
				return werr(err)
			}
			ents = ents[n:]
		}
		f.fences = append(f.fences, segKeyFence{prefix: uint32(keys[g].hash >> 32), crc: crc})
	}
	// Footer and trailer.
	footer := encodeFooter(f)
	if len(footer) > MaxFooterSize {
		return fmt.Errorf("tier: footer of %d bytes exceeds %d", len(footer), MaxFooterSize)
	}
	footer = appendTrailer(footer, len(footer))
	f.CRC = binary.BigEndian.Uint32(footer[len(footer)-segTrailerSize+4:])
	if _, err := b.out.Write(footer); err != nil {
		return werr(err)
	}
	if err := b.out.w.Flush(); err != nil {
		return werr(err)
	}
	f.ObjectSize = b.out.n
	return nil
}

func encodeFooter(f *Footer) []byte {
	be := binary.BigEndian
	n := 2 + 6*8 + 4 + len(f.Blocks)*segBlockInfoSize + 4 + 8 + 4 + 4 + len(f.fences)*segFenceSize
	for _, q := range f.Queues {
		n += segQueueMinSize + len(q.Topic) - 1
	}
	p := make([]byte, 0, n+segTrailerSize)
	p = be.AppendUint16(p, uint16(f.Version))
	for _, v := range []int64{f.Base, f.End, f.DataEnd, f.Records, f.MinTimestamp, f.MaxTimestamp} {
		p = be.AppendUint64(p, uint64(v))
	}
	p = be.AppendUint32(p, uint32(len(f.Blocks)))
	for _, bl := range f.Blocks {
		p = be.AppendUint32(p, uint32(bl.RawLen))
		p = be.AppendUint32(p, uint32(bl.CompLen))
		p = be.AppendUint32(p, bl.CRC)
		p = append(p, bl.Flags)
	}
	p = be.AppendUint32(p, uint32(len(f.Queues)))
	for _, q := range f.Queues {
		p = append(p, byte(len(q.Topic)))
		p = append(p, q.Topic...)
		p = be.AppendUint32(p, uint32(q.QueueID))
		for _, v := range []int64{q.First, q.Count, q.MinTimestamp, q.MaxTimestamp} {
			p = be.AppendUint64(p, uint64(v))
		}
		p = be.AppendUint32(p, q.CRC)
	}
	p = be.AppendUint64(p, uint64(f.KeyCount))
	p = be.AppendUint32(p, uint32(f.KeyFenceInterval))
	p = be.AppendUint32(p, uint32(len(f.fences)))
	for _, fe := range f.fences {
		p = be.AppendUint32(p, fe.prefix)
		p = be.AppendUint32(p, fe.crc)
	}
	return p
}

// appendTrailer appends the trailer of a footer of footerLen bytes that
// ends p: footer length, CRC32C, version, flags, magic.
func appendTrailer(p []byte, footerLen int) []byte {
	be := binary.BigEndian
	footer := p[len(p)-footerLen:]
	p = be.AppendUint32(p, uint32(footerLen))
	p = be.AppendUint32(p, 0) // CRC, filled below
	p = be.AppendUint16(p, SegmentObjectVersion)
	p = be.AppendUint16(p, 0) // flags
	p = be.AppendUint64(p, segTrailerMagic)
	t := p[len(p)-segTrailerSize:]
	be.PutUint32(t[4:], segFooterCRC(footer, t))
	return p
}

// segFooterCRC covers the footer and the trailer's length, version and
// flags; the magic is checked by value.
func segFooterCRC(footer, trailer []byte) uint32 {
	c := segCRC(footer)
	c = crc32.Update(c, segCRCTable, trailer[0:4])
	return crc32.Update(c, segCRCTable, trailer[8:12])
}

// ---------------------------------------------------------------------------
// Reading

// segCursor reads big-endian fields from a byte slice, remembering the
// first overrun.
type segCursor struct {
	b   []byte
	bad bool
}

func (c *segCursor) take(n int) []byte {
	if c.bad || n < 0 || n > len(c.b) {
		c.bad = true
		return nil
	}
	v := c.b[:n]
	c.b = c.b[n:]
	return v
}

func (c *segCursor) u8() uint8 {
	if v := c.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (c *segCursor) u16() uint16 {
	if v := c.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (c *segCursor) u32() uint32 {
	if v := c.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (c *segCursor) i64() int64 {
	if v := c.take(8); v != nil {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

// DecodeFooter parses the footer of a segment object of objSize bytes from
// tail, the object's last len(tail) bytes (FooterTailSize, or the whole
// object if smaller). If tail does not hold the whole footer it returns a
// *ShortTailError (errors.Is ErrShortTail) saying how many bytes to fetch.
// A corrupt footer, or one inconsistent with objSize, yields an error
// wrapping ErrCorruptObject.
func DecodeFooter(tail []byte, objSize int64) (*Footer, error) {
	if objSize < segTrailerSize || int64(len(tail)) > objSize {
		return nil, segCorrupt("object of %d bytes (tail %d) cannot hold a footer", objSize, len(tail))
	}
	if len(tail) < segTrailerSize {
		return nil, &ShortTailError{Need: min(objSize, FooterTailSize)}
	}
	be := binary.BigEndian
	t := tail[len(tail)-segTrailerSize:]
	if m := be.Uint64(t[12:]); m != segTrailerMagic {
		return nil, segCorrupt("bad trailer magic %#x", m)
	}
	if v := be.Uint16(t[8:]); v != SegmentObjectVersion {
		return nil, segCorrupt("unsupported format version %d", v)
	}
	if fl := be.Uint16(t[10:]); fl != 0 {
		return nil, segCorrupt("unknown trailer flags %#x", fl)
	}
	footerLen := int64(be.Uint32(t[0:]))
	if footerLen > MaxFooterSize || footerLen+segTrailerSize > objSize {
		return nil, segCorrupt("footer length %d out of range for a %d-byte object", footerLen, objSize)
	}
	need := footerLen + segTrailerSize
	if int64(len(tail)) < need {
		return nil, &ShortTailError{Need: need}
	}
	footer := tail[int64(len(tail))-need : len(tail)-segTrailerSize]
	if got, want := segFooterCRC(footer, t), be.Uint32(t[4:]); got != want {
		return nil, segCorrupt("footer CRC %#x, trailer says %#x", got, want)
	}
	f, err := parseFooter(footer, objSize, objSize-need)
	if err != nil {
		return nil, err
	}
	f.CRC = be.Uint32(t[4:])
	return f, nil
}

// parseFooter decodes and validates a CRC-checked footer that starts at
// object offset footerOff.
func parseFooter(b []byte, objSize, footerOff int64) (*Footer, error) {
	c := &segCursor{b: b}
	f := &Footer{ObjectSize: objSize}
	f.Version = int(c.u16())
	f.Base, f.End, f.DataEnd = c.i64(), c.i64(), c.i64()
	f.Records, f.MinTimestamp, f.MaxTimestamp = c.i64(), c.i64(), c.i64()
	if c.bad {
		return nil, segCorrupt("short footer")
	}
	if f.Version != SegmentObjectVersion {
		return nil, segCorrupt("footer version %d", f.Version)
	}
	if f.Base < 0 || f.End < 0 || f.End-f.Base < segMarkerSize || f.DataEnd < f.Base || f.DataEnd > f.End-segMarkerSize {
		return nil, segCorrupt("log range base %d data end %d end %d", f.Base, f.DataEnd, f.End)
	}
	if f.Records < 0 || f.Records > (f.DataEnd-f.Base)/(remoting.MinRecordSize+segRecordTrailer) {
		return nil, segCorrupt("%d records in %d bytes", f.Records, f.DataEnd-f.Base)
	}
	if f.MinTimestamp > f.MaxTimestamp || (f.Records == 0 && (f.MinTimestamp != 0 || f.MaxTimestamp != 0)) {
		return nil, segCorrupt("timestamp range [%d, %d]", f.MinTimestamp, f.MaxTimestamp)
	}

	// Blocks: contiguous in the log from Base and in the object from 0.
	nb := int64(c.u32())
	if c.bad || nb > int64(len(c.b))/segBlockInfoSize {
		return nil, segCorrupt("block count %d overruns the footer", nb)
	}
	if nb > 0 {
		f.Blocks = make([]BlockInfo, nb)
	}
	logOff, objOff := f.Base, int64(0)
	for i := range f.Blocks {
		bl := BlockInfo{LogOffset: logOff, ObjOffset: objOff}
		raw, comp := int64(c.u32()), int64(c.u32())
		bl.CRC, bl.Flags = c.u32(), c.u8()
		if raw < 1 || raw > MaxBlockSize || comp < 1 || comp > int64(lz4.CompressBlockBound(int(raw))) ||
			bl.Flags&^BlockFlagRaw != 0 || (bl.Flags == BlockFlagRaw && comp != raw) {
			return nil, segCorrupt("block %d: raw %d compressed %d flags %#x", i, raw, comp, bl.Flags)
		}
		bl.RawLen, bl.CompLen = int32(raw), int32(comp)
		logOff += raw
		objOff += comp
		if logOff > f.DataEnd || objOff > footerOff {
			return nil, segCorrupt("block %d overruns the data", i)
		}
		f.Blocks[i] = bl
	}
	if logOff != f.DataEnd {
		return nil, segCorrupt("blocks cover [%d, %d), data ends at %d", f.Base, logOff, f.DataEnd)
	}

	// Queues: sorted, sections contiguous after the blocks.
	nq := int64(c.u32())
	if c.bad || nq > int64(len(c.b))/segQueueMinSize {
		return nil, segCorrupt("queue count %d overruns the footer", nq)
	}
	if nq > 0 {
		f.Queues = make([]QueueIndex, nq)
	}
	records := int64(0)
	for i := range f.Queues {
		tl := int(c.u8())
		topic := c.take(tl)
		q := QueueIndex{Topic: string(topic), QueueID: int32(c.u32()), SectionOffset: objOff}
		q.First, q.Count, q.MinTimestamp, q.MaxTimestamp = c.i64(), c.i64(), c.i64(), c.i64()
		q.CRC = c.u32()
		if c.bad {
			return nil, segCorrupt("short queue table")
		}
		if tl == 0 || q.First < 0 || q.Count < 1 || q.Count > f.Records-records || q.First > math.MaxInt64-q.Count ||
			q.MinTimestamp > q.MaxTimestamp || q.MinTimestamp < f.MinTimestamp || q.MaxTimestamp > f.MaxTimestamp {
			return nil, segCorrupt("queue %d (%q/%d): first %d count %d timestamps [%d, %d]", i, topic, q.QueueID, q.First, q.Count, q.MinTimestamp, q.MaxTimestamp)
		}
		if i > 0 {
			p := &f.Queues[i-1]
			if cmp.Or(cmp.Compare(p.Topic, q.Topic), cmp.Compare(p.QueueID, q.QueueID)) >= 0 {
				return nil, segCorrupt("queue table out of order at %d", i)
			}
		}
		records += q.Count
		q.SectionLen = q.Count * QueueEntrySize
		objOff += q.SectionLen
		if objOff > footerOff {
			return nil, segCorrupt("queue section %d overruns the object", i)
		}
		f.Queues[i] = q
	}
	if records != f.Records {
		return nil, segCorrupt("queues hold %d records, footer says %d", records, f.Records)
	}

	// Keys: one section after the queue sections, then the footer.
	f.KeyOffset = objOff
	f.KeyCount = c.i64()
	interval := int64(c.u32())
	nf := int64(c.u32())
	if c.bad || f.KeyCount < 0 || f.KeyCount > (footerOff-objOff)/KeyEntrySize {
		return nil, segCorrupt("key count %d", f.KeyCount)
	}
	if objOff+f.KeyCount*KeyEntrySize != footerOff {
		return nil, segCorrupt("sections end at %d, footer starts at %d", objOff+f.KeyCount*KeyEntrySize, footerOff)
	}
	if interval < 1 || interval > math.MaxInt32 || nf != (f.KeyCount+interval-1)/interval || nf*segFenceSize != int64(len(c.b)) {
		return nil, segCorrupt("%d key fences every %d of %d keys in %d bytes", nf, interval, f.KeyCount, len(c.b))
	}
	f.KeyFenceInterval = int(interval)
	if nf > 0 {
		f.fences = make([]segKeyFence, nf)
	}
	for i := range f.fences {
		f.fences[i] = segKeyFence{prefix: c.u32(), crc: c.u32()}
		if i > 0 && f.fences[i].prefix < f.fences[i-1].prefix {
			return nil, segCorrupt("key fences out of order at %d", i)
		}
	}
	if c.bad || len(c.b) != 0 {
		return nil, segCorrupt("footer has %d trailing bytes", len(c.b))
	}
	return f, nil
}

// segGet reads the n bytes at off of key.
func segGet(ctx context.Context, s ObjectStore, key string, off, n int64) ([]byte, error) {
	rc, err := s.GetRange(ctx, key, off, n)
	if err != nil {
		return nil, fmt.Errorf("tier: get %s [%d, +%d): %w", key, off, n, err)
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		if ctx.Err() == nil {
			// The body broke off mid-way: the store, not the object.
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("tier: read %s [%d, +%d): %w", key, off, n, err)
	}
	return b, nil
}

// ReadFooter fetches and decodes the footer of the segment object key of
// objSize bytes: one ranged GET of the last FooterTailSize bytes, and a
// second one if the footer is larger.
func ReadFooter(ctx context.Context, s ObjectStore, key string, objSize int64) (*Footer, error) {
	if objSize < segTrailerSize {
		return nil, fmt.Errorf("tier: footer of %s: %w", key, segCorrupt("object of %d bytes", objSize))
	}
	n := min(objSize, FooterTailSize)
	for range 2 {
		tail, err := segGet(ctx, s, key, objSize-n, n)
		if err != nil {
			return nil, err
		}
		f, err := DecodeFooter(tail, objSize)
		var st *ShortTailError
		if errors.As(err, &st) && st.Need > n {
			n = st.Need
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tier: footer of %s: %w", key, err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("tier: footer of %s: %w", key, segCorrupt("footer length changed between reads"))
}

// BlockFor returns the index in f.Blocks of the block holding logOffset,
// or false when no block does (outside [Base, DataEnd)).
func (f *Footer) BlockFor(logOffset int64) (int, bool) {
	i := sort.Search(len(f.Blocks), func(i int) bool { return f.Blocks[i].LogOffset > logOffset }) - 1
	if i < 0 {
		return 0, false
	}
	b := f.Blocks[i]
	if logOffset >= b.LogOffset+int64(b.RawLen) {
		return 0, false
	}
	return i, true
}

// Queue returns the index entry of topic/queueID, or false when the
// segment holds no message of that queue.
func (f *Footer) Queue(topic string, queueID int32) (*QueueIndex, bool) {
	i, ok := slices.BinarySearchFunc(f.Queues, topic, func(q QueueIndex, t string) int {
		return cmp.Or(cmp.Compare(q.Topic, t), cmp.Compare(q.QueueID, queueID))
	})
	if !ok {
		return nil, false
	}
	return &f.Queues[i], true
}

// DecodeBlock returns the uncompressed bytes of the data block b read from
// the object (compressed must be its CompLen bytes), checking their length
// and CRC. A raw block is returned as compressed itself.
func DecodeBlock(compressed []byte, b BlockInfo) ([]byte, error) {
	if b.RawLen < 1 || b.RawLen > MaxBlockSize || b.Flags&^BlockFlagRaw != 0 {
		return nil, segCorrupt("block at %d: raw length %d flags %#x", b.LogOffset, b.RawLen, b.Flags)
	}
	if int64(len(compressed)) != int64(b.CompLen) {
		return nil, segCorrupt("block at %d: %d bytes, want %d", b.LogOffset, len(compressed), b.CompLen)
	}
	raw := compressed
	if b.Flags&BlockFlagRaw == 0 {
		raw = make([]byte, b.RawLen)
		n, err := lz4.UncompressBlock(compressed, raw)
		if err != nil {
			return nil, segCorrupt("block at %d: lz4: %v", b.LogOffset, err)
		}
		raw = raw[:n]
	}
	if len(raw) != int(b.RawLen) {
		return nil, segCorrupt("block at %d: %d bytes uncompressed, want %d", b.LogOffset, len(raw), b.RawLen)
	}
	if c := segCRC(raw); c != b.CRC {
		return nil, segCorrupt("block at %d: CRC %#x, want %#x", b.LogOffset, c, b.CRC)
	}
	return raw, nil
}

// ReadBlock fetches data block b of the object key (one ranged GET) and
// decodes it.
func ReadBlock(ctx context.Context, s ObjectStore, key string, b BlockInfo) ([]byte, error) {
	if b.CompLen < 1 || b.ObjOffset < 0 || int64(b.CompLen) > int64(lz4.CompressBlockBound(MaxBlockSize)) {
		return nil, fmt.Errorf("tier: block of %s: %w", key, segCorrupt("block at %d: compressed length %d at %d", b.LogOffset, b.CompLen, b.ObjOffset))
	}
	comp, err := segGet(ctx, s, key, b.ObjOffset, int64(b.CompLen))
	if err != nil {
		return nil, err
	}
	raw, err := DecodeBlock(comp, b)
	if err != nil {
		return nil, fmt.Errorf("tier: block of %s: %w", key, err)
	}
	return raw, nil
}

// RecordAt returns the record of size bytes (its TOTALSIZE, without the CRC
// trailer) at logOffset in the decoded block b, after checking its size
// field, magic, physical offset and CRC trailer. The result aliases block.
func RecordAt(block []byte, b BlockInfo, logOffset int64, size int32) ([]byte, error) {
	pos := logOffset - b.LogOffset
	if logOffset < b.LogOffset || size < remoting.MinRecordSize || pos > int64(len(block)) ||
		int64(size)+segRecordTrailer > int64(len(block))-pos {
		return nil, segCorrupt("record at %d (%d bytes) is outside the block [%d, +%d)", logOffset, size, b.LogOffset, len(block))
	}
	rec := block[pos : pos+int64(size) : pos+int64(size)]
	be := binary.BigEndian
	if int32(be.Uint32(rec)) != size || be.Uint32(rec[remoting.OffMagic:]) != remoting.MessageMagic ||
		int64(be.Uint64(rec[remoting.OffPhysicalOffset:])) != logOffset {
		return nil, segCorrupt("no %d-byte record at %d", size, logOffset)
	}
	if segCRC(rec) != be.Uint32(block[pos+int64(size):]) {
		return nil, segCorrupt("record at %d: CRC mismatch", logOffset)
	}
	return rec, nil
}

// DecodeQueueSection decodes the queue section of q (b must be its
// SectionLen bytes), checking its CRC and that its log offsets ascend.
func DecodeQueueSection(b []byte, q QueueIndex) ([]QueueEntry, error) {
	if q.Count < 1 || q.Count > segMaxQueueSection/QueueEntrySize || q.SectionLen != q.Count*QueueEntrySize || int64(len(b)) != q.SectionLen {
		return nil, segCorrupt("queue %s/%d: section of %d bytes for %d entries", q.Topic, q.QueueID, len(b), q.Count)
	}
	if c := segCRC(b); c != q.CRC {
		return nil, segCorrupt("queue %s/%d: section CRC %#x, want %#x", q.Topic, q.QueueID, c, q.CRC)
	}
	out := make([]QueueEntry, q.Count)
	for i := range out {
		e := QueueEntryAt(b, int64(i))
		if e.Size < remoting.MinRecordSize || e.LogOffset < 0 || (i > 0 && e.LogOffset <= out[i-1].LogOffset) {
			return nil, segCorrupt("queue %s/%d: bad entry %d %+v", q.Topic, q.QueueID, i, e)
		}
		out[i] = e
	}
	return out, nil
}

func putQueueEntry(b []byte, e QueueEntry) {
	be := binary.BigEndian
	be.PutUint64(b[0:], uint64(e.LogOffset))
	be.PutUint32(b[8:], uint32(e.Size))
	be.PutUint64(b[12:], uint64(e.TagHash))
	be.PutUint64(b[20:], uint64(e.StoreTimestamp))
}

// QueueEntryAt decodes entry i (0 for the queue's First offset) of a queue
// section that DecodeQueueSection has verified, without allocating; it
// returns the zero QueueEntry when i is out of range.
func QueueEntryAt(section []byte, i int64) QueueEntry {
	if i < 0 || i >= int64(len(section))/QueueEntrySize {
		return QueueEntry{}
	}
	e := section[i*QueueEntrySize : (i+1)*QueueEntrySize]
	be := binary.BigEndian
	return QueueEntry{
		LogOffset:      int64(be.Uint64(e)),
		Size:           int32(be.Uint32(e[8:])),
		TagHash:        int64(be.Uint64(e[12:])),
		StoreTimestamp: int64(be.Uint64(e[20:])),
	}
}

// ReadQueueEntries fetches and decodes the whole queue section of q (one
// ranged GET).
func ReadQueueEntries(ctx context.Context, s ObjectStore, key string, q QueueIndex) ([]QueueEntry, error) {
	if q.Count < 1 || q.Count > segMaxQueueSection/QueueEntrySize || q.SectionLen != q.Count*QueueEntrySize || q.SectionOffset < 0 {
		return nil, fmt.Errorf("tier: queue section of %s: %w", key, segCorrupt("queue %s/%d: %d entries in %d bytes", q.Topic, q.QueueID, q.Count, q.SectionLen))
	}
	b, err := segGet(ctx, s, key, q.SectionOffset, q.SectionLen)
	if err != nil {
		return nil, err
	}
	ents, err := DecodeQueueSection(b, q)
	if err != nil {
		return nil, fmt.Errorf("tier: queue section of %s: %w", key, err)
	}
	return ents, nil
}

// keyGroups returns the fence groups [lo, hi) that may hold entries of
// key's hash.
func (f *Footer) keyGroups(h uint64) (lo, hi int) {
	p := uint32(h >> 32)
	hi = sort.Search(len(f.fences), func(i int) bool { return f.fences[i].prefix > p })
	if hi == 0 {
		return 0, 0 // every entry hashes higher
	}
	lo = sort.Search(len(f.fences), func(i int) bool { return f.fences[i].prefix >= p })
	if lo > 0 {
		lo-- // the previous group's tail may share the prefix
	}
	return lo, hi
}

// KeyRange returns the byte range [off, off+n) of the object's key section
// that holds every entry for key; n is 0 when the segment cannot hold it.
func (f *Footer) KeyRange(key string) (off, n int64) {
	lo, hi := f.keyGroups(segKeyHash([]byte(key)))
	if lo >= hi {
		return 0, 0
	}
	iv := int64(f.KeyFenceInterval)
	first, last := int64(lo)*iv, min(int64(hi)*iv, f.KeyCount)
	return f.KeyOffset + first*KeyEntrySize, (last - first) * KeyEntrySize
}

// LookupKey returns the log offsets of the entries for key in section, a
// slice of the key section (whole KeyEntrySize entries sorted by hash, as
// KeyRange returns). They are candidates: hashes collide, so the caller
// checks the record's keys and topic.
func LookupKey(section []byte, key string) []int64 {
	h := segKeyHash([]byte(key))
	n := len(section) / KeyEntrySize
	be := binary.BigEndian
	i := sort.Search(n, func(i int) bool { return be.Uint64(section[i*KeyEntrySize:]) >= h })
	var out []int64
	for ; i < n && be.Uint64(section[i*KeyEntrySize:]) == h; i++ {
		out = append(out, int64(be.Uint64(section[i*KeyEntrySize+8:])))
	}
	return out
}

// ReadKeyCandidates fetches the slice of the key section of object objKey
// that may hold key (one ranged GET, none if the fences exclude it), checks
// its CRCs and returns the candidate log offsets (see LookupKey).
func ReadKeyCandidates(ctx context.Context, s ObjectStore, objKey string, f *Footer, key string) ([]int64, error) {
	h := segKeyHash([]byte(key))
	lo, hi := f.keyGroups(h)
	if lo >= hi {
		return nil, nil
	}
	off, n := f.KeyRange(key)
	if n <= 0 || n > segMaxKeyRead || off < 0 {
		return nil, fmt.Errorf("tier: key section of %s: %w", objKey, segCorrupt("key range [%d, +%d)", off, n))
	}
	b, err := segGet(ctx, s, objKey, off, n)
	if err != nil {
		return nil, err
	}
	gl := f.KeyFenceInterval * KeyEntrySize
	rest := b
	for g := lo; g < hi; g++ {
		chunk := rest[:min(gl, len(rest))]
		rest = rest[len(chunk):]
		if segCRC(chunk) != f.fences[g].crc {
			return nil, fmt.Errorf("tier: key section of %s: %w", objKey, segCorrupt("key group %d CRC mismatch", g))
		}
		if len(chunk) > 0 && uint32(binary.BigEndian.Uint64(chunk)>>32) != f.fences[g].prefix {
			return nil, fmt.Errorf("tier: key section of %s: %w", objKey, segCorrupt("key group %d does not match its fence", g))
		}
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("tier: key section of %s: %w", objKey, segCorrupt("key range overruns its groups"))
	}
	return LookupKey(b, key), nil
}
