package e2e

// Failover with a cold tier: the three replicas of a failover group all
// run with the same MinIO cold tier and hot retention 0. Only the leader
// offloads, followers delete what it offloaded, a follower kept down while
// the leader offloaded (and deleted) past its log rebuilds from the cold
// tier, and a new leader continues the manifest at its own epoch.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/miniotest"
	"github.com/strata-mq/strata/remoting"
	"github.com/strata-mq/strata/tier"
	"github.com/strata-mq/strata/tier/miniostore"
	"github.com/strata-mq/strata/tier/storeurl"
)

// foTierStart starts broker id of broker-a with replStart's flags, env
// added to its environment and extra flags after the group's (a later flag
// overrides an earlier one).
func foTierStart(t *testing.T, ns string, id int, env []string, extra ...string) *readerNode {
	t.Helper()
	addrs, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	args := append([]string{"broker", "--broker-name", readerBrokerName, "--broker-id", strconv.Itoa(id),
		"--data-dir", dir, "--listen", addrs[0], "--ha-listen", addrs[2], "--namesrv", ns, "--http-listen", addrs[1],
		"--segment-size", "16MiB", "--replication", "sync", "--min-insync-replicas", "2"}, extra...)
	n := readerStartNode(t, fmt.Sprintf("b%d", id), strings.Split(ns, ";")[0], addrs[0], addrs[1], env, args...)
	n.dataDir = dir
	return n
}

// foTierInfo is the part of a broker's GET_TIER_STATUS answer these tests
// read: where its objects go (cluster and broker name) and its offload.
type foTierInfo struct {
	Cluster string `json:"cluster"`
	Broker  string `json:"broker"`
	Tier    *struct {
		Objects         int    `json:"objects"`
		EndOffset       int64  `json:"endOffset"`
		PendingSegments int    `json:"pendingSegments"`
		LastError       string `json:"lastError"`
	} `json:"tier"`
}

// foTierOf asks the broker at addr for its tier status.
func foTierOf(addr string) (foTierInfo, error) {
	resp, err := invoke(addr, remoting.ReqGetTierStatus, nil, nil)
	if err != nil {
		return foTierInfo{}, err
	}
	if resp.Code != remoting.RespSuccess {
		return foTierInfo{}, fmt.Errorf("tier status: code %d %s", resp.Code, resp.Remark)
	}
	var st foTierInfo
	err = json.Unmarshal(resp.Body, &st)
	return st, err
}

// foOpenManifest loads the manifest the group's brokers write: the store
// named by tierURL (with srv's root credentials, not the environment),
// under <prefix>/<cluster>/<broker>.
func foOpenManifest(t *testing.T, srv *miniotest.Server, tierURL, cluster, broker string) *tier.Manifest {
	t.Helper()
	spec, err := storeurl.Parse(tierURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := spec.MinIO
	cfg.AccessKey, cfg.SecretKey = srv.AccessKey, srv.SecretKey
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := miniostore.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	root := strings.Trim(strings.Join([]string{spec.Prefix, cluster, broker}, "/"), "/")
	m, err := tier.LoadManifest(ctx, st, root)
	if err != nil {
		t.Fatalf("load the manifest under %s: %v", root, err)
	}
	return m
}

// foReload reloads m, bounded in time.
func foReload(m *tier.Manifest) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return m.Reload(ctx)
}

// foEpochs summarises a manifest's entries per epoch, e.g. "epoch 1: 7, epoch 2: 3".
func foEpochs(es []tier.SegmentEntry) string {
	count := map[int64]int{}
	var epochs []int64
	for _, e := range es {
		if count[e.Epoch] == 0 {
			epochs = append(epochs, e.Epoch)
		}
		count[e.Epoch]++
	}
	slices.Sort(epochs)
	var parts []string
	for _, ep := range epochs {
		parts = append(parts, fmt.Sprintf("epoch %d: %d", ep, count[ep]))
	}
	return strings.Join(parts, ", ")
}

// foCheckManifest checks the manifest's entries: contiguous from log
// offset 0, epochs non-decreasing, some written after a failover (epoch ≥
// 2), the newest at the current leader's epoch.
func foCheckManifest(t *testing.T, es []tier.SegmentEntry, leaderEpoch int64) {
	t.Helper()
	if len(es) == 0 {
		t.Fatal("the manifest is empty")
	}
	if es[0].Base != 0 {
		t.Errorf("the manifest's first segment starts at %d, not 0", es[0].Base)
	}
	for i := 1; i < len(es); i++ {
		p, e := es[i-1], es[i]
		if e.Base != p.End {
			t.Errorf("manifest entry %d [%d, %d) does not follow entry %d [%d, %d)", e.Seq, e.Base, e.End, p.Seq, p.Base, p.End)
		}
		if e.Epoch < p.Epoch {
			t.Errorf("manifest entry %d (base %d) has epoch %d, after entry %d at epoch %d", e.Seq, e.Base, e.Epoch, p.Seq, p.Epoch)
		}
	}
	top := es[len(es)-1].Epoch
	for _, e := range es {
		top = max(top, e.Epoch)
	}
	if top < 2 {
		t.Errorf("no manifest entry was written after the failover: highest epoch %d", top)
	}
	if top != leaderEpoch {
		t.Errorf("the manifest's highest epoch is %d, the current leader's %d", top, leaderEpoch)
	}
}

// foRebuildLine returns the line of n's log, since its last start by the
// test, that tells of a rebuild from the cold tier.
func foRebuildLine(n *readerNode) (string, bool) {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return "", false
	}
	s := string(b)
	if i := strings.LastIndex(s, "=== e2e: start #"); i >= 0 {
		s = s[i:]
	}
	for _, l := range strings.Split(s, "\n") {
		low := strings.ToLower(l)
		if strings.Contains(low, "cold tier") && strings.Contains(low, "rebuild") {
			return l, true
		}
	}
	return "", false
}

// foDescribe is the group's replication state, for timeouts.
func foDescribe(g *replGroup) string {
	var b strings.Builder
	for id, m := range g.members {
		if !m.running() {
			fmt.Fprintf(&b, "\n  replica %d: down", id)
			continue
		}
		st, err := replStatus(m.broker)
		if err != nil {
			fmt.Fprintf(&b, "\n  replica %d: %v", id, err)
			continue
		}
		fmt.Fprintf(&b, "\n  replica %d: %s epoch %d, in sync %d, log [%d, %d)", id, st.Role, st.Epoch, st.InSync, st.LogStart, st.LogEnd)
		if ti, err := foTierOf(m.broker); err == nil && ti.Tier != nil {
			fmt.Fprintf(&b, ", tier: %d objects to %d, %d pending %q", ti.Tier.Objects, ti.Tier.EndOffset, ti.Tier.PendingSegments, ti.Tier.LastError)
		}
	}
	return b.String()
}

// foFiller sends large incompressible messages to its own topic, so that
// 1 MiB segments fill in seconds (the acknowledged load's small messages
// alone would take minutes under -race). Its sends are not checked.
type foFiller struct {
	stop          chan struct{}
	done          chan struct{}
	acked, failed atomic.Int64
}

func startFoFiller(t *testing.T, namesrv, topic string) *foFiller {
	p := readerProducer(t, namesrv)
	f := &foFiller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for i := 0; ; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			rs, err := p.Send(ctx, client.Message{Topic: topic, Body: readerBody("fill", i, 32<<10)})
			cancel()
			pause := 20 * time.Millisecond // about 1.5 MiB/s at most
			if err != nil || len(rs) != 1 || rs[0].Status != client.SendOK {
				f.failed.Add(1)
				pause = 100 * time.Millisecond
			} else {
				f.acked.Add(1)
			}
			select {
			case <-f.stop:
				return
			case <-time.After(pause):
			}
		}
	}()
	t.Cleanup(f.halt) // before the producer closes
	return f
}

func (f *foFiller) halt() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}

// foCheckQueue checks records read from queue q from offset 0: each at its
// own queue offset, and every acknowledged send below upTo at its offset.
// It returns how many acknowledged bodies are stored more than once (a
// producer's retry of a send whose answer it lost).
func foCheckQueue(t *testing.T, who string, q int, recs [][]byte, acks []replAck, upTo int64) int {
	t.Helper()
	count := map[string]int{}
	for i, rec := range recs {
		m, err := remoting.DecodeMessageExt(rec)
		if err != nil {
			t.Fatalf("%s queue %d record %d: %v", who, q, i, err)
		}
		if m.QueueOffset != int64(i) {
			t.Fatalf("%s queue %d: record %d has queue offset %d", who, q, i, m.QueueOffset)
		}
		count[string(m.Body)]++
	}
	bad, dups := 0, 0
	for _, a := range acks {
		if a.offset >= upTo {
			continue
		}
		if count[a.body] > 1 {
			dups++
		}
		if a.offset < int64(len(recs)) {
			if m, err := remoting.DecodeMessageExt(recs[a.offset]); err == nil && string(m.Body) == a.body {
				continue
			}
		}
		if bad++; bad <= 10 {
			t.Errorf("%s: acknowledged %s at queue %d offset %d is not there (%d records read, %d copies of the body)",
				who, a.body, q, a.offset, len(recs), count[a.body])
		}
	}
	if bad > 10 {
		t.Errorf("%s queue %d: %d acknowledged messages missing in all", who, q, bad)
	}
	return dups
}

// TestFailoverColdTier: a failover group (one name server running the
// controller) of three replicas under sync replication with two copies,
// all on one MinIO cold tier with hot retention 0 and 1 MiB segments;
// producers of both clients send all along. The leader offloads; a
// follower is killed (-9) and kept down while the leader and the other
// follower offload and delete well past its log. It comes back, its log
// ending before the leader's first local offset: it rebuilds from the cold
// tier and is in sync again. Then the leader is killed: another replica
// leads within 10 s and offloads at its own epoch; the old leader comes
// back as a follower. At the end the manifest is contiguous from offset 0
// with non-decreasing epochs, the newest the leader's, and every
// acknowledged message reads at its offset through the leader (cold and
// hot) and, for the offloaded range, through the rebuilt follower, the
// same bytes.
func TestFailoverColdTier(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	env := minioEnv(srv, srv.SecretKey)
	tierURL := fmt.Sprintf("minio://%s/%s/fotier", srv.Endpoint, bucket)
	ns := foStartNamesrvs(t, 1)[0]
	g := &replGroup{ns: ns}
	for id := range 3 {
		g.members = append(g.members, foTierStart(t, ns.namesrv, id, env,
			"--failover", "on", "--tier", tierURL, "--hot-retention", "0", "--segment-size", "1MiB"))
	}
	detail := func() string { return foDescribe(g) }
	const queues = 4
	topic := g.foTopic(t, "fotier", queues)
	fillTopic := g.foTopic(t, "fotierfill", 1)
	load := startReplLoad(t, g, topic)
	fill := startFoFiller(t, ns.namesrv, fillTopic)

	// The leader offloads, and deletes what it offloaded.
	lead := g.foLeader()
	if lead < 0 {
		t.Fatalf("no leader:%s", detail())
	}
	L := g.members[lead]
	fID, nID := (lead+1)%3, (lead+2)%3
	F, N := g.members[fID], g.members[nID]
	waitFor(t, 45*time.Second, "the leader to offload and delete its first segments", func() bool {
		ti, err := foTierOf(L.broker)
		st, err2 := replStatus(L.broker)
		return err == nil && err2 == nil && ti.Tier != nil && ti.Tier.Objects > 0 && st.LogStart > 0
	}, detail)
	ti, err := foTierOf(L.broker)
	if err != nil {
		t.Fatal(err)
	}
	cluster, brokerName := ti.Cluster, ti.Broker
	n0, _ := load.count()
	t.Logf("replica %d leads and offloads (%d objects) after %v, %d sends acknowledged", lead, ti.Tier.Objects,
		time.Since(t0).Round(time.Millisecond), n0)

	// A follower goes down; the leader and the other follower go on
	// deleting past its log end (a margin of two segments covers what it
	// copied between the status and the kill).
	fEnd := logEnd(F)
	if fEnd < 0 {
		t.Fatalf("replica %d does not answer:%s", fID, detail())
	}
	if err := F.kill(); err != nil {
		t.Fatalf("kill -9 follower %d: %v", fID, err)
	}
	const margin = 2 << 20
	waitFor(t, 45*time.Second, "the leader and the other follower to delete past the killed follower's log", func() bool {
		ls, err := replStatus(L.broker)
		nst, err2 := replStatus(N.broker)
		return err == nil && err2 == nil && ls.LogStart > fEnd+margin && nst.LogStart > fEnd+margin
	}, detail)
	lst, err := replStatus(L.broker)
	if err != nil {
		t.Fatal(err)
	}
	oldEpoch := lst.Epoch
	t.Logf("follower %d killed at log end %d; the leader's log now [%d, %d) at epoch %d", fID, fEnd, lst.LogStart, lst.LogEnd, oldEpoch)

	// The long-down follower comes back behind the leader's log: it
	// rebuilds from the cold tier and is in sync again.
	restartedAt := time.Now()
	if err := F.restart(); err != nil {
		t.Fatalf("restart follower %d: %v\n%s", fID, err, F.logTail(40))
	}
	waitFor(t, 60*time.Second, "the long-down follower to rebuild from the cold tier and be in sync", func() bool {
		st, err := replStatus(L.broker)
		return err == nil && st.Role == "leader" && st.InSync == 3
	}, detail)
	toSync := time.Since(restartedAt)
	if line, ok := foRebuildLine(F); ok {
		t.Logf("follower %d in sync %v after its restart; its log: %s", fID, toSync.Round(time.Millisecond), line)
	} else {
		t.Errorf("follower %d is in sync, but its log does not mention a rebuild from the cold tier:\n%s", fID, F.logTail(40))
	}
	if st, err := replStatus(F.broker); err != nil || st.LogStart <= fEnd {
		t.Errorf("the rebuilt follower's log starts at %d (%v), not after its old end %d", st.LogStart, err, fEnd)
	}

	// The leader goes down: another replica leads within 10 s.
	if err := L.kill(); err != nil {
		t.Fatalf("kill -9 leader %d: %v", lead, err)
	}
	killed := time.Now()
	next, newEpoch := -1, int64(0)
	waitFor(t, 10*time.Second, "another replica to lead", func() bool {
		for id, m := range g.members {
			if id == lead || !m.running() {
				continue
			}
			if st, err := replStatus(m.broker); err == nil && st.Role == "leader" && st.Epoch > oldEpoch {
				next, newEpoch = id, st.Epoch
				return true
			}
		}
		return false
	}, detail)
	toLead := time.Since(killed)
	N = g.members[next]
	t.Logf("leader %d killed; replica %d leads epoch %d after %v", lead, next, newEpoch, toLead.Round(time.Millisecond))
	if err := L.restart(); err != nil {
		t.Fatalf("restart replica %d: %v\n%s", lead, err, L.logTail(40))
	}
	waitFor(t, 60*time.Second, "three copies in sync", func() bool {
		st, err := replStatus(N.broker)
		return err == nil && st.Role == "leader" && st.InSync == 3
	}, detail)
	t.Logf("three copies in sync %v after the leader was killed", time.Since(killed).Round(time.Millisecond))

	// The new leader offloads, at its epoch.
	m := foOpenManifest(t, srv, tierURL, cluster, brokerName)
	var reloaded time.Time
	var reloadErr error
	waitFor(t, 45*time.Second, "a manifest entry at the new leader's epoch", func() bool {
		if time.Since(reloaded) < 250*time.Millisecond {
			return false
		}
		reloaded = time.Now()
		if reloadErr = foReload(m); reloadErr != nil {
			return false
		}
		es := m.Entries()
		return len(es) > 0 && es[len(es)-1].Epoch == newEpoch && newEpoch > es[0].Epoch
	}, func() string {
		return fmt.Sprintf("manifest %s (reload: %v):%s", foEpochs(m.Entries()), reloadErr, foDescribe(g))
	})
	load.halt()
	fill.halt()
	acks, failed := load.count()
	t.Logf("%d sends acknowledged, %d failed or unconfirmed (filler: %d × 32 KiB acknowledged, %d failed):%s",
		acks, failed, fill.acked.Load(), fill.failed.Load(), load.failures())

	// Every replica holds the leader's whole log.
	cur := g.foLeader()
	if cur < 0 {
		t.Fatalf("no leader at the end:%s", detail())
	}
	leader := g.members[cur]
	waitFor(t, 30*time.Second, "the followers to catch up", func() bool {
		ls, err := replStatus(leader.broker)
		if err != nil {
			return false
		}
		for _, mb := range g.members {
			if st, err := replStatus(mb.broker); err != nil || st.LogEnd != ls.LogEnd {
				return false
			}
		}
		return true
	}, detail)

	// The manifest.
	if err := foReload(m); err != nil {
		t.Fatal(err)
	}
	es := m.Entries()
	lst, err = replStatus(leader.broker)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("manifest: %d entries to log offset %d (%s); the leader (replica %d) is at epoch %d, log [%d, %d)",
		len(es), m.EndOffset(), foEpochs(es), cur, lst.Epoch, lst.LogStart, lst.LogEnd)
	foCheckManifest(t, es, lst.Epoch)

	// Every acknowledged message: through the leader from offset 0 (cold
	// and hot), and through the rebuilt follower over the offloaded range,
	// where it must return the leader's bytes.
	load.mu.Lock()
	all := append([]replAck(nil), load.acks...)
	load.mu.Unlock()
	byQueue := map[int][]replAck{}
	for _, a := range all {
		byQueue[a.queue] = append(byQueue[a.queue], a)
	}
	dups, coldAcks := 0, 0
	for q := range queues {
		end := leader.maxOffset(t, topic, q)
		lrecs := readerPullRange(t, leader.broker, topic, q, 0, end)
		dups += foCheckQueue(t, "the leader", q, lrecs, byQueue[q], end)
		first, coldNext, ok := m.QueueBounds(topic, int32(q))
		if !ok || first != 0 || coldNext > int64(len(lrecs)) {
			t.Errorf("queue %d: the cold tier holds [%d, %d) (%v); the leader %d messages", q, first, coldNext, ok, len(lrecs))
			continue
		}
		frecs := readerPullRange(t, F.broker, topic, q, 0, coldNext)
		foCheckQueue(t, "the rebuilt follower", q, frecs, byQueue[q], coldNext)
		for i := range frecs {
			if !bytes.Equal(frecs[i], lrecs[i]) {
				t.Errorf("queue %d offset %d: the rebuilt follower's record differs from the leader's", q, i)
				break
			}
		}
		for _, a := range byQueue[q] {
			if a.offset < coldNext {
				coldAcks++
			}
		}
		t.Logf("queue %d: %d messages, [0, %d) offloaded", q, len(lrecs), coldNext)
	}
	t.Logf("%d acknowledged messages read through the leader, %d of them offloaded and read through the rebuilt follower; %d stored twice by producer retries",
		len(all), coldAcks, dups)
	t.Logf("time to a new leader %v, for the rebuilt follower to be in sync %v; total %v",
		toLead.Round(time.Millisecond), toSync.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
}
