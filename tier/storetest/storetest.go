// Package storetest is the conformance suite every tier.ObjectStore
// implementation must pass. An implementation's tests call Run with a
// function that returns a fresh, empty store.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/strata-mq/strata/tier"
)

// LargeSize is the size of the object the suite streams to exercise
// multipart uploads (larger than two 16 MiB parts).
const LargeSize = 40 << 20

// ListKeys is how many keys the listing test stores, enough to span more
// than one S3 page of 1000 keys.
const ListKeys = 1200

// Run runs the conformance suite against stores made by newStore. Every call
// of newStore must return a store that holds no objects and is not shared
// with other calls (a new directory, bucket, or key prefix).
func Run(t *testing.T, newStore func(t *testing.T) tier.ObjectStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s tier.ObjectStore)
	}{
		{"PutGetRanges", testPutGetRanges},
		{"EmptyObject", testEmptyObject},
		{"Overwrite", testOverwrite},
		{"SizeIsExact", testSizeIsExact},
		{"PutIfAbsent", testPutIfAbsent},
		{"PutIfAbsentConcurrent", testPutIfAbsentConcurrent},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"NestedAndSpecialKeys", testNestedKeys},
		{"ListOrder", testListOrder},
		{"ListMany", testListMany},
		{"Large", testLarge},
		{"FailingReader", testFailingReader},
		{"CanceledContext", testCanceledContext},
		{"CancelDuringPut", testCancelDuringPut},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func put(t *testing.T, s tier.ObjectStore, key string, data []byte) {
	t.Helper()
	if err := s.Put(ctxT(t), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
}

// get reads key[off:off+n] and fails the test on error.
func get(t *testing.T, s tier.ObjectStore, key string, off, n int64) []byte {
	t.Helper()
	b, err := tryGet(ctxT(t), s, key, off, n)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): %v", key, off, n, err)
	}
	return b
}

func tryGet(ctx context.Context, s tier.ObjectStore, key string, off, n int64) ([]byte, error) {
	rc, err := s.GetRange(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if n >= 0 && int64(len(b)) != n {
		return b, fmt.Errorf("got %d bytes, want %d", len(b), n)
	}
	return b, nil
}

func mustNotFound(t *testing.T, s tier.ObjectStore, key string) {
	t.Helper()
	if _, err := s.Stat(ctxT(t), key); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("Stat(%q) = %v, want ErrNotFound", key, err)
	}
}

func listAll(t *testing.T, s tier.ObjectStore, prefix, startAfter string) []tier.ObjectInfo {
	t.Helper()
	var out []tier.ObjectInfo
	for info, err := range s.List(ctxT(t), prefix, startAfter) {
		if err != nil {
			t.Fatalf("List(%q, %q): %v", prefix, startAfter, err)
		}
		out = append(out, info)
	}
	return out
}

func keysOf(infos []tier.ObjectInfo) []string {
	keys := make([]string, len(infos))
	for i, in := range infos {
		keys[i] = in.Key
	}
	return keys
}

// pattern returns n deterministic bytes that differ with seed.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	genAt(uint64(seed)<<40, b)
	return b
}

func testPutGetRanges(t *testing.T, s tier.ObjectStore) {
	const key = "segs/cluster/broker/00000000000000000000.seg"
	data := pattern(1, 100_000)
	before := time.Now()
	put(t, s, key, data)
	after := time.Now()

	if got := get(t, s, key, 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("full read differs (len %d)", len(got))
	}
	size := int64(len(data))
	for _, r := range []struct{ off, n int64 }{
		{0, 10}, {0, size}, {1, 1}, {100, 1000}, {size - 5, 5}, {size - 5, -1},
		{size - 1, 1}, {50_000, -1}, {0, 0}, {size, 0}, {size, -1}, {77, 0},
	} {
		got := get(t, s, key, r.off, r.n)
		end := size
		if r.n >= 0 {
			end = r.off + r.n
		}
		if !bytes.Equal(got, data[r.off:end]) {
			t.Errorf("GetRange(%d, %d): wrong bytes (len %d)", r.off, r.n, len(got))
		}
	}
	for _, r := range []struct{ off, n int64 }{
		{size + 1, -1}, {size + 1, 0}, {size + 100, 10}, {size - 5, 10}, {0, size + 1}, {size, 1}, {-1, 10},
	} {
		if b, err := tryGet(ctxT(t), s, key, r.off, r.n); err == nil {
			t.Errorf("GetRange(%d, %d) past the end: got %d bytes and no error", r.off, r.n, len(b))
		} else if errors.Is(err, tier.ErrNotFound) || errors.Is(err, tier.ErrUnavailable) {
			t.Errorf("GetRange(%d, %d) past the end: %v; want a plain range error", r.off, r.n, err)
		}
	}

	info, err := s.Stat(ctxT(t), key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Size != size {
		t.Errorf("Stat size = %d, want %d", info.Size, size)
	}
	if info.Key != key {
		t.Errorf("Stat key = %q, want %q", info.Key, key)
	}
	// Object stores keep second precision and may run on another clock.
	if info.Modified.Before(before.Add(-5*time.Minute)) || info.Modified.After(after.Add(5*time.Minute)) {
		t.Errorf("Stat modified = %v, want about %v", info.Modified, before)
	}
}

func testEmptyObject(t *testing.T, s tier.ObjectStore) {
	put(t, s, "empty", nil)
	if got := get(t, s, "empty", 0, -1); len(got) != 0 {
		t.Fatalf("empty object read %d bytes", len(got))
	}
	if got := get(t, s, "empty", 0, 0); len(got) != 0 {
		t.Fatalf("empty object read %d bytes", len(got))
	}
	if _, err := tryGet(ctxT(t), s, "empty", 0, 1); err == nil {
		t.Fatal("reading 1 byte of an empty object succeeded")
	}
	info, err := s.Stat(ctxT(t), "empty")
	if err != nil || info.Size != 0 {
		t.Fatalf("Stat(empty) = %+v, %v", info, err)
	}
	if err := s.PutIfAbsent(ctxT(t), "empty2", strings.NewReader(""), 0); err != nil {
		t.Fatalf("PutIfAbsent empty: %v", err)
	}
	if got := keysOf(listAll(t, s, "", "")); !slices.Equal(got, []string{"empty", "empty2"}) {
		t.Fatalf("List = %q", got)
	}
}

func testOverwrite(t *testing.T, s tier.ObjectStore) {
	put(t, s, "k", pattern(2, 1000))
	v2 := []byte("second version")
	put(t, s, "k", v2)
	if got := get(t, s, "k", 0, -1); !bytes.Equal(got, v2) {
		t.Fatalf("after overwrite read %q", got)
	}
	if info, err := s.Stat(ctxT(t), "k"); err != nil || info.Size != int64(len(v2)) {
		t.Fatalf("Stat after overwrite = %+v, %v", info, err)
	}
}

func testSizeIsExact(t *testing.T, s tier.ObjectStore) {
	// A reader longer than size: exactly size bytes are stored.
	data := pattern(3, 100)
	if err := s.Put(ctxT(t), "long", onlyReader{bytes.NewReader(data)}, 50); err != nil {
		t.Fatalf("Put of a longer reader: %v", err)
	}
	if got := get(t, s, "long", 0, -1); !bytes.Equal(got, data[:50]) {
		t.Fatalf("stored %d bytes, want the first 50", len(got))
	}
	// A reader shorter than size fails and stores nothing.
	if err := s.Put(ctxT(t), "short", onlyReader{bytes.NewReader(data)}, 200); err == nil {
		t.Fatal("Put of a short reader succeeded")
	}
	mustNotFound(t, s, "short")
	if err := s.PutIfAbsent(ctxT(t), "short", onlyReader{bytes.NewReader(data)}, 200); err == nil {
		t.Fatal("PutIfAbsent of a short reader succeeded")
	}
	mustNotFound(t, s, "short")
	// Negative sizes are rejected.
	if err := s.Put(ctxT(t), "neg", bytes.NewReader(data), -1); err == nil {
		t.Fatal("Put with size -1 succeeded")
	}
}

func testPutIfAbsent(t *testing.T, s tier.ObjectStore) {
	ctx := ctxT(t)
	v1 := []byte("first")
	if err := s.PutIfAbsent(ctx, "m/00000000000000000001.json", bytes.NewReader(v1), int64(len(v1))); err != nil {
		t.Fatalf("first PutIfAbsent: %v", err)
	}
	err := s.PutIfAbsent(ctx, "m/00000000000000000001.json", strings.NewReader("second"), 6)
	if !errors.Is(err, tier.ErrExists) {
		t.Fatalf("second PutIfAbsent = %v, want ErrExists", err)
	}
	if got := get(t, s, "m/00000000000000000001.json", 0, -1); !bytes.Equal(got, v1) {
		t.Fatalf("after failed PutIfAbsent read %q", got)
	}
	// Put overwrites; PutIfAbsent works again after Delete.
	put(t, s, "m/00000000000000000001.json", []byte("third"))
	if err := s.Delete(ctx, "m/00000000000000000001.json"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.PutIfAbsent(ctx, "m/00000000000000000001.json", strings.NewReader("fourth"), 6); err != nil {
		t.Fatalf("PutIfAbsent after Delete: %v", err)
	}
	if got := get(t, s, "m/00000000000000000001.json", 0, -1); string(got) != "fourth" {
		t.Fatalf("read %q, want fourth", got)
	}
	// Large conditional create (multipart where the store uses it).
	const n = 20 << 20
	if err := s.PutIfAbsent(ctx, "m/big", &genReader{n: n}, n); err != nil {
		t.Fatalf("large PutIfAbsent: %v", err)
	}
	if err := s.PutIfAbsent(ctx, "m/big", &genReader{n: n}, n); !errors.Is(err, tier.ErrExists) {
		t.Fatalf("second large PutIfAbsent = %v, want ErrExists", err)
	}
}

func testPutIfAbsentConcurrent(t *testing.T, s tier.ObjectStore) {
	const writers = 8
	ctx := ctxT(t)
	for round := range 3 {
		key := fmt.Sprintf("race/%d", round)
		start := make(chan struct{})
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				<-start
				body := fmt.Sprintf("writer %d", i)
				errs[i] = s.PutIfAbsent(ctx, key, strings.NewReader(body), int64(len(body)))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: writers %d and %d both won", round, winner, i)
				}
				winner = i
			case errors.Is(err, tier.ErrExists):
			default:
				t.Fatalf("round %d: writer %d: %v", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer won", round)
		}
		if got := string(get(t, s, key, 0, -1)); got != fmt.Sprintf("writer %d", winner) {
			t.Fatalf("round %d: object holds %q, winner was %d", round, got, winner)
		}
	}
}

func testNotFound(t *testing.T, s tier.ObjectStore) {
	ctx := ctxT(t)
	put(t, s, "present/x", []byte("x"))
	for _, key := range []string{"missing", "present/y", "present/x/z", "present"} {
		if _, err := s.Stat(ctx, key); !errors.Is(err, tier.ErrNotFound) {
			t.Errorf("Stat(%q) = %v, want ErrNotFound", key, err)
		}
		for _, n := range []int64{-1, 0, 5} {
			rc, err := s.GetRange(ctx, key, 0, n)
			if err == nil {
				// Some stores report a missing key only on the first read.
				_, err = io.ReadAll(rc)
				rc.Close()
			}
			if !errors.Is(err, tier.ErrNotFound) {
				t.Errorf("GetRange(%q, 0, %d) = %v, want ErrNotFound", key, n, err)
			}
		}
	}
}

func testDelete(t *testing.T, s tier.ObjectStore) {
	ctx := ctxT(t)
	if err := s.Delete(ctx, "never/existed"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	put(t, s, "d/x/y", []byte("y"))
	put(t, s, "d/keep", []byte("keep"))
	if err := s.Delete(ctx, "d/x/y"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	mustNotFound(t, s, "d/x/y")
	if err := s.Delete(ctx, "d/x/y"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if got := keysOf(listAll(t, s, "", "")); !slices.Equal(got, []string{"d/keep"}) {
		t.Fatalf("List after Delete = %q", got)
	}
	// The key's former "directory" can now be an object.
	put(t, s, "d/x", []byte("now an object"))
	if got := string(get(t, s, "d/x", 0, -1)); got != "now an object" {
		t.Fatalf("read %q", got)
	}
}

func testNestedKeys(t *testing.T, s tier.ObjectStore) {
	keys := []string{
		"deep/a/b/c/d/e/f/g/h.seg",
		"sp/with space",
		"sp/plus+sign",
		"sp/eq=uals&amp",
		"sp/ünïcødé-日本",
		"sp/percent%20x",
		"sp/tilde~star*paren(1)",
		"sp/comma,semi;colon:at@",
		"sp/dotted.name.json",
		"sp/-leading-dash",
	}
	for i, k := range keys {
		put(t, s, k, pattern(100+i, 10+i))
	}
	for i, k := range keys {
		if got := get(t, s, k, 0, -1); !bytes.Equal(got, pattern(100+i, 10+i)) {
			t.Errorf("key %q: read back wrong bytes", k)
		}
		if info, err := s.Stat(ctxT(t), k); err != nil || info.Key != k || info.Size != int64(10+i) {
			t.Errorf("Stat(%q) = %+v, %v", k, info, err)
		}
	}
	want := slices.Sorted(slices.Values(keys))
	if got := keysOf(listAll(t, s, "", "")); !slices.Equal(got, want) {
		t.Fatalf("List = %q\nwant %q", got, want)
	}
	if got := keysOf(listAll(t, s, "deep/a/b/", "")); !slices.Equal(got, keys[:1]) {
		t.Fatalf("List(deep/a/b/) = %q", got)
	}
	for _, k := range keys {
		if err := s.Delete(ctxT(t), k); err != nil {
			t.Fatalf("Delete(%q): %v", k, err)
		}
	}
	if got := listAll(t, s, "", ""); len(got) != 0 {
		t.Fatalf("List after deleting all = %q", keysOf(got))
	}
}

// expectList is the reference semantics of List over a set of keys.
func expectList(sorted []string, prefix, startAfter string) []string {
	var out []string
	for _, k := range sorted {
		if strings.HasPrefix(k, prefix) && k > startAfter {
			out = append(out, k)
		}
	}
	return out
}

func testListOrder(t *testing.T, s tier.ObjectStore) {
	// Keys whose byte order differs from a naive directory walk: '-' and
	// '.' sort before '/', which sorts before '0'. (No key is both an
	// object and a "directory" of others: a filesystem cannot hold that.)
	keys := []string{
		"o/a-b", "o/a.b", "o/a/b", "o/a/b0", "o/a/c/d", "o/a0", "o/b",
		"o/ab/x", "o/a/c/d2", "p", "o-", "o0/z",
	}
	for i, k := range keys {
		put(t, s, k, pattern(i, i))
	}
	sorted := slices.Sorted(slices.Values(keys))
	prefixes := []string{"", "o", "o/", "o/a", "o/a/", "o/a/c", "o/a/c/", "o/b", "q", "o/a/b"}
	starts := []string{"", "o", "o/", "o/a", "o/a-b", "o/a/", "o/a/b", "o/a/c", "o/a/c/d", "o/a0", "o/zzz", "o/a/b0", "p", "z"}
	for _, p := range prefixes {
		for _, sa := range starts {
			got := listAll(t, s, p, sa)
			want := expectList(sorted, p, sa)
			if !slices.Equal(keysOf(got), want) {
				t.Errorf("List(%q, %q) = %q, want %q", p, sa, keysOf(got), want)
			}
			for _, in := range got {
				if i := slices.Index(keys, in.Key); i < 0 || in.Size != int64(i) {
					t.Errorf("List(%q, %q): %q has size %d", p, sa, in.Key, in.Size)
				}
			}
		}
	}
}

func testListMany(t *testing.T, s tier.ObjectStore) {
	ctx := ctxT(t)
	keys := make([]string, ListKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("list/%04d", i)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, k := range keys {
		g.Go(func() error {
			b := pattern(i, i%7)
			return s.Put(gctx, k, bytes.NewReader(b), int64(len(b)))
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("storing %d keys: %v", len(keys), err)
	}
	put(t, s, "other/x", []byte("x"))

	all := listAll(t, s, "list/", "")
	if !slices.Equal(keysOf(all), keys) {
		t.Fatalf("List(list/) returned %d keys, want %d in order", len(all), len(keys))
	}
	for i, in := range all {
		if in.Size != int64(i%7) {
			t.Fatalf("%s: size %d, want %d", in.Key, in.Size, i%7)
		}
		if in.Modified.IsZero() {
			t.Fatalf("%s: zero modification time", in.Key)
		}
	}
	if got := listAll(t, s, "", ""); len(got) != len(keys)+1 || got[len(got)-1].Key != "other/x" {
		t.Fatalf("List(\"\") returned %d keys", len(got))
	}
	cases := []struct{ prefix, startAfter string }{
		{"list/00", ""},
		{"list/", "list/0999"},
		{"list/", "list/05"},
		{"list/1", "list/0500"},
		{"list/0", "list/1"},
		{"list/", "list/1199"},
		{"nope/", ""},
		{"", "list/1150"},
	}
	for _, c := range cases {
		got := keysOf(listAll(t, s, c.prefix, c.startAfter))
		want := expectList(append(slices.Clone(keys), "other/x"), c.prefix, c.startAfter)
		if !slices.Equal(got, want) {
			t.Errorf("List(%q, %q): got %d keys, want %d", c.prefix, c.startAfter, len(got), len(want))
		}
	}
	// Stopping early.
	var got []string
	for info, err := range s.List(ctx, "list/", "list/0998") {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		got = append(got, info.Key)
		if len(got) == 3 {
			break
		}
	}
	if !slices.Equal(got, []string{"list/0999", "list/1000", "list/1001"}) {
		t.Fatalf("early stop: got %q", got)
	}
}

func testLarge(t *testing.T, s tier.ObjectStore) {
	ctx := ctxT(t)
	want := sha256.New()
	if _, err := io.Copy(want, &genReader{n: LargeSize}); err != nil {
		t.Fatal(err)
	}
	r := &genReader{n: LargeSize}
	if err := s.Put(ctx, "large/obj", r, LargeSize); err != nil {
		t.Fatalf("Put of %d bytes: %v", LargeSize, err)
	}
	if info, err := s.Stat(ctx, "large/obj"); err != nil || info.Size != LargeSize {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
	rc, err := s.GetRange(ctx, "large/obj", 0, -1)
	if err != nil {
		t.Fatalf("GetRange: %v", err)
	}
	got := sha256.New()
	n, err := io.Copy(got, rc)
	rc.Close()
	if err != nil || n != LargeSize {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("large object content differs")
	}
	const mib = 1 << 20
	for _, rg := range []struct{ off, n int64 }{
		{0, 1000}, {16*mib - 100, 200}, {5*mib + 3, 3 * mib}, {LargeSize - 4096, 4096}, {32*mib - 1, 2},
	} {
		b := get(t, s, "large/obj", rg.off, rg.n)
		exp := make([]byte, rg.n)
		genAt(uint64(rg.off), exp)
		if !bytes.Equal(b, exp) {
			t.Errorf("GetRange(%d, %d): wrong bytes", rg.off, rg.n)
		}
	}
}

func testFailingReader(t *testing.T, s tier.ObjectStore) {
	ctx := ctxT(t)
	boom := errors.New("reader exploded")
	for _, c := range []struct {
		name       string
		good, size int64
	}{
		{"small", 100 << 10, 1 << 20},
		{"multipart", 20 << 20, 30 << 20},
	} {
		key := "fail/" + c.name
		err := s.Put(ctx, key, io.MultiReader(&genReader{n: c.good}, errReader{boom}), c.size)
		if err == nil {
			t.Fatalf("%s: Put with a failing reader succeeded", c.name)
		}
		mustNotFound(t, s, key)
		err = s.PutIfAbsent(ctx, key, io.MultiReader(&genReader{n: c.good}, errReader{boom}), c.size)
		if err == nil {
			t.Fatalf("%s: PutIfAbsent with a failing reader succeeded", c.name)
		}
		mustNotFound(t, s, key)
		if err := s.PutIfAbsent(ctx, key, strings.NewReader("ok"), 2); err != nil {
			t.Fatalf("%s: PutIfAbsent after a failed one: %v", c.name, err)
		}
	}
	// A failed overwrite leaves the old object in place.
	put(t, s, "fail/existing", []byte("old"))
	if err := s.Put(ctx, "fail/existing", io.MultiReader(strings.NewReader("new"), errReader{boom}), 100); err == nil {
		t.Fatal("Put with a failing reader succeeded")
	}
	if got := string(get(t, s, "fail/existing", 0, -1)); got != "old" {
		t.Fatalf("after failed overwrite read %q, want old", got)
	}
	if got := keysOf(listAll(t, s, "", "")); !slices.Equal(got, []string{"fail/existing", "fail/multipart", "fail/small"}) {
		t.Fatalf("List = %q", got)
	}
}

func testCanceledContext(t *testing.T, s tier.ObjectStore) {
	put(t, s, "c/k", []byte("data"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context = %v, want context.Canceled", op, err)
		}
	}
	check("Put", s.Put(ctx, "c/new", strings.NewReader("x"), 1))
	check("PutIfAbsent", s.PutIfAbsent(ctx, "c/new", strings.NewReader("x"), 1))
	_, err := tryGet(ctx, s, "c/k", 0, -1)
	check("GetRange", err)
	_, err = s.Stat(ctx, "c/k")
	check("Stat", err)
	check("Delete", s.Delete(ctx, "c/k"))
	var lerr error
	for _, err := range s.List(ctx, "", "") {
		if err != nil {
			lerr = err
			break
		}
	}
	check("List", lerr)
	mustNotFound(t, s, "c/new")
	if got := string(get(t, s, "c/k", 0, -1)); got != "data" {
		t.Fatalf("read %q after canceled Delete", got)
	}
	// An expired deadline is a retryable failure, and still a deadline.
	dctx, dcancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer dcancel()
	_, err = s.Stat(dctx, "c/k")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, tier.ErrUnavailable) {
		t.Errorf("Stat past deadline = %v, want DeadlineExceeded and ErrUnavailable", err)
	}
}

func testCancelDuringPut(t *testing.T, s tier.ObjectStore) {
	const size = 1 << 30
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// The reader cancels the Put itself once 1 MiB has been consumed, then
	// keeps supplying data: the store must stop reading and return.
	r := &genReader{n: size, after: 1 << 20, hook: cancel}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Put(ctx, "cancel/big", r, size) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("canceled Put succeeded")
		}
		if !errors.Is(err, context.Canceled) {
			t.Logf("canceled Put returned %v (not wrapping context.Canceled)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Put did not return within 30s of cancellation")
	}
	if el := time.Since(start); el > 15*time.Second {
		t.Errorf("canceled Put took %v", el)
	}
	if read := r.read.Load(); read > 256<<20 {
		t.Errorf("store read %d bytes after cancellation at 1 MiB", read)
	}
	mustNotFound(t, s, "cancel/big")
}

// genAt fills b with the deterministic stream's bytes from offset off: byte
// i of the stream is byte i%8 of splitmix64(i/8).
func genAt(off uint64, b []byte) {
	var w [8]byte
	for len(b) > 0 {
		word := off / 8
		binary.LittleEndian.PutUint64(w[:], splitmix64(word))
		n := copy(b, w[off%8:])
		b = b[n:]
		off += uint64(n)
	}
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// genReader streams n bytes of the deterministic stream. It is a plain
// io.Reader (no Seek, no WriterTo), so stores must stream it. When after > 0,
// hook is called once that many bytes have been read.
type genReader struct {
	n     int64
	off   int64
	after int64
	hook  func()
	read  atomic.Int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	if rem := g.n - g.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	if len(p) > 256<<10 {
		p = p[:256<<10]
	}
	genAt(uint64(g.off), p)
	g.off += int64(len(p))
	g.read.Store(g.off)
	if g.hook != nil && g.after > 0 && g.off >= g.after {
		g.hook()
		g.hook = nil
	}
	return len(p), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// onlyReader hides every method but Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
