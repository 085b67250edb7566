package apprun_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/mec/apprun"
	"github.com/mecorch/mecorch/traffic/netns"
)

func TestStartServeStopStartRemove(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.spec("3f2a9c1e-7d4b-4c2a-9b1e-5c6d7e8f9a0b", "-port", "7000")
	s.MilliCPU, s.MemoryMiB, s.Env = 250, 64, []string{"FOO=bar"}
	e.start(s)
	st := e.waitFor(s.ID, "running", running)
	if want := netip.MustParseAddr("10.90.0.2"); st.Address != want {
		t.Fatalf("address %v, want %v (the first after the gateway)", st.Address, want)
	}
	if got := e.ask(st.Address); got != s.ID {
		t.Fatalf("instance answered %q, want its id", got)
	}
	e.start(s) // same spec: left alone
	if again, _ := e.rt.Status(s.ID); again.PID != st.PID || again.State != apprun.StateRunning {
		t.Fatalf("a repeated Start touched the instance: %+v, was %+v", again, st)
	}

	// Its own session, its own namespace, its cgroup with the limits.
	if sid, err := unix.Getsid(st.PID); err != nil || sid != st.PID {
		t.Errorf("session %d (%v), want the process's own", sid, err)
	}
	nsPath := netns.Path(e.cfg.NetnsDir, nsPrefix+s.ID)
	var procNS, fileNS unix.Stat_t
	if unix.Stat("/proc/"+strconv.Itoa(st.PID)+"/ns/net", &procNS) != nil || unix.Stat(nsPath, &fileNS) != nil || procNS.Ino != fileNS.Ino {
		t.Errorf("process is not in netns %s", nsPath)
	}
	if q, ok := e.cgroupFile(s.ID, "cpu.cfs_quota_us"); ok {
		mem, _ := e.cgroupFile(s.ID, "memory.limit_in_bytes")
		if q != "25000" || mem != strconv.Itoa(64<<20) {
			t.Errorf("v1 limits: quota %s, memory %s", q, mem)
		}
	} else {
		cpu, _ := e.cgroupFile(s.ID, "cpu.max")
		mem, _ := e.cgroupFile(s.ID, "memory.max")
		if cpu != "25000 100000" || mem != strconv.Itoa(64<<20) {
			t.Errorf("v2 limits: cpu.max %q, memory.max %q", cpu, mem)
		}
	}
	if procs, _ := e.cgroupFile(s.ID, "cgroup.procs"); procs != strconv.Itoa(st.PID) {
		t.Errorf("cgroup.procs = %q, want %d", procs, st.PID)
	}
	cg, _ := os.ReadFile("/proc/" + strconv.Itoa(st.PID) + "/cgroup")
	if !strings.Contains(string(cg), e.cfg.Cgroup+"/"+s.ID) {
		t.Errorf("/proc/%d/cgroup:\n%s", st.PID, cg)
	}
	logs, _, err := e.rt.Logs(s.ID, 4096)
	if err != nil || !strings.Contains(string(logs), "id "+s.ID+" address 10.90.0.2") {
		t.Errorf("logs %q (%v): want the app's MEC_INSTANCE_ID and MEC_ADDRESS", logs, err)
	}

	if err := e.rt.Stop(ctx, s.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	stopped, _ := e.rt.Status(s.ID)
	if stopped.State != apprun.StateStopped || stopped.PID != 0 || !strings.Contains(stopped.Message, "terminated") {
		t.Fatalf("after Stop: %+v", stopped)
	}
	if alive(st.PID) {
		t.Fatalf("pid %d alive after Stop", st.PID)
	}
	if !netns.IsMounted(nsPath) || stopped.Address != st.Address {
		t.Fatal("Stop dropped the namespace or the address")
	}

	e.start(s)
	again := e.waitFor(s.ID, "running again", running)
	if again.PID == st.PID || again.Address != st.Address {
		t.Fatalf("restarted %+v, was %+v", again, st)
	}
	if got := e.ask(again.Address); got != s.ID {
		t.Fatalf("after restart the instance answered %q", got)
	}

	if err := e.rt.Remove(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.rt.Status(s.ID); ok {
		t.Fatal("Status after Remove")
	}
	if err := e.rt.Remove(ctx, s.ID); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind by Remove: %v", left)
	}
	if err := e.rt.Stop(ctx, s.ID, 0); !errors.Is(err, apprun.ErrNotFound) {
		t.Fatalf("Stop of a removed instance: %v", err)
	}
}

func TestStartWithANewSpecReplacesTheProcess(t *testing.T) {
	e := newEnv(t)
	s := e.spec("replace-me")
	e.start(s)
	first := e.waitFor(s.ID, "running", running)
	s.MemoryMiB = 48
	e.start(s)
	second := e.waitFor(s.ID, "running with the new spec", running)
	if second.PID == first.PID || alive(first.PID) {
		t.Fatalf("the old process %d is still the instance's: %+v", first.PID, second)
	}
	if mem, ok := e.cgroupFile(s.ID, "memory.limit_in_bytes"); ok && mem != strconv.Itoa(48<<20) {
		t.Fatalf("memory limit %s after the new spec", mem)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	e := newEnv(t)
	s := e.spec("stubborn", "-ignore-term")
	for _, grace := range []time.Duration{300 * time.Millisecond, 0} {
		e.start(s)
		st := e.waitFor(s.ID, "running", running)
		e.ask(st.Address) // listening: SIGTERM is ignored by now
		if err := e.rt.Stop(context.Background(), s.ID, grace); err != nil {
			t.Fatal(err)
		}
		got, _ := e.rt.Status(s.ID)
		if got.State != apprun.StateStopped || !strings.Contains(got.Message, "signal: killed") || alive(st.PID) {
			t.Fatalf("grace %v: %+v", grace, got)
		}
	}
}

func TestStrayProcessesAreKilled(t *testing.T) {
	e := newEnv(t)
	procs := func(id string) []string {
		s, _ := e.cgroupFile(id, "cgroup.procs")
		return strings.Fields(s)
	}
	// A process that leaves a daemon behind and exits: the restart kills
	// the daemon, which would hold the app's resources.
	s := e.spec("leaky", "-daemon", "-exit-after", "300ms")
	e.start(s)
	first := e.waitFor(s.ID, "running", func(st apprun.Status) bool { return running(st) && len(procs(s.ID)) == 2 })
	daemon := procs(s.ID)[0]
	if daemon == strconv.Itoa(first.PID) {
		daemon = procs(s.ID)[1]
	}
	pid, _ := strconv.Atoi(daemon)
	e.waitFor(s.ID, "restarted", func(st apprun.Status) bool { return running(st) && st.Restarts > 0 })
	waitGone(t, pid)
	// Stop kills the new daemon too.
	e.waitFor(s.ID, "running with a daemon", func(st apprun.Status) bool { return running(st) && len(procs(s.ID)) == 2 })
	if err := e.rt.Stop(context.Background(), s.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(procs(s.ID)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("left in the cgroup after Stop: %v", procs(s.ID))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRestartPolicies(t *testing.T) {
	e := newEnv(t, func(c *apprun.Config) {
		// Long enough a backoff to be seen by polling.
		c.Backoff.Initial, c.Backoff.Max = 100*time.Millisecond, 400*time.Millisecond
	})
	crashFile := filepath.Join(t.TempDir(), "crashed")

	// Crashes once, then runs: Failed while backing off, then Running.
	once := e.spec("crash-once", "-crash-once", crashFile)
	e.start(once)
	e.waitFor(once.ID, "failed and backing off", func(st apprun.Status) bool {
		return st.State == apprun.StateFailed && st.Message == "exit status 3; restarting in 100ms"
	})
	st := e.waitFor(once.ID, "restarted", func(st apprun.Status) bool { return running(st) && st.Restarts == 1 })
	if st.Message != "restarted after: exit status 3" {
		t.Errorf("message after the restart: %q", st.Message)
	}
	if got := e.ask(st.Address); got != once.ID {
		t.Fatalf("restarted instance answered %q", got)
	}

	// Keeps crashing: the backoff doubles up to its maximum.
	crashy := e.spec("crash-loop", "-exit-after", "20ms", "-exit-code", "2")
	crashy.Restart = apprun.RestartOnFailure
	e.start(crashy)
	seen := map[string]bool{}
	e.waitFor(crashy.ID, "backing off to the maximum", func(st apprun.Status) bool {
		seen[st.Message] = true
		return seen["exit status 2; restarting in 400ms"]
	})
	for _, m := range []string{"exit status 2; restarting in 100ms", "exit status 2; restarting in 200ms"} {
		if !seen[m] {
			t.Errorf("never saw %q; saw %v", m, seen)
		}
	}

	cases := []struct {
		policy    apprun.RestartPolicy
		code      string
		state     string
		restarted bool
	}{
		{apprun.RestartNever, "1", apprun.StateFailed, false},
		{apprun.RestartNever, "0", apprun.StateStopped, false},
		{apprun.RestartOnFailure, "0", apprun.StateStopped, false},
		{apprun.RestartAlways, "0", apprun.StateRunning, true},
	}
	for _, c := range cases {
		s := e.spec("exit-"+c.code+"-"+strings.ToLower(string(c.policy)), "-exit-after", "100ms", "-exit-code", c.code)
		s.Restart = c.policy
		e.start(s)
		if c.restarted {
			e.waitFor(s.ID, "restarted after a clean exit", func(st apprun.Status) bool { return running(st) && st.Restarts > 0 })
			continue
		}
		st := e.waitFor(s.ID, "at rest in "+c.state, func(st apprun.Status) bool { return st.State == c.state })
		if st.Message != "exit status "+c.code || st.PID != 0 || st.Restarts != 0 {
			t.Errorf("%s, exit %s: %+v", c.policy, c.code, st)
		}
	}
	// Those at rest stay there, also after the backoff would have passed.
	time.Sleep(500 * time.Millisecond)
	for _, st := range e.rt.List() {
		if strings.HasPrefix(st.ID, "exit-") && !strings.HasSuffix(st.ID, "always") && (st.Restarts != 0 || st.PID != 0) {
			t.Errorf("restarted against its policy: %+v", st)
		}
	}
}

func TestMemoryLimitKillsAndRestarts(t *testing.T) {
	e := newEnv(t)
	s := e.spec("hog", "-alloc-mib", "256")
	s.MemoryMiB, s.Restart = 32, apprun.RestartOnFailure
	e.start(s)
	e.waitFor(s.ID, "killed for memory and restarted", func(st apprun.Status) bool {
		return st.Restarts > 0 && strings.Contains(st.Message, "signal: killed (out of memory)")
	})
	never := e.spec("hog-once", "-alloc-mib", "256")
	never.MemoryMiB, never.Restart = 32, apprun.RestartNever
	e.start(never)
	st := e.waitFor(never.ID, "failed", func(st apprun.Status) bool { return st.State == apprun.StateFailed })
	if st.Message != "signal: killed (out of memory)" {
		t.Fatalf("message %q", st.Message)
	}
}

func TestUsageIsReported(t *testing.T) {
	e := newEnv(t)
	s := e.spec("busy", "-burn")
	s.MilliCPU = 300
	e.start(s)
	e.waitFor(s.ID, "reporting its use", func(st apprun.Status) bool { return st.MilliCPU > 0 && st.MemoryBytes > 0 })
}

func TestRecovery(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.spec("survivor"), e.spec("casualty")
	e.start(a)
	e.start(b)
	stA := e.waitFor(a.ID, "running", running)
	stB := e.waitFor(b.ID, "running", running)

	// The agent goes away; one instance dies meanwhile.
	if err := e.rt.Close(); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Kill(stB.PID, syscall.SIGKILL)
	waitGone(t, stB.PID)
	if !alive(stA.PID) {
		t.Fatal("Close killed an instance")
	}
	e.rt = e.openRuntime()
	got, _ := e.rt.Status(a.ID)
	if got.State != apprun.StateRunning || got.PID != stA.PID || got.Address != stA.Address {
		t.Fatalf("not adopted: %+v, was %+v", got, stA)
	}
	if e.ask(got.Address) != a.ID {
		t.Fatal("adopted instance does not answer")
	}
	gone, _ := e.rt.Status(b.ID)
	if gone.State != apprun.StateStopped || gone.PID != 0 || gone.Message != "exited while the agent was not running" {
		t.Fatalf("dead instance: %+v", gone)
	}

	// An adopted process is supervised: killed, it is restarted.
	_ = syscall.Kill(stA.PID, syscall.SIGKILL)
	re := e.waitFor(a.ID, "restarted", func(st apprun.Status) bool { return running(st) && st.PID != stA.PID })
	if re.Restarts != 1 || re.Address != stA.Address || !strings.Contains(re.Message, "status unknown") {
		t.Fatalf("after the adopted process died: %+v", re)
	}
	// The dead one starts again where it was.
	e.start(b)
	if st := e.waitFor(b.ID, "running", running); st.Address != stB.Address {
		t.Fatalf("address %v, was %v", st.Address, stB.Address)
	}

	// A recorded pid now held by another process is not the instance.
	stB = e.waitFor(b.ID, "running", running)
	if err := e.rt.Close(); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Kill(stB.PID, syscall.SIGKILL)
	waitGone(t, stB.PID)
	// A process that reuses a pid starts later, by at least a clock tick
	// (10ms) when the pid space wraps that fast, which it never does.
	time.Sleep(50 * time.Millisecond)
	decoy := exec.Command("sleep", "60")
	if err := decoy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = decoy.Process.Kill(); _ = decoy.Wait() })
	rewritePID(t, filepath.Join(e.cfg.StateDir, b.ID, "run.json"), decoy.Process.Pid)
	e.rt = e.openRuntime()
	if st, _ := e.rt.Status(b.ID); st.State != apprun.StateStopped || st.PID != 0 {
		t.Fatalf("took pid %d for the instance: %+v", decoy.Process.Pid, st)
	}
	if !alive(decoy.Process.Pid) {
		t.Fatal("the decoy was killed")
	}
	if err := e.rt.Stop(ctx, a.ID, time.Second); err != nil {
		t.Fatal(err)
	}
}

func rewritePID(t *testing.T, path string, pid int) {
	t.Helper()
	var rec map[string]any
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err != nil {
		t.Fatal(err)
	}
	rec["pid"] = pid
	b, _ = json.Marshal(rec)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSweepRemovesOrphans(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, id := range []string{"keep", "orphan", "stateless"} {
		e.start(e.spec(id))
		e.waitFor(id, "running", running)
	}
	kept, _ := e.rt.Status("keep")
	// The agent crashes and loses one instance's state.
	if err := e.rt.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(e.cfg.StateDir, "stateless")); err != nil {
		t.Fatal(err)
	}
	// A namespace from a crash in the middle of a start.
	if _, err := netns.Create(e.cfg.NetnsDir, nsPrefix+"stray"); err != nil {
		t.Fatal(err)
	}
	e.rt = e.openRuntime()
	if _, ok := e.rt.Status("stateless"); ok {
		t.Fatal("an instance without state is known")
	}
	if err := e.rt.Sweep(ctx, func(id string) bool { return id == "keep" }); err != nil {
		t.Fatal(err)
	}
	if l := e.rt.List(); len(l) != 1 || l[0].ID != "keep" || l[0].PID != kept.PID {
		t.Fatalf("after Sweep: %+v", l)
	}
	want := []string{
		"netns " + nsPrefix + "keep", "link " + netns.VethName(vethPrefix, "keep"), "state keep",
		"process " + strconv.Itoa(kept.PID),
	}
	for _, d := range e.cgroupParents() {
		want = append(want, "cgroup "+filepath.Join(d, "keep"))
	}
	if got := e.leftovers(); !sameSet(got, want) {
		t.Fatalf("after Sweep:\n got %v\nwant %v", got, want)
	}
	if e.ask(kept.Address) != "keep" {
		t.Fatal("the kept instance does not answer")
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, s := range a {
		m[s] = true
	}
	for _, s := range b {
		if !m[s] {
			return false
		}
	}
	return true
}

func TestLogsAreBounded(t *testing.T) {
	const bound = 16 << 10
	e := newEnv(t, func(c *apprun.Config) { c.LogMaxBytes, c.LogCheckInterval = bound, 20*time.Millisecond })
	s := e.spec("chatty", "-log-bytes", "300000")
	e.start(s)
	st := e.waitFor(s.ID, "running", running)
	e.ask(st.Address) // all its output is written by now
	cur := filepath.Join(e.cfg.StateDir, s.ID, "output.log")
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, errA := os.Stat(cur)
		b, errB := os.Stat(cur + ".1")
		if errA == nil && errB == nil && a.Size() <= bound && b.Size() <= bound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs never within bound: %v %v %v %v", a, errA, b, errB)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// All that is kept: what the rotations dropped is gone.
	// Rotated and quiet: what the app writes now is not lost to a
	// rotation racing with it.
	e.ask(st.Address)
	e.ask(st.Address)
	var all []byte
	var err error
	for !strings.HasSuffix(string(all), "served 3\n") {
		var truncated bool
		if all, truncated, err = e.rt.Logs(s.ID, 1<<20); err != nil || truncated || len(all) > 2*bound {
			t.Fatalf("Logs: %d bytes, truncated %v, %v", len(all), truncated, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tail lacks the last lines: ...%q", all[max(0, len(all)-200):])
		}
		time.Sleep(10 * time.Millisecond)
	}
	tail, truncated, err := e.rt.Logs(s.ID, 100)
	if err != nil || !truncated || len(tail) != 100 || !strings.HasSuffix(string(all), string(tail)) {
		t.Fatalf("Logs(100) = %q, %v, %v", tail, truncated, err)
	}
	if _, _, err := e.rt.Logs("nobody", 100); !errors.Is(err, apprun.ErrNotFound) {
		t.Fatalf("Logs of a missing instance: %v", err)
	}
}
