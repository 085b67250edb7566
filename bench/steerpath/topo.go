package steerpath

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	vns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/traffic/netns"
)

// nsPrefix starts the names of this driver's namespaces; the owner's pid
// follows, so a run can tell its leftovers from another live run's.
const nsPrefix = "msteer-"

// Link names, each in its own namespace.
const (
	ifGen  = "sgen"  // gen → dut
	ifDutG = "sdutg" // dut, facing gen: the classifier's ingress
	ifDutA = "sduta" // dut, facing app: the redirect target
	ifApp  = "sapp"  // app
)

// topology is the three namespaces and the two veth pairs:
//
//	gen[sgen] ── [sdutg]dut[sduta] ── [sapp]app
type topology struct {
	names         []string // namespace names, to delete
	gen, dut, app string   // namespace paths
	hGen, hDut    *netlink.Handle
	hApp          *netlink.Handle
	genIdx        int // sgen, in gen
	dutGIdx       int // sdutg, in dut
	dutAIdx       int // sduta, in dut
	appIdx        int // sapp, in app
	// appNAPI: the app's veth receives in NAPI mode (GRO on), from its
	// own ring rather than the CPU's backlog.
	appNAPI bool
}

// removeStale deletes namespaces that earlier runs left behind (a killed
// process cannot clean up), skipping those of processes still alive.
func removeStale() error {
	names, err := netns.List(netns.DefaultDir, nsPrefix)
	if err != nil {
		return err
	}
	for _, n := range names {
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(n, nsPrefix), "-", 2)[0])
		if err == nil {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
				continue // a live run's, maybe this process's
			}
		}
		if err := netns.Delete(netns.DefaultDir, n); err != nil {
			return err
		}
	}
	return nil
}

// newTopology builds the namespaces and links; with rpsCPU >= 0, the
// receive processing of dut's gen-facing veth goes to that CPU. On error,
// what was built is removed again.
func newTopology(rpsCPU int) (t *topology, err error) {
	if err := removeStale(); err != nil {
		return nil, fmt.Errorf("remove stale namespaces: %w", err)
	}
	t = &topology{}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.close())
		}
	}()
	var tag [4]byte
	if _, err := rand.Read(tag[:]); err != nil {
		return t, err
	}
	paths := make([]string, 3)
	for i, role := range []string{"gen", "dut", "app"} {
		name := fmt.Sprintf("%s%d-%x-%s", nsPrefix, os.Getpid(), tag, role)
		p, err := netns.Create(netns.DefaultDir, name)
		if err != nil {
			return t, err
		}
		t.names = append(t.names, name)
		paths[i] = p
		// No IPv6: its autoconfiguration chatter would land in the
		// counters. rp_filter off: the app has no route back to the UE.
		for _, s := range [][2]string{
			{"net.ipv6.conf.all.disable_ipv6", "1"}, {"net.ipv6.conf.default.disable_ipv6", "1"},
			{"net.ipv4.conf.all.rp_filter", "0"}, {"net.ipv4.conf.default.rp_filter", "0"},
		} {
			if err := netns.SetSysctl(p, s[0], s[1]); err != nil {
				return t, err
			}
		}
	}
	t.gen, t.dut, t.app = paths[0], paths[1], paths[2]
	for _, h := range []struct {
		path string
		dst  **netlink.Handle
	}{{t.gen, &t.hGen}, {t.dut, &t.hDut}, {t.app, &t.hApp}} {
		if *h.dst, err = netns.Handle(h.path); err != nil {
			return t, err
		}
	}
	if err := t.pair(t.hGen, t.dut, ifGen, macGen, ifDutG, macDutG); err != nil {
		return t, err
	}
	if err := t.pair(t.hDut, t.app, ifDutA, macDutA, ifApp, macApp); err != nil {
		return t, err
	}
	for _, l := range []struct {
		h    *netlink.Handle
		name string
		addr netip.Prefix
		idx  *int
	}{
		{t.hGen, ifGen, netip.PrefixFrom(gnbAddr, 24), &t.genIdx},
		{t.hDut, ifDutG, netip.PrefixFrom(n3Addr, 24), &t.dutGIdx},
		{t.hDut, ifDutA, netip.PrefixFrom(dutAddr, 24), &t.dutAIdx},
		{t.hApp, ifApp, netip.PrefixFrom(appAddr, 24), &t.appIdx},
	} {
		if *l.idx, err = linkUp(l.h, l.name, l.addr); err != nil {
			return t, err
		}
	}
	for _, h := range []*netlink.Handle{t.hGen, t.hDut, t.hApp} {
		if _, err := linkUp(h, "lo", netip.Prefix{}); err != nil {
			return t, err
		}
	}
	// The app's veth takes its frames on a ring of its own (NAPI mode),
	// not on the receiving CPU's backlog: in pipeline mode the sender keeps
	// that backlog full, and the frames dut redirects would be dropped
	// there after all the work was done. A real NIC's receive ring is not
	// the backlog either. veth uses its ring only with GRO on the receiver
	// and, for a TSO-capable sender, not at all: TSO goes off on dut's end.
	if err := setEthtool(t.app, ifApp, unix.ETHTOOL_SGRO, true); err != nil {
		return t, err
	}
	if err := setEthtool(t.dut, ifDutA, unix.ETHTOOL_STSO, false); err != nil {
		return t, err
	}
	t.appNAPI = true
	if rpsCPU >= 0 {
		if err := setRPS(t.dut, ifDutG, rpsCPU); err != nil {
			return t, err
		}
	}
	return t, nil
}

// pair creates a veth from the namespace of h (name, mac) to the
// namespace on peerPath (peer, peerMAC).
func (t *topology) pair(h *netlink.Handle, peerPath, name string, mac net.HardwareAddr, peer string, peerMAC net.HardwareAddr) error {
	ns, err := netns.Open(peerPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	v := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: name, HardwareAddr: mac, MTU: 1500},
		PeerName:         peer,
		PeerHardwareAddr: peerMAC,
		PeerNamespace:    netlink.NsFd(int(ns)),
	}
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s/%s: %w", name, peer, err)
	}
	return nil
}

func linkUp(h *netlink.Handle, name string, p netip.Prefix) (int, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("link %s: %w", name, err)
	}
	if p.IsValid() {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}
		if err := h.AddrReplace(l, a); err != nil {
			return 0, fmt.Errorf("address %s on %s: %w", p, name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return 0, fmt.Errorf("%s up: %w", name, err)
	}
	return l.Attrs().Index, nil
}

// setRPS steers the receive processing of ifname (in the namespace on
// nsPath) to cpu. /sys/class/net shows the devices of the namespace that
// mounted sysfs, so a thread enters the namespace and a private mount
// namespace, mounts sysfs there and writes rx-0/rps_cpus. That thread is
// never unlocked: it dies with its goroutine instead of going back to the
// pool in a foreign mount namespace.
func setRPS(nsPath, ifname string, cpu int) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- func() error {
			ns, err := netns.Open(nsPath)
			if err != nil {
				return err
			}
			defer ns.Close()
			if err := vns.Set(ns); err != nil {
				return fmt.Errorf("enter %s: %w", nsPath, err)
			}
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("unshare mount namespace: %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return fmt.Errorf("make mounts private: %w", err)
			}
			dir, err := os.MkdirTemp("", "steerpath-sysfs-")
			if err != nil {
				return err
			}
			defer os.Remove(dir)
			if err := unix.Mount("sysfs", dir, "sysfs", 0, ""); err != nil {
				return fmt.Errorf("mount sysfs: %w", err)
			}
			defer unix.Unmount(dir, unix.MNT_DETACH)
			mask := strconv.FormatUint(1<<uint(cpu), 16)
			p := dir + "/class/net/" + ifname + "/queues/rx-0/rps_cpus"
			if err := os.WriteFile(p, []byte(mask), 0); err != nil {
				return fmt.Errorf("RPS of %s to CPU %d: %w", ifname, cpu, err)
			}
			return nil
		}()
	}()
	return <-errc
}

// linkStats are the receive counters of a link.
type linkStats struct{ rxPackets, rxBytes uint64 }

func (t *topology) stats(h *netlink.Handle, idx int) (linkStats, error) {
	l, err := h.LinkByIndex(idx)
	if err != nil {
		return linkStats{}, fmt.Errorf("link %d: %w", idx, err)
	}
	s := l.Attrs().Statistics
	if s == nil {
		return linkStats{}, fmt.Errorf("link %s: no statistics", l.Attrs().Name)
	}
	return linkStats{s.RxPackets, s.RxBytes}, nil
}

// close removes the namespaces (their links go with them).
func (t *topology) close() error {
	for _, h := range []*netlink.Handle{t.hGen, t.hDut, t.hApp} {
		if h != nil {
			h.Close()
		}
	}
	var errs []error
	for _, n := range t.names {
		errs = append(errs, netns.Delete(netns.DefaultDir, n))
	}
	t.names = nil
	return errors.Join(errs...)
}
