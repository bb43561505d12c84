package broker

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func topicN(i int) TopicConfig {
	return TopicConfig{Name: fmt.Sprintf("t%05d", i), ReadQueues: 1 + i%8, WriteQueues: 1 + i%8, Perm: 6}
}

// TestTopicJournalReplayAndCompaction: changes go to the journal, which a
// reopen replays and compacts into topics.json; a journal that outgrows
// the snapshot is compacted without a reopen.
func TestTopicJournalReplayAndCompaction(t *testing.T) {
	dir := t.TempDir()
	m := openTopics(t, dir, TopicDefaults{AutoCreate: true})
	for i := range 50 {
		if err := m.CreateOrUpdate(topicN(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Delete("t00007"); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "topics.log")); err != nil || st.Size() == 0 {
		t.Fatalf("journal: %v, %v", st, err)
	}
	_, cnt := m.DataVersion()
	m2 := openTopics(t, dir, TopicDefaults{AutoCreate: true})
	if got := len(m2.List()); got != 50 { // 49 topics and TBW102
		t.Fatalf("after reopen %d topics, want 50", got)
	}
	if _, ok := m2.Get("t00007"); ok {
		t.Fatal("deleted topic came back")
	}
	if c, _ := m2.Get("t00042"); c != topicN(42) {
		t.Fatalf("t00042 = %+v", c)
	}
	if _, cnt2 := m2.DataVersion(); cnt2 != cnt {
		t.Fatalf("version after reopen %d, want %d", cnt2, cnt)
	}
	if st, _ := os.Stat(filepath.Join(dir, "topics.log")); st != nil && st.Size() != 0 {
		t.Fatalf("journal not emptied by the reopen: %d bytes", st.Size())
	}
	raw, err := os.ReadFile(filepath.Join(dir, "topics.json"))
	if err != nil || !strings.Contains(string(raw), `"t00042"`) {
		t.Fatalf("topics.json lacks the replayed topics: %v", err)
	}

	// Enough changes to outgrow the snapshot compact on their own.
	m2.mu.Lock()
	m2.compactMin = 16 << 10
	m2.mu.Unlock()
	for i := 50; i < 600; i++ {
		if err := m2.CreateOrUpdate(topicN(i)); err != nil {
			t.Fatal(err)
		}
	}
	snap, _ := os.Stat(filepath.Join(dir, "topics.json"))
	jour, _ := os.Stat(filepath.Join(dir, "topics.log"))
	if snap.Size() < 20_000 || jour.Size() > max(16<<10, snap.Size()) {
		t.Fatalf("no compaction: topics.json %d bytes, journal %d bytes", snap.Size(), jour.Size())
	}
	m3 := openTopics(t, dir, TopicDefaults{AutoCreate: true})
	if got := len(m3.List()); got != 600 {
		t.Fatalf("after the second reopen %d topics, want 600", got)
	}
}

// TestTopicJournalTornAndCorrupt: a last line cut short by a crash is
// dropped; a damaged line before the last is an error naming the file,
// and the journal is left as it was.
func TestTopicJournalTornAndCorrupt(t *testing.T) {
	write := func(t *testing.T) (dir string, journal []byte) {
		dir = t.TempDir()
		m := openTopics(t, dir, TopicDefaults{AutoCreate: true})
		for i := range 3 {
			if err := m.CreateOrUpdate(topicN(i)); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(filepath.Join(dir, "topics.log"))
		if err != nil {
			t.Fatal(err)
		}
		return dir, b
	}
	t.Run("torn", func(t *testing.T) {
		dir, b := write(t)
		cut := len(b) - 10 // inside the last line
		if err := os.WriteFile(filepath.Join(dir, "topics.log"), b[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		m := openTopics(t, dir, TopicDefaults{AutoCreate: true})
		if _, ok := m.Get("t00002"); ok {
			t.Fatal("the torn change was applied")
		}
		if _, ok := m.Get("t00001"); !ok {
			t.Fatal("a whole change before the torn one was lost")
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		dir, b := write(t)
		bad := []byte(strings.Replace(string(b), `"t00001"`, `"t00001`, 1))
		path := filepath.Join(dir, "topics.log")
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := OpenTopicManager(dir, TopicDefaults{AutoCreate: true}, nil)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("OpenTopicManager = %v, want an error naming %s", err, path)
		}
		if got, _ := os.ReadFile(path); string(got) != string(bad) {
			t.Fatal("the damaged journal was changed")
		}
	})
	t.Run("replayed twice", func(t *testing.T) {
		// A crash after a compaction's rename but before the journal was
		// emptied replays changes the snapshot already holds.
		dir, b := write(t)
		openTopics(t, dir, TopicDefaults{AutoCreate: true}) // compacts
		if err := os.WriteFile(filepath.Join(dir, "topics.log"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		m := openTopics(t, dir, TopicDefaults{AutoCreate: true})
		if got := len(m.List()); got != 4 {
			t.Fatalf("%d topics, want 4: %v", got, m.List())
		}
	})
}

// BenchmarkTopicCreate creates topics one at a time, as an admin tool
// does; with the journal each costs one appended line and an fdatasync
// rather than a rewrite of the whole table.
func BenchmarkTopicCreate(b *testing.B) {
	m, err := OpenTopicManager(b.TempDir(), TopicDefaults{AutoCreate: true}, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		if err := m.CreateOrUpdate(topicN(i)); err != nil {
			b.Fatal(err)
		}
	}
}
