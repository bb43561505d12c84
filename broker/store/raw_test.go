package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// copyLog copies leader's log into follower from the follower's end up to
// the leader's end, the way replication does, and returns the chunks used.
func copyLog(t *testing.T, leader, follower *Store) int {
	t.Helper()
	ctx := context.Background()
	buf := make([]byte, 64<<10)
	chunks := 0
	off := follower.LogEnd()
	for off < leader.LogEnd() {
		n, next, err := leader.ReadLog(off, buf)
		if err != nil {
			t.Fatalf("ReadLog(%d): %v", off, err)
		}
		p, end, err := follower.AppendRaw(ctx, off, buf[:n])
		if err != nil {
			t.Fatalf("AppendRaw(%d, %d bytes): %v", off, n, err)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("wait for AppendRaw(%d): %v", off, err)
		}
		if end != next {
			t.Fatalf("AppendRaw(%d, %d bytes) ends at %d, ReadLog said next %d", off, n, end, next)
		}
		off = next
		chunks++
	}
	if got := follower.LogEnd(); got != leader.LogEnd() {
		t.Fatalf("follower log end %d, leader %d", got, leader.LogEnd())
	}
	return chunks
}

// sameLogs compares the two stores' segment files byte for byte up to end.
func sameLogs(t *testing.T, a, b *Store, end int64) {
	t.Helper()
	as, bs := a.Segments(), b.Segments()
	if len(as) != len(bs) {
		t.Fatalf("%d segments and %d", len(as), len(bs))
	}
	for i := range as {
		if as[i].Base != bs[i].Base || as[i].Sealed != bs[i].Sealed {
			t.Fatalf("segment %d: %+v and %+v", i, as[i], bs[i])
		}
		n := min(as[i].Size, end-as[i].Base)
		if n <= 0 {
			continue
		}
		x, y := readFilePrefix(t, as[i].Path, n), readFilePrefix(t, bs[i].Path, n)
		if !bytes.Equal(x, y) {
			for j := range x {
				if x[j] != y[j] {
					t.Fatalf("segment %d differs first at file position %d", as[i].Base, j)
				}
			}
		}
	}
}

func readFilePrefix(t *testing.T, path string, n int64) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b[:min(int64(len(b)), n)]
}

func TestReplicateLogByteForByte(t *testing.T) {
	ctx := context.Background()
	leader := openTest(t, testConfig(t.TempDir()))
	defer leader.Close()
	fdir := t.TempDir()
	follower := openTest(t, testConfig(fdir))
	defer func() { follower.Close() }()

	// Enough to fill several 256 KiB segments, over three topics, with
	// copies taken while the leader writes.
	total := 0
	for round := 0; round < 6; round++ {
		for i := 0; i < 150; i++ {
			msgs := []remoting.MessageExt{testMsg("a", int32(i%3), total, 500), testMsg("b", 0, total, 1200)}
			if err := leader.Append(ctx, msgs); err != nil {
				t.Fatal(err)
			}
			total++
		}
		if round == 3 {
			if err := leader.Seal(); err != nil { // an early, age-style seal
				t.Fatal(err)
			}
		}
		copyLog(t, leader, follower)
	}
	if len(leader.Segments()) < 4 {
		t.Fatalf("only %d segments: the test wants rolls", len(leader.Segments()))
	}
	end := leader.LogEnd()
	sameLogs(t, leader, follower, end)
	check := func(f *Store) {
		t.Helper()
		for _, q := range []struct {
			topic string
			id    int32
		}{{"a", 0}, {"a", 1}, {"a", 2}, {"b", 0}} {
			want, got := readAll(t, leader, q.topic, q.id), readAll(t, f, q.topic, q.id)
			if len(want) == 0 || !reflect.DeepEqual(want, got) {
				t.Fatalf("%s/%d: follower has %d messages, leader %d, or they differ", q.topic, q.id, len(got), len(want))
			}
		}
		// Offset message ids resolve on the follower.
		m := readAll(t, leader, "b", 0)[77]
		rec, err := f.ReadAt(m.PhysicalOffset)
		if err != nil {
			t.Fatalf("ReadAt on the follower: %v", err)
		}
		if got, _ := remoting.DecodeMessageExt(rec); !reflect.DeepEqual(got, m) {
			t.Fatalf("ReadAt(%d) on the follower: another record", m.PhysicalOffset)
		}
		if recs, err := f.QueryByKey("b", "key-77", 4, 0, time.Now().UnixMilli()+1000); err != nil || len(recs) != 1 {
			t.Fatalf("QueryByKey on the follower: %d records, %v", len(recs), err)
		}
	}
	check(follower)

	// A restarted follower recovers the same log and continues it.
	if err := follower.Close(); err != nil {
		t.Fatal(err)
	}
	follower = openTest(t, testConfig(fdir))
	if follower.LogEnd() != end {
		t.Fatalf("reopened follower ends at %d, want %d", follower.LogEnd(), end)
	}
	check(follower)
	for i := 0; i < 50; i++ {
		if err := leader.Append(ctx, []remoting.MessageExt{testMsg("c", 1, i, 3000)}); err != nil {
			t.Fatal(err)
		}
	}
	copyLog(t, leader, follower)
	sameLogs(t, leader, follower, leader.LogEnd())
	if got := readAll(t, follower, "c", 1); len(got) != 50 {
		t.Fatalf("follower has %d messages of c/1 after the restart, want 50", len(got))
	}
}

func TestAppendRawRefusesWhatDoesNotContinueTheLog(t *testing.T) {
	ctx := context.Background()
	leader := openTest(t, testConfig(t.TempDir()))
	defer leader.Close()
	for i := 0; i < 20; i++ {
		if err := leader.Append(ctx, []remoting.MessageExt{testMsg("t", 0, i, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64<<10)
	n, _, err := leader.ReadLog(0, buf)
	if err != nil || n == 0 {
		t.Fatalf("ReadLog: %d bytes, %v", n, err)
	}
	data := buf[:n]
	first := remoting.RecordSize(data) + recordOverhead

	t.Run("wrong offset", func(t *testing.T) {
		f := openTest(t, testConfig(t.TempDir()))
		defer f.Close()
		if _, _, err := f.AppendRaw(ctx, int64(first), data[first:]); !errors.Is(err, ErrLogMismatch) {
			t.Fatalf("got %v, want ErrLogMismatch", err)
		}
		if f.LogEnd() != 0 {
			t.Fatal("something was appended")
		}
	})
	t.Run("corrupt record", func(t *testing.T) {
		f := openTest(t, testConfig(t.TempDir()))
		defer f.Close()
		bad := bytes.Clone(data)
		bad[first+first/2] ^= 0x40 // inside the second record
		p, end, err := f.AppendRaw(ctx, 0, bad)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if end != int64(first) || f.LogEnd() != int64(first) {
			t.Fatalf("log ends at %d (%d), want only the first record (%d)", end, f.LogEnd(), first)
		}
	})
	t.Run("truncated record", func(t *testing.T) {
		f := openTest(t, testConfig(t.TempDir()))
		defer f.Close()
		if _, _, err := f.AppendRaw(ctx, 0, data[:first+10]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
	})
	t.Run("queue offset gap", func(t *testing.T) {
		f := openTest(t, testConfig(t.TempDir()))
		defer f.Close()
		// The follower already holds a message of t/0 at queue offset 0,
		// appended locally: the leader's record for queue offset 0 lands
		// at the right log offset but not at the right queue offset.
		other := openTest(t, testConfig(t.TempDir()))
		defer other.Close()
		if err := other.Append(ctx, []remoting.MessageExt{testMsg("u", 0, 0, 100)}); err != nil {
			t.Fatal(err)
		}
		n0, _, _ := other.ReadLog(0, buf)
		if _, _, err := f.AppendRaw(ctx, 0, bytes.Clone(buf[:n0])); err != nil {
			t.Fatal(err)
		}
		// Now a record of u/0 that claims queue offset 5.
		m := testMsg("u", 0, 1, 100)
		rec := make([]byte, m.Size()+recordOverhead)
		m.QueueOffset, m.PhysicalOffset = 5, f.LogEnd()
		k := m.Encode(rec)
		binary.BigEndian.PutUint32(rec[k:], crc32.Checksum(rec[:k], castagnoli))
		if _, _, err := f.AppendRaw(ctx, f.LogEnd(), rec); !errors.Is(err, ErrLogMismatch) {
			t.Fatalf("got %v, want ErrLogMismatch", err)
		}
	})
	t.Run("past the end", func(t *testing.T) {
		if _, _, err := leader.ReadLog(leader.LogEnd()+100, buf); !errors.Is(err, ErrLogMismatch) {
			t.Fatalf("ReadLog past the end: %v", err)
		}
		if n, next, err := leader.ReadLog(leader.LogEnd(), buf); n != 0 || next != leader.LogEnd() || err != nil {
			t.Fatalf("ReadLog at the end: %d, %d, %v", n, next, err)
		}
		if _, _, err := leader.ReadLog(0, buf[:100]); err == nil {
			t.Fatal("ReadLog into a buffer smaller than a record: no error")
		}
	})
}

func TestWaitLogEnd(t *testing.T) {
	s := openTest(t, testConfig(t.TempDir()))
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan int64, 1)
	go func() {
		e, _ := s.WaitLogEnd(ctx, 0)
		got <- e
	}()
	if err := s.Append(ctx, []remoting.MessageExt{testMsg("t", 0, 0, 10)}); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e != s.LogEnd() || e == 0 {
			t.Fatalf("WaitLogEnd returned %d, log end %d", e, s.LogEnd())
		}
	case <-ctx.Done():
		t.Fatal("WaitLogEnd did not return after an append")
	}
	short, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	if _, err := s.WaitLogEnd(short, s.LogEnd()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitLogEnd with nothing appended: %v", err)
	}
}

func TestOpenTruncated(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := testConfig(dir)
	s := openTest(t, cfg)
	for i := 0; i < 100; i++ {
		if err := s.Append(ctx, []remoting.MessageExt{testMsg("t", int32(i%2), i, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	cut := s.LogEnd()
	keep := []int64{s.MaxOffset("t", 0), s.MaxOffset("t", 1)}
	for i := 100; i < 700; i++ { // on into later segments
		if err := s.Append(ctx, []remoting.MessageExt{testMsg("t", int32(i%2), i, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.Segments()) < 3 {
		t.Fatalf("%d segments; the test wants the cut in an earlier one", len(s.Segments()))
	}
	s.Close()

	bad := cfg
	bad.Truncate, bad.TruncateTo = true, cut+7
	if _, err := Open(ctx, bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncating inside a record: %v", err)
	}
	tc := cfg
	tc.Truncate, tc.TruncateTo = true, cut
	s = openTest(t, tc)
	if s.LogEnd() != cut || len(s.Segments()) != 1 {
		t.Fatalf("truncated store ends at %d with %d segments, want %d and 1", s.LogEnd(), len(s.Segments()), cut)
	}
	for q := range 2 {
		if got := s.MaxOffset("t", int32(q)); got != keep[q] {
			t.Fatalf("queue %d: %d messages after truncation, want %d", q, got, keep[q])
		}
	}
	if recs, _ := s.QueryByKey("t", "key-500", 4, 0, time.Now().UnixMilli()+1000); len(recs) != 0 {
		t.Fatal("a truncated message is still found by key")
	}
	// The log goes on from the cut, and a plain reopen keeps it so.
	for i := 0; i < 10; i++ {
		if err := s.Append(ctx, []remoting.MessageExt{testMsg("t", 0, 1000+i, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	end := s.LogEnd()
	s.Close()
	s = openTest(t, cfg)
	defer s.Close()
	if s.LogEnd() != end || s.MaxOffset("t", 0) != keep[0]+10 {
		t.Fatalf("reopened: end %d (want %d), queue 0 has %d (want %d)", s.LogEnd(), end, s.MaxOffset("t", 0), keep[0]+10)
	}
	got := readAll(t, s, "t", 0)
	if m := got[len(got)-1]; !bytes.HasPrefix(m.Body, []byte("t/0/1009|")) || m.QueueOffset != keep[0]+9 {
		t.Fatalf("last message %q at %d", m.Body[:12], m.QueueOffset)
	}
}
