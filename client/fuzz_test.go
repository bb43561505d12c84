package client

import (
	"bytes"
	"compress/zlib"
	"net/netip"
	"testing"

	"github.com/strata-mq/strata/remoting"
)

// FuzzDecodeRoute feeds route bodies (from the network) to decodeRoute: it
// must not panic, and what it accepts must give bounded queue lists.
func FuzzDecodeRoute(f *testing.F) {
	f.Add([]byte(`{"queueDatas":[{"brokerName":"b1","perm":6,"readQueueNums":2,"writeQueueNums":2}],"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911"},"brokerName":"b1","cluster":"c"}]}`))
	f.Add([]byte(`{"queueDatas":[{"brokerName":"b","readQueueNums":100000,"writeQueueNums":1}]}`))
	f.Add([]byte(`{"brokerDatas":[{"brokerAddrs":{"x":"a:1"}}]}`))
	f.Add([]byte(`{"queueDatas":[{"brokerName":"b","perm":6,"readQueueNums":-1,"writeQueueNums":1024}],"brokerDatas":null}`))
	f.Add([]byte(`{{1:`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decodeRoute("T", body)
		if err != nil {
			return
		}
		if w, rq := r.WriteQueues(), r.ReadQueues(); len(w) > maxQueueNums*len(r.Queues) || len(rq) > maxQueueNums*len(r.Queues) {
			t.Fatalf("%d write and %d read queues from %d queue datas", len(w), len(rq), len(r.Queues))
		}
	})
}

// FuzzDecodeMessages feeds pull bodies (from the network) to
// decodeMessages: it must not panic, and every message it returns must
// come from the body's bytes.
func FuzzDecodeMessages(f *testing.F) {
	host := netip.MustParseAddrPort("127.0.0.1:10911")
	var zb bytes.Buffer
	zw := zlib.NewWriter(&zb)
	_, _ = zw.Write(bytes.Repeat([]byte("z"), 300))
	_ = zw.Close()
	var body []byte
	for _, m := range []remoting.MessageExt{
		{Topic: "T", QueueID: 1, QueueOffset: 5, PhysicalOffset: 100, Body: []byte("plain"), StoreHost: host, BornHost: host,
			Properties: remoting.EncodeProperties(map[string]string{"TAGS": "a", "KEYS": "k1 k2", "UNIQ_KEY": "U1"})},
		{Topic: "T", QueueID: 1, QueueOffset: 6, PhysicalOffset: 200, Body: zb.Bytes(), SysFlag: remoting.SysFlagCompressed, StoreHost: host, BornHost: host},
	} {
		b := make([]byte, m.Size())
		m.Encode(b)
		f.Add(b)
		body = append(body, b...)
	}
	f.Add(body)
	f.Add(body[:len(body)-3])
	f.Add([]byte{0, 0, 0, 4})
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := decodeMessages(body, "b1")
		if err == nil && len(msgs) > len(body)/remoting.MinRecordSize {
			t.Fatalf("%d messages from %d bytes", len(msgs), len(body))
		}
	})
}
