package apprun

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKeyOf(t *testing.T) {
	for id, plain := range map[string]bool{
		"3f2a9c1e-7d4b-4c2a-9b1e-5c6d7e8f9a0b": true,
		"web.v2_a":                             true,
		"a/b":                                  false,
		"..":                                   false,
		"-flag":                                false,
		strings.Repeat("x", 65):                false,
	} {
		k := keyOf(id)
		if (k == id) != plain || strings.ContainsAny(k, "/") || k != keyOf(id) {
			t.Errorf("keyOf(%q) = %q", id, k)
		}
	}
	if keyOf("a/b") == keyOf("a/c") {
		t.Error("two ids, one key")
	}
}

func TestAllocate(t *testing.T) {
	subnet := netip.MustParsePrefix("10.1.2.0/29") // .1 gateway, .2-.6 instances, .7 broadcast
	if gw := gateway(subnet); gw.String() != "10.1.2.1/29" {
		t.Fatalf("gateway %v", gw)
	}
	used := map[netip.Addr]bool{}
	var got []string
	for {
		a, err := allocate(subnet, used)
		if err != nil {
			break
		}
		used[a] = true
		got = append(got, a.String())
	}
	if strings.Join(got, " ") != "10.1.2.2 10.1.2.3 10.1.2.4 10.1.2.5 10.1.2.6" {
		t.Fatalf("allocated %v", got)
	}
	delete(used, netip.MustParseAddr("10.1.2.4"))
	if a, _ := allocate(subnet, used); a.String() != "10.1.2.4" {
		t.Fatalf("a freed address is not reused first: %v", a)
	}
	if a, err := allocate(netip.MustParsePrefix("fd00::/120"), nil); err != nil || a.String() != "fd00::2" {
		t.Fatalf("IPv6: %v %v", a, err)
	}
}

func TestProcStartTicksTellsProcessesApart(t *testing.T) {
	self, zombie, err := procStartTicks(os.Getpid())
	if err != nil || zombie || self == 0 {
		t.Fatalf("self: %d %v %v", self, zombie, err)
	}
	time.Sleep(20 * time.Millisecond) // at least a clock tick later
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	child, _, err := procStartTicks(cmd.Process.Pid)
	if err != nil || child <= self {
		t.Fatalf("child started at %d, self at %d (%v)", child, self, err)
	}
	_ = cmd.Process.Kill()
	// Until it is reaped, the child is a zombie.
	for i := 0; ; i++ {
		if _, z, _ := procStartTicks(cmd.Process.Pid); z {
			break
		}
		if i > 1000 {
			t.Fatal("never a zombie")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 10 * time.Second}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 50: 10 * time.Second} {
		if got := b.Delay(n); got != want {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "app")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	good := Spec{ID: "a", Exec: exe, Restart: RestartNever}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Spec){
		"no id":         func(s *Spec) { s.ID = "" },
		"relative exec": func(s *Spec) { s.Exec = "app" },
		"missing exec":  func(s *Spec) { s.Exec = filepath.Join(dir, "nope") },
		"not exec":      func(s *Spec) { s.Exec = data },
		"a directory":   func(s *Spec) { s.Exec = dir },
		"negative cpu":  func(s *Spec) { s.MilliCPU = -1 },
		"bad policy":    func(s *Spec) { s.Restart = "Sometimes" },
	} {
		s := good
		mod(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{StateDir: "/x", Subnet: netip.MustParsePrefix("10.0.0.7/24")}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Subnet.String() != "10.0.0.0/24" || c.NetnsDir != "/run/netns" || c.Cgroup != "mecorch" || c.Backoff.Max < c.Backoff.Initial {
		t.Fatalf("defaults: %+v", c)
	}
	for name, bad := range map[string]Config{
		"no state":       {Subnet: netip.MustParsePrefix("10.0.0.0/24")},
		"no subnet":      {StateDir: "/x"},
		"tiny subnet":    {StateDir: "/x", Subnet: netip.MustParsePrefix("10.0.0.0/30")},
		"long prefix":    {StateDir: "/x", Subnet: netip.MustParsePrefix("10.0.0.0/24"), VethPrefix: "toolongx"},
		"bridge matches": {StateDir: "/x", Subnet: netip.MustParsePrefix("10.0.0.0/24"), Bridge: "mecv0"},
		"cgroup escape":  {StateDir: "/x", Subnet: netip.MustParsePrefix("10.0.0.0/24"), Cgroup: "../x"},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
