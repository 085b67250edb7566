package linkemu

import (
	"errors"
	"fmt"
	"io/fs"
	"unsafe"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/traffic/netns"
)

// openNS opens the namespace on path, the current one for "".
func openNS(path string) (vnetns.NsHandle, error) {
	if path == "" {
		h, err := vnetns.Get()
		if err != nil {
			return vnetns.None(), fmt.Errorf("open current netns: %w", err)
		}
		return h, nil
	}
	return netns.Open(path)
}

// handleIn opens a netlink handle in the namespace on path.
func handleIn(path string) (*netlink.Handle, error) {
	ns, err := openNS(path)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in netns %q: %w", path, err)
	}
	return h, nil
}

// makeHalf creates the veth pair of one side of the link: relayName in the
// relay namespace, side.Iface in side.Netns, both up, offloads off, and
// the relay end without IPv6 (the relay namespace is not a host, it must
// not speak on the link). It returns the relay end's ifindex.
func makeHalf(relayNS string, relay *netlink.Handle, relayName string, side Side, mtu int) (int, error) {
	peerNS, err := openNS(side.Netns)
	if err != nil {
		return 0, err
	}
	defer peerNS.Close()
	ph, err := netlink.NewHandleAt(peerNS)
	if err != nil {
		return 0, fmt.Errorf("netlink handle in netns %q: %w", side.Netns, err)
	}
	defer ph.Close()
	// A relay end by this name is a leftover of this link (the name is
	// derived from the link's ends): replace it, and with it its peer.
	if err := netns.DelVeth(relayNS, relayName); err != nil {
		return 0, err
	}
	if _, err := ph.LinkByName(side.Iface); err == nil {
		return 0, fmt.Errorf("interface %s exists in netns %q", side.Iface, side.Netns)
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: relayName, MTU: mtu},
		PeerName:      side.Iface,
		PeerNamespace: netlink.NsFd(int(peerNS)),
	}
	if err := relay.LinkAdd(veth); err != nil {
		return 0, fmt.Errorf("add veth %s/%s: %w", relayName, side.Iface, err)
	}
	err = netns.SetSysctl(relayNS, "net/ipv6/conf/"+relayName+"/disable_ipv6", "1")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	if err := offloadsOff(relayNS, relayName); err != nil {
		return 0, err
	}
	if err := offloadsOff(side.Netns, side.Iface); err != nil {
		return 0, err
	}
	rl, err := relay.LinkByName(relayName)
	if err != nil {
		return 0, fmt.Errorf("veth %s: %w", relayName, err)
	}
	if err := relay.LinkSetUp(rl); err != nil {
		return 0, fmt.Errorf("veth %s up: %w", relayName, err)
	}
	pl, err := ph.LinkByName(side.Iface)
	if err != nil {
		return 0, fmt.Errorf("veth %s: %w", side.Iface, err)
	}
	if err := ph.LinkSetUp(pl); err != nil {
		return 0, fmt.Errorf("veth %s up: %w", side.Iface, err)
	}
	return rl.Attrs().Index, nil
}

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct {
	cmd, data uint32
}

// ifreqPtr is struct ifreq with ifr_data, a pointer the runtime keeps
// track of (unix.Ifreq holds its union as bytes).
type ifreqPtr struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// offloadsOff turns off the offloads of ifname in the namespace on nsPath
// with the legacy ethtool ioctls, which every kernel still takes. The
// segmentation ones go first: the kernel refuses to keep TSO on without
// checksum offload, but it says so only in its log.
func offloadsOff(nsPath, ifname string) error {
	cmds := []struct {
		cmd  uint32
		name string
	}{
		{unix.ETHTOOL_STSO, "tso"},
		{unix.ETHTOOL_SGSO, "gso"},
		{unix.ETHTOOL_SGRO, "gro"},
		{unix.ETHTOOL_SSG, "sg"},
		{unix.ETHTOOL_STXCSUM, "tx-checksum"},
	}
	return netns.Do(nsPath, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("ethtool socket: %w", err)
		}
		defer unix.Close(fd)
		for _, c := range cmds {
			v := ethtoolValue{cmd: c.cmd}
			var ifr ifreqPtr
			copy(ifr.name[:], ifname)
			ifr.data = unsafe.Pointer(&v)
			_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
			if e != 0 && e != unix.EOPNOTSUPP {
				return fmt.Errorf("ethtool %s off on %s: %w", c.name, ifname, e)
			}
		}
		return nil
	})
}
