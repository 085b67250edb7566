package agentwire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mecorch/mecorch/mec/agentproto"
)

// readSlack is how far over MaxFrameBytes the websocket layer lets a
// message run before it closes the connection itself (1009, message too
// big) without reading it. Up to that, this end reads MaxFrameBytes+1
// bytes, refuses with an Error frame of code tooLarge, and discards the
// rest.
const readSlack = 64 << 10

// ServerOptions tune the accepting end: Accept (websocket) and ListenSCTP.
type ServerOptions struct {
	// PingInterval is how often a websocket ping goes out; PongWait how
	// long it may stay unanswered before the connection is closed.
	PingInterval, PongWait time.Duration
	// WriteTimeout bounds each write to the wire.
	WriteTimeout time.Duration
	// SendQueue is how many frames Send may queue ahead of the writer.
	SendQueue int
	// CheckOrigin decides on a browser's Origin header; nil refuses a
	// cross-origin request (agents send none).
	CheckOrigin func(*http.Request) bool
	// PathHeartbeat is the SCTP heartbeat interval of every path.
	PathHeartbeat time.Duration
}

// DialOptions tune the agent's end: Dial (websocket) and DialSCTP.
type DialOptions struct {
	// Header goes on the upgrade request: the agent's
	// "Authorization: Bearer <token>" rides here. Never logged.
	Header http.Header
	// TLSConfig is used for wss URLs; nil means the system's roots.
	TLSConfig *tls.Config
	// HandshakeTimeout bounds the websocket handshake, and the SCTP
	// association setup when ctx has no deadline.
	HandshakeTimeout time.Duration
	// PingInterval, PongWait, WriteTimeout and SendQueue are as in
	// ServerOptions: the agent pings too, so it notices a dead
	// orchestrator without waiting for TCP.
	PingInterval, PongWait, WriteTimeout time.Duration
	SendQueue                            int
	// PathHeartbeat is the SCTP heartbeat interval of every path.
	PathHeartbeat time.Duration
}

// HandshakeError is an upgrade request the server answered with an HTTP
// status instead of switching protocols (401 or 403 for a bad token).
type HandshakeError struct {
	URL        string // without credentials
	StatusCode int
	Body       string // the start of the answer's body
}

func (e *HandshakeError) Error() string {
	msg := fmt.Sprintf("websocket handshake with %s refused: HTTP %d", e.URL, e.StatusCode)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Accept upgrades an agent's request to a websocket Conn. Authenticate the
// request before: on failure Accept has already answered it.
func Accept(w http.ResponseWriter, r *http.Request, opts ServerOptions) (Conn, error) {
	up := websocket.Upgrader{ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10, CheckOrigin: opts.CheckOrigin}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return nil, fmt.Errorf("websocket upgrade from %s: %w", r.RemoteAddr, err)
	}
	s := newSettings(opts.PingInterval, opts.PongWait, opts.WriteTimeout, opts.SendQueue)
	return newWebsocket(ws, s, r.RemoteAddr), nil
}

// Dial opens a websocket to mecorch: ws:// in the clear, wss:// over TLS.
func Dial(ctx context.Context, rawURL string, opts DialOptions) (Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("agent channel URL: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("agent channel URL %s: the scheme must be ws or wss", u.Redacted())
	}
	hs := opts.HandshakeTimeout
	if hs <= 0 {
		hs = defaultHandshake
	}
	d := websocket.Dialer{Proxy: http.ProxyFromEnvironment, TLSClientConfig: opts.TLSConfig,
		HandshakeTimeout: hs, ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10}
	ws, resp, err := d.DialContext(ctx, u.String(), opts.Header)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			_ = resp.Body.Close()
			return nil, &HandshakeError{URL: u.Redacted(), StatusCode: resp.StatusCode, Body: strings.TrimSpace(string(body))}
		}
		return nil, fmt.Errorf("dial %s: %w", u.Redacted(), err)
	}
	s := newSettings(opts.PingInterval, opts.PongWait, opts.WriteTimeout, opts.SendQueue)
	return newWebsocket(ws, s, ws.RemoteAddr().String()), nil
}

// wsTransport is a websocket carrying one frame per text message.
type wsTransport struct {
	ws       *websocket.Conn
	pongWait time.Duration
	remote   string

	mu          sync.Mutex // guards the ping state and the read deadline it sets
	outstanding uint64     // the ping awaiting its pong, 0 if none
	pingSeq     uint64
}

func newWebsocket(ws *websocket.Conn, s settings, remote string) *conn {
	t := &wsTransport{ws: ws, pongWait: s.pongWait, remote: remote}
	c := newConn(t, s, true)
	ws.SetReadLimit(agentproto.MaxFrameBytes + readSlack)
	// Pongs and the close reply go through the writer goroutine, the one
	// owner of the socket's write side. (gorilla itself still writes a
	// close frame when the peer breaks the websocket framing.)
	ws.SetPingHandler(func(data string) error {
		select {
		case c.ctrl <- func(deadline time.Time) error {
			return ws.WriteControl(websocket.PongMessage, []byte(data), deadline)
		}:
		default: // a peer flooding pings loses pongs, not the connection
		}
		return nil
	})
	ws.SetPongHandler(t.pong)
	ws.SetCloseHandler(func(int, string) error { return nil }) // conn answers through closeHandshake
	return c.start()
}

func (t *wsTransport) readFrame() ([]byte, *agentproto.ProtocolError, error) {
	typ, r, err := t.ws.NextReader()
	if err != nil {
		return nil, nil, t.readErr(err)
	}
	if typ != websocket.TextMessage {
		return nil, &agentproto.ProtocolError{Code: agentproto.CodeBadFrame,
			Detail: "binary websocket messages are refused: a frame is one JSON text message"}, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, agentproto.MaxFrameBytes+1))
	if err != nil {
		return nil, nil, t.readErr(err)
	}
	if len(b) > agentproto.MaxFrameBytes {
		return nil, &agentproto.ProtocolError{Code: agentproto.CodeTooLarge,
			Detail: fmt.Sprintf("frame over %d bytes", agentproto.MaxFrameBytes)}, nil
	}
	return b, nil, nil
}

func (t *wsTransport) readErr(err error) error {
	if errors.Is(err, websocket.ErrReadLimit) {
		return &agentproto.ProtocolError{Code: agentproto.CodeTooLarge,
			Detail: fmt.Sprintf("frame over %d bytes", agentproto.MaxFrameBytes+readSlack)}
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Errorf("agentwire: peer closed the websocket: %w", err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("agentwire: no pong within %s: %w", t.pongWait, err)
	}
	return fmt.Errorf("agentwire: read websocket: %w", err)
}

func (t *wsTransport) writeFrame(b []byte, deadline time.Time) error {
	if err := t.ws.SetWriteDeadline(deadline); err != nil {
		return err
	}
	return t.ws.WriteMessage(websocket.TextMessage, b)
}

// ping sends a ping unless one is still unanswered, and arms the read
// deadline for its pong: the connection dies PongWait after an unanswered
// ping, whatever the ratio of PingInterval to PongWait. Data frames do
// not count as an answer: only a peer that reads answers pings.
func (t *wsTransport) ping(now, deadline time.Time) error {
	t.mu.Lock()
	if t.outstanding != 0 {
		t.mu.Unlock()
		return nil
	}
	t.pingSeq++
	t.outstanding = t.pingSeq
	seq := t.pingSeq
	err := t.ws.SetReadDeadline(now.Add(t.pongWait))
	t.mu.Unlock()
	if err != nil {
		return err
	}
	return t.ws.WriteControl(websocket.PingMessage, []byte(strconv.FormatUint(seq, 10)), deadline)
}

// pong runs on the reader goroutine, inside NextReader.
func (t *wsTransport) pong(data string) error {
	seq, err := strconv.ParseUint(data, 10, 64)
	if err != nil {
		return nil // not an answer to our ping
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq != 0 && seq == t.outstanding {
		t.outstanding = 0
		return t.ws.SetReadDeadline(time.Time{})
	}
	return nil
}

func (t *wsTransport) closeHandshake(code string, deadline time.Time) error {
	msg := websocket.FormatCloseMessage(wsCloseCode(code), clip(code, 120))
	return t.ws.WriteControl(websocket.CloseMessage, msg, deadline)
}

// wsCloseCode maps a protocol error code to a websocket close status, for
// tools that see only the websocket layer.
func wsCloseCode(code string) int {
	switch code {
	case "":
		return websocket.CloseNormalClosure
	case agentproto.CodeShutdown:
		return websocket.CloseGoingAway
	case agentproto.CodeTooLarge:
		return websocket.CloseMessageTooBig
	case agentproto.CodeBadFrame, agentproto.CodeBadVersion, agentproto.CodeUnexpected:
		return websocket.CloseProtocolError
	case agentproto.CodeUnavailable:
		return websocket.CloseTryAgainLater
	}
	return websocket.ClosePolicyViolation
}

func (t *wsTransport) closeNow() error          { return t.ws.Close() }
func (t *wsTransport) remoteAddr() string       { return t.remote }
func (t *wsTransport) paths() []agentproto.Path { return nil }
