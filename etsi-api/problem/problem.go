// Package problem writes RFC 7807 ProblemDetails, the one error shape of every
// mecorch API, with the field paths of what was wrong.
package problem

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/mecorch/mecorch/mec"
)

// ContentType is the media type of a problem body.
const ContentType = "application/problem+json"

// Details is the ProblemDetails body: the ETSI fields plus invalidParams.
type Details struct {
	Type          string             `json:"type,omitempty"`
	Title         string             `json:"title,omitempty"`
	Status        int                `json:"status"`
	Detail        string             `json:"detail"`
	Instance      string             `json:"instance,omitempty"`
	InvalidParams []mec.InvalidParam `json:"invalidParams,omitempty"`
}

// Error is a problem that travels as a Go error from the domain or a handler
// up to Write.
type Error struct {
	Status        int
	Detail        string
	InvalidParams []mec.InvalidParam
}

func (e *Error) Error() string { return e.Detail }

// New returns an Error with status and detail.
func New(status int, detail string) *Error { return &Error{Status: status, Detail: detail} }

// Invalid returns a 400 listing every wrong field.
func Invalid(detail string, params ...mec.InvalidParam) *Error {
	return &Error{Status: http.StatusBadRequest, Detail: detail, InvalidParams: params}
}

// FromProblem turns a stored domain problem into an Error.
func FromProblem(p *mec.Problem) *Error {
	return &Error{Status: p.Status, Detail: p.Detail, InvalidParams: p.InvalidParams}
}

// Write sends p for r.
func Write(w http.ResponseWriter, r *http.Request, p Details) {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// Fail sends err as WriteError does and logs it, once, when the client
// cannot act on it: a 500 (whose detail hides the cause) or a store that gave
// up under contention. Errors that are the client's (4xx) are not logged.
func Fail(w http.ResponseWriter, r *http.Request, err error, log *slog.Logger) {
	var pe *Error
	var mp *mec.Problem
	clients := errors.As(err, &mp) || errors.As(err, &pe) || errors.Is(err, mec.ErrNotFound) ||
		errors.Is(err, mec.ErrInvalid) || errors.Is(err, mec.ErrExists)
	if !clients && log != nil {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	WriteError(w, r, err)
}

// WriteError sends err as a problem: an *Error or a *mec.Problem keeps its
// status; the store's ErrNotFound, ErrExists and ErrInvalid become 404, 409
// and 400, ErrConflict (the store gave up under contention) 503 with
// Retry-After; anything else is a 500 whose detail does not leak internals.
// Handlers use Fail, which also logs what the client cannot act on.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var pe *Error
	var mp *mec.Problem
	switch {
	case errors.As(err, &mp):
		Write(w, r, Details{Type: mp.Type, Title: mp.Title, Status: mp.Status, Detail: mp.Detail, InvalidParams: mp.InvalidParams})
	case errors.As(err, &pe):
		Write(w, r, Details{Status: pe.Status, Detail: pe.Detail, InvalidParams: pe.InvalidParams})
	case errors.Is(err, mec.ErrNotFound):
		Write(w, r, Details{Status: http.StatusNotFound, Detail: err.Error()})
	case errors.Is(err, mec.ErrInvalid):
		Write(w, r, Details{Status: http.StatusBadRequest,
			Detail: "the request holds a value that cannot be stored (text must not contain NUL characters, \\u0000)"})
	case errors.Is(err, mec.ErrExists):
		Write(w, r, Details{Status: http.StatusConflict, Detail: err.Error()})
	case errors.Is(err, mec.ErrConflict):
		// The store gave up retrying a transaction under contention: the
		// request did nothing and can be sent again. The driver's words
		// stay in the log.
		w.Header().Set("Retry-After", "1")
		Write(w, r, Details{Status: http.StatusServiceUnavailable, Detail: "the store is busy with conflicting changes; nothing was written, retry"})
	default:
		Write(w, r, Details{Status: http.StatusInternalServerError, Detail: "internal error; see the server log"})
	}
}

// ServeMux answers through mux, except that an unknown path is a 404 and a
// wrong method a 405 (with the mux's Allow header) as ProblemDetails, where
// the standard mux would answer in plain text.
func ServeMux(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fallback, pattern := mux.Handler(r)
		if pattern != "" {
			// mux.Handler does not fill r's path values; mux.ServeHTTP does.
			mux.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{header: http.Header{}}
		fallback.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			allow := rec.header.Get("Allow")
			w.Header().Set("Allow", allow)
			Write(w, r, Details{Status: http.StatusMethodNotAllowed,
				Detail: r.Method + " is not allowed on " + r.URL.Path + "; allowed: " + allow})
			return
		}
		Write(w, r, Details{Status: http.StatusNotFound, Detail: "no resource at " + r.URL.Path})
	})
}

// statusRecorder keeps what the mux's fallback would have answered, to learn
// whether the path exists with other methods (and which).
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header         { return s.header }
func (s *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusRecorder) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
}
