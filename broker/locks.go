package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// DefaultLockExpiry is how long a queue lock lasts without being renewed
// (Java REBALANCE_LOCK_MAX_LIVE_TIME, 60 s). Orderly consumers renew their
// locks every 20 s (PROTOCOL.md §8).
const DefaultLockExpiry = 60 * time.Second

// ErrBadLockBody: a LOCK_BATCH_MQ or UNLOCK_BATCH_MQ body is not valid JSON
// or lacks a required field.
var ErrBadLockBody = errors.New("bad lock body")

// MessageQueue names one queue of a topic on one broker; the JSON names
// are the client's.
type MessageQueue struct {
	Topic      string `json:"topic"`
	BrokerName string `json:"brokerName"`
	QueueID    int32  `json:"queueId"`
}

// LockRequest is the body of LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ
// (42): {"consumerGroup":..,"clientId":..,"mqSet":[...]}. Unknown fields
// (Java's onlyThisBroker) are ignored.
type LockRequest struct {
	ConsumerGroup string         `json:"consumerGroup"`
	ClientID      string         `json:"clientId"`
	MQSet         []MessageQueue `json:"mqSet"`
}

// lockResponse is the body of a LOCK_BATCH_MQ response.
type lockResponse struct {
	LockOKMQSet []MessageQueue `json:"lockOKMQSet"`
}

// ParseLockRequest decodes a LOCK_BATCH_MQ / UNLOCK_BATCH_MQ body. It
// fails with ErrBadLockBody (never panics) on malformed JSON, an empty
// consumerGroup or clientId, or a queue with an empty topic or a negative
// queue id.
func ParseLockRequest(body []byte) (LockRequest, error) {
	var req LockRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return LockRequest{}, fmt.Errorf("%w: %w", ErrBadLockBody, err)
	}
	if req.ConsumerGroup == "" {
		return LockRequest{}, fmt.Errorf("%w: empty consumerGroup", ErrBadLockBody)
	}
	if req.ClientID == "" {
		return LockRequest{}, fmt.Errorf("%w: empty clientId", ErrBadLockBody)
	}
	for _, mq := range req.MQSet {
		if mq.Topic == "" || mq.QueueID < 0 {
			return LockRequest{}, fmt.Errorf("%w: bad queue %+v", ErrBadLockBody, mq)
		}
	}
	return req, nil
}

// EncodeLockRequest encodes a LOCK_BATCH_MQ / UNLOCK_BATCH_MQ body.
func EncodeLockRequest(req LockRequest) []byte {
	if req.MQSet == nil {
		req.MQSet = []MessageQueue{}
	}
	b, _ := json.Marshal(req) // strings and ints cannot fail to encode
	return b
}

// EncodeLockResponse encodes the LOCK_BATCH_MQ response body,
// {"lockOKMQSet":[...]}, with [] (never null) when nothing was locked. The
// error is always nil (strings and integers always encode); it is there
// for symmetry with other body encoders.
func EncodeLockResponse(locked []MessageQueue) ([]byte, error) {
	if locked == nil {
		locked = []MessageQueue{}
	}
	return json.Marshal(lockResponse{LockOKMQSet: locked})
}

// ParseLockResponse decodes a LOCK_BATCH_MQ response body; an empty
// body means nothing was locked, as the Go client reads it.
func ParseLockResponse(body []byte) ([]MessageQueue, error) {
	if len(body) == 0 {
		return nil, nil
	}
	var resp lockResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadLockBody, err)
	}
	return resp.LockOKMQSet, nil
}

// lockEntry is the holder of one queue lock.
type lockEntry struct {
	clientID string
	last     time.Time // last lock or renewal
}

// LockManager grants orderly consumers exclusive locks on queues, per
// consumer group (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ). A lock lasts for the
// expiry after its last renewal; it is not released when the holder's
// connection closes, because the holder may still be consuming (the
// client trusts a lock for 30 s) and an early release would let two
// clients consume one queue out of order. Time is passed in explicitly;
// no goroutine is started. Safe for concurrent use.
type LockManager struct {
	log    *slog.Logger
	expiry time.Duration

	mu     sync.Mutex
	groups map[string]map[MessageQueue]*lockEntry
}

// NewLockManager returns a lock manager whose locks expire after expiry
// without renewal; zero means DefaultLockExpiry. It logs nothing until
// SetLogger is called.
func NewLockManager(expiry time.Duration) *LockManager {
	if expiry <= 0 {
		expiry = DefaultLockExpiry
	}
	return &LockManager{log: slog.New(slog.DiscardHandler), expiry: expiry, groups: map[string]map[MessageQueue]*lockEntry{}}
}

// SetLogger sets the logger of lock take-overs. Call it before the manager
// is used.
func (m *LockManager) SetLogger(log *slog.Logger) {
	if log != nil {
		m.log = log
	}
}

// expired reports whether e no longer holds its queue at now. As in Java,
// a lock renewed exactly expiry ago is still held.
func (m *LockManager) expired(e *lockEntry, now time.Time) bool {
	return now.Sub(e.last) > m.expiry
}

// TryLock locks for clientID each queue of mqs that is unlocked, whose lock
// expired, or that clientID already holds (which renews the lock), and
// returns those queues in request order, without duplicates. Queues held
// by another client are left out. An empty group or clientID locks
// nothing.
func (m *LockManager) TryLock(group, clientID string, mqs []MessageQueue, now time.Time) (locked []MessageQueue) {
	if group == "" || clientID == "" || len(mqs) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.groups[group]
	if g == nil {
		g = make(map[MessageQueue]*lockEntry, len(mqs))
		m.groups[group] = g
	}
	locked = make([]MessageQueue, 0, len(mqs))
	var seen map[MessageQueue]struct{} // duplicate check for large batches
	if len(mqs) > 32 {
		seen = make(map[MessageQueue]struct{}, len(mqs))
	}
	for _, mq := range mqs {
		e := g[mq]
		switch {
		case e == nil:
			g[mq] = &lockEntry{clientID: clientID, last: now}
		case e.clientID == clientID:
			if now.After(e.last) {
				e.last = now
			}
		case m.expired(e, now):
			m.log.Info("queue lock taken over after expiry", "group", group, "topic", mq.Topic,
				"queue", mq.QueueID, "from", e.clientID, "to", clientID, "lastRenewal", e.last)
			e.clientID, e.last = clientID, now
		default:
			continue
		}
		if seen != nil {
			if _, dup := seen[mq]; dup {
				continue
			}
			seen[mq] = struct{}{}
		} else if slices.Contains(locked, mq) {
			continue
		}
		locked = append(locked, mq)
	}
	return locked
}

// Unlock releases the locks clientID holds on mqs; locks of other clients
// are left alone.
func (m *LockManager) Unlock(group, clientID string, mqs []MessageQueue) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.groups[group]
	if g == nil {
		return
	}
	for _, mq := range mqs {
		if e := g[mq]; e != nil && e.clientID == clientID {
			delete(g, mq)
		}
	}
	if len(g) == 0 {
		delete(m.groups, group)
	}
}

// Holder returns the client that holds the lock on mq for group at now.
func (m *LockManager) Holder(group string, mq MessageQueue, now time.Time) (clientID string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.groups[group][mq]
	if e == nil || m.expired(e, now) {
		return "", false
	}
	return e.clientID, true
}

// Expire forgets the locks that expired at now and returns how many, so
// that groups and queues that are gone do not stay in memory. Expired
// locks are free to take even before Expire runs; the broker calls it
// from a periodic timer.
func (m *LockManager) Expire(now time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for name, g := range m.groups {
		for mq, e := range g {
			if m.expired(e, now) {
				delete(g, mq)
				n++
			}
		}
		if len(g) == 0 {
			delete(m.groups, name)
		}
	}
	return n
}
