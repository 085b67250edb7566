package lifecycle

import (
	"context"
	"fmt"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// Heartbeat records that the host's agent is alive (its KindHostLiveness
// document) and makes a NotReady or Unknown host Ready. A heartbeat that
// changes nothing else does not rewrite the host document, so it neither
// conflicts with placements nor moves the host's ETag.
func (s *Service) Heartbeat(ctx context.Context, hostID string) error {
	return s.store.Update(ctx, func(tx mec.Tx) error {
		h, hv, err := mec.Load[mec.Host](tx, mec.KindHost, hostID)
		if err != nil {
			return fmt.Errorf("host %q: %w", hostID, err)
		}
		now := s.clock()
		if markReady(&h, now) {
			if _, err := mec.Save(tx, mec.KindHost, h.ID, h, hv); err != nil {
				return err
			}
		}
		_, err = mec.Save(tx, mec.KindHostLiveness, h.ID, mec.HostLiveness{HostID: h.ID, LastHeartbeat: now}, mec.AnyVersion)
		return err
	})
}

// markReady makes a host whose agent was never heard of, or was lost, Ready
// as of now, and reports whether it changed. Draining stays Draining: the
// cordon is the operator's.
func markReady(h *mec.Host, now time.Time) bool {
	if h.State != mec.HostUnknown && h.State != mec.HostNotReady && h.State != "" {
		return false
	}
	h.State, h.ReadySince = mec.HostReady, &now
	return true
}
