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
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// Topic limits and reserved names (Java TopicValidator, MixAll; PROTOCOL.md §5, §8).
const (
	// MaxTopicNameLen is the longest topic name accepted (Java TOPIC_MAX_LENGTH).
	MaxTopicNameLen = 127
	// MaxQueueNums bounds a topic's read and write queue counts.
	MaxQueueNums = 1024
	// DefaultTopicQueueNums is the queue count of TBW102 when
	// TopicDefaults.QueueNums is zero (Java defaultTopicQueueNums).
	DefaultTopicQueueNums = 8

	// AutoCreateTopicKey is the template topic of auto-creation. Producers
	// fall back to its route for unknown topics (PROTOCOL.md §5).
	AutoCreateTopicKey = "TBW102"
	// RetryTopicPrefix starts the retry topic of a consumer group.
	RetryTopicPrefix = "%RETRY%"
	// DLQTopicPrefix starts the dead-letter topic of a consumer group.
	DLQTopicPrefix = "%DLQ%"
	// ScheduleTopic holds delayed messages until their delivery time.
	ScheduleTopic = "SCHEDULE_TOPIC_XXXX"
	// TransHalfTopic holds transactional half messages.
	TransHalfTopic = "RMQ_SYS_TRANS_HALF_TOPIC"
	// TransOpHalfTopic records the outcome of transactional half messages.
	TransOpHalfTopic = "RMQ_SYS_TRANS_OP_HALF_TOPIC"

	// retryQueueNums is the queue count of an auto-created retry or DLQ
	// topic (Java retryQueueNums, DLQ_NUMS_PER_GROUP).
	retryQueueNums = 1
	// autoCreateTopicPerm is TBW102's permission: inheritable, readable and
	// writable (Java PERM_INHERIT|PERM_READ|PERM_WRITE).
	autoCreateTopicPerm = int(remoting.PermInherit | remoting.PermReadWrite)
)

// Errors of topic validation and of the TopicManager. They are wrapped with
// the topic name; test with errors.Is.
var (
	// ErrInvalidTopicName: the name is empty, too long or has a character
	// outside [%|a-zA-Z0-9_-]. Send handlers answer it with RespMessageIllegal
	// or RespSystemError (Java answers SYSTEM_ERROR).
	ErrInvalidTopicName = errors.New("invalid topic name")
	// ErrInvalidTopicConfig: queue counts or permission out of range.
	ErrInvalidTopicConfig = errors.New("invalid topic config")
	// ErrTopicNotExist: Delete of an unknown topic, or AutoCreate of a topic
	// while auto-creation is disabled (answer RespTopicNotExist).
	ErrTopicNotExist = errors.New("topic does not exist")
	// ErrReservedTopic: the operation is not allowed on a reserved topic
	// (sending to TBW102 or SCHEDULE_TOPIC_XXXX, deleting TBW102 while
	// auto-creation is on, creating it while it is off).
	ErrReservedTopic = errors.New("reserved topic")
)

// TopicConfig is one topic's configuration on this broker. The JSON names
// are Java's TopicConfig names, so the table can be sent as is in a
// GET_ALL_TOPIC_CONFIG body or a name-server registration.
type TopicConfig struct {
	// Name is the topic name.
	Name string `json:"topicName"`
	// ReadQueues is the number of queues consumers read: ids 0..ReadQueues-1.
	ReadQueues int `json:"readQueueNums"`
	// WriteQueues is the number of queues producers write: ids 0..WriteQueues-1.
	WriteQueues int `json:"writeQueueNums"`
	// Perm is a combination of the remoting Perm bits; 6 (read+write) is normal.
	Perm int `json:"perm"`
	// SysFlag is Java's topicSysFlag (unit flags), stored and reported as is.
	SysFlag int `json:"topicSysFlag"`
	// Order marks an ordered topic.
	Order bool `json:"order"`
}

// Readable reports whether consumers may pull from the topic.
func (c TopicConfig) Readable() bool { return c.Perm&int(remoting.PermRead) != 0 }

// Writable reports whether producers may send to the topic.
func (c TopicConfig) Writable() bool { return c.Perm&int(remoting.PermWrite) != 0 }

// Validate checks the name, the queue counts (1..MaxQueueNums) and the
// permission: read and/or write, optionally with the inherit and priority
// bits, nothing else.
func (c TopicConfig) Validate() error {
	if err := ValidateTopicName(c.Name); err != nil {
		return err
	}
	if c.ReadQueues < 1 || c.ReadQueues > MaxQueueNums {
		return fmt.Errorf("%w: topic %q: read queue count %d outside 1..%d", ErrInvalidTopicConfig, c.Name, c.ReadQueues, MaxQueueNums)
	}
	if c.WriteQueues < 1 || c.WriteQueues > MaxQueueNums {
		return fmt.Errorf("%w: topic %q: write queue count %d outside 1..%d", ErrInvalidTopicConfig, c.Name, c.WriteQueues, MaxQueueNums)
	}
	const known = int(remoting.PermInherit | remoting.PermReadWrite | remoting.PermPriority)
	if c.Perm&^known != 0 || c.Perm&int(remoting.PermReadWrite) == 0 {
		return fmt.Errorf("%w: topic %q: perm %d must be 2 (write), 4 (read) or 6 (read+write), optionally plus 1 (inherit) or 8 (priority)", ErrInvalidTopicConfig, c.Name, c.Perm)
	}
	if c.SysFlag < 0 {
		return fmt.Errorf("%w: topic %q: negative sysFlag %d", ErrInvalidTopicConfig, c.Name, c.SysFlag)
	}
	return nil
}

// ValidateTopicName applies the RocketMQ 4.x rules: 1 to MaxTopicNameLen
// characters, each one of '%', '|', '_', '-', an ASCII letter or a digit.
// Reserved names pass (retry topics must); see CheckSendTopic.
func ValidateTopicName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidTopicName)
	}
	if len(name) > MaxTopicNameLen {
		return fmt.Errorf("%w: %.20q...: %d bytes, longer than %d", ErrInvalidTopicName, name, len(name), MaxTopicNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !remoting.ValidNameByte(name[i]) {
			return fmt.Errorf("%w: %q: byte %q at %d is not allowed (only letters, digits, '%%', '|', '_', '-')", ErrInvalidTopicName, name, name[i], i)
		}
	}
	return nil
}

// IsSystemTopic reports whether name is reserved for the broker or the
// clients: TBW102, and names starting with rmq_sys_, RMQ_SYS_, %RETRY%,
// %DLQ% or SCHEDULE_TOPIC_XXXX. Admin listings may hide them.
func IsSystemTopic(name string) bool {
	if name == AutoCreateTopicKey {
		return true
	}
	for _, p := range [...]string{"rmq_sys_", "RMQ_SYS_", RetryTopicPrefix, DLQTopicPrefix, ScheduleTopic} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// IsRetryTopic reports whether name is a consumer group's retry topic.
func IsRetryTopic(name string) bool { return strings.HasPrefix(name, RetryTopicPrefix) }

// IsDLQTopic reports whether name is a consumer group's dead-letter topic.
func IsDLQTopic(name string) bool { return strings.HasPrefix(name, DLQTopicPrefix) }

// RetryTopic returns the retry topic of a consumer group, %RETRY%<group>.
func RetryTopic(group string) string { return RetryTopicPrefix + group }

// DLQTopic returns the dead-letter topic of a consumer group, %DLQ%<group>.
func DLQTopic(group string) string { return DLQTopicPrefix + group }

// CheckSendTopic validates the topic of a message a client sends: a valid
// name that is not TBW102 nor an internal topic clients must not write to
// (SCHEDULE_TOPIC_XXXX, the transaction half and op topics). Java answers
// such sends with SYSTEM_ERROR / NO_PERMISSION.
func CheckSendTopic(name string) error {
	if err := ValidateTopicName(name); err != nil {
		return err
	}
	switch name {
	case AutoCreateTopicKey, ScheduleTopic, TransHalfTopic, TransOpHalfTopic:
		return fmt.Errorf("%w: clients may not send to %q", ErrReservedTopic, name)
	}
	return nil
}

// TopicDefaults configures auto-creation.
type TopicDefaults struct {
	// AutoCreate enables creating unknown topics on their first send (Java
	// autoCreateTopicEnable). When true the table always holds TBW102, which
	// the name server routes for producers of unknown topics; when false it
	// never does. Retry and DLQ topics are created on demand either way.
	AutoCreate bool
	// Queues is the queue count TBW102 gets when it is created; it caps
	// the queue count of auto-created topics. Zero means
	// DefaultTopicQueueNums. A TBW102 already in topics.json keeps its
	// stored config (an admin may have changed it).
	Queues int
}

// topicsFile is the JSON layout of topics.json, Java's
// TopicConfigSerializeWrapper.
type topicsFile struct {
	TopicConfigTable map[string]TopicConfig `json:"topicConfigTable"`
	DataVersion      dataVersion            `json:"dataVersion"`
}

// dataVersion is Java's DataVersion: it changes with every change of the
// topic table; name servers compare it to skip unchanged registrations.
type dataVersion struct {
	Timestamp int64 `json:"timestamp"`
	Counter   int64 `json:"counter"`
}

// topicState is an immutable snapshot of the table; readers load it
// without locking.
type topicState struct {
	topics  map[string]TopicConfig
	version dataVersion
}

// TopicManager is the broker's topic table, persisted in the broker's
// config directory (<data-dir>/config) as a snapshot, topics.json in
// RocketMQ's layout, rewritten atomically (temporary file, fsync, rename,
// directory fsync), and a journal of the changes since, topics.log (see
// topicslog.go): a change is durable once its journal line is synced, and
// opening the table compacts the journal into the snapshot. Reads (Get, List) take
// no lock: they load an immutable snapshot that writers replace, so the
// send and pull paths never wait for a write's fsync. Safe for concurrent
// use.
type TopicManager struct {
	path     string
	log      *slog.Logger
	defaults TopicDefaults
	now      func() time.Time // clock for DataVersion timestamps; tests replace it

	mu sync.Mutex // serializes writers: build, persist, publish
	// snapSize and logSize are the sizes of topics.json and of its journal
	// topics.log (guarded by mu).
	snapSize, logSize int64
	compactMin        int64 // minCompactBytes
	state             atomic.Pointer[topicState]
	changed           chan struct{}
}

// OpenTopicManager loads <dir>/topics.json, dir being the broker's config
// directory (<data-dir>/config), which it creates if needed; a missing file is an empty table. A file that cannot be parsed, or
// holds an invalid config, is an error naming the path: the table is never
// reset silently. TBW102 is then added or removed to match
// defaults.AutoCreate (and the file rewritten). log may be nil.
func OpenTopicManager(dir string, defaults TopicDefaults, log *slog.Logger) (*TopicManager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if defaults.Queues == 0 {
		defaults.Queues = DefaultTopicQueueNums
	}
	if defaults.Queues < 1 || defaults.Queues > MaxQueueNums {
		return nil, fmt.Errorf("open topics: default queue count %d outside 1..%d", defaults.Queues, MaxQueueNums)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open topics: %w", err)
	}
	m := &TopicManager{
		path:       filepath.Join(dir, "topics.json"),
		log:        log,
		defaults:   defaults,
		now:        time.Now,
		changed:    make(chan struct{}, 1),
		compactMin: minCompactBytes,
	}
	st, err := m.load()
	if err != nil {
		return nil, err
	}
	if m.logSize > 0 {
		// Start from a snapshot that holds everything, in RocketMQ's
		// layout, with an empty journal.
		if err := m.compact(st.topics, st.version); err != nil {
			return nil, fmt.Errorf("open topics: %w", err)
		}
	}
	m.state.Store(st)
	err = m.update(func(t map[string]TopicConfig) (bool, error) {
		_, ok := t[AutoCreateTopicKey]
		switch {
		case defaults.AutoCreate && !ok:
			t[AutoCreateTopicKey] = TopicConfig{
				Name:        AutoCreateTopicKey,
				ReadQueues:  defaults.Queues,
				WriteQueues: defaults.Queues,
				Perm:        autoCreateTopicPerm,
			}
			return true, nil
		case !defaults.AutoCreate && ok:
			delete(t, AutoCreateTopicKey)
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("open topics: %w", err)
	}
	return m, nil
}

func (m *TopicManager) load() (*topicState, error) {
	removeStaleTemp(m.path, m.log)
	b, err := os.ReadFile(m.path)
	if errors.Is(err, fs.ErrNotExist) {
		b, err = []byte(`{}`), nil
	}
	if err != nil {
		return nil, fmt.Errorf("open topics: %w", err)
	}
	var f topicsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("open topics: corrupt %s: %w", m.path, err)
	}
	if f.TopicConfigTable == nil {
		f.TopicConfigTable = map[string]TopicConfig{}
	}
	for name, c := range f.TopicConfigTable {
		if c.Name != name {
			return nil, fmt.Errorf("open topics: corrupt %s: entry %q holds topic %q", m.path, name, c.Name)
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("open topics: corrupt %s: %w", m.path, err)
		}
	}
	m.snapSize = int64(len(b))
	st := &topicState{topics: f.TopicConfigTable, version: f.DataVersion}
	if err := m.replayLog(st); err != nil {
		return nil, err
	}
	m.log.Info("topics loaded", "path", m.path, "topics", len(st.topics),
		"dataVersionCounter", st.version.Counter, "journal_bytes", m.logSize)
	return st, nil
}

// update applies fn to a copy of the table. If fn reports a change, the copy
// is persisted with the next data version, published, and Changed is
// signalled; if fn or the write fails the table stays as it was.
func (m *TopicManager) update(fn func(t map[string]TopicConfig) (changed bool, err error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.state.Load()
	next := maps.Clone(cur.topics)
	changed, err := fn(next)
	if err != nil || !changed {
		return err
	}
	v := dataVersion{Timestamp: m.now().UnixMilli(), Counter: cur.version.Counter + 1}
	if err := m.persist(cur, next, v); err != nil {
		return err
	}
	m.state.Store(&topicState{topics: next, version: v})
	select {
	case m.changed <- struct{}{}:
	default:
	}
	return nil
}

// Get returns the config of a topic.
func (m *TopicManager) Get(name string) (TopicConfig, bool) {
	c, ok := m.state.Load().topics[name]
	return c, ok
}

// List returns every topic config, TBW102 and other system topics
// included, sorted by name.
func (m *TopicManager) List() []TopicConfig {
	topics, _ := m.snapshot()
	return topics
}

// DataVersion returns the table's current version: the time of the last
// change (ms since the epoch) and a counter that every change increments.
// Both persist across restarts.
func (m *TopicManager) DataVersion() (timestamp, counter int64) {
	v := m.state.Load().version
	return v.Timestamp, v.Counter
}

// Snapshot returns List and DataVersion taken together, as a name-server
// registration needs them.
func (m *TopicManager) Snapshot() (topics []TopicConfig, timestamp, counter int64) {
	topics, v := m.snapshot()
	return topics, v.Timestamp, v.Counter
}

func (m *TopicManager) snapshot() ([]TopicConfig, dataVersion) {
	st := m.state.Load()
	out := slices.Collect(maps.Values(st.topics))
	slices.SortFunc(out, func(a, b TopicConfig) int { return strings.Compare(a.Name, b.Name) })
	return out, st.version
}

// Changed returns a channel that receives a value after the table changes,
// so the broker can re-register with the name servers at once instead of
// at its next periodic registration. The channel has a buffer of one and
// signals coalesce: one receive may stand for several changes; read the
// current state after it. Meant for a single receiver.
func (m *TopicManager) Changed() <-chan struct{} { return m.changed }

// CreateOrUpdate validates cfg and stores it, replacing any config of the
// same name. Storing a config equal to the current one changes nothing. It
// fails with ErrReservedTopic for TBW102 while auto-creation is disabled.
func (m *TopicManager) CreateOrUpdate(cfg TopicConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Name == AutoCreateTopicKey && !m.defaults.AutoCreate {
		return fmt.Errorf("%w: %s exists only while topic auto-creation is enabled", ErrReservedTopic, AutoCreateTopicKey)
	}
	var old TopicConfig
	var existed bool
	err := m.update(func(t map[string]TopicConfig) (bool, error) {
		old, existed = t[cfg.Name]
		if existed && old == cfg {
			return false, nil
		}
		t[cfg.Name] = cfg
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("create topic %q: %w", cfg.Name, err)
	}
	switch {
	case !existed:
		m.log.Info("topic created", "topic", cfg.Name, "readQueues", cfg.ReadQueues,
			"writeQueues", cfg.WriteQueues, "perm", cfg.Perm, "order", cfg.Order)
	case old != cfg:
		m.log.Info("topic updated", "topic", cfg.Name, "readQueues", cfg.ReadQueues,
			"writeQueues", cfg.WriteQueues, "perm", cfg.Perm, "order", cfg.Order)
	}
	return nil
}

// Delete removes a topic's config (not its messages). It fails with
// ErrTopicNotExist if there is none, which an idempotent admin delete may
// ignore, and with ErrReservedTopic for TBW102 while auto-creation is on.
func (m *TopicManager) Delete(name string) error {
	if name == AutoCreateTopicKey && m.defaults.AutoCreate {
		return fmt.Errorf("%w: %s is needed while topic auto-creation is enabled", ErrReservedTopic, AutoCreateTopicKey)
	}
	err := m.update(func(t map[string]TopicConfig) (bool, error) {
		if _, ok := t[name]; !ok {
			return false, fmt.Errorf("%w: %q", ErrTopicNotExist, name)
		}
		delete(t, name)
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("delete topic: %w", err)
	}
	m.log.Info("topic deleted", "topic", name)
	return nil
}

// AutoCreate returns the config of a topic, creating it if it does not
// exist; created reports whether this call created it. The send path calls
// it for an unknown topic, with queues = the request's defaultTopicQueueNums.
//
//   - Retry (%RETRY%group) and dead-letter (%DLQ%group) topics are always
//     created, with 1 queue and perm 6 (Java 4.x makes DLQs write-only;
//     Strata lets them be consumed).
//   - Other topics need TopicDefaults.AutoCreate (else ErrTopicNotExist)
//     and an inheritable TBW102; they get min(queues, TBW102's write queue
//     count) read and write queues (TBW102's count if queues < 1), and
//     TBW102's perm without the inherit bit.
//   - Names CheckSendTopic refuses fail with ErrReservedTopic, invalid
//     names with ErrInvalidTopicName.
func (m *TopicManager) AutoCreate(name string, queues int) (cfg TopicConfig, created bool, err error) {
	if c, ok := m.Get(name); ok {
		return c, false, nil
	}
	if err := CheckSendTopic(name); err != nil {
		return TopicConfig{}, false, fmt.Errorf("auto-create topic: %w", err)
	}
	err = m.update(func(t map[string]TopicConfig) (bool, error) {
		if c, ok := t[name]; ok { // created meanwhile by another sender
			cfg = c
			return false, nil
		}
		if IsRetryTopic(name) || IsDLQTopic(name) {
			cfg = TopicConfig{Name: name, ReadQueues: retryQueueNums, WriteQueues: retryQueueNums, Perm: int(remoting.PermReadWrite)}
		} else {
			tpl, ok := t[AutoCreateTopicKey]
			if !m.defaults.AutoCreate || !ok {
				return false, fmt.Errorf("%w: %q (auto-creation is disabled)", ErrTopicNotExist, name)
			}
			if tpl.Perm&int(remoting.PermInherit) == 0 {
				return false, fmt.Errorf("%w: %q (auto-creation is disabled: %s is not inheritable, perm %d)", ErrTopicNotExist, name, AutoCreateTopicKey, tpl.Perm)
			}
			n := tpl.WriteQueues
			if queues >= 1 && queues < n {
				n = queues
			}
			cfg = TopicConfig{Name: name, ReadQueues: n, WriteQueues: n, Perm: tpl.Perm &^ int(remoting.PermInherit)}
		}
		t[name] = cfg
		created = true
		return true, nil
	})
	if err != nil {
		return TopicConfig{}, false, fmt.Errorf("auto-create topic: %w", err)
	}
	if created {
		m.log.Info("topic auto-created", "topic", name, "queues", cfg.WriteQueues, "perm", cfg.Perm)
	}
	return cfg, created, nil
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new file: it writes path.tmp, fsyncs it, renames it over path
// and fsyncs the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return syncDir(path)
}

// removeStaleTemp deletes the temporary file a crash inside
// writeFileAtomic may have left; the real file is intact.
func removeStaleTemp(path string, log *slog.Logger) {
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err == nil {
		log.Info("removed stale temporary file", "path", tmp)
	}
}

// replaceAll makes the table equal to table (a follower copying its
// leader's), skipping configs that do not validate.
func (m *TopicManager) replaceAll(table map[string]TopicConfig) error {
	return m.update(func(t map[string]TopicConfig) (bool, error) {
		changed := false
		for name := range t {
			if _, ok := table[name]; !ok {
				delete(t, name)
				changed = true
			}
		}
		for name, cfg := range table {
			if cfg.Name != name || cfg.Validate() != nil {
				continue
			}
			if old, ok := t[name]; !ok || old != cfg {
				t[name] = cfg
				changed = true
			}
		}
		return changed, nil
	})
}
