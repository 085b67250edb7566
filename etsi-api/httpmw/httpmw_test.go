package httpmw

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// stepClock advances by step on every reading, so each request lasts
// exactly step.
type stepClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *stepClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

// syncBuffer is a log sink safe for the server's goroutines.
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

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func newLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func do(t *testing.T, c *http.Client, method, url string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestMetricsLabelsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	clock := &stepClock{t: time.Unix(0, 0), step: 250 * time.Millisecond}
	m, err := NewMetrics(reg, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /app_pkgm/v1/onboarded_app_packages/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	})
	srv := httptest.NewServer(Chain(mux, m.Wrap))
	defer srv.Close()

	for i := range 20 { // 20 distinct IDs must not make 20 series
		do(t, srv.Client(), "GET", fmt.Sprintf("%s/app_pkgm/v1/onboarded_app_packages/pkg-%d", srv.URL, i), nil)
	}
	do(t, srv.Client(), "POST", srv.URL+"/oauth2/token", nil)
	do(t, srv.Client(), "GET", srv.URL+"/app_lcm/v1/app_instances", nil) // 404 from the mux
	do(t, srv.Client(), "GET", srv.URL+"/wp-admin/setup.php", nil)
	do(t, srv.Client(), "GET", srv.URL+"/api/v1/sites/x", nil)
	do(t, srv.Client(), "BREW", srv.URL+"/app_pkgm/v1/x", nil)

	tests := []struct {
		api, method, code string
		want              float64
	}{
		{"app_pkgm", "GET", "200", 20},
		{"oauth2", "POST", "400", 1},
		{"app_lcm", "GET", "404", 1},
		{"other", "GET", "404", 1},
		{"api", "GET", "404", 1},
		{"app_pkgm", "OTHER", "404", 1},
	}
	for _, tt := range tests {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(tt.api, tt.method, tt.code)); got != tt.want {
			t.Errorf("requests{%s,%s,%s} = %v, want %v", tt.api, tt.method, tt.code, got, tt.want)
		}
	}
	if n := testutil.CollectAndCount(m.requests); n != len(tests) {
		t.Errorf("%d request series, want %d", n, len(tests))
	}

	// Each request read the clock twice, 250ms apart.
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "mecorch_http_request_duration_seconds" {
			continue
		}
		for _, metric := range f.GetMetric() {
			h := metric.GetHistogram()
			if avg := h.GetSampleSum() / float64(h.GetSampleCount()); avg != 0.25 {
				t.Errorf("mean duration %v, want 0.25", avg)
			}
		}
	}
	if _, err := NewMetrics(reg, nil); err == nil {
		t.Error("registering the metrics twice on one registry succeeded")
	}
}

func TestLoggingOneLinePerRequestWithoutSecrets(t *testing.T) {
	var buf syncBuffer
	log := newLogger(&buf)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		NoteClientID(r.Context(), "client-7")
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte("short and stout"))
	})
	clock := &stepClock{t: time.Unix(0, 0), step: time.Second}
	srv := httptest.NewServer(Chain(mux, Log(log, clock.now)))
	defer srv.Close()

	const secret = "s3cr3t-bearer-value"
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/things/abc?access_token="+secret, nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	do(t, srv.Client(), "GET", srv.URL+"/nowhere/abc", nil)

	lines := buf.lines(t)
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2:\n%s", len(lines), buf.String())
	}
	first := lines[0]
	want := map[string]any{"method": "GET", "route": "GET /api/v1/things/{id}", "status": 418.0, "client": "client-7", "bytes": 15.0}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s = %v, want %v", k, first[k], v)
		}
	}
	if d, ok := first["duration"].(float64); !ok || time.Duration(d) != time.Second {
		t.Errorf("duration = %v, want 1s", first["duration"])
	}
	if lines[1]["route"] != "/nowhere/abc" || lines[1]["client"] != nil {
		t.Errorf("unmatched request logged as %v", lines[1])
	}
	if strings.Contains(buf.String(), secret) || strings.Contains(buf.String(), "access_token") {
		t.Errorf("log holds the token or the query string:\n%s", buf.String())
	}
}

func TestNoteClientIDWithoutLoggingIsHarmless(t *testing.T) {
	NoteClientID(httptest.NewRequest("GET", "/", nil).Context(), "x")
}

func TestRecover(t *testing.T) {
	var buf syncBuffer
	log := newLogger(&buf)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/boom", func(w http.ResponseWriter, r *http.Request) { panic("nil map somewhere") })
	mux.HandleFunc("GET /api/v1/late", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		panic("after the header")
	})
	mux.HandleFunc("GET /api/v1/abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	srv := httptest.NewServer(Chain(mux, Log(log, nil), m.Wrap, Recover(log)))
	defer srv.Close()

	resp, body := do(t, srv.Client(), "GET", srv.URL+"/api/v1/boom", nil)
	if resp.StatusCode != 500 || resp.Header.Get("Content-Type") != problem.ContentType {
		t.Fatalf("got %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var p problem.Details
	if err := json.Unmarshal(body, &p); err != nil || p.Status != 500 || strings.Contains(p.Detail, "nil map") {
		t.Errorf("problem %+v (%v): want status 500 and no panic text", p, err)
	}
	if !strings.Contains(buf.String(), "handler panic") || !strings.Contains(buf.String(), "nil map somewhere") || !strings.Contains(buf.String(), "goroutine") {
		t.Errorf("panic not logged with its stack:\n%s", buf.String())
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("api", "GET", "500")); got != 1 {
		t.Errorf("panicking request counted %v times as 500", got)
	}

	resp, _ = do(t, srv.Client(), "GET", srv.URL+"/api/v1/late", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("a panic after the header changed the status to %d", resp.StatusCode)
	}

	if _, err := srv.Client().Get(srv.URL + "/api/v1/abort"); err == nil {
		t.Error("ErrAbortHandler was answered instead of aborting the response")
	}
}

func TestMaxBytes(t *testing.T) {
	var called int
	h := Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called++
		if _, err := io.ReadAll(r.Body); err != nil {
			if p := TooLarge(err); p != nil {
				problem.WriteError(w, r, p)
				return
			}
			t.Errorf("read: %v", err)
		}
		w.WriteHeader(http.StatusNoContent)
	}), MaxBytes(16))
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, _ := do(t, srv.Client(), "POST", srv.URL+"/x", strings.NewReader("small"))
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("small body: %d", resp.StatusCode)
	}
	resp, body := do(t, srv.Client(), "POST", srv.URL+"/x", strings.NewReader(strings.Repeat("x", 17)))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || called != 1 {
		t.Errorf("announced large body: %d, handler called %d times", resp.StatusCode, called)
	}
	var p problem.Details
	if err := json.Unmarshal(body, &p); err != nil || p.Status != 413 {
		t.Errorf("problem %s: %v", body, err)
	}
	// Chunked: the size is only known while reading.
	resp, _ = do(t, srv.Client(), "POST", srv.URL+"/x", io.MultiReader(strings.NewReader(strings.Repeat("y", 40))))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || called != 2 {
		t.Errorf("chunked large body: %d, handler called %d times", resp.StatusCode, called)
	}
	if TooLarge(errors.New("other")) != nil {
		t.Error("TooLarge claimed an unrelated error")
	}
}

func TestStreamingAndHijackPassThrough(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/stream", func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok {
			t.Error("wrapped writer is not a Flusher")
			return
		}
		_, _ = io.WriteString(w, "one\n")
		f.Flush()
		_, _ = io.WriteString(w, "two\n")
	})
	mux.HandleFunc("GET /api/v1/raw", func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nraw")
		_ = rw.Flush()
	})
	srv := httptest.NewServer(Chain(mux, Log(newLogger(&buf), nil), m.Wrap, Recover(newLogger(&buf))))
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL + "/api/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if err != nil || line != "one\n" {
		t.Errorf("first streamed line %q, %v", line, err)
	}
	resp, body := do(t, srv.Client(), "GET", srv.URL+"/api/v1/raw", nil)
	if resp.StatusCode != 200 || string(body) != "raw" {
		t.Errorf("hijacked response %d %q", resp.StatusCode, body)
	}
}
