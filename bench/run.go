package bench

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Workload names, as issue 8 spells them.
const (
	// OneTopic: one topic of 16 queues, 1 KiB messages, at a fixed rate
	// (Options.Rate), at the maximum rate, and at half the maximum.
	OneTopic = "1-topic-16-queues-1kb"
	// Topics10k: the same total rate spread over 10,000 topics of one
	// queue each (Options.Topics), and the maximum rate over them.
	Topics10k = "topics-10k"
	// BacklogDrain: producers at the fixed rate while one consumer group
	// replays a preloaded backlog from its first offset; with Strata the
	// backlog lives in the cold tier.
	BacklogDrain = "backlog-drain"
	// ColdStart: a client process's exec → first acknowledged send.
	ColdStart = "coldstart"
	// Replication: 1-topic's topic at the maximum rate and at a fixed
	// rate (half of one copy's maximum) on Strata with one copy, then
	// with followers: async with 2 copies, sync with 2 and with 3.
	Replication = "replication"
)

// WorkloadNames lists the workloads in the order `--workload all` runs them.
func WorkloadNames() []string {
	return []string{OneTopic, Topics10k, BacklogDrain, ColdStart, Replication}
}

// IsWorkload reports whether name is a workload.
func IsWorkload(name string) bool {
	for _, w := range WorkloadNames() {
		if w == name {
			return true
		}
	}
	return false
}

// bodyHeader is the part of each message body the bench reads back: the
// time the send was due (unix nanoseconds), then the tag of the case that
// sent it, so that consumers ignore messages of other cases.
const bodyHeader = 16

// caseSpec is one measured run of producers (and consumers) on a target.
type caseSpec struct {
	name    string
	topics  []string
	queues  int
	rate    float64 // total sends per second; 0: as fast as possible
	senders int     // concurrent synchronous senders (bounds in-flight sends)
	consume bool    // consumers on topics, from their current end
	// during, when set, marks when a side activity (backlog-drain's
	// drain) runs: publish latencies of the window's sends made then are
	// also summarised apart.
	during *atomic.Bool
	// atWindow, when set, is called (and must return at once) as the
	// measured window opens.
	atWindow func()
	warmup   time.Duration
	duration time.Duration
}

// CaseResult is one case's figures on one target.
type CaseResult struct {
	Case   string `json:"case"`
	Target string `json:"target"`
	// Rate is the fixed rate asked for, 0 for as fast as possible.
	Rate        float64 `json:"rate"`
	Topics      int     `json:"topics"`
	Queues      int     `json:"queues_per_topic"`
	MessageSize int     `json:"message_size"`
	Senders     int     `json:"senders"`
	Warmup      float64 `json:"warmup_seconds"`
	Seconds     float64 `json:"seconds"`
	// Produced counts acknowledged sends due in the measured window (the
	// publish latencies); Errors the failed ones (ErrorSamples shows a
	// few); Unsent those due in the window that the senders never got to
	// before its end (a target that cannot keep up with a fixed rate).
	Produced     int64    `json:"produced"`
	Errors       int64    `json:"errors"`
	ErrorSamples []string `json:"error_samples,omitempty"`
	Unsent       int64    `json:"unsent"`
	// ProduceRate counts the acknowledgements received during the window,
	// per second: the throughput, whatever the sends' due times.
	ProduceRate  float64 `json:"produce_rate"`
	ProduceMiBps float64 `json:"produce_mib_per_s"`
	// Consumed counts the window's messages that consumers received, by
	// the end of the drain that follows the window; ConsumeRate is what
	// they received during the window, per second.
	Consumed    int64   `json:"consumed"`
	ConsumeRate float64 `json:"consume_rate"`
	// Publish latency counts from the time a send was due (fixed rate) or
	// started (maximum rate) to its acknowledgement; EndToEnd from the
	// same time to a consumer's receipt.
	Publish  LatencySummary `json:"publish_latency"`
	EndToEnd LatencySummary `json:"end_to_end_latency"`
	// PublishDuring is the publish latency of the window's sends made
	// while the side activity ran (backlog-drain: while the backlog was
	// being drained).
	PublishDuring *LatencySummary `json:"publish_latency_while_draining,omitempty"`
	// Procs are the target's server processes over the window.
	Procs         []ProcStats `json:"processes"`
	CPUSeconds    float64     `json:"cpu_seconds"`
	CPUPerMillion float64     `json:"cpu_seconds_per_million_messages"`
	Notes         []string    `json:"notes,omitempty"`
}

// runCase runs one case on a started target.
func runCase(ctx context.Context, t Target, o *Options, c caseSpec, idle map[int]int64, progress *progressLine, label string) (CaseResult, error) {
	res := CaseResult{Case: c.name, Target: t.Name(), Rate: c.rate, Topics: len(c.topics), Queues: c.queues,
		MessageSize: o.MessageSize, Senders: c.senders, Warmup: c.warmup.Seconds(), Seconds: c.duration.Seconds()}
	tag := rand.Uint64()
	if tag == 0 {
		tag = 1
	}
	pub, all, e2e, during := newLatencyHist(), newLatencyHist(), newLatencyHist(), newLatencyHist()
	var (
		sent, produced, errs, acked atomic.Int64
		recv, consumedWin, consmed  atomic.Int64
		probeSeen                   atomic.Bool
		samplesMu                   sync.Mutex
		samples                     []string
	)
	var w window // set before any send; read by the handler only after

	// Consumers first, so that they follow the topics from before the
	// first send that counts.
	cctx, stopConsumers := context.WithCancel(ctx)
	consumeDone := make(chan error, 1)
	consumerRunning := false
	defer func() { // on early returns: stop the consumers and wait for them
		stopConsumers()
		if consumerRunning {
			<-consumeDone
		}
	}()
	var windowSet atomic.Bool
	if c.consume {
		h := func(body []byte) {
			if len(body) < bodyHeader || binary.LittleEndian.Uint64(body[8:]) != tag {
				return
			}
			due := int64(binary.LittleEndian.Uint64(body))
			if due == 0 {
				probeSeen.Store(true)
				return
			}
			now := time.Now()
			recv.Add(1)
			if !windowSet.Load() {
				return
			}
			if w.contains(now) {
				consumedWin.Add(1)
			}
			if ts := time.Unix(0, due); w.contains(ts) {
				consmed.Add(1)
				e2e.Record(now.Sub(ts))
			}
		}
		consumerRunning = true
		go func() { consumeDone <- t.Consume(cctx, c.topics, false, h) }()
	}

	prods := make([]Producer, min(4, c.senders))
	defer func() {
		for _, p := range prods {
			if p != nil {
				_ = p.Close()
			}
		}
	}()
	for i := range prods {
		p, err := t.Producer(ctx)
		if err != nil {
			return res, err
		}
		prods[i] = p
	}
	fill := make([]byte, max(o.MessageSize, bodyHeader))
	_, _ = crand.Read(fill)

	if c.consume {
		if err := waitConsumerReady(ctx, prods[0], c.topics, tag, fill, &probeSeen, consumeDone, progress, label); err != nil {
			return res, err
		}
	}

	start := time.Now().Add(20 * time.Millisecond)
	w = window{from: start.Add(c.warmup), to: start.Add(c.warmup + c.duration)}
	windowSet.Store(true)
	pc := newPacer(realClock{}, c.rate, start, w.to)
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopSends := func() { stopOnce.Do(func() { close(stop) }) }
	defer stopSends()
	go func() {
		select {
		case <-ctx.Done():
			stopSends()
		case <-stop:
		}
	}()

	var procs []ProcStats // written by the meter goroutine before meterDone
	meterDone := make(chan struct{})
	go func() { // starts and stops the resource meter on the window's edges
		defer close(meterDone)
		realClock{}.SleepUntil(w.from, stop)
		select {
		case <-stop:
		default:
			if c.atWindow != nil {
				c.atWindow()
			}
		}
		m := startMeter(t.Pids(), idle)
		realClock{}.SleepUntil(w.to, stop)
		procs = m.stop()
	}()

	var wg sync.WaitGroup
	for k := range c.senders {
		p := prods[k%len(prods)]
		wg.Go(func() {
			buf := make([]byte, len(fill))
			copy(buf, fill)
			binary.LittleEndian.PutUint64(buf[8:], tag)
			for {
				i, from, ok := pc.claim(stop)
				if !ok {
					return
				}
				binary.LittleEndian.PutUint64(buf, uint64(from.UnixNano()))
				err := p.Send(ctx, c.topics[i%int64(len(c.topics))], buf)
				lat := time.Since(from)
				sent.Add(1)
				in := w.contains(from)
				if err != nil {
					if in {
						errs.Add(1)
					}
					samplesMu.Lock()
					if len(samples) < 5 {
						samples = append(samples, err.Error())
					}
					samplesMu.Unlock()
					continue
				}
				all.Record(lat)
				if w.contains(from.Add(lat)) {
					acked.Add(1)
				}
				if in {
					pub.Record(lat)
					produced.Add(1)
					if c.during != nil && c.during.Load() {
						during.Record(lat)
					}
				}
			}
		})
	}

	// Progress, every second, until the senders are done.
	sendersDone := make(chan struct{})
	go func() { wg.Wait(); close(sendersDone) }()
	tick := time.NewTicker(time.Second)
	var lastSent, lastRecv int64
	lastT := time.Now()
loop:
	for {
		select {
		case <-sendersDone:
			break loop
		case now := <-tick.C:
			s, r := sent.Load(), recv.Load()
			dt := now.Sub(lastT).Seconds()
			phase, p99 := "", 0.0
			if now.Before(w.from) {
				phase = fmt.Sprintf("warm-up %s/%s", roundSecs(now.Sub(start)), roundSecs(c.warmup))
				p99 = microsToMs(all.Snapshot().ValueAtPercentile(99))
			} else {
				phase = fmt.Sprintf("%s/%s", roundSecs(min(now.Sub(w.from), c.duration)), roundSecs(c.duration))
				p99 = microsToMs(pub.Snapshot().ValueAtPercentile(99))
			}
			line := fmt.Sprintf("%s  %s  sent %s/s", label, phase, humanRate(float64(s-lastSent)/dt))
			if c.consume {
				line += fmt.Sprintf("  recv %s/s", humanRate(float64(r-lastRecv)/dt))
			}
			line += fmt.Sprintf("  p99 %.2f ms  errors %d", p99, errs.Load())
			progress.update(line)
			lastSent, lastRecv, lastT = s, r, now
		}
	}
	tick.Stop()
	progress.done()
	stopSends()
	<-meterDone
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	// Let the consumers catch up with the window's messages.
	if c.consume {
		drainConsumers(ctx, produced.Load(), &consmed, o.drainIdle(), max(30*time.Second, c.duration), progress, label)
		stopConsumers()
		if err := <-consumeDone; err != nil && ctx.Err() == nil {
			res.Notes = append(res.Notes, "consumer: "+err.Error())
		}
		consumerRunning = false
	}

	for i := range procs {
		procs[i].Name = procLabel(t, procs[i].Pid, procs[i].Name)
	}
	res.Procs = procs
	secs := w.seconds()
	res.Produced, res.Errors, res.ErrorSamples = produced.Load(), errs.Load(), samples
	res.ProduceRate = float64(acked.Load()) / secs
	if c.rate > 0 {
		res.Unsent = max(0, pc.dueBy(w.to.Add(-time.Nanosecond))-pc.dueBy(w.from.Add(-time.Nanosecond))-res.Produced-res.Errors)
	}
	res.ProduceMiBps = res.ProduceRate * float64(o.MessageSize) / (1 << 20)
	res.Consumed = consmed.Load()
	res.ConsumeRate = float64(consumedWin.Load()) / secs
	res.Publish = summarize(pub.Snapshot())
	res.EndToEnd = summarize(e2e.Snapshot())
	if c.during != nil {
		d := summarize(during.Snapshot())
		res.PublishDuring = &d
	}
	res.CPUSeconds = totalCPU(res.Procs)
	if res.Produced > 0 {
		res.CPUPerMillion = res.CPUSeconds / (float64(res.Produced) / 1e6)
	}
	if c.consume && res.Consumed < res.Produced {
		res.Notes = append(res.Notes, fmt.Sprintf("consumers received %d of the window's %d messages", res.Consumed, res.Produced))
	}
	if c.rate > 0 && (res.ProduceRate < 0.95*c.rate || res.Unsent > 0) {
		res.Notes = append(res.Notes, fmt.Sprintf("fell behind the fixed rate: %.0f of %.0f msg/s acknowledged, %d sends due in the window never made (%d senders busy): its publish latencies (counted from the due time) show the backlog",
			res.ProduceRate, c.rate, res.Unsent, c.senders))
	}
	return res, nil
}

// waitConsumerReady sends probe messages (due time 0, ignored by the
// statistics) until the consumers have received one, so that the warm-up
// starts with consumers that follow the topics.
func waitConsumerReady(ctx context.Context, p Producer, topics []string, tag uint64, fill []byte, seen *atomic.Bool, consumeDone chan error, progress *progressLine, label string) error {
	body := make([]byte, len(fill))
	copy(body, fill)
	binary.LittleEndian.PutUint64(body, 0)
	binary.LittleEndian.PutUint64(body[8:], tag)
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var i int
	for !seen.Load() {
		if time.Now().After(deadline) {
			return errors.New("consumers received none of the probe messages within 2 minutes")
		}
		if err := p.Send(ctx, topics[i%len(topics)], body); err != nil && ctx.Err() == nil {
			progress.logf("%s  probe send: %v", label, err)
		}
		i++
		select {
		case err := <-consumeDone:
			consumeDone <- err // for runCase, which waits for it
			return fmt.Errorf("consumer stopped before it received anything: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// drainConsumers waits until the consumers have received want messages of
// the window, received nothing new for idle, or limit has passed.
func drainConsumers(ctx context.Context, want int64, got *atomic.Int64, idle, limit time.Duration, progress *progressLine, label string) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	last, lastChange := got.Load(), start
	for {
		n := got.Load()
		if n >= want {
			return
		}
		if n != last {
			last, lastChange = n, time.Now()
		}
		if time.Since(lastChange) > idle {
			progress.logf("%s  consumers stalled at %d of %d messages", label, n, want)
			return
		}
		if time.Since(start) > limit {
			progress.logf("%s  consumers still behind after %v: %d of %d messages", label, limit, n, want)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sendCount sends n messages to topics as fast as senders synchronous
// senders can (backlog-drain's preload), and returns how long it took.
func sendCount(ctx context.Context, t Target, topics []string, n int64, senders, size int, progress *progressLine, label string) (time.Duration, error) {
	prods := make([]Producer, min(4, senders))
	defer func() {
		for _, p := range prods {
			if p != nil {
				_ = p.Close()
			}
		}
	}()
	for i := range prods {
		p, err := t.Producer(ctx)
		if err != nil {
			return 0, err
		}
		prods[i] = p
	}
	fill := make([]byte, max(size, bodyHeader))
	_, _ = crand.Read(fill)
	const batch = 32
	var next, done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	start := time.Now()
	var wg sync.WaitGroup
	for k := range senders {
		p := prods[k%len(prods)]
		bp, isBatch := p.(BatchProducer)
		wg.Go(func() {
			bufs := make([][]byte, batch)
			for j := range bufs {
				bufs[j] = make([]byte, len(fill))
				copy(bufs[j], fill)
			}
			for {
				step := int64(1)
				if isBatch {
					step = batch
				}
				i := next.Add(step) - step
				if i >= n || ctx.Err() != nil {
					return
				}
				m := min(step, n-i)
				now := uint64(time.Now().UnixNano())
				for j := range m {
					binary.LittleEndian.PutUint64(bufs[j], now)
				}
				topic := topics[(i/step)%int64(len(topics))]
				var err error
				if isBatch {
					err = bp.SendBatch(ctx, topic, bufs[:m])
				} else {
					err = p.Send(ctx, topic, bufs[0])
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				done.Add(m)
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-finished:
			progress.done()
			if firstErr != nil {
				return 0, fmt.Errorf("preload: %w", firstErr)
			}
			return time.Since(start), ctx.Err()
		case <-tick.C:
			progress.update(fmt.Sprintf("%s  preload %d/%d (%s/s)", label, done.Load(), n,
				humanRate(float64(done.Load())/time.Since(start).Seconds())))
		}
	}
}

func roundSecs(d time.Duration) string { return d.Round(time.Second).String() }

// humanRate formats a rate as 950, 12.3k or 1.25M.
func humanRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e4:
		return fmt.Sprintf("%.1fk", r/1e3)
	case r >= 1e3:
		return fmt.Sprintf("%.2fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}
