package remoting

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrConnClosed is wrapped by every error a Conn returns once it is closed:
// by Invoke calls that were waiting, and by any later Invoke, InvokeOneway or
// Reply. Conn.Err returns it joined with the cause (io.EOF when the peer hung
// up, the read or write error, the idle timeout, the refused frame), so
// errors.Is works for both.
var ErrConnClosed = errors.New("remoting: connection closed")

// ErrSlowReader closes a connection whose peer does not read its replies
// (ConnOptions.MaxReplyBacklog).
var ErrSlowReader = errors.New("remoting: the peer does not read its replies")

// Handler serves the requests a Conn receives (frames without FlagResponse).
//
// ServeRemoting is called from the connection's single reader goroutine, one
// request at a time, so it must not block for long: no frame (and no
// response to the connection's own Invoke calls) is read while it runs. It
// answers with c.Reply, either before returning or later from another
// goroutine (a long-polling pull), or not at all for a oneway request. req is
// owned by the handler. A panic in ServeRemoting is recovered and logged, the
// request is answered with RespSystemError and the connection is closed.
type Handler interface {
	ServeRemoting(c *Conn, req *Command)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(c *Conn, req *Command)

// ServeRemoting calls f(c, req).
func (f HandlerFunc) ServeRemoting(c *Conn, req *Command) { f(c, req) }

// ConnOptions configures a Conn. The zero value works: default frame limit,
// no handler, no timeouts, no logs.
type ConnOptions struct {
	// MaxFrameSize bounds the frames read and written, counted as the value
	// of the length prefix. Zero means DefaultMaxFrameSize (16 MiB). A peer
	// that announces a larger frame gets a RespSystemError response when its
	// opaque can be read, and the connection is closed; a larger outgoing
	// command fails with ErrFrameTooLarge and the connection stays open.
	MaxFrameSize int
	// Handler serves incoming requests. Nil answers every request that is not
	// flagged oneway with RespRequestCodeNotSupported.
	Handler Handler
	// IdleTimeout closes the connection when no frame has been read for this
	// long. Zero means never. The Go client heartbeats every 30 s and itself
	// drops links idle for 120 s; Java brokers close after 120 s.
	IdleTimeout time.Duration
	// WriteTimeout bounds each frame write. Zero means no bound except the
	// deadline of Invoke's context. A write that times out after writing part
	// of a frame closes the connection, since the stream cannot be resumed.
	WriteTimeout time.Duration
	// Logger receives connection events (refused frames, handler panics at
	// warn/error level; open/close at debug). Nil discards them.
	Logger *slog.Logger
	// MaxReplyBacklog bounds the reply bytes waiting while an earlier
	// write is still blocked (a peer that sends requests but does not read
	// the answers): past it the connection is closed with ErrSlowReader
	// instead of buffering without limit. Zero means unlimited.
	MaxReplyBacklog int
	// TLS, if set, makes Dial open a TLS connection with it.
	TLS *tls.Config
	// Sign, if set, is applied to every request sent with Invoke or
	// InvokeOneway (a process signing its own requests with its ACL
	// credentials, see Signature).
	Sign func(*Command)

	// onClose is called by the reader goroutine after the connection is
	// closed, before it exits; the Server uses it.
	onClose func(*Conn)
}

const (
	// readBufferSize is the bufio buffer in front of the socket: big enough
	// to batch small frames into one read, small enough for many conns.
	readBufferSize = 4 << 10
	// badFrameLinger is how long a connection that refused a frame waits for
	// the peer to read the error response and hang up before closing.
	badFrameLinger = time.Second
	// maxRemarkLen bounds the remark of error responses built from errors.
	maxRemarkLen = 512
)

// Conn is one RocketMQ remoting connection, used the same way by both ends:
// it sends requests and matches their responses by opaque (Invoke), sends
// oneway requests, and hands incoming requests to a Handler, whose
// responses go back through Reply. Its one goroutine reads frames; writes
// are serialised and come from the callers' goroutines. All methods are
// safe for concurrent use.
type Conn struct {
	nc           net.Conn
	br           *bufio.Reader // read only by the reader goroutine
	remote       net.Addr
	local        net.Addr
	maxFrame     int
	handler      Handler
	idleTimeout  time.Duration
	writeTimeout time.Duration
	log          *slog.Logger
	onClose      func(*Conn)
	sign         func(*Command)

	opaque atomic.Int32 // last opaque assigned

	// wsem is the write lock, a channel so that waiting for it can be
	// abandoned when a context ends or the connection closes.
	wsem chan struct{}
	// wdeadline records whether a write deadline is set on nc; guarded by wsem.
	wdeadline bool

	// Replies are combined: a Reply that finds another one writing queues
	// its frame and returns; the writer sends everything queued with one
	// writev before it leaves. Many responses released by one group commit
	// then cost a few syscalls instead of one each.
	rmu      sync.Mutex
	rqueue   net.Buffers // frames waiting (heads and bodies)
	rbytes   int         // bytes in rqueue
	rwriting bool        // a Reply is draining rqueue
	rmax     int         // MaxReplyBacklog
	// rfailed is set when writing replies failed: the peer is gone or
	// stuck. Later replies fail at once, but the requests the peer sent
	// before it went are still read and served (see replyFailed).
	rfailed atomic.Pointer[error]

	mu      sync.Mutex
	pending map[int32]chan *Command // Invoke calls waiting, by opaque; nil once closed
	err     error                   // why the connection closed; nil while open

	vmu    sync.Mutex
	values map[any]any

	done       chan struct{} // closed when err is set
	readerDone chan struct{} // closed when the reader goroutine has exited
	readerID   atomic.Uint64 // goroutine id of the reader, 0 if unknown
	inCallback atomic.Bool   // the reader is running the handler or onClose
}

// NewConn wraps nc and starts its reader goroutine. The Conn owns nc from
// now on: Close it, not nc.
func NewConn(nc net.Conn, opts ConnOptions) *Conn {
	c := newConn(nc, opts)
	c.start()
	return c
}

// newConn builds a Conn without starting its reader, so that the Server can
// register it first.
func newConn(nc net.Conn, opts ConnOptions) *Conn {
	maxFrame := opts.MaxFrameSize
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameSize
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	remote := nc.RemoteAddr()
	return &Conn{
		nc:           nc,
		br:           bufio.NewReaderSize(nc, readBufferSize),
		remote:       remote,
		local:        nc.LocalAddr(),
		maxFrame:     maxFrame,
		handler:      opts.Handler,
		idleTimeout:  opts.IdleTimeout,
		writeTimeout: opts.WriteTimeout,
		log:          log.With("remote", addrString(remote)),
		onClose:      opts.onClose,
		sign:         opts.Sign,
		rmax:         opts.MaxReplyBacklog,
		wsem:         make(chan struct{}, 1),
		pending:      make(map[int32]chan *Command),
		done:         make(chan struct{}),
		readerDone:   make(chan struct{}),
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func (c *Conn) start() { go c.readLoop() }

// Dial connects to addr over TCP and returns a Conn for it. ctx bounds the
// connection attempt only.
func Dial(ctx context.Context, addr string, opts ConnOptions) (*Conn, error) {
	var nc net.Conn
	var err error
	if opts.TLS != nil {
		d := tls.Dialer{Config: opts.TLS}
		nc, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("remoting: %w", err)
	}
	return NewConn(nc, opts), nil
}

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// RemoteIP returns the peer's IP address (IPv4-mapped addresses unmapped),
// or the zero Addr when the connection has none.
func (c *Conn) RemoteIP() netip.Addr { return sourceIP(c.remote) }

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// Done returns a channel that is closed when the connection closes.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is open, then an error wrapping
// ErrConnClosed and the cause.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// SetValue attaches v to the connection under key (as context.WithValue keys,
// use an unexported type). The broker keeps, for example, the client id
// learnt from HEART_BEAT. A nil v deletes the key.
func (c *Conn) SetValue(key, v any) {
	c.vmu.Lock()
	defer c.vmu.Unlock()
	if v == nil {
		delete(c.values, key)
		return
	}
	if c.values == nil {
		c.values = make(map[any]any)
	}
	c.values[key] = v
}

// Value returns the value attached under key, or nil.
func (c *Conn) Value(key any) any {
	c.vmu.Lock()
	defer c.vmu.Unlock()
	return c.values[key]
}

// Invoke sends req and waits for the response with the same opaque. It sets
// req.Opaque to a fresh value and clears the response and oneway flags, so a
// Command must not be passed to two calls at once. It returns when the
// response arrives, when ctx ends (the error wraps ctx.Err(); a response that
// arrives later is dropped) or when the connection closes (the error wraps
// ErrConnClosed). A response with a non-success code is not an error here.
// ctx's deadline also bounds the write.
func (c *Conn) Invoke(ctx context.Context, req *Command) (*Command, error) {
	if err := ctx.Err(); err != nil {
		return nil, c.ctxError(req, err)
	}
	if c.sign != nil {
		c.sign(req)
	}
	ch := make(chan *Command, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	op := c.opaque.Add(1)
	for c.pending[op] != nil { // only after 2^32 requests with one still waiting
		op = c.opaque.Add(1)
	}
	c.pending[op] = ch
	c.mu.Unlock()

	req.Opaque = op
	req.Flag &^= FlagResponse | FlagOneway
	if err := c.write(ctx, req, time.Time{}); err != nil {
		c.removePending(op)
		return nil, err
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-ctx.Done():
		c.removePending(op)
		select {
		case resp := <-ch:
			return resp, nil
		default:
		}
		return nil, c.ctxError(req, ctx.Err())
	case <-c.done:
		select {
		case resp := <-ch:
			return resp, nil
		default:
		}
		return nil, c.Err()
	}
}

func (c *Conn) ctxError(req *Command, err error) error {
	return fmt.Errorf("remoting: %s to %s (opaque %d): %w", RequestCodeName(req.Code), addrString(c.remote), req.Opaque, err)
}

func (c *Conn) removePending(op int32) {
	c.mu.Lock()
	delete(c.pending, op)
	c.mu.Unlock()
}

// pendingCount returns how many Invoke calls are waiting (for tests).
func (c *Conn) pendingCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// InvokeOneway sends req without waiting for a response: it sets a fresh
// req.Opaque and FlagOneway. ctx bounds the wait for the write lock and, by
// its deadline, the write.
func (c *Conn) InvokeOneway(ctx context.Context, req *Command) error {
	if err := ctx.Err(); err != nil {
		return c.ctxError(req, err)
	}
	if err := c.Err(); err != nil {
		return err
	}
	if c.sign != nil {
		c.sign(req)
	}
	req.Opaque = c.opaque.Add(1)
	req.Flag = req.Flag&^FlagResponse | FlagOneway
	return c.write(ctx, req, time.Time{})
}

// Reply sends a response (a Command with FlagResponse, see NewResponse). It
// may be called from any goroutine, during or after the handler call. Writes
// are serialised and concurrent replies are combined into one write, so
// Reply may return before the frame is on the wire and resp.Body must not be
// changed afterwards; a failed write closes the connection.
func (c *Conn) Reply(resp *Command) error {
	if !resp.IsResponse() {
		return errors.New("remoting: Reply of a command without FlagResponse (use NewResponse)")
	}
	head, err := resp.appendHead(nil, SerializeJSON)
	if err != nil {
		return err
	}
	if size := len(head) - 4 + len(resp.Body); size > c.maxFrame {
		return fmt.Errorf("%w: %s of %d bytes exceeds the limit of %d bytes", ErrFrameTooLarge, resp.kind(), size, c.maxFrame)
	}
	if err := c.Err(); err != nil {
		return err
	}
	if ep := c.rfailed.Load(); ep != nil {
		return *ep
	}
	c.rmu.Lock()
	c.rqueue = append(c.rqueue, head)
	if len(resp.Body) > 0 {
		c.rqueue = append(c.rqueue, resp.Body)
	}
	c.rbytes += len(head) + len(resp.Body)
	if c.rwriting {
		over := c.rmax > 0 && c.rbytes > c.rmax
		if over {
			c.rqueue, c.rbytes = nil, 0
		}
		c.rmu.Unlock()
		if over {
			c.log.Warn("remoting: closing a connection whose peer does not read its replies", "backlog_limit", c.rmax)
			c.markClosed(ErrSlowReader)
			_ = c.nc.Close() // unblocks the writer
			return ErrSlowReader
		}
		return nil // the writer sends it; a failure closes the connection
	}
	c.rwriting = true
	c.rmu.Unlock()
	// Replies come in bursts (a group commit releases every send it
	// carried at once): let the other runnable handlers queue theirs
	// first, so that one write carries them all.
	runtime.Gosched()
	c.rmu.Lock()
	for {
		bufs := c.rqueue
		c.rqueue, c.rbytes = nil, 0
		c.rmu.Unlock()
		err = c.writeBuffers(bufs)
		c.rmu.Lock()
		if err != nil || len(c.rqueue) == 0 {
			c.rqueue = nil
			c.rwriting = false
			c.rmu.Unlock()
			return err
		}
	}
}

// writeBuffers writes whole frames under the write lock, bounded by
// WriteTimeout; any failure closes the connection (frames may be partly
// sent).
func (c *Conn) writeBuffers(bufs net.Buffers) error {
	select {
	case c.wsem <- struct{}{}:
	case <-c.done:
		return c.Err()
	}
	defer func() { <-c.wsem }()
	if err := c.Err(); err != nil {
		return err
	}
	var deadline time.Time
	if c.writeTimeout > 0 {
		deadline = time.Now().Add(c.writeTimeout)
	}
	if !deadline.IsZero() || c.wdeadline {
		_ = c.nc.SetWriteDeadline(deadline)
		c.wdeadline = !deadline.IsZero()
	}
	if _, err := bufs.WriteTo(c.nc); err != nil {
		return c.replyFailed(err)
	}
	return nil
}

// replyGrace bounds how long a connection whose replies can no longer be
// written keeps reading the requests its peer sent before that.
const replyGrace = time.Second

// replyFailed handles a failed write of replies. A client may send a few
// requests and close its connection without reading the answers
// (rocketmq-client-go persists its offsets that way on shutdown): the
// requests already sent must still be served, so the connection stops
// writing but goes on reading until the peer's end of the stream, for at
// most replyGrace, before it closes.
func (c *Conn) replyFailed(err error) error {
	werr := fmt.Errorf("%w: writing responses: %w", ErrConnClosed, err)
	if !c.rfailed.CompareAndSwap(nil, &werr) {
		return *c.rfailed.Load()
	}
	c.log.Debug("remoting: cannot write replies; serving what the peer already sent", "err", err)
	if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(replyGrace))
	return werr
}

// write sends one frame. deadline, if set, bounds the write besides
// WriteTimeout and ctx's deadline.
func (c *Conn) write(ctx context.Context, cmd *Command, deadline time.Time) error {
	bp := headPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= pooledHeadCap {
			headPool.Put(bp)
		}
	}()
	head, err := cmd.appendHead((*bp)[:0], SerializeJSON)
	*bp = head[:0]
	if err != nil {
		return err
	}
	if size := len(head) - 4 + len(cmd.Body); size > c.maxFrame {
		return fmt.Errorf("%w: %s of %d bytes exceeds the limit of %d bytes", ErrFrameTooLarge, cmd.kind(), size, c.maxFrame)
	}

	select {
	case c.wsem <- struct{}{}:
	case <-ctx.Done():
		return c.ctxError(cmd, ctx.Err())
	case <-c.done:
		return c.Err()
	}
	defer func() { <-c.wsem }()
	if err := c.Err(); err != nil {
		return err
	}
	if c.writeTimeout > 0 {
		if t := time.Now().Add(c.writeTimeout); deadline.IsZero() || t.Before(deadline) {
			deadline = t
		}
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	if !deadline.IsZero() || c.wdeadline {
		_ = c.nc.SetWriteDeadline(deadline)
		c.wdeadline = !deadline.IsZero()
	}
	bufs := net.Buffers{head}
	if len(cmd.Body) > 0 {
		bufs = append(bufs, cmd.Body)
	}
	n, err := bufs.WriteTo(c.nc)
	if err == nil {
		return nil
	}
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		// Nothing went out: the stream is intact and the connection usable.
		return fmt.Errorf("remoting: writing %s to %s: %w", cmd.kind(), addrString(c.remote), err)
	}
	c.markClosed(fmt.Errorf("writing %s: %w", cmd.kind(), err))
	_ = c.nc.Close()
	return c.Err()
}

func (c *Command) kind() string {
	if c.IsResponse() {
		return "response " + ResponseCodeName(c.Code)
	}
	return "request " + RequestCodeName(c.Code)
}

// markClosed records why the connection closed and wakes everyone waiting
// on it. Only the first call has an effect; it reports whether it was first.
// It does not close the socket.
func (c *Conn) markClosed(cause error) bool {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return false
	}
	if cause == nil {
		c.err = ErrConnClosed
	} else {
		c.err = fmt.Errorf("%w: %w", ErrConnClosed, cause)
	}
	c.pending = nil // waiters select on done
	c.mu.Unlock()
	close(c.done)
	return true
}

// Close closes the connection: pending Invoke calls fail with ErrConnClosed,
// the socket is closed and Close waits for the reader goroutine to exit,
// unless it is called from that goroutine (from a Handler or a Server's
// OnConnClose hook), where it returns at once and the reader exits when the
// callback returns. Close is idempotent; only the first call can return the
// socket's close error.
func (c *Conn) Close() error {
	first := c.markClosed(nil)
	err := c.nc.Close()
	if !c.onReaderGoroutine() {
		<-c.readerDone
	}
	if !first || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// onReaderGoroutine reports whether the caller is the reader goroutine.
func (c *Conn) onReaderGoroutine() bool {
	if g := goroutineID(); g != 0 {
		return g == c.readerID.Load()
	}
	// The runtime did not give an id: assume a call during a callback is
	// from it, rather than risk a deadlock.
	return c.inCallback.Load()
}

// goroutineID returns the current goroutine's id as printed in stack traces,
// or 0 if it cannot be parsed. Close uses it to avoid waiting for itself.
func goroutineID() uint64 {
	var buf [64]byte
	s := buf[:runtime.Stack(buf[:], false)]
	s, ok := bytes.CutPrefix(s, []byte("goroutine "))
	if !ok {
		return 0
	}
	i := bytes.IndexByte(s, ' ')
	if i < 0 {
		return 0
	}
	id, err := strconv.ParseUint(string(s[:i]), 10, 64)
	if err != nil {
		return 0
	}
	return id
}

// readLoop is the connection's goroutine: it reads frames, delivers
// responses to Invoke calls and requests to the handler, until the
// connection fails or is closed.
func (c *Conn) readLoop() {
	c.readerID.Store(goroutineID())
	c.log.Debug("remoting: connection open", "local", addrString(c.local))
	defer func() {
		_ = c.nc.Close()
		c.log.Debug("remoting: connection closed", "cause", c.Err())
		if c.onClose != nil {
			c.inCallback.Store(true)
			c.onClose(c)
			c.inCallback.Store(false)
		}
		close(c.readerDone)
	}()
	for {
		if c.idleTimeout > 0 && c.rfailed.Load() == nil {
			_ = c.nc.SetReadDeadline(time.Now().Add(c.idleTimeout))
		}
		cmd, fault, err := readFrame(c.br, c.maxFrame, c.probeDeadline)
		switch {
		case err != nil && c.rfailed.Load() != nil:
			c.markClosed(*c.rfailed.Load())
			return
		case err != nil:
			if c.idleTimeout > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("idle timeout: no frame for %v: %w", c.idleTimeout, err)
			}
			c.markClosed(err)
			return
		case fault != nil:
			c.refuse(fault)
			return
		case cmd.IsResponse():
			c.deliver(cmd)
		default:
			c.serve(cmd)
		}
		select {
		case <-c.done:
			return
		default:
		}
	}
}

// deliver hands a response to the Invoke call waiting for its opaque, or
// drops it.
func (c *Conn) deliver(resp *Command) {
	c.mu.Lock()
	ch := c.pending[resp.Opaque]
	delete(c.pending, resp.Opaque)
	c.mu.Unlock()
	if ch == nil {
		c.log.Debug("remoting: dropping unmatched response", "opaque", resp.Opaque, "code", resp.Code)
		return
	}
	ch <- resp // buffered, and only this goroutine sends on it
}

// serve runs the handler for one request.
func (c *Conn) serve(req *Command) {
	c.inCallback.Store(true)
	defer c.inCallback.Store(false)
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("remoting: handler panic; closing connection",
				"request", req.String(), "panic", r, "stack", string(debug.Stack()))
			if !req.IsOneway() {
				_ = c.Reply(NewResponse(req, RespSystemError, "internal error"))
			}
			c.markClosed(fmt.Errorf("handler panic: %v", r))
			_ = c.nc.Close()
		}
	}()
	if c.handler == nil {
		if !req.IsOneway() {
			_ = c.Reply(NewResponse(req, RespRequestCodeNotSupported,
				fmt.Sprintf("request code %d is not supported", req.Code)))
		}
		return
	}
	c.handler.ServeRemoting(c, req)
}

// refuse handles a frame that could not be read: it tells the peer what was
// wrong when the frame's opaque is known and the frame is a request, then
// closes the connection, lingering briefly so that the peer can read the
// answer before the socket goes.
func (c *Conn) refuse(f *frameFault) {
	c.log.Warn("remoting: refusing frame; closing connection", "err", f.err)
	answer := f.hasOpaque && !f.isResponse
	if answer {
		remark := f.err.Error()
		if len(remark) > maxRemarkLen {
			remark = remark[:maxRemarkLen]
		}
		resp := &Command{
			Code:     RespSystemError,
			Language: LanguageJava,
			Version:  ProtocolVersion,
			Opaque:   f.opaque,
			Flag:     FlagResponse,
			Remark:   remark,
		}
		if err := c.write(context.Background(), resp, time.Now().Add(badFrameLinger)); err != nil {
			answer = false
		}
	}
	c.markClosed(f.err)
	if !answer {
		return
	}
	// Half-close, then read and discard what the peer still sends (the rest
	// of the frame, frames already in flight) until it hangs up: closing
	// with unread data would reset the connection and could destroy the
	// answer before the peer reads it.
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(badFrameLinger))
	_, _ = io.CopyN(io.Discard, c.br, f.unread+int64(c.maxFrame))
}

// probeDeadline bounds the read of an oversized frame's header.
func (c *Conn) probeDeadline() {
	_ = c.nc.SetReadDeadline(time.Now().Add(badFrameLinger))
}
