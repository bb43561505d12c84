package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/namesrv"
	"github.com/strata-mq/strata/remoting"
	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/fsstore"
)

func TestHotStart(t *testing.T) {
	cases := []struct {
		name                                string
		coldFirst, coldNext, hotMin, hotMax int64
		start                               int64
		cold                                bool
	}{
		{"cold below hot", 0, 300, 250, 400, 250, true},
		{"offloaded, not yet deleted", 0, 300, 0, 400, 0, false},
		{"hot trimmed to empty", 0, 400, 400, 400, 400, true},
		{"nothing in the hot tier", 100, 400, 0, 0, 400, true},
		{"cold starts above hot min", 300, 400, 200, 450, 200, false},
		{"cold history with a gap to hot", 0, 100, 150, 200, 150, true},
	}
	for _, c := range cases {
		start, cold := hotStart(c.coldFirst, c.coldNext, c.hotMin, c.hotMax)
		if start != c.start || cold != c.cold {
			t.Errorf("%s: hotStart(%d, %d, %d, %d) = %d, %v; want %d, %v", c.name,
				c.coldFirst, c.coldNext, c.hotMin, c.hotMax, start, cold, c.start, c.cold)
		}
	}
}

// TestNoTierNoBounds: a broker without a cold tier sends no Extra.
func TestNoTierNoBounds(t *testing.T) {
	b := newTestBroker(t)
	defer b.store.Close()
	if r := b.registration(); r.Extra != nil {
		t.Fatalf("registration Extra %s without a cold tier", r.Extra)
	}
}

// TestRegisterRequestTooLarge: a registration that would not fit a frame
// goes without its tier bounds rather than not at all.
func TestRegisterRequestTooLarge(t *testing.T) {
	b := &Broker{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	reg := namesrv.Registration{ClusterName: "c", BrokerName: "b", BrokerAddr: "127.0.0.1:10911",
		Topics: map[string]namesrv.TopicConfig{"T": {ReadQueueNums: 1, WriteQueueNums: 1, Perm: 6}}}
	reg.Extra = []byte(`{"tierBounds":{"T":{"0":5}}}`)
	req, err := b.registerRequest(reg)
	if err != nil || !strings.Contains(string(req.Body), `"strata":{"tierBounds"`) {
		t.Fatalf("small registration: %v, body %s", err, req.Body)
	}
	reg.Extra = []byte(`{"pad":"` + strings.Repeat("x", maxRegisterFrame) + `"}`)
	req, err = b.registerRequest(reg)
	if err != nil || len(req.Body) > 4096 || strings.Contains(string(req.Body), `"strata"`) {
		t.Fatalf("oversized registration: %v, %d bytes", err, len(req.Body))
	}
	if got, err := namesrv.DecodeRegisterBrokerRequest(req); err != nil || len(got.Topics) != 1 {
		t.Fatalf("decoding the fallback: %+v, %v", got, err)
	}
}

// TestTierBoundsReported: a leader with a cold tier reports, once its
// first segments are offloaded and deleted from local disk, each queue's
// hot-tier start; the name server's route of the topic carries it, soon
// (an early registration, not the 30 s one), and drops it when the broker
// stops.
func TestTierBoundsReported(t *testing.T) {
	ns := namesrv.New(namesrv.Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	nsAddr, err := ns.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ns.Shutdown(ctx)
	})
	os, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(context.Background(), Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", AutoCreateTopics: true, BrokerName: "broker-t",
		NameServers: []string{nsAddr.String()}, RegisterInterval: time.Hour, // only early registrations count
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Store: store.Config{SegmentSize: 256 << 10, Flush: store.FlushAsync, CheckpointInterval: 50 * time.Millisecond,
			QueueFlushDelay: 50 * time.Millisecond},
		Tier: TierConfig{Store: os, CacheSize: 4 << 20, ManifestWait: 5 * time.Second,
			Tier: tier.Config{BlockSize: 32 << 10, ReadTimeout: 2 * time.Second}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}
	t.Cleanup(stop)

	// Nothing offloaded yet: no bounds.
	if tb := b.tierBounds(); tb != nil {
		t.Fatalf("bounds before any offload: %v", tb)
	}
	c := pipeTo(t, b, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40011})
	const n = 400
	body := make([]byte, 1000)
	for i := range n {
		copy(body, fmt.Sprintf("m-%04d", i))
		// Two queues: 0 gets 3/4 of the messages, 1 the rest.
		q := "0"
		if i%4 == 3 {
			q = "1"
		}
		resp := invoke(t, c, remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
			"a": "pg", "b": "TB", "c": "TBW102", "d": "2", "e": q, "f": "0", "g": "1700000000000", "h": "0",
			"i": "", "j": "0", "k": "false", "l": "0"}, body))
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("send %d: %d %q", i, resp.Code, resp.Remark)
		}
	}
	if err := b.Store().Seal(); err != nil {
		t.Fatal(err)
	}
	// With hot retention 0 every sealed segment goes once offloaded: the
	// hot tier ends up holding nothing of TB, whose hot start is then where
	// the cold tier ends.
	want := namesrv.QueueHotStarts{0: 300, 1: 100}
	waitUntil(t, "every sealed segment offloaded and deleted", func() bool {
		for q, next := range want {
			_, coldNext, _ := b.tier.Bounds("TB", q)
			if b.Store().MinOffset("TB", q) != next || b.Store().MaxOffset("TB", q) != next || coldNext != next {
				return false
			}
		}
		return true
	})
	got := b.tierBounds()
	if len(got) != 1 || !maps.Equal(got["TB"], want) {
		t.Fatalf("tierBounds() = %v, want TB: %v", got, want)
	}
	x, err := namesrv.DecodeRegistrationExtra(b.registration().Extra)
	if err != nil || !maps.Equal(x.TierBounds["TB"], want) {
		t.Fatalf("registration Extra: %+v, %v", x, err)
	}

	var route map[string]namesrv.QueueHotStarts
	waitUntil(t, "the route to carry the tier bounds", func() bool {
		r, ok := ns.Routes("TB")
		if !ok {
			return false
		}
		if route, err = namesrv.DecodeRouteTierBounds(r); err != nil {
			t.Fatal(err)
		}
		return maps.Equal(route["broker-t"], want)
	})
	if len(route) != 1 {
		t.Fatalf("route tier bounds %v, want broker-t's only", route)
	}

	stop()
	if r, ok := ns.Routes("TB"); ok {
		t.Fatalf("route after the broker stopped: %+v", r)
	}
}
