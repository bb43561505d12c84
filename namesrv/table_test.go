package namesrv

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func tc(read, write, perm int) TopicConfig {
	return TopicConfig{ReadQueueNums: read, WriteQueueNums: write, Perm: perm}
}

func registration(cluster, name, addr string, id int64, topics map[string]TopicConfig) Registration {
	return Registration{
		ClusterName:  cluster,
		BrokerName:   name,
		BrokerAddr:   addr,
		BrokerID:     id,
		HAServerAddr: strings.Replace(addr, ":109", ":119", 1),
		Topics:       topics,
		DataVersion:  DataVersion{Timestamp: 1700000000000, Counter: 1},
	}
}

func mustRegister(t *testing.T, tb *Table, now time.Time, r Registration, conn ConnID) RegisterResult {
	t.Helper()
	res, _, err := tb.Register(now, r, conn)
	if err != nil {
		t.Fatalf("Register(%s): %v", r.BrokerAddr, err)
	}
	return res
}

func mustRoute(t *testing.T, tb *Table, now time.Time, topic string) RouteData {
	t.Helper()
	r, ok := tb.Route(now, topic)
	if !ok {
		t.Fatalf("Route(%q): no route", topic)
	}
	return r
}

func noRoute(t *testing.T, tb *Table, now time.Time, topic string) {
	t.Helper()
	if r, ok := tb.Route(now, topic); ok {
		t.Fatalf("Route(%q) = %+v, want none", topic, r)
	}
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func TestTableRegistrationGivesRoute(t *testing.T) {
	tb := NewTable(TableConfig{})
	res, fresh, err := tb.Register(t0, registration("c1", "broker-a", "127.0.0.1:10911", 0,
		map[string]TopicConfig{"T": tc(4, 4, 6), "U": tc(8, 2, 4)}), 1)
	if err != nil || !fresh || res != (RegisterResult{}) {
		t.Fatalf("Register = %+v, %v, %v; want empty result, fresh", res, fresh, err)
	}
	equal(t, "route T", mustRoute(t, tb, t0, "T"), RouteData{
		QueueDatas:  []QueueData{{BrokerName: "broker-a", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6}},
		BrokerDatas: []BrokerData{{Cluster: "c1", BrokerName: "broker-a", BrokerAddrs: BrokerAddrs{0: "127.0.0.1:10911"}}},
	})
	equal(t, "route U queues", mustRoute(t, tb, t0, "U").QueueDatas,
		[]QueueData{{BrokerName: "broker-a", ReadQueueNums: 8, WriteQueueNums: 2, Perm: 4}})
	noRoute(t, tb, t0, "V")

	// A renewal is not fresh.
	if _, fresh, _ := tb.Register(t0.Add(30*time.Second), registration("c1", "broker-a", "127.0.0.1:10911", 0, nil), 1); fresh {
		t.Fatal("renewal reported fresh")
	}
}

func TestTableTwoBrokerNamesAndFollower(t *testing.T) {
	tb := NewTable(TableConfig{})
	topics := map[string]TopicConfig{"T": tc(4, 4, 6), "OnlyA": tc(1, 1, 6)}
	// The follower registers before its leader: no leader to name yet.
	res := mustRegister(t, tb, t0, registration("c1", "broker-a", "127.0.0.1:10921", 1, topics), 2)
	equal(t, "follower result without leader", res, RegisterResult{})
	mustRegister(t, tb, t0, registration("c1", "broker-a", "127.0.0.1:10911", 0, topics), 1)
	mustRegister(t, tb, t0, registration("c1", "broker-b", "127.0.0.1:10931", 0,
		map[string]TopicConfig{"T": tc(8, 2, 4), "OnlyB": tc(2, 2, 6)}), 3)
	res = mustRegister(t, tb, t0.Add(time.Second), registration("c1", "broker-a", "127.0.0.1:10921", 1, topics), 2)
	equal(t, "follower result", res, RegisterResult{MasterAddr: "127.0.0.1:10911", HAServerAddr: "127.0.0.1:11911"})

	equal(t, "route T", mustRoute(t, tb, t0, "T"), RouteData{
		QueueDatas: []QueueData{
			{BrokerName: "broker-a", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6},
			{BrokerName: "broker-b", ReadQueueNums: 8, WriteQueueNums: 2, Perm: 4},
		},
		BrokerDatas: []BrokerData{
			{Cluster: "c1", BrokerName: "broker-a", BrokerAddrs: BrokerAddrs{0: "127.0.0.1:10911", 1: "127.0.0.1:10921"}},
			{Cluster: "c1", BrokerName: "broker-b", BrokerAddrs: BrokerAddrs{0: "127.0.0.1:10931"}},
		},
	})
	a := mustRoute(t, tb, t0, "OnlyA")
	if len(a.QueueDatas) != 1 || a.QueueDatas[0].BrokerName != "broker-a" || len(a.BrokerDatas) != 1 {
		t.Fatalf("route OnlyA = %+v, want broker-a only", a)
	}
	b := mustRoute(t, tb, t0, "OnlyB")
	if len(b.QueueDatas) != 1 || b.BrokerDatas[0].BrokerName != "broker-b" {
		t.Fatalf("route OnlyB = %+v, want broker-b only", b)
	}
}

func TestTableFollowerSpeaksWhenLeaderIsDead(t *testing.T) {
	tb := NewTable(TableConfig{BrokerTimeout: 10 * time.Second})
	mustRegister(t, tb, t0, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}), 1)
	// The follower's table differs (it lags); the leader speaks while live.
	mustRegister(t, tb, t0.Add(8*time.Second), registration("c1", "broker-a", "127.0.0.1:10921", 1, map[string]TopicConfig{"T": tc(2, 2, 6)}), 2)
	if got := mustRoute(t, tb, t0.Add(9*time.Second), "T").QueueDatas[0].WriteQueueNums; got != 4 {
		t.Fatalf("writeQueueNums = %d while the leader lives, want the leader's 4", got)
	}
	r := mustRoute(t, tb, t0.Add(11*time.Second), "T")
	equal(t, "route after the leader died", r, RouteData{
		QueueDatas:  []QueueData{{BrokerName: "broker-a", ReadQueueNums: 2, WriteQueueNums: 2, Perm: 6}},
		BrokerDatas: []BrokerData{{Cluster: "c1", BrokerName: "broker-a", BrokerAddrs: BrokerAddrs{1: "127.0.0.1:10921"}}},
	})
	// A follower learns no master address while the leader is dead.
	res := mustRegister(t, tb, t0.Add(11*time.Second), registration("c1", "broker-a", "127.0.0.1:10921", 1, nil), 2)
	equal(t, "follower result", res, RegisterResult{})
}

func TestTableExpiryWithFakeClock(t *testing.T) {
	const timeout = 10 * time.Second
	tb := NewTable(TableConfig{BrokerTimeout: timeout})
	mustRegister(t, tb, t0, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}), 1)

	mustRoute(t, tb, t0.Add(timeout), "T") // live up to and including the timeout
	if gone := tb.Expire(t0.Add(timeout)); len(gone) != 0 {
		t.Fatalf("Expire at the timeout removed %+v", gone)
	}
	dead := t0.Add(timeout + time.Nanosecond)
	noRoute(t, tb, dead, "T") // queries ignore dead entries before any scan
	if n := tb.stored(); n != 1 {
		t.Fatalf("stored = %d before Expire, want 1", n)
	}
	if got := tb.Snapshot(dead); len(got.Brokers) != 0 || got.Topics != 0 {
		t.Fatalf("Snapshot of a dead broker = %+v", got)
	}
	gone := tb.Expire(dead)
	if len(gone) != 1 || gone[0].BrokerAddr != "127.0.0.1:10911" || !gone[0].LastUpdate.Equal(t0) {
		t.Fatalf("Expire = %+v, want the broker", gone)
	}
	if n := tb.stored(); n != 0 {
		t.Fatalf("stored = %d after Expire, want 0", n)
	}

	// Renewals move the deadline; a new registration is fresh again.
	_, fresh, _ := tb.Register(dead, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}), 1)
	if !fresh {
		t.Fatal("registration after expiry not fresh")
	}
	for i := 1; i <= 5; i++ {
		now := dead.Add(time.Duration(i) * 8 * time.Second)
		mustRegister(t, tb, now, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}), 1)
		if gone := tb.Expire(now.Add(timeout)); len(gone) != 0 {
			t.Fatalf("renewed broker expired: %+v", gone)
		}
	}
	snap := tb.Snapshot(dead.Add(40 * time.Second))
	if len(snap.Brokers) != 1 || !snap.Brokers[0].Registered.Equal(dead) || !snap.Brokers[0].LastUpdate.Equal(dead.Add(40*time.Second)) {
		t.Fatalf("Snapshot = %+v, want registered at %v, updated at +40s", snap.Brokers, dead)
	}
}

func TestTableLeaderDropsTopic(t *testing.T) {
	tb := NewTable(TableConfig{})
	mustRegister(t, tb, t0, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6), "U": tc(4, 4, 6)}), 1)
	mustRegister(t, tb, t0.Add(time.Second), registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"U": tc(4, 4, 6)}), 1)
	noRoute(t, tb, t0.Add(time.Second), "T")
	equal(t, "topics", tb.Topics(t0.Add(time.Second)), []string{"U"})
}

func TestTableBrokerMovedToNewAddress(t *testing.T) {
	tb := NewTable(TableConfig{})
	mustRegister(t, tb, t0, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}), 1)
	mustRegister(t, tb, t0.Add(time.Second), registration("c1", "broker-a", "127.0.0.2:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}), 2)
	equal(t, "addrs", mustRoute(t, tb, t0.Add(time.Second), "T").BrokerDatas[0].BrokerAddrs, BrokerAddrs{0: "127.0.0.2:10911"})
	if n := tb.stored(); n != 1 {
		t.Fatalf("stored = %d, want the old address replaced", n)
	}
	// The same address changing role (follower promoted) is one entry too.
	mustRegister(t, tb, t0.Add(2*time.Second), registration("c1", "broker-a", "127.0.0.3:10911", 1, nil), 3)
	mustRegister(t, tb, t0.Add(3*time.Second), registration("c1", "broker-a", "127.0.0.3:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}), 3)
	equal(t, "addrs after promotion", mustRoute(t, tb, t0.Add(3*time.Second), "T").BrokerDatas[0].BrokerAddrs, BrokerAddrs{0: "127.0.0.3:10911"})
}

func TestTableConnClosed(t *testing.T) {
	tb := NewTable(TableConfig{})
	mustRegister(t, tb, t0, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}), 1)
	mustRegister(t, tb, t0, registration("c1", "broker-b", "127.0.0.1:10931", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}), 2)
	mustRegister(t, tb, t0, registration("c1", "broker-c", "127.0.0.1:10941", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}), 3)
	// broker-c reconnects: its old connection's close must not remove it.
	mustRegister(t, tb, t0.Add(time.Second), registration("c1", "broker-c", "127.0.0.1:10941", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}), 4)

	if got := tb.ConnClosed(0); got != nil {
		t.Fatalf("ConnClosed(0) = %+v", got)
	}
	gone := tb.ConnClosed(1)
	if len(gone) != 1 || gone[0].BrokerName != "broker-a" {
		t.Fatalf("ConnClosed(1) = %+v, want broker-a", gone)
	}
	if gone := tb.ConnClosed(3); len(gone) != 0 {
		t.Fatalf("ConnClosed(3) = %+v, want nothing (broker-c moved to conn 4)", gone)
	}
	var names []string
	for _, bd := range mustRoute(t, tb, t0.Add(time.Second), "T").BrokerDatas {
		names = append(names, bd.BrokerName)
	}
	equal(t, "remaining", names, []string{"broker-b", "broker-c"})
}

func TestTableUnregister(t *testing.T) {
	tb := NewTable(TableConfig{})
	mustRegister(t, tb, t0, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}), 1)
	mustRegister(t, tb, t0, registration("c1", "broker-a", "127.0.0.1:10921", 1, map[string]TopicConfig{"T": tc(4, 4, 6)}), 2)
	for _, bad := range []struct {
		addr, name string
		id         int64
	}{
		{"127.0.0.1:10911", "broker-x", 0},
		{"127.0.0.1:10911", "broker-a", 1},
		{"127.0.0.1:9", "broker-a", 0},
	} {
		if tb.Unregister("c1", bad.addr, bad.name, bad.id) {
			t.Fatalf("Unregister(%+v) removed something", bad)
		}
	}
	if !tb.Unregister("c1", "127.0.0.1:10911", "broker-a", 0) {
		t.Fatal("Unregister of the leader failed")
	}
	equal(t, "addrs", mustRoute(t, tb, t0, "T").BrokerDatas[0].BrokerAddrs, BrokerAddrs{1: "127.0.0.1:10921"})
	if !tb.Unregister("", "127.0.0.1:10921", "broker-a", 1) {
		t.Fatal("Unregister of the follower failed")
	}
	noRoute(t, tb, t0, "T")
	if tb.Unregister("c1", "127.0.0.1:10921", "broker-a", 1) {
		t.Fatal("second Unregister reported a removal")
	}
}

func TestTableDeleteTopic(t *testing.T) {
	tb := NewTable(TableConfig{})
	r := registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6), "U": tc(4, 4, 6)})
	mustRegister(t, tb, t0, r, 1)
	mustRegister(t, tb, t0, registration("c2", "broker-b", "127.0.0.1:10931", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}), 2)

	if tb.DeleteTopic("T", "c9") {
		t.Fatal("DeleteTopic in an unknown cluster found the topic")
	}
	if !tb.DeleteTopic("T", "c2") {
		t.Fatal("DeleteTopic(T, c2) found nothing")
	}
	equal(t, "route after deleting in c2", len(mustRoute(t, tb, t0, "T").QueueDatas), 1)
	if !tb.DeleteTopic("T", "") {
		t.Fatal("DeleteTopic(T) found nothing")
	}
	noRoute(t, tb, t0, "T")
	if tb.DeleteTopic("T", "") {
		t.Fatal("DeleteTopic of a deleted topic found it")
	}
	if _, ok := r.Topics["T"]; !ok {
		t.Fatal("DeleteTopic changed the caller's registration")
	}
	// The broker's next registration brings the topic back.
	mustRegister(t, tb, t0.Add(time.Second), r, 1)
	mustRoute(t, tb, t0.Add(time.Second), "T")
}

func TestTableClusterInfoTopicsSnapshot(t *testing.T) {
	tb := NewTable(TableConfig{BrokerTimeout: 10 * time.Second})
	mustRegister(t, tb, t0, registration("c1", "broker-b", "127.0.0.1:10931", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}), 1)
	mustRegister(t, tb, t0, registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6), "A": tc(1, 1, 6)}), 2)
	mustRegister(t, tb, t0, registration("c1", "broker-a", "127.0.0.1:10921", 1, nil), 3)
	mustRegister(t, tb, t0, registration("c2", "broker-z", "127.0.0.1:10951", 0, map[string]TopicConfig{"Z": tc(1, 1, 6)}), 4)
	mustRegister(t, tb, t0.Add(-time.Minute), registration("c3", "broker-dead", "127.0.0.1:10961", 0, map[string]TopicConfig{"D": tc(1, 1, 6)}), 5)

	equal(t, "cluster info", tb.ClusterInfo(t0), ClusterInfo{
		BrokerAddrTable: map[string]BrokerData{
			"broker-a": {Cluster: "c1", BrokerName: "broker-a", BrokerAddrs: BrokerAddrs{0: "127.0.0.1:10911", 1: "127.0.0.1:10921"}},
			"broker-b": {Cluster: "c1", BrokerName: "broker-b", BrokerAddrs: BrokerAddrs{0: "127.0.0.1:10931"}},
			"broker-z": {Cluster: "c2", BrokerName: "broker-z", BrokerAddrs: BrokerAddrs{0: "127.0.0.1:10951"}},
		},
		ClusterAddrTable: map[string][]string{"c1": {"broker-a", "broker-b"}, "c2": {"broker-z"}},
	})
	equal(t, "topics", tb.Topics(t0), []string{"A", "T", "Z"})

	snap := tb.Snapshot(t0)
	var got []string
	for _, b := range snap.Brokers {
		got = append(got, fmt.Sprintf("%s/%s/%d/%s/%d", b.ClusterName, b.BrokerName, b.BrokerID, b.BrokerAddr, b.Topics))
	}
	equal(t, "snapshot brokers", got, []string{
		"c1/broker-a/0/127.0.0.1:10911/2",
		"c1/broker-a/1/127.0.0.1:10921/0",
		"c1/broker-b/0/127.0.0.1:10931/1",
		"c2/broker-z/0/127.0.0.1:10951/1",
	})
	if snap.Clusters != 2 || snap.BrokerNames != 3 || snap.Topics != 3 {
		t.Fatalf("snapshot counts = %d clusters, %d names, %d topics; want 2, 3, 3", snap.Clusters, snap.BrokerNames, snap.Topics)
	}
	empty := NewTable(TableConfig{})
	equal(t, "empty cluster info", empty.ClusterInfo(t0), ClusterInfo{BrokerAddrTable: map[string]BrokerData{}, ClusterAddrTable: map[string][]string{}})
	equal(t, "empty topics", empty.Topics(t0), []string(nil))
}

func TestTableRouteExtender(t *testing.T) {
	var gotTopic string
	var gotBrokers []string
	tb := NewTable(TableConfig{RouteExtender: func(topic string, brokers []BrokerState) map[string]json.RawMessage {
		gotTopic = topic
		gotBrokers = nil
		parts := make([]string, 0, len(brokers))
		for _, b := range brokers {
			gotBrokers = append(gotBrokers, fmt.Sprintf("%s/%d", b.BrokerName, b.BrokerID))
			parts = append(parts, fmt.Sprintf("%q:%s", fmt.Sprintf("%s/%d", b.BrokerName, b.BrokerID), b.Extra))
		}
		return map[string]json.RawMessage{"strataTier": json.RawMessage("{" + strings.Join(parts, ",") + "}")}
	}})
	ra := registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(2, 2, 6)})
	ra.Extra = json.RawMessage(` { "hotStart" : { "T" : [ 10 , 20 ] } } `)
	mustRegister(t, tb, t0, ra, 1)
	rr := registration("c1", "broker-a", "127.0.0.1:10961", 2, nil)
	rr.Extra = json.RawMessage(`{"reader":true}`)
	mustRegister(t, tb, t0, rr, 2)
	mustRegister(t, tb, t0, registration("c1", "broker-b", "127.0.0.1:10931", 0, map[string]TopicConfig{"U": tc(2, 2, 6)}), 3)

	r := mustRoute(t, tb, t0, "T")
	equal(t, "extender topic", gotTopic, "T")
	equal(t, "extender brokers", gotBrokers, []string{"broker-a/0", "broker-a/2"})
	body, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"orderTopicConf":"","queueDatas":[{"brokerName":"broker-a","readQueueNums":2,"writeQueueNums":2,"perm":6,"topicSynFlag":0}],` +
		`"brokerDatas":[{"cluster":"c1","brokerName":"broker-a","brokerAddrs":{"0":"127.0.0.1:10911","2":"127.0.0.1:10961"}}],` +
		`"strataTier":{"broker-a/0":{"hotStart":{"T":[10,20]}},"broker-a/2":{"reader":true}}}`
	equal(t, "route JSON", string(body), want)
}

func TestTableRegisterChecks(t *testing.T) {
	good := registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)})
	cases := []struct {
		name   string
		change func(r *Registration)
		want   string
	}{
		{"no cluster", func(r *Registration) { r.ClusterName = "" }, "clusterName"},
		{"space in broker name", func(r *Registration) { r.BrokerName = "broker a" }, "brokerName"},
		{"long broker name", func(r *Registration) { r.BrokerName = strings.Repeat("b", MaxNameLen+1) }, "brokerName"},
		{"addr without port", func(r *Registration) { r.BrokerAddr = "127.0.0.1" }, "brokerAddr"},
		{"addr with comma", func(r *Registration) { r.BrokerAddr = "127.0.0.1,x:10911" }, "brokerAddr"},
		{"addr with quote", func(r *Registration) { r.BrokerAddr = `127.0.0.1":10911` }, "brokerAddr"},
		{"addr port 0", func(r *Registration) { r.BrokerAddr = "127.0.0.1:0" }, "brokerAddr"},
		{"addr no host", func(r *Registration) { r.BrokerAddr = ":10911" }, "brokerAddr"},
		{"bad ha addr", func(r *Registration) { r.HAServerAddr = "x y:1" }, "haServerAddr"},
		{"negative id", func(r *Registration) { r.BrokerID = -1 }, "brokerId"},
		{"bad topic", func(r *Registration) { r.Topics = map[string]TopicConfig{"a.b": tc(1, 1, 6)} }, `topic "a.b"`},
		{"empty topic", func(r *Registration) { r.Topics = map[string]TopicConfig{"": tc(1, 1, 6)} }, `topic ""`},
		{"long topic", func(r *Registration) { r.Topics = map[string]TopicConfig{strings.Repeat("t", 256): tc(1, 1, 6)} }, "longer than 255"},
		{"too many queues", func(r *Registration) { r.Topics = map[string]TopicConfig{"T": tc(MaxQueueNums+1, 1, 6)} }, "readQueueNums"},
		{"negative write queues", func(r *Registration) { r.Topics = map[string]TopicConfig{"T": tc(1, -1, 6)} }, "writeQueueNums"},
		{"bad perm", func(r *Registration) { r.Topics = map[string]TopicConfig{"T": tc(1, 1, 16)} }, "perm"},
		{"bad sys flag", func(r *Registration) { r.Topics = map[string]TopicConfig{"T": {TopicSysFlag: -1}} }, "topicSysFlag"},
		{"bad extra", func(r *Registration) { r.Extra = json.RawMessage(`{"a":`) }, "extra"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := cloneRegistration(good)
			c.change(&r)
			_, _, err := NewTable(TableConfig{}).Register(t0, r, 1)
			if !errors.Is(err, ErrBadRegistration) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Register: %v; want ErrBadRegistration naming %q", err, c.want)
			}
			if _, err := NewRegisterBrokerRequest(r); !errors.Is(err, ErrBadRegistration) {
				t.Fatalf("NewRegisterBrokerRequest: %v; want ErrBadRegistration", err)
			}
		})
	}
	for _, addr := range []string{"[::1]:10911", "broker-1.example.internal:10911", "[fe80::1%eth0]:10911"} {
		r := cloneRegistration(good)
		r.BrokerAddr = addr
		if _, _, err := NewTable(TableConfig{}).Register(t0, r, 1); err != nil {
			t.Errorf("Register with address %q: %v", addr, err)
		}
	}
}

func TestTableOwnsItsCopy(t *testing.T) {
	tb := NewTable(TableConfig{})
	r := registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)})
	r.Extra = json.RawMessage(`{"x":1}`)
	mustRegister(t, tb, t0, r, 1)
	r.Topics["T"] = tc(1, 1, 2)
	r.Topics["New"] = tc(1, 1, 6)
	r.Extra[5] = '9'
	equal(t, "queue data", mustRoute(t, tb, t0, "T").QueueDatas[0], QueueData{BrokerName: "broker-a", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6})
	noRoute(t, tb, t0, "New")
	equal(t, "extra", string(tb.Snapshot(t0).Brokers[0].Extra), `{"x":1}`)
}

// TestTableConcurrent is for the race detector: registrations, expiries
// and queries from many goroutines.
func TestTableConcurrent(t *testing.T) {
	tb := NewTable(TableConfig{BrokerTimeout: 5 * time.Second, RouteExtender: func(string, []BrokerState) map[string]json.RawMessage { return nil }})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := fmt.Sprintf("127.0.0.1:%d", 10911+g)
			for i := range 200 {
				now := t0.Add(time.Duration(i) * time.Second)
				r := registration("c1", fmt.Sprintf("broker-%d", g%3), addr, int64(g/3), map[string]TopicConfig{"T": tc(4, 4, 6)})
				r = withBounds(r, TierBounds{"T": {0: int64(i), 1: int64(g)}})
				if _, _, err := tb.Register(now, r, ConnID(g+1)); err != nil {
					t.Error(err)
					return
				}
				tb.Route(now, "T")
				tb.ClusterInfo(now)
				tb.Topics(now)
				tb.Snapshot(now)
				tb.Expire(now)
				if i%50 == 0 {
					tb.ConnClosed(ConnID(g + 1))
					tb.DeleteTopic("T", "")
				}
			}
		}()
	}
	wg.Wait()
}
