package apppkgm

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecorch/mecorch/etsi-api/spectest"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/catalog"
	"github.com/mecorch/mecorch/mec/store/boltstore"
)

// engine opens a fresh, empty store of one kind for one test.
type engine struct {
	name string
	open func(t *testing.T) mec.Store
}

func boltEngine() engine {
	return engine{name: "embedded", open: func(t *testing.T) mec.Store {
		s, err := boltstore.Open(t.TempDir(), boltstore.Options{})
		if err != nil {
			t.Fatalf("open embedded store: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}}
}

// eachEngine runs fn on a fresh API server over every store engine.
func eachEngine(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, eng := range engines() {
		t.Run(eng.name, func(t *testing.T) {
			fn(t, newEnv(t, eng, Config{}))
		})
	}
}

// sink keeps the catalog's events so that tests can feed them to
// Notifications as the dispatcher would.
type sink struct {
	mu     sync.Mutex
	events []mec.Event
}

func (s *sink) Publish(ev mec.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
}

// last returns the most recent event of type t.
func (s *sink) last(tb testing.TB, typ mec.EventType) mec.Event {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.events) - 1; i >= 0; i-- {
		if s.events[i].Type == typ {
			return s.events[i]
		}
	}
	tb.Fatalf("no %s event published", typ)
	return mec.Event{}
}

// fixedClock is a clock tests move by hand.
type fixedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// env is one API server on loopback over a real catalog and store.
type env struct {
	t      *testing.T
	store  mec.Store
	cat    *catalog.Service
	h      *Handler
	srv    *httptest.Server
	events *sink
	clock  *fixedClock
	spec   *spectest.Spec
}

func newEnv(t *testing.T, eng engine, cfg Config) *env {
	t.Helper()
	e := &env{t: t, store: eng.open(t), events: &sink{},
		clock: &fixedClock{now: time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)},
		spec:  loadSpec(t)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	e.cat = catalog.New(e.store, e.events, e.clock.Now, log, catalog.DefaultOptions())
	mux := http.NewServeMux()
	e.srv = httptest.NewUnstartedServer(mux)
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	if cfg.BaseURL == "" {
		cfg.BaseURL = e.srv.URL
	}
	e.h = New(cfg, e.cat, e.store, e.clock.Now, log)
	e.h.Routes(mux)
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

var specOnce struct {
	sync.Once
	spec *spectest.Spec
	err  error
}

// loadSpec loads the ETSI file once per test binary: it is read-only once
// loaded, and loading it (with the older files) takes a while.
func loadSpec(t *testing.T) *spectest.Spec {
	t.Helper()
	specOnce.Do(func() { specOnce.spec, specOnce.err = spectest.Open("MEC010-2_AppPkgMgmt.yaml") })
	if specOnce.err != nil {
		t.Fatalf("load ETSI file: %v", specOnce.err)
	}
	return specOnce.spec
}

// reply is one response, read.
type reply struct {
	*http.Response
	body []byte
}

// do sends a request to the API; path is relative to Prefix unless it
// starts with "http" or "/app_pkgm".
func (e *env) do(method, path string, header map[string]string, body []byte) reply {
	e.t.Helper()
	url := path
	switch {
	case strings.HasPrefix(path, "http"):
	case strings.HasPrefix(path, "/app_pkgm"):
		url = e.srv.URL + path
	default:
		url = e.srv.URL + Prefix + path
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return reply{resp, b}
}

var jsonCT = map[string]string{"Content-Type": "application/json"}

// doJSON sends v as a JSON body.
func (e *env) doJSON(method, path string, v any) reply {
	e.t.Helper()
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			e.t.Fatalf("encode: %v", err)
		}
	}
	return e.do(method, path, jsonCT, b)
}

// wantStatus fails the test unless r has status.
func (r reply) wantStatus(t *testing.T, status int) reply {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.body)
	}
	return r
}

// decode unmarshals the body into v.
func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// valid checks a success response against its operation in the ETSI file.
func (e *env) valid(r reply) reply {
	e.t.Helper()
	e.spec.ValidateResponse(e.t, r.Response, r.body)
	return r
}

// problemBody is what the tests read of a ProblemDetails.
type problemBody struct {
	Type          string             `json:"type"`
	Title         string             `json:"title"`
	Status        int                `json:"status"`
	Detail        string             `json:"detail"`
	Instance      string             `json:"instance"`
	InvalidParams []mec.InvalidParam `json:"invalidParams"`
}

// wantProblem checks that r is a ProblemDetails with status, valid against
// the schema (and against the operation when the file declares that
// status), and returns it.
func (e *env) wantProblem(r reply, status int) problemBody {
	e.t.Helper()
	r.wantStatus(e.t, status)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/problem+json" {
		e.t.Errorf("Content-Type %q, want application/problem+json", r.Header.Get("Content-Type"))
	}
	e.spec.ValidateSchema(e.t, "ProblemDetails", r.body)
	if e.declares(r.Request, status) {
		e.spec.ValidateResponse(e.t, r.Response, r.body)
	}
	var p problemBody
	r.decode(e.t, &p)
	if p.Status != status {
		e.t.Errorf("problem status %d, want %d", p.Status, status)
	}
	if p.Detail == "" {
		e.t.Errorf("problem without detail: %s", r.body)
	}
	return p
}

// declares reports whether the ETSI file lists status for req's operation;
// mecorch answers some statuses the file omits (409, 412, 413, 415, 422,
// 405), which are checked against the ProblemDetails schema alone.
func (e *env) declares(req *http.Request, status int) bool {
	return e.spec.CheckResponse(req, status, http.Header{"Content-Type": {"application/problem+json"}}, []byte(`{}`)) == nil
}

// wantParams fails unless p names every one of names.
func wantParams(t *testing.T, p problemBody, names ...string) {
	t.Helper()
	got := map[string]bool{}
	for _, ip := range p.InvalidParams {
		got[ip.Name] = true
	}
	for _, n := range names {
		if !got[n] {
			t.Errorf("invalidParams lack %q: %+v", n, p.InvalidParams)
		}
	}
}
