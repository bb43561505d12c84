package miniostore

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/strata-mq/strata/internal/miniotest"
	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/storetest"
)

func newStore(t *testing.T, addr, bucket, ak, sk, prefix string) *Store {
	t.Helper()
	s, err := New(t.Context(), Config{Endpoint: addr, Bucket: bucket, Prefix: prefix, AccessKey: ak, SecretKey: sk})
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
	t.Run("EnvCredentials", func(t *testing.T) {
		t.Setenv("MINIO_ROOT_USER", "")
		t.Setenv("MINIO_ROOT_PASSWORD", "")
		t.Setenv("MINIO_ACCESS_KEY", "")
		t.Setenv("MINIO_SECRET_KEY", "")
		t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
		bucket := srv.NewBucket(t)
		s := newStore(t, srv.Endpoint, bucket, "", "", "")
		if err := s.Put(t.Context(), "k", strings.NewReader("v"), 1); err != nil {
			t.Fatalf("Put with AWS_* credentials: %v", err)
		}
		t.Setenv("MINIO_ROOT_USER", srv.AccessKey)
		t.Setenv("MINIO_ROOT_PASSWORD", srv.SecretKey)
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		s = newStore(t, srv.Endpoint, bucket, "", "", "")
		if _, err := s.Stat(t.Context(), "k"); err != nil {
			t.Fatalf("Stat with MINIO_ROOT_* credentials: %v", err)
		}
		t.Setenv("MINIO_ROOT_USER", "")
		t.Setenv("MINIO_ROOT_PASSWORD", "")
		s = newStore(t, srv.Endpoint, bucket, "", "", "")
		err := s.Put(t.Context(), "k2", strings.NewReader("v"), 1)
		if err == nil || errors.Is(err, tier.ErrUnavailable) || !strings.Contains(err.Error(), "no credentials found") {
			t.Fatalf("Put without credentials = %v", err)
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
		{Endpoint: "h:1"},
		{Endpoint: "http://h:1", Bucket: "bkt"},
		{Endpoint: "h:1/path", Bucket: "bkt"},
		{Endpoint: "h:1", Bucket: "bkt", PartSize: 1 << 20},
		{Endpoint: "h:1", Bucket: "bkt", AccessKey: "a"},
		{Endpoint: "h:1", Bucket: "bad..bucket"},
	} {
		if _, err := New(ctx, c); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
	s, err := New(ctx, Config{Endpoint: "127.0.0.1:1", Bucket: "bkt", AccessKey: "a", SecretKey: "b", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if s.Bucket() != "bkt" || s.Client() == nil {
		t.Fatal("accessors")
	}
	if _, err := s.Stat(ctx, "k"); !errors.Is(err, tier.ErrUnavailable) {
		t.Fatalf("Stat against a closed port = %v, want ErrUnavailable", err)
	}
}

func TestMapErr(t *testing.T) {
	s := &Store{bucket: "bkt", where: "http://x"}
	s.bucketOK.Store(true)
	ctx := context.Background()
	resp := func(status int, code string) error {
		return minio.ErrorResponse{StatusCode: status, Code: code, Message: "msg"}
	}
	for _, c := range []struct {
		err  error
		want error
		text string
	}{
		{resp(404, "NoSuchKey"), tier.ErrNotFound, ""},
		{resp(404, "NoSuchBucket"), nil, `minio bucket "bkt" does not exist`},
		{resp(412, "PreconditionFailed"), tier.ErrExists, ""},
		{resp(503, "SlowDown"), tier.ErrUnavailable, "SlowDown"},
		{resp(503, "503 Service Unavailable"), tier.ErrUnavailable, ""},
		{resp(500, "InternalError"), tier.ErrUnavailable, ""},
		{resp(429, ""), tier.ErrUnavailable, ""},
		{resp(403, "InvalidAccessKeyId"), nil, "minio credentials rejected (InvalidAccessKeyId)"},
		{resp(403, "SignatureDoesNotMatch"), nil, "minio credentials rejected (SignatureDoesNotMatch)"},
		{resp(403, "AccessDenied"), nil, "lack permission"},
		{resp(400, "InvalidArgument"), nil, "InvalidArgument"},
		{io.ErrUnexpectedEOF, tier.ErrUnavailable, ""},
		{&http.ProtocolError{ErrorString: "x"}, nil, ""},
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
