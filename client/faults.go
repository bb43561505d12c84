package client

import (
	"errors"
	"sync"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// faultTracker remembers brokers that just failed or answered slowly, so
// that sends avoid them for a while (RocketMQ's latency fault tolerance):
// after a broker dies, a producer's sends go to the others at once rather
// than each paying a failed attempt until the name servers drop it. One
// tracker serves every producer of a Client. A broker is only avoided
// while another is available; when all are, sends go where round-robin
// says.
type faultTracker struct {
	mu  sync.Mutex
	m   map[string]faultItem // by broker name
	now func() time.Time
}

type faultItem struct {
	until   time.Time // avoid the broker until then
	strikes int       // consecutive failures
}

// slowAnswers maps a send's latency to how long its broker is avoided
// afterwards (the shape of RocketMQ's latencyMax/notAvailableDuration
// table, with shorter waits: a serverless function lives seconds).
var slowAnswers = []struct {
	latency, avoid time.Duration
}{
	{3 * time.Second, 30 * time.Second},
	{time.Second, 10 * time.Second},
	{550 * time.Millisecond, 5 * time.Second},
}

// maxFaultAvoid bounds how long failures make a broker avoided; the first
// failure avoids it for a second, each further one doubles that.
const maxFaultAvoid = 30 * time.Second

func newFaultTracker() *faultTracker {
	return &faultTracker{m: make(map[string]faultItem), now: time.Now}
}

// available reports whether sends may go to broker now.
func (f *faultTracker) available(broker string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	it, ok := f.m[broker]
	return !ok || !f.now().Before(it.until)
}

// report records a send to broker that took latency and ended with err.
func (f *faultTracker) report(broker string, latency time.Duration, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	it := f.m[broker]
	switch {
	case err != nil && brokerFault(err):
		it.strikes++
		it.until = now.Add(min(maxFaultAvoid, time.Second<<min(it.strikes-1, 5)))
	case err != nil:
		return // the message's or the topic's fault, not the broker's
	default:
		it.strikes = 0
		it.until = time.Time{}
		for _, s := range slowAnswers {
			if latency >= s.latency {
				it.until = now.Add(s.avoid)
				break
			}
		}
	}
	if it.until.IsZero() && it.strikes == 0 {
		delete(f.m, broker)
		return
	}
	f.m[broker] = it
}

// brokerFault tells the errors that say something about the broker rather
// than the message: it is gone, too slow, overloaded or failing.
func brokerFault(err error) bool {
	if errors.Is(err, ErrBrokerUnreachable) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrThrottled) {
		return true
	}
	var re *ResponseError
	if errors.As(err, &re) {
		switch re.Code {
		case remoting.RespSystemError, remoting.RespServiceNotAvailable, remoting.RespSystemBusy:
			return true
		}
	}
	return false
}
