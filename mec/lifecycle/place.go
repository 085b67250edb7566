package lifecycle

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/placement"
)

// place runs the placement engine over the inventory as this transaction
// sees it. Because the reservation is written in the same serializable
// transaction, two concurrent placements can never both take the last room
// on a host: the store makes one of them run again on fresh data. The
// hosts named in except are left out (an evacuation's failed host).
func (s *Service) place(tx mec.Tx, need mec.Resources, cons mec.PlacementConstraints, except ...string) (mec.Decision, error) {
	hosts, err := mec.LoadAll[mec.Host](tx, mec.KindHost)
	if err != nil {
		return mec.Decision{}, err
	}
	if len(except) > 0 {
		hosts = slices.DeleteFunc(hosts, func(h mec.Host) bool { return slices.Contains(except, h.ID) })
	}
	sites, err := mec.LoadAll[mec.Site](tx, mec.KindSite)
	if err != nil {
		return mec.Decision{}, err
	}
	group, _, err := loadGroup(tx, cons.SpreadKey)
	if err != nil {
		return mec.Decision{}, err
	}
	serve, err := servedCells(tx, cons)
	if err != nil {
		return mec.Decision{}, err
	}
	req := &placement.Request{Need: need, Constraints: cons, Peers: group.Sites,
		Serve: serve, MaxLatency: time.Duration(cons.MaxLatencyNs)}
	start := time.Now()
	d, err := s.engine.Place(req, placement.NewSnapshot(hosts, sites))
	var nf *placement.NoFitError
	// Kept, not reported: a store that runs the transaction again places
	// again, and only the run that counts is reported (observePlacement).
	s.lastPlace = placeObservation{outcome: "placed", took: time.Since(start), set: true}
	if errors.As(err, &nf) {
		s.lastPlace.outcome = "nofit"
	} else if err != nil {
		s.lastPlace.outcome = "error"
	}
	if errors.As(err, &nf) {
		return mec.Decision{}, noFitProblem(nf, need)
	}
	if err != nil {
		return mec.Decision{}, fmt.Errorf("placement: %w", err)
	}
	return d, nil
}

// reserve places in with need and cons, leaving out the hosts in except,
// and takes the room on the chosen host inside tx: the host's allocation
// and generation, the spread count and the host's index move with the
// instance's hostId, siteId, reservation, constraints and decision. A host
// that fits nowhere is a *mec.Problem (409 or 422).
func (s *Service) reserve(tx mec.Tx, in *mec.AppInstance, need mec.Resources, cons mec.PlacementConstraints, except ...string) (mec.Host, error) {
	d, err := s.place(tx, need, cons, except...)
	if err != nil {
		return mec.Host{}, err
	}
	h, hv, err := loadHost(tx, d.HostID)
	if err != nil {
		return mec.Host{}, err
	}
	if !h.Free().Fits(need) { // the engine saw this very snapshot; guard anyway
		return mec.Host{}, mec.Errorf(http.StatusConflict, nil, "host %s no longer has room", h.ID)
	}
	h.Allocated = h.Allocated.Add(need)
	h.DesiredGeneration++
	if _, err := mec.Save(tx, mec.KindHost, h.ID, h, hv); err != nil {
		return mec.Host{}, err
	}
	if err := countPeer(tx, cons.SpreadKey, h.SiteID, +1); err != nil {
		return mec.Host{}, err
	}
	if err := indexInstance(tx, h.ID, in.ID, true); err != nil {
		return mec.Host{}, err
	}
	in.HostID, in.SiteID, in.Reserved, in.Constraints, in.Placement = h.ID, h.SiteID, need, cons, &d
	return h, nil
}

// placeObservation is the outcome and engine time of the latest placement,
// guarded by placeMu like the placement itself.
type placeObservation struct {
	outcome string
	took    time.Duration
	set     bool
}

// observePlacement reports the last placement made under placeMu, once,
// after its transaction ended. The caller holds placeMu.
func (s *Service) observePlacement() {
	if s.lastPlace.set && s.cfg.ObservePlacement != nil {
		s.cfg.ObservePlacement(s.lastPlace.outcome, s.lastPlace.took)
	}
	s.lastPlace = placeObservation{}
}

// noFitProblem turns "no host fits" into the API's answer: 409 when hosts
// matched the request's constraints but are full or not ready (retrying
// later, or freeing room, can succeed), 422 when the constraints themselves
// exclude every host (the request must change). Each filter that removed
// hosts is listed as an invalid parameter with how many it removed.
func noFitProblem(nf *placement.NoFitError, need mec.Resources) *mec.Problem {
	status := http.StatusUnprocessableEntity
	params := make([]mec.InvalidParam, 0, len(nf.Rejections))
	for _, r := range nf.Rejections {
		if transient(r.Filter) {
			status = http.StatusConflict
		}
		params = append(params, mec.InvalidParam{Name: r.Filter, Reason: fmt.Sprintf("%d host(s) %s", r.Hosts, r.Reason)})
	}
	if nf.Considered == 0 {
		status = http.StatusConflict
	}
	return mec.Errorf(status, params, "%s; the instance needs %d mCPU, %d MiB memory, %d GB storage, %d GPU(s)",
		nf.Error(), need.MilliCPU, need.MemoryMiB, need.StorageGB, need.GPUs)
}

// transient reports whether a filter removes hosts for a reason that can
// pass (capacity in use, host down) rather than for what the request asks.
func transient(filter string) bool {
	switch filter {
	case placement.StateFilter{}.Name(),
		// Latency changes as links heal and probes report: a site too
		// far or unmeasured now may do later.
		placement.NameAppLatency,
		placement.CapacityFilter{Dim: placement.CPU}.Name(),
		placement.CapacityFilter{Dim: placement.Memory}.Name(),
		placement.CapacityFilter{Dim: placement.Storage}.Name(),
		placement.CapacityFilter{Dim: placement.GPU}.Name():
		return true
	}
	return false
}

// SpreadGroup is the stored count of placed instances per site for one
// spread key. It changes in the same transactions as the instances it
// counts (placement and release), so it is never out of step with them.
type SpreadGroup struct {
	Key   string         `json:"key"`
	Sites map[string]int `json:"sites"`
}

func loadGroup(tx mec.Tx, key string) (SpreadGroup, int64, error) {
	g, v, err := mec.LoadOr(tx, mec.KindSpreadGroup, key, SpreadGroup{Key: key})
	if g.Sites == nil {
		g.Sites = map[string]int{}
	}
	return g, v, err
}

// countPeer adds delta to the instances of key on site.
func countPeer(tx mec.Tx, key, site string, delta int) error {
	if key == "" || site == "" {
		return nil
	}
	g, v, err := loadGroup(tx, key)
	if err != nil {
		return err
	}
	g.Sites[site] += delta
	if g.Sites[site] <= 0 {
		delete(g.Sites, site)
	}
	if len(g.Sites) == 0 {
		if v == mec.MustNotExist {
			return nil
		}
		return tx.Delete(mec.KindSpreadGroup, key, v)
	}
	_, err = mec.Save(tx, mec.KindSpreadGroup, key, g, v)
	return err
}
