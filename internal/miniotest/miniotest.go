// Package miniotest runs a real MinIO server for tests.
//
// The server binary is built once per machine with
// `go install github.com/minio/minio@<Version>` into
// <os.UserCacheDir()>/strata/minio/<Version>/minio and reused afterwards
// (the first build takes 3 to 5 minutes; run such tests with a generous
// -timeout). Concurrent test binaries serialise the build with a file lock,
// and the binary is built into a temporary directory and renamed into place,
// so a half-built binary is never used.
//
// Setting STRATA_SKIP_MINIO=1 skips every test that needs MinIO. Otherwise a
// failure to build or start the server fails the test.
package miniotest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/strata-mq/strata/internal/provision"
)

// Module and Version identify the MinIO server that tests run.
const (
	Module  = "github.com/minio/minio"
	Version = "v0.0.0-20260212201848-7aac2a2c5b7c"
)

// SkipEnv is the environment variable that, set to 1, skips tests needing
// MinIO.
const SkipEnv = "STRATA_SKIP_MINIO"

// Default root credentials of servers started by Start.
const (
	DefaultAccessKey = "strata-test"
	DefaultSecretKey = "strata-test-secret"
)

const (
	buildTimeout   = 20 * time.Minute
	startTimeout   = 60 * time.Second
	stopTimeout    = 10 * time.Second
	maxOutputBytes = 1 << 20
)

// CacheDir returns the directory the MinIO binary is built into.
func CacheDir() (string, error) { return provision.CacheDir("minio", Version) }

var (
	binMu   sync.Mutex
	binPath string
)

// Binary returns the path of the MinIO server binary, building it first if
// needed. It skips the test when STRATA_SKIP_MINIO=1 and fails it when the
// build fails.
func Binary(t testing.TB) string {
	t.Helper()
	skipIfDisabled(t)
	binMu.Lock()
	defer binMu.Unlock()
	if binPath != "" {
		return binPath
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	p, err := EnsureBinary(ctx, t.Logf)
	if err != nil {
		t.Fatalf("miniotest: %v (set %s=1 to skip tests that need MinIO)", err, SkipEnv)
	}
	binPath = p
	return p
}

func skipIfDisabled(t testing.TB) {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%s=1: skipping a test that needs a real MinIO server", SkipEnv)
	}
}

// EnsureBinary returns the path of the MinIO binary, building it if it is not
// in the cache directory yet. logf (may be nil) reports progress.
func EnsureBinary(ctx context.Context, logf func(format string, args ...any)) (string, error) {
	return provision.GoBinary(ctx, Module, Version, "minio", logf)
}

// Server is a running MinIO server owned by a test (Start) or by a program
// (StartServer).
type Server struct {
	// Endpoint is the server's address, "127.0.0.1:port".
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey string
	SecretKey string

	bin     string
	dataDir string
	console string
	logf    func(string, ...any)

	mu     sync.Mutex
	cmd    *exec.Cmd
	out    *limitedBuffer
	exited chan struct{} // closed when cmd has exited

	buckets atomic.Int64
}

// Start builds (once) and starts a MinIO server on free loopback ports with
// a fresh data directory, waits until it is live, and stops it when the test
// ends. It skips the test when STRATA_SKIP_MINIO=1.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir() // registered before Stop, so removed after it
	s, err := startServer(bin, dir, t.Logf)
	if err != nil {
		t.Fatalf("miniotest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartServer is Start outside tests (the benchmarks use it): it builds the
// MinIO binary into the cache directory if needed (logf, which may be nil,
// reports progress), starts a server on free loopback ports with its data
// in dir, and waits until it is live. The caller stops it with Stop. It
// does not look at STRATA_SKIP_MINIO.
func StartServer(ctx context.Context, dir string, logf func(format string, args ...any)) (*Server, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin, err := EnsureBinary(ctx, logf)
	if err != nil {
		return nil, fmt.Errorf("miniotest: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("miniotest: create data directory: %w", err)
	}
	s, err := startServer(bin, dir, logf)
	if err != nil {
		return nil, fmt.Errorf("miniotest: %w", err)
	}
	return s, nil
}

// startServer starts bin on free loopback ports with its data in dir,
// trying other ports when the ones it picked were taken meanwhile.
func startServer(bin, dir string, logf func(string, ...any)) (*Server, error) {
	s := &Server{
		AccessKey: DefaultAccessKey,
		SecretKey: DefaultSecretKey,
		bin:       bin,
		dataDir:   dir,
		logf:      logf,
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if s.Endpoint, err = freeAddr(); err != nil {
			return nil, err
		}
		if s.console, err = freeAddr(); err != nil {
			return nil, err
		}
		if err = s.start(); err == nil {
			return s, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, err
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start launches the server process and waits until it answers.
func (s *Server) start() error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return errors.New("server already running")
	}
	cmd := exec.Command(s.bin, "server", s.dataDir, "--address", s.Endpoint, "--console-address", s.console, "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=1",
	)
	dieWithParent(cmd)
	out := &limitedBuffer{max: maxOutputBytes}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	s.cmd, s.out, s.exited = cmd, out, exited
	s.mu.Unlock()
	go func() { // owned by the Server: ends when the process exits
		waitErr = cmd.Wait()
		close(exited)
	}()
	if err := waitLive(s.Endpoint, exited, startTimeout); err != nil {
		s.kill(syscall.SIGKILL)
		<-exited
		return fmt.Errorf("MinIO on %s: %w (process: %v)\nserver output:\n%s", s.Endpoint, err, waitErr, tail(out.String(), 8000))
	}
	return nil
}

// waitLive polls the liveness and cluster-health endpoints until both answer
// 200, the process exits, or timeout passes.
func waitLive(addr string, exited <-chan struct{}, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = probe(client, "http://"+addr+"/minio/health/live")
		if last == nil {
			last = probe(client, "http://"+addr+"/minio/health/cluster")
			if last == nil {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("server exited during start-up")
		case <-deadline.C:
			return fmt.Errorf("not live after %v: %w", timeout, last)
		case <-tick.C:
		}
	}
}

func probe(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// Stop stops the server gracefully (SIGTERM, then SIGKILL after 10 s). It is
// idempotent and registered as a test cleanup by Start; servers started
// with StartServer are stopped by their caller.
func (s *Server) Stop() { s.kill(syscall.SIGTERM) }

// Kill kills the server abruptly (SIGKILL), keeping its data for Restart.
func (s *Server) Kill() { s.kill(syscall.SIGKILL) }

func (s *Server) kill(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		return
	case <-time.After(stopTimeout):
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Restart stops the server if it runs and starts it again on the same
// address with the same data, failing the test if it does not come up.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatalf("miniotest: restart: %v", err)
	}
}

// Output returns the server's output so far (the last megabyte of it).
func (s *Server) Output() string {
	s.mu.Lock()
	out := s.out
	s.mu.Unlock()
	if out == nil {
		return ""
	}
	return out.String()
}

// URL returns the server's base URL, "http://127.0.0.1:port".
func (s *Server) URL() string { return "http://" + s.Endpoint }

// NewClient returns a minio-go client with the root credentials.
func (s *Server) NewClient() (*minio.Client, error) {
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:     "us-east-1",
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("miniotest: client: %w", err)
	}
	return c, nil
}

// Client returns a minio-go client with the root credentials, failing the
// test if it cannot be made.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := s.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// MakeBucket creates the bucket name.
func (s *Server) MakeBucket(ctx context.Context, name string) error {
	c, err := s.NewClient()
	if err != nil {
		return err
	}
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		return fmt.Errorf("miniotest: create bucket %q: %w\nserver output:\n%s", name, err, tail(s.Output(), 4000))
	}
	return nil
}

// Bucket creates the bucket name and returns it.
func (s *Server) Bucket(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.MakeBucket(ctx, name); err != nil {
		t.Fatal(err)
	}
	return name
}

// Pid returns the server's process id, or 0 when it is not running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

var bucketUnsafe = regexp.MustCompile(`[^a-z0-9-]+`)

// NewBucket creates a bucket with a fresh valid name derived from the test's
// name and returns the name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	n := s.buckets.Add(1)
	base := bucketUnsafe.ReplaceAllString(strings.ToLower(t.Name()), "-")
	suffix := fmt.Sprintf("-%d", n)
	if max := 63 - len(suffix); len(base) > max {
		base = base[len(base)-max:]
	}
	base = strings.Trim(base, "-")
	if len(base) < 3 {
		base = "bkt" + base
	}
	return s.Bucket(t, base+suffix)
}

// limitedBuffer keeps the last max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
