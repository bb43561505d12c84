// Package miniostore implements tier.ObjectStore over MinIO (or any
// S3-compatible service) with github.com/minio/minio-go/v7.
//
// Credentials are the static keys in Config when given, otherwise the first
// found of: MINIO_ROOT_USER/MINIO_ROOT_PASSWORD, MINIO_ACCESS_KEY/
// MINIO_SECRET_KEY, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and the shared
// AWS credentials file. minio-go's own retries are kept modest (3 attempts by
// default); callers back off on errors that match tier.ErrUnavailable.
package miniostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/internal/s3compat"
)

// Defaults for Config fields left zero.
const (
	DefaultRegion         = "us-east-1"
	DefaultPartSize       = 16 << 20
	DefaultConcurrency    = 4
	DefaultMaxRetries     = 3
	DefaultRequestTimeout = 30 * time.Second
)

// smallPut is the size up to which Put reads the object into memory and
// sends one request; larger objects are streamed in parts.
const smallPut = 1 << 20

// minPartSize is the S3 minimum part size.
const minPartSize = 5 << 20

// Config configures a Store.
type Config struct {
	// Endpoint is the server's "host:port" (required).
	Endpoint string
	// Bucket is the bucket holding the objects (required).
	Bucket string
	// Prefix, optional, is prepended (with a "/") to every key, and
	// stripped from listed keys.
	Prefix string
	// Secure selects HTTPS.
	Secure bool
	// Region (default us-east-1).
	Region string
	// AccessKey, SecretKey and SessionToken, optional, are static
	// credentials used instead of the environment.
	AccessKey    string
	SecretKey    string
	SessionToken string
	// PartSize is the multipart upload part size (default 16 MiB, at least
	// 5 MiB).
	PartSize uint64
	// Concurrency is how many parts of one object upload at once
	// (default 4).
	Concurrency uint
	// MaxRetries bounds minio-go's attempts per request (default 3).
	MaxRetries int
	// RequestTimeout bounds the wait for a response's headers once a
	// request has been sent (default 30 s); it does not limit transfers.
	RequestTimeout time.Duration
}

// Store is a tier.ObjectStore over a MinIO bucket. It is safe for concurrent
// use.
type Store struct {
	client    *minio.Client
	core      minio.Core
	bucket    string
	prefix    string // "" or ending in "/"
	where     string
	partSize  uint64
	threads   uint
	anonymous bool // no credentials were found
	bucketOK  atomic.Bool
}

var _ tier.ObjectStore = (*Store)(nil)

// New creates a Store. It makes no request; call Check to verify the bucket
// and credentials.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("miniostore: no endpoint configured")
	}
	if strings.Contains(cfg.Endpoint, "://") || strings.Contains(cfg.Endpoint, "/") {
		return nil, fmt.Errorf("miniostore: endpoint %q must be host:port, without scheme or path", cfg.Endpoint)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("miniostore: no bucket configured")
	}
	if err := s3utils.CheckValidBucketName(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("miniostore: bucket %q: %w", cfg.Bucket, err)
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < minPartSize {
		return nil, fmt.Errorf("miniostore: part size %d is below the S3 minimum of %d", cfg.PartSize, minPartSize)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = DefaultMaxRetries
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, errors.New("miniostore: access key and secret key must be given together")
	}
	var creds *credentials.Credentials
	if cfg.AccessKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvMinio{},
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
		})
	}
	anonymous := false
	if v, err := creds.GetWithContext(&credentials.CredContext{}); err != nil || v.SignerType.IsAnonymous() {
		anonymous = true
	}
	tr, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		return nil, fmt.Errorf("miniostore: transport: %w", err)
	}
	tr.ResponseHeaderTimeout = cfg.RequestTimeout
	tr.MaxIdleConnsPerHost = 64
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        creds,
		Secure:       cfg.Secure,
		Region:       cfg.Region,
		Transport:    detachTransport{rt: tr},
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   cfg.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("miniostore: client for %s: %w", cfg.Endpoint, err)
	}
	scheme := "http://"
	if cfg.Secure {
		scheme = "https://"
	}
	_ = ctx // kept for symmetry with the other stores; New makes no request
	return &Store{
		client:    client,
		core:      minio.Core{Client: client},
		bucket:    cfg.Bucket,
		prefix:    s3compat.NormPrefix(cfg.Prefix),
		where:     scheme + cfg.Endpoint,
		partSize:  cfg.PartSize,
		threads:   cfg.Concurrency,
		anonymous: anonymous,
	}, nil
}

// Client returns the underlying minio-go client.
func (s *Store) Client() *minio.Client { return s.client }

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// Check verifies that the bucket exists and the credentials may use it.
func (s *Store) Check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return s.mapErr(ctx, "check bucket", "", err)
	}
	if !ok {
		return s.noBucket(nil)
	}
	s.bucketOK.Store(true)
	return nil
}

func (s *Store) noBucket(err error) error {
	if err == nil {
		return fmt.Errorf("minio bucket %q does not exist at %s", s.bucket, s.where)
	}
	return fmt.Errorf("minio bucket %q does not exist at %s: %w", s.bucket, s.where, err)
}

// Put stores size bytes from r under key. Objects larger than 1 MiB are
// streamed in parts of Config.PartSize.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return s.put(ctx, "put", key, r, size, false)
}

// PutIfAbsent is Put with If-None-Match: *, failing with an error wrapping
// tier.ErrExists if key exists.
func (s *Store) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	return s.put(ctx, "put-if-absent", key, r, size, true)
}

func (s *Store) put(ctx context.Context, op, key string, r io.Reader, size int64, ifAbsent bool) error {
	if key == "" {
		return fmt.Errorf("miniostore: %s: empty key", op)
	}
	if size < 0 {
		return fmt.Errorf("miniostore: %s %q: negative size %d", op, key, size)
	}
	if err := ctx.Err(); err != nil {
		return s.mapErr(ctx, op, key, err)
	}
	opts := minio.PutObjectOptions{
		PartSize:              s.partSize,
		NumThreads:            s.threads,
		ConcurrentStreamParts: true,
		ContentType:           "application/octet-stream",
	}
	if ifAbsent {
		opts.SetMatchETagExcept("*")
	}
	var body io.Reader
	var er *s3compat.ExactReader
	if size <= smallPut {
		buf, err := s3compat.ReadSmall(r, size)
		if err != nil {
			return fmt.Errorf("miniostore: %s %q: %w", op, key, err)
		}
		body = bytes.NewReader(buf)
	} else {
		er = &s3compat.ExactReader{R: r, Left: size}
		body = er
	}
	if _, err := s.client.PutObject(ctx, s.bucket, s.prefix+key, body, size, opts); err != nil {
		if er != nil && er.Err != nil { // the caller's reader failed or ended early
			return fmt.Errorf("miniostore: %s %q: %w", op, key, er.Err)
		}
		return s.mapErr(ctx, op, key, err)
	}
	return nil
}

// GetRange returns n bytes of key from off (n < 0: to the end).
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, fmt.Errorf("miniostore: get %q: negative offset %d", key, off)
	}
	if n == 0 {
		return s.emptyRange(ctx, key, off, n)
	}
	var opts minio.GetObjectOptions
	switch {
	case n > 0:
		_ = opts.SetRange(off, off+n-1)
	case off > 0:
		_ = opts.SetRange(off, 0)
	}
	rc, info, _, err := s.core.GetObject(ctx, s.bucket, s.prefix+key, opts)
	if err != nil {
		if isInvalidRange(err) {
			if n < 0 {
				// "bytes=size-" is unsatisfiable, but reading nothing
				// at the very end is allowed.
				return s.emptyRange(ctx, key, off, n)
			}
			return nil, fmt.Errorf("miniostore: get %q: range %d+%d is past the end of the object: %w", key, off, n, err)
		}
		return nil, s.mapErr(ctx, "get", key, err)
	}
	if n > 0 && info.Size != n {
		rc.Close()
		return nil, fmt.Errorf("miniostore: get %q: range %d+%d is past the end of the object (got %d bytes)", key, off, n, info.Size)
	}
	return &s3compat.Body{RC: rc, Map: func(err error) error { return s.mapErr(ctx, "read", key, err) }}, nil
}

// emptyRange checks that off is within key's size and returns an empty
// reader.
func (s *Store) emptyRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if err := s3compat.CheckEmptyRange(off, n, info.Size); err != nil {
		return nil, fmt.Errorf("miniostore: get %q: %w", key, err)
	}
	return io.NopCloser(strings.NewReader("")), nil
}

func isInvalidRange(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && (er.Code == "InvalidRange" || er.StatusCode == http.StatusRequestedRangeNotSatisfiable)
}

// Stat returns key's size and modification time.
func (s *Store) Stat(ctx context.Context, key string) (tier.ObjectInfo, error) {
	info, err := s.client.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return tier.ObjectInfo{}, s.mapErr(ctx, "stat", key, err)
	}
	return tier.ObjectInfo{Key: key, Size: info.Size, Modified: info.LastModified}, nil
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return s.mapErr(ctx, "delete", key, err)
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{}); err != nil {
		err = s.mapErr(ctx, "delete", key, err)
		if errors.Is(err, tier.ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// List yields the objects under prefix after startAfter in key order, one
// ListObjectsV2 page (up to 1000 keys) at a time.
func (s *Store) List(ctx context.Context, prefix, startAfter string) iter.Seq2[tier.ObjectInfo, error] {
	return func(yield func(tier.ObjectInfo, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(tier.ObjectInfo{}, s.mapErr(ctx, "list", prefix, err))
			return
		}
		opts := minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true, FetchOwner: new(bool)}
		if startAfter != "" {
			opts.StartAfter = s.prefix + startAfter
		}
		for o := range s.client.ListObjectsIter(ctx, s.bucket, opts) {
			if o.Err != nil {
				yield(tier.ObjectInfo{}, s.mapErr(ctx, "list", prefix, o.Err))
				return
			}
			if !yield(tier.ObjectInfo{Key: strings.TrimPrefix(o.Key, s.prefix), Size: o.Size, Modified: o.LastModified}, nil) {
				return
			}
		}
		// minio-go ends the sequence silently when ctx is done: never let
		// a cut-short listing look complete.
		if err := ctx.Err(); err != nil {
			yield(tier.ObjectInfo{}, s.mapErr(ctx, "list", prefix, err))
		}
	}
}

// mapErr classifies a minio-go error for op on key (see tier.ObjectStore).
func (s *Store) mapErr(ctx context.Context, op, key string, err error) error {
	where := fmt.Sprintf("minio %s %q in bucket %q", op, key, s.bucket)
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("%s: %w (%w): %w", where, tier.ErrUnavailable, cerr, err)
		}
		return fmt.Errorf("%s: %w: %w", where, cerr, err)
	}
	var er minio.ErrorResponse
	code, status := "", 0
	if errors.As(err, &er) {
		code, status = er.Code, er.StatusCode
	}
	switch s3compat.Classify(code, status, true) {
	case s3compat.NoBucket:
		return s.noBucket(err)
	case s3compat.NotFound:
		// A HEAD on a missing bucket looks like a missing key: make sure
		// the bucket exists before calling the key missing.
		if !s.bucketOK.Load() {
			if cerr := s.Check(ctx); cerr != nil {
				return fmt.Errorf("%s: %w", where, cerr)
			}
		}
		return fmt.Errorf("%s: %w", where, tier.ErrNotFound)
	case s3compat.Exists:
		return fmt.Errorf("%s: %w (%s)", where, tier.ErrExists, code)
	case s3compat.Credentials:
		return fmt.Errorf("minio credentials rejected (%s) by %s (%s): %w", code, s.where, where, err)
	case s3compat.Denied:
		hint := "the credentials are rejected or lack permission on bucket " + fmt.Sprintf("%q", s.bucket)
		if s.anonymous {
			hint = "no credentials found (set MINIO_ROOT_USER/MINIO_ROOT_PASSWORD, MINIO_ACCESS_KEY/MINIO_SECRET_KEY or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
		}
		return fmt.Errorf("minio access denied (%s) by %s: %s (%s): %w", code, s.where, hint, where, err)
	case s3compat.Retry:
		return fmt.Errorf("%s: %w (%s): %w", where, tier.ErrUnavailable, code, err)
	}
	if s3compat.IsTransient(err) {
		return fmt.Errorf("%s: %w: %w", where, tier.ErrUnavailable, err)
	}
	if code != "" {
		return fmt.Errorf("%s: %s: %w", where, code, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}
