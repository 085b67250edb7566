package apprun_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/mec/apprun"
	"github.com/mecorch/mecorch/traffic/netns"
)

// echoapp is the test instance's program (testdata/echoapp), built once.
var echoapp string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "apprun-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Searchable, so that instances run as another user can execute it.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	echoapp = filepath.Join(dir, "echoapp")
	if out, err := exec.Command("go", "build", "-o", echoapp, "./testdata/echoapp").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build echoapp: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requirePrivileges skips a test that needs root when it is missing,
// except under CI=true, where it fails: a green CI run must mean the test
// really ran.
func requirePrivileges(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root (namespaces, links, cgroups); CI=true forbids skipping")
	}
	t.Skip("needs root (namespaces, links, cgroups)")
}

// env is one test's world: its own host namespace with the app bridge,
// namespace directory, state directory and parent cgroup. Its cleanup
// removes every instance through a runtime and then checks that nothing
// is left: no namespace, link, cgroup, state or process.
type env struct {
	t    *testing.T
	cfg  apprun.Config
	host string // the host namespace's path
	rt   *apprun.Process
	logs *syncBuffer

	mu   sync.Mutex
	open []*apprun.Process
}

const (
	nsPrefix   = "i-"
	vethPrefix = "tv"
)

func newEnv(t *testing.T, tweak ...func(*apprun.Config)) *env {
	t.Helper()
	requirePrivileges(t)
	nsDir := t.TempDir()
	rnd := make([]byte, 4)
	_, _ = rand.Read(rnd)
	e := &env{t: t, logs: &syncBuffer{}}
	e.cfg = apprun.Config{
		StateDir: t.TempDir(), NetnsDir: nsDir, NetnsPrefix: nsPrefix,
		Bridge: "mecbr0", VethPrefix: vethPrefix,
		Subnet:      netip.MustParsePrefix("10.90.0.0/24"),
		Cgroup:      "mecorch-apprun-test-" + hex.EncodeToString(rnd),
		LogMaxBytes: 1 << 20,
		Backoff:     apprun.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, ResetAfter: time.Minute},
		StopGrace:   2 * time.Second,
		Logger:      slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range tweak {
		f(&e.cfg)
	}
	t.Cleanup(func() { _ = unix.Unmount(nsDir, unix.MNT_DETACH) })
	host, err := netns.Create(nsDir, "host")
	if err != nil {
		t.Fatal(err)
	}
	e.host = host
	e.cfg.HostNetns = host
	t.Cleanup(func() {
		e.teardown()
		if t.Failed() {
			t.Logf("runtime log:\n%s", e.logs.String())
		}
	})
	e.rt = e.openRuntime()
	return e
}

// openRuntime starts a runtime on the env's config, as a restarted agent
// would.
func (e *env) openRuntime() *apprun.Process {
	e.t.Helper()
	rt, err := apprun.NewProcess(e.cfg)
	if err != nil {
		if os.Getenv("CI") == "true" {
			e.t.Fatalf("NewProcess: %v", err)
		}
		e.t.Fatalf("NewProcess (does this host have cgroups?): %v", err)
	}
	e.mu.Lock()
	e.open = append(e.open, rt)
	e.mu.Unlock()
	return rt
}

func (e *env) teardown() {
	t := e.t
	for _, rt := range e.open {
		_ = rt.Close()
	}
	rt, err := apprun.NewProcess(e.cfg)
	if err != nil {
		t.Errorf("teardown: %v", err)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for _, st := range rt.List() {
			if err := rt.Remove(ctx, st.ID); err != nil {
				t.Errorf("teardown: %v", err)
			}
		}
		if left := e.leftovers(); len(left) > 0 {
			t.Errorf("left behind after Remove: %v", left)
			_ = rt.Sweep(ctx, func(string) bool { return false })
		}
		cancel()
		_ = rt.Close()
	}
	for _, pid := range echoappPids() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, d := range e.cgroupParents() {
		if err := os.Remove(d); err != nil {
			t.Errorf("teardown: %v", err)
		}
	}
	if err := netns.Delete(e.cfg.NetnsDir, "host"); err != nil {
		t.Errorf("teardown: %v", err)
	}
}

// leftovers lists what exists of any instance.
func (e *env) leftovers() []string {
	var out []string
	names, _ := netns.List(e.cfg.NetnsDir, nsPrefix)
	for _, n := range names {
		out = append(out, "netns "+n)
	}
	links, _ := netns.Links(e.host, vethPrefix, "")
	for _, l := range links {
		out = append(out, "link "+l)
	}
	for _, d := range e.cgroupParents() {
		ents, _ := os.ReadDir(d)
		for _, en := range ents {
			if en.IsDir() {
				out = append(out, "cgroup "+filepath.Join(d, en.Name()))
			}
		}
	}
	ents, _ := os.ReadDir(e.cfg.StateDir)
	for _, en := range ents {
		out = append(out, "state "+en.Name())
	}
	for _, pid := range echoappPids() {
		out = append(out, "process "+strconv.Itoa(pid))
	}
	return out
}

// cgroupParents are the runtime's parent cgroups, in whichever hierarchies
// have them.
func (e *env) cgroupParents() []string {
	out, _ := filepath.Glob("/sys/fs/cgroup/*/" + e.cfg.Cgroup)
	if fi, err := os.Stat("/sys/fs/cgroup/" + e.cfg.Cgroup); err == nil && fi.IsDir() {
		out = append(out, "/sys/fs/cgroup/"+e.cfg.Cgroup)
	}
	return out
}

// cgroupFile reads a file of an instance's cgroup, in whichever hierarchy
// has it; ok is false if none does.
func (e *env) cgroupFile(id, name string) (string, bool) {
	for _, d := range e.cgroupParents() {
		if b, err := os.ReadFile(filepath.Join(d, id, name)); err == nil {
			return strings.TrimSpace(string(b)), true
		}
	}
	return "", false
}

// echoappPids are the running (not zombie) processes of the test program.
func echoappPids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, en := range ents {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink("/proc/" + en.Name() + "/exe"); err == nil && exe == echoapp {
			out = append(out, pid)
		}
	}
	return out
}

func (e *env) spec(id string, args ...string) apprun.Spec {
	return apprun.Spec{ID: id, Exec: echoapp, Args: args, Restart: apprun.RestartAlways}
}

func (e *env) start(s apprun.Spec) {
	e.t.Helper()
	if err := e.rt.Start(context.Background(), s); err != nil {
		e.t.Fatal(err)
	}
}

// waitFor polls an instance's status until cond holds.
func (e *env) waitFor(id, what string, cond func(apprun.Status) bool) apprun.Status {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, ok := e.rt.Status(id)
		if ok && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("instance %s never %s; last status %+v (known %v)", id, what, st, ok)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func running(st apprun.Status) bool { return st.State == apprun.StateRunning && st.PID > 0 }

// ask connects from the host namespace to an instance's port 7000 and
// returns the line it answers, retrying while the app comes up.
func (e *env) ask(addr netip.Addr) string {
	e.t.Helper()
	return e.askPort(addr, 7000)
}

func (e *env) askPort(addr netip.Addr, port uint16) string {
	e.t.Helper()
	target := netip.AddrPortFrom(addr, port).String()
	deadline := time.Now().Add(10 * time.Second)
	for {
		line, err := dialRead(e.host, target)
		if err == nil {
			return line
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("ask %s: %v", target, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dialRead(nsPath, target string) (string, error) {
	var c net.Conn
	err := netns.Do(nsPath, func() (err error) {
		c, err = net.DialTimeout("tcp", target, 2*time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// alive tells whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
