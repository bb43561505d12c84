package e2e

// Failover: three name servers running the controller (a raft group), a
// broker group of three replicas under sync replication with two copies,
// and kill -9 of whichever replica leads, many times.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// foStartNamesrvs starts n name servers whose controllers form one raft
// group.
func foStartNamesrvs(t *testing.T, n int) []*readerNode {
	t.Helper()
	addrs, err := freePorts(3 * n)
	if err != nil {
		t.Fatal(err)
	}
	var raft []string
	for i := range n {
		raft = append(raft, addrs[3*i+2])
	}
	var out []*readerNode
	for i := range n {
		ns, httpAddr, ctl := addrs[3*i], addrs[3*i+1], addrs[3*i+2]
		out = append(out, readerStartNode(t, fmt.Sprintf("ns%d", i), ns, "", httpAddr, nil,
			"namesrv", "--namesrv-listen", ns, "--http-listen", httpAddr, "--controller-listen", ctl,
			"--controller-peers", strings.Join(raft, ";"), "--data-dir", filepath.Join(t.TempDir(), "ns")))
	}
	return out
}

// foLeader returns the id of the replica that says it leads, -1 if none.
func (g *replGroup) foLeader() int {
	for id, m := range g.members {
		if !m.running() {
			continue
		}
		if st, err := replStatus(m.broker); err == nil && st.Role == "leader" && st.InSync >= 2 {
			return id
		}
	}
	return -1
}

// foTopic waits for a leader with three copies in sync and creates a
// topic there that the followers know.
func (g *replGroup) foTopic(t *testing.T, prefix string, queues int) string {
	t.Helper()
	waitFor(t, 30*time.Second, "a leader with three copies in sync", func() bool {
		id := g.foLeader()
		if id < 0 {
			return false
		}
		st, err := replStatus(g.members[id].broker)
		return err == nil && st.InSync == 3
	})
	lead := g.foLeader()
	topic := uniq(prefix)
	g.members[lead].createTopic(t, topic, queues, false)
	for id, m := range g.members {
		if id != lead {
			waitFor(t, 30*time.Second, "the followers to know the topic", func() bool {
				resp, err := invoke(m.broker, remoting.ReqGetAllTopicConfig, nil, nil)
				return err == nil && bytes.Contains(resp.Body, []byte(topic))
			})
		}
	}
	return topic
}

// TestFailoverKill9: producers of both clients send all along; the leader
// is killed with SIGKILL at random moments, several times. Each time
// another replica leads within 10 s, and the old leader comes back as a
// follower (truncating what it wrote that no one acknowledged). At the
// end every acknowledged message is at its offset exactly once on all
// three replicas, whose commit logs are the same bytes.
func TestFailoverKill9(t *testing.T) {
	t.Parallel()
	nss := foStartNamesrvs(t, 3)
	var nsList []string
	for _, ns := range nss {
		nsList = append(nsList, ns.namesrv)
	}
	g := &replGroup{ns: nss[0]}
	for id := range 3 {
		g.members = append(g.members, replStart(t, strings.Join(nsList, ";"), id, "--failover", "on"))
	}
	const queues = 4
	topic := g.foTopic(t, "failover", queues)
	load := startReplLoad(t, g, topic)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	const rounds = 4
	for round := range rounds {
		before, _ := load.count()
		waitFor(t, 60*time.Second, "more acknowledged sends", func() bool { n, _ := load.count(); return n >= before+200 })
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		old := g.foLeader()
		if old < 0 {
			t.Fatalf("round %d: no leader", round)
		}
		killed := time.Now()
		if err := g.members[old].kill(); err != nil {
			t.Fatalf("kill -9 leader %d: %v", old, err)
		}
		var next int
		waitFor(t, 10*time.Second, "another replica to lead", func() bool { next = g.foLeader(); return next >= 0 && next != old })
		took := time.Since(killed)
		n, failed := load.count()
		t.Logf("round %d: killed leader %d after %d acknowledged sends (%d failed); replica %d leads after %v",
			round, old, n, failed, next, took.Round(time.Millisecond))
		if err := g.members[old].restart(); err != nil {
			t.Fatalf("restart replica %d: %v\n%s", old, err, g.members[old].logTail(40))
		}
		waitFor(t, 60*time.Second, "three copies in sync again", func() bool {
			st, err := replStatus(g.members[next].broker)
			return err == nil && st.Role == "leader" && st.InSync == 3
		})
	}
	load.halt()
	acks, failed := load.count()
	t.Logf("%d sends acknowledged, %d failed or unconfirmed:%s", acks, failed, load.failures())
	lead := g.foLeader()
	g.members[0], g.members[lead] = g.members[lead], g.members[0] // the checks want the leader first
	waitFor(t, 30*time.Second, "the followers to catch up", g.caughtUp)

	// The admin view: one leader at the newest epoch, two followers in sync.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	out, err := exec.CommandContext(ctx, strataBin, "admin", "cluster", "status", "--namesrv", nss[1].namesrv).CombinedOutput()
	cancel()
	st, _ := replStatus(g.members[0].broker)
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("epoch %d,", st.Epoch)) || strings.Count(string(out), " follower ") != 2 ||
		strings.Count(string(out), " yes") != 3 || st.Epoch < rounds+1 {
		t.Errorf("strata admin cluster status (the leader says epoch %d): %v\n%s", st.Epoch, err, out)
	} else {
		t.Logf("strata admin cluster status:\n%s", out)
	}
	replCheck(t, g, topic, queues, load)
}

// foPartitioned is a failover group whose links go through proxies: each
// broker's links to each name server, and each broker's replication port.
type foPartitioned struct {
	replGroup
	nss     []*readerNode
	nsLinks [][]*tcpProxy // [broker][name server]
	haLinks []*tcpProxy   // [broker]: followers dial the leader through it
}

func startPartitioned(t *testing.T) *foPartitioned {
	t.Helper()
	g := &foPartitioned{nss: foStartNamesrvs(t, 3)}
	g.ns = g.nss[0]
	for id := range 3 {
		addrs, err := freePorts(3)
		if err != nil {
			t.Fatal(err)
		}
		var links []*tcpProxy
		var via []string
		for _, ns := range g.nss {
			p := startProxy(t, ns.namesrv)
			links = append(links, p)
			via = append(via, p.addr())
		}
		ha := startProxy(t, addrs[2])
		g.nsLinks, g.haLinks = append(g.nsLinks, links), append(g.haLinks, ha)
		dir := filepath.Join(t.TempDir(), "data")
		args := []string{"broker", "--broker-name", readerBrokerName, "--broker-id", fmt.Sprint(id),
			"--data-dir", dir, "--listen", addrs[0], "--ha-listen", addrs[2], "--ha-advertise", ha.addr(),
			"--namesrv", strings.Join(via, ";"), "--http-listen", addrs[1], "--segment-size", "16MiB",
			"--replication", "sync", "--min-insync-replicas", "2", "--failover", "on"}
		n := readerStartNode(t, fmt.Sprintf("b%d", id), g.nss[0].namesrv, addrs[0], addrs[1], nil, args...)
		n.dataDir = dir
		g.members = append(g.members, n)
	}
	return g
}

// logEnd is a member's log end, -1 when it does not answer.
func logEnd(m *readerNode) int64 {
	st, err := replStatus(m.broker)
	if err != nil {
		return -1
	}
	return st.LogEnd
}

// TestFailoverPartitions: partitions rather than crashes, with producers
// sending all along.
//   - The leader cut off from every name server (the controller): its
//     lease runs out and it stops taking sends (its log stops growing)
//     before another replica is elected, within 10 s; healed, it rejoins
//     as a follower.
//   - The leader cut off from its followers but not from clients or the
//     controller: under sync replication it acknowledges nothing; healed,
//     it goes on.
//   - Slow links between the replicas: slower, still correct.
//   - The controller's minority: a name server frozen (SIGSTOP) and thawed.
//
// At the end every acknowledged message is at its offset on all three
// replicas, whose logs are the same bytes.
func TestFailoverPartitions(t *testing.T) {
	t.Parallel()
	g := startPartitioned(t)
	const queues = 4
	topic := g.foTopic(t, "partition", queues)
	load := startReplLoad(t, &g.replGroup, topic)
	more := func(what string) {
		t.Helper()
		before, _ := load.count()
		waitFor(t, 60*time.Second, what, func() bool { n, _ := load.count(); return n >= before+100 })
	}
	more("sends acknowledged")

	// 1. The leader loses the controller.
	old := g.foLeader()
	for _, p := range g.nsLinks[old] {
		p.setCut(true)
	}
	cut := time.Now()
	var next int
	waitFor(t, 10*time.Second, "another replica to lead", func() bool { next = g.foLeader(); return next >= 0 && next != old })
	t.Logf("leader %d cut off from the controller; replica %d leads after %v", old, next, time.Since(cut).Round(time.Millisecond))
	frozen := logEnd(g.members[old])
	more("sends acknowledged by the new leader")
	if e := logEnd(g.members[old]); e != frozen {
		t.Errorf("the cut-off old leader's log grew from %d to %d after another was elected", frozen, e)
	}
	for _, p := range g.nsLinks[old] {
		p.setCut(false)
	}
	waitFor(t, 60*time.Second, "the old leader back as a follower, three copies in sync", func() bool {
		st, err := replStatus(g.members[next].broker)
		return err == nil && st.Role == "leader" && st.InSync == 3
	})

	// 2. The leader loses its followers, not its clients.
	lead := g.foLeader()
	g.haLinks[lead].setCut(true)
	waitFor(t, 30*time.Second, "the leader to count fewer than two copies", func() bool {
		st, err := replStatus(g.members[lead].broker)
		return err == nil && st.InSync < 2
	})
	n0, _ := load.count()
	time.Sleep(time.Second) // sends keep arriving: none may be acknowledged
	if n1, _ := load.count(); n1 != n0 {
		t.Errorf("%d sends acknowledged while the leader had no follower", n1-n0)
	}
	g.haLinks[lead].setCut(false)
	more("sends acknowledged after the followers came back")

	// 3. Slow links between the replicas.
	for _, p := range g.haLinks {
		p.setDelay(20 * time.Millisecond)
	}
	more("sends acknowledged over slow links")
	for _, p := range g.haLinks {
		p.setDelay(0)
	}

	// 4. A name server (maybe the controller's raft leader) frozen.
	for i := range 2 {
		ns := g.nss[i]
		if err := ns.signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		if err := ns.signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		more("sends acknowledged after a name server froze")
	}

	load.halt()
	acks, failed := load.count()
	t.Logf("%d sends acknowledged, %d failed or unconfirmed:%s", acks, failed, load.failures())
	lead = g.foLeader()
	g.members[0], g.members[lead] = g.members[lead], g.members[0]
	waitFor(t, 30*time.Second, "the followers to catch up", g.caughtUp)
	replCheck(t, &g.replGroup, topic, queues, load)
}
