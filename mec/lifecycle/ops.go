package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/mecorch/mecorch/appd"
	"github.com/mecorch/mecorch/mec"
)

// InstantiateRequest is the domain form of InstantiateAppRequest.
type InstantiateRequest struct {
	Constraints mec.PlacementConstraints
	// Need overrides the AppD's compute needs (the request's own
	// virtualComputeDescriptor or osContainerDescriptor), when given.
	Need   *mec.Resources
	Params json.RawMessage
}

// OperateRequest is the domain form of OperateAppRequest.
type OperateRequest struct {
	ChangeStateTo string // STARTED or STOPPED
	GraceSeconds  int    // for a GRACEFUL stop
	Params        json.RawMessage
}

// TerminateRequest is the domain form of TerminateAppRequest.
type TerminateRequest struct {
	GraceSeconds int // 0: FORCEFUL
	Params       json.RawMessage
}

// Instantiate places the instance, reserves its resources on the chosen host
// and adds it to that host's desired state, all in one transaction, and
// returns the PROCESSING operation occurrence that completes when the host's
// agent reports the instance running.
func (s *Service) Instantiate(ctx context.Context, id string, req InstantiateRequest) (mec.LcmOpOcc, error) {
	var op mec.LcmOpOcc
	var evs []mec.Event
	s.placeMu.Lock()
	defer s.placeMu.Unlock()
	defer s.observePlacement()
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		evs = evs[:0]
		in, v, err := loadInstance(tx, id)
		if err != nil {
			return err
		}
		if in.PendingOpID != "" || in.InstantiationState != mec.NotInstantiated {
			return mec.Errorf(http.StatusConflict, nil, "app instance %s is %s; only a NOT_INSTANTIATED instance can be instantiated", id, describe(in))
		}
		op = s.newOp(in, mec.OpInstantiate, req.Params)
		if err := s.instantiateTx(tx, &in, v, &op, req); err != nil {
			return err
		}
		evs = append(evs, opEvent(op, in), instEvent(in))
		return nil
	})
	if err != nil {
		return mec.LcmOpOcc{}, err
	}
	s.log.Info("app instance placed", "instance", id, "host", op.HostID, "generation", op.TargetGeneration)
	s.publishAll(evs)
	return op, nil
}

// instantiateTx does the placement and reservation of one instantiation (or
// of its retry) inside tx.
func (s *Service) instantiateTx(tx mec.Tx, in *mec.AppInstance, v int64, op *mec.LcmOpOcc, req InstantiateRequest) error {
	pkg, _, err := mec.Load[mec.AppPackage](tx, mec.KindAppPackage, in.AppPkgID)
	if err != nil {
		return fmt.Errorf("app package %s of instance %s: %w", in.AppPkgID, in.ID, err)
	}
	if pkg.OperationalState != mec.PkgEnabled {
		return mec.Errorf(http.StatusConflict, nil, "app package %s is DISABLED: no new instantiation", pkg.ID)
	}
	need, err := needOf(pkg, req.Need)
	if err != nil {
		return err
	}
	cons := req.Constraints
	if cons.SpreadKey == "" {
		cons.SpreadKey = in.AppDID
	}
	if cons.MaxLatencyNs == 0 {
		// Stored with the instance's constraints, so that a move and the
		// SLA watch hold it to the AppD's bound too.
		if cons.MaxLatencyNs, err = appLatencyOf(pkg); err != nil {
			return err
		}
	}
	h, err := s.reserve(tx, in, need, cons)
	if err != nil {
		return err
	}
	in.DesiredState = mec.DesiredRunning
	in.PendingOpID = op.ID
	if _, err := mec.Save(tx, mec.KindAppInstance, in.ID, in, v); err != nil {
		return err
	}
	op.HostID, op.TargetGeneration = h.ID, h.DesiredGeneration
	op.State, op.StateEnteredTime = mec.OpStateProcessing, s.clock()
	op.Error, op.Need, op.Constraints = nil, req.Need, &cons
	_, err = mec.Save(tx, mec.KindLcmOpOcc, op.ID, op, mec.AnyVersion)
	return err
}

// appLatencyOf is the AppD's appLatency.maxLatency (one-way, ns), 0 when
// it has none.
func appLatencyOf(pkg mec.AppPackage) (int64, error) {
	var a appd.AppD
	if err := json.Unmarshal(pkg.AppD, &a); err != nil {
		return 0, fmt.Errorf("decode AppD of package %s: %w", pkg.ID, err)
	}
	return int64(a.AppLatency.MaxLatencyDuration()), nil
}

// needOf is what an instance of pkg reserves: the request's override or the
// AppD's compute needs.
func needOf(pkg mec.AppPackage, override *mec.Resources) (mec.Resources, error) {
	if override != nil {
		return *override, nil
	}
	var a appd.AppD
	if err := json.Unmarshal(pkg.AppD, &a); err != nil {
		return mec.Resources{}, fmt.Errorf("decode AppD of package %s: %w", pkg.ID, err)
	}
	cpu, mem, disk, gpus := a.ComputeNeeds()
	return mec.Resources{MilliCPU: cpu, MemoryMiB: mem, StorageGB: disk, GPUs: gpus}, nil
}

// Operate starts or stops an instantiated instance.
func (s *Service) Operate(ctx context.Context, id string, req OperateRequest) (mec.LcmOpOcc, error) {
	if req.ChangeStateTo != mec.OpStarted && req.ChangeStateTo != mec.OpStopped {
		return mec.LcmOpOcc{}, mec.Errorf(http.StatusBadRequest, []mec.InvalidParam{{Name: "changeStateTo", Reason: "must be STARTED or STOPPED"}}, "invalid changeStateTo")
	}
	desired := mec.DesiredRunning
	if req.ChangeStateTo == mec.OpStopped {
		desired = mec.DesiredStopped
	}
	return s.changeDesired(ctx, id, mec.OpOperate, req.Params, func(in *mec.AppInstance) error {
		if in.OperationalState == req.ChangeStateTo {
			return mec.Errorf(http.StatusConflict, nil, "app instance %s is already %s", id, req.ChangeStateTo)
		}
		in.DesiredState, in.StopGraceSeconds = desired, req.GraceSeconds
		return nil
	})
}

// Terminate removes an instantiated instance from its host; the reservation
// is released when the agent reports it gone.
func (s *Service) Terminate(ctx context.Context, id string, req TerminateRequest) (mec.LcmOpOcc, error) {
	return s.changeDesired(ctx, id, mec.OpTerminate, req.Params, func(in *mec.AppInstance) error {
		in.DesiredState, in.StopGraceSeconds = mec.DesiredAbsent, req.GraceSeconds
		return nil
	})
}

// changeDesired is Operate and Terminate: change an INSTANTIATED instance's
// desired state, bump its host's generation, open the operation.
func (s *Service) changeDesired(ctx context.Context, id, kind string, params json.RawMessage, change func(*mec.AppInstance) error) (mec.LcmOpOcc, error) {
	var op mec.LcmOpOcc
	var evs []mec.Event
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		evs = evs[:0]
		in, v, err := loadInstance(tx, id)
		if err != nil {
			return err
		}
		if in.PendingOpID != "" || in.InstantiationState != mec.Instantiated {
			return mec.Errorf(http.StatusConflict, nil, "app instance %s is %s; %s needs an INSTANTIATED instance with no operation in progress", id, describe(in), kind)
		}
		if err := change(&in); err != nil {
			return err
		}
		op = s.newOp(in, kind, params)
		op.DesiredState, op.GraceSeconds = in.DesiredState, in.StopGraceSeconds
		if err := s.bumpAndOpen(tx, &in, v, &op); err != nil {
			return err
		}
		evs = append(evs, opEvent(op, in), instEvent(in))
		return nil
	})
	if err != nil {
		return mec.LcmOpOcc{}, err
	}
	s.publishAll(evs)
	return op, nil
}

// bumpAndOpen bumps the instance's host generation and saves the instance
// and its PROCESSING operation.
func (s *Service) bumpAndOpen(tx mec.Tx, in *mec.AppInstance, v int64, op *mec.LcmOpOcc) error {
	h, hv, err := loadHost(tx, in.HostID)
	if err != nil {
		return err
	}
	h.DesiredGeneration++
	if _, err := mec.Save(tx, mec.KindHost, h.ID, h, hv); err != nil {
		return err
	}
	in.PendingOpID = op.ID
	if _, err := mec.Save(tx, mec.KindAppInstance, in.ID, in, v); err != nil {
		return err
	}
	op.HostID, op.TargetGeneration = h.ID, h.DesiredGeneration
	op.State, op.StateEnteredTime, op.Error = mec.OpStateProcessing, s.clock(), nil
	_, err = mec.Save(tx, mec.KindLcmOpOcc, op.ID, op, mec.AnyVersion)
	return err
}

func (s *Service) newOp(in mec.AppInstance, kind string, params json.RawMessage) mec.LcmOpOcc {
	now := s.clock()
	return mec.LcmOpOcc{ID: s.ids(), AppInstanceID: in.ID, Operation: kind, State: mec.OpStateStarting,
		StartTime: now, StateEnteredTime: now, OperationParams: params, Owner: in.Owner}
}

func opEvent(op mec.LcmOpOcc, in mec.AppInstance) mec.Event {
	return mec.Event{Type: mec.EventOpOccState, OpOcc: &op, Instance: &in}
}
func instEvent(in mec.AppInstance) mec.Event {
	return mec.Event{Type: mec.EventInstanceState, Instance: &in}
}

// errNotFailedTemp is the 409 of retry and fail on an operation that is not
// waiting for either.
func errNotFailedTemp(op mec.LcmOpOcc) error {
	return mec.Errorf(http.StatusConflict, nil, "operation %s is %s; only a FAILED_TEMP operation can be retried or failed", op.ID, op.State)
}
