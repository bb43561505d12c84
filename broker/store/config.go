package store

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// FlushMode says when an append is acknowledged.
type FlushMode int

const (
	// FlushSync acknowledges an append only after its bytes are written and
	// fdatasync'ed (group commit shares one write and one fdatasync among all
	// waiting appends).
	FlushSync FlushMode = iota
	// FlushAsync acknowledges an append once its bytes are written to the
	// segment file; fdatasync runs every FlushInterval.
	FlushAsync
)

// String returns "sync" or "async".
func (m FlushMode) String() string {
	if m == FlushAsync {
		return "async"
	}
	return "sync"
}

// ParseFlushMode parses "sync" or "async".
func ParseFlushMode(s string) (FlushMode, error) {
	switch s {
	case "sync", "":
		return FlushSync, nil
	case "async":
		return FlushAsync, nil
	}
	return 0, fmt.Errorf("store: flush mode %q is neither sync nor async", s)
}

// SegmentInfo describes one commit-log segment.
type SegmentInfo struct {
	Base   int64  // log offset of the segment's first byte
	Size   int64  // span of log offsets the segment covers (its file size)
	End    int64  // log offset after its last record (Base+Size once sealed)
	Sealed bool   // ends with a blank marker; no more appends
	Path   string // file path
	// Created is when the segment file was created (for segments found at
	// open: their modification time).
	Created time.Time
	// SealedAt is when the segment was sealed (zero while active).
	SealedAt time.Time
}

// Config configures a Store. The zero value of every field except Dir means
// its default.
type Config struct {
	// Dir holds the commit log, consume queues, index and checkpoint.
	Dir string
	// SegmentSize is the size of each preallocated commit-log segment.
	// Default 1 GiB; it must be a multiple of 64 KiB.
	// Changing it between runs is allowed: existing segments keep theirs.
	SegmentSize int64
	// Flush selects when appends are acknowledged. Default FlushSync.
	Flush FlushMode
	// FlushInterval is how often FlushAsync calls fdatasync. Default 200ms.
	FlushInterval time.Duration
	// FlushTimeout bounds how long Append waits for durability when its
	// context has no earlier deadline; past it Append returns
	// ErrFlushTimeout (the message is stored, its durability unknown, as
	// RocketMQ's FLUSH_DISK_TIMEOUT). Default 5s.
	FlushTimeout time.Duration
	// WriteBufferSize is the size of each aligned write buffer; a group
	// commit writes at most this much per buffer. Default 4 MiB, or enough for one message of
	// MaxMessageSize.
	WriteBufferSize int
	// WriteBuffers is how many write buffers exist; appends wait when all
	// are full (back-pressure). Default 3, minimum 2.
	WriteBuffers int
	// PrewriteAhead is how far ahead of the log end the active segment is
	// kept written with zeros, so that group commits overwrite written
	// blocks instead of converting preallocated ones (see prewriter).
	// Default 32 MiB; negative disables it. Only with direct I/O.
	PrewriteAhead int64
	// TailCacheSize is how many of the newest log bytes are kept in memory
	// for reads (see tailCache). Default 32 MiB; negative disables it.
	TailCacheSize int
	// DisableDirectIO forces buffered I/O + fdatasync even where O_DIRECT
	// works (it is used automatically where the filesystem refuses it).
	DisableDirectIO bool
	// MaxMessageSize bounds one encoded record. Default 4 MiB + 64 KiB
	// (a 4 MiB body plus headers and properties).
	MaxMessageSize int
	// QueueFileEntries is how many 20-byte entries each consume-queue file
	// holds. Default 300,000 (6,000,000 bytes), as RocketMQ.
	QueueFileEntries int
	// IndexSlots and IndexEntries size each key-index file. Defaults
	// 1,000,000 slots and 4,000,000 entries (about 100 MB per file).
	IndexSlots, IndexEntries int
	// CheckpointInterval is how often consume queues and the index are
	// written, synced and checkpointed; recovery rescans at most the log
	// written since the last checkpoint. Default 1s.
	CheckpointInterval time.Duration
	// QueueFlushDelay is how long consume-queue entries may wait in memory
	// before a checkpoint writes them when their queue has less than a page
	// (204 entries) pending. With many quiet queues this turns one random
	// page write per queue per checkpoint into one per QueueFlushDelay; the
	// price is that recovery after a crash rescans up to this much of the
	// log. Default 10s.
	QueueFlushDelay time.Duration
	// SegmentMaxAge seals the active segment once it is this old and holds
	// data, so quiet logs reach the cold tier. Zero: seal only when full.
	SegmentMaxAge time.Duration
	// RetentionBytes and RetentionAge, when set, make the store delete its
	// oldest sealed segments while the log holds more than RetentionBytes,
	// or while they were sealed longer than RetentionAge ago, but only those
	// CanDelete approves: the cold tier approves a segment once its object
	// and manifest are durable. With no CanDelete (no tier) retention alone
	// decides. Zero values keep everything.
	RetentionBytes int64
	RetentionAge   time.Duration
	CanDelete      func(SegmentInfo) bool
	// StartOffset is the log offset of the first segment when the store
	// holds none: a broker rebuilt from the cold tier continues the log after
	// the last offloaded segment, so log offsets (and offset message ids)
	// never repeat. It must be a multiple of 64 KiB. Ignored once the store
	// has segments.
	StartOffset int64
	// Truncate, with TruncateTo, drops the log from log offset TruncateTo
	// on at open: a replica whose tail diverged from its new leader's (an
	// old leader's unacknowledged writes) cuts it off before it copies the
	// leader's log. TruncateTo must be where a record or a segment starts.
	// The first of the dropped bytes are kept in a quarantine file, as torn
	// tails are; later segments are removed.
	Truncate   bool
	TruncateTo int64
	// QueueStart, if set, gives the first offset of a queue the store has
	// never held (a queue whose history lives only in the cold tier), so its
	// offsets continue after the offloaded ones. It is called with the
	// store's append lock held and must not block.
	QueueStart func(topic string, queueID int32) int64
	// StoreHost is written into every record's STOREHOST field.
	StoreHost netip.AddrPort
	// Logger receives the store's logs. Default slog.Default().
	Logger *slog.Logger
	// OnSeal, if set, is called (from the store's flush goroutine; it must
	// not block) once a segment is sealed and durable.
	OnSeal func(SegmentInfo)
	// OnDispatch, if set, is called (from the flush goroutine; it must not
	// block) after new messages of a queue become readable, with the queue's
	// new max offset. Long-polling pulls hang on it.
	OnDispatch func(topic string, queueID int32, maxOffset int64)

	// Testing hooks.
	syncHook func() error // called before each commit-log fdatasync; an error replaces its result
}

func (c *Config) setDefaults() error {
	if c.Dir == "" {
		return errors.New("store: Config.Dir is empty")
	}
	if c.SegmentSize == 0 {
		c.SegmentSize = 1 << 30
	}
	if c.SegmentSize < maxAlign || c.SegmentSize%maxAlign != 0 {
		return fmt.Errorf("store: segment size %d must be a multiple of 64 KiB", c.SegmentSize)
	}
	if c.StartOffset < 0 || c.StartOffset%maxAlign != 0 {
		return fmt.Errorf("store: start offset %d must be a non-negative multiple of 64 KiB", c.StartOffset)
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 200 * time.Millisecond
	}
	if c.FlushTimeout <= 0 {
		c.FlushTimeout = 5 * time.Second
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 4<<20 + 64<<10
	}
	minBuf := c.MaxMessageSize + recordOverhead + markerSize + 2*maxAlign
	if c.WriteBufferSize == 0 {
		c.WriteBufferSize = max(4<<20, (minBuf+maxAlign-1)/maxAlign*maxAlign)
	}
	c.WriteBufferSize = (c.WriteBufferSize + maxAlign - 1) / maxAlign * maxAlign
	if c.WriteBuffers == 0 {
		c.WriteBuffers = 3
	}
	if c.WriteBuffers < 2 {
		return fmt.Errorf("store: need at least 2 write buffers, got %d", c.WriteBuffers)
	}
	if c.WriteBufferSize < minBuf {
		return fmt.Errorf("store: write buffer of %d bytes cannot hold a %d-byte message", c.WriteBufferSize, c.MaxMessageSize)
	}
	if int64(c.MaxMessageSize)+recordOverhead+markerSize > c.SegmentSize {
		return fmt.Errorf("store: a %d-byte message does not fit in a %d-byte segment", c.MaxMessageSize, c.SegmentSize)
	}
	if c.TailCacheSize == 0 {
		c.TailCacheSize = 32 << 20
	}
	if c.PrewriteAhead == 0 {
		c.PrewriteAhead = 32 << 20
	}
	if c.PrewriteAhead > 0 {
		c.PrewriteAhead = alignUp64(c.PrewriteAhead, maxAlign)
	}
	if c.QueueFileEntries == 0 {
		c.QueueFileEntries = 300_000
	}
	if c.IndexSlots == 0 {
		c.IndexSlots = 1_000_000
	}
	if c.IndexEntries == 0 {
		c.IndexEntries = 4_000_000
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = time.Second
	}
	if c.QueueFlushDelay <= 0 {
		c.QueueFlushDelay = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if !c.StoreHost.IsValid() {
		c.StoreHost = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 10911)
	}
	return nil
}
