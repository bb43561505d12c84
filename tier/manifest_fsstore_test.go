package tier_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/fsstore"
)

// The manifest on the real local-directory store: two writers race for
// each sequence, snapshots, prunes and a reader that follows them.
func TestManifestOnFSStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const root = "strata/c1/b1"
	load := func() *tier.Manifest {
		t.Helper()
		m, err := tier.LoadManifest(ctx, store, root)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	seg := func(writer, i int) tier.SegmentEntry {
		base := int64(i) * 1000
		return tier.SegmentEntry{
			Key: fmt.Sprintf("%s/w%d/%020d.seg", root, writer, base), Base: base, End: base + 1000, Size: 500,
			Records: 10, MinTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_000 + base,
			Queues: []tier.QueueRange{{Topic: "T", QueueID: 0, First: int64(i) * 10, Next: int64(i)*10 + 10}},
		}
	}
	a, b, reader := load(), load(), load()
	for i := range 12 {
		var errs [2]error
		var wg sync.WaitGroup
		for w, m := range []*tier.Manifest{a, b} {
			wg.Go(func() { _, errs[w] = m.Append(ctx, seg(w, i)) })
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("segment %d: %v / %v", i, errs[0], errs[1])
		}
		for w, m := range []*tier.Manifest{a, b} {
			if errs[w] != nil {
				if !errors.Is(errs[w], tier.ErrManifestConflict) {
					t.Fatalf("segment %d: writer %d: %v", i, w, errs[w])
				}
				if err := m.Reload(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		if i%5 == 4 {
			if err := a.Snapshot(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Prune(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if i%3 == 2 {
			if err := reader.Reload(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := reader.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := load()
	want := a.Entries()
	if len(want) != 12 || a.LastSeq() != 12 {
		t.Fatalf("%d entries, last %d", len(want), a.LastSeq())
	}
	for _, m := range []*tier.Manifest{b, reader, fresh} {
		if !reflect.DeepEqual(m.Entries(), want) {
			t.Fatalf("views differ:\n%+v\n%+v", m.Entries(), want)
		}
	}
	if e, qr, ok := fresh.Find("T", 0, 75); !ok || e.Base != 7000 || qr.First != 70 {
		t.Fatalf("Find = %+v %+v %v", e, qr, ok)
	}
	if fresh.SnapshotSeq() != 10 {
		t.Fatalf("snapshot %d", fresh.SnapshotSeq())
	}
}
