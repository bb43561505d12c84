package e2e

// Issue 7: tier readers. A leader offloads its history to MinIO; tier
// readers (`strata broker --role=reader`) serve that history to
// rocketmq-client-go and Strata-client consumers, survive the loss of one
// of them and of the leader, rebuild it all from the object store alone
// after the leader's disk is gone, and refuse writes.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/miniotest"
	"github.com/strata-mq/strata/internal/testlog"
	"github.com/strata-mq/strata/remoting"
)

// readerBrokerName is the broker name every broker process of these tests
// runs under (the default of `strata broker` and `strata standalone`).
const readerBrokerName = "broker-a"

// TestTierReadersServeHistory: a standalone leader offloads 20k × 1 KiB
// messages to MinIO and keeps only the tail locally; two tier readers
// join. A rocketmq-client-go push consumer and a Strata-client consumer
// each read the whole history from the first offset, byte-identical and
// exactly once, the cold part served by the readers (their metrics), then
// a hot tail produced afterwards from the leader.
func TestTierReadersServeHistory(t *testing.T) {
	const queues, n, size, tail = 4, 20000, 1024, 400
	t0 := time.Now()
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	env := minioEnv(srv, srv.SecretKey)
	tierURL := fmt.Sprintf("minio://%s/%s/hist", srv.Endpoint, bucket)
	s := startStrataEnv(t, env, "--tier", tierURL, "--segment-size", "1MiB", "--hot-retention", "0")
	topic := uniq("ReaderHist")
	s.createTopic(t, topic, queues, false)

	hist := newReaderHistory()
	p := readerProducer(t, s.namesrv)
	start := time.Now()
	readerProduce(t, p, topic, hist, "hist", n, size, 64)
	hist.checkDense(t, queues)
	t.Logf("produced %d × %d B in %v", n, size, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	hot := readerWaitOffloaded(t, s, topic, queues, n)
	cold := readerColdCount(hot)
	t.Logf("offloaded in %v: %d of %d messages only in the cold tier; hot starts %v", time.Since(start).Round(time.Millisecond), cold, n, hot)

	start = time.Now()
	r1 := readerStartReader(t, s.namesrv, 1, tierURL, env)
	r2 := readerStartReader(t, s.namesrv, 2, tierURL, env)
	readerWaitRoute(t, s.namesrv, topic, []int64{0, 1, 2}, hot)
	readerWaitLeaderSuggests(t, s.broker, topic)
	t.Logf("readers up, routed and known to the leader in %v", time.Since(start).Round(time.Millisecond))

	nodes := map[string]*strata{"leader": s, "reader1": r1.strata, "reader2": r2.strata}
	before := readerPulledAll(nodes, topic)

	// Both consumers replay at once, each in its own group.
	start = time.Now()
	rlog := newReaderLog("rocketmq")
	rc := s.newPushConsumer(t, uniq("rg"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithConsumerModel(consumer.Clustering))
	rc.subscribeAndStart(t, topic, "*", rlog.rocketMQHandler())
	stlog := newReaderLog("strata")
	sc := readerStartStrataConsumer(t, s.namesrv, topic, uniq("sg"), stlog)
	readerWaitAll(t, 90*time.Second, n, rlog, stlog)
	replay := time.Since(start)
	after := readerPulledAll(nodes, topic)
	leaderOut := after["leader"] - before["leader"]
	readersOut := after["reader1"] - before["reader1"] + after["reader2"] - before["reader2"]
	t.Logf("replay of %d messages by 2 consumers took %v (%.0f msg/s per consumer)", n, replay.Round(time.Millisecond), float64(n)/replay.Seconds())
	t.Logf("messages served during the replay: leader %.0f, reader1 %.0f, reader2 %.0f (history %d, cold %d, ×2 consumers)",
		leaderOut, after["reader1"]-before["reader1"], after["reader2"]-before["reader2"], n, cold)
	for _, l := range []*readerLog{rlog, stlog} {
		readerVerify(t, l, hist, true)
	}
	if o := stlog.outOfOrder(); o != "" {
		t.Errorf("strata consumer: messages out of queue order: %s", o)
	}
	if readersOut < 0.9*float64(2*cold) {
		t.Errorf("readers served %.0f messages, want at least 90%% of the %d cold ones the two consumers read", readersOut, 2*cold)
	}
	if leaderOut > 0.15*float64(2*n) {
		t.Errorf("the leader served %.0f messages of the replay (%.0f%% of 2×%d); want a small fraction", leaderOut, 100*leaderOut/float64(2*n), n)
	}
	if fb := sc.fallbacks(); fb > 0 {
		t.Errorf("the strata consumer fell back to the leader %d times with both readers up", fb)
	}

	// A hot tail: both consumers get it, from the leader.
	before = readerPulledAll(nodes, topic)
	start = time.Now()
	readerProduce(t, p, topic, hist, "tail", tail, size, 20)
	readerWaitAll(t, 30*time.Second, n+tail, rlog, stlog)
	after = readerPulledAll(nodes, topic)
	leaderOut = after["leader"] - before["leader"]
	readersOut = after["reader1"] - before["reader1"] + after["reader2"] - before["reader2"]
	t.Logf("hot tail of %d read by both consumers in %v: leader served %.0f, readers %.0f", tail, time.Since(start).Round(time.Millisecond), leaderOut, readersOut)
	for _, l := range []*readerLog{rlog, stlog} {
		readerVerify(t, l, hist, true)
	}
	if leaderOut < float64(2*tail)*0.9 {
		t.Errorf("the leader served %.0f messages of the hot tail, want about %d (2 consumers × %d)", leaderOut, 2*tail, tail)
	}
	sc.stop(t)
	s.waitCommitted(t, rc, topic)
	t.Logf("total %v", time.Since(t0).Round(time.Millisecond))
}

// TestTierReaderFailover: a leader (`strata broker`, with a separate
// `strata namesrv`) and two readers. One reader is killed (-9) while both
// consumers are a third into the history: they finish with nothing missing.
// Then the leader is killed: the cold history stays readable from the
// remaining reader; once the leader is back, its hot tail is readable
// again and the running consumers get new messages.
func TestTierReaderFailover(t *testing.T) {
	const queues, n, size, tail = 4, 20000, 1024, 300
	t0 := time.Now()
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	env := minioEnv(srv, srv.SecretKey)
	tierURL := fmt.Sprintf("minio://%s/%s/failover", srv.Endpoint, bucket)
	ns := readerStartNamesrv(t)
	leader := readerStartLeader(t, ns.namesrv, env, "--tier", tierURL, "--segment-size", "1MiB", "--hot-retention", "0")
	topic := uniq("ReaderFail")
	leader.createTopic(t, topic, queues, false)

	hist := newReaderHistory()
	p := readerProducer(t, ns.namesrv)
	readerProduce(t, p, topic, hist, "hist", n, size, 64)
	hist.checkDense(t, queues)
	hot := readerWaitOffloaded(t, leader.strata, topic, queues, n)
	cold := readerColdCount(hot)
	t.Logf("%d of %d messages only in the cold tier after %v; hot starts %v", cold, n, time.Since(t0).Round(time.Millisecond), hot)

	readers := []*readerNode{
		readerStartReader(t, ns.namesrv, 1, tierURL, env),
		readerStartReader(t, ns.namesrv, 2, tierURL, env),
	}
	readerWaitRoute(t, ns.namesrv, topic, []int64{0, 1, 2}, hot)
	readerWaitLeaderSuggests(t, leader.broker, topic)
	nodes := map[string]*strata{"leader": leader.strata, "reader1": readers[0].strata, "reader2": readers[1].strata}
	before := readerPulledAll(nodes, topic)

	// Both consumers stop at 30% of the history until a reader is killed.
	threshold := n * 3 / 10
	gate := make(chan struct{})
	rlog := newReaderLog("rocketmq")
	rlog.setGate(threshold, gate)
	stlog := newReaderLog("strata")
	stlog.setGate(threshold, gate)
	start := time.Now()
	rc := leader.newPushConsumer(t, uniq("rg"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithConsumerModel(consumer.Clustering))
	rc.subscribeAndStart(t, topic, "*", rlog.rocketMQHandler())
	sc := readerStartStrataConsumer(t, ns.namesrv, topic, uniq("sg"), stlog)
	gateOpen := false
	openGate := func() {
		if !gateOpen {
			gateOpen = true
			close(gate)
		}
	}
	defer openGate() // never leave the consumers' callbacks blocked
	readerWaitAll(t, 60*time.Second, threshold, rlog, stlog)
	mid := readerPulledAll(nodes, topic)
	victim := 0
	if mid["reader2"]-before["reader2"] > mid["reader1"]-before["reader1"] {
		victim = 1
	}
	t.Logf("both consumers at %d/%d after %v; served so far: leader %.0f, reader1 %.0f, reader2 %.0f; kill -9 reader%d",
		rlog.distinct(), n, time.Since(start).Round(time.Millisecond), mid["leader"]-before["leader"],
		mid["reader1"]-before["reader1"], mid["reader2"]-before["reader2"], victim+1)
	if err := readers[victim].kill(); err != nil {
		t.Fatalf("kill reader%d: %v", victim+1, err)
	}
	survivor := readers[1-victim]
	killed := time.Now()
	openGate()
	readerWaitDone(t, 90*time.Second, n, rlog, stlog, killed, "the kill", func() string {
		now := readerPulledAll(nodes, topic)
		return fmt.Sprintf("the leader had served %.0f since the kill", now["leader"]-mid["leader"])
	})
	end := readerPulledAll(nodes, topic)
	t.Logf("replay finished %v after the kill (%v in all); served after the kill: leader %.0f, reader%d %.0f",
		time.Since(killed).Round(time.Millisecond), time.Since(start).Round(time.Millisecond),
		end["leader"]-mid["leader"], 2-victim, end[fmt.Sprintf("reader%d", 2-victim)]-mid[fmt.Sprintf("reader%d", 2-victim)])
	for _, l := range []*readerLog{rlog, stlog} {
		readerVerify(t, l, hist, false)
		t.Logf("%s consumer: %d deliveries of %d messages, %d duplicates", l.name, l.deliveries(), l.distinct(), l.dups())
	}
	t.Logf("strata consumer: %d pulls fell back to the leader after a reader failed", sc.fallbacks())

	// A hot tail, read by both consumers from the leader.
	readerProduce(t, p, topic, hist, "tail1", tail, size, 20)
	readerWaitAll(t, 30*time.Second, n+tail, rlog, stlog)
	for _, l := range []*readerLog{rlog, stlog} {
		readerVerify(t, l, hist, false)
	}

	// Kill the leader: the cold history stays readable from the survivor.
	// What the tier holds: the tail may have filled a segment, offloaded
	// (wait for it) and not yet deleted locally.
	var st tierStatus
	waitTier(t, leader.strata, func(s tierStatus) bool {
		st = s
		return s.Tier != nil && s.Tier.PendingSegments == 0
	})
	hotStart, hotEnd, coldEnd := map[int]int64{}, map[int]int64{}, map[int]int64{}
	for _, q := range st.Queues {
		if q.Topic == topic {
			hotStart[int(q.QueueID)], hotEnd[int(q.QueueID)], coldEnd[int(q.QueueID)] = q.HotMin, q.HotMax, q.ColdNext
		}
	}
	survivorPulls := func() float64 {
		v, _ := survivor.metric("strata_request_duration_seconds_count", `request="PULL_MESSAGE"`)
		return v
	}
	if err := leader.kill(); err != nil {
		t.Fatalf("kill -9 leader: %v", err)
	}
	readerWaitRoute(t, ns.namesrv, topic, []int64{int64(2 - victim)}, nil)
	down := time.Now()
	pullsAtDown, ownAtDown := survivorPulls(), readerOwnPulls.Load()
	t.Logf("leader killed: its hot tier was %v..%v, its cold tier ended at %v", hotStart, hotEnd, coldEnd)

	// The reader itself serves every cold offset (raw pulls)…
	for q := range queues {
		recs := readerPullRange(t, survivor.broker, topic, q, 0, coldEnd[q])
		readerCheckRecords(t, "raw pulls from the surviving reader", hist, q, 0, recs)
	}
	// …and answers an offset only the (dead) leader holds with
	// PULL_NOT_FOUND pointing at the leader.
	for q := range queues {
		if coldEnd[q] < hotEnd[q] {
			readerCheckHotAnswer(t, survivor.broker, topic, q, coldEnd[q])
			break
		}
	}
	// A fresh Strata consumer reads the cold part through the route.
	readerClientReads(t, "with the leader down", ns.namesrv, topic, hist, queues, func(q int) (int64, int64) { return 0, coldEnd[q] })
	leaderDown := time.Since(down)
	others := survivorPulls() - pullsAtDown - float64(readerOwnPulls.Load()-ownAtDown)
	t.Logf("leader down for %v: besides this test's own reads, the surviving reader answered %.0f pulls (%.0f/s) from the running consumers",
		leaderDown.Round(time.Millisecond), others, others/leaderDown.Seconds())

	// The leader returns: what only it held is readable again.
	start = time.Now()
	if err := leader.restart(); err != nil {
		t.Fatalf("restart the leader: %v\n%s", err, leader.logTail(60))
	}
	readerWaitRoute(t, ns.namesrv, topic, []int64{0, int64(2 - victim)}, nil)
	readerClientReads(t, "after the leader's restart", ns.namesrv, topic, hist, queues, func(q int) (int64, int64) { return coldEnd[q], hotEnd[q] })
	t.Logf("leader back and its hot tail readable %v after the restart", time.Since(start).Round(time.Millisecond))

	// The consumers that ran through it all resume with new messages
	// (rocketmq-client-go learns routes every 30 s, and may have learned
	// one without the leader: it can take that long).
	start = time.Now()
	pullsAtReturn := survivorPulls()
	readerProduce(t, p, topic, hist, "tail2", tail, size, 20)
	readerWaitDone(t, 60*time.Second, n+2*tail, rlog, stlog, start, "the leader's return and a new tail", func() string {
		v := survivorPulls() - pullsAtReturn
		return fmt.Sprintf("the surviving reader answered %.0f pulls since (%.0f/s)", v, v/time.Since(start).Seconds())
	})
	for _, l := range []*readerLog{rlog, stlog} {
		readerVerify(t, l, hist, false)
		t.Logf("%s consumer at the end: %d deliveries of %d messages, %d duplicates", l.name, l.deliveries(), l.distinct(), l.dups())
	}
	sc.stop(t)
	rc.shutdown()
	t.Logf("total %v", time.Since(t0).Round(time.Millisecond))
}

// TestTierReaderDisasterRecovery: a leader offloads its whole history
// (segments sealed by age), stops, and loses its data directory. A tier
// reader started afterwards, with no leader running, serves every
// offloaded message: pulls through Strata's client and raw, query by key,
// view by id and search by time; and a send finds nowhere to go.
func TestTierReaderDisasterRecovery(t *testing.T) {
	const queues, n, size = 4, 8000, 1024
	t0 := time.Now()
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	env := minioEnv(srv, srv.SecretKey)
	tierURL := fmt.Sprintf("minio://%s/%s/dr", srv.Endpoint, bucket)
	ns := readerStartNamesrv(t)
	leader := readerStartLeader(t, ns.namesrv, env, "--tier", tierURL, "--segment-size", "1MiB",
		"--hot-retention", "0", "--segment-max-age", "2s")
	topic := uniq("ReaderDR")
	leader.createTopic(t, topic, queues, false)
	hist := newReaderHistory()
	p := readerProducer(t, ns.namesrv)
	readerProduce(t, p, topic, hist, "dr", n, size, 64)
	hist.checkDense(t, queues)
	waitTier(t, leader.strata, func(st tierStatus) bool {
		return st.Tier != nil && st.Tier.PendingSegments == 0 && queuesCold(st, topic) == n && hotEmpty(st, topic)
	})
	t.Logf("all %d messages offloaded after %v", n, time.Since(t0).Round(time.Millisecond))
	if code, err := leader.stop(20 * time.Second); err != nil || code != 0 {
		t.Fatalf("stop the leader: exit code %d, %v", code, err)
	}
	if err := os.RemoveAll(leader.dataDir); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	r := readerStartReader(t, ns.namesrv, 1, tierURL, env)
	readerWaitRoute(t, ns.namesrv, topic, []int64{1}, nil)
	t.Logf("reader started on the lost leader's tier and routed in %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	ends := map[int]int64{}
	for q := range queues {
		ends[q] = int64(hist.queueLen(q))
		recs := readerPullRange(t, r.broker, topic, q, 0, ends[q])
		readerCheckRecords(t, "raw pulls from the reader", hist, q, 0, recs)
	}
	t.Logf("raw pulls of all %d messages from the reader: %v", n, time.Since(start).Round(time.Millisecond))
	readerCheckHotAnswer(t, r.broker, topic, 0, ends[0])
	start = time.Now()
	readerClientReads(t, "from the reader alone", ns.namesrv, topic, hist, queues, func(q int) (int64, int64) { return 0, ends[q] })
	t.Logf("strata client pulls of all %d messages: %v", n, time.Since(start).Round(time.Millisecond))

	// Lookups: query by key, view by id, search by time, all on the reader.
	rec := readerPullRange(t, r.broker, topic, 2, 100, 101)[0]
	m, err := remoting.DecodeMessageExt(rec)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := remoting.PropertyValue(m.Properties, remoting.PropKeys)
	resp, err := invoke(r.broker, remoting.ReqQueryMessage, map[string]string{"topic": topic, "key": string(keys),
		"maxNum": "8", "beginTimestamp": "0", "endTimestamp": strconv.FormatInt(time.Now().UnixMilli()+1000, 10)}, nil)
	if err != nil || resp.Code != remoting.RespSuccess || !bytes.Equal(resp.Body, rec) {
		t.Errorf("query by key %q on the reader: err %v, %s", keys, err, readerDescribe(resp))
	}
	resp, err = invoke(r.broker, remoting.ReqViewMessageByID, map[string]string{"offset": strconv.FormatInt(m.PhysicalOffset, 10)}, nil)
	if err != nil || resp.Code != remoting.RespSuccess || !bytes.Equal(resp.Body, rec) {
		t.Errorf("view by id at %d on the reader: err %v, %s", m.PhysicalOffset, err, readerDescribe(resp))
	}
	resp, err = invoke(r.broker, remoting.ReqSearchOffsetByTimestamp, map[string]string{
		"topic": topic, "queueId": "2", "timestamp": strconv.FormatInt(m.StoreTimestamp, 10)}, nil)
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Errorf("search by time on the reader: err %v, %s", err, readerDescribe(resp))
	} else if off, _ := strconv.ParseInt(resp.Ext("offset"), 10, 64); off > 100 {
		t.Errorf("search by the store time of offset 100 answered %d", off)
	}

	// Nothing can be written: the route has no leader.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fresh := readerProducer(t, ns.namesrv) // no route cached from before
	if _, err := fresh.Send(ctx, client.Message{Topic: topic, Body: []byte("after the disaster")}); err == nil {
		t.Errorf("a send with only a tier reader up succeeded")
	} else {
		t.Logf("a send with only a tier reader up fails: %v", err)
	}
	if v, _ := r.metric("strata_messages_in_total"); v != 0 {
		t.Errorf("the reader stored %v messages", v)
	}
	t.Logf("total %v", time.Since(t0).Round(time.Millisecond))
}

// TestTierReaderRejectsWrites: a tier reader answers every write with
// NO_PERMISSION, and refuses to start on a leader's data directory (or
// without a reader's broker id) with a clear message and a non-zero exit.
func TestTierReaderRejectsWrites(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	env := minioEnv(srv, srv.SecretKey)
	tierURL := fmt.Sprintf("minio://%s/%s/rw", srv.Endpoint, bucket)
	s := startStrataEnv(t, env, "--tier", tierURL, "--segment-size", "1MiB", "--segment-max-age", "1s")
	topic := uniq("ReaderRW")
	s.createTopic(t, topic, 2, false)
	hist := newReaderHistory()
	readerProduce(t, readerProducer(t, s.namesrv), topic, hist, "rw", 20, 100, 5)
	waitTier(t, s, func(st tierStatus) bool {
		return st.Tier != nil && st.Tier.PendingSegments == 0 && queuesCold(st, topic) == 20
	})
	r := readerStartReader(t, s.namesrv, 1, tierURL, env)
	readerWaitRoute(t, s.namesrv, topic, []int64{0, 1}, nil)

	body := []byte("not here")
	props := "TAGS\x01x\x02UNIQ_KEY\x01" + strings.Repeat("0", 32) + "\x02"
	send := func(long bool) map[string]string {
		if long {
			return map[string]string{"producerGroup": "pg", "topic": topic, "defaultTopic": "TBW102",
				"defaultTopicQueueNums": "4", "queueId": "0", "sysFlag": "0",
				"bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10), "flag": "0",
				"properties": props, "reconsumeTimes": "0", "unitMode": "false", "batch": "false"}
		}
		return map[string]string{"a": "pg", "b": topic, "c": "TBW102", "d": "4", "e": "0", "f": "0",
			"g": strconv.FormatInt(time.Now().UnixMilli(), 10), "h": "0", "i": props, "j": "0", "k": "false",
			"l": "0", "m": "false", "n": readerBrokerName}
	}
	for _, c := range []struct {
		code int16
		ext  map[string]string
	}{
		{remoting.ReqSendMessage, send(true)},
		{remoting.ReqSendMessageV2, send(false)},
		{remoting.ReqSendBatchMessage, send(false)},
		{remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": uniq("ReaderNew"), "defaultTopic": "TBW102",
			"readQueueNums": "4", "writeQueueNums": "4", "perm": "6", "topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false"}},
	} {
		resp, err := invoke(r.broker, c.code, c.ext, body)
		if err != nil {
			t.Fatalf("%s to the reader: %v", remoting.RequestCodeName(c.code), err)
		}
		if resp.Code != remoting.RespNoPermission {
			t.Errorf("%s to the reader: %s, want NO_PERMISSION", remoting.RequestCodeName(c.code), readerDescribe(resp))
		} else {
			t.Logf("%s to the reader: NO_PERMISSION %q", remoting.RequestCodeName(c.code), resp.Remark)
		}
	}
	if v, _ := r.metric("strata_messages_in_total"); v != 0 {
		t.Errorf("the reader stored %v messages", v)
	}

	// A reader on the leader's data directory, or with the leader's id.
	for _, c := range []struct {
		name, dataDir, id, want string
	}{
		{"on the leader's data directory", s.dataDir, "1", "holds a broker's log"},
		{"with broker id 0", t.TempDir(), "0", "broker id of 1 or more"},
	} {
		addrs, err := freePorts(2)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, strataBin, "broker", "--role", "reader", "--broker-name", readerBrokerName,
			"--broker-id", c.id, "--tier", tierURL, "--namesrv", s.namesrv, "--listen", addrs[0],
			"--http-listen", addrs[1], "--data-dir", c.dataDir)
		cmd.Env = append(os.Environ(), env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		var ee *exec.ExitError
		switch {
		case timedOut:
			t.Errorf("a reader %s was still running after 30 s:\n%s", c.name, out)
		case !errors.As(err, &ee) || ee.ExitCode() <= 0:
			t.Errorf("a reader %s: %v, want a non-zero exit\n%s", c.name, err, out)
		case !strings.Contains(string(out), c.want):
			t.Errorf("a reader %s exited %d without saying %q:\n%s", c.name, ee.ExitCode(), c.want, out)
		default:
			t.Logf("a reader %s exits %d: %s", c.name, ee.ExitCode(), readerLastLine(out))
		}
	}
	// The leader's log is intact and it still works.
	if hotSegmentsBytes(t, s.dataDir) == 0 {
		t.Errorf("the leader's commit log is gone")
	}
	readerProduce(t, readerProducer(t, s.namesrv), topic, hist, "after", 4, 100, 1)
	for q := range 2 {
		readerCheckRecords(t, "pulls from the leader", hist, q, 0, pullAll(t, s, topic, q, 0, hist.queueLen(q)))
	}
}

// ---------------------------------------------------------------------------
// Processes: a name server, a leader and readers, each its own `strata`
// process, with the standalone harness's plumbing (stop, kill, logs,
// metrics, routes).

// readerNode is a `strata namesrv` or `strata broker` child process. The
// embedded strata holds its addresses (namesrv is the name server it
// serves or registers with; broker is empty for a name server) and runs
// the process; start and restart replace the standalone ones.
type readerNode struct {
	*strata
	args []string // the subcommand and its flags
	// ready, if set, is the cluster query (signed, or over TLS) the node
	// is ready once it answers (see waitClusterReady); nil: plain requests.
	ready func() (*remoting.Command, error)
}

// readerStartNamesrv starts a `strata namesrv` owned by t.
func readerStartNamesrv(t *testing.T) *readerNode {
	t.Helper()
	addrs, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	return readerStartNode(t, "namesrv", addrs[0], "", addrs[1], nil,
		"namesrv", "--namesrv-listen", addrs[0], "--http-listen", addrs[1])
}

// readerStartLeader starts a `strata broker` leader registering with
// namesrv, owned by t.
func readerStartLeader(t *testing.T, namesrv string, env []string, extra ...string) *readerNode {
	t.Helper()
	addrs, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := append([]string{"broker", "--broker-name", readerBrokerName, "--data-dir", filepath.Join(dir, "data"),
		"--listen", addrs[0], "--namesrv", namesrv, "--http-listen", addrs[1]}, extra...)
	n := readerStartNode(t, "leader", namesrv, addrs[0], addrs[1], env, args...)
	n.dataDir = filepath.Join(dir, "data")
	return n
}

// readerStartReader starts a tier reader of readerBrokerName with broker
// id id on tierURL, registering with namesrv, owned by t.
func readerStartReader(t *testing.T, namesrv string, id int, tierURL string, env []string) *readerNode {
	t.Helper()
	addrs, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n := readerStartNode(t, fmt.Sprintf("reader%d", id), namesrv, addrs[0], addrs[1], env,
		"broker", "--role", "reader", "--broker-name", readerBrokerName, "--broker-id", strconv.Itoa(id),
		"--tier", tierURL, "--namesrv", namesrv, "--listen", addrs[0], "--http-listen", addrs[1],
		"--data-dir", filepath.Join(dir, "data"))
	n.dataDir = filepath.Join(dir, "data")
	return n
}

// readerStartNode starts a node and has t stop it (and check its exit code
// and log) at the end.
func readerStartNode(t *testing.T, name, namesrv, broker, httpAddr string, env []string, args ...string) *readerNode {
	t.Helper()
	return startNode(t, name, namesrv, broker, httpAddr, env, nil, args...)
}

// startNode is readerStartNode for a node whose readiness is ready's
// answer (nil: plain requests).
func startNode(t *testing.T, name, namesrv, broker, httpAddr string, env []string,
	ready func(n *readerNode) func() (*remoting.Command, error), args ...string) *readerNode {
	t.Helper()
	n := &readerNode{
		strata: &strata{
			name:    fmt.Sprintf("%s/%s#%d", t.Name(), name, serverSeq.Add(1)),
			namesrv: namesrv, broker: broker, http: httpAddr,
			logPath: filepath.Join(t.TempDir(), name+".log"),
			env:     env,
		},
		args: args,
	}
	if ready != nil {
		n.ready = ready(n)
	}
	n.stopAtEnd(t, 60)
	if err := n.start(); err != nil {
		t.Fatalf("%s: %v\nlog:\n%s", n.name, err, n.logTail(60))
	}
	return n
}

// start runs the node's process and waits until /healthz answers and, for
// a broker, until it is registered with its name server.
func (n *readerNode) start() error {
	s := n.strata
	if err := s.launch(n.args); err != nil {
		return err
	}
	var err error
	switch {
	case n.ready != nil:
		err = s.waitClusterReady(30*time.Second, n.ready)
	case s.broker != "":
		err = s.waitReady(30 * time.Second)
	default:
		err = n.waitNamesrv(20 * time.Second)
	}
	if err != nil {
		s.dumpAndKill()
	}
	return err
}

// waitNamesrv waits until a name server's /healthz and remoting port answer.
func (n *readerNode) waitNamesrv(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	for {
		if !n.running() {
			return fmt.Errorf("process exited before it was ready: %v", n.exitErr())
		}
		resp, err := hc.Get("http://" + n.http + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if r, err := invoke(n.namesrv, remoting.ReqGetBrokerClusterInfo, nil, nil); err == nil && r.Code == remoting.RespSuccess {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("name server not ready within %v: %v", timeout, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// restart starts the node again with the same flags, data directory and
// ports.
func (n *readerNode) restart() error {
	if n.running() {
		return errors.New("still running")
	}
	return n.start()
}

// ---------------------------------------------------------------------------
// What was sent.

// readerPos is a message's place: queue and queue offset.
type readerPos struct {
	queue  int
	offset int64
}

// readerHistory is every message sent to the topic under test, by place.
type readerHistory struct {
	mu     sync.Mutex
	bodies map[readerPos][]byte
	qlen   map[int]int
}

func newReaderHistory() *readerHistory {
	return &readerHistory{bodies: map[readerPos][]byte{}, qlen: map[int]int{}}
}

func (h *readerHistory) add(rs []client.SendResult, bodies [][]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, r := range rs {
		h.bodies[readerPos{r.QueueID, r.QueueOffset}] = bodies[i]
		h.qlen[r.QueueID]++
	}
}

func (h *readerHistory) queueLen(q int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.qlen[q]
}

func (h *readerHistory) body(p readerPos) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.bodies[p]
	return b, ok
}

// checkDense fails the test unless each of the queues got messages at
// offsets 0..n-1 and nothing else did.
func (h *readerHistory) checkDense(t testing.TB, queues int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	total := 0
	for q := range queues {
		for off := range int64(h.qlen[q]) {
			if _, ok := h.bodies[readerPos{q, off}]; !ok {
				t.Fatalf("queue %d: no message sent at offset %d of %d (another writer?)", q, off, h.qlen[q])
			}
		}
		if h.qlen[q] == 0 {
			t.Fatalf("queue %d got no message", q)
		}
		total += h.qlen[q]
	}
	if total != len(h.bodies) {
		t.Fatalf("messages went to queues beyond the first %d", queues)
	}
}

// readerProducer returns a Strata producer closed when the test ends.
func readerProducer(t testing.TB, namesrv string) *client.Producer {
	t.Helper()
	p, err := client.NewProducer(client.NameServers(namesrv), client.ProducerGroup(uniq("pg")))
	if err != nil {
		t.Fatalf("strata producer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("close strata producer: %v", err)
		}
	})
	return p
}

// readerBody is message i of prefix: a readable head, then size bytes in
// all of pseudo-random content (compressible only as much as real data).
func readerBody(prefix string, i, size int) []byte {
	b := make([]byte, size)
	r := mathrand.New(mathrand.NewPCG(uint64(i), uint64(len(prefix))))
	for j := range b {
		b[j] = byte(r.Uint32())
	}
	copy(b, fmt.Sprintf("%s-%07d|", prefix, i))
	return b
}

// readerProduce sends n messages of size bytes in batches (each batch goes
// to one queue, round robin) from 4 goroutines, and records them in h.
func readerProduce(t testing.TB, p *client.Producer, topic string, h *readerHistory, prefix string, n, size, batch int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var next atomic.Int64
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(int64(batch))) - batch
				if lo >= n {
					return
				}
				hi := min(lo+batch, n)
				msgs := make([]client.Message, 0, hi-lo)
				bodies := make([][]byte, 0, hi-lo)
				for i := lo; i < hi; i++ {
					b := readerBody(prefix, i, size)
					bodies = append(bodies, b)
					msgs = append(msgs, client.Message{Topic: topic, Body: b, Tag: "t" + strconv.Itoa(i%3),
						Keys: []string{fmt.Sprintf("%s-key-%d", prefix, i)}})
				}
				rs, err := p.Send(ctx, msgs...)
				if err == nil && len(rs) != len(msgs) {
					err = fmt.Errorf("%d results for %d messages", len(rs), len(msgs))
				}
				if err != nil {
					errs <- fmt.Errorf("send %s %d..%d: %w", prefix, lo, hi, err)
					return
				}
				h.add(rs, bodies)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// What consumers got.

// readerLog records what one consumer received, by place.
type readerLog struct {
	name string

	mu       sync.Mutex
	got      map[readerPos][]byte
	delivers int
	dup      int
	mismatch []string
	last     map[int]int64 // last offset delivered per queue
	order    []string      // the first out-of-order deliveries

	// gate, when set, holds the consumer once it has gateAt messages,
	// until gate closes.
	gate   chan struct{}
	gateAt int
}

func newReaderLog(name string) *readerLog {
	return &readerLog{name: name, got: map[readerPos][]byte{}, last: map[int]int64{}}
}

func (l *readerLog) setGate(at int, gate chan struct{}) { l.gateAt, l.gate = at, gate }

func (l *readerLog) add(q int, off int64, body []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.delivers++
	p := readerPos{q, off}
	if prev, ok := l.got[p]; ok {
		l.dup++
		if !bytes.Equal(prev, body) && len(l.mismatch) < 5 {
			l.mismatch = append(l.mismatch, fmt.Sprintf("%d/%d delivered twice with different bodies", q, off))
		}
	} else {
		l.got[p] = bytes.Clone(body)
	}
	if last, ok := l.last[q]; (ok && off != last+1) || (!ok && off != 0) {
		if len(l.order) < 5 {
			l.order = append(l.order, fmt.Sprintf("queue %d: offset %d after %d", q, off, last))
		}
	}
	l.last[q] = off
}

// waitGate blocks while the gate is closed and the log holds gateAt
// messages or more (at most a minute).
func (l *readerLog) waitGate() {
	if l.gate == nil || l.distinct() < l.gateAt {
		return
	}
	select {
	case <-l.gate:
	case <-time.After(time.Minute):
	}
}

func (l *readerLog) distinct() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.got)
}

func (l *readerLog) deliveries() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.delivers
}

func (l *readerLog) dups() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dup
}

func (l *readerLog) outOfOrder() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.order, "; ")
}

// rocketMQHandler is a push-consumer callback that records the messages.
func (l *readerLog) rocketMQHandler() func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	return func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		for _, m := range msgs {
			l.add(m.Queue.QueueId, m.QueueOffset, m.Body)
		}
		l.waitGate()
		return consumer.ConsumeSuccess, nil
	}
}

// readerVerify checks l against h: every message sent was received with
// its body, nothing else was received, and, when exact, nothing twice.
func readerVerify(t testing.TB, l *readerLog, h *readerHistory, exact bool) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	var missing, differ, extra []string
	for p, want := range h.bodies {
		got, ok := l.got[p]
		switch {
		case !ok:
			missing = append(missing, fmt.Sprintf("%d/%d", p.queue, p.offset))
		case !bytes.Equal(got, want):
			differ = append(differ, fmt.Sprintf("%d/%d (%.16q, want %.16q)", p.queue, p.offset, got, want))
		}
	}
	for p := range l.got {
		if _, ok := h.bodies[p]; !ok {
			extra = append(extra, fmt.Sprintf("%d/%d", p.queue, p.offset))
		}
	}
	first := func(s []string) []string {
		slices.Sort(s)
		return s[:min(len(s), 10)]
	}
	if len(missing) > 0 {
		t.Errorf("%s consumer: %d of %d messages missing, e.g. %v", l.name, len(missing), len(h.bodies), first(missing))
	}
	if len(differ) > 0 {
		t.Errorf("%s consumer: %d messages with a different body, e.g. %v", l.name, len(differ), first(differ))
	}
	if len(extra) > 0 {
		t.Errorf("%s consumer: %d messages never sent, e.g. %v", l.name, len(extra), first(extra))
	}
	if len(l.mismatch) > 0 {
		t.Errorf("%s consumer: %v", l.name, l.mismatch)
	}
	if exact && l.dup > 0 {
		t.Errorf("%s consumer: %d duplicate deliveries (%d deliveries of %d messages) with no rebalance", l.name, l.dup, l.delivers, len(l.got))
	}
}

// readerWaitAll waits until every log holds n distinct messages.
func readerWaitAll(t testing.TB, timeout time.Duration, n int, logs ...*readerLog) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%d messages in every consumer", n), func() bool {
		for _, l := range logs {
			if l.distinct() < n {
				return false
			}
		}
		return true
	}, func() string { return readerProgress(logs) })
}

// readerWaitDone is readerWaitAll that logs when each consumer got there
// since event, and what note said then.
func readerWaitDone(t testing.TB, timeout time.Duration, n int, a, b *readerLog, since time.Time, event string, note func() string) {
	t.Helper()
	finished := map[*readerLog]bool{}
	waitFor(t, timeout, fmt.Sprintf("%d messages in every consumer", n), func() bool {
		for _, l := range []*readerLog{a, b} {
			if !finished[l] && l.distinct() >= n {
				finished[l] = true
				t.Logf("the %s consumer had all %d messages %v after %s; %s", l.name, n, time.Since(since).Round(time.Millisecond), event, note())
			}
		}
		return len(finished) == 2
	}, func() string { return readerProgress([]*readerLog{a, b}) })
}

func readerProgress(logs []*readerLog) string {
	var parts []string
	for _, l := range logs {
		parts = append(parts, fmt.Sprintf("%s has %d (%d deliveries)", l.name, l.distinct(), l.deliveries()))
	}
	return strings.Join(parts, ", ")
}

// readerStrataConsumer runs a Strata-client consumer (Receive and Commit
// in a loop) until stopped.
type readerStrataConsumer struct {
	cs     *client.Consumer
	cancel context.CancelFunc
	done   chan struct{}
	logBuf *testlog.Buffer
	once   sync.Once
	errs   atomic.Int64
}

// readerStartStrataConsumer starts a Strata consumer of topic in group
// from the first offset, recording into l; it is stopped when the test ends.
func readerStartStrataConsumer(t testing.TB, namesrv, topic, group string, l *readerLog) *readerStrataConsumer {
	t.Helper()
	buf := &testlog.Buffer{}
	cs, err := client.NewConsumer(client.NameServers(namesrv), client.ConsumerGroup(group),
		client.Subscribe(topic, "*"), client.StartFrom(client.FromFirstOffset), client.PullBatchSize(256),
		client.LongPoll(time.Second), client.RequestTimeout(5*time.Second),
		client.Logger(slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatalf("strata consumer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &readerStrataConsumer{cs: cs, cancel: cancel, done: make(chan struct{}), logBuf: buf}
	go c.loop(ctx, l)
	t.Cleanup(func() { c.stop(t) })
	return c
}

func (c *readerStrataConsumer) loop(ctx context.Context, l *readerLog) {
	defer close(c.done)
	lastCommit := time.Now()
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		msgs, err := c.cs.Receive(rctx, 0)
		cancel()
		if err != nil {
			c.errs.Add(1)
			select { // back off; the broker may be down
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		for _, m := range msgs {
			l.add(m.QueueID, m.QueueOffset, m.Body)
		}
		if time.Since(lastCommit) > time.Second {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			c.cs.Commit(cctx) // best effort; failures stay pending
			cancel()
			lastCommit = time.Now()
		}
		l.waitGate()
	}
}

// stop ends the loop and closes the consumer.
func (c *readerStrataConsumer) stop(t testing.TB) {
	c.once.Do(func() {
		c.cancel()
		<-c.done
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.cs.Close(ctx); err != nil {
			t.Logf("close the strata consumer: %v", err)
		}
	})
}

// fallbacks counts the pulls the client sent to the leader because a tier
// reader could not be reached.
func (c *readerStrataConsumer) fallbacks() int {
	return strings.Count(c.logBuf.String(), "tier reader unreachable")
}

// readerClientReads reads, with a fresh Strata consumer's Pull, each
// queue's range [from, to) as span says, and checks it against h.
func readerClientReads(t testing.TB, when, namesrv, topic string, h *readerHistory, queues int, span func(q int) (int64, int64)) {
	t.Helper()
	cs, err := client.NewConsumer(client.NameServers(namesrv), client.ConsumerGroup(uniq("pull")), client.RequestTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("strata consumer: %v", err)
	}
	defer cs.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var mqs []client.MessageQueue
	for {
		mqs, err = cs.Queues(ctx, topic)
		if err == nil && len(mqs) == queues {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("strata client %s: queues of %s: %v %v", when, topic, mqs, err)
		}
		time.Sleep(100 * time.Millisecond) // the name server's route settles
	}
	read := 0
	for _, mq := range mqs {
		from, to := span(mq.QueueID)
		var errs []string
		for off := from; off < to; {
			if ctx.Err() != nil {
				t.Errorf("strata client %s: %s: read up to %d of [%d,%d) before the deadline; errors: %s",
					when, mq, off, from, to, strings.Join(errs, "; "))
				return
			}
			readerOwnPulls.Add(1)
			res, err := cs.Pull(ctx, mq, off, 256)
			if err != nil {
				if len(errs) < 3 {
					errs = append(errs, err.Error())
				}
				time.Sleep(200 * time.Millisecond) // a retriable failure
				continue
			}
			if res.Status != client.PullFound {
				if len(errs) < 3 {
					errs = append(errs, fmt.Sprintf("status %v at %d (next %d, suggest %d)", res.Status, off, res.NextBeginOffset, res.SuggestBrokerID))
				}
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for _, m := range res.Messages {
				want, ok := h.body(readerPos{mq.QueueID, m.QueueOffset})
				if m.QueueOffset != off || !ok || !bytes.Equal(m.Body, want) {
					t.Fatalf("strata client %s: %s: message at %d (expected offset %d) differs from the one sent", when, mq, m.QueueOffset, off)
				}
				off++
				read++
			}
		}
		if len(errs) > 0 {
			t.Logf("strata client %s: %s: read [%d,%d) after errors: %s", when, mq, from, to, strings.Join(errs, "; "))
		}
	}
	t.Logf("strata client %s: read %d messages byte-identical", when, read)
}

// ---------------------------------------------------------------------------
// Tier, routes and metrics.

// readerWaitOffloaded waits until the leader has offloaded and deleted
// locally every sealed segment of its 1 MiB ones (only the active segment
// is left, nothing is pending, every queue's hot tier starts above 0 and
// most of topic's n messages are cold) and returns each queue's hot start.
func readerWaitOffloaded(t testing.TB, s *strata, topic string, queues, n int) map[int]int64 {
	t.Helper()
	hot := map[int]int64{}
	waitTier(t, s, func(st tierStatus) bool {
		if st.Tier == nil || st.Tier.PendingSegments != 0 || hotSegmentsBytes(t, s.dataDir) > 1<<20 {
			return false
		}
		clear(hot)
		cold := 0
		for _, q := range st.Queues {
			if q.Topic != topic {
				continue
			}
			if q.HotMin == 0 || q.ColdNext < q.HotMin {
				return false
			}
			hot[int(q.QueueID)] = q.HotMin
			cold += int(q.HotMin)
		}
		return len(hot) == queues && cold >= n*3/4
	})
	return hot
}

// readerColdCount is how many messages precede the hot starts.
func readerColdCount(hot map[int]int64) int {
	n := 0
	for _, h := range hot {
		n += int(h)
	}
	return n
}

// readerRoute is the part of a topic route these tests look at.
type readerRoute struct {
	BrokerDatas []struct {
		BrokerName  string            `json:"brokerName"`
		BrokerAddrs map[string]string `json:"brokerAddrs"`
	} `json:"brokerDatas"`
	TierBounds map[string]map[string]int64 `json:"tierBounds"`
}

func (r readerRoute) ids() []int64 {
	var ids []int64
	for _, b := range r.BrokerDatas {
		if b.BrokerName != readerBrokerName {
			continue
		}
		for k := range b.BrokerAddrs {
			id, _ := strconv.ParseInt(k, 10, 64)
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// readerWaitRoute waits until namesrv's route of topic lists exactly the
// broker ids ids under readerBrokerName and, when hot is given, carries
// those hot starts as tier bounds.
func readerWaitRoute(t testing.TB, namesrv, topic string, ids []int64, hot map[int]int64) {
	t.Helper()
	var last string
	waitFor(t, 20*time.Second, fmt.Sprintf("the route of %s to list broker ids %v", topic, ids), func() bool {
		resp, err := invoke(namesrv, remoting.ReqGetRouteInfoByTopic, map[string]string{"topic": topic}, nil)
		if err != nil || resp.Code != remoting.RespSuccess {
			last = fmt.Sprintf("%v %s", err, readerDescribe(resp))
			return false
		}
		last = string(resp.Body)
		var r readerRoute
		if err := json.Unmarshal(remoting.QuoteBareKeys(resp.Body), &r); err != nil {
			return false
		}
		if !slices.Equal(r.ids(), ids) {
			return false
		}
		for q, hs := range hot {
			if r.TierBounds[readerBrokerName][strconv.Itoa(q)] != hs {
				return false
			}
		}
		return true
	}, func() string { return last })
}

// readerWaitLeaderSuggests waits until the leader, asked for a cold offset,
// points the pull at a tier reader (it learns of readers every few
// seconds).
func readerWaitLeaderSuggests(t testing.TB, leader, topic string) {
	t.Helper()
	var last string
	waitFor(t, 20*time.Second, "the leader to suggest a tier reader for a cold pull", func() bool {
		resp, err := invoke(leader, remoting.ReqPullMessage, map[string]string{
			"consumerGroup": "reader-probe", "topic": topic, "queueId": "0", "queueOffset": "0", "maxMsgNums": "1",
			"sysFlag": "0", "commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*", "subVersion": "0",
		}, nil)
		if err != nil {
			last = err.Error()
			return false
		}
		last = readerDescribe(resp)
		return resp.Code == remoting.RespSuccess && resp.Ext("suggestWhichBrokerId") != "0" && resp.Ext("suggestWhichBrokerId") != ""
	}, func() string { return last })
}

// readerOwnPulls counts the pulls readerPullRange and readerClientReads
// sent, to tell them from the consumers' in a broker's request count.
var readerOwnPulls atomic.Int64

// readerPullRange reads [from, to) of topic/queue from the broker at addr
// with raw pulls and returns the records.
func readerPullRange(t testing.TB, addr, topic string, queue int, from, to int64) [][]byte {
	t.Helper()
	var recs [][]byte
	off := from
	var last string
	deadline := time.Now().Add(45 * time.Second)
	for off < to {
		if time.Now().After(deadline) {
			t.Fatalf("pull %s/%d from %s: at %d of [%d,%d) at the deadline; last answer %s", topic, queue, addr, off, from, to, last)
		}
		readerOwnPulls.Add(1)
		resp, err := invoke(addr, remoting.ReqPullMessage, map[string]string{
			"consumerGroup": "reader-raw", "topic": topic, "queueId": strconv.Itoa(queue),
			"queueOffset": strconv.FormatInt(off, 10), "maxMsgNums": "256", "sysFlag": "0",
			"commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*", "subVersion": "0",
		}, nil)
		if err != nil {
			t.Fatalf("pull %s/%d at %d from %s: %v", topic, queue, off, addr, err)
		}
		last = readerDescribe(resp)
		if resp.Code != remoting.RespSuccess {
			time.Sleep(100 * time.Millisecond) // a busy tier, or a manifest not yet reloaded
			continue
		}
		for b := resp.Body; len(b) > 0; {
			n := remoting.RecordSize(b)
			if n <= 0 || n > len(b) {
				t.Fatalf("pull %s/%d at %d from %s: bad record framing", topic, queue, off, addr)
			}
			recs = append(recs, b[:n])
			b = b[n:]
		}
		next, _ := strconv.ParseInt(resp.Ext("nextBeginOffset"), 10, 64)
		if next <= off {
			t.Fatalf("pull %s/%d at %d from %s: found messages but next offset %d", topic, queue, off, addr, next)
		}
		off = next
	}
	return recs
}

// readerCheckRecords checks records read from queue q from offset from
// against h.
func readerCheckRecords(t testing.TB, what string, h *readerHistory, q int, from int64, recs [][]byte) {
	t.Helper()
	for i, rec := range recs {
		m, err := remoting.DecodeMessageExt(rec)
		if err != nil {
			t.Fatalf("%s: queue %d record %d: %v", what, q, i, err)
		}
		want, ok := h.body(readerPos{q, from + int64(i)})
		if m.QueueOffset != from+int64(i) || !ok || !bytes.Equal(m.Body, want) {
			t.Fatalf("%s: queue %d: record %d is offset %d, body %.16q; want offset %d, body %.16q", what, q, i, m.QueueOffset, m.Body, from+int64(i), want)
		}
	}
}

// readerCheckHotAnswer checks that the reader answers a pull at a hot (or
// unknown) offset with PULL_NOT_FOUND at that offset, suggesting the
// leader.
func readerCheckHotAnswer(t testing.TB, addr, topic string, queue int, off int64) {
	t.Helper()
	resp, err := invoke(addr, remoting.ReqPullMessage, map[string]string{
		"consumerGroup": "reader-raw", "topic": topic, "queueId": strconv.Itoa(queue),
		"queueOffset": strconv.FormatInt(off, 10), "maxMsgNums": "32", "sysFlag": "0",
		"commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*", "subVersion": "0",
	}, nil)
	if err != nil {
		t.Fatalf("pull at the hot offset %d from the reader: %v", off, err)
	}
	if resp.Code != remoting.RespPullNotFound || resp.Ext("nextBeginOffset") != strconv.FormatInt(off, 10) || resp.Ext("suggestWhichBrokerId") != "0" {
		t.Errorf("pull at the hot offset %d from the reader: %s; want PULL_NOT_FOUND, next %d, suggest 0", off, readerDescribe(resp), off)
	}
}

// readerPulled is the messages a broker delivered by pulls of topic.
func readerPulled(s *strata, topic string) float64 {
	v, _ := s.metric("strata_messages_out_total", `topic="`+topic+`"`)
	return v
}

func readerPulledAll(nodes map[string]*strata, topic string) map[string]float64 {
	out := map[string]float64{}
	for name, s := range nodes {
		if s.running() {
			out[name] = readerPulled(s, topic)
		}
	}
	return out
}

// readerDescribe renders a response's code, remark and offsets.
func readerDescribe(resp *remoting.Command) string {
	if resp == nil {
		return "no response"
	}
	return fmt.Sprintf("%s %q next=%s suggest=%s (%d body bytes)", remoting.ResponseCodeName(resp.Code), resp.Remark,
		resp.Ext("nextBeginOffset"), resp.Ext("suggestWhichBrokerId"), len(resp.Body))
}

// readerLastLine is the last non-empty line of out.
func readerLastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}
