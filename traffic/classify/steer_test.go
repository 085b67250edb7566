package classify

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

const tcActRedirect = 7

// runData runs prog on frame and returns the verdict and the frame as the
// program left it (BPF_PROG_TEST_RUN does not deliver redirected packets,
// so the bytes are checked here).
func runData(t testing.TB, prog *ebpf.Program, frame []byte) (uint32, []byte) {
	t.Helper()
	opts := ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256)}
	ret, err := prog.Run(&opts)
	if err != nil {
		t.Fatalf("prog run (%d bytes): %v", len(frame), err)
	}
	return ret, opts.DataOut
}

func loIndex(t *testing.T) int {
	t.Helper()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatalf("lo: %v", err)
	}
	return lo.Index
}

func stats(t *testing.T, c *Classifier) Stats {
	t.Helper()
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dlInner is a packet from an app server to a UE.
func dlInner() []byte {
	return ip4{src: "198.51.100.9", dst: "10.45.0.7", proto: 6}.build(tcp(80, 33000))
}

func TestForwardDecapsulated(t *testing.T) {
	c := newClassifier(t)
	v6in := v6tcp()[14:]
	padded := append(gtpFrame(gtpu(7, false, nil, innerUE())), 0, 0, 0, 0, 0, 0)
	cases := []struct {
		name         string
		frame, inner []byte
		etype        uint16
	}{
		{"v4 no ext", gtpFrame(gtpu(7, false, nil, innerUE())), innerUE(), 0x0800},
		{"v4 seq only", gtpFrame(gtpu(7, true, nil, innerUE())), innerUE(), 0x0800},
		{"v4 pdu session", gtpFrame(gtpu(7, false, [][]byte{pduSession(1, 9, 0)}, innerUE())), innerUE(), 0x0800},
		{"v6 two exts", gtpFrame(func() []byte {
			g := gtpu(7, false, [][]byte{{1, 0xaa, 0xbb, 0x85}, pduSession(1, 9, 0)}, v6in)
			g[11] = 0x40
			return g
		}()), v6in, 0x86dd},
		{"v6 in v6 outer", eth(0x86dd, ip6{src: "2001:db8:ff::1", dst: "2001:db8:ff::2", nh: 17}.build(
			udp(2152, 2152, gtpu(7, false, [][]byte{pduSession(1, 9, 0)}, v6in)))), v6in, 0x86dd},
		{"outer padding trimmed", padded, innerUE(), 0x0800},
	}
	if err := c.Apply([]Rule{{ID: "fd", Action: ActionForwardDecapsulated, Dest: Dest{Ifindex: 4242},
		Filters: []Filter{{TunnelType: "GTP_U"}}}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, out := runData(t, c.Program(), tc.frame)
			want := append(append([]byte{}, tc.frame[:12]...), byte(tc.etype>>8), byte(tc.etype))
			want = append(want, tc.inner...)
			if rc != tcActRedirect || !bytes.Equal(out, want) {
				t.Fatalf("rc=%d\n got %x\nwant %x", rc, out, want)
			}
		})
	}
	if s := stats(t, c); s.SteerFailed != 0 {
		t.Fatalf("stats %+v", s)
	}
	// A VLAN-tagged G-PDU is not decapsulated (the MAC-mode cut would land
	// behind the tag): it goes on unchanged and is counted.
	f := gtpFrame(gtpu(7, false, nil, innerUE()))
	tagged := append(append(append([]byte{}, f[:12]...), 0x81, 0, 0, 7), f[12:]...)
	if rc, out := runData(t, c.Program(), tagged); rc != tcActOK || !bytes.Equal(out, tagged) {
		t.Fatalf("vlan: rc=%d changed=%v", rc, !bytes.Equal(out, tagged))
	}
	if s := stats(t, c); s.SteerFailed != 1 {
		t.Fatalf("vlan not counted: %+v", s)
	}
	// A plain packet matching a FORWARD_DECAPSULATED rule is already
	// decapsulated: redirected as is.
	if err := c.Apply([]Rule{{ID: "fd", Action: ActionForwardDecapsulated, Dest: Dest{Ifindex: 4242},
		Filters: []Filter{{Protocol: []string{"UDP"}}}}}); err != nil {
		t.Fatal(err)
	}
	if rc, out := runData(t, c.Program(), v4udp()); rc != tcActRedirect || !bytes.Equal(out, v4udp()) {
		t.Fatalf("plain: rc=%d out=%x", rc, out)
	}
}

func TestForwardAndDuplicate(t *testing.T) {
	c := newClassifier(t)
	lo := loIndex(t)
	frames := map[string][]byte{
		"v4 inner": gtpFrame(gtpu(7, false, [][]byte{pduSession(1, 9, 0)}, innerUE())),
		"v6 inner": gtpFrame(gtpu(7, true, nil, v6tcp()[14:])),
		"v6 outer": eth(0x86dd, ip6{src: "2001:db8:ff::1", dst: "2001:db8:ff::2", nh: 17}.build(udp(2152, 2152, gtpu(7, false, nil, innerUE())))),
		"plain":    v4udp(),
	}
	cases := []struct {
		a    Action
		dest int
		rc   uint32
	}{
		{ActionForwardEncapsulated, 4242, tcActRedirect},
		// Duplicates go through a real clone_redirect (to lo); the original
		// must come out byte for byte as it went in.
		{ActionDuplicateEncapsulated, lo, tcActOK},
		{ActionDuplicateDecapsulated, lo, tcActOK},
		{ActionPassthrough, 4242, tcActOK},
		{ActionForwardDecapsulated, 0, tcActOK}, // no destination: mark only
	}
	for _, tc := range cases {
		if err := c.Apply([]Rule{{ID: "s", Action: tc.a, Dest: Dest{Ifindex: tc.dest},
			Filters: []Filter{{Protocol: []string{"UDP"}}}}}); err != nil {
			t.Fatal(err)
		}
		for name, f := range frames {
			rc, out := runData(t, c.Program(), f)
			if rc != tc.rc || !bytes.Equal(out, f) {
				t.Errorf("%s/%s: rc=%d (want %d)\n got %x\nwant %x", tc.a, name, rc, tc.rc, out, f)
			}
		}
	}
	if s := stats(t, c); s.SteerFailed != 0 {
		t.Fatalf("stats %+v", s)
	}
	// A clone to an interface that does not exist fails; the original
	// still passes, and the failure is counted.
	if err := c.Apply([]Rule{{ID: "s", Action: ActionDuplicateDecapsulated, Dest: Dest{Ifindex: 1 << 30},
		Filters: []Filter{{Protocol: []string{"UDP"}}}}}); err != nil {
		t.Fatal(err)
	}
	f := frames["v4 inner"]
	if rc, out := runData(t, c.Program(), f); rc != tcActOK || !bytes.Equal(out, f) {
		t.Fatalf("bad dest: rc=%d out=%x", rc, out)
	}
	if s := stats(t, c); s.SteerFailed != 1 {
		t.Fatalf("clone failure not counted: %+v", s)
	}
}

func TestCompileDest(t *testing.T) {
	_, err := Compile([]Rule{{ID: "r", Action: ActionForwardDecapsulated, Dest: Dest{Ifindex: -1}, Filters: []Filter{{}}}})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("rules[0].dest.ifindex")) {
		t.Fatalf("err = %v", err)
	}
}

// encapsulated builds, independently of the C code, what the return path
// must send for inner: IPv4/UDP 2152/GTP-U with a DL PDU Session Container.
func encapsulated(macs []byte, p UEPath, tos byte, inner []byte) []byte {
	o := make([]byte, 44)
	o[0], o[1], o[8], o[9] = 0x45, tos, 64, 17
	binary.BigEndian.PutUint16(o[2:], uint16(44+len(inner)))
	copy(o[12:], p.Source.AsSlice())
	copy(o[16:], p.GNB.AsSlice())
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(o[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(o[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(o[20:], 2152)
	binary.BigEndian.PutUint16(o[22:], 2152)
	binary.BigEndian.PutUint16(o[24:], uint16(24+len(inner)))
	o[28], o[29] = 0x34, 0xff // v1, PT, E; G-PDU
	binary.BigEndian.PutUint16(o[30:], uint16(8+len(inner)))
	binary.BigEndian.PutUint32(o[32:], p.TEID)
	o[39] = 0x85
	copy(o[40:], []byte{1, 0x00, p.QFI, 0}) // DL PDU SESSION INFORMATION
	f := append(append([]byte{}, macs[:12]...), 0x08, 0x00)
	return append(append(f, o...), inner...)
}

func ipv4HeaderValid(h []byte) bool {
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}

func TestReturnPath(t *testing.T) {
	c := newClassifier(t)
	p4 := UEPath{GNB: netip.MustParseAddr("172.16.0.2"), TEID: 0x01020304, QFI: 9, Source: netip.MustParseAddr("172.16.0.1")}
	p6 := UEPath{GNB: netip.MustParseAddr("172.16.0.3"), TEID: 0xfeedbeef, QFI: 63, Source: netip.MustParseAddr("172.16.0.1")}
	if err := c.SetUE(netip.MustParseAddr("10.45.0.7"), p4); err != nil {
		t.Fatal(err)
	}
	if err := c.SetUE(netip.MustParseAddr("2001:db8::1"), p6); err != nil {
		t.Fatal(err)
	}
	in4 := ip4{src: "198.51.100.9", dst: "10.45.0.7", proto: 6, tos: 46 << 2}.build(tcp(80, 33000))
	in6 := ip6{src: "2001:db8:1::5", dst: "2001:db8::1", nh: 6, tc: 0xb8}.build(tcp(8080, 40000))
	cases := []struct {
		name  string
		frame []byte
		want  []byte
	}{
		{"v4 UE", eth(0x0800, in4), encapsulated(eth(0x0800, nil), p4, 46<<2, in4)},
		{"v6 UE", eth(0x86dd, in6), encapsulated(eth(0x0800, nil), p6, 0xb8, in6)},
		{"padding dropped", append(eth(0x0800, in4), 0, 0, 0, 0), encapsulated(eth(0x0800, nil), p4, 46<<2, in4)},
	}
	for _, tc := range cases {
		rc, out := runData(t, c.ReturnPath(), tc.frame)
		if rc != tcActOK || !bytes.Equal(out, tc.want) {
			t.Errorf("%s: rc=%d\n got %x\nwant %x", tc.name, rc, out, tc.want)
		}
		if len(out) >= 34 && !ipv4HeaderValid(out[14:34]) {
			t.Errorf("%s: outer IPv4 checksum invalid", tc.name)
		}
	}
	// The classifier reads what the return path writes: TEID and QFI.
	if err := c.Apply([]Rule{{ID: "dl", Action: ActionPassthrough, Filters: []Filter{{Tag: []string{"0x01020304"}, QCI: ip(9),
		DstAddress: []string{"10.45.0.7"}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, out := runData(t, c.ReturnPath(), eth(0x0800, in4)); true {
		if rc, mark := run(t, c.Program(), out); rc != tcActOK || mark != 1 {
			t.Errorf("classifier on encapsulated output: rc=%d mark=%d", rc, mark)
		}
	}

	// Uplink configured: redirected (with neighbour resolution).
	if err := c.Configure(ReturnConfig{Uplink: 4242}); err != nil {
		t.Fatal(err)
	}
	if rc, out := runData(t, c.ReturnPath(), eth(0x0800, in4)); rc != tcActRedirect || !bytes.Equal(out, cases[0].want) {
		t.Errorf("uplink: rc=%d out=%x", rc, out)
	}

	// Unknown UE: dropped and counted, never sent raw.
	unknown := eth(0x0800, ip4{src: "198.51.100.9", dst: "10.45.0.8", proto: 17}.build(udp(53, 5353, nil)))
	if rc, _ := runData(t, c.ReturnPath(), unknown); rc != tcActShot {
		t.Errorf("unknown UE: rc=%d", rc)
	}
	if err := c.DeleteUE(netip.MustParseAddr("2001:db8::1")); err != nil {
		t.Fatal(err)
	}
	if rc, _ := runData(t, c.ReturnPath(), eth(0x86dd, in6)); rc != tcActShot {
		t.Errorf("deleted UE: rc=%d", rc)
	}
	if n, err := c.DroppedUnknownUE(); err != nil || n != 2 {
		t.Errorf("DroppedUnknownUE = %d, %v; want 2", n, err)
	}
	// Link traffic the app needs stays local: ARP, IPv6 link-local/multicast.
	arp := eth(0x0806, make([]byte, 28))
	ns := eth(0x86dd, ip6{src: "fe80::1", dst: "ff02::1:ff00:1", nh: 58}.build(make([]byte, 24)))
	for name, f := range map[string][]byte{"arp": arp, "nd": ns} {
		if rc, out := runData(t, c.ReturnPath(), f); rc != tcActOK || !bytes.Equal(out, f) {
			t.Errorf("%s: rc=%d changed", name, rc)
		}
	}
	if s := stats(t, c); s.EncapFailed != 0 || s.DroppedUnknownUE != 2 {
		t.Errorf("stats %+v", s)
	}
	if err := c.SetUE(netip.MustParseAddr("10.45.0.9"), UEPath{GNB: netip.MustParseAddr("2001:db8::9"), Source: p4.Source}); err == nil {
		t.Error("SetUE accepted an IPv6 gNB")
	}
}
