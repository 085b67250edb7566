package etsiapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/lifecycle"
)

// agentAPI is the hand-off between the orchestrator and a host's agent, on
// the operator API: the agent reads its host's desired state and reports
// the generation it has applied with its instances' states. The agent's own
// channel (websocket, SCTP) carries the same two messages.
type agentAPI struct {
	lc *lifecycle.Service
}

func (a agentAPI) routes(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	mux.Handle("GET /api/v1/hosts/{hostId}/desired-state", wrap(http.HandlerFunc(a.desired)))
	mux.Handle("POST /api/v1/hosts/{hostId}/status", wrap(http.HandlerFunc(a.report)))
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
