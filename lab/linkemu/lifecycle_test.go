package linkemu

import (
	"context"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mecorch/mecorch/traffic/netns"
)

// TestCloseLeavesNothing checks that Close removes the veths and ends
// the goroutines and closes the sockets and timers it made.
func TestCloseLeavesNothing(t *testing.T) {
	l := newLab(t)
	goroutines, fds := runtime.NumGoroutine(), openFiles(t)
	link, err := Start(context.Background(), Config{
		A: Side{Netns: l.a, Iface: "eth1"}, B: Side{Netns: l.b, Iface: "eth2"},
		RelayNetns: l.relay, AtoB: Params{Delay: 50 * time.Millisecond}, BtoA: Params{Delay: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	address(t, l.a, "eth1", addrA)
	address(t, l.b, "eth2", addrB)
	// Frames held for 50 ms when Close comes.
	c := listenUDP(t, l.a, netip.AddrPortFrom(addrA.Addr(), 0))
	for range 20 {
		_, _ = c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addrB.Addr(), 9))
	}
	time.Sleep(20 * time.Millisecond)
	c.Close()
	if err := link.Close(); err != nil {
		t.Fatal(err)
	}
	if err := link.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for ns, want := range map[string]string{l.relay: "", l.a: "eth1", l.b: "eth2"} {
		names, err := netns.Links(ns, want, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if n != "lo" {
				t.Errorf("link %s left in %s", n, ns)
			}
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Errorf("%d goroutines after Close, %d before Start", n, goroutines)
	}
	if n := openFiles(t); n != fds {
		t.Errorf("%d open files after Close, %d before Start", n, fds)
	}
}

// openFiles counts the process's sockets and anonymous files (timerfds).
func openFiles(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && (strings.HasPrefix(target, "socket:") || strings.HasPrefix(target, "anon_inode:")) {
			n++
		}
	}
	return n
}

func TestStartRefuses(t *testing.T) {
	l := newLab(t)
	l.start(t, Params{}, Params{})
	cases := map[string]Config{
		"existing interface": {A: Side{Netns: l.a, Iface: "eth1"}, B: Side{Netns: l.b, Iface: "eth9"}, RelayNetns: l.relay},
		"long name":          {A: Side{Netns: l.a, Iface: "eth-much-too-long"}, B: Side{Netns: l.b, Iface: "eth9"}, RelayNetns: l.relay},
		"negative delay":     {A: Side{Netns: l.a, Iface: "eth8"}, B: Side{Netns: l.b, Iface: "eth9"}, RelayNetns: l.relay, AtoB: Params{Delay: -time.Millisecond}},
		"loss over 100":      {A: Side{Netns: l.a, Iface: "eth8"}, B: Side{Netns: l.b, Iface: "eth9"}, RelayNetns: l.relay, BtoA: Params{LossPct: 101}},
		"missing netns":      {A: Side{Netns: l.a + "-none", Iface: "eth8"}, B: Side{Netns: l.b, Iface: "eth9"}, RelayNetns: l.relay},
	}
	for name, cfg := range cases {
		if link, err := Start(context.Background(), cfg); err == nil {
			link.Close()
			t.Errorf("%s: Start succeeded", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// Nothing of the failed starts is left behind.
	for _, ns := range []string{l.a, l.b} {
		names, err := netns.Links(ns, "eth", "")
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != 1 || names[0] != "eth1" {
			t.Errorf("links in %s: %v, want only eth1", ns, names)
		}
	}
	names, err := netns.Links(l.relay, "le", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 {
		t.Errorf("links in the relay namespace: %v, want the first link's two", names)
	}
}

// TestContextStopsRelay checks that ending Start's context stops the
// relaying, and that Close still removes the veths afterwards.
func TestContextStopsRelay(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	link, err := Start(ctx, Config{
		A: Side{Netns: l.a, Iface: "eth1"}, B: Side{Netns: l.b, Iface: "eth1"}, RelayNetns: l.relay,
	})
	if err != nil {
		t.Fatal(err)
	}
	address(t, l.a, "eth1", addrA)
	address(t, l.b, "eth1", addrB)
	c, to := l.echoPair(t)
	pingPong(t, c, to, 3)
	cancel()
	time.Sleep(50 * time.Millisecond)
	_, _ = c.WriteToUDPAddrPort([]byte("after cancel"), to)
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, _, err := c.ReadFromUDPAddrPort(make([]byte, 64)); err == nil {
		t.Error("an echo crossed the link after its context ended")
	}
	if err := link.Close(); err != nil {
		t.Fatal(err)
	}
	if names, _ := netns.Links(l.relay, "le", ""); len(names) != 0 {
		t.Errorf("links left in the relay namespace: %v", names)
	}
}
