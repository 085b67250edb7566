package httpmw

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
)

// Log writes one line per request: method, route pattern (or path when
// no pattern matched), status, duration, bytes written, remote address and
// the authenticated client if auth noted one. Headers and query strings are
// never logged: they carry tokens and credentials. clock times requests
// (time.Now if nil).
func Log(log *slog.Logger, clock func() time.Time) Middleware {
	if clock == nil {
		clock = time.Now
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := clock()
			ctx, n := withNote(r.Context())
			r = r.WithContext(ctx)
			sw := wrap(w)
			defer func() {
				status := sw.Status()
				route := r.Pattern // set by http.ServeMux on this very request
				if route == "" {
					route = r.URL.Path
				}
				attrs := []slog.Attr{
					slog.String("method", r.Method),
					slog.String("route", route),
					slog.Int("status", status),
					slog.Duration("duration", clock().Sub(start)),
					slog.Int64("bytes", sw.bytes),
					slog.String("remote", r.RemoteAddr),
				}
				if id := n.client(); id != "" {
					attrs = append(attrs, slog.String("client", id))
				}
				level := slog.LevelInfo
				if status >= 500 {
					level = slog.LevelWarn
				}
				log.LogAttrs(r.Context(), level, "http request", attrs...)
			}()
			next.ServeHTTP(sw, r)
		})
	}
}

// Recover turns a handler panic into a logged stack trace and a 500
// ProblemDetails (when nothing was written yet), so one bad request does
// not take the connection down without an answer. http.ErrAbortHandler is
// let through: it is net/http's way to abort a response on purpose.
func Recover(log *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sw := wrap(w)
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				log.LogAttrs(r.Context(), slog.LevelError, "handler panic",
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.String("panic", fmt.Sprint(v)),
					slog.String("stack", string(debug.Stack())))
				if !sw.wroteHeader {
					problem.Write(sw, r, problem.Details{Status: http.StatusInternalServerError, Detail: "internal error; see the server log"})
				}
			}()
			next.ServeHTTP(sw, r)
		})
	}
}

// MaxBytes limits request bodies to n bytes. A body announced larger is
// refused at once with 413; one that turns out larger fails the handler's
// read with *http.MaxBytesError, which TooLarge turns into the 413 problem.
func MaxBytes(n int64) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				problem.WriteError(w, r, tooLarge(n))
				return
			}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(w, r.Body, n)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// TooLarge returns the 413 problem for an error from reading a body that
// MaxBytes cut off, and nil for any other error.
func TooLarge(err error) *problem.Error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return tooLarge(mb.Limit)
	}
	return nil
}

func tooLarge(limit int64) *problem.Error {
	return &problem.Error{
		Status:        http.StatusRequestEntityTooLarge,
		Detail:        fmt.Sprintf("request body exceeds %d bytes", limit),
		InvalidParams: []mec.InvalidParam{{Name: "body", Reason: fmt.Sprintf("larger than %d bytes", limit)}},
	}
}
