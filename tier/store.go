package tier

import (
	"context"
	"errors"
	"io"
	"iter"
	"time"
)

// ObjectStore is the seam between the cold tier and a concrete object store
// (a local directory, S3 through aws-sdk-go-v2, MinIO through minio-go).
// Keys are slash-separated paths without a leading slash. Every method may be
// called concurrently.
//
// Errors: a missing key is reported with an error that errors.Is
// ErrNotFound; PutIfAbsent on an existing key with ErrExists. Failures the
// caller may retry (timeouts, 5xx, throttling, connection resets) are
// reported with an error that errors.Is ErrUnavailable, so callers can back
// off; anything else (bad credentials, missing bucket) is permanent until an
// operator acts, and its message says what is wrong.
type ObjectStore interface {
	// Put stores size bytes read from r under key, replacing any object
	// there. The object is visible only once Put returns nil, and never
	// partially. Large objects are uploaded in parts.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// PutIfAbsent is Put that fails with ErrExists when key already exists
	// (a conditional create where the store supports it), so two writers can
	// never both own the same key.
	PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error
	// GetRange returns n bytes of key from byte off (n < 0: to the end).
	// The caller closes the reader. Reading past the end of the object is
	// an error.
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	// Stat returns the object's size and modification time.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List yields the objects whose keys start with prefix and sort after
	// startAfter ("" for all), in ascending key order. Stopping the loop
	// early is allowed.
	List(ctx context.Context, prefix, startAfter string) iter.Seq2[ObjectInfo, error]
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key      string
	Size     int64
	Modified time.Time
}

// Errors an ObjectStore reports (wrapped; test with errors.Is).
var (
	// ErrNotFound: no object under the key.
	ErrNotFound = errors.New("tier: object not found")
	// ErrExists: PutIfAbsent found an object under the key.
	ErrExists = errors.New("tier: object already exists")
	// ErrUnavailable: the store failed in a way worth retrying (timeout,
	// 5xx, throttling, connection reset, store down).
	ErrUnavailable = errors.New("tier: object store unavailable")
)
