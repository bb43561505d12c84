package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/strata-mq/strata/remoting"
)

// frame builds a remoting frame by hand: length, serialize type, 24-bit
// header length, header, body (PROTOCOL.md §1.1).
func frame(serType byte, header, body []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(body))
	binary.BigEndian.PutUint32(b, uint32(4+len(header)+len(body)))
	b[4] = serType
	b[5], b[6], b[7] = byte(len(header)>>16), byte(len(header)>>8), byte(len(header))
	b = append(b, header...)
	return append(b, body...)
}

func jsonFrame(header string, body []byte) []byte { return frame(0, []byte(header), body) }

// prefix returns a length prefix announcing n bytes followed by rest.
func prefix(n uint32, rest []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, n), rest...)
}

// outcome is what a raw connection saw after sending bad input.
type outcome struct {
	resp   *remoting.Command // a response frame, if one came
	closed bool              // the broker closed the connection
}

func (o outcome) String() string {
	switch {
	case o.resp != nil && o.closed:
		return fmt.Sprintf("response %d %q, then closed", o.resp.Code, o.resp.Remark)
	case o.resp != nil:
		return fmt.Sprintf("response %d %q", o.resp.Code, o.resp.Remark)
	case o.closed:
		return "closed without a response"
	}
	return "nothing"
}

// sendRaw writes data on a new connection (half-closing it afterwards if
// closeWrite) and reports the first response and whether the broker then
// closed the connection, waiting at most timeout.
func sendRaw(t *testing.T, addr string, data []byte, closeWrite bool, timeout time.Duration) (outcome, net.Conn) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	nc.SetDeadline(time.Now().Add(timeout))
	// The broker may close before reading everything: a failed write is an
	// outcome, not a test error.
	_, _ = nc.Write(data)
	if closeWrite {
		nc.(*net.TCPConn).CloseWrite()
	}
	var o outcome
	cmd, err := remoting.ReadCommand(nc, 64<<20)
	switch {
	case err == nil:
		o.resp = cmd
		if closeWrite {
			_, err = remoting.ReadCommand(nc, 64<<20)
			o.closed = isClosed(err)
		}
	case isClosed(err):
		o.closed = true
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("no response and no close within %v", timeout)
		} else {
			t.Errorf("reading the answer: %v", err)
		}
	}
	return o, nc
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// TestBadInput: garbage, truncated frames, oversized and negative lengths,
// malformed headers, unknown request codes and bad request fields each get
// an error response or a closed connection; the broker stays up, a client
// connected the whole time keeps working, and so do real clients.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := startStrata(t)
	topic := uniq("survivor")
	s.createTopic(t, topic, 2, false)

	// A connection opened before the attack and used after it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bystander, err := remoting.Dial(ctx, s.broker, remoting.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer bystander.Close()

	// A real producer keeps sending during the whole test.
	p := s.newProducer(t)
	stop := make(chan struct{})
	var sent []string
	var sendErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			b := "during-" + strconv.Itoa(i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			r, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(b)))
			cancel()
			if err == nil && r.Status != primitive.SendOK {
				err = fmt.Errorf("status %v", r.Status)
			}
			if err != nil {
				sendErr = err
				return
			}
			sent = append(sent, b)
		}
	}()

	rng := rand.New(rand.NewPCG(7, 11))
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	valid := jsonFrame(`{"code":30,"language":"GO","version":317,"opaque":7,"flag":0,"extFields":{"topic":"`+topic+`","queueId":"0"}}`, nil)
	const opaque = 4242
	hdr := func(code int, ext string) string {
		return fmt.Sprintf(`{"code":%d,"language":"GO","version":317,"opaque":%d,"flag":0,"extFields":%s}`, code, opaque, ext)
	}
	cases := []struct {
		name       string
		data       []byte
		closeWrite bool
		wantCode   int16 // if non-zero, a response with this code is required
		reusable   bool  // the connection must still serve a valid request
	}{
		{name: "random garbage", data: garbage, closeWrite: true},
		{name: "http request", data: []byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), closeWrite: true},
		{name: "tls client hello", data: []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, closeWrite: true},
		{name: "truncated length prefix", data: []byte{0, 0}, closeWrite: true},
		{name: "truncated frame", data: valid[:len(valid)/2], closeWrite: true},
		{name: "truncated header length", data: prefix(100, []byte{0, 0}), closeWrite: true},
		{name: "oversized length 1 GiB", data: prefix(1<<30, []byte(`{"code":10,"opaque":99,"flag":0}`))},
		// Only the prefix, then a half-close: the broker waits for the
		// header (to answer with its opaque) until the peer sends it,
		// hangs up or the idle timeout passes.
		{name: "oversized length 1 GiB, nothing more", data: prefix(1<<30, nil), closeWrite: true},
		{name: "length 2^31-1", data: prefix(1<<31-1, bytes.Repeat([]byte{'x'}, 64))},
		{name: "negative length", data: prefix(0xFFFFFFF0, []byte{0, 0, 0, 0})},
		{name: "zero length", data: prefix(0, nil)},
		{name: "length smaller than header length field", data: prefix(2, []byte{0, 0})},
		{name: "header length beyond frame", data: prefix(8, []byte{0, 0xFF, 0xFF, 0xFF, '{', '}', ' ', ' '}), closeWrite: true},
		{name: "unknown serialize type", data: frame(7, []byte(hdr(30, `{}`)), nil)},
		{name: "binary header garbage", data: frame(1, garbage[:40], nil)},
		{name: "binary header with huge remark length", data: frame(1, append([]byte{0, 30, 9, 1, 61, 0, 0, 0, 5, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF}, garbage[:8]...), nil)},
		{name: "invalid JSON header", data: jsonFrame(`{"code":30,"opaque":`, nil)},
		{name: "JSON header not an object", data: jsonFrame(`[1,2,3]`, nil)},
		{name: "JSON null header", data: jsonFrame(`null`, nil)},
		{name: "extFields with a number", data: jsonFrame(hdr(30, `{"topic":"`+topic+`","queueId":0}`), nil)},
		{name: "extFields as an array", data: jsonFrame(hdr(30, `["topic"]`), nil)},
		{name: "code out of int16 range", data: jsonFrame(`{"code":70000,"opaque":5,"flag":0}`, nil)},
		{name: "unknown request code", data: jsonFrame(hdr(9999, `{}`), nil), wantCode: remoting.RespRequestCodeNotSupported, reusable: true},
		{name: "unknown request code with a body", data: jsonFrame(hdr(-5, `{"a":"b"}`), garbage[:100]), wantCode: remoting.RespRequestCodeNotSupported, reusable: true},
		{name: "send with a non-numeric queueId", data: jsonFrame(hdr(10, `{"producerGroup":"pg","topic":"`+topic+`","queueId":"abc","sysFlag":"0","bornTimestamp":"0","flag":"0","properties":""}`), []byte("x")), reusable: true},
		{name: "send with a bad topic name", data: jsonFrame(hdr(10, `{"producerGroup":"pg","topic":"../../etc/passwd","queueId":"0"}`), []byte("x")), reusable: true},
		{name: "send with an out-of-range queueId", data: jsonFrame(hdr(10, `{"producerGroup":"pg","topic":"`+topic+`","queueId":"99999"}`), []byte("x")), reusable: true},
		{name: "batch send with a garbage body", data: jsonFrame(hdr(320, `{"a":"pg","b":"`+topic+`","e":"0","m":"true"}`), garbage[:300]), reusable: true},
		{name: "batch send with a lying record size", data: jsonFrame(hdr(320, `{"a":"pg","b":"`+topic+`","e":"0","m":"true"}`), prefix(1<<30, make([]byte, 40))), reusable: true},
		{name: "pull with garbage fields", data: jsonFrame(hdr(11, `{"consumerGroup":"g","topic":"`+topic+`","queueId":"x","queueOffset":"-1","maxMsgNums":"99999999999"}`), nil), reusable: true},
		{name: "pull of an unknown topic", data: jsonFrame(hdr(11, `{"consumerGroup":"g","topic":"nope","queueId":"0","queueOffset":"0","maxMsgNums":"1","sysFlag":"0"}`), nil), reusable: true},
		{name: "heartbeat with a garbage body", data: jsonFrame(hdr(34, `{}`), garbage[:64]), reusable: true},
		{name: "lock with a garbage body", data: jsonFrame(hdr(41, `{}`), []byte(`{"consumerGroup":`)), reusable: true},
		{name: "send-back of a bogus commit-log offset", data: jsonFrame(hdr(36, `{"group":"g","offset":"123456789","delayLevel":"0","maxReconsumeTimes":"1"}`), nil), reusable: true},
		{name: "view message at a bogus offset", data: jsonFrame(hdr(33, `{"offset":"-42"}`), nil), reusable: true},
		{name: "search offset with a bad timestamp", data: jsonFrame(hdr(29, `{"topic":"`+topic+`","queueId":"0","timestamp":"yesterday"}`), nil), reusable: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, nc := sendRaw(t, s.broker, tc.data, tc.closeWrite, 10*time.Second)
			defer nc.Close()
			t.Logf("%s", o)
			if o.resp != nil {
				if o.resp.Code == remoting.RespSuccess {
					t.Errorf("bad input answered with SUCCESS: %v", o.resp)
				}
				if tc.wantCode != 0 && o.resp.Code != tc.wantCode {
					t.Errorf("response code %d (%q), want %d", o.resp.Code, o.resp.Remark, tc.wantCode)
				}
				if tc.wantCode != 0 && o.resp.Opaque != opaque {
					t.Errorf("response opaque %d, want %d", o.resp.Opaque, opaque)
				}
			} else if tc.wantCode != 0 {
				t.Errorf("%s, want a response with code %d", o, tc.wantCode)
			}
			if tc.reusable {
				if o.resp == nil || o.closed {
					t.Fatalf("%s; a well-formed frame with bad content should leave the connection open", o)
				}
				nc.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := nc.Write(valid); err != nil {
					t.Fatalf("connection unusable after the error response: %v", err)
				}
				resp, err := remoting.ReadCommand(nc, 1<<20)
				if err != nil || resp.Code != remoting.RespSuccess || resp.Opaque != 7 {
					t.Fatalf("valid request after the bad one: %v %v", resp, err)
				}
			}
		})
	}

	close(stop)
	wg.Wait()
	if sendErr != nil {
		t.Errorf("a real producer failed while the broker was fed bad input: %v", sendErr)
	}
	if !s.running() {
		t.Fatalf("the broker exited: %v", s.exitErr())
	}
	resp, err := bystander.Invoke(ctx, remoting.NewRequest(remoting.ReqGetMaxOffset, map[string]string{"topic": topic, "queueId": "0"}, nil))
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Errorf("the connection opened before the bad input: %v %v", resp, err)
	}
	// Real clients still work end to end.
	msgs, after := textMessages(topic, "after", 5)
	sendSync(t, p, msgs...)
	var col collector
	c := s.newPushConsumer(t, uniq("g"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	c.subscribeAndStart(t, topic, "*", col.handler("c"))
	want := append(append([]string(nil), sent...), after...)
	waitFor(t, 15*time.Second, "every message sent during and after the bad input", func() bool { return col.hasAll(want) },
		func() string { return fmt.Sprint("missing ", col.missing(want)) })
	t.Logf("%d messages sent by a real producer during the bad input", len(sent))
}
