package stamp

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/latency"
	"github.com/mecorch/mecorch/traffic/netns"
)

// Our sender against our reflector across two namespaces joined by a veth
// (through a bridge in the reflector's namespace): kernel stamps on a
// real link, and the reflector sees the sender's TTL.
func TestAcrossNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		need(t, "needs root to make namespaces")
	}
	dir := t.TempDir()
	t.Cleanup(func() {
		names, _ := netns.List(dir, "")
		for _, n := range names {
			t.Errorf("netns %s left behind", n)
			_ = netns.Delete(dir, n)
		}
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	})
	mk := func(name string) string {
		p, err := netns.Create(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := netns.Delete(dir, name); err != nil {
				t.Error(err)
			}
		})
		return p
	}
	reflNS, sendNS := mk("stamp-refl"), mk("stamp-send")
	gw := netip.MustParsePrefix("10.78.0.1/24")
	if err := netns.EnsureBridge(reflNS, "brs0", gw); err != nil {
		t.Fatal(err)
	}
	veth := netns.Veth{HostNetns: reflNS, Bridge: "brs0", HostName: netns.VethName("st", "send"),
		PeerNetns: sendNS, Address: netip.MustParsePrefix("10.78.0.2/24"), Gateway: gw.Addr()}
	if err := netns.AddVeth(veth); err != nil {
		t.Fatal(err)
	}

	var r *Reflector
	if err := netns.Do(reflNS, func() error {
		var err error
		r, err = NewReflector(ReflectorConfig{Listen: ":0"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	runReflector(t, r)
	var c collector
	var s *Sender
	if err := netns.Do(sendNS, func() error {
		var err error
		s, err = NewSender(SenderConfig{Interval: 10 * time.Millisecond}, c.add)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	runSender(t, s)
	target := netip.AddrPortFrom(gw.Addr(), port(r.Addr())).String()
	s.SetTargets([]Target{{ID: "gw", Addr: target}})
	waitFor(t, 10*time.Second, "20 samples", func() bool { return len(c.get("gw")) >= 20 })
	for _, x := range c.get("gw") {
		if x.Lost || x.RTT <= 0 || x.RTT > 100*time.Millisecond {
			t.Errorf("sample %+v", x)
		}
		if x.Source != latency.SourceKernel {
			need(t, "sample %d: source %s across a veth, want kernel", x.Seq, x.Source)
		}
	}
	if rc := r.Counters(); rc.KernelRX == 0 || rc.Malformed != 0 {
		t.Errorf("reflector counters %+v", rc)
	}
}
