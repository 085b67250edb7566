package agent

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/traffic/classify"
	"github.com/mecorch/mecorch/traffic/vxlan"
)

// syncUEs makes the provisioned UE tunnels those of the desired state:
// new and changed ones are written, and the ones the operator removed are
// deleted from the UE map — unless learning has written another path for
// that UE since, which is then the live one and stays.
func (s *Steering) syncUEs(ts []agentproto.UETunnel) error {
	want := make(map[netip.Addr]classify.UEPath, len(ts))
	var errs []error
	for _, t := range ts {
		ue, err := netip.ParseAddr(t.UEAddress)
		gnb, gerr := netip.ParseAddr(t.GNBAddress)
		src, serr := netip.ParseAddr(t.SourceAddress)
		if err != nil || gerr != nil || serr != nil {
			errs = append(errs, fmt.Errorf("UE tunnel %s: bad address", t.UEAddress))
			continue
		}
		want[ue.Unmap()] = classify.UEPath{GNB: gnb.Unmap(), TEID: t.TEID, QFI: uint8(t.QFI), Source: src.Unmap()}
	}
	if maps.Equal(want, s.ues) {
		// Unchanged, but the UE map is an LRU: learning many UEs may have
		// evicted provisioned ones, which nothing else would put back.
		return errors.Join(append(errs, s.restoreEvicted())...)
	}
	var cur map[netip.Addr]classify.UEPath
	for ue, p := range s.ues {
		if _, ok := want[ue]; ok {
			continue
		}
		if cur == nil {
			var err error
			if cur, err = s.cls.UEs(); err != nil {
				return errors.Join(append(errs, err)...)
			}
		}
		if cur[ue] == p {
			if err := s.cls.DeleteUE(ue); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		delete(s.ues, ue)
	}
	for ue, p := range want {
		if old, ok := s.ues[ue]; ok && old == p {
			continue
		}
		if err := s.cls.SetUE(ue, p); err != nil {
			errs = append(errs, fmt.Errorf("UE tunnel %s: %w", ue, err))
			continue
		}
		s.ues[ue] = p
	}
	return errors.Join(errs...)
}

// syncOverlay sets the VXLAN device's peers (default entries, for
// broadcast and unknown destinations) and its per-MAC entries for the
// remote instances steered to.
func (s *Steering) syncOverlay(peers []agentproto.TunnelPeer, macs map[string]netip.Addr) error {
	if s.tun == nil {
		if len(peers) > 0 {
			return fmt.Errorf("%d tunnel peers, but this host has no VXLAN endpoint (--vtep)", len(peers))
		}
		return nil
	}
	var ps []vxlan.Peer
	var errs []error
	for _, p := range peers {
		a, err := netip.ParseAddr(p.VTEP)
		if err != nil || a.Unmap() == s.cfg.VTEP.Unmap() {
			continue // ourselves, or refused by validation already
		}
		ps = append(ps, vxlan.Peer{HostID: p.HostID, Underlay: a.Unmap()})
	}
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s=%s;", p.HostID, p.Underlay)
	}
	for _, m := range slices.Sorted(maps.Keys(macs)) {
		fmt.Fprintf(&b, "%s>%s;", m, macs[m])
	}
	if b.String() == s.overlay {
		return nil
	}
	if err := s.tun.SetPeers(ps); err != nil {
		errs = append(errs, err)
	}
	if err := s.tun.SetMACs(macs); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		s.overlay = b.String()
	}
	return errors.Join(errs...)
}

// restoreEvicted writes back the provisioned tunnels missing from the UE
// map, when learning has written to it since the last look (only learning
// makes the LRU evict). A UE whose path learning replaced is left as it is.
func (s *Steering) restoreEvicted() error {
	st, err := s.cls.Stats()
	if err != nil || st.Learned == s.learnedSeen || len(s.ues) == 0 {
		return err
	}
	cur, err := s.cls.UEs()
	if err != nil {
		return err
	}
	var errs []error
	for ue, p := range s.ues {
		if _, ok := cur[ue]; ok {
			continue
		}
		if err := s.cls.SetUE(ue, p); err != nil {
			errs = append(errs, fmt.Errorf("UE tunnel %s: restore after eviction: %w", ue, err))
		}
	}
	if len(errs) == 0 {
		s.learnedSeen = st.Learned
	}
	return errors.Join(errs...)
}
