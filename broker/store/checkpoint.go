package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
)

// The checkpoint file records the commit-log offset below which every
// record's consume-queue and index entries are durable. Recovery scans the
// log from there. Layout (big-endian): magic "SCKP", version 1, dispatched
// offset (8), CRC32C of the preceding 16 bytes.
const (
	ckptName    = "checkpoint"
	ckptMagic   = 0x53434b50
	ckptVersion = 1
	ckptSize    = 20
)

func readCheckpoint(dir string) (off int64, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, ckptName))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read checkpoint: %w", err)
	}
	be := binary.BigEndian
	if len(b) != ckptSize || be.Uint32(b) != ckptMagic || be.Uint32(b[4:]) != ckptVersion ||
		crc32.Checksum(b[:16], castagnoli) != be.Uint32(b[16:]) {
		// The file is replaced by rename, so a bad one means outside damage.
		// Fall back to a full scan rather than refusing to start.
		return 0, false, nil
	}
	return int64(be.Uint64(b[8:])), true, nil
}

func writeCheckpoint(dir string, off int64) error {
	var b [ckptSize]byte
	be := binary.BigEndian
	be.PutUint32(b[:], ckptMagic)
	be.PutUint32(b[4:], ckptVersion)
	be.PutUint64(b[8:], uint64(off))
	be.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
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

// checkpoint writes every consume queue's pending entries, syncs them and
// the index, and records the log offset they cover.
func (s *Store) checkpoint() error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	d := s.dispatched.Load()
	if d == s.ckptDone {
		return nil
	}
	var errs []error
	dirty := false
	for _, q := range s.allQueues() {
		if err := q.cq.flush(); err != nil {
			errs = append(errs, err)
		}
		dirty = dirty || q.cq.isDirty()
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
		d, err := os.Open(s.cqDir)
		if err != nil {
			return err
		}
		err = syncFS(d)
		d.Close()
		if err != nil {
			return err
		}
		for _, q := range s.allQueues() {
			q.cq.markClean()
		}
	}
	if err := writeCheckpoint(s.cfg.Dir, d); err != nil {
		return err
	}
	s.ckptDone = d
	return nil
}
