// Package agentwire carries the agent protocol's frames (mec/agentproto)
// between mecorch and its agents, over a websocket or, where both kernels
// have it, a multi-homed SCTP association. It owns what the protocol
// package must not know: sockets, keepalives, write deadlines, the close
// handshake. Both transports hand out the same Conn, so the hub and the
// agent's client are written once. docs/agent-protocol.md is the reference.
package agentwire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/mecorch/mecorch/mec/agentproto"
)

// Conn is one agent session's connection, on either transport.
type Conn interface {
	// Send queues f for the connection's writer. It is safe from many
	// goroutines; it blocks while the queue is full and fails once the
	// connection is closing or ctx ends. A nil return means queued, not
	// delivered.
	Send(ctx context.Context, f agentproto.Frame) error
	// Recv returns the next frame. A frame this end refuses comes back as
	// a *agentproto.ProtocolError: log it and answer with
	// CloseWith(pe.Code, pe.Detail); the Conn delivers nothing after it.
	// Once the connection has ended, Recv returns why.
	Recv(ctx context.Context) (agentproto.Frame, error)
	// CloseWith sends an Error frame (best effort, within a short deadline)
	// and closes. It returns when the connection is down.
	CloseWith(code, detail string) error
	// Close closes without an Error frame. Closing twice is harmless.
	Close() error
	// RemoteAddr is the peer's address, for logs.
	RemoteAddr() string
	// Paths reports the transport's paths and their round-trip times as the
	// kernel sees them (SCTP); nil on a websocket.
	Paths() []agentproto.Path
}

// Defaults of the options.
const (
	DefaultPingInterval  = 15 * time.Second
	DefaultPongWait      = 10 * time.Second
	DefaultWriteTimeout  = 10 * time.Second
	DefaultSendQueue     = 64
	DefaultPathHeartbeat = time.Second
	defaultHandshake     = 10 * time.Second

	// closeTimeout bounds the Error frame and the close handshake;
	// lingerTimeout is how long a closing end keeps reading for the
	// peer's answer, so that unread data does not turn the close into a
	// reset that could destroy the Error frame on its way.
	closeTimeout  = time.Second
	lingerTimeout = time.Second
	recvQueue     = 16
)

// settings are the options both transports share, defaults applied.
type settings struct {
	pingInterval, pongWait, writeTimeout time.Duration
	sendQueue                            int
}

func newSettings(ping, pong, write time.Duration, queue int) settings {
	s := settings{pingInterval: ping, pongWait: pong, writeTimeout: write, sendQueue: queue}
	if s.pingInterval <= 0 {
		s.pingInterval = DefaultPingInterval
	}
	if s.pongWait <= 0 {
		s.pongWait = DefaultPongWait
	}
	if s.writeTimeout <= 0 {
		s.writeTimeout = DefaultWriteTimeout
	}
	if s.sendQueue <= 0 {
		s.sendQueue = DefaultSendQueue
	}
	return s
}

// transport is what a wire must do for conn. readFrame and ping run only
// on the reader and the writer goroutine respectively; write* and
// closeHandshake only on the writer.
type transport interface {
	// readFrame returns the next frame's bytes; refused is a frame the
	// wire itself refuses (binary, too large) after which reading may go
	// on; err ends the connection (it may be a *ProtocolError).
	readFrame() (frame []byte, refused *agentproto.ProtocolError, err error)
	writeFrame(b []byte, deadline time.Time) error
	// ping sends a keepalive if the wire has its own (nil otherwise).
	ping(now, deadline time.Time) error
	// closeHandshake starts an orderly close; code is the protocol's
	// error code ("" for a plain close).
	closeHandshake(code string, deadline time.Time) error
	closeNow() error
	remoteAddr() string
	paths() []agentproto.Path
}

// conn is the Conn of both transports: one reader and one writer
// goroutine own the wire; Send and Recv talk to them through channels.
type conn struct {
	t        transport
	s        settings
	pingable bool

	out  chan []byte
	ctrl chan func(deadline time.Time) error // replies the reader asks the writer to send (websocket pongs)
	fin  chan finish
	in   chan inbound

	closing    chan struct{} // closed when the close begins
	readerDone chan struct{}
	done       chan struct{} // closed when both goroutines are gone and the wire is closed
	once       sync.Once

	mu    sync.Mutex
	cause error // why the connection ended; the first reason wins
}

type finish struct {
	frame []byte // an encoded Error frame, or nil
	code  string
}

type inbound struct {
	f   agentproto.Frame
	err error
}

func newConn(t transport, s settings, pingable bool) *conn {
	return &conn{t: t, s: s, pingable: pingable,
		out: make(chan []byte, s.sendQueue), ctrl: make(chan func(time.Time) error, 4),
		fin: make(chan finish, 1), in: make(chan inbound, recvQueue),
		closing: make(chan struct{}), readerDone: make(chan struct{}), done: make(chan struct{})}
}

func (c *conn) start() *conn {
	go c.readLoop()
	go c.writeLoop()
	return c
}

func (c *conn) Send(ctx context.Context, f agentproto.Frame) error {
	b, err := agentproto.Marshal(f)
	if err != nil {
		return fmt.Errorf("send %s: %w", f.Type, err)
	}
	select {
	case <-c.closing:
		return c.closedErr()
	default:
	}
	select {
	case c.out <- b:
		return nil
	case <-c.closing:
		return c.closedErr()
	case <-ctx.Done():
		return fmt.Errorf("send %s: %w", f.Type, ctx.Err())
	}
}

func (c *conn) Recv(ctx context.Context) (agentproto.Frame, error) {
	select {
	case it, ok := <-c.in:
		if !ok {
			return agentproto.Frame{}, c.ended()
		}
		return it.f, it.err
	case <-ctx.Done():
		return agentproto.Frame{}, ctx.Err()
	}
}

func (c *conn) CloseWith(code, detail string) error {
	var frame []byte
	if code != "" {
		if b, err := agentproto.Encode(agentproto.TypeError, 0, 0,
			agentproto.Error{Code: code, Detail: clip(detail, 1024)}); err == nil {
			frame = b
		}
	}
	c.setCause(errLocalClose)
	c.begin(finish{frame: frame, code: code})
	// The writer is done within closeTimeout+lingerTimeout unless a write
	// to a stalled peer holds it: cut the wire under it then.
	t := time.NewTimer(closeTimeout + lingerTimeout + 250*time.Millisecond)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = c.t.closeNow()
		<-c.done
	}
	return nil
}

func (c *conn) Close() error { return c.CloseWith("", "") }

func (c *conn) RemoteAddr() string { return c.t.remoteAddr() }

func (c *conn) Paths() []agentproto.Path { return c.t.paths() }

// begin starts the close once: it hands the writer its last words and
// tells Send and the reader that the connection is going.
func (c *conn) begin(f finish) {
	c.once.Do(func() {
		c.fin <- f
		close(c.closing)
	})
}

var errLocalClose = fmt.Errorf("agentwire: connection closed by this end: %w", net.ErrClosed)

func (c *conn) setCause(err error) {
	c.mu.Lock()
	if c.cause == nil {
		c.cause = err
	}
	c.mu.Unlock()
}

// ended is what Recv returns once nothing more will come.
func (c *conn) ended() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause == nil {
		return errLocalClose
	}
	return c.cause
}

func (c *conn) closedErr() error {
	err := c.ended()
	if errors.Is(err, net.ErrClosed) {
		return err
	}
	return fmt.Errorf("agentwire: connection closed (%v): %w", err, net.ErrClosed)
}

func (c *conn) readLoop() {
	defer close(c.readerDone)
	defer close(c.in)
	refused := false
	for {
		b, pe, err := c.t.readFrame()
		if err != nil {
			c.setCause(err)
			var perr *agentproto.ProtocolError
			code := ""
			if errors.As(err, &perr) {
				code = perr.Code
			}
			c.begin(finish{code: code}) // answers a peer's close, or ends the writer
			return
		}
		if refused {
			continue // after a refusal only drain, until the caller closes
		}
		it := inbound{err: pe}
		if pe == nil {
			it.f, it.err = agentproto.Decode(b)
		}
		refused = it.err != nil
		select {
		case c.in <- it:
		case <-c.closing:
		}
	}
}

func (c *conn) writeLoop() {
	defer c.teardown()
	var tick <-chan time.Time
	if c.pingable {
		tk := time.NewTicker(c.s.pingInterval)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		var err error
		select {
		case b := <-c.out:
			err = c.t.writeFrame(b, time.Now().Add(c.s.writeTimeout))
		case w := <-c.ctrl:
			err = w(time.Now().Add(c.s.writeTimeout))
		case now := <-tick:
			err = c.t.ping(now, now.Add(c.s.writeTimeout))
		case f := <-c.fin:
			deadline := time.Now().Add(closeTimeout)
			if f.frame != nil {
				_ = c.t.writeFrame(f.frame, deadline)
			}
			_ = c.t.closeHandshake(f.code, deadline)
			linger := time.NewTimer(lingerTimeout)
			select {
			case <-c.readerDone:
			case <-linger.C:
			}
			linger.Stop()
			return
		}
		if err != nil {
			c.setCause(fmt.Errorf("agentwire: write: %w", err))
			return
		}
	}
}

func (c *conn) teardown() {
	c.begin(finish{}) // after a write error: let Send and the reader know
	_ = c.t.closeNow()
	<-c.readerDone
	close(c.done)
}

// clip shortens s to at most n bytes without splitting a character.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
