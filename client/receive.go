package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Receive returns up to max messages (0: PullBatchSize) from the queues the
// group gives this Consumer, in order within each queue. On its first call
// the Consumer joins the group (a heartbeat to the subscribed topics'
// brokers) and takes its share of the queues; later calls heartbeat and
// rebalance when due (every 30 s and 20 s, or when a broker says the group
// changed), so a Consumer that only calls Receive, even from a function
// frozen between invocations, stays a member without a goroutine of its
// own. A queue's first position is the group's committed offset, or the
// StartFrom position for a queue without one.
//
// Receive pulls all its queues at once and returns as soon as any has
// messages; when none has, it waits up to LongPoll for one and then
// returns no message and no error. Messages are not committed until
// Commit: a member that takes a queue over later starts at the last
// commit, so delivery is at least once.
func (cs *Consumer) Receive(ctx context.Context, max int) ([]MessageExt, error) {
	if max <= 0 {
		max = cs.cfg.pullBatch
	}
	if len(cs.subs) == 0 {
		return nil, errors.New("client: Receive needs a subscription (the Subscribe option)")
	}
	end, err := cs.begin(ctx, modeReceive)
	if err != nil {
		return nil, err
	}
	defer end()
	if err := cs.keepAssigned(ctx); err != nil {
		return nil, err
	}
	if out := cs.g.take(max); len(out) > 0 {
		return out, nil
	}
	if err := cs.fill(ctx, 0); err != nil {
		return nil, err
	}
	if out := cs.g.take(max); len(out) > 0 || cs.cfg.longPoll <= 0 {
		return out, nil
	}
	if len(cs.g.queues) == 0 {
		// Nothing assigned (more members than queues): wait for a change.
		t := time.NewTimer(cs.cfg.longPoll)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("client: Receive: %w", timeoutError(ctx.Err()))
		case <-cs.changed:
			cs.notify() // for the next call's rebalance
		case <-t.C:
		}
		return nil, nil
	}
	if err := cs.fill(ctx, cs.cfg.longPoll); err != nil {
		return nil, err
	}
	return cs.g.take(max), nil
}

// keepAssigned runs maintain and applies a new allocation to Receive's
// positions: queues no longer assigned are dropped with their buffered
// messages (uncommitted ones will be read again by their new owner), new
// ones start unknown.
func (cs *Consumer) keepAssigned(ctx context.Context) error {
	mqs, rebalanced, stale, err := cs.maintain(ctx, cs.takeNotice())
	if err != nil || !rebalanced {
		return err
	}
	g := &cs.g
	if stale || g.queues == nil {
		g.queues = make(map[MessageQueue]*queueState, len(mqs))
	}
	keep := make(map[MessageQueue]bool, len(mqs))
	for _, mq := range mqs {
		keep[mq] = true
		if g.queues[mq] == nil {
			g.queues[mq] = &queueState{mq: mq, next: -1}
		}
	}
	for mq, q := range g.queues {
		if !keep[mq] {
			if q.dirty {
				cs.c.log.Debug("client: queue reassigned before its offset was committed", "group", cs.group, "queue", mq.String(), "delivered", q.delivered)
			}
			delete(g.queues, mq)
		}
	}
	g.order = slices.SortedFunc(maps.Keys(g.queues), compareQueues)
	g.rr = 0
	return nil
}

// take returns up to max buffered messages, taking from the queues in
// turn, and advances their delivered positions.
func (g *membership) take(max int) []MessageExt {
	n := len(g.order)
	var out []MessageExt
	for i := 0; i < n && len(out) < max; i++ {
		q := g.queues[g.order[(g.rr+i)%n]]
		k := min(len(q.buf), max-len(out))
		if k == 0 {
			continue
		}
		out = append(out, q.buf[:k]...)
		q.delivered = q.buf[k-1].QueueOffset + 1
		if q.buf = q.buf[k:]; len(q.buf) == 0 {
			q.buf = nil
			q.delivered = q.next // past messages the filter dropped too
		}
		q.dirty = true
	}
	if n > 0 {
		g.rr = (g.rr + 1) % n
	}
	return out
}

// pullOutcome is one queue's pull in fill.
type pullOutcome struct {
	q     *queueState
	start int64 // the position found for a queue whose next was unknown; -1: none
	res   PullResult
	err   error
}

// fill pulls, concurrently, every assigned queue whose buffer is empty.
// With hold > 0 the pulls are held by the brokers until messages arrive,
// and the first one that brings messages ends the others. It fails only
// when every pull failed.
func (cs *Consumer) fill(ctx context.Context, hold time.Duration) error {
	var qs []*queueState
	for _, mq := range cs.g.order {
		if q := cs.g.queues[mq]; len(q.buf) == 0 {
			qs = append(qs, q)
		}
	}
	if len(qs) == 0 {
		return nil
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan pullOutcome, len(qs))
	sem := make(chan struct{}, maxParallel)
	for _, q := range qs {
		next := q.next
		go func() {
			o := pullOutcome{q: q, start: -1}
			defer func() { results <- o }()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-pctx.Done():
				o.err = pctx.Err()
				return
			}
			if next < 0 {
				if next, o.err = cs.startOffset(pctx, q.mq); o.err != nil {
					return
				}
				o.start = next
			}
			o.res, o.err = cs.pull(pctx, q.mq, next, cs.cfg.pullBatch, hold)
		}()
	}
	var errs []error
	got, ended := false, false
	for range qs {
		o := <-results
		q := o.q
		if o.start >= 0 {
			q.next, q.delivered = o.start, o.start
		}
		if o.err != nil {
			if !(ended && errors.Is(o.err, context.Canceled)) {
				errs = append(errs, fmt.Errorf("%s: %w", q.mq, o.err))
			}
			continue
		}
		q.apply(o.res)
		if len(q.buf) > 0 {
			got = true
			if hold > 0 && !ended {
				ended = true
				cancel() // the other held pulls
			}
		}
	}
	switch {
	case len(errs) == 0:
		return nil
	case got || len(errs) < len(qs):
		for _, err := range errs {
			cs.c.log.Debug("client: pull failed", "group", cs.group, "err", err)
		}
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("client: Receive: %w", timeoutError(ctx.Err()))
	}
	return fmt.Errorf("client: Receive: every pull failed: %w", joinErrors(errs))
}

// apply takes a pull's result into q.
func (q *queueState) apply(res PullResult) {
	switch res.Status {
	case PullFound:
		q.buf = res.Messages
	case PullOffsetIllegal:
		// The position is outside the queue (its history was deleted, or
		// a Seek went past the end): continue where the broker says and
		// remember it, as RocketMQ consumers do.
		q.dirty = true
	}
	if res.NextBeginOffset > q.next || res.Status == PullOffsetIllegal {
		q.next = res.NextBeginOffset
	}
	if len(q.buf) == 0 && q.delivered != q.next {
		q.delivered, q.dirty = q.next, true
	}
}

// Commit stores, for each queue, the position after the last message
// Receive returned (or Seek set) as the group's committed offset, and
// waits for the brokers to take it: a member that takes the queue over
// later starts there. It returns the errors of the queues it could not
// commit; their positions stay pending for the next Commit.
func (cs *Consumer) Commit(ctx context.Context) error {
	end, err := cs.begin(ctx, modeReceive)
	if err != nil {
		return err
	}
	defer end()
	var dirty []*queueState
	for _, mq := range cs.g.order {
		if q := cs.g.queues[mq]; q.dirty {
			dirty = append(dirty, q)
		}
	}
	return cs.commitStates(ctx, dirty)
}

// commitStates commits the delivered positions of qs, concurrently.
func (cs *Consumer) commitStates(ctx context.Context, qs []*queueState) error {
	errs := forEach(ctx, len(qs), func(ctx context.Context, i int) error {
		return cs.CommitOffset(ctx, qs[i].mq, qs[i].delivered)
	})
	for i, q := range qs {
		if errs[i] == nil {
			q.dirty = false
		}
	}
	return errors.Join(errs...)
}

// Assignment returns the queues the group currently gives this Consumer,
// joining or rebalancing first when due, as Receive does.
func (cs *Consumer) Assignment(ctx context.Context) ([]MessageQueue, error) {
	end, err := cs.begin(ctx, modeReceive)
	if err != nil {
		return nil, err
	}
	defer end()
	if err := cs.keepAssigned(ctx); err != nil {
		return nil, err
	}
	return slices.Clone(cs.g.order), nil
}

// Seek makes Receive continue mq at offset, dropping the messages of mq it
// has buffered; the next Commit stores it. mq must be assigned to this
// Consumer (ErrNotAssigned otherwise; see Assignment). An offset beyond
// the queue's bounds is corrected by the broker on the next pull.
func (cs *Consumer) Seek(ctx context.Context, mq MessageQueue, offset int64) error {
	if offset < 0 {
		return fmt.Errorf("client: Seek to negative offset %d", offset)
	}
	end, err := cs.begin(ctx, modeReceive)
	if err != nil {
		return err
	}
	defer end()
	if err := cs.keepAssigned(ctx); err != nil {
		return err
	}
	q := cs.g.queues[mq]
	if q == nil {
		return fmt.Errorf("%w: %s", ErrNotAssigned, mq)
	}
	cs.seek(q, offset)
	return nil
}

// seek moves q to offset; the route's tier bounds, not the last pull's
// answer, then choose the node of the next pull.
func (cs *Consumer) seek(q *queueState, offset int64) {
	q.next, q.delivered, q.dirty, q.buf = offset, offset, true, nil
	cs.nodes.Delete(q.mq)
}

// SeekTime makes Receive continue every assigned queue at its first
// message stored at or after t (its end when there is none), looked up in
// either tier.
func (cs *Consumer) SeekTime(ctx context.Context, t time.Time) error {
	end, err := cs.begin(ctx, modeReceive)
	if err != nil {
		return err
	}
	defer end()
	if err := cs.keepAssigned(ctx); err != nil {
		return err
	}
	qs := make([]*queueState, 0, len(cs.g.order))
	for _, mq := range cs.g.order {
		qs = append(qs, cs.g.queues[mq])
	}
	offs := make([]int64, len(qs))
	errs := forEach(ctx, len(qs), func(ctx context.Context, i int) error {
		var err error
		offs[i], err = cs.SearchOffset(ctx, qs[i].mq, t)
		return err
	})
	for i, q := range qs {
		if errs[i] == nil {
			cs.seek(q, offs[i])
		}
	}
	return errors.Join(errs...)
}
