package namesrv

import (
	"bytes"
	"cmp"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"
)

// DefaultBrokerTimeout is how long a registration stays live without being
// renewed: 120 s, Java's BROKER_CHANNEL_EXPIRED_TIME. Brokers renew every
// 30 s, so three registrations in a row can be lost before a broker drops.
const DefaultBrokerTimeout = 120 * time.Second

// ConnID identifies the connection a registration arrived on, so that
// closing it removes the registration (Java onChannelDestroy). The zero
// ConnID ties a registration to no connection.
type ConnID uint64

// BrokerState is a live registration as routes, snapshots and the
// RouteExtender see it: the registration without its topic table.
type BrokerState struct {
	ClusterName  string
	BrokerName   string
	BrokerAddr   string
	BrokerID     int64
	HAServerAddr string
	DataVersion  DataVersion
	// Topics is how many topics the broker registered.
	Topics int
	// Extra is Registration.Extra, compacted; shared, do not modify.
	Extra json.RawMessage
	// TierBoundQueues is how many queues of its routed topics a leader's
	// registration gives tier bounds for (0 for other members, whose
	// bounds routes do not use).
	TierBoundQueues int
	// Registered is when this address first registered (since it was last
	// removed); LastUpdate is its latest registration.
	Registered time.Time
	LastUpdate time.Time
}

// RouteExtender computes extra top-level fields for a topic's route (see
// RouteData.Extra), from the Extra of the brokers' registrations, besides
// the "tierBounds" field the Table adds itself (see Table.Route), which an
// extender's field of that name does not replace. brokers are the live
// members of the route's broker names, sorted by broker name then id. It
// is called without the table's lock, for every route query, so it must be
// fast and must not retain brokers. A nil or
// empty result adds nothing. A result that does not encode (invalid JSON,
// a standard key) is dropped by the Server, which logs it and serves the
// standard route.
type RouteExtender func(topic string, brokers []BrokerState) map[string]json.RawMessage

// TableConfig configures a Table.
type TableConfig struct {
	// BrokerTimeout: a registration not renewed for longer than this is
	// dead. Zero means DefaultBrokerTimeout.
	BrokerTimeout time.Duration
	// RouteExtender, if set, adds fields to every route (issue 7).
	RouteExtender RouteExtender
}

// Table is the name server's state: the latest registration of every
// broker address, and everything derived from them (routes, clusters,
// topics). It has no goroutines, no network and no clock: every method that
// depends on time takes now, so tests drive liveness with a fake clock, and
// the Server supplies time.Now and a ticker. All methods are safe for
// concurrent use; each holds one mutex for its whole work, so every answer
// is a consistent view.
//
// Derivation rules, for a broker name with live members:
//   - its queue data for a topic comes from one member, the source: the
//     leader (id 0) if live, else the live member with the lowest id; the
//     topic is routed through the name only if the source registered it.
//     (Java keeps the leader's last topic table while any member lives;
//     taking a follower's is the same in steady state, since followers copy
//     the leader's topics, and still works after a name server restart.)
//   - its cluster is the source's cluster;
//   - its brokerAddrs are all live members, by id.
//
// A registration is live while now - LastUpdate <= BrokerTimeout. Queries
// ignore dead registrations whether or not Expire has removed them yet.
//
// Tier bounds (read routing, issue 7): the tier bounds of a leader's
// registration (RegistrationExtra) are decoded when it registers and kept
// by topic, for the topics it registered, with the registration: a new
// registration replaces them, and they go when it is removed (expiry,
// UNREGISTER_BROKER, connection close). So memory is bounded by what live
// leaders last sent, and a route looks its topic up in each of its broker
// names' leaders, never scanning topics.
type Table struct {
	timeout time.Duration
	extend  RouteExtender

	mu      sync.Mutex
	brokers map[string]*entry // by BrokerAddr
}

type entry struct {
	reg        Registration  // owned: Topics and Extra are never shared out
	bounds     *leaderBounds // nil unless a leader with tier bounds
	conn       ConnID
	registered time.Time
	lastUpdate time.Time
}

// NewTable returns an empty table.
func NewTable(cfg TableConfig) *Table {
	if cfg.BrokerTimeout <= 0 {
		cfg.BrokerTimeout = DefaultBrokerTimeout
	}
	return &Table{
		timeout: cfg.BrokerTimeout,
		extend:  cfg.RouteExtender,
		brokers: make(map[string]*entry),
	}
}

// BrokerTimeout returns the table's broker timeout.
func (t *Table) BrokerTimeout() time.Duration { return t.timeout }

func (t *Table) live(e *entry, now time.Time) bool {
	return now.Sub(e.lastUpdate) <= t.timeout
}

// Register records r at now, received on conn, replacing any earlier
// registration of r.BrokerAddr and any registration of the same broker name
// and id at another address (the broker moved). fresh reports that the
// address had no live registration before. For a follower or tier reader,
// the result names the live leader of its broker name. r is checked as
// DecodeRegisterBrokerRequest checks it (errors wrap ErrBadRegistration)
// and copied: the caller may reuse it. A leader's tier bounds that do not
// decode are ignored, and res.Warning says why.
func (t *Table) Register(now time.Time, r Registration, conn ConnID) (res RegisterResult, fresh bool, err error) {
	extra, err := checkRegistration(&r)
	if err != nil {
		return RegisterResult{}, false, err
	}
	r = cloneRegistration(r)
	r.Extra = extra
	var bounds *leaderBounds
	var warning string
	if r.BrokerID == MasterID && extra != nil {
		var berr error
		if bounds, berr = buildLeaderBounds(extra, r.Topics); berr != nil {
			warning = "tier bounds ignored: " + berr.Error()
		}
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.brokers[r.BrokerAddr]
	fresh = old == nil || !t.live(old, now)
	for addr, e := range t.brokers {
		if addr != r.BrokerAddr && e.reg.BrokerName == r.BrokerName && e.reg.BrokerID == r.BrokerID {
			delete(t.brokers, addr)
		}
	}
	e := &entry{reg: r, bounds: bounds, conn: conn, registered: now, lastUpdate: now}
	if !fresh {
		e.registered = old.registered
	}
	t.brokers[r.BrokerAddr] = e

	if r.BrokerID != MasterID {
		for _, l := range t.brokers {
			if l.reg.BrokerName == r.BrokerName && l.reg.BrokerID == MasterID && t.live(l, now) {
				res = RegisterResult{MasterAddr: l.reg.BrokerAddr, HAServerAddr: l.reg.HAServerAddr}
				break
			}
		}
	}
	res.Warning = warning
	return res, fresh, nil
}

// Unregister removes the registration of brokerAddr if it is for brokerName
// and brokerID (UNREGISTER_BROKER), and reports whether it did. The cluster
// name is not compared: a broker name belongs to one cluster at a time.
func (t *Table) Unregister(clusterName, brokerAddr, brokerName string, brokerID int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.brokers[brokerAddr]
	if e == nil || e.reg.BrokerName != brokerName || e.reg.BrokerID != brokerID {
		return false
	}
	delete(t.brokers, brokerAddr)
	return true
}

// ConnClosed removes the registrations whose latest registration arrived on
// conn, and returns them (sorted by address). A broker that re-registered
// on a new connection is not affected by the close of its old one.
func (t *Table) ConnClosed(conn ConnID) []BrokerState {
	if conn == 0 {
		return nil
	}
	return t.removeIf(func(e *entry) bool { return e.conn == conn })
}

// Expire removes the registrations that are dead at now, and returns them
// (sorted by address). The Server calls it every ScanInterval; queries do
// not depend on it.
func (t *Table) Expire(now time.Time) []BrokerState {
	return t.removeIf(func(e *entry) bool { return !t.live(e, now) })
}

func (t *Table) removeIf(drop func(*entry) bool) []BrokerState {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []BrokerState
	for addr, e := range t.brokers {
		if drop(e) {
			out = append(out, e.state())
			delete(t.brokers, addr)
		}
	}
	slices.SortFunc(out, func(a, b BrokerState) int { return cmp.Compare(a.BrokerAddr, b.BrokerAddr) })
	return out
}

// DeleteTopic removes topic from the stored registrations, of every
// cluster or, if cluster is not empty, of that cluster's brokers
// (DELETE_TOPIC_IN_NAMESRV), and reports whether any had it. A broker that
// still has the topic brings it back with its next registration, so delete
// it on the brokers first.
func (t *Table) DeleteTopic(topic, cluster string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	found := false
	for _, e := range t.brokers {
		if cluster != "" && e.reg.ClusterName != cluster {
			continue
		}
		if _, ok := e.reg.Topics[topic]; ok {
			delete(e.reg.Topics, topic)
			found = true
		}
		if e.bounds != nil {
			if qb, ok := e.bounds.topics[topic]; ok {
				e.bounds.queues -= bytes.Count(qb, []byte{':'}) // one per queue
				delete(e.bounds.topics, topic)
			}
		}
	}
	return found
}

func (e *entry) state() BrokerState {
	return BrokerState{
		ClusterName:     e.reg.ClusterName,
		BrokerName:      e.reg.BrokerName,
		BrokerAddr:      e.reg.BrokerAddr,
		BrokerID:        e.reg.BrokerID,
		HAServerAddr:    e.reg.HAServerAddr,
		DataVersion:     e.reg.DataVersion,
		Topics:          len(e.reg.Topics),
		Extra:           e.reg.Extra,
		TierBoundQueues: e.bounds.count(),
		Registered:      e.registered,
		LastUpdate:      e.lastUpdate,
	}
}

// group is the live members of one broker name, sorted by id.
type group struct {
	name    string
	members []*entry
}

// source is the member whose topic table and cluster speak for the name.
func (g *group) source() *entry { return g.members[0] }

func (g *group) brokerData() BrokerData {
	addrs := make(BrokerAddrs, len(g.members))
	for _, m := range g.members {
		addrs[m.reg.BrokerID] = m.reg.BrokerAddr
	}
	return BrokerData{Cluster: g.source().reg.ClusterName, BrokerName: g.name, BrokerAddrs: addrs}
}

// groups returns the live broker names, sorted by name. Caller holds mu.
func (t *Table) groups(now time.Time) []*group {
	byName := make(map[string]*group)
	for _, e := range t.brokers {
		if !t.live(e, now) {
			continue
		}
		g := byName[e.reg.BrokerName]
		if g == nil {
			g = &group{name: e.reg.BrokerName}
			byName[e.reg.BrokerName] = g
		}
		g.members = append(g.members, e)
	}
	out := make([]*group, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		g := byName[name]
		slices.SortFunc(g.members, func(a, b *entry) int { return cmp.Compare(a.reg.BrokerID, b.reg.BrokerID) })
		out = append(out, g)
	}
	return out
}

// Route returns topic's route at now, and false if no live broker name
// routes it. QueueDatas and BrokerDatas are sorted by broker name; Extra is
// the RouteExtender's result, unchecked, plus the field "tierBounds"
// (TierBoundsKey) when a live leader of the route's broker names reported
// tier bounds for the topic: each such broker name's queue hot starts
// from its leader's latest registration, by broker name (sorted),
//
//	"tierBounds":{"broker-a":{"0":1200,"1":1187},"broker-b":{"3":40}}
//
// A broker name without a live leader contributes none.
func (t *Table) Route(now time.Time, topic string) (RouteData, bool) {
	var members []BrokerState
	var r RouteData
	var tierBounds []byte
	t.mu.Lock()
	for _, g := range t.groups(now) {
		tc, ok := g.source().reg.Topics[topic]
		if !ok {
			continue
		}
		r.QueueDatas = append(r.QueueDatas, QueueData{
			BrokerName:     g.name,
			ReadQueueNums:  tc.ReadQueueNums,
			WriteQueueNums: tc.WriteQueueNums,
			Perm:           tc.Perm,
			TopicSynFlag:   tc.TopicSysFlag,
		})
		r.BrokerDatas = append(r.BrokerDatas, g.brokerData())
		if lead := g.members[0]; lead.reg.BrokerID == MasterID && lead.bounds != nil {
			if qb, ok := lead.bounds.topics[topic]; ok {
				if tierBounds == nil {
					tierBounds = append(tierBounds, '{')
				} else {
					tierBounds = append(tierBounds, ',')
				}
				tierBounds = strconv.AppendQuote(tierBounds, g.name) // names are plain ASCII
				tierBounds = append(tierBounds, ':')
				tierBounds = append(tierBounds, qb...)
			}
		}
		if t.extend != nil {
			for _, m := range g.members {
				members = append(members, m.state())
			}
		}
	}
	t.mu.Unlock()
	if len(r.QueueDatas) == 0 {
		return RouteData{}, false
	}
	if t.extend != nil {
		r.Extra = t.extend(topic, members)
	}
	if tierBounds != nil {
		extra := make(map[string]json.RawMessage, len(r.Extra)+1)
		maps.Copy(extra, r.Extra) // the extender's map is its own
		extra[TierBoundsKey] = append(tierBounds, '}')
		r.Extra = extra
	}
	return r, true
}

// ClusterInfo returns the live broker names by name and by cluster, the
// body of GET_BROKER_CLUSTER_INFO. Name lists are sorted.
func (t *Table) ClusterInfo(now time.Time) ClusterInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	ci := ClusterInfo{
		BrokerAddrTable:  make(map[string]BrokerData),
		ClusterAddrTable: make(map[string][]string),
	}
	for _, g := range t.groups(now) { // sorted by name, so the lists are too
		bd := g.brokerData()
		ci.BrokerAddrTable[g.name] = bd
		ci.ClusterAddrTable[bd.Cluster] = append(ci.ClusterAddrTable[bd.Cluster], g.name)
	}
	return ci
}

// Topics returns the topics routed at now, sorted.
func (t *Table) Topics(now time.Time) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	set := make(map[string]struct{})
	for _, g := range t.groups(now) {
		for topic := range g.source().reg.Topics {
			set[topic] = struct{}{}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Snapshot is a summary of a Table for admin tools and metrics.
type Snapshot struct {
	// Brokers are the live registrations, sorted by cluster, broker name, id.
	Brokers []BrokerState
	// Clusters, BrokerNames and Topics count what the routes cover.
	Clusters    int
	BrokerNames int
	Topics      int
}

// Snapshot summarises the table at now.
func (t *Table) Snapshot(now time.Time) Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	var s Snapshot
	clusters := make(map[string]struct{})
	topics := make(map[string]struct{})
	gs := t.groups(now)
	for _, g := range gs {
		clusters[g.source().reg.ClusterName] = struct{}{}
		for topic := range g.source().reg.Topics {
			topics[topic] = struct{}{}
		}
		for _, m := range g.members {
			s.Brokers = append(s.Brokers, m.state())
		}
	}
	slices.SortFunc(s.Brokers, func(a, b BrokerState) int {
		return cmp.Or(cmp.Compare(a.ClusterName, b.ClusterName), cmp.Compare(a.BrokerName, b.BrokerName), cmp.Compare(a.BrokerID, b.BrokerID))
	})
	s.Clusters, s.BrokerNames, s.Topics = len(clusters), len(gs), len(topics)
	return s
}

// stored returns how many registrations the table holds, dead ones not yet
// expired included (for tests).
func (t *Table) stored() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.brokers)
}
