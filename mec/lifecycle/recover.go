package lifecycle

import (
	"context"
	"net/http"

	"github.com/mecorch/mecorch/mec"
)

// enterFailedTemp stops op where it is and rolls the instance back to where
// it stood before op began, so that FAILED_TEMP holds no half-done change: an
// instantiation gives its reservation back, an operate or terminate restores
// the previous desired state. The instance stays bound to op (PendingOpID)
// until retry or fail.
func (s *Service) enterFailedTemp(tx mec.Tx, in *mec.AppInstance, op *mec.LcmOpOcc) error {
	switch op.Operation {
	case mec.OpInstantiate:
		if in.HostID != "" {
			if err := s.release(tx, in); err != nil {
				return err
			}
		}
	default:
		prev := mec.DesiredRunning
		if in.OperationalState == mec.OpStopped {
			prev = mec.DesiredStopped
		}
		if in.DesiredState != prev {
			in.DesiredState = prev
			h, hv, err := loadHost(tx, in.HostID)
			if err != nil {
				return err
			}
			h.DesiredGeneration++
			if _, err := mec.Save(tx, mec.KindHost, h.ID, h, hv); err != nil {
				return err
			}
		}
	}
	op.State, op.StateEnteredTime = mec.OpStateFailedTemp, s.clock()
	return nil
}

// opAction loads an operation and its instance for cancel, fail or retry,
// runs act on them and saves both.
func (s *Service) opAction(ctx context.Context, opID string, act func(tx mec.Tx, in *mec.AppInstance, op *mec.LcmOpOcc) error) (mec.LcmOpOcc, error) {
	var op mec.LcmOpOcc
	var evs []mec.Event
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		evs = evs[:0]
		var err error
		if op, _, err = loadOp(tx, opID); err != nil {
			return err
		}
		in, _, err := loadInstance(tx, op.AppInstanceID)
		if err != nil {
			return err
		}
		if err := act(tx, &in, &op); err != nil {
			return err
		}
		// act may have saved the instance already (a retry re-places it);
		// inside the one transaction the last write is the one that counts.
		if _, err := mec.Save(tx, mec.KindAppInstance, in.ID, in, mec.AnyVersion); err != nil {
			return err
		}
		if _, err := mec.Save(tx, mec.KindLcmOpOcc, op.ID, op, mec.AnyVersion); err != nil {
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

// Cancel stops an operation that is still STARTING or PROCESSING; it
// becomes FAILED_TEMP with its changes rolled back.
func (s *Service) Cancel(ctx context.Context, opID string) (mec.LcmOpOcc, error) {
	return s.opAction(ctx, opID, func(tx mec.Tx, in *mec.AppInstance, op *mec.LcmOpOcc) error {
		if op.State != mec.OpStateStarting && op.State != mec.OpStateProcessing {
			return mec.Errorf(http.StatusConflict, nil, "operation %s is %s; only STARTING or PROCESSING can be cancelled", op.ID, op.State)
		}
		op.Error = &mec.Problem{Status: http.StatusConflict, Detail: "cancelled by request"}
		return s.enterFailedTemp(tx, in, op)
	})
}

// Fail closes a FAILED_TEMP operation for good and frees its instance for
// other operations.
func (s *Service) Fail(ctx context.Context, opID string) (mec.LcmOpOcc, error) {
	return s.opAction(ctx, opID, func(tx mec.Tx, in *mec.AppInstance, op *mec.LcmOpOcc) error {
		if op.State != mec.OpStateFailedTemp {
			return errNotFailedTemp(*op)
		}
		op.State, op.StateEnteredTime = mec.OpStateFailed, s.clock()
		if in.PendingOpID == op.ID {
			in.PendingOpID = ""
		}
		return nil
	})
}

// Retry runs a FAILED_TEMP operation again from the start.
func (s *Service) Retry(ctx context.Context, opID string) (mec.LcmOpOcc, error) {
	s.placeMu.Lock() // a retried instantiation places again
	defer s.placeMu.Unlock()
	defer s.observePlacement()
	return s.opAction(ctx, opID, func(tx mec.Tx, in *mec.AppInstance, op *mec.LcmOpOcc) error {
		if op.State != mec.OpStateFailedTemp {
			return errNotFailedTemp(*op)
		}
		_, v, err := loadInstance(tx, in.ID)
		if err != nil {
			return err
		}
		if op.Operation == mec.OpInstantiate {
			req := InstantiateRequest{Need: op.Need}
			if op.Constraints != nil {
				req.Constraints = *op.Constraints
			}
			return s.instantiateTx(tx, in, v, op, req)
		}
		in.DesiredState, in.StopGraceSeconds = op.DesiredState, op.GraceSeconds
		return s.bumpAndOpen(tx, in, v, op)
	})
}

// ExpireOps turns operations that have waited longer than the configured
// timeout for their host's agent into FAILED_TEMP. The orchestrator calls it
// periodically; it returns how many it expired.
func (s *Service) ExpireOps(ctx context.Context) (int, error) {
	if s.cfg.OpTimeout <= 0 {
		return 0, nil
	}
	// Find candidates in a read-only transaction first: most sweeps find
	// nothing, and a write transaction over every operation ever recorded
	// would hold the embedded store's only writer for the whole scan.
	var due []string
	now := s.clock()
	err := s.store.View(ctx, func(tx mec.Tx) error {
		due = due[:0]
		ops, err := mec.LoadAll[mec.LcmOpOcc](tx, mec.KindLcmOpOcc)
		for _, op := range ops {
			if op.State == mec.OpStateProcessing && now.Sub(op.StateEnteredTime) >= s.cfg.OpTimeout {
				due = append(due, op.ID)
			}
		}
		return err
	})
	if err != nil || len(due) == 0 {
		return 0, err
	}
	var evs []mec.Event
	err = s.store.Update(ctx, func(tx mec.Tx) error {
		evs = evs[:0]
		now := s.clock()
		for _, id := range due {
			op, ov, err := mec.Load[mec.LcmOpOcc](tx, mec.KindLcmOpOcc, id)
			if err != nil {
				return err
			}
			// Checked again: the agent may have reported meanwhile.
			if op.State != mec.OpStateProcessing || now.Sub(op.StateEnteredTime) < s.cfg.OpTimeout {
				continue
			}
			in, iv, err := loadInstance(tx, op.AppInstanceID)
			if err != nil {
				return err
			}
			op.Error = &mec.Problem{Status: http.StatusGatewayTimeout,
				Detail: "host " + op.HostID + " did not report the change within " + s.cfg.OpTimeout.String()}
			if err := s.enterFailedTemp(tx, &in, &op); err != nil {
				return err
			}
			if _, err := mec.Save(tx, mec.KindAppInstance, in.ID, in, iv); err != nil {
				return err
			}
			if _, err := mec.Save(tx, mec.KindLcmOpOcc, op.ID, op, ov); err != nil {
				return err
			}
			evs = append(evs, opEvent(op, in), instEvent(in))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.publishAll(evs)
	return len(evs) / 2, nil
}
