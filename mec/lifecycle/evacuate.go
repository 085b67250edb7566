package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// EvacuateOptions tune an evacuation.
type EvacuateOptions struct {
	// MoveCooldown is a flap guard: an instance moved less than this long
	// ago stays where it is (EvacuateResult.Deferred) and is moved by a
	// later evacuation, so that instances do not chase a fleet whose
	// hosts come and go.
	MoveCooldown time.Duration
	// StopIfReady leaves the remaining instances on the host as soon as
	// it is Ready again: its agent came back while the evacuation ran.
	StopIfReady bool
}

// EvacuateResult says what became of each instance of the evacuated host.
type EvacuateResult struct {
	HostID string
	// Moved: re-placed on another host.
	Moved []Move
	// Terminated: being removed when the host failed; the termination
	// completed without it.
	Terminated []string
	// Stuck: no other host fits; each stays where it is, with the
	// placement's reason.
	Stuck []Stuck
	// Deferred: moved less than MoveCooldown ago.
	Deferred []string
	// Kept: left because the host was Ready again (StopIfReady).
	Kept []string
}

// Move is one instance taken off a failed host.
type Move struct {
	InstanceID string
	From, To   string
	// OpID is the operation in progress that followed the instance to
	// its new host, if any.
	OpID string
}

// Stuck is an instance that no other host can take.
type Stuck struct {
	InstanceID string
	Reason     string
	Problem    *mec.Problem
}

// Evacuate takes the instances off a failed host. Each instance that must
// run (desiredState Running or Stopped) is placed again, with its stored
// needs and constraints, on another host the placement engine accepts, in
// one transaction that releases the old reservation and takes the new one,
// bumping both hosts' generations: the failed host's desired state no
// longer lists it, so its agent stops it if it comes back, and the new
// host's agent starts it. An operation in progress follows the instance
// and completes when the new host reports. An instance being terminated
// (Absent) is finished off: the host that should remove it is gone, and its
// desired state will not list it.
//
// Events for moved instances carry the new host in Instance.HostID (and
// OpOcc.HostID) and the old one in PrevHostID.
func (s *Service) Evacuate(ctx context.Context, hostID string, opts EvacuateOptions) (EvacuateResult, error) {
	res := EvacuateResult{HostID: hostID}
	var ids []string
	err := s.store.View(ctx, func(tx mec.Tx) error {
		if _, _, err := mec.Load[mec.Host](tx, mec.KindHost, hostID); err != nil {
			return fmt.Errorf("host %q: %w", hostID, err)
		}
		idx, _, err := loadIndex(tx, hostID)
		ids = idx.Instances
		return err
	})
	if err != nil {
		return res, err
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := s.evacuateOne(ctx, hostID, id, opts, &res); err != nil {
			return res, fmt.Errorf("evacuate instance %s off host %s: %w", id, hostID, err)
		}
	}
	return res, nil
}

// noRoom carries a placement's "no host fits" out of the transaction,
// which it rolls back.
type noRoom struct{ p *mec.Problem }

func (e *noRoom) Error() string { return e.p.Detail }

type evacOutcome int

const (
	evacSkipped evacOutcome = iota // no longer on the host, or nothing to do
	evacMoved
	evacTerminated
	evacDeferred
	evacKept
)

// evacuateOne moves or finishes one instance, in one transaction, and
// records the outcome in res.
func (s *Service) evacuateOne(ctx context.Context, hostID, id string, opts EvacuateOptions, res *EvacuateResult) error {
	s.placeMu.Lock()
	defer s.placeMu.Unlock()
	defer s.observePlacement()
	var (
		evs     []mec.Event
		outcome evacOutcome
		mv      Move
	)
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		evs, outcome, mv = evs[:0], evacSkipped, Move{}
		in, v, err := mec.Load[mec.AppInstance](tx, mec.KindAppInstance, id)
		if errors.Is(err, mec.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if in.HostID != hostID {
			return nil
		}
		h, _, err := loadHost(tx, hostID)
		if err != nil {
			return err
		}
		if opts.StopIfReady && h.State == mec.HostReady {
			outcome = evacKept
			return nil
		}
		now := s.clock()
		switch in.DesiredState {
		case mec.DesiredAbsent:
			outcome = evacTerminated
			return s.finishTermination(tx, &in, v, &evs)
		case mec.DesiredRunning, mec.DesiredStopped:
		default:
			return nil
		}
		if opts.MoveCooldown > 0 && in.LastMovedAt != nil && now.Sub(*in.LastMovedAt) < opts.MoveCooldown {
			outcome = evacDeferred
			return nil
		}
		if mv, err = s.moveTx(tx, &in, v, now, &evs); err != nil {
			return err
		}
		outcome = evacMoved
		return nil
	})
	var nr *noRoom
	switch {
	case errors.As(err, &nr):
		res.Stuck = append(res.Stuck, Stuck{InstanceID: id, Reason: nr.p.Detail, Problem: nr.p})
		return nil
	case err != nil:
		return err
	}
	switch outcome {
	case evacMoved:
		res.Moved = append(res.Moved, mv)
		s.log.Info("app instance moved off a failed host", "instance", id, "from", mv.From, "to", mv.To, "op", mv.OpID)
	case evacTerminated:
		res.Terminated = append(res.Terminated, id)
		s.log.Info("termination completed without the failed host", "instance", id, "host", hostID)
	case evacDeferred:
		res.Deferred = append(res.Deferred, id)
	case evacKept:
		res.Kept = append(res.Kept, id)
	}
	s.publishAll(evs)
	return nil
}

// moveTx releases in's reservation on its host and places it again
// elsewhere, inside tx.
func (s *Service) moveTx(tx mec.Tx, in *mec.AppInstance, v int64, now time.Time, evs *[]mec.Event) (Move, error) {
	from := in.HostID
	// Released first, so that the instance neither counts as its own
	// spread peer nor holds room on the failed host while it is placed;
	// what it needs, wants and is constrained by stays.
	need, desired, cons := in.Reserved, in.DesiredState, in.Constraints
	if err := s.release(tx, in); err != nil {
		return Move{}, err
	}
	in.DesiredState = desired
	h, err := s.reserve(tx, in, need, cons, from)
	var p *mec.Problem
	if errors.As(err, &p) {
		return Move{}, &noRoom{p}
	}
	if err != nil {
		return Move{}, err
	}
	in.Moves++
	in.LastMovedAt = &now
	if _, err := mec.Save(tx, mec.KindAppInstance, in.ID, in, v); err != nil {
		return Move{}, err
	}
	mv := Move{InstanceID: in.ID, From: from, To: h.ID}
	*evs = append(*evs, mec.Event{Type: mec.EventInstanceState, Instance: in, PrevHostID: from})
	if in.PendingOpID == "" {
		return mv, nil
	}
	op, opv, err := loadOp(tx, in.PendingOpID)
	if err != nil {
		return Move{}, err
	}
	// Only an operation waiting for the host follows; a FAILED_TEMP one
	// is rolled back already, and its retry works on the new host.
	if op.State != mec.OpStateProcessing {
		return mv, nil
	}
	op.HostID, op.TargetGeneration = h.ID, h.DesiredGeneration
	if _, err := mec.Save(tx, mec.KindLcmOpOcc, op.ID, op, opv); err != nil {
		return Move{}, err
	}
	mv.OpID = op.ID
	inCopy := *in
	*evs = append(*evs, mec.Event{Type: mec.EventOpOccState, OpOcc: &op, Instance: &inCopy, PrevHostID: from})
	return mv, nil
}

// finishTermination completes the termination of an instance whose host
// failed before it reported the instance gone: the reservation is released
// and the operation COMPLETED.
func (s *Service) finishTermination(tx mec.Tx, in *mec.AppInstance, v int64, evs *[]mec.Event) error {
	from := in.HostID
	var op *mec.LcmOpOcc
	var opv int64
	if in.PendingOpID != "" {
		o, ov, err := loadOp(tx, in.PendingOpID)
		if err != nil {
			return err
		}
		if o.State == mec.OpStateProcessing {
			op, opv = &o, ov
		}
	}
	if op != nil {
		if err := s.complete(tx, in, op); err != nil {
			return err
		}
		if _, err := mec.Save(tx, mec.KindLcmOpOcc, op.ID, op, opv); err != nil {
			return err
		}
	} else {
		if err := s.release(tx, in); err != nil {
			return err
		}
		in.InstantiationState, in.OperationalState = mec.NotInstantiated, ""
	}
	if _, err := mec.Save(tx, mec.KindAppInstance, in.ID, in, v); err != nil {
		return err
	}
	if op != nil {
		inCopy := *in
		*evs = append(*evs, mec.Event{Type: mec.EventOpOccState, OpOcc: op, Instance: &inCopy, PrevHostID: from})
	}
	*evs = append(*evs, mec.Event{Type: mec.EventInstanceState, Instance: in, PrevHostID: from})
	return nil
}
