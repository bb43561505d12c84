// Package faultstore wraps a tier.ObjectStore with programmable faults, for
// tests of the layers above it: failing calls, an outage, latency, lost
// responses (the call takes effect but reports failure), and corrupted or
// truncated reads. It counts calls per operation.
package faultstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/tier"
)

// Op names an ObjectStore method.
type Op int

// Operations.
const (
	OpPut Op = iota
	OpPutIfAbsent
	OpGetRange
	OpStat
	OpList
	OpDelete
	numOps
)

var opNames = [numOps]string{"put", "put-if-absent", "get-range", "stat", "list", "delete"}

func (o Op) String() string {
	if o >= 0 && o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// ErrInjected marks failures made by the Store. Unless SetError says
// otherwise they also match tier.ErrUnavailable.
var ErrInjected = errors.New("faultstore: injected fault")

// GetHook may change the bytes GetRange returns (flip bits, cut them short).
// data is the range read from the inner store; the hook's result is returned
// instead.
type GetHook func(key string, off int64, data []byte) []byte

// Store is a tier.ObjectStore that forwards to an inner store, except where
// a fault is programmed. It is safe for concurrent use; faults may be
// changed while calls are in flight.
type Store struct {
	inner tier.ObjectStore

	mu        sync.Mutex
	failNext  [numOps]int
	failAfter [numOps]int
	down      bool
	latency   time.Duration
	err       error
	hook      GetHook

	calls    [numOps]atomic.Int64
	failures [numOps]atomic.Int64
}

var _ tier.ObjectStore = (*Store)(nil)

// New wraps inner with no faults programmed.
func New(inner tier.ObjectStore) *Store { return &Store{inner: inner} }

// Inner returns the wrapped store.
func (s *Store) Inner() tier.ObjectStore { return s.inner }

// FailNext makes the next n calls of op fail without reaching the inner
// store.
func (s *Store) FailNext(op Op, n int) {
	s.mu.Lock()
	s.failNext[op] = n
	s.mu.Unlock()
}

// FailNextAfter makes the next n calls of op reach the inner store and then
// report failure, as when a response is lost: a Put is stored, a Delete
// done, yet the caller sees an error.
func (s *Store) FailNextAfter(op Op, n int) {
	s.mu.Lock()
	s.failAfter[op] = n
	s.mu.Unlock()
}

// SetDown makes every call fail (true) until cleared (false).
func (s *Store) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// SetLatency delays every call by d (0 to clear); a call whose context ends
// first returns the context's error.
func (s *Store) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.latency = d
	s.mu.Unlock()
}

// SetError sets the error injected failures wrap instead of
// tier.ErrUnavailable (nil restores it), e.g. to simulate a permanent
// failure. Failures always also match ErrInjected.
func (s *Store) SetError(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// SetGetHook installs fn to alter the bytes GetRange returns (nil removes
// it). See FlipBit and Truncate.
func (s *Store) SetGetHook(fn GetHook) {
	s.mu.Lock()
	s.hook = fn
	s.mu.Unlock()
}

// Reset clears every fault and counter.
func (s *Store) Reset() {
	s.mu.Lock()
	s.failNext, s.failAfter = [numOps]int{}, [numOps]int{}
	s.down, s.latency, s.err, s.hook = false, 0, nil, nil
	s.mu.Unlock()
	for i := range numOps {
		s.calls[i].Store(0)
		s.failures[i].Store(0)
	}
}

// Calls returns how many times op has been called.
func (s *Store) Calls(op Op) int64 { return s.calls[op].Load() }

// Failures returns how many calls of op failed by injection.
func (s *Store) Failures(op Op) int64 { return s.failures[op].Load() }

// before counts a call, applies latency, and decides whether it fails now;
// it returns the error to report, or nil to go on.
func (s *Store) before(ctx context.Context, op Op, key string) error {
	s.calls[op].Add(1)
	s.mu.Lock()
	lat := s.latency
	s.mu.Unlock()
	if lat > 0 {
		t := time.NewTimer(lat)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("faultstore: %s %q: %w", op, key, ctx.Err())
		case <-t.C:
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.down:
		return s.injected(op, key, "store down")
	case s.failNext[op] > 0:
		s.failNext[op]--
		return s.injected(op, key, "failed call")
	}
	return nil
}

// after reports whether a call that reached the inner store should report
// failure anyway.
func (s *Store) after(op Op, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAfter[op] > 0 {
		s.failAfter[op]--
		return s.injected(op, key, "response lost")
	}
	return nil
}

// injected builds an injected error; s.mu is held.
func (s *Store) injected(op Op, key, what string) error {
	s.failures[op].Add(1)
	kind := s.err
	if kind == nil {
		kind = tier.ErrUnavailable
	}
	return fmt.Errorf("faultstore: %s %q: %s: %w (%w)", op, key, what, kind, ErrInjected)
}

// Put forwards to the inner store unless a fault is programmed.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := s.before(ctx, OpPut, key); err != nil {
		return err
	}
	if err := s.inner.Put(ctx, key, r, size); err != nil {
		return err
	}
	return s.after(OpPut, key)
}

// PutIfAbsent forwards to the inner store unless a fault is programmed.
func (s *Store) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := s.before(ctx, OpPutIfAbsent, key); err != nil {
		return err
	}
	if err := s.inner.PutIfAbsent(ctx, key, r, size); err != nil {
		return err
	}
	return s.after(OpPutIfAbsent, key)
}

// GetRange forwards to the inner store unless a fault is programmed; with a
// GetHook the range is read whole and passed through the hook.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := s.before(ctx, OpGetRange, key); err != nil {
		return nil, err
	}
	rc, err := s.inner.GetRange(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	if err := s.after(OpGetRange, key); err != nil {
		rc.Close()
		return nil, err
	}
	s.mu.Lock()
	hook := s.hook
	s.mu.Unlock()
	if hook == nil {
		return rc, nil
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(hook(key, off, data))), nil
}

// Stat forwards to the inner store unless a fault is programmed.
func (s *Store) Stat(ctx context.Context, key string) (tier.ObjectInfo, error) {
	if err := s.before(ctx, OpStat, key); err != nil {
		return tier.ObjectInfo{}, err
	}
	info, err := s.inner.Stat(ctx, key)
	if err != nil {
		return tier.ObjectInfo{}, err
	}
	return info, s.after(OpStat, key)
}

// List forwards to the inner store unless a fault is programmed; an
// injected failure is yielded before any object (FailNext) or after the
// last one (FailNextAfter).
func (s *Store) List(ctx context.Context, prefix, startAfter string) iter.Seq2[tier.ObjectInfo, error] {
	return func(yield func(tier.ObjectInfo, error) bool) {
		if err := s.before(ctx, OpList, prefix); err != nil {
			yield(tier.ObjectInfo{}, err)
			return
		}
		for info, err := range s.inner.List(ctx, prefix, startAfter) {
			if !yield(info, err) || err != nil {
				return
			}
		}
		if err := s.after(OpList, prefix); err != nil {
			yield(tier.ObjectInfo{}, err)
		}
	}
}

// Delete forwards to the inner store unless a fault is programmed.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.before(ctx, OpDelete, key); err != nil {
		return err
	}
	if err := s.inner.Delete(ctx, key); err != nil {
		return err
	}
	return s.after(OpDelete, key)
}

// FlipBit is a GetHook that flips one bit in the middle of every non-empty
// range read.
func FlipBit(_ string, _ int64, data []byte) []byte {
	if len(data) == 0 {
		return data
	}
	out := bytes.Clone(data)
	out[len(out)/2] ^= 0x10
	return out
}

// Truncate returns a GetHook that keeps at most n bytes of every range read.
func Truncate(n int) GetHook {
	return func(_ string, _ int64, data []byte) []byte {
		if len(data) > n {
			return data[:n]
		}
		return data
	}
}
