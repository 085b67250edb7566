package vxlan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	tnetns "github.com/mecorch/mecorch/traffic/netns"
)

// SetMACs makes the tunnel's unicast FDB entries exactly macs: each
// Ethernet address (as net.HardwareAddr.String gives it) is sent to the
// remote underlay address it maps to, instead of being copied to every
// peer by the default entries. Entries already right are not touched; the
// set is checked whole first, and on a bad entry nothing changes.
func (t *Tunnel) SetMACs(macs map[string]netip.Addr) error {
	want := make(map[string]netip.Addr, len(macs))
	for m, a := range macs {
		hw, err := net.ParseMAC(m)
		if err != nil || len(hw) != macLen || isZeroMAC(hw) || hw[0]&1 == 1 {
			return fmt.Errorf("vxlan %s: MAC set refused: %q is not a unicast Ethernet address", t.name, m)
		}
		a = a.Unmap()
		if !a.IsValid() || a.Is4() != t.local.Is4() || a == t.local || a.IsUnspecified() || a.IsMulticast() {
			return fmt.Errorf("vxlan %s: MAC set refused: %s: %v is not a remote unicast address of the local family", t.name, hw, a)
		}
		want[hw.String()] = a
	}
	h, err := tnetns.Handle(t.nsPath)
	if err != nil {
		return fmt.Errorf("vxlan %s: %w", t.name, err)
	}
	defer h.Close()
	have, err := t.macEntries(h)
	if err != nil {
		return err
	}
	for m, a := range want {
		if have[m] == a {
			continue
		}
		hw, _ := net.ParseMAC(m)
		e := &netlink.Neigh{LinkIndex: t.index, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT | netlink.NUD_NOARP,
			Flags: netlink.NTF_SELF, IP: net.IP(a.AsSlice()), HardwareAddr: hw}
		if err := h.NeighSet(e); err != nil {
			return fmt.Errorf("vxlan %s: FDB entry %s -> %s: %w", t.name, m, a, err)
		}
	}
	for m, a := range have {
		if _, keep := want[m]; keep {
			continue
		}
		hw, _ := net.ParseMAC(m)
		e := &netlink.Neigh{LinkIndex: t.index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, IP: net.IP(a.AsSlice()), HardwareAddr: hw}
		if err := h.NeighDel(e); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("vxlan %s: remove FDB entry %s: %w", t.name, m, err)
		}
	}
	return nil
}

// MACs reads the unicast FDB entries back (MAC -> remote underlay).
func (t *Tunnel) MACs() (map[string]netip.Addr, error) {
	h, err := tnetns.Handle(t.nsPath)
	if err != nil {
		return nil, fmt.Errorf("vxlan %s: %w", t.name, err)
	}
	defer h.Close()
	return t.macEntries(h)
}

// macEntries lists the device's own unicast FDB entries.
func (t *Tunnel) macEntries(h *netlink.Handle) (map[string]netip.Addr, error) {
	ns, err := h.NeighList(t.index, unix.AF_BRIDGE)
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		ns, err = h.NeighList(t.index, unix.AF_BRIDGE)
	}
	if err != nil {
		return nil, fmt.Errorf("vxlan %s: list FDB: %w", t.name, err)
	}
	out := map[string]netip.Addr{}
	for _, n := range ns {
		if n.LinkIndex != t.index || n.Flags&netlink.NTF_SELF == 0 || n.IP == nil || isZeroMAC(n.HardwareAddr) {
			continue
		}
		if a, ok := netip.AddrFromSlice(n.IP); ok {
			out[n.HardwareAddr.String()] = a.Unmap()
		}
	}
	return out, nil
}
