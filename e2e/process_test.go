package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// acked is a message the broker acknowledged with SendOK.
type acked struct {
	body   string
	queue  int
	offset int64
}

// loadProducers runs n goroutines that SendSync distinct messages to topic
// until stop is closed or a send fails, and records what was acknowledged.
type loadProducers struct {
	mu     sync.Mutex
	acks   []acked
	errs   []error
	wg     sync.WaitGroup
	stop   chan struct{}
	nAcked atomic.Int64
}

func startLoad(t *testing.T, p rocketmq.Producer, topic, prefix string, n int) *loadProducers {
	l := &loadProducers{stop: make(chan struct{})}
	for w := range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				body := fmt.Sprintf("%s-w%d-%d", prefix, w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				r, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(body)))
				cancel()
				l.mu.Lock()
				switch {
				case err != nil:
					l.errs = append(l.errs, err)
				case r.Status != primitive.SendOK:
					l.errs = append(l.errs, fmt.Errorf("status %v", r.Status))
				default:
					l.acks = append(l.acks, acked{body, r.MessageQueue.QueueId, r.QueueOffset})
				}
				l.mu.Unlock()
				if err != nil || r.Status != primitive.SendOK {
					return // the broker is going away
				}
				l.nAcked.Add(1)
			}
		}()
	}
	t.Cleanup(l.halt)
	return l
}

func (l *loadProducers) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// waitDone waits for every sender to return (they stop at their first
// failed send).
func (l *loadProducers) waitDone(t *testing.T, timeout time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("senders still running %v after the broker went away", timeout)
	}
}

func (l *loadProducers) snapshot() ([]acked, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]acked(nil), l.acks...), append([]error(nil), l.errs...)
}

// readAll consumes topic from the first offset with a new group until every
// queue's offsets [0, max) have been seen, and returns the body at each
// queue/offset; a queue/offset delivered twice must carry the same body.
func readAll(t *testing.T, s *strata, topic string, queues int) map[[2]int64]string {
	t.Helper()
	maxOff := make([]int64, queues)
	total := int64(0)
	for q := range queues {
		maxOff[q] = s.maxOffset(t, topic, q)
		total += maxOff[q]
	}
	var col collector
	c := s.newPushConsumer(t, uniq("reader"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithPullBatchSize(64))
	c.subscribeAndStart(t, topic, "*", col.handler("reader"))
	at := map[[2]int64]string{}
	waitFor(t, 30*time.Second, fmt.Sprintf("all %d stored messages read back", total), func() bool {
		for _, g := range col.all() {
			k := [2]int64{int64(g.queue), g.offset}
			if b, ok := at[k]; ok && b != g.body {
				t.Fatalf("queue %d offset %d delivered as %q and as %q", g.queue, g.offset, b, g.body)
			}
			at[k] = g.body
		}
		for q := range queues {
			for o := range maxOff[q] {
				if _, ok := at[[2]int64{int64(q), o}]; !ok {
					return false
				}
			}
		}
		return true
	}, func() string { return fmt.Sprintf("have %d distinct of %d (max offsets %v)", len(at), total, maxOff) })
	c.shutdown()
	return at
}

// TestDurabilityKill9: messages acknowledged before a kill -9 in the middle
// of a stream of sends are all there after a restart on the same data
// directory, each exactly once, at the offset its send result gave.
func TestDurabilityKill9(t *testing.T) {
	t.Parallel()
	s := startStrata(t)
	topic := uniq("durable")
	const queues = 4
	s.createTopic(t, topic, queues, false)
	// Two rounds: the second recovery starts from a log the first one
	// repaired.
	var acks []acked
	for round := range 2 {
		p := s.newProducer(t, producer.WithRetry(0), producer.WithSendMsgTimeout(3*time.Second))
		load := startLoad(t, p, topic, fmt.Sprintf("r%d", round), 4)
		waitFor(t, 30*time.Second, "300 acknowledged sends", func() bool { return load.nAcked.Load() >= 300 })
		if err := s.kill(); err != nil {
			t.Fatalf("kill -9: %v", err)
		}
		load.waitDone(t, 15*time.Second)
		a, errs := load.snapshot()
		acks = append(acks, a...)
		t.Logf("round %d: %d sends acknowledged before kill -9, %d failed after it", round, len(a), len(errs))
		p.Shutdown()
		if err := s.restart(); err != nil {
			t.Fatalf("restart after kill -9: %v\n%s", err, s.logTail(40))
		}
	}
	at := readAll(t, s, topic, queues)
	where := map[string][][2]int64{}
	for k, b := range at {
		where[b] = append(where[b], k)
	}
	for _, a := range acks {
		k := [2]int64{int64(a.queue), a.offset}
		if b, ok := at[k]; !ok || b != a.body {
			t.Errorf("acknowledged %s at queue %d offset %d: found %q", a.body, a.queue, a.offset, b)
		}
		if n := len(where[a.body]); n != 1 {
			t.Errorf("acknowledged %s stored %d times: %v", a.body, n, where[a.body])
		}
	}
	t.Logf("%d messages after recovery (%d acknowledged)", len(at), len(acks))
}

// TestGracefulShutdown: SIGTERM with producers sending: the process exits 0
// within a few seconds; after a restart every acknowledged message is there
// and consumer offsets committed before the stop were kept.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	s := startStrata(t)
	topic, group := uniq("graceful"), uniq("g")
	const queues = 2
	s.createTopic(t, topic, queues, false)
	p := s.newProducer(t, producer.WithRetry(0))

	// A group consumes a first batch and commits it.
	msgs, first := textMessages(topic, "first", 20)
	sendSync(t, p, msgs...)
	var col collector
	c := s.newPushConsumer(t, group, consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "*", col.handler("before"))
	waitFor(t, 15*time.Second, "the first batch consumed", func() bool { return col.hasAll(first) })
	s.waitCommitted(t, c, topic)
	c.shutdown()

	// A second consumer (its pulls held) and producers stay active.
	idleTopic := uniq("idle")
	s.createTopic(t, idleTopic, 1, false)
	var idle collector
	c2 := s.newPushConsumer(t, uniq("idle"))
	c2.subscribeAndStart(t, idleTopic, "*", idle.handler("idle"))
	load := startLoad(t, p, topic, "load", 3)
	waitFor(t, 30*time.Second, "100 acknowledged sends", func() bool { return load.nAcked.Load() >= 100 })
	start := time.Now()
	if err := s.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := s.wait(10 * time.Second)
	took := time.Since(start)
	if err != nil {
		s.kill()
		t.Fatalf("SIGTERM: %v\n%s", err, s.logTail(40))
	}
	if code != 0 || took > 5*time.Second {
		t.Errorf("SIGTERM with producers active: exit code %d after %v, want 0 within 5s", code, took)
	}
	t.Logf("exit code %d %v after SIGTERM", code, took.Round(time.Millisecond))
	load.waitDone(t, 15*time.Second)
	acks, _ := load.snapshot()
	if !strings.Contains(s.logTail(20), "broker stopped") {
		t.Errorf("no \"broker stopped\" in the log after SIGTERM")
	}

	if err := s.restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	at := readAll(t, s, topic, queues)
	for _, a := range acks {
		if b := at[[2]int64{int64(a.queue), a.offset}]; b != a.body {
			t.Errorf("acknowledged %s at queue %d offset %d: found %q", a.body, a.queue, a.offset, b)
		}
	}
	// The group resumes after its first batch.
	var after collector
	c3 := s.newPushConsumer(t, group, consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c3.subscribeAndStart(t, topic, "*", after.handler("after"))
	want := make([]string, 0, len(acks))
	for _, a := range acks {
		want = append(want, a.body)
	}
	waitFor(t, 30*time.Second, "the group to consume the rest after the restart", func() bool { return after.hasAll(want) },
		func() string { return fmt.Sprint("missing ", after.missing(want)) })
	for b := range after.bodies() {
		if strings.HasPrefix(b, "first-") {
			t.Errorf("%s, committed before the restart, was delivered again", b)
		}
	}
}
