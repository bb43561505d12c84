package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// offsetsFileVersion is the format version written to offsets.json.
const offsetsFileVersion = 1

// offsetsFile is the JSON layout of offsets.json:
//
//	{"version":1,"offsetTable":{"<group>":{"<topic>":{"<queueId>":<offset>}}}}
type offsetsFile struct {
	Version     int                                   `json:"version"`
	OffsetTable map[string]map[string]map[int32]int64 `json:"offsetTable"`
}

// offsetKey identifies one consumer offset. A struct of strings as the map
// key means a lookup or an update of an existing entry allocates nothing.
type offsetKey struct {
	group, topic string
	queue        int32
}

// OffsetManager keeps consumer offsets: for each (group, topic, queue) the
// next queue offset the group will consume (PROTOCOL.md §2.4). Commits go to
// memory; Flush persists the table to offsets.json in the broker's config
// directory (<data-dir>/config) atomically, only when something changed. The broker calls Flush every
// 5 s and on shutdown, so a crash loses at most the commits of the last
// interval, which consumers then re-consume. Safe for concurrent use.
type OffsetManager struct {
	path string
	log  *slog.Logger

	mu    sync.Mutex // guards table, gen, flushedGen
	table map[offsetKey]int64
	// gen counts changes to table; flushedGen is the gen the file holds.
	gen, flushedGen uint64

	flushMu sync.Mutex // serializes Flush so files are written in order
}

// OpenOffsetManager loads <dir>/offsets.json, dir being the broker's config
// directory (<data-dir>/config), which it creates if needed; a missing file is an empty table. A file that cannot be parsed
// or holds negative queue ids or offsets is an error naming the path: the
// offsets are never reset silently. log may be nil.
func OpenOffsetManager(dir string, log *slog.Logger) (*OffsetManager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open offsets: %w", err)
	}
	m := &OffsetManager{
		path:  filepath.Join(dir, "offsets.json"),
		log:   log,
		table: map[offsetKey]int64{},
	}
	removeStaleTemp(m.path, log)
	b, err := os.ReadFile(m.path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open offsets: %w", err)
	}
	var f offsetsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("open offsets: corrupt %s: %w", m.path, err)
	}
	if f.Version != offsetsFileVersion {
		return nil, fmt.Errorf("open offsets: %s: unsupported format version %d", m.path, f.Version)
	}
	for group, topics := range f.OffsetTable {
		for topic, queues := range topics {
			for q, off := range queues {
				if q < 0 || off < 0 {
					return nil, fmt.Errorf("open offsets: corrupt %s: group %q topic %q: queue %d offset %d", m.path, group, topic, q, off)
				}
				m.table[offsetKey{group, topic, q}] = off
			}
		}
	}
	log.Info("consumer offsets loaded", "path", m.path, "groups", len(f.OffsetTable), "entries", len(m.table))
	return m, nil
}

// Commit records offset as the next offset group will consume from
// topic/queue. It overwrites unconditionally (consumers may move back, as
// after an offset reset); a negative offset is ignored. Committing the
// stored value again is free and does not make Flush write.
func (m *OffsetManager) Commit(group, topic string, queue int32, offset int64) {
	if offset < 0 || queue < 0 {
		return
	}
	k := offsetKey{group, topic, queue}
	m.mu.Lock()
	if old, ok := m.table[k]; !ok || old != offset {
		m.table[k] = offset
		m.gen++
	}
	m.mu.Unlock()
}

// Query returns the stored offset of group for topic/queue.
func (m *OffsetManager) Query(group, topic string, queue int32) (int64, bool) {
	m.mu.Lock()
	off, ok := m.table[offsetKey{group, topic, queue}]
	m.mu.Unlock()
	return off, ok
}

// Groups returns the groups that have stored offsets, sorted.
func (m *OffsetManager) Groups() []string {
	m.mu.Lock()
	set := make(map[string]struct{})
	for k := range m.table {
		set[k.group] = struct{}{}
	}
	m.mu.Unlock()
	return slices.Sorted(maps.Keys(set))
}

// Offsets returns a copy of a group's offsets: topic → queue id → offset.
// It is empty (not nil) for an unknown group.
func (m *OffsetManager) Offsets(group string) map[string]map[int32]int64 {
	out := make(map[string]map[int32]int64)
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, off := range m.table {
		if k.group != group {
			continue
		}
		q := out[k.topic]
		if q == nil {
			q = make(map[int32]int64)
			out[k.topic] = q
		}
		q[k.queue] = off
	}
	return out
}

// DeleteGroup forgets every offset of group and reports whether it had any.
func (m *OffsetManager) DeleteGroup(group string) bool {
	return m.deleteWhere(func(k offsetKey) bool { return k.group == group })
}

// DeleteTopic forgets every group's offsets for topic (after the topic is
// deleted) and reports whether there were any.
func (m *OffsetManager) DeleteTopic(topic string) bool {
	return m.deleteWhere(func(k offsetKey) bool { return k.topic == topic })
}

func (m *OffsetManager) deleteWhere(match func(offsetKey) bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.table)
	maps.DeleteFunc(m.table, func(k offsetKey, _ int64) bool { return match(k) })
	if len(m.table) == n {
		return false
	}
	m.gen++
	return true
}

// Flush writes the table to offsets.json (temporary file, fsync, rename,
// directory fsync) if it changed since the last successful Flush. On error
// the table stays marked as changed, so the next Flush tries again.
func (m *OffsetManager) Flush() error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()

	m.mu.Lock()
	if m.gen == m.flushedGen {
		m.mu.Unlock()
		return nil
	}
	gen := m.gen
	f := offsetsFile{Version: offsetsFileVersion, OffsetTable: make(map[string]map[string]map[int32]int64)}
	for k, off := range m.table {
		topics := f.OffsetTable[k.group]
		if topics == nil {
			topics = make(map[string]map[int32]int64)
			f.OffsetTable[k.group] = topics
		}
		queues := topics[k.topic]
		if queues == nil {
			queues = make(map[int32]int64)
			topics[k.topic] = queues
		}
		queues[k.queue] = off
	}
	m.mu.Unlock()

	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("flush offsets: %w", err)
	}
	if err := writeFileAtomic(m.path, b); err != nil {
		return fmt.Errorf("flush offsets: %w", err)
	}
	m.mu.Lock()
	m.flushedGen = gen
	m.mu.Unlock()
	return nil
}

// offsetTableKey is Java's key of a group's queue offsets: "topic@group".
func offsetTableKey(topic, group string) string { return topic + "@" + group }

// Table returns every offset as Java's ConsumerOffsetSerializeWrapper
// offsetTable: "topic@group" → queue id → offset.
func (m *OffsetManager) Table() map[string]map[int32]int64 {
	out := make(map[string]map[int32]int64)
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, off := range m.table {
		key := offsetTableKey(k.topic, k.group)
		if out[key] == nil {
			out[key] = make(map[int32]int64)
		}
		out[key][k.queue] = off
	}
	return out
}

// Load commits every offset of a table from Table (a follower copying its
// leader's). Keys without "@" are skipped.
func (m *OffsetManager) Load(table map[string]map[int32]int64) {
	for key, qs := range table {
		i := strings.LastIndexByte(key, '@')
		if i <= 0 || i == len(key)-1 {
			continue
		}
		for q, off := range qs {
			m.Commit(key[i+1:], key[:i], q, off)
		}
	}
}
