package agent

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/apprun"
	"github.com/mecorch/mecorch/traffic/classify"
	"github.com/mecorch/mecorch/traffic/netns"
)

// tcxAt counts the programs attached with tcx at ingress of name in nsPath.
func tcxAt(t *testing.T, nsPath, name string) int {
	t.Helper()
	var n int
	must(t, netns.Do(nsPath, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		n = len(res.Programs)
		return nil
	}))
	return n
}

// pinDir is a fresh bpffs mount for the test's pins (the machine's
// /sys/fs/bpf may not be mounted, and must not collect test pins).
func pinDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		_ = classify.RemovePins(filepath.Join(dir, "pins"))
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	})
	return filepath.Join(dir, "pins")
}

var echoTunnel = agentproto.UETunnel{UEAddress: "10.45.0.1", GNBAddress: "192.0.2.1", TEID: 0x202, QFI: 9, SourceAddress: "192.0.2.2"}

// TestSteeringSurvivesRestart: with pinning, an agent that exits leaves the
// classifier steering; the next one takes the programs and maps over with
// one program per hook, and removing the instance or the pins detaches.
func TestSteeringSurvivesRestart(t *testing.T) {
	l := newLab(t)
	dir := pinDir(t)
	cfg := SteeringConfig{
		SteerIface: "steer0", HostNetns: l.host, UEPrefixes: []netip.Prefix{netip.MustParsePrefix("10.45.0.0/16")}, PinDir: dir,
		Networks: fakeNetworks{"echo-1": {HostNetns: l.host, HostLink: "mecvtest", Netns: l.inst, Link: "eth0"}},
	}
	state := DataplaneState{Running: []agentproto.DesiredInstance{echoRules()}, UETunnels: []agentproto.UETunnel{echoTunnel}}
	st, err := NewSteering(cfg)
	must(t, err)
	must(t, st.Sync(state))

	ue := netip.MustParseAddrPort("10.45.0.1:40000")
	svc := netip.MustParseAddrPort("10.0.0.7:7")
	app := udpIn(t, l.inst, svc.String())
	gnb := udpIn(t, l.ran, "192.0.2.1:2152")
	upfStack := udpIn(t, l.host, "192.0.2.2:2152")
	upf := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.2:2152"))
	roundTrip := func(what string) {
		t.Helper()
		if _, err := gnb.WriteToUDP(gpdu(0x101, 1, 9, innerUDP(ue, svc, []byte(what))), upf); err != nil {
			t.Fatal(err)
		}
		got, from, ok := readUDP(app, 2*time.Second)
		if !ok || string(got) != what {
			t.Fatalf("%s: app got %q (ok %v)", what, got, ok)
		}
		if _, err := app.WriteToUDPAddrPort([]byte(what+" back"), from); err != nil {
			t.Fatal(err)
		}
		if reply, _, ok := readUDP(gnb, 2*time.Second); !ok || len(reply) < 16 || reply[1] != 0xff {
			t.Fatalf("%s: no G-PDU back at the gNB: %x", what, reply)
		}
	}
	roundTrip("first agent")

	// The agent exits: nothing is detached.
	must(t, st.Close())
	roundTrip("no agent")
	if n, m := tcxAt(t, l.host, "steer0"), tcxAt(t, l.host, "mecvtest"); n != 1 || m != 1 {
		t.Fatalf("after exit: %d programs on steer0, %d on the instance's veth; want 1 and 1", n, m)
	}

	// The next agent takes over: still one program per hook.
	st, err = NewSteering(cfg)
	must(t, err)
	defer st.Close()
	must(t, st.Sync(state))
	roundTrip("second agent")
	if n, m := tcxAt(t, l.host, "steer0"), tcxAt(t, l.host, "mecvtest"); n != 1 || m != 1 {
		t.Fatalf("after the restart: %d programs on steer0, %d on the instance's veth; want 1 and 1", n, m)
	}
	if cnt, err := st.Counters(); err != nil || cnt["echo-1/edge-echo-uplink"].Packets == 0 {
		t.Fatalf("the new agent counts nothing: %v %v", cnt, err)
	}

	// The instance goes: its return path is detached, its rule gone.
	must(t, st.Sync(DataplaneState{UETunnels: state.UETunnels}))
	if m := tcxAt(t, l.host, "mecvtest"); m != 0 {
		t.Fatalf("%d programs left on a removed instance's veth", m)
	}
	if _, err := gnb.WriteToUDP(gpdu(0x101, 1, 9, innerUDP(ue, svc, []byte("gone"))), upf); err != nil {
		t.Fatal(err)
	}
	if p, _, ok := readUDP(upfStack, 2*time.Second); !ok || len(p) == 0 {
		t.Fatal("after removal the G-PDU did not reach the host stack")
	}
	// Steering turned off: removing the pins detaches the rest.
	must(t, st.Close())
	must(t, classify.RemovePins(dir))
	if n := tcxAt(t, l.host, "steer0"); n != 0 {
		t.Fatalf("%d programs left on steer0 after RemovePins", n)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("pins left: %v", ents)
	}
}

// TestSyncUETunnels: provisioned tunnels follow the desired state; one that
// learning replaced since is the live path and stays.
func TestSyncUETunnels(t *testing.T) {
	l := newLab(t)
	st, err := NewSteering(SteeringConfig{SteerIface: "steer0", HostNetns: l.host,
		UEPrefixes: []netip.Prefix{netip.MustParsePrefix("10.45.0.0/16")}, Networks: fakeNetworks{}})
	must(t, err)
	defer st.Close()
	other := agentproto.UETunnel{UEAddress: "10.45.0.2", GNBAddress: "192.0.2.9", TEID: 7, QFI: 1, SourceAddress: "192.0.2.2"}
	must(t, st.Sync(DataplaneState{UETunnels: []agentproto.UETunnel{echoTunnel, other}}))
	ues, err := st.Classifier().UEs()
	must(t, err)
	if len(ues) != 2 || ues[netip.MustParseAddr("10.45.0.1")].TEID != 0x202 || ues[netip.MustParseAddr("10.45.0.2")].GNB != netip.MustParseAddr("192.0.2.9") {
		t.Fatalf("UE map %v", ues)
	}
	// 10.45.0.2's path is learnt anew (here: written as learning would).
	learnt := classify.UEPath{GNB: netip.MustParseAddr("192.0.2.10"), TEID: 8, QFI: 1, Source: netip.MustParseAddr("192.0.2.2")}
	must(t, st.Classifier().SetUE(netip.MustParseAddr("10.45.0.2"), learnt))
	changed := echoTunnel
	changed.TEID = 0x303
	must(t, st.Sync(DataplaneState{UETunnels: []agentproto.UETunnel{changed}}))
	ues, err = st.Classifier().UEs()
	must(t, err)
	if got := ues[netip.MustParseAddr("10.45.0.1")]; got.TEID != 0x303 {
		t.Errorf("changed tunnel: %+v", got)
	}
	if got := ues[netip.MustParseAddr("10.45.0.2")]; got != learnt {
		t.Errorf("a learnt path was removed with the provisioned one it replaced: %+v", got)
	}
	must(t, st.Sync(DataplaneState{}))
	ues, err = st.Classifier().UEs()
	must(t, err)
	if _, ok := ues[netip.MustParseAddr("10.45.0.1")]; ok || len(ues) != 1 {
		t.Errorf("after the operator removed it: %v", ues)
	}
}

// TestProvisionedTunnelsSurviveEviction: a provisioned tunnel the LRU UE
// map evicted (here deleted, as an eviction would) is written back on the
// next pass once learning has written to the map.
func TestProvisionedTunnelsSurviveEviction(t *testing.T) {
	l := newLab(t)
	st, err := NewSteering(SteeringConfig{SteerIface: "steer0", CoreIface: "mecvtest", HostNetns: l.host,
		UEPrefixes: []netip.Prefix{netip.MustParsePrefix("10.45.0.0/16")}, Networks: fakeNetworks{}})
	must(t, err)
	defer st.Close()
	state := DataplaneState{UETunnels: []agentproto.UETunnel{echoTunnel}}
	must(t, st.Sync(state))
	ue := netip.MustParseAddr("10.45.0.1")
	must(t, st.Classifier().DeleteUE(ue))
	must(t, st.Sync(state))
	if ues, _ := st.Classifier().UEs(); len(ues) != 0 {
		t.Fatalf("restored without any learning since: %v", ues)
	}
	// A downlink G-PDU to another UE, as the core side would see it.
	inner := innerUDP(netip.MustParseAddrPort("10.100.2.2:7"), netip.MustParseAddrPort("10.45.0.9:40000"), []byte("dl"))
	g := gpdu(0x1109, 0, 9, inner)
	outer := innerUDP(netip.MustParseAddrPort("10.100.1.2:2152"), netip.MustParseAddrPort("10.1.1.2:2152"), g)
	frame := append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, outer...)
	if _, err := st.Classifier().LearnProgram().Run(&ebpf.RunOptions{Data: frame}); err != nil {
		t.Fatal(err)
	}
	must(t, st.Sync(state))
	ues, err := st.Classifier().UEs()
	must(t, err)
	if got := ues[ue]; got.TEID != echoTunnel.TEID || got.GNB != netip.MustParseAddr(echoTunnel.GNBAddress) {
		t.Fatalf("provisioned tunnel not restored after learning: %v", ues)
	}
	if _, ok := ues[netip.MustParseAddr("10.45.0.9")]; !ok {
		t.Fatalf("the learnt UE is missing: %v", ues)
	}
}

// bigRules is one traffic rule whose filters expand to about 3,000
// classifier entries (60 source addresses × 25 ports, and the GTP_U twin).
func bigRules(id string) agentproto.DesiredInstance {
	in := echoRules()
	in.ID = id
	f := &in.TrafficRules[0].Filters[0]
	f.SrcAddress, f.DstPort = nil, nil
	for i := range 60 {
		f.SrcAddress = append(f.SrcAddress, fmt.Sprintf("10.45.%d.0/24", i))
	}
	for p := range 25 {
		f.DstPort = append(f.DstPort, fmt.Sprint(7000+p))
	}
	f.Protocol = []string{"UDP"}
	return in
}

// TestRefusedUnionFallsBack: instances whose rules compile alone but not
// together (past the classifier's entries) do not leave a stale set in
// force: the instances already served stay served, the newcomer is refused
// with the reason, and the refused set is not tried again on every pass.
func TestRefusedUnionFallsBack(t *testing.T) {
	l := newLab(t)
	nets := fakeNetworks{}
	for _, id := range []string{"a", "b", "c", "d"} {
		host := "mecv" + id
		must(t, netns.Do(l.host, func() error {
			if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host}, PeerName: "peer" + id}); err != nil {
				return err
			}
			lk, err := netlink.LinkByName(host)
			if err != nil {
				return err
			}
			return netlink.LinkSetUp(lk)
		}))
		nets[id] = apprun.Network{HostNetns: l.host, HostLink: host, Netns: l.inst, Link: "eth0"}
	}
	st, err := NewSteering(SteeringConfig{SteerIface: "steer0", HostNetns: l.host,
		UEPrefixes: []netip.Prefix{netip.MustParsePrefix("10.45.0.0/16")}, Networks: nets})
	must(t, err)
	defer st.Close()
	served := []agentproto.DesiredInstance{bigRules("a"), bigRules("b"), bigRules("c")}
	must(t, st.Sync(DataplaneState{Running: served}))
	err = st.Sync(DataplaneState{Running: append(served, bigRules("d"))})
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "serving 3 of 4") {
		t.Fatalf("union past the classifier's size: err = %v", err)
	}
	cnt, err2 := st.Counters()
	must(t, err2)
	for _, id := range []string{"a", "b", "c"} {
		if _, ok := cnt[id+"/edge-echo-uplink"]; !ok {
			t.Errorf("instance %s is no longer served: %v", id, cnt)
		}
	}
	if _, ok := cnt["d/edge-echo-uplink"]; ok {
		t.Error("the newcomer's rules are in force although the union was refused")
	}
	// The same state again: the same error, from memory.
	if err3 := st.Sync(DataplaneState{Running: append(served, bigRules("d"))}); err3 == nil || err3.Error() != err.Error() {
		t.Errorf("second pass: %v, want the same refusal %v", err3, err)
	}
}
