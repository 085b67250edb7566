package apprun_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec/apprun"
	"github.com/mecorch/mecorch/traffic/netns"
)

// nobody is the unprivileged user of these tests, as Debian defines it.
const nobody = 65534

// runAs makes an env's instances run as nobody. The state directory must
// be reachable by that user: t.TempDir's parent is 0700.
func runAs(t *testing.T) func(*apprun.Config) {
	return func(c *apprun.Config) {
		c.RunAs = &apprun.Credential{UID: nobody, GID: nobody}
		if err := os.Chmod(filepath.Dir(c.StateDir), 0o711); err != nil {
			t.Fatal(err)
		}
	}
}

// files makes, in a directory every user can search, a root-only secret
// (as the agent's OAuth secret is) and a world-readable file.
func files(t *testing.T) (secret, public string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	secret, public = filepath.Join(dir, "secret"), filepath.Join(dir, "public")
	if err := os.WriteFile(secret, []byte("client-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(public, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return secret, public
}

// procStatus reads /proc/<pid>/status into its fields.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// checkUnprivileged checks that pid runs as nobody, without groups or
// capabilities, and cannot gain any.
func checkUnprivileged(t *testing.T, pid int) {
	t.Helper()
	st := procStatus(t, pid)
	ids := strings.Repeat(strconv.Itoa(nobody)+" ", 4)
	for _, f := range []string{"Uid", "Gid"} {
		if got := strings.Join(strings.Fields(st[f]), " ") + " "; got != ids {
			t.Errorf("pid %d %s: %q, want %q", pid, f, st[f], ids)
		}
	}
	if st["Groups"] != "" {
		t.Errorf("pid %d has supplementary groups %q", pid, st["Groups"])
	}
	for _, f := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if st[f] != "0000000000000000" {
			t.Errorf("pid %d %s: %s, want none", pid, f, st[f])
		}
	}
	if st["NoNewPrivs"] != "1" {
		t.Errorf("pid %d NoNewPrivs: %q", pid, st["NoNewPrivs"])
	}
}

// checkAgentThreads checks that no thread of this process (the agent)
// was left with the credentials it set up for a start or a check: those
// threads must have ended.
func checkAgentThreads(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var bad []string
		tasks, _ := filepath.Glob("/proc/self/task/*/status")
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // ended meanwhile
			}
			st := string(b)
			if !strings.Contains(st, "\nNoNewPrivs:\t0\n") || !strings.Contains(st, "\nUid:\t0\t0\t0\t0\n") ||
				!strings.Contains(st, "\nGid:\t0\t0\t0\t0\n") || strings.Contains(st, "\nCapBnd:\t0000000000000000\n") {
				bad = append(bad, f)
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent threads with changed credentials: %v", bad)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logHas waits for a line in an instance's log.
func (e *env) logHas(id, line string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _, err := e.rt.Logs(id, 1<<20)
		if err == nil && strings.Contains(string(b), line+"\n") {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("log of %s lacks %q:\n%s (%v)", id, line, b, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func checkOwner(t *testing.T, path string, uid uint32, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != uid || fi.Mode().Perm() != mode {
		t.Errorf("%s: owner %d:%d mode %o, want %d:%d mode %o", path, st.Uid, st.Gid, fi.Mode().Perm(), uid, uid, mode)
	}
}

func TestRunAsUnprivilegedUser(t *testing.T) {
	e := newEnv(t, runAs(t))
	ctx := context.Background()
	secret, public := files(t)
	agentEnv := "/proc/" + strconv.Itoa(os.Getpid()) + "/environ"
	s := e.spec("unprivileged", "-port", "7", "-try-open", strings.Join([]string{secret, public, "/proc/1/environ", agentEnv}, ","))
	e.start(s)
	st := e.waitFor(s.ID, "running", running)
	// Port 7 bound in its namespace, reached from the host's.
	if got := e.askPort(st.Address, 7); got != s.ID {
		t.Fatalf("instance answered %q on port 7", got)
	}
	checkUnprivileged(t, st.PID)
	for _, p := range []string{secret, "/proc/1/environ", agentEnv} {
		e.logHas(s.ID, "try-open "+p+": open "+p+": permission denied")
	}
	e.logHas(s.ID, "try-open "+public+": ok") // the secret's mode, not its directory, stops it

	// Low ports in its namespace only.
	nsPath := netns.Path(e.cfg.NetnsDir, nsPrefix+s.ID)
	const portStart = "net.ipv4.ip_unprivileged_port_start"
	if v, err := netns.Sysctl(nsPath, portStart); err != nil || v != "0" {
		t.Errorf("instance netns %s = %q (%v), want 0", portStart, v, err)
	}
	if v, err := netns.Sysctl(e.host, portStart); err != nil || v == "0" {
		t.Errorf("host netns %s = %q (%v), want it untouched", portStart, v, err)
	}

	// Its working directory is its own; records and logs stay root's.
	dir := filepath.Join(e.cfg.StateDir, s.ID)
	work := filepath.Join(dir, "work")
	checkOwner(t, work, nobody, 0o700)
	if cwd, err := os.Readlink("/proc/" + strconv.Itoa(st.PID) + "/cwd"); err != nil || cwd != work {
		t.Errorf("cwd %q (%v), want %s", cwd, err, work)
	}
	checkOwner(t, dir, 0, 0o711)
	checkOwner(t, e.cfg.StateDir, 0, 0o711)
	checkOwner(t, filepath.Join(dir, "instance.json"), 0, 0o600)
	checkOwner(t, filepath.Join(dir, "run.json"), 0, 0o600)
	checkOwner(t, filepath.Join(dir, "output.log"), 0, 0o640)

	// Stopped by the runtime, and started again as the user.
	if err := e.rt.Stop(ctx, s.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.rt.Status(s.ID); got.State != apprun.StateStopped || !strings.Contains(got.Message, "terminated") || alive(st.PID) {
		t.Fatalf("after Stop: %+v", got)
	}
	e.start(s)
	st = e.waitFor(s.ID, "running again", running)
	e.askPort(st.Address, 7)

	// Adopted by a new runtime, and restarted by it when killed.
	if err := e.rt.Close(); err != nil {
		t.Fatal(err)
	}
	e.rt = e.openRuntime()
	if got, _ := e.rt.Status(s.ID); got.State != apprun.StateRunning || got.PID != st.PID {
		t.Fatalf("not adopted: %+v, was %+v", got, st)
	}
	_ = syscall.Kill(st.PID, syscall.SIGKILL)
	re := e.waitFor(s.ID, "restarted", func(x apprun.Status) bool { return running(x) && x.PID != st.PID })
	checkUnprivileged(t, re.PID)
	if got := e.askPort(re.Address, 7); got != s.ID {
		t.Fatalf("restarted instance answered %q", got)
	}

	if err := e.rt.Remove(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind by Remove: %v", left)
	}
	checkAgentThreads(t)
}

func TestRunsAsRootByDefault(t *testing.T) {
	e := newEnv(t)
	secret, _ := files(t)
	s := e.spec("privileged", "-port", "7", "-try-open", secret)
	e.start(s)
	st := e.waitFor(s.ID, "running", running)
	e.askPort(st.Address, 7)
	e.logHas(s.ID, "try-open "+secret+": ok")
	if uid := strings.Fields(procStatus(t, st.PID)["Uid"]); len(uid) != 4 || uid[1] != "0" {
		t.Fatalf("Uid %v, want root", uid)
	}
	checkOwner(t, filepath.Join(e.cfg.StateDir, s.ID, "work"), 0, 0o700)
}

func TestRunAsNamesWhatIsInTheWay(t *testing.T) {
	requirePrivileges(t)
	closed := t.TempDir()
	if os.Chmod(filepath.Dir(closed), 0o711) != nil || os.Chmod(closed, 0o700) != nil {
		t.Fatal("chmod")
	}
	base := apprun.Config{Subnet: netip.MustParsePrefix("10.90.0.0/24"), RunAs: &apprun.Credential{UID: nobody, GID: nobody}}

	cfg := base
	cfg.StateDir = filepath.Join(closed, "state")
	_, err := apprun.NewProcess(cfg)
	if err == nil || !strings.Contains(err.Error(), closed+" (mode 0700, owner 0:0): permission denied") {
		t.Fatalf("NewProcess with StateDir in a 0700 directory: %v", err)
	}
	for _, c := range []apprun.Credential{{UID: 0, GID: nobody}, {UID: nobody, GID: 0}} {
		cfg := base
		cfg.StateDir, cfg.RunAs = t.TempDir(), &c
		if _, err := apprun.NewProcess(cfg); err == nil || !strings.Contains(err.Error(), "not an unprivileged user") {
			t.Errorf("NewProcess with RunAs %+v: %v", c, err)
		}
	}

	// An executable in a directory the user cannot search (an image cache
	// left 0700): Start says which, and makes nothing.
	e := newEnv(t, runAs(t))
	exe := filepath.Join(closed, "images", "app")
	if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(echoapp)
	if err == nil {
		err = os.WriteFile(exe, b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	s := e.spec("unreachable")
	s.Exec = exe
	err = e.rt.Start(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "cannot execute "+exe+": "+closed+" (mode 0700, owner 0:0): permission denied") {
		t.Fatalf("Start: %v", err)
	}
	if _, ok := e.rt.Status(s.ID); ok {
		t.Fatal("a failed check left an instance")
	}
	// Made searchable, the executable itself is in the way, then runs.
	if err := os.Chmod(closed, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(exe, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Start(context.Background(), s); err == nil || !strings.Contains(err.Error(), exe+" (mode 0700, owner 0:0)") {
		t.Fatalf("Start of a 0700 executable: %v", err)
	}
	if err := os.Chmod(exe, 0o755); err != nil {
		t.Fatal(err)
	}
	e.start(s)
	checkUnprivileged(t, e.waitFor(s.ID, "running", running).PID)
	checkAgentThreads(t)
}

func TestLookupUser(t *testing.T) {
	for _, name := range []string{"nobody", strconv.Itoa(nobody)} {
		uid, gid, err := apprun.LookupUser(name)
		if err != nil || uid != nobody || gid != nobody {
			t.Errorf("LookupUser(%q) = %d, %d, %v; want %d, %d", name, uid, gid, err, nobody, nobody)
		}
	}
	if uid, gid, err := apprun.LookupUser("root"); err != nil || uid != 0 || gid != 0 {
		t.Errorf("LookupUser(root) = %d, %d, %v", uid, gid, err)
	}
	if _, _, err := apprun.LookupUser("no-such-user-mecorch"); err == nil {
		t.Error("LookupUser of a missing user succeeded")
	}
}
