package classify

import (
	"bytes"
	"encoding/binary"
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

// TestVethDecapDelivery runs the classifier on real veths in a fresh
// network namespace: a GTP-U frame sent into the RAN-side veth must arrive
// at the app's veth decapsulated (FORWARD_DECAPSULATED), and a
// DUPLICATE_DECAPSULATED copy must arrive there too.
func TestVethDecapDelivery(t *testing.T) {
	runtime.LockOSThread() // the thread stays in the test's namespace until restored
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("new netns (CI=true, not skipping): %v", err)
		}
		t.Skipf("new netns: %v", err)
	}
	defer ns.Close()
	defer netns.Set(orig)

	mk := func(a, b string) (netlink.Link, netlink.Link) {
		t.Helper()
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}); err != nil {
			t.Fatalf("veth %s/%s: %v", a, b, err)
		}
		la, _ := netlink.LinkByName(a)
		lb, _ := netlink.LinkByName(b)
		for _, l := range []netlink.Link{la, lb} {
			if err := netlink.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
		return la, lb
	}
	ranOut, ranIn := mk("ran0", "ran1") // frames written to ran0 enter at ran1
	appHost, app := mk("app1", "app0")  // redirect to app1's egress arrives at app0

	c := newClassifier(t)
	l, err := link.AttachTCX(link.TCXOptions{Interface: ranIn.Attrs().Index, Program: c.Program(), Attach: ebpf.AttachTCXIngress})
	if err != nil {
		t.Fatalf("attach tcx: %v", err)
	}
	defer l.Close()

	sock := func(ifindex int) int {
		t.Helper()
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
			t.Fatal(err)
		}
		tv := unix.Timeval{Usec: 200000}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		return fd
	}
	tx, rx := sock(ranOut.Attrs().Index), sock(app.Attrs().Index)

	frame := gtpFrame(gtpu(7, false, [][]byte{pduSession(1, 9, 0)}, innerUE()))
	want := append(append(append([]byte{}, frame[:12]...), 0x08, 0x00), innerUE()...)
	// expect reads app0 until the decapsulated frame shows up (IPv6
	// autoconfiguration chatter may come first) or the deadline passes.
	expect := func(what string) {
		t.Helper()
		buf := make([]byte, 2048)
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			n, _, err := unix.Recvfrom(rx, buf, 0)
			if err == nil && bytes.Equal(buf[:n], want) {
				return
			}
		}
		t.Fatalf("%s: decapsulated frame did not arrive at app0", what)
	}
	for _, a := range []Action{ActionForwardDecapsulated, ActionDuplicateDecapsulated} {
		if err := c.Apply([]Rule{{ID: "r", Action: a, Dest: Dest{Ifindex: appHost.Attrs().Index},
			Filters: []Filter{{TunnelType: "GTP_U"}}}}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Sendto(tx, frame, 0, &unix.SockaddrLinklayer{Ifindex: ranOut.Attrs().Index}); err != nil {
			t.Fatal(err)
		}
		expect(string(a))
	}
	cnt, err := c.Counters()
	if err != nil || cnt["r"].Packets != 2 { // "r" kept across Apply: both sends
		t.Fatalf("counters %v %v", cnt, err)
	}
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
