// Package apppkgm serves the ETSI MEC 010-2 Application Package Management
// API (/app_pkgm/v1): app providers create a package resource, upload its
// zip, enable, disable and delete it, read its AppD and content, and
// subscribe to onboarding and change notifications.
//
// The handlers translate bare ETSI JSON bodies into calls on the catalog
// (mec/catalog) and back; every error is an RFC 7807 ProblemDetails naming
// the fields that were wrong. Notification bodies are built here too
// (Notifications), because the subscription filter is an ETSI type.
package apppkgm

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/catalog"
)

// Prefix is the API's base path (the servers entry of the ETSI file).
const Prefix = "/app_pkgm/v1"

// apiName tags this API's subscriptions in the shared subscription kind.
const apiName = "app_pkgm"

// DefaultMaxUploadBytes bounds a package upload when Config leaves it zero;
// it matches catalog.DefaultOptions.
const DefaultMaxUploadBytes int64 = 256 << 20

// maxJSONBytes bounds every JSON request body: ETSI bodies are small, and a
// bound keeps one client from holding memory.
const maxJSONBytes int64 = 1 << 20

// Config is what the handlers need to know about where they are served.
type Config struct {
	// BaseURL is the external URL of the server (scheme, host and any
	// path prefix, no trailing slash), used for the absolute hrefs of
	// _links, Location headers and notifications.
	BaseURL string
	// MaxUploadBytes bounds an uploaded package; 0 means
	// DefaultMaxUploadBytes.
	MaxUploadBytes int64
	// MaxConcurrentUploads bounds the uploads held in memory at once (each
	// up to MaxUploadBytes); 0 means DefaultMaxConcurrentUploads. Past it an
	// upload is answered 503 with Retry-After.
	MaxConcurrentUploads int
}

// DefaultMaxConcurrentUploads: four 256 MiB packages at once, 1 GiB.
const DefaultMaxConcurrentUploads = 4

// Handler serves /app_pkgm/v1.
type Handler struct {
	cfg    Config
	cat    *catalog.Service
	store  mec.Store
	clock  mec.Clock
	log    *slog.Logger
	mux    *http.ServeMux
	routes http.Handler // mux, with ProblemDetails for 404 and 405
	ids    func() string
	// uploads holds a token per upload in progress.
	uploads chan struct{}
}

// New returns the API handler. store is the catalog's store: subscriptions
// live there, and package versions (ETags) are read from it.
func New(cfg Config, cat *catalog.Service, store mec.Store, clock mec.Clock, log *slog.Logger) *Handler {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if cfg.MaxConcurrentUploads <= 0 {
		cfg.MaxConcurrentUploads = DefaultMaxConcurrentUploads
	}
	h := &Handler{cfg: cfg, cat: cat, store: store, clock: clock, log: log, mux: http.NewServeMux(), ids: mec.NewID,
		uploads: make(chan struct{}, cfg.MaxConcurrentUploads)}
	p := Prefix
	h.mux.HandleFunc("POST "+p+"/onboarded_app_packages", h.createPkg)
	h.mux.HandleFunc("GET "+p+"/onboarded_app_packages", h.listPkgs)
	h.mux.HandleFunc("GET "+p+"/onboarded_app_packages/{appDId}", h.getPkg)
	h.mux.HandleFunc("PATCH "+p+"/onboarded_app_packages/{appDId}", h.patchPkg)
	h.mux.HandleFunc("DELETE "+p+"/onboarded_app_packages/{appDId}", h.deletePkg)
	h.mux.HandleFunc("GET "+p+"/onboarded_app_packages/{appDId}/appd", h.getAppD)
	h.mux.HandleFunc("GET "+p+"/onboarded_app_packages/{appDId}/package_content", h.getContent)
	h.mux.HandleFunc("PUT "+p+"/onboarded_app_packages/{appDId}/package_content", h.putContent)
	h.mux.HandleFunc("POST "+p+"/subscriptions", h.createSub)
	h.mux.HandleFunc("GET "+p+"/subscriptions", h.listSubs)
	h.mux.HandleFunc("GET "+p+"/subscriptions/{subscriptionId}", h.getSub)
	h.mux.HandleFunc("DELETE "+p+"/subscriptions/{subscriptionId}", h.deleteSub)
	h.routes = problem.ServeMux(h.mux)
	return h
}

// Routes mounts the handler on mux under Prefix.
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.Handle(Prefix+"/", h)
}

// ServeHTTP routes r, answering an unknown path or a wrong method as
// ProblemDetails.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.routes.ServeHTTP(w, r) }

// pkgURL is the absolute URL of a package resource; links use the package
// ID, which exists from creation on, rather than the appDId, which exists
// only once the content is onboarded.
func (h *Handler) pkgURL(id string) string {
	return h.cfg.BaseURL + Prefix + "/onboarded_app_packages/" + id
}

func (h *Handler) subURL(id string) string {
	return h.cfg.BaseURL + Prefix + "/subscriptions/" + id
}
