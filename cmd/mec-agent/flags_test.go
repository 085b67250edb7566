package main

import (
	"io"
	"regexp"
	"strings"
	"testing"
)

// TestSteeringFlags: steering needs the UE pools (without them every
// reply not to a known UE would be dropped); the overlay, the core side and
// the DNS responder need steering; the pin directory defaults per host.
func TestSteeringFlags(t *testing.T) {
	base := []string{"--orchestrator", "http://127.0.0.1:8080", "--host-id", "h", "--site", "s", "--token-file", "/dev/null"}
	cases := []struct {
		extra []string
		err   string
	}{
		{nil, ""},
		{[]string{"--steer-iface", "eth2", "--ue-prefix", "10.45.0.0/16"}, ""},
		{[]string{"--steer-iface", "eth2"}, "needs at least one --ue-prefix"},
		{[]string{"--ue-prefix", "10.45.0.0/16"}, "need --steer-iface"},
		{[]string{"--steer-iface", "eth2", "--ue-prefix", "10.45.0.0/16", "--core-iface", "eth1"}, ""},
		{[]string{"--steer-iface", "eth2", "--ue-prefix", "10.45.0.0/16", "--core-iface", "eth2"}, "must differ"},
		{[]string{"--steer-iface", "eth2", "--ue-prefix", "10.45.0.0"}, "ue-prefix"},
		{[]string{"--vtep", "10.0.1.2"}, "need --steer-iface"},
		{[]string{"--steer-iface", "eth2", "--ue-prefix", "10.45.0.0/16", "--vtep", "224.0.0.1"}, "unicast"},
		{[]string{"--steer-iface", "eth2", "--ue-prefix", "10.45.0.0/16", "--vni", "0"}, "--vni"},
		{[]string{"--steer-iface", "eth2", "--ue-prefix", "10.45.0.0/16", "--ue-dns", "10.100.2.53"}, "--dns-upstream"},
		{[]string{"--steer-iface", "eth2", "--ue-prefix", "10.45.0.0/16", "--ue-dns", "10.100.2.53", "--dns-upstream", "10.100.2.54:53"}, ""},
		{[]string{"--steer-iface", "eth2", "--ue-prefix", "10.45.0.0/16", "--bpf-pin-dir", "rel/dir"}, "absolute"},
		{[]string{"--host-id", "..", "--steer-iface", "eth2", "--ue-prefix", "10.45.0.0/16"}, "pin directory"},
		{[]string{"--host-id", "a/b"}, "pin directory"},
	}
	for _, tc := range cases {
		_, err := parse(append(append([]string{}, base...), tc.extra...), io.Discard)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v", tc.extra, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: err = %v, want %q", tc.extra, err, tc.err)
		}
	}
}

// TestPinDirDefault: pins go per host under bpffs, "off" turns them off.
func TestPinDirDefault(t *testing.T) {
	base := []string{"--orchestrator", "http://127.0.0.1:8080", "--host-id", "edge7", "--site", "s", "--token-file", "/dev/null",
		"--steer-iface", "eth2", "--ue-prefix", "10.45.0.0/16"}
	f, err := parse(base, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.dp.pins(); got != "/sys/fs/bpf/mecorch/edge7" {
		t.Errorf("default pin dir %q", got)
	}
	f, err = parse(append(base, "--bpf-pin-dir", "off"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.dp.pins(); got != "" {
		t.Errorf("--bpf-pin-dir off: pin dir %q", got)
	}
}

// TestDNSNetnsNotAnInstance: the runtime sweeps every namespace with the
// instance prefix that no instance owns (except what it is told to keep);
// the DNS responder's key can be no instance's.
func TestDNSNetnsNotAnInstance(t *testing.T) {
	if dnsNetns("mec-") != "mec-"+dnsKey {
		t.Errorf("DNS namespace %q", dnsNetns("mec-"))
	}
	if regexp.MustCompile(`^[A-Za-z0-9]`).MatchString(dnsKey) {
		t.Errorf("DNS key %q could be an instance's (apprun keys start with a letter or digit)", dnsKey)
	}
}
