package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/inventory"
)

// engine opens a fresh, empty store of one kind.
type engine struct {
	name string
	open func(t *testing.T) mec.Store
}

// testNow is the injected clock's time.
var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// api is one running operator API, over real HTTP on loopback.
type api struct {
	t     *testing.T
	url   string
	store mec.Store
}

// forEachEngine runs fn against a server over every store engine.
func forEachEngine(t *testing.T, fn func(t *testing.T, a *api)) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			st := e.open(t)
			log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			inv := inventory.New(st, func() time.Time { return testNow }, log)
			srv := httptest.NewServer(NewHandler(inv, log))
			t.Cleanup(srv.Close)
			fn(t, &api{t: t, url: srv.URL, store: st})
		})
	}
}

// response is what a request got back.
type response struct {
	t      *testing.T
	status int
	header http.Header
	body   []byte
}

// do sends body (a string sent verbatim, or a value encoded as JSON) with
// headers given as name, value pairs.
func (a *api) do(method, path string, body any, headers ...string) *response {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, a.url+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &response{t: a.t, status: res.StatusCode, header: res.Header, body: data}
}

// ok asserts a JSON success with status and decodes the body into v.
func (r *response) ok(status int, v any) *response {
	r.t.Helper()
	if r.status != status {
		r.t.Fatalf("status = %d, want %d; body: %s", r.status, status, r.body)
	}
	if status == http.StatusNoContent || status == http.StatusNotModified {
		if len(r.body) != 0 {
			r.t.Errorf("%d with a body: %s", status, r.body)
		}
		return r
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		r.t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			r.t.Fatalf("decode %s: %v", r.body, err)
		}
	}
	return r
}

// problem asserts a ProblemDetails with status and returns it.
func (r *response) problem(status int) problem.Details {
	r.t.Helper()
	if r.status != status {
		r.t.Fatalf("status = %d, want %d; body: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != problem.ContentType {
		r.t.Errorf("Content-Type = %q, want %s", ct, problem.ContentType)
	}
	var p problem.Details
	if err := json.Unmarshal(r.body, &p); err != nil {
		r.t.Fatalf("decode problem %s: %v", r.body, err)
	}
	if p.Status != status || p.Detail == "" || p.Title == "" {
		r.t.Errorf("problem %+v: want status %d, a title and a detail", p, status)
	}
	return p
}

// params asserts a problem's invalid field paths, in order.
func params(t *testing.T, p problem.Details, want ...string) {
	t.Helper()
	var got []string
	for _, ip := range p.InvalidParams {
		got = append(got, ip.Name)
		if ip.Reason == "" {
			t.Errorf("param %s has no reason", ip.Name)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("invalid params = %v, want %v (%s)", got, want, p.Detail)
	}
}

// wantHeader asserts a response header.
func (r *response) wantHeader(name, want string) *response {
	r.t.Helper()
	if got := r.header.Get(name); got != want {
		r.t.Errorf("%s = %q, want %q", name, got, want)
	}
	return r
}

// mustSite creates a site through the API.
func (a *api) mustSite(id string) {
	a.t.Helper()
	a.do("POST", "/api/v1/sites", map[string]any{"id": id, "name": "site " + id}).ok(http.StatusCreated, nil)
}

// hostBody is a valid host request body on siteID.
func hostBody(id, siteID string) map[string]any {
	return map[string]any{
		"id": id, "siteId": siteID, "name": "edge " + id,
		"capacity":  map[string]any{"vcpu": 16, "memoryMiB": 65536, "storageGB": 500, "gpus": 1},
		"labels":    map[string]string{"gpu": "a100"},
		"addresses": []string{"10.1.0.10"},
	}
}
