package namesrv

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/strata-mq/strata/remoting"
)

// clientRoute is what rocketmq-client-go keeps of a route.
type clientRoute struct {
	OrderTopicConf string
	QueueDatas     []QueueData
	BrokerDatas    []clientBrokerData
}

type clientBrokerData struct {
	Cluster, BrokerName string
	BrokerAddresses     map[int64]string
}

// clientDecode is rocketmq-client-go's TopicRouteData.decode
// (internal/route.go) line for line, with encoding/json in place of
// jsoniter for queueDatas. Like the original it panics when brokerAddrs is
// missing.
func clientDecode(data string) (clientRoute, error) {
	var routeData clientRoute
	res := gjson.Parse(data)
	err := json.Unmarshal([]byte(res.Get("queueDatas").String()), &routeData.QueueDatas)
	if err != nil {
		return routeData, err
	}
	routeData.OrderTopicConf = res.Get("orderTopicConf").String()
	bds := res.Get("brokerDatas").Array()
	routeData.BrokerDatas = make([]clientBrokerData, len(bds))
	for idx, v := range bds {
		bd := clientBrokerData{
			BrokerName:      v.Get("brokerName").String(),
			Cluster:         v.Get("cluster").String(),
			BrokerAddresses: make(map[int64]string, 0),
		}
		addrs := v.Get("brokerAddrs").String()
		strs := strings.Split(addrs[1:len(addrs)-1], ",")
		for _, str := range strs {
			i := strings.Index(str, ":")
			if i < 0 {
				continue
			}
			brokerId := strings.ReplaceAll(str[0:i], "\"", "")
			id, _ := strconv.ParseInt(brokerId, 10, 64)
			bd.BrokerAddresses[id] = strings.Replace(str[i+1:], "\"", "", -1)
		}
		routeData.BrokerDatas[idx] = bd
	}
	return routeData, nil
}

func sampleRoute() RouteData {
	return RouteData{
		QueueDatas: []QueueData{
			{BrokerName: "broker-a", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6},
			{BrokerName: "broker-b", ReadQueueNums: 8, WriteQueueNums: 2, Perm: 4, TopicSynFlag: 1},
		},
		BrokerDatas: []BrokerData{
			{Cluster: "c1", BrokerName: "broker-a", BrokerAddrs: BrokerAddrs{0: "127.0.0.1:10911", 1: "127.0.0.1:10921", 10: "[::1]:10991"}},
			{Cluster: "c1", BrokerName: "broker-b", BrokerAddrs: BrokerAddrs{2: "127.0.0.1:10931"}},
		},
	}
}

const sampleRouteJSON = `{"orderTopicConf":"","queueDatas":[` +
	`{"brokerName":"broker-a","readQueueNums":4,"writeQueueNums":4,"perm":6,"topicSynFlag":0},` +
	`{"brokerName":"broker-b","readQueueNums":8,"writeQueueNums":2,"perm":4,"topicSynFlag":1}],` +
	`"brokerDatas":[{"cluster":"c1","brokerName":"broker-a","brokerAddrs":{"0":"127.0.0.1:10911","1":"127.0.0.1:10921","10":"[::1]:10991"}},` +
	`{"cluster":"c1","brokerName":"broker-b","brokerAddrs":{"2":"127.0.0.1:10931"}}]}`

func hasJSONWhitespace(b []byte) bool {
	return bytes.ContainsAny(b, " \t\r\n")
}

func TestRouteJSONShape(t *testing.T) {
	body, err := json.Marshal(sampleRoute())
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != sampleRouteJSON {
		t.Fatalf("route JSON:\n got %s\nwant %s", body, sampleRouteJSON)
	}
	if hasJSONWhitespace(body) {
		t.Fatalf("route JSON has whitespace: %s", body)
	}
	// Empty parts are still present, as [] and {}.
	body, _ = json.Marshal(RouteData{BrokerDatas: []BrokerData{{Cluster: "c", BrokerName: "b"}}})
	want := `{"orderTopicConf":"","queueDatas":[],"brokerDatas":[{"cluster":"c","brokerName":"b","brokerAddrs":{}}]}`
	if string(body) != want {
		t.Fatalf("empty route JSON:\n got %s\nwant %s", body, want)
	}
}

func TestRouteJSONParsesLikeTheGoClient(t *testing.T) {
	body, _ := json.Marshal(sampleRoute())
	got, err := clientDecode(string(body))
	if err != nil {
		t.Fatal(err)
	}
	want := clientRoute{
		QueueDatas: sampleRoute().QueueDatas,
		BrokerDatas: []clientBrokerData{
			{Cluster: "c1", BrokerName: "broker-a", BrokerAddresses: map[int64]string{0: "127.0.0.1:10911", 1: "127.0.0.1:10921", 10: "[::1]:10991"}},
			{Cluster: "c1", BrokerName: "broker-b", BrokerAddresses: map[int64]string{2: "127.0.0.1:10931"}},
		},
	}
	equal(t, "client view", got, want)

	// Extension fields do not disturb the client.
	r := sampleRoute()
	r.Extra = map[string]json.RawMessage{"strataTier": json.RawMessage(`{ "broker-a" : { "0" : 1234 } }`), "z": json.RawMessage(`[1, 2]`)}
	body, err = json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if hasJSONWhitespace(body) || !strings.HasSuffix(string(body), `,"strataTier":{"broker-a":{"0":1234}},"z":[1,2]}`) {
		t.Fatalf("route JSON with extras: %s", body)
	}
	got, err = clientDecode(string(body))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "client view with extras", got, want)

	// Why whitespace is forbidden: the client keeps it inside addresses.
	spaced, _ := clientDecode(`{"queueDatas":[],"brokerDatas":[{"brokerAddrs":{"0": "127.0.0.1:10911"}}]}`)
	if spaced.BrokerDatas[0].BrokerAddresses[0] != " 127.0.0.1:10911" {
		t.Fatalf("the client's parser changed: %q", spaced.BrokerDatas[0].BrokerAddresses[0])
	}
}

func TestBrokerAddrsNumericOrder(t *testing.T) {
	b, _ := json.Marshal(BrokerAddrs{10: "a:1", 2: "b:1", 0: "c:1"})
	if string(b) != `{"0":"c:1","2":"b:1","10":"a:1"}` {
		t.Fatalf("BrokerAddrs JSON = %s", b)
	}
	b, _ = json.Marshal(BrokerAddrs(nil))
	if string(b) != `{}` {
		t.Fatalf("nil BrokerAddrs JSON = %s", b)
	}
}

func TestDecodeRouteData(t *testing.T) {
	r := sampleRoute()
	r.OrderTopicConf = "broker-a:4"
	r.Extra = map[string]json.RawMessage{"strataTier": json.RawMessage(`{"a":1}`)}
	body, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRouteData(body)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "round trip", got, r)

	// Java fastjson: unquoted integer keys, other key order, unknown fields.
	java := `{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"b1","cluster":"c1"}],` +
		`"filterServerTable":{},"queueDatas":[{"brokerName":"b1","perm":6,"readQueueNums":4,"topicSynFlag":0,"writeQueueNums":4}]}`
	got, err = DecodeRouteData([]byte(java))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "Java route", got, RouteData{
		QueueDatas:  []QueueData{{BrokerName: "b1", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6}},
		BrokerDatas: []BrokerData{{Cluster: "c1", BrokerName: "b1", BrokerAddrs: BrokerAddrs{0: "10.0.0.1:10911", 1: "10.0.0.2:10911"}}},
		Extra:       map[string]json.RawMessage{"filterServerTable": json.RawMessage(`{}`)},
	})
	cr, err := clientDecode(java)
	if err != nil || cr.BrokerDatas[0].BrokerAddresses[1] != "10.0.0.2:10911" {
		t.Fatalf("the client's view of the Java route: %+v, %v", cr, err)
	}

	for _, bad := range []struct{ name, body, want string }{
		{"not JSON", `{"queueDatas":[`, "unexpected end"},
		{"null", `null`, "null"},
		{"array", `[]`, "cannot unmarshal"},
		{"no queueDatas", `{"brokerDatas":[]}`, "queueDatas is missing"},
		{"queueDatas not array", `{"queueDatas":{}}`, "queueDatas"},
		{"no brokerAddrs", `{"queueDatas":[],"brokerDatas":[{"brokerName":"b"}]}`, "brokerAddrs is missing"},
		{"null brokerAddrs", `{"queueDatas":[],"brokerDatas":[{"brokerName":"b","brokerAddrs":null}]}`, "brokerAddrs is missing"},
		{"bad key", `{"queueDatas":[],"brokerDatas":[{"brokerAddrs":{"x":"a:1"}}]}`, `key "x"`},
		{"number addr", `{"queueDatas":[],"brokerDatas":[{"brokerAddrs":{"0":1}}]}`, "brokerAddrs"},
	} {
		_, err := DecodeRouteData([]byte(bad.body))
		if !errors.Is(err, ErrMalformedRoute) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: DecodeRouteData(%s) = %v; want ErrMalformedRoute mentioning %q", bad.name, bad.body, err, bad.want)
		}
	}
}

func TestRouteExtraErrors(t *testing.T) {
	for _, extra := range []map[string]json.RawMessage{
		{"queueDatas": json.RawMessage(`[]`)},
		{"x": json.RawMessage(`{`)},
		{"x": json.RawMessage(``)},
	} {
		if _, err := json.Marshal(RouteData{Extra: extra}); err == nil {
			t.Errorf("Marshal with extra %s succeeded", extra)
		}
	}
}

func TestQuoteBareKeys(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{0:"a:1",1:"b:2"}`, `{"0":"a:1","1":"b:2"}`},
		{`{ -1 : "x" , 22:"y"}`, `{ "-1" : "x" , "22":"y"}`},
		{`{"s":"{0:1}","n":[1,2],"m":{3:4}}`, `{"s":"{0:1}","n":[1,2],"m":{"3":4}}`},
		{`{"s":"a\"{0:1"}`, `{"s":"a\"{0:1"}`},
		{`[1,2,{-:1}]`, `[1,2,{-:1}]`},
	} {
		if got := string(remoting.QuoteBareKeys([]byte(c.in))); got != c.want {
			t.Errorf("QuoteBareKeys(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	valid := []byte(sampleRouteJSON)
	if got := remoting.QuoteBareKeys(valid); &got[0] != &valid[0] {
		t.Error("quoteBareKeys copied valid JSON")
	}
}

func TestClusterInfoJSON(t *testing.T) {
	ci := ClusterInfo{
		BrokerAddrTable: map[string]BrokerData{
			"broker-b": {Cluster: "c1", BrokerName: "broker-b", BrokerAddrs: BrokerAddrs{0: "127.0.0.1:10931"}},
			"broker-a": {Cluster: "c1", BrokerName: "broker-a", BrokerAddrs: BrokerAddrs{1: "127.0.0.1:10921", 0: "127.0.0.1:10911"}},
		},
		ClusterAddrTable: map[string][]string{"c1": {"broker-a", "broker-b"}, "c0": nil},
	}
	body, err := json.Marshal(ci)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"brokerAddrTable":{"broker-a":{"cluster":"c1","brokerName":"broker-a","brokerAddrs":{"0":"127.0.0.1:10911","1":"127.0.0.1:10921"}},` +
		`"broker-b":{"cluster":"c1","brokerName":"broker-b","brokerAddrs":{"0":"127.0.0.1:10931"}}},` +
		`"clusterAddrTable":{"c0":[],"c1":["broker-a","broker-b"]}}`
	if string(body) != want {
		t.Fatalf("cluster info JSON:\n got %s\nwant %s", body, want)
	}
	got, err := DecodeClusterInfo(body)
	if err != nil {
		t.Fatal(err)
	}
	ci.ClusterAddrTable["c0"] = []string{}
	equal(t, "round trip", got, ci)
	body, _ = json.Marshal(ClusterInfo{})
	if string(body) != `{"brokerAddrTable":{},"clusterAddrTable":{}}` {
		t.Fatalf("empty cluster info JSON = %s", body)
	}
	java := `{"brokerAddrTable":{"b1":{"brokerAddrs":{0:"10.0.0.1:10911"},"brokerName":"b1","cluster":"c1"}},"clusterAddrTable":{"c1":["b1"]}}`
	got, err = DecodeClusterInfo([]byte(java))
	if err != nil || got.BrokerAddrTable["b1"].BrokerAddrs[0] != "10.0.0.1:10911" {
		t.Fatalf("DecodeClusterInfo(Java) = %+v, %v", got, err)
	}
	if _, err := DecodeClusterInfo([]byte(`{"brokerAddrTable":[]}`)); !errors.Is(err, ErrMalformedRoute) {
		t.Fatalf("DecodeClusterInfo(bad) = %v", err)
	}
}

// FuzzDecodeRouteData: no input panics; whatever decodes re-encodes to a
// fixed point without whitespace that the Go client reads the same way.
func FuzzDecodeRouteData(f *testing.F) {
	f.Add([]byte(sampleRouteJSON))
	f.Add([]byte(`{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911"},"brokerName":"b1","cluster":"c1"}],"queueDatas":[],"x":{"y":[1]}}`))
	f.Add([]byte(`{"queueDatas":null,"brokerDatas":null}`))
	f.Add([]byte(`{"queueDatas":[],"brokerDatas":[{"brokerAddrs":{}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeRouteData(body)
		if err != nil {
			return
		}
		enc, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", r, err)
		}
		r2, err := DecodeRouteData(enc)
		if err != nil {
			t.Fatalf("decoding our own encoding %s: %v", enc, err)
		}
		enc2, err := json.Marshal(r2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("not a fixed point:\n%s\n%s (%v)", enc, enc2, err)
		}
	})
}
