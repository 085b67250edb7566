package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/traffic/netns"
)

// prepare makes one running instance ready to be steered to: its return
// path attached and its service addresses in place. Work is redone only
// when the host link changed (the instance was made anew) or its DNS rules
// did, so that a pass over an unchanged host touches no namespace.
func (s *Steering) prepare(in agentproto.DesiredInstance) (*steered, error) {
	nw, ok := s.cfg.Networks.Network(in.ID)
	if !ok {
		return nil, errors.New("not known to the runtime")
	}
	want, err := serviceAddrs(in.DNSRules)
	if err != nil {
		return nil, err
	}
	var idx int
	err = netns.Do(s.cfg.HostNetns, func() error {
		l, err := netlink.LinkByName(nw.HostLink)
		if err != nil {
			return err
		}
		idx = l.Attrs().Index
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("host link %s: %w", nw.HostLink, err)
	}
	st := s.inst[in.ID]
	if st != nil && st.ifindex != idx {
		// A new veth: the old link's program went with the old device.
		if st.ret != nil {
			_ = st.ret.Close()
		}
		st = nil
	}
	if st == nil {
		st = &steered{ifindex: idx}
		s.inst[in.ID] = st
	}
	if st.ret == nil {
		err := netns.Do(s.cfg.HostNetns, func() error {
			l, err := link.AttachTCX(link.TCXOptions{Interface: idx, Program: s.cls.ReturnPath(), Attach: ebpf.AttachTCXIngress})
			st.ret = l
			return err
		})
		if err != nil {
			st.ret = nil
			return nil, fmt.Errorf("attach return path on %s: %w", nw.HostLink, err)
		}
	}
	if st.mac == nil || !slices.Equal(st.addrs, want) {
		mac, err := serviceSide(nw.Netns, nw.Link, st.addrs, want)
		if err != nil {
			return nil, err
		}
		st.mac, st.addrs = mac, want
	}
	return st, nil
}

// serviceAddrs are the addresses an instance must accept packets for: its
// DNS rules' answers, which is what UEs are told to reach and hence the
// inner destination of what FORWARD_DECAPSULATED hands it. (The wire
// TrafficRule carries no dstInterface address.) Sorted, without repeats.
func serviceAddrs(rules []agentproto.DNSRule) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, r := range rules {
		a, err := netip.ParseAddr(r.IPAddress)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("dns rule %s: ipAddress %q is not an address", r.ID, r.IPAddress)
		}
		out = append(out, a.Unmap())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// serviceSide, inside the instance's namespace, puts want on lo as host
// addresses (removing those of had that are gone) and returns the MAC of
// the instance's end of its veth. lo rather than the veth: the address is
// the app's, not the link's, and nothing on the bridge should ARP for it.
func serviceSide(nsPath, linkName string, had, want []netip.Addr) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := netns.Do(nsPath, func() error {
		l, err := netlink.LinkByName(linkName)
		if err != nil {
			return fmt.Errorf("link %s: %w", linkName, err)
		}
		mac = l.Attrs().HardwareAddr
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("lo: %w", err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("lo up: %w", err)
		}
		for _, a := range had {
			if !slices.Contains(want, a) {
				if err := netlink.AddrDel(lo, hostAddr(a)); err != nil && !errors.Is(err, netlink.ErrNotImplemented) {
					return fmt.Errorf("remove service address %s: %w", a, err)
				}
			}
		}
		for _, a := range want {
			if err := netlink.AddrReplace(lo, hostAddr(a)); err != nil {
				return fmt.Errorf("service address %s: %w", a, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("instance netns %s: %w", nsPath, err)
	}
	return mac, nil
}

func hostAddr(a netip.Addr) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}}
}
