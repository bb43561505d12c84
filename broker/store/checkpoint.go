package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// The checkpoint file records the commit-log offset below which the log is
// durable and every record's consume-queue and index entries are durable
// too. Recovery scans the log from there. Layout (big-endian): magic
// "SCKP", version 2, that offset (8), the last store timestamp (8, ms; keeps
// store time monotonic across restarts), CRC32C of the preceding 24 bytes.
const (
	ckptName    = "checkpoint"
	ckptMagic   = 0x53434b50
	ckptVersion = 2
	ckptSize    = 28
)

func readCheckpoint(dir string) (off, lastTs int64, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, ckptName))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("read checkpoint: %w", err)
	}
	be := binary.BigEndian
	if len(b) != ckptSize || be.Uint32(b) != ckptMagic || be.Uint32(b[4:]) != ckptVersion ||
		crc32.Checksum(b[:24], castagnoli) != be.Uint32(b[24:]) {
		// The file is replaced by rename, so a bad one means outside damage.
		// Fall back to a full scan rather than refusing to start.
		return 0, 0, false, nil
	}
	return int64(be.Uint64(b[8:])), int64(be.Uint64(b[16:])), true, nil
}

func writeCheckpoint(dir string, off, lastTs int64) error {
	var b [ckptSize]byte
	be := binary.BigEndian
	be.PutUint32(b[:], ckptMagic)
	be.PutUint32(b[4:], ckptVersion)
	be.PutUint64(b[8:], uint64(off))
	be.PutUint64(b[16:], uint64(lastTs))
	be.PutUint32(b[24:], crc32.Checksum(b[:24], castagnoli))
	tmp := filepath.Join(dir, ckptName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if _, err := f.Write(b[:]); err != nil {
		f.Close()
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := fdatasync(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, ckptName)); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return syncDir(dir)
}

// cqPageEntries is a page of consume-queue entries: a queue with this many
// pending is written at the next checkpoint, one with fewer waits up to
// QueueFlushDelay.
const cqPageEntries = 4096 / cqEntrySize

// checkpoint writes consume-queue entries that are due, syncs them and the
// index, and records the log offset below which everything is durable:
// never past an entry still waiting in memory. force writes every pending
// entry (Close, so the next Open scans nothing).
func (s *Store) checkpoint() error { return s.checkpointAt(time.Now(), false) }

func (s *Store) checkpointAt(now time.Time, force bool) error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	// Under FlushAsync records are dispatched before they are synced; the
	// checkpoint must never claim more of the log than is durable.
	// Keys are indexed behind dispatch, by indexLoop.
	d := min(s.dispatched.Load(), s.synced.Load(), s.indexed.Load())
	s.mu.Lock()
	lastTs := s.lastTs
	s.mu.Unlock()
	var errs []error
	dirty := false
	for _, q := range s.allQueues() {
		n, firstLog, since := q.cq.pending(now)
		if n > 0 && !force && n < cqPageEntries && now.Sub(since) < s.cfg.QueueFlushDelay {
			d = min(d, firstLog)
			dirty = dirty || q.cq.isDirty()
			continue
		}
		if err := q.cq.flush(); err != nil {
			errs = append(errs, err)
		}
		dirty = dirty || q.cq.isDirty()
	}
	if d == s.ckptDone && !dirty {
		return errors.Join(errs...)
	}
	if err := s.idx.sync(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if dirty {
		// One syncfs covers every consume-queue file and the directory
		// entries of new ones; commit-log segments are written with direct
		// I/O and add nothing to it.
		dir, err := os.Open(s.cqDir)
		if err != nil {
			return err
		}
		err = syncFS(dir)
		dir.Close()
		if err != nil {
			return err
		}
		for _, q := range s.allQueues() {
			q.cq.markClean()
		}
	}
	if d == s.ckptDone {
		return nil
	}
	if err := writeCheckpoint(s.cfg.Dir, d, lastTs); err != nil {
		return err
	}
	s.ckptDone = d
	return nil
}
