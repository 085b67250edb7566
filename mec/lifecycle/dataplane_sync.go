package lifecycle

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// Defaults of the data-plane sync's timing.
const (
	defaultDataPlaneResync = 10 * time.Second
	defaultDataPlaneSettle = 100 * time.Millisecond
)

// KickDataPlane asks RunDataPlane for a sync soon: something a host's
// data-plane part depends on may have changed (a UE tunnel, a host's VTEP
// or existence). Kicks coalesce; it never blocks.
func (s *Service) KickDataPlane() {
	select {
	case s.dpKick <- struct{}{}:
	default:
	}
}

// RunDataPlane syncs the hosts' data-plane parts (SyncDataPlane) after
// every kick, a settling pause later so that a burst of changes makes one
// sync, and every DataPlaneResync in any case: RTTs move without a write,
// and a kick may be lost with a crash between a commit and its sync. It
// runs until ctx ends.
func (s *Service) RunDataPlane(ctx context.Context) error {
	resync, settle := s.cfg.DataPlaneResync, s.cfg.DataPlaneSettle
	if resync <= 0 {
		resync = defaultDataPlaneResync
	}
	if settle <= 0 {
		settle = defaultDataPlaneSettle
	}
	t := time.NewTicker(resync)
	defer t.Stop()
	s.KickDataPlane() // whatever changed while no one was syncing
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.dpKick:
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(settle):
			}
			// Kicks during the pause are covered by this sync.
			select {
			case <-s.dpKick:
			default:
			}
		}
		if _, err := s.SyncDataPlane(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("sync the hosts' data planes", "err", err)
		}
	}
}

// SyncDataPlane recomputes every host's data-plane part and bumps the
// generation of each host whose part changed, storing the part's digest
// and remote instances with it (KindHostDataPlane); the documents of
// deleted hosts go. It returns the hosts bumped, after telling
// Config.DesiredChanged. A sync that finds nothing to change writes
// nothing: the comparison runs in a read-only transaction first.
func (s *Service) SyncDataPlane(ctx context.Context) ([]string, error) {
	s.dpMu.Lock() // one sync at a time in this process; they would only conflict
	defer s.dpMu.Unlock()
	var stale bool
	err := s.store.View(ctx, func(tx mec.Tx) error {
		w, err := s.loadWorld(tx)
		if err != nil {
			return err
		}
		stale = len(w.gone()) > 0
		for i := range w.hosts {
			if !stale && w.plan(&w.hosts[i]).Digest != w.storedDigest(&w.hosts[i]) {
				stale = true
			}
		}
		return nil
	})
	if err != nil || !stale {
		return nil, err
	}
	var bumped []string
	err = s.store.Update(ctx, func(tx mec.Tx) error {
		bumped = bumped[:0]
		w, err := s.loadWorld(tx)
		if err != nil {
			return err
		}
		for _, id := range w.gone() {
			if err := tx.Delete(mec.KindHostDataPlane, id, mec.AnyVersion); err != nil {
				return err
			}
		}
		for i := range w.hosts {
			h := w.hosts[i]
			d := w.plan(&h)
			if d.Digest == w.storedDigest(&h) {
				continue
			}
			// The host is read again for its version: w.hosts came from
			// a listing.
			cur, hv, err := loadHost(tx, h.ID)
			if err != nil {
				return err
			}
			cur.DesiredGeneration++
			if _, err := mec.Save(tx, mec.KindHost, cur.ID, cur, hv); err != nil {
				return err
			}
			if _, err := mec.Save(tx, mec.KindHostDataPlane, h.ID, d, mec.AnyVersion); err != nil {
				return err
			}
			bumped = append(bumped, h.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("data-plane sync: %w", err)
	}
	if len(bumped) > 0 {
		s.log.Debug("hosts' data-plane parts changed", "hosts", len(bumped))
		if s.cfg.DesiredChanged != nil {
			s.cfg.DesiredChanged(bumped)
		}
	}
	return bumped, nil
}

// gone lists the stored documents whose host no longer exists.
func (w *dpWorld) gone() []string {
	var out []string
	for id := range w.stored {
		if w.byID[id] == nil {
			out = append(out, id)
		}
	}
	return out
}

// RecordVTEP records the VXLAN underlay address a host's agent announced
// in its hello ("" for none), in canonical form. Writing only when it
// changed, it kicks the data-plane sync: every host with a VTEP has this
// one as a peer, and its instances become reachable (or not).
func (s *Service) RecordVTEP(ctx context.Context, hostID, vtep string) error {
	if vtep != "" {
		a, err := netip.ParseAddr(vtep)
		if err != nil || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
			return mec.Errorf(http.StatusBadRequest, []mec.InvalidParam{{Name: "vtep", Reason: "must be a unicast IP address"}},
				"VTEP %q of host %s is not a unicast IP address", vtep, hostID)
		}
		vtep = a.Unmap().String()
	}
	changed := false
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		changed = false
		h, hv, err := mec.Load[mec.Host](tx, mec.KindHost, hostID)
		if err != nil {
			return fmt.Errorf("host %q: %w", hostID, err)
		}
		if h.VTEP == vtep {
			return nil
		}
		h.VTEP, changed = vtep, true
		_, err = mec.Save(tx, mec.KindHost, h.ID, h, hv)
		return err
	})
	if err != nil {
		return err
	}
	if changed {
		s.log.Info("host VTEP recorded", "host", hostID, "vtep", vtep)
		s.KickDataPlane()
	}
	return nil
}
