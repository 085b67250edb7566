package apppkgm

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/mecorch/mecorch/etsi-api/problem"
)

// writeJSON sends v as application/json.
func (h *Handler) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.fail(w, r, fmt.Errorf("encode response: %w", err))
		return
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// fail answers err as ProblemDetails. Errors that carry a status are the
// client's and are not logged; anything else is a fault of ours, logged
// here once with what the 500 hides from the client.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	problem.Fail(w, r, err, h.log)
}

// acceptsJSON answers 406 and returns false when the client's Accept header
// rules out application/json.
func (h *Handler) acceptsJSON(w http.ResponseWriter, r *http.Request) bool {
	if negotiate(r, "application/json") != "" {
		return true
	}
	h.fail(w, r, &problem.Error{Status: http.StatusNotAcceptable,
		Detail: "this resource is available as application/json only; Accept was " + strconv.Quote(r.Header.Get("Accept"))})
	return false
}

// negotiate returns the offer that r's Accept header prefers, the first
// offer when there is no Accept header, or "" when none is acceptable.
// Each offer takes the quality of the most specific media range matching it
// (RFC 9110 12.5.1); ties go to the earlier offer.
func negotiate(r *http.Request, offers ...string) string {
	header := strings.Join(r.Header.Values("Accept"), ",")
	if strings.TrimSpace(header) == "" {
		return offers[0]
	}
	type rng struct {
		typ, sub string
		q        float64
	}
	var ranges []rng
	for _, part := range strings.Split(header, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(s, 64); err == nil {
				q = v
			}
		}
		typ, sub, _ := strings.Cut(mt, "/")
		ranges = append(ranges, rng{typ, sub, q})
	}
	best, bestQ := "", 0.0
	for _, offer := range offers {
		typ, sub, _ := strings.Cut(offer, "/")
		q, spec := 0.0, -1
		for _, rg := range ranges {
			s := -1
			switch {
			case rg.typ == typ && rg.sub == sub:
				s = 2
			case rg.typ == typ && rg.sub == "*":
				s = 1
			case rg.typ == "*" && rg.sub == "*":
				s = 0
			}
			if s > spec {
				spec, q = s, rg.q
			}
		}
		if q > bestQ {
			best, bestQ = offer, q
		}
	}
	return best
}
