package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/strata-mq/strata/internal/miniotest"
	"github.com/strata-mq/strata/remoting"
)

// TestColdTierFile and TestColdTierMinIO: with 1 MiB segments, messages
// produced by rocketmq-client-go are offloaded; once the broker's disk no
// longer holds them (hot retention 0) every offset still reads, byte for
// byte what the hot tier returned, through a new consumer group from the
// first offset, after a restart, and after a disaster-recovery rebuild on an
// empty data directory that then continues each queue's offsets.
func TestColdTierFile(t *testing.T) {
	tierDir := t.TempDir()
	testColdTier(t, "file://"+tierDir, nil)
}

func TestColdTierMinIO(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := "strata-e2e"
	srv.Bucket(t, bucket)
	env := []string{"MINIO_ROOT_USER=" + srv.AccessKey, "MINIO_ROOT_PASSWORD=" + srv.SecretKey}
	testColdTier(t, fmt.Sprintf("minio://%s/%s/cold", srv.Endpoint, bucket), env)
}

// TestColdTierS3: the same through the s3 store (aws-sdk-go-v2) against
// MinIO's S3 endpoint, with credentials from the AWS environment variables.
func TestColdTierS3(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := "strata-e2e-s3"
	srv.Bucket(t, bucket)
	env := []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey,
		"AWS_EC2_METADATA_DISABLED=true"}
	testColdTier(t, fmt.Sprintf("s3://%s/cold?endpoint=http://%s&region=us-east-1", bucket, srv.Endpoint), env)
}

func testColdTier(t *testing.T, tierURL string, env []string) {
	const queues, perQueue, size = 4, 500, 1000
	s := startStrataEnv(t, env, "--tier", tierURL, "--segment-size", "1MiB", "--hot-retention", "1GiB", "--segment-max-age", "2s")
	topic := uniq("Cold")
	s.createTopic(t, topic, queues, false)

	// Produce with the real client, round-robin over the queues.
	p := s.newProducer(t)
	var msgs []*primitive.Message
	for i := range queues * perQueue {
		body := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		copy(body, fmt.Sprintf("cold-%06d|", i))
		m := primitive.NewMessage(topic, body)
		m.WithTag(fmt.Sprintf("t%d", i%3))
		m.WithKeys([]string{fmt.Sprintf("ck-%d", i)})
		msgs = append(msgs, m)
	}
	sendBatched(t, p, msgs, 50)

	// Every segment is sealed (max age) and offloaded; the hot tier still
	// has them all (1 GiB retention): read every queue raw from the hot tier.
	waitTier(t, s, func(st tierStatus) bool {
		return st.Tier != nil && st.Tier.PendingSegments == 0 && queuesCold(st, topic) == queues*perQueue
	})
	hot := map[int][][]byte{}
	for q := range queues {
		hot[q] = pullAll(t, s, topic, q, 0, perQueue)
	}

	// Restart with hot retention 0: the broker deletes every offloaded
	// segment; the data directory no longer holds the messages.
	s.extra = replaceFlag(s.extra, "--hot-retention", "0")
	if _, err := s.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("restart: %v\n%s", err, s.logTail(60))
	}
	waitFor(t, 30*time.Second, "the hot tier to drop the offloaded segments", func() bool {
		return hotSegmentsBytes(t, s.dataDir) <= 1<<20 // only the active segment is left
	}, func() string { return fmt.Sprintf("%d bytes of segments on disk", hotSegmentsBytes(t, s.dataDir)) })
	st := tierStatusOf(t, s)
	for _, q := range st.Queues {
		if q.Topic == topic && q.HotMax > q.HotMin {
			t.Fatalf("queue %d still has hot messages [%d,%d)", q.QueueID, q.HotMin, q.HotMax)
		}
	}
	checkColdEqualsHot(t, s, topic, hot)
	consumeAll(t, s, topic, msgs)

	// A plain restart: still everything.
	if _, err := s.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("restart: %v\n%s", err, s.logTail(60))
	}
	checkColdEqualsHot(t, s, topic, hot)

	// Disaster recovery: an empty data directory and the same tier.
	if _, err := s.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(s.dataDir); err != nil {
		t.Fatal(err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("start on an empty data directory: %v\n%s", err, s.logTail(60))
	}
	s.waitRoute(t, topic, queues)
	checkColdEqualsHot(t, s, topic, hot)
	consumeAll(t, s, topic, msgs)
	checkColdLookups(t, s, topic, hot)
	// New messages continue each queue after the offloaded ones.
	for q := range queues {
		if got := s.maxOffset(t, topic, q); got != perQueue {
			t.Fatalf("queue %d: max offset %d after the rebuild, want %d", q, got, perQueue)
		}
	}
	more := []*primitive.Message{primitive.NewMessage(topic, []byte("after-rebuild"))}
	res := sendSync(t, s.newProducer(t), more...)
	if res[0].QueueOffset != perQueue {
		t.Fatalf("first message after the rebuild got queue offset %d, want %d", res[0].QueueOffset, perQueue)
	}
	if !strings.HasPrefix(tierURL, "file://") {
		return
	}
	// The rebuilt broker recorded every queue's start on its disk: started
	// again with a tier that knows nothing (here: an empty directory), the
	// queues that got no message since still continue after the history.
	if _, err := s.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	s.extra = replaceFlag(s.extra, "--tier", "file://"+t.TempDir())
	if err := s.start(); err != nil {
		t.Fatalf("restart: %v\n%s", err, s.logTail(60))
	}
	p2 := s.newProducer(t)
	for range 2 * queues {
		r := sendSync(t, p2, primitive.NewMessage(topic, []byte("after-restart")))[0]
		if r.QueueOffset < perQueue {
			t.Fatalf("queue %d reused offset %d of the offloaded history", r.MessageQueue.QueueId, r.QueueOffset)
		}
	}
}

// sendBatched sends msgs with SendSync from n goroutines.
func sendBatched(t *testing.T, p interface {
	SendSync(context.Context, ...*primitive.Message) (*primitive.SendResult, error)
}, msgs []*primitive.Message, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(msgs); i += n {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				r, err := p.SendSync(ctx, msgs[i])
				cancel()
				if err == nil && r.Status != primitive.SendOK {
					err = fmt.Errorf("status %v", r.Status)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("send: %v", err)
	}
}

type tierStatus struct {
	Enabled bool `json:"enabled"`
	Tier    *struct {
		Ready           bool   `json:"ready"`
		Objects         int    `json:"objects"`
		PendingSegments int    `json:"pendingSegments"`
		LastError       string `json:"lastError"`
	} `json:"tier"`
	Queues []struct {
		Topic     string `json:"topic"`
		QueueID   int32  `json:"queueId"`
		ColdFirst int64  `json:"coldFirst"`
		ColdNext  int64  `json:"coldNext"`
		HotMin    int64  `json:"hotMin"`
		HotMax    int64  `json:"hotMax"`
	} `json:"queues"`
}

func tierStatusOf(t testing.TB, s *strata) tierStatus {
	t.Helper()
	resp, err := invoke(s.broker, remoting.ReqGetTierStatus, nil, nil)
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("tier status: %v %v", err, resp)
	}
	var st tierStatus
	if err := json.Unmarshal(resp.Body, &st); err != nil {
		t.Fatalf("tier status %s: %v", resp.Body, err)
	}
	return st
}

func waitTier(t testing.TB, s *strata, cond func(tierStatus) bool) {
	t.Helper()
	var last tierStatus
	waitFor(t, 60*time.Second, "the cold tier", func() bool {
		last = tierStatusOf(t, s)
		return cond(last)
	}, func() string { b, _ := json.Marshal(last); return string(b) })
}

// queuesCold counts the messages of topic the cold tier holds.
func queuesCold(st tierStatus, topic string) int {
	n := 0
	for _, q := range st.Queues {
		if q.Topic == topic {
			n += int(q.ColdNext - q.ColdFirst)
		}
	}
	return n
}

func hotSegmentsBytes(t testing.TB, dataDir string) int64 {
	ents, err := os.ReadDir(filepath.Join(dataDir, "store", "commitlog"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && !e.IsDir() && len(e.Name()) == 20 {
			n += fi.Size()
		}
	}
	return n
}

func replaceFlag(args []string, flag, value string) []string {
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == flag {
			out[i+1] = value
			return out
		}
	}
	return append(out, flag, value)
}

// pullAll reads want messages of topic/queue from offset with raw
// PULL_MESSAGE requests and returns each record's bytes.
func pullAll(t testing.TB, s *strata, topic string, queue int, from int64, want int) [][]byte {
	t.Helper()
	return pullSub(t, s, topic, queue, from, want, "")
}

// pullSub is pullAll with a tag subscription ("" for none) sent with the
// request, until the queue's max offset when want is negative.
func pullSub(t testing.TB, s *strata, topic string, queue int, from int64, want int, sub string) [][]byte {
	t.Helper()
	sysFlag, expr := "0", "*"
	if sub != "" {
		sysFlag, expr = strconv.Itoa(int(remoting.PullFlagSubscription)), sub
	}
	end := int64(-1)
	if want < 0 {
		end, want = s.maxOffset(t, topic, queue), 1<<30
	}
	var recs [][]byte
	off := from
	deadline := time.Now().Add(60 * time.Second)
	for len(recs) < want && (end < 0 || off < end) {
		if time.Now().After(deadline) {
			t.Fatalf("pull %s/%d: got %d of %d records by offset %d", topic, queue, len(recs), want, off)
		}
		resp, err := invoke(s.broker, remoting.ReqPullMessage, map[string]string{
			"consumerGroup": "raw-reader", "topic": topic, "queueId": strconv.Itoa(queue),
			"queueOffset": strconv.FormatInt(off, 10), "maxMsgNums": "32", "sysFlag": sysFlag,
			"commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": expr, "subVersion": "0",
		}, nil)
		if err != nil {
			t.Fatalf("pull %s/%d at %d: %v", topic, queue, off, err)
		}
		next, _ := strconv.ParseInt(resp.Ext("nextBeginOffset"), 10, 64)
		switch resp.Code {
		case remoting.RespSuccess:
			for b := resp.Body; len(b) > 0; {
				n := remoting.RecordSize(b)
				if n <= 0 || n > len(b) {
					t.Fatalf("pull %s/%d at %d: bad record framing", topic, queue, off)
				}
				recs = append(recs, append([]byte(nil), b[:n]...))
				b = b[n:]
			}
		case remoting.RespPullRetryImmediately:
		case remoting.RespPullNotFound:
			if end >= 0 && off >= end {
				return recs
			}
		case remoting.RespSystemBusy:
			time.Sleep(100 * time.Millisecond) // a retriable cold-tier error
		default:
			t.Fatalf("pull %s/%d at %d: code %s %q (next %d)", topic, queue, off, remoting.ResponseCodeName(resp.Code), resp.Remark, next)
		}
		off = next
	}
	return recs
}

// checkColdEqualsHot reads every queue again and compares each record with
// the bytes the hot tier returned, and checks queue offsets are dense.
func checkColdEqualsHot(t testing.TB, s *strata, topic string, hot map[int][][]byte) {
	t.Helper()
	for q, want := range hot {
		got := pullAll(t, s, topic, q, 0, len(want))
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				m1, _ := remoting.DecodeMessageExt(want[i])
				m2, _ := remoting.DecodeMessageExt(got[i])
				t.Fatalf("queue %d record %d differs between tiers:\nhot  %+v\ncold %+v", q, i, m1, m2)
			}
			m, err := remoting.DecodeMessageExt(got[i])
			if err != nil || m.QueueOffset != int64(i) {
				t.Fatalf("queue %d record %d: offset %d, err %v", q, i, m.QueueOffset, err)
			}
		}
	}
}

// consumeAll consumes topic from the first offset with a new push-consumer
// group and checks it receives every message (the concurrent consumer
// hands batches to goroutines, so order is checked by checkColdEqualsHot).
func consumeAll(t *testing.T, s *strata, topic string, msgs []*primitive.Message) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]int{}
	c := s.newPushConsumer(t, uniq("cg"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithConsumerModel(consumer.Clustering))
	c.subscribeAndStart(t, topic, "*", func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range ms {
			seen[string(m.Body)]++
		}
		return consumer.ConsumeSuccess, nil
	})
	defer c.shutdown()
	waitFor(t, 90*time.Second, "every message consumed from the cold tier", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= len(msgs)
	}, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%d of %d distinct bodies", len(seen), len(msgs))
	})
	mu.Lock()
	defer mu.Unlock()
	for _, m := range msgs {
		if seen[string(m.Body)] == 0 {
			t.Fatalf("message %.12q not consumed", m.Body)
		}
	}
}

// checkColdLookups: with nothing left in the hot tier, a tag-filtered pull,
// seek by timestamp, query by key and view by message id all reach the
// cold tier and agree with what the hot tier returned before.
func checkColdLookups(t testing.TB, s *strata, topic string, hot map[int][][]byte) {
	t.Helper()
	for q, recs := range hot {
		var want [][]byte
		for _, r := range recs {
			m, _ := remoting.DecodeMessageExt(r)
			if v, _ := remoting.PropertyValue(m.Properties, remoting.PropTags); string(v) == "t1" {
				want = append(want, r)
			}
		}
		got := pullSub(t, s, topic, q, 0, -1, "t1")
		if len(got) != len(want) || len(want) == 0 {
			t.Fatalf("queue %d: tag-filtered cold pull got %d messages, want %d", q, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("queue %d: filtered record %d differs", q, i)
			}
		}
	}
	recs := hot[1]
	m, _ := remoting.DecodeMessageExt(recs[123])
	resp, err := invoke(s.broker, remoting.ReqSearchOffsetByTimestamp, map[string]string{
		"topic": topic, "queueId": "1", "timestamp": strconv.FormatInt(m.StoreTimestamp, 10)}, nil)
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("search by timestamp: %v %v", err, resp)
	}
	off, _ := strconv.ParseInt(resp.Ext("offset"), 10, 64)
	if off > 123 {
		t.Fatalf("search by timestamp of offset 123 answered %d", off)
	}
	if o, _ := remoting.DecodeMessageExt(recs[off]); o.StoreTimestamp < m.StoreTimestamp || (off > 0 && func() bool {
		p, _ := remoting.DecodeMessageExt(recs[off-1])
		return p.StoreTimestamp >= m.StoreTimestamp
	}()) {
		t.Fatalf("search by timestamp answered %d, not the first offset stored at or after %d", off, m.StoreTimestamp)
	}
	keys, _ := remoting.PropertyValue(m.Properties, remoting.PropKeys)
	resp, err = invoke(s.broker, remoting.ReqQueryMessage, map[string]string{"topic": topic, "key": string(keys),
		"maxNum": "8", "beginTimestamp": "0", "endTimestamp": strconv.FormatInt(time.Now().UnixMilli()+1000, 10)}, nil)
	if err != nil || resp.Code != remoting.RespSuccess || !bytes.Equal(resp.Body, recs[123]) {
		t.Fatalf("query by key %q: %v code %v, %d bytes", keys, err, resp.Code, len(resp.Body))
	}
	resp, err = invoke(s.broker, remoting.ReqViewMessageByID, map[string]string{"offset": strconv.FormatInt(m.PhysicalOffset, 10)}, nil)
	if err != nil || resp.Code != remoting.RespSuccess || !bytes.Equal(resp.Body, recs[123]) {
		t.Fatalf("view by id at %d: %v %v", m.PhysicalOffset, err, resp)
	}
	if v, err := s.metric("strata_tier_segments_offloaded_total"); err != nil || v < 0 {
		t.Fatalf("metric strata_tier_segments_offloaded_total: %v %v", v, err)
	}
	if v, err := s.metric("strata_tier_cold_read_bytes_total"); err != nil || v <= 0 {
		t.Fatalf("metric strata_tier_cold_read_bytes_total = %v, %v", v, err)
	}
}
