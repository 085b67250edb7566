package etsiapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"strconv"
	"time"

	"github.com/mecorch/mecorch/appd"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/catalog"
	"github.com/mecorch/mecorch/mec/lifecycle"
)

// agentAPI is the hand-off between the orchestrator and a host's agent, on
// the operator API: the agent reads its host's desired state and reports
// the generation it has applied with its instances' states. The agent's own
// channel (websocket, SCTP) carries the same two messages.
//
// Operators may call both for any host; a client of role agent only for its
// own host, the one named by the client's name (an agent's credential is
// created as {"name": "<hostId>", "role": "agent"}).
type agentAPI struct {
	lc      *lifecycle.Service
	catalog *catalog.Service
	auth    *auth.Authenticator
	// imageSlots bounds the image downloads served at once: each holds its
	// package and the inflated image in memory.
	imageSlots chan struct{}
}

// maxImageDownloads is how many software images are served at once; more
// wait for a slot, then get 503 with Retry-After.
const maxImageDownloads = 4

func (a agentAPI) routes(mux *http.ServeMux) {
	wrap := a.auth.Require(auth.RoleAgent) // operators always pass
	mux.Handle("GET /api/v1/hosts/{hostId}/desired-state", wrap(a.ownHost(a.desired)))
	mux.Handle("POST /api/v1/hosts/{hostId}/status", wrap(a.ownHost(a.report)))
	mux.Handle("GET /api/v1/hosts/{hostId}/app_instances/{instanceId}/image", wrap(a.ownHost(a.image)))
}

// ownHost refuses an agent acting for another host than its own, with 404
// so that it learns nothing about hosts that are not its.
func (a agentAPI) ownHost(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.PrincipalFrom(r.Context())
		if ok && p.Role == auth.RoleAgent {
			c, err := a.auth.GetClient(r.Context(), p.ClientID)
			if err != nil || c.Name != r.PathValue("hostId") {
				problem.Write(w, r, problem.Details{Status: http.StatusNotFound, Detail: "no host " + r.PathValue("hostId") + " for this agent"})
				return
			}
		}
		next(w, r)
	})
}

func (a agentAPI) desired(w http.ResponseWriter, r *http.Request) {
	ds, err := a.lc.DesiredState(r.Context(), r.PathValue("hostId"))
	if err != nil {
		problem.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ds)
}

func (a agentAPI) report(w http.ResponseWriter, r *http.Request) {
	var rep lifecycle.HostReport
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		problem.WriteError(w, r, problem.Invalid("malformed host report: "+err.Error()))
		return
	}
	if rep.HostID == "" {
		rep.HostID = r.PathValue("hostId")
	}
	if rep.HostID != r.PathValue("hostId") {
		problem.WriteError(w, r, problem.Invalid("hostId in the body differs from the path",
			mec.InvalidParam{Name: "hostId", Reason: "must equal the host in the path"}))
		return
	}
	var bad []mec.InvalidParam
	for i, st := range rep.Instances {
		switch st.State {
		case lifecycle.ObservedRunning, lifecycle.ObservedStopped, lifecycle.ObservedFailed:
		default:
			bad = append(bad, mec.InvalidParam{Name: "instances[" + strconv.Itoa(i) + "].state", Reason: "must be Running, Stopped or Failed"})
		}
		// Other hosts steer to this MAC over VXLAN: a broadcast or
		// multicast one would flood their tunnels.
		if m, err := net.ParseMAC(st.MAC); st.MAC != "" && (err != nil || len(m) != 6 || m[0]&1 == 1) {
			bad = append(bad, mec.InvalidParam{Name: "instances[" + strconv.Itoa(i) + "].mac", Reason: "must be a unicast Ethernet address"})
		}
	}
	if len(bad) > 0 {
		problem.WriteError(w, r, problem.Invalid("invalid host report", bad...))
		return
	}
	if err := a.lc.ReportStatus(r.Context(), rep); err != nil {
		problem.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// image serves the software image of an instance placed on the host: the
// file its package's AppD names in swImageDescriptor. The agent fetches it
// before it starts the instance; an instance not on the host is 404, so an
// agent reads only what it is meant to run.
func (a agentAPI) image(w http.ResponseWriter, r *http.Request) {
	hostID, instID := r.PathValue("hostId"), r.PathValue("instanceId")
	in, err := a.lc.Get(r.Context(), instID)
	if err != nil && !errors.Is(err, mec.ErrNotFound) {
		problem.WriteError(w, r, err)
		return
	}
	if err != nil || in.HostID != hostID {
		problem.Write(w, r, problem.Details{Status: http.StatusNotFound, Detail: "no app instance " + instID + " on host " + hostID})
		return
	}
	select {
	case a.imageSlots <- struct{}{}:
		defer func() { <-a.imageSlots }()
	case <-time.After(10 * time.Second):
		w.Header().Set("Retry-After", "5")
		problem.Write(w, r, problem.Details{Status: http.StatusServiceUnavailable, Detail: "too many software images being served; retry later"})
		return
	case <-r.Context().Done():
		return
	}
	_, content, err := a.catalog.Content(r.Context(), in.AppPkgID)
	if err != nil {
		problem.WriteError(w, r, err)
		return
	}
	pkg, err := appd.ReadPackage(content, appd.DefaultLimits())
	if err != nil {
		problem.WriteError(w, r, fmt.Errorf("read onboarded package %s: %w", in.AppPkgID, err))
		return
	}
	var img *appd.Image
	for i := range pkg.SoftwareImages {
		if pkg.SoftwareImages[i].Path != "" {
			img = &pkg.SoftwareImages[i]
			break
		}
	}
	if img == nil {
		problem.WriteError(w, r, mec.Errorf(http.StatusUnprocessableEntity, nil,
			"the AppD of package %s names no software image inside the package; mec-agent runs only those", in.AppPkgID))
		return
	}
	data, err := pkg.Open(img.Path)
	if err != nil {
		problem.WriteError(w, r, fmt.Errorf("open image %s of package %s: %w", img.Path, in.AppPkgID, err))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Mecorch-Image-Name", path.Base(img.Path))
	w.Header().Set("X-Mecorch-Image-Sha256", img.SHA256)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
