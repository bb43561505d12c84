package broker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
)

// Transactional messages, as RocketMQ 4.x brokers serve them.
//
// A send whose sysFlag says PREPARED (or whose TRAN_MSG property is true)
// is a half message: it is stored in RMQ_SYS_TRANS_HALF_TOPIC queue 0, its
// real topic and queue in the REAL_TOPIC / REAL_QID properties, so
// consumers of the real topic do not see it (the half topic has no topic
// config: no route, no pull). The producer then sends END_TRANSACTION:
// commit re-stores the message in its real topic; commit and rollback both
// record the outcome as an "op" message in RMQ_SYS_TRANS_OP_HALF_TOPIC
// queue 0 whose body is the half message's queue offset in decimal and
// whose tag is "d" (Java's format), in the same store append as the
// committed message. A transaction is identified by that half queue
// offset; a second END_TRANSACTION for it (a duplicate, or an answer to a
// check that crossed the producer's own commit) changes nothing.
//
// Check-back: a background loop walks the half queue in order. A half
// message still unresolved TransactionTimeout after it was stored (or
// after its CHECK_IMMUNITY_TIME_IN_SECONDS, if longer) becomes "pending":
// the loop sends CHECK_TRANSACTION_STATE to a live connection of its
// producer group every TransactionCheckInterval, and the producer answers
// with END_TRANSACTION. After TransactionCheckMax checks without an answer
// the message is rolled back (an op record, and a warning in the log).
// While no connection of the group is known no check is counted; if none
// appears within ClientTimeout the message is rolled back too. Unlike
// Java, unresolved half messages are not re-appended for each check: the
// check count lives in the broker's state below.
//
// Progress: the scan position ("frontier": every half offset below it has
// been looked at), the pending messages with their check counts, the
// transactions resolved ahead of the frontier and the op-queue offset up
// to which all that is accounted for are kept in memory and saved to
// <data-dir>/config/transactions.json after each round that changed them
// and on shutdown. At startup the file is loaded and the op records
// written after it are replayed, so a crash loses no outcome; without the
// file everything is rebuilt from the op topic and a scan of the half
// queue. A transaction is resolved if its half offset is at or above the
// frontier and in the resolved set, or below the frontier and not pending;
// both sets stay small (the frontier trails the newest half message by
// about TransactionTimeout, and pending messages are resolved or given up
// within TransactionCheckMax checks).

const (
	// propCheckImmunity lets a producer delay the first check of its half
	// message (seconds; Java MessageConst.PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS).
	propCheckImmunity = "CHECK_IMMUNITY_TIME_IN_SECONDS"
	// propTransactionID is the client's transaction id property.
	propTransactionID = "__transactionId__"
	// opRemoveTag tags op records (Java TransactionalMessageUtil.REMOVETAG).
	opRemoveTag = "d"
	// txnStateFile holds the check-back progress in the config directory.
	txnStateFile = "transactions.json"
	// txnStateVersion is the format version of txnStateFile.
	txnStateVersion = 1
	// txnScanBatch is how many half messages the scan reads at once.
	txnScanBatch = 64
	// Transaction types of END_TRANSACTION's commitOrRollback (Java
	// MessageSysFlag TRANSACTION_*_TYPE).
	txnUnknown  = 0
	txnCommit   = int32(remoting.SysFlagTxCommit)
	txnRollback = int32(remoting.SysFlagTxRollback)
)

// ErrNotHalfMessage is returned (wrapped) when END_TRANSACTION names a
// commit-log offset that does not hold a half message of that producer
// group at that queue offset.
var ErrNotHalfMessage = errors.New("not a half message of this transaction")

// txnPending is a half message past its timeout and not resolved yet.
type txnPending struct {
	logOffset int64
	checks    int       // CHECK_TRANSACTION_STATE requests sent
	due       time.Time // time of the next check
	// noProducer is when a check first found no connection of the
	// producer group (zero: a connection was found the last time).
	noProducer time.Time
}

// txnService owns the transaction state of a broker.
type txnService struct {
	b   *Broker
	log *slog.Logger

	timeout   time.Duration
	interval  time.Duration
	maxChecks int
	path      string

	// resolveMu is held shared by every resolution across its store append
	// and the in-memory update, and exclusively by snapshot, so a snapshot
	// never counts an op record whose effect it does not hold.
	resolveMu sync.RWMutex

	mu       sync.Mutex
	frontier int64
	resolved map[int64]struct{}    // resolved half offsets >= frontier
	pending  map[int64]*txnPending // unresolved half offsets < frontier
	inflight map[int64]struct{}    // half offsets being resolved now
	senders  map[string]*remoting.Conn
	dirty    bool

	saveMu sync.Mutex // serializes writes of the state file
}

// txnStateJSON is the layout of transactions.json:
//
//	{"version":1,"frontier":120,"opNext":97,"resolved":[[120,135],[137,137]],
//	 "pending":[{"offset":101,"logOffset":123456,"checks":2}]}
//
// resolved holds inclusive ranges of half offsets, sorted; most
// transactions end at once, so the resolved offsets ahead of the frontier
// form a few long runs.
type txnStateJSON struct {
	Version  int              `json:"version"`
	Frontier int64            `json:"frontier"`
	OpNext   int64            `json:"opNext"`
	Resolved [][2]int64       `json:"resolved,omitempty"`
	Pending  []txnPendingJSON `json:"pending,omitempty"`
}

// maxTxnResolved bounds the resolved offsets a state file may name (memory
// for a corrupt file); the set holds about TransactionTimeout plus
// TransactionCheckInterval worth of transactions.
const maxTxnResolved = 1 << 24

type txnPendingJSON struct {
	Offset    int64 `json:"offset"`
	LogOffset int64 `json:"logOffset"`
	Checks    int   `json:"checks"`
}

// parseTxnState decodes and validates transactions.json. It never panics.
func parseTxnState(data []byte) (txnStateJSON, error) {
	var s txnStateJSON
	if err := json.Unmarshal(data, &s); err != nil {
		return txnStateJSON{}, err
	}
	if s.Version != txnStateVersion {
		return txnStateJSON{}, fmt.Errorf("version %d, want %d", s.Version, txnStateVersion)
	}
	if s.Frontier < 0 || s.OpNext < 0 {
		return txnStateJSON{}, fmt.Errorf("negative offset (frontier %d, opNext %d)", s.Frontier, s.OpNext)
	}
	n, prev := int64(0), s.Frontier-1
	for _, r := range s.Resolved {
		if r[0] <= prev || r[1] < r[0] {
			return txnStateJSON{}, fmt.Errorf("resolved range %v not above %d and in order (frontier %d)", r, prev, s.Frontier)
		}
		if n += r[1] - r[0] + 1; n > maxTxnResolved || n < 0 {
			return txnStateJSON{}, fmt.Errorf("more than %d resolved offsets", maxTxnResolved)
		}
		prev = r[1]
	}
	for _, p := range s.Pending {
		if p.Offset < 0 || p.Offset >= s.Frontier || p.LogOffset < 0 || p.Checks < 0 {
			return txnStateJSON{}, fmt.Errorf("pending entry %+v out of range (frontier %d)", p, s.Frontier)
		}
	}
	return s, nil
}

func newTxnService(b *Broker, confDir string) *txnService {
	return &txnService{
		b: b, log: b.log.With("component", "transaction"),
		timeout: b.cfg.TransactionTimeout, interval: b.cfg.TransactionCheckInterval, maxChecks: b.cfg.TransactionCheckMax,
		path:     filepath.Join(confDir, txnStateFile),
		resolved: map[int64]struct{}{}, pending: map[int64]*txnPending{},
		inflight: map[int64]struct{}{}, senders: map[string]*remoting.Conn{},
	}
}

// load restores the state from the file (if any) and the op records
// written after it.
func (t *txnService) load(ctx context.Context) error {
	st := t.b.store
	removeStaleTemp(t.path, t.log)
	opFrom := st.MinOffset(TransOpHalfTopic, 0)
	data, err := os.ReadFile(t.path)
	switch {
	case err == nil:
		s, err := parseTxnState(data)
		if err != nil {
			return fmt.Errorf("broker: %s: %w", t.path, err)
		}
		t.frontier = s.Frontier
		for _, r := range s.Resolved {
			for o := r[0]; o <= r[1]; o++ {
				t.resolved[o] = struct{}{}
			}
		}
		for _, p := range s.Pending {
			t.pending[p.Offset] = &txnPending{logOffset: p.LogOffset, checks: p.Checks}
		}
		opFrom = max(opFrom, s.OpNext)
	case errors.Is(err, fs.ErrNotExist):
		t.frontier = st.MinOffset(TransHalfTopic, 0)
	default:
		return fmt.Errorf("broker: read %s: %w", t.path, err)
	}
	replayed := 0
	for off := opFrom; ; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("broker: replay transaction op records: %w", err)
		}
		r, err := st.Get(TransOpHalfTopic, 0, off, 256, 1<<20, nil)
		if err != nil {
			return fmt.Errorf("broker: replay transaction op records at %d: %w", off, err)
		}
		if r.Status == store.OffsetTooSmall || r.Status == store.MessageRemoved {
			t.log.Warn("transaction op records are gone from the hot tier; replaying from the oldest left", "from", off, "to", r.MinOffset)
			off = max(r.NextOffset, r.MinOffset, off+1)
			continue
		}
		if r.Status != store.Found && r.Status != store.NoMatchedMessage {
			break
		}
		for _, rec := range r.Records {
			m, err := remoting.DecodeMessageExt(rec)
			if err != nil {
				t.log.Error("undecodable transaction op record; skipped", "err", err)
				continue
			}
			half, err := strconv.ParseInt(string(m.Body), 10, 64)
			if err != nil || half < 0 {
				t.log.Error("transaction op record with a bad body; skipped", "op_offset", m.QueueOffset, "body", fmt.Sprintf("%.40q", m.Body))
				continue
			}
			t.markResolvedLocked(half)
			replayed++
		}
		off = r.NextOffset
	}
	t.dirty = replayed > 0
	t.log.Info("transactions loaded", "frontier", t.frontier, "pending", len(t.pending),
		"resolved_ahead", len(t.resolved), "op_records_replayed", replayed)
	return nil
}

// markResolvedLocked records the outcome of the transaction at half offset
// half. Called with t.mu held (or before the service is shared).
func (t *txnService) markResolvedLocked(half int64) {
	if half >= t.frontier {
		t.resolved[half] = struct{}{}
	} else {
		delete(t.pending, half)
	}
	t.dirty = true
}

// isResolvedLocked reports whether the transaction at half offset half has
// an outcome. Called with t.mu held.
func (t *txnService) isResolvedLocked(half int64) bool {
	if half >= t.frontier {
		_, ok := t.resolved[half]
		return ok
	}
	_, ok := t.pending[half]
	return !ok
}

// noteProducer remembers c as a connection of producer group: producers
// reach the broker before their first heartbeat names their group (and
// after a broker restart, until their next heartbeat, up to 30 s later).
func (t *txnService) noteProducer(group string, c *remoting.Conn) {
	if group == "" || c == nil {
		return
	}
	t.mu.Lock()
	t.senders[group] = c
	t.mu.Unlock()
}

// producerConn returns a live connection of the producer group: the member
// that sent the latest heartbeat, else the latest connection that sent a
// half message or END_TRANSACTION for the group.
func (t *txnService) producerConn(group string) *remoting.Conn {
	if h, ok := t.b.clients.ProducerConn(group); ok {
		if c, ok := h.(*remoting.Conn); ok && c.Err() == nil {
			return c
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.senders[group]
	if c != nil && c.Err() != nil {
		delete(t.senders, group)
		c = nil
	}
	return c
}

// forgetConn drops a closed connection from the senders.
func (t *txnService) forgetConn(c *remoting.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for g, s := range t.senders {
		if s == c {
			delete(t.senders, g)
		}
	}
}

// halfMessage turns a message bound for its real topic into a half message
// of producer group group.
func halfMessage(m *remoting.MessageExt, group string) {
	props := make([]byte, 0, len(m.Properties)+len(group)+64)
	props = append(props, m.Properties...)
	props = remoting.AppendProperty(props, remoting.PropRealTopic, m.Topic)
	props = remoting.AppendProperty(props, remoting.PropRealQID, strconv.Itoa(int(m.QueueID)))
	if _, ok := remoting.PropertyValue(m.Properties, remoting.PropPGroup); !ok && group != "" {
		props = remoting.AppendProperty(props, remoting.PropPGroup, group)
	}
	if _, ok := remoting.PropertyValue(m.Properties, remoting.PropUniqKey); !ok {
		// The transaction id and the checks' msgId.
		props = remoting.AppendProperty(props, remoting.PropUniqKey, newUniqID())
	}
	m.Properties = props
	m.Topic = TransHalfTopic
	m.QueueID = 0
	m.SysFlag = m.SysFlag&^remoting.SysFlagTxMask | remoting.SysFlagTxPrepared
}

// isHalfSend reports whether a send is a transactional half message.
func isHalfSend(sysFlag int32, props []byte) bool {
	if sysFlag&remoting.SysFlagTxMask == remoting.SysFlagTxPrepared {
		return true
	}
	v, ok := remoting.PropertyValue(props, remoting.PropTranMsg)
	return ok && (string(v) == "true" || string(v) == "TRUE" || string(v) == "True")
}

// committedMessage builds the message a commit stores in the real topic:
// the half message with its real topic and queue back, without
// REAL_TOPIC, REAL_QID and TRAN_MSG, transaction type COMMIT and the half
// message's commit-log offset as prepared-transaction offset.
func (t *txnService) committedMessage(half remoting.MessageExt) (remoting.MessageExt, error) {
	props := remoting.ParseProperties(half.Properties)
	topic, qs := props[remoting.PropRealTopic], props[remoting.PropRealQID]
	qid, err := strconv.Atoi(qs)
	if topic == "" || err != nil || qid < 0 || qid >= store.MaxQueueID {
		return remoting.MessageExt{}, fmt.Errorf("%w: half message at %d has no valid REAL_TOPIC/REAL_QID (%q, %q)", ErrNotHalfMessage, half.PhysicalOffset, topic, qs)
	}
	delete(props, remoting.PropRealTopic)
	delete(props, remoting.PropRealQID)
	delete(props, remoting.PropTranMsg)
	m := remoting.MessageExt{
		Topic: topic, QueueID: int32(qid), Flag: half.Flag,
		SysFlag:       half.SysFlag&^remoting.SysFlagTxMask | remoting.SysFlagTxCommit,
		BornTimestamp: half.BornTimestamp, BornHost: half.BornHost, ReconsumeTimes: half.ReconsumeTimes,
		PreparedTransactionOffset: half.PhysicalOffset, Body: half.Body, Properties: remoting.EncodeProperties(props),
	}
	if tc, ok := t.b.topics.Get(topic); ok && tc.WriteQueues > 0 && qid >= tc.WriteQueues {
		m.QueueID = int32(qid % tc.WriteQueues)
	}
	// A delayed transactional message is delayed from its commit on.
	if err := t.b.sched.divert(&m); err != nil {
		return remoting.MessageExt{}, err
	}
	return m, nil
}

// opMessage is the op record of the transaction at half offset half.
func (t *txnService) opMessage(half int64) remoting.MessageExt {
	return remoting.MessageExt{
		Topic: TransOpHalfTopic, BornTimestamp: time.Now().UnixMilli(),
		BornHost: t.b.storeHost, Body: []byte(strconv.FormatInt(half, 10)),
		Properties: remoting.AppendProperty(nil, remoting.PropTags, opRemoveTag),
	}
}

// end resolves the transaction of the half message m (decoded from the
// half queue): commit stores it in its real topic, and both outcomes store
// an op record. It reports duplicate (and stores nothing) when the
// transaction already has an outcome or is being resolved.
func (t *txnService) end(ctx context.Context, m remoting.MessageExt, commit bool) (duplicate bool, err error) {
	half := m.QueueOffset
	var msgs []remoting.MessageExt
	if commit {
		cm, err := t.committedMessage(m)
		if err != nil {
			return false, err
		}
		msgs = append(msgs, cm)
	}
	msgs = append(msgs, t.opMessage(half))

	t.resolveMu.RLock()
	defer t.resolveMu.RUnlock()
	t.mu.Lock()
	if _, busy := t.inflight[half]; busy || t.isResolvedLocked(half) {
		t.mu.Unlock()
		return true, nil
	}
	t.inflight[half] = struct{}{}
	t.mu.Unlock()

	// The committed message and the op record go in one append: both are
	// stored or neither (a crash can still keep the message and tear off
	// the op record behind it; the transaction is then checked again).
	ok := func(err error) bool { return err == nil || errors.Is(err, store.ErrFlushTimeout) }
	err = t.b.store.Append(ctx, msgs)
	stored := ok(err)
	if errors.Is(err, store.ErrMessageTooLarge) && len(msgs) > 1 {
		// Only with a store limit below the broker's: one at a time.
		if err = t.b.store.Append(ctx, msgs[:1]); ok(err) {
			stored = true // resolved for this run even if the op record fails
			if err = t.b.store.Append(ctx, msgs[1:]); !ok(err) {
				t.log.Error("transaction committed but its op record was not stored; it may be checked again after a restart", "half_offset", half, "err", err)
			}
		}
	}
	t.mu.Lock()
	delete(t.inflight, half)
	if stored {
		t.markResolvedLocked(half)
	}
	t.mu.Unlock()
	if !stored {
		return false, fmt.Errorf("store the outcome of transaction %d: %w", half, err)
	}
	if commit {
		cm := &msgs[0]
		label := cm.Topic
		if rt, ok := remoting.PropertyValue(cm.Properties, remoting.PropRealTopic); ok && label == scheduleTopic {
			label = string(rt)
		}
		t.b.metrics.msgsIn.WithLabelValues(label).Inc()
		t.b.metrics.bytesIn.WithLabelValues(label).Add(float64(len(cm.Body)))
	}
	return false, nil
}

// handleEndTransaction is END_TRANSACTION: the producer's outcome of a
// local transaction, sent after the half message or in answer to a check.
// Clients send it oneway-style; the broker answers anyway (harmless).
func (b *Broker) handleEndTransaction(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	group := req.Ext("producerGroup")
	if group == "" {
		return errResponse(req, remoting.RespSystemError, `header field "producerGroup" is missing`)
	}
	kind, err := req.ExtInt32("commitOrRollback")
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	tso, err := req.ExtInt64("tranStateTableOffset")
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	clo, err := req.ExtInt64("commitLogOffset")
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	fromCheck := req.Ext("fromTransactionCheck") == "true"
	b.txn.noteProducer(group, c)
	log := b.txn.log.With("group", group, "half_offset", tso, "msg_id", req.Ext("msgId"), "from_check", fromCheck)
	switch kind {
	case txnUnknown:
		log.Debug("transaction state unknown; it will be checked", "remark", req.Remark)
		return okResponse(req, nil, nil)
	case txnCommit, txnRollback:
	default:
		return errResponse(req, remoting.RespSystemError, "commitOrRollback %d is not 0, 8 or 12", kind)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec, err := b.readAt(ctx, clo)
	if err != nil {
		log.Warn("END_TRANSACTION for an unknown half message", "commit_log_offset", clo, "err", err)
		return errResponse(req, remoting.RespSystemError, "find prepared transaction message at commit-log offset %d: %v", clo, err)
	}
	m, err := remoting.DecodeMessageExt(rec)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "prepared transaction message at %d: %v", clo, err)
	}
	if err := checkHalf(m, group, tso, clo); err != nil {
		log.Warn("END_TRANSACTION refused", "err", err)
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	commit := kind == txnCommit
	dup, err := b.txn.end(ctx, m, commit)
	if err != nil {
		log.Error("END_TRANSACTION failed", "commit", commit, "err", err)
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	switch {
	case dup:
		log.Debug("transaction already resolved; END_TRANSACTION ignored", "commit", commit)
	case commit:
		log.Debug("transaction committed")
	default:
		log.Debug("transaction rolled back", "remark", req.Remark)
	}
	return okResponse(req, nil, nil)
}

// checkHalf verifies that m, read at commit-log offset clo, is the half
// message of group at half queue offset tso (Java
// EndTransactionProcessor.checkPrepareMessage).
func checkHalf(m remoting.MessageExt, group string, tso, clo int64) error {
	if m.Topic != TransHalfTopic {
		return fmt.Errorf("%w: the message at commit-log offset %d is in topic %s", ErrNotHalfMessage, clo, m.Topic)
	}
	if pg, _ := remoting.PropertyValue(m.Properties, remoting.PropPGroup); string(pg) != group {
		return fmt.Errorf("%w: the producer group is %q, not %q", ErrNotHalfMessage, pg, group)
	}
	if m.QueueOffset != tso {
		return fmt.Errorf("%w: the transaction state table offset is %d, not %d", ErrNotHalfMessage, m.QueueOffset, tso)
	}
	if m.PhysicalOffset != clo {
		return fmt.Errorf("%w: the commit log offset is %d, not %d", ErrNotHalfMessage, m.PhysicalOffset, clo)
	}
	return nil
}

// loop runs a check round every interval until the broker shuts down.
func (t *txnService) loop() {
	defer t.b.wg.Done()
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		select {
		case <-t.b.quit:
			return
		case <-tick.C:
			t.round(time.Now())
		}
	}
}

// stopping reports whether the broker is shutting down.
func (t *txnService) stopping() bool {
	select {
	case <-t.b.quit:
		return true
	default:
		return false
	}
}

// round is one pass of the check-back: advance the frontier over the half
// messages old enough, check the pending ones that are due, save the state.
// now is a parameter so tests need not wait.
func (t *txnService) round(now time.Time) {
	t.scan(now)
	t.checkDue(now)
	if err := t.save(); err != nil {
		t.log.Warn("save transaction state", "err", err)
	}
}

// scan moves the frontier forward over the half messages stored at least
// the transaction timeout before now, making the unresolved ones pending.
func (t *txnService) scan(now time.Time) {
	st := t.b.store
	for !t.stopping() {
		t.mu.Lock()
		from := t.frontier
		t.mu.Unlock()
		r, err := st.Get(TransHalfTopic, 0, from, txnScanBatch, 1<<20, nil)
		if err != nil {
			t.log.Warn("read half messages", "offset", from, "err", err)
			return
		}
		switch r.Status {
		case store.Found:
		case store.NoMatchedMessage: // holes only
			t.advance(from, nil, r.NextOffset)
			continue
		case store.OffsetTooSmall, store.MessageRemoved, store.OffsetOverflowBadly:
			next := r.NextOffset
			if r.Status == store.MessageRemoved {
				next = st.MinOffset(TransHalfTopic, 0)
			}
			if next == from {
				return
			}
			t.log.Warn("half messages missing from the store; their transactions are dropped", "from", from, "to", next, "status", r.Status)
			t.advance(from, nil, next)
			continue
		default: // nothing (new) in the queue
			return
		}
		var found []txnFound
		next, stop := r.NextOffset, false
		for _, rec := range r.Records {
			m, err := remoting.DecodeMessageExt(rec)
			if err != nil {
				t.log.Error("undecodable half message; skipped", "err", err)
				continue
			}
			if now.Sub(time.UnixMilli(m.StoreTimestamp)) < t.timeout {
				next, stop = m.QueueOffset, true
				break
			}
			due := now
			if v, ok := remoting.PropertyValue(m.Properties, propCheckImmunity); ok {
				if s, err := strconv.ParseInt(string(v), 10, 64); err == nil && s > 0 && s < 1<<31 {
					if at := time.UnixMilli(m.StoreTimestamp).Add(time.Duration(s) * time.Second); at.After(due) {
						due = at
					}
				}
			}
			found = append(found, txnFound{offset: m.QueueOffset, logOffset: m.PhysicalOffset, due: due})
		}
		t.advance(from, found, next)
		if stop {
			return
		}
	}
}

// txnFound is a half message the scan passed.
type txnFound struct {
	offset, logOffset int64
	due               time.Time
}

// advance moves the frontier from from to next; found lists the half
// messages in between that may still be unresolved.
func (t *txnService) advance(from int64, found []txnFound, next int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.frontier != from || next == from {
		return
	}
	for _, f := range found {
		if f.offset < from || f.offset >= next {
			continue
		}
		if _, ok := t.resolved[f.offset]; ok {
			continue
		}
		t.pending[f.offset] = &txnPending{logOffset: f.logOffset, due: f.due}
	}
	for o := range t.resolved {
		if o < next {
			delete(t.resolved, o)
		}
	}
	if next < from { // the store lost messages the frontier had passed
		clear(t.resolved)
		for o := range t.pending {
			if o >= next {
				delete(t.pending, o)
			}
		}
	}
	t.frontier = next
	t.dirty = true
}

// checkDue sends CHECK_TRANSACTION_STATE for each pending half message
// whose check is due, and gives up on those checked too often or whose
// producer group has been gone too long.
func (t *txnService) checkDue(now time.Time) {
	t.mu.Lock()
	var due []int64
	for o, p := range t.pending {
		if _, busy := t.inflight[o]; !busy && !p.due.After(now) {
			due = append(due, o)
		}
	}
	t.mu.Unlock()
	slices.Sort(due)
	for _, o := range due {
		if t.stopping() {
			return
		}
		t.checkOne(now, o)
	}
}

// checkOne checks (or gives up on) the pending half message at offset o.
func (t *txnService) checkOne(now time.Time, o int64) {
	t.mu.Lock()
	p := t.pending[o]
	var pc txnPending
	if p != nil {
		pc = *p
	}
	t.mu.Unlock()
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec, err := t.b.readAt(ctx, pc.logOffset)
	var m remoting.MessageExt
	if err == nil {
		m, err = remoting.DecodeMessageExt(rec)
	}
	if err == nil && (m.Topic != TransHalfTopic || m.QueueOffset != o) {
		err = fmt.Errorf("%w: commit-log offset %d holds %s/%d", ErrNotHalfMessage, pc.logOffset, m.Topic, m.QueueOffset)
	}
	if err != nil {
		t.log.Error("pending half message unreadable; its transaction is dropped", "half_offset", o, "commit_log_offset", pc.logOffset, "err", err)
		t.mu.Lock()
		delete(t.pending, o)
		t.dirty = true
		t.mu.Unlock()
		return
	}
	pg, _ := remoting.PropertyValue(m.Properties, remoting.PropPGroup)
	group := string(pg)
	uniq, _ := remoting.PropertyValue(m.Properties, remoting.PropUniqKey)
	log := t.log.With("group", group, "half_offset", o, "msg_id", string(uniq))
	giveUp := func(why string) {
		if _, err := t.end(ctx, m, false); err != nil {
			log.Error("roll back unresolved transaction", "err", err)
			return
		}
		log.Warn("transaction rolled back: "+why, "checks", pc.checks, "stored", time.UnixMilli(m.StoreTimestamp))
	}
	if pc.checks >= t.maxChecks {
		giveUp(fmt.Sprintf("no outcome after %d checks", pc.checks))
		return
	}
	c := t.producerConn(group)
	if c != nil {
		err = c.InvokeOneway(ctx, t.checkRequest(m))
		if err != nil {
			log.Debug("send CHECK_TRANSACTION_STATE", "err", err)
		}
	}
	t.mu.Lock()
	p = t.pending[o]
	if p == nil {
		t.mu.Unlock()
		return
	}
	p.due = now.Add(t.interval / 2) // the next round
	abandon := false
	switch {
	case c != nil && err == nil:
		p.checks++
		p.noProducer = time.Time{}
		t.dirty = true // the check count is saved
		log.Debug("CHECK_TRANSACTION_STATE sent", "checks", p.checks)
	case p.noProducer.IsZero():
		p.noProducer = now
		log.Debug("no connection of the producer group to check a transaction; waiting for one")
	case now.Sub(p.noProducer) > t.b.cfg.ClientTimeout:
		abandon = true
	}
	t.mu.Unlock()
	if abandon {
		giveUp(fmt.Sprintf("no producer of the group connected for %v", t.b.cfg.ClientTimeout))
	}
}

// checkRequest builds CHECK_TRANSACTION_STATE for half message m. The body
// is the message with its real topic and queue back, as Java sends it;
// PGROUP names the producer group (the client ignores the request
// otherwise).
func (t *txnService) checkRequest(m remoting.MessageExt) *remoting.Command {
	uniq, _ := remoting.PropertyValue(m.Properties, remoting.PropUniqKey)
	txID, ok := remoting.PropertyValue(m.Properties, propTransactionID)
	if !ok || len(txID) == 0 {
		txID = uniq
	}
	offsetID := remoting.OffsetMsgID(m.StoreHost, m.PhysicalOffset)
	body := m
	if rt, ok := remoting.PropertyValue(m.Properties, remoting.PropRealTopic); ok && len(rt) > 0 {
		body.Topic = string(rt)
	}
	if rq, ok := remoting.PropertyValue(m.Properties, remoting.PropRealQID); ok {
		if q, err := strconv.Atoi(string(rq)); err == nil {
			body.QueueID = int32(q)
		}
	}
	if body.Validate() != nil {
		body.Topic = m.Topic
	}
	buf := make([]byte, body.Size())
	body.Encode(buf)
	return remoting.NewRequest(remoting.ReqCheckTransactionState, map[string]string{
		"tranStateTableOffset": strconv.FormatInt(m.QueueOffset, 10),
		"commitLogOffset":      strconv.FormatInt(m.PhysicalOffset, 10),
		"msgId":                string(uniq),
		"transactionId":        string(txID),
		"offsetMsgId":          offsetID,
	}, buf)
}

// snapshot returns the state to save, or false if nothing changed.
func (t *txnService) snapshot() (txnStateJSON, bool) {
	t.resolveMu.Lock()
	defer t.resolveMu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.dirty {
		return txnStateJSON{}, false
	}
	s := txnStateJSON{
		Version: txnStateVersion, Frontier: t.frontier,
		OpNext:   t.b.store.MaxOffset(TransOpHalfTopic, 0),
		Resolved: offsetRanges(slices.Sorted(maps.Keys(t.resolved))),
	}
	for o, p := range t.pending {
		s.Pending = append(s.Pending, txnPendingJSON{Offset: o, LogOffset: p.logOffset, Checks: p.checks})
	}
	slices.SortFunc(s.Pending, func(a, b txnPendingJSON) int { return cmp.Compare(a.Offset, b.Offset) })
	t.dirty = false
	return s, true
}

// offsetRanges folds sorted offsets into inclusive ranges.
func offsetRanges(offs []int64) [][2]int64 {
	var out [][2]int64
	for _, o := range offs {
		if n := len(out); n > 0 && out[n-1][1] == o-1 {
			out[n-1][1] = o
			continue
		}
		out = append(out, [2]int64{o, o})
	}
	return out
}

// save writes the state file if the state changed since the last save.
func (t *txnService) save() error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	s, changed := t.snapshot()
	if !changed {
		return nil
	}
	data, err := json.Marshal(s)
	if err == nil {
		err = writeFileAtomic(t.path, data)
	}
	if err != nil {
		t.mu.Lock()
		t.dirty = true
		t.mu.Unlock()
		return fmt.Errorf("broker: save transaction state: %w", err)
	}
	return nil
}

// txnStats describes the transaction check-back state (tests).
type txnStats struct {
	// Frontier is the half-queue offset the check-back scan has reached.
	Frontier int64
	// Pending counts half messages past their timeout with no outcome.
	Pending int
	// ResolvedAhead counts outcomes recorded ahead of the scan.
	ResolvedAhead int
}

// stats returns the check-back state.
func (t *txnService) stats() txnStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return txnStats{Frontier: t.frontier, Pending: len(t.pending), ResolvedAhead: len(t.resolved)}
}
