package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// RelocateOptions tune a relocation.
type RelocateOptions struct {
	// MoveCooldown: an instance moved less than this long ago (by an
	// evacuation or a relocation) stays where it is (ErrMoveCooldown).
	MoveCooldown time.Duration
	// Accept, when set, sees the new placement before it is committed
	// and may refuse it (ErrNotBetter), in which case nothing changes. It
	// runs inside the store transaction, which may run more than once:
	// it must only look at its argument.
	Accept func(next mec.Decision) bool
}

// Errors of Relocate that leave the instance where it is.
var (
	// ErrNotBetter: Accept refused the new placement.
	ErrNotBetter = errors.New("lifecycle: relocation refused: the new placement is not better")
	// ErrMoveCooldown: the instance moved less than MoveCooldown ago.
	ErrMoveCooldown = errors.New("lifecycle: relocation deferred: the instance moved recently")
	// ErrNoOtherHost: no other host fits the instance; the error wraps
	// the placement's *mec.Problem as well.
	ErrNoOtherHost = errors.New("lifecycle: relocation impossible: no other host fits")
)

// Relocate re-places a running or stopped instance on another host, for a
// reason other than its host's failure (the SLA watch moves instances whose
// latency bound is broken). It is Evacuate's move for one instance: one
// transaction releases the reservation, places again with the current host
// left out, reserves on the new host, bumps both hosts' generations (the old
// host's agent stops the instance, the new one's starts it) and takes a
// PROCESSING operation along; Moves and LastMovedAt record it. When
// opts.Accept refuses the new placement, the cooldown holds, or no other
// host fits, the transaction is rolled back and the instance stays where it
// is, with ErrNotBetter, ErrMoveCooldown or ErrNoOtherHost.
func (s *Service) Relocate(ctx context.Context, instanceID string, opts RelocateOptions) (Move, error) {
	s.placeMu.Lock()
	defer s.placeMu.Unlock()
	defer s.observePlacement()
	var (
		evs []mec.Event
		mv  Move
	)
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		evs, mv = evs[:0], Move{}
		in, v, err := loadInstance(tx, instanceID)
		if err != nil {
			return err
		}
		if in.InstantiationState != mec.Instantiated || in.HostID == "" ||
			(in.DesiredState != mec.DesiredRunning && in.DesiredState != mec.DesiredStopped) {
			return mec.Errorf(http.StatusConflict, nil, "app instance %s is %s; only a running or stopped instance can be relocated", instanceID, describe(in))
		}
		now := s.clock()
		if opts.MoveCooldown > 0 && in.LastMovedAt != nil && now.Sub(*in.LastMovedAt) < opts.MoveCooldown {
			return ErrMoveCooldown
		}
		if mv, err = s.moveTx(tx, &in, v, now, &evs); err != nil {
			return err
		}
		// moveTx stored the new decision; refusing it rolls everything
		// back, the release of the old host included.
		if opts.Accept != nil && in.Placement != nil && !opts.Accept(*in.Placement) {
			return ErrNotBetter
		}
		return nil
	})
	var nr *noRoom
	if errors.As(err, &nr) {
		return Move{}, fmt.Errorf("relocate instance %s: %w: %w", instanceID, ErrNoOtherHost, nr.p)
	}
	if err != nil {
		return Move{}, fmt.Errorf("relocate instance %s: %w", instanceID, err)
	}
	s.log.Info("app instance relocated", "instance", instanceID, "from", mv.From, "to", mv.To, "op", mv.OpID)
	s.publishAll(evs)
	return mv, nil
}
