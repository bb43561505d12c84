package namesrv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
)

func mustEncodeExtra(t testing.TB, tb TierBounds) json.RawMessage {
	t.Helper()
	raw, err := RegistrationExtra{TierBounds: tb}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestRegistrationExtraEncode(t *testing.T) {
	raw := mustEncodeExtra(t, TierBounds{
		"T":     {10: 5, 2: 7, 0: 1200},
		"A%B|c": {3: 0},
		"Empty": {},
	})
	equal(t, "encoding", string(raw), `{"tierBounds":{"A%B|c":{"3":0},"T":{"0":1200,"2":7,"10":5}}}`)
	// Nothing to say: no Extra at all.
	for _, tb := range []TierBounds{nil, {}, {"T": nil}} {
		if raw := mustEncodeExtra(t, tb); raw != nil {
			t.Errorf("Encode(%v) = %s, want nil", tb, raw)
		}
	}
	for _, tb := range []TierBounds{{"a.b": {0: 1}}, {"T": {-1: 1}}, {"T": {0: -1}}, {"": {0: 1}}} {
		if _, err := (RegistrationExtra{TierBounds: tb}).Encode(); !errors.Is(err, ErrBadTierBounds) {
			t.Errorf("Encode(%v): %v, want ErrBadTierBounds", tb, err)
		}
	}
	got, err := DecodeRegistrationExtra(raw)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "round trip", got, RegistrationExtra{TierBounds: TierBounds{"T": {10: 5, 2: 7, 0: 1200}, "A%B|c": {3: 0}}})
}

func TestDecodeRegistrationExtra(t *testing.T) {
	good := map[string]RegistrationExtra{
		``:                        {},
		` null `:                  {},
		`{}`:                      {},
		`{"tierBounds":null}`:     {},
		`{"tierBounds":{}}`:       {},
		`{"tierBounds":{"T":{}}}`: {},
		`{"other":[1,2],"tierBounds":{"T":{"0":5}}}`:                                     {TierBounds: TierBounds{"T": {0: 5}}},
		` { "tierBounds" : { "T" : { "7" : 0 , "2147483647" : 9223372036854775807 } } }`: {TierBounds: TierBounds{"T": {7: 0, 2147483647: 9223372036854775807}}},
	}
	for in, want := range good {
		got, err := DecodeRegistrationExtra([]byte(in))
		if err != nil {
			t.Errorf("DecodeRegistrationExtra(%s): %v", in, err)
			continue
		}
		equal(t, in, got, want)
	}
	bad := []string{
		`[1]`, `"x"`, `{"tierBounds":[]}`, `{"tierBounds":{"T":[1]}}`, `{"tierBounds":{"T":{"0":-1}}}`,
		`{"tierBounds":{"T":{"-1":1}}}`, `{"tierBounds":{"T":{"01":1}}}`, `{"tierBounds":{"T":{"+1":1}}}`,
		`{"tierBounds":{"T":{"2147483648":1}}}`, `{"tierBounds":{"T":{"0":1.5}}}`, `{"tierBounds":{"T":{"0":1e3}}}`,
		`{"tierBounds":{"T":{"0":"1"}}}`, `{"tierBounds":{"T":{"x":1}}}`, `{"tierBounds":{"a.b":{"0":1}}}`,
		`{"tierBounds":{"":{"0":1}}}`, `{"tierBounds":{"T":{"0":9223372036854775808}}}`, `{"tierBounds":`,
	}
	for _, in := range bad {
		if x, err := DecodeRegistrationExtra([]byte(in)); !errors.Is(err, ErrBadTierBounds) {
			t.Errorf("DecodeRegistrationExtra(%s) = %+v, %v; want ErrBadTierBounds", in, x, err)
		}
	}
}

// FuzzDecodeRegistrationExtra: no input panics, and whatever decodes
// encodes and decodes again to the same bounds.
func FuzzDecodeRegistrationExtra(f *testing.F) {
	f.Add([]byte(`{"tierBounds":{"T":{"0":1200,"2":7,"10":5},"U":{"3":0}}}`))
	f.Add([]byte(`{"tierBounds":null,"readers":["127.0.0.1:10961"]}`))
	f.Add([]byte(`{"tierBounds":{"T":{"01":1}}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, in []byte) {
		x, err := DecodeRegistrationExtra(in)
		if err != nil {
			if !errors.Is(err, ErrBadTierBounds) {
				t.Fatalf("error %v does not wrap ErrBadTierBounds", err)
			}
			return
		}
		// The table, fast path or not, keeps the same bounds.
		var compact bytes.Buffer
		if json.Compact(&compact, bytes.TrimSpace(in)) == nil {
			topics := map[string]TopicConfig{}
			for topic := range x.TierBounds {
				topics[topic] = TopicConfig{}
			}
			lb, err := buildLeaderBounds(compact.Bytes(), topics)
			if err != nil {
				t.Fatalf("buildLeaderBounds refuses what DecodeRegistrationExtra accepts: %v", err)
			}
			kept := map[string]string{}
			queues := 0
			if lb != nil {
				for topic, qb := range lb.topics {
					kept[topic] = string(qb)
					queues += strings.Count(string(qb), ":")
				}
			}
			equal(t, "table's bounds", kept, canonical(x))
			if n := lb.count(); n != queues {
				t.Fatalf("count %d for %v", n, kept)
			}
		}
		raw, err := x.Encode()
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", x, err)
		}
		y, err := DecodeRegistrationExtra(raw)
		if err != nil {
			t.Fatalf("decoding our own encoding %s: %v", raw, err)
		}
		equal(t, "round trip", y, x)
		// The table's fast path reads our own encoding, and agrees.
		if raw != nil {
			if got, ok := scanAll(raw); !ok {
				t.Fatalf("scanCanonicalBounds refuses our own encoding %s", raw)
			} else {
				equal(t, "fast path", got, canonical(x))
			}
		}
	})
}

// scanAll collects what scanCanonicalBounds finds.
func scanAll(b []byte) (map[string]string, bool) {
	got := map[string]string{}
	ok := scanCanonicalBounds(b, func(topic string, qb []byte, n int) {
		if n != strings.Count(string(qb), ":") {
			panic(fmt.Sprintf("topic %q: %d queues in %s", topic, n, qb))
		}
		got[topic] = string(qb)
	})
	return got, ok
}

// canonical is each topic's JSON as the table serves it.
func canonical(x RegistrationExtra) map[string]string {
	want := map[string]string{}
	for topic, qs := range x.TierBounds {
		want[topic] = string(qs.appendJSON(nil))
	}
	return want
}

// FuzzScanCanonicalBounds: the table's fast path accepts nothing that
// DecodeRegistrationExtra refuses, and reads what it accepts the same way.
func FuzzScanCanonicalBounds(f *testing.F) {
	f.Add([]byte(`{"tierBounds":{"T":{"0":1200,"2":7,"10":5},"U":{"3":0}}}`))
	f.Add([]byte(`{"tierBounds":{"T":{"2":7,"0":1}}}`))
	f.Add([]byte(`{"tierBounds":{"U":{"0":1},"T":{"0":1}}}`))
	f.Add([]byte(`{"tierBounds":{"T":{"0":9223372036854775807,"2147483647":0}}}`))
	f.Add([]byte(`{"tierBounds":{"T":{"0":9223372036854775808}}}`))
	f.Add([]byte(`{"tierBounds":{"T":{}}}`))
	f.Add([]byte(`{"tierBounds":{"T\"":{"0":1}}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, ok := scanAll(in)
		if !ok {
			return
		}
		x, err := DecodeRegistrationExtra(in)
		if err != nil {
			t.Fatalf("fast path accepts %s, DecodeRegistrationExtra refuses it: %v", in, err)
		}
		equal(t, "fast path", got, canonical(x))
	})
}

func TestScanCanonicalBounds(t *testing.T) {
	for _, in := range []string{
		`{"tierBounds":{"T":{"0":1200,"2":7,"10":5},"U":{"3":0}}}`,
		`{"tierBounds":{"T":{"0":9223372036854775807,"2147483647":0}}}`,
		`{"tierBounds":{}}`,
	} {
		if _, ok := scanAll([]byte(in)); !ok {
			t.Errorf("fast path refuses %s", in)
		}
	}
	for _, in := range []string{
		`{"tierBounds":{"T":{"2":7,"0":1}}}`, `{"tierBounds":{"T":{"0":1,"0":2}}}`, `{"tierBounds":{"U":{"0":1},"T":{"0":1}}}`,
		`{"tierBounds":{"T":{"0":1},"T":{"1":1}}}`, `{"tierBounds":{"T":{}}}`, `{"x":1,"tierBounds":{"T":{"0":1}}}`,
		`{"tierBounds":{"T":{"0":1}},"x":1}`, `{"tierBounds":{"T":{"0":9223372036854775808}}}`, `{"tierBounds":{"T":{"2147483648":1}}}`,
		`{"tierBounds":{"T":{"01":1}}}`, `{"tierBounds":{"T":{"0":01}}}`, `{"tierBounds":{"T":{"0":1.0}}}`, `{"tierBounds":{"T":{"0":-1}}}`,
		`{"tierBounds":{"T":{"0": 1}}}`, `{"tierBounds":{"a.b":{"0":1}}}`, `{"tierBounds":{"T":{"0":1}}`, `{"tierBounds":{"T":{"0":1}}}}`,
		`{"tierBounds":{"T":{"0":1},}}`, `{"tierBounds":{"T":{"0":1,}}}`, `{"tierBounds":{"T":{"0":1e3}}}`,
	} {
		if got, ok := scanAll([]byte(in)); ok {
			t.Errorf("fast path accepts %s: %v", in, got)
		}
	}
}

// FuzzDecodeRouteTierBounds: a route's tier bounds (what clients read)
// never panic the decoder, and what decodes is valid.
func FuzzDecodeRouteTierBounds(f *testing.F) {
	f.Add([]byte(`{"broker-a":{"0":100,"3":40},"broker-b":{"2":5}}`))
	f.Add([]byte(`{"broker-a":{"-1":100}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeRouteTierBounds(RouteData{Extra: map[string]json.RawMessage{TierBoundsKey: in}})
		if err != nil {
			if !errors.Is(err, ErrBadTierBounds) {
				t.Fatalf("error %v does not wrap ErrBadTierBounds", err)
			}
			return
		}
		for name, qs := range m {
			for id, off := range qs {
				if id < 0 || off < 0 {
					t.Fatalf("%s: queue %d hot start %d", name, id, off)
				}
			}
		}
	})
}

func withBounds(r Registration, tb TierBounds) Registration {
	r.Extra, _ = RegistrationExtra{TierBounds: tb}.Encode()
	return r
}

func routeBounds(t *testing.T, r RouteData) map[string]QueueHotStarts {
	t.Helper()
	m, err := DecodeRouteTierBounds(r)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTableTierBounds: a topic's route carries the tier bounds its broker
// names' leaders reported for it, and only those.
func TestTableTierBounds(t *testing.T) {
	tb := NewTable(TableConfig{BrokerTimeout: 10 * time.Second})
	topics := map[string]TopicConfig{"T": tc(4, 4, 6), "U": tc(2, 2, 6), "Quiet": tc(1, 1, 6)}
	a := withBounds(registration("c1", "broker-a", "127.0.0.1:10911", 0, topics),
		TierBounds{"T": {0: 100, 3: 40}, "U": {1: 7}, "NotRouted": {0: 1}})
	mustRegister(t, tb, t0, a, 1)
	// A follower's (or reader's) bounds never reach the route.
	mustRegister(t, tb, t0, withBounds(registration("c1", "broker-a", "127.0.0.1:10921", 1, topics), TierBounds{"T": {0: 999}}), 2)
	mustRegister(t, tb, t0, withBounds(registration("c1", "broker-b", "127.0.0.1:10931", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}),
		TierBounds{"T": {2: 5}}), 3)
	// A broker without bounds adds nothing.
	mustRegister(t, tb, t0, registration("c1", "broker-c", "127.0.0.1:10941", 0, topics), 4)

	r := mustRoute(t, tb, t0, "T")
	equal(t, "T bounds", routeBounds(t, r), map[string]QueueHotStarts{"broker-a": {0: 100, 3: 40}, "broker-b": {2: 5}})
	body, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(body), `}}],"tierBounds":{"broker-a":{"0":100,"3":40},"broker-b":{"2":5}}}`) || hasJSONWhitespace(body) {
		t.Fatalf("route JSON: %s", body)
	}
	// The unmodified client's parser still reads the route.
	cr, err := clientDecode(string(body))
	if err != nil || len(cr.BrokerDatas) != 3 || cr.BrokerDatas[0].BrokerAddresses[1] != "127.0.0.1:10921" {
		t.Fatalf("client view: %+v, %v", cr, err)
	}
	equal(t, "U bounds", routeBounds(t, mustRoute(t, tb, t0, "U")), map[string]QueueHotStarts{"broker-a": {1: 7}})
	if r := mustRoute(t, tb, t0, "Quiet"); r.Extra != nil {
		t.Fatalf("route of a topic without bounds has extras: %v", r.Extra)
	}
	noRoute(t, tb, t0, "NotRouted")
	snap := tb.Snapshot(t0)
	var counts []int
	for _, b := range snap.Brokers {
		counts = append(counts, b.TierBoundQueues)
	}
	equal(t, "tier bound queues per broker", counts, []int{3, 0, 1, 0})

	// A new registration replaces the bounds.
	mustRegister(t, tb, t0.Add(time.Second), withBounds(registration("c1", "broker-a", "127.0.0.1:10911", 0, topics), TierBounds{"T": {0: 150}}), 1)
	equal(t, "T bounds after renewal", routeBounds(t, mustRoute(t, tb, t0.Add(time.Second), "T")),
		map[string]QueueHotStarts{"broker-a": {0: 150}, "broker-b": {2: 5}})
	if r := mustRoute(t, tb, t0.Add(time.Second), "U"); r.Extra != nil {
		t.Fatalf("U kept bounds the renewal dropped: %v", r.Extra)
	}

	// Deleting the topic drops its bounds with it.
	tb.DeleteTopic("T", "")
	noRoute(t, tb, t0.Add(time.Second), "T")
	counts = nil
	for _, b := range tb.Snapshot(t0.Add(time.Second)).Brokers {
		counts = append(counts, b.TierBoundQueues)
	}
	equal(t, "tier bound queues after DeleteTopic", counts, []int{0, 0, 0, 0})
	mustRegister(t, tb, t0.Add(time.Second), registration("c1", "broker-a", "127.0.0.1:10911", 0, topics), 1)
	if r := mustRoute(t, tb, t0.Add(time.Second), "T"); r.Extra != nil {
		t.Fatalf("T has bounds after DeleteTopic and a renewal without them: %s", r.Extra)
	}
}

// TestTableTierBoundsGoWithTheLeader: bounds leave routes when their
// leader's registration is unregistered, expires or loses its connection.
func TestTableTierBoundsGoWithTheLeader(t *testing.T) {
	topics := map[string]TopicConfig{"T": tc(4, 4, 6)}
	setup := func() *Table {
		tb := NewTable(TableConfig{BrokerTimeout: 10 * time.Second})
		mustRegister(t, tb, t0, withBounds(registration("c1", "broker-a", "127.0.0.1:10911", 0, topics), TierBounds{"T": {0: 100}}), 1)
		mustRegister(t, tb, t0.Add(5*time.Second), registration("c1", "broker-a", "127.0.0.1:10921", 1, topics), 2)
		equal(t, "bounds", routeBounds(t, mustRoute(t, tb, t0, "T")), map[string]QueueHotStarts{"broker-a": {0: 100}})
		return tb
	}
	check := func(tb *Table, now time.Time, what string) {
		t.Helper()
		r := mustRoute(t, tb, now, "T") // the follower still routes T
		if r.Extra != nil {
			t.Fatalf("%s: route still has %s", what, r.Extra)
		}
	}

	tb := setup()
	if !tb.Unregister("c1", "127.0.0.1:10911", "broker-a", 0) {
		t.Fatal("Unregister found nothing")
	}
	check(tb, t0, "after unregister")

	tb = setup()
	later := t0.Add(12 * time.Second) // the leader is dead, the follower not yet
	check(tb, later, "after the leader's expiry, before Expire")
	tb.Expire(later)
	check(tb, later, "after Expire")
	if tb.stored() != 1 {
		t.Fatalf("%d registrations stored, want the follower's", tb.stored())
	}

	tb = setup()
	tb.ConnClosed(1)
	check(tb, t0, "after the leader's connection closed")
}

// TestTableBadTierBounds: tier bounds that do not decode cost the leader
// its bounds, not its registration.
func TestTableBadTierBounds(t *testing.T) {
	tb := NewTable(TableConfig{})
	r := registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)})
	r.Extra = json.RawMessage(`{"tierBounds":{"T":{"0":-5}}}`)
	res, _, err := tb.Register(t0, r, 1)
	if err != nil || !strings.Contains(res.Warning, "tier bounds ignored") || !strings.Contains(res.Warning, "negative") {
		t.Fatalf("Register = %+v, %v; want success with a warning", res, err)
	}
	if r := mustRoute(t, tb, t0, "T"); r.Extra != nil {
		t.Fatalf("route has %s", r.Extra)
	}
	// Bounds in another order (or with other fields) are served in order.
	r.Extra = json.RawMessage(`{"readers":[],"tierBounds":{"U":{"0":1},"T":{"3":40,"0":100}}}`)
	if res, _, err := tb.Register(t0, r, 1); err != nil || res.Warning != "" {
		t.Fatalf("Register = %+v, %v", res, err)
	}
	equal(t, "bounds", string(mustRoute(t, tb, t0, "T").Extra[TierBoundsKey]), `{"broker-a":{"0":100,"3":40}}`)
	// Other Extra shapes say nothing about tier bounds and are no error.
	for _, extra := range []string{`{"hotStart":{"T":[0,5]}}`, `{"tierBounds":null}`} {
		r.Extra = json.RawMessage(extra)
		if res, _, err := tb.Register(t0, r, 1); err != nil || res.Warning != "" {
			t.Fatalf("Register with Extra %s = %+v, %v", extra, res, err)
		}
	}
	// A follower's bounds are not even looked at.
	f := registration("c1", "broker-a", "127.0.0.1:10921", 1, nil)
	f.Extra = json.RawMessage(`[1]`)
	if res, _, err := tb.Register(t0, f, 2); err != nil || res.Warning != "" {
		t.Fatalf("follower Register = %+v, %v", res, err)
	}
}

// TestTableTierBoundsWithExtender: the extender's fields and the table's
// tier bounds go side by side; the extender cannot replace the bounds.
func TestTableTierBoundsWithExtender(t *testing.T) {
	own := map[string]json.RawMessage{"x": json.RawMessage(`1`), TierBoundsKey: json.RawMessage(`"mine"`)}
	tb := NewTable(TableConfig{RouteExtender: func(string, []BrokerState) map[string]json.RawMessage { return own }})
	mustRegister(t, tb, t0, withBounds(registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(1, 1, 6)}),
		TierBounds{"T": {0: 3}}), 1)
	r := mustRoute(t, tb, t0, "T")
	equal(t, "extras", r.Extra, map[string]json.RawMessage{"x": json.RawMessage(`1`), TierBoundsKey: json.RawMessage(`{"broker-a":{"0":3}}`)})
	equal(t, "extender's map untouched", string(own[TierBoundsKey]), `"mine"`)
}

// TestServerTierBounds: over the wire, with a registration as a broker
// sends it, and a faulty extension that must not cost the bounds.
func TestServerTierBounds(t *testing.T) {
	var ext RouteExtender = func(string, []BrokerState) map[string]json.RawMessage {
		return map[string]json.RawMessage{"broken": json.RawMessage(`{`)}
	}
	_, addr := startNamesrv(t, Config{RouteExtender: ext})
	c := dial(t, addr)
	topics := map[string]TopicConfig{"T": tc(4, 4, 6)}
	register(t, c, withBounds(registration("c1", "broker-a", "127.0.0.1:10911", 0, topics), TierBounds{"T": {1: 42}}))
	r, resp := queryRoute(t, c, "T")
	equal(t, "bounds", routeBounds(t, r), map[string]QueueHotStarts{"broker-a": {1: 42}})
	if _, ok := r.Extra["broken"]; ok || !strings.HasSuffix(string(resp.Body), `,"tierBounds":{"broker-a":{"1":42}}}`) {
		t.Fatalf("route: %s", resp.Body)
	}

	// Bad bounds: registered, with the reason in the response's remark.
	bad := registration("c1", "broker-b", "127.0.0.1:10931", 0, topics)
	bad.Extra = json.RawMessage(`{"tierBounds":{"T":{"x":1}}}`)
	if res := register(t, c, bad); !strings.Contains(res.Warning, `key "x" is not a queue id`) {
		t.Fatalf("warning %q", res.Warning)
	}
	r, _ = queryRoute(t, c, "T")
	equal(t, "brokers", brokerNames(r), []string{"broker-a", "broker-b"})
	equal(t, "bounds", routeBounds(t, r), map[string]QueueHotStarts{"broker-a": {1: 42}})

	// UNREGISTER_BROKER takes the bounds away.
	if resp := invoke(t, c, NewUnregisterBrokerRequest("c1", "127.0.0.1:10911", "broker-a", 0)); resp.Code != remoting.RespSuccess {
		t.Fatalf("unregister: %d %s", resp.Code, resp.Remark)
	}
	r, resp = queryRoute(t, c, "T")
	if _, ok := r.Extra[TierBoundsKey]; ok {
		t.Fatalf("route after unregister: %s", resp.Body)
	}
}

// bigRegistration is a broker with topics×queues queues, each with tier
// bounds: what a large broker sends every 30 s.
func bigRegistration(topics, queues int) Registration {
	r := registration("DefaultCluster", "broker-a", "10.0.0.1:10911", 0, make(map[string]TopicConfig, topics))
	tb := make(TierBounds, topics)
	for i := range topics {
		name := fmt.Sprintf("orders-service-events-%05d", i)
		r.Topics[name] = tc(queues, queues, 6)
		qs := make(QueueHotStarts, queues)
		for q := range queues {
			qs[int32(q)] = 1_000_000_000 + int64(i*queues+q)*7919
		}
		tb[name] = qs
	}
	r.Extra, _ = RegistrationExtra{TierBounds: tb}.Encode()
	return r
}

// TestBigRegistrationFitsAFrame: 10,000 topics of 16 queues with bounds
// stay well under the 16 MiB frame limit.
func TestBigRegistrationFitsAFrame(t *testing.T) {
	req, err := NewRegisterBrokerRequest(bigRegistration(10_000, 16))
	if err != nil {
		t.Fatal(err)
	}
	b, err := req.AppendFrame(nil, remoting.SerializeJSON)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("REGISTER_BROKER frame for 10,000 topics x 16 queues: %d bytes (body %d, tier bounds %d)",
		len(b), len(req.Body), len(bigRegistration(10_000, 16).Extra))
	if len(b) > remoting.DefaultMaxFrameSize/2 {
		t.Fatalf("frame of %d bytes is over half the frame limit", len(b))
	}
}

// BenchmarkRegisterTierBounds measures what a name server spends on one
// registration of a large broker: decoding the request, then recording it
// (tier bounds decoded and indexed by topic).
func BenchmarkRegisterTierBounds(b *testing.B) {
	for _, size := range []struct{ topics, queues int }{{10_000, 16}, {1_000, 16}} {
		reg := bigRegistration(size.topics, size.queues)
		req, err := NewRegisterBrokerRequest(reg)
		if err != nil {
			b.Fatal(err)
		}
		plain := reg
		plain.Extra = nil
		plainReq, _ := NewRegisterBrokerRequest(plain)
		name := fmt.Sprintf("%dx%d", size.topics, size.queues)
		x, err := DecodeRegistrationExtra(reg.Extra)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/broker-encode-extra", func(b *testing.B) {
			for b.Loop() {
				if _, err := x.Encode(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/broker-encode-request", func(b *testing.B) {
			for b.Loop() {
				if _, err := NewRegisterBrokerRequest(reg); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/decode-request", func(b *testing.B) {
			b.SetBytes(int64(len(req.Body)))
			for b.Loop() {
				if _, err := DecodeRegisterBrokerRequest(req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/decode-request-without-bounds", func(b *testing.B) {
			b.SetBytes(int64(len(plainReq.Body)))
			for b.Loop() {
				if _, err := DecodeRegisterBrokerRequest(plainReq); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/table-register", func(b *testing.B) {
			tb := NewTable(TableConfig{})
			for b.Loop() {
				if _, _, err := tb.Register(t0, reg, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/decode-extra", func(b *testing.B) {
			b.SetBytes(int64(len(reg.Extra)))
			for b.Loop() {
				if _, err := DecodeRegistrationExtra(reg.Extra); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRouteTierBounds: a route query on a table holding 8 large
// leaders; the cost must not grow with their topic counts.
func BenchmarkRouteTierBounds(b *testing.B) {
	tb := NewTable(TableConfig{})
	for i := range 8 {
		r := bigRegistration(10_000, 16)
		r.BrokerName = fmt.Sprintf("broker-%d", i)
		r.BrokerAddr = fmt.Sprintf("10.0.0.%d:10911", i+1)
		if _, _, err := tb.Register(t0, r, ConnID(i+1)); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		r, ok := tb.Route(t0, "orders-service-events-04242")
		if !ok || len(r.Extra[TierBoundsKey]) == 0 {
			b.Fatal("no bounds")
		}
		if _, err := json.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}
