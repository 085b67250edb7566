package agent

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/traffic/netns"
	"github.com/mecorch/mecorch/traffic/qos"
)

// qosLab is the agent's namespace with the app bridge and two instances on
// it, wired as apprun wires them (netns.EnsureBridge and AddVeth).
type qosLab struct {
	dir, host string
	inst      map[string]string // id -> netns path
}

const qosBridgeGW = "10.201.0.1"

func newQoSLab(t *testing.T) *qosLab {
	t.Helper()
	needRoot(t)
	dir := t.TempDir()
	l := &qosLab{dir: dir, inst: map[string]string{}}
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
	l.host, err = netns.Create(dir, "host")
	must(t, err)
	must(t, netns.EnsureBridge(l.host, "mecbr0", netip.MustParsePrefix(qosBridgeGW+"/24")))
	for id, a := range map[string]string{"a": "10.201.0.2/24", "b": "10.201.0.3/24"} {
		p, err := netns.Create(dir, "inst-"+id)
		must(t, err)
		l.inst[id] = p
		l.veth(t, id, a)
	}
	return l
}

func (l *qosLab) veth(t *testing.T, id, addr string) {
	t.Helper()
	must(t, netns.AddVeth(netns.Veth{HostNetns: l.host, Bridge: "mecbr0", HostName: "mecv" + id,
		PeerNetns: l.inst[id], Address: netip.MustParsePrefix(addr), Gateway: netip.MustParseAddr(qosBridgeGW)}))
}

// ifindex of a link in a namespace.
func qosIfindex(t *testing.T, nsPath, name string) int {
	t.Helper()
	h, err := netns.Handle(nsPath)
	must(t, err)
	defer h.Close()
	lk, err := h.LinkByName(name)
	must(t, err)
	return lk.Attrs().Index
}

// shaping tells what traffic/qos left on a link: whether an HTB root is
// there, any pfifo (a class leaf), and the default class's rate and ceil
// in bits/s (0 without one).
type shaping struct {
	htb, pfifo bool
	rate, ceil uint64
}

func shapingOf(t *testing.T, nsPath, name string) shaping {
	t.Helper()
	h, err := netns.Handle(nsPath)
	must(t, err)
	defer h.Close()
	lk, err := h.LinkByName(name)
	must(t, err)
	qs, err := h.QdiscList(lk)
	must(t, err)
	var s shaping
	for _, q := range qs {
		switch q.Type() {
		case "htb":
			s.htb = true
		case "pfifo":
			s.pfifo = true
		}
	}
	if s.htb {
		cs, err := h.ClassList(lk, netlink.MakeHandle(1, 0))
		must(t, err)
		for _, c := range cs {
			if hc, ok := c.(*netlink.HtbClass); ok && c.Attrs().Handle == qos.ClassHandle(qos.DefaultMinor) {
				s.rate, s.ceil = hc.Rate*8, hc.Ceil*8 // the kernel keeps bytes/s
			}
		}
	}
	return s
}

// The bytes HTB charges per datagram: Ethernet, IPv4 and UDP headers, and
// the payload. Rates below are in these wire bits.
const (
	qosPayload = 1400
	qosWire    = 14 + 20 + 8 + qosPayload
	mbit       = 1_000_000
)

// pacedSender sends qosPayload-byte datagrams from src (in nsPath) to dst
// at offered bits/s (wire), until stop.
func pacedSender(t *testing.T, wg *sync.WaitGroup, stop *atomic.Bool, nsPath string, src, dst netip.AddrPort, offered float64) {
	t.Helper()
	var c *net.UDPConn
	must(t, netns.Do(nsPath, func() (err error) {
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(src))
		return err
	}))
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer c.Close()
		msg := make([]byte, qosPayload)
		t0 := time.Now()
		sent := 0
		for !stop.Load() {
			due := int(time.Since(t0).Seconds() * offered / (8 * qosWire))
			for ; sent < due && !stop.Load(); sent++ {
				if _, err := c.WriteToUDPAddrPort(msg, dst); err != nil && !errors.Is(err, syscall.ENOBUFS) {
					t.Error(err)
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
}

// counter counts datagrams at a receiver in nsPath.
type counter struct{ pkts atomic.Uint64 }

func (c *counter) wireBits() float64 { return float64(c.pkts.Load()) * qosWire * 8 }

func countAt(t *testing.T, wg *sync.WaitGroup, nsPath string, at netip.AddrPort) (*counter, *net.UDPConn) {
	t.Helper()
	var rcv *net.UDPConn
	must(t, netns.Do(nsPath, func() (err error) {
		rcv, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(at))
		return err
	}))
	// A receive buffer large enough that the receiver, not HTB, never drops.
	if rc, err := rcv.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) })
	}
	c := &counter{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, err := rcv.Read(buf)
			if err != nil {
				return // closed at the end of the measurement
			}
			if n == qosPayload {
				c.pkts.Add(1)
			}
		}
	}()
	return c, rcv
}

// TestQoSShapesInstances: an instance limited to 10 Mbit/s uplink, sent
// 40 Mbit/s, gets 10 at its receiver, while another on the same bridge,
// limited to 50, gets all of the 30 it is offered; the first instance's
// 20 Mbit/s downlink limit holds its 60 Mbit/s sender to 20.
func TestQoSShapesInstances(t *testing.T) {
	l := newQoSLab(t)
	q := newQoSSet(slog.New(slog.DiscardHandler))
	defer func() { must(t, q.close()) }()
	must(t, q.apply("a", &agentproto.Bandwidth{
		Uplink:   &agentproto.Rate{RateBps: 10 * mbit},
		Downlink: &agentproto.Rate{RateBps: 20 * mbit},
	}, l.host, "mecva", l.inst["a"], "eth0", qosIfindex(t, l.host, "mecva")))
	must(t, q.apply("b", &agentproto.Bandwidth{Uplink: &agentproto.Rate{RateBps: 50 * mbit}},
		l.host, "mecvb", l.inst["b"], "eth0", qosIfindex(t, l.host, "mecvb")))

	var rwg, swg sync.WaitGroup
	var stop atomic.Bool
	downA, rcvA := countAt(t, &rwg, l.inst["a"], netip.MustParseAddrPort("10.201.0.2:9000"))
	downB, rcvB := countAt(t, &rwg, l.inst["b"], netip.MustParseAddrPort("10.201.0.3:9000"))
	upA, rcvUp := countAt(t, &rwg, l.host, netip.MustParseAddrPort(qosBridgeGW+":9001"))
	pacedSender(t, &swg, &stop, l.host, netip.MustParseAddrPort(qosBridgeGW+":0"), netip.MustParseAddrPort("10.201.0.2:9000"), 40*mbit)
	pacedSender(t, &swg, &stop, l.host, netip.MustParseAddrPort(qosBridgeGW+":0"), netip.MustParseAddrPort("10.201.0.3:9000"), 30*mbit)
	pacedSender(t, &swg, &stop, l.inst["a"], netip.MustParseAddrPort("10.201.0.2:0"), netip.MustParseAddrPort(qosBridgeGW+":9001"), 60*mbit)

	// Skip the first half second: ARP, and the classes' initial bursts.
	time.Sleep(500 * time.Millisecond)
	c0 := []float64{downA.wireBits(), downB.wireBits(), upA.wireBits()}
	t0 := time.Now()
	time.Sleep(2 * time.Second)
	c1 := []float64{downA.wireBits(), downB.wireBits(), upA.wireBits()}
	el := time.Since(t0).Seconds()
	stop.Store(true)
	swg.Wait()
	rcvA.Close()
	rcvB.Close()
	rcvUp.Close()
	rwg.Wait()
	gotA, gotB, gotUp := (c1[0]-c0[0])/el/mbit, (c1[1]-c0[1])/el/mbit, (c1[2]-c0[2])/el/mbit
	t.Logf("measured over %.2fs: a uplink %.2f Mbit/s (limit 10, offered 40), b uplink %.2f Mbit/s (limit 50, offered 30), a downlink %.2f Mbit/s (limit 20, offered 60)",
		el, gotA, gotB, gotUp)
	if gotA < 9 || gotA > 11 {
		t.Errorf("a uplink %.2f Mbit/s, want 9-11", gotA)
	}
	if gotB < 27 || gotB > 33 {
		t.Errorf("b uplink %.2f Mbit/s, want its offered 30 (27-33)", gotB)
	}
	if gotUp < 18 || gotUp > 22 {
		t.Errorf("a downlink %.2f Mbit/s, want 18-22", gotUp)
	}
}

// TestQoSChangeAndRemove: a changed limit replaces the shaper, a dropped
// direction leaves no qdisc, a repeated apply touches nothing, a new veth
// is shaped anew, an HTB left by a crashed agent is removed, and removal
// (also of an instance whose link is gone) leaves nothing.
func TestQoSChangeAndRemove(t *testing.T) {
	l := newQoSLab(t)
	q := newQoSSet(slog.New(slog.DiscardHandler))
	defer func() { must(t, q.close()) }()
	idxA := qosIfindex(t, l.host, "mecva")
	apply := func(bw *agentproto.Bandwidth, idx int) {
		t.Helper()
		must(t, q.apply("a", bw, l.host, "mecva", l.inst["a"], "eth0", idx))
	}
	bw := &agentproto.Bandwidth{Uplink: &agentproto.Rate{RateBps: 10 * mbit}, Downlink: &agentproto.Rate{RateBps: 5 * mbit, CeilBps: 8 * mbit}}
	apply(bw, idxA)
	if s := shapingOf(t, l.host, "mecva"); !s.htb || s.rate != 10*mbit || s.ceil != 10*mbit {
		t.Fatalf("host end after apply: %+v, want htb at 10/10 Mbit/s", s)
	}
	if s := shapingOf(t, l.inst["a"], "eth0"); !s.htb || s.rate != 5*mbit || s.ceil != 8*mbit {
		t.Fatalf("instance end after apply: %+v, want htb at 5/8 Mbit/s", s)
	}

	// The same again (a copy, as a new desired state would carry): nothing is redone.
	down, up := q.inst["a"].toInst.s, q.inst["a"].fromInst.s
	cp := *bw
	apply(&cp, idxA)
	if q.inst["a"].toInst.s != down || q.inst["a"].fromInst.s != up {
		t.Error("an unchanged apply made new shapers")
	}

	// Uplink changed, downlink dropped.
	apply(&agentproto.Bandwidth{Uplink: &agentproto.Rate{RateBps: 20 * mbit, CeilBps: 25 * mbit}}, idxA)
	if s := shapingOf(t, l.host, "mecva"); !s.htb || s.rate != 20*mbit || s.ceil != 25*mbit {
		t.Errorf("host end after change: %+v, want htb at 20/25 Mbit/s", s)
	}
	if s := shapingOf(t, l.inst["a"], "eth0"); s.htb || s.pfifo {
		t.Errorf("instance end after its limit was dropped: %+v, want no qdisc of ours", s)
	}

	// The instance made anew: a new veth, a new ifindex, shaped anew.
	must(t, netns.DelVeth(l.host, "mecva"))
	l.veth(t, "a", "10.201.0.2/24")
	idxNew := qosIfindex(t, l.host, "mecva")
	if idxNew == idxA {
		t.Fatal("the new veth has the old ifindex")
	}
	apply(&agentproto.Bandwidth{Uplink: &agentproto.Rate{RateBps: 20 * mbit, CeilBps: 25 * mbit}}, idxNew)
	if s := shapingOf(t, l.host, "mecva"); !s.htb || s.rate != 20*mbit {
		t.Errorf("new veth: %+v, want htb at 20 Mbit/s", s)
	}

	// Removal deletes the tree; removing twice is fine.
	must(t, q.remove("a"))
	must(t, q.remove("a"))
	if s := shapingOf(t, l.host, "mecva"); s.htb || s.pfifo {
		t.Errorf("host end after remove: %+v, want no qdisc of ours", s)
	}

	// A crashed agent's HTB on b's link, and b now unshaped: it goes.
	idxB := qosIfindex(t, l.host, "mecvb")
	h, err := netns.Handle(l.host)
	must(t, err)
	defer h.Close()
	must(t, h.QdiscAdd(netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: idxB, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT})))
	must(t, q.apply("b", nil, l.host, "mecvb", l.inst["b"], "eth0", idxB))
	if s := shapingOf(t, l.host, "mecvb"); s.htb {
		t.Errorf("a stale htb survived apply(nil): %+v", s)
	}

	// An instance removed by the runtime before the agent noticed: its
	// veth is gone, and removing its shapers is no error.
	must(t, q.apply("b", &agentproto.Bandwidth{Uplink: &agentproto.Rate{RateBps: 10 * mbit}}, l.host, "mecvb", l.inst["b"], "eth0", idxB))
	must(t, netns.DelVeth(l.host, "mecvb"))
	must(t, q.remove("b"))
	if len(q.inst) != 0 {
		t.Errorf("instances left: %v", q.inst)
	}
}
