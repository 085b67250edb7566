package linkemu

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/traffic/netns"
)

// requirePrivileges skips a test that needs root, except under CI=true,
// where it fails: a green CI run must mean the test really ran.
func requirePrivileges(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW); CI=true forbids skipping")
	}
	t.Skip("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW)")
}

// lab is three namespaces: two nodes and a relay.
type lab struct {
	a, b, relay string
}

var (
	addrA = netip.MustParsePrefix("10.77.0.1/24")
	addrB = netip.MustParsePrefix("10.77.0.2/24")
)

// newLab makes the namespaces, deleted at the end of the test.
func newLab(t testing.TB) lab {
	t.Helper()
	requirePrivileges(t)
	dir := t.TempDir()
	var l lab
	for _, p := range []*string{&l.a, &l.b, &l.relay} {
		name := map[*string]string{&l.a: "a", &l.b: "b", &l.relay: "relay"}[p]
		path, err := netns.Create(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		*p = path
		t.Cleanup(func() {
			if err := netns.Delete(dir, name); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return l
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// start brings up a link eth1(a) – eth1(b) with the lab's addresses on the
// node sides, closed at the end of the test.
// Options change the Config before Start.
func (l lab) start(t testing.TB, aToB, bToA Params, options ...func(*Config)) *Link {
	t.Helper()
	cfg := Config{
		A: Side{Netns: l.a, Iface: "eth1"}, B: Side{Netns: l.b, Iface: "eth1"},
		RelayNetns: l.relay, AtoB: aToB, BtoA: bToA, Seed: 1, Logger: testLogger(t),
	}
	for _, o := range options {
		o(&cfg)
	}
	link, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := link.Close(); err != nil {
			t.Error(err)
		}
	})
	address(t, l.a, "eth1", addrA)
	address(t, l.b, "eth1", addrB)
	return link
}

// address puts p on ifname in the namespace on nsPath and brings up lo.
func address(t testing.TB, nsPath, ifname string, p netip.Prefix) {
	t.Helper()
	h, err := handleIn(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatal(err)
	}
	link, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	ipn := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: ipn}); err != nil {
		t.Fatal(err)
	}
}

// listenUDP opens a UDP socket on addr inside the namespace on nsPath.
func listenUDP(t testing.TB, nsPath string, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := netns.Do(nsPath, func() (err error) {
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echo answers every datagram on c with itself until c is closed.
func echo(t testing.TB, c *net.UDPConn) {
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
}

// echoPair starts an echo server in b and returns a client socket in a.
func (l lab) echoPair(t testing.TB) (client *net.UDPConn, server netip.AddrPort) {
	server = netip.AddrPortFrom(addrB.Addr(), 7007)
	echo(t, listenUDP(t, l.b, server))
	return listenUDP(t, l.a, netip.AddrPortFrom(addrA.Addr(), 0)), server
}

// pingPong measures n round trips one after the other and returns them
// sorted; a lost probe fails the test.
func pingPong(t testing.TB, c *net.UDPConn, to netip.AddrPort, n int) []time.Duration {
	t.Helper()
	rtts := make([]time.Duration, 0, n)
	buf := make([]byte, 64)
	for i := range n {
		msg := binary.BigEndian.AppendUint64(make([]byte, 0, 64), uint64(i))
		msg = msg[:64]
		start := time.Now()
		if _, err := c.WriteToUDPAddrPort(msg, to); err != nil {
			t.Fatal(err)
		}
		for {
			_ = c.SetReadDeadline(start.Add(2 * time.Second))
			m, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("probe %d: %v", i, err)
			}
			if m >= 8 && binary.BigEndian.Uint64(buf) == uint64(i) {
				break
			}
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	return rtts
}

func median(d []time.Duration) time.Duration { return d[len(d)/2] }

// tolerance is the accuracy the package promises for a round trip of rtt.
func tolerance(rtt time.Duration) time.Duration {
	return max(300*time.Microsecond, rtt/10)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
