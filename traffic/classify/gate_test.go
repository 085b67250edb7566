package classify

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

// TestReturnPathUEPrefixes: with UE pools configured, only destinations
// inside them are UE traffic; an app's DNS query or call to the core passes
// untouched instead of being dropped as an unknown UE.
func TestReturnPathUEPrefixes(t *testing.T) {
	c := newClassifier(t)
	p := UEPath{GNB: netip.MustParseAddr("172.16.0.2"), TEID: 0x202, QFI: 9, Source: netip.MustParseAddr("172.16.0.1")}
	if err := c.SetUE(netip.MustParseAddr("10.45.0.7"), p); err != nil {
		t.Fatal(err)
	}
	if err := c.Configure(ReturnConfig{UEPrefixes: []netip.Prefix{
		netip.MustParsePrefix("10.45.0.0/16"), netip.MustParsePrefix("2001:db8:45::/48")}}); err != nil {
		t.Fatal(err)
	}
	known := ip4{src: "10.0.0.7", dst: "10.45.0.7", proto: 17}.build(udp(7, 40000, []byte("hi")))
	unknownUE := eth(0x0800, ip4{src: "10.0.0.7", dst: "10.45.9.9", proto: 17}.build(udp(7, 40000, nil)))
	unknownUE6 := eth(0x86dd, ip6{src: "2001:db8:1::7", dst: "2001:db8:45::9", nh: 17}.build(udp(7, 40000, nil)))
	dns := eth(0x0800, ip4{src: "10.0.0.7", dst: "192.0.2.53", proto: 17}.build(udp(5353, 53, nil)))
	core6 := eth(0x86dd, ip6{src: "2001:db8:1::7", dst: "2001:db8:46::1", nh: 6}.build(tcp(80, 443)))
	// A v4-mapped view must not let 10.45/16 cover an IPv6 address whose
	// low bits happen to match.
	lookalike := eth(0x86dd, ip6{src: "2001:db8:1::7", dst: "::a2d:7", nh: 17}.build(udp(7, 1, nil)))

	if rc, out := runData(t, c.ReturnPath(), eth(0x0800, known)); rc != tcActOK || !bytes.Equal(out, encapsulated(eth(0x0800, nil), p, 0, known)) {
		t.Fatalf("known UE: rc=%d out=%x", rc, out)
	}
	for name, f := range map[string][]byte{"dns": dns, "core v6": core6, "lookalike": lookalike} {
		if rc, out := runData(t, c.ReturnPath(), f); rc != tcActOK || !bytes.Equal(out, f) {
			t.Errorf("%s: rc=%d changed=%v; want passed untouched", name, rc, !bytes.Equal(out, f))
		}
	}
	for name, f := range map[string][]byte{"v4": unknownUE, "v6": unknownUE6} {
		if rc, _ := runData(t, c.ReturnPath(), f); rc != tcActShot {
			t.Errorf("unknown UE in pool %s: rc=%d; want dropped", name, rc)
		}
	}
	if s := stats(t, c); s.DroppedUnknownUE != 2 {
		t.Errorf("stats %+v; want 2 unknown-UE drops", s)
	}

	// Without pools the strict behaviour is back: DNS is dropped.
	if err := c.Configure(ReturnConfig{}); err != nil {
		t.Fatal(err)
	}
	if rc, _ := runData(t, c.ReturnPath(), dns); rc != tcActShot {
		t.Errorf("no pools: dns rc=%d; want dropped", rc)
	}
	// Pools replaced: the old one no longer counts.
	if err := c.Configure(ReturnConfig{UEPrefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}); err != nil {
		t.Fatal(err)
	}
	if rc, out := runData(t, c.ReturnPath(), unknownUE); rc != tcActOK || !bytes.Equal(out, unknownUE) {
		t.Errorf("after replacing pools: 10.45.9.9 rc=%d; want passed", rc)
	}
	if rc, _ := runData(t, c.ReturnPath(), dns); rc != tcActShot {
		t.Errorf("after replacing pools: 192.0.2.53 rc=%d; want dropped (unknown UE)", rc)
	}
	if err := c.Configure(ReturnConfig{UEPrefixes: []netip.Prefix{{}}}); err == nil {
		t.Error("Configure took an invalid prefix")
	}
}

// TestForwardDecapsulatedSetsMAC: with Dest.MAC the decapsulated frame is
// addressed to the app, the rest as without it.
func TestForwardDecapsulatedSetsMAC(t *testing.T) {
	c := newClassifier(t)
	mac := net.HardwareAddr{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	if err := c.Apply([]Rule{{ID: "fd", Action: ActionForwardDecapsulated, Dest: Dest{Ifindex: 4242, MAC: mac},
		Filters: []Filter{{TunnelType: "GTP_U"}}}}); err != nil {
		t.Fatal(err)
	}
	frame := gtpFrame(gtpu(7, false, [][]byte{pduSession(1, 9, 0)}, innerUE()))
	want := append(append(append([]byte{}, mac...), frame[6:12]...), 0x08, 0x00)
	want = append(want, innerUE()...)
	if rc, out := runData(t, c.Program(), frame); rc != tcActRedirect || !bytes.Equal(out, want) {
		t.Fatalf("rc=%d\n got %x\nwant %x", rc, out, want)
	}
	if _, err := Compile([]Rule{{ID: "r", Action: ActionForwardDecapsulated, Dest: Dest{Ifindex: 1, MAC: mac[:3]},
		Filters: []Filter{{}}}}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("rules[0].dest.mac")) {
		t.Fatalf("short MAC: err = %v", err)
	}
}
