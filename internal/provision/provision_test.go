package provision

import (
	"context"
	"testing"
	"time"
)

func TestLockFile(t *testing.T) {
	path := t.TempDir() + "/lock"
	unlock, err := lockFile(t.Context(), path, "x", t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := lockFile(ctx, path, "x", t.Logf); err == nil {
		t.Fatal("second lock acquired while the first is held")
	}
	unlock()
	unlock2, err := lockFile(t.Context(), path, "x", t.Logf)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

func TestBinaryName(t *testing.T) {
	for pkg, want := range map[string]string{
		"github.com/minio/minio":            "minio",
		"github.com/nats-io/nats-server/v2": "nats-server",
		"golang.org/x/tools/cmd/stringer":   "stringer",
		"example.com/v2tool":                "v2tool",
	} {
		if got := binaryName(pkg); got != want {
			t.Errorf("binaryName(%q) = %q, want %q", pkg, got, want)
		}
	}
}
