// Package vxlan keeps one VXLAN device per edge host that carries overlay
// traffic to the other edge hosts (its peers) over the operator's underlay.
// Peers are reached by head-end replication: one all-zeros FDB entry per
// peer, so broadcast, unknown unicast and multicast frames are copied to
// every peer, and no multicast routing is needed in the underlay.
//
// Everything goes through netlink; nothing shells out to ip(8) or
// bridge(8). The package knows nothing of apps or sites: it takes
// addresses, a VNI and namespace paths.
package vxlan

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"

	tnetns "github.com/mecorch/mecorch/traffic/netns"
)

const (
	// DefaultName is the device's name when Config.Name is empty.
	DefaultName = "mecvx0"
	// DefaultPort is the IANA VXLAN port (RFC 7348). The kernel's own
	// default is 8472, the pre-standard Linux port, so a device created
	// without an explicit port cannot talk to any other VTEP (or to a
	// VXLAN device made by us on another host running another kernel
	// default); the port is therefore always sent on creation.
	DefaultPort = 4789
	// maxVNI is the largest 24-bit VNI.
	maxVNI = 1<<24 - 1
	// overhead4 and overhead6 are what VXLAN encapsulation adds on an IPv4
	// or IPv6 underlay: outer Ethernet is not counted (it is the underlay
	// link's own), outer IP (20 or 40) + UDP (8) + VXLAN (8) + inner
	// Ethernet (14).
	overhead4 = 50
	overhead6 = 70
	// fallbackMTU is assumed for the underlay when no link can be found for
	// it (Local not yet assigned and no Underlay named).
	fallbackMTU = 1500
)

// Config describes the host's VXLAN device.
type Config struct {
	// Name of the device; DefaultName if empty (at most 15 bytes).
	Name string
	// VNI is the VXLAN network identifier, 1 to 2^24-1. Zero is refused:
	// it is far more likely a forgotten field than a chosen segment.
	VNI uint32
	// Port is the UDP destination port; DefaultPort if zero.
	Port int
	// Local is the host's underlay address, the outer source address.
	Local netip.Addr
	// Underlay is the parent link's name; optional. When set, the device
	// is bound to it and its MTU is the default's base.
	Underlay string
	// MTU of the device; if zero, the underlay's MTU minus the
	// encapsulation overhead (50 bytes on IPv4, 70 on IPv6).
	MTU int
	// Learning lets the kernel learn remote MACs from received frames.
	// Off by default: the orchestrator knows where things are, and learned
	// entries would outlive moves and hide a broken peer set.
	Learning bool
	// Bridge, if set, is the bridge the device is enslaved to. If empty,
	// the device is taken off any bridge it is on.
	Bridge string
	// Logger receives the reasons a device was replaced; nil discards.
	Logger *slog.Logger
}

// Tunnel is a VXLAN device that Ensure made or adopted.
type Tunnel struct {
	nsPath string
	name   string
	index  int
	vni    uint32
	port   int
	local  netip.Addr
	log    *slog.Logger

	// mu guards hosts: which HostID the last accepted SetPeers gave each
	// underlay address. The kernel keeps only addresses, so Peers puts the
	// IDs back from here.
	mu    sync.Mutex
	hosts map[netip.Addr]string
}

// Name is the device's name.
func (t *Tunnel) Name() string { return t.name }

// Index is the device's interface index in its namespace.
func (t *Tunnel) Index() int { return t.index }

// withDefaults fills in the defaults and checks what cannot be right.
func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if len(c.Name) > tnetns.MaxLinkName {
		return c, fmt.Errorf("vxlan name %q: longer than %d bytes", c.Name, tnetns.MaxLinkName)
	}
	if c.VNI == 0 || c.VNI > maxVNI {
		return c, fmt.Errorf("vxlan %s: VNI %d outside 1..%d", c.Name, c.VNI, maxVNI)
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Port < 1 || c.Port > 65535 {
		return c, fmt.Errorf("vxlan %s: port %d outside 1..65535", c.Name, c.Port)
	}
	if !c.Local.IsValid() || c.Local.IsUnspecified() || c.Local.IsMulticast() {
		return c, fmt.Errorf("vxlan %s: local address %v is not a unicast address", c.Name, c.Local)
	}
	c.Local = c.Local.Unmap()
	if c.MTU < 0 {
		return c, fmt.Errorf("vxlan %s: negative MTU %d", c.Name, c.MTU)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// Ensure makes the namespace on nsPath ("" for the current one) hold the
// VXLAN device cfg describes, up, and on cfg.Bridge if one is named. A
// device already there with the same VNI, port, local address, underlay
// and learning setting is kept, with its FDB, so that repeating Ensure
// does not interrupt traffic; its MTU and bridge are corrected in place.
// Any other link under that name is deleted and recreated, and the reason
// is logged: a replaced device starts with an empty FDB, so the caller
// must call SetPeers again.
func Ensure(nsPath string, cfg Config) (*Tunnel, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h, err := tnetns.Handle(nsPath)
	if err != nil {
		return nil, fmt.Errorf("vxlan %s: %w", cfg.Name, err)
	}
	defer h.Close()

	parent, mtu, err := underlay(h, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.MTU == 0 {
		cfg.MTU = mtu
	}

	link, err := h.LinkByName(cfg.Name)
	switch {
	case isNotFound(err):
		link = nil
	case err != nil:
		return nil, fmt.Errorf("vxlan %s: look up: %w", cfg.Name, err)
	}
	if link != nil {
		if why := mismatch(link, cfg, parent); why != "" {
			cfg.Logger.Info("replacing vxlan device", "name", cfg.Name, "netns", nsPath, "reason", why)
			if err := h.LinkDel(link); err != nil && !isNotFound(err) {
				return nil, fmt.Errorf("vxlan %s: delete to replace (%s): %w", cfg.Name, why, err)
			}
			link = nil
		}
	}
	if link == nil {
		if link, err = create(h, cfg, parent); err != nil {
			return nil, err
		}
	}
	if link.Attrs().MTU != cfg.MTU {
		if err := h.LinkSetMTU(link, cfg.MTU); err != nil {
			return nil, fmt.Errorf("vxlan %s: set MTU %d: %w", cfg.Name, cfg.MTU, err)
		}
	}
	if err := setMaster(h, link, cfg.Bridge); err != nil {
		return nil, err
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("vxlan %s: up: %w", cfg.Name, err)
	}
	return &Tunnel{
		nsPath: nsPath,
		name:   cfg.Name,
		index:  link.Attrs().Index,
		vni:    cfg.VNI,
		port:   cfg.Port,
		local:  cfg.Local,
		log:    cfg.Logger,
		hosts:  map[netip.Addr]string{},
	}, nil
}

// underlay finds the parent link (nil if none is named) and the MTU the
// device gets by default: the parent's, or that of the link holding Local,
// less the encapsulation overhead.
func underlay(h *netlink.Handle, cfg Config) (netlink.Link, int, error) {
	overhead := overhead4
	if cfg.Local.Is6() {
		overhead = overhead6
	}
	if cfg.Underlay != "" {
		p, err := h.LinkByName(cfg.Underlay)
		if err != nil {
			return nil, 0, fmt.Errorf("vxlan %s: underlay %s: %w", cfg.Name, cfg.Underlay, err)
		}
		return p, p.Attrs().MTU - overhead, nil
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, 0, fmt.Errorf("vxlan %s: list addresses: %w", cfg.Name, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.Unmap() != cfg.Local {
			continue
		}
		l, err := h.LinkByIndex(a.LinkIndex)
		if err != nil {
			return nil, 0, fmt.Errorf("vxlan %s: link holding %s: %w", cfg.Name, cfg.Local, err)
		}
		return nil, l.Attrs().MTU - overhead, nil
	}
	// Local may be assigned after the tunnel is made (the agent may start
	// before the underlay is configured); Ethernet's MTU is the safe guess.
	return nil, fallbackMTU - overhead, nil
}

// mismatch says why an existing link cannot be kept as the device cfg
// describes, or "" if it can. Only what needs a new device counts: MTU
// and bridge are fixed in place.
func mismatch(link netlink.Link, cfg Config, parent netlink.Link) string {
	vx, ok := link.(*netlink.Vxlan)
	if !ok {
		return fmt.Sprintf("link %s is a %s, not a vxlan", cfg.Name, link.Type())
	}
	var diffs []string
	if vx.FlowBased {
		diffs = append(diffs, "is flow-based (external), not a single-VNI device")
	}
	if uint32(vx.VxlanId) != cfg.VNI {
		diffs = append(diffs, fmt.Sprintf("VNI %d, want %d", vx.VxlanId, cfg.VNI))
	}
	if vx.Port != cfg.Port {
		diffs = append(diffs, fmt.Sprintf("port %d, want %d", vx.Port, cfg.Port))
	}
	local, _ := netip.AddrFromSlice(vx.SrcAddr)
	if local.Unmap() != cfg.Local {
		diffs = append(diffs, fmt.Sprintf("local %v, want %v", local.Unmap(), cfg.Local))
	}
	want := 0
	if parent != nil {
		want = parent.Attrs().Index
	}
	if vx.VtepDevIndex != want {
		diffs = append(diffs, fmt.Sprintf("underlay ifindex %d, want %d", vx.VtepDevIndex, want))
	}
	if vx.Learning != cfg.Learning {
		diffs = append(diffs, fmt.Sprintf("learning %t, want %t", vx.Learning, cfg.Learning))
	}
	if len(vx.Group) > 0 && !vx.Group.IsUnspecified() {
		diffs = append(diffs, fmt.Sprintf("multicast group %v, want none", vx.Group))
	}
	return strings.Join(diffs, "; ")
}

func create(h *netlink.Handle, cfg Config, parent netlink.Link) (netlink.Link, error) {
	vx := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: cfg.Name, MTU: cfg.MTU},
		VxlanId:   int(cfg.VNI),
		SrcAddr:   net.IP(cfg.Local.AsSlice()),
		Port:      cfg.Port,
		Learning:  cfg.Learning,
	}
	if parent != nil {
		vx.VtepDevIndex = parent.Attrs().Index
	}
	if err := h.LinkAdd(vx); err != nil {
		return nil, fmt.Errorf("vxlan %s: create (VNI %d, port %d, local %s): %w",
			cfg.Name, cfg.VNI, cfg.Port, cfg.Local, err)
	}
	link, err := h.LinkByName(cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("vxlan %s: look up after create: %w", cfg.Name, err)
	}
	return link, nil
}

func setMaster(h *netlink.Handle, link netlink.Link, bridge string) error {
	name := link.Attrs().Name
	if bridge == "" {
		if link.Attrs().MasterIndex == 0 {
			return nil
		}
		if err := h.LinkSetNoMaster(link); err != nil {
			return fmt.Errorf("vxlan %s: leave bridge: %w", name, err)
		}
		return nil
	}
	br, err := h.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("vxlan %s: bridge %s: %w", name, bridge, err)
	}
	if br.Type() != "bridge" {
		return fmt.Errorf("vxlan %s: %s is a %s, not a bridge", name, bridge, br.Type())
	}
	if link.Attrs().MasterIndex == br.Attrs().Index {
		return nil
	}
	if err := h.LinkSetMaster(link, br); err != nil {
		return fmt.Errorf("vxlan %s: attach to bridge %s: %w", name, bridge, err)
	}
	return nil
}

// Delete removes the device, and with it its FDB. A device already gone is
// not an error.
func (t *Tunnel) Delete() error {
	h, err := tnetns.Handle(t.nsPath)
	if err != nil {
		return fmt.Errorf("vxlan %s: %w", t.name, err)
	}
	defer h.Close()
	link, err := h.LinkByIndex(t.index)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vxlan %s: look up: %w", t.name, err)
	}
	// The index may have been reused by another link after ours went.
	if link.Attrs().Name != t.name || link.Type() != "vxlan" {
		return nil
	}
	if err := h.LinkDel(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("vxlan %s: delete: %w", t.name, err)
	}
	return nil
}
