package classify

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// UEPath is how the return path reaches a UE: the downlink GTP-U tunnel the
// gNB set up for it. GNB and Source must be IPv4 (the return path builds
// IPv4 outer headers only).
type UEPath struct {
	GNB    netip.Addr // outer destination: the gNB's N3 address
	TEID   uint32     // downlink TEID (allocated by the gNB)
	QFI    uint8      // QFI for the PDU Session Container, 0-63
	Source netip.Addr // outer source: the N3 address the gNB expects
}

// ReturnConfig tunes the return path and learning.
type ReturnConfig struct {
	// Learn makes the learn program (LearnProgram; classify never learns)
	// record, from each downlink G-PDU it sees (PDU Session Container type
	// 0), the tunnel to its inner destination in the UE map, replacing what
	// was there.
	Learn bool
	// Uplink is the ifindex towards the RAN that encapsulated packets are
	// redirected to (bpf_redirect_neigh fills the MACs); 0 lets them go on
	// (TC_ACT_OK) for the kernel to route, or, with Route, redirects them
	// where a FIB lookup says the gNB is.
	Uplink int
	// Route (with Uplink 0): each encapsulated packet goes where the
	// routing table sends its gNB (a forwarding lookup from the app's
	// interface, which needs forwarding on there), by bpf_redirect_neigh;
	// no route is a drop, counted in EncapFailed. For an instance serving
	// UEs of other sites, whose gNBs are not behind the RAN interface.
	Route bool
	// UplinkMTU is the MTU of the interface towards the RAN: a packet whose
	// encapsulation would be longer (inner IP length + 44) is dropped and
	// counted (Stats.TooBig). 0: no check. The agent gives the app an MTU
	// 44 below it, so this only catches what slips past.
	UplinkMTU int
	// UEPrefixes, when not empty, are the UE pools (at most 64): the
	// return path encapsulates only packets towards them and lets every
	// other destination pass untouched (TC_ACT_OK), so an app can still
	// reach DNS, the core or the Internet. Empty keeps the strict
	// behaviour: every IP destination not in the UE map is dropped.
	UEPrefixes []netip.Prefix
}

// maxUEPrefixes is ue_nets' max_entries.
const maxUEPrefixes = 64

// minMTU is IPv4's minimum MTU (RFC 791): an uplink cannot have less.
const minMTU = 68

// Stats are the steering and return-path event counts since load.
type Stats struct {
	DroppedUnknownUE uint64 // return path: destination not in the UE map
	SteerFailed      uint64 // decap, redirect or clone failed
	EncapFailed      uint64 // return path: malformed or encapsulation failed, dropped
	Learned          uint64 // UE map writes from downlink G-PDUs
	TooBig           uint64 // return path: GSO super-packet, or over UplinkMTU once encapsulated, dropped
}

// statFields are Stats' fields in the order of the stats map (STAT_* in
// classify.h); the map has exactly len(statFields) entries (STAT_MAX).
func (s *Stats) statFields() []*uint64 {
	return []*uint64{&s.DroppedUnknownUE, &s.SteerFailed, &s.EncapFailed, &s.Learned, &s.TooBig}
}

// ReturnPath is the app-facing tc program: it encapsulates packets towards
// known UEs and drops those towards unknown ones (with UEPrefixes: unknown
// ones inside the UE pools; other destinations pass).
func (c *Classifier) ReturnPath() *ebpf.Program { return c.objs.ReturnPath }

// Configure sets learning, the uplink interface and its MTU, and the UE
// pools.
func (c *Classifier) Configure(cfg ReturnConfig) error {
	if cfg.Uplink < 0 || cfg.Uplink > 1<<31-1 {
		return fmt.Errorf("classify: uplink ifindex %d out of range", cfg.Uplink)
	}
	if cfg.UplinkMTU != 0 && (cfg.UplinkMTU < minMTU || cfg.UplinkMTU > 0xffff) {
		return fmt.Errorf("classify: uplink MTU %d not 0 (no check) or %d-65535", cfg.UplinkMTU, minMTU)
	}
	if len(cfg.UEPrefixes) > maxUEPrefixes {
		return fmt.Errorf("classify: %d UE prefixes, at most %d", len(cfg.UEPrefixes), maxUEPrefixes)
	}
	want := map[classifyUeNet]bool{}
	for _, p := range cfg.UEPrefixes {
		if !p.IsValid() || p.Addr().Zone() != "" {
			return fmt.Errorf("classify: UE prefix %q invalid", p)
		}
		p = p.Masked()
		bits := p.Bits()
		if p.Addr().Is4() {
			bits += 96 // v4-mapped, as the UE map keys them
		}
		want[classifyUeNet{Prefixlen: uint32(bits), Addr: netip.AddrFrom16(p.Addr().As16()).As16()}] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v := classifyConfig{UplinkIfindex: uint32(cfg.Uplink), UplinkMtu: uint32(cfg.UplinkMTU)}
	if cfg.Learn {
		v.Flags |= cfgLearn
	}
	if cfg.Route {
		v.Flags |= cfgRoute
	}
	var k classifyUeNet
	var stale []classifyUeNet
	var one uint8
	have := 0
	it := c.objs.UeNets.Iterate()
	for it.Next(&k, &one) {
		have++
		if !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("classify: read UE prefixes: %w", err)
	}
	if len(stale) == 0 && have == len(want) && len(want) > 0 {
		// The prefixes in force are the ones wanted (a restarted agent
		// over pinned maps): no gate to close, one write.
		v.Flags |= cfgUENets
		if err := c.objs.Settings.Put(uint32(0), &v); err != nil {
			return fmt.Errorf("classify: write config: %w", err)
		}
		return nil
	}
	// The gate goes off before the prefixes change and on after, so no
	// packet is judged against a half-written set: meanwhile it is judged
	// the strict way (UE map only), which never sends anything raw.
	if err := c.objs.Settings.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("classify: write config: %w", err)
	}
	for _, k := range stale {
		if err := c.objs.UeNets.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("classify: delete UE prefix: %w", err)
		}
	}
	for k := range want {
		if err := c.objs.UeNets.Put(&k, uint8(1)); err != nil {
			return fmt.Errorf("classify: write UE prefix: %w", err)
		}
	}
	if len(want) > 0 {
		v.Flags |= cfgUENets
		if err := c.objs.Settings.Put(uint32(0), &v); err != nil {
			return fmt.Errorf("classify: write config: %w", err)
		}
	}
	return nil
}

// Bits of config.flags (CFG_* in classify.h).
const (
	cfgLearn  = 1
	cfgUENets = 2
	cfgRoute  = 4
)

func ueKey(ue netip.Addr) (classifyUeKey, error) {
	if !ue.IsValid() || ue.Zone() != "" {
		return classifyUeKey{}, fmt.Errorf("classify: UE address %q invalid", ue)
	}
	// IPv4 as v4-mapped: the C side keys both families in one map.
	return classifyUeKey{Addr: netip.AddrFrom16(ue.As16()).As16()}, nil
}

// SetUE installs (or replaces) the tunnel that reaches ue. The UE map is an
// LRU hash of 65,536 entries: under a flood of distinct UEs (learnt or set),
// the least recently used entries, set ones included, are evicted.
func (c *Classifier) SetUE(ue netip.Addr, p UEPath) error {
	k, err := ueKey(ue)
	if err != nil {
		return err
	}
	gnb, src := p.GNB.Unmap(), p.Source.Unmap()
	if !gnb.Is4() || !src.Is4() {
		return fmt.Errorf("classify: UE %s: gNB %s and source %s must be IPv4", ue, p.GNB, p.Source)
	}
	if p.QFI > 63 {
		return fmt.Errorf("classify: UE %s: QFI %d not in 0-63", ue, p.QFI)
	}
	v := classifyUePath{Gnb: gnb.As4(), Source: src.As4(), Teid: p.TEID, Qfi: p.QFI}
	if err := c.objs.Ues.Put(&k, &v); err != nil {
		return fmt.Errorf("classify: set UE %s: %w", ue, err)
	}
	return nil
}

// DeleteUE forgets ue; its return traffic is dropped from then on.
func (c *Classifier) DeleteUE(ue netip.Addr) error {
	k, err := ueKey(ue)
	if err != nil {
		return err
	}
	if err := c.objs.Ues.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("classify: delete UE %s: %w", ue, err)
	}
	return nil
}

// UEs returns the UE map: installed and learnt paths. IPv4 UEs come back as
// plain IPv4 addresses.
func (c *Classifier) UEs() (map[netip.Addr]UEPath, error) {
	out := map[netip.Addr]UEPath{}
	var k classifyUeKey
	var v classifyUePath
	it := c.objs.Ues.Iterate()
	for it.Next(&k, &v) {
		out[netip.AddrFrom16(k.Addr).Unmap()] = UEPath{
			GNB: netip.AddrFrom4(v.Gnb), TEID: v.Teid, QFI: v.Qfi, Source: netip.AddrFrom4(v.Source),
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("classify: read UE map: %w", err)
	}
	return out, nil
}

// Stats sums the per-CPU event counters.
func (c *Classifier) Stats() (Stats, error) {
	var s Stats
	vals := make([]uint64, c.ncpu)
	for i, d := range s.statFields() {
		if err := c.objs.Stats.Lookup(uint32(i), &vals); err != nil {
			return Stats{}, fmt.Errorf("classify: read stat %d: %w", i, err)
		}
		for _, v := range vals {
			*d += v
		}
	}
	return s, nil
}

// DroppedUnknownUE is how many packets the return path dropped because their
// destination UE was not in the UE map.
func (c *Classifier) DroppedUnknownUE() (uint64, error) {
	s, err := c.Stats()
	return s.DroppedUnknownUE, err
}
