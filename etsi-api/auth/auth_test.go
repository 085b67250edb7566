package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecorch/mecorch/etsi-api/httpmw"
	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/store/boltstore"
)

const adminToken = "bootstrap-admin-token-0123456789"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a real mecorch-like server on loopback: the token endpoint, the
// clients API, and resources guarded by each role, behind the request log.
type env struct {
	t     *testing.T
	auth  *Authenticator
	store mec.Store
	clock *clock
	logs  *syncBuffer
	srv   *httptest.Server
}

func openStore(t *testing.T) mec.Store {
	t.Helper()
	st, err := boltstore.Open(t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	e := &env{t: t, store: openStore(t), clock: &clock{t: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(cfg, e.store, e.clock.now, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.auth = a
	whoami := func(w http.ResponseWriter, r *http.Request) {
		p, ok := PrincipalFrom(r.Context())
		if !ok {
			t.Error("no principal in an authenticated request")
		}
		writeJSON(w, http.StatusOK, map[string]string{"clientId": p.ClientID, "role": string(p.Role)})
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+TokenPath, a.TokenHandler())
	mux.Handle(TokenPath, a.TokenHandler()) // other methods reach it too, for its 405
	clients := a.ClientsHandler()
	mux.Handle(ClientsPath, clients)
	mux.Handle(ClientsPath+"/", clients)
	mux.Handle("GET /app_pkgm/v1/onboarded_app_packages", a.Require(RoleAppProvider)(http.HandlerFunc(whoami)))
	mux.Handle("GET /api/v1/sites", a.Require(RoleOperator)(http.HandlerFunc(whoami)))
	mux.Handle("GET /agent/v1/desired", a.Require(RoleAgent)(http.HandlerFunc(whoami)))
	mux.Handle("GET /whoami", a.Require()(http.HandlerFunc(whoami)))
	e.srv = httptest.NewServer(httpmw.Chain(mux, httpmw.Log(log, e.clock.now)))
	t.Cleanup(e.srv.Close)
	return e
}

// call makes a request and decodes a JSON answer into out (if non-nil).
func (e *env) call(method, path, bearer string, body io.Reader, contentType string, out any) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return e.do(req, out)
}

func (e *env) do(req *http.Request, out any) *http.Response {
	e.t.Helper()
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", req.Method, req.URL.Path, b, err)
		}
	}
	return resp
}

func (e *env) createClient(bearer, name string, role Role) createdClient {
	e.t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name, "role": string(role)})
	var c createdClient
	resp := e.call("POST", ClientsPath, bearer, bytes.NewReader(body), "application/json", &c)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("create client: %d", resp.StatusCode)
	}
	return c
}

// tokenRequest posts form to the token endpoint, with Basic credentials
// when basicID is set.
func (e *env) tokenRequest(form url.Values, basicID, basicSecret string, out any) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.srv.URL+TokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	return e.do(req, out)
}

func (e *env) token(id, secret string) string {
	e.t.Helper()
	var tr tokenResponse
	resp := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, id, secret, &tr)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("token: %d", resp.StatusCode)
	}
	return tr.AccessToken
}

func TestClientCredentialsFlow(t *testing.T) {
	e := newEnv(t, Config{AdminToken: adminToken, TokenTTL: 30 * time.Minute})
	c := e.createClient(adminToken, "acme apps", RoleAppProvider)
	if c.ID == "" || c.Secret == "" || c.Role != RoleAppProvider || c.Name != "acme apps" || !c.CreatedAt.Equal(e.clock.now()) {
		t.Fatalf("created %+v", c)
	}

	var tr tokenResponse
	resp := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, c.ID, c.Secret, &tr)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d", resp.StatusCode)
	}
	if tr.TokenType != "Bearer" || tr.ExpiresIn != 1800 || tr.Scope != "app-provider" || tr.AccessToken == "" {
		t.Errorf("token response %+v", tr)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("headers %v", resp.Header)
	}

	appToken := tr.AccessToken
	var who map[string]string
	if resp := e.call("GET", "/app_pkgm/v1/onboarded_app_packages", tr.AccessToken, nil, "", &who); resp.StatusCode != 200 {
		t.Fatalf("app provider on an ETSI API: %d", resp.StatusCode)
	}
	if who["clientId"] != c.ID || who["role"] != "app-provider" {
		t.Errorf("principal %v", who)
	}

	var p problem.Details
	resp = e.call("GET", "/api/v1/sites", tr.AccessToken, nil, "", &p)
	if resp.StatusCode != http.StatusForbidden || p.Status != 403 || resp.Header.Get("Content-Type") != problem.ContentType {
		t.Errorf("app provider on the operator API: %d %+v", resp.StatusCode, p)
	}
	if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("403 challenge %q", resp.Header.Get("WWW-Authenticate"))
	}
	if resp := e.call("GET", "/agent/v1/desired", tr.AccessToken, nil, "", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("app provider on the agent API: %d", resp.StatusCode)
	}
	if resp := e.call("GET", ClientsPath, tr.AccessToken, nil, "", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("app provider on the clients API: %d", resp.StatusCode)
	}

	// Client credentials in the form work as well as Basic.
	resp = e.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID}, "client_secret": {c.Secret}}, "", "", &tr)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("token with form credentials: %d", resp.StatusCode)
	}

	// An operator client reaches everything, and may ask for a narrower
	// token.
	op := e.createClient(adminToken, "noc", RoleOperator)
	opToken := e.token(op.ID, op.Secret)
	for _, path := range []string{"/api/v1/sites", "/app_pkgm/v1/onboarded_app_packages", "/agent/v1/desired", ClientsPath, "/whoami"} {
		if resp := e.call("GET", path, opToken, nil, "", nil); resp.StatusCode != 200 {
			t.Errorf("operator on %s: %d", path, resp.StatusCode)
		}
	}
	resp = e.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "scope": {"app-provider"}}, op.ID, op.Secret, &tr)
	if resp.StatusCode != 200 || tr.Scope != "app-provider" {
		t.Fatalf("down-scoped token: %d %+v", resp.StatusCode, tr)
	}
	if resp := e.call("GET", "/api/v1/sites", tr.AccessToken, nil, "", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("down-scoped token on the operator API: %d", resp.StatusCode)
	}

	// The list shows clients, never secrets.
	var list []map[string]any
	if resp := e.call("GET", ClientsPath, adminToken, nil, "", &list); resp.StatusCode != 200 || len(list) != 2 {
		t.Fatalf("list: %d %v", resp.StatusCode, list)
	}
	for _, l := range list {
		for _, k := range []string{"clientSecret", "secretHash", "salt"} {
			if _, ok := l[k]; ok {
				t.Errorf("list shows %s", k)
			}
		}
	}

	// Deleting a client cuts its tokens off at once.
	if resp := e.call("DELETE", ClientsPath+"/"+c.ID, opToken, nil, "", nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if resp := e.call("GET", "/whoami", appToken, nil, "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token of the deleted client: %d", resp.StatusCode)
	}
	if resp := e.call("GET", "/whoami", opToken, nil, "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("token of the remaining client: %d", resp.StatusCode)
	}
}

func TestDeletedClientTokenIsRefused(t *testing.T) {
	e := newEnv(t, Config{AdminToken: adminToken})
	c := e.createClient(adminToken, "short-lived", RoleAppProvider)
	tok := e.token(c.ID, c.Secret)
	if err := e.auth.DeleteClient(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	resp := e.call("GET", "/whoami", tok, nil, "", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token of a deleted client: %d", resp.StatusCode)
	}
	if resp := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, c.ID, c.Secret, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token for a deleted client: %d", resp.StatusCode)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	e := newEnv(t, Config{AdminToken: adminToken})
	c := e.createClient(adminToken, "acme", RoleAppProvider)
	cc := url.Values{"grant_type": {"client_credentials"}}
	tests := []struct {
		name       string
		req        func() *http.Request
		wantStatus int
		wantError  string
	}{
		{"wrong secret", func() *http.Request { return formReq(e, cc, c.ID, "not-the-secret") }, 401, "invalid_client"},
		{"unknown client", func() *http.Request { return formReq(e, cc, "no-such-client", c.Secret) }, 401, "invalid_client"},
		{"no credentials", func() *http.Request { return formReq(e, cc, "", "") }, 401, "invalid_client"},
		{"missing grant type", func() *http.Request { return formReq(e, url.Values{}, c.ID, c.Secret) }, 400, "invalid_request"},
		{"password grant", func() *http.Request {
			return formReq(e, url.Values{"grant_type": {"password"}, "username": {"x"}}, c.ID, c.Secret)
		}, 400, "unsupported_grant_type"},
		{"JSON body", func() *http.Request {
			r := formReq(e, cc, c.ID, c.Secret)
			r.Header.Set("Content-Type", "application/json")
			return r
		}, 400, "invalid_request"},
		{"two authentication methods", func() *http.Request {
			return formReq(e, url.Values{"grant_type": {"client_credentials"}, "client_secret": {c.Secret}}, c.ID, c.Secret)
		}, 400, "invalid_request"},
		{"repeated parameter", func() *http.Request {
			return formReq(e, url.Values{"grant_type": {"client_credentials", "client_credentials"}}, c.ID, c.Secret)
		}, 400, "invalid_request"},
		{"scope beyond the role", func() *http.Request {
			return formReq(e, url.Values{"grant_type": {"client_credentials"}, "scope": {"operator"}}, c.ID, c.Secret)
		}, 400, "invalid_scope"},
		{"unknown scope", func() *http.Request {
			return formReq(e, url.Values{"grant_type": {"client_credentials"}, "scope": {"root"}}, c.ID, c.Secret)
		}, 400, "invalid_scope"},
		{"credentials in the query only", func() *http.Request {
			r := formReq(e, cc, "", "")
			r.URL.RawQuery = url.Values{"client_id": {c.ID}, "client_secret": {c.Secret}}.Encode()
			return r
		}, 401, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var oe oauthError
			resp := e.do(tt.req(), &oe)
			if resp.StatusCode != tt.wantStatus || oe.Code != tt.wantError {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, oe.Code, tt.wantStatus, tt.wantError)
			}
			if tt.wantStatus == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without a Basic challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("error answer may be cached")
			}
		})
	}

	var p problem.Details
	if resp := e.call("GET", TokenPath, "", nil, "", &p); resp.StatusCode != http.StatusMethodNotAllowed || p.Status != 405 {
		t.Errorf("GET on the token endpoint: %d %+v", resp.StatusCode, p)
	}
}

func formReq(e *env, form url.Values, id, secret string) *http.Request {
	req, err := http.NewRequest("POST", e.srv.URL+TokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return req
}

func TestRequireRefusesBadTokens(t *testing.T) {
	e := newEnv(t, Config{AdminToken: adminToken, TokenTTL: time.Hour})
	c := e.createClient(adminToken, "acme", RoleAppProvider)
	good := e.token(c.ID, c.Secret)
	parts := strings.Split(good, ".")

	forged := func(claimsJSON string) string {
		payload := base64.RawURLEncoding.EncodeToString([]byte(claimsJSON))
		return parts[0] + "." + payload + "." + parts[2]
	}
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))

	// A second Authenticator on the same store stands for a restart with a
	// new random key: its tokens are foreign here.
	other, err := New(Config{}, e.store, e.clock.now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	foreign, _, err := other.mintToken(c.ID, RoleAppProvider)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, header string
	}{
		{"no header", ""},
		{"basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte(c.ID+":"+c.Secret))},
		{"empty bearer", "Bearer "},
		{"garbage", "Bearer not-a-token"},
		{"tampered role", "Bearer " + forged(`{"iss":"mecorch","sub":"`+c.ID+`","role":"operator","scope":"operator","iat":0,"exp":9999999999}`)},
		{"alg none", "Bearer " + noneHeader + "." + parts[1] + "."},
		{"foreign key", "Bearer " + foreign},
		{"client secret as token", "Bearer " + c.Secret},
		{"admin token with a suffix", "Bearer " + adminToken + "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.srv.URL+"/whoami", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			var p problem.Details
			resp := e.do(req, &p)
			if resp.StatusCode != http.StatusUnauthorized || p.Status != 401 || resp.Header.Get("Content-Type") != problem.ContentType {
				t.Errorf("got %d %+v", resp.StatusCode, p)
			}
			if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, `Bearer realm="mecorch", error="invalid_token"`) {
				t.Errorf("challenge %q", ch)
			}
		})
	}

	// The scheme is case-insensitive.
	req, _ := http.NewRequest("GET", e.srv.URL+"/whoami", nil)
	req.Header.Set("Authorization", "bearer "+good)
	if resp := e.do(req, nil); resp.StatusCode != 200 {
		t.Errorf("lower-case scheme: %d", resp.StatusCode)
	}

	// Expiry follows the injected clock.
	e.clock.advance(59 * time.Minute)
	if resp := e.call("GET", "/whoami", good, nil, "", nil); resp.StatusCode != 200 {
		t.Errorf("token before expiry: %d", resp.StatusCode)
	}
	e.clock.advance(time.Minute)
	resp := e.call("GET", "/whoami", good, nil, "", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "expired") {
		t.Errorf("expired token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestAdminToken(t *testing.T) {
	e := newEnv(t, Config{AdminToken: adminToken})
	var who map[string]string
	if resp := e.call("GET", "/api/v1/sites", adminToken, nil, "", &who); resp.StatusCode != 200 {
		t.Fatalf("admin token: %d", resp.StatusCode)
	}
	if who["clientId"] != AdminClientID || who["role"] != "operator" {
		t.Errorf("admin principal %v", who)
	}

	// Without an admin token configured, nothing is an admin token.
	e2 := newEnv(t, Config{})
	if resp := e2.call("GET", "/api/v1/sites", adminToken, nil, "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("admin token accepted when none is configured: %d", resp.StatusCode)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	st := openStore(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bad := []Config{
		{AdminToken: "short"},
		{SigningKey: []byte("too short a key")},
		{TokenTTL: time.Millisecond},
	}
	for _, cfg := range bad {
		if _, err := New(cfg, st, time.Now, log); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{}, nil, time.Now, log); err == nil {
		t.Error("New without a store accepted")
	}

	// A configured key makes tokens survive a restart: two Authenticators
	// with the same key accept each other's tokens.
	key := bytes.Repeat([]byte{7}, 32)
	a1, err := New(Config{SigningKey: key}, st, time.Now, log)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := New(Config{SigningKey: key}, st, time.Now, log)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := a1.CreateClient(context.Background(), "x", RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := a1.mintToken(id, RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a2.verifyToken(tok); err != nil {
		t.Errorf("token of a restarted Authenticator with the same key: %v", err)
	}
}

func TestEphemeralKeyIsAnnouncedNotLogged(t *testing.T) {
	var logs syncBuffer
	a, err := New(Config{}, openStore(t), time.Now, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "will not survive a restart") {
		t.Errorf("ephemeral key not announced: %s", logs.String())
	}
	for _, enc := range []string{string(a.key), base64.StdEncoding.EncodeToString(a.key), base64.RawURLEncoding.EncodeToString(a.key)} {
		if strings.Contains(logs.String(), enc) {
			t.Error("the signing key was logged")
		}
	}
}

// Secrets, tokens and Authorization headers never reach the log, through
// a client's creation, a token's issue, authenticated and refused
// requests.
func TestSecretsAndTokensAreNeverLogged(t *testing.T) {
	e := newEnv(t, Config{AdminToken: adminToken})
	c := e.createClient(adminToken, "acme", RoleAppProvider)
	tok := e.token(c.ID, c.Secret)
	e.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID}, "client_secret": {c.Secret}}, "", "", nil)
	e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, c.ID, c.Secret+"wrong", nil)
	if resp := e.call("GET", "/app_pkgm/v1/onboarded_app_packages", tok, nil, "", nil); resp.StatusCode != 200 {
		t.Fatalf("authenticated request: %d", resp.StatusCode)
	}
	e.call("GET", "/api/v1/sites", tok, nil, "", nil)
	e.call("GET", "/whoami", tok+"tampered", nil, "", nil)

	logs := e.logs.String()
	if !strings.Contains(logs, "token issued") || !strings.Contains(logs, `"client":"`+c.ID+`"`) {
		t.Fatalf("the log misses the events this test checks:\n%s", logs)
	}
	basic := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(c.ID) + ":" + url.QueryEscape(c.Secret)))
	for name, secret := range map[string]string{
		"client secret": c.Secret, "access token": tok, "admin token": adminToken,
		"token signature": tok[strings.LastIndex(tok, ".")+1:], "basic credentials": basic,
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds the %s", name)
		}
	}
	if strings.Contains(strings.ToLower(logs), "authorization") {
		t.Errorf("the log mentions an Authorization header:\n%s", logs)
	}
}
