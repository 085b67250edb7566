package inventory

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// CreateHost registers an edge server on an existing site. Without an ID it
// gets a generated one. It starts in state Unknown with nothing allocated,
// until its agent reports.
func (s *Service) CreateHost(ctx context.Context, h mec.Host) (mec.Host, int64, error) {
	if bad := ValidateHost(h); len(bad) > 0 {
		return mec.Host{}, 0, invalid("host", bad)
	}
	if h.ID == "" {
		h.ID = s.ids()
	}
	h.Addresses = canonicalAddrs(h.Addresses)
	if len(h.Labels) == 0 {
		h.Labels = nil
	}
	h.State = mec.HostUnknown
	h.CreatedAt = s.now()
	var ver int64
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		if err := siteMustExist(tx, h.SiteID); err != nil {
			return err
		}
		// A host registered again under a deleted one's ID continues its
		// generations: an agent that kept the old desired state must see
		// the new one as newer.
		tomb, tv, err := mec.LoadOr(tx, mec.KindHostTombstone, h.ID, mec.HostTombstone{})
		if err != nil {
			return err
		}
		h.DesiredGeneration = 0
		if tv != mec.MustNotExist {
			h.DesiredGeneration = tomb.DesiredGeneration + 1
		}
		v, err := mec.Save(tx, mec.KindHost, h.ID, h, mec.MustNotExist)
		if errors.Is(err, mec.ErrExists) {
			return exists("host", h.ID)
		}
		if err != nil {
			return err
		}
		ver = v
		if tv != mec.MustNotExist {
			return tx.Delete(mec.KindHostTombstone, h.ID, tv)
		}
		return nil
	})
	if err != nil {
		return mec.Host{}, 0, wrap(err, "create host %q", h.ID)
	}
	s.log.Info("host created", "host", h.ID, "site", h.SiteID)
	return h, ver, nil
}

// GetHost returns a host and its version.
func (s *Service) GetHost(ctx context.Context, id string) (mec.Host, int64, error) {
	var h mec.Host
	var ver int64
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		if h, ver, err = loadHost(tx, id); err != nil {
			return err
		}
		return withLiveness(tx, []mec.Host{h}, func(i int, t time.Time) { h.LastHeartbeat = &t })
	})
	return h, ver, wrap(err, "get host %q", id)
}

// withLiveness hands set the last heartbeat of each host that has one; it
// lives apart from the host document (see mec.KindHostLiveness).
func withLiveness(tx mec.Tx, hosts []mec.Host, set func(i int, t time.Time)) error {
	for i, h := range hosts {
		l, _, err := mec.Load[mec.HostLiveness](tx, mec.KindHostLiveness, h.ID)
		if errors.Is(err, mec.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		set(i, l.LastHeartbeat)
	}
	return nil
}

// ListHosts returns the hosts of siteID, or every host when siteID is
// empty, ordered by ID. An unknown site has no hosts.
func (s *Service) ListHosts(ctx context.Context, siteID string) ([]mec.Host, error) {
	var hosts []mec.Host
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		if siteID == "" {
			hosts, err = mec.LoadAll[mec.Host](tx, mec.KindHost)
		} else {
			hosts, err = hostsOfSite(tx, siteID)
		}
		if err != nil {
			return err
		}
		return withLiveness(tx, hosts, func(i int, t time.Time) { hosts[i].LastHeartbeat = &t })
	})
	return hosts, wrap(err, "list hosts")
}

// UpdateHost replaces what an operator owns of host id (site, name,
// capacity, labels, addresses) with h's, and keeps the rest as stored: the
// lifecycle's Allocated and generations, the agent's state and reports. It
// refuses (409) to shrink the capacity below what is allocated, and to move
// a host that has instances to another site. h.ID may be empty; if set it
// must be id. ifVersion is mec.AnyVersion or the version the caller read.
func (s *Service) UpdateHost(ctx context.Context, id string, h mec.Host, ifVersion int64) (mec.Host, int64, error) {
	var bad []mec.InvalidParam
	if h.ID != "" && h.ID != id {
		bad = append(bad, mec.InvalidParam{Name: "id", Reason: fmt.Sprintf("must be %q, the host being replaced, or absent", id)})
		h.ID = "" // one reason per field: this one
	}
	bad = append(bad, ValidateHost(h)...)
	if len(bad) > 0 {
		return mec.Host{}, 0, invalid("host", bad)
	}
	var out mec.Host
	var ver int64
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		cur, v, err := loadHost(tx, id)
		if err != nil {
			return err
		}
		if err := checkVersion("host", id, v, ifVersion); err != nil {
			return err
		}
		if h.SiteID != cur.SiteID {
			if err := siteMustExist(tx, h.SiteID); err != nil {
				return err
			}
			// Instances record their site for spreading and location
			// queries; moving the host under them would make that a lie.
			insts, err := instancesOnHost(tx, id)
			if err != nil {
				return err
			}
			if len(insts) > 0 {
				return mec.Errorf(http.StatusConflict, []mec.InvalidParam{{Name: "siteId", Reason: "the host has instances"}},
					"host %q has app instances %s: terminate them before moving it to site %q",
					id, idList(insts, func(i mec.AppInstance) string { return i.ID }), h.SiteID)
			}
		}
		if over := overAllocated(h.Capacity, cur.Allocated); len(over) > 0 {
			return mec.Errorf(http.StatusConflict, over,
				"host %q: the new capacity is below what its instances hold (allocated: %s)", id, formatResources(cur.Allocated))
		}
		next := cur
		next.SiteID, next.Name, next.Capacity = h.SiteID, h.Name, h.Capacity
		next.Labels, next.Addresses = h.Labels, canonicalAddrs(h.Addresses)
		if len(next.Labels) == 0 {
			next.Labels = nil
		}
		out = next
		if sameSpec(cur, next) {
			ver = v // nothing changes: keep the version, and so the client's ETag
			return nil
		}
		ver, err = mec.Save(tx, mec.KindHost, id, next, v)
		return err
	})
	if err != nil {
		return mec.Host{}, 0, wrap(err, "update host %q", id)
	}
	return out, ver, nil
}

// DeleteHost removes a host that holds no instances.
func (s *Service) DeleteHost(ctx context.Context, id string, ifVersion int64) error {
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		h, v, err := loadHost(tx, id)
		if err != nil {
			return err
		}
		if err := checkVersion("host", id, v, ifVersion); err != nil {
			return err
		}
		insts, err := instancesOnHost(tx, id)
		if err != nil {
			return err
		}
		if len(insts) > 0 {
			return mec.Errorf(http.StatusConflict, nil, "host %q has app instances %s: terminate them first",
				id, idList(insts, func(i mec.AppInstance) string { return i.ID }))
		}
		// The heartbeat kept beside the host goes with it, so that a host
		// registered again under this ID starts Unknown.
		if err := tx.Delete(mec.KindHostLiveness, id, mec.AnyVersion); err != nil && !errors.Is(err, mec.ErrNotFound) {
			return err
		}
		tomb := mec.HostTombstone{HostID: id, DesiredGeneration: h.DesiredGeneration}
		if _, err := mec.Save(tx, mec.KindHostTombstone, id, tomb, mec.AnyVersion); err != nil {
			return err
		}
		return tx.Delete(mec.KindHost, id, v)
	})
	if err != nil {
		return wrap(err, "delete host %q", id)
	}
	s.log.Info("host deleted", "host", id)
	return nil
}

// SetState cordons a host (mec.HostDraining: it keeps its instances and
// takes no new ones) or lifts the cordon (mec.HostReady). Lifting is only
// that: a host that is not Draining keeps its state, because Ready is for
// the agent to claim, and a host whose agent never reported goes back to
// Unknown rather than Ready. Both are idempotent and do not bump the version
// when nothing changes.
func (s *Service) SetState(ctx context.Context, hostID string, state mec.HostState) (mec.Host, int64, error) {
	if state != mec.HostDraining && state != mec.HostReady {
		return mec.Host{}, 0, mec.Errorf(http.StatusBadRequest,
			[]mec.InvalidParam{{Name: "state", Reason: fmt.Sprintf("must be %s or %s", mec.HostDraining, mec.HostReady)}},
			"an operator can only cordon (%s) or uncordon (%s) a host, not set it %q", mec.HostDraining, mec.HostReady, state)
	}
	var h mec.Host
	var ver int64
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		cur, v, err := loadHost(tx, hostID)
		if err != nil {
			return err
		}
		h, ver = cur, v
		if err := withLiveness(tx, []mec.Host{cur}, func(_ int, t time.Time) { h.LastHeartbeat = &t }); err != nil {
			return err
		}
		next := cur.State
		switch {
		case state == mec.HostDraining:
			next = mec.HostDraining
		case cur.State == mec.HostDraining && h.LastHeartbeat == nil:
			next = mec.HostUnknown
		case cur.State == mec.HostDraining:
			next = mec.HostReady
		}
		if next == cur.State {
			return nil
		}
		h.State = next
		stored := h
		stored.LastHeartbeat = nil // kept in its own document
		ver, err = mec.Save(tx, mec.KindHost, hostID, stored, v)
		return err
	})
	if err != nil {
		return mec.Host{}, 0, wrap(err, "set state of host %q", hostID)
	}
	s.log.Info("host state set by operator", "host", hostID, "state", h.State)
	return h, ver, nil
}

// loadHost reads a host, turning absence into a 404.
func loadHost(tx mec.Tx, id string) (mec.Host, int64, error) {
	h, v, err := mec.Load[mec.Host](tx, mec.KindHost, id)
	if errors.Is(err, mec.ErrNotFound) {
		return h, 0, notFound("host", id)
	}
	return h, v, err
}

// hostsOfSite returns the hosts whose SiteID is siteID.
func hostsOfSite(tx mec.Tx, siteID string) ([]mec.Host, error) {
	all, err := mec.LoadAll[mec.Host](tx, mec.KindHost)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(h mec.Host) bool { return h.SiteID != siteID }), nil
}

// instancesOnHost returns the instances that hold or are about to hold
// resources on hostID: instantiated ones, and any the lifecycle still wants
// something of (an instance being instantiated or terminated has a desired
// state before or after it is INSTANTIATED).
func instancesOnHost(tx mec.Tx, hostID string) ([]mec.AppInstance, error) {
	all, err := mec.LoadAll[mec.AppInstance](tx, mec.KindAppInstance)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(in mec.AppInstance) bool {
		return in.HostID != hostID || (in.InstantiationState != mec.Instantiated && in.DesiredState == "")
	}), nil
}

// overAllocated names each dimension in which capacity is below allocated.
func overAllocated(capacity, allocated mec.Resources) []mec.InvalidParam {
	dims := []struct {
		name, unit string
		cap, used  int64
	}{
		{"capacity.milliCpu", "m CPU", capacity.MilliCPU, allocated.MilliCPU},
		{"capacity.memoryMiB", " MiB", capacity.MemoryMiB, allocated.MemoryMiB},
		{"capacity.storageGB", " GB", capacity.StorageGB, allocated.StorageGB},
		{"capacity.gpus", " GPU(s)", capacity.GPUs, allocated.GPUs},
	}
	var over []mec.InvalidParam
	for _, d := range dims {
		if d.cap < d.used {
			over = append(over, mec.InvalidParam{Name: d.name, Reason: fmt.Sprintf("below the %d%s allocated to instances", d.used, d.unit)})
		}
	}
	return over
}

// formatResources renders r for a message in the units an operator types.
func formatResources(r mec.Resources) string {
	parts := []string{
		fmt.Sprintf("cpu %dm", r.MilliCPU),
		fmt.Sprintf("memory %d MiB", r.MemoryMiB),
		fmt.Sprintf("storage %d GB", r.StorageGB),
		fmt.Sprintf("%d GPU(s)", r.GPUs),
	}
	return strings.Join(parts, ", ")
}

// sameSpec reports whether a and b agree on every field an operator sets.
func sameSpec(a, b mec.Host) bool {
	return a.SiteID == b.SiteID && a.Name == b.Name && a.Capacity == b.Capacity &&
		maps.Equal(a.Labels, b.Labels) && slices.Equal(a.Addresses, b.Addresses)
}

// WasDeleted tells whether a host of this ID existed and was deleted (its
// tombstone is kept). An agent may register a new host by itself, but not
// bring back one an operator deleted: only the operator creates it again.
func (s *Service) WasDeleted(ctx context.Context, id string) (bool, error) {
	var gone bool
	err := s.store.View(ctx, func(tx mec.Tx) error {
		_, err := tx.Get(mec.KindHostTombstone, id)
		if errors.Is(err, mec.ErrNotFound) {
			return nil
		}
		gone = err == nil
		return err
	})
	return gone, err
}
