package client

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// fakeServer answers requests with a function of the request.
type fakeServer struct {
	addr string
	srv  *remoting.Server

	mu   sync.Mutex
	reqs []*remoting.Command
}

func startFake(t *testing.T, answer func(req *remoting.Command) *remoting.Command) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{addr: ln.Addr().String()}
	f.srv = remoting.NewServer(remoting.ServerOptions{Conn: remoting.ConnOptions{
		Handler: remoting.HandlerFunc(func(c *remoting.Conn, req *remoting.Command) {
			f.mu.Lock()
			f.reqs = append(f.reqs, req)
			f.mu.Unlock()
			if resp := answer(req); resp != nil {
				_ = c.Reply(resp)
			}
		}),
	}})
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := f.srv.Shutdown(ctx); err != nil {
			t.Errorf("fake Shutdown: %v", err)
		}
		<-served
	})
	return f
}

func (f *fakeServer) requests() []*remoting.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*remoting.Command(nil), f.reqs...)
}

// sendOK answers a send as a broker does.
func sendOK(req *remoting.Command) *remoting.Command {
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.ExtFields = map[string]string{"msgId": "7F00000100002A9F0000000000000000", "queueId": req.Ext("e"), "queueOffset": "7"}
	if req.Code == remoting.ReqSendBatchMessage {
		resp.ExtFields["msgId"] = "7F00000100002A9F0000000000000000,7F00000100002A9F0000000000000100"
	}
	return resp
}

// fakeNamesrv serves one route in Java's form: brokerAddrs with bare
// integer keys.
func fakeNamesrv(t *testing.T, topic string, brokers map[string]string) *fakeServer {
	var qd, bd []string
	for _, name := range []string{"b1", "b2", "b3"} {
		addr, ok := brokers[name]
		if !ok {
			continue
		}
		qd = append(qd, fmt.Sprintf(`{"brokerName":%q,"perm":6,"readQueueNums":1,"topicSynFlag":0,"writeQueueNums":1}`, name))
		bd = append(bd, fmt.Sprintf(`{"brokerAddrs":{0:%q},"brokerName":%q,"cluster":"c"}`, addr, name))
	}
	body := fmt.Sprintf(`{"orderTopicConf":"","queueDatas":[%s],"brokerDatas":[%s]}`, join(qd), join(bd))
	return startFake(t, func(req *remoting.Command) *remoting.Command {
		if req.Code != remoting.ReqGetRouteInfoByTopic || req.Ext("topic") != topic {
			return remoting.NewResponse(req, remoting.RespTopicNotExist, "no route")
		}
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.Body = []byte(body)
		return resp
	})
}

func join(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(x)
	}
	return b.String()
}

func TestSendRetriesOnAnotherBroker(t *testing.T) {
	checkGoroutines(t)
	for _, tc := range []struct {
		name      string
		code      int16 // the failing broker's answer; -1: unreachable
		retryable bool
		fault     bool // the broker is avoided for a while after it
	}{
		{"SYSTEM_ERROR", remoting.RespSystemError, true, true},
		{"SERVICE_NOT_AVAILABLE", remoting.RespServiceNotAvailable, true, true},
		{"NO_PERMISSION", remoting.RespNoPermission, true, false},
		{"TOPIC_NOT_EXIST", remoting.RespTopicNotExist, true, false},
		{"unreachable", -1, true, true},
		{"MESSAGE_ILLEGAL", remoting.RespMessageIllegal, false, false},
		{"SYSTEM_BUSY", remoting.RespSystemBusy, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := startFake(t, sendOK)
			badAddr := freePort(t)
			var bad *fakeServer
			if tc.code >= 0 {
				bad = startFake(t, func(req *remoting.Command) *remoting.Command {
					return remoting.NewResponse(req, tc.code, "injected")
				})
				badAddr = bad.addr
			}
			ns := fakeNamesrv(t, "T", map[string]string{"b1": badAddr, "b2": good.addr})
			c, err := New(NameServers(ns.addr), DialTimeout(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			p, _ := NewProducer(WithClient(c))
			ctx := testCtx(t)
			fails := 0
			for i := range 4 {
				res, err := p.Send(ctx, Message{Topic: "T", Body: []byte("x")})
				if err != nil {
					fails++
					var re *ResponseError
					if tc.retryable || !errors.As(err, &re) || re.Code != tc.code {
						t.Errorf("send %d: %v", i, err)
					}
					continue
				}
				if res[0].BrokerName != "b2" || res[0].QueueOffset != 7 {
					t.Errorf("send %d: %+v", i, res[0])
				}
			}
			// Round-robin starts on each broker twice in four sends; after
			// a broker fault, the failing broker is avoided.
			starts := 2
			if tc.fault {
				starts = 1
			}
			if want := map[bool]int{true: 0, false: starts}[tc.retryable]; fails != want {
				t.Errorf("%d sends failed, want %d", fails, want)
			}
			if bad != nil && len(bad.requests()) != starts {
				t.Errorf("the failing broker got %d requests, want %d", len(bad.requests()), starts)
			}
			if !tc.retryable {
				return
			}
			// With no retry, the failure surfaces (on a Client that has not
			// seen the broker fail yet).
			c0, err := New(NameServers(ns.addr), DialTimeout(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer c0.Close()
			p0, _ := NewProducer(WithClient(c0), SendRetries(0))
			var last error
			for range 2 {
				if _, err := p0.Send(ctx, Message{Topic: "T", Body: []byte("x")}); err != nil {
					last = err
				}
			}
			if last == nil {
				t.Error("no send failed without retries")
			} else if (tc.code < 0) != errors.Is(last, ErrBrokerUnreachable) || (tc.code == remoting.RespTopicNotExist) != errors.Is(last, ErrTopicNotFound) {
				t.Errorf("error without retries: %v", last)
			}
		})
	}
}

func TestSendWireFormat(t *testing.T) {
	checkGoroutines(t)
	b := startFake(t, sendOK)
	ns := fakeNamesrv(t, "T", map[string]string{"b1": b.addr})
	c, err := New(NameServers(ns.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, _ := NewProducer(WithClient(c), ProducerGroup("pg"))
	ctx := testCtx(t)
	res, err := p.Send(ctx, Message{Topic: "T", Body: []byte("hello"), Tag: "tg", Keys: []string{"k1", "k2"}, Properties: map[string]string{"p": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	req := b.requests()[0]
	if req.Code != remoting.ReqSendMessageV2 || string(req.Body) != "hello" {
		t.Fatalf("request %v body %q", req, req.Body)
	}
	want := map[string]string{"a": "pg", "b": "T", "c": "TBW102", "d": "4", "e": "0", "f": "0", "h": "0", "j": "0", "k": "false", "l": "0", "m": "false", "n": "b1"}
	for k, v := range want {
		if req.Ext(k) != v {
			t.Errorf("header %s = %q, want %q", k, req.Ext(k), v)
		}
	}
	if g, err := req.ExtInt64("g"); err != nil || time.Since(time.UnixMilli(g)) > time.Minute {
		t.Errorf("bornTimestamp %q", req.Ext("g"))
	}
	props := remoting.ParseProperties([]byte(req.Ext("i")))
	if props["TAGS"] != "tg" || props["KEYS"] != "k1 k2" || props["p"] != "v" || props["UNIQ_KEY"] != res[0].MsgID {
		t.Errorf("properties %q (MsgID %s)", props, res[0].MsgID)
	}
	if !regexp.MustCompile(`^[0-9A-F]{20}[0-9a-f]{12}$`).MatchString(res[0].MsgID) {
		t.Errorf("MsgID %q is not in the client's format", res[0].MsgID)
	}

	res, err = p.Send(ctx, Message{Topic: "T", Body: []byte("one"), Tag: "x"}, Message{Topic: "T", Body: []byte("two")})
	if err != nil {
		t.Fatal(err)
	}
	req = b.requests()[1]
	if req.Code != remoting.ReqSendBatchMessage || req.Ext("m") != "true" || req.Ext("i") != "" {
		t.Fatalf("batch request %v", req)
	}
	if res[0].OffsetMsgID == res[1].OffsetMsgID || res[1].QueueOffset != 8 || res[0].MsgID == res[1].MsgID {
		t.Errorf("batch results %+v", res)
	}
	// Decode the batch body as the broker does (PROTOCOL.md §4.3).
	body := req.Body
	for i, want := range []string{"one", "two"} {
		total := int(binary.BigEndian.Uint32(body))
		bl := int(binary.BigEndian.Uint32(body[16:]))
		pl := int(binary.BigEndian.Uint16(body[20+bl:]))
		if total != 22+bl+pl || string(body[20:20+bl]) != want {
			t.Fatalf("record %d: total %d body %q", i, total, body[20:20+bl])
		}
		props := remoting.ParseProperties(body[22+bl : total])
		if props["UNIQ_KEY"] != res[i].MsgID || (i == 0) != (props["TAGS"] == "x") {
			t.Errorf("record %d properties %q", i, props)
		}
		body = body[total:]
	}
	if len(body) != 0 {
		t.Errorf("%d trailing bytes", len(body))
	}
}

func TestDecodeRoute(t *testing.T) {
	java := []byte(`{"orderTopicConf":"","queueDatas":[{"brokerName":"b2","perm":4,"readQueueNums":2,"topicSynFlag":0,"writeQueueNums":3},` +
		`{"brokerName":"b1","perm":6,"readQueueNums":2,"topicSynFlag":0,"writeQueueNums":2},{"brokerName":"b3","perm":6,"readQueueNums":1,"topicSynFlag":0,"writeQueueNums":1}],` +
		`"brokerDatas":[{"brokerAddrs":{0:"10.0.0.2:10911", 1:"10.0.0.3:10911"},"brokerName":"b2","cluster":"c"},{"brokerAddrs":{"0":"10.0.0.1:10911"},"brokerName":"b1","cluster":"c"},` +
		`{"brokerAddrs":{1:"10.0.0.9:10911"},"brokerName":"b3","cluster":"c"}],"strataTier":{"x":1}}`)
	r, err := decodeRoute("T", java)
	if err != nil {
		t.Fatal(err)
	}
	if r.Queues[0].BrokerName != "b1" || r.Brokers[1].Addrs[1] != "10.0.0.3:10911" || r.Brokers[1].LeaderAddr() != "10.0.0.2:10911" {
		t.Errorf("route %+v", r)
	}
	// b2 is read-only, b3 has no leader: only b1 takes writes.
	w := r.WriteQueues()
	if len(w) != 2 || w[0] != (MessageQueue{"T", "b1", 0}) || w[1] != (MessageQueue{"T", "b1", 1}) {
		t.Errorf("WriteQueues = %v", w)
	}
	if rq := r.ReadQueues(); len(rq) != 5 || rq[2] != (MessageQueue{"T", "b2", 0}) {
		t.Errorf("ReadQueues = %v", rq)
	}
	for _, bad := range []string{
		`not json`,
		`{"queueDatas":[{"brokerName":"b","readQueueNums":100000,"writeQueueNums":1}]}`,
		`{"queueDatas":[],"brokerDatas":[{"brokerName":"b","brokerAddrs":{"x":"a:1"}}]}`,
	} {
		if _, err := decodeRoute("T", []byte(bad)); err == nil {
			t.Errorf("decodeRoute(%s) succeeded", bad)
		}
	}
	// Strings that look like keys are left alone.
	in := []byte(`{"a":"{1:2}","b":[1,2],"c":{"0":"x"}}`)
	if out := remoting.QuoteBareKeys(in); !bytes.Equal(out, in) {
		t.Errorf("quoteBareKeys changed valid JSON: %s", out)
	}
}

func TestPickQueue(t *testing.T) {
	qs := []MessageQueue{{"T", "a", 0}, {"T", "a", 1}, {"T", "b", 0}}
	all := func(string) bool { return true }
	if q := pickQueue(qs, 4, "", all); q != qs[1] {
		t.Errorf("pickQueue(4) = %v", q)
	}
	if q := pickQueue(qs, 0, "a", all); q != qs[2] {
		t.Errorf("pickQueue avoiding a = %v", q)
	}
	if q := pickQueue(qs[:2], 1, "a", all); q != qs[1] {
		t.Errorf("pickQueue with only a = %v", q)
	}
	if q := pickQueue(qs, -1, "", all); q != qs[2] {
		t.Errorf("pickQueue(-1) = %v", q)
	}
	notA := func(b string) bool { return b != "a" }
	if q := pickQueue(qs, 0, "", notA); q != qs[2] {
		t.Errorf("pickQueue with a unavailable = %v", q)
	}
	if q := pickQueue(qs, 1, "b", notA); q != qs[1] {
		t.Errorf("pickQueue avoiding b with a unavailable = %v (an unavailable broker beats the one that just failed)", q)
	}
	none := func(string) bool { return false }
	if q := pickQueue(qs, 2, "", none); q != qs[2] {
		t.Errorf("pickQueue with nothing available = %v (round-robin)", q)
	}
}

func TestFaultTracker(t *testing.T) {
	f := newFaultTracker()
	now := time.Unix(1000, 0)
	f.now = func() time.Time { return now }
	gone := fmt.Errorf("send: %w", ErrBrokerUnreachable)
	f.report("a", time.Millisecond, gone)
	if f.available("a") || !f.available("b") {
		t.Fatal("a failed broker is available, or an unknown one is not")
	}
	now = now.Add(time.Second)
	if !f.available("a") {
		t.Fatal("still avoided a second after one failure")
	}
	f.report("a", time.Millisecond, gone) // a second failure in a row: 2 s
	now = now.Add(1500 * time.Millisecond)
	if f.available("a") {
		t.Fatal("a second failure in a row did not lengthen the wait")
	}
	now = now.Add(time.Second)
	f.report("a", 600*time.Millisecond, nil) // back, but slow
	if f.available("a") {
		t.Fatal("a slow answer did not make the broker avoided")
	}
	now = now.Add(5 * time.Second)
	f.report("a", time.Millisecond, nil)
	if !f.available("a") || len(f.m) != 0 {
		t.Fatalf("a fast answer did not clear the broker: %+v", f.m)
	}
	f.report("a", time.Millisecond, &ResponseError{Code: remoting.RespMessageIllegal})
	if !f.available("a") {
		t.Fatal("a bad message made its broker avoided")
	}
	for range 20 {
		f.report("a", time.Millisecond, &ResponseError{Code: remoting.RespSystemBusy})
	}
	if it := f.m["a"]; it.until.Sub(now) != maxFaultAvoid {
		t.Fatalf("after 20 failures avoided for %v, want %v", it.until.Sub(now), maxFaultAvoid)
	}
}

func TestDecodeMessages(t *testing.T) {
	var zb bytes.Buffer
	zw := zlib.NewWriter(&zb)
	zw.Write(bytes.Repeat([]byte("z"), 5000))
	zw.Close()
	host := netip.MustParseAddrPort("127.0.0.1:10911")
	recs := []remoting.MessageExt{
		{Topic: "T", QueueID: 1, QueueOffset: 5, PhysicalOffset: 100, Body: []byte("plain"), StoreHost: host, BornHost: host,
			Properties: remoting.EncodeProperties(map[string]string{"TAGS": "a", "KEYS": "k1 k2", "UNIQ_KEY": "U1"})},
		{Topic: "T", QueueID: 1, QueueOffset: 6, PhysicalOffset: 200, Body: zb.Bytes(), SysFlag: remoting.SysFlagCompressed, StoreHost: host, BornHost: host},
	}
	var body []byte
	for _, m := range recs {
		b := make([]byte, m.Size())
		m.Encode(b)
		body = append(body, b...)
	}
	msgs, err := decodeMessages(body, "b1")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || string(msgs[0].Body) != "plain" || msgs[0].MsgID != "U1" || msgs[0].Tag != "a" || len(msgs[0].Keys) != 2 {
		t.Fatalf("messages %+v", msgs)
	}
	if len(msgs[1].Body) != 5000 || msgs[1].MsgID != remoting.OffsetMsgID(host, 200) || msgs[1].BrokerName != "b1" {
		t.Errorf("compressed message: %d bytes, id %s", len(msgs[1].Body), msgs[1].MsgID)
	}
	if _, err := decodeMessages(body[:len(body)-1], "b1"); err == nil {
		t.Error("truncated body decoded")
	}
	if _, err := decodeMessages(append(body[:len(body):len(body)], 1, 2, 3), "b1"); err == nil {
		t.Error("trailing bytes decoded")
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, opts := range [][]Opt{
		{NameServers("")},
		{NameServers("nohost")},
		{DialTimeout(0)},
		{RequestTimeout(-1)},
		{RouteTTL(-time.Second)},
	} {
		if _, err := New(opts...); err == nil {
			t.Errorf("New(%v) succeeded", opts)
		}
	}
	c, err := New(NameServers("127.0.0.1:1; http://127.0.0.1:2;"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.NameServerAddrs(); len(got) != 2 || got[1] != "127.0.0.1:2" {
		t.Errorf("name servers %q", got)
	}
	for _, opts := range [][]ProducerOpt{{ProducerGroup("")}, {SendRetries(-1)}, {SendRetries(100)}, {SendTimeout(0)}, {MaxMessageSize(0)}, {MaxMessageSize(32 << 20)}} {
		if _, err := NewProducer(append([]ProducerOpt{WithClient(c)}, opts...)...); err == nil {
			t.Errorf("NewProducer(%v) succeeded", opts)
		}
	}
	for _, opts := range [][]ConsumerOpt{{Subscription("")}, {Subscription("||")}, {LongPoll(time.Hour)},
		{Subscribe("t", "||")}, {Subscribe("bad topic", "*")}, {Subscribe("t", "*"), Subscribe("t", "a")},
		{PullBatchSize(0)}, {PullBatchSize(2000)}, {HandlerBatchSize(0)}, {MaxReconsumeTimes(0)},
		{StartFrom(FromTime(time.Time{}))}, {NameServers("127.0.0.1:1")}} {
		if _, err := NewConsumer(append([]ConsumerOpt{WithClient(c), ConsumerGroup("g")}, opts...)...); err == nil {
			t.Errorf("NewConsumer(%v) succeeded", opts)
		}
	}
	for _, g := range []string{"", "bad group", string(make([]byte, 300))} {
		if _, err := NewConsumer(WithClient(c), ConsumerGroup(g)); err == nil {
			t.Errorf("NewConsumer(%q) succeeded", g)
		}
	}
}

func TestUniqIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		id := newUniqID()
		if len(id) != 32 || seen[id] {
			t.Fatalf("id %q (len %d, seen %v)", id, len(id), seen[id])
		}
		seen[id] = true
	}
}
