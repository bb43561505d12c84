package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/testlog"
	"github.com/strata-mq/strata/remoting"
)

// qref names one topic/queue.
type qref struct {
	topic string
	qid   int32
}

// fixRec is one record appended by a fixture.
type fixRec struct {
	q    qref
	msg  remoting.MessageExt // as appended: offsets, store time filled in
	size int                 // TOTALSIZE
}

func (r fixRec) off() int64 { return r.msg.PhysicalOffset }
func (r fixRec) end() int64 { return r.msg.PhysicalOffset + int64(r.size) + recordOverhead }

// logFixture is a closed store in dir whose records all live in its first
// segment (seg holds that segment's bytes).
type logFixture struct {
	dir     string
	cfg     Config
	recs    []fixRec
	queues  []qref
	seg     []byte
	segName string
}

var fixtureQueues = []qref{{"T", 0}, {"T", 1}, {"U", 3}}

// buildFixture appends one record per bodySizes entry (queue i%3), one
// append each, and closes the store.
func buildFixture(t testing.TB, dir string, bodySizes []int) *logFixture {
	t.Helper()
	fx := &logFixture{dir: dir, cfg: testConfig(dir), queues: fixtureQueues}
	s := openTest(t, fx.cfg)
	for i, bs := range bodySizes {
		q := fx.queues[i%len(fx.queues)]
		m := []remoting.MessageExt{testMsg(q.topic, q.qid, i, bs)}
		if err := s.Append(context.Background(), m); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		fx.recs = append(fx.recs, fixRec{q: q, msg: m[0], size: m[0].Size()})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fx.segName = filepath.Join("commitlog", segmentName(0))
	var err error
	if fx.seg, err = os.ReadFile(filepath.Join(dir, fx.segName)); err != nil {
		t.Fatal(err)
	}
	if last := fx.recs[len(fx.recs)-1]; last.end() > int64(len(fx.seg))-markerSize {
		t.Fatalf("fixture does not fit in one segment")
	}
	return fx
}

// clone copies the fixture's data directory into dst.
func (fx *logFixture) clone(t testing.TB, dst string) {
	t.Helper()
	if err := copyTree(fx.dir, dst); err != nil {
		t.Fatal(err)
	}
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// keptAfterZeroing returns how many leading records survive zeroing the
// segment from cut on: those that end by the cut, or whose bytes from the
// cut on were zero already (a CRC trailer ending in zero bytes).
func (fx *logFixture) keptAfterZeroing(cut int64) int {
	for i, r := range fx.recs {
		if r.end() <= cut {
			continue
		}
		if r.off() < cut && allZero(fx.seg[cut:r.end()]) {
			continue
		}
		return i
	}
	return len(fx.recs)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// logEnd is the log offset after the first n records.
func (fx *logFixture) logEnd(n int) int64 {
	if n == 0 {
		return 0
	}
	return fx.recs[n-1].end()
}

// expectQueue returns the fixture records of q among the first n, plus extra.
func (fx *logFixture) expectQueue(q qref, n int, extra []fixRec) []fixRec {
	var out []fixRec
	for _, r := range fx.recs[:n] {
		if r.q == q {
			out = append(out, r)
		}
	}
	for _, r := range extra {
		if r.q == q {
			out = append(out, r)
		}
	}
	return out
}

// checkStore verifies that every fixture queue of s holds exactly the first
// n fixture records (plus extra), intact and at their queue offsets, and
// that the log ends after them.
func (fx *logFixture) checkStore(t testing.TB, s *Store, n int, extra []fixRec, what string) {
	t.Helper()
	fx.checkQueues(t, s, n, extra, what)
	end := fx.logEnd(n)
	if len(extra) > 0 {
		end = extra[len(extra)-1].end()
	}
	if got := s.Stats().FlushedTo; got != end {
		t.Fatalf("%s: log ends at %d, want %d", what, got, end)
	}
}

// checkQueues is checkStore without the log-end check.
func (fx *logFixture) checkQueues(t testing.TB, s *Store, n int, extra []fixRec, what string) {
	t.Helper()
	for _, q := range fx.queues {
		want := fx.expectQueue(q, n, extra)
		got := readAll(t, s, q.topic, q.qid)
		if len(got) != len(want) {
			t.Fatalf("%s: %s/%d holds %d messages, want %d", what, q.topic, q.qid, len(got), len(want))
		}
		if mo := s.MaxOffset(q.topic, q.qid); mo != int64(len(want)) {
			t.Fatalf("%s: %s/%d max offset %d, want %d", what, q.topic, q.qid, mo, len(want))
		}
		for i, m := range got {
			w := want[i].msg
			if m.QueueOffset != int64(i) || w.QueueOffset != int64(i) || m.Topic != w.Topic || m.QueueID != w.QueueID ||
				m.PhysicalOffset != w.PhysicalOffset || m.StoreTimestamp != w.StoreTimestamp ||
				!bytes.Equal(m.Body, w.Body) || !bytes.Equal(m.Properties, w.Properties) {
				t.Fatalf("%s: %s/%d offset %d: got topic %q q%d qoff %d phys %d body %.20q; want qoff %d phys %d body %.20q",
					what, q.topic, q.qid, i, m.Topic, m.QueueID, m.QueueOffset, m.PhysicalOffset, m.Body,
					w.QueueOffset, w.PhysicalOffset, w.Body)
			}
		}
	}
}

// verifyRecovered runs the checks common to every damaged-log case on the
// store in dir: the first n fixture records survive and nothing else; a new
// append continues its queue densely at the log end; a reopen (full scan,
// checkpoint deleted) reads everything back.
func (fx *logFixture) verifyRecovered(t testing.TB, dir string, n int, what string) {
	t.Helper()
	cfg := fx.cfg
	cfg.Dir = dir
	st, err := os.Stat(filepath.Join(dir, fx.segName))
	if err != nil {
		t.Fatal(err)
	}
	segSize := st.Size() // smaller than configured when the test truncated it
	s := openTest(t, cfg)
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	fx.checkStore(t, s, n, nil, what)

	// A dropped record's unique key no longer finds anything; a kept one does.
	if n < len(fx.recs) {
		if recs, _ := s.QueryByKey(fx.recs[n].q.topic, fmt.Sprintf("U%08d", n), 4, 0, 1<<62); len(recs) != 0 {
			t.Fatalf("%s: query finds dropped record %d", what, n)
		}
	}
	if n > 0 {
		if recs, _ := s.QueryByKey(fx.recs[n-1].q.topic, fmt.Sprintf("U%08d", n-1), 4, 0, 1<<62); len(recs) != 1 {
			t.Fatalf("%s: query finds %d copies of kept record %d", what, len(recs), n-1)
		}
	}

	q := fx.queues[0]
	if n < len(fx.recs) {
		q = fx.recs[n].q // the queue that lost its last message
	}
	wantQOff := int64(len(fx.expectQueue(q, n, nil)))
	m := []remoting.MessageExt{testMsg(q.topic, q.qid, 900000+n, 11)}
	if err := s.Append(context.Background(), m); err != nil {
		t.Fatalf("%s: append after recovery: %v", what, err)
	}
	// The record goes at the log end, unless a segment file shorter than
	// configured (TestTornTailRealTruncate) has no room for it: then the
	// segment is sealed and the next one starts at its end.
	wantPhys := fx.logEnd(n)
	fits := wantPhys+int64(m[0].Size()+recordOverhead+markerSize) <= segSize
	if m[0].QueueOffset != wantQOff || (m[0].PhysicalOffset != wantPhys && (fits || m[0].PhysicalOffset != segSize)) {
		t.Fatalf("%s: append after recovery got queue offset %d at log %d; want %d at %d (or %d if the segment was sealed)",
			what, m[0].QueueOffset, m[0].PhysicalOffset, wantQOff, wantPhys, segSize)
	}
	extra := []fixRec{{q: q, msg: m[0], size: m[0].Size()}}
	fx.checkStore(t, s, n, extra, what+" (after append)")
	closed = true
	if err := s.Close(); err != nil {
		t.Fatalf("%s: close: %v", what, err)
	}

	// Full rescan: stale bytes past the new record must not come back.
	if err := os.Remove(filepath.Join(dir, ckptName)); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, cfg)
	defer s2.Close()
	fx.checkStore(t, s2, n, extra, what+" (reopened)")
}

// damage clones the fixture into a new directory and applies fn to the
// segment bytes (a copy of fx.seg), then deletes the checkpoint.
func (fx *logFixture) damage(t testing.TB, base string, fn func(seg []byte) []byte) string {
	t.Helper()
	dir, err := os.MkdirTemp(base, "case")
	if err != nil {
		t.Fatal(err)
	}
	fx.clone(t, dir)
	seg := fn(append([]byte(nil), fx.seg...))
	if err := os.WriteFile(filepath.Join(dir, fx.segName), seg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, ckptName)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// scratchDir returns a directory for many short-lived store copies: a
// tmpfs one when available (fdatasync and syncfs are nearly free there, so
// hundreds of recover cycles stay fast), else a t.TempDir.
func scratchDir(t testing.TB) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "strata-recovery-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// tailFixtureSizes: varied bodies, the last three small so that every byte
// of them can be cut in a few hundred cycles (one of them empty).
func tailFixtureSizes() []int {
	var sizes []int
	for i := 0; i < 33; i++ {
		sizes = append(sizes, (i*397)%1500+1)
	}
	return append(sizes, 0, 9, 33)
}

// TestTornTailEveryByte cuts the log at every byte of its last three
// records (zeroing the preallocated rest of the segment, as a torn write
// leaves it) and recovers each copy with a full scan.
func TestTornTailEveryByte(t *testing.T) {
	scratch := scratchDir(t)
	fx := buildFixture(t, filepath.Join(scratch, "fixture"), tailFixtureSizes())
	nrec := len(fx.recs)
	from, to := fx.recs[nrec-3].off(), fx.recs[nrec-1].end()
	step := int64(1)
	if testing.Short() {
		step = 13
	}
	started := time.Now()
	cycles := 0
	for cut := from; cut <= to; cut += step {
		what := fmt.Sprintf("cut at %d", cut)
		dir := fx.damage(t, scratch, func(seg []byte) []byte {
			clear(seg[cut:])
			return seg
		})
		fx.verifyRecovered(t, dir, fx.keptAfterZeroing(cut), what)
		os.RemoveAll(dir)
		cycles++
		if t.Failed() {
			return
		}
	}
	t.Logf("%d cut positions in [%d, %d] recovered in %v", cycles, from, to, time.Since(started).Round(time.Millisecond))
}

// TestTornTailOnDisk runs a few cuts on the test's own temp dir (a disk
// filesystem with O_DIRECT here), in case tmpfs hides something.
func TestTornTailOnDisk(t *testing.T) {
	base := t.TempDir()
	fx := buildFixture(t, filepath.Join(base, "fixture"), tailFixtureSizes())
	nrec := len(fx.recs)
	last := fx.recs[nrec-1]
	for _, cut := range []int64{fx.recs[nrec-3].off(), fx.recs[nrec-2].off() + 7, last.off() + 50, last.end() - 1, last.end()} {
		dir := fx.damage(t, base, func(seg []byte) []byte {
			clear(seg[cut:])
			return seg
		})
		fx.verifyRecovered(t, dir, fx.keptAfterZeroing(cut), fmt.Sprintf("on-disk cut at %d", cut))
	}
}

// TestTornTailRealTruncate shortens the segment file itself (os.Truncate)
// rather than zeroing it, at a few positions, with the same expectations as
// the zeroing cuts: every record that ends by the cut survives, and so does
// one whose bytes past the cut were zero (recovery re-extends the file with
// zeros, which restores them).
func TestTornTailRealTruncate(t *testing.T) {
	base := t.TempDir()
	fx := buildFixture(t, filepath.Join(base, "fixture"), tailFixtureSizes())
	nrec := len(fx.recs)
	last := fx.recs[nrec-1]
	for _, cut := range []int64{
		fx.recs[nrec-3].off(),
		fx.recs[nrec-3].off() + 3,
		fx.recs[nrec-2].off() + 60,
		last.off() + 5,
		last.end() - 1,
		last.end(),
		last.end() + 4,
		last.end() + markerSize,
		last.end() + 4096,
		int64(alignUp(int(last.end()), 4096)),
	} {
		what := fmt.Sprintf("truncate at %d", cut)
		t.Run(what, func(t *testing.T) {
			dir := fx.damage(t, base, func(seg []byte) []byte { return seg[:cut] })
			// Recovery extends the short file with zeros, so a cut inside
			// a CRC trailer whose cut-off bytes were zero (store-timestamp
			// dependent: 1 run in 256 for last.end()-1) keeps that record.
			fx.verifyRecovered(t, dir, fx.keptAfterZeroing(cut), what)
		})
	}
}

// TestTornTailTruncateAtRecordEnd: a segment file that ends exactly at
// a record's CRC trailer (or less than a marker's size after it) loses that
// complete, CRC-valid record: classify demands room for a blank marker
// after every record, measured against the file's own (shortened) size.
func TestTornTailTruncateAtRecordEnd(t *testing.T) {
	base := t.TempDir()
	fx := buildFixture(t, filepath.Join(base, "fixture"), tailFixtureSizes())
	nrec := len(fx.recs)
	for _, cut := range []int64{fx.recs[nrec-1].end(), fx.recs[nrec-1].end() + markerSize - 1} {
		dir := fx.damage(t, base, func(seg []byte) []byte { return seg[:cut] })
		cfg := fx.cfg
		cfg.Dir = dir
		s := openTest(t, cfg)
		r := fx.recs[nrec-1]
		if got := s.MaxOffset(r.q.topic, r.q.qid); got != r.msg.QueueOffset+1 {
			t.Errorf("segment cut at %d (%d bytes after the last record): %s/%d max offset %d, want %d (the last record is complete)",
				cut, cut-r.end(), r.q.topic, r.q.qid, got, r.msg.QueueOffset+1)
		}
		s.Close()
	}
}

// TestTornTailUnalignedSegmentThenRoll: recovery adopts a segment file
// whose size is not a multiple of the direct-I/O block (here: a file cut
// short) with that size. Direct-I/O writes of its last, partial block extend
// the file past the size the store uses, so the blank marker written when
// the segment fills says "rest = old size - pos" while the file is larger.
// A later full scan sees a marker that does not reach the end of the file,
// calls it corrupt, ends the log there and deletes every later segment:
// acknowledged messages are lost. Buffered I/O writes exact bytes and is not
// affected.
func TestTornTailUnalignedSegmentThenRoll(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprint("direct=", direct), func(t *testing.T) {
			base := t.TempDir()
			fx := buildFixture(t, filepath.Join(base, "fixture"), tailFixtureSizes())
			end := fx.logEnd(len(fx.recs))
			// The cut shares a 512-byte block with the log end and is not
			// itself aligned: the next block write crosses the file end.
			cut := int64(alignDown(int(end), 512)) + 500
			if cut < end+300 {
				cut += 512
			}
			dir := fx.damage(t, base, func(seg []byte) []byte { return seg[:cut] })
			cfg := fx.cfg
			cfg.Dir = dir
			cfg.DisableDirectIO = !direct
			s := openTest(t, cfg)
			if s.Stats().DirectIO != direct {
				t.Skipf("direct I/O = %v here", s.Stats().DirectIO)
			}
			q := qref{"R", 0}
			var acked int
			for i := 0; i < 40; i++ { // the first fits the shortened segment; then it rolls
				m := []remoting.MessageExt{testMsg(q.topic, q.qid, i, 100+i*40)}
				if err := s.Append(context.Background(), m); err != nil {
					t.Fatalf("append %d: %v", i, err)
				}
				acked++
			}
			segs := s.Segments()
			if len(segs) < 2 {
				t.Fatalf("segments %+v: want a roll", segs)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if st, _ := os.Stat(segs[0].Path); st.Size() != segs[0].Size {
				t.Logf("segment 0 file is now %d bytes; the store sealed it as %d", st.Size(), segs[0].Size)
			}
			os.Remove(filepath.Join(dir, ckptName)) // force a full scan
			s = openTest(t, cfg)
			defer s.Close()
			if got := len(readAll(t, s, q.topic, q.qid)); got != acked {
				t.Errorf("after a full rescan %s/%d holds %d of %d acknowledged messages (segments now %d, were %d)",
					q.topic, q.qid, got, acked, len(s.Segments()), len(segs))
			}
			fx.checkQueues(t, s, len(fx.recs), nil, "fixture records")
		})
	}
}

// recordFieldOffsets returns named byte offsets inside record r (IPv4
// hosts) for bit flips.
func recordFieldOffsets(r fixRec) map[string]int {
	bodyLenPos := remoting.OffBornHost + 8 + 8 + 8 + 4 + 8
	bodyPos := bodyLenPos + 4
	topicLenPos := bodyPos + len(r.msg.Body)
	propLenPos := topicLenPos + 1 + len(r.msg.Topic)
	fields := map[string]int{
		"totalsize hi": 0, "totalsize lo": 3, "magic": remoting.OffMagic + 1, "bodycrc": remoting.OffBodyCRC + 2,
		"queueid": remoting.OffQueueID + 3, "flag": remoting.OffFlag, "queueoffset": remoting.OffQueueOffset + 7,
		"physoffset": remoting.OffPhysicalOffset + 7, "sysflag": remoting.OffSysFlag + 3,
		"borntimestamp": remoting.OffBornTimestamp + 4, "bornhost": remoting.OffBornHost + 1,
		"bornport":       remoting.OffBornHost + 7,
		"storetimestamp": remoting.OffBornHost + 8 + 5, "storehost": remoting.OffBornHost + 16 + 2,
		"reconsume": remoting.OffBornHost + 24 + 3, "prepared": remoting.OffBornHost + 28 + 6,
		"bodylen hi": bodyLenPos, "bodylen lo": bodyLenPos + 3,
		"topiclen": topicLenPos, "topic": topicLenPos + 1, "proplen": propLenPos + 1,
		"props first": propLenPos + 2, "props last": r.size - 1,
		"crc0": r.size, "crc1": r.size + 1, "crc2": r.size + 2, "crc3": r.size + 3,
	}
	if len(r.msg.Body) > 0 {
		fields["body first"] = bodyPos
		fields["body last"] = bodyPos + len(r.msg.Body) - 1
	}
	return fields
}

// TestBitFlipInTail flips single bits in each field of the last three
// records: the log must end just before the damaged record.
func TestBitFlipInTail(t *testing.T) {
	scratch := scratchDir(t)
	fx := buildFixture(t, filepath.Join(scratch, "fixture"), tailFixtureSizes())
	nrec := len(fx.recs)
	cases := 0
	for k := nrec - 3; k < nrec; k++ {
		r := fx.recs[k]
		for name, at := range recordFieldOffsets(r) {
			bits := []uint{0, 7}
			if testing.Short() {
				bits = bits[:1]
			}
			for _, bit := range bits {
				pos := r.off() + int64(at)
				what := fmt.Sprintf("record %d %s (byte %d) bit %d", k, name, pos, bit)
				dir := fx.damage(t, scratch, func(seg []byte) []byte {
					seg[pos] ^= 1 << bit
					return seg
				})
				fx.verifyRecovered(t, dir, k, what)
				os.RemoveAll(dir)
				cases++
				if t.Failed() {
					return
				}
			}
		}
	}
	// Garbage right after the last record (in the zeroed rest) ends the log
	// there and loses nothing.
	end := fx.recs[nrec-1].end()
	for _, d := range []int64{0, 3, 4, 7, 100} {
		dir := fx.damage(t, scratch, func(seg []byte) []byte {
			seg[end+d] = 0x80
			return seg
		})
		fx.verifyRecovered(t, dir, nrec, fmt.Sprintf("garbage at end+%d", d))
		os.RemoveAll(dir)
		cases++
	}
	t.Logf("%d bit-flip cases", cases)
}

// TestBitFlipEarlyRecordTruncatesLog flips a bit in an early record and
// deletes the checkpoint. Documented behaviour: the log ends at the first
// corrupt record, so every later record, intact as it is, is dropped (and
// zeroed on disk: a second open cannot bring it back).
func TestBitFlipEarlyRecordTruncatesLog(t *testing.T) {
	base := t.TempDir()
	fx := buildFixture(t, filepath.Join(base, "fixture"), tailFixtureSizes())
	const k = 4
	pos := fx.recs[k].off() + int64(fx.recs[k].size/2)
	dir := fx.damage(t, base, func(seg []byte) []byte {
		seg[pos] ^= 0x10
		return seg
	})
	fx.verifyRecovered(t, dir, k, "early flip")
	// The bytes after the corrupt record are gone from the segment.
	seg, err := os.ReadFile(filepath.Join(dir, fx.segName))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(seg[fx.recs[k+1].off():fx.recs[k+1].end()], fx.seg[fx.recs[k+1].off():fx.recs[k+1].end()]) {
		t.Fatalf("record %d after the corrupt one is still on disk", k+1)
	}
}

// TestBitFlipEarlyRecordWithCheckpoint: with the checkpoint present the
// scan starts past the damaged record, so recovery does not see it: every
// record stays, and reading the damaged one fails its CRC check.
func TestBitFlipEarlyRecordWithCheckpoint(t *testing.T) {
	base := t.TempDir()
	fx := buildFixture(t, filepath.Join(base, "fixture"), tailFixtureSizes())
	const k = 4
	dir := filepath.Join(base, "copy")
	fx.clone(t, dir)
	seg := append([]byte(nil), fx.seg...)
	seg[fx.recs[k].off()+int64(fx.recs[k].size/2)] ^= 0x10
	if err := os.WriteFile(filepath.Join(dir, fx.segName), seg, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fx.cfg
	cfg.Dir = dir
	s := openTest(t, cfg)
	defer s.Close()
	r := fx.recs[k]
	if mo := s.MaxOffset(r.q.topic, r.q.qid); mo != int64(len(fx.expectQueue(r.q, len(fx.recs), nil))) {
		t.Fatalf("max offset %d", mo)
	}
	if _, err := s.Get(r.q.topic, r.q.qid, r.msg.QueueOffset, 1, 1<<20, nil); err == nil {
		t.Fatal("reading the damaged record succeeded")
	}
	if _, err := s.ReadAt(r.off()); err == nil {
		t.Fatal("ReadAt of the damaged record succeeded")
	}
	if _, err := s.ReadAt(fx.recs[k+1].off()); err != nil {
		t.Fatalf("ReadAt of the next record: %v", err)
	}
}

// TestBitFlipFirstSegmentRefusesToDropLaterSegments: a corrupt record in
// the first segment, found by a full scan, is mid-log damage (later
// segments hold data), so Open refuses rather than truncate acknowledged
// messages; once the operator moves the later segments away, recovery
// truncates at the damage and saves the discarded bytes.
func TestBitFlipFirstSegmentRefusesToDropLaterSegments(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	s := openTest(t, cfg)
	var first []remoting.MessageExt
	for i := 0; len(s.Segments()) < 3; i++ {
		m := []remoting.MessageExt{testMsg("S", 0, i, 2000)}
		if err := s.Append(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		if i < 10 {
			first = append(first, m[0])
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segPath := filepath.Join(dir, "commitlog", segmentName(0))
	f, err := os.OpenFile(segPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := first[5].PhysicalOffset + 200
	var b [1]byte
	f.ReadAt(b[:], at)
	b[0] ^= 1
	f.WriteAt(b[:], at)
	f.Close()
	os.Remove(filepath.Join(dir, ckptName))
	if _, err := Open(context.Background(), cfg); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with mid-log damage: %v, want ErrCorrupt", err)
	}
	bases, _ := listSegments(filepath.Join(dir, "commitlog"))
	if len(bases) < 3 {
		t.Fatalf("refused Open still deleted segments: %d left", len(bases))
	}
	for _, b := range bases[1:] {
		p := filepath.Join(dir, "commitlog", segmentName(b))
		if err := os.Rename(p, p+".moved"); err != nil {
			t.Fatal(err)
		}
	}
	s = openTest(t, cfg)
	defer s.Close()
	if got := len(readAll(t, s, "S", 0)); got != 5 {
		t.Fatalf("after a flip in record 5 the queue holds %d messages, want 5", got)
	}
	if segs := s.Segments(); len(segs) != 1 {
		t.Fatalf("%d segments remain, want 1", len(segs))
	}
	q, err := os.ReadDir(filepath.Join(dir, "commitlog", "quarantine"))
	if err != nil || len(q) != 1 {
		t.Fatalf("discarded tail not saved: %v %v", q, err)
	}
}

var recoveredLine = regexp.MustCompile(`msg=recovered .*\bscanned_bytes=(\d+) checkpoint=(\w+)`)

// openLogged opens the store with a logger capturing its output and
// returns the scanned_bytes and checkpoint values of its "recovered" line.
func openLogged(t testing.TB, cfg Config) (*Store, int64, bool) {
	t.Helper()
	var buf testlog.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	s := openTest(t, cfg)
	m := recoveredLine.FindStringSubmatch(buf.String())
	if m == nil {
		s.Close()
		t.Fatalf("no recovered line in the log:\n%s", buf.String())
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return s, n, m[2] == "true"
}

// TestCleanRestartDoesNotRescan: a reopen after Close scans nothing; after
// the checkpoint is deleted it scans every record.
func TestCleanRestartDoesNotRescan(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	s, scanned, hasCkpt := openLogged(t, cfg)
	if scanned != 0 || hasCkpt {
		t.Fatalf("fresh store: scanned %d, checkpoint %v", scanned, hasCkpt)
	}
	var total int64
	for i := 0; i < 300; i++ { // more than one segment
		m := []remoting.MessageExt{testMsg("C", int32(i%2), i, 1500)}
		if err := s.Append(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		total += int64(m[0].Size() + recordOverhead)
	}
	if len(s.Segments()) < 2 {
		t.Fatal("expected several segments")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		s, scanned, hasCkpt = openLogged(t, cfg)
		if scanned != 0 || !hasCkpt {
			t.Fatalf("clean restart %d: scanned_bytes=%d checkpoint=%v; want 0, true", round, scanned, hasCkpt)
		}
		if n := len(readAll(t, s, "C", 0)) + len(readAll(t, s, "C", 1)); n != 300 {
			t.Fatalf("clean restart %d: %d messages", round, n)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(dir, ckptName))
	s, scanned, hasCkpt = openLogged(t, cfg)
	defer s.Close()
	if scanned != total || hasCkpt {
		t.Fatalf("without checkpoint: scanned_bytes=%d checkpoint=%v; want %d, false", scanned, hasCkpt, total)
	}
	if n := len(readAll(t, s, "C", 0)) + len(readAll(t, s, "C", 1)); n != 300 {
		t.Fatalf("after full scan: %d messages", n)
	}
}

var (
	fuzzStoreHost = netip.MustParseAddrPort("127.0.0.1:10911")
	fuzzV6Host    = netip.MustParseAddrPort("[2001:db8::5]:1234")
)

// encodeAt encodes m as it would be stored at log offset off, with its CRC
// trailer.
func encodeAt(m remoting.MessageExt, off, qoff int64) []byte {
	m.PhysicalOffset, m.QueueOffset = off, qoff
	m.StoreTimestamp = 1700000000999
	m.StoreHost = fuzzStoreHost
	b := make([]byte, m.Size()+recordOverhead)
	n := m.Encode(b)
	binary.BigEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
	return b
}

// FuzzRecovery overwrites the log from the end of its valid data, or from a
// point inside its last record chosen by the fuzzer, with fuzz bytes;
// deletes the checkpoint and reopens. Recovery must not panic or hang, must
// keep every record before the overwritten region, and the store must take
// a new append at the log end and read back consistently after a rescan.
//
// Each iteration opens a store twice, so it runs tens of times per second
// per worker; Go minimizes every new-coverage input for up to
// -fuzzminimizetime (default 60s), which stalls short campaigns. Run it
// with e.g. -fuzzminimizetime 2s.
//
// mode bit 0 makes the harness repair the fuzz bytes into a record whose
// CRC trailer matches (so the fuzzer reaches parseRecord and the queue
// checks); bit 1 also sets its physical offset; bit 2 its queue offset to
// the next one of its queue; bit 3 writes a blank marker after the bytes.
func FuzzRecovery(f *testing.F) {
	root := scratchDir(f)
	fx := buildFixture(f, filepath.Join(root, "fixture"), []int{40, 0, 300, 7, 120, 25})
	last := fx.recs[len(fx.recs)-1]
	next := map[qref]int64{}
	for _, r := range fx.recs {
		next[r.q] = r.msg.QueueOffset + 1
	}
	f.Add([]byte{}, uint16(0), uint8(0))
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, uint16(0), uint8(0))
	f.Add([]byte{0xDA, 0xA3, 0x20, 0xA7}, uint16(4), uint8(0))
	f.Add(encodeAt(testMsg("T", 0, 77, 20), last.end(), next[qref{"T", 0}]), uint16(0), uint8(0))
	f.Add(encodeAt(testMsg("T", 1, 78, 5), last.end(), next[qref{"T", 1}]), uint16(0), uint8(7))
	f.Add(encodeAt(testMsg("NEW", 9, 79, 5), last.end(), 0), uint16(0), uint8(15))
	f.Add(encodeAt(testMsg("T", 1, 78, 5), last.end(), 5), uint16(0), uint8(1))
	f.Add(encodeAt(testMsg(last.q.topic, last.q.qid, 80, 5), last.off(), last.msg.QueueOffset), uint16(last.size+recordOverhead), uint8(0))
	f.Add(fx.seg[last.off()+10:last.end()], uint16(last.size+recordOverhead-10), uint8(0))
	f.Add([]byte{0, 0, 0, 1, 0xCB, 0xD4, 0x31, 0x94}, uint16(0), uint8(0))
	segSize := int64(len(fx.seg))

	f.Fuzz(func(t *testing.T, data []byte, back uint16, mode uint8) {
		// A hang is a failure: crash with every goroutine's stack, so the
		// fuzzer records the input.
		watchdog := time.AfterFunc(15*time.Second, func() {
			buf := make([]byte, 1<<20)
			panic(fmt.Sprintf("FuzzRecovery: iteration hung for 15s; goroutines:\n%s", buf[:runtime.Stack(buf, true)]))
		})
		defer watchdog.Stop()
		if len(data) > 512 { // room for a few records; keeps minimizing cheap
			data = data[:512]
		}
		// Overwrite from pos: the end of the valid data, or back bytes into
		// the last record.
		pos := last.end() - int64(back)%int64(last.size+recordOverhead+1)
		data = append([]byte(nil), data...)
		if mode&1 != 0 && len(data) >= remoting.MinRecordSize+recordOverhead {
			total := int(binary.BigEndian.Uint32(data))
			if total < remoting.MinRecordSize || total > len(data)-recordOverhead {
				total = len(data) - recordOverhead
				binary.BigEndian.PutUint32(data, uint32(total))
			}
			binary.BigEndian.PutUint32(data[4:], remoting.MessageMagic)
			if mode&2 != 0 {
				binary.BigEndian.PutUint64(data[remoting.OffPhysicalOffset:], uint64(pos))
			}
			if mode&4 != 0 {
				if v, err := remoting.ParseRecordFields(data[:total]); err == nil {
					q := qref{string(v.Topic), v.QueueID}
					qo := next[q]
					if pos < last.end() && q == last.q {
						qo-- // the last record is being overwritten
					}
					binary.BigEndian.PutUint64(data[remoting.OffQueueOffset:], uint64(qo))
				}
			}
			binary.BigEndian.PutUint32(data[total:], crc32.Checksum(data[:total], castagnoli))
		}
		if max := segSize - pos; int64(len(data)) > max {
			data = data[:max]
		}
		dir, err := os.MkdirTemp(root, "case")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		fx.clone(t, dir)
		seg := append([]byte(nil), fx.seg...)
		copy(seg[pos:], data)
		if mode&8 != 0 {
			if mp := pos + int64(len(data)); mp+markerSize <= segSize {
				putMarker(seg[mp:], segSize-mp)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fx.segName), seg, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, ckptName))

		// Records that end before pos must survive, plus the last one if
		// the fuzz bytes happen to leave it unchanged.
		keep := 0
		for keep < len(fx.recs) && (fx.recs[keep].end() <= pos ||
			bytes.Equal(seg[fx.recs[keep].off():fx.recs[keep].end()], fx.seg[fx.recs[keep].off():fx.recs[keep].end()])) {
			keep++
		}
		cfg := fx.cfg
		cfg.Dir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := Open(ctx, cfg)
		if err != nil {
			t.Fatalf("open after overwrite at %d: %v", pos, err)
		}
		defer func() { s.Close() }()
		before := snapshotQueues(t, s)
		for _, q := range fx.queues {
			got := before[q]
			want := fx.expectQueue(q, keep, nil)
			if len(got) < len(want) {
				t.Fatalf("%s/%d holds %d messages, want at least %d", q.topic, q.qid, len(got), len(want))
			}
			for i, w := range want {
				if !bytes.Equal(got[i], fx.seg[w.off():w.off()+int64(w.size)]) {
					t.Fatalf("%s/%d offset %d differs from the original record", q.topic, q.qid, i)
				}
			}
		}
		end := s.Stats().FlushedTo
		if end < fx.logEnd(keep) || end > segSize {
			t.Fatalf("log ends at %d, before the kept records' end %d", end, fx.logEnd(keep))
		}
		q := fx.queues[1]
		wantQ := s.MaxOffset(q.topic, q.qid)
		m := []remoting.MessageExt{testMsg(q.topic, q.qid, 424242, 9)}
		if err := s.Append(context.Background(), m); err != nil {
			t.Fatalf("append after recovery: %v", err)
		}
		if m[0].QueueOffset != wantQ {
			t.Fatalf("append got queue offset %d, want %d", m[0].QueueOffset, wantQ)
		}
		if m[0].PhysicalOffset != end {
			t.Fatalf("append landed at log offset %d, log ended at %d", m[0].PhysicalOffset, end)
		}
		rec, err := s.ReadAt(m[0].PhysicalOffset)
		if err != nil {
			t.Fatalf("ReadAt new record: %v", err)
		}
		before[q] = append(before[q], rec)
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if end == fx.logEnd(keep) && len(before) == len(fx.queues) {
			// Nothing but a plain prefix survived: TestTornTailEveryByte
			// covers the rescan of that shape; skip it to keep iterations
			// (and minimization) cheap.
			return
		}
		os.Remove(filepath.Join(dir, ckptName))
		s, err = Open(ctx, cfg)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		after := snapshotQueues(t, s)
		if len(after) != len(before) {
			t.Fatalf("reopen: %d queues, before %d", len(after), len(before))
		}
		for q, recs := range before {
			got := after[q]
			if len(got) != len(recs) {
				t.Fatalf("reopen: %s/%d holds %d messages, had %d", q.topic, q.qid, len(got), len(recs))
			}
			for i := range recs {
				if !bytes.Equal(got[i], recs[i]) {
					t.Fatalf("reopen: %s/%d offset %d changed", q.topic, q.qid, i)
				}
			}
		}
	})
}

// snapshotQueues reads every queue of s; each record must decode and sit
// at its queue offset.
func snapshotQueues(t testing.TB, s *Store) map[qref][][]byte {
	t.Helper()
	out := map[qref][][]byte{}
	for _, qi := range s.Queues() {
		q := qref{qi.Topic, qi.QueueID}
		var recs [][]byte
		// A queue re-based by recovery (the log holds a record whose queue
		// offset is past what the queue had) starts at its min offset, and
		// holes left by lost entries are skipped.
		expect := qi.MinOffset
		for off := qi.MinOffset; ; {
			r, err := s.Get(q.topic, q.qid, off, 32, 1<<20, nil)
			if err != nil {
				t.Fatalf("Get %s/%d@%d: %v", q.topic, q.qid, off, err)
			}
			if r.Status != Found {
				if off != qi.MaxOffset {
					t.Fatalf("%s/%d: read stops at %d (%v), max offset %d", q.topic, q.qid, off, r.Status, qi.MaxOffset)
				}
				break
			}
			for _, rec := range r.Records {
				m, err := remoting.DecodeMessageExt(rec)
				if err != nil {
					t.Fatalf("%s/%d@%d: %v", q.topic, q.qid, off, err)
				}
				if m.Topic != q.topic || m.QueueID != q.qid || m.QueueOffset < expect {
					t.Fatalf("%s/%d: record %d is %s/%d offset %d, want >= %d", q.topic, q.qid, len(recs), m.Topic, m.QueueID, m.QueueOffset, expect)
				}
				expect = m.QueueOffset + 1
				recs = append(recs, append([]byte(nil), rec...))
			}
			off = r.NextOffset
		}
		out[q] = recs
	}
	return out
}

// FuzzDecodeRecordFields: remoting.ParseRecordFields never panics, and whatever it accepts
// has a topic and properties inside the record. Records it accepts that
// carry the message magic also satisfy remoting.DecodeMessageExt, which the
// pull path relies on.
func FuzzDecodeRecordFields(f *testing.F) {
	for _, m := range []remoting.MessageExt{testMsg("T", 0, 1, 10), testMsg("TopicX", 3, 2, 0)} {
		rec := encodeAt(m, 0, 0)
		f.Add(rec[:len(rec)-recordOverhead])
		// IPv6 hosts, and the store timestamp after them.
		m.BornHost, m.StoreHost = fuzzV6Host, fuzzV6Host
		m.StoreTimestamp, m.PhysicalOffset = 1700000000999, 4096
		rec = make([]byte, m.Size())
		m.Encode(rec)
		f.Add(rec)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := remoting.ParseRecordFields(b)
		if err != nil {
			return
		}
		if len(v.Topic) == 0 {
			t.Fatal("accepted an empty topic")
		}
		_ = remoting.PropsTagHash(v.Properties)
		remoting.ForEachKey(v.Properties, func([]byte) {})
		_ = remoting.HasKey(v.Properties, "k")
		if binary.BigEndian.Uint32(b[4:]) != remoting.MessageMagic || remoting.RecordSize(b) != len(b) {
			return // classify rejects these before ParseRecordFields sees them
		}
		m, err := remoting.DecodeMessageExt(b)
		if err != nil {
			t.Fatalf("ParseRecordFields accepts a record DecodeMessageExt rejects: %v", err)
		}
		if m.Topic != string(v.Topic) || m.QueueID != v.QueueID || m.QueueOffset != v.QueueOffset ||
			m.StoreTimestamp != v.StoreTimestamp || !bytes.Equal(m.Properties, v.Properties) {
			t.Fatalf("ParseRecordFields and DecodeMessageExt disagree: %+v vs %+v", v, m)
		}
	})
}

// TestRecoverFullScanAfterSegmentDeletion: once retention has deleted the
// oldest segments, a full scan (checkpoint lost) starts at the first
// remaining segment, whose records continue their queues from the offsets
// the consume queues still hold.
func TestRecoverFullScanAfterSegmentDeletion(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	s := openTest(t, cfg)
	const n = 1200
	for i := 0; i < n; i++ {
		m := []remoting.MessageExt{testMsg("D", int32(i%2), i, 300+i%500)}
		if err := s.Append(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.checkpointAt(time.Now(), true); err != nil {
		t.Fatal(err)
	}
	segs := s.Segments()
	if len(segs) < 4 {
		t.Fatalf("%d segments, want at least 4", len(segs))
	}
	if k, err := s.DeleteSegments(func(i SegmentInfo) bool { return i.Base < segs[2].Base }); err != nil || k != 2 {
		t.Fatalf("deleted %d, %v", k, err)
	}
	want := map[int32][]remoting.MessageExt{0: readAll(t, s, "D", 0), 1: readAll(t, s, "D", 1)}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, ckptName))
	s = openTest(t, cfg)
	defer s.Close()
	for q := int32(0); q < 2; q++ {
		got := readAll(t, s, "D", q)
		if len(got) != len(want[q]) || len(got) == 0 {
			t.Fatalf("queue %d: %d messages after full scan, want %d", q, len(got), len(want[q]))
		}
		for i := range got {
			if got[i].QueueOffset != want[q][i].QueueOffset || !bytes.Equal(got[i].Body, want[q][i].Body) {
				t.Fatalf("queue %d message %d differs after full scan", q, i)
			}
		}
		if mo := s.MaxOffset("D", q); mo != n/2 {
			t.Fatalf("queue %d max offset %d, want %d", q, mo, n/2)
		}
	}
	m := []remoting.MessageExt{testMsg("D", 0, n, 10)}
	if err := s.Append(context.Background(), m); err != nil || m[0].QueueOffset != n/2 {
		t.Fatalf("append after full scan: offset %d, %v", m[0].QueueOffset, err)
	}
}

// TestRecoveryIgnoresQueueStartForRecordsInTheLog: a queue whose entries
// did not reach the disk before a crash is rebuilt from the log even when
// QueueStart (the cold tier's end of the queue) is past the records the
// local log still holds; QueueStart only starts queues the log holds
// nothing of. (A follower killed with -9 under hot retention hit this:
// the queue started at the tier's end, the scan found its first records
// "repeated", and recovery refused the log.)
func TestRecoveryIgnoresQueueStartForRecordsInTheLog(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, testConfig(dir))
	for i := range 50 {
		if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("T", 0, i, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	end := s.LogEnd()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The crash: the queue's entries and the checkpoint are gone.
	if err := os.RemoveAll(filepath.Join(dir, "consumequeue", "T")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, ckptName)); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(dir)
	cfg.QueueStart = func(topic string, q int32) int64 {
		if topic == "T" || topic == "U" {
			return 40 // the cold tier holds [0, 40)
		}
		return 0
	}
	s = openTest(t, cfg)
	defer s.Close()
	if s.LogEnd() != end || s.MaxOffset("T", 0) != 50 || s.MinOffset("T", 0) != 0 {
		t.Fatalf("recovered log end %d (want %d), queue T/0 [%d, %d) (want [0, 50))", s.LogEnd(), end, s.MinOffset("T", 0), s.MaxOffset("T", 0))
	}
	r, err := s.Get("T", 0, 0, 10, 1<<20, nil)
	if err != nil || r.Status != Found || len(r.Records) != 10 {
		t.Fatalf("read T/0 at 0: %v, %+v", err, r.Status)
	}
	// A queue the log holds nothing of still starts at QueueStart.
	if err := s.Append(context.Background(), []remoting.MessageExt{testMsg("U", 0, 0, 100)}); err != nil {
		t.Fatal(err)
	}
	if got := s.MaxOffset("U", 0); got != 41 {
		t.Fatalf("new queue U/0 ends at %d, want 41 (started at QueueStart 40)", got)
	}
}
