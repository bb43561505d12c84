package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
	"golang.org/x/sys/unix"
)

func TestAppendReadReopen(t *testing.T) {
	for _, mode := range []FlushMode{FlushSync, FlushAsync} {
		t.Run(mode.String(), func(t *testing.T) {
			base := runtime.NumGoroutine()
			dir := t.TempDir()
			cfg := testConfig(dir)
			cfg.Flush = mode
			var seals atomic.Int32
			cfg.OnSeal = func(SegmentInfo) { seals.Add(1) }
			s := openTest(t, cfg)
			const writers, perWriter, queues = 8, 250, 4
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; i < perWriter; i++ {
						n := w*perWriter + i
						m := []remoting.MessageExt{testMsg("T", int32(n%queues), n, 100+n%700)}
						if err := s.Append(context.Background(), m); err != nil {
							t.Errorf("append %d: %v", n, err)
							return
						}
					}
				}(w)
			}
			wg.Wait()
			if seals.Load() == 0 {
				t.Errorf("no segment was sealed; want rolls with %d-byte segments", cfg.SegmentSize)
			}
			check := func(s *Store) {
				t.Helper()
				total := 0
				for q := int32(0); q < queues; q++ {
					msgs := readAll(t, s, "T", q)
					total += len(msgs)
					for i, m := range msgs {
						if m.QueueOffset != int64(i) || m.QueueID != q || m.Topic != "T" {
							t.Fatalf("queue %d entry %d: got topic %q queue %d offset %d", q, i, m.Topic, m.QueueID, m.QueueOffset)
						}
						var n int
						fmt.Sscanf(string(m.Body), "T/%d/%d|", new(int), &n)
						want := testMsg("T", q, n, 100+n%700)
						if !bytes.Equal(m.Body, want.Body) || !bytes.Equal(m.Properties, want.Properties) {
							t.Fatalf("queue %d offset %d: body/properties differ from message %d", q, i, n)
						}
					}
				}
				if total != writers*perWriter {
					t.Fatalf("read %d messages, want %d", total, writers*perWriter)
				}
			}
			check(s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			checkGoroutines(t, base)
			s = openTest(t, cfg)
			check(s)
			// Appends continue each queue's offsets after a reopen.
			m := []remoting.MessageExt{testMsg("T", 0, 99999, 10)}
			if err := s.Append(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			if want := int64(writers * perWriter / queues); m[0].QueueOffset != want {
				t.Fatalf("offset after reopen = %d, want %d", m[0].QueueOffset, want)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			checkGoroutines(t, base)
		})
	}
}

func TestBatchAppendIsContiguous(t *testing.T) {
	s := openTest(t, testConfig(t.TempDir()))
	defer s.Close()
	batch := make([]remoting.MessageExt, 10)
	for i := range batch {
		batch[i] = testMsg("B", 1, i, 50)
	}
	if err := s.Append(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	for i, m := range batch {
		if m.QueueOffset != int64(i) {
			t.Fatalf("message %d got offset %d", i, m.QueueOffset)
		}
		if i > 0 && m.PhysicalOffset != batch[i-1].PhysicalOffset+int64(batch[i-1].Size()+recordOverhead) {
			t.Fatalf("message %d not contiguous in the log", i)
		}
		rec, err := s.ReadAt(m.PhysicalOffset)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := remoting.DecodeMessageExt(rec)
		if !bytes.Equal(got.Body, m.Body) {
			t.Fatalf("ReadAt(%d) body mismatch", m.PhysicalOffset)
		}
	}
}

func TestRejectsInvalidMessages(t *testing.T) {
	cfg := testConfig(t.TempDir())
	s := openTest(t, cfg)
	defer s.Close()
	big := testMsg("T", 0, 0, cfg.MaxMessageSize)
	cases := map[string]struct {
		m    remoting.MessageExt
		want error
	}{
		"empty topic":    {remoting.MessageExt{QueueID: 0}, ErrInvalidMessage},
		"negative queue": {remoting.MessageExt{Topic: "T", QueueID: -1}, ErrInvalidMessage},
		"huge queue":     {remoting.MessageExt{Topic: "T", QueueID: MaxQueueID}, ErrInvalidMessage},
		"path topic":     {remoting.MessageExt{Topic: "../x"}, ErrInvalidMessage},
		"dotdot topic":   {remoting.MessageExt{Topic: ".."}, ErrInvalidMessage},
		"too large":      {big, ErrMessageTooLarge},
		"long props":     {remoting.MessageExt{Topic: "T", Properties: make([]byte, 40000)}, ErrInvalidMessage},
	}
	for name, c := range cases {
		err := s.Append(context.Background(), []remoting.MessageExt{c.m})
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
	if got := s.MaxOffset("T", 0); got != 0 {
		t.Fatalf("rejected messages were stored: max offset %d", got)
	}
}

func TestGetStatusesAndFilter(t *testing.T) {
	s := openTest(t, testConfig(t.TempDir()))
	defer s.Close()
	if r, _ := s.Get("none", 0, 0, 32, 1<<20, nil); r.Status != NoMatchedQueue {
		t.Fatalf("unknown queue: %v", r.Status)
	}
	for i := 0; i < 30; i++ {
		if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("F", 0, i, 20)}); err != nil {
			t.Fatal(err)
		}
	}
	tag1 := remoting.TagHash([]byte("tag1"))
	r, err := s.Get("F", 0, 0, 5, 1<<20, func(h int64) bool { return h == tag1 })
	if err != nil || r.Status != Found || len(r.Records) != 5 {
		t.Fatalf("filtered get: %v %v %d", err, r.Status, len(r.Records))
	}
	for _, rec := range r.Records {
		m, _ := remoting.DecodeMessageExt(rec)
		if v, _ := remoting.PropertyValue(m.Properties, remoting.PropTags); string(v) != "tag1" {
			t.Fatalf("filter let through %q", v)
		}
	}
	if r.NextOffset != 14 { // tag1 at 1,4,7,10,13
		t.Fatalf("next offset %d, want 14", r.NextOffset)
	}
	if r, _ := s.Get("F", 0, 30, 5, 1<<20, nil); r.Status != OffsetOverflowOne || r.NextOffset != 30 {
		t.Fatalf("caught up: %v next %d", r.Status, r.NextOffset)
	}
	if r, _ := s.Get("F", 0, 99, 5, 1<<20, nil); r.Status != OffsetOverflowBadly || r.NextOffset != 30 {
		t.Fatalf("overflow: %v next %d", r.Status, r.NextOffset)
	}
	if r, _ := s.Get("F", 0, 0, 32, 1, nil); len(r.Records) != 1 {
		t.Fatalf("maxBytes=1 must still return one record, got %d", len(r.Records))
	}
	none := func(int64) bool { return false }
	if r, _ := s.Get("F", 0, 0, 5, 1<<20, none); r.Status != NoMatchedMessage || r.NextOffset != 30 {
		t.Fatalf("nothing matches: %v next %d", r.Status, r.NextOffset)
	}
}

func TestQueryByKeyAndTime(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	s := openTest(t, cfg)
	var stamps []int64
	for i := 0; i < 40; i++ {
		m := []remoting.MessageExt{testMsg("K", int32(i%2), i, 30)}
		if err := s.Append(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		stamps = append(stamps, m[0].StoreTimestamp)
		if i == 19 {
			time.Sleep(3 * time.Millisecond) // a later store timestamp for the second half
		}
	}
	check := func(s *Store) {
		recs, err := s.QueryByKey("K", "key-7", 10, 0, 1<<62)
		if err != nil || len(recs) != 1 {
			t.Fatalf("query key-7: %v, %d records", err, len(recs))
		}
		if recs, _ := s.QueryByKey("K", "k3", 10, 0, 1<<62); len(recs) != 4 {
			t.Fatalf("query k3: %d records, want 4", len(recs))
		}
		if recs, _ := s.QueryByKey("K", "U00000033", 10, 0, 1<<62); len(recs) != 1 {
			t.Fatalf("query by unique key: %d records", len(recs))
		}
		if recs, _ := s.QueryByKey("other", "key-7", 10, 0, 1<<62); len(recs) != 0 {
			t.Fatalf("query in another topic found %d", len(recs))
		}
		off, err := s.OffsetForTime("K", 0, stamps[20])
		if err != nil || off != 10 {
			t.Fatalf("OffsetForTime(second half) = %d, %v; want 10", off, err)
		}
		if off, _ := s.OffsetForTime("K", 0, 0); off != 0 {
			t.Fatalf("OffsetForTime(0) = %d", off)
		}
		if off, _ := s.OffsetForTime("K", 0, 1<<62); off != 20 {
			t.Fatalf("OffsetForTime(future) = %d, want max 20", off)
		}
	}
	check(s)
	s.Close()
	s = openTest(t, cfg)
	defer s.Close()
	check(s)
}

// TestBufferedFallback runs the store where O_DIRECT is refused (simulated:
// this kernel's tmpfs accepts it) and with direct I/O disabled.
func TestBufferedFallback(t *testing.T) {
	orig := openFile
	t.Cleanup(func() { openFile = orig })
	openFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		if flag&unix.O_DIRECT != 0 {
			return nil, &os.PathError{Op: "open", Path: name, Err: unix.EINVAL}
		}
		return orig(name, flag, perm)
	}
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprint("disable=", disable), func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.DisableDirectIO = disable
			s := openTest(t, cfg)
			if s.Stats().DirectIO {
				t.Fatal("direct I/O in use")
			}
			for i := 0; i < 100; i++ {
				if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("T", 0, i, 3000)}); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			s = openTest(t, cfg)
			defer s.Close()
			if got := len(readAll(t, s, "T", 0)); got != 100 {
				t.Fatalf("read %d after reopen", got)
			}
		})
	}
}

func TestDirectIOOnDisk(t *testing.T) {
	s := openTest(t, testConfig(t.TempDir()))
	defer s.Close()
	if isTmpfs("/tmp") {
		t.Skip("/tmp is tmpfs")
	}
	if !s.Stats().DirectIO {
		t.Fatal("O_DIRECT not in use on a disk filesystem")
	}
}

func TestDeleteSegmentsOnlyWhenAllowedAndCheckpointed(t *testing.T) {
	cfg := testConfig(t.TempDir())
	var sealed []SegmentInfo
	var mu sync.Mutex
	cfg.OnSeal = func(i SegmentInfo) { mu.Lock(); sealed = append(sealed, i); mu.Unlock() }
	s := openTest(t, cfg)
	defer s.Close()
	for i := 0; i < 2000; i++ {
		if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("D", 0, i, 400)}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.DeleteSegments(func(SegmentInfo) bool { return false }); n != 0 {
		t.Fatalf("deleted %d against the predicate", n)
	}
	if err := s.checkpointAt(time.Now(), true); err != nil {
		t.Fatal(err)
	}
	segs := s.Segments()
	n, err := s.DeleteSegments(func(i SegmentInfo) bool { return i.Base < segs[2].Base })
	if err != nil || n != 2 {
		t.Fatalf("deleted %d, %v; want 2", n, err)
	}
	minOff := s.MinOffset("D", 0)
	if minOff == 0 {
		t.Fatal("min offset did not move after deleting segments")
	}
	if r, _ := s.Get("D", 0, 0, 1, 1<<20, nil); r.Status != OffsetTooSmall || r.NextOffset != minOff {
		t.Fatalf("get below min: %v next %d, want OFFSET_TOO_SMALL %d", r.Status, r.NextOffset, minOff)
	}
	msgs := readAll(t, s, "D", 0)
	if len(msgs) != 2000-int(minOff) || msgs[0].QueueOffset != minOff {
		t.Fatalf("after delete: %d messages from %d", len(msgs), msgs[0].QueueOffset)
	}
}

// TestStartOffsetAndQueueStart: an empty store told where the cold tier ends
// continues the log and each queue after it, and keeps doing so after a
// restart (the disk now decides).
func TestStartOffsetAndQueueStart(t *testing.T) {
	dir := t.TempDir()
	starts := map[string]int64{"T/0": 1000, "T/2": 77}
	cfg := Config{
		Dir:            dir,
		SegmentSize:    1 << 20,
		MaxMessageSize: 64 << 10,
		StartOffset:    5 << 20,
		QueueStart: func(topic string, id int32) int64 {
			return starts[fmt.Sprintf("%s/%d", topic, id)]
		},
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []remoting.MessageExt{testMsg("T", 0, 1, 10), testMsg("T", 1, 2, 10)}
	if err := s.Append(context.Background(), msgs[:1]); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(context.Background(), msgs[1:]); err != nil {
		t.Fatal(err)
	}
	if msgs[0].QueueOffset != 1000 || msgs[1].QueueOffset != 0 {
		t.Fatalf("queue offsets %d, %d; want 1000, 0", msgs[0].QueueOffset, msgs[1].QueueOffset)
	}
	if msgs[0].PhysicalOffset != 5<<20 {
		t.Fatalf("log offset %d; want %d", msgs[0].PhysicalOffset, 5<<20)
	}
	if got := s.MinOffset("T", 0); got != 1000 {
		t.Fatalf("MinOffset = %d, want 1000", got)
	}
	r, err := s.Get("T", 0, 1000, 10, 1<<20, nil)
	if err != nil || r.Status != Found || len(r.Records) != 1 {
		t.Fatalf("Get: %v %v %d", err, r.Status, len(r.Records))
	}
	if r, _ := s.Get("T", 0, 5, 10, 1<<20, nil); r.Status != OffsetTooSmall {
		t.Fatalf("Get below the start: %v, want OffsetTooSmall", r.Status)
	}
	if err := s.EnsureQueue("T", 2); err != nil { // started at 77, never written
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened with no help (the tier unreachable), and once more after a
	// crash-like loss of the checkpoint: the starts hold.
	cfg.StartOffset, cfg.QueueStart = 0, nil
	for _, f := range []string{"", "checkpoint"} {
		if f != "" {
			if err := os.Remove(filepath.Join(dir, f)); err != nil {
				t.Fatal(err)
			}
		}
		s, err = Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.MaxOffset("T", 2); got != 77 {
			t.Fatalf("queue created at 77 reopens at %d", got)
		}
		if f == "" {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer s.Close()
	m := []remoting.MessageExt{testMsg("T", 0, 3, 10)}
	if err := s.Append(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if m[0].QueueOffset != 1001 || m[0].PhysicalOffset <= 5<<20 {
		t.Fatalf("after restart: queue offset %d log offset %d", m[0].QueueOffset, m[0].PhysicalOffset)
	}
}
