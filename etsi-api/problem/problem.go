// Package problem writes RFC 7807 ProblemDetails, the one error shape of every
// mecorch API, with the field paths of what was wrong.
package problem

import (
	"encoding/json"
	"errors"
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

// WriteError sends err as a problem: an *Error or a *mec.Problem keeps its
// status; the store's ErrNotFound, ErrExists and ErrInvalid become 404, 409
// and 400,
// ErrConflict (the store gave up under contention) 503 with Retry-After;
// anything else is a 500 whose detail does not leak internals.
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
