package store

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// defaultBlockSize is used when the kernel does not report the direct-I/O
// alignment of a file (STATX_DIOALIGN needs Linux 6.1).
const defaultBlockSize = 4096

// openFile is os.OpenFile; tests replace it to simulate filesystems that
// refuse O_DIRECT.
var openFile = os.OpenFile

// openSegmentFile opens path for appending with direct I/O when direct is
// true. It returns the write handle, a buffered read handle, and whether
// direct I/O is in effect (false when the filesystem refuses O_DIRECT, as
// tmpfs does).
func openSegmentFile(path string, create, direct bool) (w, r *os.File, isDirect bool, err error) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE | os.O_EXCL
	}
	if direct {
		w, err = openFile(path, flags|unix.O_DIRECT, 0o644)
		if err == nil {
			isDirect = true
		} else if errors.Is(err, unix.EINVAL) {
			if create {
				_ = os.Remove(path) // O_CREAT may have happened before the EINVAL
			}
			w = nil
		} else {
			return nil, nil, false, err
		}
	}
	if w == nil {
		if w, err = os.OpenFile(path, flags, 0o644); err != nil {
			return nil, nil, false, err
		}
	}
	if r, err = os.Open(path); err != nil {
		w.Close()
		if create {
			os.Remove(path)
		}
		return nil, nil, false, err
	}
	return w, r, isDirect, nil
}

// dioAlignment returns the file offset and memory alignment that direct I/O
// on f needs.
func dioAlignment(f *os.File) int {
	var st unix.Statx_t
	err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &st)
	if err != nil || st.Mask&unix.STATX_DIOALIGN == 0 || st.Dio_offset_align == 0 {
		return defaultBlockSize
	}
	a := max(int(st.Dio_offset_align), int(st.Dio_mem_align))
	if a&(a-1) != 0 {
		return defaultBlockSize
	}
	return max(a, 512)
}

// preallocate reserves size bytes for f so later writes inside them cannot
// fail for lack of space.
func preallocate(f *os.File, size int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EOPNOTSUPP {
			return f.Truncate(size)
		}
		if err != nil {
			return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
		}
		return nil
	}
}

// zeroRange makes [off, off+n) of f read as zeros while keeping its space
// reserved: punch a hole, then allocate it again.
func zeroRange(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == nil {
		return nil
	}
	err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == nil {
		err = unix.Fallocate(int(f.Fd()), 0, off, n)
	}
	if err == nil {
		return nil
	}
	// Last resort: write zeros, through a buffered handle (f may be
	// O_DIRECT, which refuses unaligned buffers).
	bf, err := os.OpenFile(f.Name(), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("zero %s: %w", f.Name(), err)
	}
	defer bf.Close()
	zero := make([]byte, 64<<10)
	for n > 0 {
		c := min(n, int64(len(zero)))
		if _, werr := bf.WriteAt(zero[:c], off); werr != nil {
			return fmt.Errorf("zero %s: %w", f.Name(), werr)
		}
		off += c
		n -= c
	}
	return bf.Sync()
}

func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
		}
		return nil
	}
}

// syncDir makes the creation, removal or rename of entries in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// syncFS flushes every dirty page of the filesystem that holds f: one call
// instead of one fdatasync per file when many files are dirty.
func syncFS(f *os.File) error {
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: f.Name(), Err: err}
	}
	return nil
}

// alignedBuffer returns a zeroed byte slice of length n whose first byte is
// aligned to align (a power of two).
func alignedBuffer(n, align int) []byte {
	raw := make([]byte, n+align)
	off := int(uintptr(unsafe.Pointer(&raw[0])) & uintptr(align-1))
	if off != 0 {
		off = align - off
	}
	return raw[off : off+n : off+n]
}

// pwritev writes bufs contiguously at off with as few syscalls as the
// kernel allows, retrying short writes.
func pwritev(f *os.File, bufs [][]byte, off int64) error {
	fd := int(f.Fd())
	for len(bufs) > 0 {
		n, err := unix.Pwritev(fd, bufs, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "pwritev", Path: f.Name(), Err: err}
		}
		off += int64(n)
		for n > 0 && len(bufs) > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
			} else {
				bufs[0] = bufs[0][n:]
				n = 0
			}
		}
	}
	return nil
}

// punchHole releases the disk space of [off, off+n) of f; the file keeps its
// size and the range reads as zeros.
func punchHole(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
		return &os.PathError{Op: "punch hole", Path: f.Name(), Err: err}
	}
	return nil
}
