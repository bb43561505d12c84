package e2e

// Replication: a broker group of a leader and two followers, each its own
// `strata broker` process, under sync replication with two copies.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/remoting"
)

// replGroup is a name server and the members of broker-a.
type replGroup struct {
	ns      *readerNode
	members []*readerNode // index = broker id
}

// replStart starts broker id of broker-a with the group's flags.
func replStart(t *testing.T, ns string, id int, extra ...string) *readerNode {
	t.Helper()
	addrs, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	args := append([]string{"broker", "--broker-name", readerBrokerName, "--broker-id", strconv.Itoa(id),
		"--data-dir", dir, "--listen", addrs[0], "--ha-listen", addrs[2], "--namesrv", ns, "--http-listen", addrs[1],
		"--segment-size", "16MiB", "--replication", "sync", "--min-insync-replicas", "2"}, extra...)
	n := readerStartNode(t, fmt.Sprintf("b%d", id), strings.Split(ns, ";")[0], addrs[0], addrs[1], nil, args...)
	n.dataDir = dir
	return n
}

// replStatus asks a member for its replication status.
func replStatus(addr string) (client.ReplicationStatus, error) {
	resp, err := invoke(addr, remoting.ReqGetReplicationStatus, nil, nil)
	if err != nil {
		return client.ReplicationStatus{}, err
	}
	var st client.ReplicationStatus
	err = json.Unmarshal(resp.Body, &st)
	return st, err
}

// inSync reports whether the leader counts n copies in sync.
func (g *replGroup) inSync(n int) bool {
	st, err := replStatus(g.members[0].broker)
	return err == nil && st.InSync == n
}

// caughtUp reports whether every follower holds the leader's whole log.
func (g *replGroup) caughtUp() bool {
	lead, err := replStatus(g.members[0].broker)
	if err != nil {
		return false
	}
	for _, m := range g.members[1:] {
		st, err := replStatus(m.broker)
		if err != nil || st.LogEnd != lead.LogEnd {
			return false
		}
	}
	return true
}

// replAck is an acknowledged send: body at queue/offset.
type replAck struct {
	body   string
	queue  int
	offset int64
}

// replLoad sends continuously with rocketmq-client-go and Strata's client,
// through failures, and records what was acknowledged with SEND_OK.
type replLoad struct {
	mu     sync.Mutex
	acks   []replAck
	failed int
	errs   map[string]int // failure kinds, for the log
	stop   chan struct{}
	wg     sync.WaitGroup
}

func (l *replLoad) record(a replAck, ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok {
		l.acks = append(l.acks, a)
		return
	}
	l.failed++
	kind := "not SEND_OK"
	if err != nil {
		kind = err.Error()
		if len(kind) > 80 {
			kind = kind[:80]
		}
	}
	if l.errs == nil {
		l.errs = map[string]int{}
	}
	l.errs[kind]++
}

// failures summarises the failed sends by kind.
func (l *replLoad) failures() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for k, n := range l.errs {
		fmt.Fprintf(&b, "\n  %5d %s", n, k)
	}
	return b.String()
}

func (l *replLoad) count() (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks), l.failed
}

func (l *replLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func startReplLoad(t *testing.T, g *replGroup, topic string) *replLoad {
	l := &replLoad{stop: make(chan struct{})}
	s := g.members[0].strata
	rp := s.newProducer(t, producer.WithRetry(2), producer.WithSendMsgTimeout(3*time.Second))
	sp := newStrataProducer(t, s)
	// Each client's send: the queue and offset acknowledged, or not ok.
	type sendFunc func(ctx context.Context, body string) (queue int, offset int64, ok bool, err error)
	clients := map[string]sendFunc{
		"rmq": func(ctx context.Context, body string) (int, int64, bool, error) {
			r, err := rp.SendSync(ctx, primitive.NewMessage(topic, []byte(body)))
			if err != nil || r.Status != primitive.SendOK {
				return 0, 0, false, err
			}
			return r.MessageQueue.QueueId, r.QueueOffset, true, nil
		},
		"strata": func(ctx context.Context, body string) (int, int64, bool, error) {
			rs, err := sp.Send(ctx, client.Message{Topic: topic, Body: []byte(body)})
			if err != nil || len(rs) != 1 || rs[0].Status != client.SendOK {
				return 0, 0, false, err
			}
			return rs[0].QueueID, rs[0].QueueOffset, true, nil
		},
	}
	for w := range 3 {
		for name, send := range clients {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				for i := 0; ; i++ {
					select {
					case <-l.stop:
						return
					default:
					}
					body := fmt.Sprintf("%s-w%d-%d", name, w, i)
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					q, off, ok, err := send(ctx, body)
					cancel()
					l.record(replAck{body: body, queue: q, offset: off}, ok, err)
					if !ok {
						select { // the broker is going away: a moment before the next try
						case <-l.stop:
						case <-time.After(50 * time.Millisecond):
						}
					}
				}
			}()
		}
	}
	t.Cleanup(l.halt)
	return l
}

// TestReplicationKill9: a leader and two followers under sync replication
// with min-insync 2, producers of both clients sending all along, and
// kill -9 of a member at random moments, many times: every acknowledged
// message is at its offset, exactly once, on the leader and on both
// followers, and the three commit logs are the same bytes.
func TestReplicationKill9(t *testing.T) {
	t.Parallel()
	ns := readerStartNamesrv(t)
	g := &replGroup{ns: ns}
	for id := range 3 {
		g.members = append(g.members, replStart(t, ns.namesrv, id))
	}
	waitFor(t, 30*time.Second, "three copies in sync", func() bool { return g.inSync(3) })
	topic := uniq("repl")
	const queues = 4
	g.members[0].createTopic(t, topic, queues, false)
	for _, m := range g.members[1:] {
		m := m
		waitFor(t, 30*time.Second, "the followers to know the topic", func() bool {
			resp, err := invoke(m.broker, remoting.ReqGetAllTopicConfig, nil, nil)
			return err == nil && bytes.Contains(resp.Body, []byte(topic))
		})
	}
	load := startReplLoad(t, g, topic)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const rounds = 8
	for round := range rounds {
		before, _ := load.count()
		waitFor(t, 30*time.Second, "more acknowledged sends", func() bool { n, _ := load.count(); return n >= before+200 })
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		// Mostly followers; every third round the leader.
		id := 1 + rng.IntN(2)
		if round%3 == 2 {
			id = 0
		}
		m := g.members[id]
		if err := m.kill(); err != nil {
			t.Fatalf("kill -9 broker %d: %v", id, err)
		}
		n, failed := load.count()
		t.Logf("round %d: kill -9 broker %d after %d acknowledged sends (%d failed so far)", round, id, n, failed)
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
		if err := m.restart(); err != nil {
			t.Fatalf("restart broker %d: %v\n%s", id, err, m.logTail(40))
		}
		waitFor(t, 60*time.Second, "three copies in sync again", func() bool { return g.inSync(3) })
	}
	load.halt()
	acks, failed := load.count()
	t.Logf("%d sends acknowledged, %d failed or unconfirmed:%s", acks, failed, load.failures())
	waitFor(t, 30*time.Second, "the followers to catch up", g.caughtUp)

	replCheck(t, g, topic, queues, load)
}

// replCheck checks that every member holds every acknowledged message at
// its offset exactly once, the same records as the leader (members[0]),
// and the same commit-log bytes.
func replCheck(t *testing.T, g *replGroup, topic string, queues int, load *replLoad) {
	t.Helper()
	load.mu.Lock()
	all := append([]replAck(nil), load.acks...)
	load.mu.Unlock()
	byQueue := map[int][]replAck{}
	for _, a := range all {
		byQueue[a.queue] = append(byQueue[a.queue], a)
	}
	leaderRecs := make([][][]byte, queues)
	for id, m := range g.members {
		for q := range queues {
			n := m.maxOffset(t, topic, q)
			recs := pullAll(t, m.strata, topic, q, 0, int(n))
			seen := map[string]int64{}
			dups := 0
			for i, rec := range recs {
				msg, err := remoting.DecodeMessageExt(rec)
				if err != nil {
					t.Fatal(err)
				}
				if msg.QueueOffset != int64(i) {
					t.Fatalf("member %d queue %d: record %d has queue offset %d", id, q, i, msg.QueueOffset)
				}
				body := string(msg.Body)
				if _, dup := seen[body]; dup {
					// A producer's retry of a send whose answer it never
					// got (the broker died after storing it): at least
					// once, as in RocketMQ. The acknowledged copy is the
					// one checked below.
					dups++
					body += fmt.Sprintf("#%d", i)
				}
				seen[body] = int64(i)
			}
			if dups > 0 && id == 0 {
				t.Logf("queue %d: %d messages stored twice by producer retries", q, dups)
			}
			for _, a := range byQueue[q] {
				at := -1
				if a.offset < int64(len(recs)) {
					if m, err := remoting.DecodeMessageExt(recs[a.offset]); err == nil && string(m.Body) == a.body {
						at = int(a.offset)
					}
				}
				if at < 0 {
					off, ok := seen[a.body]
					t.Errorf("member %d: acknowledged %s at queue %d offset %d: not there (first copy at %d, %v)", id, a.body, q, a.offset, off, ok)
				}
			}
			if id == 0 {
				leaderRecs[q] = recs
				continue
			}
			if len(recs) != len(leaderRecs[q]) {
				t.Errorf("member %d queue %d: %d records, the leader %d", id, q, len(recs), len(leaderRecs[q]))
				continue
			}
			for i := range recs {
				if !bytes.Equal(recs[i], leaderRecs[q][i]) {
					t.Errorf("member %d queue %d offset %d: differs from the leader's record", id, q, i)
					break
				}
			}
		}
	}
	lead, err := replStatus(g.members[0].broker)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range g.members {
		if _, err := m.stop(15 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	ref := readCommitLog(t, g.members[0].dataDir, lead.LogEnd)
	for id, m := range g.members[1:] {
		if got := readCommitLog(t, m.dataDir, lead.LogEnd); !bytes.Equal(got, ref) {
			t.Errorf("member %d's commit log differs from the leader's (%d and %d bytes)", id+1, len(got), len(ref))
		}
	}
	t.Logf("%d bytes of commit log identical on %d replicas", len(ref), len(g.members))
}

// readCommitLog concatenates a broker's commit-log segments up to log offset
// end (segments are named by their first offset and cover segment-size
// offsets each).
func readCommitLog(t *testing.T, dataDir string, end int64) []byte {
	t.Helper()
	dir := filepath.Join(dataDir, "store", "commitlog")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var bases []int64
	for _, e := range ents {
		if b, err := strconv.ParseInt(e.Name(), 10, 64); err == nil {
			bases = append(bases, b)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	var out []byte
	for _, b := range bases {
		if b >= end {
			break
		}
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%020d", b)))
		if err != nil {
			t.Fatal(err)
		}
		n := min(int64(len(data)), end-b)
		out = append(out, data[:n]...)
	}
	return out
}
