package store

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"github.com/strata-mq/strata/remoting"
)

func TestTailCacheRing(t *testing.T) {
	c := newTailCache(100)
	log := make([]byte, 1000)
	for i := range log {
		log[i] = byte(rand.IntN(256))
	}
	off := 0
	for _, n := range []int{30, 50, 40, 99, 7, 60} { // wraps around several times
		c.add(int64(off), log[off:off+n])
		off += n
		for from := 0; from < off; from++ {
			for _, l := range []int{1, 10, 50, 100, 101} {
				dst := make([]byte, l)
				ok := c.read(int64(from), dst)
				want := from >= off-100 && from+l <= off
				if ok != want {
					t.Fatalf("after %d bytes: read(%d, %d) = %v, want %v", off, from, l, ok, want)
				}
				if ok && !bytes.Equal(dst, log[from:from+l]) {
					t.Fatalf("read(%d, %d) returned other bytes", from, l)
				}
			}
		}
	}
	// Bytes that do not continue the ring restart it.
	c.add(2000, log[:10])
	if c.read(int64(off-5), make([]byte, 5)) || !c.read(2000, make([]byte, 10)) {
		t.Fatal("a gap did not restart the ring")
	}
	// More than the ring holds keeps the newest bytes.
	c.add(2010, log[:250])
	dst := make([]byte, 100)
	if !c.read(2160, dst) || !bytes.Equal(dst, log[150:250]) || c.read(2159, dst) {
		t.Fatal("an oversized add did not keep exactly the newest bytes")
	}
}

// TestTailCacheReads: fresh records are read from memory, older ones from
// the segments once the ring has moved on, and both are the records
// written.
func TestTailCacheReads(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.TailCacheSize = 64 << 10
	s := openTest(t, cfg)
	defer s.Close()
	var want [][]byte
	for i := range 300 {
		m := testMsg("tc", 0, i, 50+(i*97)%900)
		if err := s.Append(context.Background(), []remoting.MessageExt{m}); err != nil {
			t.Fatal(err)
		}
		want = append(want, m.Body)
		if i%10 == 9 { // a consumer keeping up reads what was just written
			got := readAll(t, s, "tc", 0)[i-9:]
			if st := s.Stats(); st.TailReads == 0 {
				t.Fatalf("fresh records were not read from the tail cache: %+v", st)
			}
			for j, m := range got {
				if !bytes.Equal(m.Body, want[i-9+j]) {
					t.Fatalf("message %d differs", i-9+j)
				}
			}
		}
	}
	before := s.Stats().FileReads
	got := readAll(t, s, "tc", 0)
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i, m := range got {
		if !bytes.Equal(m.Body, want[i]) {
			t.Fatalf("message %d differs", i)
		}
	}
	if s.Stats().FileReads == before {
		t.Fatal("the oldest records, long out of a 64 KiB tail, were not read from the segments")
	}
}
