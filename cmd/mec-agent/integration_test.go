package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/mecorch/mecorch/internal/agentlab"
)

// The integration tests run mecorch and real mec-agents, each in its own
// network namespace, with the sample app's image replaced by the echoapp
// binary. They need root (namespaces, cgroups); under CI=true a machine
// without them fails the tests rather than skipping them.

var bins agentlab.Binaries

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() != 0 {
			if os.Getenv("CI") == "true" {
				fmt.Fprintln(os.Stderr, "mec-agent integration tests need root (network namespaces, cgroups)")
				return 1
			}
			fmt.Fprintln(os.Stderr, "skipping mec-agent integration tests: not root")
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "mec-agent-it-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		_, file, _, _ := runtime.Caller(0)
		if bins, err = agentlab.Build(filepath.Join(filepath.Dir(file), "..", ".."), dir); err != nil {
			fmt.Fprintln(os.Stderr, "build lab binaries:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// startLab brings up a lab whose everything is named with prefix.
func startLab(t *testing.T, prefix string, agents []agentlab.AgentSpec, mutate func(*agentlab.Options)) *agentlab.Lab {
	t.Helper()
	if bins.Mecorch == "" {
		t.Skip("not root: no lab")
	}
	sites := map[string]bool{}
	for _, a := range agents {
		sites[a.SiteID] = true
	}
	dir := t.TempDir()
	// The agents run instances as nobody, which must get through every
	// directory above their state (t.TempDir's parent is 0700).
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	opts := agentlab.Options{Prefix: prefix, Dir: dir, Bins: bins, Agents: agents,
		Heartbeat: 300 * time.Millisecond, Missed: 3,
		MecorchArgs: []string{"--move-cooldown", "1s", "--ready-hold", "2s"},
		AgentArgs:   []string{"--offline-grace", "3s", "--resync", "1s"}}
	for s := range sites {
		opts.Sites = append(opts.Sites, s)
	}
	slices.Sort(opts.Sites)
	if mutate != nil {
		mutate(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := agentlab.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, opts.Dir)
		}
		l.Close()
		if left := agentlab.ProcsInNetnsPrefix(prefix); len(left) > 0 {
			t.Errorf("processes left in the lab's namespaces: %v", left)
		}
	})
	for _, a := range agents {
		waitHostState(t, l, a.HostID, "Ready")
	}
	return l
}

func dumpLogs(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, p := range logs {
		data, _ := os.ReadFile(p)
		if len(data) > 6000 {
			data = data[len(data)-6000:]
		}
		t.Logf("---- %s (tail)\n%s", filepath.Base(p), data)
	}
}

func waitHostState(t *testing.T, l *agentlab.Lab, host, state string) {
	t.Helper()
	err := agentlab.Eventually(20*time.Second, func() error {
		h, err := l.Host(context.Background(), host)
		if err != nil {
			return err
		}
		if h.State != state {
			return fmt.Errorf("host %s is %s", host, h.State)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("host %s never %s: %v", host, state, err)
	}
}

func waitOp(t *testing.T, l *agentlab.Lab, op, want string) {
	t.Helper()
	err := agentlab.Eventually(30*time.Second, func() error {
		st, err := l.Op(context.Background(), op)
		if err != nil {
			return err
		}
		if st != want {
			return fmt.Errorf("op %s is %s", op, st)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("op never %s: %v", want, err)
	}
}

// runningOn waits until the instance is placed on a host other than
// notOn, reported Running there, and answers on its address; it returns
// the host and address.
func runningOn(t *testing.T, l *agentlab.Lab, inst, notOn string, limit time.Duration) (string, string) {
	t.Helper()
	var host, addr string
	err := agentlab.Eventually(limit, func() error {
		ctx := context.Background()
		in, err := l.Instance(ctx, inst)
		if err != nil {
			return err
		}
		host = in.Mecorch.HostID
		if host == "" || host == notOn {
			return fmt.Errorf("instance on %q", host)
		}
		if in.Mecorch.ObservedState != "Running" {
			return fmt.Errorf("instance on %s observed %q", host, in.Mecorch.ObservedState)
		}
		if addr, err = l.InstanceAddr(ctx, host, inst); err != nil {
			return err
		}
		return l.Echo(ctx, host, addr)
	})
	if err != nil {
		t.Fatalf("instance %s not running elsewhere than %q: %v", inst, notOn, err)
	}
	return host, addr
}

// onlyOne checks, for a while, that exactly one process is the instance.
func onlyOne(t *testing.T, inst string, settle, hold time.Duration) {
	t.Helper()
	if err := agentlab.Eventually(settle, func() error {
		if n := len(agentlab.InstanceProcs(inst)); n != 1 {
			return fmt.Errorf("%d processes", n)
		}
		return nil
	}); err != nil {
		t.Fatalf("instance %s never ran exactly once: %v", inst, err)
	}
	for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if n := len(agentlab.InstanceProcs(inst)); n != 1 {
			t.Fatalf("instance %s runs %d times", inst, n)
		}
	}
}

func linksIn(t *testing.T, l *agentlab.Lab, host string) []string {
	t.Helper()
	h, err := netlink.NewHandleAt(l.Agent(host).NS)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ls, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range ls {
		out = append(out, x.Attrs().Name)
	}
	slices.Sort(out)
	return out
}

func TestInstanceLifecycleOnRealProcesses(t *testing.T) {
	l := startLab(t, "tl", []agentlab.AgentSpec{{HostID: "h1", SiteID: "s1", MilliCPU: 2000, MemoryMiB: 2048}}, nil)
	ctx := context.Background()
	inst, host, addr := deployEcho(t, l)
	in, err := l.Instance(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	if in.InstantiationState != "INSTANTIATED" || in.InstantiatedAppState.OperationalState != "STARTED" || in.Mecorch.HostID != "h1" {
		t.Fatalf("after instantiate: %+v", in)
	}
	if !strings.HasPrefix(addr, "10.200.1.") {
		t.Errorf("instance address %s is not on h1's app subnet", addr)
	}
	onlyOne(t, inst, time.Second, 0)
	// The app runs unprivileged (mec-agent --run-as nobody by default).
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", agentlab.InstanceProcs(inst)[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "\nUid:\t65534\t65534\t65534\t65534\n") {
		t.Errorf("the instance does not run as nobody:\n%s", status)
	}

	var logs string
	if err := agentlab.Eventually(5*time.Second, func() error {
		if err := l.Client.Do(ctx, "GET", "/api/v1/app_instances/"+inst+"/logs", nil, &logs, 200); err != nil {
			return err
		}
		if !strings.Contains(logs, "echoapp: instance "+inst+" serving") {
			return fmt.Errorf("logs: %q", logs)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Operate STOPPED: the process ends gracefully (echoapp logs it).
	hdr, err := l.Client.Raw(ctx, "POST", "/app_lcm/v1/app_instances/"+inst+"/operate", "application/json",
		map[string]any{"changeStateTo": "STOPPED", "stopType": "GRACEFUL", "gracefulStopTimeout": 5}, nil, 202)
	if err != nil {
		t.Fatal(err)
	}
	waitOp(t, l, lastSegment(hdr.Get("Location")), "COMPLETED")
	if n := len(agentlab.InstanceProcs(inst)); n != 0 {
		t.Fatalf("stopped instance still has %d processes", n)
	}
	if err := l.Echo(ctx, host, addr); err == nil {
		t.Fatal("a stopped instance still answers")
	}
	if err := l.Client.Do(ctx, "GET", "/api/v1/app_instances/"+inst+"/logs", nil, &logs, 200); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "echoapp: stopping") {
		t.Errorf("the stop was not graceful (no SIGTERM handled); logs: %q", logs)
	}

	hdr, err = l.Client.Raw(ctx, "POST", "/app_lcm/v1/app_instances/"+inst+"/operate", "application/json",
		map[string]any{"changeStateTo": "STARTED"}, nil, 202)
	if err != nil {
		t.Fatal(err)
	}
	waitOp(t, l, lastSegment(hdr.Get("Location")), "COMPLETED")
	if _, addr2 := runningOn(t, l, inst, "", 10*time.Second); addr2 != addr {
		t.Errorf("restarted instance moved from %s to %s on the same host", addr, addr2)
	}

	linksBefore := linksIn(t, l, "h1")
	hdr, err = l.Client.Raw(ctx, "POST", "/app_lcm/v1/app_instances/"+inst+"/terminate", "application/json",
		map[string]any{"terminationType": "GRACEFUL", "gracefulTerminationTimeout": 5}, nil, 202)
	if err != nil {
		t.Fatal(err)
	}
	waitOp(t, l, lastSegment(hdr.Get("Location")), "COMPLETED")
	if n := len(agentlab.InstanceProcs(inst)); n != 0 {
		t.Fatalf("terminated instance still has %d processes", n)
	}
	if ns := agentlab.ProcsInNetnsPrefix("tli1-"); len(ns) != 0 {
		t.Errorf("processes left in instance namespaces: %v", ns)
	}
	if left, _ := filepath.Glob("/run/netns/tli1-*"); len(left) != 0 {
		t.Errorf("instance namespaces left after terminate: %v", left)
	}
	linksAfter := linksIn(t, l, "h1")
	if len(linksAfter) != len(linksBefore)-1 {
		t.Errorf("links before terminate %v, after %v: the instance's veth should be gone", linksBefore, linksAfter)
	}
	if cg := agentlab.CgroupsNamed("mecorch-tl-h1/" + inst); len(cg) != 0 {
		t.Errorf("instance cgroups left: %v", cg)
	}
}

// deployEcho onboards the lab's package and instantiates one instance
// wherever placement puts it (no constraint: a site constraint would keep
// it on its site when it has to move), waits for the operation to complete
// and the instance to answer; it returns the instance, its host and its
// address.
func deployEcho(t *testing.T, l *agentlab.Lab) (inst, host, addr string) {
	t.Helper()
	ctx := context.Background()
	appD, err := l.Onboard(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inst, op, err := l.Instantiate(ctx, appD, "echo-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitOp(t, l, op, "COMPLETED")
	host, addr = runningOn(t, l, inst, "", 10*time.Second)
	return inst, host, addr
}

func lastSegment(loc string) string { return loc[strings.LastIndex(loc, "/")+1:] }
