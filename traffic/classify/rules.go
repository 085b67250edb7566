// Package classify classifies packets against MEC 011 traffic rules in a tc
// eBPF program: plain IPv4/IPv6 and GTP-U (with the PDU session container's
// QFI), first matching rule wins, with per-rule packet and byte counters. The
// verdict is carried to the steering stage in skb->mark (rule position + 1).
package classify

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Action is a MEC 011 TrafficRule action.
type Action string

// The MEC 011 actions (TrafficRule.action, clause 7.1.2.2).
const (
	ActionDrop                  Action = "DROP"
	ActionPassthrough           Action = "PASSTHROUGH"
	ActionForwardDecapsulated   Action = "FORWARD_DECAPSULATED"
	ActionForwardEncapsulated   Action = "FORWARD_ENCAPSULATED"
	ActionDuplicateDecapsulated Action = "DUPLICATE_DECAPSULATED"
	ActionDuplicateEncapsulated Action = "DUPLICATE_ENCAPSULATED"
)

// code is the action's number in rule_entry.action (ACT_* in classify.h).
func (a Action) code() (uint32, bool) {
	switch a {
	case ActionDrop:
		return 1, true
	case ActionPassthrough:
		return 2, true
	case ActionForwardDecapsulated:
		return 3, true
	case ActionForwardEncapsulated:
		return 4, true
	case ActionDuplicateDecapsulated:
		return 5, true
	case ActionDuplicateEncapsulated:
		return 6, true
	}
	return 0, false
}

// MaxEntries is how many expanded entries (see Compile) one rule set may use.
const MaxEntries = 10000

// Rule is a MEC 011 TrafficRule as far as classification needs it. A packet
// matches the rule when it matches any of its filters.
type Rule struct {
	ID       string   `json:"trafficRuleId"`
	Priority int      `json:"priority"` // 0 (highest) to 255
	Action   Action   `json:"action"`
	Filters  []Filter `json:"trafficFilter"`
	// Dest is where FORWARD_* and DUPLICATE_* send matching packets. It is
	// not MEC 011 (there it is dstInterface, resolved by the platform), so
	// the agent fills it in from the app instance it runs.
	Dest Dest `json:"-"`
	// SetDSCP, when set (0-63), re-marks what reaches the app: the packet of
	// a FORWARD_* (its inner header once decapsulated), the copy of a
	// DUPLICATE_* (the original keeps its own); for PASSTHROUGH, the packet
	// going on. IPv4's header checksum is fixed; ECN bits are kept. Not
	// MEC 011: AppDs give it as the rule's x-mecorch-dscp.
	SetDSCP *int `json:"setDscp,omitempty"`
}

// Dest is a steering destination: the interface (ifindex) of the app
// instance's side of the link. Ifindex 0 on a steering action leaves steering
// to a later stage: the packet passes (TC_ACT_OK) with its mark.
//
// MAC, when set, becomes the Ethernet destination of what reaches the app: a
// FORWARD_* packet, a DUPLICATE_* copy (the original keeps its own). The
// frame arrives addressed to the RAN-side interface, and the app's stack
// drops frames addressed to another host. Give the MAC of the app's own end
// of its veth.
type Dest struct {
	Ifindex int
	MAC     net.HardwareAddr
}

// Filter mirrors MEC 011 TrafficFilter (clause 7.1.5.2). Within a field the
// listed values are alternatives; set fields must all match. When the filter
// names a tunnel (TunnelType GTP_U or any tunnel field, tag or qCI), the
// tunnel fields constrain the outer header and srcAddress…dSCP/tC the inner
// (UE) packet of a GTP-U G-PDU; otherwise they constrain the packet itself.
type Filter struct {
	SrcAddress       []string `json:"srcAddress,omitempty"` // address, CIDR prefix or "a-b" range
	DstAddress       []string `json:"dstAddress,omitempty"`
	SrcPort          []string `json:"srcPort,omitempty"` // "80" or "1000-2000"
	DstPort          []string `json:"dstPort,omitempty"`
	Protocol         []string `json:"protocol,omitempty"` // TCP, UDP, ICMP, ICMPV6, SCTP or 0-255
	Tag              []string `json:"tag,omitempty"`      // GTP-U TEID, decimal or 0x hex
	SrcTunnelAddress []string `json:"srcTunnelAddress,omitempty"`
	TgtTunnelAddress []string `json:"tgtTunnelAddress,omitempty"`
	SrcTunnelPort    []string `json:"srcTunnelPort,omitempty"`
	DstTunnelPort    []string `json:"dstTunnelPort,omitempty"`
	// QCI is matched against the QFI of the PDU session container (the only
	// QoS identifier a GTP-U header carries in 5G), so it must be 0-63: a
	// larger MEC 011 qCI (an LTE QCI such as 65 or 79) could never match and
	// is refused, not truncated to 6 bits.
	QCI  *int `json:"qCI,omitempty"`
	DSCP *int `json:"dSCP,omitempty"` // IPv4 only, 0-63
	TC   *int `json:"tC,omitempty"`   // IPv6 traffic class, 0-255
	// TunnelType is not a TrafficFilter field in MEC 011 (it is TunnelInfo's);
	// "GTP_U" asks for inner-packet matching even without other tunnel fields.
	TunnelType string `json:"tunnelType,omitempty"`
}

// Compiled is a validated rule set expanded into map entries.
type Compiled struct {
	rules   []Rule // in priority order; rule_no indexes this
	entries []classifyRuleEntry
}

// Rules returns the rules in the order the classifier tries them; the mark
// of a packet matched by Rules()[i] is i+1.
func (c *Compiled) Rules() []Rule { return slices.Clone(c.rules) }

// Entries is the number of map entries the set uses (at most MaxEntries).
func (c *Compiled) Entries() int { return len(c.entries) }

// Compile validates rules and expands them, in priority order (stable for
// equal priorities), into map entries: one per combination of address
// prefixes, port ranges and tags of each filter.
func Compile(rules []Rule) (*Compiled, error) {
	order := make([]int, len(rules))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return rules[a].Priority - rules[b].Priority })
	seen := map[string]int{}
	for i, r := range rules {
		if r.ID == "" {
			return nil, fmt.Errorf("rules[%d].trafficRuleId: empty", i)
		}
		if j, dup := seen[r.ID]; dup {
			return nil, fmt.Errorf("rules[%d].trafficRuleId: %q already used by rules[%d]", i, r.ID, j)
		}
		seen[r.ID] = i
	}
	c := &Compiled{}
	for no, i := range order {
		r := rules[i]
		path := fmt.Sprintf("rules[%d]", i)
		if r.Priority < 0 || r.Priority > 255 {
			return nil, fmt.Errorf("%s.priority: %d not in 0-255", path, r.Priority)
		}
		act, ok := r.Action.code()
		if !ok {
			return nil, fmt.Errorf("%s.action: unknown action %q", path, r.Action)
		}
		if r.Dest.Ifindex < 0 || r.Dest.Ifindex > 1<<31-1 {
			return nil, fmt.Errorf("%s.dest.ifindex: %d is not an interface index", path, r.Dest.Ifindex)
		}
		if len(r.Dest.MAC) != 0 && len(r.Dest.MAC) != 6 {
			return nil, fmt.Errorf("%s.dest.mac: %q is not an Ethernet address", path, r.Dest.MAC)
		}
		if len(r.Filters) == 0 {
			return nil, fmt.Errorf("%s.trafficFilter: at least one filter is required", path)
		}
		if r.SetDSCP != nil && (*r.SetDSCP < 0 || *r.SetDSCP > 63) {
			return nil, fmt.Errorf("%s.setDscp: %d not in 0-63", path, *r.SetDSCP)
		}
		if r.SetDSCP != nil && r.Action == ActionDrop {
			return nil, fmt.Errorf("%s.setDscp: a dropped packet has no DSCP to set", path)
		}
		c.rules = append(c.rules, r)
		first := len(c.entries)
		for k, f := range r.Filters {
			fp := fmt.Sprintf("%s.trafficFilter[%d]", path, k)
			// A filter that constrains nothing would match every frame,
			// ARP and other apps' traffic included: one AppD could cut
			// the host off from the RAN.
			if f.empty() {
				return nil, fmt.Errorf("%s: constrains nothing (it would match every frame)", fp)
			}
			if err := expand(f, fp, uint32(no), act, r.Dest, &c.entries); err != nil {
				return nil, err
			}
		}
		if r.SetDSCP != nil {
			for e := first; e < len(c.entries); e++ {
				c.entries[e].SetDscp = uint8(*r.SetDSCP) + 1
			}
		}
	}
	return c, nil
}

// portRange is an inclusive range; any is {0, 65535}.
type portRange struct{ lo, hi uint16 }

func expand(f Filter, path string, no, act uint32, dest Dest, out *[]classifyRuleEntry) error {
	tunnel := f.TunnelType == "GTP_U" || len(f.Tag) > 0 || f.QCI != nil ||
		len(f.SrcTunnelAddress)+len(f.TgtTunnelAddress)+len(f.SrcTunnelPort)+len(f.DstTunnelPort) > 0
	if f.TunnelType != "" && f.TunnelType != "GTP_U" {
		return fmt.Errorf("%s.tunnelType: %q unsupported (only GTP_U)", path, f.TunnelType)
	}
	var base classifyRuleEntry
	base.Action, base.RuleNo, base.Ifindex = act, no, uint32(dest.Ifindex)
	copy(base.Dmac[:], dest.MAC)
	// The UE-facing fields go to the inner tuple of a G-PDU, else the outer.
	ue, ueBits := &base.Outer, [...]uint32{fOFamily, fOSrc, fODst, fOSport, fODport, fOProto, fOTos}
	if tunnel {
		base.Fields |= fGTPU
		ue, ueBits = &base.Inner, [...]uint32{fIFamily, fISrc, fIDst, fISport, fIDport, fIProto, fITos}
	}
	if len(f.Protocol) > 0 {
		base.Fields |= ueBits[5]
		for i, p := range f.Protocol {
			n, err := parseProto(p)
			if err != nil {
				return fmt.Errorf("%s.protocol[%d]: %w", path, i, err)
			}
			ue.ProtoBits[n/32] |= 1 << (n % 32)
		}
	}
	family := uint8(0)
	if f.DSCP != nil {
		if *f.DSCP < 0 || *f.DSCP > 63 {
			return fmt.Errorf("%s.dSCP: %d not in 0-63", path, *f.DSCP)
		}
		family, ue.TosVal, ue.TosMask = 4, uint8(*f.DSCP)<<2, 0xfc
		base.Fields |= ueBits[0] | ueBits[6]
	}
	if f.TC != nil {
		if f.DSCP != nil {
			return fmt.Errorf("%s.tC: dSCP (IPv4) and tC (IPv6) cannot both be set", path)
		}
		if *f.TC < 0 || *f.TC > 255 {
			return fmt.Errorf("%s.tC: %d not in 0-255", path, *f.TC)
		}
		family, ue.TosVal, ue.TosMask = 6, uint8(*f.TC), 0xff
		base.Fields |= ueBits[0] | ueBits[6]
	}
	ue.Family = family
	if f.QCI != nil {
		if *f.QCI < 0 || *f.QCI > 63 {
			return fmt.Errorf("%s.qCI: %d cannot match: it is matched against the QFI of the GTP-U PDU Session Container, 0-63", path, *f.QCI)
		}
		base.Fields |= fQFI
		base.Qfi = uint8(*f.QCI)
	}

	// Each dimension is a list of alternatives applied to a copy of the entry;
	// the cross product is the filter's entry list.
	entries := []classifyRuleEntry{base}
	cross := func(n int, apply func(e *classifyRuleEntry, i int) error) error {
		if n == 0 {
			return nil
		}
		next := make([]classifyRuleEntry, 0, len(entries)*n)
		for _, e := range entries {
			for i := 0; i < n; i++ {
				c := e
				if err := apply(&c, i); err != nil {
					return err
				}
				next = append(next, c)
			}
			if len(next)+len(*out) > MaxEntries {
				return fmt.Errorf("%s: expands past %d entries", path, MaxEntries)
			}
		}
		entries = next
		return nil
	}
	addrDim := func(field string, vals []string, outer bool, src bool) error {
		var pfx []netip.Prefix
		for i, v := range vals {
			p, err := parseAddr(v)
			if err != nil {
				return fmt.Errorf("%s.%s[%d]: %w", path, field, i, err)
			}
			pfx = append(pfx, p...)
		}
		return cross(len(pfx), func(e *classifyRuleEntry, i int) error {
			t, bits := &e.Inner, [...]uint32{fIFamily, fISrc, fIDst}
			if outer {
				t, bits = &e.Outer, [...]uint32{fOFamily, fOSrc, fODst}
			}
			fam := uint8(4)
			if pfx[i].Addr().Is6() {
				fam = 6
			}
			if t.Family != 0 && t.Family != fam {
				return fmt.Errorf("%s.%s: mixes IPv4 and IPv6 with another field", path, field)
			}
			t.Family = fam
			val, mask := prefixWords(pfx[i])
			if src {
				t.Src, t.SrcMask = val, mask
				e.Fields |= bits[0] | bits[1]
			} else {
				t.Dst, t.DstMask = val, mask
				e.Fields |= bits[0] | bits[2]
			}
			return nil
		})
	}
	portDim := func(field string, vals []string, outer, src bool) error {
		var rs []portRange
		for i, v := range vals {
			r, err := parsePorts(v)
			if err != nil {
				return fmt.Errorf("%s.%s[%d]: %w", path, field, i, err)
			}
			rs = append(rs, r)
		}
		return cross(len(rs), func(e *classifyRuleEntry, i int) error {
			t, bits := &e.Inner, [...]uint32{fISport, fIDport}
			if outer {
				t, bits = &e.Outer, [...]uint32{fOSport, fODport}
			}
			if src {
				t.SportLo, t.SportHi = rs[i].lo, rs[i].hi
				e.Fields |= bits[0]
			} else {
				t.DportLo, t.DportHi = rs[i].lo, rs[i].hi
				e.Fields |= bits[1]
			}
			return nil
		})
	}
	steps := []func() error{
		func() error { return addrDim("srcAddress", f.SrcAddress, !tunnel, true) },
		func() error { return addrDim("dstAddress", f.DstAddress, !tunnel, false) },
		func() error { return portDim("srcPort", f.SrcPort, !tunnel, true) },
		func() error { return portDim("dstPort", f.DstPort, !tunnel, false) },
		func() error { return addrDim("srcTunnelAddress", f.SrcTunnelAddress, true, true) },
		func() error { return addrDim("tgtTunnelAddress", f.TgtTunnelAddress, true, false) },
		func() error { return portDim("srcTunnelPort", f.SrcTunnelPort, true, true) },
		func() error { return portDim("dstTunnelPort", f.DstTunnelPort, true, false) },
		func() error {
			teids := make([]uint32, len(f.Tag))
			for i, t := range f.Tag {
				v, err := strconv.ParseUint(t, 0, 32)
				if err != nil || strings.HasPrefix(t, "0") && !strings.HasPrefix(t, "0x") && t != "0" {
					return fmt.Errorf("%s.tag[%d]: %q is not a TEID (decimal or 0x hex, 32 bits)", path, i, t)
				}
				teids[i] = uint32(v)
			}
			return cross(len(teids), func(e *classifyRuleEntry, i int) error {
				e.Teid = teids[i]
				e.Fields |= fTEID
				return nil
			})
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	*out = append(*out, entries...)
	return nil
}

// Field bits of rule_entry.fields (F_* in classify.h).
const (
	fOFamily uint32 = 1 << iota
	fOSrc
	fODst
	fOSport
	fODport
	fOProto
	fOTos
	fGTPU
	fTEID
	fQFI
	fIFamily
	fISrc
	fIDst
	fISport
	fIDport
	fIProto
	fITos
)

func parseProto(s string) (uint8, error) {
	switch strings.ToUpper(s) {
	case "ICMP":
		return 1, nil
	case "TCP":
		return 6, nil
	case "UDP":
		return 17, nil
	case "ICMPV6":
		return 58, nil
	case "SCTP":
		return 132, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("%q is not a protocol name (TCP, UDP, ICMP, ICMPV6, SCTP) or number 0-255", s)
	}
	return uint8(n), nil
}

func parsePorts(s string) (portRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	b := a
	var err2 error
	if isRange {
		b, err2 = strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	}
	if err1 != nil || err2 != nil || a > b {
		return portRange{}, fmt.Errorf("%q is not a port (0-65535) or range lo-hi", s)
	}
	return portRange{uint16(a), uint16(b)}, nil
}

// parseAddr accepts an address, a CIDR prefix or an inclusive "a-b" range and
// returns the prefixes covering it.
//
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) names an IPv4 host (RFC 4291
// §2.5.5.2) and never appears in an IPv6 header on the wire, so a filter
// that gives one means IPv4 packets: it is compiled as IPv4, a prefix /n (n
// >= 96) as the IPv4 /n-96. Kept as IPv6 it would silently match nothing. A
// mapped prefix shorter than /96 would span IPv4 and IPv6 space and is
// refused.
func parseAddr(s string) ([]netip.Prefix, error) {
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(strings.TrimSpace(lo))
		b, err2 := netip.ParseAddr(strings.TrimSpace(hi))
		a, b = a.Unmap(), b.Unmap()
		if err1 != nil || err2 != nil || a.Is4() != b.Is4() || b.Less(a) || a.Zone() != "" || b.Zone() != "" {
			return nil, fmt.Errorf("%q is not an address range a-b of one family, a <= b", s)
		}
		return rangePrefixes(a, b), nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix: %w", s, err)
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("%q: an IPv4-mapped prefix shorter than /96 spans IPv4 and IPv6 addresses", s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return []netip.Prefix{p.Masked()}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return nil, fmt.Errorf("%q is not an IP address, prefix or range", s)
	}
	a = a.Unmap()
	return []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}, nil
}

// rangePrefixes covers [a, b] with the fewest prefixes: at each step the
// largest aligned block starting at a that stays within b.
func rangePrefixes(a, b netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for {
		var p netip.Prefix
		for bits := 0; bits <= a.BitLen(); bits++ {
			p = netip.PrefixFrom(a, bits)
			if p.Masked().Addr() == a && !b.Less(lastAddr(p)) {
				break
			}
		}
		out = append(out, p)
		last := lastAddr(p)
		if last == b || !last.Next().IsValid() {
			return out
		}
		a = last.Next()
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// prefixWords lays a prefix out as classify.h wants it: 16 bytes read as
// host-order words (the C side copies header bytes into __u32 the same way),
// value pre-masked.
func prefixWords(p netip.Prefix) (val, mask [4]uint32) {
	var a, m [16]byte
	copy(a[:], p.Addr().AsSlice())
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	for w := 0; w < 4; w++ {
		mask[w] = binary.NativeEndian.Uint32(m[w*4:])
		val[w] = binary.NativeEndian.Uint32(a[w*4:]) & mask[w]
	}
	return val, mask
}

// empty reports whether f constrains nothing.
func (f Filter) empty() bool {
	return len(f.SrcAddress) == 0 && len(f.DstAddress) == 0 && len(f.SrcPort) == 0 && len(f.DstPort) == 0 &&
		len(f.Protocol) == 0 && len(f.Tag) == 0 && len(f.SrcTunnelAddress) == 0 && len(f.TgtTunnelAddress) == 0 &&
		len(f.SrcTunnelPort) == 0 && len(f.DstTunnelPort) == 0 && f.QCI == nil && f.DSCP == nil && f.TC == nil && f.TunnelType == ""
}
