package e2e

// Authentication and authorization end to end (issue 11): `strata` processes
// started with --acl-file, the real rocketmq-client-go with and without the
// right credentials, raw remoting frames signed, unsigned and tampered with,
// the CVE-2023-33246 / CVE-2023-37582 class of configuration exploits
// against a standalone server, a separate name server and a tier reader, and
// --require-auth without an ACL file.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/strata-mq/strata/remoting"
)

// aclCred is an access key and its secret.
type aclCred struct{ ak, sk string }

// The accounts of aclFileText.
var (
	aclAdmin   = aclCred{"admin", "admin-secret-0001"}
	aclPubA    = aclCred{"pubA", "pubA-secret-0002"}
	aclSubOnly = aclCred{"subOnly", "subOnly-secret-0003"}
	aclAllAB   = aclCred{"allAB", "allAB-secret-0004"}
	// Not in the file, or with the wrong secret.
	aclWrongSecret = aclCred{"allAB", "wrong-secret-0005"}
	aclUnknown     = aclCred{"nobody", "nobody-secret-0006"}
	aclAdminWrong  = aclCred{"admin", "not-the-admin-secret"}
)

// aclFileText: an admin; pubA may publish to A only and use no group;
// subOnly may subscribe to every topic and group and publish nothing; allAB
// may publish and subscribe A and every topic starting with B, and consume
// in group g1 only.
var aclFileText = fmt.Sprintf(`accounts:
  - accessKey: %s
    secretKey: %q
    admin: true
  - accessKey: %s
    secretKey: %q
    topicPerms: [A=PUB]
    defaultGroupPerm: DENY
  - accessKey: %s
    secretKey: %q
    defaultTopicPerm: SUB
    defaultGroupPerm: SUB
  - accessKey: %s
    secretKey: %q
    topicPerms: [A=PUB|SUB, "B*=PUB|SUB"]
    groupPerms: [g1=SUB]
`, aclAdmin.ak, aclAdmin.sk, aclPubA.ak, aclPubA.sk, aclSubOnly.ak, aclSubOnly.sk, aclAllAB.ak, aclAllAB.sk)

// aclSecrets are every secret the tests use: none may reach a log.
var aclSecrets = []string{aclAdmin.sk, aclPubA.sk, aclSubOnly.sk, aclAllAB.sk, aclWrongSecret.sk, aclUnknown.sk, aclAdminWrong.sk}

// writeACLFile writes aclFileText to a file of t's (mode 600, as the
// broker asks of a file holding secrets).
func writeACLFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "acl.yml")
	if err := os.WriteFile(p, []byte(aclFileText), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// aclSign returns a copy of ext signed as c over body (PROTOCOL.md §7).
func aclSign(c aclCred, ext map[string]string, body []byte) map[string]string {
	out := maps.Clone(ext)
	if out == nil {
		out = map[string]string{}
	}
	out[remoting.FieldAccessKey] = c.ak
	out[remoting.FieldSignature] = remoting.Signature(c.ak, c.sk, out, body)
	return out
}

// aclInvoke sends one request signed as c, or unsigned when c is nil.
func aclInvoke(t testing.TB, addr string, c *aclCred, code int16, ext map[string]string, body []byte) *remoting.Command {
	t.Helper()
	if c != nil {
		ext = aclSign(*c, ext, body)
	}
	resp, err := invoke(addr, code, ext, body)
	if err != nil {
		t.Fatalf("%s to %s: %v", remoting.RequestCodeName(code), addr, err)
	}
	return resp
}

// aclWant checks that resp has code want and, when remark is not empty,
// exactly that remark.
func aclWant(t testing.TB, what string, resp *remoting.Command, want int16, remark string) {
	t.Helper()
	switch {
	case resp.Code != want:
		t.Errorf("%s: code %d %q, want %d", what, resp.Code, resp.Remark, want)
	case remark != "" && resp.Remark != remark:
		t.Errorf("%s: remark %q, want exactly %q", what, resp.Remark, remark)
	}
}

// aclSendExt is the header of a SEND_MESSAGE_V2 to queue 0 of topic
// (broker/replication_test.go's sendRT).
func aclSendExt(topic string) map[string]string {
	return map[string]string{"a": "pg", "b": topic, "c": "TBW102", "d": "2", "e": "0", "f": "0",
		"g": strconv.FormatInt(time.Now().UnixMilli(), 10), "h": "0", "i": "", "j": "0", "k": "false", "l": "0"}
}

// aclPullExt is the header of a non-suspending PULL_MESSAGE.
func aclPullExt(topic, group string) map[string]string {
	return map[string]string{"consumerGroup": group, "topic": topic, "queueId": "0", "queueOffset": "0",
		"maxMsgNums": "32", "sysFlag": "0", "commitOffset": "0", "suspendTimeoutMillis": "0",
		"subscription": "*", "subVersion": "0"}
}

// ---------------------------------------------------------------------------
// Processes with an ACL: the harness's readiness checks are unsigned, so
// these wait with signed requests.

// aclNode is a `strata` child process started with --acl-file.
type aclNode struct{ *readerNode }

// aclStartNode starts a node, ready once a signed cluster query lists its
// broker (if any), and has t stop it (and check its exit code and log) at
// the end.
func aclStartNode(t *testing.T, name, namesrv, broker, httpAddr string, env []string, args ...string) *aclNode {
	t.Helper()
	return &aclNode{startNode(t, name, namesrv, broker, httpAddr, env, func(n *readerNode) func() (*remoting.Command, error) {
		return func() (*remoting.Command, error) {
			return invoke(n.namesrv, remoting.ReqGetBrokerClusterInfo, aclSign(aclSubOnly, nil, nil), nil)
		}
	}, args...)}
}

// aclStartStandalone starts `strata standalone --acl-file aclFile`.
func aclStartStandalone(t *testing.T, aclFile string, extra ...string) *aclNode {
	t.Helper()
	addrs, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := append([]string{"standalone", "--data-dir", filepath.Join(dir, "data"), "--listen", addrs[0],
		"--namesrv-listen", addrs[1], "--http-listen", addrs[2], "--segment-size", "64MiB", "--acl-file", aclFile}, extra...)
	n := aclStartNode(t, "standalone", addrs[1], addrs[0], addrs[2], nil, args...)
	n.dataDir = filepath.Join(dir, "data")
	return n
}

// aclStartNamesrv starts `strata namesrv --acl-file aclFile`.
func aclStartNamesrv(t *testing.T, aclFile string) *aclNode {
	t.Helper()
	addrs, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	return aclStartNode(t, "namesrv", addrs[0], "", addrs[1], nil,
		"namesrv", "--namesrv-listen", addrs[0], "--http-listen", addrs[1], "--acl-file", aclFile)
}

// aclStartReader starts a tier reader of tierURL registering with namesrv,
// both checking aclFile (the reader signs its registration as the file's
// admin account).
func aclStartReader(t *testing.T, namesrv, aclFile, tierURL string) *aclNode {
	t.Helper()
	addrs, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n := aclStartNode(t, "reader", namesrv, addrs[0], addrs[1], nil,
		"broker", "--role", "reader", "--broker-name", readerBrokerName, "--broker-id", "1",
		"--tier", tierURL, "--namesrv", namesrv, "--listen", addrs[0], "--http-listen", addrs[1],
		"--data-dir", filepath.Join(dir, "data"), "--acl-file", aclFile)
	n.dataDir = filepath.Join(dir, "data")
	return n
}

// createTopicAs creates topic on the node's broker with a request signed
// as c and waits until the name server routes it.
func (n *aclNode) createTopicAs(t *testing.T, c aclCred, topic string, queues int) {
	t.Helper()
	resp := aclInvoke(t, n.broker, &c, remoting.ReqUpdateAndCreateTopic, map[string]string{
		"topic": topic, "defaultTopic": "TBW102", "readQueueNums": strconv.Itoa(queues),
		"writeQueueNums": strconv.Itoa(queues), "perm": "6", "topicFilterType": "SINGLE_TAG",
		"topicSysFlag": "0", "order": "false"}, nil)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("create topic %s as %s: code %d %q", topic, c.ak, resp.Code, resp.Remark)
	}
	var last string
	waitFor(t, 10*time.Second, "route of "+topic, func() bool {
		resp, err := invoke(n.namesrv, remoting.ReqGetRouteInfoByTopic, aclSign(aclSubOnly, map[string]string{"topic": topic}, nil), nil)
		if err != nil || resp.Code != remoting.RespSuccess {
			last = fmt.Sprint(resp, err)
			return false
		}
		var r struct {
			QueueDatas []struct {
				ReadQueueNums int `json:"readQueueNums"`
			} `json:"queueDatas"`
		}
		if err := json.Unmarshal(resp.Body, &r); err != nil {
			last = err.Error()
			return false
		}
		got := 0
		for _, q := range r.QueueDatas {
			got += q.ReadQueueNums
		}
		last = fmt.Sprintf("%d read queues", got)
		return got >= queues
	}, func() string { return last })
}

// maxOffsetsAs sums GET_MAX_OFFSET over the queues of topic, asking as c.
func (n *aclNode) maxOffsetsAs(t *testing.T, c aclCred, topic string, queues int) int64 {
	t.Helper()
	var sum int64
	for q := range queues {
		resp := aclInvoke(t, n.broker, &c, remoting.ReqGetMaxOffset, map[string]string{"topic": topic, "queueId": strconv.Itoa(q)}, nil)
		v, err := strconv.ParseInt(resp.Ext("offset"), 10, 64)
		if resp.Code != remoting.RespSuccess || err != nil {
			t.Fatalf("max offset of %s/%d as %s: code %d %q, offset %q", topic, q, c.ak, resp.Code, resp.Remark, resp.Ext("offset"))
		}
		sum += v
	}
	return sum
}

// waitCommittedAs is waitCommitted with the broker's max offsets asked as
// cred.
func (n *aclNode) waitCommittedAs(t *testing.T, cred aclCred, c *pushConsumer, topic string) {
	t.Helper()
	want := map[int]int64{}
	for q := range c.committed(topic) {
		resp := aclInvoke(t, n.broker, &cred, remoting.ReqGetMaxOffset, map[string]string{"topic": topic, "queueId": strconv.Itoa(q)}, nil)
		v, err := strconv.ParseInt(resp.Ext("offset"), 10, 64)
		if resp.Code != remoting.RespSuccess || err != nil {
			t.Fatalf("max offset of %s/%d as %s: code %d %q", topic, q, cred.ak, resp.Code, resp.Remark)
		}
		want[q] = v
	}
	if len(want) == 0 {
		t.Fatalf("%s holds no queue of %s", c.name, topic)
	}
	waitFor(t, 15*time.Second, "the consumer's offsets to reach the end of "+topic, func() bool {
		got := c.committed(topic)
		for q, w := range want {
			if got[q] < w {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("committed %v, max offsets %v", c.committed(topic), want) })
}

// aclLog returns the node's log so far.
func (n *aclNode) aclLog(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// aclCheckNoSecrets fails t if a secret appears in a log.
func aclCheckNoSecrets(t *testing.T, nodes ...*aclNode) {
	t.Helper()
	for _, n := range nodes {
		log := n.aclLog(t)
		for _, sk := range aclSecrets {
			if strings.Contains(log, sk) {
				t.Errorf("%s: the log holds the secret %q", n.name, sk)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// rocketmq-client-go with credentials.

// aclTrySend starts a producer signing as creds (none when nil), sends one
// message to topic and returns the error (a producer that does not start
// counts as a failed send). The producer makes no retries.
func (n *aclNode) aclTrySend(t *testing.T, creds *aclCred, topic, body string) (*primitive.SendResult, error) {
	t.Helper()
	opts := []producer.Option{
		producer.WithNsResolver(n.resolver()),
		producer.WithGroupName(uniq("aclpg")),
		producer.WithInstanceName(uniq("aclp")),
		producer.WithRetry(0),
	}
	if creds != nil {
		opts = append(opts, producer.WithCredentials(primitive.Credentials{AccessKey: creds.ak, SecretKey: creds.sk}))
	}
	p, err := rocketmq.NewProducer(opts...)
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("start producer: %w", err)
	}
	defer p.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(body)))
	if err == nil && r.Status != primitive.SendOK {
		err = fmt.Errorf("status %v", r.Status)
	}
	return r, err
}

// TestACLRocketMQClient: a standalone server with --acl-file (and
// --require-auth) serves the real rocketmq-client-go signing with the right
// credentials and refuses every request with wrong, unknown or no
// credentials, or without the permission; raw frames show that a signature
// covers every field and the body; the audit log records the denials and
// no secret reaches the log.
func TestACLRocketMQClient(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	s := aclStartStandalone(t, writeACLFile(t), "--require-auth")
	const queues = 2
	s.createTopicAs(t, aclAdmin, "A", queues)
	s.createTopicAs(t, aclAdmin, "B", queues)

	var accepted []string          // bodies stored in A
	refused := map[string]string{} // bodies that must not be stored: why
	const denied = "access denied"

	// Raw frames to the broker.
	rawSend := func(what string, c *aclCred, topic, body string) *remoting.Command {
		t.Helper()
		resp := aclInvoke(t, s.broker, c, remoting.ReqSendMessageV2, aclSendExt(topic), []byte(body))
		t.Logf("raw %s: code %d %q", what, resp.Code, resp.Remark)
		return resp
	}
	if resp := rawSend("send to A signed by allAB", &aclAllAB, "A", "raw-allAB"); resp.Code != remoting.RespSuccess {
		t.Errorf("a correctly signed send to A by allAB: code %d %q", resp.Code, resp.Remark)
	} else {
		accepted = append(accepted, "raw-allAB")
	}
	if resp := rawSend("send to A signed by pubA", &aclPubA, "A", "raw-pubA"); resp.Code != remoting.RespSuccess {
		t.Errorf("a correctly signed send to A by pubA: code %d %q", resp.Code, resp.Remark)
	} else {
		accepted = append(accepted, "raw-pubA")
	}
	for _, c := range []struct {
		what string
		cred *aclCred
		body string
	}{
		{"unsigned", nil, "raw-unsigned"},
		{"wrong secret", &aclWrongSecret, "raw-wrong-secret"},
		{"unknown access key", &aclUnknown, "raw-unknown"},
	} {
		aclWant(t, "raw send to A, "+c.what, rawSend(c.what, c.cred, "A", c.body), remoting.RespNoPermission, denied)
		refused[c.body] = c.what
	}
	// Signed, then the body changed.
	{
		ext := aclSign(aclAllAB, aclSendExt("A"), []byte("raw-original"))
		resp, err := invoke(s.broker, remoting.ReqSendMessageV2, ext, []byte("raw-tampered"))
		if err != nil {
			t.Fatal(err)
		}
		aclWant(t, "a send whose body was changed after signing", resp, remoting.RespNoPermission, denied)
		refused["raw-tampered"], refused["raw-original"] = "tampered body", "tampered body"
	}
	// An AccessKey and no Signature; a Signature and no AccessKey.
	{
		ext := aclSendExt("A")
		ext[remoting.FieldAccessKey] = aclAllAB.ak
		resp, err := invoke(s.broker, remoting.ReqSendMessageV2, ext, []byte("raw-no-signature"))
		if err != nil {
			t.Fatal(err)
		}
		aclWant(t, "a send with an access key and no signature", resp, remoting.RespNoPermission, denied)
		refused["raw-no-signature"] = "no signature"

		ext = aclSign(aclAllAB, aclSendExt("A"), []byte("raw-no-access-key"))
		delete(ext, remoting.FieldAccessKey)
		resp, err = invoke(s.broker, remoting.ReqSendMessageV2, ext, []byte("raw-no-access-key"))
		if err != nil {
			t.Fatal(err)
		}
		aclWant(t, "a send with a signature and no access key", resp, remoting.RespNoPermission, denied)
		refused["raw-no-access-key"] = "no access key"
	}
	// The right key over other fields: a signature of a send to B (which
	// allAB may do) on a send to A, and of another queue.
	{
		body := []byte("raw-other-fields")
		other := aclSign(aclAllAB, aclSendExt("B"), body)
		ext := aclSendExt("A")
		ext[remoting.FieldAccessKey], ext[remoting.FieldSignature] = aclAllAB.ak, other[remoting.FieldSignature]
		resp, err := invoke(s.broker, remoting.ReqSendMessageV2, ext, body)
		if err != nil {
			t.Fatal(err)
		}
		aclWant(t, "a send to A carrying the signature of a send to B", resp, remoting.RespNoPermission, denied)

		ext = aclSign(aclAllAB, aclSendExt("A"), body)
		ext["e"] = "1" // the queue id, after signing
		resp, err = invoke(s.broker, remoting.ReqSendMessageV2, ext, body)
		if err != nil {
			t.Fatal(err)
		}
		aclWant(t, "a send whose queue id was changed after signing", resp, remoting.RespNoPermission, denied)
		refused[string(body)] = "signature over other fields"
	}
	// allAB's valid signature presented under pubA's access key.
	{
		body := []byte("raw-swapped-key")
		ext := aclSign(aclAllAB, aclSendExt("A"), body)
		ext[remoting.FieldAccessKey] = aclPubA.ak
		resp, err := invoke(s.broker, remoting.ReqSendMessageV2, ext, body)
		if err != nil {
			t.Fatal(err)
		}
		aclWant(t, "allAB's signature under pubA's access key", resp, remoting.RespNoPermission, denied)
		refused[string(body)] = "swapped access key"
	}
	// Authenticated, without the permission.
	if resp := rawSend("send to B signed by pubA", &aclPubA, "B", "raw-pubA-B"); resp.Code != remoting.RespNoPermission ||
		!strings.HasPrefix(resp.Remark, denied) {
		t.Errorf("pubA's send to B: code %d %q, want %d %q…", resp.Code, resp.Remark, remoting.RespNoPermission, denied)
	}
	if resp := rawSend("send to A signed by subOnly", &aclSubOnly, "A", "raw-subOnly"); resp.Code != remoting.RespNoPermission ||
		!strings.HasPrefix(resp.Remark, denied) {
		t.Errorf("subOnly's send to A: code %d %q, want %d %q…", resp.Code, resp.Remark, remoting.RespNoPermission, denied)
	}
	refused["raw-subOnly"] = "subOnly may not publish"
	for _, c := range []struct {
		what        string
		cred        aclCred
		topic, grp  string
		wantSuccess bool
	}{
		{"pubA pulls A in g1 (no SUB on A, no groups)", aclPubA, "A", "g1", false},
		{"allAB pulls A in g2 (no SUB on group g2)", aclAllAB, "A", "g2", false},
		{"allAB pulls A in g1", aclAllAB, "A", "g1", true},
		{"subOnly pulls A in any group", aclSubOnly, "A", "g9", true},
	} {
		resp := aclInvoke(t, s.broker, &c.cred, remoting.ReqPullMessage, aclPullExt(c.topic, c.grp), nil)
		if ok := resp.Code != remoting.RespNoPermission; ok != c.wantSuccess {
			t.Errorf("%s: code %d %q, want permitted %v", c.what, resp.Code, resp.Remark, c.wantSuccess)
		} else {
			t.Logf("%s: code %d %q", c.what, resp.Code, resp.Remark)
		}
	}
	// The name server: any account may read routes, no one unsigned.
	for _, c := range []struct {
		what string
		cred *aclCred
		want int16
	}{
		{"unsigned", nil, remoting.RespNoPermission},
		{"wrong secret", &aclWrongSecret, remoting.RespNoPermission},
		{"unknown access key", &aclUnknown, remoting.RespNoPermission},
		{"subOnly", &aclSubOnly, remoting.RespSuccess},
	} {
		resp := aclInvoke(t, s.namesrv, c.cred, remoting.ReqGetRouteInfoByTopic, map[string]string{"topic": "A"}, nil)
		remark := ""
		if c.want != remoting.RespSuccess {
			remark = denied
		}
		aclWant(t, "route of A from the name server, "+c.what, resp, c.want, remark)
	}

	// rocketmq-client-go.
	pAB := s.newProducer(t, producer.WithCredentials(primitive.Credentials{AccessKey: aclAllAB.ak, SecretKey: aclAllAB.sk}))
	msgs, bodies := textMessages("A", "client-allAB", 5)
	sendSync(t, pAB, msgs...)
	accepted = append(accepted, bodies...)
	if _, err := s.aclTrySend(t, &aclPubA, "A", "client-pubA"); err != nil {
		t.Errorf("pubA's send to A with rocketmq-client-go: %v", err)
	} else {
		accepted = append(accepted, "client-pubA")
	}
	for _, c := range []struct {
		what  string
		cred  *aclCred
		topic string
		body  string
	}{
		{"wrong secret", &aclWrongSecret, "A", "client-wrong-secret"},
		{"unknown access key", &aclUnknown, "A", "client-unknown"},
		{"no credentials", nil, "A", "client-unsigned"},
		{"pubA to B", &aclPubA, "B", "client-pubA-B"},
		{"subOnly to A", &aclSubOnly, "A", "client-subOnly"},
	} {
		r, err := s.aclTrySend(t, c.cred, c.topic, c.body)
		if err == nil {
			t.Errorf("rocketmq-client-go, %s: the send succeeded (%v)", c.what, r)
			continue
		}
		t.Logf("rocketmq-client-go, %s: refused: %v", c.what, err)
		if c.topic == "A" {
			refused[c.body] = c.what
		}
	}

	// A push consumer of g1 as allAB reads everything accepted, nothing
	// else.
	var col collector
	c := s.newPushConsumer(t, "g1",
		consumer.WithCredentials(primitive.Credentials{AccessKey: aclAllAB.ak, SecretKey: aclAllAB.sk}),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, "A", "*", col.handler("allAB"))
	waitFor(t, 30*time.Second, "allAB's push consumer of g1 to receive every accepted message", func() bool {
		return col.hasAll(accepted)
	}, func() string { return fmt.Sprintf("missing %v", col.missing(accepted)) })
	if n := s.maxOffsetsAs(t, aclAdmin, "A", queues); n != int64(len(accepted)) {
		t.Errorf("topic A holds %d messages, %d were accepted (%v)", n, len(accepted), accepted)
	}
	if n := s.maxOffsetsAs(t, aclSubOnly, "B", queues); n != 0 {
		t.Errorf("topic B holds %d messages; every send to it was refused", n)
	}
	for b, n := range col.bodies() {
		if why, bad := refused[b]; bad {
			t.Errorf("the consumer received %q (%d times), sent with %s", b, n, why)
		}
	}
	s.waitCommittedAs(t, aclAllAB, c, "A")

	// The audit log records the denials and their reasons; the answers
	// above did not.
	log := s.aclLog(t)
	var deniedLines []string
	for l := range strings.Lines(log) {
		if strings.Contains(l, "request denied") {
			deniedLines = append(deniedLines, l)
			if !strings.Contains(l, "component=audit") {
				t.Errorf("a denial logged outside the audit component: %s", l)
			}
		}
	}
	for _, reason := range []string{
		"unsigned request", "unknown access key", "bad signature",
		"no PUB permission on topic B", "no PUB permission on topic A", "no SUB permission on group g2",
		"access_key=" + aclPubA.ak, "access_key=" + aclSubOnly.ak, "access_key=" + aclUnknown.ak,
		"request=SEND_MESSAGE_V2", "request=GET_ROUTEINFO_BY_TOPIC",
	} {
		found := false
		for _, l := range deniedLines {
			if strings.Contains(l, reason) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no audit line of a denied request says %q", reason)
		}
	}
	if len(deniedLines) > 0 {
		t.Logf("%d audit lines of denied requests, e.g. %s", len(deniedLines), strings.TrimSpace(deniedLines[0]))
	}
	aclCheckNoSecrets(t, s)

	t.Run("send-back", func(t *testing.T) { aclSendBackProbe(t, s) })
	t.Logf("total %v", time.Since(t0).Round(time.Millisecond))
}

// aclSendBackProbe: CONSUMER_SEND_MSG_BACK names a commit-log offset and a
// group; allAB (SUB on group g1, no permission on topic C) must not be able
// to copy a message of C into g1's dead-letter topic and read it there.
func aclSendBackProbe(t *testing.T, s *aclNode) {
	s.createTopicAs(t, aclAdmin, "C", 1)
	const secret = "a message of topic C"
	resp := aclInvoke(t, s.broker, &aclAdmin, remoting.ReqSendMessageV2, aclSendExt("C"), []byte(secret))
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("admin's send to C: code %d %q", resp.Code, resp.Remark)
	}
	_, off, err := remoting.ParseOffsetMsgID(resp.Ext("msgId"))
	if err != nil {
		t.Fatalf("msgId %q: %v", resp.Ext("msgId"), err)
	}
	aclWant(t, "allAB pulls C in g1", aclInvoke(t, s.broker, &aclAllAB, remoting.ReqPullMessage, aclPullExt("C", "g1"), nil),
		remoting.RespNoPermission, "")

	sb := aclInvoke(t, s.broker, &aclAllAB, remoting.ReqConsumerSendMsgBack, map[string]string{
		"group": "g1", "offset": strconv.FormatInt(off, 10), "delayLevel": "-1", "originMsgId": "",
		"originTopic": "A", "unitMode": "false", "maxReconsumeTimes": "16"}, nil)
	t.Logf("allAB's CONSUMER_SEND_MSG_BACK of C's message (commit-log offset %d) into g1: code %d %q", off, sb.Code, sb.Remark)
	if sb.Code != remoting.RespSuccess {
		if sb.Code != remoting.RespNoPermission {
			t.Errorf("the send-back was refused with code %d, want 16 (no SUB permission on C)", sb.Code)
		}
		return // refused: what the ACL promises
	}
	t.Errorf("allAB, with no permission on topic C, had C's message copied into %%DLQ%%g1 (code %d)", sb.Code)
	pull := aclInvoke(t, s.broker, &aclAllAB, remoting.ReqPullMessage, aclPullExt("%DLQ%g1", "g1"), nil)
	leaked := false
	for b := pull.Body; pull.Code == remoting.RespSuccess && len(b) > 0; {
		n := remoting.RecordSize(b)
		if n <= 0 || n > len(b) {
			t.Fatalf("pull %%DLQ%%g1: bad record framing")
		}
		if m, err := remoting.DecodeMessageExt(b[:n]); err == nil && string(m.Body) == secret {
			leaked = true
		}
		b = b[n:]
	}
	if leaked {
		t.Errorf("allAB, with no permission on topic C, read C's message from %%DLQ%%g1 (%q)", secret)
	}
	t.Logf("the send-back was accepted but C's message is not readable from %%DLQ%%g1 (pull code %d %q)", pull.Code, pull.Remark)
}

// TestACLRefusesConfigExploits: the requests of CVE-2023-33246 (a broker
// configuration update that runs a command) and CVE-2023-37582 (a name
// server configuration update that writes a file), and the name server's
// key/value update, sent to a standalone server (both ports), a separate
// name server and a tier reader, all with --acl-file: unsigned and
// non-admin requests get NO_PERMISSION, an admin's are not carried out
// either; no file appears and every process still serves.
func TestACLRefusesConfigExploits(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	aclFile := writeACLFile(t)
	pwnDir := t.TempDir()
	const (
		reqGetBrokerConfig    int16 = 26
		reqUpdateNamesrvConf  int16 = 318
		reqGetNamesrvConfig   int16 = 319
		reqUpdateBrokerConfig       = remoting.ReqUpdateBrokerConfig // 25
		reqPutKVConfig              = remoting.ReqPutKVConfig        // 100
	)
	brokerBody := []byte("rocketmqHome=-c $@|sh . echo touch " + filepath.Join(pwnDir, "pwned") + "\nfilterServerNums=1\n")
	namesrvBody := []byte("configStorePath=" + filepath.Join(pwnDir, "pwned2") + "\nproductEnvName=test/path\n")
	type attack struct {
		name string
		code int16
		ext  map[string]string
		body []byte
	}
	attacks := []attack{
		{"UPDATE_BROKER_CONFIG", reqUpdateBrokerConfig, nil, brokerBody},
		{"UPDATE_NAMESRV_CONFIG", reqUpdateNamesrvConf, nil, namesrvBody},
		{"PUT_KV_CONFIG", reqPutKVConfig, map[string]string{"namespace": "ORDER_TOPIC_CONFIG", "key": "A",
			"value": "broker-a:4;" + filepath.Join(pwnDir, "pwned3")}, nil},
		{"GET_BROKER_CONFIG", reqGetBrokerConfig, nil, nil},
		{"GET_NAMESRV_CONFIG", reqGetNamesrvConfig, nil, nil},
	}

	s := aclStartStandalone(t, aclFile)
	ns := aclStartNamesrv(t, aclFile)
	r := aclStartReader(t, ns.namesrv, aclFile, "file://"+t.TempDir())
	targets := []struct {
		name string
		addr string
	}{
		{"standalone broker", s.broker},
		{"standalone name server", s.namesrv},
		{"name server", ns.namesrv},
		{"tier reader", r.broker},
	}
	for _, tg := range targets {
		for _, a := range attacks {
			what := fmt.Sprintf("%s to the %s", a.name, tg.name)
			for _, c := range []struct {
				who  string
				cred *aclCred
			}{
				{"unsigned", nil},
				{"signed by subOnly", &aclSubOnly},
				{"signed by pubA", &aclPubA},
				{"admin's key, wrong secret", &aclAdminWrong},
			} {
				resp := aclInvoke(t, tg.addr, c.cred, a.code, a.ext, a.body)
				aclWant(t, what+", "+c.who, resp, remoting.RespNoPermission, "access denied")
			}
			resp := aclInvoke(t, tg.addr, &aclAdmin, a.code, a.ext, a.body)
			if resp.Code == remoting.RespSuccess {
				t.Errorf("%s, signed by admin: carried out (code 0 %q)", what, resp.Remark)
			} else {
				t.Logf("%s, signed by admin: code %d %q", what, resp.Code, resp.Remark)
			}
		}
	}

	// Nothing ran, nothing was written, nothing was changed.
	time.Sleep(500 * time.Millisecond) // a command run in the background would have touched its file by now
	if ents, err := os.ReadDir(pwnDir); err != nil || len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %v (err %v): an exploit request was carried out", pwnDir, names, err)
	}
	for _, n := range []*aclNode{s, ns, r} {
		if !n.running() {
			t.Fatalf("%s exited: %v\n%s", n.name, n.exitErr(), n.logTail(40))
		}
		log := n.aclLog(t)
		for l := range strings.Lines(log) {
			if strings.Contains(l, "admin change") {
				t.Errorf("%s: an admin change was logged: %s", n.name, strings.TrimSpace(l))
			}
		}
		if !strings.Contains(log, "request denied") {
			t.Errorf("%s: no denial in the audit log", n.name)
		}
	}
	aclCheckNoSecrets(t, s, ns, r)

	// Every process still serves an ordinary account.
	aclWant(t, "route of TBW102 from the standalone name server as subOnly",
		aclInvoke(t, s.namesrv, &aclSubOnly, remoting.ReqGetRouteInfoByTopic, map[string]string{"topic": "TBW102"}, nil), remoting.RespSuccess, "")
	resp := aclInvoke(t, ns.namesrv, &aclSubOnly, remoting.ReqGetBrokerClusterInfo, nil, nil)
	aclWant(t, "cluster info from the name server as subOnly", resp, remoting.RespSuccess, "")
	if !strings.Contains(string(resp.Body), `"`+r.broker+`"`) {
		t.Errorf("the name server no longer lists the tier reader %s: %s", r.broker, resp.Body)
	}
	aclWant(t, "tier status from the tier reader as subOnly",
		aclInvoke(t, r.broker, &aclSubOnly, remoting.ReqGetTierStatus, nil, nil), remoting.RespSuccess, "")
	s.createTopicAs(t, aclAdmin, "A", 1)
	if _, err := s.aclTrySend(t, &aclAllAB, "A", "after the exploits"); err != nil {
		t.Errorf("allAB's send to A after the exploit requests: %v", err)
	}
	t.Logf("total %v", time.Since(t0).Round(time.Millisecond))
}

// TestACLRequireAuth: with --require-auth and no --acl-file each server
// command refuses to start, naming the flag; an ACL file that does not
// parse stops it too.
func TestACLRequireAuth(t *testing.T) {
	t.Parallel()
	badFile := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(badFile, []byte("accounts:\n  - accessKey: short\n    secretKey: abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs, err := freePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	broker := []string{"broker", "--data-dir", filepath.Join(dir, "b"), "--listen", addrs[0], "--http-listen", addrs[1], "--namesrv", addrs[2]}
	namesrv := []string{"namesrv", "--namesrv-listen", addrs[2], "--http-listen", addrs[1]}
	standalone := []string{"standalone", "--data-dir", filepath.Join(dir, "s"), "--listen", addrs[0], "--namesrv-listen", addrs[2],
		"--http-listen", addrs[1]}
	for _, c := range []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"broker --require-auth", slices.Concat(broker, []string{"--require-auth"}), nil, []string{"--require-auth"}},
		{"namesrv --require-auth", slices.Concat(namesrv, []string{"--require-auth"}), nil, []string{"--require-auth"}},
		{"standalone --require-auth", slices.Concat(standalone, []string{"--require-auth"}), nil, []string{"--require-auth"}},
		{"broker with STRATA_REQUIRE_AUTH=true", broker, []string{"STRATA_REQUIRE_AUTH=true"}, []string{"--require-auth"}},
		{"broker with an invalid ACL file", slices.Concat(broker, []string{"--acl-file", badFile, "--require-auth"}), nil, []string{"--acl-file", "secretKey"}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, strataBin, c.args...)
		cmd.Env = append(os.Environ(), c.env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		var ee *exec.ExitError
		switch {
		case timedOut:
			t.Errorf("%s was still running after 30 s:\n%s", c.name, out)
		case !errors.As(err, &ee) || ee.ExitCode() <= 0:
			t.Errorf("%s: %v, want a non-zero exit\n%s", c.name, err, out)
		default:
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("%s exited %d without mentioning %q:\n%s", c.name, ee.ExitCode(), w, out)
				}
			}
			if !t.Failed() {
				t.Logf("%s exits %d: %s", c.name, ee.ExitCode(), readerLastLine(out))
			}
		}
	}
}
