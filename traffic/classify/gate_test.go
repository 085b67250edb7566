package classify

import (
	"bytes"
	"net"
	"net/netip"
	"reflect"
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

// TestSteerSetsMAC: with Dest.MAC, what reaches the app is addressed to it:
// the decapsulated or as-is FORWARD_* packet (checked in the output bytes)
// and the DUPLICATE_* copy (a real clone to lo; the copy's bytes are checked
// on veths by TestVethSteering) while the original comes out byte for byte
// as it went in.
func TestSteerSetsMAC(t *testing.T) {
	c := newClassifier(t)
	mac := net.HardwareAddr{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	gtp := gtpFrame(gtpu(7, false, [][]byte{pduSession(1, 9, 0)}, innerUE()))
	decapped := append(append(append([]byte{}, mac...), gtp[6:12]...), 0x08, 0x00)
	decapped = append(decapped, innerUE()...)
	cases := []struct {
		a           Action
		dest        int
		frame, want []byte
		rc          uint32
	}{
		{ActionForwardDecapsulated, 4242, gtp, decapped, tcActRedirect},
		{ActionForwardDecapsulated, 4242, v4udp(), withDst(v4udp(), mac), tcActRedirect},
		{ActionForwardEncapsulated, 4242, gtp, withDst(gtp, mac), tcActRedirect},
		{ActionForwardEncapsulated, 4242, v4udp(), withDst(v4udp(), mac), tcActRedirect},
		{ActionDuplicateDecapsulated, loIndex(t), gtp, gtp, tcActOK},
		{ActionDuplicateDecapsulated, loIndex(t), v4udp(), v4udp(), tcActOK},
		{ActionDuplicateEncapsulated, loIndex(t), gtp, gtp, tcActOK},
		{ActionPassthrough, 4242, gtp, gtp, tcActOK}, // not steered: no MAC
	}
	for _, tc := range cases {
		if err := c.Apply([]Rule{{ID: "s", Action: tc.a, Dest: Dest{Ifindex: tc.dest, MAC: mac},
			Filters: []Filter{{Protocol: []string{"UDP"}}}}}); err != nil {
			t.Fatal(err)
		}
		if rc, out := runData(t, c.Program(), tc.frame); rc != tc.rc || !bytes.Equal(out, tc.want) {
			t.Errorf("%s on %d bytes: rc=%d\n got %x\nwant %x", tc.a, len(tc.frame), rc, out, tc.want)
		}
	}
	if s := stats(t, c); s.SteerFailed != 0 {
		t.Errorf("stats %+v", s)
	}
	if _, err := Compile([]Rule{{ID: "r", Action: ActionForwardDecapsulated, Dest: Dest{Ifindex: 1, MAC: mac[:3]},
		Filters: []Filter{{}}}}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("rules[0].dest.mac")) {
		t.Fatalf("short MAC: err = %v", err)
	}
}

// TestReturnPathTooBig: a GSO super-packet (its GTP-U length would be the
// whole's in every segment) and a packet over the uplink MTU once
// encapsulated are dropped and counted; at the MTU exactly, or with no MTU
// set, the packet is encapsulated.
func TestReturnPathTooBig(t *testing.T) {
	c := newClassifier(t)
	p := UEPath{GNB: netip.MustParseAddr("172.16.0.2"), TEID: 0x202, QFI: 9, Source: netip.MustParseAddr("172.16.0.1")}
	if err := c.SetUE(netip.MustParseAddr("10.45.0.7"), p); err != nil {
		t.Fatal(err)
	}
	in := ip4{src: "10.0.0.7", dst: "10.45.0.7", proto: 17}.build(udp(7, 40000, make([]byte, 1000)))
	frame, want := eth(0x0800, in), encapsulated(eth(0x0800, nil), p, 0, in)
	check := func(what string, ctx skbCtx, wantRC uint32, wantTooBig uint64) {
		t.Helper()
		rc, out, _ := runCtx(t, c.ReturnPath(), frame, ctx)
		if rc != wantRC || wantRC == tcActOK && !bytes.Equal(out, want) {
			t.Errorf("%s: rc=%d, want %d", what, rc, wantRC)
		}
		if s := stats(t, c); s.TooBig != wantTooBig || s.EncapFailed != 0 {
			t.Errorf("%s: stats %+v, want TooBig %d", what, s, wantTooBig)
		}
	}
	gso := func(segs, size uint32) skbCtx {
		var x skbCtx
		x[41], x[44] = segs, size // gso_segs, gso_size
		return x
	}
	check("plain", skbCtx{}, tcActOK, 0)
	check("gso 2 segments", gso(2, 536), tcActShot, 1)
	check("gso segments not counted yet", gso(0, 536), tcActShot, 2)
	check("gso 1 segment", gso(1, 0), tcActOK, 2)
	if err := c.Configure(ReturnConfig{UplinkMTU: len(in) + 44}); err != nil {
		t.Fatal(err)
	}
	check("at the MTU", skbCtx{}, tcActOK, 2)
	if err := c.Configure(ReturnConfig{UplinkMTU: len(in) + 43}); err != nil {
		t.Fatal(err)
	}
	check("one over the MTU", skbCtx{}, tcActShot, 3)
	if err := c.Configure(ReturnConfig{}); err != nil {
		t.Fatal(err)
	}
	check("no MTU", skbCtx{}, tcActOK, 3)
	for _, mtu := range []int{-1, 67, 65536} {
		if err := c.Configure(ReturnConfig{UplinkMTU: mtu}); err == nil {
			t.Errorf("Configure took uplink MTU %d", mtu)
		}
	}
}

// TestStatsMatchMap: every stats map index (STAT_*, up to STAT_MAX) has its
// Stats field, and the other way round.
func TestStatsMatchMap(t *testing.T) {
	c := newClassifier(t)
	var s Stats
	if n, fields := int(c.objs.Stats.MaxEntries()), reflect.TypeOf(s).NumField(); n != fields || len(s.statFields()) != n {
		t.Fatalf("stats map has %d entries, Stats %d fields, statFields %d", n, fields, len(s.statFields()))
	}
}
