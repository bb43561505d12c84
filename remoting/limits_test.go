package remoting

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestMaxConnsPerIP(t *testing.T) {
	srv := startServer(t, ServerOptions{Conn: ConnOptions{Handler: echo}, MaxConnsPerIP: 2})
	a := dial(t, srv.addr, ConnOptions{})
	b := dial(t, srv.addr, ConnOptions{})
	invoke(t, a, NewRequest(ReqHeartBeat, nil, nil))
	invoke(t, b, NewRequest(ReqHeartBeat, nil, nil))
	over := dial(t, srv.addr, ConnOptions{})
	recv(t, over.Done(), "the third connection from one address to be closed")
	_ = a.Close()
	waitFor(t, "the server to drop a connection", func() bool { return len(srv.Conns()) == 1 })
	c := dial(t, srv.addr, ConnOptions{})
	invoke(t, c, NewRequest(ReqHeartBeat, nil, nil))
}

// TestSlowReaderClosed: a peer that sends requests and never reads the
// replies gets its connection closed once the replies waiting for it pass
// MaxReplyBacklog, instead of the server buffering them all.
func TestSlowReaderClosed(t *testing.T) {
	var closed = make(chan error, 1)
	srv := startServer(t, ServerOptions{
		Conn: ConnOptions{Handler: HandlerFunc(func(c *Conn, req *Command) {
			resp := NewResponse(req, RespSuccess, "")
			resp.Body = make([]byte, 256<<10)
			go c.Reply(resp) // as the broker answers, off the reader goroutine
		}), MaxReplyBacklog: 4 << 20},
		OnConnClose: func(c *Conn) { closed <- c.Err() },
	})
	nc, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10) // keep the kernel from absorbing the replies
	}
	frame := rawFrame(0, []byte(`{"code":34,"opaque":1}`), nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if _, err := nc.Write(frame); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	select {
	case err := <-closed:
		if !errors.Is(err, ErrSlowReader) {
			t.Fatalf("connection closed with %v, want ErrSlowReader", err)
		}
	case <-ctx.Done():
		t.Fatal("the server kept buffering replies for a peer that does not read them")
	}
}
