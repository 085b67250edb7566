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
	"syscall"
)

// cgroupV1 uses the v1 hierarchies: cpu for the CFS quota, cpuacct for
// the CPU time used, memory for the limit and the use. Each path is the
// runtime's parent cgroup in that hierarchy; cpuacct may be empty (not
// mounted) or the same as cpu (mounted together).
type cgroupV1 struct {
	cpu, cpuacct, memory string
}

func (c *cgroupV1) version() int { return 1 }

func (c *cgroupV1) parents() []string {
	out := []string{c.cpu, c.memory}
	if c.cpuacct != "" && c.cpuacct != c.cpu {
		out = append(out, c.cpuacct)
	}
	return out
}

func (c *cgroupV1) dirs(key string) []string {
	var out []string
	for _, p := range c.parents() {
		out = append(out, filepath.Join(p, key))
	}
	return out
}

func (c *cgroupV1) ensure(key string, milliCPU, memoryMiB int64) error {
	for _, d := range c.dirs(key) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create cgroup: %w", err)
		}
	}
	cpu := filepath.Join(c.cpu, key)
	quota := int64(-1)
	if milliCPU > 0 {
		quota = cpuQuota(milliCPU)
	}
	if err := writeFile(filepath.Join(cpu, "cpu.cfs_period_us"), strconv.Itoa(cpuPeriod)); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(cpu, "cpu.cfs_quota_us"), strconv.FormatInt(quota, 10)); err != nil {
		return err
	}
	mem := filepath.Join(c.memory, key)
	limit := int64(-1)
	if memoryMiB > 0 {
		limit = memoryMiB << 20
	}
	// memory+swap must never be below memory: lift it first, then set
	// both, so that a limit cannot be dodged by swapping.
	memsw := filepath.Join(mem, "memory.memsw.limit_in_bytes")
	if err := writeFile(memsw, "-1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := writeFile(filepath.Join(mem, "memory.limit_in_bytes"), strconv.FormatInt(limit, 10)); err != nil {
		return err
	}
	if err := writeFile(memsw, strconv.FormatInt(limit, 10)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (c *cgroupV1) prepare(string, *syscall.SysProcAttr) (func(), error) { return func() {}, nil }

func (c *cgroupV1) attach(key string, pid int) error {
	for _, d := range c.dirs(key) {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

func (c *cgroupV1) usage(key string) (uint64, int64) {
	acct := c.cpuacct
	if acct == "" {
		acct = c.cpu
	}
	cpu, _ := readUint(filepath.Join(acct, key, "cpuacct.usage"))
	mem := filepath.Join(c.memory, key)
	used, _ := readUint(filepath.Join(mem, "memory.usage_in_bytes"))
	cache := readKey(filepath.Join(mem, "memory.stat"), "total_inactive_file")
	if cache > used {
		cache = used
	}
	return cpu, int64(used - cache)
}

func (c *cgroupV1) oomKills(key string) uint64 {
	return readKey(filepath.Join(c.memory, key, "memory.oom_control"), "oom_kill")
}

func (c *cgroupV1) procs(key string) []int {
	var out []int
	for _, d := range c.dirs(key) {
		for _, pid := range readProcs(filepath.Join(d, "cgroup.procs")) {
			if !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

func (c *cgroupV1) remove(ctx context.Context, key string) error {
	return removeCgroup(ctx, c.dirs(key), func() []int { return c.procs(key) }, func() { killProcs(c.procs(key)) })
}

func (c *cgroupV1) keys() ([]string, error) {
	var out []string
	for _, p := range c.parents() {
		ks, err := subdirs(p)
		if err != nil {
			return nil, fmt.Errorf("list cgroups in %s: %w", p, err)
		}
		for _, k := range ks {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out, nil
}
