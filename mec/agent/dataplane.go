package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/apprun"
	"github.com/mecorch/mecorch/traffic/classify"
	"github.com/mecorch/mecorch/traffic/netns"
)

// Dataplane enforces the traffic rules of the instances that run. The agent
// calls Sync after every reconcile pass with the instances that are both
// desired and observed Running; Sync must be cheap when nothing changed.
type Dataplane interface {
	Sync(running []agentproto.DesiredInstance) error
}

// Networks finds an instance's links; *apprun.Process is one.
type Networks interface {
	Network(id string) (apprun.Network, bool)
}

// SteeringConfig shapes a Steering.
type SteeringConfig struct {
	// SteerIface is where the RAN's GTP-U uplink arrives: the classifier
	// runs at its tcx ingress, and the return path sends UE-bound traffic
	// out of it. Required.
	SteerIface string
	// CoreIface, if set, is where downlink GTP-U from the core arrives: the
	// classifier runs there too, so that UE tunnels are learnt from it.
	CoreIface string
	// UEPrefixes are the UE pools. Replies of an app to other destinations
	// (DNS, the core) pass the return path untouched; empty means every
	// destination not a known UE is dropped there.
	UEPrefixes []netip.Prefix
	// HostNetns is the namespace holding SteerIface, CoreIface and the host
	// ends of the instances' veths (a redirect cannot cross namespaces);
	// empty for the agent's own.
	HostNetns string
	Networks  Networks
}

// Steering is the Dataplane over traffic/classify: one classifier for the
// host, attached with tcx at ingress of the steering (and core) interface,
// and its return path at ingress of each running instance's host-side veth.
// The links are not pinned: they go away with the agent's process (see
// DATAPLANE.md).
type Steering struct {
	cfg    SteeringConfig
	cls    *classify.Classifier
	ifaces []link.Link // SteerIface, CoreIface

	mu      sync.Mutex
	inst    map[string]*steered // running instances, by id
	applied string              // key of the rule set in force
	refused string              // key of the last set Apply refused
	refErr  error               // why
}

// steered is what Steering did for one instance.
type steered struct {
	ifindex int              // host end of its veth
	mac     net.HardwareAddr // its own end's, the Ethernet destination of steered packets
	ret     link.Link        // the return path at ingress of ifindex
	addrs   []netip.Addr     // service addresses put on its lo
}

// NewSteering loads the classifier and attaches it. Nothing is steered
// before the first Sync.
func NewSteering(cfg SteeringConfig) (*Steering, error) {
	if cfg.SteerIface == "" || cfg.Networks == nil {
		return nil, errors.New("steering: SteerIface and Networks are required")
	}
	cls, err := classify.New()
	if err != nil {
		return nil, err
	}
	s := &Steering{cfg: cfg, cls: cls, inst: map[string]*steered{}}
	uplink := 0
	for _, name := range []string{cfg.SteerIface, cfg.CoreIface} {
		if name == "" {
			continue
		}
		var l link.Link
		var idx int
		err := netns.Do(cfg.HostNetns, func() error {
			lk, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			idx = lk.Attrs().Index
			l, err = link.AttachTCX(link.TCXOptions{Interface: idx, Program: cls.Program(), Attach: ebpf.AttachTCXIngress})
			return err
		})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("steering: attach tcx on %s: %w", name, err)
		}
		if uplink == 0 {
			uplink = idx
		}
		s.ifaces = append(s.ifaces, l)
	}
	// Learning is harmless where no downlink arrives (it keys on the PDU
	// Session Container's DL type), so it is on whether or not CoreIface is.
	if err := cls.Configure(classify.ReturnConfig{Learn: true, Uplink: uplink, UEPrefixes: cfg.UEPrefixes}); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Classifier gives access to counters, stats and the UE map.
func (s *Steering) Classifier() *classify.Classifier { return s.cls }

// Counters are the per-rule counts, keyed "<instance>/<trafficRuleId>".
func (s *Steering) Counters() (map[string]classify.Counter, error) { return s.cls.Counters() }

// Close detaches everything and unloads the classifier.
func (s *Steering) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for id, st := range s.inst {
		if st.ret != nil {
			errs = append(errs, st.ret.Close())
		}
		delete(s.inst, id)
	}
	for _, l := range s.ifaces {
		errs = append(errs, l.Close())
	}
	s.ifaces = nil
	errs = append(errs, s.cls.Close())
	return errors.Join(errs...)
}

// Sync makes the data plane serve exactly the running instances: each one
// gets its return path and service addresses, and their rules are applied
// as one set. An instance that cannot be set up (or whose rules are invalid)
// is left out, with an error, and the others go on; a set the classifier
// refuses leaves the one in force.
func (s *Steering) Sync(running []agentproto.DesiredInstance) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	running = slices.Clone(running)
	sort.Slice(running, func(i, j int) bool { return running[i].ID < running[j].ID })
	var errs []error
	var rules []classify.Rule
	keep := map[string]bool{}
	for _, in := range running {
		st, err := s.prepare(in)
		if err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", in.ID, err))
			continue
		}
		keep[in.ID] = true
		rs := instanceRules(in, st)
		// Checked alone first, so that one app's bad rule does not hold up
		// every other app's.
		if _, err := classify.Compile(rs); err != nil {
			errs = append(errs, fmt.Errorf("instance %s: traffic rules: %w", in.ID, err))
			continue
		}
		rules = append(rules, rs...)
	}
	if err := s.apply(rules); err != nil {
		errs = append(errs, err)
	}
	// Return paths go after the rules, so no packet is steered to an
	// instance whose replies would no longer be encapsulated.
	for id, st := range s.inst {
		if !keep[id] {
			if st.ret != nil {
				if err := st.ret.Close(); err != nil {
					errs = append(errs, fmt.Errorf("instance %s: detach return path: %w", id, err))
				}
			}
			delete(s.inst, id)
		}
	}
	return errors.Join(errs...)
}

// apply installs rules unless they are what is in force, or what was
// refused last time (a refused set is refused again: no point in retrying
// until it changes).
func (s *Steering) apply(rules []classify.Rule) error {
	key, err := ruleKey(rules)
	if err != nil {
		return err
	}
	switch key {
	case s.applied:
		return nil
	case s.refused:
		return s.refErr
	}
	if err := s.cls.Apply(rules); err != nil {
		s.refused, s.refErr = key, fmt.Errorf("traffic rules refused, the previous set stays: %w", err)
		return s.refErr
	}
	s.applied, s.refused, s.refErr = key, "", nil
	return nil
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

// instanceRules turns an instance's MEC 011 rules into classifier rules
// steered to it. IDs get the instance's as a prefix: two instances of one
// app carry the same trafficRuleIds.
func instanceRules(in agentproto.DesiredInstance, st *steered) []classify.Rule {
	out := make([]classify.Rule, 0, len(in.TrafficRules))
	for _, r := range in.TrafficRules {
		cr := classify.Rule{ID: in.ID + "/" + r.ID, Priority: r.Priority, Action: classify.Action(r.Action),
			Dest: classify.Dest{Ifindex: st.ifindex, MAC: st.mac}}
		for _, f := range r.Filters {
			cf := classify.Filter{
				SrcAddress: f.SrcAddress, DstAddress: f.DstAddress, SrcPort: f.SrcPort, DstPort: f.DstPort,
				Protocol: f.Protocol, Tag: f.Tag, SrcTunnelAddress: f.SrcTunnelAddress,
				TgtTunnelAddress: f.TgtTunnelAddress, SrcTunnelPort: f.SrcTunnelPort,
				DstTunnelPort: f.DstTunnelPort, QCI: f.QCI, DSCP: f.DSCP, TC: f.TC,
			}
			cr.Filters = append(cr.Filters, cf)
			// A filter naming no tunnel field describes the UE's packet,
			// which on the RAN side travels inside GTP-U: without a twin
			// that matches the inner packet, the classifier would hold
			// those fields against the outer header (gNB → UPF, port
			// 2152) and a UE-pool rule would never match an uplink G-PDU.
			if len(f.Tag)+len(f.SrcTunnelAddress)+len(f.TgtTunnelAddress)+len(f.SrcTunnelPort)+len(f.DstTunnelPort) == 0 && f.QCI == nil {
				cf.TunnelType = "GTP_U"
				cr.Filters = append(cr.Filters, cf)
			}
		}
		out = append(out, cr)
	}
	return out
}
