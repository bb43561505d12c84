package store

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
	"golang.org/x/sys/unix"
)

// TestDiskFull fills a small tmpfs until appends fail, checks that nothing
// acknowledged is harmed and that appends work again once space returns.
func TestDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	// Leave the store room for exactly a few segments, then fill the rest.
	filler := filepath.Join(mnt, "filler")
	cfg := testConfig(filepath.Join(mnt, "store"))
	cfg.SegmentSize = 512 << 10
	cfg.IndexSlots, cfg.IndexEntries = 64, 128 // small index files
	s := openTest(t, cfg)
	defer s.Close()
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := preallocate(f, 2<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var acked []remoting.MessageExt
	var full error
	for i := 0; i < 100000 && full == nil; i++ {
		m := []remoting.MessageExt{testMsg("full", int32(i%2), i, 1000)}
		if err := s.Append(context.Background(), m); err != nil {
			full = err
			break
		}
		acked = append(acked, m[0])
	}
	if !errors.Is(full, ErrDiskFull) {
		t.Fatalf("appending until the disk is full: err = %v, want ErrDiskFull", full)
	}
	t.Logf("disk full after %d messages: %v", len(acked), full)
	// Still full: appends keep failing cleanly, reads work.
	if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("full", 0, -1, 1000)}); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("second append on a full disk: %v", err)
	}
	check := func(s *Store, extra int) {
		t.Helper()
		got := len(readAll(t, s, "full", 0)) + len(readAll(t, s, "full", 1))
		if got != len(acked)+extra {
			t.Fatalf("read %d messages, want %d", got, len(acked)+extra)
		}
	}
	check(s, 0)
	// Space returns: appends work again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	m := []remoting.MessageExt{testMsg("full", 0, 1, 1000)}
	if err := s.Append(context.Background(), m); err != nil {
		t.Fatalf("append after space returned: %v", err)
	}
	check(s, 1)
	s.Close()
	s = openTest(t, cfg)
	check(s, 1)
}

// TestSlowDiskTimesOut makes fdatasync slow: Append returns ErrFlushTimeout
// within its deadline, and the message is stored once the sync completes.
func TestSlowDiskTimesOut(t *testing.T) {
	cfg := testConfig(t.TempDir())
	release := make(chan struct{})
	var slow atomic.Bool
	cfg.syncHook = func() error {
		if slow.Load() {
			<-release
		}
		return nil
	}
	s := openTest(t, cfg)
	defer s.Close()
	slow.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	m := []remoting.MessageExt{testMsg("slow", 0, 0, 100)}
	err := s.Append(ctx, m)
	if !errors.Is(err, ErrFlushTimeout) {
		t.Fatalf("append on a stuck disk: %v, want ErrFlushTimeout", err)
	}
	if m[0].QueueOffset != 0 || m[0].PhysicalOffset < 0 {
		t.Fatalf("timed-out append has no offsets: %+v", m[0])
	}
	slow.Store(false)
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for s.MaxOffset("slow", 0) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("message never became readable after the disk recovered")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSyncFailureIsSticky: after fdatasync fails the store refuses appends
// (their durability is unknowable, as fsyncgate taught), and a reopen
// recovers every message acknowledged before the failure.
func TestSyncFailureIsSticky(t *testing.T) {
	cfg := testConfig(t.TempDir())
	var fail atomic.Bool
	cfg.syncHook = func() error {
		if fail.Load() {
			return errors.New("injected EIO")
		}
		return nil
	}
	s := openTest(t, cfg)
	for i := 0; i < 50; i++ {
		if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("eio", 0, i, 200)}); err != nil {
			t.Fatal(err)
		}
	}
	fail.Store(true)
	if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("eio", 0, 50, 200)}); !errors.Is(err, ErrFailed) {
		t.Fatalf("append whose sync fails: %v, want ErrFailed", err)
	}
	fail.Store(false)
	if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("eio", 0, 51, 200)}); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after a failed sync: %v, want ErrFailed", err)
	}
	s.Close()
	s = openTest(t, cfg)
	defer s.Close()
	msgs := readAll(t, s, "eio", 0)
	if len(msgs) < 50 {
		t.Fatalf("%d messages after reopen, want the 50 acknowledged", len(msgs))
	}
	if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("eio", 0, 52, 200)}); err != nil {
		t.Fatalf("append after reopen: %v", err)
	}
}

// TestSegmentMaxAgeSeals: a quiet segment is sealed once it is old enough,
// and its unused preallocated space stops counting.
func TestSegmentMaxAgeSeals(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.SegmentSize = 8 << 20
	cfg.SegmentMaxAge = 50 * time.Millisecond
	cfg.CheckpointInterval = 10 * time.Millisecond
	sealed := make(chan SegmentInfo, 4)
	cfg.OnSeal = func(i SegmentInfo) { sealed <- i }
	s := openTest(t, cfg)
	defer s.Close()
	if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("age", 0, 0, 100)}); err != nil {
		t.Fatal(err)
	}
	select {
	case info := <-sealed:
		if info.Base != 0 || !info.Sealed || info.End != info.Base+info.Size {
			t.Fatalf("sealed segment info: %+v", info)
		}
		var st unix.Stat_t
		if err := unix.Stat(info.Path, &st); err != nil {
			t.Fatal(err)
		}
		if used := st.Blocks * 512; used > 1<<20 {
			t.Fatalf("sealed 8 MiB segment with one message still uses %d bytes of disk", used)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the aged segment was never sealed")
	}
	// An empty active segment is not sealed again and again.
	select {
	case info := <-sealed:
		t.Fatalf("empty segment sealed: %+v", info)
	case <-time.After(200 * time.Millisecond):
	}
	if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("age", 0, 1, 100)}); err != nil {
		t.Fatal(err)
	}
	if got := len(readAll(t, s, "age", 0)); got != 2 {
		t.Fatalf("read %d across the seal", got)
	}
}

// TestOnDispatchNotifies: long polling hangs on OnDispatch.
func TestOnDispatchNotifies(t *testing.T) {
	cfg := testConfig(t.TempDir())
	type note struct {
		topic string
		q     int32
		max   int64
	}
	notes := make(chan note, 16)
	cfg.OnDispatch = func(topic string, q int32, max int64) { notes <- note{topic, q, max} }
	s := openTest(t, cfg)
	defer s.Close()
	batch := []remoting.MessageExt{testMsg("n", 3, 0, 10), testMsg("n", 3, 1, 10)}
	if err := s.Append(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-notes:
		if n != (note{"n", 3, 2}) {
			t.Fatalf("notification %+v", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
	}
}

// TestRetention deletes by size only what CanDelete approves.
func TestRetention(t *testing.T) {
	for _, allow := range []bool{false, true} {
		cfg := testConfig(t.TempDir())
		cfg.RetentionBytes = 3 * cfg.SegmentSize
		cfg.CanDelete = func(SegmentInfo) bool { return allow }
		s := openTest(t, cfg)
		for i := 0; i < 2000; i++ {
			if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("ret", 0, i, 500)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.checkpointAt(time.Now(), true); err != nil {
			t.Fatal(err)
		}
		before := len(s.Segments())
		n, err := s.applyRetention()
		if err != nil {
			t.Fatal(err)
		}
		after := len(s.Segments())
		switch {
		case !allow && n != 0:
			t.Fatalf("deleted %d segments the tier did not approve", n)
		case allow && (after > 3 || n != before-after):
			t.Fatalf("retention kept %d of %d segments (deleted %d), want <= 3", after, before, n)
		}
		if got := len(readAll(t, s, "ret", 0)); int64(got) != 2000-s.MinOffset("ret", 0) {
			t.Fatalf("read %d from min offset %d", got, s.MinOffset("ret", 0))
		}
		s.Close()
	}
}
