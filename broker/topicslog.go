package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The topic table persists as a snapshot, topics.json (RocketMQ's layout),
// plus a journal, topics.log, of the changes made since: one JSON line per
// change, appended and fdatasync'ed. Rewriting the whole snapshot for each
// change made creating N topics cost O(N²) bytes written (10,000 topics
// took minutes); a change now appends one line, and the snapshot is
// rewritten (and the journal emptied) only once the journal has grown as
// large as the snapshot, which keeps the rewrites' cost proportional to the
// changes. Opening replays the journal over the snapshot and compacts.
//
// Replay is idempotent: a crash between a compaction's rename and its
// truncation leaves a journal whose changes the snapshot already holds,
// and applying them again converges on the same table.

// topicsLogRecord is one journal line: the puts and deletes of one change
// and the data version it produced.
type topicsLogRecord struct {
	DataVersion dataVersion   `json:"dataVersion"`
	Put         []TopicConfig `json:"put,omitempty"`
	Del         []string      `json:"del,omitempty"`
}

// minCompactBytes is the journal size below which it is never compacted
// (TopicManager.compactMin, which tests lower).
const minCompactBytes = 256 << 10

// diffTopics returns the change that turns old into next.
func diffTopics(old, next map[string]TopicConfig, v dataVersion) topicsLogRecord {
	r := topicsLogRecord{DataVersion: v}
	for name, c := range next {
		if o, ok := old[name]; !ok || o != c {
			r.Put = append(r.Put, c)
		}
	}
	for name := range old {
		if _, ok := next[name]; !ok {
			r.Del = append(r.Del, name)
		}
	}
	return r
}

// logPath is the journal next to the snapshot.
func (m *TopicManager) logPath() string { return m.path[:len(m.path)-len(".json")] + ".log" }

// persist makes the change from cur to next durable: a journal line, or a
// new snapshot when the journal is due for compaction. mu is held.
func (m *TopicManager) persist(cur *topicState, next map[string]TopicConfig, v dataVersion) error {
	line, err := json.Marshal(diffTopics(cur.topics, next, v))
	if err != nil {
		return fmt.Errorf("encode topic change: %w", err)
	}
	line = append(line, '\n')
	if m.logSize+int64(len(line)) > max(m.compactMin, m.snapSize) {
		return m.compact(next, v)
	}
	return m.appendLog(line)
}

// appendLog appends line to the journal and fdatasyncs it. On failure it
// cuts the journal back to its previous size, so a half-written line
// never precedes a later one.
func (m *TopicManager) appendLog(line []byte) (err error) {
	path := m.logPath()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Truncate(m.logSize)
		}
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", path, cerr)
		}
	}()
	if _, err := f.Write(line); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if m.logSize == 0 {
		// The journal may be new: its directory entry must be durable too.
		if err := syncDir(path); err != nil {
			return err
		}
	}
	m.logSize += int64(len(line))
	return nil
}

// compact writes the whole table as the new snapshot and empties the
// journal.
func (m *TopicManager) compact(t map[string]TopicConfig, v dataVersion) error {
	b, err := json.MarshalIndent(topicsFile{TopicConfigTable: t, DataVersion: v}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode topics: %w", err)
	}
	if err := writeFileAtomic(m.path, b); err != nil {
		return err
	}
	m.snapSize = int64(len(b))
	if m.logSize == 0 {
		return nil
	}
	// The snapshot holds every change the journal does: a failure from
	// here on leaves a journal that replays harmlessly.
	if err := os.Truncate(m.logPath(), 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("cannot empty the topic journal after a snapshot; it will be replayed again", "path", m.logPath(), "err", err)
		return nil
	}
	m.logSize = 0
	return nil
}

// replayLog applies the journal to st. A last line cut short by a crash
// (no newline, or not JSON) is dropped with a warning: its change was never
// acknowledged. Any other unreadable line is an error.
func (m *TopicManager) replayLog(st *topicState) error {
	path := m.logPath()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open topics: %w", err)
	}
	good := 0
	for n := 1; good < len(b); n++ {
		i := bytes.IndexByte(b[good:], '\n')
		last := i < 0 || good+i+1 == len(b)
		var line []byte
		if i < 0 {
			line = b[good:]
		} else {
			line = b[good : good+i]
		}
		var r topicsLogRecord
		err := json.Unmarshal(line, &r)
		if err == nil {
			err = applyTopicsRecord(st, r)
		}
		if err != nil || i < 0 {
			if !last {
				return fmt.Errorf("open topics: corrupt %s line %d: %v", path, n, err)
			}
			m.log.Warn("dropping a topic change cut short by a crash", "path", path, "line", n, "err", err)
			break
		}
		good += i + 1
	}
	m.logSize = int64(good)
	if good < len(b) {
		if err := os.Truncate(path, int64(good)); err != nil {
			return fmt.Errorf("open topics: %w", err)
		}
	}
	return nil
}

// applyTopicsRecord applies one journal record to st.
func applyTopicsRecord(st *topicState, r topicsLogRecord) error {
	for _, c := range r.Put {
		if err := c.Validate(); err != nil {
			return err
		}
	}
	for _, c := range r.Put {
		st.topics[c.Name] = c
	}
	for _, name := range r.Del {
		delete(st.topics, name)
	}
	st.version = r.DataVersion
	return nil
}

// syncDir fsyncs the directory holding path, making a new or renamed
// entry in it durable.
func syncDir(path string) error {
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
