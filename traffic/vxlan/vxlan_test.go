package vxlan_test

import (
	"bytes"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	tnetns "github.com/mecorch/mecorch/traffic/netns"
	"github.com/mecorch/mecorch/traffic/vxlan"
)

const vni = 42

func peerAddrs(ps []vxlan.Peer) []netip.Addr {
	var out []netip.Addr
	for _, p := range ps {
		out = append(out, p.Underlay)
	}
	return out
}

func mustPeers(t *testing.T, tun *vxlan.Tunnel, want ...netip.Addr) []vxlan.Peer {
	t.Helper()
	got, err := tun.Peers()
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(want, netip.Addr.Compare)
	if !slices.Equal(peerAddrs(got), want) {
		t.Fatalf("FDB peers = %v, want %v", peerAddrs(got), want)
	}
	return got
}

// TestThreeHosts runs three edge hosts on one underlay switch, each with a
// tunnel to the other two, and checks real traffic across the overlay.
func TestThreeHosts(t *testing.T) {
	hs := underlayLab(t, "three", 3)
	a, b, c := hs[0], hs[1], hs[2]
	for _, h := range hs {
		tun, err := vxlan.Ensure(h.ns, vxlan.Config{VNI: vni, Local: h.underlay, Underlay: "eth0"})
		if err != nil {
			t.Fatal(err)
		}
		h.tun = tun
		var peers []vxlan.Peer
		for _, o := range hs {
			if o != h {
				peers = append(peers, o.peer())
			}
		}
		if err := tun.SetPeers(peers); err != nil {
			t.Fatal(err)
		}
		addAddr(t, h.ns, vxlan.DefaultName, h.overlay)
		echoServer(t, h.ns, h.overlay.Addr())
	}

	t.Run("kernel reads back port 4789, VNI, local, MTU", func(t *testing.T) {
		vx := readVxlan(t, a.ns, vxlan.DefaultName)
		if vx.Port != 4789 || vx.VxlanId != vni || vx.Learning {
			t.Errorf("port %d VNI %d learning %t, want 4789 %d false", vx.Port, vx.VxlanId, vx.Learning, vni)
		}
		if got, _ := netip.AddrFromSlice(vx.SrcAddr); got.Unmap() != a.underlay {
			t.Errorf("local %v, want %v", got, a.underlay)
		}
		if vx.MTU != 1450 {
			t.Errorf("MTU %d, want 1450 (eth0's 1500 - 50)", vx.MTU)
		}
		if vx.OperState == netlink.OperDown || vx.Flags&(1<<0) == 0 {
			t.Errorf("device not up: flags %v oper %v", vx.Flags, vx.OperState)
		}
		got := mustPeers(t, a.tun, b.underlay, c.underlay)
		if got[0].HostID != "b" || got[1].HostID != "c" {
			t.Errorf("host IDs read back %q %q, want b c", got[0].HostID, got[1].HostID)
		}
	})

	t.Run("A to C crosses the tunnel on UDP 4789", func(t *testing.T) {
		fd := capture(t, c.ns, "eth0")
		marker := "mecorch-a-to-c"
		if !exchange(t, a.ns, a.overlay.Addr(), c.overlay.Addr(), marker, 5, time.Second) {
			t.Fatal("no echo from C's overlay address")
		}
		e, ok := findEncap(t, fd, []byte(marker))
		if !ok {
			t.Fatal("no VXLAN-encapsulated frame with the payload seen on C's underlay link")
		}
		if e.dstPort != 4789 || e.vni != vni || e.src != a.underlay || e.dst != c.underlay {
			t.Errorf("outer %v -> %v UDP dst %d VNI %d, want %v -> %v 4789 %d",
				e.src, e.dst, e.dstPort, e.vni, a.underlay, c.underlay, vni)
		}
	})

	t.Run("SetPeers without C cuts A to C, keeps A to B, without touching B's entry", func(t *testing.T) {
		if !exchange(t, a.ns, a.overlay.Addr(), b.overlay.Addr(), "a-b-before", 5, time.Second) {
			t.Fatal("A to B fails before the change")
		}
		events := watchFDB(t, a.ns, a.tun.Index())
		if err := a.tun.SetPeers([]vxlan.Peer{b.peer()}); err != nil {
			t.Fatal(err)
		}
		mustPeers(t, a.tun, b.underlay)
		// A sentinel peer added after the change bounds the events the
		// change caused: netlink delivers them in order.
		sentinel := netip.MustParseAddr("192.0.2.200")
		if err := a.tun.SetPeers([]vxlan.Peer{b.peer(), {HostID: "s", Underlay: sentinel}}); err != nil {
			t.Fatal(err)
		}
		seen := events.until(t, sentinel, unix.RTM_NEWNEIGH)
		if !slices.Contains(seen, fdbEvent{c.underlay, unix.RTM_DELNEIGH}) {
			t.Errorf("no FDB delete for C among %v", seen)
		}
		if slices.ContainsFunc(seen, func(ev fdbEvent) bool { return ev.addr == b.underlay }) {
			t.Errorf("B's unchanged entry flapped: %v", seen)
		}
		if err := a.tun.SetPeers([]vxlan.Peer{b.peer()}); err != nil {
			t.Fatal(err)
		}

		if exchange(t, a.ns, a.overlay.Addr(), c.overlay.Addr(), "a-c-after", 3, 300*time.Millisecond) {
			t.Error("A still reaches C with C out of A's peer set")
		}
		if !exchange(t, a.ns, a.overlay.Addr(), b.overlay.Addr(), "a-b-after", 5, time.Second) {
			t.Error("A no longer reaches B")
		}
		// And back: the cut is the FDB's doing, not a broken device.
		if err := a.tun.SetPeers([]vxlan.Peer{b.peer(), c.peer()}); err != nil {
			t.Fatal(err)
		}
		if !exchange(t, a.ns, a.overlay.Addr(), c.overlay.Addr(), "a-c-again", 5, time.Second) {
			t.Error("A does not reach C again once C is back in the set")
		}
	})

	t.Run("Ensure again keeps the device and its FDB", func(t *testing.T) {
		again, err := vxlan.Ensure(a.ns, vxlan.Config{VNI: vni, Local: a.underlay, Underlay: "eth0"})
		if err != nil {
			t.Fatal(err)
		}
		if again.Index() != a.tun.Index() {
			t.Errorf("ifindex %d after second Ensure, was %d", again.Index(), a.tun.Index())
		}
		mustPeers(t, again, b.underlay, c.underlay)
		if !exchange(t, a.ns, a.overlay.Addr(), c.overlay.Addr(), "a-c-ensured", 5, time.Second) {
			t.Error("A to C broken by a repeated Ensure")
		}
	})

	t.Run("a bad peer set is refused and the FDB left as it was", func(t *testing.T) {
		bad := map[string][]vxlan.Peer{
			"own address":   {b.peer(), {HostID: "self", Underlay: a.underlay}},
			"IPv6 on IPv4":  {b.peer(), {HostID: "v6", Underlay: netip.MustParseAddr("2001:db8::1")}},
			"no address":    {b.peer(), {HostID: "empty"}},
			"duplicate":     {b.peer(), {HostID: "b2", Underlay: b.underlay}},
			"multicast":     {{HostID: "m", Underlay: netip.MustParseAddr("239.1.1.1")}},
			"unspecified":   {{HostID: "z", Underlay: netip.IPv4Unspecified()}},
			"loopback":      {{HostID: "lo", Underlay: netip.MustParseAddr("127.0.0.1")}},
			"good then bad": {{HostID: "new", Underlay: netip.MustParseAddr("192.0.2.50")}, {HostID: "self", Underlay: a.underlay}},
		}
		for name, set := range bad {
			if err := a.tun.SetPeers(set); err == nil {
				t.Errorf("%s: accepted", name)
			} else if !strings.Contains(err.Error(), "refused") {
				t.Errorf("%s: error %q does not say the set was refused", name, err)
			}
			mustPeers(t, a.tun, b.underlay, c.underlay)
		}
		if !exchange(t, a.ns, a.overlay.Addr(), c.overlay.Addr(), "a-c-after-bad", 5, time.Second) {
			t.Error("A to C broken after refused sets")
		}
	})

	t.Run("Delete removes the device, twice is fine", func(t *testing.T) {
		if err := c.tun.Delete(); err != nil {
			t.Fatal(err)
		}
		if err := c.tun.Delete(); err != nil {
			t.Errorf("second Delete: %v", err)
		}
		names, err := tnetns.Links(c.ns, vxlan.DefaultName, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != 0 {
			t.Errorf("links left in C: %v", names)
		}
	})
}

// TestEnsureReplacesWhatDiffers checks that a device whose identity
// differs is replaced and says why, and that MTU and bridge are fixed in
// place.
func TestEnsureReplacesWhatDiffers(t *testing.T) {
	hs := underlayLab(t, "replace", 1)
	h := hs[0]
	var logs bytes.Buffer
	cfg := vxlan.Config{Name: "vx1", VNI: 7, Local: h.underlay, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	first, err := vxlan.Ensure(h.ns, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Found through the address, not a named underlay.
	if vx := readVxlan(t, h.ns, "vx1"); vx.MTU != 1450 || vx.VtepDevIndex != 0 || vx.Port != 4789 {
		t.Errorf("MTU %d underlay %d port %d, want 1450 0 4789", vx.MTU, vx.VtepDevIndex, vx.Port)
	}
	if err := first.SetPeers([]vxlan.Peer{{HostID: "x", Underlay: netip.MustParseAddr("192.0.2.9")}}); err != nil {
		t.Fatal(err)
	}

	cfg.MTU = 1400
	same, err := vxlan.Ensure(h.ns, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if same.Index() != first.Index() {
		t.Errorf("an MTU change replaced the device")
	}
	if vx := readVxlan(t, h.ns, "vx1"); vx.MTU != 1400 {
		t.Errorf("MTU %d, want 1400", vx.MTU)
	}
	if logs.Len() != 0 {
		t.Errorf("logged without replacing: %s", logs.String())
	}

	cfg.Port = 8472
	moved, err := vxlan.Ensure(h.ns, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if moved.Index() == first.Index() {
		t.Error("a port change kept the old device")
	}
	if vx := readVxlan(t, h.ns, "vx1"); vx.Port != 8472 {
		t.Errorf("port %d after replacement, want 8472", vx.Port)
	}
	if !strings.Contains(logs.String(), "port 4789, want 8472") {
		t.Errorf("replacement log does not say why: %q", logs.String())
	}
	mustPeers(t, moved) // a new device starts with an empty FDB

	t.Run("bridge", func(t *testing.T) {
		if err := tnetns.EnsureBridge(h.ns, "br0", netip.MustParsePrefix("10.98.0.1/24")); err != nil {
			t.Fatal(err)
		}
		cfg.Bridge = "br0"
		on, err := vxlan.Ensure(h.ns, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var brIndex int
		withHandle(t, h.ns, func(nh *netlink.Handle) error {
			br, err := nh.LinkByName("br0")
			brIndex = br.Attrs().Index
			return err
		})
		if vx := readVxlan(t, h.ns, "vx1"); vx.MasterIndex != brIndex || on.Index() != moved.Index() {
			t.Errorf("master %d (bridge %d), index %d (was %d)", vx.MasterIndex, brIndex, on.Index(), moved.Index())
		}
		cfg.Bridge = ""
		off, err := vxlan.Ensure(h.ns, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if vx := readVxlan(t, h.ns, "vx1"); vx.MasterIndex != 0 || off.Index() != moved.Index() {
			t.Errorf("still on master %d, or replaced", vx.MasterIndex)
		}
		cfg.Bridge = "eth0"
		if _, err := vxlan.Ensure(h.ns, cfg); err == nil || !strings.Contains(err.Error(), "not a bridge") {
			t.Errorf("enslaving to a veth: %v", err)
		}
	})

	t.Run("a non-vxlan link under the name is replaced", func(t *testing.T) {
		withHandle(t, h.ns, func(nh *netlink.Handle) error {
			return nh.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "vx2"}})
		})
		logs.Reset()
		if _, err := vxlan.Ensure(h.ns, vxlan.Config{Name: "vx2", VNI: 8, Local: h.underlay, Logger: cfg.Logger}); err != nil {
			t.Fatal(err)
		}
		if vx := readVxlan(t, h.ns, "vx2"); vx.VxlanId != 8 {
			t.Errorf("VNI %d, want 8", vx.VxlanId)
		}
		if !strings.Contains(logs.String(), "not a vxlan") {
			t.Errorf("replacement log does not say why: %q", logs.String())
		}
	})
}

func TestConfigRefused(t *testing.T) {
	local := netip.MustParseAddr("192.0.2.1")
	for name, cfg := range map[string]vxlan.Config{
		"zero VNI":      {Local: local},
		"VNI too big":   {VNI: 1 << 24, Local: local},
		"no local":      {VNI: 1},
		"multicast":     {VNI: 1, Local: netip.MustParseAddr("239.0.0.1")},
		"port too big":  {VNI: 1, Local: local, Port: 70000},
		"name too long": {Name: "a-very-long-vxlan-name", VNI: 1, Local: local},
		"negative MTU":  {VNI: 1, Local: local, MTU: -1},
	} {
		// Refused before any namespace is looked at: the path does not exist.
		if _, err := vxlan.Ensure("/nonexistent/netns", cfg); err == nil || strings.Contains(err.Error(), "nonexistent") {
			t.Errorf("%s: %v, want a refusal of the config", name, err)
		}
	}
}

// fdbEvent is one change to a default FDB entry, as netlink announced it.
type fdbEvent struct {
	addr netip.Addr
	typ  uint16
}

func (e fdbEvent) String() string {
	op := "new"
	if e.typ == unix.RTM_DELNEIGH {
		op = "del"
	}
	return op + " " + e.addr.String()
}

type fdbWatch struct {
	ch    chan netlink.NeighUpdate
	index int
}

// watchFDB subscribes to neighbour and FDB changes in nsPath before the
// test makes any, so that none is missed.
func watchFDB(t *testing.T, nsPath string, index int) *fdbWatch {
	t.Helper()
	ns, err := tnetns.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	w := &fdbWatch{ch: make(chan netlink.NeighUpdate, 256), index: index}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	err = netlink.NeighSubscribeWithOptions(w.ch, done, netlink.NeighSubscribeOptions{
		// No ErrorCallback: it may fire after the test has ended (the
		// socket's shutdown reads as an error); a failure that matters
		// closes the channel, which until reports.
		Namespace: &ns,
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// until collects the default-entry events of the tunnel up to and
// including the one for addr of type typ.
func (w *fdbWatch) until(t *testing.T, addr netip.Addr, typ uint16) []fdbEvent {
	t.Helper()
	var seen []fdbEvent
	timeout := time.After(5 * time.Second)
	for {
		select {
		case u, ok := <-w.ch:
			if !ok {
				t.Fatalf("subscription closed; seen %v", seen)
			}
			if u.Family != unix.AF_BRIDGE || u.LinkIndex != w.index || u.IP == nil {
				continue
			}
			a, _ := netip.AddrFromSlice(u.IP)
			ev := fdbEvent{a.Unmap(), u.Type}
			seen = append(seen, ev)
			if ev.addr == addr && ev.typ == typ {
				return seen
			}
		case <-timeout:
			t.Fatalf("no %d event for %v; seen %v", typ, addr, seen)
		}
	}
}
