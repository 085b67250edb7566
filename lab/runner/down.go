package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mecorch/mecorch/traffic/netns"
)

// locate finds a lab's state from target: a state directory if target
// holds a slash, else a lab name whose state is in opts.StateDir or
// DefaultStateRoot/<name>. st is nil when there is no state file; lab is
// then the name to look for (empty for a state directory without state).
func locate(target string, opts Options) (st *State, lab string, o Options, err error) {
	if target == "" {
		return nil, "", opts, errors.New("no lab name or state directory")
	}
	if strings.Contains(target, "/") {
		opts.StateDir = target
	} else {
		lab = target
	}
	opts = opts.withDefaults(lab)
	st, err = ReadState(opts.StateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, lab, opts, nil
	}
	if err != nil {
		return nil, lab, opts, err
	}
	if lab != "" && st.Lab != lab {
		return nil, lab, opts, fmt.Errorf("state in %s is lab %s's, not %s's", opts.StateDir, st.Lab, lab)
	}
	opts.NetnsDir = st.NetnsDir
	return st, st.Lab, opts, nil
}

// Down removes a lab whose runner may have died: target is its state
// directory or its name. It stops the runner if it still runs, ends every
// process in the lab's namespaces, unmounts and removes the namespaces
// and the state file. Without a state file it removes the namespaces
// named clab-<name>-* in opts.NetnsDir that no other lab's state claims.
// What is already gone is not an error, so Down can be repeated.
func Down(ctx context.Context, target string, opts Options) error {
	if err := checkPrivileges(); err != nil {
		return err
	}
	st, lab, opts, err := locate(target, opts)
	if err != nil {
		return err
	}
	log := opts.Logger.With("lab", lab)
	var names []string
	if st != nil {
		if st.RunnerPID != os.Getpid() && st.runnerAlive() {
			log.Info("stopping the lab's runner", "pid", st.RunnerPID)
			stopRunner(ctx, st, opts.StopGrace)
		}
		names = append(append(names, st.Namespaces...), st.RelayNamespaces...)
		names = append(names, nodeMade(opts.NetnsDir, st.Namespaces)...)
	} else if lab != "" {
		names, err = orphans(lab, opts)
		if err != nil {
			return err
		}
	}
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = netns.Path(opts.NetnsDir, n)
	}
	var errs []error
	if err := killProcs(ctx, paths, opts.StopGrace); err != nil {
		errs = append(errs, err)
	}
	for _, n := range names {
		if err := netns.Delete(opts.NetnsDir, n); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab %s down: %w", lab, err)
	}
	if err := removeState(opts.StateDir); err != nil {
		return err
	}
	log.Info("lab removed", "namespaces", len(names))
	return nil
}

// stopRunner asks a live runner to tear its lab down (SIGTERM) and kills
// it if it has not exited in time: a runner left alive would restart the
// processes Down ends.
func stopRunner(ctx context.Context, st *State, grace time.Duration) {
	_ = syscall.Kill(st.RunnerPID, syscall.SIGTERM)
	deadline := time.Now().Add(2*grace + 5*time.Second)
	for st.runnerAlive() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	if st.runnerAlive() {
		_ = syscall.Kill(st.RunnerPID, syscall.SIGKILL)
	}
}

// orphans lists the namespaces of a lab that left no state: those named
// clab-<lab>-* but for those another lab's state file (next to where
// this lab's would be) claims: lab "a" must not take lab "a-b"'s nodes.
// nodeMade lists the namespaces in dir named after one of nodes plus "-",
// that are not among nodes: those the nodes' processes made (an agent's
// app instances). Only names under a node's own are taken, so that a lab
// whose name extends this one's ("mec" and "mec-3site") is left alone.
func nodeMade(dir string, nodes []string) []string {
	known := map[string]bool{}
	for _, n := range nodes {
		known[n] = true
	}
	var out []string
	for _, n := range nodes {
		names, err := netns.List(dir, n+"-")
		if err != nil {
			continue
		}
		for _, m := range names {
			if !known[m] {
				known[m] = true
				out = append(out, m)
			}
		}
	}
	return out
}

func orphans(lab string, opts Options) ([]string, error) {
	names, err := netns.List(opts.NetnsDir, "clab-"+lab+"-")
	if err != nil {
		return nil, err
	}
	ents, _ := os.ReadDir(filepath.Dir(opts.StateDir))
	for _, e := range ents {
		other, err := ReadState(filepath.Join(filepath.Dir(opts.StateDir), e.Name()))
		if err != nil || other.Lab == lab || other.NetnsDir != opts.NetnsDir {
			continue
		}
		names = slices.DeleteFunc(names, func(n string) bool {
			return slices.Contains(other.Namespaces, n) || slices.Contains(other.RelayNamespaces, n)
		})
	}
	return names, nil
}

// LabStatus is what Status reports.
type LabStatus struct {
	Lab           string       `json:"lab"`
	NetnsDir      string       `json:"netnsDir"`
	StateDir      string       `json:"stateDir"`
	HasState      bool         `json:"hasState"`
	RunnerPID     int          `json:"runnerPid,omitempty"`
	RunnerRunning bool         `json:"runnerRunning"`
	Nodes         []NodeStatus `json:"nodes"`
	// Links are as recorded, with the impairments last set.
	Links []LinkState `json:"links,omitempty"`
}

// NodeStatus is one node of a LabStatus.
type NodeStatus struct {
	Name            string      `json:"name"`
	Kind            string      `json:"kind,omitempty"`
	Namespace       string      `json:"namespace"`
	NamespaceExists bool        `json:"namespaceExists"`
	Cmd             string      `json:"cmd,omitempty"`
	PID             int         `json:"pid,omitempty"`
	Running         bool        `json:"running"`
	Restarts        int         `json:"restarts,omitempty"`
	Interfaces      []Interface `json:"interfaces,omitempty"`
}

// Status reports on a lab from its state and the kernel: target is its
// state directory or its name. A lab without state (its runner died
// before writing it, or Down removed it) is reported from the namespaces
// named after it.
func Status(target string, opts Options) (*LabStatus, error) {
	// Looking into a namespace (setns) takes CAP_SYS_ADMIN.
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	st, lab, opts, err := locate(target, opts)
	if err != nil {
		return nil, err
	}
	if st == nil {
		if lab == "" {
			return nil, fmt.Errorf("no lab state in %s", opts.StateDir)
		}
		names, err := orphans(lab, opts)
		if err != nil {
			return nil, err
		}
		st = &State{Lab: lab, NetnsDir: opts.NetnsDir, StateDir: opts.StateDir}
		for _, n := range names {
			if !strings.HasPrefix(strings.TrimPrefix(n, "clab-"+lab+"-"), "_") {
				st.Nodes = append(st.Nodes, NodeState{Name: strings.TrimPrefix(n, "clab-"+lab+"-"), Namespace: n})
			}
		}
		return statusOf(st, false)
	}
	return statusOf(st, true)
}

func statusOf(st *State, hasState bool) (*LabStatus, error) {
	out := &LabStatus{
		Lab: st.Lab, NetnsDir: st.NetnsDir, StateDir: st.StateDir, HasState: hasState,
		RunnerPID: st.RunnerPID, RunnerRunning: st.runnerAlive(), Links: st.Links,
	}
	for _, n := range st.Nodes {
		path := netns.Path(st.NetnsDir, n.Namespace)
		ns := NodeStatus{
			Name: n.Name, Kind: n.Kind, Namespace: n.Namespace, Cmd: n.Cmd,
			PID: n.PID, Restarts: n.Restarts, NamespaceExists: netns.IsMounted(path),
		}
		if ns.NamespaceExists {
			ifs, err := interfaces(path)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", n.Name, err)
			}
			ns.Interfaces = ifs
			ns.Running = n.PID > 0 && inNetns(n.PID, path)
		}
		out.Nodes = append(out.Nodes, ns)
	}
	return out, nil
}

// inNetns tells whether pid runs (not a zombie) in the namespace on path:
// a pid recorded by a runner that died may belong to another process by
// now.
func inNetns(pid int, path string) bool {
	if procStartTicks(pid) == 0 {
		return false
	}
	var want, got syscall.Stat_t
	if syscall.Stat(path, &want) != nil || syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &got) != nil {
		return false
	}
	return want.Ino == got.Ino && want.Dev == got.Dev
}
