package topology

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	briefLinkKeys = []string{"endpoints", "ipv4", "ipv6", "mtu", "vars"}
	vethLinkKeys  = []string{"type", "endpoints", "ipv4", "ipv6", "mtu", "vars", "labels"}
	endpointKeys  = []string{"node", "interface", "mac", "ipv4", "ipv6"}
	// containerlab's other link types, and the pseudo-nodes of its brief
	// form that stand for them.
	clabLinkTypes   = set("veth-stitched", "mgmt-net", "macvlan", "macvtap", "host", "vxlan", "vxlan-stitched", "dummy")
	clabPseudoNodes = set("host", "mgmt-net", "macvlan", "macvtap")
)

// linkState is what links are checked against across the whole file.
type linkState struct {
	used  map[[2]string]*yaml.Node // node, interface
	addrs map[netip.Addr]*yaml.Node
}

func (p *parser) links(t *Topology, n *yaml.Node) {
	items, _ := p.sequence(n, "topology.links")
	st := &linkState{used: map[[2]string]*yaml.Node{}, addrs: map[netip.Addr]*yaml.Node{}}
	for i, it := range items {
		if l := p.link(t, st, it, index("topology.links", i)); l != nil {
			t.Links = append(t.Links, l)
		}
	}
}

// rawEndpoint is an endpoint before checks, with where it was written.
type rawEndpoint struct {
	Endpoint
	at           *yaml.Node
	path         string
	addr4, addr6 *yaml.Node // endpoint-level addresses (extended form)
}

func (p *parser) link(t *Topology, st *linkState, n *yaml.Node, path string) *Link {
	entries, ok := p.mapping(n, path)
	if !ok {
		return nil
	}
	l := &Link{Line: n.Line}
	extended := false
	for _, e := range entries {
		if e.name != "type" {
			continue
		}
		typ, ok := p.str(e.val, join(path, "type"))
		switch {
		case !ok:
			return nil
		case typ == "veth":
			extended = true
		case clabLinkTypes[typ]:
			p.add(e.key, join(path, "type"), "link type %q is not supported by the netns runner (only veth)", typ)
			return nil
		default:
			p.add(e.key, join(path, "type"), "unknown link type %q", typ)
			return nil
		}
	}
	var eps []rawEndpoint
	var epsKey *yaml.Node
	var v4, v6 *entry
	for _, e := range entries {
		fp := join(path, e.name)
		switch e.name {
		case "type":
		case "endpoints":
			epsKey = e.key
			eps = p.endpoints(e.val, fp, extended)
		case "ipv4":
			v4 = &e
		case "ipv6":
			v6 = &e
		case "mtu":
			if m, ok := p.integer(e.val, fp); ok {
				if m < 68 || m > 65535 {
					p.add(e.key, fp, "mtu %d is out of range (68-65535)", m)
				}
				l.MTU = int(m)
			}
		case "vars":
			l.AtoB, l.BtoA = p.impairments(e.val, fp)
		case "labels":
			if extended {
				l.Labels, _ = p.strMap(e.val, fp)
				break
			}
			p.add(e.key, fp, "labels need the extended link form (type: veth)")
		default:
			accepted := briefLinkKeys
			if extended {
				accepted = vethLinkKeys
			}
			p.unknown(e, path, nil, accepted)
		}
	}
	if epsKey == nil {
		p.add(n, path, "the link has no endpoints")
		return nil
	}
	if len(eps) != 2 {
		if eps != nil {
			p.add(epsKey, join(path, "endpoints"), "a link has 2 endpoints, not %d", len(eps))
		}
		return nil
	}
	for i := range eps {
		p.endpoint(t, st, &eps[i])
	}
	p.addresses(path, eps, v4, v6, st)
	l.A, l.B = eps[0].Endpoint, eps[1].Endpoint
	return l
}

func (p *parser) endpoints(n *yaml.Node, path string, extended bool) []rawEndpoint {
	items, ok := p.sequence(n, path)
	if !ok {
		return nil
	}
	eps := make([]rawEndpoint, 0, len(items))
	for i, it := range items {
		ip := index(path, i)
		ep := rawEndpoint{at: it, path: ip}
		if !extended {
			if it.Kind == yaml.MappingNode {
				p.add(it, ip, "endpoints given as mappings need the extended link form (type: veth)")
				return nil
			}
			s, ok := p.str(it, ip)
			if !ok {
				return nil
			}
			node, iface, found := strings.Cut(s, ":")
			if !found || node == "" || iface == "" {
				p.add(it, ip, "endpoint %q is not \"node:interface\"", s)
				return nil
			}
			ep.Node, ep.Iface = node, iface
			eps = append(eps, ep)
			continue
		}
		entries, ok := p.mapping(it, ip)
		if !ok {
			return nil
		}
		var hasNode, hasIface bool
		for _, e := range entries {
			fp := join(ip, e.name)
			switch e.name {
			case "node":
				ep.Node, _ = p.str(e.val, fp)
				hasNode = true
			case "interface":
				ep.Iface, _ = p.str(e.val, fp)
				hasIface = true
			case "mac":
				mac, _ := p.str(e.val, fp)
				if hw, err := net.ParseMAC(mac); err != nil || len(hw) != 6 {
					p.add(e.key, fp, "%q is not a MAC address (aa:bb:cc:dd:ee:ff)", mac)
				} else if hw[0]&1 != 0 {
					p.add(e.key, fp, "%s is a multicast address", mac)
				} else {
					ep.MAC = hw.String()
				}
			case "ipv4":
				ep.addr4 = e.val
			case "ipv6":
				ep.addr6 = e.val
			case "vars":
				p.add(e.key, fp, "endpoint vars are not read by the netns runner: put impairments in the link's vars (a-to-b, b-to-a)")
			default:
				p.unknown(e, ip, nil, endpointKeys)
			}
		}
		if !hasNode || !hasIface {
			p.add(it, ip, "an endpoint needs node and interface")
			return nil
		}
		eps = append(eps, ep)
	}
	return eps
}

func (p *parser) endpoint(t *Topology, st *linkState, ep *rawEndpoint) {
	node := t.Node(ep.Node)
	switch {
	case node == nil && clabPseudoNodes[ep.Node]:
		p.add(ep.at, ep.path, "%s links are not supported by the netns runner", ep.Node)
		return
	case node == nil:
		p.add(ep.at, ep.path, "no node %q in topology.nodes", ep.Node)
		return
	}
	if msg := ifaceProblem(ep.Iface); msg != "" {
		p.add(ep.at, ep.path, "interface %q: %s", ep.Iface, msg)
		return
	}
	if node.Kind == KindLinux && ep.Iface == "eth0" {
		p.add(ep.at, ep.path, "eth0 is containerlab's management interface: use eth1 and up")
		return
	}
	key, what := [2]string{ep.Node, ep.Iface}, ep.Node+":"+ep.Iface
	if node.Kind == KindBridge {
		// A bridge's ports live in the host's namespace, all bridges' together.
		key, what = [2]string{"", ep.Iface}, "bridge port "+ep.Iface
	}
	if first, dup := st.used[key]; dup {
		p.add(ep.at, ep.path, "%s is already used by the link at line %d", what, first.Line)
		return
	}
	st.used[key] = ep.at
}

// ifaceProblem says what the kernel would refuse in an interface name.
func ifaceProblem(name string) string {
	switch {
	case name == "":
		return "empty interface name"
	case len(name) > 15:
		return fmt.Sprintf("longer than 15 bytes (%d)", len(name))
	case name == "." || name == "..":
		return "not a valid interface name"
	case strings.ContainsAny(name, "/:"):
		return "no '/' or ':' in interface names"
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c == 0x7f {
			return "no whitespace or control characters in interface names"
		}
	}
	// Narrower than the kernel: names go into the shell commands
	// NetemCommands prints, so nothing a shell would read as syntax.
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-@", c)
		if !ok {
			return fmt.Sprintf("%q: interface names take letters, digits and . _ - @ only", c)
		}
	}
	return ""
}

// addresses fills the endpoints' addresses from the link's ipv4/ipv6
// lists (one entry per endpoint, "" for none) or the extended form's
// per-endpoint ipv4/ipv6.
func (p *parser) addresses(path string, eps []rawEndpoint, v4, v6 *entry, st *linkState) {
	for _, fam := range []struct {
		name  string
		list  *entry
		want4 bool
	}{{"ipv4", v4, true}, {"ipv6", v6, false}} {
		var vals [2]*yaml.Node
		if fam.list != nil {
			fp := join(path, fam.name)
			items, ok := p.sequence(fam.list.val, fp)
			if !ok {
				continue
			}
			if len(items) != 2 {
				p.add(fam.list.key, fp, "%s lists one prefix per endpoint (2, \"\" for none), not %d", fam.name, len(items))
				continue
			}
			vals = [2]*yaml.Node{items[0], items[1]}
		}
		for i := range eps {
			own := eps[i].addr4
			if !fam.want4 {
				own = eps[i].addr6
			}
			if own != nil {
				if vals[i] != nil && !isEmptyStr(vals[i]) {
					p.add(own, join(eps[i].path, fam.name), "the address is also given in the link's %s list", fam.name)
					continue
				}
				vals[i] = own
			}
			if vals[i] == nil {
				continue
			}
			fp := join(eps[i].path, fam.name)
			s, ok := p.str(vals[i], fp)
			if !ok || s == "" {
				continue
			}
			pfx, err := netip.ParsePrefix(s)
			switch {
			case err != nil:
				p.add(vals[i], fp, "%q is not an address with a prefix length (10.0.0.1/30, 2001:db8::1/64)", s)
			case pfx.Addr().Is4() != fam.want4 || pfx.Addr().Is4In6():
				p.add(vals[i], fp, "%q is not an %s prefix", s, fam.name)
			case pfx.Addr().IsUnspecified() || pfx.Addr().IsMulticast() || pfx.Addr().IsLoopback():
				p.add(vals[i], fp, "%s cannot be an interface address", pfx.Addr())
			default:
				if first, dup := st.addrs[pfx.Addr()]; dup {
					p.add(vals[i], fp, "address %s is already used at line %d", pfx.Addr(), first.Line)
					continue
				}
				st.addrs[pfx.Addr()] = vals[i]
				if fam.want4 {
					eps[i].Addr = pfx
				} else {
					eps[i].Addr6 = pfx
				}
			}
		}
	}
}

func isEmptyStr(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Value == "" }
