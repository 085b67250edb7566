package classify

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// runCtx runs prog on frame with the given context and returns the verdict,
// the frame as the program left it and the context it left.
func runCtx(t testing.TB, prog *ebpf.Program, frame []byte, in skbCtx) (uint32, []byte, skbCtx) {
	t.Helper()
	var out skbCtx
	opts := ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256), Context: in[:], ContextOut: out[:]}
	ret, err := prog.Run(&opts)
	if err != nil {
		t.Fatalf("prog run (%d bytes): %v", len(frame), err)
	}
	return ret, opts.DataOut, out
}

// TestLearnFromDownlink: the learn program records DL (not UL) G-PDUs'
// tunnels, writes only on change, leaves every packet as it came with no
// verdict (TCX_NEXT, mark untouched), and what it learns serves the return
// path.
func TestLearnFromDownlink(t *testing.T) {
	c := newClassifier(t)
	// UPF 172.16.0.1 -> gNB 172.16.0.2, DL container, QFI 9, TEID 7.
	dl := gtpFrame(gtpu(7, false, [][]byte{pduSession(0, 9, 0)}, dlInner()))
	ul := gtpFrame(gtpu(8, false, [][]byte{pduSession(1, 5, 0)}, innerUE()))
	// A rule matching everything UDP: learn must not act on rules.
	if err := c.Apply([]Rule{{ID: "drop", Action: ActionDrop, Filters: []Filter{{Protocol: []string{"UDP"}}}}}); err != nil {
		t.Fatal(err)
	}
	learn := func(f []byte) {
		t.Helper()
		rc, out, ctx := runCtx(t, c.LearnProgram(), f, skbCtx{2: staleMark})
		if rc != tcxNext || !bytes.Equal(out, f) || ctx[2] != staleMark {
			t.Fatalf("learn: rc=%#x mark=%#x changed=%v; want TCX_NEXT, mark and bytes untouched",
				rc, ctx[2], !bytes.Equal(out, f))
		}
	}
	learn(dl)
	if ues, err := c.UEs(); err != nil || len(ues) != 0 {
		t.Fatalf("learning off: UEs %v, %v", ues, err)
	}
	if err := c.Configure(ReturnConfig{Learn: true}); err != nil {
		t.Fatal(err)
	}
	learn(ul) // uplink teaches nothing
	learn(dl)
	learn(dl) // unchanged path: no second write
	v6dl := gtpFrame(gtpu(0xabcdef01, false, [][]byte{pduSession(0, 3, 0)},
		ip6{src: "2001:db8:1::5", dst: "2001:db8::1", nh: 6}.build(tcp(8080, 40000))))
	learn(v6dl)
	learn(eth(0x0806, make([]byte, 28))) // ARP: nothing to parse, still no verdict
	ues, err := c.UEs()
	if err != nil {
		t.Fatal(err)
	}
	src, gnb := netip.MustParseAddr("172.16.0.1"), netip.MustParseAddr("172.16.0.2")
	want := map[netip.Addr]UEPath{
		netip.MustParseAddr("10.45.0.7"):   {GNB: gnb, TEID: 7, QFI: 9, Source: src},
		netip.MustParseAddr("2001:db8::1"): {GNB: gnb, TEID: 0xabcdef01, QFI: 3, Source: src},
	}
	if len(ues) != len(want) {
		t.Fatalf("UEs %v, want %v", ues, want)
	}
	for k, v := range want {
		if ues[k] != v {
			t.Errorf("UE %s: %+v, want %+v", k, ues[k], v)
		}
	}
	if s := stats(t, c); s.Learned != 2 {
		t.Errorf("learned %d writes, want 2", s.Learned)
	}
	// The learnt path serves the return path.
	in := dlInner()
	if rc, out := runData(t, c.ReturnPath(), eth(0x0800, in)); rc != tcActOK || !bytes.Equal(out, encapsulated(eth(0x0800, nil), want[netip.MustParseAddr("10.45.0.7")], 0, in)) {
		t.Errorf("return path with learnt UE: rc=%d out=%x", rc, out)
	}
}

// TestClassifyDoesNotLearn: the RAN-facing program cannot write UE paths,
// learning on or not: a forged downlink G-PDU from the RAN side must not
// redirect another UE's return traffic.
func TestClassifyDoesNotLearn(t *testing.T) {
	c := newClassifier(t)
	if err := c.Configure(ReturnConfig{Learn: true}); err != nil {
		t.Fatal(err)
	}
	victim := netip.MustParseAddr("10.45.0.7")
	real := UEPath{GNB: netip.MustParseAddr("172.16.0.2"), TEID: 7, QFI: 9, Source: netip.MustParseAddr("172.16.0.1")}
	if err := c.SetUE(victim, real); err != nil {
		t.Fatal(err)
	}
	forged := eth(0x0800, ip4{src: "172.16.0.1", dst: "203.0.113.66", proto: 17}.build(
		udp(2152, 2152, gtpu(666, false, [][]byte{pduSession(0, 1, 0)}, dlInner()))))
	if err := c.Apply([]Rule{{ID: "gtp", Action: ActionPassthrough, Filters: []Filter{{TunnelType: "GTP_U"}}}}); err != nil {
		t.Fatal(err)
	}
	if rc, mark := run(t, c.Program(), forged); rc != tcActOK || mark != 1 {
		t.Fatalf("classify on forged DL: rc=%d mark=%d", rc, mark)
	}
	if err := c.Apply(nil); err != nil {
		t.Fatal(err)
	}
	if rc, mark := run(t, c.Program(), forged); rc != tcxNext || mark != staleMark {
		t.Fatalf("classify, no rules: rc=%#x mark=%#x", rc, mark)
	}
	ues, err := c.UEs()
	if err != nil {
		t.Fatal(err)
	}
	if len(ues) != 1 || ues[victim] != real {
		t.Fatalf("UE map after classify saw a DL G-PDU: %v; want only %s -> %+v", ues, victim, real)
	}
	if s := stats(t, c); s.Learned != 0 {
		t.Fatalf("stats %+v: classify learnt", s)
	}
}

// TestUEMapIsLRU: with the UE map full of provisioned entries, learning
// still records a new UE (the least recently used entry makes room) instead
// of failing, and an entry the return path keeps using survives.
func TestUEMapIsLRU(t *testing.T) {
	c := newClassifier(t)
	if err := c.Configure(ReturnConfig{Learn: true}); err != nil {
		t.Fatal(err)
	}
	max := int(c.objs.Ues.MaxEntries())
	p := UEPath{GNB: netip.MustParseAddr("172.16.0.9"), TEID: 1, QFI: 1, Source: netip.MustParseAddr("172.16.0.1")}
	keys := make([]classifyUeKey, max)
	vals := make([]classifyUePath, max)
	for i := range keys {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x0b000000+uint32(i)) // 11.0.0.0 on
		keys[i], _ = ueKey(netip.AddrFrom4(a))
		vals[i] = classifyUePath{Gnb: p.GNB.As4(), Source: p.Source.As4(), Teid: uint32(i), Qfi: 1}
	}
	if _, err := c.objs.Ues.BatchUpdate(keys, vals, nil); err != nil {
		t.Fatalf("fill UE map: %v", err)
	}
	// One more provisioned UE, kept in use through the return path.
	hot := netip.AddrFrom4([4]byte{12, 0, 0, 5})
	if err := c.SetUE(hot, p); err != nil {
		t.Fatalf("SetUE into a full map: %v", err)
	}
	reply := eth(0x0800, ip4{src: "198.51.100.9", dst: hot.String(), proto: 17}.build(udp(53, 4000, nil)))
	for range 3 {
		if rc, _ := runData(t, c.ReturnPath(), reply); rc != tcActOK {
			t.Fatalf("return path to provisioned UE: rc=%d", rc)
		}
	}
	before := stats(t, c).Learned
	// New UEs from downlink: each must be learnt although the map is full.
	for i := range 64 {
		inner := ip4{src: "198.51.100.9", dst: netip.AddrFrom4([4]byte{10, 46, 0, byte(i)}).String(), proto: 6}.build(tcp(80, 33000))
		rc, _, _ := runCtx(t, c.LearnProgram(), gtpFrame(gtpu(uint32(1000+i), false, [][]byte{pduSession(0, 9, 0)}, inner)), skbCtx{})
		if rc != tcxNext {
			t.Fatalf("learn: rc=%#x", rc)
		}
	}
	if got := stats(t, c).Learned - before; got != 64 {
		t.Fatalf("learnt %d of 64 new UEs into a full map", got)
	}
	ues, err := c.UEs()
	if err != nil {
		t.Fatal(err)
	}
	if len(ues) > max {
		t.Fatalf("%d entries in a %d-entry map", len(ues), max)
	}
	for i := range 64 {
		ue := netip.AddrFrom4([4]byte{10, 46, 0, byte(i)})
		if got, ok := ues[ue]; !ok || got.TEID != uint32(1000+i) {
			t.Fatalf("learnt UE %s: %+v, %v", ue, got, ok)
		}
	}
	if _, ok := ues[hot]; !ok {
		t.Errorf("UE %s, in use by the return path, was evicted", hot)
	}
}
