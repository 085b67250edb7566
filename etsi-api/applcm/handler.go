// Package applcm serves the ETSI MEC 010-2 Application Lifecycle Management
// API (/app_lcm/v1): app instance resources, their instantiation, operation
// and termination, the LCM operation occurrences that track each change,
// and subscriptions to instance and operation state changes.
//
// The handlers translate bare ETSI JSON bodies into calls on the lifecycle
// service (mec/lifecycle) and back. Every error is an RFC 7807
// ProblemDetails naming every field that was wrong. Notification bodies are
// built here too (Notifications), because subscription filters are ETSI
// types; the caller delivers them. README.md beside this file documents the
// wire decisions, including mecorch's placement extension.
package applcm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/lifecycle"
)

// Prefix is the API's base path (the servers entry of the ETSI file).
const Prefix = "/app_lcm/v1"

// apiName tags this API's subscriptions in the store's subscription kind,
// which the package management API shares.
const apiName = "app_lcm"

// maxBody bounds a JSON request body: ETSI requests are a few kilobytes, and
// the bound keeps one client from holding the server's memory.
const maxBody = 1 << 20

// Config says where the API is served.
type Config struct {
	// BaseURL is the server's external URL (scheme, host, any path
	// prefix), used for the absolute hrefs of _links, Location headers and
	// notifications. When empty, the scheme and Host of each request are
	// used, which is right only when no proxy rewrites them.
	BaseURL string
}

// Handler serves /app_lcm/v1. It expects full request paths: mount it at
// Prefix+"/" without stripping the prefix.
type Handler struct {
	cfg    Config
	lc     *lifecycle.Service
	store  mec.Store
	clock  mec.Clock
	log    *slog.Logger
	mux    *http.ServeMux
	routes http.Handler // mux, with ProblemDetails for 404 and 405
	ids    func() string
}

// New returns the API handler over the lifecycle service. store is the
// lifecycle's store: subscriptions live there, and the handler reads sites
// (for appInstLocation) and app packages (for request overrides of the AppD)
// from it.
func New(cfg Config, lc *lifecycle.Service, store mec.Store, clock mec.Clock, log *slog.Logger) *Handler {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	h := &Handler{cfg: cfg, lc: lc, store: store, clock: clock, log: log, mux: http.NewServeMux(), ids: mec.NewID}
	p := Prefix
	routes := []struct {
		pattern string
		fn      http.HandlerFunc
	}{
		{"POST " + p + "/app_instances", h.createInstance},
		{"GET " + p + "/app_instances", h.listInstances},
		{"GET " + p + "/app_instances/{appInstanceId}", h.getInstance},
		{"DELETE " + p + "/app_instances/{appInstanceId}", h.deleteInstance},
		{"POST " + p + "/app_instances/{appInstanceId}/instantiate", h.instantiate},
		{"POST " + p + "/app_instances/{appInstanceId}/operate", h.operate},
		{"POST " + p + "/app_instances/{appInstanceId}/terminate", h.terminate},

		{"GET " + p + "/app_lcm_op_occs", h.listOpOccs},
		{"GET " + p + "/app_lcm_op_occs/{appLcmOpOccId}", h.getOpOcc},
		{"POST " + p + "/app_lcm_op_occs/{appLcmOpOccId}/cancel", h.cancelOpOcc},
		{"POST " + p + "/app_lcm_op_occs/{appLcmOpOccId}/fail", h.failOpOcc},
		{"POST " + p + "/app_lcm_op_occs/{appLcmOpOccId}/retry", h.retryOpOcc},

		{"POST " + p + "/subscriptions", h.createSub},
		{"GET " + p + "/subscriptions", h.listSubs},
		{"GET " + p + "/subscriptions/{subscriptionId}", h.getSub},
		{"DELETE " + p + "/subscriptions/{subscriptionId}", h.deleteSub},
	}
	for _, rt := range routes {
		h.mux.HandleFunc(rt.pattern, rt.fn)
	}
	h.routes = problem.ServeMux(h.mux)
	return h
}

// ServeHTTP routes r, answering an unknown path or a wrong method as
// ProblemDetails.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.routes.ServeHTTP(w, r) }

// fail answers err as a ProblemDetails. Errors a client cannot act on become
// a 500 without details, so this is where they are logged, once.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	problem.Fail(w, r, err, h.log)
}

// writeJSON sends v as the body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // only our own response types get here; they marshal
		problem.Write(w, nil, problem.Details{Status: http.StatusInternalServerError, Detail: "internal error; see the server log"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeTagged answers a single-resource GET with an ETag computed from the
// representation itself, so that it changes with anything shown (the site
// of an instance as well as the instance), and 304 when the client has it.
func writeTagged(w http.ResponseWriter, r *http.Request, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		problem.Write(w, r, problem.Details{Status: http.StatusInternalServerError, Detail: "internal error; see the server log"})
		return
	}
	sum := sha256.Sum256(body)
	tag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", tag)
	if matchesETag(r.Header.Get("If-None-Match"), tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// matchesETag applies If-None-Match's weak comparison to a list of tags.
func matchesETag(list, tag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == tag {
			return true
		}
	}
	return false
}

// base is the absolute URL of the API root for r.
func (h *Handler) base(r *http.Request) string {
	if h.cfg.BaseURL != "" || r == nil {
		return h.cfg.BaseURL + Prefix
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + Prefix
}

// link is an ETSI LinkType.
type link struct {
	Href string `json:"href"`
}

// links builds hrefs under one API root.
type links string

func (l links) instance(id string) string { return string(l) + "/app_instances/" + url.PathEscape(id) }
func (l links) opOcc(id string) string    { return string(l) + "/app_lcm_op_occs/" + url.PathEscape(id) }
func (l links) sub(id string) string      { return string(l) + "/subscriptions/" + url.PathEscape(id) }

// timeStamp is the ETSI TimeStamp: Unix seconds and nanoseconds.
type timeStamp struct {
	Seconds     int64 `json:"seconds"`
	NanoSeconds int   `json:"nanoSeconds"`
}

func stamp(t time.Time) timeStamp {
	return timeStamp{Seconds: t.Unix(), NanoSeconds: t.Nanosecond()}
}
