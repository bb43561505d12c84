package broker

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// goClientHeartbeat is a body produced by rocketmq-client-go/v2's own
// heartbeatData.encode (v2.1.3-0.20251226070945-2173d070fd1b): a producer
// group and a push consumer subscribed to "a||b" and to its retry topic.
const goClientHeartbeat = `{"clientID":"10.0.0.5@12345","producerDataSet":[{"groupName":"pg"}],"consumerDataSet":[{"groupName":"cg","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{"classFilterMode":false,"topic":"t","subString":"a||b","tagsSet":["a","b"],"codeSet":["97","98"],"subVersion":1700000000000000000,"expressionType":"TAG"},{"classFilterMode":false,"topic":"%RETRY%cg","subString":"*","tagsSet":[],"codeSet":[],"subVersion":1700000000000000001,"expressionType":"TAG"}],"unitMode":false}]}`

// javaClientHeartbeat is shaped like a Java 4.x client's (fastjson):
// numeric codeSet, extra fields.
const javaClientHeartbeat = `{"clientID":"10.0.0.6@DEFAULT","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","consumeType":"CONSUME_ACTIVELY","groupName":"jg","messageModel":"BROADCASTING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[-1234567,98],"expressionType":"TAG","subString":"x||b","subVersion":1700000000000,"tagsSet":["x","b"],"topic":"t"}],"unitMode":false}],"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"}],"heartbeatFingerprint":123,"withoutSub":false}`

func TestParseHeartbeatGoClient(t *testing.T) {
	hb, err := ParseHeartbeat([]byte(goClientHeartbeat))
	if err != nil {
		t.Fatal(err)
	}
	if hb.ClientID != "10.0.0.5@12345" {
		t.Errorf("ClientID = %q", hb.ClientID)
	}
	if len(hb.ProducerDataSet) != 1 || hb.ProducerDataSet[0].GroupName != "pg" {
		t.Errorf("ProducerDataSet = %+v", hb.ProducerDataSet)
	}
	if len(hb.ConsumerDataSet) != 1 {
		t.Fatalf("ConsumerDataSet = %+v", hb.ConsumerDataSet)
	}
	cd := hb.ConsumerDataSet[0]
	if cd.GroupName != "cg" || cd.ConsumeType != "CONSUME_PASSIVELY" || cd.MessageModel != "CLUSTERING" ||
		cd.ConsumeFromWhere != "CONSUME_FROM_LAST_OFFSET" || cd.UnitMode || len(cd.SubscriptionDataSet) != 2 {
		t.Fatalf("ConsumerData = %+v", cd)
	}
	s := cd.SubscriptionDataSet[0]
	want := SubscriptionData{Topic: "t", SubString: "a||b", TagsSet: []string{"a", "b"}, CodeSet: []int32{97, 98},
		SubVersion: 1700000000000000000, ExpressionType: "TAG"}
	if s.Topic != want.Topic || s.SubString != want.SubString || !slices.Equal(s.TagsSet, want.TagsSet) ||
		!slices.Equal(s.CodeSet, want.CodeSet) || s.SubVersion != want.SubVersion || s.ExpressionType != want.ExpressionType {
		t.Errorf("SubscriptionData = %+v, want %+v", s, want)
	}
	r := cd.SubscriptionDataSet[1]
	if r.Topic != "%RETRY%cg" || r.SubString != "*" || len(r.TagsSet) != 0 || len(r.CodeSet) != 0 {
		t.Errorf("retry SubscriptionData = %+v", r)
	}
}

func TestParseHeartbeatJavaClient(t *testing.T) {
	hb, err := ParseHeartbeat([]byte(javaClientHeartbeat))
	if err != nil {
		t.Fatal(err)
	}
	s := hb.ConsumerDataSet[0].SubscriptionDataSet[0]
	if !slices.Equal(s.CodeSet, []int32{-1234567, 98}) || s.SubVersion != 1700000000000 {
		t.Errorf("SubscriptionData = %+v", s)
	}
}

func TestParseHeartbeatErrors(t *testing.T) {
	tests := []struct{ desc, body string }{
		{"empty", ``},
		{"null", `null`},
		{"not json", `hello`},
		{"truncated", goClientHeartbeat[:100]},
		{"array", `[]`},
		{"no client id", `{"producerDataSet":[{"groupName":"pg"}]}`},
		{"empty producer group", `{"clientID":"c","producerDataSet":[{"groupName":""}]}`},
		{"empty consumer group", `{"clientID":"c","consumerDataSet":[{"groupName":""}]}`},
		{"empty topic", `{"clientID":"c","consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":""}]}]}`},
		{"code not a number", `{"clientID":"c","consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"t","codeSet":["x"]}]}]}`},
		{"code out of range", `{"clientID":"c","consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"t","codeSet":["2147483648"]}]}]}`},
		{"code float", `{"clientID":"c","consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"t","codeSet":[1.5]}]}]}`},
		{"code set object", `{"clientID":"c","consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"t","codeSet":{}}]}]}`},
		{"subVersion string", `{"clientID":"c","consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"t","subVersion":"1"}]}]}`},
		{"consumers object", `{"clientID":"c","consumerDataSet":{}}`},
		{"bad quote in tag", `{"clientID":"c","consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"t","tagsSet":["a"b"]}]}]}`},
	}
	for _, tt := range tests {
		_, err := ParseHeartbeat([]byte(tt.body))
		if !errors.Is(err, ErrBadHeartbeat) {
			t.Errorf("%s: ParseHeartbeat = %v, want ErrBadHeartbeat", tt.desc, err)
		}
	}
	// Null sets and missing fields are fine.
	hb, err := ParseHeartbeat([]byte(`{"clientID":"c","producerDataSet":null,"consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"t","tagsSet":null,"codeSet":null}]}]}`))
	if err != nil || hb.ConsumerDataSet[0].SubscriptionDataSet[0].CodeSet != nil {
		t.Errorf("null sets: %+v, %v", hb, err)
	}
}

func FuzzParseHeartbeat(f *testing.F) {
	f.Add([]byte(goClientHeartbeat))
	f.Add([]byte(javaClientHeartbeat))
	f.Add([]byte(`{"clientID":"c","consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"t","codeSet":["1",2]}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		hb, err := ParseHeartbeat(body)
		if err != nil {
			return
		}
		if hb.ClientID == "" {
			t.Fatal("accepted an empty client id")
		}
		r := NewClientRegistry()
		r.Heartbeat(1, hb, time.Unix(0, 0))
		for _, cd := range hb.ConsumerDataSet {
			r.ConsumerIDs(cd.GroupName)
			for _, s := range cd.SubscriptionDataSet {
				r.SubscriptionFilter(cd.GroupName, s.Topic)
			}
		}
		r.Groups()
		r.Unregister(1)
	})
}

func testTagHash(tag string) int64 { return remoting.TagHash([]byte(tag)) }

func TestParseTagExpression(t *testing.T) {
	tests := []struct {
		expr     string
		all      bool
		tags     []string
		str      string
		wantsErr bool
	}{
		{expr: "", all: true, str: "*"},
		{expr: "*", all: true, str: "*"},
		{expr: "  *  ", all: true, str: "*"},
		{expr: "a", tags: []string{"a"}, str: "a"},
		{expr: "a||b", tags: []string{"a", "b"}, str: "a||b"},
		{expr: "a || b", tags: []string{"a", "b"}, str: "a || b"},
		{expr: " a ||b\t", tags: []string{"a", "b"}, str: "a ||b"},
		{expr: "a||a||b", tags: []string{"a", "b"}},
		{expr: "a||", tags: []string{"a"}},
		{expr: "||b", tags: []string{"b"}},
		{expr: "a|b", tags: []string{"a|b"}},
		{expr: "||", wantsErr: true},
		{expr: " || || ", wantsErr: true},
	}
	for _, tt := range tests {
		f, err := ParseTagExpression(tt.expr)
		if tt.wantsErr {
			if !errors.Is(err, ErrBadExpression) {
				t.Errorf("ParseTagExpression(%q) = %v, want ErrBadExpression", tt.expr, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTagExpression(%q): %v", tt.expr, err)
			continue
		}
		if f.MatchesAll() != tt.all || !slices.Equal(f.Tags(), tt.tags) {
			t.Errorf("ParseTagExpression(%q) = all %v tags %q; want all %v tags %q", tt.expr, f.MatchesAll(), f.Tags(), tt.all, tt.tags)
		}
		if tt.str != "" && f.String() != tt.str {
			t.Errorf("ParseTagExpression(%q).String() = %q, want %q", tt.expr, f.String(), tt.str)
		}
	}
}

func TestTagFilterMatch(t *testing.T) {
	// A tag whose Java hash code is negative checks the int32 comparison of
	// a sign-extended consume-queue hash.
	neg := "negative-hash-tag"
	if testTagHash(neg) >= 0 {
		t.Fatalf("test tag %q hashes to %d; pick one with a negative hash", neg, testTagHash(neg))
	}
	all, _ := ParseTagExpression("*")
	ab, _ := ParseTagExpression("a || " + neg)
	var zero TagFilter
	tests := []struct {
		desc string
		f    TagFilter
		tag  string // "" = message without tags
		want bool
	}{
		{"all, tagged", all, "a", true},
		{"all, untagged", all, "", true},
		{"zero value, tagged", zero, "x", true},
		{"zero value, untagged", zero, "", true},
		{"set, first", ab, "a", true},
		{"set, negative hash", ab, neg, true},
		{"set, other", ab, "c", false},
		{"set, untagged", ab, "", false},
		{"set, case differs", ab, "A", false},
	}
	for _, tt := range tests {
		if got := tt.f.MatchTag(tt.tag); got != tt.want {
			t.Errorf("%s: MatchTag(%q) = %v", tt.desc, tt.tag, got)
		}
		h := int64(0) // the store's hash of an untagged message
		if tt.tag != "" {
			h = testTagHash(tt.tag)
		}
		if got := tt.f.MatchHash(h); got != tt.want {
			t.Errorf("%s: MatchHash(%d) = %v", tt.desc, h, got)
		}
	}
	// The store's filter signature.
	var filter func(int64) bool = ab.MatchHash
	if !filter(testTagHash("a")) {
		t.Error("method value does not match")
	}
}

func TestTagFilterNoAllocs(t *testing.T) {
	f, _ := ParseTagExpression("a||b||c")
	h := testTagHash("c")
	if n := testing.AllocsPerRun(100, func() { f.MatchHash(h); f.MatchTag("b") }); n != 0 {
		t.Fatalf("match allocates %v times", n)
	}
}

func TestParseFilter(t *testing.T) {
	for _, typ := range []string{"", "TAG", "tag"} {
		if f, err := ParseFilter(typ, "a"); err != nil || f.MatchesAll() {
			t.Errorf("ParseFilter(%q, a) = %v, %v", typ, f, err)
		}
	}
	if _, err := ParseFilter("SQL92", "a > 1"); !errors.Is(err, ErrBadExpression) {
		t.Errorf("SQL92: %v", err)
	}
	s := SubscriptionData{Topic: "t", SubString: "x||y", ExpressionType: "TAG"}
	if f, err := s.Filter(); err != nil || !f.MatchTag("y") || f.MatchTag("z") {
		t.Errorf("SubscriptionData.Filter = %v, %v", f, err)
	}
}

func FuzzParseTagExpression(f *testing.F) {
	for _, s := range []string{"", "*", "a||b", " a || b ", "||", "a|||b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		flt, err := ParseTagExpression(expr)
		if err != nil {
			return
		}
		for _, tag := range flt.Tags() {
			if !flt.MatchTag(tag) || !flt.MatchHash(testTagHash(tag)) {
				t.Fatalf("%q: own tag %q does not match", expr, tag)
			}
		}
		if !flt.MatchesAll() && flt.MatchTag("") {
			t.Fatalf("%q: untagged message matches", expr)
		}
	})
}

// conn is a stand-in for *remoting.Conn: any comparable handle works.
type fakeConn struct{ name string }

func testHB(id string, producers []string, consumers ...ConsumerData) HeartbeatData {
	hb := HeartbeatData{ClientID: id, ConsumerDataSet: consumers}
	for _, p := range producers {
		hb.ProducerDataSet = append(hb.ProducerDataSet, ProducerData{GroupName: p})
	}
	return hb
}

func testConsumer(group string, subs ...SubscriptionData) ConsumerData {
	return ConsumerData{GroupName: group, ConsumeType: "CONSUME_PASSIVELY", MessageModel: "CLUSTERING",
		ConsumeFromWhere: "CONSUME_FROM_LAST_OFFSET", SubscriptionDataSet: subs}
}

func testSub(topic, expr string, version int64) SubscriptionData {
	return SubscriptionData{Topic: topic, SubString: expr, SubVersion: version, ExpressionType: "TAG"}
}

func TestClientRegistryMembership(t *testing.T) {
	r := NewClientRegistry()
	t0 := time.Unix(1_700_000_000, 0)
	c1, c2, c1b := &fakeConn{"c1"}, &fakeConn{"c2"}, &fakeConn{"c1 reconnected"}

	steps := []struct {
		desc    string
		do      func() []string
		changed []string
		ids     map[string][]string // group → ConsumerIDs after the step
	}{
		{"first client joins g1 and g2",
			func() []string {
				return r.Heartbeat(c1, testHB("id1", nil, testConsumer("g1"), testConsumer("g2")), t0)
			},
			[]string{"g1", "g2"}, map[string][]string{"g1": {"id1"}, "g2": {"id1"}}},
		{"refresh changes nothing",
			func() []string {
				return r.Heartbeat(c1, testHB("id1", nil, testConsumer("g1"), testConsumer("g2")), t0.Add(30*time.Second))
			},
			nil, map[string][]string{"g1": {"id1"}}},
		{"second client joins g1",
			func() []string {
				return r.Heartbeat(c2, testHB("id2", []string{"pg"}, testConsumer("g1")), t0.Add(time.Second))
			},
			[]string{"g1"}, map[string][]string{"g1": {"id1", "id2"}, "g2": {"id1"}}},
		{"same id on a new connection is no change",
			func() []string {
				return r.Heartbeat(c1b, testHB("id1", nil, testConsumer("g1"), testConsumer("g2")), t0.Add(40*time.Second))
			},
			nil, map[string][]string{"g1": {"id1", "id2"}}},
		{"old connection closes: id still there",
			func() []string { return r.Unregister(c1) },
			nil, map[string][]string{"g1": {"id1", "id2"}, "g2": {"id1"}}},
		{"client leaves g2 by omitting it",
			func() []string {
				return r.Heartbeat(c1b, testHB("id1", nil, testConsumer("g1")), t0.Add(50*time.Second))
			},
			[]string{"g2"}, map[string][]string{"g1": {"id1", "id2"}, "g2": nil}},
		{"unknown connection",
			func() []string { return r.Unregister(&fakeConn{"never seen"}) },
			nil, nil},
		{"second client closes",
			func() []string { return r.Unregister(c2) },
			[]string{"g1"}, map[string][]string{"g1": {"id1"}}},
	}
	for _, s := range steps {
		if got := s.do(); !slices.Equal(got, s.changed) {
			t.Fatalf("%s: changed = %v, want %v", s.desc, got, s.changed)
		}
		for g, want := range s.ids {
			if got := r.ConsumerIDs(g); !slices.Equal(got, want) {
				t.Fatalf("%s: ConsumerIDs(%s) = %v, want %v", s.desc, g, got, want)
			}
		}
	}
	if _, ok := r.ProducerConn("pg"); ok {
		t.Error("producer group outlived its client")
	}
}

func TestClientRegistryIDChangeOnConn(t *testing.T) {
	r := NewClientRegistry()
	c := &fakeConn{"c"}
	now := time.Unix(0, 0)
	r.Heartbeat(c, testHB("old", nil, testConsumer("g")), now)
	if got := r.Heartbeat(c, testHB("new", nil, testConsumer("g")), now); !slices.Equal(got, []string{"g"}) {
		t.Fatalf("changed = %v", got)
	}
	if got := r.ConsumerIDs("g"); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("ConsumerIDs = %v", got)
	}
	if id, ok := r.ClientID(c); !ok || id != "new" {
		t.Fatalf("ClientID = %q, %v", id, ok)
	}
}

func TestClientRegistryExpire(t *testing.T) {
	r := NewClientRegistry()
	t0 := time.Unix(1_700_000_000, 0)
	a, b := &fakeConn{"a"}, &fakeConn{"b"}
	r.Heartbeat(a, testHB("a", []string{"pg"}, testConsumer("g")), t0)
	r.Heartbeat(b, testHB("b", nil, testConsumer("g")), t0.Add(10*time.Second))

	if got := r.Expire(t0.Add(DefaultClientExpiry), DefaultClientExpiry); got != nil {
		t.Fatalf("expired at exactly the timeout: %v", got)
	}
	if got := r.Expire(t0.Add(DefaultClientExpiry+time.Millisecond), DefaultClientExpiry); !slices.Equal(got, []string{"g"}) {
		t.Fatalf("Expire = %v", got)
	}
	if got := r.ConsumerIDs("g"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("ConsumerIDs = %v", got)
	}
	if _, ok := r.ProducerConn("pg"); ok {
		t.Fatal("expired producer still registered")
	}
	if _, ok := r.ClientID(a); ok {
		t.Fatal("expired client still registered")
	}
	if got := r.Expire(t0.Add(time.Hour), DefaultClientExpiry); !slices.Equal(got, []string{"g"}) {
		t.Fatalf("Expire of the last member = %v", got)
	}
	if got := r.Groups(); len(got) != 0 {
		t.Fatalf("Groups after all expired = %+v", got)
	}
}

func TestClientRegistryConnsAndProducers(t *testing.T) {
	r := NewClientRegistry()
	t0 := time.Unix(0, 0)
	a, b, c := &fakeConn{"a"}, &fakeConn{"b"}, &fakeConn{"c"}
	r.Heartbeat(b, testHB("id-b", []string{"pg"}, testConsumer("g")), t0)
	r.Heartbeat(a, testHB("id-a", []string{"pg"}, testConsumer("g")), t0.Add(time.Second))
	r.Heartbeat(c, testHB("id-c", nil), t0)
	got := r.Conns("g")
	if len(got) != 2 || got[0] != any(a) || got[1] != any(b) {
		t.Fatalf("Conns = %v", got)
	}
	if r.Conns("none") != nil || r.ConsumerIDs("none") != nil {
		t.Fatal("unknown group has members")
	}
	if p, ok := r.ProducerConn("pg"); !ok || p != any(a) {
		t.Fatalf("ProducerConn = %v, %v; want the most recent (a)", p, ok)
	}
	r.Heartbeat(b, testHB("id-b", []string{"pg"}, testConsumer("g")), t0.Add(2*time.Second))
	if p, _ := r.ProducerConn("pg"); p != any(b) {
		t.Fatalf("ProducerConn = %v; want b after its heartbeat", p)
	}
	if _, ok := r.ProducerConn("nope"); ok {
		t.Fatal("unknown producer group")
	}
}

func TestClientRegistrySubscriptions(t *testing.T) {
	r := NewClientRegistry()
	t0 := time.Unix(0, 0)
	a, b := &fakeConn{"a"}, &fakeConn{"b"}
	r.Heartbeat(a, testHB("a", nil, testConsumer("g", testSub("t", "x||y", 1), testSub("%RETRY%g", "*", 1))), t0)
	r.Heartbeat(b, testHB("b", nil, testConsumer("g", testSub("t", "z", 2))), t0)

	s, ok := r.Subscription("g", "t")
	if !ok || s.SubString != "z" || s.SubVersion != 2 {
		t.Fatalf("Subscription = %+v, %v; want the newest (z)", s, ok)
	}
	f, err := r.SubscriptionFilter("g", "t")
	if err != nil || !f.MatchTag("z") || f.MatchTag("x") {
		t.Fatalf("SubscriptionFilter = %v, %v", f, err)
	}
	f, err = r.SubscriptionFilter("g", "%RETRY%g")
	if err != nil || !f.MatchesAll() {
		t.Fatalf("retry filter = %v, %v", f, err)
	}
	if _, err := r.SubscriptionFilter("g", "other"); !errors.Is(err, ErrNoSubscription) {
		t.Fatalf("unknown topic: %v", err)
	}
	if _, err := r.SubscriptionFilter("nope", "t"); !errors.Is(err, ErrNoSubscription) {
		t.Fatalf("unknown group: %v", err)
	}
	if _, ok := r.Subscription("g", "other"); ok {
		t.Fatal("unknown topic subscription")
	}

	// Returned slices are copies.
	r.Heartbeat(a, testHB("a", nil, testConsumer("g", SubscriptionData{Topic: "u", SubString: "q", TagsSet: []string{"q"}, CodeSet: []int32{113}})), t0)
	s, _ = r.Subscription("g", "u")
	s.TagsSet[0] = "mutated"
	if s2, _ := r.Subscription("g", "u"); s2.TagsSet[0] != "q" {
		t.Fatal("Subscription shares its slices")
	}

	// The newest member leaves: the older subscription is used again.
	r.Heartbeat(a, testHB("a", nil, testConsumer("g", testSub("t", "x||y", 1))), t0)
	r.Unregister(b)
	if s, _ := r.Subscription("g", "t"); s.SubString != "x||y" {
		t.Fatalf("after the newest left: %+v", s)
	}

	// A bad expression is kept and reported.
	r.Heartbeat(a, testHB("a", nil, testConsumer("g", SubscriptionData{Topic: "t", SubString: "a>1", ExpressionType: "SQL92", SubVersion: 5})), t0)
	if _, err := r.SubscriptionFilter("g", "t"); !errors.Is(err, ErrBadExpression) {
		t.Fatalf("SQL92 subscription: %v", err)
	}
}

func TestClientRegistryGroups(t *testing.T) {
	r := NewClientRegistry()
	t0 := time.Unix(0, 0)
	hb, err := ParseHeartbeat([]byte(goClientHeartbeat))
	if err != nil {
		t.Fatal(err)
	}
	r.Heartbeat(&fakeConn{"go"}, hb, t0)
	hb, err = ParseHeartbeat([]byte(javaClientHeartbeat))
	if err != nil {
		t.Fatal(err)
	}
	r.Heartbeat(&fakeConn{"java"}, hb, t0)
	got := r.Groups()
	var names []string
	for _, g := range got {
		names = append(names, g.Name+":"+strconv.FormatBool(g.Consumer))
	}
	want := []string{"cg:true", "jg:true", "CLIENT_INNER_PRODUCER:false", "pg:false"}
	if !slices.Equal(names, want) {
		t.Fatalf("Groups = %v, want %v", names, want)
	}
	cg := got[0]
	if !slices.Equal(cg.ClientIDs, []string{"10.0.0.5@12345"}) || cg.MessageModel != "CLUSTERING" ||
		cg.ConsumeType != "CONSUME_PASSIVELY" || cg.ConsumeFromWhere != "CONSUME_FROM_LAST_OFFSET" ||
		len(cg.Subscriptions) != 2 || cg.Subscriptions[0].Topic != "%RETRY%cg" || cg.Subscriptions[1].Topic != "t" {
		t.Fatalf("cg = %+v", cg)
	}
	if got[1].MessageModel != "BROADCASTING" {
		t.Fatalf("jg = %+v", got[1])
	}
}

func TestClientRegistryConcurrent(t *testing.T) {
	r := NewClientRegistry()
	t0 := time.Unix(0, 0)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			c := &fakeConn{strconv.Itoa(i)}
			id := "id" + strconv.Itoa(i)
			for j := range 100 {
				now := t0.Add(time.Duration(j) * time.Second)
				r.Heartbeat(c, testHB(id, []string{"pg"}, testConsumer("g", testSub("t", "a||b", int64(j)))), now)
				r.ConsumerIDs("g")
				r.Conns("g")
				r.SubscriptionFilter("g", "t")
				r.Subscription("g", "t")
				r.ProducerConn("pg")
				r.Groups()
				r.Expire(now, time.Hour)
				if j%10 == 0 {
					r.Unregister(c)
				}
			}
		})
	}
	wg.Wait()
	if got := r.ConsumerIDs("g"); len(got) != 8 {
		t.Fatalf("ConsumerIDs = %v", got)
	}
}

func BenchmarkSubscriptionFilter(b *testing.B) {
	r := NewClientRegistry()
	for i := range 10 {
		r.Heartbeat(i, testHB("id"+strconv.Itoa(i), nil, testConsumer("g", testSub("t", "a||b", 1))), time.Unix(0, 0))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.SubscriptionFilter("g", "t"); err != nil {
			b.Fatal(err)
		}
	}
}
