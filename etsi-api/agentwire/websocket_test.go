package agentwire

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mecorch/mecorch/mec/agentproto"
)

// testCtx bounds a test, so a hang fails instead of stalling the suite.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustFrame(t *testing.T, typ string, seq, replyTo uint64, body any) agentproto.Frame {
	t.Helper()
	f, err := agentproto.NewFrame(typ, seq, replyTo, body)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// serve runs handle for every websocket accepted by a test server.
func serve(t *testing.T, useTLS bool, opts ServerOptions, handle func(c Conn, r *http.Request)) *httptest.Server {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.Close()
		handle(c, r)
	})
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused TLS handshake of a test
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

func wsURL(srv *httptest.Server) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/v1/agents/connect"
}

// refuseOrEcho is a server loop: a refused frame is answered with its
// code, as the hub does; anything else is echoed back with replyTo set.
func refuseOrEcho(refusals chan<- *agentproto.ProtocolError) func(Conn, *http.Request) {
	return func(c Conn, _ *http.Request) {
		ctx := context.Background()
		for {
			f, err := c.Recv(ctx)
			if err != nil {
				var pe *agentproto.ProtocolError
				if errors.As(err, &pe) {
					if refusals != nil {
						refusals <- pe
					}
					_ = c.CloseWith(pe.Code, pe.Detail)
				}
				return
			}
			f.ReplyTo, f.Seq = f.Seq, 0
			if f.Type == agentproto.TypeHello {
				f = agentproto.Frame{V: agentproto.Version, Type: agentproto.TypeWelcome, ReplyTo: f.ReplyTo,
					Body: json.RawMessage(`{"heartbeatIntervalMs":2000,"serverVersion":"test"}`)}
			}
			if err := c.Send(ctx, f); err != nil {
				return
			}
		}
	}
}

func dial(t *testing.T, url string, opts DialOptions) Conn {
	t.Helper()
	c, err := Dial(testCtx(t), url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestWebsocketRoundTrip(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "ws", true: "wss"}[useTLS], func(t *testing.T) {
			var gotAuth string
			var mu sync.Mutex
			srv := serve(t, useTLS, ServerOptions{}, func(c Conn, r *http.Request) {
				mu.Lock()
				gotAuth = r.Header.Get("Authorization")
				mu.Unlock()
				refuseOrEcho(nil)(c, r)
			})
			opts := DialOptions{Header: http.Header{"Authorization": {"Bearer tok"}}}
			if useTLS {
				pool := x509.NewCertPool()
				pool.AddCert(srv.Certificate())
				opts.TLSConfig = &tls.Config{RootCAs: pool}
				// Without the server's certificate the handshake must fail: TLS is really in use.
				if c, err := Dial(testCtx(t), wsURL(srv), DialOptions{}); err == nil {
					c.Close()
					t.Fatal("dialled a wss server whose certificate is unknown")
				}
			}
			c := dial(t, wsURL(srv), opts)
			ctx := testCtx(t)
			hello := agentproto.Hello{HostID: "h1", SiteID: "s1", Generation: 2}
			if err := c.Send(ctx, mustFrame(t, agentproto.TypeHello, 1, 0, hello)); err != nil {
				t.Fatal(err)
			}
			f, err := c.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var w agentproto.Welcome
			if f.Type != agentproto.TypeWelcome || f.ReplyTo != 1 || agentproto.DecodeBody(f, &w) != nil || w.ServerVersion != "test" {
				t.Fatalf("answer to hello: %+v %s", f, f.Body)
			}
			rep := agentproto.Report{HostID: "h1", Generation: 2, Instances: []agentproto.InstanceStatus{{ID: "i", State: "Running"}}}
			if err := c.Send(ctx, mustFrame(t, agentproto.TypeStatus, 2, 0, rep)); err != nil {
				t.Fatal(err)
			}
			f, err = c.Recv(ctx)
			var got agentproto.Report
			if err != nil || f.ReplyTo != 2 || agentproto.DecodeBody(f, &got) != nil || got.Instances[0].ID != "i" {
				t.Fatalf("echo: %+v %s %v", f, f.Body, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if gotAuth != "Bearer tok" {
				t.Errorf("Authorization on the upgrade = %q", gotAuth)
			}
			if c.Paths() != nil {
				t.Errorf("a websocket has paths: %v", c.Paths())
			}
		})
	}
}

func TestDialRefusedHandshake(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "authentication failed", http.StatusUnauthorized)
	}))
	defer srv.Close()
	_, err := Dial(testCtx(t), wsURL(srv), DialOptions{Header: http.Header{"Authorization": {"Bearer s3cr3t"}}})
	var he *HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Fatalf("err = %v, want a HandshakeError 401", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("the error quotes the token: %v", err)
	}
	if _, err := Dial(testCtx(t), "http://"+srv.Listener.Addr().String(), DialOptions{}); err == nil {
		t.Error("dialled an http:// URL")
	}
}

func TestConcurrentSendsStayIntact(t *testing.T) {
	const senders, each = 32, 25
	size := func(seq uint64) int { return int(seq*97) % 20011 } // some over the writer's buffer
	got := make(chan agentproto.Frame, senders*each)
	srv := serve(t, false, ServerOptions{SendQueue: 4}, func(c Conn, _ *http.Request) {
		for {
			f, err := c.Recv(context.Background())
			if err != nil {
				return
			}
			got <- f
		}
	})
	c := dial(t, wsURL(srv), DialOptions{SendQueue: 4})
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				seq := uint64(g*each + i + 1)
				logs := agentproto.Logs{InstanceID: fmt.Sprint("i", seq), Data: strings.Repeat(string(rune('a'+g%26)), size(seq))}
				f, err := agentproto.NewFrame(agentproto.TypeLogs, seq, 0, logs)
				if err == nil {
					err = c.Send(ctx, f)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for len(seen) < senders*each {
		select {
		case f := <-got:
			var l agentproto.Logs
			if err := agentproto.DecodeBody(f, &l); err != nil {
				t.Fatalf("frame %d: %v", f.Seq, err)
			}
			letter := string(rune('a' + int((f.Seq-1)/each)%26))
			if l.InstanceID != fmt.Sprint("i", f.Seq) || l.Data != strings.Repeat(letter, size(f.Seq)) || seen[f.Seq] {
				t.Fatalf("frame %d mangled or repeated: instance %s, %d bytes", f.Seq, l.InstanceID, len(l.Data))
			}
			seen[f.Seq] = true
		case <-ctx.Done():
			t.Fatalf("received %d of %d frames", len(seen), senders*each)
		}
	}
}

// rawDial connects a plain gorilla client, to send what Conn never would.
func rawDial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.DialContext(testCtx(t), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	return ws
}

func TestRefusedFramesGetAnErrorFrameThenClose(t *testing.T) {
	over := `{"v":1,"type":"logs","body":{"instanceId":"a","data":"` + strings.Repeat("x", agentproto.MaxFrameBytes) + `"}}`
	tests := []struct {
		name    string
		msgType int
		data    string
		code    string
		wsClose int
	}{
		{"too large", websocket.TextMessage, over, agentproto.CodeTooLarge, websocket.CloseMessageTooBig},
		{"wrong version", websocket.TextMessage, `{"v":2,"type":"hello","body":{}}`, agentproto.CodeBadVersion, websocket.CloseProtocolError},
		{"malformed JSON", websocket.TextMessage, `{"v":1,"type":"hello","body":{`, agentproto.CodeBadFrame, websocket.CloseProtocolError},
		{"unknown type", websocket.TextMessage, `{"v":1,"type":"reboot"}`, agentproto.CodeUnexpected, websocket.CloseProtocolError},
		{"binary", websocket.BinaryMessage, `{"v":1,"type":"hello","body":{}}`, agentproto.CodeBadFrame, websocket.CloseProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refusals := make(chan *agentproto.ProtocolError, 1)
			srv := serve(t, false, ServerOptions{}, refuseOrEcho(refusals))
			ws := rawDial(t, wsURL(srv))
			if err := ws.WriteMessage(tt.msgType, []byte(tt.data)); err != nil {
				t.Fatal(err)
			}
			typ, msg, err := ws.ReadMessage()
			if err != nil || typ != websocket.TextMessage {
				t.Fatalf("expected an Error frame, got %d %.200s %v", typ, msg, err)
			}
			f, err := agentproto.Decode(msg)
			var e agentproto.Error
			if err != nil || f.Type != agentproto.TypeError || agentproto.DecodeBody(f, &e) != nil || e.Code != tt.code {
				t.Fatalf("Error frame %s (%v), want code %s", msg, err, tt.code)
			}
			_, _, err = ws.ReadMessage()
			if !websocket.IsCloseError(err, tt.wsClose) {
				t.Fatalf("after the Error frame: %v, want close %d", err, tt.wsClose)
			}
			if pe := <-refusals; pe.Code != tt.code {
				t.Errorf("server saw %v", pe)
			}
		})
	}
}

// A frame far over the limit is cut off by the websocket layer before it
// is read (1009); the server's Recv still reports tooLarge.
func TestFarOversizeClosesWith1009(t *testing.T) {
	refusals := make(chan *agentproto.ProtocolError, 1)
	srv := serve(t, false, ServerOptions{}, refuseOrEcho(refusals))
	ws := rawDial(t, wsURL(srv))
	go func() { _ = ws.WriteMessage(websocket.TextMessage, make([]byte, 2*agentproto.MaxFrameBytes)) }()
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
			t.Fatalf("got %v, want close 1009", err)
		}
		break
	}
	if pe := <-refusals; pe.Code != agentproto.CodeTooLarge {
		t.Errorf("server saw %v", pe)
	}
}

func TestCloseWithReachesTheDialler(t *testing.T) {
	srv := serve(t, false, ServerOptions{}, func(c Conn, _ *http.Request) {
		if _, err := c.Recv(context.Background()); err == nil {
			_ = c.CloseWith(agentproto.CodeForbidden, "authentication failed")
		}
	})
	c := dial(t, wsURL(srv), DialOptions{})
	ctx := testCtx(t)
	if err := c.Send(ctx, mustFrame(t, agentproto.TypeHello, 1, 0, agentproto.Hello{HostID: "h", SiteID: "s"})); err != nil {
		t.Fatal(err)
	}
	f, err := c.Recv(ctx)
	var e agentproto.Error
	if err != nil || f.Type != agentproto.TypeError || agentproto.DecodeBody(f, &e) != nil || e.Code != agentproto.CodeForbidden {
		t.Fatalf("got %+v %s %v, want an Error frame forbidden", f, f.Body, err)
	}
	if _, err := c.Recv(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after the Error frame: %v, want the connection's end", err)
	}
	if err := c.Send(ctx, mustFrame(t, agentproto.TypeHeartbeat, 2, 0, agentproto.Heartbeat{Time: time.Now()})); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after the peer closed: %v", err)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	ended := make(chan error, 1)
	srv := serve(t, false, ServerOptions{}, func(c Conn, _ *http.Request) {
		_, err := c.Recv(context.Background())
		ended <- err
	})
	c := dial(t, wsURL(srv), DialOptions{})
	for range 3 {
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if err := c.CloseWith(agentproto.CodeShutdown, "again"); err != nil {
		t.Fatalf("CloseWith after Close: %v", err)
	}
	ctx := testCtx(t)
	if err := c.Send(ctx, mustFrame(t, agentproto.TypeHeartbeat, 1, 0, agentproto.Heartbeat{Time: time.Now()})); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	if _, err := c.Recv(ctx); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Recv after Close: %v", err)
	}
	var ce *websocket.CloseError
	if err := <-ended; !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		t.Errorf("the server saw %v, want a normal close", err)
	}
}

func TestRecvHonoursContext(t *testing.T) {
	srv := serve(t, false, ServerOptions{}, refuseOrEcho(nil))
	c := dial(t, wsURL(srv), DialOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv: %v", err)
	}
	// The connection is still usable.
	if err := c.Send(testCtx(t), mustFrame(t, agentproto.TypeHeartbeat, 1, 0, agentproto.Heartbeat{Time: time.Now()})); err != nil {
		t.Fatal(err)
	}
	if f, err := c.Recv(testCtx(t)); err != nil || f.ReplyTo != 1 {
		t.Fatalf("echo: %+v %v", f, err)
	}
}
