package netns

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MaxLinkName is the longest interface name the kernel takes (IFNAMSIZ-1).
const MaxLinkName = 15

// VethName derives a host-side link name from an id: the prefix (cut to 7
// bytes) and as many hex digits of the id's SHA-256 as fit in 15 bytes.
// The same id always gives the same name, so a restarted caller finds the
// links it made without having recorded their names.
func VethName(prefix, id string) string {
	if len(prefix) > 7 {
		prefix = prefix[:7]
	}
	sum := sha256.Sum256([]byte(id))
	return prefix + hex.EncodeToString(sum[:])[:MaxLinkName-len(prefix)]
}

// Handle opens a netlink handle in the namespace mounted on nsPath, or in
// the current one for an empty path. The caller closes it.
func Handle(nsPath string) (*netlink.Handle, error) {
	if nsPath == "" {
		h, err := netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("netlink handle: %w", err)
		}
		return h, nil
	}
	ns, err := Open(nsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", nsPath, err)
	}
	return h, nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// addr is p as a link address. IPv6 ones skip duplicate address detection:
// the addresses are allocated, and DAD would keep them unusable for a
// second or two after every start.
func addr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: ipNet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// EnsureBridge makes sure the namespace on nsPath ("" for the current one)
// has a bridge called name, holding the address gateway (address and
// prefix length, e.g. 10.200.0.1/24) and up. What is already right is left
// alone.
func EnsureBridge(nsPath, name string, gateway netip.Prefix) error {
	if !gateway.IsValid() {
		return fmt.Errorf("bridge %s: invalid gateway %v", name, gateway)
	}
	h, err := Handle(nsPath)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if isNotFound(err) {
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
			return fmt.Errorf("add bridge %s: %w", name, err)
		}
		l, err = h.LinkByName(name)
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if l.Type() != "bridge" {
		return fmt.Errorf("bridge %s: link exists with type %s", name, l.Type())
	}
	if err := h.AddrReplace(l, addr(gateway)); err != nil {
		return fmt.Errorf("address %s on bridge %s: %w", gateway, name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bridge %s up: %w", name, err)
	}
	return nil
}

// Veth is a veth pair between a bridge and another namespace.
type Veth struct {
	// HostNetns is the path of the namespace holding the bridge; empty
	// for the current one.
	HostNetns string
	Bridge    string
	// HostName is the bridge-side end's name (at most 15 bytes; see
	// VethName).
	HostName string
	// PeerNetns is the path of the namespace the other end goes to.
	PeerNetns string
	// PeerName is the other end's name there; eth0 if empty.
	PeerName string
	// Address is the peer's address with the subnet's prefix length.
	Address netip.Prefix
	// Gateway, if valid, becomes the peer namespace's default route.
	Gateway netip.Addr
}

// AddVeth creates the pair, attaches the host end to the bridge, moves the
// peer into its namespace with its address, brings up both ends and the
// peer namespace's lo, and routes the peer namespace's default traffic to
// the gateway. AddVeth can be repeated: a pair made before with the same
// names is kept (and its addresses and routes made right); anything else
// in the way under those names is replaced.
func AddVeth(v Veth) (err error) {
	if len(v.HostName) == 0 || len(v.HostName) > MaxLinkName {
		return fmt.Errorf("veth: host name %q must have 1 to %d bytes", v.HostName, MaxLinkName)
	}
	if !v.Address.IsValid() {
		return fmt.Errorf("veth %s: invalid address %v", v.HostName, v.Address)
	}
	if v.PeerName == "" {
		v.PeerName = "eth0"
	}
	h, err := Handle(v.HostNetns)
	if err != nil {
		return err
	}
	defer h.Close()
	br, err := h.LinkByName(v.Bridge)
	if err != nil {
		return fmt.Errorf("veth %s: bridge %s: %w", v.HostName, v.Bridge, err)
	}
	peerNS, err := Open(v.PeerNetns)
	if err != nil {
		return fmt.Errorf("veth %s: %w", v.HostName, err)
	}
	defer peerNS.Close()
	ph, err := netlink.NewHandleAt(peerNS)
	if err != nil {
		return fmt.Errorf("veth %s: netlink handle in %s: %w", v.HostName, v.PeerNetns, err)
	}
	defer ph.Close()
	if host, ok := existingPair(h, ph, v, br); ok {
		// Recreating a working pair would change both MAC addresses and
		// leave the neighbours' caches pointing at the old ones.
		if err := h.LinkSetUp(host); err != nil {
			return fmt.Errorf("veth %s up: %w", v.HostName, err)
		}
		return configurePeer(ph, v)
	}
	if err := delLink(h, v.HostName); err != nil {
		return err
	}
	// A peer left behind in the namespace (its pair was moved or renamed
	// by hand) would make the creation fail on the name.
	if err := delLink(ph, v.PeerName); err != nil {
		return err
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: v.HostName},
		PeerName:      v.PeerName,
		PeerNamespace: netlink.NsFd(int(peerNS)),
	}
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s: %w", v.HostName, err)
	}
	defer func() {
		if err != nil {
			_ = delLink(h, v.HostName)
		}
	}()
	host, err := h.LinkByName(v.HostName)
	if err != nil {
		return fmt.Errorf("veth %s: %w", v.HostName, err)
	}
	if err := h.LinkSetMaster(host, br); err != nil {
		return fmt.Errorf("attach veth %s to %s: %w", v.HostName, v.Bridge, err)
	}
	if err := h.LinkSetUp(host); err != nil {
		return fmt.Errorf("veth %s up: %w", v.HostName, err)
	}
	return configurePeer(ph, v)
}

// existingPair finds a pair made earlier with the same names: the host end
// a veth on the bridge, the peer a veth in the peer namespace, each the
// other's peer.
func existingPair(h, ph *netlink.Handle, v Veth, br netlink.Link) (netlink.Link, bool) {
	host, err := h.LinkByName(v.HostName)
	if err != nil || host.Type() != "veth" || host.Attrs().MasterIndex != br.Attrs().Index {
		return nil, false
	}
	peer, err := ph.LinkByName(v.PeerName)
	if err != nil || peer.Type() != "veth" {
		return nil, false
	}
	if host.Attrs().ParentIndex != peer.Attrs().Index || peer.Attrs().ParentIndex != host.Attrs().Index {
		return nil, false
	}
	return host, true
}

func configurePeer(ph *netlink.Handle, v Veth) error {
	lo, err := ph.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("peer netns lo: %w", err)
	}
	if err := ph.LinkSetUp(lo); err != nil {
		return fmt.Errorf("peer netns lo up: %w", err)
	}
	peer, err := ph.LinkByName(v.PeerName)
	if err != nil {
		return fmt.Errorf("veth peer %s: %w", v.PeerName, err)
	}
	if err := ph.AddrReplace(peer, addr(v.Address)); err != nil {
		return fmt.Errorf("address %s on %s: %w", v.Address, v.PeerName, err)
	}
	if err := ph.LinkSetUp(peer); err != nil {
		return fmt.Errorf("veth peer %s up: %w", v.PeerName, err)
	}
	if !v.Gateway.IsValid() {
		return nil
	}
	bits := v.Gateway.BitLen()
	def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if bits == 128 {
		def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	route := &netlink.Route{LinkIndex: peer.Attrs().Index, Dst: ipNet(def), Gw: v.Gateway.AsSlice()}
	if err := ph.RouteReplace(route); err != nil {
		return fmt.Errorf("default route via %s: %w", v.Gateway, err)
	}
	return nil
}

// DelVeth removes a link (and with a veth, its peer) from the namespace on
// nsPath ("" for the current one). A missing link is not an error.
func DelVeth(nsPath, name string) error {
	h, err := Handle(nsPath)
	if err != nil {
		return err
	}
	defer h.Close()
	return delLink(h, name)
}

func delLink(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := h.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// Links returns the names of the links in the namespace on nsPath ("" for
// the current one) that start with prefix and, unless linkType is empty,
// are of that type ("veth", "bridge", ...).
func Links(nsPath, prefix, linkType string) ([]string, error) {
	h, err := Handle(nsPath)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	ls, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []string
	for _, l := range ls {
		if strings.HasPrefix(l.Attrs().Name, prefix) && (linkType == "" || l.Type() == linkType) {
			out = append(out, l.Attrs().Name)
		}
	}
	return out, nil
}
