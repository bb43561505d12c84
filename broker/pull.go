package broker

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
)

// pullHeader is PULL_MESSAGE's header (PROTOCOL.md §2.4).
type pullHeader struct {
	group, topic  string
	queueID       int32
	offset        int64
	maxMsgs       int32
	sysFlag       int32
	commitOffset  int64
	suspendMillis int64
	subscription  string
}

func parsePullHeader(req *remoting.Command) (pullHeader, error) {
	var h pullHeader
	var err error
	get := func(k string, bits int) int64 {
		n, e := strconv.ParseInt(req.ExtFields[k], 10, bits)
		if e != nil && err == nil {
			err = &headerError{field: k, value: req.ExtFields[k]}
		}
		return n
	}
	h.group = req.ExtFields["consumerGroup"]
	h.topic = req.ExtFields["topic"]
	h.queueID = int32(get("queueId", 32))
	h.offset = get("queueOffset", 64)
	h.maxMsgs = int32(get("maxMsgNums", 32))
	h.sysFlag = int32(get("sysFlag", 32))
	if v := req.ExtFields["commitOffset"]; v != "" {
		h.commitOffset = get("commitOffset", 64)
	}
	if v := req.ExtFields["suspendTimeoutMillis"]; v != "" {
		h.suspendMillis = get("suspendTimeoutMillis", 64)
	}
	h.subscription = req.ExtFields["subscription"]
	return h, err
}

type headerError struct{ field, value string }

func (e *headerError) Error() string {
	return "header field " + strconv.Quote(e.field) + "=" + strconv.Quote(e.value) + " is missing or not an integer"
}

// maxPullBytes bounds one pull response body (Java:
// maxTransferBytesOnMessageInDisk is 64 KiB, in memory 256 KiB).
const maxPullBytes = 256 << 10

// handlePull serves a pull, holding it (long polling) when nothing is there
// yet and the client allows suspension.
func (b *Broker) handlePull(c *remoting.Conn, req *remoting.Command) *remoting.Command {
	h, err := parsePullHeader(req)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "bad pull header: %v", err)
	}
	if h.maxMsgs <= 0 {
		h.maxMsgs = 32
	}
	h.maxMsgs = min(h.maxMsgs, 1024)
	tc, ok := b.topics.Get(h.topic)
	if !ok {
		return errResponse(req, remoting.RespTopicNotExist, "topic %s does not exist on broker %s", h.topic, b.cfg.BrokerName)
	}
	if int32(tc.Perm)&remoting.PermRead == 0 {
		return errResponse(req, remoting.RespNoPermission, "topic %s is not readable", h.topic)
	}
	if h.queueID < 0 || int(h.queueID) >= max(tc.ReadQueues, tc.WriteQueues) {
		return errResponse(req, remoting.RespSystemError, "queueId %d is illegal: topic %s has %d read queues", h.queueID, h.topic, tc.ReadQueues)
	}
	var filter TagFilter // matches all
	if h.sysFlag&remoting.PullFlagSubscription != 0 {
		if filter, err = ParseTagExpression(h.subscription); err != nil {
			return errResponse(req, remoting.RespSubscriptionParseFailed, "subscription %q: %v", h.subscription, err)
		}
	} else if f, err := b.clients.SubscriptionFilter(h.group, h.topic); err == nil {
		filter = f
	} else if !errors.Is(err, ErrNoSubscription) {
		return errResponse(req, remoting.RespSubscriptionParseFailed, "subscription of group %s to %s: %v", h.group, h.topic, err)
	}
	// No subscription known (a pull before the first heartbeat): deliver
	// everything; clients filter by tag again themselves.
	if h.sysFlag&remoting.PullFlagCommitOffset != 0 && b.leads() && h.group != "" {
		b.offsets.Commit(h.group, h.topic, h.queueID, h.commitOffset)
	}
	var released uint64
	if b.syncReplication() {
		released = b.vis.releases(h.topic, h.queueID)
	}
	resp, holdable := b.pullOnce(req, &h, filter)
	if holdable && h.sysFlag&remoting.PullFlagSuspend != 0 && h.suspendMillis > 0 {
		wait := min(time.Duration(h.suspendMillis)*time.Millisecond, b.cfg.MaxPullHold)
		if b.holds.heldCount() < int64(b.cfg.Limits.MaxHeldPulls) {
			b.holds.add(&hold{c: c, req: req, h: h, filter: filter, released: released}, wait)
			return nil
		}
		// Every hold slot is taken: answer after a short pause on this
		// goroutine (it counts against the connection's in-flight limit),
		// so that clients that pull again at once (rocketmq-client-go
		// does) do not spin.
		t := time.NewTimer(min(wait, fullHoldsPause))
		select {
		case <-t.C:
		case <-b.stopping:
		}
		t.Stop()
	}
	return resp
}

// pullOnce reads from the store and maps the result onto RocketMQ's pull
// response codes (PROTOCOL.md §2.4 table). holdable reports a PULL_NOT_FOUND
// that long polling may hold.
func (b *Broker) pullOnce(req *remoting.Command, h *pullHeader, filter TagFilter) (resp *remoting.Command, holdable bool) {
	var match func(int64) bool
	if !filter.MatchesAll() {
		match = filter.MatchHash
	}
	r, err := b.store.Get(h.topic, h.queueID, h.offset, int(h.maxMsgs), maxPullBytes, match)
	if err != nil {
		b.log.Error("pull failed", "topic", h.topic, "queue", h.queueID, "offset", h.offset, "err", err)
		return errResponse(req, remoting.RespSystemError, "read %s/%d at %d: %v", h.topic, h.queueID, h.offset, err), false
	}
	if b.tier != nil {
		switch r.Status {
		case store.OffsetTooSmall, store.MessageRemoved:
			return b.coldPull(req, h, match, r)
		case store.NoMatchedQueue, store.NoMessageInQueue:
			// On a follower the queue may just not be copied yet: only
			// what the cold tier holds is answered here.
			if _, next, ok := b.tier.Bounds(h.topic, h.queueID); !b.follower() || ok && h.offset < next {
				return b.coldPull(req, h, match, r)
			}
		}
	}
	if b.follower() {
		if resp, ok := b.followerPull(req, h, r); ok {
			return resp, false // suggestWhichBrokerId 0: the leader
		}
	}
	if r.Status == store.Found {
		if recs, firstHidden, trimmed := b.visibleRecords(r.Records); trimmed {
			// Stored here, not yet on enough copies: not readable yet.
			r.Records, r.NextOffset = recs, firstHidden
			if len(recs) == 0 {
				r.Status = store.OffsetOverflowOne
			}
		}
	}
	code := remoting.RespSuccess
	next := r.NextOffset
	switch r.Status {
	case store.Found:
	case store.NoMatchedMessage, store.MessageRemoved:
		code = remoting.RespPullRetryImmediately
	case store.NoMatchedQueue, store.NoMessageInQueue:
		next = 0
		code = remoting.RespPullNotFound
		if h.offset != 0 {
			code = remoting.RespPullOffsetMoved
		}
	case store.OffsetTooSmall, store.OffsetOverflowBadly:
		code = remoting.RespPullOffsetMoved
	case store.OffsetOverflowOne:
		code = remoting.RespPullNotFound
	}
	resp = b.pullResponse(req, code, h.topic, next, r.MinOffset, r.MaxOffset, r.Records)
	switch {
	case b.follower() && code == remoting.RespSuccess:
		setSuggest(resp, b.cfg.BrokerID) // a consumer reading history stays
	case code == remoting.RespSuccess:
		setSuggest(resp, b.suggestFollower(h.queueID, r.Records))
	}
	return resp, code == remoting.RespPullNotFound
}

// pullResponse builds a pull response; on success its body is recs one
// after another (hot or cold, the stored bytes as they are).
func (b *Broker) pullResponse(req *remoting.Command, code int16, topic string, next, minOff, maxOff int64, recs [][]byte) *remoting.Command {
	resp := remoting.NewResponse(req, code, "")
	resp.ExtFields = map[string]string{
		"nextBeginOffset":      strconv.FormatInt(next, 10),
		"minOffset":            strconv.FormatInt(minOff, 10),
		"maxOffset":            strconv.FormatInt(maxOff, 10),
		"suggestWhichBrokerId": "0",
	}
	if code == remoting.RespSuccess {
		n := 0
		for _, rec := range recs {
			n += len(rec)
		}
		body := make([]byte, 0, n)
		for _, rec := range recs {
			body = append(body, rec...)
		}
		resp.Body = body
		b.metrics.msgsOut.WithLabelValues(topic).Add(float64(len(recs)))
		b.metrics.bytesOut.WithLabelValues(topic).Add(float64(n))
	}
	return resp
}

// hold is a pull waiting for messages.
type hold struct {
	// released is the visibility release count when the pull read.
	released uint64
	c        *remoting.Conn
	req      *remoting.Command
	h        pullHeader
	filter   TagFilter
	timer    *time.Timer
	done     atomic.Bool
}

type queueKey struct {
	topic string
	queue int32
}

// fullHoldsPause is how long a pull that could be held waits before its
// empty answer while every hold slot is taken.
const fullHoldsPause = time.Second

// holdService keeps held pulls per queue and answers them when the store
// dispatches new messages to that queue or when they time out. It does no
// polling: the store's OnDispatch wakes it.
type holdService struct {
	b      *Broker
	mu     sync.Mutex
	held   map[queueKey][]*hold
	closed bool
	wg     sync.WaitGroup // answers in flight
	count  atomic.Int64
}

func newHoldService(b *Broker) *holdService {
	return &holdService{b: b, held: make(map[queueKey][]*hold)}
}

// add holds hd for at most wait.
func (s *holdService) add(hd *hold, wait time.Duration) {
	k := queueKey{hd.h.topic, hd.h.queueID}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.answer(hd)
		return
	}
	s.held[k] = append(s.held[k], hd)
	s.count.Add(1)
	s.wg.Add(1)
	hd.timer = time.AfterFunc(wait, func() { s.fire(hd) })
	s.mu.Unlock()
	// A message may have arrived between the read and the hold.
	if s.b.syncReplication() {
		// Readable messages arrive with releases: one since the pull read
		// may have been missed.
		if s.b.vis.releases(hd.h.topic, hd.h.queueID) != hd.released {
			s.fire(hd)
		}
	} else if s.b.store.MaxOffset(hd.h.topic, hd.h.queueID) > hd.h.offset {
		s.fire(hd)
	}
}

// notify is the store's OnDispatch: wake the pulls of topic/queue that
// wait below max. It runs on the store's sync goroutine and never blocks.
func (s *holdService) notify(topic string, queue int32, max int64) {
	k := queueKey{topic, queue}
	s.mu.Lock()
	list := s.held[k]
	if len(list) == 0 {
		s.mu.Unlock()
		return
	}
	var ready []*hold
	keep := list[:0]
	for _, hd := range list {
		if hd.h.offset < max {
			ready = append(ready, hd)
		} else {
			keep = append(keep, hd)
		}
	}
	clear(list[len(keep):])
	if len(keep) == 0 {
		delete(s.held, k)
	} else {
		s.held[k] = keep
	}
	s.mu.Unlock()
	for _, hd := range ready {
		go s.fire(hd)
	}
}

// fire answers hd once, whichever of timeout, notification or shutdown
// comes first.
func (s *holdService) fire(hd *hold) {
	if !hd.done.CompareAndSwap(false, true) {
		return
	}
	defer s.wg.Done()
	if t := s.remove(hd); t != nil {
		t.Stop()
	}
	s.count.Add(-1)
	s.answer(hd)
}

func (s *holdService) answer(hd *hold) {
	resp, _ := s.b.pullOnce(hd.req, &hd.h, hd.filter)
	hd.c.Reply(resp)
}

// remove drops hd from the held pulls and returns its timer, read under
// the lock that add set it under (the timer's own goroutine may be the
// caller, started before add stored it).
func (s *holdService) remove(hd *hold) *time.Timer {
	k := queueKey{hd.h.topic, hd.h.queueID}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := hd.timer
	list := s.held[k]
	for i, x := range list {
		if x == hd {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.held, k)
	} else {
		s.held[k] = list
	}
	return t
}

// releaseAll answers every held pull now (shutdown) and waits for the
// answers to be written.
func (s *holdService) releaseAll() {
	s.mu.Lock()
	s.closed = true
	var all []*hold
	for _, list := range s.held {
		all = append(all, list...)
	}
	s.mu.Unlock()
	for _, hd := range all {
		s.fire(hd)
	}
	s.wg.Wait()
}

// held returns how many pulls are waiting.
func (s *holdService) heldCount() int64 { return s.count.Load() }
