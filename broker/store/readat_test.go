package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/strata-mq/strata/remoting"
)

// TestGotRecordIsReadableByOffset checks that a record a queue read
// returns can be read by its log offset at once: a consumer sends a
// failed message back by log offset right after pulling it.
func TestGotRecordIsReadableByOffset(t *testing.T) {
	for _, flush := range []FlushMode{FlushSync, FlushAsync} {
		t.Run(flush.String(), func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.Flush = flush
			s := openTest(t, cfg)
			defer s.Close()
			const n = 500
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := range n {
					if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("t", 0, i, 64)}); err != nil {
						t.Errorf("append %d: %v", i, err)
						return
					}
				}
			})
			defer wg.Wait() // before Close, also when the test fails
			for off := int64(0); off < n; {
				r, err := s.Get("t", 0, off, 32, 1<<20, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, rec := range r.Records {
					logOff := int64(binary.BigEndian.Uint64(rec[remoting.OffPhysicalOffset:]))
					if _, err := s.ReadAt(logOff); err != nil {
						t.Fatalf("queue offset %d returned by Get: ReadAt(%d): %v", off, logOff, err)
					}
					off++
				}
			}
		})
	}
}

// TestKeyQueryAfterAppend: keys are indexed off the commit path, yet a
// query by key finds every message acknowledged before it.
func TestKeyQueryAfterAppend(t *testing.T) {
	s := openTest(t, testConfig(t.TempDir()))
	defer s.Close()
	for i := range 300 {
		m := testMsg("kq", 0, i, 64)
		if err := s.Append(context.Background(), []remoting.MessageExt{m}); err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("U%08d", i)
		recs, err := s.QueryByKey("kq", key, 1, 0, math.MaxInt64)
		if err != nil || len(recs) != 1 {
			t.Fatalf("message %d: query by its unique key right after the append: %d records, %v", i, len(recs), err)
		}
	}
}
