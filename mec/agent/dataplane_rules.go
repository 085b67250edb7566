package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/traffic/classify"
)

// ruleSet is one instance's (local or remote) classifier rules.
type ruleSet struct {
	id     string
	remote bool
	rules  []classify.Rule
}

// applySets installs the union of sets. If the classifier refuses the
// union (each set compiled alone, so it is the whole that is too big), the
// rule set in force may steer to instances that are gone, whose interface
// indexes a new veth can take: so the fallback is the union of the sets
// that were in force and still are wanted, and failing that no rules at
// all; never the stale set.
func (s *Steering) applySets(sets []ruleSet) error {
	var all []classify.Rule
	for _, rs := range sets {
		all = append(all, rs.rules...)
	}
	if s.dns != nil {
		all = append([]classify.Rule{s.dns.Rule(s.cfg.UEPrefixes)}, all...)
	}
	key, err := ruleKey(all)
	if err != nil {
		return err
	}
	switch key {
	case s.applied:
		return nil
	case s.refused:
		return s.refErr
	}
	err = s.cls.Apply(all)
	if err == nil {
		s.commit(key, sets)
		return nil
	}
	s.refused, s.refErr = key, fmt.Errorf("traffic rules refused: %w", err)
	var kept []ruleSet
	for _, rs := range sets {
		if slices.Contains(s.appliedI, rs.id) {
			kept = append(kept, rs)
		}
	}
	for _, fallback := range [][]ruleSet{kept, nil} {
		var rules []classify.Rule
		if s.dns != nil {
			rules = append(rules, s.dns.Rule(s.cfg.UEPrefixes))
		}
		for _, rs := range fallback {
			rules = append(rules, rs.rules...)
		}
		fkey, kerr := ruleKey(rules)
		if kerr != nil {
			continue
		}
		if fkey == s.applied {
			s.refErr = fmt.Errorf("%w; serving %d of %d instances' rules meanwhile", s.refErr, len(fallback), len(sets))
			return s.refErr
		}
		if ferr := s.cls.Apply(rules); ferr == nil {
			// commit forgets the refusal; it must stand, or every pass
			// would try the refused set again.
			refused, refErr := s.refused, s.refErr
			s.commit(fkey, fallback)
			s.refused, s.refErr = refused, fmt.Errorf("%w; serving %d of %d instances' rules meanwhile", refErr, len(fallback), len(sets))
			return s.refErr
		}
	}
	return errors.Join(s.refErr, errors.New("fallback sets refused too; the set in force may be stale"))
}

func (s *Steering) commit(key string, sets []ruleSet) {
	s.applied, s.refused, s.refErr = key, "", nil
	s.appliedI = s.appliedI[:0]
	s.remote = map[string]bool{}
	for _, rs := range sets {
		s.appliedI = append(s.appliedI, rs.id)
		if rs.remote {
			for _, r := range rs.rules {
				s.remote[r.ID] = true
			}
		}
	}
}

// ruleKey tells rule sets apart, destinations included (json leaves Dest
// out, and pointers are compared by what they point to).
func ruleKey(rules []classify.Rule) (string, error) {
	type keyed struct {
		R       classify.Rule
		Ifindex int
		MAC     string
	}
	ks := make([]keyed, len(rules))
	for i, r := range rules {
		ks[i] = keyed{r, r.Dest.Ifindex, r.Dest.MAC.String()}
	}
	b, err := json.Marshal(ks)
	if err != nil {
		return "", fmt.Errorf("traffic rules: %w", err)
	}
	return string(b), nil
}

// remoteRules turns the remote instances (those of apps with no instance
// running here) into rules steered into the VXLAN device with the remote
// instance's MAC, and returns the MAC -> VTEP entries they need.
func (s *Steering) remoteRules(remote []agentproto.RemoteInstance, local map[string]bool) ([]ruleSet, map[string]netip.Addr, error) {
	macs := map[string]netip.Addr{}
	if len(remote) == 0 {
		return nil, macs, nil
	}
	if s.tun == nil {
		return nil, macs, fmt.Errorf("%d remote instances to steer to, but this host has no VXLAN endpoint (--vtep)", len(remote))
	}
	var out []ruleSet
	var errs []error
	for _, r := range remote {
		if local[r.ID] {
			continue
		}
		// Checked one by one, so that one bad entry does not take every
		// remote instance's FDB entry down with it (SetMACs refuses a set
		// as a whole).
		mac, err := net.ParseMAC(r.MAC)
		vtep, verr := netip.ParseAddr(r.VTEP)
		vtep = vtep.Unmap()
		if err != nil || verr != nil || len(mac) != 6 || mac[0]&1 == 1 || slices.Equal(mac, make(net.HardwareAddr, 6)) ||
			vtep.Is4() != s.cfg.VTEP.Unmap().Is4() || vtep == s.cfg.VTEP.Unmap() {
			errs = append(errs, fmt.Errorf("remote instance %s: MAC %q or VTEP %q unusable from VTEP %s", r.ID, r.MAC, r.VTEP, s.cfg.VTEP))
			continue
		}
		rs := instanceRules(r.ID, r.TrafficRules, classify.Dest{Ifindex: s.tun.Index(), MAC: mac})
		if _, err := classify.Compile(rs); err != nil {
			errs = append(errs, fmt.Errorf("remote instance %s: traffic rules: %w", r.ID, err))
			continue
		}
		macs[mac.String()] = vtep
		out = append(out, ruleSet{id: r.ID, remote: true, rules: rs})
	}
	return out, macs, errors.Join(errs...)
}

// instanceRules turns an instance's MEC 011 rules into classifier rules
// steered to dest. IDs get the instance's as a prefix: two instances of one
// app carry the same trafficRuleIds.
func instanceRules(id string, rules []agentproto.TrafficRule, dest classify.Dest) []classify.Rule {
	out := make([]classify.Rule, 0, len(rules))
	for _, r := range rules {
		cr := classify.Rule{ID: id + "/" + r.ID, Priority: r.Priority, Action: classify.Action(r.Action), Dest: dest, SetDSCP: r.SetDSCP}
		for _, f := range r.Filters {
			cf := classify.Filter{
				SrcAddress: f.SrcAddress, DstAddress: f.DstAddress, SrcPort: f.SrcPort, DstPort: f.DstPort,
				Protocol: f.Protocol, Tag: f.Tag, SrcTunnelAddress: f.SrcTunnelAddress,
				TgtTunnelAddress: f.TgtTunnelAddress, SrcTunnelPort: f.SrcTunnelPort,
				DstTunnelPort: f.DstTunnelPort, QCI: f.QCI, DSCP: f.DSCP, TC: f.TC,
			}
			cr.Filters = append(cr.Filters, withGTPTwin(cf)...)
		}
		out = append(out, cr)
	}
	return out
}

// withGTPTwin: a filter naming no tunnel field describes the UE's packet,
// which on the RAN side travels inside GTP-U. Without a twin that matches
// the inner packet, the classifier would hold those fields against the
// outer header (gNB → UPF, port 2152) and a UE-pool rule would never match
// an uplink G-PDU.
func withGTPTwin(f classify.Filter) []classify.Filter {
	if len(f.Tag)+len(f.SrcTunnelAddress)+len(f.TgtTunnelAddress)+len(f.SrcTunnelPort)+len(f.DstTunnelPort) != 0 || f.QCI != nil || f.TunnelType != "" {
		return []classify.Filter{f}
	}
	twin := f
	twin.TunnelType = "GTP_U"
	return []classify.Filter{f, twin}
}
