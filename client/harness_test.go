package client

import (
	"context"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/namesrv"
)

// waitLimit bounds every wait of these tests.
const waitLimit = 10 * time.Second

// testLogger discards logs unless STRATA_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("STRATA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// standalone is a name server and one broker in this process, on loopback
// ports chosen by the kernel, with their data in a test directory.
type standalone struct {
	nsAddr     string
	brokerAddr string
	ns         *namesrv.Server
	b          *broker.Broker
	// proxy, when standaloneOpts.proxy is set, stands between clients and
	// the broker: the broker advertises its address.
	proxy *tcpProxy
}

type standaloneOpts struct {
	autoCreate bool
	brokerName string
	proxy      bool // clients reach the broker through a tcpProxy
}

// startStandalone starts a name server and a broker and waits until the
// broker is registered. Cleanup shuts both down (registered before the
// test's clients, so it runs after they close).
func startStandalone(t *testing.T, o standaloneOpts) *standalone {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	log := testLogger()
	ns := namesrv.New(namesrv.Config{Listen: "127.0.0.1:0", Logger: log})
	nsAddr, err := ns.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := &standalone{nsAddr: nsAddr.String(), ns: ns}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := ns.Shutdown(ctx); err != nil {
			t.Errorf("name server Shutdown: %v", err)
		}
	})
	name := o.brokerName
	if name == "" {
		name = "broker-a"
	}
	// A port picked in advance rather than "127.0.0.1:0": with port 0 the
	// broker's store writes STOREHOST 127.0.0.1:0 into every record (it is
	// configured in broker.New, before Start binds), so pulled offset
	// message ids disagree with the send responses' (broker bug, reported).
	listen, advertise := freePort(t), ""
	if o.proxy {
		s.proxy = startProxy(t, listen)
		advertise = s.proxy.addr()
	}
	b, err := broker.New(ctx, broker.Config{
		DataDir:          t.TempDir(),
		Listen:           listen,
		AdvertiseAddr:    advertise,
		BrokerName:       name,
		NameServers:      []string{s.nsAddr},
		AutoCreateTopics: o.autoCreate,
		Logger:           log,
		Store: store.Config{
			SegmentSize:      8 << 20,
			IndexSlots:       1024,
			IndexEntries:     4096,
			QueueFileEntries: 1024,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	baddr, err := b.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.b, s.brokerAddr = b, baddr.String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("broker Shutdown: %v", err)
		}
	})
	// Wait for the broker's first registration.
	c := s.client(t)
	for {
		ci, err := c.ClusterInfo(ctx)
		if err == nil && ci.Brokers[name].LeaderAddr() != "" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("broker did not register: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return s
}

// client returns a Client of the standalone, closed at the end of the test.
func (s *standalone) client(t *testing.T, opts ...Opt) *Client {
	t.Helper()
	opts = append([]Opt{NameServers(s.nsAddr), Logger(testLogger()), RequestTimeout(5 * time.Second)}, opts...)
	c, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Client.Close: %v", err)
		}
	})
	return c
}

// checkGoroutines fails the test if, at its end (after every other
// cleanup), more goroutines run than at the call, waiting a little for
// exiting ones.
func checkGoroutines(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() { waitGoroutines(t, base) })
}

func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("%d goroutines running, %d before:\n%s", runtime.NumGoroutine(), base, interesting(string(buf)))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// interesting drops the testing framework's goroutines from a stack dump.
func interesting(dump string) string {
	var keep []string
	for _, g := range strings.Split(dump, "\n\n") {
		if strings.Contains(g, "testing.(*T).Run") || strings.Contains(g, "testing.tRunner") && !strings.Contains(g, "strata") {
			continue
		}
		keep = append(keep, g)
	}
	return strings.Join(keep, "\n\n")
}

// freePort returns a loopback address with a port that was free a moment
// ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
