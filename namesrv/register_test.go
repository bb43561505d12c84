package namesrv

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-mq/strata/remoting"
)

func sampleRegistration() Registration {
	return Registration{
		ClusterName:  "DefaultCluster",
		BrokerName:   "broker-a",
		BrokerAddr:   "127.0.0.1:10911",
		BrokerID:     1,
		HAServerAddr: "127.0.0.1:10912",
		Topics: map[string]TopicConfig{
			"TopicB": {ReadQueueNums: 8, WriteQueueNums: 8, Perm: 4, TopicSysFlag: 1, Order: true},
			"TopicA": {ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6},
		},
		DataVersion: DataVersion{Timestamp: 1700000000123, Counter: 7},
		Extra:       json.RawMessage(`{"hotStart": {"TopicA": [0, 5]}}`),
	}
}

const sampleRegisterBody = `{"topicConfigSerializeWrapper":{"topicConfigTable":{` +
	`"TopicA":{"topicName":"TopicA","readQueueNums":4,"writeQueueNums":4,"perm":6,"topicFilterType":"SINGLE_TAG","topicSysFlag":0,"order":false},` +
	`"TopicB":{"topicName":"TopicB","readQueueNums":8,"writeQueueNums":8,"perm":4,"topicFilterType":"SINGLE_TAG","topicSysFlag":1,"order":true}},` +
	`"dataVersion":{"timestamp":1700000000123,"counter":7}},"filterServerList":[],"strata":{"hotStart":{"TopicA":[0,5]}}}`

func TestRegisterBrokerRequestShape(t *testing.T) {
	req, err := NewRegisterBrokerRequest(sampleRegistration())
	if err != nil {
		t.Fatal(err)
	}
	if req.Code != remoting.ReqRegisterBroker || req.IsResponse() {
		t.Fatalf("request = %v", req)
	}
	if string(req.Body) != sampleRegisterBody {
		t.Fatalf("body:\n got %s\nwant %s", req.Body, sampleRegisterBody)
	}
	equal(t, "extFields", req.ExtFields, map[string]string{
		"brokerName":   "broker-a",
		"brokerAddr":   "127.0.0.1:10911",
		"clusterName":  "DefaultCluster",
		"haServerAddr": "127.0.0.1:10912",
		"brokerId":     "1",
		"compressed":   "false",
		// CRC-32 of the body with the sign bit cleared (Java UtilAll.crc32).
		"bodyCrc32": strconv.Itoa(int(bodyCRC32([]byte(sampleRegisterBody)))),
	})
	if crc, _ := strconv.Atoi(req.Ext("bodyCrc32")); crc < 0 {
		t.Fatalf("bodyCrc32 %d is negative", crc)
	}

	got, err := DecodeRegisterBrokerRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleRegistration()
	want.Extra = json.RawMessage(`{"hotStart":{"TopicA":[0,5]}}`)
	equal(t, "decoded", got, want)

	// Without Extra the "strata" field is left out; "null" counts as none.
	r := sampleRegistration()
	r.Extra = json.RawMessage(" null ")
	r.Topics = nil
	req, err = NewRegisterBrokerRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(req.Body), "strata") || !strings.Contains(string(req.Body), `"topicConfigTable":{}`) {
		t.Fatalf("body without extra or topics: %s", req.Body)
	}
	got, err = DecodeRegisterBrokerRequest(req)
	if err != nil || got.Extra != nil || len(got.Topics) != 0 {
		t.Fatalf("decoded = %+v, %v", got, err)
	}
}

func TestDecodeRegisterBrokerRequestChecks(t *testing.T) {
	good, err := NewRegisterBrokerRequest(sampleRegistration())
	if err != nil {
		t.Fatal(err)
	}
	clone := func() *remoting.Command {
		c := *good
		c.ExtFields = make(map[string]string)
		for k, v := range good.ExtFields {
			c.ExtFields[k] = v
		}
		return &c
	}
	cases := []struct {
		name   string
		change func(c *remoting.Command)
		want   string
	}{
		{"wrong code", func(c *remoting.Command) { c.Code = remoting.ReqUnregisterBroker }, "UNREGISTER_BROKER"},
		{"no broker id", func(c *remoting.Command) { delete(c.ExtFields, "brokerId") }, "brokerId"},
		{"bad broker id", func(c *remoting.Command) { c.ExtFields["brokerId"] = "one" }, "brokerId"},
		{"compressed", func(c *remoting.Command) { c.ExtFields["compressed"] = "true" }, "compressed"},
		{"crc mismatch", func(c *remoting.Command) { c.Body = append([]byte(nil), c.Body...); c.Body[10] ^= 1 }, "CRC32"},
		{"bad crc", func(c *remoting.Command) { c.ExtFields["bodyCrc32"] = "x" }, "bodyCrc32"},
		{"body not JSON", func(c *remoting.Command) { c.Body = []byte("{"); c.ExtFields["bodyCrc32"] = "0" }, "body"},
		{"topicName differs", func(c *remoting.Command) {
			c.Body = []byte(`{"topicConfigSerializeWrapper":{"topicConfigTable":{"A":{"topicName":"B"}}}}`)
			delete(c.ExtFields, "bodyCrc32")
		}, "topicName"},
		{"bad address", func(c *remoting.Command) { c.ExtFields["brokerAddr"] = "x" }, "brokerAddr"},
		{"no cluster", func(c *remoting.Command) { delete(c.ExtFields, "clusterName") }, "clusterName"},
		{"bad queue count", func(c *remoting.Command) {
			c.Body = []byte(`{"topicConfigSerializeWrapper":{"topicConfigTable":{"A":{"readQueueNums":100000}}}}`)
			c.ExtFields["bodyCrc32"] = strconv.Itoa(int(bodyCRC32(c.Body)))
		}, "readQueueNums"},
	}
	for _, tc := range cases {
		c := clone()
		tc.change(c)
		_, err := DecodeRegisterBrokerRequest(c)
		if !errors.Is(err, ErrBadRegistration) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want ErrBadRegistration mentioning %q", tc.name, err, tc.want)
		}
	}

	// Accepted: CRC 0 or absent is unchecked, an empty body has no topics,
	// and a Java broker's extra fields are ignored.
	c := clone()
	c.ExtFields["bodyCrc32"] = "0"
	c.Body = []byte(`{"topicConfigSerializeWrapper":{"topicConfigTable":{"T":{"topicName":"T","readQueueNums":4,"writeQueueNums":4,"perm":6,` +
		`"topicFilterType":"SINGLE_TAG","topicSysFlag":0,"order":false,"attributes":{}}},"dataVersion":{"counter":3,"stateVersion":0,"timestamp":5},` +
		`"topicQueueMappingInfoMap":{}},"filterServerList":[]}`)
	r, err := DecodeRegisterBrokerRequest(c)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "Java-shaped body", r.Topics, map[string]TopicConfig{"T": {ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6}})
	equal(t, "data version", r.DataVersion, DataVersion{Timestamp: 5, Counter: 3})
	c = clone()
	delete(c.ExtFields, "bodyCrc32")
	c.Body = nil
	if r, err := DecodeRegisterBrokerRequest(c); err != nil || r.Topics != nil {
		t.Fatalf("empty body: %+v, %v", r, err)
	}
}

func TestResponseHelpers(t *testing.T) {
	req, _ := NewRegisterBrokerRequest(sampleRegistration())
	req.Opaque = 42
	resp := NewRegisterBrokerResponse(req, RegisterResult{MasterAddr: "127.0.0.1:10911", HAServerAddr: "127.0.0.1:10912"})
	if resp.Opaque != 42 || !resp.IsResponse() || resp.Code != remoting.RespSuccess {
		t.Fatalf("response = %v", resp)
	}
	equal(t, "response ext", resp.ExtFields, map[string]string{"masterAddr": "127.0.0.1:10911", "haServerAddr": "127.0.0.1:10912"})
	res, err := DecodeRegisterBrokerResponse(resp)
	equal(t, "result", res, RegisterResult{MasterAddr: "127.0.0.1:10911", HAServerAddr: "127.0.0.1:10912"})
	if err != nil {
		t.Fatal(err)
	}
	if resp := NewRegisterBrokerResponse(req, RegisterResult{}); resp.ExtFields != nil {
		t.Fatalf("leader response has ext %v", resp.ExtFields)
	}
	_, err = DecodeRegisterBrokerResponse(remoting.NewResponse(req, remoting.RespSystemError, "bad"))
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "SYSTEM_ERROR") || !strings.Contains(err.Error(), "bad") {
		t.Fatalf("error response: %v", err)
	}

	unreg := NewUnregisterBrokerRequest("c1", "127.0.0.1:10911", "broker-a", 3)
	if unreg.Code != remoting.ReqUnregisterBroker {
		t.Fatalf("unregister code %d", unreg.Code)
	}
	equal(t, "unregister ext", unreg.ExtFields, map[string]string{"clusterName": "c1", "brokerAddr": "127.0.0.1:10911", "brokerName": "broker-a", "brokerId": "3"})
	route := NewGetRouteInfoRequest("T")
	if route.Code != remoting.ReqGetRouteInfoByTopic || route.Ext("topic") != "T" {
		t.Fatalf("route request = %v", route)
	}

	ok := remoting.NewResponse(route, remoting.RespSuccess, "")
	ok.Body = []byte(sampleRouteJSON)
	if r, err := DecodeRouteResponse(ok); err != nil || len(r.BrokerDatas) != 2 {
		t.Fatalf("DecodeRouteResponse = %+v, %v", r, err)
	}
	if _, err := DecodeRouteResponse(remoting.NewResponse(route, remoting.RespTopicNotExist, "no route")); !errors.Is(err, ErrTopicNotExist) {
		t.Fatalf("17: %v", err)
	}
	if _, err := DecodeRouteResponse(remoting.NewResponse(route, remoting.RespSuccess, "")); !errors.Is(err, ErrRejected) {
		t.Fatalf("empty body: %v", err)
	}
	if _, err := DecodeRouteResponse(remoting.NewResponse(route, remoting.RespNoPermission, "no")); !errors.Is(err, ErrRejected) {
		t.Fatalf("16: %v", err)
	}
}

// FuzzDecodeRegisterBrokerRequest: no input panics, and whatever decodes
// survives a round trip through NewRegisterBrokerRequest.
func FuzzDecodeRegisterBrokerRequest(f *testing.F) {
	f.Add("broker-a", "127.0.0.1:10911", "c1", "", "0", "", []byte(sampleRegisterBody))
	f.Add("b", "[::1]:1", "c", "127.0.0.1:2", "7", "0", []byte(`{"topicConfigSerializeWrapper":{"topicConfigTable":{"T":{}}}}`))
	f.Add("b", "h:1", "c", "", "1", "", []byte(`{"strata":[1,2]}`))
	f.Fuzz(func(t *testing.T, name, addr, cluster, ha, id, crc string, body []byte) {
		ext := map[string]string{"brokerName": name, "brokerAddr": addr, "clusterName": cluster,
			"haServerAddr": ha, "brokerId": id, "compressed": "false"}
		if crc != "" {
			ext["bodyCrc32"] = crc
		}
		r, err := DecodeRegisterBrokerRequest(remoting.NewRequest(remoting.ReqRegisterBroker, ext, body))
		if err != nil {
			return
		}
		req, err := NewRegisterBrokerRequest(r)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", r, err)
		}
		r2, err := DecodeRegisterBrokerRequest(req)
		if err != nil {
			t.Fatalf("decoding our own encoding: %v", err)
		}
		if len(r.Topics) == 0 && len(r2.Topics) == 0 {
			r.Topics, r2.Topics = nil, nil
		}
		equal(t, "round trip", r2, r)
	})
}
