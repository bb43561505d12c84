package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// Handler processes messages of one queue, in queue order; Run calls it
// from one goroutine per assigned queue. Returning nil consumes them. An
// error has them redelivered later through the group's retry topic, up to
// MaxReconsumeTimes, after which the broker moves them to the group's
// dead-letter topic (%DLQ%<group>). A message redelivered from the retry
// topic carries its original Topic and an increased ReconsumeTimes.
type Handler func(ctx context.Context, msgs []MessageExt) error

// Run timing.
const (
	// runHold is how long a broker holds Run's pulls when LongPoll is 0.
	runHold = 20 * time.Second
	// runTick is how often Run checks whether a heartbeat, rebalance or
	// commit is due.
	runTick = time.Second
	// commitInterval is how often Run commits (rocketmq-client-go: 5 s).
	commitInterval = 5 * time.Second
	// finalCommitTimeout bounds the commits Run makes when it stops.
	finalCommitTimeout = 5 * time.Second
	// propRetryTopic names a retried message's original topic.
	propRetryTopic = "RETRY_TOPIC"
)

// Run consumes the subscribed topics as a member of the group until ctx
// is done: it joins the group, takes its share of the queues (and of the
// group's retry topic), pulls each with a long poll and hands the
// messages to h, one goroutine per queue. It heartbeats every 30 s,
// rebalances every 20 s and when a broker says the group changed (a
// queue taken away is stopped and its offset committed before the
// rebalance completes), and commits consumed offsets every 5 s. Failed
// pulls are retried with backoff.
//
// Run returns an error when it cannot join the group at first; otherwise
// it returns nil once ctx is done, its handlers have returned, the final
// offsets are committed and it has left the group. A Handler should honour
// its ctx, which ends then too; messages whose Handler was interrupted
// are redelivered. Run and Receive exclude each other.
func (cs *Consumer) Run(ctx context.Context, h Handler) error {
	if h == nil {
		return errors.New("client: Run needs a Handler")
	}
	if len(cs.subs) == 0 {
		return errors.New("client: Run needs a subscription (the Subscribe option)")
	}
	end, err := cs.begin(ctx, modeRun)
	if err != nil {
		return err
	}
	defer end()
	r := &runner{cs: cs, h: h, ctx: ctx, workers: make(map[MessageQueue]*worker)}
	if err := r.maintain(ctx, cs.takeNotice()); err != nil {
		cs.leaveGroup(ctx)
		return err
	}
	tick := time.NewTicker(runTick)
	defer tick.Stop()
	lastCommit := time.Now()
	for {
		select {
		case <-ctx.Done():
			r.stop(r.all())
			cs.leaveGroup(ctx)
			return nil
		case <-cs.changed:
			r.maintainLogged(true)
		case <-tick.C:
			r.maintainLogged(false)
			if time.Since(lastCommit) >= commitInterval {
				r.commit(ctx, r.all())
				lastCommit = time.Now()
			}
		}
	}
}

// leaveGroup leaves the group (Run's end), with its own short deadline
// since ctx may be done.
func (cs *Consumer) leaveGroup(ctx context.Context) {
	if !cs.g.joined {
		return
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalCommitTimeout)
	defer cancel()
	cs.c.leave(lctx, cs, cs.g.addrs)
	cs.g.joined = false
}

// runner is one Run call's state; its fields are owned by Run's goroutine
// except what a worker says it owns.
type runner struct {
	cs      *Consumer
	h       Handler
	ctx     context.Context
	workers map[MessageQueue]*worker
}

// worker consumes one assigned queue.
type worker struct {
	mq     MessageQueue
	cancel context.CancelFunc
	done   chan struct{}
	// processed is the offset after the last consumed message (-1: not
	// known yet); written by the worker, read by Run's loop.
	processed atomic.Int64
	committed int64 // owned by Run's loop
}

func (r *runner) all() []*worker {
	ws := make([]*worker, 0, len(r.workers))
	for _, w := range r.workers {
		ws = append(ws, w)
	}
	return ws
}

// maintainLogged runs maintain and logs its failure: Run keeps going with
// the queues it has and tries again on the next tick.
func (r *runner) maintainLogged(notified bool) {
	if err := r.maintain(r.ctx, notified); err != nil && r.ctx.Err() == nil {
		r.cs.c.log.Warn("client: group maintenance failed; retrying", "group", r.cs.group, "err", err)
	}
}

// maintain heartbeats and rebalances when due and starts and stops
// workers to match the allocation.
func (r *runner) maintain(ctx context.Context, notified bool) error {
	mqs, rebalanced, stale, err := r.cs.maintain(ctx, notified)
	if err != nil || !rebalanced {
		return err
	}
	keep := make(map[MessageQueue]bool, len(mqs))
	for _, mq := range mqs {
		keep[mq] = true
	}
	var gone []*worker
	for mq, w := range r.workers {
		if stale || !keep[mq] {
			gone = append(gone, w)
		}
	}
	r.stop(gone)
	for _, mq := range mqs {
		if r.workers[mq] == nil {
			r.start(mq)
		}
	}
	return nil
}

// start starts a worker for mq.
func (r *runner) start(mq MessageQueue) {
	wctx, cancel := context.WithCancel(r.ctx)
	w := &worker{mq: mq, cancel: cancel, done: make(chan struct{}), committed: -1}
	w.processed.Store(-1)
	r.workers[mq] = w
	go r.work(wctx, w)
}

// stop stops ws, waits for them and commits their offsets.
func (r *runner) stop(ws []*worker) {
	for _, w := range ws {
		w.cancel()
	}
	for _, w := range ws {
		<-w.done
		delete(r.workers, w.mq)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), finalCommitTimeout)
	defer cancel()
	r.commit(ctx, ws)
}

// commit stores the processed offsets of ws that changed.
func (r *runner) commit(ctx context.Context, ws []*worker) {
	var due []*worker
	var offs []int64
	for _, w := range ws {
		if p := w.processed.Load(); p >= 0 && p != w.committed {
			due = append(due, w)
			offs = append(offs, p)
		}
	}
	errs := forEach(ctx, len(due), func(ctx context.Context, i int) error {
		return r.cs.CommitOffset(ctx, due[i].mq, offs[i])
	})
	for i, w := range due {
		if errs[i] != nil {
			r.cs.c.log.Warn("client: commit failed; retrying later", "group", r.cs.group, "queue", w.mq.String(), "err", errs[i])
			continue
		}
		w.committed = offs[i]
	}
}

// work consumes w's queue until ctx ends.
func (r *runner) work(ctx context.Context, w *worker) {
	defer close(w.done)
	cs := r.cs
	hold := cs.cfg.longPoll
	if hold <= 0 {
		hold = runHold
	}
	var bo backoff
	next := int64(-1)
	for ctx.Err() == nil {
		if next < 0 {
			off, err := cs.startOffset(ctx, w.mq)
			if err != nil {
				bo.pause(ctx, cs, w.mq, "finding the start offset", err)
				continue
			}
			next = off
			w.processed.Store(next)
		}
		res, err := cs.pull(ctx, w.mq, next, cs.cfg.pullBatch, hold)
		if err != nil {
			bo.pause(ctx, cs, w.mq, "pull", err)
			continue
		}
		bo.reset()
		msgs := res.Messages
		for len(msgs) > 0 {
			n := min(len(msgs), cs.cfg.handlerBatch)
			if !r.deliver(ctx, w, msgs[:n]) {
				return
			}
			w.processed.Store(msgs[n-1].QueueOffset + 1)
			msgs = msgs[n:]
		}
		if res.NextBeginOffset > next || res.Status == PullOffsetIllegal {
			next = res.NextBeginOffset
			w.processed.Store(next)
		}
	}
}

// deliver hands batch to the Handler until it is consumed or sent back
// for redelivery; false when ctx ended first (the batch is not consumed).
func (r *runner) deliver(ctx context.Context, w *worker, batch []MessageExt) bool {
	for i := range batch {
		if m := &batch[i]; strings.HasPrefix(m.Topic, "%RETRY%") {
			if orig := m.Properties[propRetryTopic]; orig != "" {
				m.Topic = orig
			}
		}
	}
	var bo backoff
	for {
		err := r.h(ctx, batch)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		r.cs.c.log.Debug("client: handler failed; sending the messages back for redelivery", "group", r.cs.group, "queue", w.mq.String(), "err", err)
		var kept []MessageExt
		for _, m := range batch {
			if err := r.cs.sendBack(ctx, w.mq, m); err != nil {
				kept = append(kept, m)
			}
		}
		if len(kept) == 0 {
			return true
		}
		// The broker took none or some: try those again here, later.
		batch = kept
		if !bo.pause(ctx, r.cs, w.mq, "sending failed messages back", errors.New("send-back refused")) {
			return false
		}
	}
}

// sendBack asks the broker of mq to redeliver m later through the group's
// retry topic (CONSUMER_SEND_MSG_BACK; the broker picks the delay from
// the message's reconsume count).
func (cs *Consumer) sendBack(ctx context.Context, mq MessageQueue, m MessageExt) error {
	req := remoting.NewRequest(remoting.ReqConsumerSendMsgBack, map[string]string{
		"offset":            strconv.FormatInt(m.CommitLogOffset, 10),
		"group":             cs.group,
		"delayLevel":        "0",
		"originMsgId":       m.MsgID,
		"originTopic":       m.Topic,
		"unitMode":          "false",
		"maxReconsumeTimes": strconv.Itoa(cs.cfg.maxReconsume),
		"bname":             mq.BrokerName,
	}, nil)
	resp, addr, err := cs.c.queueCall(ctx, mq, req, 0)
	if err != nil {
		return err
	}
	if resp.Code != remoting.RespSuccess {
		return responseError(addr, req, resp)
	}
	return nil
}

// backoff spaces out retries of a failing operation: 250 ms doubling to
// 8 s, with ±20% jitter.
type backoff struct{ d time.Duration }

func (b *backoff) reset() { b.d = 0 }

// pause logs err and waits the next interval; false when ctx ended.
func (b *backoff) pause(ctx context.Context, cs *Consumer, mq MessageQueue, what string, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	b.d = min(max(2*b.d, 250*time.Millisecond), 8*time.Second)
	d := time.Duration(float64(b.d) * (0.8 + 0.4*rand.Float64()))
	cs.c.log.Debug("client: "+what+" failed; retrying", "group", cs.group, "queue", mq.String(), "in", d, "err", err)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
