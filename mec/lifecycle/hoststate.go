package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/agentproto"
)

// DesiredInstance, DesiredState, InstanceStatus and HostReport are the
// agent protocol's messages (mec/agentproto); the HTTP hand-off and the
// agent channel carry the same values.
type (
	DesiredInstance = agentproto.DesiredInstance
	DesiredState    = agentproto.DesiredState
	InstanceStatus  = agentproto.InstanceStatus
	HostReport      = agentproto.Report
)

// DesiredState returns the host's desired state at its current generation.
func (s *Service) DesiredState(ctx context.Context, hostID string) (DesiredState, error) {
	var ds DesiredState
	err := s.store.View(ctx, func(tx mec.Tx) error {
		h, _, err := mec.Load[mec.Host](tx, mec.KindHost, hostID)
		if err != nil {
			return fmt.Errorf("host %q: %w", hostID, err)
		}
		ds = DesiredState{HostID: h.ID, Generation: h.DesiredGeneration, Instances: []DesiredInstance{}}
		idx, _, err := loadIndex(tx, hostID)
		if err != nil {
			return err
		}
		rules := map[string]appRules{} // by package: instances of one app share them
		for _, id := range idx.Instances {
			in, _, err := mec.Load[mec.AppInstance](tx, mec.KindAppInstance, id)
			if err != nil {
				return fmt.Errorf("instance %s indexed on host %s: %w", id, hostID, err)
			}
			if in.DesiredState == "" {
				continue
			}
			di := DesiredInstance{ID: in.ID, AppDID: in.AppDID, AppPkgID: in.AppPkgID,
				State: in.DesiredState, Resources: in.Reserved, StopGraceSeconds: in.StopGraceSeconds}
			// An instance being removed enforces nothing any more.
			if in.DesiredState != mec.DesiredAbsent {
				r, ok := rules[in.AppPkgID]
				if !ok {
					// A package gone from under its instance must not
					// cost the host its whole desired state: the
					// instance runs on, without rules.
					pkg, _, err := mec.Load[mec.AppPackage](tx, mec.KindAppPackage, in.AppPkgID)
					switch {
					case errors.Is(err, mec.ErrNotFound):
					case err != nil:
						return fmt.Errorf("package %s of instance %s: %w", in.AppPkgID, in.ID, err)
					default:
						if r, err = rulesOf(pkg); err != nil {
							return err
						}
					}
					rules[in.AppPkgID] = r
				}
				di.TrafficRules, di.DNSRules, di.Bandwidth = r.traffic, r.dns, r.bandwidth
			}
			ds.Instances = append(ds.Instances, di)
		}
		sort.Slice(ds.Instances, func(i, j int) bool { return ds.Instances[i].ID < ds.Instances[j].ID })
		return s.dataPlaneOf(tx, h, &ds)
	})
	return ds, err
}

// dataPlaneOf adds the parts of h's desired state that depend on other
// hosts: the UE tunnels; and, when h has a VTEP, the tunnel peers and the
// remote instances sent with this generation (KindHostDataPlane), less
// those of an app that now has an instance wanted running on h itself
// (placed since the last data-plane sync, which will drop them).
func (s *Service) dataPlaneOf(tx mec.Tx, h mec.Host, ds *DesiredState) error {
	var err error
	if ds.UETunnels, err = ueTunnels(tx); err != nil {
		return err
	}
	if h.VTEP == "" {
		return nil
	}
	if ds.Peers, err = peersOf(tx, h.ID); err != nil {
		return err
	}
	dp, _, err := mec.LoadOr(tx, mec.KindHostDataPlane, h.ID, HostDataPlane{})
	if err != nil {
		return err
	}
	local := map[string]bool{}
	for _, in := range ds.Instances {
		if in.State == mec.DesiredRunning {
			local[in.AppDID] = true
		}
	}
	for _, r := range dp.Remote {
		if !local[r.AppDID] && r.HostID != h.ID {
			ds.Remote = append(ds.Remote, r)
		}
	}
	return nil
}

// Observed states an agent reports per instance.
const (
	ObservedRunning = agentproto.ObservedRunning
	ObservedStopped = agentproto.ObservedStopped
	ObservedFailed  = agentproto.ObservedFailed
)

// ReportStatus records an agent's report and completes the operations it
// settles. Reporting the same thing twice changes nothing.
func (s *Service) ReportStatus(ctx context.Context, r HostReport) error {
	var evs []mec.Event
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		evs = evs[:0]
		h, hv, err := mec.Load[mec.Host](tx, mec.KindHost, r.HostID)
		if err != nil {
			return fmt.Errorf("host %q: %w", r.HostID, err)
		}
		if r.Generation > h.DesiredGeneration {
			return mec.Errorf(http.StatusConflict, []mec.InvalidParam{{Name: "generation", Reason: "ahead of the desired generation"}},
				"host %s reports generation %d but the desired one is %d", h.ID, r.Generation, h.DesiredGeneration)
		}
		now := s.clock()
		changed := false
		if r.Generation > h.ReportedGeneration {
			h.ReportedGeneration, changed = r.Generation, true
		}
		if r.AgentVersion != "" && r.AgentVersion != h.AgentVersion {
			h.AgentVersion, changed = r.AgentVersion, true
		}
		if markReady(&h, now) {
			changed = true
		}
		// The host document changes only when something in it does; the
		// heartbeat goes to its own document (see mec.KindHostLiveness).
		if changed {
			if _, err := mec.Save(tx, mec.KindHost, h.ID, h, hv); err != nil {
				return err
			}
		}
		if _, err := mec.Save(tx, mec.KindHostLiveness, h.ID, mec.HostLiveness{HostID: h.ID, LastHeartbeat: now}, mec.AnyVersion); err != nil {
			return err
		}
		seen := map[string]InstanceStatus{}
		for _, st := range r.Instances {
			seen[st.ID] = st
		}
		idx, _, err := loadIndex(tx, h.ID)
		if err != nil {
			return err
		}
		for _, id := range idx.Instances {
			in, v, err := mec.Load[mec.AppInstance](tx, mec.KindAppInstance, id)
			if err != nil {
				return fmt.Errorf("instance %s indexed on host %s: %w", id, h.ID, err)
			}
			st, listed := seen[in.ID]
			observed, mac := mec.DesiredAbsent, in.MAC
			if listed {
				observed, mac = st.State, canonicalMAC(st.MAC)
			}
			ev, err := s.settle(tx, &in, v, observed, mac, st.Message, r.Generation)
			if err != nil {
				return err
			}
			evs = append(evs, ev...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.publishAll(evs)
	return nil
}

// settle applies one instance's observed state and MAC: it completes the
// pending operation when the host has reached its generation and the
// instance is as wanted, or fails it when the agent says the instance
// failed. The instance is written only when something changed: reports
// come every few seconds.
func (s *Service) settle(tx mec.Tx, in *mec.AppInstance, v int64, observed, mac, msg string, gen int64) ([]mec.Event, error) {
	changed := in.ObservedState != observed || in.MAC != mac
	in.ObservedState, in.MAC = observed, mac
	var evs []mec.Event
	if in.PendingOpID != "" {
		op, ov, err := loadOp(tx, in.PendingOpID)
		if err != nil {
			return nil, err
		}
		if op.State == mec.OpStateProcessing && gen >= op.TargetGeneration {
			switch {
			case observed == ObservedFailed:
				op.Error = &mec.Problem{Status: http.StatusInternalServerError, Detail: "the host's agent reports the instance failed: " + msg}
				if err := s.enterFailedTemp(tx, in, &op); err != nil {
					return nil, err
				}
				if _, err := mec.Save(tx, mec.KindLcmOpOcc, op.ID, op, ov); err != nil {
					return nil, err
				}
				evs = append(evs, opEvent(op, *in))
				changed = true
			case observed == in.DesiredState:
				if err := s.complete(tx, in, &op); err != nil {
					return nil, err
				}
				if _, err := mec.Save(tx, mec.KindLcmOpOcc, op.ID, op, ov); err != nil {
					return nil, err
				}
				evs = append(evs, opEvent(op, *in))
				changed = true
			}
		}
	}
	if !changed {
		return evs, nil
	}
	if _, err := mec.Save(tx, mec.KindAppInstance, in.ID, in, v); err != nil {
		return nil, err
	}
	return append(evs, instEvent(*in)), nil
}

// complete closes op as COMPLETED and moves the instance to its new state;
// a finished termination releases the reservation.
func (s *Service) complete(tx mec.Tx, in *mec.AppInstance, op *mec.LcmOpOcc) error {
	switch in.DesiredState {
	case mec.DesiredRunning:
		in.InstantiationState, in.OperationalState = mec.Instantiated, mec.OpStarted
	case mec.DesiredStopped:
		in.InstantiationState, in.OperationalState = mec.Instantiated, mec.OpStopped
	case mec.DesiredAbsent:
		if err := s.release(tx, in); err != nil {
			return err
		}
		in.InstantiationState, in.OperationalState = mec.NotInstantiated, ""
	}
	in.PendingOpID = ""
	op.State, op.StateEnteredTime = mec.OpStateCompleted, s.clock()
	return nil
}

// release gives the instance's reservation back to its host and takes it
// out of the host's desired state.
func (s *Service) release(tx mec.Tx, in *mec.AppInstance) error {
	h, hv, err := loadHost(tx, in.HostID)
	if err != nil {
		return err
	}
	h.Allocated = h.Allocated.Sub(in.Reserved)
	h.DesiredGeneration++
	if _, err := mec.Save(tx, mec.KindHost, h.ID, h, hv); err != nil {
		return err
	}
	if err := countPeer(tx, in.Constraints.SpreadKey, in.SiteID, -1); err != nil {
		return err
	}
	if err := indexInstance(tx, in.HostID, in.ID, false); err != nil {
		return err
	}
	in.HostID, in.SiteID, in.Reserved, in.DesiredState, in.ObservedState, in.Placement = "", "", mec.Resources{}, "", "", nil
	in.MAC = "" // the old host's interface
	return nil
}

// HostInstances is the stored index of the instances placed on one host
// (KindHostInstances), written with the placement and the release.
type HostInstances struct {
	HostID    string   `json:"hostId"`
	Instances []string `json:"instances"`
}

func loadIndex(tx mec.Tx, hostID string) (HostInstances, int64, error) {
	return mec.LoadOr(tx, mec.KindHostInstances, hostID, HostInstances{HostID: hostID})
}

// indexInstance adds (or removes) an instance to its host's index.
func indexInstance(tx mec.Tx, hostID, instID string, add bool) error {
	x, v, err := loadIndex(tx, hostID)
	if err != nil {
		return err
	}
	i, found := slices.BinarySearch(x.Instances, instID)
	switch {
	case add && !found:
		x.Instances = slices.Insert(x.Instances, i, instID)
	case !add && found:
		x.Instances = slices.Delete(x.Instances, i, i+1)
	default:
		return nil
	}
	if len(x.Instances) == 0 {
		return tx.Delete(mec.KindHostInstances, hostID, v)
	}
	_, err = mec.Save(tx, mec.KindHostInstances, hostID, x, v)
	return err
}
