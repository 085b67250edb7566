package classify

import (
	"encoding/binary"
	"strings"
	"testing"
)

const (
	tcActOK   = 0
	tcActShot = 2
)

func ip(v int) *int { return &v }

// Frames shared by the cases.
var (
	v4udp = func() []byte {
		return eth(0x0800, ip4{src: "10.0.0.1", dst: "192.0.2.10", proto: 17, tos: 46 << 2}.build(udp(5000, 53, []byte("hello"))))
	}
	v4tcp = func() []byte {
		return eth(0x0800, ip4{src: "10.0.0.1", dst: "192.0.2.10", proto: 6}.build(tcp(40000, 443)))
	}
	v6tcp = func() []byte {
		return eth(0x86dd, ip6{src: "2001:db8::1", dst: "2001:db8:1::5", nh: 6, tc: 0xb8}.build(tcp(40000, 8080)))
	}
	innerUE  = func() []byte { return ip4{src: "10.45.0.7", dst: "198.51.100.9", proto: 6}.build(tcp(33000, 80)) }
	gtpFrame = func(g []byte) []byte {
		return eth(0x0800, ip4{src: "172.16.0.1", dst: "172.16.0.2", proto: 17}.build(udp(2152, 2152, g)))
	}
)

func TestClassifyFields(t *testing.T) {
	c := newClassifier(t)
	p := c.Program()
	v6ext := func(nh uint8, ext []byte) []byte {
		return eth(0x86dd, ip6{src: "2001:db8::1", dst: "2001:db8:1::5", nh: nh}.build(append(ext, udp(1, 9999, nil)...)))
	}
	cases := []struct {
		name  string
		f     Filter
		frame []byte
		match bool
	}{
		{"src addr", Filter{SrcAddress: []string{"10.0.0.1"}}, v4udp(), true},
		{"src prefix miss", Filter{SrcAddress: []string{"10.1.0.0/16"}}, v4udp(), false},
		{"dst range", Filter{DstAddress: []string{"192.0.2.5-192.0.2.20"}}, v4udp(), true},
		{"dst range miss", Filter{DstAddress: []string{"192.0.2.11-192.0.2.20"}}, v4udp(), false},
		{"v4 rule vs v6 pkt", Filter{SrcAddress: []string{"0.0.0.0/0"}}, v6tcp(), false},
		{"v6 prefix", Filter{DstAddress: []string{"2001:db8:1::/48"}}, v6tcp(), true},
		{"v6 range", Filter{SrcAddress: []string{"2001:db8::0-2001:db8::ff"}}, v6tcp(), true},
		{"sport", Filter{SrcPort: []string{"5000"}}, v4udp(), true},
		{"dport range", Filter{DstPort: []string{"1-100"}}, v4udp(), true},
		{"dport miss", Filter{DstPort: []string{"54-100"}}, v4udp(), false},
		{"proto udp", Filter{Protocol: []string{"UDP"}}, v4udp(), true},
		{"proto tcp vs udp", Filter{Protocol: []string{"TCP"}}, v4udp(), false},
		{"proto number", Filter{Protocol: []string{"1", "6"}}, v6tcp(), true},
		{"dscp", Filter{DSCP: ip(46)}, v4udp(), true},
		{"dscp miss", Filter{DSCP: ip(10)}, v4udp(), false},
		{"dscp is v4 only", Filter{DSCP: ip(46)}, v6tcp(), false},
		{"tC", Filter{TC: ip(0xb8)}, v6tcp(), true},
		{"v6 ext hdrs hop+dst", Filter{DstPort: []string{"9999"}},
			v6ext(0, append([]byte{60, 0, 0, 0, 0, 0, 0, 0}, []byte{17, 0, 0, 0, 0, 0, 0, 0}...)), true},
		{"v6 first fragment", Filter{DstPort: []string{"9999"}}, v6ext(44, []byte{17, 0, 0, 1, 0, 0, 0, 1}), true},
		{"v6 non-first fragment no ports", Filter{DstPort: []string{"9999"}}, v6ext(44, []byte{17, 0, 0, 8, 0, 0, 0, 1}), false},
		{"v6 non-first fragment proto", Filter{Protocol: []string{"UDP"}}, v6ext(44, []byte{17, 0, 0, 8, 0, 0, 0, 1}), true},
		{"v4 first fragment", Filter{DstPort: []string{"53"}},
			eth(0x0800, ip4{src: "10.0.0.1", dst: "192.0.2.10", proto: 17, frag: 0x2000}.build(udp(5000, 53, nil))), true},
		{"v4 non-first fragment", Filter{DstPort: []string{"53"}},
			eth(0x0800, ip4{src: "10.0.0.1", dst: "192.0.2.10", proto: 17, frag: 0x2003}.build(udp(5000, 53, nil))), false},
		{"vlan", Filter{DstPort: []string{"53"}},
			func() []byte {
				f := v4udp()
				return append(append(append([]byte{}, f[:12]...), 0x81, 0, 0, 7), f[12:]...)
			}(), true},
		// GTP-U
		{"gtp inner addr", Filter{TunnelType: "GTP_U", SrcAddress: []string{"10.45.0.0/16"}}, gtpFrame(gtpu(7, false, nil, innerUE())), true},
		{"plain filter sees outer", Filter{SrcAddress: []string{"10.45.0.0/16"}}, gtpFrame(gtpu(7, false, nil, innerUE())), false},
		{"gtp inner port+proto", Filter{TunnelType: "GTP_U", DstPort: []string{"80"}, Protocol: []string{"TCP"}}, gtpFrame(gtpu(7, true, nil, innerUE())), true},
		{"gtp tunnel addr", Filter{SrcTunnelAddress: []string{"172.16.0.1"}, TgtTunnelAddress: []string{"172.16.0.0/24"}}, gtpFrame(gtpu(7, false, nil, innerUE())), true},
		{"gtp tunnel port", Filter{DstTunnelPort: []string{"2152"}, SrcTunnelPort: []string{"2000-3000"}}, gtpFrame(gtpu(7, false, nil, innerUE())), true},
		{"teid", Filter{Tag: []string{"0x7"}}, gtpFrame(gtpu(7, false, nil, innerUE())), true},
		{"teid miss", Filter{Tag: []string{"8"}}, gtpFrame(gtpu(7, false, nil, innerUE())), false},
		{"qfi DL", Filter{QCI: ip(9)}, gtpFrame(gtpu(7, false, [][]byte{pduSession(0, 9, 0)}, innerUE())), true},
		{"qfi UL", Filter{QCI: ip(9), DstAddress: []string{"198.51.100.9"}}, gtpFrame(gtpu(7, false, [][]byte{pduSession(1, 9, 0)}, innerUE())), true},
		{"qfi after other ext", Filter{QCI: ip(9)},
			gtpFrame(func() []byte {
				g := gtpu(7, false, [][]byte{{1, 0xaa, 0xbb, 0x85}, pduSession(1, 9, 0)}, innerUE())
				g[11] = 0x40 // first extension: UDP port (type 0x40), then the container
				return g
			}()), true},
		{"qfi miss", Filter{QCI: ip(5)}, gtpFrame(gtpu(7, false, [][]byte{pduSession(0, 9, 0)}, innerUE())), false},
		{"qfi absent", Filter{QCI: ip(9)}, gtpFrame(gtpu(7, true, nil, innerUE())), false},
		{"gtp v6 inner", Filter{TunnelType: "GTP_U", DstAddress: []string{"2001:db8:1::5"}}, gtpFrame(gtpu(1, false, nil, v6tcp()[14:])), true},
		{"gtp echo not G-PDU", Filter{Tag: []string{"7"}},
			gtpFrame(func() []byte { g := gtpu(7, false, nil, innerUE()); g[1] = 1; return g }()), false},
		{"gtp length too long", Filter{Tag: []string{"7"}},
			gtpFrame(func() []byte { g := gtpu(7, false, nil, innerUE()); g[3] += 10; return g }()), false},
		{"gtp zero ext length", Filter{Tag: []string{"7"}},
			gtpFrame(func() []byte { g := gtpu(7, false, [][]byte{pduSession(0, 9, 0)}, innerUE()); g[12] = 0; return g }()), false},
		{"gtp inner truncated by length", Filter{TunnelType: "GTP_U", DstPort: []string{"80"}},
			gtpFrame(func() []byte { g := gtpu(7, false, nil, innerUE()); g[3] -= 30; return g[:len(g)-30] }()), false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "r" + string(rune('a'+i%26))
			if err := c.Apply([]Rule{{ID: id, Priority: 1, Action: ActionPassthrough, Filters: []Filter{tc.f}}}); err != nil {
				t.Fatal(err)
			}
			rc, mark := run(t, p, tc.frame)
			wantRC, wantMark := uint32(tcxNext), uint32(staleMark)
			if tc.match {
				wantRC, wantMark = tcActOK, 1
			}
			if rc != wantRC || mark != wantMark {
				t.Fatalf("rc=%#x mark=%#x, want rc=%#x mark=%#x", rc, mark, wantRC, wantMark)
			}
			cnt, err := c.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if got := cnt[id]; tc.match && (got.Packets != 1 || got.Bytes != uint64(len(tc.frame))) || !tc.match && got.Packets != 0 {
				t.Fatalf("counter %+v for frame of %d bytes, match=%v", got, len(tc.frame), tc.match)
			}
		})
	}
}

// Every prefix of a full GTP-U frame (truncated at each layer) must fall to
// "no match" for a rule that needs the inner ports, and never crash.
func TestTruncatedFrames(t *testing.T) {
	c := newClassifier(t)
	full := gtpFrame(gtpu(7, false, [][]byte{pduSession(0, 9, 0)}, innerUE()))
	if err := c.Apply([]Rule{{ID: "inner", Action: ActionDrop, Filters: []Filter{{QCI: ip(9), DstPort: []string{"80"}}}}}); err != nil {
		t.Fatal(err)
	}
	if rc, mark := run(t, c.Program(), full); rc != tcActShot || mark != 1 {
		t.Fatalf("full frame: rc=%d mark=%d", rc, mark)
	}
	// BPF_PROG_TEST_RUN refuses an IPv4 frame shorter than Ethernet + the
	// 20-byte IP header (EINVAL), so truncation starts inside the IP payload;
	// the IP total length still claims the whole packet.
	for n := 14 + 20; n < len(full); n++ {
		if rc, mark := run(t, c.Program(), full[:n]); rc != tcxNext || mark != staleMark {
			t.Fatalf("truncated to %d of %d bytes: rc=%d mark=%d, want no match", n, len(full), rc, mark)
		}
		// Same cut with consistent outer IP and UDP lengths, so only the
		// GTP-U length and the inner headers can tell.
		f := append([]byte{}, full[:n]...)
		binary.BigEndian.PutUint16(f[16:], uint16(n-14))
		if n >= 42 {
			binary.BigEndian.PutUint16(f[38:], uint16(n-34))
		}
		if rc, mark := run(t, c.Program(), f); rc != tcxNext || mark != staleMark {
			t.Fatalf("consistently cut to %d of %d bytes: rc=%d mark=%d, want no match", n, len(full), rc, mark)
		}
	}
}

func TestActionsAndPriority(t *testing.T) {
	c := newClassifier(t)
	any := []Filter{{Protocol: []string{"UDP"}}}
	for _, a := range []Action{ActionDrop, ActionPassthrough, ActionForwardDecapsulated, ActionForwardEncapsulated,
		ActionDuplicateDecapsulated, ActionDuplicateEncapsulated} {
		if err := c.Apply([]Rule{{ID: "x", Action: a, Filters: any}}); err != nil {
			t.Fatal(err)
		}
		rc, mark := run(t, c.Program(), v4udp())
		want := uint32(tcActOK)
		if a == ActionDrop {
			want = tcActShot
		}
		if rc != want || mark != 1 {
			t.Errorf("%s: rc=%d mark=%d, want rc=%d mark=1", a, rc, mark, want)
		}
	}
	// Overlap: listed first but priority 9 loses to priority 2; equal
	// priorities keep input order.
	rules := []Rule{
		{ID: "broad", Priority: 9, Action: ActionDrop, Filters: any},
		{ID: "narrow", Priority: 2, Action: ActionPassthrough, Filters: []Filter{{DstPort: []string{"53"}}}},
		{ID: "tie", Priority: 2, Action: ActionDrop, Filters: []Filter{{DstPort: []string{"53"}}}},
	}
	if err := c.Apply(rules); err != nil {
		t.Fatal(err)
	}
	if rc, mark := run(t, c.Program(), v4udp()); rc != tcActOK || mark != 1 {
		t.Fatalf("overlap: rc=%d mark=%d, want narrow (mark 1)", rc, mark)
	}
	cnt, _ := c.Counters()
	if cnt["narrow"].Packets != 1 || cnt["broad"].Packets != 0 || cnt["tie"].Packets != 0 {
		t.Fatalf("counters %+v", cnt)
	}
	// A rule kept across Apply keeps its count.
	if err := c.Apply(rules[:2]); err != nil {
		t.Fatal(err)
	}
	run(t, c.Program(), v4udp())
	if cnt, _ := c.Counters(); cnt["narrow"].Packets != 2 {
		t.Fatalf("counter across Apply: %+v", cnt)
	}
}

func TestInvalidApplyKeepsOldSet(t *testing.T) {
	c := newClassifier(t)
	if err := c.Apply([]Rule{{ID: "old", Action: ActionDrop, Filters: []Filter{{DstPort: []string{"53"}}}}}); err != nil {
		t.Fatal(err)
	}
	bad := []Rule{
		{ID: "ok", Action: ActionPassthrough, Filters: []Filter{{DstPort: []string{"1"}}}},
		{ID: "a", Action: ActionPassthrough, Filters: []Filter{{DstPort: []string{"2"}}}},
		{ID: "b", Action: ActionPassthrough, Filters: []Filter{{DstPort: []string{"3"}}}},
		{ID: "bad", Action: ActionPassthrough, Filters: []Filter{{SrcAddress: []string{"10.0.0.1", "10.0.0.300"}}}},
	}
	err := c.Apply(bad)
	if err == nil || !strings.Contains(err.Error(), "rules[3].trafficFilter[0].srcAddress[1]") {
		t.Fatalf("err = %v, want field path rules[3].trafficFilter[0].srcAddress[1]", err)
	}
	if rc, mark := run(t, c.Program(), v4udp()); rc != tcActShot || mark != 1 {
		t.Fatalf("old set not in place: rc=%d mark=%d", rc, mark)
	}
}

func TestCompileErrors(t *testing.T) {
	r := func(f Filter) []Rule { return []Rule{{ID: "r", Action: ActionDrop, Filters: []Filter{f}}} }
	cases := []struct {
		rules []Rule
		want  string
	}{
		{[]Rule{{ID: "r", Action: "BOUNCE", Filters: []Filter{{}}}}, "rules[0].action"},
		{[]Rule{{ID: "r", Priority: 256, Action: ActionDrop, Filters: []Filter{{}}}}, "rules[0].priority"},
		{[]Rule{{ID: "r", Action: ActionDrop}}, "rules[0].trafficFilter"},
		{[]Rule{{ID: "r", Action: ActionDrop, Filters: []Filter{{DstPort: []string{"1"}}}}, {ID: "r", Action: ActionDrop, Filters: []Filter{{DstPort: []string{"1"}}}}}, "rules[1].trafficRuleId"},
		{r(Filter{}), "rules[0].trafficFilter[0]: constrains nothing"},
		{r(Filter{DstPort: []string{"80", "90-10"}}), "rules[0].trafficFilter[0].dstPort[1]"},
		{r(Filter{Protocol: []string{"QUIC"}}), "trafficFilter[0].protocol[0]"},
		{r(Filter{Tag: []string{"0x1ffffffff"}}), "trafficFilter[0].tag[0]"},
		{r(Filter{QCI: ip(64)}), "trafficFilter[0].qCI"},
		{r(Filter{DSCP: ip(64)}), "trafficFilter[0].dSCP"},
		{r(Filter{TunnelType: "GRE"}), "trafficFilter[0].tunnelType"},
		{r(Filter{SrcAddress: []string{"10.0.0.9-10.0.0.1"}}), "srcAddress[0]"},
		{r(Filter{SrcAddress: []string{"10.0.0.1"}, DstAddress: []string{"::1"}}), "dstAddress"},
		{r(Filter{SrcPort: make([]string, 200), DstPort: make([]string, 200)}), "srcPort[0]"},
	}
	for _, tc := range cases {
		if _, err := Compile(tc.rules); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Compile(%+v) err = %v, want mention of %s", tc.rules, err, tc.want)
		}
	}
	ports := make([]string, 200)
	for i := range ports {
		ports[i] = "1"
	}
	if _, err := Compile(r(Filter{SrcPort: ports, DstPort: ports})); err == nil || !strings.Contains(err.Error(), "expands past") {
		t.Errorf("40000-entry filter: err = %v", err)
	}
	c, err := Compile(r(Filter{SrcAddress: []string{"10.0.0.1-10.0.0.6"}}))
	if err != nil || c.Entries() != 4 { // .1/32 .2/31 .4/31 .6/32
		t.Fatalf("range expansion: %v entries=%d", err, c.Entries())
	}
}
