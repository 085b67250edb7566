package qos

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/traffic/netns"
)

// pair makes two namespaces joined by a veth: sender side "qs0" with the
// given addresses, receiver side "qr0" with rcv. Everything is removed when
// the test ends.
func pair(t *testing.T, snd []string, rcv string) (sndNS, rcvNS string) {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() {
		names, _ := netns.List(dir, "")
		for _, n := range names {
			if err := netns.Delete(dir, n); err != nil {
				t.Error(err)
			}
		}
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	})
	var err error
	if sndNS, err = netns.Create(dir, "qsnd"); err != nil {
		t.Fatal(err)
	}
	if rcvNS, err = netns.Create(dir, "qrcv"); err != nil {
		t.Fatal(err)
	}
	rfd, err := netns.Open(rcvNS)
	if err != nil {
		t.Fatal(err)
	}
	defer rfd.Close()
	hs := nlHandle(t, sndNS)
	hr := nlHandle(t, rcvNS)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "qs0"}, PeerName: "qr0", PeerNamespace: netlink.NsFd(int(rfd))}
	if err := hs.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	setUp(t, hs, "qs0", snd...)
	setUp(t, hr, "qr0", rcv)
	return sndNS, rcvNS
}

func nlHandle(t *testing.T, nsPath string) *netlink.Handle {
	t.Helper()
	h, err := netns.Handle(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func setUp(t *testing.T, h *netlink.Handle, name string, cidrs ...string) {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cidrs {
		a, err := netlink.ParseAddr(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}

// classStats returns the bytes HTB sent through each class of qs0, and the
// qdisc's direct_packets_stat (packets that bypassed every class).
func classStats(t *testing.T, h *netlink.Handle) (map[uint32]uint64, uint32) {
	t.Helper()
	l, err := h.LinkByName("qs0")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := h.ClassList(l, netlink.MakeHandle(rootMajor, 0))
	if err != nil {
		t.Fatal(err)
	}
	bytes := map[uint32]uint64{}
	for _, c := range cs {
		if st := c.Attrs().Statistics; st != nil && st.Basic != nil {
			bytes[c.Attrs().Handle] = st.Basic.Bytes
		}
	}
	qs, err := h.QdiscList(l)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if htb, ok := q.(*netlink.Htb); ok && q.Attrs().Parent == netlink.HANDLE_ROOT {
			return bytes, htb.DirectPkts
		}
	}
	t.Fatal("no htb root on qs0")
	return nil, 0
}

// wireOverhead turns a UDP payload into the bytes HTB charges for it:
// Ethernet (14), IPv4 (20) and UDP (8) headers.
const wireOverhead = 14 + 20 + 8

const payload = 1400

// flow counts what the receiver got from one source.
type flow struct{ bytes, pkts atomic.Uint64 }

func (f *flow) wire() uint64 { return f.bytes.Load() + f.pkts.Load()*wireOverhead }

// TestShapesPerApp runs three saturating UDP senders through one veth: two
// apps with their own classes and one unmapped address, and checks each
// gets its class's rate, measured at the receiver over the same window.
func TestShapesPerApp(t *testing.T) {
	sndNS, rcvNS := pair(t, []string{"10.9.0.1/24", "10.9.0.2/24", "10.9.0.3/24"}, "10.9.0.100/24")
	appA, appB, other := netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("10.9.0.3")
	const (
		mbit      = 1_000_000
		rateA     = 10 * mbit
		rateB     = 50 * mbit
		rateOther = 20 * mbit // ceil of the default class
	)
	s, err := New(sndNS, Config{Link: "qs0", LinkRate: 100 * mbit, DefaultRate: 1 * mbit, DefaultCeil: rateOther, Direction: BySource})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetApp("app-a", appA, rateA, rateA); err != nil {
		t.Fatal(err)
	}
	if err := s.SetApp("app-b", appB, rateB, rateB); err != nil {
		t.Fatal(err)
	}

	flows := map[netip.Addr]*flow{appA: {}, appB: {}, other: {}}
	var rcv *net.UDPConn
	if err := netns.Do(rcvNS, func() (err error) {
		rcv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 9, 0, 100), Port: 9000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	// A receive buffer large enough that the receiver, not HTB, never drops.
	if rc, err := rcv.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
		})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := rcv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return // closed at the end of the test
			}
			if f := flows[from.Addr()]; f != nil {
				f.bytes.Add(uint64(n))
				f.pkts.Add(1)
			}
		}
	}()

	var stop atomic.Bool
	dst := netip.MustParseAddrPort("10.9.0.100:9000")
	for src := range flows {
		var c *net.UDPConn
		if err := netns.Do(sndNS, func() (err error) {
			c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			msg := make([]byte, payload)
			for !stop.Load() {
				// Blocks once the socket's send buffer is queued in HTB;
				// ENOBUFS from a full leaf queue just means try again.
				if _, err := c.WriteToUDPAddrPort(msg, dst); err != nil && !errors.Is(err, syscall.ENOBUFS) {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Skip the first half second: ARP, and the classes' initial bursts.
	time.Sleep(500 * time.Millisecond)
	start := map[netip.Addr]uint64{}
	for a, f := range flows {
		start[a] = f.wire()
	}
	t0 := time.Now()
	time.Sleep(2500 * time.Millisecond)
	got := map[netip.Addr]float64{}
	elapsed := time.Since(t0).Seconds()
	for a, f := range flows {
		got[a] = float64(f.wire()-start[a]) * 8 / elapsed
	}
	stop.Store(true)
	h := nlHandle(t, sndNS)
	bytes, direct := classStats(t, h)
	rcv.Close()
	wg.Wait()

	t.Logf("measured over %.2fs: app A %.2f Mbit/s (rate=ceil 10), app B %.2f Mbit/s (rate=ceil 50), other %.2f Mbit/s (default class, ceil 20)",
		elapsed, got[appA]/mbit, got[appB]/mbit, got[other]/mbit)
	if r := got[appA] / rateA; r < 0.9 || r > 1.1 {
		t.Errorf("app A got %.2f Mbit/s, want 10 ±10%%", got[appA]/mbit)
	}
	// B's ceil is its rate, and the link leaves it that much: it should get
	// all of it, and no more.
	if r := got[appB] / rateB; r < 0.9 || r > 1.1 {
		t.Errorf("app B got %.2f Mbit/s, want ≥ 90%% of 50 (and ≤ 110%%)", got[appB]/mbit)
	}
	if got[other] == 0 || got[other] > 1.1*rateOther {
		t.Errorf("unmapped source got %.2f Mbit/s, want traffic capped at the default ceil 20", got[other]/mbit)
	}

	classA, _ := s.Class("app-a")
	classB, _ := s.Class("app-b")
	t.Logf("class bytes: A %s=%d B %s=%d default 1:fffe=%d; direct_packets_stat=%d",
		netlink.HandleStr(classA), bytes[classA], netlink.HandleStr(classB), bytes[classB], bytes[ClassHandle(DefaultMinor)], direct)
	for name, c := range map[string]uint32{"app A": classA, "app B": classB, "default": ClassHandle(DefaultMinor)} {
		if bytes[c] == 0 {
			t.Errorf("no bytes through the %s class %s", name, netlink.HandleStr(c))
		}
	}
	if direct != 0 {
		t.Errorf("direct_packets_stat %d: packets bypassed HTB's classes", direct)
	}
}

// TestLifecycle checks SetApp/RemoveApp bookkeeping in the kernel, that New
// replaces an HTB root left by an earlier run, and that Close leaves the
// interface as it found it: no HTB, no tcx program.
func TestLifecycle(t *testing.T) {
	sndNS, _ := pair(t, []string{"10.9.1.1/24"}, "10.9.1.100/24")
	h := nlHandle(t, sndNS)
	l, err := h.LinkByName("qs0")
	if err != nil {
		t.Fatal(err)
	}
	// A stale tree as a crashed agent would leave it, with an app class.
	stale := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT})
	if err := h.QdiscAdd(stale); err != nil {
		t.Fatal(err)
	}
	if err := h.ClassAdd(netlink.NewHtbClass(netlink.ClassAttrs{LinkIndex: l.Attrs().Index, Parent: netlink.MakeHandle(1, 0), Handle: netlink.MakeHandle(1, 0x4242)},
		netlink.HtbClassAttrs{Rate: 1e6})); err != nil {
		t.Fatal(err)
	}

	s, err := New(sndNS, Config{Link: "qs0", DefaultRate: 1e6, Direction: ByDestination})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	classes := func() map[uint32]bool {
		cs, err := h.ClassList(l, netlink.MakeHandle(1, 0))
		if err != nil {
			t.Fatal(err)
		}
		m := map[uint32]bool{}
		for _, c := range cs {
			m[c.Attrs().Handle] = true
		}
		return m
	}
	if classes()[netlink.MakeHandle(1, 0x4242)] {
		t.Error("the stale class survived New")
	}
	a := netip.MustParseAddr("fd00:9::1")
	if err := s.SetApp("x", a, 1e6, 2e6); err != nil {
		t.Fatal(err)
	}
	cx, ok := s.Class("x")
	if !ok {
		t.Fatal("no class for x")
	}
	// Updating keeps the class; moving the address remaps it.
	b := netip.MustParseAddr("10.9.1.7")
	if err := s.SetApp("x", b, 3e6, 3e6); err != nil {
		t.Fatal(err)
	}
	if c2, _ := s.Class("x"); c2 != cx {
		t.Errorf("class of x moved from %s to %s", netlink.HandleStr(cx), netlink.HandleStr(c2))
	}
	var v uint32
	if err := s.objs.Classes.Lookup(qosAddrKey{Addr: a.As16()}, &v); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("old address still mapped (%v)", err)
	}
	if err := s.objs.Classes.Lookup(qosAddrKey{Addr: b.As16()}, &v); err != nil || v != cx {
		t.Errorf("new address maps to %#x (%v), want %#x", v, err, cx)
	}
	if err := s.SetApp("y", b, 1e6, 0); err == nil {
		t.Error("two apps on one address accepted")
	}
	if err := s.SetApp("z", a, 2e6, 1e6); err == nil {
		t.Error("ceil below rate accepted")
	}
	got := classes()
	for _, c := range []uint32{ClassHandle(parentMinor), ClassHandle(DefaultMinor), cx} {
		if !got[c] {
			t.Errorf("class %s missing", netlink.HandleStr(c))
		}
	}
	if err := s.RemoveApp("x"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveApp("x"); err != nil {
		t.Errorf("second RemoveApp: %v", err)
	}
	if classes()[cx] {
		t.Errorf("class %s left after RemoveApp", netlink.HandleStr(cx))
	}
	if n := s.objs.Classes.Iterate(); n.Next(new(qosAddrKey), &v) {
		t.Error("address left in the map after RemoveApp")
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	qs, err := h.QdiscList(l)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		t.Logf("after Close: qdisc %s %s parent %s", q.Type(), netlink.HandleStr(q.Attrs().Handle), netlink.HandleStr(q.Attrs().Parent))
		if q.Type() == "htb" || q.Type() == "pfifo" {
			t.Errorf("qdisc %s %s left after Close", q.Type(), netlink.HandleStr(q.Attrs().Handle))
		}
	}
	if err := netns.Do(sndNS, func() error {
		r, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: ebpf.AttachTCXEgress})
		if err != nil {
			return err
		}
		if len(r.Programs) != 0 {
			t.Errorf("%d tcx egress programs left after Close", len(r.Programs))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A fresh New on the cleaned interface works again.
	s2, err := New(sndNS, Config{Link: "qs0", DefaultRate: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}
