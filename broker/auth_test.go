package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/acl"
	"github.com/strata-mq/strata/broker/store"
	"github.com/strata-mq/strata/remoting"
)

// Secrets of the test accounts: distinctive, so that finding one in a log
// cannot be a coincidence.
const (
	authAdminSecret   = "adm-S3CRET-7f1c9e"
	authPubASecret    = "pubA-S3CRET-42aa01"
	authSubOnlySecret = "sub-S3CRET-9bd3c2"
	authPrefixSecret  = "pfx-S3CRET-0e55d7"
	authOfficeSecret  = "ofc-S3CRET-b7e2f4"
	authConsBSecret   = "cb-S3CRET-58d0aa"
	// authCredSecret is the broker's own signing secret (Config.Credentials).
	authCredSecret = "cred-S3CRET-61ac8b"
)

var authSecrets = []string{authAdminSecret, authPubASecret, authSubOnlySecret, authPrefixSecret, authOfficeSecret, authConsBSecret, authCredSecret}

const authACLFile = `accounts:
  - accessKey: admin
    secretKey: ` + authAdminSecret + `
    admin: true
  - accessKey: pubA
    secretKey: ` + authPubASecret + `
    topicPerms: [A=PUB]
  - accessKey: subOnly
    secretKey: ` + authSubOnlySecret + `
    defaultTopicPerm: SUB
    defaultGroupPerm: SUB
  - accessKey: prefix
    secretKey: ` + authPrefixSecret + `
    topicPerms: ["orders-*=PUB", "orders-secret=DENY"]
  - accessKey: office
    secretKey: ` + authOfficeSecret + `
    whiteRemoteAddress: 10.0.0.0/8
    defaultTopicPerm: PUB
  - accessKey: consumerB
    secretKey: ` + authConsBSecret + `
    topicPerms: [B=SUB]
    groupPerms: [gb=SUB]
`

// lockedBuffer is a bytes.Buffer safe for concurrent writers (the broker
// logs from its handlers' goroutines).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// logLine returns the first line of log holding every one of parts, or "".
func logLine(log string, parts ...string) string {
	for _, line := range strings.Split(log, "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok && line != "" {
			return line
		}
	}
	return ""
}

// signReq signs req as a RocketMQ client with an ACL hook does: AccessKey
// and Signature header fields (PROTOCOL.md §7).
func signReq(req *remoting.Command, accessKey, secretKey string) *remoting.Command {
	if req.ExtFields == nil {
		req.ExtFields = map[string]string{}
	}
	req.ExtFields[remoting.FieldAccessKey] = accessKey
	req.ExtFields[remoting.FieldSignature] = remoting.Signature(accessKey, secretKey, req.ExtFields, req.Body)
	return req
}

// authSendReq is a SEND_MESSAGE_V2 of one message to queue 0 of topic.
func authSendReq(topic string) *remoting.Command {
	return remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
		"a": "pg", "b": topic, "c": "TBW102", "d": "4", "e": "0", "f": "0", "g": "1700000000000", "h": "0",
		"i": "", "j": "0", "k": "false", "l": "0"}, []byte("auth-body"))
}

// authPullReq is a PULL_MESSAGE of queue 0 of topic for group.
func authPullReq(topic, group string) *remoting.Command {
	return remoting.NewRequest(remoting.ReqPullMessage, map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": "0", "queueOffset": "0", "maxMsgNums": "32",
		"sysFlag": "0", "commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*"}, nil)
}

// newAuthBroker is a broker checking the ACL of authACLFile, logging (and
// auditing) to the returned buffer, and signing its own requests as admin.
func newAuthBroker(t *testing.T) (*Broker, *lockedBuffer) {
	t.Helper()
	table, err := acl.Parse([]byte(authACLFile))
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := New(context.Background(), Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", AutoCreateTopics: true, MaxMessageSize: 256 << 10,
		ACL:         acl.NewStatic(table, logger),
		Credentials: Credentials{AccessKey: "admin", SecretKey: authCredSecret},
		Logger:      logger,
		Store:       store.Config{SegmentSize: 1 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	})
	return b, logs
}

var (
	authLoopback = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40100}
	authRemote   = &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 40101}
	authOutside  = &net.TCPAddr{IP: net.ParseIP("192.168.1.1"), Port: 40102}
)

// TestAuthorize: with an ACL every request must be signed by a known
// account with its secret, from an address the account allows, and may do
// only what the account may (per topic and group, exact rules before
// prefixes, retry topics by their group, admin requests by admins only,
// from any address); denials and admin changes are audited without ever
// logging a secret.
func TestAuthorize(t *testing.T) {
	b, logs := newAuthBroker(t)
	c := pipeTo(t, b, authLoopback)
	remote := pipeTo(t, b, authRemote)

	wantDenied := func(what string, resp *remoting.Command) {
		t.Helper()
		if resp.Code != remoting.RespNoPermission || resp.Remark != acl.ErrDenied.Error() {
			t.Errorf("%s: %d %q; want %d %q", what, resp.Code, resp.Remark, remoting.RespNoPermission, acl.ErrDenied.Error())
		}
	}
	wantCode := func(what string, resp *remoting.Command, code int16) {
		t.Helper()
		if resp.Code != code {
			t.Errorf("%s: %d %q; want %d", what, resp.Code, resp.Remark, code)
		}
	}
	wantNo := func(what string, resp *remoting.Command) {
		t.Helper()
		if resp.Code != remoting.RespNoPermission {
			t.Errorf("%s: %d %q; want NO_PERMISSION (%d)", what, resp.Code, resp.Remark, remoting.RespNoPermission)
		}
	}
	wantAllowed := func(what string, resp *remoting.Command) {
		t.Helper()
		if resp.Code == remoting.RespNoPermission {
			t.Errorf("%s: refused: %q", what, resp.Remark)
		}
	}
	wantAudit := func(what string, parts ...string) {
		t.Helper()
		if logLine(logs.String(), parts...) == "" {
			t.Errorf("%s: no audit line holding %q in:\n%s", what, parts, logs.String())
		}
	}

	t.Run("authentication", func(t *testing.T) {
		wantDenied("unsigned send", invoke(t, c, authSendReq("A")))
		wantAudit("unsigned send", "request denied", "component=audit", `reason="unsigned request"`)
		wantDenied("send with an unknown key", invoke(t, c, signReq(authSendReq("A"), "nobody", authPubASecret)))
		wantAudit("unknown key", "request denied", "access_key=nobody", `reason="unknown access key"`)
		wantDenied("send with a wrong secret", invoke(t, c, signReq(authSendReq("A"), "pubA", "not-the-secret")))
		wantAudit("wrong secret", "request denied", "access_key=pubA", `reason="bad signature"`)
		// Another account's secret is as wrong as any.
		wantDenied("send signed with another account's secret", invoke(t, c, signReq(authSendReq("A"), "pubA", authAdminSecret)))
		// A signature over other fields (a header changed in flight) fails.
		req := signReq(authSendReq("A"), "pubA", authPubASecret)
		req.ExtFields["b"] = "B"
		wantDenied("send with a header changed after signing", invoke(t, c, req))
		req = signReq(authSendReq("A"), "pubA", authPubASecret)
		req.Body = []byte("other body")
		wantDenied("send with a body changed after signing", invoke(t, c, req))
		if _, ok := b.topics.Get("A"); ok {
			t.Error("a refused send auto-created topic A")
		}
	})

	t.Run("topic and group permissions", func(t *testing.T) {
		wantCode("pubA send to A", invoke(t, c, signReq(authSendReq("A"), "pubA", authPubASecret)), remoting.RespSuccess)
		wantNo("pubA send to B", invoke(t, c, signReq(authSendReq("B"), "pubA", authPubASecret)))
		wantAudit("pubA send to B", "request denied", "access_key=pubA", `reason="no PUB permission on topic B"`)
		if _, ok := b.topics.Get("B"); ok {
			t.Error("a refused send auto-created topic B")
		}
		wantNo("subOnly send to A", invoke(t, c, signReq(authSendReq("A"), "subOnly", authSubOnlySecret)))
		wantNo("pubA pull of A", invoke(t, c, signReq(authPullReq("A", "g"), "pubA", authPubASecret)))
		resp := invoke(t, c, signReq(authPullReq("A", "g"), "subOnly", authSubOnlySecret))
		wantAllowed("subOnly pull of A with group g", resp)
		if resp.Code != remoting.RespSuccess {
			t.Errorf("subOnly pull of A (one message stored): %d %q", resp.Code, resp.Remark)
		}
		// Offsets are the group's and the topic's.
		query := remoting.NewRequest(remoting.ReqQueryConsumerOffset, map[string]string{"consumerGroup": "g", "topic": "A", "queueId": "0"}, nil)
		wantAllowed("subOnly QUERY_CONSUMER_OFFSET", invoke(t, c, signReq(query, "subOnly", authSubOnlySecret)))
		query = remoting.NewRequest(remoting.ReqQueryConsumerOffset, map[string]string{"consumerGroup": "g", "topic": "A", "queueId": "0"}, nil)
		wantNo("pubA QUERY_CONSUMER_OFFSET", invoke(t, c, signReq(query, "pubA", authPubASecret)))
	})

	t.Run("prefix rules", func(t *testing.T) {
		wantCode("prefix send to orders-eu", invoke(t, c, signReq(authSendReq("orders-eu"), "prefix", authPrefixSecret)), remoting.RespSuccess)
		wantNo("prefix send to orders-secret (exact DENY beats the prefix)", invoke(t, c, signReq(authSendReq("orders-secret"), "prefix", authPrefixSecret)))
		wantNo("prefix send to orders (not under the prefix)", invoke(t, c, signReq(authSendReq("orders"), "prefix", authPrefixSecret)))
		wantNo("prefix send to A", invoke(t, c, signReq(authSendReq("A"), "prefix", authPrefixSecret)))
	})

	t.Run("retry topics belong to their group", func(t *testing.T) {
		retry := RetryTopicPrefix + "g"
		resp := invoke(t, c, signReq(authSendReq(retry), "subOnly", authSubOnlySecret))
		wantAllowed("subOnly send to "+retry, resp)
		wantCode("subOnly send to "+retry, resp, remoting.RespSuccess)
		wantNo("pubA send to "+retry, invoke(t, c, signReq(authSendReq(retry), "pubA", authPubASecret)))
		wantNo("pubA send to "+DLQTopicPrefix+"g", invoke(t, c, signReq(authSendReq(DLQTopicPrefix+"g"), "pubA", authPubASecret)))
		// pubA's PUB on A does not cover a group named A.
		wantNo("pubA send to "+RetryTopicPrefix+"A", invoke(t, c, signReq(authSendReq(RetryTopicPrefix+"A"), "pubA", authPubASecret)))
	})

	t.Run("heartbeat", func(t *testing.T) {
		hb := func() *remoting.Command {
			return remoting.NewRequest(remoting.ReqHeartBeat, nil, []byte(`{"clientID":"10.0.0.5@1","consumerDataSet":[{"groupName":"cg",`+
				`"consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","subscriptionDataSet":[{"topic":"A","subString":"*"}]}]}`))
		}
		wantNo("heartbeat of group cg by pubA", invoke(t, c, signReq(hb(), "pubA", authPubASecret)))
		wantAudit("heartbeat by pubA", "request denied", "access_key=pubA", `reason="no SUB permission on group cg"`)
		if got := b.clients.Conns("cg"); len(got) != 0 {
			t.Errorf("a refused heartbeat registered %d consumers of cg", len(got))
		}
		wantCode("heartbeat of group cg by subOnly", invoke(t, c, signReq(hb(), "subOnly", authSubOnlySecret)), remoting.RespSuccess)
	})

	t.Run("admin requests", func(t *testing.T) {
		evil := func(code int16) *remoting.Command {
			return remoting.NewRequest(code, map[string]string{"topic": "Evil", "readQueueNums": "4", "writeQueueNums": "4"},
				[]byte("rocketmqHome=-c $@|sh . echo touch /tmp/x\nfilterServerNums=1"))
		}
		for _, code := range []int16{remoting.ReqUpdateAndCreateTopic, remoting.ReqDeleteTopicInBroker, remoting.ReqUpdateBrokerConfig,
			remoting.ReqPutKVConfig, remoting.ReqGetAllTopicConfig, remoting.ReqGetAllConsumerOffset, remoting.ReqViewMessageByID, 9999} {
			for _, conn := range []*remoting.Conn{c, remote} {
				wantDenied(fmt.Sprintf("code %d by subOnly", code), invoke(t, conn, signReq(evil(code), "subOnly", authSubOnlySecret)))
			}
			wantAudit(fmt.Sprintf("code %d by subOnly", code), "request denied", "access_key=subOnly", fmt.Sprintf("code=%d", code), `reason="needs an admin account"`)
		}
		if _, ok := b.topics.Get("Evil"); ok {
			t.Error("a non-admin account created a topic")
		}

		// The ACL replaces the loopback rule: an admin may administer from
		// another machine.
		create := remoting.NewRequest(remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "Admin1", "readQueueNums": "2", "writeQueueNums": "2"}, nil)
		wantCode("admin creates a topic from 10.1.2.3", invoke(t, remote, signReq(create, "admin", authAdminSecret)), remoting.RespSuccess)
		if tc, ok := b.topics.Get("Admin1"); !ok || tc.WriteQueues != 2 {
			t.Errorf("topic after the admin's create: %+v %v", tc, ok)
		}
		wantAudit("admin create", "admin change", "component=audit", "access_key=admin", "topic=Admin1", "remote=10.1.2.3")
		all := invoke(t, remote, signReq(remoting.NewRequest(remoting.ReqGetAllTopicConfig, nil, nil), "admin", authAdminSecret))
		wantCode("admin GET_ALL_TOPIC_CONFIG", all, remoting.RespSuccess)
		if !bytes.Contains(all.Body, []byte("Admin1")) {
			t.Errorf("GET_ALL_TOPIC_CONFIG body lacks Admin1: %s", all.Body)
		}
		del := remoting.NewRequest(remoting.ReqDeleteTopicInBroker, map[string]string{"topic": "Admin1"}, nil)
		wantCode("admin deletes a topic from 10.1.2.3", invoke(t, remote, signReq(del, "admin", authAdminSecret)), remoting.RespSuccess)
		if _, ok := b.topics.Get("Admin1"); ok {
			t.Error("topic Admin1 still there after the admin's delete")
		}
		wantCode("unknown code 9999 by admin", invoke(t, remote, signReq(evil(9999), "admin", authAdminSecret)), remoting.RespRequestCodeNotSupported)

		// CVE-2023-33246: an admin's UPDATE_BROKER_CONFIG is not carried out
		// either: configuration does not change at run time.
		_, statErr := os.Stat("/tmp/x")
		xExisted := !errors.Is(statErr, os.ErrNotExist)
		before := fmt.Sprintf("%#v", b.cfg)
		topicsBefore := fmt.Sprint(b.topics.List())
		for _, conn := range []*remoting.Conn{remote, c} {
			for _, code := range []int16{remoting.ReqUpdateBrokerConfig, remoting.ReqPutKVConfig} {
				resp := invoke(t, conn, signReq(remoting.NewRequest(code, nil, []byte("rocketmqHome=-c $@|sh . echo touch /tmp/x\nfilterServerNums=1")), "admin", authAdminSecret))
				if resp.Code == remoting.RespSuccess || resp.Code == remoting.RespNoPermission {
					t.Errorf("code %d with the CVE-2023-33246 body by admin: %d %q; want refused as not supported", code, resp.Code, resp.Remark)
				}
				wantCode(fmt.Sprintf("code %d by admin", code), resp, remoting.RespRequestCodeNotSupported)
			}
		}
		if after := fmt.Sprintf("%#v", b.cfg); after != before {
			t.Errorf("broker config changed by UPDATE_BROKER_CONFIG:\nbefore %s\nafter  %s", before, after)
		}
		if after := fmt.Sprint(b.topics.List()); after != topicsBefore {
			t.Errorf("topics changed by UPDATE_BROKER_CONFIG: %s, then %s", topicsBefore, after)
		}
		if !xExisted {
			if _, err := os.Stat("/tmp/x"); err == nil {
				t.Error("/tmp/x was created")
			}
		}
		if line := logLine(logs.String(), "admin change", "code=25"); line != "" {
			t.Errorf("a refused UPDATE_BROKER_CONFIG was audited as an admin change: %s", line)
		}
	})

	t.Run("source addresses", func(t *testing.T) {
		wantCode("office send from 10.1.2.3", invoke(t, remote, signReq(authSendReq("Office"), "office", authOfficeSecret)), remoting.RespSuccess)
		outside := pipeTo(t, b, authOutside)
		wantDenied("office send from 192.168.1.1", invoke(t, outside, signReq(authSendReq("Office"), "office", authOfficeSecret)))
		wantAudit("office from 192.168.1.1", "request denied", "access_key=office", "remote=192.168.1.1", `reason="source address not allowed for this account"`)
		wantDenied("office send from 127.0.0.1", invoke(t, c, signReq(authSendReq("Office"), "office", authOfficeSecret)))
		// Accounts without whiteRemoteAddress may send from anywhere.
		wantCode("pubA send from 192.168.1.1", invoke(t, outside, signReq(authSendReq("A"), "pubA", authPubASecret)), remoting.RespSuccess)
	})

	// Whatever happened above, no secret reached the log.
	log := logs.String()
	for _, s := range authSecrets {
		if strings.Contains(log, s) {
			t.Errorf("the log holds secret %q:\n%s", s, log)
		}
	}
	if !strings.Contains(log, "request denied") || !strings.Contains(log, "admin change") {
		t.Errorf("the audit log lacks denials or admin changes:\n%s", log)
	}
}

// TestAuthorizeWithoutACL: with no ACL nothing is authenticated, and topic
// administration is accepted from loopback only.
func TestAuthorizeWithoutACL(t *testing.T) {
	b := newTestBroker(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	})
	if b.cfg.ACL != nil {
		t.Fatal("newTestBroker has an ACL")
	}
	create := func() *remoting.Command {
		return remoting.NewRequest(remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "NoACL", "readQueueNums": "2", "writeQueueNums": "2"}, nil)
	}
	remote := pipeTo(t, b, authRemote)
	if resp := invoke(t, remote, create()); resp.Code != remoting.RespNoPermission {
		t.Errorf("create topic from 10.1.2.3 without an ACL: %d %q; want NO_PERMISSION", resp.Code, resp.Remark)
	}
	// Signed as admin of some file the broker does not check: no different.
	if resp := invoke(t, remote, signReq(create(), "admin", authAdminSecret)); resp.Code != remoting.RespNoPermission {
		t.Errorf("signed create topic from 10.1.2.3 without an ACL: %d %q; want NO_PERMISSION", resp.Code, resp.Remark)
	}
	if _, ok := b.topics.Get("NoACL"); ok {
		t.Fatal("a remote peer created a topic without an ACL")
	}
	local := pipeTo(t, b, authLoopback)
	if resp := invoke(t, local, create()); resp.Code != remoting.RespSuccess {
		t.Errorf("create topic from 127.0.0.1 without an ACL: %d %q", resp.Code, resp.Remark)
	}
	if _, ok := b.topics.Get("NoACL"); !ok {
		t.Error("topic NoACL missing after a loopback create")
	}
	// Unsigned client requests are served from anywhere.
	if resp := invoke(t, remote, authSendReq("NoACL")); resp.Code != remoting.RespSuccess {
		t.Errorf("unsigned send from 10.1.2.3 without an ACL: %d %q", resp.Code, resp.Remark)
	}
}

// TestAuthSign: a broker signs its own requests with its Credentials so
// that peers checking the same ACL accept them, and leaves requests that
// are signed already (a reader forwarding its clients') as they are.
func TestAuthSign(t *testing.T) {
	b, logs := newAuthBroker(t)

	req := remoting.NewRequest(remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "Signed", "readQueueNums": "1", "writeQueueNums": "1"}, []byte("body"))
	b.sign(req)
	sig := req.Ext(remoting.FieldSignature)
	if req.Ext(remoting.FieldAccessKey) != "admin" || sig == "" {
		t.Fatalf("signed request fields: %v", req.ExtFields)
	}
	if !remoting.VerifySignature("admin", authCredSecret, req.ExtFields, req.Body, sig) {
		t.Fatal("b.sign's signature does not verify with the broker's credentials")
	}
	if remoting.VerifySignature("admin", authAdminSecret, req.ExtFields, req.Body, sig) {
		t.Fatal("b.sign's signature verifies with another secret")
	}
	for _, v := range req.ExtFields {
		if strings.Contains(v, authCredSecret) {
			t.Fatal("the signed request carries the secret key")
		}
	}

	// A request with no header fields at all.
	bare := remoting.NewRequest(remoting.ReqGetAllTopicConfig, nil, nil)
	b.sign(bare)
	if !remoting.VerifySignature("admin", authCredSecret, bare.ExtFields, bare.Body, bare.Ext(remoting.FieldSignature)) {
		t.Fatalf("b.sign of a request without fields: %v", bare.ExtFields)
	}

	// Already signed: kept.
	pre := signReq(authSendReq("A"), "pubA", authPubASecret)
	wantSig := pre.Ext(remoting.FieldSignature)
	b.sign(pre)
	if pre.Ext(remoting.FieldAccessKey) != "pubA" || pre.Ext(remoting.FieldSignature) != wantSig {
		t.Fatalf("b.sign replaced a signature: %v", pre.ExtFields)
	}
	if !remoting.VerifySignature("pubA", authPubASecret, pre.ExtFields, pre.Body, wantSig) {
		t.Fatal("a request signed before b.sign no longer verifies")
	}

	// Without credentials nothing is signed.
	nb := newTestBroker(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		nb.Shutdown(ctx)
	})
	plain := authSendReq("A")
	nb.sign(plain)
	if _, ok := plain.ExtFields[remoting.FieldSignature]; ok {
		t.Fatalf("a broker without credentials signed: %v", plain.ExtFields)
	}

	// The broker's signature passes a peer whose ACL gives its credentials
	// (the admin account, with the credential secret) admin rights.
	table, err := acl.Parse([]byte(strings.Replace(authACLFile, authAdminSecret, authCredSecret, 1)))
	if err != nil {
		t.Fatal(err)
	}
	peer, err := New(context.Background(), Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", AutoCreateTopics: true,
		ACL:    acl.NewStatic(table, slog.New(slog.NewTextHandler(io.Discard, nil))),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Store:  store.Config{SegmentSize: 1 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		peer.Shutdown(ctx)
	})
	if resp := invoke(t, pipeTo(t, peer, authRemote), req); resp.Code != remoting.RespSuccess {
		t.Fatalf("a peer checking the ACL refused the broker's signed create: %d %q", resp.Code, resp.Remark)
	}
	if _, ok := peer.topics.Get("Signed"); !ok {
		t.Fatal("the broker's signed create did not create the topic")
	}
	if strings.Contains(logs.String(), authCredSecret) {
		t.Fatal("the log holds the broker's secret key")
	}
}

// TestAuthSendBackNeedsTopicSub: CONSUMER_SEND_MSG_BACK copies the message
// at a commit-log offset into the group's retry or dead-letter topic, which
// the group's consumers may pull. An account may therefore send back only
// messages of topics it may subscribe to; otherwise SUB on any one group
// reads every topic of the broker (commit-log offsets are sequential and
// easy to guess).
func TestAuthSendBackNeedsTopicSub(t *testing.T) {
	b, _ := newAuthBroker(t)
	c := pipeTo(t, b, authLoopback)
	sendAt := func(topic, body string) int64 {
		t.Helper()
		req := authSendReq(topic)
		req.Body = []byte(body)
		resp := invoke(t, c, signReq(req, "admin", authAdminSecret))
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("admin send to %s: %d %q", topic, resp.Code, resp.Remark)
		}
		_, off, err := remoting.ParseOffsetMsgID(resp.Ext("msgId"))
		if err != nil {
			t.Fatalf("msgId %q: %v", resp.Ext("msgId"), err)
		}
		return off
	}
	secretAt := sendAt("A", "secret-of-A")
	ownAt := sendAt("B", "message-of-B")
	sendBack := func(off int64, originTopic string) *remoting.Command {
		return invoke(t, c, signReq(remoting.NewRequest(remoting.ReqConsumerSendMsgBack, map[string]string{
			"group": "gb", "offset": strconv.FormatInt(off, 10), "delayLevel": "-1", "originTopic": originTopic,
			"maxReconsumeTimes": "16"}, nil), "consumerB", authConsBSecret))
	}
	// A consumer of B may send back a message of B.
	if resp := sendBack(ownAt, "B"); resp.Code != remoting.RespSuccess {
		t.Fatalf("consumerB sends back a message of B: %d %q", resp.Code, resp.Remark)
	}
	// Not a message of A, whatever originTopic claims.
	for _, origin := range []string{"A", "B", ""} {
		if resp := sendBack(secretAt, origin); resp.Code == remoting.RespSuccess {
			t.Errorf("BUG: consumerB (SUB on topic B and group gb only) sent back the message of topic A at commit-log offset %d "+
				"(originTopic %q): %d; CONSUMER_SEND_MSG_BACK is authorized by the group alone (broker/auth.go authNeedsOf) and "+
				"handleSendBack copies whatever message is at the offset", secretAt, origin, resp.Code)
		}
	}
	// And it cannot read A's message from its dead-letter topic.
	resp := invoke(t, c, signReq(authPullReq(DLQTopic("gb"), "gb"), "consumerB", authConsBSecret))
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("consumerB pulls %s: %d %q", DLQTopic("gb"), resp.Code, resp.Remark)
	}
	var bodies []string
	for rest := resp.Body; len(rest) > 0; {
		m, err := remoting.DecodeMessageExt(rest)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(m.Body))
		rest = rest[binary.BigEndian.Uint32(rest):]
	}
	if !slices.Contains(bodies, "message-of-B") {
		t.Errorf("%s holds %q; want the message of B sent back", DLQTopic("gb"), bodies)
	}
	if slices.Contains(bodies, "secret-of-A") {
		t.Errorf("BUG: consumerB read topic A's message from %s: %q", DLQTopic("gb"), bodies)
	}
}
