package agent_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/agent"
	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/apprun"
	"github.com/mecorch/mecorch/traffic/netns"
)

var echoapp string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agent-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	echoapp = filepath.Join(dir, "echoapp")
	if out, err := exec.Command("go", "build", "-o", echoapp, "../../examples/echoapp").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build echoapp: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// localImages stands in for the HTTP image fetcher (covered by the
// integration tests in cmd/mec-agent): every instance runs echoapp, except
// those named in broken, whose fetch fails.
type localImages struct{ broken map[string]bool }

func (l localImages) Fetch(_ context.Context, in agentproto.DesiredInstance) (string, error) {
	if l.broken[in.ID] {
		return "", errors.New("no such image")
	}
	return echoapp, nil
}

type env struct {
	t        *testing.T
	rtCfg    apprun.Config
	stateDir string
	rt       *apprun.Process
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (namespaces, cgroups); CI=true forbids skipping")
		}
		t.Skip("needs root")
	}
	nsDir := t.TempDir()
	t.Cleanup(func() { _ = unix.Unmount(nsDir, unix.MNT_DETACH) })
	host, err := netns.Create(nsDir, "host")
	if err != nil {
		t.Fatal(err)
	}
	rnd := make([]byte, 4)
	_, _ = rand.Read(rnd)
	e := &env{t: t, stateDir: t.TempDir(), rtCfg: apprun.Config{
		StateDir: t.TempDir(), NetnsDir: nsDir, NetnsPrefix: "ag-", HostNetns: host,
		Bridge: "mecbr0", VethPrefix: "agv", Subnet: netip.MustParsePrefix("10.91.0.0/24"),
		Cgroup:  "mecorch-agent-test-" + hex.EncodeToString(rnd),
		Backoff: apprun.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, ResetAfter: time.Minute},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
	e.rt = e.openRuntime()
	t.Cleanup(func() {
		// The test's runtime first: its supervisors would restart what the
		// cleanup removes.
		_ = e.rt.Close()
		rt := e.openRuntime()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for _, st := range rt.List() {
			if err := rt.Remove(ctx, st.ID); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		_ = rt.Sweep(ctx, func(string) bool { return false })
		_ = rt.Close()
		_ = netns.Delete(nsDir, "host")
		// The runtime's parent cgroup is the test's own: empty now, it goes.
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + e.rtCfg.Cgroup)
		for _, d := range append(dirs, "/sys/fs/cgroup/"+e.rtCfg.Cgroup) {
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("remove the test's cgroup %s: %v", d, err)
			}
		}
	})
	return e
}

func (e *env) openRuntime() *apprun.Process {
	e.t.Helper()
	rt, err := apprun.NewProcess(e.rtCfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return rt
}

func (e *env) agent(images agent.Images, grace time.Duration) *agent.Agent {
	e.t.Helper()
	a, err := agent.New(agent.Config{HostID: "h1", StateDir: e.stateDir, Resync: 50 * time.Millisecond,
		OfflineGrace: grace, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, e.rt, images)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func run(t *testing.T, a *agent.Agent) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return cancel
}

func desired(gen int64, states map[string]string) agentproto.DesiredState {
	ds := agentproto.DesiredState{HostID: "h1", Generation: gen, Instances: []agentproto.DesiredInstance{}}
	for id, st := range states {
		ds.Instances = append(ds.Instances, agentproto.DesiredInstance{ID: id, AppDID: "app", State: st,
			Resources: mec.Resources{MilliCPU: 500, MemoryMiB: 64}, StopGraceSeconds: 2})
	}
	return ds
}

// reportIs waits until the agent's report has generation gen and the
// instance states in want (absent ones: "").
func reportIs(t *testing.T, a *agent.Agent, gen int64, want map[string]string) agentproto.Report {
	t.Helper()
	var r agentproto.Report
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		r = a.Report()
		got := map[string]string{}
		for _, in := range r.Instances {
			got[in.ID] = in.State
		}
		ok := r.Generation == gen
		for id, st := range want {
			ok = ok && got[id] == st
		}
		if ok && len(got) == countSet(want) {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("report never reached generation %d with %v: %+v", gen, want, r)
	return r
}

func countSet(m map[string]string) int {
	n := 0
	for _, v := range m {
		if v != "" {
			n++
		}
	}
	return n
}

func TestReconcileFollowsDesiredState(t *testing.T) {
	e := newEnv(t)
	a := e.agent(localImages{}, 0)
	run(t, a)

	if err := a.Apply(desired(1, map[string]string{"i1": "Running", "i2": "Running"})); err != nil {
		t.Fatal(err)
	}
	r := reportIs(t, a, 1, map[string]string{"i1": "Running", "i2": "Running"})
	for _, in := range r.Instances {
		if !netip.MustParsePrefix("10.91.0.0/24").Contains(netip.MustParseAddr(in.Address)) {
			t.Errorf("instance %s has address %q", in.ID, in.Address)
		}
	}
	st, _ := e.rt.Status("i1")
	pid := st.PID

	// i1 stopped, i2 terminated (Absent), i3 new.
	if err := a.Apply(desired(2, map[string]string{"i1": "Stopped", "i2": "Absent", "i3": "Running"})); err != nil {
		t.Fatal(err)
	}
	reportIs(t, a, 2, map[string]string{"i1": "Stopped", "i2": "", "i3": "Running"})
	if _, ok := e.rt.Status("i2"); ok {
		t.Error("terminated instance still known to the runtime")
	}
	// Dropped from the desired state altogether: removed too.
	if err := a.Apply(desired(3, map[string]string{"i1": "Running"})); err != nil {
		t.Fatal(err)
	}
	reportIs(t, a, 3, map[string]string{"i1": "Running", "i3": ""})
	if st, _ := e.rt.Status("i1"); st.PID == pid {
		t.Error("i1 was not restarted after its stop")
	}
	// An older generation changes nothing.
	if err := a.Apply(desired(2, map[string]string{})); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	reportIs(t, a, 3, map[string]string{"i1": "Running"})
	if err := a.Apply(agentproto.DesiredState{HostID: "h2", Generation: 9}); err == nil {
		t.Error("a desired state for another host was taken")
	}
}

func TestImageFailureIsReportedFailed(t *testing.T) {
	e := newEnv(t)
	a := e.agent(localImages{broken: map[string]bool{"bad": true}}, 0)
	run(t, a)
	if err := a.Apply(desired(1, map[string]string{"bad": "Running", "good": "Running"})); err != nil {
		t.Fatal(err)
	}
	r := reportIs(t, a, 1, map[string]string{"bad": "Failed", "good": "Running"})
	for _, in := range r.Instances {
		if in.ID == "bad" && in.Message == "" {
			t.Error("a failed instance without a message")
		}
	}
}

// An agent restarted while mecorch is unreachable runs what its desired
// state on disk says, once the offline grace has passed; one that knows no
// desired state touches nothing.
func TestOfflineFirstRestart(t *testing.T) {
	e := newEnv(t)
	a := e.agent(localImages{}, 0)
	cancel := run(t, a)
	if err := a.Apply(desired(4, map[string]string{"i1": "Running"})); err != nil {
		t.Fatal(err)
	}
	reportIs(t, a, 4, map[string]string{"i1": "Running"})
	cancel()
	// The machine reboots: the agent and its instance are gone.
	_ = e.rt.Close()
	rt := e.openRuntime()
	if err := rt.Stop(context.Background(), "i1", 0); err != nil {
		t.Fatal(err)
	}
	e.rt = rt

	b := e.agent(localImages{}, 300*time.Millisecond)
	run(t, b)
	reportIs(t, b, 4, map[string]string{"i1": "Running"})

	// A fresh state directory: nothing is known, nothing is touched.
	e.stateDir = t.TempDir()
	_ = e.rt.Close()
	e.rt = e.openRuntime()
	c := e.agent(localImages{}, 100*time.Millisecond)
	run(t, c)
	time.Sleep(400 * time.Millisecond)
	if st, ok := e.rt.Status("i1"); !ok || st.State != "Running" {
		t.Fatalf("an agent with no desired state touched i1: %+v", st)
	}
}

func TestKeptStateSurvivesAndRefusesAnotherHost(t *testing.T) {
	dir := t.TempDir()
	a, err := agent.New(agent.Config{HostID: "h1", StateDir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(desired(7, map[string]string{"x": "Running"})); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.New(agent.Config{HostID: "other", StateDir: dir}, nil, nil); err == nil {
		t.Error("an agent of another host took this host's state")
	}
	if err := os.WriteFile(filepath.Join(dir, "desired.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.New(agent.Config{HostID: "h1", StateDir: dir}, nil, nil); err == nil {
		t.Error("a corrupt state file was taken")
	}
}
