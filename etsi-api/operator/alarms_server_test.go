package operator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	etsiapi "github.com/mecorch/mecorch/etsi-api"
	"github.com/mecorch/mecorch/mec/health"
	"github.com/mecorch/mecorch/mec/store/boltstore"
)

const admin = "alarms-test-admin"

// clock is a settable clock the server's goroutines may read.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type server struct {
	t   *testing.T
	url string
}

func (s *server) do(token, method, path string, body any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *server) must(method, path string, body any, want int) []byte {
	s.t.Helper()
	code, b := s.do(admin, method, path, body)
	if code != want {
		s.t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, want)
	}
	return b
}

// token issues a client of role and returns its access token.
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
	if tok.AccessToken == "" {
		s.t.Fatalf("token for %s: %d", name, resp.StatusCode)
	}
	return tok.AccessToken
}

type alarm struct {
	ID              string `json:"id"`
	ManagedObjectID string `json:"managedObjectId"`
	ProbableCause   string `json:"probableCause"`
	AckState        string `json:"ackState"`
}

// alarms lists the alarms in state.
func (s *server) alarms(state string) []alarm {
	s.t.Helper()
	var as []alarm
	if err := json.Unmarshal(s.must("GET", "/api/v1/alarms?state="+state, nil, http.StatusOK), &as); err != nil {
		s.t.Fatal(err)
	}
	return as
}

// eventually polls cond while the server's monitor, which ticks in real
// time, catches up with the fake clock.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServerHostFailureAlarms runs the whole server: the health monitor
// started by Run marks a silent host NotReady and raises its alarm, which
// the operator lists and acknowledges; the host's next report clears it.
// Alarms are the operator's: other roles are refused as on the rest of
// /api/v1/.
func TestServerHostFailureAlarms(t *testing.T) {
	st, err := boltstore.Open(t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	clk := &clock{now: time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)}
	srv, err := etsiapi.New(etsiapi.Config{AdminToken: admin, StoreEngine: "test",
		Health: health.Config{CheckInterval: 10 * time.Millisecond}},
		st, clk.Now, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	s := &server{t: t, url: ts.URL}

	for _, c := range []struct{ token, role string }{{"", "none"}, {s.token("acme", "app-provider"), "app-provider"}, {s.token("h1", "agent"), "agent"}} {
		code, b := s.do(c.token, "GET", "/api/v1/alarms", nil)
		if want := map[string]int{"none": 401, "app-provider": 403, "agent": 403}[c.role]; code != want {
			t.Errorf("%s lists alarms: %d %s, want %d", c.role, code, b, want)
		}
	}

	s.must("POST", "/api/v1/sites", map[string]any{"id": "s1", "name": "one"}, http.StatusCreated)
	for _, h := range []string{"h1", "h2"} {
		s.must("POST", "/api/v1/hosts", map[string]any{"id": h, "siteId": "s1", "capacity": map[string]any{"vcpu": 4, "memoryMiB": 4096}}, http.StatusCreated)
		s.must("POST", "/api/v1/hosts/"+h+"/status", map[string]any{"generation": 0, "instances": []any{}}, http.StatusNoContent)
	}
	// h1 stays silent for longer than 3 × 2s; h2 reports in between.
	clk.Advance(3 * time.Second)
	s.must("POST", "/api/v1/hosts/h2/status", map[string]any{"generation": 0, "instances": []any{}}, http.StatusNoContent)
	clk.Advance(4 * time.Second)
	eventually(t, "hostUnreachable alarm", func() bool { return len(s.alarms("active")) > 0 })
	as := s.alarms("active")
	if len(as) != 1 || as[0].ManagedObjectID != "h1" || as[0].ProbableCause != "hostUnreachable" || as[0].AckState != "UNACKNOWLEDGED" {
		t.Fatalf("active alarms: %+v", as)
	}
	var h struct{ State string }
	_ = json.Unmarshal(s.must("GET", "/api/v1/hosts/h1", nil, http.StatusOK), &h)
	if h.State != "NotReady" {
		t.Fatalf("h1 %s", h.State)
	}
	s.must("PATCH", "/api/v1/alarms/"+as[0].ID, map[string]any{"ackState": "ACKNOWLEDGED"}, http.StatusOK)

	s.must("POST", "/api/v1/hosts/h1/status", map[string]any{"generation": 0, "instances": []any{}}, http.StatusNoContent)
	eventually(t, "cleared alarm", func() bool { return len(s.alarms("cleared")) == 1 })
	if as := s.alarms("all"); len(as) != 1 || as[0].AckState != "ACKNOWLEDGED" {
		t.Fatalf("all alarms: %+v", as)
	}
}
