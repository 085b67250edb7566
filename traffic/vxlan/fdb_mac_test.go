package vxlan_test

import (
	"maps"
	"net/netip"
	"testing"

	"github.com/mecorch/mecorch/traffic/vxlan"
)

// TestSetMACs: per-MAC entries are set exactly, read back, and a bad set
// changes nothing.
func TestSetMACs(t *testing.T) {
	hs := underlayLab(t, "macs", 3)
	a, b, c := hs[0], hs[1], hs[2]
	tun, err := vxlan.Ensure(a.ns, vxlan.Config{VNI: vni, Local: a.underlay, Underlay: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tun.SetPeers([]vxlan.Peer{b.peer(), c.peer()}); err != nil {
		t.Fatal(err)
	}
	want := map[string]netip.Addr{"02:00:00:00:00:0b": b.underlay, "02:00:00:00:00:0c": c.underlay}
	if err := tun.SetMACs(want); err != nil {
		t.Fatal(err)
	}
	check := func(want map[string]netip.Addr) {
		t.Helper()
		got, err := tun.MACs()
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("MACs = %v, want %v", got, want)
		}
	}
	check(want)
	// Moving one MAC to another host and dropping the other.
	moved := map[string]netip.Addr{"02:00:00:00:00:0b": c.underlay}
	if err := tun.SetMACs(moved); err != nil {
		t.Fatal(err)
	}
	check(moved)
	for name, bad := range map[string]map[string]netip.Addr{
		"multicast MAC": {"01:00:5e:00:00:01": b.underlay, "02:00:00:00:00:0d": b.underlay},
		"own address":   {"02:00:00:00:00:0d": a.underlay},
		"not a MAC":     {"zz": b.underlay},
	} {
		if err := tun.SetMACs(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
		check(moved)
	}
	// The default entries are not touched by SetMACs.
	mustPeers(t, tun, b.underlay, c.underlay)
}
