package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/miniotest"
	"github.com/strata-mq/strata/tier"
)

// StoreFactory builds a store talking to the S3 endpoint at addr
// ("127.0.0.1:port", plain HTTP) for bucket with the given credentials.
type StoreFactory func(t *testing.T, addr, bucket, accessKey, secretKey string) tier.ObjectStore

// RunFaults checks the error classification of a store for a real MinIO
// server srv: a missing bucket and bad credentials are permanent errors that
// say what is wrong; 503 answers, connection resets and a stalled server
// (with a short deadline) are reported promptly as tier.ErrUnavailable.
func RunFaults(t *testing.T, srv *miniotest.Server, newStore StoreFactory) {
	t.Run("MissingBucket", func(t *testing.T) {
		t.Parallel()
		const bucket = "strata-no-such-bucket"
		s := newStore(t, srv.Endpoint, bucket, srv.AccessKey, srv.SecretKey)
		for _, o := range ops(false) {
			err := o.run(ctxT(t), s)
			checkPermanent(t, o.name, err, fmt.Sprintf("bucket %q does not exist", bucket))
		}
		if c, ok := s.(interface{ Check(context.Context) error }); ok {
			checkPermanent(t, "Check", c.Check(ctxT(t)), fmt.Sprintf("bucket %q does not exist", bucket))
		}
	})
	t.Run("UnknownAccessKey", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, srv.Endpoint, srv.NewBucket(t), "nobody-strata", "wrong-secret-key")
		for _, o := range ops(false) {
			checkPermanent(t, o.name, o.run(ctxT(t), s), "credentials")
		}
	})
	t.Run("WrongSecretKey", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, srv.Endpoint, srv.NewBucket(t), srv.AccessKey, "wrong-secret-key")
		for _, o := range ops(false) {
			checkPermanent(t, o.name, o.run(ctxT(t), s), "credentials")
		}
	})
	for _, mode := range []miniotest.Mode{miniotest.Mode503, miniotest.ModeReset} {
		t.Run("ProxyMode="+mode.String(), func(t *testing.T) {
			t.Parallel()
			bucket := srv.NewBucket(t)
			p := miniotest.NewProxy(t, srv.Endpoint)
			s := newStore(t, p.Addr, bucket, srv.AccessKey, srv.SecretKey)
			if err := s.Put(ctxT(t), "present", strings.NewReader("here"), 4); err != nil {
				t.Fatalf("Put through the proxy in pass mode: %v", err)
			}
			p.SetMode(mode)
			for _, o := range ops(true) {
				start := time.Now()
				err := o.run(ctxT(t), s)
				if !errors.Is(err, tier.ErrUnavailable) {
					t.Errorf("%s with proxy in %v mode = %v, want ErrUnavailable", o.name, mode, err)
				}
				if el := time.Since(start); el > 20*time.Second {
					t.Errorf("%s took %v to fail", o.name, el)
				}
			}
			if mode == miniotest.Mode503 && p.Answered503() < int64(len(ops(true))) {
				t.Errorf("proxy answered only %d requests with 503", p.Answered503())
			}
			p.SetMode(miniotest.ModePass)
			if b, err := tryGet(ctxT(t), s, "present", 0, -1); err != nil || string(b) != "here" {
				t.Fatalf("after the outage: %q, %v", b, err)
			}
		})
	}
	t.Run("ProxyStalled", func(t *testing.T) {
		t.Parallel()
		bucket := srv.NewBucket(t)
		p := miniotest.NewProxy(t, srv.Endpoint)
		s := newStore(t, p.Addr, bucket, srv.AccessKey, srv.SecretKey)
		p.SetMode(miniotest.ModeBlackhole)
		for _, o := range ops(true) {
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			start := time.Now()
			err := o.run(ctx, s)
			el := time.Since(start)
			cancel()
			if err == nil {
				t.Errorf("%s against a stalled server succeeded", o.name)
			} else if !errors.Is(err, tier.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s against a stalled server = %v, want ErrUnavailable and DeadlineExceeded", o.name, err)
			}
			if el > 5*time.Second {
				t.Errorf("%s against a stalled server took %v with a 500ms deadline", o.name, el)
			}
		}
	})
}

type op struct {
	name string
	run  func(ctx context.Context, s tier.ObjectStore) error
}

// ops returns one call of each method; with large, also a multipart Put.
func ops(large bool) []op {
	list := []op{
		{"Put", func(ctx context.Context, s tier.ObjectStore) error {
			return s.Put(ctx, "k/put", strings.NewReader("data"), 4)
		}},
		{"PutIfAbsent", func(ctx context.Context, s tier.ObjectStore) error {
			return s.PutIfAbsent(ctx, "k/pia", strings.NewReader("data"), 4)
		}},
		{"GetRange", func(ctx context.Context, s tier.ObjectStore) error {
			_, err := tryGet(ctx, s, "present", 0, -1)
			return err
		}},
		{"Stat", func(ctx context.Context, s tier.ObjectStore) error {
			_, err := s.Stat(ctx, "present")
			return err
		}},
		{"List", func(ctx context.Context, s tier.ObjectStore) error {
			for _, err := range s.List(ctx, "", "") {
				if err != nil {
					return err
				}
			}
			return nil
		}},
		{"Delete", func(ctx context.Context, s tier.ObjectStore) error {
			return s.Delete(ctx, "k/put")
		}},
	}
	if large {
		list = append(list, op{"PutLarge", func(ctx context.Context, s tier.ObjectStore) error {
			const n = 20 << 20
			return s.Put(ctx, "k/large", io.LimitReader(&genReader{n: n}, n), n)
		}})
	}
	return list
}

// checkPermanent checks err is a permanent error whose message has want.
func checkPermanent(t *testing.T, op string, err error, want string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s succeeded", op)
	case errors.Is(err, tier.ErrUnavailable), errors.Is(err, tier.ErrNotFound), errors.Is(err, tier.ErrExists):
		t.Errorf("%s = %v; want a permanent error", op, err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("%s = %v; want a message containing %q", op, err, want)
	default:
		t.Logf("%s: %v", op, err)
	}
}
