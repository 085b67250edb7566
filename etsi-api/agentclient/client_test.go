package agentclient

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecorch/mecorch/etsi-api/agentwire"
	"github.com/mecorch/mecorch/mec/agentproto"
)

func TestAPIBase(t *testing.T) {
	cases := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "ws://mecorch:8080/api/v1/agents/connect", want: "http://mecorch:8080"},
		{in: "wss://mecorch.example/api/v1/agents/connect?x=1", want: "https://mecorch.example"},
		{in: "ws://mecorch/", want: "http://mecorch"},
		{in: "ws://mecorch", want: "http://mecorch"},
		{in: "wss://[2001:db8::1]:8443/api/v1/agents/connect", want: "https://[2001:db8::1]:8443"},
		{in: "sctp://mecorch:38412", wantErr: true},
		{in: "http://mecorch:8080", wantErr: true},
		{in: "mecorch:8080", wantErr: true},
		{in: "", wantErr: true},
		{in: "ws://bad host/", wantErr: true},
	}
	for _, c := range cases {
		got, err := APIBase(c.in)
		if c.wantErr {
			if err == nil {
				t.Errorf("APIBase(%q) = %q, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("APIBase(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestNewChecksTheURL(t *testing.T) {
	cases := []struct {
		url string
		ok  bool
	}{
		{"ws://mecorch:8080/api/v1/agents/connect", true},
		{"wss://mecorch/api/v1/agents/connect", true},
		{"sctp://mecorch:38412", true},
		{"http://mecorch:8080", false},
		{"https://mecorch", false},
		{"mecorch:8080", false},
		{"", false},
		{"ws://bad host/", false},
	}
	for _, c := range cases {
		cl, err := New(Config{URL: c.url, HostID: "host-1", Logger: quietLog()}, nil, NewTokens("", "", "", "t", nil, nil))
		if (err == nil) != c.ok {
			t.Errorf("New(%q): %v, want ok=%v", c.url, err, c.ok)
			continue
		}
		if err == nil && (cl.cfg.Backoff.Initial <= 0 || cl.cfg.PathsEvery <= 0 || cl.cfg.StatusEvery <= 0 || cl.Connected()) {
			t.Errorf("New(%q): defaults not set or connected before Run: %+v", c.url, cl.cfg)
		}
	}
}

// TestRunRefreshesARefusedToken runs the channel against a server whose
// websocket endpoint refuses the first upgrade: after a 401 or 403 the
// next dial must carry a freshly issued token; after another refusal
// (503) the cached one is still good.
func TestRunRefreshesARefusedToken(t *testing.T) {
	cases := []struct {
		status     int
		wantTokens int32 // token requests for the two dials
	}{
		{http.StatusUnauthorized, 2},
		{http.StatusForbidden, 2},
		{http.StatusServiceUnavailable, 1},
	}
	for _, c := range cases {
		t.Run(http.StatusText(c.status), func(t *testing.T) {
			e := newAuthEnv(t)
			var mu sync.Mutex
			var seen []string
			second := make(chan struct{})
			e.mux.HandleFunc("/api/v1/agents/connect", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
				switch len(seen) {
				case 1:
					// Tokens minted from now on differ from the first.
					e.clock.advance(time.Second)
					http.Error(w, "refused", c.status)
				case 2:
					close(second)
					fallthrough
				default:
					// No upgrade: the session never gets as far as the agent.
					http.Error(w, "not now", http.StatusServiceUnavailable)
				}
			})
			cl, err := New(Config{URL: "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/api/v1/agents/connect",
				HostID: "host-1", Logger: quietLog(), Backoff: agentwire.Backoff{Initial: time.Millisecond, Max: time.Millisecond}},
				nil, e.tokens())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(testCtx(t))
			done := make(chan error, 1)
			go func() { done <- cl.Run(ctx) }()
			select {
			case <-second:
			case <-ctx.Done():
				t.Fatal("no second dial")
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			if cl.Connected() {
				t.Fatal("Connected after Run ended")
			}

			mu.Lock()
			first, next := seen[0], seen[1]
			mu.Unlock()
			e.mustAccept(first)
			e.mustAccept(next)
			if n := e.tokenReq.Load(); n != c.wantTokens {
				t.Fatalf("%d token requests for two dials, want %d", n, c.wantTokens)
			}
			if fresh := next != first; fresh != (c.wantTokens == 2) {
				t.Fatalf("the second dial carried a fresh token: %v, want %v", fresh, c.wantTokens == 2)
			}
		})
	}
}

// A log tail of binary output must still fit one frame once JSON-encoded,
// keeping its newest part, or the logs answer would break the session.
func TestFitLogs(t *testing.T) {
	plain := []byte("line one\nline two\n")
	if got, trunc := fitLogs(plain, false); got != string(plain) || trunc {
		t.Fatalf("plain text changed: %q %v", got, trunc)
	}
	for name, data := range map[string][]byte{
		"invalid UTF-8":  bytes.Repeat([]byte{0xff}, 512<<10),
		"control bytes":  bytes.Repeat([]byte{0x01}, 512<<10),
		"mixed and tail": append(bytes.Repeat([]byte{0x02, 'a'}, 300<<10), []byte("THE END")...),
	} {
		got, trunc := fitLogs(data, false)
		f, err := agentproto.NewFrame(agentproto.TypeLogs, 1, 1, agentproto.Logs{InstanceID: "i", Data: got, Truncated: trunc})
		if err != nil {
			t.Fatalf("%s: the answer does not fit a frame: %v", name, err)
		}
		if _, err := agentproto.Marshal(f); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) == 0 || (name != "invalid UTF-8" && !trunc) {
			// A run of invalid bytes becomes one U+FFFD: it shrinks, it
			// is not cut.
			t.Errorf("%s: truncated=%v, %d bytes kept", name, trunc, len(got))
		}
		if name == "mixed and tail" && !strings.HasSuffix(got, "THE END") {
			t.Errorf("%s: the newest output was dropped", name)
		}
	}
}
