// Package s3store implements tier.ObjectStore over Amazon S3 or any
// S3-compatible service (MinIO, Ceph, R2 …) with aws-sdk-go-v2.
//
// Credentials come from the static keys in Config when given, otherwise
// from the AWS default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
// shared config and credentials files, SSO, web identity, instance roles).
// The SDK's own retries are kept modest (3 attempts by default); callers
// back off on errors that match tier.ErrUnavailable.
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/internal/s3compat"
)

// Defaults for Config fields left zero.
const (
	DefaultRegion         = "us-east-1"
	DefaultPartSize       = 16 << 20
	DefaultConcurrency    = 4
	DefaultMaxAttempts    = 3
	DefaultRequestTimeout = 30 * time.Second
)

// smallPut is the size up to which Put reads the object into memory and
// sends one PutObject; larger objects go through the multipart uploader.
const smallPut = 1 << 20

// Config configures a Store.
type Config struct {
	// Bucket is the bucket holding the objects (required).
	Bucket string
	// Prefix, optional, is prepended (with a "/") to every key, and
	// stripped from listed keys.
	Prefix string
	// Endpoint is the service URL, e.g. "http://127.0.0.1:9000" for MinIO;
	// empty means Amazon S3. A custom endpoint implies path-style
	// addressing.
	Endpoint string
	// Region; empty means the region of the AWS configuration
	// (AWS_REGION, shared config), else us-east-1.
	Region string
	// UsePathStyle forces path-style addressing (bucket in the path, not
	// the host name).
	UsePathStyle bool
	// AccessKey, SecretKey and SessionToken, optional, are static
	// credentials used instead of the AWS default chain.
	AccessKey    string
	SecretKey    string
	SessionToken string
	// PartSize is the multipart upload part size (default 16 MiB, at least
	// 5 MiB).
	PartSize int64
	// Concurrency is how many parts of one object upload at once
	// (default 4).
	Concurrency int
	// MaxAttempts bounds the SDK's attempts per request (default 3).
	MaxAttempts int
	// RequestTimeout bounds the wait for a response's headers once a
	// request has been sent (default 30 s); it does not limit transfers.
	RequestTimeout time.Duration
}

// Store is a tier.ObjectStore over an S3 bucket. It is safe for concurrent
// use.
type Store struct {
	client   *s3.Client
	uploader *manager.Uploader
	bucket   string
	prefix   string // "" or ending in "/"
	where    string // endpoint for messages
	bucketOK atomic.Bool
}

var _ tier.ObjectStore = (*Store)(nil)

// New creates a Store. It loads the AWS configuration but makes no request;
// call Check to verify the bucket and credentials.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3store: no bucket configured")
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("s3store: endpoint %q is not an http:// or https:// URL", cfg.Endpoint)
		}
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < manager.MinUploadPartSize {
		return nil, fmt.Errorf("s3store: part size %d is below the S3 minimum of %d", cfg.PartSize, manager.MinUploadPartSize)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, errors.New("s3store: access key and secret key must be given together")
	}

	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.ResponseHeaderTimeout = cfg.RequestTimeout
		tr.MaxIdleConnsPerHost = 64
	})
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithLogger(sdkLogger{}),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = 2 * time.Second
				o.RateLimiter = ratelimit.None // the tier backs off itself
			})
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3store: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = true
		}
		if cfg.UsePathStyle {
			o.UsePathStyle = true
		}
	})
	s := &Store{
		client: client,
		uploader: manager.NewUploader(client, func(u *manager.Uploader) {
			u.PartSize = cfg.PartSize
			u.Concurrency = cfg.Concurrency
		}),
		bucket: cfg.Bucket,
		prefix: s3compat.NormPrefix(cfg.Prefix),
		where:  cfg.Endpoint,
	}
	if s.where == "" {
		s.where = "AWS S3 (" + awsCfg.Region + ")"
	}
	return s, nil
}

// Client returns the underlying S3 client.
func (s *Store) Client() *s3.Client { return s.client }

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// Check verifies that the bucket exists and the credentials may use it.
func (s *Store) Check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err != nil {
		var re *awshttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
			return s.noBucket(err)
		}
		return s.mapErr(ctx, "check bucket", "", err)
	}
	s.bucketOK.Store(true)
	return nil
}

func (s *Store) noBucket(err error) error {
	return fmt.Errorf("s3 bucket %q does not exist at %s: %w", s.bucket, s.where, err)
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
		return fmt.Errorf("s3store: %s: empty key", op)
	}
	if size < 0 {
		return fmt.Errorf("s3store: %s %q: negative size %d", op, key, size)
	}
	if err := ctx.Err(); err != nil {
		return s.mapErr(ctx, op, key, err)
	}
	var ifNoneMatch *string
	if ifAbsent {
		ifNoneMatch = aws.String("*")
	}
	full := aws.String(s.prefix + key)
	if size <= smallPut {
		buf, err := s3compat.ReadSmall(r, size)
		if err != nil {
			return fmt.Errorf("s3store: %s %q: %w", op, key, err)
		}
		_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        aws.String(s.bucket),
			Key:           full,
			Body:          bytes.NewReader(buf),
			ContentLength: aws.Int64(size),
			IfNoneMatch:   ifNoneMatch,
		})
		if err != nil {
			return s.mapErr(ctx, op, key, err)
		}
		return nil
	}
	er := &s3compat.ExactReader{R: r, Left: size}
	_, err := s.uploader.Upload(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(s.bucket),
		Key:         full,
		Body:        er,
		IfNoneMatch: ifNoneMatch,
	})
	if err != nil {
		if er.Err != nil { // the caller's reader failed or ended early
			return fmt.Errorf("s3store: %s %q: %w", op, key, er.Err)
		}
		return s.mapErr(ctx, op, key, err)
	}
	return nil
}

// GetRange returns n bytes of key from off (n < 0: to the end).
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, fmt.Errorf("s3store: get %q: negative offset %d", key, off)
	}
	if n == 0 {
		return s.emptyRange(ctx, key, off, n)
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)}
	switch {
	case n > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	case off > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if isInvalidRange(err) {
			if n < 0 {
				// "bytes=size-" is unsatisfiable, but reading nothing
				// at the very end is allowed.
				return s.emptyRange(ctx, key, off, n)
			}
			return nil, fmt.Errorf("s3store: get %q: range %d+%d is past the end of the object: %w", key, off, n, err)
		}
		return nil, s.mapErr(ctx, "get", key, err)
	}
	if n > 0 && aws.ToInt64(out.ContentLength) != n {
		out.Body.Close()
		return nil, fmt.Errorf("s3store: get %q: range %d+%d is past the end of the object (got %d bytes, %s)",
			key, off, n, aws.ToInt64(out.ContentLength), aws.ToString(out.ContentRange))
	}
	return &s3compat.Body{RC: out.Body, Map: func(err error) error { return s.mapErr(ctx, "read", key, err) }}, nil
}

// emptyRange checks that off is within key's size and returns an empty
// reader.
func (s *Store) emptyRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if err := s3compat.CheckEmptyRange(off, n, info.Size); err != nil {
		return nil, fmt.Errorf("s3store: get %q: %w", key, err)
	}
	return io.NopCloser(strings.NewReader("")), nil
}

func isInvalidRange(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable
}

// Stat returns key's size and modification time.
func (s *Store) Stat(ctx context.Context, key string) (tier.ObjectInfo, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)})
	if err != nil {
		return tier.ObjectInfo{}, s.mapErr(ctx, "stat", key, err)
	}
	return tier.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), Modified: aws.ToTime(out.LastModified)}, nil
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)})
	if err != nil {
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
		in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix + prefix)}
		if startAfter != "" {
			in.StartAfter = aws.String(s.prefix + startAfter)
		}
		p := s3.NewListObjectsV2Paginator(s.client, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				yield(tier.ObjectInfo{}, s.mapErr(ctx, "list", prefix, err))
				return
			}
			for _, o := range page.Contents {
				key := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
				if !yield(tier.ObjectInfo{Key: key, Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)}, nil) {
					return
				}
			}
		}
	}
}

// mapErr classifies an SDK error for op on key (see tier.ObjectStore).
func (s *Store) mapErr(ctx context.Context, op, key string, err error) error {
	where := fmt.Sprintf("s3 %s %q in bucket %q", op, key, s.bucket)
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("%s: %w (%w): %w", where, tier.ErrUnavailable, cerr, err)
		}
		return fmt.Errorf("%s: %w: %w", where, cerr, err)
	}
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	switch s3compat.Classify(code, status, false) {
	case s3compat.NoBucket:
		return s.noBucket(err)
	case s3compat.NotFound:
		// A HEAD on a missing bucket also answers a bare 404: make sure
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
		return fmt.Errorf("s3 credentials rejected (%s) by %s (%s): %w", code, s.where, where, err)
	case s3compat.Denied:
		if code == "" {
			code = "HTTP 403"
		}
		return fmt.Errorf("s3 access denied (%s) by %s: the credentials are rejected or lack permission on bucket %q (%s): %w",
			code, s.where, s.bucket, where, err)
	case s3compat.Retry:
		return fmt.Errorf("%s: %w: %w", where, tier.ErrUnavailable, err)
	}
	var qe ratelimit.QuotaExceededError
	if s3compat.IsTransient(err) || errors.As(err, &qe) {
		return fmt.Errorf("%s: %w: %w", where, tier.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}

// sdkLogger sends the SDK's own log lines (mostly notes about checksums it
// did not validate) to slog at debug level.
type sdkLogger struct{}

func (sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	slog.Debug("s3store: aws sdk: "+fmt.Sprintf(format, v...), "sdk_level", string(c))
}
