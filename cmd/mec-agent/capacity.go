package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/mec"
)

// detectCapacity is what the host offers to instances: the flags where
// given, else what the machine has (all CPUs, 90% of memory, the free
// space under the state directory).
func detectCapacity(f flags) (mec.Resources, error) {
	c := mec.Resources{MilliCPU: f.cpu, MemoryMiB: f.memory, StorageGB: f.storage}
	if c.MilliCPU == 0 {
		c.MilliCPU = int64(runtime.NumCPU()) * 1000
	}
	if c.MemoryMiB == 0 {
		kib, err := memTotalKiB()
		if err != nil {
			return c, fmt.Errorf("detect memory (give --capacity-memory): %w", err)
		}
		c.MemoryMiB = kib / 1024 * 9 / 10
	}
	if c.StorageGB == 0 {
		if err := os.MkdirAll(f.stateDir, 0o711); err != nil { // traversable: see --run-as
			return c, err
		}
		var st unix.Statfs_t
		if err := unix.Statfs(f.stateDir, &st); err != nil {
			return c, fmt.Errorf("detect storage (give --capacity-storage): %w", err)
		}
		c.StorageGB = int64(st.Bavail) * st.Bsize / 1e9
	}
	if c.MilliCPU < 0 || c.MemoryMiB < 0 || c.StorageGB < 0 {
		return c, fmt.Errorf("capacity must not be negative: %+v", c)
	}
	return c, nil
}

func memTotalKiB() (int64, error) {
	fh, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}
