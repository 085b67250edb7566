package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/apprun"
	"github.com/mecorch/mecorch/traffic/classify"
	"github.com/mecorch/mecorch/traffic/netns"
	"github.com/mecorch/mecorch/traffic/vxlan"
)

// Dataplane enforces the traffic rules of the instances that run. The agent
// calls Sync after every reconcile pass; Sync must be cheap when nothing
// changed. Report and MACs feed the agent's report to mecorch.
type Dataplane interface {
	Sync(DataplaneState) error
	Report() ([]agentproto.RuleCounter, *agentproto.DataPlaneStats)
	MACs() map[string]net.HardwareAddr // running instances' own MACs, by instance ID
}

// DataplaneState is what the data plane must serve: the instances both
// desired and observed Running, and the host-wide parts of the desired
// state.
type DataplaneState struct {
	Running   []agentproto.DesiredInstance
	UETunnels []agentproto.UETunnel
	Remote    []agentproto.RemoteInstance
	Peers     []agentproto.TunnelPeer
}

// Networks finds an instance's links; *apprun.Process is one.
type Networks interface {
	Network(id string) (apprun.Network, bool)
}

// SteeringConfig shapes a Steering.
type SteeringConfig struct {
	// SteerIface is where the RAN's GTP-U uplink arrives: the classifier
	// runs at its tcx ingress. Required.
	SteerIface string
	// CoreIface, if set, is where downlink GTP-U from the core arrives: a
	// learn-only program there records each UE's tunnel (gNB, TEID, QFI)
	// and changes nothing.
	CoreIface string
	// UEPrefixes are the UE pools. Replies of an app to other destinations
	// (DNS, the core) pass the return path untouched; empty means every
	// destination not a known UE is dropped there.
	UEPrefixes []netip.Prefix
	// HostNetns is the namespace holding the interfaces, the app bridge and
	// the host ends of the instances' veths (a redirect cannot cross
	// namespaces); empty for the agent's own.
	HostNetns string
	Networks  Networks
	// PinDir, if set, is a bpffs directory where the classifier's maps and
	// tcx links are pinned, so that a restarted agent takes them over
	// without a gap. Empty: nothing is pinned, and steering stops with the
	// process.
	PinDir string
	// VTEP, if valid, is this host's VXLAN underlay address: a VXLAN
	// device (VNI, port 4789) on Bridge carries steered traffic to
	// instances on other hosts and brings theirs here.
	VTEP   netip.Addr
	VNI    uint32
	Bridge string
	// DNS, if set, runs the edge DNS responder (see DATAPLANE.md).
	DNS    *DNSConfig
	Logger *slog.Logger
}

// Steering is the Dataplane over traffic/classify: one classifier for the
// host, attached with tcx at ingress of the steering interface (and the
// learn-only program at the core interface), its return path at ingress of
// each running instance's host-side veth, the VXLAN overlay, per-instance
// shaping and the DNS responder.
type Steering struct {
	cfg    SteeringConfig
	log    *slog.Logger
	cls    *classify.Classifier
	ifaces []link.Link // SteerIface, CoreIface
	tun    *vxlan.Tunnel
	qos    *qosSet
	dns    *dnsEdge
	mtu    int // instances' MTU: the steering interface's less the GTP-U overhead
	cancel context.CancelFunc

	mu          sync.Mutex
	inst        map[string]*steered            // running instances, by id
	remote      map[string]bool                // rule IDs of the remote instances' rules in force
	applied     string                         // key of the rule set in force
	appliedI    []string                       // instance IDs (local and remote) whose rules are in force
	refused     string                         // key of the last set Apply refused
	refErr      error                          // why
	ues         map[netip.Addr]classify.UEPath // provisioned tunnels written
	learnedSeen uint64                         // Stats.Learned when the UE map was last checked for evictions
	overlay     string                         // key of the peer and MAC sets in force
	dnsKey      string
	swept       bool // stale pinned return paths removed
}

// steered is what Steering did for one instance.
type steered struct {
	ifindex int              // host end of its veth
	mac     net.HardwareAddr // its own end's, the Ethernet destination of steered packets
	ret     link.Link        // the return path at ingress of ifindex
	addrs   []netip.Addr     // service addresses put on its lo
	mtuSet  bool
}

// encapOverhead is what the return path adds: outer IPv4, UDP, GTP-U with
// the PDU Session Container.
const encapOverhead = 44

// NewSteering loads (or, with PinDir, takes over) the classifier and
// attaches it. Nothing new is steered before the first Sync.
func NewSteering(cfg SteeringConfig) (_ *Steering, err error) {
	if cfg.SteerIface == "" || cfg.Networks == nil {
		return nil, errors.New("steering: SteerIface and Networks are required")
	}
	if cfg.VTEP.IsValid() && cfg.Bridge == "" {
		return nil, errors.New("steering: a VTEP needs the app bridge")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.PinDir != "" {
		if err := os.MkdirAll(cfg.PinDir, 0o700); err != nil {
			return nil, fmt.Errorf("steering: pin dir: %w", err)
		}
	}
	cls, reused, err := classify.Open(classify.Options{PinDir: cfg.PinDir})
	if err != nil {
		return nil, err
	}
	if cfg.PinDir != "" {
		log.Info("classifier maps", "pinDir", cfg.PinDir, "reused", reused)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Steering{cfg: cfg, log: log, cls: cls, inst: map[string]*steered{}, remote: map[string]bool{},
		ues: map[netip.Addr]classify.UEPath{}, qos: newQoSSet(log), cancel: cancel}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	var uplinkMTU int
	for i, name := range []string{cfg.SteerIface, cfg.CoreIface} {
		if name == "" {
			continue
		}
		prog, pin := cls.Program(), "steer"
		if i == 1 {
			prog, pin = cls.LearnProgram(), "learn"
		}
		var l link.Link
		err := netns.Do(cfg.HostNetns, func() error {
			lk, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if i == 0 {
				uplinkMTU = lk.Attrs().MTU
			}
			l, err = s.attach(prog, lk.Attrs().Index, pin)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("steering: attach tcx on %s: %w", name, err)
		}
		s.ifaces = append(s.ifaces, l)
	}
	s.mtu = uplinkMTU - encapOverhead
	// Route: encapsulated replies go where the routing table says the
	// UE's gNB is, out of the RAN side here or (for an instance serving
	// another site over the overlay) across the backhaul.
	if err := cls.Configure(classify.ReturnConfig{Learn: cfg.CoreIface != "", Route: true, UEPrefixes: cfg.UEPrefixes, UplinkMTU: uplinkMTU}); err != nil {
		return nil, err
	}
	if cfg.VTEP.IsValid() {
		// The overlay joins the app bridge, which the runtime otherwise
		// makes only with the first instance.
		if b, ok := cfg.Networks.(interface{ EnsureBridge() error }); ok {
			if err := b.EnsureBridge(); err != nil {
				return nil, fmt.Errorf("steering: app bridge: %w", err)
			}
		}
		vni := cfg.VNI
		if vni == 0 {
			vni = DefaultVNI
		}
		if s.tun, err = vxlan.Ensure(cfg.HostNetns, vxlan.Config{VNI: vni, Local: cfg.VTEP, Bridge: cfg.Bridge, Logger: log}); err != nil {
			return nil, fmt.Errorf("steering: %w", err)
		}
	}
	if cfg.DNS != nil {
		d := *cfg.DNS
		d.HostNetns, d.Logger = cfg.HostNetns, log
		if s.dns, err = newDNSEdge(ctx, d); err != nil {
			return nil, fmt.Errorf("steering: DNS responder: %w", err)
		}
		err := netns.Do(cfg.HostNetns, func() error {
			lk, err := netlink.LinkByIndex(s.dns.HostIfindex())
			if err != nil {
				return err
			}
			if err := routeFrom("", lk.Attrs().Name); err != nil {
				return err
			}
			l, err := s.attach(cls.ReturnPath(), s.dns.HostIfindex(), "ret-dns")
			if err == nil {
				s.ifaces = append(s.ifaces, l)
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("steering: DNS responder's return path: %w", err)
		}
	}
	return s, nil
}

// DefaultVNI is the overlay's VNI when none is configured.
const DefaultVNI = 4242

// attach attaches prog at tcx ingress of ifindex (in the current
// namespace), pinned under name when pinning is on.
func (s *Steering) attach(prog *ebpf.Program, ifindex int, name string) (link.Link, error) {
	if s.cfg.PinDir == "" {
		return link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
	}
	return classify.AttachPinned(prog, ifindex, ebpf.AttachTCXIngress, filepath.Join(s.cfg.PinDir, name))
}

// detach removes a link for good: unpinned first, or it would outlive us.
func detach(l link.Link) error {
	if l == nil {
		return nil
	}
	// Unpin on a link never pinned is a no-op.
	if err := l.Unpin(); err != nil {
		return err
	}
	return l.Close()
}

// retPin names the pinned return path of an instance.
func retPin(id string) string {
	return "ret-" + strings.Map(func(r rune) rune {
		if r == '/' || r == '.' || r < ' ' {
			return '_'
		}
		return r
	}, id)
}

// Classifier gives access to counters, stats and the UE map.
func (s *Steering) Classifier() *classify.Classifier { return s.cls }

// Counters are the per-rule counts, keyed "<instance>/<trafficRuleId>".
func (s *Steering) Counters() (map[string]classify.Counter, error) { return s.cls.Counters() }

// Close lets go of everything this process holds. With pinning, the
// classifier keeps steering (a restarted agent takes it over); without, the
// links go with it. Shapers and the DNS responder are this process's.
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
	errs = append(errs, s.qos.close())
	if s.dns != nil {
		if s.cfg.PinDir != "" {
			s.dns.stop() // the pinned rule still steers to it: keep its veth for the next agent
		} else {
			errs = append(errs, s.dns.close())
		}
	}
	s.cancel()
	errs = append(errs, s.cls.Close())
	return errors.Join(errs...)
}

// Sync makes the data plane serve exactly what st says: each running
// instance gets its return path, service addresses and shaping; the local
// and remote instances' rules are applied as one set; the provisioned UE
// tunnels, the overlay and the DNS responder follow. An instance that
// cannot be set up (or whose rules are invalid) is left out, with an
// error, and the others go on.
func (s *Steering) Sync(st DataplaneState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	running := slices.Clone(st.Running)
	sort.Slice(running, func(i, j int) bool { return running[i].ID < running[j].ID })
	var errs []error
	var sets []ruleSet
	keep := map[string]bool{}
	var dnsRules []agentproto.DNSRule
	for _, in := range running {
		stt, err := s.prepare(in)
		if err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", in.ID, err))
			continue
		}
		keep[in.ID] = true
		dnsRules = append(dnsRules, in.DNSRules...)
		rs := instanceRules(in.ID, in.TrafficRules, classify.Dest{Ifindex: stt.ifindex, MAC: stt.mac})
		// Checked alone first, so that one app's bad rule does not hold up
		// every other app's.
		if _, err := classify.Compile(rs); err != nil {
			errs = append(errs, fmt.Errorf("instance %s: traffic rules: %w", in.ID, err))
			continue
		}
		sets = append(sets, ruleSet{id: in.ID, rules: rs})
	}
	remoteSets, macs, err := s.remoteRules(st.Remote, keep)
	if err != nil {
		errs = append(errs, err)
	}
	// A remote app's names are answered only if its traffic is steered
	// there: a service address nothing steers would be a dead end.
	steered := map[string]bool{}
	for _, rs := range remoteSets {
		steered[rs.id] = true
	}
	for _, r := range st.Remote {
		if steered[r.ID] {
			dnsRules = append(dnsRules, r.DNSRules...)
		}
	}
	if err := s.syncOverlay(st.Peers, macs); err != nil {
		errs = append(errs, err)
	}
	if err := s.applySets(append(sets, remoteSets...)); err != nil {
		errs = append(errs, err)
	}
	// Return paths and shapers go after the rules, so no packet is steered
	// to an instance whose replies would no longer be encapsulated.
	for id, stt := range s.inst {
		if keep[id] {
			continue
		}
		if err := detach(stt.ret); err != nil {
			errs = append(errs, fmt.Errorf("instance %s: detach return path: %w", id, err))
		}
		if err := s.qos.remove(id); err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", id, err))
		}
		delete(s.inst, id)
	}
	if !s.swept {
		errs = append(errs, s.sweepPins(keep))
		s.swept = true
	}
	if err := s.syncUEs(st.UETunnels); err != nil {
		errs = append(errs, err)
	}
	if err := s.syncDNS(dnsRules); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sweepPins removes the pinned return paths of instances a previous agent
// served and this one does not (they were removed while it was down).
func (s *Steering) sweepPins(keep map[string]bool) error {
	if s.cfg.PinDir == "" {
		return nil
	}
	want := map[string]bool{"ret-dns": s.dns != nil}
	for id := range keep {
		want[retPin(id)] = true
	}
	ents, err := os.ReadDir(s.cfg.PinDir)
	if err != nil {
		return fmt.Errorf("steering: read pin dir: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "ret-") || want[e.Name()] {
			continue
		}
		p := filepath.Join(s.cfg.PinDir, e.Name())
		l, err := link.LoadPinnedLink(p, nil)
		if err != nil {
			errs = append(errs, os.Remove(p))
			continue
		}
		errs = append(errs, detach(l))
	}
	return errors.Join(errs...)
}

// syncDNS gives the responder the union of the served apps' DNS rules.
func (s *Steering) syncDNS(rules []agentproto.DNSRule) error {
	if s.dns == nil {
		return nil
	}
	key := fmt.Sprint(rules)
	if key == s.dnsKey {
		return nil
	}
	if err := s.dns.SetRules(rules); err != nil {
		return fmt.Errorf("dns rules: %w", err)
	}
	s.dnsKey = key
	return nil
}
