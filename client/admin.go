package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// ClusterInfo is what the name servers know of the brokers
// (GET_BROKER_CLUSTER_INFO).
type ClusterInfo struct {
	// Brokers holds every broker name with its live members.
	Brokers map[string]BrokerData
	// Clusters maps each cluster to its broker names, sorted.
	Clusters map[string][]string
}

// ClusterInfo asks the name servers which brokers are live.
func (c *Client) ClusterInfo(ctx context.Context) (ClusterInfo, error) {
	req := remoting.NewRequest(remoting.ReqGetBrokerClusterInfo, nil, nil)
	resp, addr, err := c.nameServerCall(ctx, req)
	if err != nil {
		return ClusterInfo{}, err
	}
	if resp.Code != remoting.RespSuccess {
		return ClusterInfo{}, responseError(addr, req, resp)
	}
	var w struct {
		BrokerAddrTable  map[string]brokerDataJSON `json:"brokerAddrTable"`
		ClusterAddrTable map[string][]string       `json:"clusterAddrTable"`
	}
	if err := json.Unmarshal(remoting.QuoteBareKeys(resp.Body), &w); err != nil {
		return ClusterInfo{}, fmt.Errorf("client: cluster info from %s: %w", addr, err)
	}
	ci := ClusterInfo{Brokers: make(map[string]BrokerData, len(w.BrokerAddrTable)), Clusters: w.ClusterAddrTable}
	for name, b := range w.BrokerAddrTable {
		bd, err := b.decode()
		if err != nil {
			return ClusterInfo{}, fmt.Errorf("client: cluster info from %s: %w", addr, err)
		}
		if bd.BrokerName == "" {
			bd.BrokerName = name
		}
		ci.Brokers[name] = bd
	}
	if ci.Clusters == nil {
		ci.Clusters = map[string][]string{}
	}
	for _, names := range ci.Clusters {
		slices.Sort(names)
	}
	return ci, nil
}

// TopicConfig describes a topic to create or update.
type TopicConfig struct {
	// Name is the topic.
	Name string
	// ReadQueues and WriteQueues are the queue counts on each broker, 1 to
	// 1024; zero means 4.
	ReadQueues, WriteQueues int
	// Perm is the permission: remoting.PermReadWrite (6, the default when
	// zero), PermRead (4) or PermWrite (2).
	Perm int
	// Cluster, if set, limits the topic to that cluster's brokers; empty
	// means every broker the name servers know.
	Cluster string
}

// CreateTopic creates or updates a topic on every leader of the cluster
// (UPDATE_AND_CREATE_TOPIC), then waits until the name servers route the
// topic to all of them, so that it can be used at once. The wait is bounded
// by ctx and RequestTimeout. Strata brokers accept topic changes from
// loopback peers only until ACLs exist.
func (c *Client) CreateTopic(ctx context.Context, tc TopicConfig) error {
	if err := checkTopic(tc.Name); err != nil {
		return err
	}
	if tc.ReadQueues == 0 {
		tc.ReadQueues = defaultTopicQueueNums
	}
	if tc.WriteQueues == 0 {
		tc.WriteQueues = defaultTopicQueueNums
	}
	if tc.Perm == 0 {
		tc.Perm = int(remoting.PermReadWrite)
	}
	if err := checkBounds([]bound{
		{"ReadQueues", int64(tc.ReadQueues), 1, maxQueueNums, "queues per broker"},
		{"WriteQueues", int64(tc.WriteQueues), 1, maxQueueNums, "queues per broker"},
		{"Perm", int64(tc.Perm), 1, 15, "permission bits"},
	}); err != nil {
		return err
	}
	ci, err := c.ClusterInfo(ctx)
	if err != nil {
		return err
	}
	targets, err := ci.leaders(tc.Cluster)
	if err != nil {
		return err
	}
	for _, b := range targets {
		req := remoting.NewRequest(remoting.ReqUpdateAndCreateTopic, map[string]string{
			"topic":           tc.Name,
			"defaultTopic":    DefaultCreateTopicKey,
			"readQueueNums":   strconv.Itoa(tc.ReadQueues),
			"writeQueueNums":  strconv.Itoa(tc.WriteQueues),
			"perm":            strconv.Itoa(tc.Perm),
			"topicFilterType": "SINGLE_TAG",
			"topicSysFlag":    "0",
			"order":           "false",
		}, nil)
		addr := b.LeaderAddr()
		resp, err := c.brokerCall(ctx, addr, req)
		if err != nil {
			return fmt.Errorf("client: create topic %s on broker %s: %w", tc.Name, b.BrokerName, err)
		}
		if resp.Code != remoting.RespSuccess {
			return fmt.Errorf("client: create topic %s on broker %s: %w", tc.Name, b.BrokerName, responseError(addr, req, resp))
		}
		c.log.Debug("client: topic created", "topic", tc.Name, "broker", b.BrokerName, "addr", addr)
	}
	return c.waitForRoute(ctx, tc, targets)
}

// leaders returns the broker names of cluster (every cluster when empty)
// that have a live leader, sorted by name.
func (ci ClusterInfo) leaders(cluster string) ([]BrokerData, error) {
	var names []string
	if cluster == "" {
		names = slices.Sorted(maps.Keys(ci.Brokers))
	} else {
		var ok bool
		if names, ok = ci.Clusters[cluster]; !ok {
			return nil, fmt.Errorf("client: cluster %q is unknown to the name servers (known: %v)", cluster, slices.Sorted(maps.Keys(ci.Clusters)))
		}
	}
	var out []BrokerData
	for _, n := range names {
		if b, ok := ci.Brokers[n]; ok && b.LeaderAddr() != "" {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no broker with a live leader is registered with the name servers", ErrNoQueue)
	}
	return out, nil
}

// routePollInterval is how often CreateTopic asks whether the new topic is
// routed yet; brokers register a new topic at once, so a few polls do.
const routePollInterval = 50 * time.Millisecond

func (c *Client) waitForRoute(ctx context.Context, tc TopicConfig, targets []BrokerData) error {
	wctx, cancel := context.WithTimeout(ctx, c.cfg.requestTimeout)
	defer cancel()
	t := time.NewTimer(0)
	defer t.Stop()
	var last error
	for {
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("client: topic %s was created on the brokers but the name servers do not route it to all of them after %v: %w",
				tc.Name, c.cfg.requestTimeout, last)
		case <-t.C:
		}
		r, err := c.fetchRoute(wctx, tc.Name)
		if err == nil {
			err = routeCovers(r, tc, targets)
		}
		if err == nil {
			c.routeMu.Lock()
			c.routes[tc.Name] = cachedRoute{route: r, fetched: time.Now()}
			c.routeMu.Unlock()
			return nil
		}
		if !errors.Is(err, ErrTopicNotFound) && !errors.Is(err, errNotYetRouted) {
			return err
		}
		last = err
		t.Reset(routePollInterval)
	}
}

var errNotYetRouted = errors.New("not yet routed")

func routeCovers(r *Route, tc TopicConfig, targets []BrokerData) error {
	for _, b := range targets {
		ok := false
		for _, q := range r.Queues {
			if q.BrokerName == b.BrokerName && q.ReadQueueNums == tc.ReadQueues && q.WriteQueueNums == tc.WriteQueues {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("%w: broker %s", errNotYetRouted, b.BrokerName)
		}
	}
	return nil
}

// ListTopics returns every topic the name servers know, sorted, system
// topics (TBW102, %RETRY%…, %DLQ%…) included; see IsSystemTopic.
func (c *Client) ListTopics(ctx context.Context) ([]string, error) {
	req := remoting.NewRequest(remoting.ReqGetAllTopicListFromNameServer, nil, nil)
	resp, addr, err := c.nameServerCall(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.Code != remoting.RespSuccess {
		return nil, responseError(addr, req, resp)
	}
	var w struct {
		TopicList []string `json:"topicList"`
	}
	if err := json.Unmarshal(resp.Body, &w); err != nil {
		return nil, fmt.Errorf("client: topic list from %s: %w", addr, err)
	}
	slices.Sort(w.TopicList)
	return w.TopicList, nil
}

// IsSystemTopic reports whether a topic is the brokers' or the clients'
// own: TBW102, SCHEDULE_TOPIC_XXXX, and names starting with %RETRY%, %DLQ%,
// rmq_sys_ or RMQ_SYS_. Listings may hide them.
func IsSystemTopic(topic string) bool {
	if topic == DefaultCreateTopicKey || topic == "SCHEDULE_TOPIC_XXXX" {
		return true
	}
	for _, p := range [...]string{"%RETRY%", "%DLQ%", "rmq_sys_", "RMQ_SYS_"} {
		if len(topic) >= len(p) && topic[:len(p)] == p {
			return true
		}
	}
	return false
}

// QueueInfo is one queue of a described topic.
type QueueInfo struct {
	MessageQueue
	// MinOffset is the smallest readable offset, MaxOffset the next offset
	// to be written; MaxOffset-MinOffset messages are readable.
	MinOffset, MaxOffset int64
}

// TopicInfo describes a topic: its route and each readable queue's bounds.
type TopicInfo struct {
	Route  *Route
	Queues []QueueInfo
}

// DescribeTopic returns topic's route (fresh from the name servers) and the
// offsets of each of its readable queues.
func (c *Client) DescribeTopic(ctx context.Context, topic string) (TopicInfo, error) {
	c.forgetRoute(topic)
	r, err := c.Route(ctx, topic)
	if err != nil {
		return TopicInfo{}, err
	}
	info := TopicInfo{Route: r}
	for _, mq := range r.ReadQueues() {
		qi := QueueInfo{MessageQueue: mq}
		if qi.MinOffset, err = c.queueOffset(ctx, mq, remoting.ReqGetMinOffset, nil); err != nil {
			return TopicInfo{}, err
		}
		if qi.MaxOffset, err = c.queueOffset(ctx, mq, remoting.ReqGetMaxOffset, nil); err != nil {
			return TopicInfo{}, err
		}
		info.Queues = append(info.Queues, qi)
	}
	return info, nil
}
