package apprun

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroups is one way of putting instances in cgroups: the unified (v2)
// hierarchy or the v1 cpu, cpuacct and memory ones. An instance's cgroup
// is named by its key, under the runtime's parent cgroup.
type cgroups interface {
	version() int
	// dirs are the instance's cgroup directories, one per hierarchy.
	dirs(key string) []string
	// ensure creates the cgroup if needed and writes its limits (0: none).
	ensure(key string, milliCPU, memoryMiB int64) error
	// prepare sets up a process start so that the child begins life in
	// the cgroup, where the kernel can (v2); release undoes what is only
	// needed until the start.
	prepare(key string, attr *syscall.SysProcAttr) (release func(), err error)
	// attach moves a started process in, where prepare could not (v1).
	attach(key string, pid int) error
	// usage is the CPU time used so far and the memory in use now, less
	// the page cache that the kernel reclaims first (the log file's).
	usage(key string) (cpuNanos uint64, memBytes int64)
	// oomKills counts the processes the OOM killer has killed in it.
	oomKills(key string) uint64
	procs(key string) []int
	// remove kills whatever runs in the cgroup and deletes it; a missing
	// cgroup is not an error.
	remove(ctx context.Context, key string) error
	// keys lists the instance cgroups present under the parent.
	keys() ([]string, error)
}

// cpuPeriod is the CFS period limits are expressed in, in microseconds.
const cpuPeriod = 100_000

// cpuQuota turns milliCPU into a quota per cpuPeriod; the kernel's least
// is 1ms.
func cpuQuota(milliCPU int64) int64 { return max(milliCPU*cpuPeriod/1000, 1000) }

type mountEntry struct {
	point, fstype string
	opts          []string // super options: the v1 controllers are there
}

// parseMountinfo reads /proc/self/mountinfo's format (proc(5)).
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+4 {
			continue
		}
		out = append(out, mountEntry{point: unescapeMount(f[4]), fstype: f[sep+1], opts: strings.Split(f[sep+3], ",")})
	}
	return out, sc.Err()
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// detectCgroups picks the hierarchy to use from the mounts: the unified
// one if a cgroup2 mount offers both the cpu and memory controllers, else
// v1 if cpu and memory are mounted as v1 hierarchies (a hybrid host, like
// the build machine, mounts an empty cgroup2 beside them). parent is the
// runtime's cgroup relative to each hierarchy's root.
func detectCgroups(mountinfo, parent string) (cgroups, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	defer f.Close()
	mounts, err := parseMountinfo(f)
	if err != nil {
		return nil, fmt.Errorf("cgroups: read %s: %w", mountinfo, err)
	}
	return chooseCgroups(mounts, parent, func(path string) ([]byte, error) { return os.ReadFile(path) })
}

func chooseCgroups(mounts []mountEntry, parent string, readFile func(string) ([]byte, error)) (cgroups, error) {
	v1 := map[string]string{}
	for _, m := range mounts {
		switch m.fstype {
		case "cgroup2":
			b, err := readFile(filepath.Join(m.point, "cgroup.controllers"))
			ctl := strings.Fields(string(b))
			if err == nil && slices.Contains(ctl, "cpu") && slices.Contains(ctl, "memory") {
				return &cgroupV2{mount: m.point, parent: parent}, nil
			}
		case "cgroup":
			for _, o := range m.opts {
				if (o == "cpu" || o == "cpuacct" || o == "memory") && v1[o] == "" {
					v1[o] = m.point
				}
			}
		}
	}
	if v1["cpu"] == "" || v1["memory"] == "" {
		return nil, errors.New("cgroups: need cgroup2 with the cpu and memory controllers, or v1 cpu and memory hierarchies")
	}
	c := &cgroupV1{cpu: filepath.Join(v1["cpu"], parent), memory: filepath.Join(v1["memory"], parent)}
	if v1["cpuacct"] != "" {
		c.cpuacct = filepath.Join(v1["cpuacct"], parent)
	}
	return c, nil
}

func writeFile(path, value string) error {
	// No O_CREATE: a cgroup file that is not there is a controller that is
	// not there, which must show.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	return nil
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// readKey returns the value of "key value" in a flat-keyed cgroup file.
func readKey(path, key string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

func readProcs(path string) []int {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// subdirs lists the directories in dir; a missing dir has none.
func subdirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// removeCgroup kills what runs in the cgroup's directories and removes
// them, retrying while the killed processes finish exiting.
func removeCgroup(ctx context.Context, dirs []string, procs func() []int, kill func()) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		kill()
		var busy error
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				busy = fmt.Errorf("remove cgroup %s: %w", d, err)
			}
		}
		if busy == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (processes left: %v)", busy, procs())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// killProcs sends SIGKILL to each pid.
func killProcs(pids []int) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
