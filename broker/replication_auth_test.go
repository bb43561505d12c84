package broker

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/strata-mq/strata/acl"
	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
)

// TestReplicationNeedsAdmin: with an ACL, the replication port streams the
// log only to followers whose hello an admin account signed.
func TestReplicationNeedsAdmin(t *testing.T) {
	table, err := acl.Parse([]byte("accounts:\n  - {accessKey: admin, secretKey: admin-secret, admin: true}\n" +
		"  - {accessKey: reader, secretKey: reader-secret, defaultTopicPerm: SUB, defaultGroupPerm: SUB}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var audit lockedBuffer
	a := acl.NewStatic(table, slog.New(slog.NewTextHandler(&audit, nil)))
	start := func(id int64, from string, cr Credentials) *Broker {
		t.Helper()
		b, err := New(context.Background(), Config{
			DataDir: t.TempDir(), Listen: "127.0.0.1:0", AutoCreateTopics: true, BrokerID: id, ReplicateFrom: from,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: store.Config{SegmentSize: 256 << 10},
			ACL: a, Credentials: cr,
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { shutdown(b) })
		return b
	}
	leader := start(0, "", Credentials{AccessKey: "admin", SecretKey: "admin-secret"})
	lc := pipeTo(t, leader, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40030})
	for i := range 20 {
		req := remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
			"a": "pg", "b": "RT", "c": "TBW102", "d": "1", "e": "0", "f": "0", "g": "1700000000000", "h": "0",
			"i": "", "j": "0", "k": "false", "l": "0"}, []byte{byte(i)})
		leader.sign(req)
		if resp := invoke(t, lc, req); resp.Code != remoting.RespSuccess {
			t.Fatalf("send %d: %d %q", i, resp.Code, resp.Remark)
		}
	}
	good := start(1, leader.repl.addr, Credentials{AccessKey: "admin", SecretKey: "admin-secret"})
	notAdmin := start(2, leader.repl.addr, Credentials{AccessKey: "reader", SecretKey: "reader-secret"})
	wrong := start(3, leader.repl.addr, Credentials{AccessKey: "admin", SecretKey: "not-the-secret"})
	none := start(4, leader.repl.addr, Credentials{})
	waitUntil(t, "the admin-signed follower to copy", func() bool { return good.Store().MaxOffset("RT", 0) == 20 })
	waitUntil(t, "the other followers to be refused", func() bool {
		for _, b := range []*Broker{notAdmin, wrong, none} {
			f := b.repl.follower.Load()
			if f == nil || !strings.Contains(f.Status().LastError, "access denied") {
				return false
			}
		}
		return true
	})
	for _, b := range []*Broker{notAdmin, wrong, none} {
		if b.Store().LogEnd() != 0 {
			t.Errorf("follower %d copied %d bytes without an admin's signature", b.cfg.BrokerID, b.Store().LogEnd())
		}
	}
	out := audit.String()
	for _, why := range []string{"needs an admin account", "bad signature", "unsigned request"} {
		if !strings.Contains(out, why) {
			t.Errorf("audit log lacks %q:\n%s", why, out)
		}
	}
}
