package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
)

// startReplica starts a leader (id 0) or follower of broker-a registered
// with nsAddr.
func startReplica(t *testing.T, nsAddr string, id int64, mutate func(*Config)) *Broker {
	t.Helper()
	cfg := Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", AutoCreateTopics: true, BrokerID: id,
		NameServers: []string{nsAddr}, Replication: ReplicationSync, MinInSyncReplicas: 2, ReplicaMaxLag: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Store:  store.Config{SegmentSize: 256 << 10},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(b) })
	return b
}

func shutdown(b *Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.Shutdown(ctx)
}

func sendRT(t *testing.T, c *remoting.Conn, i int) *remoting.Command {
	t.Helper()
	return invoke(t, c, remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
		"a": "pg", "b": "RT", "c": "TBW102", "d": "1", "e": "0", "f": "0", "g": "1700000000000", "h": "0",
		"i": "", "j": "0", "k": "false", "l": "0"}, []byte(fmt.Sprintf("m-%04d", i))))
}

// TestSyncFollower: under sync replication with two copies a send is
// acknowledged only once the follower holds it, and refused at once when
// the follower is gone; the follower serves pulls from its copy, refuses
// writes and sends consumers it cannot serve to the leader.
func TestSyncFollower(t *testing.T) {
	ns := startNamesrv(t)
	leader := startReplica(t, ns, 0, nil)
	follower := startReplica(t, ns, 1, nil)
	if follower.cfg.Role != RoleFollower {
		t.Fatalf("broker id 1 runs as %q", follower.cfg.Role)
	}
	waitUntil(t, "the follower in sync", func() bool { return leader.Replication().InSync == 2 })
	lc := pipeTo(t, leader, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40001})
	fc := pipeTo(t, follower, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40002})

	const n = 300
	for i := 0; i < n; i++ {
		resp := sendRT(t, lc, i)
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("send %d: %d %q", i, resp.Code, resp.Remark)
		}
		qo, _ := strconv.ParseInt(resp.Ext("queueOffset"), 10, 64)
		if got := follower.Store().MaxOffset("RT", 0); got <= qo {
			t.Fatalf("send %d acknowledged at queue offset %d; the follower holds %d messages", i, qo, got)
		}
	}
	if a, b := leader.Store().LogEnd(), follower.Store().LogEnd(); a != b {
		t.Fatalf("log ends: leader %d, follower %d", a, b)
	}

	// Pulls from the follower, once it has the leader's topics.
	waitUntil(t, "the follower to know topic RT", func() bool { _, ok := follower.topics.Get("RT"); return ok })
	next := int64(0)
	for next < n {
		resp := pullAt(t, fc, next)
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("pull from the follower at %d: %d %q", next, resp.Code, resp.Remark)
		}
		if s := resp.Ext("suggestWhichBrokerId"); s != "1" {
			t.Fatalf("the follower serving history suggests broker %s", s)
		}
		next = checkBodies(t, resp.Body, next)
	}
	resp := pullAt(t, fc, n+5)
	if resp.Code != remoting.RespPullRetryImmediately || resp.Ext("suggestWhichBrokerId") != "0" || resp.Ext("nextBeginOffset") != strconv.Itoa(n+5) {
		t.Fatalf("pull past the follower's copy: %d %v", resp.Code, resp.ExtFields)
	}
	if resp := sendRT(t, fc, 0); resp.Code != remoting.RespNoPermission {
		t.Fatalf("send to the follower: %d %q", resp.Code, resp.Remark)
	}

	// Consumer offsets committed on the leader reach the follower.
	leader.offsets.Commit("g1", "RT", 0, 123)
	waitUntil(t, "the follower to copy the offsets", func() bool { off, ok := follower.offsets.Query("g1", "RT", 0); return ok && off == 123 })

	// The status names both.
	resp = invoke(t, lc, remoting.NewRequest(remoting.ReqGetReplicationStatus, nil, nil))
	var st ReplicationStatus
	if err := json.Unmarshal(resp.Body, &st); err != nil || st.Role != RoleLeader || len(st.Followers) != 1 ||
		st.Followers[0].ID != 1 || st.Followers[0].Acked != st.LogEnd || !st.Followers[0].InSync {
		t.Fatalf("leader status %+v (%v)", st, err)
	}
	if fs := follower.Replication(); fs.Replica == nil || !fs.Replica.Connected || fs.LogEnd != st.LogEnd {
		t.Fatalf("follower status %+v", fs)
	}

	// Without the follower, sends fail fast and store nothing.
	end := leader.Store().LogEnd()
	shutdown(follower)
	waitUntil(t, "the follower gone", func() bool { return leader.Replication().InSync == 1 })
	t0 := time.Now()
	resp = sendRT(t, lc, n)
	if resp.Code != remoting.RespServiceNotAvailable || time.Since(t0) > 2*time.Second {
		t.Fatalf("send with too few copies: %d %q after %v", resp.Code, resp.Remark, time.Since(t0))
	}
	if leader.Store().LogEnd() != end {
		t.Fatal("a refused send was stored")
	}

	// A message the leader holds alone (stored behind the broker's back,
	// as an unconfirmed send would be) is not readable, and a held pull
	// gets it once a copy confirms it.
	m := []remoting.MessageExt{{Topic: "RT", QueueID: 0, Body: []byte(fmt.Sprintf("m-%04d", n)), BornTimestamp: 1}}
	if err := leader.Store().Append(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if resp := pullAt(t, lc, n); resp.Code != remoting.RespPullNotFound || resp.Ext("nextBeginOffset") != strconv.Itoa(n) {
		t.Fatalf("pull of a message on one copy of two: %d %v", resp.Code, resp.ExtFields)
	}
	held := make(chan *remoting.Command, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		resp, err := lc.Invoke(ctx, remoting.NewRequest(remoting.ReqPullMessage, map[string]string{
			"consumerGroup": "g", "topic": "RT", "queueId": "0", "queueOffset": strconv.Itoa(n), "maxMsgNums": "32",
			"sysFlag": "2", "commitOffset": "0", "suspendTimeoutMillis": "15000", "subscription": "*"}, nil))
		if err != nil {
			resp = remoting.NewResponse(remoting.NewRequest(0, nil, nil), remoting.RespSystemError, err.Error())
		}
		held <- resp
	}()
	waitUntil(t, "the pull to be held", func() bool { return leader.holds.heldCount() == 1 })
	startReplica(t, ns, 2, nil) // a new follower copies the log and confirms it
	select {
	case resp := <-held:
		if resp.Code != remoting.RespSuccess || checkBodies(t, resp.Body, n) != n+1 {
			t.Fatalf("held pull: %d %q", resp.Code, resp.Remark)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the held pull was not answered when the message was confirmed")
	}
}

// TestAsyncFollowerCatchesUp: a follower that starts late copies the whole
// log, across segments.
func TestAsyncFollowerCatchesUp(t *testing.T) {
	ns := startNamesrv(t)
	async := func(c *Config) { c.Replication, c.MinInSyncReplicas = ReplicationAsync, 0 }
	leader := startReplica(t, ns, 0, async)
	lc := pipeTo(t, leader, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40001})
	for i := 0; i < 600; i++ {
		if resp := sendRT(t, lc, i); resp.Code != remoting.RespSuccess {
			t.Fatalf("send %d: %d %q", i, resp.Code, resp.Remark)
		}
	}
	follower := startReplica(t, ns, 2, async)
	waitUntil(t, "the follower to catch up", func() bool {
		return follower.Store().LogEnd() == leader.Store().LogEnd() && follower.Store().MaxOffset("RT", 0) == 600
	})
	if a, b := leader.Store().MaxOffset("RT", 0), follower.Store().MaxOffset("RT", 0); a != b || a != 600 {
		t.Fatalf("queue RT/0: leader %d, follower %d", a, b)
	}
}
