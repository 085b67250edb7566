package etsiapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	etsiapi "github.com/mecorch/mecorch/etsi-api"
	"github.com/mecorch/mecorch/etsi-api/notify"
	"github.com/mecorch/mecorch/internal/pgtest"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/store/boltstore"
	"github.com/mecorch/mecorch/mec/store/pgstore"
)

var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

const adminToken = "server-test-admin-token"

// callbacks is a notification receiver: a real HTTP server that records
// the notificationType of every body it is sent.
type callbacks struct {
	mu    sync.Mutex
	types []string
	got   chan struct{}
}

func (c *callbacks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n struct {
		NotificationType string `json:"notificationType"`
		OperationState   string `json:"operationState"`
	}
	_ = json.NewDecoder(r.Body).Decode(&n)
	c.mu.Lock()
	c.types = append(c.types, n.NotificationType+"/"+n.OperationState)
	c.mu.Unlock()
	select {
	case c.got <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

// waitFor waits until a notification whose type starts with prefix arrived.
func (c *callbacks) waitFor(t *testing.T, prefix string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		for _, ty := range c.types {
			if strings.HasPrefix(ty, prefix) {
				c.mu.Unlock()
				return
			}
		}
		c.mu.Unlock()
		select {
		case <-c.got:
		case <-deadline:
			t.Fatalf("no %s notification; got %v", prefix, c.types)
		}
	}
}

type server struct {
	t     *testing.T
	url   string
	reg   *prometheus.Registry
	cb    *callbacks
	cbURL string
}

func start(t *testing.T, store mec.Store, tweak ...func(*etsiapi.Config)) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	reg := prometheus.NewRegistry()
	// The listener comes first: the server needs its own URL for _links.
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	cfg := etsiapi.Config{BaseURL: base, AdminToken: adminToken, StoreEngine: "test",
		Notify: notify.Config{BaseDelay: 10 * time.Millisecond}}
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := etsiapi.New(cfg, store, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	go func() { _ = srv.Run(ctx) }()
	cb := &callbacks{got: make(chan struct{}, 1)}
	cbs := httptest.NewServer(cb)
	t.Cleanup(cbs.Close)
	return &server{t: t, url: base, reg: reg, cb: cb, cbURL: cbs.URL}
}

func (s *server) do(token, method, path string, body any, ct string) (*http.Response, []byte) {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func (s *server) must(method, path string, body any, want int) []byte {
	s.t.Helper()
	ct := ""
	if body != nil {
		ct = "application/json"
		if _, ok := body.([]byte); ok {
			ct = "application/zip"
		}
	}
	resp, b := s.do(adminToken, method, path, body, ct)
	if resp.StatusCode != want {
		s.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	return b
}

func engines(t *testing.T) map[string]func(t *testing.T) mec.Store {
	return map[string]func(t *testing.T) mec.Store{
		"embedded": func(t *testing.T) mec.Store {
			s, err := boltstore.Open(t.TempDir(), boltstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"postgres": func(t *testing.T) mec.Store {
			s, err := pgstore.Open(context.Background(), pg.Database(t), pgstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
}

// TestEndToEnd drives the assembled server as a provider and an agent
// would: subscriptions whose notifications reach a real callback server,
// onboarding, instantiation, the agent's desired state and report, and the
// operation completing from it.
func TestEndToEnd(t *testing.T) {
	for name, open := range engines(t) {
		t.Run(name, func(t *testing.T) {
			s := start(t, open(t))
			s.must("POST", "/api/v1/sites", map[string]any{"id": "s1", "name": "one"}, http.StatusCreated)
			s.must("POST", "/api/v1/hosts", map[string]any{"id": "h1", "siteId": "s1", "capacity": map[string]any{"vcpu": 4, "memoryMiB": 4096}}, http.StatusCreated)
			s.must("POST", "/app_pkgm/v1/subscriptions", map[string]any{"callbackUri": s.cbURL, "subscriptionType": "AppPackageOnBoardingSubscription"}, http.StatusCreated)
			s.must("POST", "/app_lcm/v1/subscriptions", map[string]any{"callbackUri": s.cbURL, "subscriptionType": "AppLcmOpOccStateChangeSubscription"}, http.StatusCreated)

			zip, err := os.ReadFile("../examples/edge-echo.zip")
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(zip)
			var pkg struct{ ID string }
			_ = json.Unmarshal(s.must("POST", "/app_pkgm/v1/onboarded_app_packages", map[string]any{"appPkgName": "echo", "appPkgVersion": "1",
				"checksum": map[string]any{"algorithm": "SHA-256", "hash": hex.EncodeToString(sum[:])}}, http.StatusCreated), &pkg)
			s.must("PUT", "/app_pkgm/v1/onboarded_app_packages/"+pkg.ID+"/package_content", zip, http.StatusAccepted)
			s.cb.waitFor(t, "AppPackageOnBoarded")

			var info struct {
				AppDID string `json:"appDId"`
			}
			_ = json.Unmarshal(s.must("GET", "/app_pkgm/v1/onboarded_app_packages/"+pkg.ID, nil, http.StatusOK), &info)
			var in struct{ ID string }
			_ = json.Unmarshal(s.must("POST", "/app_lcm/v1/app_instances", map[string]any{"appDId": info.AppDID}, http.StatusCreated), &in)
			s.must("POST", "/app_lcm/v1/app_instances/"+in.ID+"/instantiate", map[string]any{}, http.StatusAccepted)
			s.cb.waitFor(t, "AppLcmOpOccStateChangeSubscription/PROCESSING")

			// The agent's side: read the desired state, report it applied.
			var ds struct {
				Generation int64
				Instances  []struct{ ID, State string }
			}
			_ = json.Unmarshal(s.must("GET", "/api/v1/hosts/h1/desired-state", nil, http.StatusOK), &ds)
			if ds.Generation != 1 || len(ds.Instances) != 1 || ds.Instances[0].ID != in.ID || ds.Instances[0].State != "Running" {
				t.Fatalf("desired state %+v", ds)
			}
			s.must("POST", "/api/v1/hosts/h1/status", map[string]any{"generation": 1, "instances": []any{map[string]any{"id": in.ID, "state": "Bogus"}}}, http.StatusBadRequest)
			s.must("POST", "/api/v1/hosts/h1/status", map[string]any{"generation": 1, "instances": []any{map[string]any{"id": in.ID, "state": "Running"}}}, http.StatusNoContent)
			s.cb.waitFor(t, "AppLcmOpOccStateChangeSubscription/COMPLETED")
			var got struct {
				InstantiationState   string `json:"instantiationState"`
				InstantiatedAppState struct {
					OperationalState string `json:"operationalState"`
				} `json:"instantiatedAppState"`
			}
			_ = json.Unmarshal(s.must("GET", "/app_lcm/v1/app_instances/"+in.ID, nil, http.StatusOK), &got)
			if got.InstantiationState != "INSTANTIATED" || got.InstantiatedAppState.OperationalState != "STARTED" {
				t.Fatalf("instance after the report: %+v", got)
			}
			s.must("POST", "/api/v1/hosts/nope/status", map[string]any{"generation": 0, "instances": []any{}}, http.StatusNotFound)
			s.must("GET", "/api/v1/hosts/nope/desired-state", nil, http.StatusNotFound)
		})
	}
}

// TestAuthAndRoles: no token, a wrong token and a provider token on the
// operator API are refused with ProblemDetails; a provider's token from the
// token endpoint works on the ETSI APIs.
func TestAuthAndRoles(t *testing.T) {
	s := start(t, engines(t)["embedded"](t))
	for _, tok := range []string{"", "not-a-token"} {
		resp, b := s.do(tok, "GET", "/app_lcm/v1/app_instances", nil, "")
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/problem+json" ||
			!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("token %q: %d %s %v", tok, resp.StatusCode, b, resp.Header)
		}
	}
	var c struct{ ClientID, ClientSecret string }
	_ = json.Unmarshal(s.must("POST", "/api/v1/clients", map[string]any{"name": "acme", "role": "app-provider"}, http.StatusCreated), &c)
	req, _ := http.NewRequest("POST", s.url+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.SetBasicAuth(c.ClientID, c.ClientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("token endpoint: %d", resp.StatusCode)
	}
	if r, b := s.do(tok.AccessToken, "GET", "/app_pkgm/v1/onboarded_app_packages", nil, ""); r.StatusCode != http.StatusOK {
		t.Fatalf("provider on app_pkgm: %d %s", r.StatusCode, b)
	}
	if r, b := s.do(tok.AccessToken, "GET", "/api/v1/hosts", nil, ""); r.StatusCode != http.StatusForbidden {
		t.Fatalf("provider on the operator API: %d %s", r.StatusCode, b)
	}
	if r, b := s.do(tok.AccessToken, "POST", "/api/v1/hosts/h/status", map[string]any{}, "application/json"); r.StatusCode != http.StatusForbidden {
		t.Fatalf("provider reporting for a host: %d %s", r.StatusCode, b)
	}
}

// token issues a client of role for name and returns its access token.
func (s *server) token(name, role string) string {
	s.t.Helper()
	var c struct{ ClientID, ClientSecret string }
	_ = json.Unmarshal(s.must("POST", "/api/v1/clients", map[string]any{"name": name, "role": role}, http.StatusCreated), &c)
	req, _ := http.NewRequest("POST", s.url+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.SetBasicAuth(c.ClientID, c.ClientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	if resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		s.t.Fatalf("token for %s: %d", name, resp.StatusCode)
	}
	return tok.AccessToken
}

// TestAgentActsOnlyForItsHost: an agent's credential, named after its host,
// reads and reports for that host only, and reaches nothing else.
func TestAgentActsOnlyForItsHost(t *testing.T) {
	s := start(t, engines(t)["embedded"](t))
	s.must("POST", "/api/v1/sites", map[string]any{"id": "s1", "name": "one"}, http.StatusCreated)
	for _, h := range []string{"h1", "h2"} {
		s.must("POST", "/api/v1/hosts", map[string]any{"id": h, "siteId": "s1", "capacity": map[string]any{"vcpu": 4, "memoryMiB": 4096}}, http.StatusCreated)
	}
	agent := s.token("h1", "agent")
	if r, b := s.do(agent, "GET", "/api/v1/hosts/h1/desired-state", nil, ""); r.StatusCode != http.StatusOK {
		t.Fatalf("own desired state: %d %s", r.StatusCode, b)
	}
	if r, b := s.do(agent, "POST", "/api/v1/hosts/h1/status", map[string]any{"generation": 0, "instances": []any{}}, "application/json"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("own report: %d %s", r.StatusCode, b)
	}
	if r, b := s.do(agent, "GET", "/api/v1/hosts/h2/desired-state", nil, ""); r.StatusCode != http.StatusNotFound {
		t.Fatalf("other host's desired state: %d %s", r.StatusCode, b)
	}
	if r, b := s.do(agent, "POST", "/api/v1/hosts/h2/status", map[string]any{"generation": 0, "instances": []any{}}, "application/json"); r.StatusCode != http.StatusNotFound {
		t.Fatalf("report for another host: %d %s", r.StatusCode, b)
	}
	for _, path := range []string{"/api/v1/hosts", "/app_lcm/v1/app_instances", "/metrics"} {
		if r, _ := s.do(agent, "GET", path, nil, ""); r.StatusCode != http.StatusForbidden {
			t.Fatalf("agent on %s: %d", path, r.StatusCode)
		}
	}
	var h struct {
		State         string     `json:"state"`
		LastHeartbeat *time.Time `json:"lastHeartbeat"`
	}
	_ = json.Unmarshal(s.must("GET", "/api/v1/hosts/h1", nil, http.StatusOK), &h)
	if h.State != "Ready" || h.LastHeartbeat == nil {
		t.Fatalf("host after its agent's report: %+v", h)
	}
}

// TestHealthMetricsAndUnknownPaths covers what needs no token and the
// catch-all.
func TestHealthMetricsAndUnknownPaths(t *testing.T) {
	s := start(t, engines(t)["embedded"](t))
	if r, b := s.do("", "GET", "/healthz", nil, ""); r.StatusCode != http.StatusOK || !strings.Contains(string(b), `"ok"`) {
		t.Fatalf("healthz: %d %s", r.StatusCode, b)
	}
	s.must("GET", "/app_lcm/v1/app_instances", nil, http.StatusOK)
	s.must("POST", "/app_lcm/v1/app_instances", map[string]any{"appDId": "none"}, http.StatusUnprocessableEntity)
	if r, _ := s.do("", "GET", "/metrics", nil, ""); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("metrics without a token: %d", r.StatusCode)
	}
	r, b := s.do(adminToken, "GET", "/metrics", nil, "")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d", r.StatusCode)
	}
	for _, want := range []string{`mecorch_http_requests_total{api="app_lcm",code="200",method="GET"} 1`,
		`mecorch_http_requests_total{api="app_lcm",code="422",method="POST"} 1`, "mecorch_http_request_duration_seconds_bucket"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	resp, body := s.do(adminToken, "GET", "/nothing/here", nil, "")
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("unknown path: %d %s", resp.StatusCode, body)
	}
}

// TestNULIsABadRequest: a NUL character in a text field (which Postgres
// cannot store) is the client's mistake, a 400, on both engines alike.
func TestNULIsABadRequest(t *testing.T) {
	for name, open := range engines(t) {
		t.Run(name, func(t *testing.T) {
			s := start(t, open(t))
			body := []byte(`{"id":"s1","name":"bad\u0000name"}`)
			resp, b := s.do(adminToken, "POST", "/api/v1/sites", body, "application/json")
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("NUL in a site name: %d %s", resp.StatusCode, b)
			}
			s.must("GET", "/api/v1/sites/s1", nil, http.StatusNotFound)
		})
	}
}
