package classify

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestReturnPathRoutes: with ReturnConfig.Route, an encapsulated reply
// leaves where the routing table says its gNB is — here through a gateway on
// another interface than the app's, with the gateway's MAC from the
// neighbour table — and a reply whose gNB has no route is dropped and
// counted, not sent raw.
func TestReturnPathRoutes(t *testing.T) {
	inNetns(t)
	c := newClassifier(t)
	appSide, appHost := vethPair(t, "app0", "app1") // what app0 sends enters at app1
	up, upPeer := vethPair(t, "up1", "up0")         // the uplink towards the gNBs' gateway
	mustAddr := func(l netlink.Link, cidr string) {
		t.Helper()
		a, _ := netlink.ParseAddr(cidr)
		if err := netlink.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
	}
	mustAddr(appHost, "10.0.0.1/24")
	mustAddr(up, "192.0.2.2/24")
	gw := net.ParseIP("192.0.2.254")
	gwMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfe}
	if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: up.Attrs().Index, State: netlink.NUD_PERMANENT, IP: gw, HardwareAddr: gwMAC}); err != nil {
		t.Fatal(err)
	}
	_, far, _ := net.ParseCIDR("198.51.100.0/24")
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: up.Attrs().Index, Dst: far, Gw: gw}); err != nil {
		t.Fatal(err)
	}
	// The forwarding lookup needs forwarding on where the reply enters.
	if err := setForwarding("app1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Configure(ReturnConfig{Route: true, UEPrefixes: []netip.Prefix{netip.MustParsePrefix("10.45.0.0/16")}}); err != nil {
		t.Fatal(err)
	}
	routed := UEPath{GNB: netip.MustParseAddr("198.51.100.7"), TEID: 0x77, QFI: 5, Source: netip.MustParseAddr("192.0.2.100")}
	lost := UEPath{GNB: netip.MustParseAddr("203.0.113.9"), TEID: 0x88, QFI: 5, Source: netip.MustParseAddr("192.0.2.100")}
	for ue, p := range map[string]UEPath{"10.45.0.7": routed, "10.45.0.8": lost} {
		if err := c.SetUE(netip.MustParseAddr(ue), p); err != nil {
			t.Fatal(err)
		}
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: appHost.Attrs().Index, Program: c.ReturnPath(), Attach: ebpf.AttachTCXIngress})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	out := packetSock(t, appSide.Attrs().Index, 0x0003) // ETH_P_ALL on the app's end, to send
	wire := packetSock(t, upPeer.Attrs().Index, 0x0003) // what leaves the uplink
	reply := func(ue string) []byte {
		in := ip4{src: "10.0.0.7", dst: ue, proto: 6}.build(tcp(7, 40000))
		f := eth(0x0800, in)
		copy(f[0:6], appHost.Attrs().HardwareAddr)
		copy(f[6:12], appSide.Attrs().HardwareAddr)
		return f
	}
	drain(wire)
	send(t, out, appSide.Attrs().Index, reply("10.45.0.7"))
	in := ip4{src: "10.0.0.7", dst: "10.45.0.7", proto: 6}.build(tcp(7, 40000))
	macs := append(append([]byte{}, gwMAC...), up.Attrs().HardwareAddr...)
	want := encapsulated(macs, routed, 0, in)
	if !received(wire, want, 2*time.Second) {
		t.Fatalf("no G-PDU to the gateway's MAC on the uplink; want %x", want)
	}
	before := stats(t, c).EncapFailed
	drain(wire)
	send(t, out, appSide.Attrs().Index, reply("10.45.0.8"))
	time.Sleep(200 * time.Millisecond)
	if got := stats(t, c).EncapFailed; got != before+1 {
		t.Errorf("a reply whose gNB has no route: EncapFailed %d -> %d, want one more", before, got)
	}
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
		if n, _, err := recvfrom(wire, buf); err == nil && n > 14+20 && buf[12] == 0x08 && buf[14+16] == 203 {
			t.Fatalf("the unroutable reply left the uplink: %x", buf[:n])
		}
	}
}

func recvfrom(fd int, buf []byte) (int, unix.Sockaddr, error) { return unix.Recvfrom(fd, buf, 0) }

// setForwarding turns IPv4 forwarding on for link in the current namespace.
func setForwarding(link string) error {
	return os.WriteFile("/proc/sys/net/ipv4/conf/"+link+"/forwarding", []byte("1"), 0o644)
}
