package apprun

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// hybrid is the build machine's layout: v1 controllers, an empty cgroup2.
const hybrid = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

// unified is a systemd host's: one cgroup2 hierarchy.
const unified = `25 21 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`

// comounted is an older distribution's: cpu and cpuacct in one hierarchy,
// in a path with a space.
const comounted = `31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
34 30 0:31 / /sys/fs/cgroup/mem\040ory rw - cgroup cgroup rw,memory
`

func parse(t *testing.T, s string) []mountEntry {
	t.Helper()
	m, err := parseMountinfo(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestChooseCgroups(t *testing.T) {
	controllers := func(list string) func(string) ([]byte, error) {
		return func(path string) ([]byte, error) {
			if filepath.Base(path) != "cgroup.controllers" {
				return nil, fs.ErrNotExist
			}
			return []byte(list), nil
		}
	}
	cg, err := chooseCgroups(parse(t, hybrid), "mecorch", controllers(""))
	if err != nil {
		t.Fatal(err)
	}
	if v1, ok := cg.(*cgroupV1); !ok || v1.cpu != "/sys/fs/cgroup/cpu/mecorch" || v1.cpuacct != "/sys/fs/cgroup/cpuacct/mecorch" || v1.memory != "/sys/fs/cgroup/memory/mecorch" {
		t.Fatalf("hybrid: %#v", cg)
	}
	cg, err = chooseCgroups(parse(t, unified), "mecorch", controllers("cpuset cpu io memory hugetlb pids"))
	if v2, ok := cg.(*cgroupV2); err != nil || !ok || v2.dir("i") != "/sys/fs/cgroup/mecorch/i" {
		t.Fatalf("unified: %#v %v", cg, err)
	}
	if _, err := chooseCgroups(parse(t, unified), "mecorch", controllers("pids")); err == nil {
		t.Fatal("chose a cgroup2 without cpu and memory")
	}
	cg, err = chooseCgroups(parse(t, comounted), "m", controllers(""))
	v1, ok := cg.(*cgroupV1)
	if err != nil || !ok || v1.cpu != "/sys/fs/cgroup/cpu,cpuacct/m" || v1.cpuacct != v1.cpu || v1.memory != "/sys/fs/cgroup/mem ory/m" {
		t.Fatalf("co-mounted: %#v %v", cg, err)
	}
	if len(v1.dirs("i")) != 2 {
		t.Fatalf("co-mounted hierarchies counted twice: %v", v1.dirs("i"))
	}
}

// TestCgroupV2Limits checks what is written for the unified hierarchy, on
// a stand-in directory: this machine's cgroup2 has no controllers.
func TestCgroupV2Limits(t *testing.T) {
	root := t.TempDir()
	c := &cgroupV2{mount: root, parent: "mecorch/agent"}
	touch := func(rel ...string) {
		p := filepath.Join(append([]string{root}, rel...)...)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	touch("cgroup.subtree_control")
	touch("mecorch", "cgroup.subtree_control")
	touch("mecorch", "agent", "cgroup.subtree_control")
	for _, f := range []string{"cpu.max", "memory.max"} {
		touch("mecorch", "agent", "i", f)
	}
	read := func(rel ...string) string {
		b, _ := os.ReadFile(filepath.Join(append([]string{root}, rel...)...))
		return string(b)
	}
	if err := c.ensure("i", 1500, 256); err != nil {
		t.Fatal(err)
	}
	if got := read("mecorch", "agent", "i", "cpu.max"); got != "150000 100000" {
		t.Errorf("cpu.max = %q", got)
	}
	if got := read("mecorch", "agent", "i", "memory.max"); got != strconv.Itoa(256<<20) {
		t.Errorf("memory.max = %q", got)
	}
	for _, d := range [][]string{{}, {"mecorch"}, {"mecorch", "agent"}} {
		if got := read(append(d, "cgroup.subtree_control")...); got != "+cpu +memory" {
			t.Errorf("%v/cgroup.subtree_control = %q", d, got)
		}
	}
	if err := c.ensure("i", 0, 0); err != nil {
		t.Fatal(err)
	}
	if cpu, mem := read("mecorch", "agent", "i", "cpu.max"), read("mecorch", "agent", "i", "memory.max"); cpu != "max 100000" || mem != "max" {
		t.Errorf("no limits: cpu.max %q, memory.max %q", cpu, mem)
	}
	if q := cpuQuota(1); q != 1000 {
		t.Errorf("quota of 1 milliCPU = %d, want the kernel's least, 1000", q)
	}
}

// TestCgroupV2StartsChildInside starts a process straight into a v2
// cgroup (clone3 with CLONE_INTO_CGROUP), on whatever cgroup2 hierarchy the
// host has: that needs no controllers.
func TestCgroupV2StartsChildInside(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root; CI=true forbids skipping")
		}
		t.Skip("needs root")
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := parseMountinfo(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var mount string
	for _, m := range mounts {
		if m.fstype == "cgroup2" {
			mount = m.point
			break
		}
	}
	if mount == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no cgroup2 mount; CI=true forbids skipping")
		}
		t.Skip("no cgroup2 mount")
	}
	rnd := make([]byte, 4)
	_, _ = rand.Read(rnd)
	c := &cgroupV2{mount: mount, parent: "apprun-test-" + hex.EncodeToString(rnd)}
	if err := os.MkdirAll(c.dir("i"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.remove(context.Background(), "i")
		if err := os.Remove(filepath.Join(mount, c.parent)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Error(err)
		}
	})
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	release, err := c.prepare("i", cmd.SysProcAttr)
	if err != nil {
		t.Fatal(err)
	}
	err = cmd.Start()
	release()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cgroup")
	if !strings.Contains(string(b), "0::/"+c.parent+"/i\n") {
		t.Errorf("/proc/%d/cgroup:\n%s", cmd.Process.Pid, b)
	}
	if p := c.procs("i"); len(p) != 1 || p[0] != cmd.Process.Pid {
		t.Errorf("procs = %v, want [%d]", p, cmd.Process.Pid)
	}
	if ks, _ := c.keys(); len(ks) != 1 || ks[0] != "i" {
		t.Errorf("keys = %v", ks)
	}
	if err := c.remove(context.Background(), "i"); err != nil {
		t.Fatal(err)
	}
	<-done
	if _, err := os.Stat(c.dir("i")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("cgroup still there: %v", err)
	}
}
