package netns_test

import (
	"strings"
	"testing"

	"github.com/mecorch/mecorch/traffic/netns"
)

func TestSysctlIsPerNamespace(t *testing.T) {
	dir := nsDir(t)
	a, b := create(t, dir, "t-sysctl-a"), create(t, dir, "t-sysctl-b")
	const name = "net.ipv4.ip_unprivileged_port_start"
	host, err := netns.Sysctl("", name)
	if err != nil {
		t.Fatal(err)
	}
	before, err := netns.Sysctl(b, name)
	if err != nil {
		t.Fatal(err)
	}
	want := "0"
	if before == want {
		want = "100"
	}
	if err := netns.SetSysctl(a, name, want); err != nil {
		t.Fatal(err)
	}
	if got, err := netns.Sysctl(a, name); err != nil || got != want {
		t.Fatalf("in the namespace written: %q, %v; want %q", got, err, want)
	}
	if got, _ := netns.Sysctl(b, name); got != before {
		t.Errorf("another namespace changed: %q, was %q", got, before)
	}
	if got, _ := netns.Sysctl("", name); got != host {
		t.Errorf("the host namespace changed: %q, was %q", got, host)
	}

	// Slashes for names whose parts hold dots.
	if err := netns.SetSysctl(a, "net/ipv4/conf/lo/forwarding", "1"); err != nil {
		t.Fatal(err)
	}
	if got, err := netns.Sysctl(a, "net.ipv4.conf.lo.forwarding"); err != nil || got != "1" {
		t.Fatalf("forwarding on lo: %q, %v", got, err)
	}

	for _, bad := range []string{"kernel.hostname", "net", "net..ipv4", "net/../kernel/hostname", "net/ipv4/", ""} {
		if err := netns.SetSysctl(a, bad, "x"); err == nil || !strings.Contains(err.Error(), "name") {
			t.Errorf("SetSysctl(%q) = %v, want a name error", bad, err)
		}
	}
	if _, err := netns.Sysctl(a, "net.ipv4.no_such_sysctl"); err == nil {
		t.Error("read of a missing sysctl succeeded")
	}
}
