package apprun

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// cgroupV2 uses the unified hierarchy mounted at mount; instances live
// under mount/parent.
type cgroupV2 struct {
	mount, parent string
}

func (c *cgroupV2) version() int { return 2 }

func (c *cgroupV2) dir(key string) string { return filepath.Join(c.mount, c.parent, key) }

func (c *cgroupV2) dirs(key string) []string { return []string{c.dir(key)} }

// enableControllers makes cpu and memory available to the children of
// every cgroup from the root down to the parent, creating those that are
// missing: a controller reaches a cgroup only through its ancestors'
// cgroup.subtree_control.
func (c *cgroupV2) enableControllers() error {
	d := c.mount
	for _, part := range append([]string{""}, strings.Split(c.parent, "/")...) {
		d = filepath.Join(d, part)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create cgroup: %w", err)
		}
		ctl := filepath.Join(d, "cgroup.subtree_control")
		b, _ := os.ReadFile(ctl)
		have := strings.Fields(string(b))
		if hasAll(have, "cpu", "memory") {
			continue
		}
		if err := writeFile(ctl, "+cpu +memory"); err != nil {
			return err
		}
	}
	return nil
}

func hasAll(have []string, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func (c *cgroupV2) ensure(key string, milliCPU, memoryMiB int64) error {
	if err := c.enableControllers(); err != nil {
		return err
	}
	d := c.dir(key)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	cpu := fmt.Sprintf("max %d", cpuPeriod)
	if milliCPU > 0 {
		cpu = fmt.Sprintf("%d %d", cpuQuota(milliCPU), cpuPeriod)
	}
	if err := writeFile(filepath.Join(d, "cpu.max"), cpu); err != nil {
		return err
	}
	mem, swap := "max", "max"
	if memoryMiB > 0 {
		mem, swap = strconv.FormatInt(memoryMiB<<20, 10), "0"
	}
	if err := writeFile(filepath.Join(d, "memory.max"), mem); err != nil {
		return err
	}
	// No swap file on the host, no memory.swap.max.
	if err := writeFile(filepath.Join(d, "memory.swap.max"), swap); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// prepare has the child cloned straight into its cgroup (clone3 with
// CLONE_INTO_CGROUP), so that nothing it does escapes its limits.
func (c *cgroupV2) prepare(key string, attr *syscall.SysProcAttr) (func(), error) {
	fd, err := unix.Open(c.dir(key), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", c.dir(key), err)
	}
	attr.UseCgroupFD, attr.CgroupFD = true, fd
	return func() { unix.Close(fd) }, nil
}

func (c *cgroupV2) attach(string, int) error { return nil }

func (c *cgroupV2) usage(key string) (uint64, int64) {
	d := c.dir(key)
	cpu := readKey(filepath.Join(d, "cpu.stat"), "usage_usec") * 1000
	used, _ := readUint(filepath.Join(d, "memory.current"))
	cache := min(readKey(filepath.Join(d, "memory.stat"), "inactive_file"), used)
	return cpu, int64(used - cache)
}

func (c *cgroupV2) oomKills(key string) uint64 {
	return readKey(filepath.Join(c.dir(key), "memory.events"), "oom_kill")
}

func (c *cgroupV2) procs(key string) []int {
	return readProcs(filepath.Join(c.dir(key), "cgroup.procs"))
}

func (c *cgroupV2) remove(ctx context.Context, key string) error {
	kill := func() {
		// cgroup.kill (Linux 5.14) kills the whole subtree at once, with no
		// window for a fork to slip through; the list is the fallback.
		if err := writeFile(filepath.Join(c.dir(key), "cgroup.kill"), "1"); err != nil {
			killProcs(c.procs(key))
		}
	}
	return removeCgroup(ctx, c.dirs(key), func() []int { return c.procs(key) }, kill)
}

func (c *cgroupV2) keys() ([]string, error) {
	ks, err := subdirs(filepath.Join(c.mount, c.parent))
	if err != nil {
		return nil, fmt.Errorf("list cgroups: %w", err)
	}
	return ks, nil
}
