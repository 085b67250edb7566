package agent

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/apprun"
	"github.com/mecorch/mecorch/traffic/classify"
	"github.com/mecorch/mecorch/traffic/netns"
)

// fakeNetworks stands in for apprun.Process: it names the links the test
// made the way the runtime would have.
type fakeNetworks map[string]apprun.Network

func (f fakeNetworks) Network(id string) (apprun.Network, bool) { n, ok := f[id]; return n, ok }

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (netns, tcx); CI=true forbids skipping")
		}
		t.Skip("needs root (netns, tcx)")
	}
}

// lab is three namespaces: ran —veth— host —veth— instance.
type lab struct {
	ran, host, inst string
	instMAC         net.HardwareAddr
}

func newLab(t *testing.T) lab {
	t.Helper()
	needRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	var l lab
	for _, p := range []*string{&l.ran, &l.host, &l.inst} {
		name := map[*string]string{&l.ran: "ran", &l.host: "host", &l.inst: "inst"}[p]
		path, err := netns.Create(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = netns.Delete(dir, name) })
		*p = path
	}
	pair := func(hostName, peerName, peerNs, hostAddr, peerAddr, gw string) {
		t.Helper()
		must(t, netns.Do(l.host, func() error {
			if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName}, PeerName: peerName}); err != nil {
				return err
			}
			fd, err := vnetns.GetFromPath(peerNs)
			if err != nil {
				return err
			}
			defer fd.Close()
			peer, err := netlink.LinkByName(peerName)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetNsFd(peer, int(fd)); err != nil {
				return err
			}
			return upWithAddr(hostName, hostAddr, "")
		}))
		must(t, netns.Do(peerNs, func() error { return upWithAddr(peerName, peerAddr, gw) }))
	}
	pair("steer0", "ran0", l.ran, "192.0.2.2/24", "192.0.2.1/24", "")
	pair("mecvtest", "eth0", l.inst, "10.200.0.1/24", "10.200.0.2/24", "10.200.0.1")
	return l
}

func upWithAddr(name, cidr, gw string) error {
	lk, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(lk, a); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lk); err != nil {
		return err
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	if gw != "" {
		return netlink.RouteAdd(&netlink.Route{LinkIndex: lk.Attrs().Index, Gw: net.ParseIP(gw)})
	}
	return nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// udpIn opens a UDP socket bound to addr inside the namespace nsPath.
func udpIn(t *testing.T, nsPath, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	must(t, netns.Do(nsPath, func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	}))
	t.Cleanup(func() { c.Close() })
	return c
}

// readUDP waits up to d for one datagram.
func readUDP(c *net.UDPConn, d time.Duration) ([]byte, netip.AddrPort, bool) {
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil, netip.AddrPort{}, false
	}
	return buf[:n], from, true
}

// innerUDP is an IPv4/UDP packet (UDP checksum 0: none, legal over IPv4).
func innerUDP(src, dst netip.AddrPort, payload []byte) []byte {
	b := make([]byte, 28, 28+len(payload))
	b[0], b[8], b[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(b[2:], uint16(28+len(payload)))
	copy(b[12:], src.Addr().AsSlice())
	copy(b[16:], dst.Addr().AsSlice())
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(b[20:], src.Port())
	binary.BigEndian.PutUint16(b[22:], dst.Port())
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	return append(b, payload...)
}

// gpdu is a GTP-U G-PDU (TS 29.281) with a PDU Session Container (TS
// 38.415) of pduType (0 DL, 1 UL) and qfi.
func gpdu(teid uint32, pduType, qfi byte, inner []byte) []byte {
	g := []byte{0x34, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x85, 1, pduType << 4, qfi, 0}
	binary.BigEndian.PutUint16(g[2:], uint16(8+len(inner)))
	binary.BigEndian.PutUint32(g[4:], teid)
	return append(g, inner...)
}

func echoRules() agentproto.DesiredInstance {
	return agentproto.DesiredInstance{
		ID: "echo-1", AppDID: "edge-echo", State: agentproto.ObservedRunning,
		TrafficRules: []agentproto.TrafficRule{{ID: "edge-echo-uplink", FilterType: "FLOW", Priority: 10,
			Action: agentproto.ActionForwardDecapsulated, Filters: []agentproto.TrafficFilter{{
				SrcAddress: []string{"10.45.0.0/16"}, DstPort: []string{"7"}, Protocol: []string{"TCP", "UDP"}}}}},
		DNSRules: []agentproto.DNSRule{{ID: "edge-echo-dns", DomainName: "echo.mec.example", IPAddressType: "IP_V4", IPAddress: "10.0.0.7"}},
	}
}

// TestSteeringEndToEnd sends real GTP-U from a RAN namespace through a host
// namespace (the agent's, with the classifier on its steering interface)
// to an echo app in an instance namespace, and checks the reply comes back
// to the RAN in the UE's downlink tunnel.
func TestSteeringEndToEnd(t *testing.T) {
	l := newLab(t)
	st, err := NewSteering(SteeringConfig{
		SteerIface: "steer0", HostNetns: l.host, UEPrefixes: []netip.Prefix{netip.MustParsePrefix("10.45.0.0/16")},
		Networks: fakeNetworks{"echo-1": {HostNetns: l.host, HostLink: "mecvtest", Netns: l.inst, Link: "eth0"}},
	})
	must(t, err)
	defer st.Close()
	must(t, st.Sync(DataplaneState{Running: []agentproto.DesiredInstance{echoRules()}}))

	ue := netip.MustParseAddrPort("10.45.0.1:40000")
	svc := netip.MustParseAddrPort("10.0.0.7:7")
	must(t, st.Classifier().SetUE(ue.Addr(), classify.UEPath{GNB: netip.MustParseAddr("192.0.2.1"), TEID: 0x202, QFI: 9,
		Source: netip.MustParseAddr("192.0.2.2")}))

	// The service address was put on the instance's lo by Sync: the echo
	// app can bind it.
	app := udpIn(t, l.inst, svc.String())
	other := udpIn(t, l.inst, "10.0.0.7:8")
	gnb := udpIn(t, l.ran, "192.0.2.1:2152")
	upfStack := udpIn(t, l.host, "192.0.2.2:2152") // what is not steered lands here
	upf := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.2:2152"))
	send := func(dst netip.AddrPort, payload string) {
		t.Helper()
		if _, err := gnb.WriteToUDP(gpdu(0x101, 1, 9, innerUDP(ue, dst, []byte(payload))), upf); err != nil {
			t.Fatal(err)
		}
	}

	send(svc, "hello")
	got, from, ok := readUDP(app, 2*time.Second)
	if !ok || string(got) != "hello" || from != ue {
		t.Fatalf("app got %q from %v (ok %v); want \"hello\" from %v, decapsulated", got, from, ok, ue)
	}
	if _, err := app.WriteToUDPAddrPort([]byte("hello back"), from); err != nil {
		t.Fatal(err)
	}
	reply, _, ok := readUDP(gnb, 2*time.Second)
	want := gpdu(0x202, 0, 9, innerUDP(svc, ue, []byte("hello back")))
	// The inner IPv4 ID and DF are the app's kernel's choice: take them
	// from the reply. Both checksums must be right as they arrive: the UE
	// checks them, and no NIC completes a partial one inside the tunnel.
	if ok && len(reply) == len(want) {
		in := reply[16:]
		if !ipv4Valid(in[:20]) {
			t.Fatalf("inner IPv4 header checksum invalid: %x", in[:20])
		}
		if !udpValid(in) {
			t.Fatalf("inner UDP checksum %x invalid (left partial?): %x", in[26:28], in)
		}
		copy(want[16+4:], in[4:8])
		copy(want[16+10:], in[10:12])
		copy(want[16+26:], in[26:28])
	}
	if !ok || !bytes.Equal(reply, want) {
		t.Fatalf("gNB got %x (ok %v)\nwant %x", reply, ok, want)
	}

	// Port 8 is not the rule's: the G-PDU goes to the host's own stack.
	send(netip.MustParseAddrPort("10.0.0.7:8"), "not for the app")
	if p, _, ok := readUDP(upfStack, 2*time.Second); !ok || !bytes.HasSuffix(p, []byte("not for the app")) {
		t.Fatalf("unsteered G-PDU not at the host stack: %x %v", p, ok)
	}
	if p, _, ok := readUDP(other, 200*time.Millisecond); ok {
		t.Fatalf("the instance saw an unsteered packet: %q", p)
	}
	cnt, err := st.Counters()
	must(t, err)
	if c := cnt["echo-1/edge-echo-uplink"]; c.Packets != 1 {
		t.Fatalf("counters %+v; want 1 packet on echo-1/edge-echo-uplink", cnt)
	}

	// The instance is gone: its rule goes, the next G-PDU is not steered.
	must(t, st.Sync(DataplaneState{}))
	send(svc, "after")
	if p, _, ok := readUDP(upfStack, 2*time.Second); !ok || !bytes.HasSuffix(p, []byte("after")) {
		t.Fatalf("after removal: G-PDU not at the host stack: %x %v", p, ok)
	}
	if p, _, ok := readUDP(app, 200*time.Millisecond); ok {
		t.Fatalf("after removal the app still got %q", p)
	}
	if cnt, _ := st.Counters(); len(cnt) != 0 {
		t.Fatalf("counters after removal %+v", cnt)
	}
}

func ipv4Valid(h []byte) bool {
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}

// udpValid checks the UDP checksum of an IPv4 packet (RFC 768: over the
// pseudo-header and the datagram; 0 means none was sent, which the echo
// app's kernel never does).
func udpValid(p []byte) bool {
	ihl := int(p[0]&0x0f) * 4
	u := p[ihl:]
	if binary.BigEndian.Uint16(u[6:]) == 0 {
		return false
	}
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(p[12:20])
	sum += 17 + uint32(len(u))
	add(u)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}
