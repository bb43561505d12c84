package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/strata-mq/strata/remoting"
)

const (
	// recordOverhead is the CRC32C trailer that follows every MessageExt
	// record in a segment.
	recordOverhead = 4
	// markerSize is the blank end-of-segment marker: TOTALSIZE (the rest of
	// the segment) and BlankMagic.
	markerSize = 8
	// maxAlign is the largest direct-I/O alignment the store supports.
	maxAlign = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segment is one preallocated commit-log file.
type segment struct {
	base    int64
	size    int64
	path    string
	w       *os.File // nil once sealed and reopened read-only
	r       *os.File
	direct  bool
	created time.Time
	// dirSynced is set by the flusher once the directory entry is durable.
	dirSynced bool
	// sealed is set under Store.segMu once the marker is durable.
	sealed   bool
	sealedAt time.Time
}

// logDirName is the commit log's directory inside the store directory.
const logDirName = "commitlog"

func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

// listSegments returns the bases of the segment files in dir, sorted.
func listSegments(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	for _, e := range ents {
		name := e.Name()
		if len(name) != 20 || !e.Type().IsRegular() {
			continue
		}
		b, err := strconv.ParseInt(name, 10, 64)
		if err != nil {
			continue
		}
		bases = append(bases, b)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

// HasLog reports whether the store directory dir holds any commit-log
// segment (a broker starting on an empty one rebuilds from the cold tier).
func HasLog(dir string) bool {
	bases, err := listSegments(filepath.Join(dir, logDirName))
	return err == nil && len(bases) > 0
}

// createSegment creates and preallocates a new segment file.
func createSegment(dir string, base, size int64, direct bool) (*segment, error) {
	path := filepath.Join(dir, segmentName(base))
	w, r, isDirect, err := openSegmentFile(path, true, direct)
	if err != nil {
		return nil, fmt.Errorf("create segment %s: %w", path, err)
	}
	if err := preallocate(w, size); err != nil {
		w.Close()
		r.Close()
		os.Remove(path)
		return nil, fmt.Errorf("preallocate segment %s: %w", path, err)
	}
	return &segment{base: base, size: size, path: path, w: w, r: r, direct: isDirect, created: time.Now()}, nil
}

// openSegment opens an existing segment; writable segments get a write handle.
func openSegment(dir string, base int64, writable, direct bool) (*segment, error) {
	path := filepath.Join(dir, segmentName(base))
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	s := &segment{base: base, size: st.Size(), path: path, created: st.ModTime(), sealedAt: st.ModTime(), dirSynced: true}
	if writable {
		s.w, s.r, s.direct, err = openSegmentFile(path, false, direct)
	} else {
		s.r, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("open segment %s: %w", path, err)
	}
	return s, nil
}

func (s *segment) close() error {
	var err error
	if s.w != nil {
		err = s.w.Close()
	}
	if s.r != nil {
		if e := s.r.Close(); err == nil {
			err = e
		}
	}
	return err
}

func (s *segment) info(end int64) SegmentInfo {
	info := SegmentInfo{Base: s.base, Size: s.size, End: end, Sealed: s.sealed, Path: s.path, Created: s.created}
	if s.sealed {
		info.SealedAt = s.sealedAt
	}
	return info
}

// putMarker writes the blank end-of-segment marker at b for a segment with
// rest bytes left.
func putMarker(b []byte, rest int64) {
	binary.BigEndian.PutUint32(b, uint32(rest))
	binary.BigEndian.PutUint32(b[4:], remoting.BlankMagic)
}

// recordKind classifies the bytes at a segment position during a scan.
type recordKind int

const (
	kindRecord  recordKind = iota // a valid record
	kindMarker                    // the end-of-segment marker
	kindEnd                       // zeros: the clean end of the log
	kindCorrupt                   // anything else: a torn or corrupt tail
	kindShort                     // b does not hold the whole record; read more
)

// classify examines the bytes b found at segment position pos of a segment
// of size segSize whose first log offset is base. For a record it returns its
// on-disk length (record + CRC trailer).
func classify(b []byte, base, pos, segSize int64, maxMsg int) (recordKind, int) {
	if len(b) < 8 {
		if segSize-pos < markerSize {
			return kindCorrupt, 0
		}
		return kindShort, 0
	}
	total := int64(binary.BigEndian.Uint32(b))
	magic := binary.BigEndian.Uint32(b[4:])
	switch {
	case total == 0 && magic == 0:
		return kindEnd, 0
	case magic == remoting.BlankMagic:
		if total == segSize-pos {
			return kindMarker, int(total)
		}
		return kindCorrupt, 0
	case magic != remoting.MessageMagic, total < remoting.MinRecordSize, total > int64(maxMsg),
		pos+total+recordOverhead+markerSize > segSize:
		return kindCorrupt, 0
	}
	n := int(total) + recordOverhead
	if len(b) < n {
		return kindShort, n
	}
	if crc32.Checksum(b[:total], castagnoli) != binary.BigEndian.Uint32(b[total:]) {
		return kindCorrupt, 0
	}
	if int64(binary.BigEndian.Uint64(b[remoting.OffPhysicalOffset:])) != base+pos {
		return kindCorrupt, 0
	}
	return kindRecord, n
}
