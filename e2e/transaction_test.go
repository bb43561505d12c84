package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// Transaction settings of the brokers of these tests: checks start 2 s
// after a half message is stored and repeat every 300 ms.
var txnFlags = []string{"--transaction-timeout", "2s", "--transaction-check-interval", "300ms"}

const (
	opTopic   = "RMQ_SYS_TRANS_OP_HALF_TOPIC"
	halfTopic = "RMQ_SYS_TRANS_HALF_TOPIC"
)

// txnListener is a local transaction whose outcome the message body
// names: commit-*, rollback-* and after-* are decided at once; unknown-*
// and open-* are left unknown, and the broker's check learns
// unknown-commit-* committed and unknown-rollback-* rolled back, open-*
// committed once reopened is set (unknown before).
type txnListener struct {
	reopened atomic.Bool

	mu       sync.Mutex
	executed map[string]int
	checked  map[string]int
}

func newTxnListener() *txnListener {
	return &txnListener{executed: map[string]int{}, checked: map[string]int{}}
}

func (l *txnListener) ExecuteLocalTransaction(m *primitive.Message) primitive.LocalTransactionState {
	body := string(m.Body)
	l.mu.Lock()
	l.executed[body]++
	l.mu.Unlock()
	switch {
	case strings.HasPrefix(body, "commit-"), strings.HasPrefix(body, "after-"):
		return primitive.CommitMessageState
	case strings.HasPrefix(body, "rollback-"):
		return primitive.RollbackMessageState
	}
	return primitive.UnkonwnState
}

func (l *txnListener) CheckLocalTransaction(m *primitive.MessageExt) primitive.LocalTransactionState {
	body := string(m.Body)
	l.mu.Lock()
	l.checked[body]++
	l.mu.Unlock()
	switch {
	case strings.HasPrefix(body, "unknown-commit-"), strings.HasPrefix(body, "commit-"), strings.HasPrefix(body, "after-"):
		return primitive.CommitMessageState
	case strings.HasPrefix(body, "open-") && l.reopened.Load():
		return primitive.CommitMessageState
	case strings.HasPrefix(body, "open-"):
		return primitive.UnkonwnState
	}
	return primitive.RollbackMessageState
}

// checkedBodies returns the bodies checked so far, sorted.
func (l *txnListener) checkedBodies() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.checked))
}

func (l *txnListener) checks(body string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checked[body]
}

// newTxnProducer starts a transaction producer of group with its own client
// instance (rocketmq-client-go routes checks to the producer that created
// the instance); it is shut down when the test ends.
func (s *strata) newTxnProducer(t testing.TB, group string, l primitive.TransactionListener) rocketmq.TransactionProducer {
	t.Helper()
	p, err := rocketmq.NewTransactionProducer(l,
		producer.WithNsResolver(s.resolver()),
		producer.WithGroupName(group),
		producer.WithInstanceName(uniq("tp")),
		producer.WithRetry(2),
	)
	if err != nil {
		t.Fatalf("new transaction producer: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("start transaction producer: %v", err)
	}
	t.Cleanup(func() { p.Shutdown() })
	return p
}

// sendTxn sends one transactional message and checks the send result.
func sendTxn(t testing.TB, p rocketmq.TransactionProducer, topic, body string) *primitive.TransactionSendResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := p.SendMessageInTransaction(ctx, primitive.NewMessage(topic, []byte(body)))
	if err != nil {
		t.Fatalf("SendMessageInTransaction %s: %v", body, err)
	}
	if r.Status != primitive.SendOK || !hex32.MatchString(r.OffsetMsgID) || r.MessageQueue == nil || r.MessageQueue.Topic != topic {
		t.Fatalf("SendMessageInTransaction %s: %s", body, r.SendResult)
	}
	return r
}

// storedCount is the number of messages stored in topic's queues.
func (s *strata) storedCount(t testing.TB, topic string, queues int) int64 {
	t.Helper()
	var n int64
	for q := range queues {
		n += s.maxOffset(t, topic, q)
	}
	return n
}

// TestTransactionProducer: rocketmq-client-go's TransactionProducer against
// Strata: a committed local transaction is delivered exactly once, a
// rolled-back one never, and an unknown one is checked back with the
// producer, whose answer (commit or rollback) is honoured.
func TestTransactionProducer(t *testing.T) {
	t.Parallel()
	s := startStrata(t, txnFlags...)
	topic, group := uniq("txn"), uniq("tpg")
	const queues = 2
	s.createTopic(t, topic, queues, false)
	var col collector
	c := s.newPushConsumer(t, uniq("g"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "*", col.handler("c"))

	l := newTxnListener()
	p := s.newTxnProducer(t, group, l)
	const n = 5
	var want, unwanted, unknown []string
	for i := range n {
		for _, kind := range []string{"commit", "rollback", "unknown-commit", "unknown-rollback"} {
			body := fmt.Sprintf("%s-%d", kind, i)
			r := sendTxn(t, p, topic, body)
			if wantState := map[string]primitive.LocalTransactionState{"commit": primitive.CommitMessageState,
				"rollback": primitive.RollbackMessageState}[kind]; wantState != 0 && r.State != wantState {
				t.Errorf("%s: local transaction state %v", body, r.State)
			}
			if kind == "commit" || kind == "unknown-commit" {
				want = append(want, body)
			} else {
				unwanted = append(unwanted, body)
			}
			if strings.HasPrefix(kind, "unknown") {
				unknown = append(unknown, body)
			}
		}
	}
	waitFor(t, 30*time.Second, "the committed messages", func() bool { return col.hasAll(want) },
		func() string { return fmt.Sprint("missing ", col.missing(want), ", checked ", l.checkedBodies()) })
	// Every transaction gets its op record once resolved: 4n of them.
	waitFor(t, 30*time.Second, "every transaction resolved", func() bool { return s.maxOffset(t, opTopic, 0) == 4*n },
		func() string {
			return fmt.Sprintf("%d op records, checked %v", s.maxOffset(t, opTopic, 0), l.checkedBodies())
		})
	if got := s.storedCount(t, topic, queues); got != int64(len(want)) {
		t.Errorf("%d messages stored in %s, want the %d committed", got, topic, len(want))
	}
	if got := s.maxOffset(t, halfTopic, 0); got != 4*n {
		t.Errorf("%d half messages, want %d", got, 4*n)
	}
	for _, b := range unknown {
		if l.checks(b) == 0 {
			t.Errorf("%s: never checked", b)
		}
	}
	for _, b := range l.checkedBodies() {
		if !slices.Contains(unknown, b) {
			t.Errorf("%s was checked although its producer ended it", b)
		}
	}
	counts := col.bodies()
	for _, b := range want {
		if counts[b] != 1 {
			t.Errorf("%s delivered %d times, want once", b, counts[b])
		}
	}
	for _, b := range unwanted {
		if counts[b] != 0 {
			t.Errorf("rolled-back %s delivered %d times", b, counts[b])
		}
	}
	for _, g := range col.all() {
		if g.topic != topic || g.props["TRAN_MSG"] != "" || g.props["REAL_TOPIC"] != "" || g.props["REAL_QID"] != "" {
			t.Errorf("%s: consumed from %s with properties %v", g.body, g.topic, g.props)
		}
	}
}

// TestTransactionRestart: after kill -9 and a restart, committed
// transactional messages are stored once (no commit is lost or replayed
// twice), and a half message whose outcome was still unknown is checked
// back with its producer and committed.
func TestTransactionRestart(t *testing.T) {
	t.Parallel()
	s := startStrata(t, txnFlags...)
	topic, group := uniq("txnre"), uniq("tpg")
	const queues = 2
	s.createTopic(t, topic, queues, false)
	l := newTxnListener()
	p := s.newTxnProducer(t, group, l)
	var want []string
	for i := range 5 {
		body := fmt.Sprintf("commit-%d", i)
		sendTxn(t, p, topic, body)
		want = append(want, body)
	}
	open := []string{"open-0", "open-1"}
	for _, body := range open {
		sendTxn(t, p, topic, body)
	}
	want = append(want, open...)
	waitFor(t, 15*time.Second, "the commits stored", func() bool { return s.storedCount(t, topic, queues) == 5 })
	waitFor(t, 15*time.Second, "the open transactions checked", func() bool { return l.checks("open-0") > 0 && l.checks("open-1") > 0 },
		func() string { return fmt.Sprint("checked ", l.checkedBodies()) })
	if err := s.kill(); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	l.reopened.Store(true)
	if err := s.restart(); err != nil {
		t.Fatalf("restart: %v\n%s", err, s.logTail(40))
	}
	// The producer's connection died with the broker; its next send (or
	// its next heartbeat, up to 30 s later) opens a new one the broker can
	// send checks on.
	sendTxn(t, p, topic, "after-0")
	want = append(want, "after-0")
	waitFor(t, 30*time.Second, "the open transactions committed by a check after the restart",
		func() bool { return s.storedCount(t, topic, queues) == int64(len(want)) },
		func() string {
			return fmt.Sprintf("%d stored, checked %v", s.storedCount(t, topic, queues), l.checkedBodies())
		})
	at := readAll(t, s, topic, queues)
	counts := map[string]int{}
	for _, b := range at {
		counts[b]++
	}
	for _, b := range want {
		if counts[b] != 1 {
			t.Errorf("%s stored %d times, want once", b, counts[b])
		}
	}
	if len(at) != len(want) {
		t.Errorf("%d messages stored, want %d: %v", len(at), len(want), counts)
	}
	for _, b := range l.checkedBodies() {
		if !strings.HasPrefix(b, "open-") {
			t.Errorf("%s was checked although its producer committed it", b)
		}
	}
}
