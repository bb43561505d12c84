package namesrv

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/strata-mq/strata/acl"
	"github.com/strata-mq/strata/remoting"
)

const (
	nsAdminSecret   = "ns-adm-S3CRET-3c1e77"
	nsSubOnlySecret = "ns-sub-S3CRET-a90f12"
)

const nsACLFile = `accounts:
  - accessKey: admin
    secretKey: ` + nsAdminSecret + `
    admin: true
  - accessKey: subOnly
    secretKey: ` + nsSubOnlySecret + `
    defaultTopicPerm: SUB
    defaultGroupPerm: SUB
`

// auditBuffer is a bytes.Buffer safe for concurrent writers.
type auditBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (a *auditBuffer) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.Write(p)
}

func (a *auditBuffer) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.String()
}

// nsSign signs req as a RocketMQ client with an ACL hook does.
func nsSign(req *remoting.Command, accessKey, secretKey string) *remoting.Command {
	if req.ExtFields == nil {
		req.ExtFields = map[string]string{}
	}
	req.ExtFields[remoting.FieldAccessKey] = accessKey
	req.ExtFields[remoting.FieldSignature] = remoting.Signature(accessKey, secretKey, req.ExtFields, req.Body)
	return req
}

func nsACL(t *testing.T, audit *auditBuffer) *acl.ACL {
	t.Helper()
	table, err := acl.Parse([]byte(nsACLFile))
	if err != nil {
		t.Fatal(err)
	}
	return acl.NewStatic(table, slog.New(slog.NewTextHandler(audit, nil)))
}

// TestNamesrvACL: with an ACL the name server serves routes to any signed
// account, and registrations and configuration requests to admin accounts
// only; configuration changes are not carried out even for an admin.
func TestNamesrvACL(t *testing.T) {
	audit := &auditBuffer{}
	s, addr := startNamesrv(t, Config{ACL: nsACL(t, audit)})
	c := dial(t, addr)

	wantDenied := func(what string, resp *remoting.Command) {
		t.Helper()
		if resp.Code != remoting.RespNoPermission || resp.Remark != acl.ErrDenied.Error() {
			t.Errorf("%s: %d %q; want %d %q", what, resp.Code, resp.Remark, remoting.RespNoPermission, acl.ErrDenied.Error())
		}
	}

	// Routes: any signed account.
	wantDenied("unsigned GET_ROUTEINFO_BY_TOPIC", invoke(t, c, NewGetRouteInfoRequest("T")))
	wantDenied("GET_ROUTEINFO_BY_TOPIC with a wrong secret", invoke(t, c, nsSign(NewGetRouteInfoRequest("T"), "subOnly", nsAdminSecret)))
	wantDenied("GET_ROUTEINFO_BY_TOPIC with an unknown key", invoke(t, c, nsSign(NewGetRouteInfoRequest("T"), "nobody", nsSubOnlySecret)))
	if resp := invoke(t, c, nsSign(NewGetRouteInfoRequest("T"), "subOnly", nsSubOnlySecret)); resp.Code == remoting.RespNoPermission {
		t.Errorf("GET_ROUTEINFO_BY_TOPIC signed by subOnly: %d %q", resp.Code, resp.Remark)
	} else if resp.Code != remoting.RespTopicNotExist {
		t.Errorf("GET_ROUTEINFO_BY_TOPIC of an unknown topic signed by subOnly: %d %q; want TOPIC_NOT_EXIST", resp.Code, resp.Remark)
	}

	// Registration: admin only.
	regReq := func() *remoting.Command {
		req, err := NewRegisterBrokerRequest(registration("c1", "broker-a", "127.0.0.1:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}))
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	wantDenied("unsigned REGISTER_BROKER", invoke(t, c, regReq()))
	wantDenied("REGISTER_BROKER by subOnly", invoke(t, c, nsSign(regReq(), "subOnly", nsSubOnlySecret)))
	if _, ok := s.Routes("T"); ok {
		t.Fatal("a refused registration made a route")
	}
	resp := invoke(t, c, nsSign(regReq(), "admin", nsAdminSecret))
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("REGISTER_BROKER by admin: %d %q", resp.Code, resp.Remark)
	}
	if _, err := DecodeRegisterBrokerResponse(resp); err != nil {
		t.Fatalf("REGISTER_BROKER by admin: %v", err)
	}
	resp = invoke(t, c, nsSign(NewGetRouteInfoRequest("T"), "subOnly", nsSubOnlySecret))
	if r, err := DecodeRouteResponse(resp); err != nil || len(r.BrokerDatas) != 1 {
		t.Fatalf("route of T for subOnly after the admin's registration: %+v %v", r, err)
	}

	// Configuration (CVE-2023-37582 class): admin only, and not supported.
	cfgReq := func(code int16) *remoting.Command {
		return remoting.NewRequest(code, map[string]string{"topic": "T"}, []byte("configStorePath=/tmp/pwned\n"))
	}
	for _, code := range []int16{reqUpdateNamesrvConfig, remoting.ReqPutKVConfig, reqGetNamesrvConfig,
		remoting.ReqDeleteTopicInNameSrv, reqWipeWritePermOfBroker, 9999} {
		wantDenied(codeName(code)+" unsigned", invoke(t, c, cfgReq(code)))
		wantDenied(codeName(code)+" by subOnly", invoke(t, c, nsSign(cfgReq(code), "subOnly", nsSubOnlySecret)))
	}
	if _, ok := s.Routes("T"); !ok {
		t.Fatal("a refused DELETE_TOPIC_IN_NAMESRV deleted the topic")
	}
	for _, code := range []int16{reqUpdateNamesrvConfig, remoting.ReqPutKVConfig} {
		resp := invoke(t, c, nsSign(cfgReq(code), "admin", nsAdminSecret))
		if resp.Code == remoting.RespSuccess || resp.Code == remoting.RespNoPermission {
			t.Errorf("%s by admin: %d %q; want refused as not supported", codeName(code), resp.Code, resp.Remark)
		}
		if resp.Code != remoting.RespRequestCodeNotSupported {
			t.Errorf("%s by admin: %d %q; want REQUEST_CODE_NOT_SUPPORTED", codeName(code), resp.Code, resp.Remark)
		}
	}

	log := audit.String()
	for _, want := range []string{`access_key=""`, `reason="unsigned request"`, "access_key=subOnly",
		`reason="needs an admin account"`, `reason="bad signature"`, `reason="unknown access key"`} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %s:\n%s", want, log)
		}
	}
	for _, secret := range []string{nsAdminSecret, nsSubOnlySecret} {
		if strings.Contains(log, secret) {
			t.Errorf("audit log holds a secret key:\n%s", log)
		}
	}
}

// TestNamesrvACLRemoteAdmin: with an ACL an admin may administer from
// another machine (the ACL replaces the loopback rule) and others may not.
func TestNamesrvACLRemoteAdmin(t *testing.T) {
	audit := &auditBuffer{}
	s := New(Config{Logger: testLogger(t), ACL: nsACL(t, audit)})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = s.Shutdown(ctx)
		checkNoLeaks(t)
	})
	serverEnd, clientEnd := net.Pipe()
	peer := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 40000}
	sc := remoting.NewConn(addrConn{serverEnd, peer}, remoting.ConnOptions{Handler: remoting.HandlerFunc(s.serveRemoting)})
	cc := remoting.NewConn(clientEnd, remoting.ConnOptions{})
	t.Cleanup(func() { _ = cc.Close(); _ = sc.Close() })

	req, err := NewRegisterBrokerRequest(registration("c1", "broker-a", "10.1.2.3:10911", 0, map[string]TopicConfig{"T": tc(4, 4, 6)}))
	if err != nil {
		t.Fatal(err)
	}
	if resp := invoke(t, cc, nsSign(req, "admin", nsAdminSecret)); resp.Code != remoting.RespSuccess {
		t.Fatalf("REGISTER_BROKER by admin from %v: %d %q", peer, resp.Code, resp.Remark)
	}
	del := func() *remoting.Command {
		return remoting.NewRequest(remoting.ReqDeleteTopicInNameSrv, map[string]string{"topic": "T"}, nil)
	}
	if resp := invoke(t, cc, nsSign(del(), "subOnly", nsSubOnlySecret)); resp.Code != remoting.RespNoPermission {
		t.Fatalf("DELETE_TOPIC_IN_NAMESRV by subOnly from %v: %d %q", peer, resp.Code, resp.Remark)
	}
	if _, ok := s.Routes("T"); !ok {
		t.Fatal("subOnly deleted a topic")
	}
	if resp := invoke(t, cc, nsSign(del(), "admin", nsAdminSecret)); resp.Code != remoting.RespSuccess {
		t.Fatalf("DELETE_TOPIC_IN_NAMESRV by admin from %v: %d %q", peer, resp.Code, resp.Remark)
	}
	if _, ok := s.Routes("T"); ok {
		t.Fatal("the admin's DELETE_TOPIC_IN_NAMESRV left the topic")
	}
	if !strings.Contains(audit.String(), "admin change") || !strings.Contains(audit.String(), "remote=10.1.2.3") {
		t.Errorf("the admin's delete was not audited:\n%s", audit.String())
	}
}
