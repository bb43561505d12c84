package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// Group membership timing, RocketMQ's: a client heartbeats every 30 s and
// rebalances every 20 s and whenever a broker says the group changed;
// brokers drop a client after 120 s without a heartbeat.
const (
	heartbeatInterval = 30 * time.Second
	rebalanceInterval = 20 * time.Second
	// staleAfter: a Consumer that has not rebalanced for this long (its
	// process was frozen, or it stopped calling Receive) may have lost its
	// queues meanwhile and had them back, and another member may have
	// moved their offsets: it forgets its positions and reads the
	// committed offsets again. Below the brokers' 120 s client expiry.
	staleAfter = 90 * time.Second
	// maxParallel bounds the concurrent requests of one Receive, Commit or
	// SeekTime.
	maxParallel = 16
)

// ErrNotAssigned: Seek named a queue the group has not given this
// Consumer.
var ErrNotAssigned = errors.New("client: queue not assigned to this consumer")

// RetryTopic returns the topic a group's failed messages are redelivered
// from (RocketMQ's %RETRY%<group>).
func RetryTopic(group string) string { return "%RETRY%" + group }

// membership is a Consumer's place in its group, guarded by Consumer.turn.
type membership struct {
	joined        bool
	lastHeartbeat time.Time
	lastRebalance time.Time
	// addrs are the brokers the last heartbeat went to.
	addrs []string
	// queues and order are Receive's assignment: the queues this member
	// reads, with their positions, and their sorted order.
	queues map[MessageQueue]*queueState
	order  []MessageQueue
	rr     int // Receive's round-robin start in order
}

// queueState is Receive's position in one assigned queue.
type queueState struct {
	mq MessageQueue
	// next is the offset of the next pull; -1 until read from the broker.
	next int64
	// delivered is the offset after the last message Receive returned
	// (counting messages the tag filter dropped): what Commit stores.
	delivered int64
	// dirty: delivered has not been committed.
	dirty bool
	// buf holds pulled messages not yet returned, in offset order.
	buf []MessageExt
}

// topics returns the topics the Consumer's membership covers: the
// subscribed ones and, for Run, the group's retry topic.
func (cs *Consumer) topics() []string {
	ts := make([]string, 0, len(cs.subs)+1)
	for t := range cs.subs {
		ts = append(ts, t)
	}
	if cs.running() {
		ts = append(ts, RetryTopic(cs.group))
	}
	slices.Sort(ts)
	return ts
}

// running reports whether the Consumer is in Run's mode.
func (cs *Consumer) running() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.mode == modeRun
}

// consumerData is the Consumer's entry in its Client's heartbeats.
func (cs *Consumer) consumerData() consumerDataJSON {
	cd := consumerDataJSON{GroupName: cs.group, ConsumeType: "CONSUME_ACTIVELY", MessageModel: "CLUSTERING",
		ConsumeFromWhere: cs.cfg.start.String()}
	if cs.running() {
		cd.ConsumeType = "CONSUME_PASSIVELY"
	}
	for _, t := range cs.topics() {
		f := cs.filter(t)
		sd := subscriptionJSON{Topic: t, SubString: f.expr, TagsSet: []string{}, CodeSet: []string{},
			SubVersion: cs.subVersion, ExpressionType: "TAG"}
		for _, tag := range slices.Sorted(maps.Keys(f.tags)) {
			sd.TagsSet = append(sd.TagsSet, tag)
			sd.CodeSet = append(sd.CodeSet, strconv.FormatInt(remoting.TagHash([]byte(tag)), 10))
		}
		cd.SubscriptionDataSet = append(cd.SubscriptionDataSet, sd)
	}
	return cd
}

// Heartbeat body (PROTOCOL.md §6).
type heartbeatJSON struct {
	ClientID        string             `json:"clientID"`
	ProducerDataSet []struct{}         `json:"producerDataSet"`
	ConsumerDataSet []consumerDataJSON `json:"consumerDataSet"`
}

type consumerDataJSON struct {
	GroupName           string             `json:"groupName"`
	ConsumeType         string             `json:"consumeType"`
	MessageModel        string             `json:"messageModel"`
	ConsumeFromWhere    string             `json:"consumeFromWhere"`
	SubscriptionDataSet []subscriptionJSON `json:"subscriptionDataSet"`
	UnitMode            bool               `json:"unitMode"`
}

type subscriptionJSON struct {
	ClassFilterMode bool     `json:"classFilterMode"`
	Topic           string   `json:"topic"`
	SubString       string   `json:"subString"`
	TagsSet         []string `json:"tagsSet"`
	CodeSet         []string `json:"codeSet"`
	SubVersion      int64    `json:"subVersion"`
	ExpressionType  string   `json:"expressionType"`
}

// join registers cs with its Client, which then heartbeats for it and
// passes it the group's change notices. One Client holds one member per
// group: brokers know a member by its client id.
func (c *Client) join(cs *Consumer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClientClosed
	}
	if other := c.members[cs.group]; other != nil && other != cs {
		return fmt.Errorf("client: another Consumer of group %q is already reading through this Client (a Client is one member of a group; give each member its own Client)", cs.group)
	}
	if c.members == nil {
		c.members = make(map[string]*Consumer)
	}
	c.members[cs.group] = cs
	return nil
}

// leave removes cs from its Client's members and tells the brokers at
// addrs: with UNREGISTER_CLIENT when no other member is left, else with a
// heartbeat without cs. The group's other members rebalance at once.
func (c *Client) leave(ctx context.Context, cs *Consumer, addrs []string) {
	c.mu.Lock()
	if c.members[cs.group] == cs {
		delete(c.members, cs.group)
	}
	others := len(c.members)
	c.mu.Unlock()
	if len(addrs) == 0 || c.isClosed() {
		return
	}
	if others > 0 {
		_ = c.heartbeat(ctx, addrs)
		return
	}
	forEach(ctx, len(addrs), func(ctx context.Context, i int) error {
		req := remoting.NewRequest(remoting.ReqUnregisterClient, map[string]string{
			"clientID": c.ClientID(), "producerGroup": "", "consumerGroup": cs.group}, nil)
		_, err := c.brokerCall(ctx, addrs[i], req)
		return err
	})
}

// heartbeat sends the Client's heartbeat, listing all its members, to the
// brokers at addrs, concurrently. It fails only when none took it.
func (c *Client) heartbeat(ctx context.Context, addrs []string) error {
	hb := heartbeatJSON{ClientID: c.ClientID(), ProducerDataSet: []struct{}{}, ConsumerDataSet: []consumerDataJSON{}}
	c.mu.Lock()
	for _, g := range slices.Sorted(maps.Keys(c.members)) {
		hb.ConsumerDataSet = append(hb.ConsumerDataSet, c.members[g].consumerData())
	}
	c.mu.Unlock()
	body, err := json.Marshal(hb)
	if err != nil {
		return fmt.Errorf("client: heartbeat: %w", err)
	}
	errs := nonNil(forEach(ctx, len(addrs), func(ctx context.Context, i int) error {
		addr := addrs[i]
		req := remoting.NewRequest(remoting.ReqHeartBeat, nil, body)
		resp, err := c.brokerCall(ctx, addr, req)
		if err == nil && resp.Code != remoting.RespSuccess {
			err = responseError(addr, req, resp)
		}
		return err
	}))
	if len(errs) == len(addrs) && len(errs) > 0 {
		return joinErrors(errs)
	}
	for _, err := range errs {
		c.log.Debug("client: heartbeat failed", "err", err)
	}
	return nil
}

// forEach runs f(ctx, i) for each i in [0, n), at most maxParallel at
// once, and returns each call's error.
func forEach(ctx context.Context, n int, f func(ctx context.Context, i int) error) []error {
	errs := make([]error, n)
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = f(ctx, i)
		}()
	}
	wg.Wait()
	return errs
}

// nonNil returns the errors of errs that are not nil.
func nonNil(errs []error) []error {
	var out []error
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

// serveRequest answers the requests brokers send over the Client's
// connections: NOTIFY_CONSUMER_IDS_CHANGED makes the group's member
// rebalance; anything else is not supported. It runs on the connection's
// reader goroutine, so it must not block.
func (c *Client) serveRequest(conn *remoting.Conn, req *remoting.Command) {
	if req.Code == remoting.ReqNotifyConsumerIDsChanged {
		c.mu.Lock()
		cs := c.members[req.Ext("consumerGroup")]
		c.mu.Unlock()
		if cs != nil {
			select {
			case cs.changed <- struct{}{}:
			default:
			}
		}
		c.reply(conn, req, remoting.NewResponse(req, remoting.RespSuccess, ""))
		return
	}
	c.reply(conn, req, remoting.NewResponse(req, remoting.RespRequestCodeNotSupported,
		fmt.Sprintf("request code %d is not supported by this client", req.Code)))
}

// reply answers a broker's request unless it is oneway, signed as requests
// are (PROTOCOL.md §7).
func (c *Client) reply(conn *remoting.Conn, req, resp *remoting.Command) {
	if req.IsOneway() {
		return
	}
	c.cfg.creds.sign(resp)
	_ = conn.Reply(resp)
}

// brokerAddrs returns every address (leaders, followers, tier readers) of
// the brokers serving topics, sorted; topics without a route are skipped.
func (cs *Consumer) brokerAddrs(ctx context.Context, topics []string) ([]string, error) {
	seen := map[string]bool{}
	var firstErr error
	for _, t := range topics {
		r, err := cs.c.Route(ctx, t)
		if err != nil {
			if firstErr == nil && !errors.Is(err, ErrTopicNotFound) {
				firstErr = err
			}
			continue
		}
		for _, b := range r.Brokers {
			for _, a := range b.Addrs {
				seen[a] = true
			}
		}
	}
	if len(seen) == 0 {
		if firstErr == nil {
			firstErr = fmt.Errorf("%w: none of %s has a route", ErrTopicNotFound, strings.Join(topics, ", "))
		}
		return nil, firstErr
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// maintain keeps cs in its group: it heartbeats when one is due and
// rebalances when one is due, a broker announced a change, or the
// membership went stale. rebalanced tells whether mqs is a new
// allocation; stale, that positions held from before must be dropped.
// notified tells that a change notice was taken from cs.changed.
func (cs *Consumer) maintain(ctx context.Context, notified bool) (mqs []MessageQueue, rebalanced, stale bool, err error) {
	g := &cs.g
	now := time.Now()
	stale = !g.joined || now.Sub(g.lastRebalance) > staleAfter
	if stale || now.Sub(g.lastHeartbeat) >= heartbeatInterval {
		if err := cs.c.join(cs); err != nil {
			return nil, false, false, err
		}
		addrs, err := cs.brokerAddrs(ctx, cs.topics())
		if err == nil {
			err = cs.c.heartbeat(ctx, addrs)
		}
		if err != nil {
			if notified {
				cs.notify()
			}
			return nil, false, false, fmt.Errorf("client: joining group %s: %w", cs.group, err)
		}
		g.joined, g.lastHeartbeat, g.addrs = true, now, addrs
	}
	if !stale && !notified && now.Sub(g.lastRebalance) < rebalanceInterval {
		return nil, false, false, nil
	}
	mqs, missing, err := cs.allocate(ctx)
	if err != nil {
		if notified {
			cs.notify()
		}
		return nil, false, false, fmt.Errorf("client: rebalancing group %s: %w", cs.group, err)
	}
	g.lastRebalance = now
	if missing {
		// The retry topic is being created (by the heartbeat): look again
		// in a second rather than in 20.
		g.lastRebalance = now.Add(time.Second - rebalanceInterval)
	}
	return mqs, true, stale, nil
}

// takeNotice reports whether a change notice was pending, and takes it.
func (cs *Consumer) takeNotice() bool {
	select {
	case <-cs.changed:
		return true
	default:
		return false
	}
}

// notify marks a rebalance as due.
func (cs *Consumer) notify() {
	select {
	case cs.changed <- struct{}{}:
	default:
	}
}

// allocate computes this member's queues: for each topic, its readable
// queues and the group's members (GET_CONSUMER_LIST_BY_GROUP), both
// sorted, shared by rocketmq-client-go's AllocateByAveragely, so that a
// group mixing Strata and RocketMQ consumers agrees on who reads what.
// missing tells that the retry topic has no route yet.
func (cs *Consumer) allocate(ctx context.Context) (out []MessageQueue, missing bool, err error) {
	for _, t := range cs.topics() {
		r, err := cs.c.Route(ctx, t)
		if err != nil {
			if strings.HasPrefix(t, "%RETRY%") && errors.Is(err, ErrTopicNotFound) {
				missing = true // brokers create it on the first heartbeat
				continue
			}
			return nil, false, err
		}
		mqAll := r.ReadQueues()
		if len(mqAll) == 0 {
			continue
		}
		slices.SortFunc(mqAll, compareQueues)
		cids, err := cs.consumerIDs(ctx, r)
		if err != nil {
			return nil, false, err
		}
		slices.Sort(cids)
		out = append(out, allocateAveragely(cs.c.ClientID(), mqAll, cids)...)
	}
	return out, missing, nil
}

func compareQueues(a, b MessageQueue) int {
	return cmp.Or(strings.Compare(a.Topic, b.Topic), strings.Compare(a.BrokerName, b.BrokerName), cmp.Compare(a.QueueID, b.QueueID))
}

// consumerIDs asks a leader of route's brokers for the group's member ids,
// trying each in turn.
func (cs *Consumer) consumerIDs(ctx context.Context, r *Route) ([]string, error) {
	var errs []error
	for _, b := range r.Brokers {
		addr := b.LeaderAddr()
		if addr == "" {
			continue
		}
		req := remoting.NewRequest(remoting.ReqGetConsumerListByGroup, map[string]string{"consumerGroup": cs.group}, nil)
		resp, err := cs.c.brokerCall(ctx, addr, req)
		if err == nil && resp.Code != remoting.RespSuccess {
			err = responseError(addr, req, resp)
		}
		if err == nil {
			var body struct {
				ConsumerIDList []string `json:"consumerIdList"`
			}
			if err = json.Unmarshal(resp.Body, &body); err == nil {
				return body.ConsumerIDList, nil
			}
			err = fmt.Errorf("client: consumer list from %s: %w", addr, err)
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%w: topic %s has no live leader", ErrNoQueue, r.Topic)
	}
	return nil, joinErrors(errs)
}

// allocateAveragely gives member id its contiguous share of mqAll among
// the sorted cids: rocketmq-client-go's and Java's AllocateMessageQueueAveragely.
// A member missing from cids gets nothing.
func allocateAveragely(id string, mqAll []MessageQueue, cids []string) []MessageQueue {
	index := slices.Index(cids, id)
	if index < 0 || len(mqAll) == 0 {
		return nil
	}
	n, m := len(mqAll), len(cids)
	mod := n % m
	size := n / m
	if n <= m {
		size = 1
	} else if mod > 0 && index < mod {
		size++
	}
	start := index*size + mod
	if mod > 0 && index < mod {
		start = index * size
	}
	count := min(size, n-start)
	out := make([]MessageQueue, 0, max(count, 0))
	for i := range count {
		out = append(out, mqAll[(start+i)%n])
	}
	return out
}

// startOffset is where the group starts reading mq: its committed offset,
// else the StartFrom position (a retry topic always starts at its first
// offset, as RocketMQ's do).
func (cs *Consumer) startOffset(ctx context.Context, mq MessageQueue) (int64, error) {
	off, found, err := cs.QueryOffset(ctx, mq)
	if err != nil {
		return 0, err
	}
	if found && off >= 0 {
		return off, nil
	}
	switch {
	case strings.HasPrefix(mq.Topic, "%RETRY%"), cs.cfg.start.kind == startFirst:
		return cs.MinOffset(ctx, mq)
	case cs.cfg.start.kind == startTime:
		return cs.SearchOffset(ctx, mq, cs.cfg.start.t)
	}
	return cs.MaxOffset(ctx, mq)
}

// begin starts a Receive, Commit, Seek or Run call (in mode m): it fails
// when the Consumer is closed or in the other mode, and waits for its
// turn. The returned func ends the call.
func (cs *Consumer) begin(ctx context.Context, m consumeMode) (func(), error) {
	cs.mu.Lock()
	switch {
	case cs.closed:
		cs.mu.Unlock()
		return nil, ErrClientClosed
	case cs.mode != modeNone && cs.mode != m:
		cur := cs.mode
		cs.mu.Unlock()
		if cur == modeRun {
			return nil, errors.New("client: the Consumer is running (Run); Receive, Commit and Seek are not available")
		}
		return nil, errors.New("client: the Consumer has been used with Receive; Run needs a Consumer of its own")
	}
	cs.mode = m
	cs.mu.Unlock()
	select {
	case cs.turn <- struct{}{}:
		return func() { <-cs.turn }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("client: waiting for the Consumer: %w", timeoutError(ctx.Err()))
	}
}

// Close leaves the group, so that its other members take over this
// member's queues at once, and closes the Consumer's own Client. It does
// not commit: call Commit first (Run commits by itself when it returns).
// It waits for a Receive, Commit, Seek or Run in progress up to ctx's
// deadline. Later calls fail with ErrClientClosed. Close is idempotent.
func (cs *Consumer) Close(ctx context.Context) error {
	cs.mu.Lock()
	if cs.closed {
		cs.mu.Unlock()
		return nil
	}
	cs.closed = true
	cs.mu.Unlock()
	select {
	case cs.turn <- struct{}{}:
		defer func() { <-cs.turn }()
		if cs.g.joined {
			cs.c.leave(ctx, cs, cs.g.addrs)
			cs.g.joined = false
		}
	case <-ctx.Done():
	}
	if cs.owned {
		return cs.c.Close()
	}
	return nil
}
