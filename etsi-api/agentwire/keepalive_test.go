package agentwire

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mecorch/mecorch/mec/agentproto"
)

// silentPeer reads everything (so pings arrive) and answers none of them.
func silentPeer(ws *websocket.Conn) {
	ws.SetPingHandler(func(string) error { return nil })
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
}

func TestServerClosesAPeerThatStopsAnsweringPings(t *testing.T) {
	const ping, pong = 50 * time.Millisecond, 300 * time.Millisecond
	type result struct {
		err     error
		elapsed time.Duration
	}
	done := make(chan result, 1)
	srv := serve(t, false, ServerOptions{PingInterval: ping, PongWait: pong}, func(c Conn, _ *http.Request) {
		start := time.Now()
		_, err := c.Recv(context.Background())
		done <- result{err, time.Since(start)}
	})
	silentPeer(rawDial(t, wsURL(srv)))
	select {
	case r := <-done:
		if r.err == nil || !strings.Contains(r.err.Error(), "no pong") {
			t.Fatalf("Recv: %v, want no pong", r.err)
		}
		// Never before an unanswered ping has waited PongWait.
		if r.elapsed < ping+pong {
			t.Fatalf("closed after %s, before PingInterval+PongWait", r.elapsed)
		}
		t.Logf("closed %s after the connection opened", r.elapsed)
	case <-time.After(10 * time.Second):
		t.Fatal("a silent peer was not closed")
	}
}

func TestClientClosesAServerThatStopsAnsweringPings(t *testing.T) {
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ws.SetPingHandler(func(string) error { return nil })
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c := dial(t, wsURL(srv), DialOptions{PingInterval: 50 * time.Millisecond, PongWait: 200 * time.Millisecond})
	_, err := c.Recv(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "no pong") {
		t.Fatalf("Recv: %v, want no pong", err)
	}
}

// Both ends ping often and answer each other's pings: the connection
// outlives many PongWaits.
func TestPingsAreAnsweredBothWays(t *testing.T) {
	opts := ServerOptions{PingInterval: 10 * time.Millisecond, PongWait: 60 * time.Millisecond}
	srv := serve(t, false, opts, refuseOrEcho(nil))
	c := dial(t, wsURL(srv), DialOptions{PingInterval: 10 * time.Millisecond, PongWait: 60 * time.Millisecond})
	ctx := testCtx(t)
	deadline := time.Now().Add(600 * time.Millisecond)
	for seq := uint64(1); time.Now().Before(deadline); seq++ {
		if err := c.Send(ctx, mustFrame(t, agentproto.TypeHeartbeat, seq, 0, agentproto.Heartbeat{Time: time.Now()})); err != nil {
			t.Fatal(err)
		}
		if f, err := c.Recv(ctx); err != nil || f.ReplyTo != seq {
			t.Fatalf("round trip %d: %+v %v", seq, f, err)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// One agent's bad frame ends its own connection only.
func TestBadConnectionLeavesOthersAlone(t *testing.T) {
	refusals := make(chan *agentproto.ProtocolError, 1)
	srv := serve(t, false, ServerOptions{}, refuseOrEcho(refusals))
	good := dial(t, wsURL(srv), DialOptions{})
	ctx := testCtx(t)
	roundTrip := func(seq uint64) {
		t.Helper()
		if err := good.Send(ctx, mustFrame(t, agentproto.TypeHeartbeat, seq, 0, agentproto.Heartbeat{Time: time.Now()})); err != nil {
			t.Fatal(err)
		}
		if f, err := good.Recv(ctx); err != nil || f.ReplyTo != seq {
			t.Fatalf("good connection, round trip %d: %+v %v", seq, f, err)
		}
	}
	roundTrip(1)

	bad := rawDial(t, wsURL(srv))
	if err := bad.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"type":`)); err != nil {
		t.Fatal(err)
	}
	if pe := <-refusals; pe.Code != agentproto.CodeBadFrame {
		t.Fatalf("refusal %v", pe)
	}
	for {
		if _, _, err := bad.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseProtocolError) {
				t.Fatalf("bad connection ended with %v", err)
			}
			break
		}
	}
	for seq := uint64(2); seq < 10; seq++ {
		roundTrip(seq)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
}
