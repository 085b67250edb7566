package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

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
		_ = detach(st.ret)
		st = nil
	}
	if st == nil {
		st = &steered{ifindex: idx}
		s.inst[in.ID] = st
	}
	if st.ret == nil {
		if err := routeFrom(s.cfg.HostNetns, nw.HostLink); err != nil {
			return nil, err
		}
		err := netns.Do(s.cfg.HostNetns, func() error {
			l, err := s.attach(s.cls.ReturnPath(), idx, retPin(in.ID))
			st.ret = l
			return err
		})
		if err != nil {
			st.ret = nil
			return nil, fmt.Errorf("attach return path on %s: %w", nw.HostLink, err)
		}
	}
	if st.mac == nil || !slices.Equal(st.addrs, want) || !st.mtuSet {
		mac, err := serviceSide(nw.Netns, nw.Link, st.addrs, want, s.mtu)
		if err != nil {
			return nil, err
		}
		st.mac, st.addrs, st.mtuSet = mac, want, true
	}
	if err := s.qos.apply(in.ID, in.Bandwidth, s.cfg.HostNetns, nw.HostLink, nw.Netns, nw.Link, idx); err != nil {
		return nil, fmt.Errorf("bandwidth: %w", err)
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
// With mtu > 0 the instance's link gets at most that MTU and no GSO
// super-packets: its replies to UEs grow by the GTP-U encapsulation on the
// way out, which must still fit the RAN-facing link, one packet each (the
// return path drops what would not; see traffic/classify), with its
// checksums complete (transmit checksum offload off).
func serviceSide(nsPath, linkName string, had, want []netip.Addr, mtu int) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := netns.Do(nsPath, func() error {
		l, err := netlink.LinkByName(linkName)
		if err != nil {
			return fmt.Errorf("link %s: %w", linkName, err)
		}
		mac = l.Attrs().HardwareAddr
		if mtu > 0 && l.Attrs().MTU > mtu {
			if err := netlink.LinkSetMTU(l, mtu); err != nil {
				return fmt.Errorf("MTU %d on %s: %w", mtu, linkName, err)
			}
		}
		if mtu > 0 && l.Attrs().GSOMaxSegs != 1 {
			if err := netlink.LinkSetGSOMaxSegs(l, 1); err != nil {
				return fmt.Errorf("GSO off on %s: %w", linkName, err)
			}
		}
		// A reply left with a partial checksum (veth's offload) would
		// reach the UE with it: inside GTP-U no NIC completes it.
		if mtu > 0 {
			if on, err := netns.TxChecksum(linkName); err != nil || on {
				if err := netns.SetTxChecksum(linkName, false); err != nil {
					return err
				}
			}
		}
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

// routeFrom turns IPv4 forwarding on for packets arriving on link: the
// return path routes the encapsulated replies with the forwarding lookup
// from there (traffic/classify ReturnConfig.Route), which the kernel
// refuses on an interface that does not forward.
func routeFrom(nsPath, link string) error {
	name := "net/ipv4/conf/" + link + "/forwarding"
	if v, err := netns.Sysctl(nsPath, name); err == nil && v == "1" {
		return nil
	}
	if err := netns.SetSysctl(nsPath, name, "1"); err != nil {
		return fmt.Errorf("forwarding on %s: %w", link, err)
	}
	return nil
}
