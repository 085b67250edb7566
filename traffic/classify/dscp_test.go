package classify

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// withCsum4 fills in the IPv4 header checksum of the packet p.
func withCsum4(p []byte) []byte {
	p[10], p[11] = 0, 0
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	return p
}

// TestSetDSCP: a rule's SetDSCP re-marks what reaches the app — the inner
// header of a decapsulated G-PDU, the packet itself otherwise — with IPv4's
// checksum fixed and the ECN bits kept; a duplicated original goes on as it
// came; PASSTHROUGH re-marks the packet going on.
func TestSetDSCP(t *testing.T) {
	c := newClassifier(t)
	dscp := func(v int) *int { return &v }
	apply := func(r Rule) {
		t.Helper()
		if err := c.Apply([]Rule{r}); err != nil {
			t.Fatal(err)
		}
	}

	// FORWARD_DECAPSULATED: the inner header (ECN ECT(1) set) gets EF.
	inner := withCsum4(ip4{src: "10.45.0.7", dst: "198.51.100.9", proto: 6, tos: 0x01}.build(tcp(33000, 80)))
	apply(Rule{ID: "fd", Action: ActionForwardDecapsulated, Dest: Dest{Ifindex: 4242}, SetDSCP: dscp(46),
		Filters: []Filter{{TunnelType: "GTP_U"}}})
	frame := gtpFrame(gtpu(7, false, [][]byte{pduSession(1, 9, 0)}, inner))
	rc, out := runData(t, c.Program(), frame)
	got := out[14 : 14+len(inner)]
	if rc != tcActRedirect || got[1] != 46<<2|0x01 || !ipv4HeaderValid(got[:20]) || !bytes.Equal(got[20:], inner[20:]) {
		t.Fatalf("decapsulated: rc=%d tos=%#x checksum ok=%v\n got %x\nfrom %x", rc, got[1], ipv4HeaderValid(got[:20]), got, inner)
	}

	// PASSTHROUGH on a plain IPv4 packet: re-marked as it goes on.
	plain := eth(0x0800, withCsum4(ip4{src: "10.0.0.1", dst: "192.0.2.10", proto: 17, tos: 0x02}.build(udp(5000, 53, []byte("q")))))
	apply(Rule{ID: "p", Action: ActionPassthrough, SetDSCP: dscp(10), Filters: []Filter{{Protocol: []string{"UDP"}}}})
	rc, out = runData(t, c.Program(), plain)
	if rc != tcActOK || out[15] != 10<<2|0x02 || !ipv4HeaderValid(out[14:34]) || !bytes.Equal(out[34:len(plain)], plain[34:]) {
		t.Fatalf("passthrough: rc=%d tos=%#x checksum ok=%v", rc, out[15], ipv4HeaderValid(out[14:34]))
	}

	// IPv6 FORWARD_ENCAPSULATED: the traffic class (0xb8: EF, ECN 0) gets
	// DSCP 8; the flow label stays.
	v6 := v6tcp()
	v6[15] |= 0x0a
	v6[16], v6[17] = 0xbc, 0xde
	apply(Rule{ID: "fe", Action: ActionForwardEncapsulated, Dest: Dest{Ifindex: 4242}, SetDSCP: dscp(8),
		Filters: []Filter{{Protocol: []string{"TCP"}}}})
	rc, out = runData(t, c.Program(), v6)
	tc := out[14]<<4 | out[15]>>4
	if rc != tcActRedirect || tc != 8<<2 || out[14]>>4 != 6 || out[15]&0x0f != 0x0a || out[16] != 0xbc || out[17] != 0xde ||
		!bytes.Equal(out[18:len(v6)], v6[18:]) {
		t.Fatalf("v6: rc=%d traffic class %#x, header %x (was %x)", rc, tc, out[14:18], v6[14:18])
	}

	// DUPLICATE_ENCAPSULATED: the copy is re-marked, the original is not.
	apply(Rule{ID: "de", Action: ActionDuplicateEncapsulated, Dest: Dest{Ifindex: loIndex(t)}, SetDSCP: dscp(46),
		Filters: []Filter{{Protocol: []string{"UDP"}}}})
	rc, out = runData(t, c.Program(), plain)
	if rc != tcActOK || !bytes.Equal(out[:len(plain)], plain) {
		t.Fatalf("duplicate: rc=%d, the original changed:\n got %x\nwant %x", rc, out[:len(plain)], plain)
	}
	if s := stats(t, c); s.SteerFailed != 0 {
		t.Fatalf("stats %+v", s)
	}

	for _, tc := range []struct {
		r    Rule
		want string
	}{
		{Rule{ID: "x", Action: ActionPassthrough, SetDSCP: dscp(64), Filters: []Filter{{Protocol: []string{"UDP"}}}}, "rules[0].setDscp"},
		{Rule{ID: "x", Action: ActionPassthrough, SetDSCP: dscp(-1), Filters: []Filter{{Protocol: []string{"UDP"}}}}, "rules[0].setDscp"},
		{Rule{ID: "x", Action: ActionDrop, SetDSCP: dscp(0), Filters: []Filter{{Protocol: []string{"UDP"}}}}, "dropped"},
	} {
		if _, err := Compile([]Rule{tc.r}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetDSCP %d on %s: err %v, want %q", *tc.r.SetDSCP, tc.r.Action, err, tc.want)
		}
	}
}
