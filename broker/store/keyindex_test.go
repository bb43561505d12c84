package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
)

func openTestKeyIndex(t testing.TB, dir string, slots, entries int) *keyIndex {
	t.Helper()
	x, err := openKeyIndex(dir, slots, entries, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openKeyIndex: %v", err)
	}
	t.Cleanup(func() { x.close() })
	return x
}

func mustAdd(t testing.TB, x *keyIndex, topic, key string, off, ts int64) {
	t.Helper()
	if err := x.add(topic, []byte(key), off, ts); err != nil {
		t.Fatalf("add(%q, %q, %d, %d): %v", topic, key, off, ts, err)
	}
}

func keyIndexFiles(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// crashKeyIndex abandons x without syncing, as a kill -9 would: whatever
// was written through the mappings stays in the page cache, the headers keep
// the values of the last sync.
func crashKeyIndex(x *keyIndex) {
	x.syncMu.Lock()
	defer x.syncMu.Unlock()
	x.unmapAll()
}

const allTime = int64(1) << 62

func TestKeyIndexHashIsStable(t *testing.T) {
	// The hash is part of the file format.
	for _, tc := range []struct {
		topic, key string
		want       uint32
	}{
		// Values checked against an independent Python implementation.
		{"", "", 0x40d07c57},
		{"TopicTest", "order-1", 0x3d739b29},
		{"T", "7F0000010001000000000000000000A1", 0xf25c9441},
	} {
		got := keyIndexHash(tc.topic, tc.key)
		if got != tc.want {
			t.Errorf("keyIndexHash(%q, %q) = %#08x, want %#08x", tc.topic, tc.key, got, tc.want)
		}
		if b := keyIndexHash(tc.topic, []byte(tc.key)); b != got {
			t.Errorf("keyIndexHash of []byte %#08x != of string %#08x", b, got)
		}
	}
}

func TestKeyIndexRoundTrip(t *testing.T) {
	x := openTestKeyIndex(t, t.TempDir(), 512, 100000)
	const keys = 5000
	for i := range keys {
		mustAdd(t, x, "TopicA", fmt.Sprintf("key-%d", i), int64(i)*100, 1000+int64(i))
		mustAdd(t, x, "TopicB", fmt.Sprintf("key-%d", i), int64(i)*100+1, 1000+int64(i))
	}
	for i := range keys {
		key := fmt.Sprintf("key-%d", i)
		if got := x.lookup("TopicA", key, 10, 0, allTime); !slices.Equal(got, []int64{int64(i) * 100}) {
			t.Fatalf("lookup(TopicA, %s) = %v, want [%d]", key, got, i*100)
		}
		if got := x.lookup("TopicB", key, 10, 0, allTime); !slices.Equal(got, []int64{int64(i)*100 + 1}) {
			t.Fatalf("lookup(TopicB, %s) = %v, want [%d]", key, got, i*100+1)
		}
	}
	if got := x.lookup("TopicC", "key-1", 10, 0, allTime); len(got) != 0 {
		t.Errorf("lookup in another topic = %v, want nothing", got)
	}
	if got := x.lookup("TopicA", "missing", 10, 0, allTime); len(got) != 0 {
		t.Errorf("lookup of a missing key = %v, want nothing", got)
	}
	if got := x.lookup("TopicA", "key-1", 0, 0, allTime); got != nil {
		t.Errorf("lookup with max 0 = %v, want nil", got)
	}
}

func TestKeyIndexCollisions(t *testing.T) {
	x := openTestKeyIndex(t, t.TempDir(), 4, 10000)
	const keys = 1000
	for round := range 3 {
		for i := range keys {
			mustAdd(t, x, "T", fmt.Sprintf("k%d", i), int64(round*keys+i), int64(round))
		}
	}
	for i := range keys {
		want := []int64{int64(2*keys + i), int64(keys + i), int64(i)}
		if got := x.lookup("T", fmt.Sprintf("k%d", i), 10, 0, allTime); !slices.Equal(got, want) {
			t.Fatalf("lookup(k%d) = %v, want %v", i, got, want)
		}
	}

	// A full 32-bit hash collision: both records are candidates; the caller
	// tells them apart by reading them.
	seen := map[uint32]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		k := fmt.Sprintf("c%d", i)
		h := keyIndexHash("T", k)
		if other, ok := seen[h]; ok {
			a, b = other, k
		}
		seen[h] = k
	}
	mustAdd(t, x, "T", a, 1_000_001, 5)
	mustAdd(t, x, "T", b, 1_000_002, 5)
	for _, k := range []string{a, b} {
		if got := x.lookup("T", k, 10, 0, allTime); !slices.Equal(got, []int64{1_000_002, 1_000_001}) {
			t.Errorf("lookup(%s) with colliding hash = %v, want both candidates", k, got)
		}
	}
}

func TestKeyIndexTimeRange(t *testing.T) {
	x := openTestKeyIndex(t, t.TempDir(), 16, 1000)
	for i := range 100 {
		mustAdd(t, x, "T", "k", int64(i), 10_000+int64(i)*10) // ts 10000, 10010, ...
	}
	for _, tc := range []struct {
		begin, end int64
		want       []int64
	}{
		{10_100, 10_140, []int64{14, 13, 12, 11, 10}}, // inclusive at both ends
		{10_101, 10_139, []int64{13, 12, 11}},
		{0, 9_999, nil},
		{10_991, 20_000, nil},
		{10_990, 10_990, []int64{99}},
		{10_050, 10_000, nil}, // begin > end
	} {
		if got := x.lookup("T", "k", 100, tc.begin, tc.end); !slices.Equal(got, tc.want) {
			t.Errorf("lookup [%d, %d] = %v, want %v", tc.begin, tc.end, got, tc.want)
		}
	}
}

func TestKeyIndexMaxNewestFirst(t *testing.T) {
	x := openTestKeyIndex(t, t.TempDir(), 8, 25) // 4 files
	for i := range 100 {
		mustAdd(t, x, "T", "k", int64(i)*7, int64(i))
		mustAdd(t, x, "T", "other", int64(i)*7+1, int64(i))
	}
	got := x.lookup("T", "k", 10, 0, allTime)
	want := []int64{99 * 7, 98 * 7, 97 * 7, 96 * 7, 95 * 7, 94 * 7, 93 * 7, 92 * 7, 91 * 7, 90 * 7}
	if !slices.Equal(got, want) {
		t.Errorf("lookup max 10 = %v, want %v", got, want)
	}
	all := x.lookup("T", "k", 1000, 0, allTime)
	if len(all) != 100 {
		t.Fatalf("lookup max 1000 returned %d offsets, want 100", len(all))
	}
	if !slices.IsSortedFunc(all, func(a, b int64) int { return int(b - a) }) {
		t.Errorf("results not newest first: %v", all)
	}
	if got := x.lookup("T", "k", 1, 0, allTime); !slices.Equal(got, []int64{99 * 7}) {
		t.Errorf("lookup max 1 = %v", got)
	}
}

func TestKeyIndexRollover(t *testing.T) {
	dir := t.TempDir()
	x := openTestKeyIndex(t, dir, 4, 10)
	for i := range 95 {
		mustAdd(t, x, "T", fmt.Sprintf("k%d", i%7), 1000+int64(i), 5000+int64(i))
	}
	names := keyIndexFiles(t, dir)
	if len(names) != 10 {
		t.Fatalf("files = %v, want 10", names)
	}
	for i, name := range names {
		if want := keyIndexFileName(1000 + int64(i)*10); name != want {
			t.Errorf("file %d is %s, want %s", i, name, want)
		}
	}
	got := x.lookup("T", "k3", 100, 0, allTime)
	var want []int64
	for i := 94; i >= 0; i-- {
		if i%7 == 3 {
			want = append(want, 1000+int64(i))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("lookup(k3) = %v, want %v", got, want)
	}
	// A time range inside one file.
	if got := x.lookup("T", "k3", 100, 5020, 5029); !slices.Equal(got, []int64{1024}) {
		t.Errorf("lookup(k3) in [5020, 5029] = %v, want [1024]", got)
	}
}

func TestKeyIndexReopen(t *testing.T) {
	dir := t.TempDir()
	x, err := openKeyIndex(dir, 16, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 250
	for i := range n {
		mustAdd(t, x, "T", fmt.Sprintf("k%d", i%37), int64(i)*3, int64(i))
	}
	before := map[string][]int64{}
	for k := range 37 {
		key := fmt.Sprintf("k%d", k)
		before[key] = x.lookup("T", key, 100, 0, allTime)
	}
	if err := x.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := x.close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if got := x.lookup("T", "k1", 10, 0, allTime); got != nil {
		t.Errorf("lookup after close = %v", got)
	}
	if err := x.add("T", []byte("k"), 1, 1); !errors.Is(err, errKeyIndexClosed) {
		t.Errorf("add after close: %v, want errKeyIndexClosed", err)
	}

	y := openTestKeyIndex(t, dir, 16, 100)
	for key, want := range before {
		if got := y.lookup("T", key, 100, 0, allTime); !slices.Equal(got, want) {
			t.Errorf("after reopen lookup(%s) = %v, want %v", key, got, want)
		}
	}
	// Adds continue in the last file (250 entries: the third file has 50).
	mustAdd(t, y, "T", "k0", 10_000, 10_000)
	if names := keyIndexFiles(t, dir); len(names) != 3 {
		t.Errorf("files after one more add = %v, want 3", names)
	}
	if got := y.lookup("T", "k0", 1, 0, allTime); !slices.Equal(got, []int64{10_000}) {
		t.Errorf("lookup(k0) = %v, want [10000]", got)
	}
}

func TestKeyIndexDedupe(t *testing.T) {
	x := openTestKeyIndex(t, t.TempDir(), 4, 3)
	// The same records re-added after a crash, across a file boundary.
	for range 3 {
		mustAdd(t, x, "T", "k", 5, 100)
		mustAdd(t, x, "T", "k", 9, 101)
	}
	if got := x.lookup("T", "k", 10, 0, allTime); !slices.Equal(got, []int64{9, 5}) {
		t.Errorf("lookup = %v, want [9 5]", got)
	}
	if got := x.lookup("T", "k", 2, 0, allTime); !slices.Equal(got, []int64{9, 5}) {
		t.Errorf("lookup max 2 = %v, want [9 5]: duplicates must not use up max", got)
	}
	// Many distinct offsets, each added twice: the map-based dedupe path.
	y := openTestKeyIndex(t, t.TempDir(), 4, 1000)
	for range 2 {
		for i := range 100 {
			mustAdd(t, y, "T", "k", int64(i), 1)
		}
	}
	got := y.lookup("T", "k", 1000, 0, allTime)
	if len(got) != 100 {
		t.Fatalf("lookup returned %d offsets, want 100 distinct", len(got))
	}
	for i, off := range got {
		if off != int64(99-i) {
			t.Fatalf("result %d = %d, want %d", i, off, 99-i)
		}
	}
}

func TestKeyIndexFileNamesNeverCollide(t *testing.T) {
	dir := t.TempDir()
	x := openTestKeyIndex(t, dir, 4, 1)
	mustAdd(t, x, "T", "k", 5, 1)
	mustAdd(t, x, "T", "k", 5, 1) // re-added: full file named 5, next one 6
	mustAdd(t, x, "T", "k", 3, 1) // lower offset still sorts last
	want := []string{keyIndexFileName(5), keyIndexFileName(6), keyIndexFileName(7)}
	if got := keyIndexFiles(t, dir); !slices.Equal(got, want) {
		t.Errorf("files = %v, want %v", got, want)
	}
	if got := x.lookup("T", "k", 10, 0, allTime); !slices.Equal(got, []int64{3, 5}) {
		t.Errorf("lookup = %v, want [3 5]", got)
	}
}

func TestKeyIndexDropBefore(t *testing.T) {
	dir := t.TempDir()
	x := openTestKeyIndex(t, dir, 4, 10)
	for i := range 50 { // files 0, 10, 20, 30, 40
		mustAdd(t, x, "T", "k", int64(i), int64(i))
	}
	if err := x.dropBefore(25); err != nil {
		t.Fatal(err)
	}
	want := []string{keyIndexFileName(20), keyIndexFileName(30), keyIndexFileName(40)}
	if got := keyIndexFiles(t, dir); !slices.Equal(got, want) {
		t.Errorf("files after dropBefore(25) = %v, want %v", got, want)
	}
	if got := x.lookup("T", "k", 100, 0, allTime); len(got) != 30 || got[29] != 20 {
		t.Errorf("lookup after drop = %v, want 49..20", got)
	}
	if err := x.dropBefore(1 << 40); err != nil {
		t.Fatal(err)
	}
	want = []string{keyIndexFileName(40)} // the file being written stays
	if got := keyIndexFiles(t, dir); !slices.Equal(got, want) {
		t.Errorf("files after dropBefore(max) = %v, want %v", got, want)
	}
	mustAdd(t, x, "T", "k", 50, 50)
	if got := x.lookup("T", "k", 100, 0, allTime); len(got) != 11 || got[0] != 50 || got[10] != 40 {
		t.Errorf("lookup = %v, want 50..40", got)
	}
	if err := x.close(); err != nil {
		t.Fatal(err)
	}
	y := openTestKeyIndex(t, dir, 4, 10)
	if got := y.lookup("T", "k", 100, 0, allTime); len(got) != 11 {
		t.Errorf("lookup after reopen = %v, want 50..40", got)
	}
	if err := y.dropBefore(0); err != nil {
		t.Errorf("dropBefore(0): %v", err)
	}
}

func TestKeyIndexSyncWritesHeader(t *testing.T) {
	dir := t.TempDir()
	x := openTestKeyIndex(t, dir, 4, 100)
	for i := range 10 {
		mustAdd(t, x, "T", "k", 100+int64(i), 7000-int64(i))
	}
	path := filepath.Join(dir, keyIndexFileName(100))
	readHeader := func() keyIndexHeader {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		h, err := decodeKeyIndexHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := readHeader(); h.count != 0 {
		t.Errorf("header count before sync = %d, want 0", h.count)
	}
	if err := x.sync(); err != nil {
		t.Fatal(err)
	}
	want := keyIndexHeader{slots: 4, entries: 100, count: 10, firstOff: 100, lastOff: 109, minTs: 6991, maxTs: 7000}
	if h := readHeader(); h != want {
		t.Errorf("header after sync = %+v, want %+v", h, want)
	}
	if err := x.sync(); err != nil { // nothing dirty
		t.Fatal(err)
	}
}

func TestKeyIndexFilesPreallocated(t *testing.T) {
	dir := t.TempDir()
	x := openTestKeyIndex(t, dir, 1024, 4096)
	mustAdd(t, x, "T", "k", 0, 0)
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, keyIndexFileName(0)), &st); err != nil {
		t.Fatal(err)
	}
	size := keyIndexFileSize(1024, 4096)
	if st.Size != size {
		t.Errorf("file size %d, want %d", st.Size, size)
	}
	// Not sparse: every byte has disk space, so writes through the mapping
	// cannot fault when the disk fills.
	if st.Blocks*512 < size {
		t.Errorf("file has %d bytes allocated for %d: sparse", st.Blocks*512, size)
	}
}

// writeAt patches a closed index file.
func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func TestKeyIndexCorruptHeader(t *testing.T) {
	// patch the header of a valid file; fixCRC recomputes the checksum so
	// the field check itself is exercised.
	type patch struct {
		off    int64
		b      []byte
		fixCRC bool
	}
	for _, tc := range []struct {
		name    string
		patches []patch
		size    int64 // if non-zero, truncate the file to this size (-1: empty)
	}{
		{name: "magic", patches: []patch{{kihMagic, []byte("JUNK"), true}}},
		{name: "checksum", patches: []patch{{kihCount, be32(3), false}}},
		{name: "version", patches: []patch{{kihVersion, be32(99), true}}},
		{name: "count above capacity", patches: []patch{{kihCount, be32(11), true}}},
		{name: "zero slots", patches: []patch{{kihSlots, be32(0), true}}},
		{name: "huge capacity", patches: []patch{{kihEntries, be32(1 << 31), true}}},
		{name: "geometry vs size", patches: []patch{{kihSlots, be32(5), true}}},
		{name: "offset range", patches: []patch{{kihFirstOff, binary.BigEndian.AppendUint64(nil, 1<<40), true}}},
		{name: "truncated", size: 100},
		{name: "shorter than header", size: 10},
		{name: "empty", size: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			x := openTestKeyIndex(t, dir, 4, 10)
			for i := range 5 {
				mustAdd(t, x, "T", "k", int64(i), int64(i))
			}
			if err := x.close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, keyIndexFileName(0))
			for _, p := range tc.patches {
				writeAt(t, path, p.off, p.b)
				if p.fixCRC {
					b, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					writeAt(t, path, kihCRC, be32(crc32.Checksum(b[:kihCRC], keyIndexCRCTable)))
				}
			}
			if tc.size != 0 {
				if err := os.Truncate(path, max(tc.size, 0)); err != nil {
					t.Fatal(err)
				}
			}
			y, err := openKeyIndex(dir, 4, 10, slog.New(slog.DiscardHandler))
			if err == nil {
				y.close()
				t.Fatal("openKeyIndex accepted a corrupt file")
			}
			if !errors.Is(err, errKeyIndexCorrupt) {
				t.Errorf("error %v does not wrap errKeyIndexCorrupt", err)
			}
			t.Log(err)
		})
	}
}

func TestKeyIndexCorruptChain(t *testing.T) {
	dir := t.TempDir()
	x := openTestKeyIndex(t, dir, 4, 8)
	for i := range 8 { // a full file: open does not repair it
		mustAdd(t, x, "T", fmt.Sprintf("k%d", i%2), int64(i), int64(i))
	}
	if err := x.close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, keyIndexFileName(0))
	entry := func(i int64) int64 { return keyIndexHeaderSize + 4*keyIndexSlotSize + (i-1)*keyIndexEntrySize }
	writeAt(t, path, keyIndexHeaderSize, be32(0xFFFFFFFF))            // slot 0 out of range
	writeAt(t, path, keyIndexHeaderSize+4, be32(9))                   // slot 1 just past capacity
	writeAt(t, path, keyIndexHeaderSize+8, be32(5))                   // slot 2 into someone else's chain
	writeAt(t, path, keyIndexHeaderSize+12, be32(3))                  // slot 3 -> 3
	writeAt(t, path, entry(3)+20, be32(3))                            // 3 -> 3: a self loop
	writeAt(t, path, entry(5)+20, be32(7))                            // 5 -> 7: a forward link
	writeAt(t, path, entry(7)+20, be32(5))                            // 7 -> 5: a cycle
	writeAt(t, path, entry(8), binary.BigEndian.AppendUint32(nil, 1)) // wrong hash
	y := openTestKeyIndex(t, dir, 4, 8)
	for i := range 2 {
		y.lookup("T", fmt.Sprintf("k%d", i), 100, 0, allTime) // must neither panic nor hang
	}
	for b := range uint32(4) {
		c := keyIndexCollector{max: 100}
		y.files[0].collect(b, 0, allTime, &c)
	}
}

func TestKeyIndexCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	x := openTestKeyIndex(t, dir, 4, 100)
	for i := range 10 {
		mustAdd(t, x, "T", fmt.Sprintf("k%d", i), int64(i), int64(i))
	}
	if err := x.sync(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 { // not synced: the header still says 10
		mustAdd(t, x, "T", fmt.Sprintf("k%d", i), 10+int64(i), 10+int64(i))
	}
	crashKeyIndex(x)

	y := openTestKeyIndex(t, dir, 4, 100)
	for i := range 10 {
		key := fmt.Sprintf("k%d", i)
		if got := y.lookup("T", key, 10, 0, allTime); !slices.Equal(got, []int64{int64(i)}) {
			t.Errorf("after crash lookup(%s) = %v, want [%d]", key, got, i)
		}
	}
	// The caller re-adds everything past its checkpoint; older entries of
	// the same slots stay reachable.
	for i := range 10 {
		mustAdd(t, y, "T", fmt.Sprintf("k%d", i), 10+int64(i), 10+int64(i))
	}
	for i := range 10 {
		key := fmt.Sprintf("k%d", i)
		if got := y.lookup("T", key, 10, 0, allTime); !slices.Equal(got, []int64{10 + int64(i), int64(i)}) {
			t.Errorf("after re-add lookup(%s) = %v, want [%d %d]", key, got, 10+i, i)
		}
	}
	if err := y.close(); err != nil {
		t.Fatal(err)
	}
	z := openTestKeyIndex(t, dir, 4, 100)
	if got := z.lookup("T", "k3", 10, 0, allTime); !slices.Equal(got, []int64{13, 3}) {
		t.Errorf("after clean reopen lookup(k3) = %v, want [13 3]", got)
	}
}

func TestKeyIndexUnfinishedFileRemoved(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, "00000000000000000007"+keyIndexTmpSuffix)
	if err := os.WriteFile(tmp, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	openTestKeyIndex(t, dir, 4, 10)
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unfinished file still there: %v", err)
	}
}

func TestKeyIndexNewFileFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "index")
	x := openTestKeyIndex(t, dir, 4, 2)
	mustAdd(t, x, "T", "k", 1, 1)
	mustAdd(t, x, "T", "k", 2, 2)
	// Creating the next file fails (here: the directory is gone); the
	// error is returned and the mapped file stays readable.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err := x.add("T", []byte("k"), 3, 3)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("add needing a new file: %v, want a wrapped ErrNotExist", err)
	}
	if got := x.lookup("T", "k", 10, 0, allTime); !slices.Equal(got, []int64{2, 1}) {
		t.Errorf("lookup after failed add = %v, want [2 1]", got)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, x, "T", "k", 3, 3) // the next add tries again
	if got := x.lookup("T", "k", 10, 0, allTime); !slices.Equal(got, []int64{3, 2, 1}) {
		t.Errorf("lookup after retry = %v, want [3 2 1]", got)
	}
}

func TestKeyIndexBadParameters(t *testing.T) {
	for _, p := range [][2]int{{0, 10}, {10, 0}, {-1, 10}, {10, 1 << 31}} {
		if x, err := openKeyIndex(t.TempDir(), p[0], p[1], nil); err == nil {
			x.close()
			t.Errorf("openKeyIndex(slots %d, entries %d) succeeded", p[0], p[1])
		}
	}
	x := openTestKeyIndex(t, t.TempDir(), 4, 10)
	if err := x.add("T", []byte("k"), -1, 0); err == nil {
		t.Error("add with a negative offset succeeded")
	}
}

func TestKeyIndexConcurrent(t *testing.T) {
	dir := t.TempDir()
	x := openTestKeyIndex(t, dir, 64, 500)
	const (
		n    = 20000
		keys = 97
	)
	keyOf := func(off int64) string { return fmt.Sprintf("key-%d", off%keys) }
	// Precheck: no two test keys share a hash, so every candidate is exact.
	hashes := map[uint32]bool{}
	for k := range int64(keys) {
		h := keyIndexHash("T", keyOf(k))
		if hashes[h] {
			t.Fatal("test keys collide")
		}
		hashes[h] = true
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for i := range int64(n) {
			if err := x.add("T", []byte(keyOf(i)), i, i); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := x.sync(); err != nil {
				t.Error(err)
				return
			}
			if err := x.dropBefore(0); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for r := range 4 {
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-done:
					return
				default:
				}
				k := int64((j*31 + r) % keys)
				got := x.lookup("T", keyOf(k), 20, 0, allTime)
				for i, off := range got {
					if off%keys != k {
						t.Errorf("lookup(%s) returned %d", keyOf(k), off)
						return
					}
					if i > 0 && off >= got[i-1] {
						t.Errorf("lookup(%s) = %v: not newest first or duplicated", keyOf(k), got)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for k := range int64(keys) {
		got := x.lookup("T", keyOf(k), n, 0, allTime)
		if want := (n - int(k) + keys - 1) / keys; len(got) != want {
			t.Errorf("lookup(%s) found %d, want %d", keyOf(k), len(got), want)
		}
	}
	if err := x.dropBefore(n / 2); err != nil {
		t.Fatal(err)
	}
}

func TestKeyIndexAddDoesNotAllocate(t *testing.T) {
	x := openTestKeyIndex(t, t.TempDir(), 1024, 1<<16)
	key := []byte("some-message-key")
	mustAdd(t, x, "T", "first", 0, 0) // creates the file
	off := int64(1)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := x.add("TopicTest", key, off, off); err != nil {
			t.Fatal(err)
		}
		off++
	})
	if allocs != 0 {
		t.Errorf("add allocates %v times per call, want 0", allocs)
	}
}

func BenchmarkKeyIndexAdd(b *testing.B) {
	x := openTestKeyIndex(b, b.TempDir(), 1<<18, 1<<20)
	keys := make([][]byte, 4096)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "7F00000100002A9F0000%012X", i)
	}
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		if err := x.add("TopicTest", keys[off&4095], off, off); err != nil {
			b.Fatal(err)
		}
		off++
	}
}

func BenchmarkKeyIndexLookup(b *testing.B) {
	x := openTestKeyIndex(b, b.TempDir(), 1<<14, 1<<16)
	for i := range int64(1 << 16) {
		if err := x.add("TopicTest", fmt.Appendf(nil, "key-%d", i%4096), i, i); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		x.lookup("TopicTest", fmt.Sprintf("key-%d", i%4096), 32, 0, allTime)
		i++
	}
}

// BenchmarkKeyIndexAddSynced adds keys at the production size (1,000,000
// slots) with a sync every 5,000 adds, as checkpoints do once a second at
// 5,000 msg/s: after each sync the slot pages are dirtied again through
// the mapping.
func BenchmarkKeyIndexAddSynced(b *testing.B) {
	x := openTestKeyIndex(b, b.TempDir(), 1_000_000, 4_000_000)
	i := 0
	for b.Loop() {
		if err := x.addHash(uint32(i)*2654435761, int64(i), 1); err != nil {
			b.Fatal(err)
		}
		i++
		if i%5000 == 0 {
			b.StopTimer()
			if err := x.sync(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
}
