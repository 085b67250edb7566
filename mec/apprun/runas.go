package apprun

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/traffic/netns"
)

// Credential is the unprivileged user and group instances run as (see
// Config.RunAs).
type Credential struct {
	UID, GID uint32
}

func (c Credential) String() string { return fmt.Sprintf("uid %d gid %d", c.UID, c.GID) }

func (c Credential) validate() error {
	if c.UID == 0 || c.GID == 0 {
		return fmt.Errorf("apprun: RunAs %s: not an unprivileged user and group (leave RunAs unset to run as root)", c)
	}
	return nil
}

// LookupUser returns the uid and primary gid of a user given by name or
// numeric uid, as found in the user database (os/user), for Config.RunAs:
// the agent's `--run-as nobody`.
func LookupUser(name string) (uid, gid uint32, err error) {
	u, err := user.Lookup(name)
	if _, perr := strconv.ParseUint(name, 10, 32); err != nil && perr == nil {
		u, err = user.LookupId(name) // a uid
	}
	if err != nil {
		return 0, 0, fmt.Errorf("look up user %q: %w", name, err)
	}
	u64, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q: uid %q: %w", name, u.Uid, err)
	}
	g64, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q: gid %q: %w", name, u.Gid, err)
	}
	return uint32(u64), uint32(g64), nil
}

// Credentials belong to a thread in Linux; the C library's setuid and Go's
// syscall.Setuid apply them to every thread of a process, the raw system
// calls used here do not. So what follows changes the credentials of one
// locked OS thread only, and never unlocks it: when its goroutine ends,
// the Go runtime ends the thread instead of handing it, changed, to other
// goroutines. New threads are not cloned from a locked thread (the
// runtime uses its template thread), so nothing else inherits the change.

// onOwnThread runs fn on an OS thread that is thrown away afterwards. The
// main thread is never that thread: the runtime cannot end it, it keeps
// it idle instead, and the process's /proc entries show the main thread's
// credentials. A goroutine that lands there holds it while another, which
// cannot get it meanwhile, does the work.
func onOwnThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			errc <- onOwnThread(fn)
			runtime.UnlockOSThread()
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// startAs starts cmd in the namespace at nsPath as c: with c's uid and
// gid, no supplementary groups, and no capabilities it could ever hold.
// Leaving root for another uid empties the permitted, effective and
// ambient capability sets; the fork happens from a thread that has also
// given up the inheritable and bounding sets and set no_new_privs, all
// inherited by the child, so that no setuid or file-capability executable
// gives any back.
func startAs(c Credential, nsPath string, cmd *exec.Cmd) error {
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.UID, Gid: c.GID} // no Groups: setgroups(0)
	return onOwnThread(func() error {
		if err := dropPrivileges(); err != nil {
			return fmt.Errorf("start %s: %w", cmd.Path, err)
		}
		return netns.StartCmd(nsPath, cmd)
	})
}

// dropPrivileges sets no_new_privs and empties the inheritable and
// bounding capability sets of the calling thread (which must be thrown
// away). Emptying the bounding set needs CAP_SETPCAP.
func dropPrivileges() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear inheritable capabilities: %w", err)
	}
	for capability := 0; ; capability++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(capability), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) { // past the last capability
			return nil
		}
		if err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", capability, err)
		}
	}
}

// access checks, as the kernel does for a process of c's (its uid and
// gid, no supplementary groups: ACLs and LSMs included), that path can be
// accessed with mode (unix.X_OK: searched or executed). A denial names
// the first directory on the way that stops c, with its mode and owner.
func (c Credential) access(path string, mode uint32) error {
	path = filepath.Clean(path)
	return onOwnThread(func() error {
		if err := unix.Setgroups(nil); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
		// setfs[ug]id report failure only by not changing: look again.
		_ = unix.Setfsgid(int(c.GID))
		_ = unix.Setfsuid(int(c.UID))
		if g, _ := unix.SetfsgidRetGid(int(c.GID)); g != int(c.GID) {
			return fmt.Errorf("setfsgid %d: not permitted", c.GID)
		}
		if u, _ := unix.SetfsuidRetUid(int(c.UID)); u != int(c.UID) {
			return fmt.Errorf("setfsuid %d: not permitted", c.UID)
		}
		check := func(p string, mode uint32) error {
			err := unix.Faccessat2(unix.AT_FDCWD, p, mode, unix.AT_EACCESS)
			if errors.Is(err, unix.ENOSYS) { // before Linux 5.8: the start will tell
				return nil
			}
			return err
		}
		err := check(path, mode)
		if err == nil {
			return nil
		}
		// The first directory on the way that c cannot search is the
		// culprit; if there is none, it is path itself.
		blocker := path
		for i := 0; i < len(path); i++ {
			if path[i] != '/' {
				continue
			}
			if dir := path[:max(i, 1)]; check(dir, unix.X_OK) != nil {
				blocker = dir
				break
			}
		}
		var st unix.Stat_t
		if unix.Stat(blocker, &st) == nil {
			return fmt.Errorf("%s (mode %04o, owner %d:%d): %w", blocker, st.Mode&0o7777, st.Uid, st.Gid, err)
		}
		return fmt.Errorf("%s: %w", blocker, err)
	})
}

// prepareRunAs makes what the instance's process reaches as c accessible
// to it: its state directory searchable (0711: the records and logs in it
// stay root's 0600 and 0640) and its working directory its own (0700).
// Only the working directory changes owner: a chown that descended into a
// tree the user controls could be sent elsewhere by a symlink.
func prepareRunAs(c Credential, instDir, work string) error {
	if err := os.Chmod(instDir, 0o711); err != nil {
		return fmt.Errorf("instance dir: %w", err)
	}
	if err := os.Lchown(work, int(c.UID), int(c.GID)); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	if err := os.Chmod(work, 0o700); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	return nil
}

// unprivilegedPorts lets an unprivileged process bind ports below 1024 in
// its own network namespace, which the sysctl belongs to (IPv4 and IPv6
// alike): apps commonly serve well-known ports.
func unprivilegedPorts(nsPath string) error {
	return netns.SetSysctl(nsPath, "net.ipv4.ip_unprivileged_port_start", "0")
}

// checkReach is NewProcess's check that c can get to the state directory,
// where its instances' working directories are.
func (c Credential) checkReach(dir string) error {
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("apprun: state dir: %w", err)
	}
	if err := c.access(dir, unix.X_OK); err != nil {
		return fmt.Errorf("apprun: RunAs %s cannot reach StateDir %s, which holds the instances' working directories: %w; "+
			"every directory above it must be searchable by that user (e.g. mode 0711)", c, dir, err)
	}
	return nil
}

// checkExec is Start's check that c can execute a spec's Exec, so that an
// image directory left 0700 is named at once rather than reported as a
// failed start.
func (c Credential) checkExec(s Spec) error {
	if err := c.access(s.Exec, unix.X_OK); err != nil {
		return fmt.Errorf("spec %s: RunAs %s cannot execute %s: %w; the directories above it must be searchable "+
			"by that user and the file executable (e.g. mode 0755)", s.ID, c, s.Exec, err)
	}
	return nil
}
