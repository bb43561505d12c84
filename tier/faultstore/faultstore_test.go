package faultstore

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/fsstore"
	"github.com/strata-mq/strata/tier/storetest"
)

func newFS(t *testing.T) *Store {
	t.Helper()
	inner, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return New(inner)
}

// Without faults the wrapper is a conforming store.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tier.ObjectStore { return newFS(t) })
}

func read(t *testing.T, s tier.ObjectStore, key string, off, n int64) (string, error) {
	t.Helper()
	rc, err := s.GetRange(t.Context(), key, off, n)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

func listErr(s tier.ObjectStore) (int, error) {
	n := 0
	for _, err := range s.List(context.Background(), "", "") {
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func TestFailNext(t *testing.T) {
	s := newFS(t)
	ctx := t.Context()
	s.FailNext(OpPut, 2)
	for i := range 2 {
		err := s.Put(ctx, "k", strings.NewReader("v"), 1)
		if !errors.Is(err, tier.ErrUnavailable) || !errors.Is(err, ErrInjected) {
			t.Fatalf("Put %d = %v, want injected ErrUnavailable", i, err)
		}
	}
	if _, err := s.Inner().Stat(ctx, "k"); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("failed Put reached the inner store: %v", err)
	}
	if err := s.Put(ctx, "k", strings.NewReader("v"), 1); err != nil {
		t.Fatalf("third Put: %v", err)
	}
	if s.Calls(OpPut) != 3 || s.Failures(OpPut) != 2 {
		t.Fatalf("calls %d failures %d", s.Calls(OpPut), s.Failures(OpPut))
	}
	// Other operations are unaffected; each has its own counter.
	s.FailNext(OpStat, 1)
	s.FailNext(OpGetRange, 1)
	s.FailNext(OpList, 1)
	s.FailNext(OpDelete, 1)
	s.FailNext(OpPutIfAbsent, 1)
	if _, err := s.Stat(ctx, "k"); !errors.Is(err, ErrInjected) {
		t.Fatalf("Stat = %v", err)
	}
	if _, err := read(t, s, "k", 0, -1); !errors.Is(err, ErrInjected) {
		t.Fatalf("GetRange = %v", err)
	}
	if _, err := listErr(s); !errors.Is(err, ErrInjected) {
		t.Fatalf("List = %v", err)
	}
	if err := s.Delete(ctx, "k"); !errors.Is(err, ErrInjected) {
		t.Fatalf("Delete = %v", err)
	}
	if err := s.PutIfAbsent(ctx, "k2", strings.NewReader("v"), 1); !errors.Is(err, ErrInjected) {
		t.Fatalf("PutIfAbsent = %v", err)
	}
	if got, err := read(t, s, "k", 0, -1); err != nil || got != "v" {
		t.Fatalf("GetRange after faults = %q, %v", got, err)
	}
	if n, err := listErr(s); err != nil || n != 1 {
		t.Fatalf("List after faults = %d, %v", n, err)
	}
	for op := range numOps {
		if s.Failures(op) != 1 && op != OpPut {
			t.Errorf("%v: %d failures", op, s.Failures(op))
		}
	}
}

func TestFailNextAfter(t *testing.T) {
	s := newFS(t)
	ctx := t.Context()
	s.FailNextAfter(OpPutIfAbsent, 1)
	if err := s.PutIfAbsent(ctx, "m/1", strings.NewReader("v"), 1); !errors.Is(err, tier.ErrUnavailable) {
		t.Fatalf("PutIfAbsent = %v", err)
	}
	// The write took effect: a retry finds it.
	if err := s.PutIfAbsent(ctx, "m/1", strings.NewReader("v"), 1); !errors.Is(err, tier.ErrExists) {
		t.Fatalf("retried PutIfAbsent = %v, want ErrExists", err)
	}
	s.FailNextAfter(OpDelete, 1)
	if err := s.Delete(ctx, "m/1"); !errors.Is(err, ErrInjected) {
		t.Fatalf("Delete = %v", err)
	}
	if _, err := s.Stat(ctx, "m/1"); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("Stat after lost Delete response = %v", err)
	}
	if err := s.Put(ctx, "a", strings.NewReader("a"), 1); err != nil {
		t.Fatal(err)
	}
	s.FailNextAfter(OpList, 1)
	if n, err := listErr(s); !errors.Is(err, ErrInjected) || n != 1 {
		t.Fatalf("List = %d, %v; want the objects then an error", n, err)
	}
}

func TestDownAndError(t *testing.T) {
	s := newFS(t)
	ctx := t.Context()
	if err := s.Put(ctx, "k", strings.NewReader("v"), 1); err != nil {
		t.Fatal(err)
	}
	s.SetDown(true)
	for range 3 {
		if _, err := s.Stat(ctx, "k"); !errors.Is(err, tier.ErrUnavailable) {
			t.Fatalf("Stat while down = %v", err)
		}
	}
	permanent := errors.New("bucket gone")
	s.SetError(permanent)
	if err := s.Delete(ctx, "k"); !errors.Is(err, permanent) || errors.Is(err, tier.ErrUnavailable) || !errors.Is(err, ErrInjected) {
		t.Fatalf("Delete with SetError = %v", err)
	}
	s.SetDown(false)
	if _, err := s.Stat(ctx, "k"); err != nil {
		t.Fatalf("Stat after outage = %v", err)
	}
	s.Reset()
	if s.Calls(OpStat) != 0 || s.Failures(OpStat) != 0 {
		t.Fatal("Reset kept counters")
	}
}

func TestLatency(t *testing.T) {
	s := newFS(t)
	s.SetLatency(50 * time.Millisecond)
	start := time.Now()
	if _, err := s.Stat(t.Context(), "missing"); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("Stat = %v", err)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("latency not applied: %v", el)
	}
	s.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := s.Stat(ctx, "missing"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stat with latency past deadline = %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("latency ignored the context: %v", el)
	}
}

func TestGetHooks(t *testing.T) {
	s := newFS(t)
	ctx := t.Context()
	if err := s.Put(ctx, "k", strings.NewReader("abcdefgh"), 8); err != nil {
		t.Fatal(err)
	}
	s.SetGetHook(FlipBit)
	got, err := read(t, s, "k", 0, -1)
	if err != nil || got == "abcdefgh" || len(got) != 8 {
		t.Fatalf("FlipBit read %q, %v", got, err)
	}
	s.SetGetHook(Truncate(3))
	if got, err := read(t, s, "k", 2, 4); err != nil || got != "cde" {
		t.Fatalf("Truncate read %q, %v", got, err)
	}
	var seenKey string
	var seenOff int64
	s.SetGetHook(func(key string, off int64, data []byte) []byte {
		seenKey, seenOff = key, off
		return data
	})
	if got, err := read(t, s, "k", 5, -1); err != nil || got != "fgh" || seenKey != "k" || seenOff != 5 {
		t.Fatalf("hook saw %q@%d, read %q, %v", seenKey, seenOff, got, err)
	}
	s.SetGetHook(nil)
	if got, _ := read(t, s, "k", 0, -1); got != "abcdefgh" {
		t.Fatalf("read %q after removing the hook", got)
	}
	if OpGetRange.String() != "get-range" || Op(99).String() != "Op(99)" {
		t.Fatal("Op.String")
	}
}
