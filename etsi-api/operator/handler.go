// Package operator serves the operator API's inventory under /api/v1/: the
// sites, hosts and cells of the edge, which no ETSI MEC API covers, and the
// alarms. Bodies are bare JSON; every error is an RFC 7807 ProblemDetails
// with the path of each wrong field. Authentication is the caller's: it
// mounts this handler behind its middleware.
package operator

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/health"
	"github.com/mecorch/mecorch/mec/inventory"
	"github.com/mecorch/mecorch/mec/uectx"
	"github.com/mecorch/mecorch/mec/uetunnel"
)

// handler serves the inventory endpoints.
type handler struct {
	inv    *inventory.Service
	alarms *health.Alarms // nil: no /api/v1/alarms
	ues    *uectx.Service // nil: no /api/v1/ues
	// tunnels is nil: no /api/v1/ue_tunnels.
	tunnels *uetunnel.Service
	log     *slog.Logger
	mux     *http.ServeMux
	routes  http.Handler // mux, with ProblemDetails for 404 and 405
}

// Option adds an optional part of the operator API to the handler.
type Option func(*handler)

// WithAlarms serves /api/v1/alarms from alarms.
func WithAlarms(alarms *health.Alarms) Option { return func(h *handler) { h.alarms = alarms } }

// NewHandler returns the handler of /api/v1/sites, /api/v1/hosts and
// /api/v1/cells, and of what opts add. It expects request paths in full
// (mount it at "/api/v1/" without stripping the prefix).
func NewHandler(inv *inventory.Service, log *slog.Logger, opts ...Option) http.Handler {
	h := &handler{inv: inv, log: log, mux: http.NewServeMux()}
	for _, o := range opts {
		o(h)
	}
	routes := []struct {
		pattern string
		fn      http.HandlerFunc
	}{
		{"POST /api/v1/sites", h.createSite},
		{"GET /api/v1/sites", h.listSites},
		{"GET /api/v1/sites/{siteId}", h.getSite},
		{"PUT /api/v1/sites/{siteId}", h.putSite},
		{"DELETE /api/v1/sites/{siteId}", h.deleteSite},

		{"POST /api/v1/hosts", h.createHost},
		{"GET /api/v1/hosts", h.listHosts},
		{"GET /api/v1/hosts/{hostId}", h.getHost},
		{"PUT /api/v1/hosts/{hostId}", h.putHost},
		{"DELETE /api/v1/hosts/{hostId}", h.deleteHost},
		{"POST /api/v1/hosts/{hostId}/cordon", h.cordonHost},
		{"POST /api/v1/hosts/{hostId}/uncordon", h.uncordonHost},

		{"POST /api/v1/cells", h.createCell},
		{"GET /api/v1/cells", h.listCells},
		{"GET /api/v1/cells/{cellId}", h.getCell},
		{"PUT /api/v1/cells/{cellId}", h.putCell},
		{"DELETE /api/v1/cells/{cellId}", h.deleteCell},
	}
	if h.alarms != nil {
		routes = append(routes, []struct {
			pattern string
			fn      http.HandlerFunc
		}{
			{"GET /api/v1/alarms", h.listAlarms},
			{"GET /api/v1/alarms/{alarmId}", h.getAlarm},
			{"PATCH /api/v1/alarms/{alarmId}", h.patchAlarm},
		}...)
	}
	if h.ues != nil {
		routes = append(routes, []struct {
			pattern string
			fn      http.HandlerFunc
		}{
			{"POST /api/v1/ue_cell_changes", h.reportCellChange},
			{"GET /api/v1/ues", h.listUEs},
			{"GET /api/v1/ues/{ueId}", h.getUE},
		}...)
	}
	if h.tunnels != nil {
		routes = append(routes, []struct {
			pattern string
			fn      http.HandlerFunc
		}{
			{"GET /api/v1/ue_tunnels", h.listUETunnels},
			{"GET /api/v1/ue_tunnels/{ueAddress}", h.getUETunnel},
			{"PUT /api/v1/ue_tunnels/{ueAddress}", h.putUETunnel},
			{"DELETE /api/v1/ue_tunnels/{ueAddress}", h.deleteUETunnel},
		}...)
	}
	for _, rt := range routes {
		h.mux.HandleFunc(rt.pattern, rt.fn)
	}
	h.routes = problem.ServeMux(h.mux)
	return h
}

// ServeHTTP routes r, answering an unknown path or a wrong method as
// ProblemDetails.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.routes.ServeHTTP(w, r) }

// fail answers err as a problem. Errors the client cannot act on become a
// 500 without details, so this is where they are logged, once.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	problem.Fail(w, r, err, h.log)
}

// reply writes v as JSON with status, and the ETag of version when it is
// not zero (lists have none).
func reply(w http.ResponseWriter, status int, version int64, v any) {
	w.Header().Set("Content-Type", "application/json")
	if version > 0 {
		w.Header().Set("ETag", etag(version))
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// created answers a POST with the new resource, where it lives and its ETag.
func created(w http.ResponseWriter, location string, version int64, v any) {
	w.Header().Set("Location", location)
	reply(w, http.StatusCreated, version, v)
}

// replyGet answers a single-resource GET, or 304 when the client's
// If-None-Match already names the current version.
func replyGet(w http.ResponseWriter, r *http.Request, version int64, v any) {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if strings.TrimSpace(inm) == "*" || containsVersion(inm, version, true) {
			w.Header().Set("ETag", etag(version))
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	reply(w, http.StatusOK, version, v)
}

// etag is the strong entity tag of a store version.
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// ifMatch turns the If-Match header into the version a write must find:
// mec.AnyVersion without the header or with "*" (the write then needs the
// resource to exist, which it does anyway). A list of several tags is
// resolved against the current version read by current; the write then
// names that version, so a change in between still fails.
func ifMatch(r *http.Request, current func() (int64, error)) (int64, error) {
	raw := r.Header.Get("If-Match")
	if raw == "" || strings.TrimSpace(raw) == "*" {
		return mec.AnyVersion, nil
	}
	versions := parseETags(raw, false)
	switch len(versions) {
	case 0:
		return 0, mec.Errorf(http.StatusPreconditionFailed, nil, "If-Match %s names no version this server issued (ETags are strong: \"<version>\")", raw)
	case 1:
		return versions[0], nil
	}
	have, err := current()
	if err != nil {
		return 0, err
	}
	for _, v := range versions {
		if v == have {
			return have, nil
		}
	}
	return 0, mec.Errorf(http.StatusPreconditionFailed, nil, "the resource is at version %d, which If-Match %s does not name", have, raw)
}

// parseETags returns the versions named by a list of entity tags. Weak tags
// count only when weakOK (If-None-Match compares weakly, If-Match strongly);
// tags this server cannot have issued are skipped.
func parseETags(list string, weakOK bool) []int64 {
	var out []int64
	for _, tag := range strings.Split(list, ",") {
		tag = strings.TrimSpace(tag)
		if strings.HasPrefix(tag, "W/") {
			if !weakOK {
				continue
			}
			tag = tag[2:]
		}
		if len(tag) < 3 || tag[0] != '"' || tag[len(tag)-1] != '"' {
			continue
		}
		v, err := strconv.ParseInt(tag[1:len(tag)-1], 10, 64)
		if err != nil || v <= 0 {
			continue
		}
		out = append(out, v)
	}
	return out
}

func containsVersion(list string, version int64, weakOK bool) bool {
	for _, v := range parseETags(list, weakOK) {
		if v == version {
			return true
		}
	}
	return false
}
