package fsstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tier.ObjectStore {
		s, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestInvalidKeys(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, key := range []string{
		"", "/abs", "a/../b", "..", "../x", "a/..", "a..b", `a\b`, "a\x00b", "a//b", "a/", "./a", "a/./b",
		".strata-tmp/x", ".strata-tmp", strings.Repeat("k", 1025),
	} {
		if err := s.Put(ctx, key, strings.NewReader("x"), 1); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := s.PutIfAbsent(ctx, key, strings.NewReader("x"), 1); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("PutIfAbsent(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.GetRange(ctx, key, 0, -1); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("GetRange(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	for _, key := range []string{"a", "a/b", ".hidden", "a/.strata-tmp", "x.y/z-w_v", "a.b/c"} {
		if err := ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v", key, err)
		}
	}
}

func TestTempFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Debris of a crashed writer: one old temp file, one fresh.
	old := filepath.Join(dir, tmpDirName, "put-old")
	fresh := filepath.Join(dir, tmpDirName, "put-fresh")
	for _, f := range []string{old, fresh} {
		if err := os.WriteFile(f, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-StaleTempAge - time.Minute)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "obj", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	for info, err := range s.List(t.Context(), "", "") {
		if err != nil {
			t.Fatal(err)
		}
		if info.Key != "obj" {
			t.Errorf("List yielded %q", info.Key)
		}
	}
	if _, err := New(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp file survived New: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp file removed by New: %v", err)
	}
	// Successful and failed puts leave no temp files behind.
	_ = s.Put(t.Context(), "short", strings.NewReader("x"), 10)
	_ = s.PutIfAbsent(t.Context(), "obj", strings.NewReader("x"), 1)
	_ = s.PutIfAbsent(t.Context(), "obj2", strings.NewReader("x"), 1)
	entries, err := os.ReadDir(filepath.Join(dir, tmpDirName))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "put-fresh" {
		t.Errorf("temp dir holds %v", entries)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(""); err == nil {
		t.Error("New(\"\") succeeded")
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(f); err == nil {
		t.Error("New(file) succeeded")
	}
}

func TestKeyParentIsObject(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Put(ctx, "a", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	err = s.Put(ctx, "a/b", strings.NewReader("x"), 1)
	if err == nil || errors.Is(err, tier.ErrNotFound) || errors.Is(err, tier.ErrExists) {
		t.Errorf("Put under an object = %v, want a plain error", err)
	}
	if err := s.Put(ctx, "d/e", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	err = s.PutIfAbsent(ctx, "d", strings.NewReader("x"), 1)
	if err == nil || errors.Is(err, tier.ErrExists) {
		t.Errorf("PutIfAbsent over a directory = %v, want a plain error", err)
	}
	if err := s.Delete(ctx, "d"); err != nil {
		t.Errorf("Delete of a directory name = %v", err)
	}
}

// FuzzKey checks that no key, valid or not, maps outside the directory or
// panics.
func FuzzKey(f *testing.F) {
	for _, seed := range []string{"a/b", "../x", "a/../../b", "/etc/passwd", "a\\..\\b", ".", "a/./b", "", "x\x00", ".strata-tmp/a", "…/..."} {
		f.Add(seed)
	}
	dir := f.TempDir()
	s, err := New(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key string) {
		p, err := s.path(key)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("path(%q): %v", key, err)
			}
			return
		}
		rel, err := filepath.Rel(s.dir, p)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") || filepath.IsAbs(rel) {
			t.Fatalf("key %q maps to %q outside %q", key, p, s.dir)
		}
		if filepath.ToSlash(rel) != key {
			t.Fatalf("key %q maps to %q, not the same path", key, rel)
		}
		if strings.HasPrefix(rel, tmpDirName) && (len(rel) == len(tmpDirName) || rel[len(tmpDirName)] == filepath.Separator) {
			t.Fatalf("key %q maps into the temp directory", key)
		}
	})
}
