package runner

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/lab/topology"
	"github.com/mecorch/mecorch/traffic/netns"
)

// handleIn opens a netlink handle in the namespace mounted on path.
func handleIn(path string) (*netlink.Handle, error) {
	ns, err := netns.Open(path)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", path, err)
	}
	return h, nil
}

// setupNode brings up lo in a node's fresh namespace and, for a bridge
// node, makes its bridge.
func setupNode(path string, n *topology.Node) error {
	h, err := handleIn(path)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	if !isBridge(n) {
		return nil
	}
	name := bridgeName(n.Name)
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		return fmt.Errorf("add bridge %s: %w", name, err)
	}
	br, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("bridge %s up: %w", name, err)
	}
	return nil
}

// addVeth makes the pair of a plain link, each end created directly in
// its node's namespace under its own name, so that no name is ever taken
// in the runner's namespace.
func addVeth(pathA, pathB string, l *topology.Link) error {
	nsB, err := netns.Open(pathB)
	if err != nil {
		return err
	}
	defer nsB.Close()
	h, err := handleIn(pathA)
	if err != nil {
		return err
	}
	defer h.Close()
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: l.A.Iface, MTU: l.MTU},
		PeerName:      l.B.Iface,
		PeerNamespace: netlink.NsFd(int(nsB)),
	}
	if l.A.MAC != "" {
		v.HardwareAddr, _ = net.ParseMAC(l.A.MAC) // checked by validate
	}
	if l.B.MAC != "" {
		v.PeerHardwareAddr, _ = net.ParseMAC(l.B.MAC)
	}
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s:%s-%s:%s: %w", l.A.Node, l.A.Iface, l.B.Node, l.B.Iface, err)
	}
	return nil
}

// configureEndpoint makes one end of a link as the topology says: MAC,
// MTU, addresses, attached to the node's bridge (bridge is "" for a
// linux node), up.
func configureEndpoint(path string, e topology.Endpoint, mtu int, bridge string) error {
	h, err := handleIn(path)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(e.Iface)
	if err != nil {
		return fmt.Errorf("%s:%s: %w", e.Node, e.Iface, err)
	}
	if e.MAC != "" {
		mac, _ := net.ParseMAC(e.MAC)
		if l.Attrs().HardwareAddr.String() != mac.String() {
			// Not every driver changes its address while up.
			if err := h.LinkSetDown(l); err != nil {
				return fmt.Errorf("%s:%s down: %w", e.Node, e.Iface, err)
			}
			if err := h.LinkSetHardwareAddr(l, mac); err != nil {
				return fmt.Errorf("%s:%s mac %s: %w", e.Node, e.Iface, e.MAC, err)
			}
		}
	}
	if mtu > 0 && l.Attrs().MTU != mtu {
		if err := h.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("%s:%s mtu %d: %w", e.Node, e.Iface, mtu, err)
		}
	}
	if bridge != "" {
		br, err := h.LinkByName(bridge)
		if err != nil {
			return fmt.Errorf("bridge %s: %w", bridge, err)
		}
		if err := h.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("attach %s:%s to bridge: %w", e.Node, e.Iface, err)
		}
	}
	for _, p := range []netip.Prefix{e.Addr, e.Addr6} {
		if !p.IsValid() {
			continue
		}
		if err := h.AddrReplace(l, linkAddr(p)); err != nil {
			return fmt.Errorf("%s:%s address %s: %w", e.Node, e.Iface, p, err)
		}
	}
	// A wire carries complete checksums. veth's transmit offload would
	// leave the sender's TCP/UDP checksum partial, to be completed by a NIC
	// that never comes; a node that decapsulates and re-encapsulates on the
	// way (the edges' GTP-U steering) would pass the partial value on as
	// final. Software checksums make the lab's links behave like wires.
	if err := netns.Do(path, func() error { return netns.SetTxChecksum(e.Iface, false) }); err != nil {
		return fmt.Errorf("%s:%s: %w", e.Node, e.Iface, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s:%s up: %w", e.Node, e.Iface, err)
	}
	return nil
}

// linkAddr is p as a link address. IPv6 ones skip duplicate address
// detection: the addresses come from the topology, and DAD would keep
// them unusable for the first seconds of the lab.
func linkAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// Interface is one interface of a node as Status sees it.
type Interface struct {
	Name      string         `json:"name"`
	OperState string         `json:"operState"`
	MAC       string         `json:"mac,omitempty"`
	MTU       int            `json:"mtu"`
	Addrs     []netip.Prefix `json:"addrs,omitempty"`
}

// interfaces lists the links of the namespace on path, lo included, with
// their addresses.
func interfaces(path string) ([]Interface, error) {
	h, err := handleIn(path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	ls, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links in %s: %w", path, err)
	}
	var out []Interface
	for _, l := range ls {
		a := l.Attrs()
		it := Interface{Name: a.Name, OperState: a.OperState.String(), MTU: a.MTU}
		if len(a.HardwareAddr) > 0 {
			it.MAC = a.HardwareAddr.String()
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("addresses of %s in %s: %w", a.Name, path, err)
		}
		for _, ad := range addrs {
			ip, ok := netip.AddrFromSlice(ad.IP)
			if !ok {
				continue
			}
			ones, _ := ad.Mask.Size()
			it.Addrs = append(it.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
		}
		out = append(out, it)
	}
	return out, nil
}
