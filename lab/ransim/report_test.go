package ransim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a stand-in for mecorch's POST /api/v1/ue_cell_changes: it
// keeps what it was sent and answers with the statuses it is given, then
// 200.
type recorder struct {
	t        *testing.T
	token    string
	mu       sync.Mutex
	posts    []CellChange
	statuses []int
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != CellChangesPath {
		http.NotFound(w, req)
		return
	}
	if req.Header.Get("Authorization") != "Bearer "+r.token || req.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	body, _ := io.ReadAll(req.Body)
	// The body must be what mecorch takes: exactly these fields.
	var fields map[string]any
	if err := json.Unmarshal(body, &fields); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for k := range fields {
		if k != "ueId" && k != "fromCell" && k != "toCell" && k != "time" {
			http.Error(w, "unknown field "+k, http.StatusBadRequest)
			return
		}
	}
	var c CellChange
	_ = json.Unmarshal(body, &c)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.statuses) > 0 {
		s := r.statuses[0]
		r.statuses = r.statuses[1:]
		w.WriteHeader(s)
		return
	}
	r.posts = append(r.posts, c)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ueId":"` + c.UEID + `","cellId":"` + c.ToCell + `"}`))
}

func (r *recorder) got() []CellChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]CellChange(nil), r.posts...)
}

func newRecorder(t *testing.T, token string, statuses ...int) (*recorder, *httptest.Server) {
	rec := &recorder{t: t, token: token, statuses: statuses}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return rec, srv
}

func TestHTTPReporter(t *testing.T) {
	change := CellChange{UEID: "ue1", FromCell: "262-01-0000000a1", ToCell: "262-01-0000000b1", Time: time.Date(2026, 1, 1, 10, 0, 5, 0, time.UTC)}

	rec, srv := newRecorder(t, "s3cret", http.StatusServiceUnavailable)
	r, err := NewHTTPReporter(srv.URL+"/", "s3cret", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Backoff = time.Millisecond
	if err := r.ReportCellChange(context.Background(), change); err != nil {
		t.Fatalf("a 503 then 200: %v", err)
	}
	if got := rec.got(); len(got) != 1 || got[0] != change {
		t.Fatalf("posts = %+v", got)
	}

	// A refusal is final: no retry.
	rec, srv = newRecorder(t, "s3cret", http.StatusUnprocessableEntity, http.StatusUnprocessableEntity)
	r, _ = NewHTTPReporter(srv.URL, "s3cret", nil)
	r.Backoff = time.Millisecond
	if err := r.ReportCellChange(context.Background(), change); err == nil || !strings.Contains(err.Error(), "422") {
		t.Fatalf("422: %v", err)
	}
	rec.mu.Lock()
	left := len(rec.statuses)
	rec.mu.Unlock()
	if left != 1 {
		t.Fatalf("a 422 was retried: %d statuses left", left)
	}

	// A wrong token is refused by the server and reported as such.
	_, srv = newRecorder(t, "s3cret")
	r, _ = NewHTTPReporter(srv.URL, "wrong", nil)
	if err := r.ReportCellChange(context.Background(), change); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: %v", err)
	}

	// Out of attempts on a dead server.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	r, _ = NewHTTPReporter(dead.URL, "x", nil)
	r.Backoff = time.Millisecond
	if err := r.ReportCellChange(context.Background(), change); err == nil {
		t.Fatal("a dead server took the report")
	}
	for _, bad := range []string{"", "ftp://x", "http://", "::"} {
		if _, err := NewHTTPReporter(bad, "", nil); err == nil {
			t.Errorf("NewHTTPReporter(%q) accepted", bad)
		}
	}
}
