package broker

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
)

func newTestBroker(t *testing.T) *Broker {
	t.Helper()
	b, err := New(context.Background(), Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", AutoCreateTopics: true, MaxMessageSize: 256 << 10,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Store:  store.Config{SegmentSize: 1 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// addrConn is a net.Conn that claims another remote address.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// pipeTo connects a client Conn to b's handler over an in-memory pipe whose
// broker end sees peer as the remote address.
func pipeTo(t *testing.T, b *Broker, peer net.Addr) *remoting.Conn {
	serverEnd, clientEnd := net.Pipe()
	sc := remoting.NewConn(addrConn{serverEnd, peer}, remoting.ConnOptions{Handler: b})
	cc := remoting.NewConn(clientEnd, remoting.ConnOptions{})
	t.Cleanup(func() { cc.Close(); sc.Close() })
	return cc
}

func invoke(t *testing.T, c *remoting.Conn, req *remoting.Command) *remoting.Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Invoke(ctx, req)
	if err != nil {
		t.Fatalf("invoke %d: %v", req.Code, err)
	}
	return resp
}

// TestAdminRefusedFromNonLoopback: until ACLs exist, nothing that changes
// topics or configuration is accepted from a remote peer (the class of
// CVE-2023-33246), and nothing reaches the file system.
func TestAdminRefusedFromNonLoopback(t *testing.T) {
	b := newTestBroker(t)
	remote := pipeTo(t, b, &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 40000})
	evil := map[string]string{"topic": "T", "readQueueNums": "4", "writeQueueNums": "4",
		"rocketmqHome": "-c $@|sh . echo pwned", "filterServerNums": "1", "configStorePath": "/tmp/strata-pwned"}
	for _, code := range []int16{remoting.ReqUpdateAndCreateTopic, remoting.ReqDeleteTopicInBroker,
		remoting.ReqUpdateBrokerConfig, remoting.ReqPutKVConfig} {
		resp := invoke(t, remote, remoting.NewRequest(code, evil, []byte("rocketmqHome=-c $@|sh\n")))
		if resp.Code != remoting.RespNoPermission {
			t.Errorf("code %d from a remote peer: %d %q; want NO_PERMISSION", code, resp.Code, resp.Remark)
		}
	}
	if _, ok := b.topics.Get("T"); ok {
		t.Fatal("a remote peer created a topic")
	}
	if _, err := os.Stat("/tmp/strata-pwned"); err == nil {
		t.Fatal("a remote request wrote outside the data directory")
	}
	// From loopback topic administration works; configuration changes are
	// never supported at runtime.
	local := pipeTo(t, b, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000})
	if resp := invoke(t, local, remoting.NewRequest(remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "T", "readQueueNums": "2", "writeQueueNums": "2"}, nil)); resp.Code != remoting.RespSuccess {
		t.Fatalf("create topic from loopback: %d %q", resp.Code, resp.Remark)
	}
	if tc, ok := b.topics.Get("T"); !ok || tc.WriteQueues != 2 {
		t.Fatalf("topic after create: %+v %v", tc, ok)
	}
	if resp := invoke(t, local, remoting.NewRequest(remoting.ReqUpdateBrokerConfig, nil, []byte("a=b"))); resp.Code == remoting.RespSuccess {
		t.Fatal("a broker configuration change was accepted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	walk := func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(p, "pwned") {
			t.Errorf("file %s created", p)
		}
		return nil
	}
	filepath.WalkDir(b.cfg.DataDir, walk)
}

// TestSendPullAndHold exercises send, pull and a held pull woken by a send.
func TestSendPullAndHold(t *testing.T) {
	b := newTestBroker(t)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	}()
	c := pipeTo(t, b, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40001})
	send := func(body string) *remoting.Command {
		return invoke(t, c, remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
			"a": "pg", "b": "Hold", "c": "TBW102", "d": "4", "e": "1", "f": "0", "g": "1700000000000", "h": "0",
			"i": "TAGS\x01x\x02", "j": "0", "k": "false", "l": "0", "n": "broker-a"}, []byte(body)))
	}
	if resp := send("first"); resp.Code != remoting.RespSuccess || resp.Ext("queueOffset") != "0" || len(resp.Ext("msgId")) != 32 {
		t.Fatalf("send: %v", resp)
	}
	pull := func(off string, suspend bool) *remoting.Command {
		flag := "0"
		if suspend {
			flag = "2"
		}
		return invoke(t, c, remoting.NewRequest(remoting.ReqPullMessage, map[string]string{
			"consumerGroup": "g", "topic": "Hold", "queueId": "1", "queueOffset": off, "maxMsgNums": "32",
			"sysFlag": flag, "commitOffset": "0", "suspendTimeoutMillis": "20000", "subscription": "*", "subVersion": "0"}, nil))
	}
	resp := pull("0", false)
	if resp.Code != remoting.RespSuccess || resp.Ext("nextBeginOffset") != "1" {
		t.Fatalf("pull: %d %v", resp.Code, resp.ExtFields)
	}
	m, err := remoting.DecodeMessageExt(resp.Body)
	if err != nil || string(m.Body) != "first" {
		t.Fatalf("pulled %q, %v", m.Body, err)
	}
	// A held pull answers as soon as the next message arrives.
	done := make(chan *remoting.Command, 1)
	go func() { done <- pull("1", true) }()
	deadline := time.Now().Add(10 * time.Second)
	for b.holds.heldCount() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("pull was not held")
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	send("second")
	select {
	case resp := <-done:
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("held pull: %d %q", resp.Code, resp.Remark)
		}
		if waited := time.Since(start); waited > 5*time.Second {
			t.Fatalf("held pull answered after %v", waited)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held pull never answered")
	}
}
