package runner

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mecorch/mecorch/lab/topology"
	"github.com/mecorch/mecorch/traffic/netns"
)

func nodeStatus(t *testing.T, st *LabStatus, name string) NodeStatus {
	t.Helper()
	for _, n := range st.Nodes {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("no node %s in status", name)
	return NodeStatus{}
}

func iface(n NodeStatus, name string) (Interface, bool) {
	for _, it := range n.Interfaces {
		if it.Name == name {
			return it, true
		}
	}
	return Interface{}, false
}

// checkGone checks that nothing of a lab is left: no namespace, none of
// the given processes, no state file, and no new link in the test's own
// namespace.
func checkGone(t *testing.T, o Options, pids []int, before map[string]bool) {
	t.Helper()
	if names, _ := netns.List(o.NetnsDir, ""); len(names) > 0 {
		t.Errorf("namespaces left: %v", names)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d left", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(o.StateDir, StateFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state file left (stat: %v)", err)
	}
	if before != nil {
		for l := range hostLinks(t) {
			if !before[l] && (strings.HasPrefix(l, "eth") || strings.HasPrefix(l, "veth")) {
				t.Errorf("link %s appeared in the host namespace", l)
			}
		}
	}
}

func TestUpRoutesSupervisesAndCloses(t *testing.T) {
	o := testOptions(t)
	before := hostLinks(t)
	topo := threeNodes(labName(t), testExe(t))
	lab, err := Up(t.Context(), topo, o)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()

	// The namespaces have the names `ip netns exec` takes.
	for _, n := range []string{"a", "b", "c"} {
		if !netns.IsMounted(filepath.Join(o.NetnsDir, "clab-"+topo.Name+"-"+n)) {
			t.Fatalf("no namespace clab-%s-%s", topo.Name, n)
		}
	}
	// a reaches c's cmd through b, which the exec commands made a router.
	for _, addr := range []string{"10.0.2.3:7777", "[fd00:2::3]:7777"} {
		if _, err := echo(lab.NetnsPath("a"), addr, 15*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	st, err := lab.Status()
	if err != nil {
		t.Fatal(err)
	}
	c := nodeStatus(t, st, "c")
	if !c.NamespaceExists || !c.Running || c.PID == 0 {
		t.Fatalf("node c: %+v", c)
	}
	a := nodeStatus(t, st, "a")
	eth1, ok := iface(a, "eth1")
	if !ok {
		t.Fatalf("a has no eth1: %+v", a.Interfaces)
	}
	if eth1.OperState != "up" || eth1.MTU != 1400 || eth1.MAC != "02:00:00:00:01:01" {
		t.Errorf("a:eth1 = %+v, want up, mtu 1400, mac 02:00:00:00:01:01", eth1)
	}
	for _, p := range []string{"10.0.1.1/24", "fd00:1::1/64"} {
		if !slices.Contains(eth1.Addrs, netip.MustParsePrefix(p)) {
			t.Errorf("a:eth1 lacks %s: %v", p, eth1.Addrs)
		}
	}
	if b := nodeStatus(t, st, "b"); b.Running || b.PID != 0 {
		t.Errorf("node b has no cmd but status says %+v", b)
	}

	// Killed, the cmd comes back, and serves again.
	first := c.PID
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c's cmd to be restarted", func() bool {
		st, err := lab.Status()
		if err != nil {
			t.Fatal(err)
		}
		c = nodeStatus(t, st, "c")
		return c.Running && c.PID != first && c.Restarts == 1
	})
	if _, err := echo(lab.NetnsPath("a"), "10.0.2.3:7777", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	// Status from the state file, as another process sees it.
	if st, err := Status(o.StateDir, Options{}); err != nil {
		t.Fatal(err)
	} else if n := nodeStatus(t, st, "c"); !n.Running || n.PID != c.PID || !st.RunnerRunning {
		t.Errorf("status from the state file: %+v, runner running %v", n, st.RunnerRunning)
	}

	log, err := os.ReadFile(lab.LogPath("b"))
	if err != nil || !strings.Contains(string(log), "net.ipv4.ip_forward = 1") {
		t.Errorf("b's log lacks the exec output: %q, %v", log, err)
	}

	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	checkGone(t, o, []int{first, c.PID}, before)
	if _, err := os.Stat(lab.LogPath("c")); err != nil {
		t.Errorf("logs should stay: %v", err)
	}
	if err := lab.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A runner killed outright leaves its lab running; Down removes it all
// from the state file.
func TestDownAfterRunnerCrash(t *testing.T) {
	o := testOptions(t)
	lab := labName(t)
	before := hostLinks(t)
	cmd := exec.Command(testExe(t), "-test.run=^$")
	cmd.Env = append(os.Environ(), "RUNNER_TEST_ROLE=runner", "RUNNER_TEST_LAB="+lab,
		"RUNNER_TEST_STATE="+o.StateDir, "RUNNER_TEST_NETNS="+o.NetnsDir)
	cmd.Stderr = t.Output()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = Down(context.Background(), o.StateDir, Options{StopGrace: time.Second})
	})
	if err := waitLine(bufio.NewReader(out), "ready", time.Minute); err != nil {
		t.Fatal(err)
	}
	var echoPID int
	waitFor(t, "the cmd's pid in the state", func() bool {
		st, err := ReadState(o.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		echoPID = st.Nodes[2].PID
		return echoPID != 0
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	st, err := Status(o.StateDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.RunnerRunning || !nodeStatus(t, st, "c").Running || !nodeStatus(t, st, "a").NamespaceExists {
		t.Fatalf("after the crash: %+v", st)
	}
	if _, err := echo(netns.Path(o.NetnsDir, "clab-"+lab+"-a"), "10.0.2.3:7777", 15*time.Second); err != nil {
		t.Fatalf("the orphaned lab should still work: %v", err)
	}

	if err := Down(t.Context(), o.StateDir, Options{StopGrace: time.Second}); err != nil {
		t.Fatal(err)
	}
	checkGone(t, o, []int{echoPID}, before)
	if err := Down(t.Context(), o.StateDir, Options{}); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

// Without a state file, Down by name takes the namespaces named after the
// lab, and the processes in them.
func TestDownByNameWithoutState(t *testing.T) {
	o := testOptions(t)
	lab := labName(t)
	path, err := netns.Create(o.NetnsDir, "clab-"+lab+"-x")
	if err != nil {
		t.Fatal(err)
	}
	other, err := netns.Create(o.NetnsDir, "clab-other-x")
	if err != nil {
		t.Fatal(err)
	}
	defer netns.Delete(o.NetnsDir, "clab-other-x")
	sleep := exec.Command("sleep", "1000")
	if err := netns.StartCmd(path, sleep); err != nil {
		t.Fatal(err)
	}
	reaped := make(chan struct{})
	go func() { _ = sleep.Wait(); close(reaped) }()

	st, err := Status(lab, Options{StateDir: filepath.Join(o.StateDir, lab), NetnsDir: o.NetnsDir})
	if err != nil {
		t.Fatal(err)
	}
	if st.HasState || len(st.Nodes) != 1 || st.Nodes[0].Name != "x" || !st.Nodes[0].NamespaceExists {
		t.Errorf("status without state: %+v", st)
	}
	if err := Down(t.Context(), lab, Options{StateDir: filepath.Join(o.StateDir, lab), NetnsDir: o.NetnsDir, StopGrace: time.Second}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reaped:
	case <-time.After(10 * time.Second):
		t.Fatal("the process in the namespace survived Down")
	}
	if names, _ := netns.List(o.NetnsDir, "clab-"+lab); len(names) > 0 {
		t.Errorf("left: %v", names)
	}
	if !netns.IsMounted(other) {
		t.Error("Down removed another lab's namespace")
	}
}

func TestUpRefusesExistingNamespace(t *testing.T) {
	o := testOptions(t)
	topo := threeNodes(labName(t), testExe(t))
	taken := topo.Namespace("b")
	if _, err := netns.Create(o.NetnsDir, taken); err != nil {
		t.Fatal(err)
	}
	defer netns.Delete(o.NetnsDir, taken)
	_, err := Up(t.Context(), topo, o)
	if err == nil || !strings.Contains(err.Error(), taken) {
		t.Fatalf("Up = %v, want a refusal naming %s", err, taken)
	}
	if names, _ := netns.List(o.NetnsDir, ""); !slices.Equal(names, []string{taken}) {
		t.Errorf("namespaces after the refusal: %v, want only %s", names, taken)
	}
	if _, err := os.Stat(filepath.Join(o.StateDir, StateFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state written for a refused lab (stat: %v)", err)
	}
}

func TestFailingExecTearsDown(t *testing.T) {
	o := testOptions(t)
	before := hostLinks(t)
	topo := threeNodes(labName(t), testExe(t))
	topo.Nodes[1].Exec = []string{"echo first", "echo boom >&2; exit 3", "echo never"}
	_, err := Up(t.Context(), topo, o)
	if err == nil {
		t.Fatal("Up succeeded with a failing exec")
	}
	for _, want := range []string{"node b", "exit 3", "boom", "exit status 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	checkGone(t, o, nil, before)
	log, _ := os.ReadFile(filepath.Join(o.StateDir, "logs", "b.log"))
	if !strings.Contains(string(log), "first") || strings.Contains(string(log), "never\n") {
		t.Errorf("b's log: %q", log)
	}
}

// A bridge node is a bridge in a namespace of its own; the nodes linked
// to it share a subnet.
func TestBridgeNode(t *testing.T) {
	o := testOptions(t)
	topo := &topology.Topology{
		Name: labName(t),
		Nodes: []*topology.Node{
			{Name: "sw", Kind: topology.KindBridge},
			{Name: "h1", Kind: topology.KindLinux},
			{
				Name: "h2", Kind: topology.KindLinux, Cmd: "exec '" + testExe(t) + "'",
				Env: map[string]string{"RUNNER_TEST_ROLE": "echo", "RUNNER_TEST_ADDR": ":7777"},
			},
		},
		Links: []*topology.Link{
			{A: topology.Endpoint{Node: "h1", Iface: "eth1", Addr: pfx("192.168.7.1/24")}, B: topology.Endpoint{Node: "sw", Iface: "p1"}},
			{A: topology.Endpoint{Node: "sw", Iface: "p2"}, B: topology.Endpoint{Node: "h2", Iface: "eth1", Addr: pfx("192.168.7.2/24")}},
		},
	}
	lab, err := Up(t.Context(), topo, o)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	if _, err := echo(lab.NetnsPath("h1"), "192.168.7.2:7777", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	st, err := lab.Status()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := iface(nodeStatus(t, st, "sw"), "sw"); !ok {
		t.Errorf("no bridge sw in the sw namespace: %+v", nodeStatus(t, st, "sw").Interfaces)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	checkGone(t, o, nil, nil)
}

func TestUpNeedsNoRootToRefuseBadTopology(t *testing.T) {
	topo := threeNodes("x", "/bin/true")
	topo.Links[1].B.Iface = "a-name-longer-than-15"
	if _, err := Up(t.Context(), topo, Options{StateDir: t.TempDir(), NetnsDir: t.TempDir()}); err == nil ||
		!strings.Contains(err.Error(), "a-name-longer-than-15") {
		t.Errorf("Up = %v, want a refusal of the interface name", err)
	}
}
