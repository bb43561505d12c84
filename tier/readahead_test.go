package tier

import (
	"math/rand/v2"
	"testing"
)

// TestEntriesPast: read-ahead's binary search past a block's entries lands
// on the same entry as scanning them one by one with BlockFor, for random
// blocks and entries, every start index and every block (including none).
func TestEntriesPast(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for round := range 300 {
		f := &Footer{}
		end := int64(rng.IntN(3)) << 16
		for range 1 + rng.IntN(8) {
			raw := int32(64 + rng.IntN(2000))
			f.Blocks = append(f.Blocks, BlockInfo{LogOffset: end, RawLen: raw})
			end += int64(raw)
		}
		var entries []QueueEntry
		for off := f.Blocks[0].LogOffset + int64(rng.IntN(40)); off < end; off += int64(1 + rng.IntN(400)) {
			entries = append(entries, QueueEntry{LogOffset: off, Size: 1})
		}
		section := make([]byte, len(entries)*QueueEntrySize)
		for i, e := range entries {
			putQueueEntry(section[i*QueueEntrySize:], e)
		}
		qi := &QueueIndex{Count: int64(len(entries))}
		for idx := int64(0); idx <= qi.Count; idx++ {
			for bi := -1; bi <= len(f.Blocks); bi++ {
				want := idx
				if bi >= 0 && bi < len(f.Blocks) {
					for ; want < qi.Count; want++ {
						if b, ok := f.BlockFor(entries[want].LogOffset); !ok || b > bi {
							break
						}
					}
				}
				if got := entriesPast(f, section, qi, idx, bi); got != want {
					t.Fatalf("round %d: entriesPast(idx %d, block %d) = %d, want %d (blocks %+v)", round, idx, bi, got, want, f.Blocks)
				}
			}
		}
	}
}
