package e2e

// TLS end to end (issue 11, "TLS round trip"): `strata` processes started
// with --tls-cert/--tls-key/--tls-ca (and --tls-client-auth), the real
// rocketmq-client-go with WithTls, Strata's client with WithTLS and with
// STRATA_TLS/STRATA_TLS_CA (through `strata produce` and `strata consume`),
// certificate reload without a restart, replication over the TLS
// replication port, and mutual TLS.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/tlstest"
	"github.com/strata-mq/strata/remoting"
)

// ---------------------------------------------------------------------------
// TLS configurations and requests.

// tlsRoots returns a client configuration that verifies servers against the
// CA certificates in caFile.
func tlsRoots(t testing.TB, caFile string) *tls.Config {
	t.Helper()
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no PEM certificate", caFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
}

// tlsWithCert returns a copy of tc presenting the certificate in certFile
// and keyFile.
func tlsWithCert(t testing.TB, tc *tls.Config, certFile, keyFile string) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c := tc.Clone()
	c.Certificates = []tls.Certificate{cert}
	return c
}

// tlsFlags are the server flags of a certificate, a key and a CA file.
func tlsFlags(cert, key, caFile string) []string {
	return []string{"--tls-cert", cert, "--tls-key", key, "--tls-ca", caFile}
}

// tlsInvoke sends one request to addr over a fresh TLS connection.
func tlsInvoke(tc *tls.Config, addr string, code int16, ext map[string]string, body []byte) (*remoting.Command, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := remoting.Dial(ctx, addr, remoting.ConnOptions{TLS: tc})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Invoke(ctx, remoting.NewRequest(code, ext, body))
}

// tlsPeerCert completes a handshake with addr and returns the certificate
// the server presented (verified as tc says).
func tlsPeerCert(tc *tls.Config, addr string) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, tc)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	certs := c.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no certificate presented")
	}
	return certs[0], nil
}

// tlsCertSerial returns the serial number of the certificate in certFile.
func tlsCertSerial(t testing.TB, certFile string) *big.Int {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", certFile)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

// tlsReplStatus is replStatus over TLS.
func tlsReplStatus(tc *tls.Config, addr string) (client.ReplicationStatus, error) {
	resp, err := tlsInvoke(tc, addr, remoting.ReqGetReplicationStatus, nil, nil)
	if err != nil {
		return client.ReplicationStatus{}, err
	}
	if resp.Code != remoting.RespSuccess {
		return client.ReplicationStatus{}, fmt.Errorf("code %d %q", resp.Code, resp.Remark)
	}
	var st client.ReplicationStatus
	err = json.Unmarshal(resp.Body, &st)
	return st, err
}

// ---------------------------------------------------------------------------
// Processes with TLS ports: the harness's readiness checks speak plain
// remoting, so these wait with TLS requests.

// tlsNode is a `strata` child process whose remoting ports speak TLS.
type tlsNode struct {
	*readerNode
	tc *tls.Config // dials its ports (readiness, inspection)
}

// tlsStartNode starts a node and has t stop it (and check its exit code
// and log) at the end. With broker set, it is ready once namesrv lists it.
func tlsStartNode(t *testing.T, name, namesrv, broker, httpAddr string, tc *tls.Config, args ...string) *tlsNode {
	t.Helper()
	return &tlsNode{startNode(t, name, namesrv, broker, httpAddr, nil, func(n *readerNode) func() (*remoting.Command, error) {
		return func() (*remoting.Command, error) {
			return tlsInvoke(tc, n.namesrv, remoting.ReqGetBrokerClusterInfo, nil, nil)
		}
	}, args...), tc}
}

// tlsStartStandalone starts `strata standalone` with the flags given (the
// TLS ones among them).
func tlsStartStandalone(t *testing.T, tc *tls.Config, flags ...string) *tlsNode {
	t.Helper()
	addrs, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data")
	args := append([]string{"standalone", "--data-dir", data, "--listen", addrs[0],
		"--namesrv-listen", addrs[1], "--http-listen", addrs[2], "--segment-size", "64MiB"}, flags...)
	n := tlsStartNode(t, "standalone", addrs[1], addrs[0], addrs[2], tc, args...)
	n.dataDir = data
	return n
}

// waitRouteTLS waits until the name server, asked over TLS, routes topic
// with at least queues read queues, and returns how many it routes.
func (n *tlsNode) waitRouteTLS(t testing.TB, topic string, queues int) int {
	t.Helper()
	var last string
	got := 0
	waitFor(t, 15*time.Second, "route of "+topic, func() bool {
		resp, err := tlsInvoke(n.tc, n.namesrv, remoting.ReqGetRouteInfoByTopic, map[string]string{"topic": topic}, nil)
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
		got = 0
		for _, q := range r.QueueDatas {
			got += q.ReadQueueNums
		}
		last = fmt.Sprintf("%d read queues", got)
		return got >= queues
	}, func() string { return last })
	return got
}

// createTopicTLS creates topic on the node's broker over TLS and waits
// for its route.
func (n *tlsNode) createTopicTLS(t testing.TB, topic string, queues int) {
	t.Helper()
	resp, err := tlsInvoke(n.tc, n.broker, remoting.ReqUpdateAndCreateTopic, map[string]string{
		"topic": topic, "defaultTopic": "TBW102", "readQueueNums": strconv.Itoa(queues),
		"writeQueueNums": strconv.Itoa(queues), "perm": "6", "topicFilterType": "SINGLE_TAG",
		"topicSysFlag": "0", "order": "false"}, nil)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("create topic %s: code %d %q", topic, resp.Code, resp.Remark)
	}
	n.waitRouteTLS(t, topic, queues)
}

// ---------------------------------------------------------------------------
// Clients.

// rmqOwnRemoting returns a rocketmq-client-go option (O is producer.Option
// or consumer.Option) that gives the client a private copy of its
// remoting configuration. rocketmq-client-go's options point every client
// at one process-wide remote.DefaultRemotingClientConfig, and WithTls (as
// WithRemotingTimeout) writes through that pointer: without the copy, one
// WithTls(true) would make every later client of the test binary, in every
// other test, dial TLS (and race with their dials). Put it before WithTls.
func rmqOwnRemoting[O any](t testing.TB) O {
	t.Helper()
	ot := reflect.TypeFor[O]()
	if ot.Kind() != reflect.Func || ot.NumIn() != 1 || ot.In(0).Kind() != reflect.Pointer {
		t.Fatalf("%v is not an option function", ot)
	}
	f, ok := ot.In(0).Elem().FieldByName("RemotingClientConfig")
	if !ok || f.Type.Kind() != reflect.Pointer || f.Type.Elem().Kind() != reflect.Struct {
		t.Fatalf("rocketmq-client-go changed: %v has no RemotingClientConfig pointer", ot.In(0).Elem())
	}
	if u, ok := f.Type.Elem().FieldByName("UseTls"); !ok || u.Type.Kind() != reflect.Bool {
		t.Fatalf("rocketmq-client-go changed: %v has no UseTls", f.Type.Elem())
	}
	fn := reflect.MakeFunc(ot, func(args []reflect.Value) []reflect.Value {
		cfg := args[0].Elem().FieldByIndex(f.Index)
		own := reflect.New(cfg.Type().Elem())
		own.Elem().Set(cfg.Elem())
		cfg.Set(own)
		return nil
	})
	return fn.Interface().(O)
}

// rmqTLSProducer are the options of a rocketmq-client-go producer over TLS.
func rmqTLSProducer(t testing.TB) []producer.Option {
	return []producer.Option{rmqOwnRemoting[producer.Option](t), producer.WithTls(true)}
}

// rmqTLSConsumer are the options of a rocketmq-client-go consumer over TLS.
func rmqTLSConsumer(t testing.TB) []consumer.Option {
	return []consumer.Option{rmqOwnRemoting[consumer.Option](t), consumer.WithTls(true)}
}

// tlsStrataProducer is a Strata producer over TLS with tc, closed at the
// end of the test.
func tlsStrataProducer(t testing.TB, namesrv string, tc *tls.Config, opts ...client.ProducerOpt) *client.Producer {
	t.Helper()
	all := append([]client.ProducerOpt{client.NameServers(namesrv), client.ProducerGroup(uniq("tpg")),
		client.WithTLS(tc)}, opts...)
	p, err := client.NewProducer(all...)
	if err != nil {
		t.Fatalf("strata producer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("close strata producer: %v", err)
		}
	})
	return p
}

// tlsStrataSend sends one message per body with p, failing t on an error.
func tlsStrataSend(t testing.TB, p *client.Producer, topic string, bodies []string) {
	t.Helper()
	for _, b := range bodies {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rs, err := p.Send(ctx, client.Message{Topic: topic, Body: []byte(b)})
		cancel()
		if err != nil {
			t.Fatalf("strata send to %s: %v", topic, err)
		}
		if len(rs) != 1 || rs[0].Status != client.SendOK {
			t.Fatalf("strata send to %s: %+v", topic, rs)
		}
	}
}

// tlsBodies returns n bodies "<prefix>-<i>".
func tlsBodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// tlsTool runs a `strata` client command with the environment variables
// env (STRATA_TLS and STRATA_TLS_CA are unset unless env sets them) and
// returns its stdout, its stderr and its exit error.
func tlsTool(t testing.TB, env []string, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, strataBin, args...)
	cmd.Env = append(append(os.Environ(), "STRATA_TLS=", "STRATA_TLS_CA="), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if strings.Contains(stderr.String(), "WARNING: DATA RACE") || strings.Contains(stderr.String(), "panic:") {
		t.Errorf("strata %s: stderr reports a problem:\n%s", strings.Join(args, " "), stderr.String())
	}
	return stdout.String(), stderr.String(), err
}

// tlsTrySend starts a rocketmq-client-go producer with opts (and no
// retries), sends one message and returns the error: it must come within
// bound. A producer that does not start counts as a failed send.
func tlsTrySend(t testing.TB, namesrv, topic string, bound time.Duration, opts ...producer.Option) error {
	t.Helper()
	all := append([]producer.Option{
		producer.WithNsResolver(primitive.NewPassthroughResolver([]string{namesrv})),
		producer.WithGroupName(uniq("tlspg")),
		producer.WithInstanceName(uniq("tlsp")),
		producer.WithRetry(0),
		producer.WithSendMsgTimeout(3 * time.Second),
	}, opts...)
	p, err := rocketmq.NewProducer(all...)
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	if err := p.Start(); err != nil {
		return fmt.Errorf("start producer: %w", err)
	}
	defer p.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		r, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte("must not arrive")))
		if err == nil && r.Status != primitive.SendOK {
			err = fmt.Errorf("status %v", r.Status)
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(bound + 5*time.Second):
		t.Fatalf("rocketmq-client-go SendSync did not return within %v", bound+5*time.Second)
		return nil
	}
}

// tlsTryStrataSend sends one message with a fresh Strata producer using tc
// and returns the error, which must come within bound.
func tlsTryStrataSend(t testing.TB, namesrv, topic string, tc *tls.Config, bound time.Duration) error {
	t.Helper()
	p, err := client.NewProducer(client.NameServers(namesrv), client.ProducerGroup(uniq("tpg")), client.WithTLS(tc),
		client.SendRetries(0), client.RequestTimeout(3*time.Second))
	if err != nil {
		t.Fatalf("strata producer: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	start := time.Now()
	_, err = p.Send(ctx, client.Message{Topic: topic, Body: []byte("must not arrive")})
	if d := time.Since(start); d > bound+2*time.Second {
		t.Errorf("a failing strata send took %v, bound %v", d, bound)
	}
	return err
}

// tlsIsCertError reports whether err shows a failed certificate check.
func tlsIsCertError(err error) bool {
	var ua x509.UnknownAuthorityError
	var ve *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &ve)
}

// ---------------------------------------------------------------------------
// Tests.

// TestTLSRocketMQClient: a standalone server with TLS ports (its broker
// registers with its own name server over TLS). rocketmq-client-go with
// WithTls(true) sends and a push consumer with WithTls(true) receives;
// without TLS it gets nowhere. Strata's client round-trips with WithTLS
// and with STRATA_TLS_CA (`strata produce`, `strata consume`), and with
// STRATA_TLS=on against the system's roots it fails the certificate check.
// A new certificate written over the files is presented without a restart,
// and the running producer keeps sending.
func TestTLSRocketMQClient(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t)
	cert, key := ca.Issue(t, "server")
	roots := tlsRoots(t, ca.File)
	n := tlsStartStandalone(t, roots, tlsFlags(cert, key, ca.File)...)
	firstSerial := tlsCertSerial(t, cert)

	// Every remoting port presents the certificate (the name server's too:
	// the broker registered through it, and it is asked below).
	for _, addr := range []string{n.broker, n.namesrv} {
		c, err := tlsPeerCert(roots, addr)
		if err != nil {
			t.Fatalf("TLS handshake with %s: %v", addr, err)
		}
		if c.SerialNumber.Cmp(firstSerial) != 0 {
			t.Fatalf("%s presents serial %v, want %v", addr, c.SerialNumber, firstSerial)
		}
	}
	// Plain remoting gets no answer.
	if resp, err := invoke(n.namesrv, remoting.ReqGetBrokerClusterInfo, nil, nil); err == nil {
		t.Errorf("a plain request to the TLS name server got an answer: code %d %q", resp.Code, resp.Remark)
	}

	// rocketmq-client-go over TLS: 20 messages to a topic it auto-creates.
	topic := uniq("tls")
	p := n.newProducer(t, rmqTLSProducer(t)...)
	msgs, bodies := textMessages(topic, "rmq", 20)
	sendSync(t, p, msgs...)

	var col collector
	c := n.newPushConsumer(t, uniq("tlscg"), append(rmqTLSConsumer(t),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))...)
	c.subscribeAndStart(t, topic, "*", col.handler(c.name))
	waitFor(t, 30*time.Second, "the TLS push consumer to receive the 20 messages", func() bool { return col.hasAll(bodies) },
		func() string { return fmt.Sprintf("missing %v", col.missing(bodies)) })

	// Without TLS a producer gets no route.
	if err := tlsTrySend(t, n.namesrv, topic, 10*time.Second); err == nil {
		t.Error("a rocketmq-client-go producer without TLS sent to the TLS-only server")
	} else {
		t.Logf("rocketmq-client-go without TLS fails as it should: %v", err)
	}

	// Strata's client: WithTLS against the CA, then the tools with
	// STRATA_TLS_CA, in both directions.
	stopic := uniq("tlss")
	sp := tlsStrataProducer(t, n.namesrv, roots)
	inProc := tlsBodies("inproc", 5)
	tlsStrataSend(t, sp, stopic, inProc)
	n.waitRouteTLS(t, stopic, 1)
	caEnv := []string{"STRATA_TLS_CA=" + ca.File}
	tool := tlsBodies("tool", 5)
	out, errOut, err := tlsTool(t, caEnv, strings.Join(tool, "\n")+"\n", "produce", "--namesrv", n.namesrv, "--topic", stopic)
	if err != nil {
		t.Fatalf("strata produce with STRATA_TLS_CA: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	if got := strings.Count(out, "msgId="); got != len(tool) {
		t.Errorf("strata produce printed %d results, want %d:\n%s", got, len(tool), out)
	}
	out, errOut, err = tlsTool(t, caEnv, "", "consume", "--namesrv", n.namesrv, "--topic", stopic, "--group", uniq("tlstool"))
	if err != nil {
		t.Fatalf("strata consume with STRATA_TLS_CA: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	gotLines := strings.Fields(out)
	want := append(slices.Clone(inProc), tool...)
	slices.Sort(gotLines)
	slices.Sort(want)
	if !slices.Equal(gotLines, want) {
		t.Errorf("strata consume with STRATA_TLS_CA printed %q, want %q", gotLines, want)
	}

	// STRATA_TLS=on without a CA: the system's roots do not know the test
	// CA, so the certificate check fails.
	out, errOut, err = tlsTool(t, []string{"STRATA_TLS=on"}, "x\n", "produce", "--namesrv", n.namesrv, "--topic", stopic, "--timeout", "3s")
	if err == nil {
		t.Errorf("strata produce with STRATA_TLS=on and no CA succeeded:\n%s", out)
	} else if !strings.Contains(errOut, "certificate") {
		t.Errorf("strata produce with STRATA_TLS=on and no CA: %v, stderr does not name the certificate check:\n%s", err, errOut)
	} else {
		t.Logf("strata produce with STRATA_TLS=on and no CA fails as it should: %s", strings.TrimSpace(errOut))
	}
	if err := tlsTryStrataSend(t, n.namesrv, stopic, &tls.Config{MinVersion: tls.VersionTLS12}, 15*time.Second); err == nil {
		t.Error("a Strata producer verifying against the system's roots sent to a server of the test CA")
	} else if !tlsIsCertError(err) {
		t.Errorf("a Strata producer verifying against the system's roots: %v, want a certificate verification error", err)
	}
	// STRATA_TLS=insecure skips the check, as rocketmq-client-go does.
	out, errOut, err = tlsTool(t, []string{"STRATA_TLS=insecure"}, "insecure\n", "produce", "--namesrv", n.namesrv, "--topic", stopic)
	if err != nil || strings.Count(out, "msgId=") != 1 {
		t.Errorf("strata produce with STRATA_TLS=insecure: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}

	// Certificate reload: the same files, a new certificate.
	newCert, _ := ca.Issue(t, "server")
	if newCert != cert {
		t.Fatalf("Issue wrote %s, not %s", newCert, cert)
	}
	newSerial := tlsCertSerial(t, cert)
	if newSerial.Cmp(firstSerial) == 0 {
		t.Fatal("the new certificate has the old serial number")
	}
	reloadStart := time.Now()
	for _, port := range []struct{ name, addr string }{{"broker", n.broker}, {"name server", n.namesrv}} {
		var last string
		waitFor(t, 10*time.Second, "the "+port.name+" port to present the new certificate", func() bool {
			c, err := tlsPeerCert(roots, port.addr)
			if err != nil {
				last = err.Error()
				return false
			}
			last = "serial " + c.SerialNumber.String()
			return c.SerialNumber.Cmp(newSerial) == 0
		}, func() string { return last + ", want " + newSerial.String() })
	}
	t.Logf("both ports present the new certificate %v after the files changed", time.Since(reloadStart).Round(time.Millisecond))
	more, moreBodies := textMessages(topic, "after-reload", 5)
	sendSync(t, p, more...)
	waitFor(t, 20*time.Second, "the TLS push consumer to receive the messages sent after the reload",
		func() bool { return col.hasAll(moreBodies) }, func() string { return fmt.Sprintf("missing %v", col.missing(moreBodies)) })
	// A new connection (verified against the CA) works with the new
	// certificate.
	tlsStrataSend(t, tlsStrataProducer(t, n.namesrv, roots), stopic, tlsBodies("after-reload", 2))
	n.waitCommitted(t, c, topic)
}

// waitCommitted with the max offsets asked over TLS.
func (n *tlsNode) waitCommitted(t testing.TB, c *pushConsumer, topic string) {
	t.Helper()
	want := map[int]int64{}
	for q := range c.committed(topic) {
		resp, err := tlsInvoke(n.tc, n.broker, remoting.ReqGetMaxOffset, map[string]string{"topic": topic, "queueId": strconv.Itoa(q)}, nil)
		if err != nil {
			t.Fatalf("max offset of %s/%d: %v", topic, q, err)
		}
		v, err := strconv.ParseInt(resp.Ext("offset"), 10, 64)
		if resp.Code != remoting.RespSuccess || err != nil {
			t.Fatalf("max offset of %s/%d: code %d %q", topic, q, resp.Code, resp.Remark)
		}
		want[q] = v
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

// TestTLSReplication: a name server, a leader and a follower of one group,
// all TLS only, under sync replication with two copies: a send fails while
// the follower is away and succeeds once it copies over the TLS
// replication port; the follower then holds the leader's whole log.
func TestTLSReplication(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t)
	cert, key := ca.Issue(t, "node")
	roots := tlsRoots(t, ca.File)
	flags := tlsFlags(cert, key, ca.File)

	nsAddrs, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	ns := tlsStartNode(t, "namesrv", nsAddrs[0], "", nsAddrs[1], roots,
		append([]string{"namesrv", "--namesrv-listen", nsAddrs[0], "--http-listen", nsAddrs[1]}, flags...)...)
	member := func(id int) (*tlsNode, string) {
		addrs, err := freePorts(3)
		if err != nil {
			t.Fatal(err)
		}
		data := filepath.Join(t.TempDir(), "data")
		args := append([]string{"broker", "--broker-name", readerBrokerName, "--broker-id", strconv.Itoa(id),
			"--data-dir", data, "--listen", addrs[0], "--ha-listen", addrs[2], "--namesrv", ns.namesrv,
			"--http-listen", addrs[1], "--segment-size", "16MiB", "--replication", "sync", "--min-insync-replicas", "2"}, flags...)
		m := tlsStartNode(t, fmt.Sprintf("b%d", id), ns.namesrv, addrs[0], addrs[1], roots, args...)
		m.dataDir = data
		return m, addrs[2]
	}
	leader, leaderHA := member(0)
	topic := uniq("tlsrepl")
	const queues = 2
	leader.createTopicTLS(t, topic, queues)

	// Alone, the leader cannot make two copies.
	if err := tlsTryStrataSend(t, ns.namesrv, topic, roots, 10*time.Second); err == nil {
		t.Error("a send under --min-insync-replicas 2 succeeded with no follower")
	} else {
		t.Logf("with no follower a send fails as it should: %v", err)
	}

	follower, _ := member(1)
	var last string
	waitFor(t, 30*time.Second, "two copies in sync", func() bool {
		st, err := tlsReplStatus(roots, leader.broker)
		last = fmt.Sprintf("%+v %v", st, err)
		return err == nil && st.InSync == 2
	}, func() string { return last })

	// The replication port speaks TLS with the node's certificate.
	if c, err := tlsPeerCert(roots, leaderHA); err != nil {
		t.Errorf("TLS handshake with the leader's replication port %s: %v", leaderHA, err)
	} else if c.Subject.CommonName != "node" {
		t.Errorf("the replication port presents %q", c.Subject.CommonName)
	}

	// Sends of both clients over TLS, each acknowledged only once the
	// follower holds it.
	p := leader.newProducer(t, rmqTLSProducer(t)...)
	msgs, _ := textMessages(topic, "rmq", 10)
	sendSync(t, p, msgs...)
	tlsStrataSend(t, tlsStrataProducer(t, ns.namesrv, roots), topic, tlsBodies("strata", 10))

	var lead, fol client.ReplicationStatus
	waitFor(t, 15*time.Second, "the follower to catch up over TLS", func() bool {
		var err1, err2 error
		lead, err1 = tlsReplStatus(roots, leader.broker)
		fol, err2 = tlsReplStatus(roots, follower.broker)
		if err1 != nil || err2 != nil {
			last = fmt.Sprint(err1, err2)
			return false
		}
		last = fmt.Sprintf("leader %+v, follower %+v", lead, fol)
		return lead.LogEnd > 0 && fol.LogEnd == lead.LogEnd && fol.Replica != nil && fol.Replica.Connected &&
			len(lead.Followers) == 1 && lead.Followers[0].InSync && lead.Followers[0].Acked == lead.LogEnd
	}, func() string { return last })
	if lead.Role != "leader" || fol.Role != "follower" {
		t.Errorf("roles: leader %q, follower %q", lead.Role, fol.Role)
	}
	if lead.InSync != 2 {
		t.Errorf("the leader counts %d copies in sync, want 2", lead.InSync)
	}
	if fol.Replica.LastError != "" {
		t.Errorf("the follower reports %q", fol.Replica.LastError)
	}
	if fol.Replica.Leader != leaderHA {
		t.Logf("the follower copies from %q (the leader's replication port is %s)", fol.Replica.Leader, leaderHA)
	}
	// The follower serves the copied messages (a read of its own port over
	// TLS).
	var sum int64
	for q := range queues {
		resp, err := tlsInvoke(roots, follower.broker, remoting.ReqGetMaxOffset, map[string]string{"topic": topic, "queueId": strconv.Itoa(q)}, nil)
		if err != nil || resp.Code != remoting.RespSuccess {
			t.Fatalf("max offset of %s/%d on the follower: %v %v", topic, q, resp, err)
		}
		v, _ := strconv.ParseInt(resp.Ext("offset"), 10, 64)
		sum += v
	}
	if sum != 20 {
		t.Errorf("the follower holds %d messages of %s, want 20", sum, topic)
	}
}

// TestTLSClientAuth: with --tls-client-auth only clients presenting a
// certificate of the CA get in: Strata's client with one round-trips;
// without one, with one of another CA, and rocketmq-client-go (which has
// no client certificate) fail.
func TestTLSClientAuth(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t)
	cert, key := ca.Issue(t, "server")
	ccert, ckey := ca.Issue(t, "client")
	roots := tlsRoots(t, ca.File)
	mtls := tlsWithCert(t, roots, ccert, ckey)
	n := tlsStartStandalone(t, mtls, append(tlsFlags(cert, key, ca.File), "--tls-client-auth")...)

	topic := uniq("mtls")
	bodies := tlsBodies("mtls", 10)
	tlsStrataSend(t, tlsStrataProducer(t, n.namesrv, mtls), topic, bodies)
	queues := n.waitRouteTLS(t, topic, 1)

	cs, err := client.NewConsumer(client.NameServers(n.namesrv), client.WithTLS(mtls), client.ConsumerGroup(uniq("mtlscg")),
		client.Subscribe(topic, "*"), client.StartFrom(client.FromFirstOffset), client.LongPoll(time.Second))
	if err != nil {
		t.Fatalf("strata consumer: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := cs.Close(ctx); err != nil {
			t.Errorf("close the strata consumer: %v", err)
		}
	}()
	seen := map[string]bool{}
	var lastErr error
	waitFor(t, 30*time.Second, "the mutual-TLS consumer to receive the messages", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		msgs, err := cs.Receive(ctx, 0)
		cancel()
		if err != nil {
			lastErr = err
			return false
		}
		for _, m := range msgs {
			seen[string(m.Body)] = true
		}
		return len(seen) == len(bodies)
	}, func() string { return fmt.Sprintf("%d of %d, last error %v", len(seen), len(bodies), lastErr) })
	for b := range seen {
		if !slices.Contains(bodies, b) {
			t.Errorf("received %q, which was not sent", b)
		}
	}

	// No client certificate.
	if err := tlsTryStrataSend(t, n.namesrv, topic, roots, 15*time.Second); err == nil {
		t.Error("a Strata producer without a client certificate sent under --tls-client-auth")
	} else {
		t.Logf("without a client certificate: %v", err)
	}
	// A client certificate of another CA.
	other := tlstest.NewCA(t)
	ocert, okey := other.Issue(t, "stranger")
	if err := tlsTryStrataSend(t, n.namesrv, topic, tlsWithCert(t, roots, ocert, okey), 15*time.Second); err == nil {
		t.Error("a Strata producer with a certificate of another CA sent under --tls-client-auth")
	}
	// rocketmq-client-go has no client certificate to present.
	if err := tlsTrySend(t, n.namesrv, topic, 10*time.Second, rmqTLSProducer(t)...); err == nil {
		t.Error("rocketmq-client-go (no client certificate) sent under --tls-client-auth")
	} else {
		t.Logf("rocketmq-client-go under --tls-client-auth fails as it should: %v", err)
	}
	// Nothing of theirs arrived.
	var sum int64
	for q := range queues {
		resp, err := tlsInvoke(mtls, n.broker, remoting.ReqGetMaxOffset, map[string]string{"topic": topic, "queueId": strconv.Itoa(q)}, nil)
		if err != nil {
			t.Fatalf("max offset of %s/%d: %v", topic, q, err)
		}
		v, err := strconv.ParseInt(resp.Ext("offset"), 10, 64)
		if resp.Code != remoting.RespSuccess || err != nil {
			t.Fatalf("max offset of %s/%d: code %d %q", topic, q, resp.Code, resp.Remark)
		}
		sum += v
	}
	if sum != int64(len(bodies)) {
		t.Errorf("%s holds %d messages, want the %d sent with a client certificate", topic, sum, len(bodies))
	}
}

// tlsElsewhereCert writes, in dir, a CA and a certificate of it for
// elsewhere.invalid and 192.0.2.1 only (tlstest issues for loopback only):
// a certificate that a process dialling 127.0.0.1 must refuse.
func tlsElsewhereCert(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "strata e2e elsewhere CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "elsewhere"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(192, 0, 2, 1)}, DNSNames: []string{"elsewhere.invalid"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("elsewhere.pem", "CERTIFICATE", der), write("elsewhere.key", "EC PRIVATE KEY", kder)
}

// TestTLSServerNameChecked: a process's own TLS connections (a broker's
// to its name servers, a follower's to its leader) must check that the
// server's certificate names the address dialled, not only that the CA
// signed it. A standalone server whose certificate, of the right CA, names
// elsewhere.invalid and 192.0.2.1 dials its name server at 127.0.0.1: its
// broker must not get registered.
func TestTLSServerNameChecked(t *testing.T) {
	t.Parallel()
	caFile, cert, key := tlsElsewhereCert(t, t.TempDir())
	tc := tlsRoots(t, caFile)
	tc.ServerName = "elsewhere.invalid" // this test's own requests accept the certificate
	addrs, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	// Ready once /healthz and the name server answer: the broker is not
	// expected to register.
	n := tlsStartNode(t, "standalone", addrs[1], "", addrs[2], tc,
		append([]string{"standalone", "--data-dir", filepath.Join(t.TempDir(), "data"), "--listen", addrs[0],
			"--namesrv-listen", addrs[1], "--http-listen", addrs[2], "--segment-size", "64MiB"},
			tlsFlags(cert, key, caFile)...)...)
	registered := func() bool {
		resp, err := tlsInvoke(tc, n.namesrv, remoting.ReqGetBrokerClusterInfo, nil, nil)
		return err == nil && resp.Code == remoting.RespSuccess && strings.Contains(string(resp.Body), `"`+addrs[0]+`"`)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if registered() {
			t.Fatal("the broker registered with a name server at 127.0.0.1 whose certificate names only elsewhere.invalid and 192.0.2.1")
		}
	}
	if log := n.logTail(200); !strings.Contains(log, "certificate is valid for") {
		t.Errorf("the broker was not registered, but its log does not say why (want x509's \"certificate is valid for ...\"):\n%s", log)
	}
}
