package appd

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

func (c *checker) trafficRules(rules []TrafficRuleDescriptor) {
	seen := map[string]string{}
	for i := range rules {
		p := indexPath("appTrafficRule", i)
		c.trafficRule(p, &rules[i])
		c.unique(seen, p+".trafficRuleId", rules[i].TrafficRuleID)
	}
}

func (c *checker) trafficRule(p string, r *TrafficRuleDescriptor) {
	c.required(p+".trafficRuleId", r.TrafficRuleID)
	c.oneOf(p+".filterType", string(r.FilterType), string(FilterFlow), string(FilterPacket))
	switch {
	case r.Priority == nil:
		c.add(p+".priority", "is required")
	case *r.Priority < 0 || *r.Priority > 255:
		c.add(p+".priority", "%d is outside 0..255", *r.Priority)
	}
	if len(r.TrafficFilter) == 0 {
		c.add(p+".trafficFilter", "is required (at least one filter)")
	}
	for i := range r.TrafficFilter {
		c.trafficFilter(indexPath(p+".trafficFilter", i), &r.TrafficFilter[i])
	}
	action := r.Action.Canonical()
	if c.required(p+".action", string(r.Action)) && !action.Valid() {
		c.add(p+".action", "%q is not one of DROP, FORWARD_DECAPSULATED, FORWARD_ENCAPSULATED, PASSTHROUGH, DUPLICATE_DECAPSULATED, DUPLICATE_ENCAPSULATED", r.Action)
	}
	if r.XDSCP != nil {
		switch {
		case *r.XDSCP < 0 || *r.XDSCP > 63:
			c.add(p+".x-mecorch-dscp", "%d is outside 0..63", *r.XDSCP)
		case action == ActionDrop:
			c.add(p+".x-mecorch-dscp", "must be absent when action is DROP (a dropped packet has no DSCP)")
		}
	}
	// The spec asks for one interface with FORWARD_* and PASSTHROUGH and two
	// with DUPLICATE_*. We tolerate none (the platform then steers to the
	// app instance itself) but refuse too many, one for a duplicate action,
	// and any for DROP.
	n := len(r.DstInterface)
	switch max := action.maxInterfaces(); {
	case max < 0:
	case action == ActionDrop && n > 0:
		c.add(p+".dstInterface", "must be absent when action is DROP")
	case n > max:
		c.add(p+".dstInterface", "has %d interfaces; action %s takes %d", n, action, max)
	case max == 2 && n == 1:
		c.add(p+".dstInterface", "action %s needs two interfaces (client side, then core network side)", action)
	}
	for i := range r.DstInterface {
		ip := p + ".dstInterface"
		if n > 1 {
			ip = indexPath(ip, i)
		}
		c.iface(ip, &r.DstInterface[i])
	}
}

func (c *checker) trafficFilter(p string, f *TrafficFilter) {
	for _, l := range []struct {
		name string
		vals []string
	}{{"srcAddress", f.SrcAddress}, {"dstAddress", f.DstAddress}, {"srcTunnelAddress", f.SrcTunnelAddress}, {"tgtTunnelAddress", f.TgtTunnelAddress}} {
		for i, v := range l.vals {
			if err := checkAddressSpec(v); err != nil {
				c.add(indexPath(p+"."+l.name, i), "%v", err)
			}
		}
	}
	for _, l := range []struct {
		name string
		vals []string
	}{{"srcPort", f.SrcPort}, {"dstPort", f.DstPort}, {"srcTunnelPort", f.SrcTunnelPort}, {"dstTunnelPort", f.DstTunnelPort}} {
		for i, v := range l.vals {
			if err := checkPortSpec(v); err != nil {
				c.add(indexPath(p+"."+l.name, i), "%v", err)
			}
		}
	}
	for i, v := range f.Protocol {
		if err := checkProtocol(v); err != nil {
			c.add(indexPath(p+".protocol", i), "%v", err)
		}
	}
	c.intRange(p+".qCI", f.QCI, 1, 255)
	c.intRange(p+".dSCP", f.DSCP, 0, 63)
	c.intRange(p+".tC", f.TC, 0, 255)
}

func (c *checker) intRange(p string, v *int64, lo, hi int64) {
	if v != nil && (*v < lo || *v > hi) {
		c.add(p, "%d is outside %d..%d", *v, lo, hi)
	}
}

func (c *checker) iface(p string, d *InterfaceDescriptor) {
	c.oneOf(p+".interfaceType", string(d.InterfaceType), string(InterfaceTunnel), string(InterfaceMAC), string(InterfaceIP))
	switch d.InterfaceType {
	case InterfaceTunnel:
		if d.TunnelInfo == nil {
			c.add(p+".tunnelInfo", "is required when interfaceType is TUNNEL")
		}
	case InterfaceMAC:
		c.required(p+".dstMACAddress", d.DstMACAddress)
	case InterfaceIP:
		c.required(p+".dstIPAddress", d.DstIPAddress)
	}
	if d.TunnelInfo != nil {
		if d.InterfaceType != InterfaceTunnel {
			c.add(p+".tunnelInfo", "is only allowed when interfaceType is TUNNEL")
		}
		c.tunnel(p+".tunnelInfo", d.TunnelInfo)
	}
	for _, m := range []struct{ name, v string }{{"srcMACAddress", d.SrcMACAddress}, {"dstMACAddress", d.DstMACAddress}} {
		if m.v == "" {
			continue
		}
		if hw, err := net.ParseMAC(m.v); err != nil || len(hw) != 6 {
			c.add(p+"."+m.name, "%q is not a MAC address", m.v)
		}
	}
	if d.DstIPAddress != "" {
		if _, err := parseIP(d.DstIPAddress); err != nil {
			c.add(p+".dstIPAddress", "%v", err)
		}
	}
}

func (c *checker) tunnel(p string, t *TunnelInfo) {
	if c.required(p+".tunnelType", string(t.TunnelType)) {
		switch t.TunnelType.Canonical() {
		case TunnelGTPU, TunnelGRE:
		default:
			c.add(p+".tunnelType", "%q is not one of GTP_U (or GTP-U), GRE", t.TunnelType)
		}
	}
	var addrs [2]netip.Addr
	for i, a := range []struct{ name, v string }{{"tunnelDstAddress", t.TunnelDstAddress}, {"tunnelSrcAddress", t.TunnelSrcAddress}} {
		if !c.required(p+"."+a.name, a.v) {
			continue
		}
		ip, err := parseIP(a.v)
		if err != nil {
			c.add(p+"."+a.name, "%v", err)
			continue
		}
		addrs[i] = ip
	}
	if addrs[0].IsValid() && addrs[1].IsValid() && addrs[0].Is4() != addrs[1].Is4() {
		c.add(p+".tunnelSrcAddress", "is not of the same address family as tunnelDstAddress")
	}
}

func (c *checker) dnsRules(rules []DNSRuleDescriptor) {
	seen := map[string]string{}
	for i := range rules {
		r := &rules[i]
		p := indexPath("appDNSRule", i)
		c.required(p+".dnsRuleId", r.DNSRuleID)
		c.unique(seen, p+".dnsRuleId", r.DNSRuleID)
		if c.required(p+".domainName", r.DomainName) {
			if err := checkDomainName(r.DomainName); err != nil {
				c.add(p+".domainName", "%v", err)
			}
		}
		c.oneOf(p+".ipAddressType", string(r.IPAddressType), string(IPv4), string(IPv6))
		if c.required(p+".ipAddress", r.IPAddress) {
			ip, err := parseIP(r.IPAddress)
			switch {
			case err != nil:
				c.add(p+".ipAddress", "%v", err)
			case r.IPAddressType == IPv4 && !ip.Is4(), r.IPAddressType == IPv6 && ip.Is4():
				c.add(p+".ipAddress", "%s does not match ipAddressType %s", r.IPAddress, r.IPAddressType)
			}
		}
		// RFC 2181: a TTL is an unsigned 31-bit number of seconds.
		c.intRange(p+".ttl", r.TTL, 0, 1<<31-1)
	}
}

// parseIP accepts an IPv4 or IPv6 address without zone; an IPv4-mapped IPv6
// address counts as IPv4.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return ip.Unmap(), nil
}

// checkAddressSpec accepts what TrafficFilter's description allows: an
// address, a prefix (a/len, or a/dotted-mask for IPv4) or a range of either
// (a-b, same family, a <= b).
func checkAddressSpec(s string) error {
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, err := addrOrPrefix(lo)
		if err != nil {
			return err
		}
		b, err := addrOrPrefix(hi)
		if err != nil {
			return err
		}
		if a.Addr().Is4() != b.Addr().Is4() {
			return fmt.Errorf("range %q mixes IPv4 and IPv6", s)
		}
		if b.Addr().Less(a.Addr()) {
			return fmt.Errorf("range %q ends before it starts", s)
		}
		return nil
	}
	_, err := addrOrPrefix(s)
	return err
}

func addrOrPrefix(s string) (netip.Prefix, error) {
	addr, mask, hasMask := strings.Cut(s, "/")
	ip, err := parseIP(addr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or prefix", s)
	}
	if !hasMask {
		return netip.PrefixFrom(ip, ip.BitLen()), nil
	}
	bits, err := strconv.Atoi(mask)
	if err != nil && ip.Is4() {
		bits, err = dottedMaskBits(mask)
	}
	if err != nil || bits < 0 || bits > ip.BitLen() || strings.HasPrefix(mask, "+") {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or prefix", s)
	}
	return netip.PrefixFrom(ip, bits), nil
}

func dottedMaskBits(s string) (int, error) {
	m, err := netip.ParseAddr(s)
	if err != nil || !m.Is4() {
		return 0, errors.New("not a mask")
	}
	b := m.As4()
	ones, size := net.IPv4Mask(b[0], b[1], b[2], b[3]).Size()
	if size == 0 {
		return 0, errors.New("mask is not contiguous")
	}
	return ones, nil
}

// checkPortSpec accepts a port or a range lo-hi within 0..65535.
func checkPortSpec(s string) error {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := parsePort(lo)
	if err != nil {
		return fmt.Errorf("%q is not a port or port range (0..65535)", s)
	}
	if !isRange {
		return nil
	}
	b, err := parsePort(hi)
	if err != nil {
		return fmt.Errorf("%q is not a port or port range (0..65535)", s)
	}
	if b < a {
		return fmt.Errorf("port range %q ends before it starts", s)
	}
	return nil
}

func parsePort(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("not a number")
	}
	p, err := strconv.Atoi(s)
	if err != nil || p > 65535 {
		return 0, errors.New("out of range")
	}
	return p, nil
}

// checkProtocol accepts an IP protocol number or a common name; the spec
// leaves the format open.
func checkProtocol(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 255 {
			return fmt.Errorf("protocol number %d is outside 0..255", n)
		}
		return nil
	}
	switch strings.ToUpper(s) {
	case "TCP", "UDP", "SCTP", "ICMP", "ICMPV6", "IPV6-ICMP", "GRE", "ESP", "AH", "ANY":
		return nil
	}
	return fmt.Errorf("%q is not a protocol number or one of TCP, UDP, SCTP, ICMP, ICMPV6, GRE, ESP, AH, ANY", s)
}

// checkDomainName accepts a DNS name of letters, digits, hyphens and
// underscores (service labels), with an optional trailing dot and an
// optional leading "*" wildcard label.
func checkDomainName(s string) error {
	name := strings.TrimSuffix(s, ".")
	if len(name) == 0 || len(name) > 253 {
		return fmt.Errorf("%q is not a domain name (1..253 characters)", s)
	}
	for i, label := range strings.Split(name, ".") {
		if label == "*" && i == 0 {
			continue
		}
		if len(label) == 0 || len(label) > 63 {
			return fmt.Errorf("%q is not a domain name: labels are 1..63 characters", s)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a domain name: a label starts or ends with '-'", s)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("%q is not a domain name: %q is not allowed", s, r)
			}
		}
	}
	return nil
}
