package ransim

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/lab/ransim/gtpu"
	"github.com/mecorch/mecorch/lab/ransim/ipv4udp"
	"github.com/mecorch/mecorch/traffic/netns"
)

// requireRoot skips a test that needs CAP_SYS_ADMIN and CAP_NET_ADMIN,
// except under CI=true, where it fails: a green CI run must mean it ran.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN); CI=true forbids skipping")
	}
	t.Skip("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)")
}

// lab is a set of namespaces joined by bridges in a "switch" namespace,
// removed at the end of the test.
type lab struct {
	t   *testing.T
	dir string
	sw  string
	ns  map[string]string
}

func newLab(t *testing.T, bridges map[string]string, nodes ...string) *lab {
	requireRoot(t)
	l := &lab{t: t, dir: t.TempDir(), ns: map[string]string{}}
	t.Cleanup(func() { _ = unix.Unmount(l.dir, unix.MNT_DETACH) })
	l.sw = l.create("sw")
	for br, gw := range bridges {
		if err := netns.EnsureBridge(l.sw, br, netip.MustParsePrefix(gw)); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		l.ns[n] = l.create(n)
	}
	return l
}

func (l *lab) create(name string) string {
	path, err := netns.Create(l.dir, name)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		if err := netns.Delete(l.dir, name); err != nil {
			l.t.Error(err)
		}
	})
	return path
}

// link puts node on bridge with an interface ifname holding addr.
func (l *lab) link(node, ifname, bridge, addr string) {
	err := netns.AddVeth(netns.Veth{
		HostNetns: l.sw, Bridge: bridge, HostName: netns.VethName("rs", node+"/"+ifname),
		PeerNetns: l.ns[node], PeerName: ifname, Address: netip.MustParsePrefix(addr),
	})
	if err != nil {
		l.t.Fatal(err)
	}
}

// in runs f with the calling thread in node's namespace: the sockets f
// opens live there.
func in[T any](l *lab, node string, f func() (T, error)) T {
	l.t.Helper()
	var v T
	if err := netns.Do(l.ns[node], func() (err error) { v, err = f(); return err }); err != nil {
		l.t.Fatalf("in %s: %v", node, err)
	}
	return v
}

// wireGTPU is one GTP-U message seen on a link.
type wireGTPU struct {
	src, dst netip.AddrPort
	msg      *gtpu.Message
}

// tap records the GTP-U messages crossing an interface, both ways, from
// an AF_PACKET socket: what is on the wire, not what a socket was handed.
type tap struct {
	fd      int
	stop    atomic.Bool
	done    chan struct{}
	mu      sync.Mutex
	msgs    []wireGTPU
	bad     []error
	nonGTPU int // UDP datagrams to or from another port than 2152
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func openTap(l *lab, node, ifname string) *tap {
	fd := in(l, node, func() (int, error) {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return 0, err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return 0, err
		}
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
		if err == nil {
			err = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50_000})
		}
		if err != nil {
			unix.Close(fd)
		}
		return fd, err
	})
	tp := &tap{fd: fd, done: make(chan struct{})}
	go tp.read()
	l.t.Cleanup(tp.close)
	return tp
}

func (tp *tap) read() {
	defer close(tp.done)
	buf := make([]byte, 1<<16)
	for !tp.stop.Load() {
		n, _, err := unix.Recvfrom(tp.fd, buf, 0)
		if err != nil {
			continue // the receive timeout, to look at stop
		}
		tp.frame(buf[:n])
	}
}

// frame parses Ethernet / IPv4 / UDP by hand: the outer UDP checksum of
// a frame captured on its way out may be left for the NIC to fill, so
// ipv4udp.Parse, which verifies it, is kept for the inner packets.
func (tp *tap) frame(f []byte) {
	if len(f) < 14+20 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 {
		return
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[9] != ipv4udp.ProtoUDP || len(ip) < ihl+8 {
		return
	}
	udp := ip[ihl:]
	sp, dp, ulen := binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4]), int(binary.BigEndian.Uint16(udp[4:6]))
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if sp != gtpu.Port && dp != gtpu.Port {
		tp.nonGTPU++
		return
	}
	if ulen < 8 || ulen > len(udp) {
		tp.bad = append(tp.bad, errors.New("UDP length beyond the frame"))
		return
	}
	m, err := gtpu.Decode(bytes.Clone(udp[8:ulen]))
	if err != nil {
		tp.bad = append(tp.bad, err)
		return
	}
	tp.msgs = append(tp.msgs, wireGTPU{
		src: netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), sp),
		dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), dp),
		msg: m,
	})
}

func (tp *tap) close() {
	if tp.stop.Swap(true) {
		return
	}
	<-tp.done
	unix.Close(tp.fd)
}

// TestNetnsGTPUOnTheWire runs the UE, two gNBs, the UPF and the DN in
// namespaces of their own, joined by three bridged segments: radio
// (10.61.0.0/24), N3 (10.62.0.0/24) and N6 (10.63.0.0/24). The UE's
// requests reach the DN and the answers come back; on the UPF's N3
// interface every packet is GTP-U, uplink G-PDUs on the UPF's TEID with a
// UL PDU session container, downlink on the gNB's TEID with a DL one, the
// inner IPv4/UDP packets whole with valid checksums. The UE moves to gNB
// 2 mid-stream; traffic goes on, gNB 1 gets an End Marker and nothing
// after it, and mecorch gets one cell change.
func TestNetnsGTPUOnTheWire(t *testing.T) {
	l := newLab(t, map[string]string{"brradio": "10.61.0.1/24", "brn3": "10.62.0.1/24", "brn6": "10.63.0.1/24"},
		"ue", "gnb1", "gnb2", "upf", "dn")
	l.link("ue", "radio", "brradio", "10.61.0.10/24")
	l.link("gnb1", "radio", "brradio", "10.61.0.11/24")
	l.link("gnb2", "radio", "brradio", "10.61.0.12/24")
	l.link("gnb1", "n3", "brn3", "10.62.0.11/24")
	l.link("gnb2", "n3", "brn3", "10.62.0.12/24")
	l.link("upf", "n3", "brn3", "10.62.0.2/24")
	l.link("upf", "n6", "brn6", "10.63.0.2/24")
	l.link("dn", "n6", "brn6", "10.63.0.3/24")

	log := testLogger(t)
	sess := []Session{testSession()}
	dn := in(l, "dn", func() (*DN, error) { return NewDN(DNConfig{Addr: "10.63.0.3:7", Name: "dn", TCP: true}, log) })
	start(t, dn)
	upf := in(l, "upf", func() (*UPF, error) {
		return NewUPF(UPFConfig{N3Addr: "10.62.0.2:2152", N6Addr: "10.63.0.2", Sessions: sess,
			ListenPacket: func(network, addr string) (c net.PacketConn, err error) {
				err = netns.Do(l.ns["upf"], func() (err error) { c, err = net.ListenPacket(network, addr); return err })
				return c, err
			}}, log)
	})
	start(t, upf)
	gnb := func(name, radio, n3, cell string) *GNB {
		g := in(l, name, func() (*GNB, error) {
			return NewGNB(GNBConfig{Name: name, Cells: []string{cell}, RadioAddr: radio, N3Addr: n3, UPFAddr: "10.62.0.2", Sessions: sess}, log)
		})
		start(t, g)
		return g
	}
	gnb1 := gnb("gnb1", "10.61.0.11:9000", "10.62.0.11:2152", cellA)
	gnb2 := gnb("gnb2", "10.61.0.12:9000", "10.62.0.12:2152", cellB)
	wire := openTap(l, "upf", "n3")
	rec, srv := newRecorder(t, "tok") // in the test's namespace: the reporter's HTTP client dials from there too
	reporter := must[*HTTPReporter](t)(NewHTTPReporter(srv.URL, "tok", nil))

	const count = 150
	out := &syncBuffer{}
	ue := in(l, "ue", func() (*UE, error) {
		return NewUE(UEConfig{
			ID: "ue1", Addr: netip.MustParseAddr("10.45.0.2"), GNB: "10.61.0.11", Cell: cellA, LocalAddr: "10.61.0.10:0",
			Target: netip.MustParseAddrPort("10.63.0.3:7"), Rate: 100, Count: count, Timeout: 3 * time.Second,
			ReportEvery: 250 * time.Millisecond,
			Handover:    &Handover{After: 600 * time.Millisecond, GNB: "10.61.0.12:9000", Cell: cellB},
			Reporter:    reporter, Out: out,
		}, log)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ue.Run(ctx); err != nil {
		t.Fatal(err)
	}
	wire.close()

	if tot := ue.Totals(); tot.Sent != count || tot.Received != count || tot.Lost != 0 || tot.AnsweredBy["dn"] != count {
		t.Fatalf("UE totals %+v", tot)
	}
	if got := rec.got(); len(got) != 1 || got[0].FromCell != cellA || got[0].ToCell != cellB || got[0].UEID != "ue1" {
		t.Fatalf("cell changes %+v", got)
	}
	if s := gnb1.Stats(); s.EndMarkers != 1 || s.Uplink == 0 || s.Downlink == 0 {
		t.Fatalf("gnb1 %+v", s)
	}
	if s := gnb2.Stats(); s.EndMarkers != 0 || s.Uplink == 0 || s.Downlink == 0 {
		t.Fatalf("gnb2 %+v", s)
	}
	checkWire(t, wire)
}

func checkWire(t *testing.T, wire *tap) {
	t.Helper()
	upfN3 := netip.MustParseAddrPort("10.62.0.2:2152")
	gnb1N3, gnb2N3 := netip.MustParseAddrPort("10.62.0.11:2152"), netip.MustParseAddrPort("10.62.0.12:2152")
	ueAP, dnAP := netip.MustParseAddrPort("10.45.0.2:40000"), netip.MustParseAddrPort("10.63.0.3:7")
	if len(wire.bad) != 0 || wire.nonGTPU != 0 {
		t.Fatalf("on N3: %d undecodable GTP-U (%v), %d other UDP datagrams", len(wire.bad), wire.bad, wire.nonGTPU)
	}
	ul := map[netip.AddrPort]int{}
	dl := map[netip.AddrPort]int{}
	endMarker := -1
	for i, w := range wire.msgs {
		m := w.msg
		switch {
		case m.Type == gtpu.EndMarker:
			if w.src != upfN3 || w.dst != gnb1N3 || m.TEID != 0x200 || endMarker >= 0 {
				t.Fatalf("end marker %d: %s → %s TEID %#x (earlier one at %d)", i, w.src, w.dst, m.TEID, endMarker)
			}
			if ul[gnb2N3] == 0 {
				t.Fatal("end marker before any uplink from gnb2")
			}
			endMarker = i
			continue
		case m.Type != gtpu.GPDU:
			t.Fatalf("message %d: %s", i, m.Type)
		}
		psc, ok, err := m.PDUSession()
		if !ok || err != nil {
			t.Fatalf("G-PDU %d without a PDU session container: %v", i, err)
		}
		inner, err := ipv4udp.Parse(m.Payload)
		if err != nil {
			t.Fatalf("G-PDU %d: inner packet: %v", i, err)
		}
		if w.dst == upfN3 {
			ul[w.src]++
			if m.TEID != 0x100 || psc != (gtpu.PDUSessionContainer{Type: gtpu.PDUTypeUL, QFI: 9}) || inner.Src != ueAP || inner.Dst != dnAP ||
				!bytes.HasPrefix(inner.Payload, []byte(payloadMagic)) {
				t.Fatalf("uplink %d from %s: TEID %#x %+v inner %s → %s", i, w.src, m.TEID, psc, inner.Src, inner.Dst)
			}
			continue
		}
		if w.src != upfN3 {
			t.Fatalf("G-PDU %d between %s and %s", i, w.src, w.dst)
		}
		dl[w.dst]++
		if m.TEID != 0x200 || psc != (gtpu.PDUSessionContainer{Type: gtpu.PDUTypeDL, QFI: 9}) || inner.Src != dnAP || inner.Dst != ueAP ||
			!bytes.HasPrefix(inner.Payload, []byte("dn|"+payloadMagic)) {
			t.Fatalf("downlink %d to %s: TEID %#x %+v inner %s → %s %q", i, w.dst, m.TEID, psc, inner.Src, inner.Dst, inner.Payload[:8])
		}
		if w.dst == gnb1N3 && endMarker >= 0 {
			t.Fatalf("downlink %d to gnb1 after its end marker", i)
		}
	}
	if endMarker < 0 || ul[gnb1N3] == 0 || ul[gnb2N3] == 0 || dl[gnb1N3] == 0 || dl[gnb2N3] == 0 {
		t.Fatalf("uplink %v, downlink %v, end marker at %d", ul, dl, endMarker)
	}
	t.Logf("on N3: uplink %v, downlink %v, end marker after %d messages", ul, dl, endMarker)
}
