package agent

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/mec/agentproto"
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
