package agentlab

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// ProcsInNetnsPrefix lists the processes living in any named namespace
// whose name starts with prefix.
func ProcsInNetnsPrefix(prefix string) []int {
	inodes := map[uint64]bool{}
	for _, p := range namespacesWithPrefix(prefix) {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil {
			inodes[st.Ino] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	var out []int
	for _, pid := range allPIDs() {
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &st) == nil && inodes[st.Ino] {
			out = append(out, pid)
		}
	}
	return out
}

// InstanceProcs lists the processes whose environment says they are the
// app instance id (the agent's runtime sets MEC_INSTANCE_ID).
func InstanceProcs(id string) []int {
	want := []byte("MEC_INSTANCE_ID=" + id + "\x00")
	var out []int
	for _, pid := range allPIDs() {
		env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil {
			continue
		}
		if bytes.Contains(append(env, 0), want) {
			out = append(out, pid)
		}
	}
	return out
}

func allPIDs() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// cgroupRoots are the hierarchies an agent may have made cgroups in.
func cgroupRoots() []string {
	var out []string
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory",
		"/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/pids"} {
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// CgroupsNamed lists the cgroup directories called name under any root.
func CgroupsNamed(name string) []string {
	var out []string
	for _, r := range cgroupRoots() {
		if _, err := os.Stat(filepath.Join(r, name)); err == nil {
			out = append(out, filepath.Join(r, name))
		}
	}
	return out
}

// removeCgroupTree removes a cgroup and its children, deepest first (a
// cgroup directory goes with rmdir once it has no processes).
func removeCgroupTree(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			removeCgroupTree(filepath.Join(dir, e.Name()))
		}
	}
	_ = syscall.Rmdir(dir)
}
