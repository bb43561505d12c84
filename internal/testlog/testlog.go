// Package testlog holds what tests use to capture the logs and output of
// servers and clients that write from many goroutines.
package testlog

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// Buffer is a bytes.Buffer safe for concurrent writers (a server's
// goroutines, a child process's two output pipes) and readers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// OnFailure returns a debug-level text logger whose output the test
// prints when it fails, and only then: a flaky failure in CI comes with
// the log that explains it, and a passing run stays quiet.
func OnFailure(t testing.TB) *slog.Logger {
	var b Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", b.String())
		}
	})
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
