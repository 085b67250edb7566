package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultDir is where iproute2 looks for named namespaces.
const DefaultDir = "/run/netns"

// Path is the file a named namespace is mounted on.
func Path(dir, name string) string { return filepath.Join(dir, name) }

func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("invalid netns name %q", name)
	}
	return nil
}

// Create makes a new network namespace and bind-mounts it on dir/name, so
// that it lives on without any process in it. It returns the path. If a
// namespace is mounted there already, Create returns its path and an error
// that matches fs.ErrExist; a stale file without a mount (a crash in the
// middle of a Create) is replaced.
func Create(dir, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	if err := shareDir(dir); err != nil {
		return "", err
	}
	path := Path(dir, name)
	if IsMounted(path) {
		return path, fmt.Errorf("create netns %s: %w", name, fs.ErrExist)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_TRUNC, 0o444)
	if err != nil {
		return "", fmt.Errorf("create netns file %s: %w", path, err)
	}
	f.Close()
	if err := mountNew(path); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("create netns %s: %w", name, err)
	}
	return path, nil
}

// mountNew moves the calling thread into a new network namespace, binds
// it on path and moves the thread back.
func mountNew(path string) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current netns: %w", err)
	}
	defer orig.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("unshare: %w", err)
	}
	self := "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/net"
	merr := unix.Mount(self, path, "none", unix.MS_BIND, "")
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the new namespace: leave it locked so the
		// Go runtime ends it with the goroutine instead of reusing it.
		return errors.Join(merr, fmt.Errorf("restore netns: %w", err))
	}
	runtime.UnlockOSThread()
	if merr != nil {
		return fmt.Errorf("bind mount: %w", merr)
	}
	return nil
}

// shareDir makes dir a mount point with shared propagation, as `ip netns
// add` does, so that unmounting a namespace here also unmounts the copies
// that other mount namespaces made of it, and the namespace can be freed.
func shareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("netns dir: %w", err)
	}
	for bound := false; ; bound = true {
		err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || bound {
			return fmt.Errorf("make %s shared: %w", dir, err)
		}
		// EINVAL: not a mount point yet.
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s on itself: %w", dir, err)
		}
	}
}

// IsMounted tells whether path has a namespace mounted on it.
func IsMounted(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// Open returns a handle on the namespace mounted on path; the caller
// closes it.
func Open(path string) (netns.NsHandle, error) {
	if !IsMounted(path) {
		return netns.None(), fmt.Errorf("open netns %s: not a mounted namespace", path)
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), fmt.Errorf("open netns %s: %w", path, err)
	}
	return h, nil
}

// Delete unmounts dir/name and removes the file. The namespace itself is
// freed by the kernel once no process, socket or other mount holds it. A
// namespace that does not exist is not an error.
func Delete(dir, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	path := Path(dir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}

// List returns the names in dir that start with prefix, mounted or not
// (a file left by a crash is listed too, so that it can be deleted). A
// missing dir holds nothing.
func List(dir, prefix string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list netns: %w", err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) && !e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Procs returns the processes whose network namespace is the one mounted
// on path: what keeps it busy, and what must be killed to tear it down.
// It is a scan of /proc, so a process may have exited (or a new one
// entered) by the time the caller acts.
func Procs(path string) ([]int, error) {
	if !IsMounted(path) {
		return nil, nil
	}
	var want unix.Stat_t
	if err := unix.Stat(path, &want); err != nil {
		return nil, fmt.Errorf("stat netns %s: %w", path, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("scan /proc: %w", err)
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			out = append(out, pid)
		}
	}
	return out, nil
}
