package namesrv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/strata-mq/strata/remoting"
)

// ErrMalformedRoute is wrapped by the errors of DecodeRouteData and
// DecodeClusterInfo; the text says what was wrong.
var ErrMalformedRoute = errors.New("namesrv: malformed route data")

// MasterID is the broker id of a broker name's leader (Java MixAll.MASTER_ID).
// Followers and tier readers register with ids of 1 and up.
const MasterID int64 = 0

// QueueData is the queue layout one broker name gives a topic: an element
// of a route's "queueDatas" (Java QueueData). Producers use queues
// 0..WriteQueueNums-1 when Perm has remoting.PermWrite and the broker name
// has a leader address; consumers use 0..ReadQueueNums-1 when Perm has
// remoting.PermRead.
type QueueData struct {
	BrokerName     string `json:"brokerName"`
	ReadQueueNums  int    `json:"readQueueNums"`
	WriteQueueNums int    `json:"writeQueueNums"`
	Perm           int    `json:"perm"`
	// TopicSynFlag is the topic's sysFlag, under Java 4.x's spelling.
	TopicSynFlag int `json:"topicSynFlag"`
}

// BrokerData is one broker name and the addresses of its live members: an
// element of a route's "brokerDatas" and a value of the cluster info's
// "brokerAddrTable" (Java BrokerData).
type BrokerData struct {
	Cluster     string      `json:"cluster"`
	BrokerName  string      `json:"brokerName"`
	BrokerAddrs BrokerAddrs `json:"brokerAddrs"`
}

// BrokerAddrs maps broker id to "ip:port": MasterID is the leader, 1 and up
// are followers and tier readers.
//
// It is encoded with quoted decimal keys in increasing numeric order and no
// whitespace, {"0":"10.0.0.1:10911","1":"10.0.0.2:10911"}, and as {} when
// empty (never null): rocketmq-client-go cuts this object's raw text apart
// by hand (PROTOCOL.md §5), so a missing object panics it and a space would
// end up inside an address. Decoding also accepts Java fastjson's unquoted
// keys, {0:"10.0.0.1:10911"}, through DecodeRouteData and DecodeClusterInfo.
type BrokerAddrs map[int64]string

// MarshalJSON implements json.Marshaler (see BrokerAddrs).
func (a BrokerAddrs) MarshalJSON() ([]byte, error) {
	return a.appendJSON(nil), nil
}

func (a BrokerAddrs) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	for i, id := range slices.Sorted(maps.Keys(a)) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = strconv.AppendInt(dst, id, 10)
		dst = append(dst, '"', ':')
		s, _ := json.Marshal(a[id]) // a string always marshals
		dst = append(dst, s...)
	}
	return append(dst, '}')
}

// UnmarshalJSON implements json.Unmarshaler: an object whose keys are
// decimal integers (quoted, as JSON requires) and whose values are strings.
func (a *BrokerAddrs) UnmarshalJSON(b []byte) error {
	var raw map[string]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("brokerAddrs: %w", err)
	}
	if raw == nil {
		return errors.New("brokerAddrs is null")
	}
	m := make(BrokerAddrs, len(raw))
	for k, v := range raw {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			return fmt.Errorf("brokerAddrs: key %q is not a broker id", k)
		}
		m[id] = v
	}
	*a = m
	return nil
}

// RouteData is a topic's route: the body of a GET_ROUTEINFO_BY_TOPIC
// response (Java TopicRouteData, PROTOCOL.md §5).
//
// Its JSON has no whitespace and a fixed key order: orderTopicConf,
// queueDatas (sorted by broker name), brokerDatas (sorted by broker name),
// then the Extra fields sorted by key. Standard clients ignore keys they do
// not know, which is what Extra is for.
type RouteData struct {
	// OrderTopicConf, "brokerName:queueNums;...", overrides QueueDatas for
	// producers when non-empty. Strata leaves it empty.
	OrderTopicConf string
	QueueDatas     []QueueData
	BrokerDatas    []BrokerData
	// Extra holds top-level fields besides the three above, keyed by name,
	// each a JSON value: Strata's additions that standard clients ignore,
	// such as the per-queue tier boundaries of read routing under
	// TierBoundsKey (see Table.Route, DecodeRouteTierBounds) and a
	// RouteExtender's fields. Keys must differ from the standard ones. Nil
	// when there are none.
	Extra map[string]json.RawMessage
}

// Standard keys of a route.
const (
	keyOrderTopicConf = "orderTopicConf"
	keyQueueDatas     = "queueDatas"
	keyBrokerDatas    = "brokerDatas"
)

func isStandardRouteKey(k string) bool {
	return k == keyOrderTopicConf || k == keyQueueDatas || k == keyBrokerDatas
}

// MarshalJSON implements json.Marshaler with the encoding described at
// RouteData. It fails if an Extra key is a standard one or an Extra value
// is not valid JSON.
func (r RouteData) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 128+96*len(r.QueueDatas)+96*len(r.BrokerDatas))
	b = append(b, `{"orderTopicConf":`...)
	s, _ := json.Marshal(r.OrderTopicConf)
	b = append(b, s...)
	b = append(b, `,"queueDatas":[`...)
	for i, q := range r.QueueDatas {
		if i > 0 {
			b = append(b, ',')
		}
		qb, err := json.Marshal(q)
		if err != nil {
			return nil, err
		}
		b = append(b, qb...)
	}
	b = append(b, `],"brokerDatas":[`...)
	for i, bd := range r.BrokerDatas {
		if i > 0 {
			b = append(b, ',')
		}
		b = bd.appendJSON(b)
	}
	b = append(b, ']')
	b, err := appendExtra(b, r.Extra)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

func (bd BrokerData) appendJSON(b []byte) []byte {
	b = append(b, `{"cluster":`...)
	s, _ := json.Marshal(bd.Cluster)
	b = append(b, s...)
	b = append(b, `,"brokerName":`...)
	s, _ = json.Marshal(bd.BrokerName)
	b = append(b, s...)
	b = append(b, `,"brokerAddrs":`...)
	b = bd.BrokerAddrs.appendJSON(b)
	return append(b, '}')
}

// appendExtra appends ,"key":value for each extra field, sorted by key,
// each value compacted.
func appendExtra(b []byte, extra map[string]json.RawMessage) ([]byte, error) {
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if isStandardRouteKey(k) {
			return nil, fmt.Errorf("namesrv: route extra field %q clashes with a standard field", k)
		}
		b = append(b, ',')
		ks, _ := json.Marshal(k)
		b = append(b, ks...)
		b = append(b, ':')
		var buf bytes.Buffer
		if err := json.Compact(&buf, extra[k]); err != nil {
			return nil, fmt.Errorf("namesrv: route extra field %q: %w", k, err)
		}
		b = append(b, buf.Bytes()...)
	}
	return b, nil
}

// DecodeRouteData parses a GET_ROUTEINFO_BY_TOPIC response body: what
// rocketmq-client-go parses (internal/route.go TopicRouteData.decode), for
// Strata's own client. It accepts the same documents the Go client does,
// Java's unquoted brokerAddrs keys included, and is stricter where the Go
// client would misread or panic: the body must be a JSON object (once bare
// integer keys are quoted), "queueDatas" must be present (the Go client
// fails without it), every broker data must have "brokerAddrs" (the Go
// client panics without it) with integer keys. Unknown top-level fields go
// to Extra. Errors wrap ErrMalformedRoute.
func DecodeRouteData(body []byte) (RouteData, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(remoting.QuoteBareKeys(body), &top); err != nil {
		return RouteData{}, fmt.Errorf("%w: %w", ErrMalformedRoute, err)
	}
	if top == nil {
		return RouteData{}, fmt.Errorf("%w: body is null", ErrMalformedRoute)
	}
	var r RouteData
	if raw, ok := top[keyOrderTopicConf]; ok {
		if err := json.Unmarshal(raw, &r.OrderTopicConf); err != nil {
			return RouteData{}, fmt.Errorf("%w: orderTopicConf: %w", ErrMalformedRoute, err)
		}
	}
	raw, ok := top[keyQueueDatas]
	if !ok {
		return RouteData{}, fmt.Errorf("%w: queueDatas is missing", ErrMalformedRoute)
	}
	if err := json.Unmarshal(raw, &r.QueueDatas); err != nil {
		return RouteData{}, fmt.Errorf("%w: queueDatas: %w", ErrMalformedRoute, err)
	}
	if raw, ok := top[keyBrokerDatas]; ok {
		var bds []json.RawMessage
		if err := json.Unmarshal(raw, &bds); err != nil {
			return RouteData{}, fmt.Errorf("%w: brokerDatas: %w", ErrMalformedRoute, err)
		}
		for i, raw := range bds {
			bd, err := decodeBrokerData(raw)
			if err != nil {
				return RouteData{}, fmt.Errorf("%w: brokerDatas[%d]: %w", ErrMalformedRoute, i, err)
			}
			r.BrokerDatas = append(r.BrokerDatas, bd)
		}
	}
	for k, v := range top {
		if isStandardRouteKey(k) {
			continue
		}
		if r.Extra == nil {
			r.Extra = make(map[string]json.RawMessage)
		}
		r.Extra[k] = v
	}
	return r, nil
}

func decodeBrokerData(raw []byte) (BrokerData, error) {
	var w struct {
		Cluster     string       `json:"cluster"`
		BrokerName  string       `json:"brokerName"`
		BrokerAddrs *BrokerAddrs `json:"brokerAddrs"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return BrokerData{}, err
	}
	if w.BrokerAddrs == nil {
		return BrokerData{}, errors.New("brokerAddrs is missing")
	}
	return BrokerData{Cluster: w.Cluster, BrokerName: w.BrokerName, BrokerAddrs: *w.BrokerAddrs}, nil
}

// ClusterInfo is the body of a GET_BROKER_CLUSTER_INFO response (Java
// ClusterInfo): every broker name with its live members, and every cluster
// with its broker names. Encoded with encoding/json, it has sorted keys and
// no whitespace; Table sorts the name lists.
type ClusterInfo struct {
	BrokerAddrTable  map[string]BrokerData `json:"brokerAddrTable"`
	ClusterAddrTable map[string][]string   `json:"clusterAddrTable"`
}

// MarshalJSON implements json.Marshaler: nil tables are written as {}.
func (ci ClusterInfo) MarshalJSON() ([]byte, error) {
	b := []byte(`{"brokerAddrTable":{`)
	for i, name := range slices.Sorted(maps.Keys(ci.BrokerAddrTable)) {
		if i > 0 {
			b = append(b, ',')
		}
		s, _ := json.Marshal(name)
		b = append(b, s...)
		b = append(b, ':')
		b = ci.BrokerAddrTable[name].appendJSON(b)
	}
	b = append(b, `},"clusterAddrTable":{`...)
	for i, cluster := range slices.Sorted(maps.Keys(ci.ClusterAddrTable)) {
		if i > 0 {
			b = append(b, ',')
		}
		s, _ := json.Marshal(cluster)
		b = append(b, s...)
		b = append(b, ':')
		names := ci.ClusterAddrTable[cluster]
		if names == nil {
			names = []string{}
		}
		s, _ = json.Marshal(names)
		b = append(b, s...)
	}
	return append(b, "}}"...), nil
}

// DecodeClusterInfo parses a GET_BROKER_CLUSTER_INFO response body,
// accepting Java's unquoted brokerAddrs keys. Errors wrap ErrMalformedRoute.
func DecodeClusterInfo(body []byte) (ClusterInfo, error) {
	var ci ClusterInfo
	if err := json.Unmarshal(remoting.QuoteBareKeys(body), &ci); err != nil {
		return ClusterInfo{}, fmt.Errorf("%w: cluster info: %w", ErrMalformedRoute, err)
	}
	return ci, nil
}

// topicList is the body of a GET_ALL_TOPIC_LIST_FROM_NAMESERVER response
// (Java TopicList; Java also writes "brokerAddr":null, which clients ignore).
type topicList struct {
	TopicList []string `json:"topicList"`
}
