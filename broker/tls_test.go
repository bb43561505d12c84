package broker

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/internal/tlsconf"
	"github.com/strata-mq/strata/internal/tlstest"
	"github.com/strata-mq/strata/remoting"
)

// TestTLSPorts: with TLS, the client port serves TLS clients only and a
// follower copies the log over a TLS replication port.
func TestTLSPorts(t *testing.T) {
	ca := tlstest.NewCA(t)
	cert, key := ca.Issue(t, "broker")
	l, err := tlsconf.Load(tlsconf.Files{CertFile: cert, KeyFile: key, CAFile: ca.File}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := func(id int64, from string) *Broker {
		t.Helper()
		b, err := New(context.Background(), Config{
			DataDir: t.TempDir(), Listen: "127.0.0.1:0", AutoCreateTopics: true, BrokerID: id, ReplicateFrom: from,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: store.Config{SegmentSize: 256 << 10},
			TLS: l.Server(), ClientTLS: l.Client(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { shutdown(b) })
		return b
	}
	leader := start(0, "")
	follower := start(1, leader.repl.addr)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := remoting.Dial(ctx, leader.addr, remoting.ConnOptions{TLS: l.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 50 {
		resp, err := c.Invoke(ctx, remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
			"a": "pg", "b": "RT", "c": "TBW102", "d": "1", "e": "0", "f": "0", "g": "1700000000000", "h": "0",
			"i": "", "j": "0", "k": "false", "l": "0"}, []byte{byte(i)}))
		if err != nil || resp.Code != remoting.RespSuccess {
			t.Fatalf("send %d over TLS: %v %+v", i, err, resp)
		}
	}
	waitUntil(t, "the follower to copy over TLS", func() bool { return follower.Store().MaxOffset("RT", 0) == 50 })

	// A plain client gets no answer: the port speaks TLS only.
	plain, err := remoting.Dial(ctx, leader.addr, remoting.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	defer pcancel()
	if resp, err := plain.Invoke(pctx, remoting.NewRequest(remoting.ReqGetMaxOffset, map[string]string{"topic": "RT", "queueId": "0"}, nil)); err == nil {
		t.Fatalf("a plain client was answered: %+v", resp)
	}
	// Nor does a plain follower copy anything.
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", leader.repl.addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write(hello64())
	nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := nc.Read(make([]byte, 64)); err == nil && n > 0 {
		t.Fatal("the replication port answered a plain hello")
	}
	nc.Close()
}

// hello64 is 64 bytes that start like a replication hello.
func hello64() []byte {
	b := make([]byte, 64)
	copy(b, "STRP\x01")
	return b
}
