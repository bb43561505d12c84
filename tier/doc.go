// Package tier is Strata's cold tier: the object-store interface
// (ObjectStore), the segment object format, the manifest, the uploader and
// the reader that serves offloaded messages.
//
// # Segment objects
//
// Every sealed commit-log segment becomes one immutable object (key
// <root>/<20-digit base>.seg). BuildSegmentObject writes it in one
// streaming pass over the segment file. All integers are big-endian; every
// CRC is CRC32C (Castagnoli). The object is, in order:
//
//	data blocks      the segment's records, CRC trailers included
//	queue sections   one per topic/queue, in queue-table order
//	key section      the message-key index
//	footer           everything needed to find the above
//	trailer          20 bytes, the last bytes of the object
//
// Data blocks. The segment's bytes from its base up to the blank
// end-of-segment marker (which is not stored) are cut into blocks on record
// boundaries: records are added to a block until the next one would take it
// past the block size (default 1 MiB); a record larger than the block size
// is a block of its own (at most MaxBlockSize, 64 MiB). Each block is
// compressed on its own with LZ4 block compression; a block LZ4 does not
// shrink by at least 1/32 is stored raw (BlockFlagRaw). Decompressed, a block holds the
// segment's bytes exactly as on disk, so record i of a block is found at
// its log offset minus the block's first log offset.
//
// Queue sections. For each topic/queue present in the segment, its
// consume-queue entries in queue-offset order, 28 bytes each:
//
//	log offset (8)  record size without trailer (4)  tag hash (8)  store timestamp (8)
//
// Queue offsets are dense within a segment (the builder refuses a segment
// where they are not), so the entry of queue offset o is entry o-First.
//
// Key section. 16-byte entries, FNV-1a-64 hash of the key (8) and the
// record's log offset (8), for every KEYS entry and the UNIQ_KEY of every
// record, sorted by hash then offset, duplicates dropped. The entries form
// groups of KeyFenceInterval entries (at least 64, more when needed to keep
// at most 2048 groups); the footer keeps, per group, a fence: the top 32
// bits of the hash of its first entry and the CRC32C of the group. A lookup
// fetches only the groups whose fences bracket the key's hash, usually one
// or two (Footer.KeyRange), and gets candidates that the caller confirms by
// reading the records.
//
// Footer. Fixed-width fields, in order:
//
//	version u16
//	base, end, data end, records, min timestamp, max timestamp   i64 each
//	block count u32, then per block:
//	    raw length u32, compressed length u32, CRC of the raw bytes u32, flags u8
//	queue count u32, then per queue (sorted by topic, then queue id):
//	    topic length u8, topic, queue id i32, first queue offset i64,
//	    count i64, min/max store timestamp i64, CRC of the section u32
//	key count i64, fence interval u32, fence count u32, then per fence:
//	    hash prefix u32, CRC of the group u32
//
// Offsets are implied: blocks follow each other from object offset 0 and
// from log offset base; queue sections follow the last block, 28·count
// bytes each; the key section follows them, 16·key count bytes; the footer
// follows it. DecodeFooter checks that these add up to the object's size
// exactly, along with every range and ordering, so a footer that passes its
// CRC but disagrees with the object is still refused.
//
// Trailer (20 bytes): footer length u32, CRC32C u32 (over the footer, then
// the trailer's length and its version/flags bytes), version u16, flags u16
// (0), magic "STRATSEG". A reader fetches the last FooterTailSize (64 KiB)
// bytes with one ranged GET, which usually holds the whole footer; when it
// does not, DecodeFooter says how many bytes it needs and a second GET
// fetches them. Any damage (bad magic, CRC, length, inconsistent offsets)
// yields an error wrapping ErrCorruptObject, never garbage.
package tier
