// Package store is Strata's hot tier: one append-only commit log shared by
// every topic, a consume queue per topic/queue, a key index and a
// checkpoint. It knows nothing of the network.
//
// # Directory layout
//
//	<dir>/commitlog/<20-digit base offset>       preallocated segments
//	<dir>/consumequeue/<topic>/<queue>/<20-digit first offset>
//	<dir>/index/<20-digit first log offset>.idx  key index files
//	<dir>/checkpoint                              recovery start
//
// # Commit log
//
// A segment is a preallocated file (SegmentSize, default 1 GiB) covering log
// offsets [base, base+size). Records follow each other with no padding:
//
//	MessageExt record   TOTALSIZE bytes, RocketMQ 4.x layout (remoting.MessageExt);
//	                    PHYSICALOFFSET is the record's own log offset
//	CRC32C              4 bytes, big-endian, Castagnoli, over the record
//
// The record is exactly what a pull response carries, so reads send stored
// bytes as they are; the trailer is skipped. A record never straddles
// segments: when the next one does not fit, a blank marker (TOTALSIZE = the
// rest of the segment, magic remoting.BlankMagic) seals the segment and the
// log continues at base+size in a new file. Every append leaves room for the
// marker. An age-driven seal releases the unused end with a punched hole.
//
// Writes use O_DIRECT with buffers and offsets aligned to the filesystem's
// direct-I/O alignment (statx STATX_DIOALIGN, 4096 by default). The partial
// last block stays in memory and is rewritten with the next write; bytes
// that were already written are rewritten unchanged, so a torn rewrite never
// damages acknowledged data. Where O_DIRECT is refused the store writes
// through the page cache and relies on fdatasync.
//
// A prewriter keeps the active segment written with zeros PrewriteAhead
// (32 MiB) past the log end, so group commits overwrite written blocks: on
// a preallocated (unwritten) block every fdatasync would also commit the
// filesystem's journal. Since direct I/O leaves nothing in the page cache,
// the newest TailCacheSize (32 MiB) bytes of the log are kept in memory
// for queue reads.
//
// # Group commit
//
// Appends encode their records straight into the current aligned write
// buffer under one mutex and wait for their epoch. One goroutine writes an
// epoch with a single pwritev; a second fdatasyncs it, makes its records
// readable (consume queue; their keys go to a third goroutine for the key
// index) and releases its waiters, while the first already writes the next
// epoch. Under FlushAsync an epoch is released
// after its write and fdatasync runs every FlushInterval.
//
// # Consume queues
//
// Entry N of a queue is 20 bytes at 20·(N mod QueueFileEntries) of the file
// named by the entry's file-aligned first offset: commit-log offset (8),
// record size (4), tag hash (8). New entries live in memory until the
// checkpoint writes them.
//
// # Checkpoint and recovery
//
// Every CheckpointInterval the store writes pending consume-queue entries,
// syncs them and the key index (one syncfs), and records in the checkpoint
// the log offset they cover. Open scans the log from there, verifying each
// record's CRC and that its queue offset continues its queue, truncates at
// the first record that fails, zeroes the rest of that segment, removes
// later segments, and rebuilds the consume-queue and index entries it
// scanned. After a clean Close the checkpoint is the end of the log and Open
// scans nothing.
package store
