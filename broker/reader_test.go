package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/namesrv"
	"github.com/strata-mq/strata/remoting"
	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/fsstore"
)

// startNamesrv starts an in-process name server.
func startNamesrv(t *testing.T) string {
	t.Helper()
	ns := namesrv.New(namesrv.Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	addr, err := ns.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ns.Shutdown(ctx)
	})
	return addr.String()
}

// startGroupBroker starts a leader (id 0) or tier reader of broker-a with a
// cold tier in ts, registered with nsAddr.
func startGroupBroker(t *testing.T, nsAddr string, ts tier.ObjectStore, role Role, id int64) *Broker {
	t.Helper()
	b, err := New(context.Background(), Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", AutoCreateTopics: true, Role: role, BrokerID: id,
		NameServers: []string{nsAddr}, ReaderRefresh: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Store: store.Config{SegmentSize: 256 << 10, Flush: store.FlushAsync, CheckpointInterval: 50 * time.Millisecond,
			QueueFlushDelay: 50 * time.Millisecond},
		Tier: TierConfig{Store: ts, CacheSize: 4 << 20, ManifestWait: 5 * time.Second, HotRetention: HotRetention{},
			Tier: tier.Config{BlockSize: 32 << 10, ReadTimeout: 2 * time.Second}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	})
	return b
}

// sendBodies sends n 1000-byte messages to topic RT queue 0, numbered from
// first, then seals the log and waits until the hot tier no longer holds
// them all (offloaded and deleted).
func sendAndOffload(t *testing.T, b *Broker, c *remoting.Conn, first, n int) {
	t.Helper()
	body := make([]byte, 1000)
	for i := first; i < first+n; i++ {
		copy(body, fmt.Sprintf("m-%04d", i))
		resp := invoke(t, c, remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
			"a": "pg", "b": "RT", "c": "TBW102", "d": "1", "e": "0", "f": "0", "g": "1700000000000", "h": "0",
			"i": "", "j": "0", "k": "false", "l": "0"}, body))
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("send %d: %d %q", i, resp.Code, resp.Remark)
		}
	}
	if err := b.Store().Seal(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the history to leave the hot tier", func() bool {
		return b.Store().MinOffset("RT", 0) == int64(first+n) && b.Store().MaxOffset("RT", 0) == int64(first+n)
	})
}

// pullAt pulls RT/0 at offset.
func pullAt(t *testing.T, c *remoting.Conn, offset int64) *remoting.Command {
	t.Helper()
	return invoke(t, c, remoting.NewRequest(remoting.ReqPullMessage, map[string]string{
		"consumerGroup": "g", "topic": "RT", "queueId": "0", "queueOffset": strconv.FormatInt(offset, 10),
		"maxMsgNums": "32", "sysFlag": "0", "commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*"}, nil))
}

// checkBodies checks that a pull's records are m-<offset>, in order from
// offset, and returns the offset after them.
func checkBodies(t *testing.T, body []byte, offset int64) int64 {
	t.Helper()
	for rest := body; len(rest) > 0; rest = rest[binary.BigEndian.Uint32(rest):] {
		m, err := remoting.DecodeMessageExt(rest)
		if err != nil {
			t.Fatal(err)
		}
		if m.QueueOffset != offset || string(m.Body[:6]) != fmt.Sprintf("m-%04d", offset) {
			t.Fatalf("pulled offset %d body %q, want %d", m.QueueOffset, m.Body[:6], offset)
		}
		offset++
	}
	return offset
}

// TestTierReader: a reader serves the offloaded history byte for byte,
// sends consumers to the leader at the hot tier, sees new offloads, keeps
// no writes and no offsets of its own; the leader, once it knows the
// reader, points cold pulls at it.
func TestTierReader(t *testing.T) {
	ts, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nsAddr := startNamesrv(t)
	leader := startGroupBroker(t, nsAddr, ts, RoleLeader, 0)
	lc := pipeTo(t, leader, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40011})
	sendAndOffload(t, leader, lc, 0, 400)
	coldEnd := leader.Store().MinOffset("RT", 0)

	reader := startGroupBroker(t, nsAddr, ts, RoleReader, 1)
	rc := pipeTo(t, reader, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40012})
	waitUntil(t, "the reader to publish the topic", func() bool { _, ok := reader.topics.Get("RT"); return ok })

	// The cold history, byte for byte as the leader serves it, then a
	// pointer back to the leader.
	next := int64(0)
	for next < coldEnd {
		resp := pullAt(t, rc, next)
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("reader pull at %d: %d %q %v", next, resp.Code, resp.Remark, resp.ExtFields)
		}
		if lresp := pullAt(t, lc, next); string(lresp.Body) != string(resp.Body) {
			t.Fatalf("reader and leader differ at %d", next)
		}
		if resp.Ext("suggestWhichBrokerId") != "1" {
			t.Fatalf("reader suggests %q for a cold pull, not itself", resp.Ext("suggestWhichBrokerId"))
		}
		next = checkBodies(t, resp.Body, next)
	}
	resp := pullAt(t, rc, next)
	if resp.Code != remoting.RespPullNotFound || resp.Ext("nextBeginOffset") != strconv.FormatInt(next, 10) || resp.Ext("suggestWhichBrokerId") != "0" {
		t.Fatalf("reader pull at the hot tier (%d): %d %v; want PULL_NOT_FOUND pointing at the leader", next, resp.Code, resp.ExtFields)
	}

	// New offloads become readable without a restart.
	sendAndOffload(t, leader, lc, 400, 200)
	if resp := pullAt(t, rc, next); resp.Code != remoting.RespSuccess {
		t.Fatalf("reader pull at %d after more was offloaded: %d %q", next, resp.Code, resp.Remark)
	} else {
		checkBodies(t, resp.Body, next)
	}

	// Writes are refused; offsets are the leader's.
	if resp := invoke(t, rc, remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
		"a": "pg", "b": "RT", "c": "TBW102", "d": "1", "e": "0", "f": "0", "g": "1700000000000", "h": "0",
		"i": "", "j": "0", "k": "false", "l": "0"}, []byte("x"))); resp.Code != remoting.RespNoPermission {
		t.Errorf("send to a reader: %d %q", resp.Code, resp.Remark)
	}
	waitUntil(t, "the reader to learn its leader", func() bool { return reader.members.Load().leader != "" })
	if resp := invoke(t, rc, remoting.NewRequest(remoting.ReqUpdateConsumerOffset, map[string]string{
		"consumerGroup": "g", "topic": "RT", "queueId": "0", "commitOffset": "123"}, nil)); resp.Code != remoting.RespSuccess {
		t.Fatalf("commit through the reader: %d %q", resp.Code, resp.Remark)
	}
	if got, ok := leader.offsets.Query("g", "RT", 0); !ok || got != 123 {
		t.Errorf("leader holds offset %d, %v; want 123", got, ok)
	}

	// The leader serves a cold pull and points the consumer at the reader.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp := pullAt(t, lc, 0)
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("leader cold pull: %d %q", resp.Code, resp.Remark)
		}
		if resp.Ext("suggestWhichBrokerId") == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader still suggests %q for a cold pull", resp.Ext("suggestWhichBrokerId"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// ...but not a hot one.
	hot := leader.Store().MaxOffset("RT", 0)
	if resp := invoke(t, lc, remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
		"a": "pg", "b": "RT", "c": "TBW102", "d": "1", "e": "0", "f": "0", "g": "1700000000000", "h": "0",
		"i": "", "j": "0", "k": "false", "l": "0"}, []byte("hot"))); resp.Code != remoting.RespSuccess {
		t.Fatalf("send: %d %q", resp.Code, resp.Remark)
	}
	if resp := pullAt(t, lc, hot); resp.Code != remoting.RespSuccess || resp.Ext("suggestWhichBrokerId") != "0" {
		t.Errorf("leader hot pull: %d, suggests %q", resp.Code, resp.Ext("suggestWhichBrokerId"))
	}
}

// TestTierReaderRefusesLeaderData: a reader pointed at a leader's data
// directory refuses to start rather than empty it.
func TestTierReaderRefusesLeaderData(t *testing.T) {
	ts, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, err := New(context.Background(), Config{DataDir: dir, Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), Config{DataDir: dir, Role: RoleReader, BrokerID: 1, Tier: TierConfig{Store: ts}})
	if err == nil {
		t.Fatal("a reader started on a leader's data directory")
	}
	if _, serr := os.Stat(filepath.Join(dir, "store")); serr != nil {
		t.Fatalf("the leader's store is gone: %v", serr)
	}
	for _, cfg := range []Config{
		{DataDir: t.TempDir(), Role: RoleReader, BrokerID: 1},                              // no tier
		{DataDir: t.TempDir(), Role: RoleReader, BrokerID: 0, Tier: TierConfig{Store: ts}}, // id 0
		{DataDir: t.TempDir(), Role: "follower"},
	} {
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
