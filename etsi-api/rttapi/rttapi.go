// Package rttapi serves the RTT map to operators under /api/v1/rtt: every
// measured pair with its freshness, one pair (measured, estimated, stale or
// unknown, with why), a pair's history of windows, and what each agent is
// told to probe. Authentication is the caller's: it mounts these routes
// behind its middleware.
package rttapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/latency/rttmap"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/rtt"
)

// Handler serves the RTT map of svc.
type Handler struct {
	svc *rtt.Service
}

// New returns the handler.
func New(svc *rtt.Service) *Handler { return &Handler{svc: svc} }

// Routes mounts the endpoints on mux, each wrapped by wrap (the caller's
// authentication).
func (h *Handler) Routes(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	for _, r := range []struct {
		pattern string
		fn      http.HandlerFunc
	}{
		{"GET /api/v1/rtt", h.list},
		{"GET /api/v1/rtt/site_site/{a}/{b}", h.pair(rttmap.SiteSite)},
		{"GET /api/v1/rtt/cell_site/{a}/{b}", h.pair(rttmap.CellSite)},
		{"GET /api/v1/rtt/site_site/{a}/{b}/history", h.history(rttmap.SiteSite)},
		{"GET /api/v1/rtt/cell_site/{a}/{b}/history", h.history(rttmap.CellSite)},
		{"GET /api/v1/rtt/plans/{hostId}", h.plan},
	} {
		mux.Handle(r.pattern, wrap(r.fn))
	}
}

// Map is the body of GET /api/v1/rtt.
type Map struct {
	// FreshNs is the freshness limit: a measurement whose window ended
	// longer ago is stale.
	FreshNs time.Duration  `json:"freshNs"`
	Entries []rttmap.Entry `json:"entries"`
}

// list serves every measured or stale pair; ?site= keeps those with that
// site at either end, ?cell= those of that cell, ?kind= one kind,
// ?quality= one quality.
func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "site", "cell", "kind", "quality":
		default:
			problem.Write(w, r, problem.Details{Status: http.StatusBadRequest, Detail: "unknown query parameter " + k,
				InvalidParams: []mec.InvalidParam{{Name: k, Reason: "not one of site, cell, kind, quality"}}})
			return
		}
	}
	kind := q.Get("kind")
	if kind != "" && kind != string(rttmap.SiteSite) && kind != string(rttmap.CellSite) {
		problem.Write(w, r, problem.Details{Status: http.StatusBadRequest, Detail: "kind must be siteSite or cellSite",
			InvalidParams: []mec.InvalidParam{{Name: "kind", Reason: "must be siteSite or cellSite"}}})
		return
	}
	site, cell, quality := q.Get("site"), q.Get("cell"), q.Get("quality")
	switch rttmap.Quality(quality) {
	case "", rttmap.Measured, rttmap.Estimated, rttmap.Stale, rttmap.Unknown:
	default:
		problem.Write(w, r, problem.Details{Status: http.StatusBadRequest, Detail: "quality must be measured, estimated, stale or unknown",
			InvalidParams: []mec.InvalidParam{{Name: "quality", Reason: "must be measured, estimated, stale or unknown"}}})
		return
	}
	out := Map{FreshNs: h.svc.Config().Fresh, Entries: []rttmap.Entry{}}
	for _, e := range h.svc.Map().Entries() {
		switch {
		case kind != "" && string(e.Kind) != kind,
			quality != "" && string(e.Quality) != quality,
			cell != "" && (e.Kind != rttmap.CellSite || e.A != cell),
			site != "" && !(e.B == site || (e.Kind == rttmap.SiteSite && e.A == site)):
			continue
		}
		out.Entries = append(out.Entries, e)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) pair(kind rttmap.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, b := r.PathValue("a"), r.PathValue("b")
		var e rttmap.Entry
		if kind == rttmap.SiteSite {
			e = h.svc.Map().SiteSite(a, b)
		} else {
			e = h.svc.Map().CellSite(a, b)
		}
		writeJSON(w, http.StatusOK, e)
	}
}

func (h *Handler) history(kind rttmap.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		pts := h.svc.Map().History(kind, r.PathValue("a"), r.PathValue("b"))
		if pts == nil {
			pts = []rttmap.Point{}
		}
		writeJSON(w, http.StatusOK, pts)
	}
}

func (h *Handler) plan(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.svc.Plan(r.PathValue("hostId")))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
