package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// maxQueueNums bounds the queue counts accepted from a route, so that a
// broken server cannot make the client build millions of queue values
// (Strata and Java brokers allow 1024).
const maxQueueNums = 1024

// leaderID is the broker id of a broker name's leader (Java MixAll.MASTER_ID).
const leaderID = 0

// MessageQueue names one queue of a topic on one broker name.
type MessageQueue struct {
	Topic      string
	BrokerName string
	QueueID    int
}

// String returns "topic@broker/queue".
func (q MessageQueue) String() string {
	return q.Topic + "@" + q.BrokerName + "/" + strconv.Itoa(q.QueueID)
}

// QueueData is the queue layout one broker name gives a topic (Java
// QueueData): producers use queues 0..WriteQueueNums-1 when Perm has
// remoting.PermWrite, consumers 0..ReadQueueNums-1 when it has PermRead.
type QueueData struct {
	BrokerName     string `json:"brokerName"`
	ReadQueueNums  int    `json:"readQueueNums"`
	WriteQueueNums int    `json:"writeQueueNums"`
	Perm           int    `json:"perm"`
	TopicSysFlag   int    `json:"topicSynFlag"` // Java 4.x spelling
}

// BrokerData is a broker name and its live members' addresses by broker
// id: 0 is the leader, 1 and up are followers and tier readers.
type BrokerData struct {
	Cluster    string
	BrokerName string
	Addrs      map[int64]string
}

// LeaderAddr returns the leader's address, or "" when no leader is live.
func (b BrokerData) LeaderAddr() string { return b.Addrs[leaderID] }

// Route is a topic's route as the name servers give it (PROTOCOL.md §5),
// with Queues and Brokers sorted by broker name. A Route is shared by the
// cache: treat it as read-only.
type Route struct {
	Topic   string
	Queues  []QueueData
	Brokers []BrokerData
	// HotStart holds, by broker name and queue id, the first offset a
	// queue's leader keeps on local disk, for queues whose older messages
	// are only in the cold tier (a Strata name server's "tierBounds"; nil
	// from RocketMQ's). Offsets below it are best read from a tier reader.
	HotStart map[string]map[int]int64
}

// coldAt reports whether offset of mq is below its leader's hot tier, as
// the route last said.
func (r *Route) coldAt(mq MessageQueue, offset int64) bool {
	hs, ok := r.HotStart[mq.BrokerName][mq.QueueID]
	return ok && offset < hs
}

// Readers returns the ids of a broker name's tier readers (and other
// non-leader members), sorted.
func (b BrokerData) Readers() []int64 {
	var ids []int64
	for id := range b.Addrs {
		if id != leaderID {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Broker returns the broker data of a broker name.
func (r *Route) Broker(name string) (BrokerData, bool) {
	for _, b := range r.Brokers {
		if b.BrokerName == name {
			return b, true
		}
	}
	return BrokerData{}, false
}

// WriteQueues returns the queues producers may send to: those of writable
// queue data whose broker name has a live leader, by broker name then id.
func (r *Route) WriteQueues() []MessageQueue {
	var out []MessageQueue
	for _, q := range r.Queues {
		if int32(q.Perm)&remoting.PermWrite == 0 {
			continue
		}
		if b, ok := r.Broker(q.BrokerName); !ok || b.LeaderAddr() == "" {
			continue
		}
		for id := range q.WriteQueueNums {
			out = append(out, MessageQueue{Topic: r.Topic, BrokerName: q.BrokerName, QueueID: id})
		}
	}
	return out
}

// ReadQueues returns the queues consumers read: those of readable queue
// data, by broker name then id.
func (r *Route) ReadQueues() []MessageQueue {
	var out []MessageQueue
	for _, q := range r.Queues {
		if int32(q.Perm)&remoting.PermRead == 0 {
			continue
		}
		for id := range q.ReadQueueNums {
			out = append(out, MessageQueue{Topic: r.Topic, BrokerName: q.BrokerName, QueueID: id})
		}
	}
	return out
}

type brokerDataJSON struct {
	Cluster     string            `json:"cluster"`
	BrokerName  string            `json:"brokerName"`
	BrokerAddrs map[string]string `json:"brokerAddrs"`
}

func (b brokerDataJSON) decode() (BrokerData, error) {
	bd := BrokerData{Cluster: b.Cluster, BrokerName: b.BrokerName, Addrs: make(map[int64]string, len(b.BrokerAddrs))}
	for k, v := range b.BrokerAddrs {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			return BrokerData{}, fmt.Errorf("broker %q: brokerAddrs key %q is not a broker id", b.BrokerName, k)
		}
		bd.Addrs[id] = v
	}
	return bd, nil
}

// decodeRoute parses a GET_ROUTEINFO_BY_TOPIC body. Strata's name server
// writes valid JSON; Java's fastjson writes brokerAddrs with bare integer
// keys ({0:"ip:port"}), which are quoted first. orderTopicConf is ignored.
func decodeRoute(topic string, body []byte) (*Route, error) {
	var w struct {
		QueueDatas  []QueueData      `json:"queueDatas"`
		BrokerDatas []brokerDataJSON `json:"brokerDatas"`
		// TierBounds: broker name → queue id → hot start (Strata).
		TierBounds map[string]map[string]int64 `json:"tierBounds"`
	}
	if err := json.Unmarshal(remoting.QuoteBareKeys(body), &w); err != nil {
		return nil, fmt.Errorf("route of %s: %w", topic, err)
	}
	r := &Route{Topic: topic, Queues: w.QueueDatas}
	for name, qs := range w.TierBounds {
		for k, hs := range qs {
			id, err := strconv.Atoi(k)
			if err != nil || id < 0 || id >= maxQueueNums || hs < 0 {
				return nil, fmt.Errorf("route of %s: tier bound %q: %d of broker %q is not a queue id and offset", topic, k, hs, name)
			}
			if r.HotStart == nil {
				r.HotStart = make(map[string]map[int]int64)
			}
			if r.HotStart[name] == nil {
				r.HotStart[name] = make(map[int]int64, len(qs))
			}
			r.HotStart[name][id] = hs
		}
	}
	for _, q := range r.Queues {
		if q.ReadQueueNums < 0 || q.ReadQueueNums > maxQueueNums || q.WriteQueueNums < 0 || q.WriteQueueNums > maxQueueNums {
			return nil, fmt.Errorf("route of %s: broker %q has %d read and %d write queues, outside 0..%d",
				topic, q.BrokerName, q.ReadQueueNums, q.WriteQueueNums, maxQueueNums)
		}
	}
	for _, b := range w.BrokerDatas {
		bd, err := b.decode()
		if err != nil {
			return nil, fmt.Errorf("route of %s: %w", topic, err)
		}
		r.Brokers = append(r.Brokers, bd)
	}
	slices.SortFunc(r.Queues, func(a, b QueueData) int { return cmp.Compare(a.BrokerName, b.BrokerName) })
	slices.SortFunc(r.Brokers, func(a, b BrokerData) int { return cmp.Compare(a.BrokerName, b.BrokerName) })
	return r, nil
}

// Route returns topic's route, from the cache when it is younger than
// RouteTTL. Errors wrap ErrTopicNotFound when no name server knows a
// broker serving the topic.
func (c *Client) Route(ctx context.Context, topic string) (*Route, error) {
	c.routeMu.Lock()
	e, ok := c.routes[topic]
	c.routeMu.Unlock()
	if ok && time.Since(e.fetched) < c.cfg.routeTTL {
		return e.route, nil
	}
	r, err := c.fetchRoute(ctx, topic)
	if err != nil {
		if errors.Is(err, ErrTopicNotFound) {
			c.forgetRoute(topic)
		}
		return nil, err
	}
	c.routeMu.Lock()
	c.routes[topic] = cachedRoute{route: r, fetched: time.Now()}
	c.routeMu.Unlock()
	return r, nil
}

// forgetRouteOlder drops topic's cached route if it was fetched more than
// age ago.
func (c *Client) forgetRouteOlder(topic string, age time.Duration) {
	c.routeMu.Lock()
	if e, ok := c.routes[topic]; ok && time.Since(e.fetched) > age {
		delete(c.routes, topic)
	}
	c.routeMu.Unlock()
}

// forgetRoute drops topic's cached route, so the next use asks again.
func (c *Client) forgetRoute(topic string) {
	c.routeMu.Lock()
	delete(c.routes, topic)
	c.routeMu.Unlock()
}

func (c *Client) fetchRoute(ctx context.Context, topic string) (*Route, error) {
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	req := remoting.NewRequest(remoting.ReqGetRouteInfoByTopic, map[string]string{"topic": topic}, nil)
	resp, addr, err := c.nameServerCall(ctx, req)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.Code == remoting.RespTopicNotExist:
		return nil, fmt.Errorf("%w: %s (name server %s: %s)", ErrTopicNotFound, topic, addr, resp.Remark)
	case resp.Code != remoting.RespSuccess:
		return nil, responseError(addr, req, resp)
	case len(resp.Body) == 0:
		return nil, fmt.Errorf("%w: %s (name server %s answered an empty route)", ErrTopicNotFound, topic, addr)
	}
	r, err := decodeRoute(topic, resp.Body)
	if err != nil {
		return nil, fmt.Errorf("client: name server %s: %w", addr, err)
	}
	if len(r.Queues) == 0 {
		return nil, fmt.Errorf("%w: %s (name server %s lists no queue)", ErrTopicNotFound, topic, addr)
	}
	c.log.Debug("client: route", "topic", topic, "namesrv", addr, "queues", len(r.Queues), "brokers", len(r.Brokers))
	return r, nil
}

// brokerAddr returns the leader address of brokerName in topic's route.
func (c *Client) brokerAddr(ctx context.Context, topic, brokerName string) (string, error) {
	r, err := c.Route(ctx, topic)
	if err != nil {
		return "", err
	}
	if b, ok := r.Broker(brokerName); ok && b.LeaderAddr() != "" {
		return b.LeaderAddr(), nil
	}
	// Ask the name servers again, but not more than once a second: while
	// a leader is down, reads go on to its tier readers.
	c.forgetRouteOlder(topic, time.Second)
	return "", fmt.Errorf("%w: broker %q has no live leader in the route of %s", ErrNoQueue, brokerName, topic)
}

// checkTopic applies the topic name rules (at most 127 bytes).
func checkTopic(topic string) error { return checkName("topic", topic, 127) }
