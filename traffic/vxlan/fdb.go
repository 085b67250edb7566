package vxlan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	tnetns "github.com/mecorch/mecorch/traffic/netns"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Peer is another edge host reachable through the tunnel.
type Peer struct {
	// HostID names the host for logs and read-back; the kernel does not
	// keep it.
	HostID string
	// Underlay is the peer's underlay address: the outer destination.
	Underlay netip.Addr
}

// macLen is an Ethernet address's length. The default FDB entries are
// keyed by the all-zeros address of that length: frames whose destination
// has no entry of its own (broadcast, multicast, unknown unicast) are
// copied to every remote listed under it.
const macLen = 6

func isZeroMAC(m net.HardwareAddr) bool {
	return len(m) == macLen && !slices.ContainsFunc(m, func(b byte) bool { return b != 0 })
}

// checkPeers validates a whole set before anything is changed, so that a
// bad entry leaves the tunnel as it was.
func checkPeers(local netip.Addr, peers []Peer) (map[netip.Addr]string, error) {
	out := make(map[netip.Addr]string, len(peers))
	for i, p := range peers {
		a := p.Underlay.Unmap()
		switch {
		case !a.IsValid():
			return nil, fmt.Errorf("peer %d (%q): no underlay address", i, p.HostID)
		case a.Is4() != local.Is4():
			return nil, fmt.Errorf("peer %d (%q): %v is not of the local address %v's family", i, p.HostID, a, local)
		case a == local:
			return nil, fmt.Errorf("peer %d (%q): %v is this host's own address", i, p.HostID, a)
		case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || (a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255})):
			return nil, fmt.Errorf("peer %d (%q): %v is not a unicast address", i, p.HostID, a)
		}
		if prev, dup := out[a]; dup {
			return nil, fmt.Errorf("peer %d (%q): %v already given for %q", i, p.HostID, a, prev)
		}
		out[a] = p.HostID
	}
	return out, nil
}

// fdbEntry is the default FDB entry towards one remote, as `bridge fdb
// append 00:00:00:00:00:00 dev DEV dst ADDR` makes it: NTF_SELF puts it in
// the VXLAN device's own FDB, not in a bridge's it may be enslaved to.
func (t *Tunnel) fdbEntry(remote netip.Addr) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    t.index,
		Family:       unix.AF_BRIDGE,
		State:        netlink.NUD_PERMANENT | netlink.NUD_NOARP,
		Flags:        netlink.NTF_SELF,
		IP:           net.IP(remote.AsSlice()),
		HardwareAddr: make(net.HardwareAddr, macLen),
	}
}

// remotes reads the default entries' destinations from the kernel.
func (t *Tunnel) remotes(h *netlink.Handle) ([]netip.Addr, error) {
	ns, err := h.NeighList(t.index, unix.AF_BRIDGE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("vxlan %s: list FDB: %w", t.name, err)
	}
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		// A concurrent change made the dump inconsistent; one retry is
		// enough in practice, and a second failure is reported.
		if ns, err = h.NeighList(t.index, unix.AF_BRIDGE); err != nil {
			return nil, fmt.Errorf("vxlan %s: list FDB: %w", t.name, err)
		}
	}
	var out []netip.Addr
	for _, n := range ns {
		if n.LinkIndex != t.index || n.Flags&netlink.NTF_SELF == 0 || n.IP == nil {
			continue
		}
		if !isZeroMAC(n.HardwareAddr) {
			continue
		}
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		out = append(out, a.Unmap())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// SetPeers makes the tunnel's default FDB entries exactly one per peer:
// entries for new peers are appended, those for peers no longer listed are
// removed, and those for peers still listed are not touched, so their
// traffic never sees a gap. The whole set is checked first (addresses of
// the local address's family, not the local address, no duplicates); on a
// bad entry nothing changes. If the kernel refuses a change half way, the
// error says which, and a repeated SetPeers finishes the job.
func (t *Tunnel) SetPeers(peers []Peer) error {
	want, err := checkPeers(t.local, peers)
	if err != nil {
		return fmt.Errorf("vxlan %s: peer set refused: %w", t.name, err)
	}
	h, err := tnetns.Handle(t.nsPath)
	if err != nil {
		return fmt.Errorf("vxlan %s: %w", t.name, err)
	}
	defer h.Close()
	have, err := t.remotes(h)
	if err != nil {
		return err
	}
	// Add before removing: a peer replaced by another keeps the host
	// reachable to at least one of them throughout.
	for a := range want {
		if slices.Contains(have, a) {
			continue
		}
		if err := h.NeighAppend(t.fdbEntry(a)); err != nil {
			return fmt.Errorf("vxlan %s: add FDB entry for peer %q at %s: %w", t.name, want[a], a, err)
		}
	}
	for _, a := range have {
		if _, keep := want[a]; keep {
			continue
		}
		if err := h.NeighDel(t.fdbEntry(a)); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("vxlan %s: remove FDB entry for %s: %w", t.name, a, err)
		}
	}
	t.mu.Lock()
	t.hosts = want
	t.mu.Unlock()
	return nil
}

// Peers reads the peers back from the kernel's FDB, sorted by address.
// HostID is filled in from the last accepted SetPeers; entries someone
// else added have none.
func (t *Tunnel) Peers() ([]Peer, error) {
	h, err := tnetns.Handle(t.nsPath)
	if err != nil {
		return nil, fmt.Errorf("vxlan %s: %w", t.name, err)
	}
	defer h.Close()
	addrs, err := t.remotes(h)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Peer, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, Peer{HostID: t.hosts[a], Underlay: a})
	}
	return out, nil
}
