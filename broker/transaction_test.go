package broker

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
)

// newTxnBroker opens a broker (not serving) on dir with small transaction
// settings; mod may change the config.
func newTxnBroker(t *testing.T, dir string, mod func(*Config)) *Broker {
	t.Helper()
	cfg := Config{
		DataDir: dir, Listen: "127.0.0.1:0", AutoCreateTopics: true, MaxMessageSize: 256 << 10,
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
		Store:               store.Config{SegmentSize: 1 << 20},
		TransactionCheckMax: 3,
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := b.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return b
}

func shutdownNow(t *testing.T, b *Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// txnClient is a producer connection to a broker over an in-memory pipe;
// it records the CHECK_TRANSACTION_STATE requests the broker sends.
type txnClient struct {
	c      *remoting.Conn // client end
	server *remoting.Conn // broker end
	checks chan *remoting.Command
}

func newTxnClient(t *testing.T, b *Broker, group string) *txnClient {
	t.Helper()
	tc := &txnClient{checks: make(chan *remoting.Command, 64)}
	serverEnd, clientEnd := net.Pipe()
	peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41000}
	tc.server = remoting.NewConn(addrConn{serverEnd, peer}, remoting.ConnOptions{Handler: b})
	tc.c = remoting.NewConn(clientEnd, remoting.ConnOptions{Handler: remoting.HandlerFunc(func(_ *remoting.Conn, req *remoting.Command) {
		if req.Code == remoting.ReqCheckTransactionState {
			tc.checks <- req
		}
	})})
	t.Cleanup(func() { tc.c.Close(); tc.server.Close() })
	if group != "" {
		hb, _ := json.Marshal(HeartbeatData{ClientID: "127.0.0.1@" + group, ProducerDataSet: []ProducerData{{GroupName: group}}})
		if resp := invoke(t, tc.c, remoting.NewRequest(remoting.ReqHeartBeat, nil, hb)); resp.Code != remoting.RespSuccess {
			t.Fatalf("heartbeat: %d %s", resp.Code, resp.Remark)
		}
	}
	return tc
}

// sendHalf sends a transactional half message the way rocketmq-client-go
// does (SEND_MESSAGE, long header names, sysFlag 4, TRAN_MSG and PGROUP).
func (tc *txnClient) sendHalf(t *testing.T, group, topic string, queue int, body, uniq string, extra ...string) *remoting.Command {
	t.Helper()
	props := remoting.AppendProperty(nil, remoting.PropTranMsg, "true")
	props = remoting.AppendProperty(props, remoting.PropPGroup, group)
	props = remoting.AppendProperty(props, remoting.PropUniqKey, uniq)
	props = remoting.AppendProperty(props, remoting.PropTags, "tx")
	for i := 0; i+1 < len(extra); i += 2 {
		props = remoting.AppendProperty(props, extra[i], extra[i+1])
	}
	resp := invoke(t, tc.c, remoting.NewRequest(remoting.ReqSendMessage, map[string]string{
		"producerGroup": group, "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
		"queueId": strconv.Itoa(queue), "sysFlag": "4", "bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
		"flag": "0", "properties": string(props), "reconsumeTimes": "0", "unitMode": "false",
		"maxReconsumeTimes": "0", "batch": "false", "bname": "broker-a"}, []byte(body)))
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("send half message: %d %s", resp.Code, resp.Remark)
	}
	return resp
}

// halfRef is what END_TRANSACTION needs of a half message.
type halfRef struct {
	tso, clo int64
	msgID    string
}

func refOf(t *testing.T, resp *remoting.Command) halfRef {
	t.Helper()
	_, clo, err := remoting.ParseOffsetMsgID(resp.Ext("msgId"))
	if err != nil {
		t.Fatalf("send response msgId: %v", err)
	}
	tso, err := strconv.ParseInt(resp.Ext("queueOffset"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return halfRef{tso: tso, clo: clo, msgID: resp.Ext("transactionId")}
}

func (tc *txnClient) end(t *testing.T, group string, h halfRef, kind int, fromCheck bool) *remoting.Command {
	t.Helper()
	return invoke(t, tc.c, remoting.NewRequest(remoting.ReqEndTransaction, map[string]string{
		"producerGroup": group, "tranStateTableOffset": strconv.FormatInt(h.tso, 10),
		"commitLogOffset": strconv.FormatInt(h.clo, 10), "commitOrRollback": strconv.Itoa(kind),
		"fromTransactionCheck": strconv.FormatBool(fromCheck), "msgId": h.msgID, "transactionId": h.msgID, "bname": "broker-a"}, nil))
}

// nextCheck waits for a CHECK_TRANSACTION_STATE.
func (tc *txnClient) nextCheck(t *testing.T) *remoting.Command {
	t.Helper()
	select {
	case req := <-tc.checks:
		return req
	case <-time.After(10 * time.Second):
		t.Fatal("no CHECK_TRANSACTION_STATE")
		return nil
	}
}

func (tc *txnClient) noCheck(t *testing.T) {
	t.Helper()
	select {
	case req := <-tc.checks:
		t.Fatalf("unexpected CHECK_TRANSACTION_STATE %v", req.ExtFields)
	default:
	}
}

// messages returns the decoded messages of topic/queue.
func messages(t *testing.T, b *Broker, topic string, queue int32) []remoting.MessageExt {
	t.Helper()
	var out []remoting.MessageExt
	for off := int64(0); ; {
		r, err := b.store.Get(topic, queue, off, 32, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != store.Found {
			return out
		}
		for _, rec := range r.Records {
			m, err := remoting.DecodeMessageExt(rec)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
		off = r.NextOffset
	}
}

const (
	endUnknown  = 0
	endCommit   = 8
	endRollback = 12
)

// later is a time past the transaction timeout of messages stored now.
func later() time.Time { return time.Now().Add(7 * time.Second) }

func TestTransactionCommit(t *testing.T) {
	b := newTxnBroker(t, t.TempDir(), nil)
	tc := newTxnClient(t, b, "")
	resp := tc.sendHalf(t, "pg", "TxTopic", 2, "hello", "UNIQ0001", remoting.PropKeys, "k1")
	if resp.Ext("queueId") != "2" || resp.Ext("queueOffset") != "0" || len(resp.Ext("msgId")) != 32 || resp.Ext("transactionId") != "UNIQ0001" {
		t.Fatalf("half send response: %v", resp.ExtFields)
	}
	h := refOf(t, resp)
	if n := b.store.MaxOffset("TxTopic", 2); n != 0 {
		t.Fatalf("half message visible in its real topic: max offset %d", n)
	}
	half := messages(t, b, TransHalfTopic, 0)
	if len(half) != 1 || half[0].PhysicalOffset != h.clo || half[0].SysFlag&remoting.SysFlagTxMask != remoting.SysFlagTxPrepared {
		t.Fatalf("half queue: %+v", half)
	}
	// Consumers cannot reach the half topic.
	pull := invoke(t, tc.c, remoting.NewRequest(remoting.ReqPullMessage, map[string]string{
		"consumerGroup": "g", "topic": TransHalfTopic, "queueId": "0", "queueOffset": "0", "maxMsgNums": "32", "sysFlag": "0"}, nil))
	if pull.Code != remoting.RespTopicNotExist {
		t.Fatalf("pull of the half topic: %d %s", pull.Code, pull.Remark)
	}
	for _, tcfg := range b.topics.List() {
		if tcfg.Name == TransHalfTopic || tcfg.Name == TransOpHalfTopic {
			t.Fatalf("topic list shows %s", tcfg.Name)
		}
	}

	if r := tc.end(t, "pg", h, endCommit, false); r.Code != remoting.RespSuccess {
		t.Fatalf("commit: %d %s", r.Code, r.Remark)
	}
	got := messages(t, b, "TxTopic", 2)
	if len(got) != 1 {
		t.Fatalf("after commit: %d messages in the real topic", len(got))
	}
	m := got[0]
	props := remoting.ParseProperties(m.Properties)
	if string(m.Body) != "hello" || m.Topic != "TxTopic" || m.QueueID != 2 || m.QueueOffset != 0 {
		t.Errorf("committed message: %s/%d@%d %q", m.Topic, m.QueueID, m.QueueOffset, m.Body)
	}
	if m.SysFlag&remoting.SysFlagTxMask != remoting.SysFlagTxCommit || m.PreparedTransactionOffset != h.clo {
		t.Errorf("committed message: sysFlag %#x, prepared offset %d (half at %d)", m.SysFlag, m.PreparedTransactionOffset, h.clo)
	}
	for _, k := range []string{remoting.PropTranMsg, remoting.PropRealTopic, remoting.PropRealQID} {
		if _, ok := props[k]; ok {
			t.Errorf("committed message keeps property %s: %v", k, props)
		}
	}
	if props[remoting.PropUniqKey] != "UNIQ0001" || props[remoting.PropKeys] != "k1" || props[remoting.PropTags] != "tx" || props[remoting.PropPGroup] != "pg" {
		t.Errorf("committed message properties: %v", props)
	}
	ops := messages(t, b, TransOpHalfTopic, 0)
	if len(ops) != 1 || string(ops[0].Body) != "0" {
		t.Fatalf("op records: %+v", ops)
	}

	// A second commit (or a rollback) changes nothing.
	for _, kind := range []int{endCommit, endRollback, endCommit} {
		if r := tc.end(t, "pg", h, kind, true); r.Code != remoting.RespSuccess {
			t.Fatalf("repeated END_TRANSACTION %d: %d %s", kind, r.Code, r.Remark)
		}
	}
	if n := len(messages(t, b, "TxTopic", 2)); n != 1 {
		t.Fatalf("a repeated commit stored the message again: %d copies", n)
	}
	if n := len(messages(t, b, TransOpHalfTopic, 0)); n != 1 {
		t.Fatalf("%d op records after repeats", n)
	}
	// Nothing to check.
	b.txn.round(later())
	if st := b.txn.stats(); st.Pending != 0 || st.Frontier != 1 || st.ResolvedAhead != 0 {
		t.Fatalf("stats after round: %+v", st)
	}
	tc.noCheck(t)
}

func TestTransactionRollbackAndUnknown(t *testing.T) {
	b := newTxnBroker(t, t.TempDir(), nil)
	tc := newTxnClient(t, b, "")
	h := refOf(t, tc.sendHalf(t, "pg", "TxRb", 0, "no", "UNIQ0002"))
	if r := tc.end(t, "pg", h, endUnknown, false); r.Code != remoting.RespSuccess {
		t.Fatalf("unknown: %d %s", r.Code, r.Remark)
	}
	if n := len(messages(t, b, TransOpHalfTopic, 0)); n != 0 {
		t.Fatalf("unknown wrote %d op records", n)
	}
	if r := tc.end(t, "pg", h, endRollback, false); r.Code != remoting.RespSuccess {
		t.Fatalf("rollback: %d %s", r.Code, r.Remark)
	}
	if r := tc.end(t, "pg", h, endCommit, true); r.Code != remoting.RespSuccess {
		t.Fatalf("commit after rollback: %d %s", r.Code, r.Remark)
	}
	if n := b.store.MaxOffset("TxRb", 0); n != 0 {
		t.Fatalf("rolled-back message stored in its topic: %d", n)
	}
	if ops := messages(t, b, TransOpHalfTopic, 0); len(ops) != 1 || string(ops[0].Body) != "0" {
		t.Fatalf("op records: %+v", ops)
	}
}

// TestTransactionDelayed: a transactional message with a delay level is
// delayed from its commit on.
func TestTransactionDelayed(t *testing.T) {
	b := newTxnBroker(t, t.TempDir(), nil)
	tc := newTxnClient(t, b, "")
	h := refOf(t, tc.sendHalf(t, "pg", "TxDelay", 1, "later", "UNIQ0004", remoting.PropDelay, "2"))
	if n := b.store.MaxOffset(scheduleTopic, 1); n != 0 {
		t.Fatalf("the half message went to the schedule topic")
	}
	tc.end(t, "pg", h, endCommit, false)
	got := messages(t, b, scheduleTopic, 1)
	if len(got) != 1 {
		t.Fatalf("%d messages in the schedule topic's level 2 queue after the commit", len(got))
	}
	props := remoting.ParseProperties(got[0].Properties)
	if props[remoting.PropRealTopic] != "TxDelay" || props[remoting.PropRealQID] != "1" || props[remoting.PropTranMsg] != "" {
		t.Fatalf("delayed committed message properties: %v", props)
	}
}

func TestTransactionEndRefused(t *testing.T) {
	b := newTxnBroker(t, t.TempDir(), nil)
	tc := newTxnClient(t, b, "")
	h := refOf(t, tc.sendHalf(t, "pg", "TxBad", 0, "x", "UNIQ0003"))
	normal := invoke(t, tc.c, remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
		"a": "pg", "b": "TxBad", "e": "0", "f": "0", "i": "", "g": "0"}, []byte("plain")))
	if normal.Code != remoting.RespSuccess {
		t.Fatalf("plain send: %d %s", normal.Code, normal.Remark)
	}
	plain := refOf(t, normal)
	cases := map[string]func() *remoting.Command{
		"wrong group": func() *remoting.Command { return tc.end(t, "other", h, endCommit, false) },
		"wrong queue offset": func() *remoting.Command {
			return tc.end(t, "pg", halfRef{tso: h.tso + 1, clo: h.clo}, endCommit, false)
		},
		"not a record": func() *remoting.Command {
			return tc.end(t, "pg", halfRef{tso: h.tso, clo: h.clo + 1}, endCommit, false)
		},
		"past the log": func() *remoting.Command { return tc.end(t, "pg", halfRef{tso: h.tso, clo: 1 << 40}, endCommit, false) },
		"not a half": func() *remoting.Command {
			return tc.end(t, "pg", halfRef{tso: plain.tso, clo: plain.clo}, endCommit, false)
		},
		"bad kind": func() *remoting.Command { return tc.end(t, "pg", h, 4, false) },
		"no group": func() *remoting.Command { return tc.end(t, "", h, endCommit, false) },
		"no offsets": func() *remoting.Command {
			return invoke(t, tc.c, remoting.NewRequest(remoting.ReqEndTransaction, map[string]string{"producerGroup": "pg", "commitOrRollback": "8"}, nil))
		},
		"garbage offset": func() *remoting.Command {
			return invoke(t, tc.c, remoting.NewRequest(remoting.ReqEndTransaction, map[string]string{"producerGroup": "pg", "commitOrRollback": "8",
				"tranStateTableOffset": "0", "commitLogOffset": "-x"}, nil))
		},
	}
	for name, f := range cases {
		if r := f(); r.Code == remoting.RespSuccess {
			t.Errorf("%s: END_TRANSACTION accepted", name)
		}
	}
	if n := b.store.MaxOffset("TxBad", 0); n != 1 {
		t.Fatalf("refused END_TRANSACTIONs stored messages: max offset %d", n)
	}
	if n := len(messages(t, b, TransOpHalfTopic, 0)); n != 0 {
		t.Fatalf("refused END_TRANSACTIONs wrote %d op records", n)
	}
	// A batch cannot be transactional.
	batch := invoke(t, tc.c, remoting.NewRequest(remoting.ReqSendBatchMessage, map[string]string{
		"a": "pg", "b": "TxBad", "e": "0", "f": "4", "i": "", "m": "true"}, nil))
	if batch.Code != remoting.RespMessageIllegal {
		t.Fatalf("transactional batch: %d %s", batch.Code, batch.Remark)
	}
}

func TestTransactionCheckBack(t *testing.T) {
	b := newTxnBroker(t, t.TempDir(), nil)
	tc := newTxnClient(t, b, "pg")
	commitRef := refOf(t, tc.sendHalf(t, "pg", "TxCheck", 1, "commit-me", "UNIQ0010"))
	rollbackRef := refOf(t, tc.sendHalf(t, "pg", "TxCheck", 1, "roll-me-back", "UNIQ0011"))
	immuneRef := refOf(t, tc.sendHalf(t, "pg", "TxCheck", 1, "later", "UNIQ0012", propCheckImmunity, "60"))

	// Too young: no check.
	b.txn.round(time.Now())
	tc.noCheck(t)
	if st := b.txn.stats(); st.Frontier != 0 || st.Pending != 0 {
		t.Fatalf("young half messages passed: %+v", st)
	}

	b.txn.round(later())
	checks := map[string]*remoting.Command{}
	for range 2 {
		req := tc.nextCheck(t)
		checks[req.Ext("msgId")] = req
	}
	tc.noCheck(t) // the immune one waits
	if st := b.txn.stats(); st.Frontier != 3 || st.Pending != 3 {
		t.Fatalf("stats after the first check round: %+v", st)
	}
	for uniq, ref := range map[string]halfRef{"UNIQ0010": commitRef, "UNIQ0011": rollbackRef} {
		req := checks[uniq]
		if req == nil {
			t.Fatalf("no check for %s (got %v)", uniq, checks)
		}
		if req.Ext("tranStateTableOffset") != strconv.FormatInt(ref.tso, 10) || req.Ext("commitLogOffset") != strconv.FormatInt(ref.clo, 10) ||
			req.Ext("transactionId") != uniq || req.Ext("offsetMsgId") != remoting.OffsetMsgID(b.storeHost, ref.clo) {
			t.Errorf("check header for %s: %v", uniq, req.ExtFields)
		}
		m, err := remoting.DecodeMessageExt(req.Body)
		if err != nil {
			t.Fatalf("check body: %v", err)
		}
		if m.Topic != "TxCheck" || m.QueueID != 1 || m.PhysicalOffset != ref.clo || m.QueueOffset != ref.tso {
			t.Errorf("check body: %s/%d at %d/%d", m.Topic, m.QueueID, m.QueueOffset, m.PhysicalOffset)
		}
		if pg, _ := remoting.PropertyValue(m.Properties, remoting.PropPGroup); string(pg) != "pg" {
			t.Errorf("check body PGROUP %q", pg)
		}
	}
	// The producer answers, as rocketmq-client-go does, echoing the check.
	answer := func(req *remoting.Command, kind int) {
		tso, _ := strconv.ParseInt(req.Ext("tranStateTableOffset"), 10, 64)
		clo, _ := strconv.ParseInt(req.Ext("commitLogOffset"), 10, 64)
		if r := tc.end(t, "pg", halfRef{tso: tso, clo: clo, msgID: req.Ext("msgId")}, kind, true); r.Code != remoting.RespSuccess {
			t.Fatalf("END_TRANSACTION from check: %d %s", r.Code, r.Remark)
		}
	}
	answer(checks["UNIQ0010"], endCommit)
	answer(checks["UNIQ0011"], endRollback)
	got := messages(t, b, "TxCheck", 1)
	if len(got) != 1 || string(got[0].Body) != "commit-me" {
		t.Fatalf("after the answers: %d messages %+v", len(got), got)
	}
	if st := b.txn.stats(); st.Pending != 1 {
		t.Fatalf("stats after the answers: %+v", st)
	}
	// The producer's own commit arrives late: nothing changes.
	tc.end(t, "pg", commitRef, endCommit, false)
	if n := len(messages(t, b, "TxCheck", 1)); n != 1 {
		t.Fatalf("late commit duplicated the message: %d", n)
	}

	// The immune message is checked once its immunity is over; unanswered,
	// it is rolled back after TransactionCheckMax (3) checks.
	b.txn.round(later())
	tc.noCheck(t)
	at := time.Now().Add(61 * time.Second)
	for i := range 3 {
		b.txn.round(at.Add(time.Duration(i) * 10 * time.Second))
		if req := tc.nextCheck(t); req.Ext("msgId") != "UNIQ0012" {
			t.Fatalf("check %d: %v", i, req.ExtFields)
		}
	}
	b.txn.round(at.Add(40 * time.Second))
	tc.noCheck(t)
	if st := b.txn.stats(); st.Pending != 0 {
		t.Fatalf("an unanswered transaction is still pending after 3 checks: %+v", st)
	}
	tc.end(t, "pg", immuneRef, endCommit, true) // too late
	if n := len(messages(t, b, "TxCheck", 1)); n != 1 {
		t.Fatalf("a commit after the give-up stored the message: %d", n)
	}
	if ops := messages(t, b, TransOpHalfTopic, 0); len(ops) != 3 {
		t.Fatalf("%d op records, want 3", len(ops))
	}
}

// TestTransactionNoProducer: with no connection of the producer group, no
// check is counted; a producer that connects later is checked; a group
// that stays away for ClientTimeout loses its transaction.
func TestTransactionNoProducer(t *testing.T) {
	b := newTxnBroker(t, t.TempDir(), func(c *Config) { c.ClientTimeout = time.Minute })
	sender := newTxnClient(t, b, "")
	ref := refOf(t, sender.sendHalf(t, "pg", "TxAway", 0, "a", "UNIQ0020"))
	gone := refOf(t, sender.sendHalf(t, "gone", "TxAway", 0, "b", "UNIQ0021"))
	sender.c.Close()
	waitUntil(t, "the broker end to close", func() bool { return sender.server.Err() != nil })
	b.connClosed(sender.server)

	now := later()
	for i := range 5 { // more rounds than TransactionCheckMax
		b.txn.round(now.Add(time.Duration(i) * time.Second))
	}
	if st := b.txn.stats(); st.Pending != 2 {
		t.Fatalf("stats with no producer: %+v", st)
	}
	// The producer of pg comes back (its heartbeat); gone never does.
	tc := newTxnClient(t, b, "pg")
	b.txn.round(now.Add(10 * time.Second))
	if req := tc.nextCheck(t); req.Ext("tranStateTableOffset") != strconv.FormatInt(ref.tso, 10) {
		t.Fatalf("check: %v", req.ExtFields)
	}
	tc.noCheck(t)
	b.txn.round(now.Add(80 * time.Second)) // gone's group away for more than a minute
	tc.nextCheck(t)                        // pg's second check
	if st := b.txn.stats(); st.Pending != 1 {
		t.Fatalf("stats after the client timeout: %+v", st)
	}
	tc.end(t, "gone", gone, endCommit, false)
	if n := b.store.MaxOffset("TxAway", 0); n != 0 {
		t.Fatalf("commit after the give-up stored the message")
	}
	tc.end(t, "pg", ref, endCommit, true)
	if n := b.store.MaxOffset("TxAway", 0); n != 1 {
		t.Fatalf("commit after the producer came back: max offset %d", n)
	}
}

// TestTransactionRestart: outcomes, pending checks and their counts survive
// a restart, with the state file, with a stale state file (a crash after
// it was written) and without it.
func TestTransactionRestart(t *testing.T) {
	dir := t.TempDir()
	statePath := filepath.Join(dir, "config", txnStateFile)
	b := newTxnBroker(t, dir, nil)
	tc := newTxnClient(t, b, "pg")
	committed := refOf(t, tc.sendHalf(t, "pg", "TxRe", 0, "committed", "UNIQ0030"))
	tc.end(t, "pg", committed, endCommit, false)
	late := refOf(t, tc.sendHalf(t, "pg", "TxRe", 0, "late", "UNIQ0031"))
	open := refOf(t, tc.sendHalf(t, "pg", "TxRe", 0, "open", "UNIQ0032"))
	b.txn.round(later()) // checks late and open, saves the state
	tc.nextCheck(t)
	tc.nextCheck(t)
	stale, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	tc.end(t, "pg", late, endCommit, true) // after the state was saved
	shutdownNow(t, b)

	check := func(name string, b *Broker) {
		t.Helper()
		if st := b.txn.stats(); st.Pending != 1 || st.Frontier != 3 {
			t.Fatalf("%s: stats %+v", name, st)
		}
		tc := newTxnClient(t, b, "pg")
		for _, ref := range []halfRef{committed, late} {
			if r := tc.end(t, "pg", ref, endCommit, true); r.Code != remoting.RespSuccess {
				t.Fatalf("%s: repeated commit: %d %s", name, r.Code, r.Remark)
			}
		}
		if got := messages(t, b, "TxRe", 0); len(got) != 2 {
			t.Fatalf("%s: %d messages in the topic, want 2", name, len(got))
		}
		b.txn.round(later())
		req := tc.nextCheck(t)
		if req.Ext("commitLogOffset") != strconv.FormatInt(open.clo, 10) {
			t.Fatalf("%s: check %v", name, req.ExtFields)
		}
		tc.noCheck(t)
	}

	b = newTxnBroker(t, dir, nil)
	check("restart", b)
	shutdownNow(t, b)

	if err := os.WriteFile(statePath, stale, 0o644); err != nil {
		t.Fatal(err)
	}
	b = newTxnBroker(t, dir, nil)
	check("stale state file", b)
	shutdownNow(t, b)

	if err := os.Remove(statePath); err != nil {
		t.Fatal(err)
	}
	b = newTxnBroker(t, dir, nil)
	if st := b.txn.stats(); st.Frontier != 0 || st.ResolvedAhead != 2 {
		t.Fatalf("rebuilt from the op topic: %+v", st)
	}
	b.txn.scan(later())
	check("no state file", b)

	// Without the file the open transaction's check count restarted at the
	// check above: two more checks reach TransactionCheckMax (3 here), the
	// round after gives up.
	tc2 := newTxnClient(t, b, "pg")
	for i := 1; i <= 3; i++ {
		b.txn.round(later().Add(time.Duration(i) * 10 * time.Second))
		if i < 3 {
			tc2.nextCheck(t)
		}
	}
	tc2.noCheck(t)
	if st := b.txn.stats(); st.Pending != 0 {
		t.Fatalf("still pending after TransactionCheckMax checks: %+v", st)
	}
	if got := messages(t, b, "TxRe", 0); len(got) != 2 {
		t.Fatalf("%d messages in the topic after the give-up, want 2", len(got))
	}
	shutdownNow(t, b)

	// A corrupt state file is an error, not a silent reset.
	if err := os.WriteFile(statePath, []byte(`{"version":1,"frontier":-4}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), Config{DataDir: dir, Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}); err == nil {
		t.Fatal("a corrupt transactions.json was accepted")
	}
}

// TestTransactionLoop: the background loop, started by Start, checks an
// unresolved half message with the producer, whose answer commits it; it
// stops on Shutdown.
func TestTransactionLoop(t *testing.T) {
	b := newTxnBroker(t, t.TempDir(), func(c *Config) {
		c.TransactionTimeout = 100 * time.Millisecond
		c.TransactionCheckInterval = 50 * time.Millisecond
	})
	addr, err := b.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := remoting.Dial(ctx, addr.String(), remoting.ConnOptions{Handler: remoting.HandlerFunc(func(c *remoting.Conn, req *remoting.Command) {
		if req.Code != remoting.ReqCheckTransactionState {
			return
		}
		end := remoting.NewRequest(remoting.ReqEndTransaction, map[string]string{
			"producerGroup": "pg", "tranStateTableOffset": req.Ext("tranStateTableOffset"),
			"commitLogOffset": req.Ext("commitLogOffset"), "commitOrRollback": "8", "fromTransactionCheck": "true"}, nil)
		c.InvokeOneway(context.Background(), end)
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := &txnClient{c: c}
	tc.sendHalf(t, "pg", "TxLoop", 0, "via-check", "UNIQ0040")
	waitUntil(t, "the checked message to be committed", func() bool { return b.store.MaxOffset("TxLoop", 0) == 1 })
	shutdownNow(t, b)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestParseTxnState(t *testing.T) {
	good := `{"version":1,"frontier":10,"opNext":4,"resolved":[[10,10],[12,15]],"pending":[{"offset":3,"logOffset":900,"checks":2}]}`
	s, err := parseTxnState([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := txnStateJSON{Version: 1, Frontier: 10, OpNext: 4, Resolved: [][2]int64{{10, 10}, {12, 15}}, Pending: []txnPendingJSON{{3, 900, 2}}}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("parsed %+v", s)
	}
	if got := offsetRanges([]int64{1, 2, 3, 5, 7, 8}); !reflect.DeepEqual(got, [][2]int64{{1, 3}, {5, 5}, {7, 8}}) {
		t.Errorf("offsetRanges: %v", got)
	}
	for _, bad := range []string{``, `{}`, `[]`, `{"version":2}`, `{"version":1,"frontier":-1}`,
		`{"version":1,"frontier":5,"resolved":[[4,6]]}`, `{"version":1,"frontier":5,"resolved":[[6,5]]}`,
		`{"version":1,"frontier":5,"resolved":[[5,9],[9,10]]}`, `{"version":1,"frontier":0,"resolved":[[0,99999999999]]}`,
		`{"version":1,"frontier":0,"resolved":[[0,9223372036854775807]]}`, `{"version":1,"frontier":5,"pending":[{"offset":5}]}`,
		`{"version":1,"frontier":5,"pending":[{"offset":1,"checks":-1}]}`, `{"version":1,"frontier":"x"}`} {
		if _, err := parseTxnState([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseTxnState(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"frontier":10,"opNext":4,"resolved":[[10,10],[12,15]],"pending":[{"offset":3,"logOffset":900,"checks":2}]}`,
		`{"version":1,"frontier":0,"opNext":0}`, `{"version":1,"frontier":5,"resolved":[[4,4]]}`, `null`, `{"version":1,"pending":[null]}`,
		`{"version":1,"frontier":0,"resolved":[[0,9223372036854775807],[1,2]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseTxnState(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := parseTxnState(again)
		if err != nil || !reflect.DeepEqual(normTxn(s), normTxn(s2)) {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", s, again, s2, err)
		}
	})
}

func normTxn(s txnStateJSON) txnStateJSON {
	if len(s.Resolved) == 0 {
		s.Resolved = nil
	}
	if len(s.Pending) == 0 {
		s.Pending = nil
	}
	return s
}
