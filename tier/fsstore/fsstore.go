// Package fsstore implements tier.ObjectStore over a local directory.
//
// Each key maps to a file under the store's directory (slashes in the key
// become directories). Writes are durable before they return: the data goes
// to a temporary file that is fsynced, then renamed (Put) or hard-linked
// (PutIfAbsent) into place, and the directory is fsynced.
//
// Temporary files live in the reserved directory ".strata-tmp" at the root of
// the store, so they are never listed and never replace an object partially.
// New removes temporary files that have not been modified for
// StaleTempAge: they were left by a crashed process. Younger ones are kept,
// since another process sharing the directory may still be writing them.
package fsstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/strata-mq/strata/tier"
)

// StaleTempAge is how long a temporary file must have been left untouched
// before New removes it as debris of a crashed writer.
const StaleTempAge = 15 * time.Minute

// tmpDirName is the reserved top-level directory for temporary files; keys
// may not start with it.
const tmpDirName = ".strata-tmp"

// maxKeyLen bounds key length (S3 allows 1024 bytes).
const maxKeyLen = 1024

// ErrInvalidKey reports a key that cannot be mapped safely to a path under
// the store's directory.
var ErrInvalidKey = errors.New("fsstore: invalid key")

// Store is a tier.ObjectStore backed by a local directory. It is safe for
// concurrent use, also by several processes sharing the directory.
type Store struct {
	dir string // absolute, cleaned
	tmp string // dir/.strata-tmp
}

var _ tier.ObjectStore = (*Store)(nil)

// New opens (creating it if needed) the directory dir as an object store and
// removes stale temporary files left there by crashed writers.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("fsstore: empty directory path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fsstore: resolve %q: %w", dir, err)
	}
	s := &Store{dir: abs, tmp: filepath.Join(abs, tmpDirName)}
	if err := os.MkdirAll(s.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("fsstore: create %s: %w", s.tmp, err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("fsstore: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("fsstore: %s is not a directory", abs)
	}
	s.removeStaleTemps(time.Now())
	return s, nil
}

// Dir returns the absolute directory the store keeps its objects in.
func (s *Store) Dir() string { return s.dir }

func (s *Store) removeStaleTemps(now time.Time) {
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		slog.Warn("fsstore: cannot read temporary directory", "dir", s.tmp, "err", err)
		return
	}
	removed := 0
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < StaleTempAge {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.tmp, e.Name())); err != nil {
			slog.Warn("fsstore: cannot remove stale temporary file", "file", e.Name(), "err", err)
			continue
		}
		removed++
	}
	if removed > 0 {
		slog.Info("fsstore: removed stale temporary files", "dir", s.tmp, "count", removed)
	}
}

// ValidateKey reports whether key is acceptable to the store: non-empty, at
// most 1024 bytes, relative, without "..", backslashes, NUL bytes, "."
// segments or empty segments, and not inside the reserved ".strata-tmp"
// directory. The error wraps ErrInvalidKey.
func ValidateKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why)
	}
	switch {
	case key == "":
		return bad("empty")
	case len(key) > maxKeyLen:
		return bad(fmt.Sprintf("longer than %d bytes", maxKeyLen))
	case strings.HasPrefix(key, "/"):
		return bad("absolute (leading slash)")
	case strings.Contains(key, ".."):
		return bad(`contains ".."`)
	case strings.ContainsRune(key, '\\'):
		return bad("contains a backslash")
	case strings.ContainsRune(key, 0):
		return bad("contains a NUL byte")
	}
	for i, seg := range strings.Split(key, "/") {
		switch {
		case seg == "":
			return bad("empty path segment")
		case seg == ".":
			return bad(`"." path segment`)
		case i == 0 && seg == tmpDirName:
			return bad("reserved directory " + tmpDirName)
		}
	}
	return nil
}

// path maps a validated key to its file path.
func (s *Store) path(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	p := filepath.Join(s.dir, filepath.FromSlash(key))
	if !strings.HasPrefix(p, s.dir+string(filepath.Separator)) {
		return "", fmt.Errorf("%w %q: escapes the store directory", ErrInvalidKey, key)
	}
	return p, nil
}

// Put stores size bytes from r under key, atomically replacing any object
// there. Exactly size bytes are read; a reader that ends earlier fails the
// Put and leaves any previous object untouched.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return s.put(ctx, "put", key, r, size, false)
}

// PutIfAbsent is Put that fails with an error wrapping tier.ErrExists when
// key already exists.
func (s *Store) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	return s.put(ctx, "put-if-absent", key, r, size, true)
}

func (s *Store) put(ctx context.Context, op, key string, r io.Reader, size int64, exclusive bool) (err error) {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("fsstore: %s %q: negative size %d", op, key, size)
	}
	if err := ctx.Err(); err != nil {
		return opError(op, key, err)
	}
	if exclusive {
		// Fail fast without reading r; the link below is the real check.
		if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
			return fmt.Errorf("fsstore: %s %q: %w", op, key, tier.ErrExists)
		}
	}
	f, err := os.CreateTemp(s.tmp, "put-*")
	if err != nil {
		return opError(op, key, err)
	}
	tmpName := f.Name()
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		// After a rename the temp name is gone; after a link it must go.
		_ = os.Remove(tmpName)
	}()
	n, err := io.Copy(f, io.LimitReader(ctxReader{ctx, r}, size))
	if err != nil {
		return opError(op, key, fmt.Errorf("read data: %w", err))
	}
	if n < size {
		return opError(op, key, fmt.Errorf("reader ended after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF))
	}
	if err := f.Sync(); err != nil {
		return opError(op, key, err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return opError(op, key, cerr)
	}
	if err := ctx.Err(); err != nil {
		return opError(op, key, err)
	}
	parent := filepath.Dir(p)
	// A concurrent Delete may prune the (empty) parent directory between
	// creating it and publishing into it; retry a few times.
	for attempt := 0; ; attempt++ {
		if err := s.mkdirs(parent); err != nil {
			return opError(op, key, err)
		}
		if exclusive {
			err = os.Link(tmpName, p)
		} else {
			err = os.Rename(tmpName, p)
		}
		if err == nil {
			break
		}
		if errors.Is(err, fs.ErrNotExist) && attempt < 5 {
			continue
		}
		if exclusive && errors.Is(err, fs.ErrExist) {
			if fi, serr := os.Lstat(p); serr == nil && fi.IsDir() {
				return fmt.Errorf("fsstore: %s %q: a directory of that name holds other keys", op, key)
			}
			return fmt.Errorf("fsstore: %s %q: %w", op, key, tier.ErrExists)
		}
		return opError(op, key, err)
	}
	if err := syncDir(parent); err != nil {
		return opError(op, key, err)
	}
	return nil
}

// mkdirs creates dir and its missing ancestors below s.dir, fsyncing the
// parent of every directory it creates so the new entries are durable.
func (s *Store) mkdirs(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	rel, err := filepath.Rel(s.dir, dir)
	if err != nil {
		return err
	}
	cur := s.dir
	for _, seg := range strings.Split(rel, string(filepath.Separator)) {
		next := filepath.Join(cur, seg)
		err := os.Mkdir(next, 0o755)
		switch {
		case err == nil:
			if err := syncDir(cur); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
		default:
			return err
		}
		cur = next
	}
	return nil
}

// GetRange returns n bytes of key from offset off (n < 0: to the end).
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, opError("get", key, err)
	}
	if off < 0 {
		return nil, fmt.Errorf("fsstore: get %q: negative offset %d", key, off)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, opError("get", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, opError("get", key, err)
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("fsstore: get %q: %w", key, tier.ErrNotFound)
	}
	size := fi.Size()
	if off > size {
		_ = f.Close()
		return nil, fmt.Errorf("fsstore: get %q: offset %d is past the end of the %d-byte object", key, off, size)
	}
	if n < 0 {
		n = size - off
	}
	if n > size-off {
		_ = f.Close()
		return nil, fmt.Errorf("fsstore: get %q: range %d+%d is past the end of the %d-byte object", key, off, n, size)
	}
	return &fileRange{Reader: io.NewSectionReader(f, off, n), f: f}, nil
}

type fileRange struct {
	io.Reader
	f *os.File
}

func (r *fileRange) Close() error { return r.f.Close() }

// Stat returns the size and modification time of key.
func (s *Store) Stat(ctx context.Context, key string) (tier.ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return tier.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return tier.ObjectInfo{}, opError("stat", key, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return tier.ObjectInfo{}, opError("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return tier.ObjectInfo{}, fmt.Errorf("fsstore: stat %q: %w", key, tier.ErrNotFound)
	}
	return tier.ObjectInfo{Key: key, Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// Delete removes key; a missing key is not an error. Directories left empty
// are removed too.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return opError("delete", key, err)
	}
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return nil // a "directory" of other keys, not an object
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return opError("delete", key, err)
	}
	parent := filepath.Dir(p)
	if err := syncDir(parent); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return opError("delete", key, err)
	}
	// Prune empty directories up to the root. Failure (not empty, or
	// concurrently filled) simply stops the pruning.
	for d := parent; d != s.dir && strings.HasPrefix(d, s.dir); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// List yields the objects whose keys start with prefix and sort after
// startAfter, in ascending byte order of the full key (as S3 does).
func (s *Store) List(ctx context.Context, prefix, startAfter string) iter.Seq2[tier.ObjectInfo, error] {
	return func(yield func(tier.ObjectInfo, error) bool) {
		s.walk(ctx, s.dir, "", prefix, startAfter, yield)
	}
}

type dirEntry struct {
	name  string
	sort  string // name, plus "/" for directories: orders whole keys correctly
	isDir bool
	entry fs.DirEntry
}

// walk lists dir, whose keys all start with rel ("" or ending in "/"). It
// returns false once the caller stopped or an error was yielded.
func (s *Store) walk(ctx context.Context, dir, rel, prefix, startAfter string, yield func(tier.ObjectInfo, error) bool) bool {
	if err := ctx.Err(); err != nil {
		yield(tier.ObjectInfo{}, opError("list", prefix, err))
		return false
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		if rel != "" && errors.Is(err, fs.ErrNotExist) {
			return true // removed concurrently by Delete's pruning
		}
		yield(tier.ObjectInfo{}, opError("list", prefix, err))
		return false
	}
	entries := make([]dirEntry, 0, len(des))
	for _, e := range des {
		name := e.Name()
		if rel == "" && name == tmpDirName {
			continue
		}
		switch {
		case e.IsDir():
			entries = append(entries, dirEntry{name: name, sort: name + "/", isDir: true, entry: e})
		case e.Type().IsRegular():
			entries = append(entries, dirEntry{name: name, sort: name, entry: e})
		}
	}
	slices.SortFunc(entries, func(a, b dirEntry) int { return cmp.Compare(a.sort, b.sort) })
	for _, e := range entries {
		key := rel + e.name
		if e.isDir {
			sub := key + "/"
			if !strings.HasPrefix(sub, prefix) && !strings.HasPrefix(prefix, sub) {
				continue // no key below sub can match prefix
			}
			if sub <= startAfter && !strings.HasPrefix(startAfter, sub) {
				continue // every key below sub sorts before startAfter
			}
			if !s.walk(ctx, filepath.Join(dir, e.name), sub, prefix, startAfter, yield) {
				return false
			}
			continue
		}
		if !strings.HasPrefix(key, prefix) || key <= startAfter {
			continue
		}
		fi, err := e.entry.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted concurrently
			}
			yield(tier.ObjectInfo{}, opError("list", prefix, err))
			return false
		}
		if !yield(tier.ObjectInfo{Key: key, Size: fi.Size(), Modified: fi.ModTime()}, nil) {
			return false
		}
	}
	return true
}

// opError wraps err with the operation and key, and classifies it: missing
// files become tier.ErrNotFound (except for puts), a full disk and deadlines
// tier.ErrUnavailable.
func opError(op, key string, err error) error {
	read := !strings.HasPrefix(op, "put")
	switch {
	case read && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)):
		return fmt.Errorf("fsstore: %s %q: %w (%w)", op, key, tier.ErrNotFound, err)
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("fsstore: %s %q: %w (%w)", op, key, tier.ErrUnavailable, err)
	default:
		return fmt.Errorf("fsstore: %s %q: %w", op, key, err)
	}
}

// syncDir fsyncs a directory so entries created or removed in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return fmt.Errorf("fsync %s: %w", dir, serr)
	}
	return cerr
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
