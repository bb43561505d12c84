package store

import (
	"context"
	"encoding/binary"
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
