package etsiapi

import (
	"net/http"
	"time"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/lifecycle"
)

// placementView is GET /api/v1/app_instances/{instanceId}/placement: why
// the instance runs where it runs, for the operator on call. The decision
// lists the best candidates, each with its latency to the served cells and
// why it won or lost; the constraints say what it was placed for.
type placementView struct {
	InstanceID  string                   `json:"appInstanceId"`
	HostID      string                   `json:"hostId,omitempty"`
	SiteID      string                   `json:"siteId,omitempty"`
	Constraints mec.PlacementConstraints `json:"constraints"`
	Decision    *mec.Decision            `json:"decision"`
	Moves       int                      `json:"moves,omitempty"`
	LastMovedAt *time.Time               `json:"lastMovedAt,omitempty"`
}

// placementHandler serves placementView from the lifecycle.
func placementHandler(lc *lifecycle.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		in, err := lc.Get(r.Context(), r.PathValue("instanceId"))
		if err != nil {
			problem.WriteError(w, r, err)
			return
		}
		if in.Placement == nil {
			problem.Write(w, r, problem.Details{Status: http.StatusNotFound,
				Detail: "app instance " + in.ID + " has not been placed (it is " + in.InstantiationState + ")"})
			return
		}
		writeJSON(w, http.StatusOK, placementView{InstanceID: in.ID, HostID: in.HostID, SiteID: in.SiteID,
			Constraints: in.Constraints, Decision: in.Placement, Moves: in.Moves, LastMovedAt: in.LastMovedAt})
	}
}
