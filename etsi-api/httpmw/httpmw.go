// Package httpmw holds the HTTP middleware every mecorch API shares:
// Prometheus request metrics, one log line per request, panic recovery into
// a ProblemDetails 500, and a request body size limit.
//
// A typical server, outermost first:
//
//	h := httpmw.Chain(mux,
//		httpmw.Log(log, clock),  // outside the mux, so it sees the route pattern
//		metrics.Wrap,
//		httpmw.Recover(log),
//		httpmw.MaxBytes(1<<20),
//	)
//
// Log must wrap the http.ServeMux directly or through middleware that
// passes the same *http.Request on (none of these copy it): the mux records
// the matched pattern on that request, which is what the log line shows
// instead of a path full of IDs.
package httpmw

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"
)

// Middleware wraps a handler.
type Middleware = func(http.Handler) http.Handler

// Chain wraps h in mws, the first one outermost.
func Chain(h http.Handler, mws ...Middleware) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader && code >= 200 { // 1xx are interim; the final status follows
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Status is the response status, 200 if the handler wrote nothing (which
// net/http sends as 200).
func (w *statusWriter) Status() int {
	if !w.wroteHeader {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush and Hijack keep streaming responses and websocket upgrades working
// for handlers that type-assert instead of using http.ResponseController.
func (w *statusWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusSwitchingProtocols, true
	}
	return conn, rw, err
}

func wrap(w http.ResponseWriter) *statusWriter {
	if sw, ok := w.(*statusWriter); ok {
		return sw
	}
	return &statusWriter{ResponseWriter: w}
}

// note carries what inner handlers learn about a request (who it is) out to
// the log line. The log middleware creates it; the request context carries
// it inwards even through r.WithContext copies.
type note struct {
	mu       sync.Mutex
	clientID string
}

type noteKey struct{}

func withNote(ctx context.Context) (context.Context, *note) {
	n := &note{}
	return context.WithValue(ctx, noteKey{}, n), n
}

// NoteClientID records the authenticated client of the request for its log
// line. The auth middleware calls it; without Log it does nothing.
func NoteClientID(ctx context.Context, clientID string) {
	if n, ok := ctx.Value(noteKey{}).(*note); ok {
		n.mu.Lock()
		n.clientID = clientID
		n.mu.Unlock()
	}
}

func (n *note) client() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.clientID
}
