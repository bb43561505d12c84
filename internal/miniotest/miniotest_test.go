package miniotest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func TestServerAndProxy(t *testing.T) {
	srv := Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	bucket := srv.NewBucket(t)
	c := srv.Client(t)
	if _, err := c.PutObject(ctx, bucket, "k", strings.NewReader("v"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}

	t.Run("Proxy", func(t *testing.T) {
		p := NewProxy(t, srv.Endpoint)
		client := &http.Client{Timeout: 5 * time.Second}
		get := func() (*http.Response, string, error) {
			resp, err := client.Get(p.URL() + "/minio/health/live")
			if err != nil {
				return nil, "", err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			return resp, string(b), err
		}
		if resp, _, err := get(); err != nil || resp.StatusCode != 200 {
			t.Fatalf("pass: %v %v", resp, err)
		}
		p.SetMode(Mode503)
		resp, body, err := get()
		if err != nil || resp.StatusCode != 503 || !strings.Contains(body, "<Code>SlowDown</Code>") {
			t.Fatalf("503 mode: %v %q %v", resp, body, err)
		}
		p.SetMode(ModeReset)
		if _, _, err := get(); err == nil {
			t.Fatal("reset mode: request succeeded")
		}
		p.SetMode(ModeBlackhole)
		client.Timeout = 300 * time.Millisecond
		start := time.Now()
		if _, _, err := get(); err == nil {
			t.Fatal("blackhole mode: request succeeded")
		} else if el := time.Since(start); el > 3*time.Second {
			t.Fatalf("blackhole: took %v", el)
		}
		p.SetDelay(50 * time.Millisecond)
		p.SetMode(ModeDelay)
		client.Timeout = 5 * time.Second
		start = time.Now()
		if resp, _, err := get(); err != nil || resp.StatusCode != 200 {
			t.Fatalf("delay: %v %v", resp, err)
		} else if time.Since(start) < 50*time.Millisecond {
			t.Fatal("delay mode did not delay")
		}
		p.SetMode(ModePass)
		if resp, _, err := get(); err != nil || resp.StatusCode != 200 {
			t.Fatalf("pass again: %v %v", resp, err)
		}
		if p.Accepted() < 5 || p.Answered503() < 1 {
			t.Fatalf("counters: accepted %d, 503 %d", p.Accepted(), p.Answered503())
		}
	})

	t.Run("KillRestart", func(t *testing.T) {
		srv.Kill()
		if _, err := c.StatObject(ctx, bucket, "k", minio.StatObjectOptions{}); err == nil {
			t.Fatal("StatObject succeeded with the server killed")
		}
		srv.Restart(t)
		if _, err := c.StatObject(ctx, bucket, "k", minio.StatObjectOptions{}); err != nil {
			t.Fatalf("after restart: %v", err)
		}
	})
}

func TestSkipEnv(t *testing.T) {
	t.Setenv(SkipEnv, "1")
	var skipped bool
	t.Run("inner", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Start(t)
	})
	if !skipped {
		t.Fatal("Start did not skip with STRATA_SKIP_MINIO=1")
	}
}

func TestLimitedBuffer(t *testing.T) {
	b := &limitedBuffer{max: 10}
	for range 5 {
		_, _ = b.Write([]byte("abcdef"))
	}
	if got := b.String(); got != "cdefabcdef" {
		t.Fatalf("got %q", got)
	}
}

func TestCacheDir(t *testing.T) {
	dir, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(dir, "/strata/minio/"+Version) {
		t.Fatalf("CacheDir = %q", dir)
	}
}

// TestStartServer: the non-test start, as the benchmarks use it.
func TestStartServer(t *testing.T) {
	Binary(t) // skips with STRATA_SKIP_MINIO=1; builds once otherwise
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srv, err := StartServer(ctx, t.TempDir(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if srv.Pid() <= 0 {
		t.Fatalf("Pid = %d", srv.Pid())
	}
	if err := srv.MakeBucket(ctx, "startserver"); err != nil {
		t.Fatal(err)
	}
	c, err := srv.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.BucketExists(ctx, "startserver"); err != nil || !ok {
		t.Fatalf("BucketExists = %v, %v", ok, err)
	}
	srv.Stop()
	if srv.Pid() != 0 {
		t.Fatalf("Pid after Stop = %d", srv.Pid())
	}
}
