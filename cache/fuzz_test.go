package cache

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

var errFuzz = errors.New("fuzz fetch failure")

// FuzzOps drives a small cache with an arbitrary sequence of Gets and
// Prefetches (three bytes per operation: kind, key, size) and checks the
// byte accounting, the window bounds and the values after each one.
func FuzzOps(f *testing.F) {
	f.Add([]byte{0, 1, 10, 0, 1, 10, 1, 2, 20, 0, 2, 20})
	f.Add([]byte{1, 0, 200, 1, 1, 200, 1, 2, 200, 1, 3, 200, 0, 4, 255, 0, 5, 100})
	f.Add([]byte{0, 7, 0xff, 0, 7, 1, 2, 7, 3, 1, 8, 0xff, 0, 8, 9})
	f.Add([]byte("sequential readers read sequentially, mostly"))
	f.Fuzz(fuzzBody)
}

func fuzzBody(t *testing.T, ops []byte) {
	const maxB = 4096
	c := New(Config{MaxBytes: maxB, PrefetchWorkers: 2, PrefetchQueue: 4, MaxWindow: 8, MaxStreams: 2})
	defer c.Close()
	ctx := context.Background()
	// Values are a pure function of (key, size byte), so any cached
	// value can be checked: its length is 64·size and it is filled
	// with its key's index. Size 0xff fails.
	fetch := func(k, size byte) FetchFunc {
		return func(context.Context) ([]byte, error) {
			if size == 0xff {
				return nil, errFuzz
			}
			b := make([]byte, 64*int(size))
			for i := range b {
				b[i] = k
			}
			return b, nil
		}
	}
	for len(ops) >= 3 {
		kind, k, size := ops[0]%3, ops[1]%16, ops[2]
		ops = ops[3:]
		key := fmt.Sprint("k", k)
		s := c.Stream(fmt.Sprint("s", k%3))
		switch kind {
		case 0, 2:
			v, err := c.Get(ctx, key, fetch(k, size))
			if err != nil {
				if !errors.Is(err, errFuzz) {
					t.Fatalf("Get %s: %v", key, err)
				}
				break
			}
			for _, b := range v {
				if b != k {
					t.Fatalf("Get %s: value of another key", key)
				}
			}
		case 1:
			c.Prefetch(s, key, fetch(k, size))
		}
		if w := s.Window(); w < 1 || w > 8 {
			t.Fatalf("window %d out of [1, 8]", w)
		}
		checkInvariants(t, c)
	}
	c.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.flights) != 0 || c.bytes != 0 {
		t.Fatalf("after Close: %d flights, %d bytes", len(c.flights), c.bytes)
	}
}
