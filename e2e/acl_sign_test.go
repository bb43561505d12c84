package e2e

// ACL signing as rocketmq-client-go does it (PROTOCOL.md §7): a fake name
// server and broker on loopback records the signed requests the real client
// sends, and each is verified with a small implementation of the broker's
// check written here from the spec. With STRATA_ACL_CAPTURE=1 the test also
// saves them to client/testdata/acl_capture.json, which the client package's
// TestACLSignCapturedRequests replays through Credentials.sign.

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/strata-mq/strata/remoting"
)

const (
	// aclTopic is the only topic the fake name server has a route for.
	aclTopic = "AclTopic"
	// aclCaptureEnv set to 1 makes TestACLSignMatchesRocketMQClient write
	// aclCapturePath.
	aclCaptureEnv  = "STRATA_ACL_CAPTURE"
	aclCapturePath = "../client/testdata/acl_capture.json"
)

// aclRequest is one request the fake server received, with the credentials
// the client was given; its JSON form is the capture file's entry.
type aclRequest struct {
	Name          string            `json:"name"`
	AccessKey     string            `json:"accessKey"`
	SecretKey     string            `json:"secretKey"`
	SecurityToken string            `json:"securityToken,omitempty"`
	Code          int16             `json:"code"`
	ExtFields     map[string]string `json:"extFields"`
	Body          []byte            `json:"body"`
}

// aclFake is a name server and broker in one listener: it routes aclTopic to
// itself, accepts every send, answers other requests with success, and
// records every request.
type aclFake struct {
	addr string
	srv  *remoting.Server

	mu   sync.Mutex
	reqs []*remoting.Command
}

func startACLFake(t *testing.T) *aclFake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	f := &aclFake{addr: ln.Addr().String()}
	f.srv = remoting.NewServer(remoting.ServerOptions{
		Conn: remoting.ConnOptions{Handler: remoting.HandlerFunc(f.serve)},
	})
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.srv.Shutdown(ctx); err != nil {
			t.Errorf("fake server shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, remoting.ErrServerClosed) {
			t.Errorf("fake server: %v", err)
		}
	})
	return f
}

func (f *aclFake) serve(c *remoting.Conn, req *remoting.Command) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if req.IsOneway() {
		return
	}
	var resp *remoting.Command
	switch req.Code {
	case remoting.ReqGetRouteInfoByTopic:
		if req.Ext("topic") != aclTopic {
			resp = remoting.NewResponse(req, remoting.RespTopicNotExist, "no route for "+req.Ext("topic"))
			break
		}
		resp = remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.Body = fmt.Appendf(nil, `{"queueDatas":[{"brokerName":"acl-broker","readQueueNums":1,"writeQueueNums":1,"perm":6,"topicSysFlag":0}],`+
			`"brokerDatas":[{"cluster":"acl","brokerName":"acl-broker","brokerAddrs":{"0":%q}}]}`, f.addr)
	case remoting.ReqSendMessage, remoting.ReqSendMessageV2:
		resp = remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.ExtFields = map[string]string{"msgId": "7F00000100002A9F0000000000000000", "queueId": "0", "queueOffset": "0"}
	default:
		resp = remoting.NewResponse(req, remoting.RespSuccess, "")
	}
	_ = c.Reply(resp) // the client may have gone; the test checks what it recorded
}

// received returns the requests recorded so far.
func (f *aclFake) received() []*remoting.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// aclExpectedSignature is the broker's check of PROTOCOL.md §7, written
// independently of client.Credentials: the values of every header field but
// Signature and SecurityToken, in byte order of their keys, then the body,
// HMAC-SHA1 keyed with the secret, in standard base64. With withToken the
// SecurityToken is signed too, as Java's client and broker do.
func aclExpectedSignature(ext map[string]string, body []byte, secret string, withToken bool) string {
	var keys []string
	for k := range ext {
		if k != "Signature" && (withToken || k != "SecurityToken") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	mac := hmac.New(sha1.New, []byte(secret))
	for _, k := range keys {
		_, _ = io.WriteString(mac, ext[k])
	}
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// TestACLSignMatchesRocketMQClient sends a message with rocketmq-client-go
// configured with credentials, with and without a SecurityToken, and checks
// that every request it sent (route lookup, send, heartbeats) carries the
// AccessKey, the token when set, and a Signature the spec's check accepts.
func TestACLSignMatchesRocketMQClient(t *testing.T) {
	cases := []struct {
		name  string
		creds primitive.Credentials
	}{
		{"no-token", primitive.Credentials{AccessKey: "strataAK", SecretKey: "s3cr3t/Key+ü"}},
		{"token", primitive.Credentials{AccessKey: "stsAK", SecretKey: "sts-secret", SecurityToken: "sts-token+/="}},
	}
	var captured []aclRequest
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := startACLFake(t)
			p, err := rocketmq.NewProducer(
				producer.WithNameServer([]string{f.addr}),
				producer.WithGroupName("acl_pg"),
				producer.WithInstanceName(uniq("acl")),
				producer.WithCredentials(tc.creds),
				producer.WithRetry(0),
			)
			if err != nil {
				t.Fatalf("new producer: %v", err)
			}
			if err := p.Start(); err != nil {
				t.Fatalf("start producer: %v", err)
			}
			defer func() {
				if err := p.Shutdown(); err != nil {
					t.Errorf("shutdown producer: %v", err)
				}
			}()

			msg := primitive.NewMessage(aclTopic, []byte("acl body \x00\x01\xff é"))
			msg.WithTag("TagA")
			msg.WithKeys([]string{"order-1", "k 2"})
			msg.WithProperty("note", "héllo: a=b;c ✓")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res, err := p.SendSync(ctx, msg)
			cancel()
			if err != nil {
				t.Fatalf("SendSync: %v", err)
			}
			if res.Status != primitive.SendOK {
				t.Fatalf("SendSync status %v", res.Status)
			}

			reqs := f.received()
			seen := map[int16]bool{}
			for _, r := range reqs {
				name := remoting.RequestCodeName(r.Code)
				if got := r.Ext("AccessKey"); got != tc.creds.AccessKey {
					t.Errorf("%s: AccessKey = %q, want %q", name, got, tc.creds.AccessKey)
				}
				tok, hasTok := r.ExtFields["SecurityToken"]
				if tc.creds.SecurityToken != "" && tok != tc.creds.SecurityToken || tc.creds.SecurityToken == "" && hasTok {
					t.Errorf("%s: SecurityToken = %q (present %v), want %q", name, tok, hasTok, tc.creds.SecurityToken)
				}
				sig := r.Ext("Signature")
				if want := aclExpectedSignature(r.ExtFields, r.Body, tc.creds.SecretKey, false); sig != want {
					t.Errorf("%s: Signature = %q, the spec's check computes %q (ext %v, body %dB)", name, sig, want, r.ExtFields, len(r.Body))
				}
				if hasTok && sig == aclExpectedSignature(r.ExtFields, r.Body, tc.creds.SecretKey, true) {
					t.Errorf("%s: the SecurityToken is signed; rocketmq-client-go does not sign it", name)
				}
				if (r.Code == remoting.ReqGetRouteInfoByTopic || r.Code == remoting.ReqSendMessage) && !seen[r.Code] {
					seen[r.Code] = true
					captured = append(captured, aclRequest{
						Name:          tc.name + "/" + name,
						AccessKey:     tc.creds.AccessKey,
						SecretKey:     tc.creds.SecretKey,
						SecurityToken: tc.creds.SecurityToken,
						Code:          r.Code,
						ExtFields:     r.ExtFields,
						Body:          r.Body,
					})
				}
			}
			if !seen[remoting.ReqGetRouteInfoByTopic] || !seen[remoting.ReqSendMessage] {
				t.Errorf("the fake received no route lookup or no send: %d requests", len(reqs))
			}
		})
	}

	if os.Getenv(aclCaptureEnv) != "1" || t.Failed() {
		return
	}
	writeACLCapture(t, captured)
}

// writeACLCapture saves the captured requests for the client package's test.
func writeACLCapture(t *testing.T, reqs []aclRequest) {
	t.Helper()
	data, err := json.MarshalIndent(struct {
		Comment  string       `json:"comment"`
		Client   string       `json:"client"`
		Requests []aclRequest `json:"requests"`
	}{
		Comment:  "Requests signed by rocketmq-client-go, as received. Regenerate: STRATA_ACL_CAPTURE=1 go test ./e2e/ -run TestACLSignMatchesRocketMQClient",
		Client:   rocketMQClientVersion(t),
		Requests: reqs,
	}, "", "  ")
	if err != nil {
		t.Fatalf("encode capture: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(aclCapturePath), 0o755); err != nil {
		t.Fatalf("capture dir: %v", err)
	}
	if err := os.WriteFile(aclCapturePath, append(data, '\n'), 0o644); err != nil {
		t.Fatalf("write capture: %v", err)
	}
	t.Logf("wrote %d requests to %s", len(reqs), aclCapturePath)
}

// rocketMQClientVersion returns the rocketmq-client-go requirement of the
// module's go.mod (test binaries carry no dependency versions).
func rocketMQClientVersion(t *testing.T) string {
	const path = "github.com/apache/rocketmq-client-go/v2"
	data, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatalf("read go.mod: %v", err)
	}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if i := slices.Index(f, path); i >= 0 && i+1 < len(f) {
			return path + " " + f[i+1]
		}
	}
	return path
}
