// Package s3compat holds what Strata's two S3-protocol object stores share
// (s3store over aws-sdk-go-v2 and miniostore over minio-go): key prefixes,
// the exact-size upload reader, the classification of S3 error codes and
// network failures, and the rules for empty ranged reads. Each store maps
// its client library's errors onto these and words its own messages.
package s3compat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
)

// NormPrefix turns a key prefix into "" or "<prefix>/".
func NormPrefix(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// ReadSmall reads exactly size bytes of a small object into memory.
func ReadSmall(r io.Reader, size int64) ([]byte, error) {
	buf := make([]byte, size)
	if n, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reader ended after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("read data: %w", err)
	}
	return buf, nil
}

// ExactReader reads exactly left bytes from R and remembers a failure of R
// (an error, or EOF before left bytes) in Err, so a Put can report it as
// the caller's problem rather than the store's.
type ExactReader struct {
	R    io.Reader
	Left int64
	Err  error
}

func (e *ExactReader) Read(p []byte) (int, error) {
	if e.Err != nil {
		return 0, e.Err
	}
	if e.Left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.Left {
		p = p[:e.Left]
	}
	n, err := e.R.Read(p)
	e.Left -= int64(n)
	switch {
	case err == io.EOF && e.Left > 0:
		e.Err = fmt.Errorf("reader ended %d bytes short of the declared size: %w", e.Left, io.ErrUnexpectedEOF)
		return n, e.Err
	case err == io.EOF:
		return n, io.EOF
	case err != nil:
		e.Err = fmt.Errorf("read data: %w", err)
		return n, e.Err
	}
	return n, nil
}

// Kind is what an S3 error means to a tier.ObjectStore.
type Kind int

const (
	// Other: none of the below; permanent until someone acts.
	Other Kind = iota
	// NoBucket: the bucket does not exist.
	NoBucket
	// NotFound: the key does not exist.
	NotFound
	// Exists: a conditional create found the key.
	Exists
	// Credentials: the credentials were rejected.
	Credentials
	// Denied: the credentials lack permission.
	Denied
	// Retry: throttling or a server-side failure worth retrying.
	Retry
)

// Error codes S3 and S3-compatible stores (MinIO) use.
var (
	credentialCodes = map[string]bool{
		"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "ExpiredToken": true,
		"InvalidToken": true, "TokenRefreshRequired": true, "InvalidSecurity": true,
		"AuthorizationHeaderMalformed": true, "InvalidClientTokenId": true, "XMinioInvalidIAMCredentials": true,
	}
	deniedCodes = map[string]bool{
		"AccessDenied": true, "AllAccessDisabled": true, "AccountProblem": true, "Forbidden": true,
	}
	retryCodes = map[string]bool{
		"SlowDown": true, "Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true,
		"TooManyRequests": true, "RequestTimeout": true, "InternalError": true, "ServiceUnavailable": true,
		"RequestThrottled": true, "BandwidthLimitExceeded": true, "XMinioServerNotInitialized": true,
		"XMinioReadQuorum": true, "XMinioWriteQuorum": true, "OperationAborted": true,
		"SlowDownRead": true, "SlowDownWrite": true,
	}
)

// Classify maps an S3 error code and HTTP status (either may be empty or
// zero) to a Kind. anyNotFound counts every 404 as a missing key (minio-go
// reports its own codes for those); otherwise only a bare or "NotFound" 404
// does (aws-sdk-go-v2's HEAD).
func Classify(code string, status int, anyNotFound bool) Kind {
	switch {
	case code == "NoSuchBucket":
		return NoBucket
	case code == "NoSuchKey" || code == "NoSuchObject" ||
		(status == http.StatusNotFound && (anyNotFound || code == "" || code == "NotFound")):
		return NotFound
	case code == "PreconditionFailed" || code == "ConditionalRequestConflict" || status == http.StatusPreconditionFailed:
		return Exists
	case credentialCodes[code]:
		return Credentials
	case deniedCodes[code] || status == http.StatusForbidden:
		return Denied
	case retryCodes[code] || status >= 500 || status == http.StatusTooManyRequests:
		return Retry
	}
	return Other
}

// IsTransient reports network-level failures worth retrying: timeouts,
// refused or reset connections, connections closed mid-response.
func IsTransient(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) { // refused, reset, unreachable, DNS failure
		return true
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded)
}

// CheckEmptyRange checks a read of n bytes (n ≤ 0) at off of a size-byte
// object that must return nothing: n == 0 anywhere up to the end, or n < 0
// ("to the end") exactly at the end.
func CheckEmptyRange(off, n, size int64) error {
	if off > size {
		return fmt.Errorf("offset %d is past the end of the %d-byte object", off, size)
	}
	if n > 0 || (n < 0 && off < size) {
		return fmt.Errorf("range %d+%d not satisfiable for a %d-byte object", off, n, size)
	}
	return nil
}

// Body maps the errors of reading an object's body with Map.
type Body struct {
	RC  io.ReadCloser
	Map func(error) error
}

func (b *Body) Read(p []byte) (int, error) {
	n, err := b.RC.Read(p)
	if err != nil && err != io.EOF {
		err = b.Map(err)
	}
	return n, err
}

// Close closes the body.
func (b *Body) Close() error { return b.RC.Close() }
