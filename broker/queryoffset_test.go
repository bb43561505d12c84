package broker

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// TestQueryOffsetNewGroup: a group with no stored offset on a queue whose
// first message is still held starts at 0 (as Java), unless it declared
// CONSUME_FROM_TIMESTAMP: then QUERY_NOT_FOUND lets its client search by
// time (Java ignores the timestamp there, apache/rocketmq#2286).
func TestQueryOffsetNewGroup(t *testing.T) {
	b := newTestBroker(t)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	}()
	c := pipeTo(t, b, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40002})
	if resp := invoke(t, c, remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
		"a": "pg", "b": "Q", "c": "TBW102", "d": "1", "e": "0", "f": "0", "g": "1700000000000", "h": "0",
		"i": "", "j": "0", "k": "false", "l": "0"}, []byte("m"))); resp.Code != remoting.RespSuccess {
		t.Fatalf("send: %d %q", resp.Code, resp.Remark)
	}
	for _, tc := range []struct {
		from string
		code int16
	}{
		{"CONSUME_FROM_LAST_OFFSET", remoting.RespSuccess},
		{"CONSUME_FROM_FIRST_OFFSET", remoting.RespSuccess},
		{"CONSUME_FROM_TIMESTAMP", remoting.RespQueryNotFound},
	} {
		group := "g-" + tc.from
		cd := testConsumer(group, testSub("Q", "*", 1))
		cd.ConsumeFromWhere = tc.from
		body, _ := json.Marshal(testHB("client-"+tc.from, nil, cd))
		if resp := invoke(t, c, remoting.NewRequest(remoting.ReqHeartBeat, nil, body)); resp.Code != remoting.RespSuccess {
			t.Fatalf("heartbeat: %d %q", resp.Code, resp.Remark)
		}
		if got := b.clients.ConsumeFromWhere(group); got != tc.from {
			t.Errorf("ConsumeFromWhere(%s) = %q", group, got)
		}
		resp := invoke(t, c, remoting.NewRequest(remoting.ReqQueryConsumerOffset,
			map[string]string{"consumerGroup": group, "topic": "Q", "queueId": "0"}, nil))
		if resp.Code != tc.code || (tc.code == remoting.RespSuccess && resp.Ext("offset") != "0") {
			t.Errorf("%s: query offset answered %d offset %q, want %d", tc.from, resp.Code, resp.Ext("offset"), tc.code)
		}
	}
	// The retry topic of a timestamp group starts at 0 like any other.
	group := "g-CONSUME_FROM_TIMESTAMP"
	if resp := invoke(t, c, remoting.NewRequest(remoting.ReqSendMessage, map[string]string{
		"producerGroup": "pg", "topic": RetryTopic(group), "defaultTopic": "TBW102", "defaultTopicQueueNums": "1",
		"queueId": "0", "sysFlag": "0", "bornTimestamp": "1700000000000", "flag": "0", "properties": "",
		"reconsumeTimes": "1", "unitMode": "false", "maxReconsumeTimes": "16"}, []byte("r"))); resp.Code != remoting.RespSuccess {
		t.Fatalf("send to the retry topic: %d %q", resp.Code, resp.Remark)
	}
	resp := invoke(t, c, remoting.NewRequest(remoting.ReqQueryConsumerOffset,
		map[string]string{"consumerGroup": group, "topic": RetryTopic(group), "queueId": "0"}, nil))
	if resp.Code != remoting.RespSuccess || resp.Ext("offset") != "0" {
		t.Errorf("retry topic of a timestamp group: query offset answered %d offset %q, want 0 offset 0", resp.Code, resp.Ext("offset"))
	}
	if got := b.clients.ConsumeFromWhere("nobody"); got != "" {
		t.Errorf("ConsumeFromWhere of an unknown group = %q", got)
	}
}
