package client

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/strata-mq/strata/remoting"
)

// pullAnswer answers a pull with PULL_NOT_FOUND at the asked offset,
// suggesting broker id suggest.
func pullAnswer(suggest int64) func(req *remoting.Command) *remoting.Command {
	return func(req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.RespPullNotFound, "")
		resp.ExtFields = map[string]string{"nextBeginOffset": req.Ext("queueOffset"), "minOffset": "0", "maxOffset": "500",
			"suggestWhichBrokerId": strconv.FormatInt(suggest, 10)}
		return resp
	}
}

// TestPullGoesToTheTierThatHoldsTheOffset: with a Strata route's tier
// bounds, a pull below the hot start goes straight to a tier reader and
// one above it to the leader; a pull answer's suggestion picks the next
// pull's node; an unreachable reader sends the pull to the leader.
func TestPullGoesToTheTierThatHoldsTheOffset(t *testing.T) {
	leader := startFake(t, pullAnswer(1)) // a leader serving history points at reader 1
	reader := startFake(t, pullAnswer(0)) // a reader at the hot tier points at the leader
	deadReader := freePort(t)
	route := fmt.Sprintf(`{"orderTopicConf":"","queueDatas":[{"brokerName":"b1","perm":6,"readQueueNums":2,"topicSynFlag":0,"writeQueueNums":2}],`+
		`"brokerDatas":[{"brokerAddrs":{"0":%q,"1":%q,"2":%q},"brokerName":"b1","cluster":"c"}],"tierBounds":{"b1":{"0":100}}}`,
		leader.addr, reader.addr, deadReader)
	ns := startFake(t, func(req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.Body = []byte(route)
		return resp
	})
	c, err := New(NameServers(ns.addr), Logger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)
	r, err := c.Route(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.HotStart["b1"][0]; got != 100 {
		t.Fatalf("route hot start %d, want 100 (%+v)", got, r.HotStart)
	}
	count := func() (int, int) { return len(leader.requests()), len(reader.requests()) }

	// Find a group whose queue 0 hashes to the live reader (id 1).
	var cs *Consumer
	for i := 0; ; i++ {
		cs = mustConsumer(t, c, fmt.Sprintf("g%d", i))
		l0, r0 := count()
		if _, err := cs.Pull(ctx, MessageQueue{Topic: "t", BrokerName: "b1", QueueID: 0}, 5, 1); err != nil {
			t.Fatal(err)
		}
		if l1, r1 := count(); r1 == r0+1 && l1 == l0 {
			break
		}
		if i > 50 {
			t.Fatal("no group's cold pull went to the reader")
		}
	}
	mq0 := MessageQueue{Topic: "t", BrokerName: "b1", QueueID: 0}
	// The reader answered "go to the leader": the next pull goes there.
	l0, r0 := count()
	if _, err := cs.Pull(ctx, mq0, 100, 1); err != nil {
		t.Fatal(err)
	}
	if l1, r1 := count(); l1 != l0+1 || r1 != r0 {
		t.Errorf("pull after the reader's suggestion: leader %d→%d, reader %d→%d", l0, l1, r0, r1)
	}
	// The leader answered "go to reader 1".
	l0, r0 = count()
	if _, err := cs.Pull(ctx, mq0, 7, 1); err != nil {
		t.Fatal(err)
	}
	if l1, r1 := count(); l1 != l0 || r1 != r0+1 {
		t.Errorf("pull after the leader's suggestion: leader %d→%d, reader %d→%d", l0, l1, r0, r1)
	}
	// A queue without a tier bound goes to the leader.
	fresh := mustConsumer(t, c, "fresh")
	l0, r0 = count()
	if _, err := fresh.Pull(ctx, MessageQueue{Topic: "t", BrokerName: "b1", QueueID: 1}, 5, 1); err != nil {
		t.Fatal(err)
	}
	if l1, r1 := count(); l1 != l0+1 || r1 != r0 {
		t.Errorf("pull of a queue without tier bounds: leader %d→%d, reader %d→%d", l0, l1, r0, r1)
	}
	// A suggested reader that is down: the leader serves the pull.
	cs.nodes.Store(mq0, int64(2))
	l0, r0 = count()
	if _, err := cs.Pull(ctx, mq0, 7, 1); err != nil {
		t.Fatalf("pull with the reader down: %v", err)
	}
	if l1, r1 := count(); l1 != l0+1 || r1 != r0 {
		t.Errorf("pull with the reader down: leader %d→%d, reader %d→%d", l0, l1, r0, r1)
	}
}

// TestReadsWithoutLeader: while a broker name has no live leader, pulls
// and offset lookups go to its tier reader; commits still need the leader.
func TestReadsWithoutLeader(t *testing.T) {
	reader := startFake(t, func(req *remoting.Command) *remoting.Command {
		switch req.Code {
		case remoting.ReqPullMessage:
			return pullAnswer(1)(req)
		case remoting.ReqGetMinOffset, remoting.ReqGetMaxOffset:
			resp := remoting.NewResponse(req, remoting.RespSuccess, "")
			resp.ExtFields = map[string]string{"offset": "42"}
			return resp
		}
		return remoting.NewResponse(req, remoting.RespSystemError, "no leader to forward to")
	})
	route := fmt.Sprintf(`{"orderTopicConf":"","queueDatas":[{"brokerName":"b1","perm":4,"readQueueNums":1,"topicSynFlag":0,"writeQueueNums":1}],`+
		`"brokerDatas":[{"brokerAddrs":{"1":%q},"brokerName":"b1","cluster":"c"}]}`, reader.addr)
	ns := startFake(t, func(req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.Body = []byte(route)
		return resp
	})
	c, err := New(NameServers(ns.addr), Logger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)
	cs := mustConsumer(t, c, "g")
	mq := MessageQueue{Topic: "t", BrokerName: "b1", QueueID: 0}
	if off, err := cs.MinOffset(ctx, mq); err != nil || off != 42 {
		t.Errorf("MinOffset without a leader: %d, %v", off, err)
	}
	if _, err := cs.Pull(ctx, mq, 3, 1); err != nil {
		t.Errorf("Pull without a leader: %v", err)
	}
	if err := cs.CommitOffset(ctx, mq, 5); err == nil {
		t.Error("CommitOffset without a leader succeeded")
	}
	if n := len(reader.requests()); n != 2 {
		t.Errorf("the reader got %d requests, want 2 (min offset, pull)", n)
	}
}
