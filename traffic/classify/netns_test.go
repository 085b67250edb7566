package classify

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNetns moves the test's goroutine, locked to its thread, into a fresh
// network namespace until the test ends. (Should the goroutine end still
// locked, Go ends its thread, namespace and all.)
func inNetns(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.New()
	if err != nil {
		orig.Close()
		if os.Getenv("CI") == "true" {
			t.Fatalf("new netns (CI=true, not skipping): %v", err)
		}
		t.Skipf("new netns: %v", err)
	}
	t.Cleanup(func() {
		netns.Set(orig)
		orig.Close()
		ns.Close()
		runtime.UnlockOSThread()
	})
}

// vethPair makes the veth pair a/b, both up: what is written to a arrives at
// b and the other way round.
func vethPair(t *testing.T, a, b string) (netlink.Link, netlink.Link) {
	t.Helper()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}); err != nil {
		t.Fatalf("veth %s/%s: %v", a, b, err)
	}
	la, err1 := netlink.LinkByName(a)
	lb, err2 := netlink.LinkByName(b)
	if err1 != nil || err2 != nil {
		t.Fatalf("veth %s/%s: %v %v", a, b, err1, err2)
	}
	for _, l := range []netlink.Link{la, lb} {
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	return la, lb
}

// packetSock is an AF_PACKET socket on ifindex for proto. ETH_P_ALL sees a
// received frame before tc ingress; a protocol-specific socket (ETH_P_IP)
// sees it after, as the tc programs left it, and only if they let it go on.
func packetSock(t *testing.T, ifindex int, proto uint16) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(proto)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifindex}); err != nil {
		t.Fatal(err)
	}
	tv := unix.Timeval{Usec: 50000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

func send(t *testing.T, fd, ifindex int, frame []byte) {
	t.Helper()
	if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		t.Fatal(err)
	}
}

// received reads fd until want shows up (other chatter, such as IPv6
// autoconfiguration, is skipped) or d passes.
func received(fd int, want []byte, d time.Duration) bool {
	buf := make([]byte, 4096)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == nil && bytes.Equal(buf[:n], want) {
			return true
		}
	}
	return false
}

// drain discards what fd has queued.
func drain(fd int) {
	buf := make([]byte, 4096)
	for {
		if _, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

func withDst(frame []byte, mac net.HardwareAddr) []byte {
	out := append([]byte{}, frame...)
	copy(out, mac)
	return out
}

// TestVethSteering runs the classifier on real veths in a fresh network
// namespace, attached with tcx at ingress of the RAN-side veth. For each
// steering action it checks the bytes that arrive at the app's veth (the
// packet, or the DUPLICATE_* copy: decapsulated or not, addressed to
// Dest.MAC when set) and the bytes of the original that goes on into the
// RAN-side stack (byte for byte as sent; none for FORWARD_*).
func TestVethSteering(t *testing.T) {
	inNetns(t)
	ranOut, ranIn := vethPair(t, "ran0", "ran1") // frames written to ran0 enter at ran1
	appHost, app := vethPair(t, "app1", "app0")  // redirect to app1's egress arrives at app0

	c := newClassifier(t)
	l, err := link.AttachTCX(link.TCXOptions{Interface: ranIn.Attrs().Index, Program: c.Program(), Attach: ebpf.AttachTCXIngress})
	if err != nil {
		t.Fatalf("attach tcx: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	tx := packetSock(t, ranOut.Attrs().Index, unix.ETH_P_ALL)
	atApp := packetSock(t, app.Attrs().Index, unix.ETH_P_ALL)
	goesOn := packetSock(t, ranIn.Attrs().Index, unix.ETH_P_IP) // after tc ingress

	appMAC := net.HardwareAddr{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	gtp := gtpFrame(gtpu(7, false, [][]byte{pduSession(1, 9, 0)}, innerUE()))
	decapped := append(append(append([]byte{}, gtp[:12]...), 0x08, 0x00), innerUE()...)
	plain := v4udp()
	cases := []struct {
		name   string
		a      Action
		mac    net.HardwareAddr
		filter Filter
		frame  []byte
		atApp  []byte // what the app receives
		goesOn bool   // the original continues unchanged
	}{
		{"fwd decap gtp", ActionForwardDecapsulated, nil, Filter{TunnelType: "GTP_U"}, gtp, decapped, false},
		{"fwd decap gtp mac", ActionForwardDecapsulated, appMAC, Filter{TunnelType: "GTP_U"}, gtp, withDst(decapped, appMAC), false},
		{"fwd decap plain mac", ActionForwardDecapsulated, appMAC, Filter{DstPort: []string{"53"}}, plain, withDst(plain, appMAC), false},
		{"fwd encap mac", ActionForwardEncapsulated, appMAC, Filter{TunnelType: "GTP_U"}, gtp, withDst(gtp, appMAC), false},
		{"dup decap gtp", ActionDuplicateDecapsulated, nil, Filter{TunnelType: "GTP_U"}, gtp, decapped, true},
		{"dup decap gtp mac", ActionDuplicateDecapsulated, appMAC, Filter{TunnelType: "GTP_U"}, gtp, withDst(decapped, appMAC), true},
		{"dup decap plain mac", ActionDuplicateDecapsulated, appMAC, Filter{DstPort: []string{"53"}}, plain, withDst(plain, appMAC), true},
		{"dup encap mac", ActionDuplicateEncapsulated, appMAC, Filter{TunnelType: "GTP_U"}, gtp, withDst(gtp, appMAC), true},
		{"dup encap", ActionDuplicateEncapsulated, nil, Filter{TunnelType: "GTP_U"}, gtp, gtp, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.Apply([]Rule{{ID: "r", Action: tc.a, Dest: Dest{Ifindex: appHost.Attrs().Index, MAC: tc.mac},
				Filters: []Filter{tc.filter}}}); err != nil {
				t.Fatal(err)
			}
			drain(atApp)
			drain(goesOn)
			before := stats(t, c).SteerFailed
			send(t, tx, ranOut.Attrs().Index, tc.frame)
			if !received(atApp, tc.atApp, 2*time.Second) {
				t.Errorf("app0 did not receive\n%x", tc.atApp)
			}
			if tc.goesOn && !received(goesOn, tc.frame, 2*time.Second) {
				t.Errorf("the original did not go on unchanged into ran1's stack")
			}
			if !tc.goesOn && received(goesOn, tc.frame, 100*time.Millisecond) {
				t.Errorf("a forwarded packet also went on into ran1's stack")
			}
			if s := stats(t, c); s.SteerFailed != before {
				t.Errorf("steering failures counted: %+v", s)
			}
		})
	}
	cnt, err := c.Counters()
	if err != nil || cnt["r"].Packets != uint64(len(cases)) { // "r" kept across Apply: every send
		t.Fatalf("counters %v %v", cnt, err)
	}
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
