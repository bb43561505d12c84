package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-mq/strata/remoting"
)

// TestPrewriteLosesNothing: with the prewriter writing zeros ahead of the
// flusher in small segments (so chunks, rolls and age-driven seals that
// punch the rest of a segment all happen), concurrent appends come back
// whole and in order, and zeros were written.
func TestPrewriteLosesNothing(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.SegmentSize = 1 << 20
	cfg.SegmentMaxAge = 30 * time.Millisecond
	s := openTest(t, cfg)
	defer s.Close()
	if !s.Stats().DirectIO {
		t.Skip("the filesystem refuses O_DIRECT: no prewriting")
	}
	const writers, each = 8, 150
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				m := testMsg("pw", int32(w), i, 100+(i*37)%3000)
				if err := s.Append(context.Background(), []remoting.MessageExt{m}); err != nil {
					t.Errorf("append %d/%d: %v", w, i, err)
					return
				}
				if i%50 == 49 {
					time.Sleep(40 * time.Millisecond) // let an age seal happen
				}
			}
		})
	}
	wg.Wait()
	for w := range writers {
		got := readAll(t, s, "pw", int32(w))
		if len(got) != each {
			t.Fatalf("queue %d: %d messages, want %d", w, len(got), each)
		}
		for i, m := range got {
			want := testMsg("pw", int32(w), i, 100+(i*37)%3000)
			if !bytes.Equal(m.Body, want.Body) {
				t.Fatalf("queue %d message %d: body differs", w, i)
			}
		}
	}
	if st := s.Stats(); st.Prewritten == 0 {
		t.Errorf("no zeros prewritten: %+v", st)
	}
}

// TestPrewriteConvertsAhead: the blocks past the log end of the active
// segment become written blocks (SEEK_DATA finds them), where a
// preallocated file reports unwritten blocks as a hole.
func TestPrewriteConvertsAhead(t *testing.T) {
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	f, err := os.Create(probe)
	if err != nil {
		t.Fatal(err)
	}
	if err := preallocate(f, 4<<20); err != nil {
		t.Fatal(err)
	}
	_, err = unix.Seek(int(f.Fd()), 2<<20, unix.SEEK_DATA)
	f.Close()
	if !errors.Is(err, unix.ENXIO) {
		t.Skipf("this filesystem does not report preallocated blocks as a hole (SEEK_DATA: %v)", err)
	}
	cfg := testConfig(filepath.Join(dir, "store"))
	cfg.SegmentSize = 4 << 20
	s := openTest(t, cfg)
	defer s.Close()
	if !s.Stats().DirectIO {
		t.Skip("the filesystem refuses O_DIRECT: no prewriting")
	}
	if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("pw", 0, 0, 500)}); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(cfg.Dir, logDirName, segmentName(0))
	last := int64(4<<20) - 4096
	deadline := time.Now().Add(10 * time.Second)
	for {
		off, err := seekData(seg, last)
		if err == nil && off == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the end of the active segment is still unwritten: SEEK_DATA(%d) = %d, %v; %d bytes prewritten",
				last, off, err, s.Stats().Prewritten)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func seekData(path string, off int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	if err != nil {
		return 0, fmt.Errorf("seek_data: %w", err)
	}
	return n, nil
}
