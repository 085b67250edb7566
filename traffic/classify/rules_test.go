package classify

import (
	"encoding/binary"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// sctp is an SCTP common header (12 octets: ports, verification tag,
// checksum) followed by payload.
func sctp(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 12, 12+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], 0xcafef00d)
	return append(b, payload...)
}

// TestSCTPPorts: SCTP ports match like TCP/UDP ones, plain and inside
// GTP-U, IPv4 and IPv6; a header cut short of its 12 octets has no ports.
func TestSCTPPorts(t *testing.T) {
	c := newClassifier(t)
	v4 := eth(0x0800, ip4{src: "10.0.0.1", dst: "192.0.2.10", proto: 132}.build(sctp(36412, 38412, []byte{1, 0, 0, 4})))
	v6 := eth(0x86dd, ip6{src: "2001:db8::1", dst: "2001:db8:1::5", nh: 132}.build(sctp(36412, 38412, nil)))
	short := eth(0x0800, ip4{src: "10.0.0.1", dst: "192.0.2.10", proto: 132}.build(sctp(36412, 38412, nil)[:8]))
	inner := ip4{src: "10.45.0.7", dst: "198.51.100.9", proto: 132}.build(sctp(5000, 38412, nil))
	gtp := gtpFrame(gtpu(7, false, nil, inner))
	cases := []struct {
		name  string
		f     Filter
		frame []byte
		match bool
	}{
		{"dst port", Filter{Protocol: []string{"SCTP"}, DstPort: []string{"38412"}}, v4, true},
		{"src port range", Filter{SrcPort: []string{"36000-37000"}}, v4, true},
		{"port miss", Filter{DstPort: []string{"38413"}}, v4, false},
		{"v6", Filter{Protocol: []string{"132"}, DstPort: []string{"38412"}, SrcPort: []string{"36412"}}, v6, true},
		{"header cut short", Filter{DstPort: []string{"38412"}}, short, false},
		{"header cut short, protocol only", Filter{Protocol: []string{"SCTP"}}, short, true},
		{"inner", Filter{TunnelType: "GTP_U", Protocol: []string{"SCTP"}, DstPort: []string{"38412"}}, gtp, true},
	}
	for _, tc := range cases {
		if err := c.Apply([]Rule{{ID: "s", Action: ActionDrop, Filters: []Filter{tc.f}}}); err != nil {
			t.Fatal(err)
		}
		rc, mark := run(t, c.Program(), tc.frame)
		if got := rc == tcActShot && mark == 1; got != tc.match || !got && (rc != tcxNext || mark != staleMark) {
			t.Errorf("%s: rc=%#x mark=%#x, want match=%v", tc.name, rc, mark, tc.match)
		}
	}
}

// TestIPv4MappedFilters: an IPv4-mapped address or prefix in a filter means
// the IPv4 host or prefix (such addresses are not on the wire in IPv6
// headers): it compiles to exactly the IPv4 filter's entries and matches
// IPv4 packets; a mapped prefix shorter than /96 is refused with its field
// path.
func TestIPv4MappedFilters(t *testing.T) {
	entries := func(t *testing.T, f Filter) []classifyRuleEntry {
		t.Helper()
		c, err := Compile([]Rule{{ID: "r", Action: ActionDrop, Filters: []Filter{f}}})
		if err != nil {
			t.Fatal(err)
		}
		return c.entries
	}
	same := []struct{ mapped, v4 string }{
		{"::ffff:10.0.0.1/128", "10.0.0.1/32"},
		{"::ffff:10.0.0.1", "10.0.0.1"},
		{"::ffff:10.1.2.3/104", "10.0.0.0/8"},
		{"::ffff:0.0.0.0/96", "0.0.0.0/0"},
		{"::ffff:10.0.0.1-::ffff:10.0.0.6", "10.0.0.1-10.0.0.6"},
		{"::ffff:10.0.0.1-10.0.0.6", "10.0.0.1-10.0.0.6"},
	}
	for _, s := range same {
		got := entries(t, Filter{SrcAddress: []string{s.mapped}, DstAddress: []string{"192.0.2.0/24"}})
		want := entries(t, Filter{SrcAddress: []string{s.v4}, DstAddress: []string{"192.0.2.0/24"}})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s compiled unlike %s:\n got %+v\nwant %+v", s.mapped, s.v4, got, want)
		}
	}
	refused := []struct {
		f    Filter
		path string
	}{
		{Filter{SrcAddress: []string{"10.0.0.1", "::ffff:10.0.0.0/95"}}, "rules[0].trafficFilter[0].srcAddress[1]"},
		{Filter{DstAddress: []string{"::ffff:10.0.0.1-2001:db8::1"}}, "rules[0].trafficFilter[0].dstAddress[0]"},
		{Filter{SrcAddress: []string{"::ffff:10.0.0.1/128"}, DstAddress: []string{"2001:db8::1"}}, "rules[0].trafficFilter[0].dstAddress"},
	}
	for _, r := range refused {
		_, err := Compile([]Rule{{ID: "r", Action: ActionDrop, Filters: []Filter{r.f}}})
		if err == nil || !strings.Contains(err.Error(), r.path) {
			t.Errorf("%+v: err = %v, want it to name %s", r.f, err, r.path)
		}
	}

	c := newClassifier(t)
	if err := c.Apply([]Rule{{ID: "m", Action: ActionDrop, Filters: []Filter{{SrcAddress: []string{"::ffff:10.0.0.1/128"}}}}}); err != nil {
		t.Fatal(err)
	}
	if rc, mark := run(t, c.Program(), v4udp()); rc != tcActShot || mark != 1 {
		t.Errorf("IPv4 packet from 10.0.0.1: rc=%d mark=%#x, want matched", rc, mark)
	}
	v6mapped := eth(0x86dd, ip6{src: "::ffff:10.0.0.1", dst: "2001:db8:1::5", nh: 17}.build(udp(1, 2, nil)))
	if rc, mark := run(t, c.Program(), v6mapped); rc != tcxNext || mark != staleMark {
		t.Errorf("IPv6 packet from ::ffff:10.0.0.1: rc=%#x mark=%#x, want no match", rc, mark)
	}
}

// TestQCIRange: qCI is matched against the 6-bit QFI; any value outside
// 0-63 (an LTE QCI such as 65 or 79, or one that would wrap to a valid QFI
// if truncated) is refused with its field path, never compiled.
func TestQCIRange(t *testing.T) {
	for _, q := range []int{-1, 64, 65, 79, 255, 256 + 9, 1<<32 + 9} {
		_, err := Compile([]Rule{{ID: "r", Action: ActionDrop, Filters: []Filter{{DstPort: []string{"1"}}, {QCI: ip(q)}}}})
		if err == nil || !strings.Contains(err.Error(), "rules[0].trafficFilter[1].qCI") {
			t.Errorf("qCI %d: err = %v, want refused at rules[0].trafficFilter[1].qCI", q, err)
		}
	}
	// From JSON (MEC 011 qCI is an integer) to a match on the QFI.
	var f Filter
	if err := json.Unmarshal([]byte(`{"qCI": 63}`), &f); err != nil {
		t.Fatal(err)
	}
	c := newClassifier(t)
	if err := c.Apply([]Rule{{ID: "q", Action: ActionDrop, Filters: []Filter{f}}}); err != nil {
		t.Fatal(err)
	}
	for qfi, want := range map[byte]bool{63: true, 0: false, 31: false} {
		rc, mark := run(t, c.Program(), gtpFrame(gtpu(7, false, [][]byte{pduSession(0, qfi, 0)}, innerUE())))
		if got := rc == tcActShot && mark == 1; got != want {
			t.Errorf("QFI %d: rc=%#x mark=%#x, want match=%v", qfi, rc, mark, want)
		}
	}
}
