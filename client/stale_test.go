package client

import (
	"context"
	"errors"
	"testing"
	"time"
)

// proxiedTopic starts a standalone whose broker is reached through a
// proxy, with a one-queue topic, and returns it.
func proxiedTopic(t *testing.T, topic string) *standalone {
	t.Helper()
	s := startStandalone(t, standaloneOpts{proxy: true})
	if err := s.client(t).CreateTopic(testCtx(t), TopicConfig{Name: topic, ReadQueues: 1, WriteQueues: 1}); err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestProducer(t *testing.T, s *standalone, opts ...ProducerOpt) *Producer {
	t.Helper()
	opts = append([]ProducerOpt{NameServers(s.nsAddr), Logger(testLogger())}, opts...)
	p, err := NewProducer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Producer.Close: %v", err)
		}
	})
	return p
}

func sendOne(t *testing.T, ctx context.Context, p *Producer, topic, body string) SendResult {
	t.Helper()
	res, err := p.Send(ctx, Message{Topic: topic, Body: []byte(body)})
	if err != nil {
		t.Fatalf("Send %q: %v", body, err)
	}
	return res[0]
}

// A broker (or NAT) dropped the idle connection while the process was
// frozen: the client learns it only when its next write is reset. The send
// must go through on a new connection, without the producer's own retries.
func TestStaleConnectionReplaced(t *testing.T) {
	checkGoroutines(t)
	s := proxiedTopic(t, "stale")
	ctx := testCtx(t)
	p := newTestProducer(t, s, SendRetries(0))
	first := sendOne(t, ctx, p, "stale", "before")
	links := s.proxy.acceptedCount()

	s.proxy.setAll(linkDropped)
	second := sendOne(t, ctx, p, "stale", "after")
	if second.QueueOffset != first.QueueOffset+1 {
		t.Errorf("offsets %d then %d, want consecutive", first.QueueOffset, second.QueueOffset)
	}
	if n := s.proxy.acceptedCount(); n != links+1 {
		t.Errorf("%d connections through the proxy after the drop, want %d (one redial)", n, links+1)
	}
	// Once more, with the connection idle longer than IdleConnTimeout: it is
	// replaced before use, and the dropped link is never written to.
	p2 := newTestProducer(t, s, SendRetries(0), IdleConnTimeout(time.Millisecond))
	sendOne(t, ctx, p2, "stale", "p2 first")
	s.proxy.setAll(linkDropped)
	links = s.proxy.acceptedCount()
	deadline := time.Now().Add(time.Millisecond)
	for time.Now().Before(deadline) { // let the connection age past 1 ms
		time.Sleep(time.Millisecond)
	}
	sendOne(t, ctx, p2, "stale", "p2 second")
	if n := s.proxy.acceptedCount(); n != links+1 {
		t.Errorf("%d connections after the idle timeout, want %d", n, links+1)
	}
}

// A half-open connection (the peer silently gone) must not hold a send
// beyond its timeout, and must not be reused afterwards.
func TestHalfOpenConnection(t *testing.T) {
	checkGoroutines(t)
	s := proxiedTopic(t, "halfopen")
	ctx := testCtx(t)
	const sendTimeout = 400 * time.Millisecond

	p := newTestProducer(t, s, SendRetries(0), SendTimeout(sendTimeout))
	sendOne(t, ctx, p, "halfopen", "1")
	s.proxy.setAll(linkBlackhole)
	start := time.Now()
	_, err := p.Send(ctx, Message{Topic: "halfopen", Body: []byte("2")})
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrBrokerUnreachable) || !Retryable(err) {
		t.Errorf("Send over a half-open connection: %v, want ErrTimeout", err)
	}
	if took < sendTimeout || took > sendTimeout+2*time.Second {
		t.Errorf("Send over a half-open connection took %v, want about %v", took, sendTimeout)
	}
	// The dead connection was dropped: the next send dials a new one.
	sendOne(t, ctx, p, "halfopen", "3")

	// The caller's deadline, shorter than SendTimeout, bounds the send too.
	p = newTestProducer(t, s, SendRetries(0), SendTimeout(5*time.Second))
	sendOne(t, ctx, p, "halfopen", "3b")
	s.proxy.setAll(linkBlackhole)
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = p.Send(dctx, Message{Topic: "halfopen", Body: []byte("4")})
	if took := time.Since(start); took > 300*time.Millisecond+2*time.Second {
		t.Errorf("Send with a 300ms deadline took %v", took)
	}
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send past the caller's deadline: %v, want ErrTimeout and DeadlineExceeded", err)
	}
	sendOne(t, ctx, p, "halfopen", "5")

	// With the default retries, the caller sees no error: the second
	// attempt goes over a new connection.
	pr := newTestProducer(t, s, SendTimeout(sendTimeout))
	sendOne(t, ctx, pr, "halfopen", "6")
	s.proxy.setAll(linkBlackhole)
	sendOne(t, ctx, pr, "halfopen", "7")
}
