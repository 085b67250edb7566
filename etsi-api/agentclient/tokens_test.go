package agentclient

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/mec/store/boltstore"
)

// fakeClock is the time both the token endpoint and Tokens see.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// authEnv is mecorch's real token endpoint on loopback, over an embedded
// store, with one agent credential. Tests add their own handlers to mux.
type authEnv struct {
	t        *testing.T
	auth     *auth.Authenticator
	clock    *fakeClock
	mux      *http.ServeMux
	srv      *httptest.Server
	clientID string
	secret   string
	tokenReq atomic.Int32 // requests that reached the token endpoint
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newAuthEnv(t *testing.T) *authEnv {
	t.Helper()
	st, err := boltstore.Open(t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := &authEnv{t: t, clock: &fakeClock{t: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}, mux: http.NewServeMux()}
	a, err := auth.New(auth.Config{}, st, e.clock.now, quietLog())
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	e.auth = a
	e.clientID, e.secret, err = a.CreateClient(context.Background(), "host-1", auth.RoleAgent)
	if err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	tokens := a.TokenHandler()
	e.mux.Handle(auth.TokenPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.tokenReq.Add(1)
		tokens.ServeHTTP(w, r)
	}))
	e.srv = httptest.NewServer(e.mux)
	t.Cleanup(e.srv.Close)
	return e
}

// tokens returns a client-credentials token source for the agent.
func (e *authEnv) tokens() *Tokens {
	return NewTokens(e.srv.URL+"/", e.clientID, e.secret, "", e.srv.Client(), e.clock.now)
}

// mustAccept checks that mecorch takes tok as the agent's.
func (e *authEnv) mustAccept(tok string) {
	e.t.Helper()
	p, err := e.auth.Authenticate(context.Background(), tok)
	if err != nil {
		e.t.Fatalf("Authenticate refused the token: %v", err)
	}
	if p.ClientID != e.clientID || p.Role != auth.RoleAgent {
		e.t.Fatalf("principal = %+v, want the agent client %s", p, e.clientID)
	}
}

func TestTokensGetCachesAndRenews(t *testing.T) {
	e := newAuthEnv(t)
	tk := e.tokens()
	ctx := testCtx(t)

	first, err := tk.Get(ctx)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	e.mustAccept(first)
	again, err := tk.Get(ctx)
	if err != nil {
		t.Fatalf("second Get: %v", err)
	}
	if again != first || e.tokenReq.Load() != 1 {
		t.Fatalf("second Get: same token %v, token requests %d; want the cached token and 1 request", again == first, e.tokenReq.Load())
	}

	// The token lives an hour; it is renewed a minute before it expires.
	e.clock.advance(58*time.Minute + 59*time.Second)
	if tok, _ := tk.Get(ctx); tok != first || e.tokenReq.Load() != 1 {
		t.Fatalf("at expiry-61s: token requests %d, want the cached token", e.tokenReq.Load())
	}
	e.clock.advance(time.Second)
	renewed, err := tk.Get(ctx)
	if err != nil {
		t.Fatalf("Get at expiry-1m: %v", err)
	}
	if renewed == first || e.tokenReq.Load() != 2 {
		t.Fatalf("at expiry-1m: new token %v, token requests %d; want a renewal", renewed != first, e.tokenReq.Load())
	}
	e.mustAccept(renewed)
	if tok, _ := tk.Get(ctx); tok != renewed || e.tokenReq.Load() != 2 {
		t.Fatalf("after renewal: token requests %d, want the renewed token cached", e.tokenReq.Load())
	}
}

func TestTokensForgetFetchesAnew(t *testing.T) {
	e := newAuthEnv(t)
	tk := e.tokens()
	ctx := testCtx(t)
	first, err := tk.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tk.Forget()
	e.clock.advance(time.Second) // a token minted in another second differs
	second, err := tk.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second == first || e.tokenReq.Load() != 2 {
		t.Fatalf("after Forget: new token %v, token requests %d; want a fresh token", second != first, e.tokenReq.Load())
	}
	e.mustAccept(second)
}

func TestTokensStaticIsHandedOutAsIs(t *testing.T) {
	e := newAuthEnv(t)
	tk := NewTokens(e.srv.URL, "", "", "operator-bench-token", nil, nil)
	for range 2 {
		tok, err := tk.Get(testCtx(t))
		if err != nil || tok != "operator-bench-token" {
			t.Fatalf("Get = %q, %v; want the static token", tok, err)
		}
		tk.Forget() // nothing to forget: a static token is all there is
	}
	if n := e.tokenReq.Load(); n != 0 {
		t.Fatalf("a static token source made %d token requests", n)
	}
}

func TestTokensRefusedCredentials(t *testing.T) {
	e := newAuthEnv(t)
	const wrong = "not-the-secret-but-long-enough-0123456789"
	cases := []struct {
		name, id, secret string
	}{
		{"wrong secret", e.clientID, wrong},
		{"unknown client", "no-such-client", wrong},
		{"secret needing escapes", e.clientID, "a:b%c+d e/" + wrong},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tk := NewTokens(e.srv.URL, c.id, c.secret, "", e.srv.Client(), e.clock.now)
			tok, err := tk.Get(testCtx(t))
			if err == nil {
				t.Fatalf("Get = %q, want an error", tok)
			}
			msg := err.Error()
			if strings.Contains(msg, c.secret) || strings.Contains(msg, wrong) {
				t.Fatalf("the error shows the secret: %s", msg)
			}
			if !strings.Contains(msg, "401") || !strings.Contains(msg, "invalid_client") {
				t.Fatalf("error = %s, want the 401 invalid_client answer", msg)
			}
		})
	}
}

func TestTokensUnreadableAnswers(t *testing.T) {
	cases := []struct {
		name, body string
		status     int
		want       string
	}{
		{"not JSON", "<html>", http.StatusOK, "unreadable"},
		{"no access_token", `{"token_type":"Bearer","expires_in":3600}`, http.StatusOK, "unreadable"},
		{"server error", "store down", http.StatusInternalServerError, "500"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(c.status)
				_, _ = io.WriteString(w, c.body)
			}))
			defer srv.Close()
			tk := NewTokens(srv.URL, "id", "secret", "", srv.Client(), time.Now)
			if _, err := tk.Get(testCtx(t)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Get: %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}
