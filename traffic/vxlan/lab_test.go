package vxlan_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	tnetns "github.com/mecorch/mecorch/traffic/netns"
	"github.com/mecorch/mecorch/traffic/vxlan"
)

// This file holds the namespaces-as-hosts scaffolding the tests share.

// needRoot skips without CAP_SYS_ADMIN/CAP_NET_ADMIN, except under CI=true
// where a skip would make a green run lie.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root (netns, veth, vxlan); CI=true forbids skipping")
	}
	t.Skip("needs root (netns, veth, vxlan)")
}

// nsPrefix is unique per test process and test, so that parallel runs and
// leftovers from a crashed run cannot collide with this one.
func nsPrefix(t *testing.T, tag string) string {
	return fmt.Sprintf("mvx%d-%s-", os.Getpid(), tag)
}

// newNS creates a named namespace in /run/netns (where `ip netns list`
// looks) and registers its deletion. The first call for a prefix also
// registers, to run after all the deletions, a check that `ip netns list`
// shows none of the prefix's namespaces any more.
func newNS(t *testing.T, prefix, name string, checked *bool) string {
	t.Helper()
	if !*checked {
		*checked = true
		t.Cleanup(func() {
			out, err := exec.Command("ip", "netns", "list").CombinedOutput()
			if err != nil {
				t.Errorf("ip netns list: %v: %s", err, out)
				return
			}
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, prefix) {
					t.Errorf("namespace left behind: %s", line)
				}
			}
		})
	}
	full := prefix + name
	path, err := tnetns.Create(tnetns.DefaultDir, full)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tnetns.Delete(tnetns.DefaultDir, full); err != nil {
			t.Error(err)
		}
	})
	return path
}

// host is a namespace standing for an edge host, with an underlay address
// on eth0 and an overlay address to put on its VXLAN device.
type host struct {
	id       string
	ns       string
	underlay netip.Addr
	overlay  netip.Prefix
	tun      *vxlan.Tunnel
}

func (h *host) peer() vxlan.Peer { return vxlan.Peer{HostID: h.id, Underlay: h.underlay} }

// underlayLab makes n hosts wired by veths to one bridge in a namespace of
// its own (the underlay switch), on 192.0.2.0/24.
func underlayLab(t *testing.T, tag string, n int) []*host {
	t.Helper()
	needRoot(t)
	prefix := nsPrefix(t, tag)
	var checked bool
	sw := newNS(t, prefix, "sw", &checked)
	if err := tnetns.EnsureBridge(sw, "ul0", netip.MustParsePrefix("192.0.2.254/24")); err != nil {
		t.Fatal(err)
	}
	var hosts []*host
	for i := range n {
		id := string(rune('a' + i))
		h := &host{
			id:       id,
			ns:       newNS(t, prefix, id, &checked),
			underlay: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}),
			overlay:  netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, 0, byte(i + 1)}), 24),
		}
		err := tnetns.AddVeth(tnetns.Veth{
			HostNetns: sw,
			Bridge:    "ul0",
			HostName:  tnetns.VethName("ul", prefix+id),
			PeerNetns: h.ns,
			PeerName:  "eth0",
			Address:   netip.PrefixFrom(h.underlay, 24),
		})
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
	}
	return hosts
}

// withHandle runs f with a netlink handle in the namespace on nsPath.
func withHandle(t *testing.T, nsPath string, f func(*netlink.Handle) error) {
	t.Helper()
	ns, err := tnetns.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := f(h); err != nil {
		t.Fatal(err)
	}
}

func readVxlan(t *testing.T, nsPath, name string) *netlink.Vxlan {
	t.Helper()
	var vx *netlink.Vxlan
	withHandle(t, nsPath, func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		var ok bool
		if vx, ok = l.(*netlink.Vxlan); !ok {
			return fmt.Errorf("%s is a %s", name, l.Type())
		}
		return nil
	})
	return vx
}

func addAddr(t *testing.T, nsPath, link string, p netip.Prefix) {
	t.Helper()
	withHandle(t, nsPath, func(h *netlink.Handle) error {
		l, err := h.LinkByName(link)
		if err != nil {
			return err
		}
		ipn := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		return h.AddrReplace(l, &netlink.Addr{IPNet: ipn})
	})
}

// echoServer answers every UDP datagram to addr:7 in nsPath with the same
// bytes, until the test ends.
func echoServer(t *testing.T, nsPath string, addr netip.Addr) {
	t.Helper()
	var conn *net.UDPConn
	err := tnetns.Do(nsPath, func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 7)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = conn.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
}

// exchange sends msg from src (in nsPath) to dst:7 up to tries times and
// reports whether the echo came back. The waits bound a failure, they are
// not what is tested.
func exchange(t *testing.T, nsPath string, src, dst netip.Addr, msg string, tries int, wait time.Duration) bool {
	t.Helper()
	var conn *net.UDPConn
	err := tnetns.Do(nsPath, func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := netip.AddrPortFrom(dst, 7)
	buf := make([]byte, 2048)
	for range tries {
		if _, err := conn.WriteToUDPAddrPort([]byte(msg), to); err != nil {
			t.Fatalf("send %s -> %s: %v", src, to, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatalf("receive at %s: %v", src, err)
			}
			if from.Addr().Unmap() == dst && string(buf[:n]) == msg {
				return true
			}
		}
	}
	return false
}

// capture opens an AF_PACKET socket on link in nsPath that sees every IPv4
// frame the link receives.
func capture(t *testing.T, nsPath, link string) int {
	t.Helper()
	var fd int
	err := tnetns.Do(nsPath, func() error {
		l, err := netlink.LinkByName(link)
		if err != nil {
			return err
		}
		proto := htons(unix.ETH_P_IP)
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: l.Attrs().Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind AF_PACKET to %s: %w", link, err)
		}
		tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// encap is what an outer IPv4/UDP/VXLAN frame says about itself.
type encap struct {
	src, dst netip.Addr
	dstPort  uint16
	vni      uint32
	inner    []byte
}

// parseEncap reads an Ethernet frame as IPv4 + UDP + VXLAN; ok is false
// for anything else.
func parseEncap(f []byte) (e encap, ok bool) {
	const eth = 14
	if len(f) < eth+20 || binary.BigEndian.Uint16(f[12:14]) != unix.ETH_P_IP {
		return e, false
	}
	ip := f[eth:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ip[9] != unix.IPPROTO_UDP || len(ip) < ihl+8+8 {
		return e, false
	}
	e.src = netip.AddrFrom4([4]byte(ip[12:16]))
	e.dst = netip.AddrFrom4([4]byte(ip[16:20]))
	udp := ip[ihl:]
	e.dstPort = binary.BigEndian.Uint16(udp[2:4])
	vx := udp[8:]
	if vx[0]&0x08 == 0 { // the I flag: a VNI is present
		return e, false
	}
	e.vni = binary.BigEndian.Uint32(vx[4:8]) >> 8
	e.inner = vx[8:]
	return e, true
}

// findEncap reads frames from fd until one carries marker inside a VXLAN
// encapsulation, or until reads have timed out a few times.
func findEncap(t *testing.T, fd int, marker []byte) (encap, bool) {
	t.Helper()
	buf := make([]byte, 65536)
	for idle := 0; idle < 10; {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			idle++
			continue
		}
		if err != nil {
			t.Fatalf("AF_PACKET read: %v", err)
		}
		if e, ok := parseEncap(buf[:n]); ok && bytes.Contains(e.inner, marker) {
			return e, true
		}
	}
	return encap{}, false
}
