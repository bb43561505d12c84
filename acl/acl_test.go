package acl

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/remoting"
)

const testFile = `
accounts:
  - accessKey: admin
    secretKey: admin-secret
    admin: true
  - accessKey: orders
    secretKey: orders-secret
    whiteRemoteAddress: 10.0.0.0/8, 192.168.1.7
    defaultTopicPerm: SUB
    topicPerms:
      - orders=PUB|SUB
      - orders-*=PUB
      - orders-secret=DENY
      - "*=DENY"
    groupPerms: [billing=SUB]
  - accessKey: reader
    secretKey: reader-secret
    defaultTopicPerm: SUB
    defaultGroupPerm: SUB
`

func mustParse(t *testing.T, s string) *Table {
	t.Helper()
	tb, err := Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestRules(t *testing.T) {
	tb := mustParse(t, testFile)
	o := tb.accounts["orders"]
	for topic, want := range map[string]Perm{
		"orders":        Pub | Sub, // exact
		"orders-eu":     Pub,       // longest prefix
		"orders-secret": Deny,      // exact beats prefix
		"payments":      Deny,      // "*" prefix beats the default
	} {
		if got := o.Topic(topic); got != want {
			t.Errorf("topic %s: %v, want %v", topic, got, want)
		}
	}
	if o.Group("billing") != Sub || o.Group("other") != Deny || o.Admin() {
		t.Errorf("groups/admin: %v %v %v", o.Group("billing"), o.Group("other"), o.Admin())
	}
	r := tb.accounts["reader"]
	if r.Topic("anything") != Sub || r.Group("any") != Sub {
		t.Errorf("defaults: %v %v", r.Topic("anything"), r.Group("any"))
	}
	for addr, want := range map[string]bool{"10.1.2.3": true, "192.168.1.7": true, "192.168.1.8": false, "::ffff:10.0.0.1": true, "::1": false} {
		if got := o.allowsSource(netip.MustParseAddr(addr)); got != want {
			t.Errorf("source %s: %v, want %v", addr, got, want)
		}
	}
	if !r.allowsSource(netip.MustParseAddr("8.8.8.8")) {
		t.Error("an account without whiteRemoteAddress refused a source")
	}
}

func TestParseRefuses(t *testing.T) {
	for name, body := range map[string]string{
		"unknown field":  "accounts:\n  - accessKey: a\n    secretKey: secret1\n    admn: true\n",
		"short secret":   "accounts:\n  - accessKey: a\n    secretKey: abc\n",
		"no access key":  "accounts:\n  - secretKey: secret1\n",
		"duplicate":      "accounts:\n  - {accessKey: a, secretKey: secret1}\n  - {accessKey: a, secretKey: secret2}\n",
		"bad perm":       "accounts:\n  - {accessKey: a, secretKey: secret1, topicPerms: [t=WRITE]}\n",
		"no equals":      "accounts:\n  - {accessKey: a, secretKey: secret1, topicPerms: [t]}\n",
		"bad name":       "accounts:\n  - {accessKey: a, secretKey: secret1, topicPerms: [\"t/../x=PUB\"]}\n",
		"bad address":    "accounts:\n  - {accessKey: a, secretKey: secret1, whiteRemoteAddress: 10.0.0.*}\n",
		"bad default":    "accounts:\n  - {accessKey: a, secretKey: secret1, defaultGroupPerm: ALL}\n",
		"repeated rule":  "accounts:\n  - {accessKey: a, secretKey: secret1, groupPerms: [g=SUB, g=DENY]}\n",
		"not yaml":       "accounts: [",
		"space in key":   "accounts:\n  - {accessKey: a b, secretKey: secret1}\n",
		"accounts a map": "accounts: {a: 1}\n",
	} {
		if _, err := Parse([]byte(body)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if tb, err := Parse(nil); err != nil || tb.Len() != 0 {
		t.Errorf("empty file: %v, %v", tb, err)
	}
}

// signed builds a request signed as rocketmq-client-go signs it.
func signed(ak, sk string, ext map[string]string, body []byte) *remoting.Command {
	req := remoting.NewRequest(remoting.ReqSendMessageV2, ext, body)
	req.ExtFields[remoting.FieldSignature] = remoting.Signature(ak, sk, req.ExtFields, req.Body)
	req.ExtFields[remoting.FieldAccessKey] = ak
	return req
}

// syncBuffer is a bytes.Buffer safe for a logger and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAuthenticate(t *testing.T) {
	var logs syncBuffer
	a := NewStatic(mustParse(t, testFile), slog.New(slog.NewTextHandler(&logs, nil)))
	from := netip.MustParseAddr("10.9.8.7")
	ext := func() map[string]string { return map[string]string{"a": "pg", "b": "orders", "d": "4"} }
	body := []byte("hello")

	good := signed("orders", "orders-secret", ext(), body)
	if acct, err := a.Authenticate(good, from); err != nil || acct.AccessKey() != "orders" {
		t.Fatalf("good request: %v, %v", acct, err)
	}
	tampered := signed("orders", "orders-secret", ext(), body)
	tampered.Body = []byte("hellO")
	changed := signed("orders", "orders-secret", ext(), body)
	changed.ExtFields["b"] = "payments"
	unsigned := remoting.NewRequest(remoting.ReqSendMessageV2, ext(), body)
	noSig := signed("orders", "orders-secret", ext(), body)
	delete(noSig.ExtFields, remoting.FieldSignature)
	for name, c := range map[string]struct {
		req  *remoting.Command
		from netip.Addr
	}{
		"wrong secret":   {signed("orders", "orders-secreT", ext(), body), from},
		"unknown key":    {signed("nobody", "orders-secret", ext(), body), from},
		"unsigned":       {unsigned, from},
		"no signature":   {noSig, from},
		"tampered body":  {tampered, from},
		"changed field":  {changed, from},
		"foreign source": {signed("orders", "orders-secret", ext(), body), netip.MustParseAddr("172.16.0.1")},
	} {
		acct, err := a.Authenticate(c.req, c.from)
		if acct != nil || !errors.Is(err, ErrDenied) || err.Error() != "access denied" {
			t.Errorf("%s: %v, %v", name, acct, err)
		}
	}
	// A security token is sent but not signed (rocketmq-client-go).
	tok := signed("reader", "reader-secret", ext(), body)
	tok.ExtFields[remoting.FieldSecurityToken] = "token"
	if _, err := a.Authenticate(tok, from); err != nil {
		t.Errorf("request with a security token: %v", err)
	}
	out := logs.String()
	for _, want := range []string{"request denied", "bad signature", "unknown access key", "unsigned request", "source address not allowed"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"admin-secret", "orders-secret", "reader-secret", "orders-secreT"} {
		if strings.Contains(out, secret) {
			t.Errorf("the audit log holds a secret:\n%s", out)
		}
	}
	if ak, sk, ok := a.AdminCredentials(); !ok || ak != "admin" || sk != "admin-secret" {
		t.Errorf("AdminCredentials: %q %v", ak, ok)
	}
}

// TestReload: a changed file replaces the accounts; an invalid one keeps
// those in force.
func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acl.yml")
	write := func(s string) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("accounts:\n  - {accessKey: a, secretKey: secret-a, defaultTopicPerm: PUB}\n")
	var logs syncBuffer
	a, err := Open(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx, 10*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	auth := func(ak, sk string) bool {
		_, err := a.Authenticate(signed(ak, sk, map[string]string{"b": "t"}, nil), netip.MustParseAddr("127.0.0.1"))
		return err == nil
	}
	if !auth("a", "secret-a") || auth("b", "secret-b") {
		t.Fatal("initial accounts")
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s:\n%s", what, logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	write("accounts:\n  - {accessKey: b, secretKey: secret-b}\n")
	waitFor("the new accounts", func() bool { return auth("b", "secret-b") && !auth("a", "secret-a") })
	write("accounts:\n  - {accessKey: c, secretKey: x}\n") // secret too short
	waitFor("the invalid file to be reported", func() bool { return strings.Contains(logs.String(), "invalid") })
	if !auth("b", "secret-b") || auth("c", "x") {
		t.Error("an invalid file replaced the accounts in force")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(testFile))
	f.Add([]byte("accounts:\n  - {accessKey: a, secretKey: secret1, topicPerms: [\"x*=PUB\"]}\n"))
	f.Add([]byte("accounts: [{accessKey: a, secretKey: secret1, whiteRemoteAddress: \"::1, 10.0.0.0/8\"}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tb, err := Parse(data)
		if err != nil {
			return
		}
		for _, a := range tb.accounts {
			// Whatever parsed must answer without panicking.
			_ = a.Topic("orders") | a.Group("g")
			_ = a.allowsSource(netip.MustParseAddr("10.0.0.1"))
			if a.accessKey == "" || len(a.secretKey) < minSecretLen {
				t.Fatalf("accepted account %q with secret of %d bytes", a.accessKey, len(a.secretKey))
			}
		}
	})
}

// FuzzAuthenticate: only a request signed with the account's secret over
// exactly its fields and body passes.
func FuzzAuthenticate(f *testing.F) {
	f.Add("b", "orders", []byte("body"), "orders-secret", false)
	f.Add("topic", "", []byte{}, "x", true)
	tb, err := Parse([]byte(testFile))
	if err != nil {
		f.Fatal(err)
	}
	a := NewStatic(tb, slog.New(slog.DiscardHandler))
	from := netip.MustParseAddr("10.0.0.1")
	f.Fuzz(func(t *testing.T, key, value string, body []byte, secret string, tamper bool) {
		req := signed("orders", secret, map[string]string{key: value}, body)
		if tamper {
			req.Body = append(append([]byte{}, body...), 0)
		}
		_, err := a.Authenticate(req, from)
		want := secret == "orders-secret" && !tamper
		if key == remoting.FieldSignature || key == remoting.FieldAccessKey {
			return // the field is overwritten by signing
		}
		if (err == nil) != want {
			t.Fatalf("key %q value %q secret %q tamper %v: %v", key, value, secret, tamper, err)
		}
	})
}

// BenchmarkAuthenticate: the cost of checking one signed send (the
// rocketmq-client-go header fields of SEND_MESSAGE_V2 and a 1 KiB body).
func BenchmarkAuthenticate(b *testing.B) {
	tb, err := Parse([]byte(testFile))
	if err != nil {
		b.Fatal(err)
	}
	a := NewStatic(tb, slog.New(slog.DiscardHandler))
	ext := map[string]string{"a": "orders-producer", "b": "orders", "c": "TBW102", "d": "4", "e": "1", "f": "0",
		"g": "1700000000000", "h": "0", "i": "KEYSk1\x01UNIQ_KEY0A0B0C0D0E0F\x01WAITtrue\x02", "j": "0", "k": "false", "l": "0", "m": "false"}
	req := signed("orders", "orders-secret", ext, make([]byte, 1024))
	from := netip.MustParseAddr("10.0.0.1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(req, from); err != nil {
			b.Fatal(err)
		}
	}
}
