package namesrv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/admin"
	rmqerrors "github.com/apache/rocketmq-client-go/v2/errors"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/strata-mq/strata/remoting"
)

// fakeBroker is the least a broker must do for a producer: answer
// SEND_MESSAGE with SUCCESS and a send header, and everything else
// (HEART_BEAT, DELETE_TOPIC_IN_BROKER) with SUCCESS.
type fakeBroker struct {
	addr string
	srv  *remoting.Server

	mu    sync.Mutex
	sends []string // "topic/queueId" of each SEND_MESSAGE
	codes []int16
}

func startFakeBroker(t *testing.T) *fakeBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{addr: ln.Addr().String()}
	var offset int64
	b.srv = remoting.NewServer(remoting.ServerOptions{Conn: remoting.ConnOptions{
		Handler: remoting.HandlerFunc(func(c *remoting.Conn, req *remoting.Command) {
			resp := remoting.NewResponse(req, remoting.RespSuccess, "")
			b.mu.Lock()
			b.codes = append(b.codes, req.Code)
			if req.Code == remoting.ReqSendMessage {
				b.sends = append(b.sends, req.Ext("topic")+"/"+req.Ext("queueId"))
				resp.SetExt("msgId", fmt.Sprintf("7F00000100002A9F%016X", offset))
				resp.SetExt("queueId", req.Ext("queueId"))
				resp.SetExt("queueOffset", strconv.FormatInt(offset, 10))
				offset++
			}
			b.mu.Unlock()
			_ = c.Reply(resp)
		}),
	}})
	served := make(chan error, 1)
	go func() { served <- b.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := b.srv.Shutdown(ctx); err != nil {
			t.Errorf("fake broker Shutdown: %v", err)
		}
		<-served
	})
	return b
}

func (b *fakeBroker) sent() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.sends)
}

func (b *fakeBroker) got(code int16) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Contains(b.codes, code)
}

// TestRealClientUsesRoutes checks the routes against the unmodified
// rocketmq-client-go: its admin API lists the publishable queues and the
// topic list, its producer sends through the brokers the route names, and
// its DeleteTopic reaches the name server.
func TestRealClientUsesRoutes(t *testing.T) {
	rlog.SetLogLevel("error")
	const topic = "StrataInteropTopic"
	ns, nsAddr := startNamesrv(t, Config{})
	a, aFollower, b, c := startFakeBroker(t), startFakeBroker(t), startFakeBroker(t), startFakeBroker(t)

	regConn := dial(t, nsAddr)
	// broker-a reports tier bounds: routes carry the "tierBounds" field,
	// which the client must ignore.
	register(t, regConn, withBounds(registration("c1", "broker-a", a.addr, 0, map[string]TopicConfig{topic: tc(4, 4, 6), "OtherTopic": tc(1, 1, 6)}),
		TierBounds{topic: {0: 100, 3: 7}}))
	register(t, regConn, registration("c1", "broker-a", aFollower.addr, 1, map[string]TopicConfig{topic: tc(4, 4, 6)}))
	register(t, regConn, registration("c1", "broker-b", b.addr, 0, map[string]TopicConfig{topic: tc(2, 2, 6)}))
	// Read-only on broker-c: producers must leave it alone.
	register(t, regConn, registration("c2", "broker-c", c.addr, 0, map[string]TopicConfig{topic: tc(4, 4, 4)}))
	resolver := primitive.NewPassthroughResolver([]string{nsAddr})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	adm, err := admin.NewAdmin(admin.WithResolver(resolver))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	mqs, err := adm.FetchPublishMessageQueues(ctx, topic)
	if err != nil {
		t.Fatalf("FetchPublishMessageQueues: %v", err)
	}
	var queues []string
	for _, mq := range mqs {
		queues = append(queues, fmt.Sprintf("%s/%d", mq.BrokerName, mq.QueueId))
	}
	equal(t, "publish queues", queues, []string{"broker-a/0", "broker-a/1", "broker-a/2", "broker-a/3", "broker-b/0", "broker-b/1"})
	if r, _ := ns.Routes(topic); string(r.Extra[TierBoundsKey]) != `{"broker-a":{"0":100,"3":7}}` {
		t.Fatalf("the route the client read has no tier bounds: %s", r.Extra)
	}

	list, err := adm.FetchAllTopicList(ctx)
	if err != nil {
		t.Fatalf("FetchAllTopicList: %v", err)
	}
	equal(t, "topic list", list.TopicList, []string{"OtherTopic", topic})

	if _, err := adm.FetchPublishMessageQueues(ctx, "NoSuchTopic"); !errors.Is(err, rmqerrors.ErrTopicNotExist) {
		t.Fatalf("FetchPublishMessageQueues(NoSuchTopic) = %v, want ErrTopicNotExist", err)
	}

	p, err := producer.NewDefaultProducer(
		producer.WithNsResolver(resolver),
		producer.WithGroupName("strata_namesrv_test"),
		producer.WithInstanceName(fmt.Sprintf("namesrv-test-%d", time.Now().UnixNano())),
		producer.WithRetry(0),
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	used := map[string]bool{}
	for i := range 12 {
		res, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte("m"+strconv.Itoa(i))))
		if err != nil {
			t.Fatalf("SendSync %d: %v", i, err)
		}
		if res.Status != primitive.SendOK || res.OffsetMsgID == "" {
			t.Fatalf("SendSync %d: %+v", i, res)
		}
		used[fmt.Sprintf("%s/%d", res.MessageQueue.BrokerName, res.MessageQueue.QueueId)] = true
	}
	if len(used) != 6 {
		t.Fatalf("sends used queues %v, want all six writable queues", used)
	}
	if n := len(a.sent()); n != 8 {
		t.Fatalf("broker-a got %d sends (%v), want 8", n, a.sent())
	}
	if n := len(b.sent()); n != 4 {
		t.Fatalf("broker-b got %d sends (%v), want 4", n, b.sent())
	}
	if s := append(aFollower.sent(), c.sent()...); len(s) != 0 {
		t.Fatalf("the follower or the read-only broker got sends: %v", s)
	}

	// DeleteTopic: the broker first, then the name server, from loopback.
	err = adm.DeleteTopic(ctx, admin.WithTopicDelete("OtherTopic"), admin.WithBrokerAddrDelete(a.addr), admin.WithNameSrvAddr([]string{nsAddr}))
	if err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	if !a.got(remoting.ReqDeleteTopicInBroker) {
		t.Fatal("the broker got no DELETE_TOPIC_IN_BROKER")
	}
	if _, ok := ns.Routes("OtherTopic"); ok {
		t.Fatal("OtherTopic still routed after DeleteTopic")
	}
	if _, ok := ns.Routes(topic); !ok {
		t.Fatal("DeleteTopic removed another topic")
	}
}
