package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/minio/minio-go/v7"

	"github.com/strata-mq/strata/internal/miniotest"
	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/storetest"
)

func newStore(t *testing.T, addr, bucket, ak, sk, prefix string) *Store {
	t.Helper()
	s, err := New(t.Context(), Config{
		Bucket:    bucket,
		Prefix:    prefix,
		Endpoint:  "http://" + addr,
		Region:    "us-east-1",
		AccessKey: ak,
		SecretKey: sk,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMinIO runs everything that needs a real server against one MinIO.
func TestMinIO(t *testing.T) {
	srv := miniotest.Start(t)
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) tier.ObjectStore {
			return newStore(t, srv.Endpoint, srv.NewBucket(t), srv.AccessKey, srv.SecretKey, "")
		})
	})
	t.Run("Prefix", func(t *testing.T) {
		bucket := srv.NewBucket(t)
		ctx := t.Context()
		s := newStore(t, srv.Endpoint, bucket, srv.AccessKey, srv.SecretKey, "/base/dir/")
		other := newStore(t, srv.Endpoint, bucket, srv.AccessKey, srv.SecretKey, "base/dir0")
		for _, k := range []string{"k/1", "k/2", "k/3", "l"} {
			if err := s.Put(ctx, k, strings.NewReader(k), int64(len(k))); err != nil {
				t.Fatal(err)
			}
			if err := other.Put(ctx, k, strings.NewReader("other"), 5); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := srv.Client(t).StatObject(ctx, bucket, "base/dir/k/1", minio.StatObjectOptions{}); err != nil {
			t.Fatalf("object not under the prefix: %v", err)
		}
		var got []string
		for info, err := range s.List(ctx, "k/", "k/1") {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, info.Key)
		}
		if strings.Join(got, ",") != "k/2,k/3" {
			t.Fatalf("List = %q", got)
		}
		got = got[:0]
		for info, err := range s.List(ctx, "", "") {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, info.Key)
		}
		if strings.Join(got, ",") != "k/1,k/2,k/3,l" {
			t.Fatalf("List = %q", got)
		}
		if info, err := s.Stat(ctx, "l"); err != nil || info.Key != "l" || info.Size != 1 {
			t.Fatalf("Stat = %+v, %v", info, err)
		}
		rc, err := s.GetRange(ctx, "k/2", 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "k/2" {
			t.Fatalf("read %q", b)
		}
		if err := s.PutIfAbsent(ctx, "l", strings.NewReader("x"), 1); !errors.Is(err, tier.ErrExists) {
			t.Fatalf("PutIfAbsent = %v", err)
		}
		if err := s.Delete(ctx, "l"); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Stat(ctx, "l"); err != nil {
			t.Fatalf("delete under one prefix touched the other: %v", err)
		}
		if err := s.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})
	t.Run("Faults", func(t *testing.T) {
		storetest.RunFaults(t, srv, func(t *testing.T, addr, bucket, ak, sk string) tier.ObjectStore {
			return newStore(t, addr, bucket, ak, sk, "")
		})
	})
}

func TestNewValidation(t *testing.T) {
	ctx := t.Context()
	for _, c := range []Config{
		{},
		{Bucket: "b", Endpoint: "127.0.0.1:9000"},
		{Bucket: "b", Endpoint: "ftp://x"},
		{Bucket: "b", PartSize: 1 << 20},
		{Bucket: "b", AccessKey: "a"},
	} {
		if _, err := New(ctx, c); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
	s, err := New(ctx, Config{Bucket: "b", Endpoint: "http://127.0.0.1:1", Region: "eu-west-1", AccessKey: "a", SecretKey: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Bucket() != "b" || s.Client() == nil {
		t.Fatal("accessors")
	}
	// Nothing listens on port 1: connection refused is retryable.
	ctx2, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := s.Stat(ctx2, "k"); !errors.Is(err, tier.ErrUnavailable) {
		t.Fatalf("Stat against a closed port = %v, want ErrUnavailable", err)
	}
}

func respErr(status int, code string) error {
	resp := &smithyhttp.Response{Response: &http.Response{StatusCode: status}}
	var err error = &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{Response: resp, Err: &smithy.GenericAPIError{Code: code, Message: "msg"}}}
	return &smithy.OperationError{ServiceID: "S3", OperationName: "Op", Err: err}
}

func TestMapErr(t *testing.T) {
	s := &Store{bucket: "bkt", where: "http://x"}
	s.bucketOK.Store(true)
	ctx := context.Background()
	for _, c := range []struct {
		err  error
		want error  // sentinel, nil for permanent
		text string // required in the message
	}{
		{respErr(404, "NoSuchKey"), tier.ErrNotFound, ""},
		{respErr(404, ""), tier.ErrNotFound, ""},
		{respErr(404, "NoSuchBucket"), nil, `s3 bucket "bkt" does not exist`},
		{respErr(412, "PreconditionFailed"), tier.ErrExists, ""},
		{respErr(409, "ConditionalRequestConflict"), tier.ErrExists, ""},
		{respErr(503, "SlowDown"), tier.ErrUnavailable, "SlowDown"},
		{respErr(500, "InternalError"), tier.ErrUnavailable, ""},
		{respErr(502, ""), tier.ErrUnavailable, ""},
		{respErr(429, ""), tier.ErrUnavailable, ""},
		{respErr(400, "RequestTimeout"), tier.ErrUnavailable, ""},
		{respErr(403, "InvalidAccessKeyId"), nil, "s3 credentials rejected (InvalidAccessKeyId)"},
		{respErr(403, "SignatureDoesNotMatch"), nil, "s3 credentials rejected (SignatureDoesNotMatch)"},
		{respErr(403, "AccessDenied"), nil, "s3 access denied (AccessDenied)"},
		{respErr(403, ""), nil, "credentials"},
		{respErr(400, "InvalidArgument"), nil, "InvalidArgument"},
		{fmt.Errorf("send: %w", io.ErrUnexpectedEOF), tier.ErrUnavailable, ""},
	} {
		got := s.mapErr(ctx, "op", "key", c.err)
		for _, sentinel := range []error{tier.ErrNotFound, tier.ErrExists, tier.ErrUnavailable} {
			if errors.Is(got, sentinel) != (sentinel == c.want) {
				t.Errorf("mapErr(%v) = %v; want sentinel %v", c.err, got, c.want)
			}
		}
		if !strings.Contains(got.Error(), c.text) {
			t.Errorf("mapErr(%v) = %v; want text %q", c.err, got, c.text)
		}
	}
}
