package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mecorch/mecorch/lab/topology"
	"github.com/mecorch/mecorch/traffic/netns"
)

// Lab is a running lab. Close (or Wait) removes it.
type Lab struct {
	t     *topology.Topology
	opts  Options
	log   *slog.Logger
	state *stateStore
	// ctx lives as long as the lab: the supervisors and emulated links
	// run under it.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	made   []string       // namespace names made by this Up, in order
	emu    []EmulatedLink // by link index; nil for a plain veth pair
	sups   []*supervisor
	closed bool

	closeOnce sync.Once
	done      chan struct{}
	closeErr  error
}

// Up realizes the topology: namespaces, links, exec commands, then the
// nodes' cmds under supervision. On any failure it removes what it made
// and says which node and step failed. Up refuses, before making
// anything, a lab whose namespaces exist already.
func Up(ctx context.Context, t *topology.Topology, opts Options) (*Lab, error) {
	if err := validate(t); err != nil {
		return nil, fmt.Errorf("lab %s: %w", t.Name, err)
	}
	opts = opts.withDefaults(t.Name)
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	if err := t.CheckHost(opts.NetnsDir); err != nil {
		return nil, err
	}
	st := planState(t, opts)
	if err := checkFree(st); err != nil {
		return nil, fmt.Errorf("lab %s: %w", t.Name, err)
	}
	if len(st.RelayNamespaces) > 0 && opts.Emulator == nil {
		opts.Emulator = LinkEmulator{Logger: opts.Logger}
	}
	if err := os.MkdirAll(filepath.Join(opts.StateDir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("lab %s: state dir: %w", t.Name, err)
	}
	store := &stateStore{path: filepath.Join(opts.StateDir, StateFile), st: st}
	if err := writeState(store.path, st); err != nil {
		return nil, fmt.Errorf("lab %s: %w", t.Name, err)
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &Lab{
		t: t, opts: opts, log: opts.Logger.With("lab", t.Name), state: store,
		ctx: lctx, cancel: cancel,
		emu: make([]EmulatedLink, len(t.Links)), done: make(chan struct{}),
	}
	if err := l.build(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("lab %s: %w", t.Name, err), l.Close())
	}
	l.log.Info("lab up", "nodes", len(t.Nodes), "links", len(t.Links), "state", opts.StateDir)
	return l, nil
}

// checkFree refuses a lab whose namespaces exist, or whose state says
// another runner still runs it.
func checkFree(st *State) error {
	if old, err := ReadState(st.StateDir); err == nil && old.runnerAlive() {
		return fmt.Errorf("already run by pid %d (state in %s)", old.RunnerPID, st.StateDir)
	}
	for _, name := range append(append([]string(nil), st.Namespaces...), st.RelayNamespaces...) {
		_, err := os.Lstat(netns.Path(st.NetnsDir, name))
		if err == nil {
			return fmt.Errorf("namespace %s exists in %s: another lab's, or one left behind (mecorch lab down %s)", name, st.NetnsDir, st.Lab)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("namespace %s: %w", name, err)
		}
	}
	return nil
}

func (l *Lab) path(name string) string { return netns.Path(l.opts.NetnsDir, name) }

// NetnsPath is the path of a node's namespace.
func (l *Lab) NetnsPath(node string) string { return l.path(l.t.Namespace(node)) }

// Topology is the lab's topology.
func (l *Lab) Topology() *topology.Topology { return l.t }

// StateDir is where the lab's state and logs are.
func (l *Lab) StateDir() string { return l.opts.StateDir }

// LogPath is the file a node's exec and cmd output goes to.
func (l *Lab) LogPath(node string) string {
	return filepath.Join(l.opts.StateDir, "logs", node+".log")
}

// create makes a namespace and records it as this lab's to remove.
func (l *Lab) create(name string) (string, error) {
	path, err := netns.Create(l.opts.NetnsDir, name)
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	l.made = append(l.made, name)
	l.mu.Unlock()
	return path, nil
}

func (l *Lab) build(ctx context.Context) error {
	nodes := map[string]*topology.Node{}
	for _, n := range l.t.Nodes {
		nodes[n.Name] = n
		path, err := l.create(l.t.Namespace(n.Name))
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		if err := setupNode(path, n); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	bridgeOf := func(node string) string {
		if isBridge(nodes[node]) {
			return bridgeName(node)
		}
		return ""
	}
	for i, lk := range l.t.Links {
		if err := ctx.Err(); err != nil {
			return err
		}
		pathA, pathB := l.NetnsPath(lk.A.Node), l.NetnsPath(lk.B.Node)
		if l.opts.emulated(lk) {
			if err := l.startEmulated(i, lk, pathA, pathB); err != nil {
				return err
			}
		} else if err := addVeth(pathA, pathB, lk); err != nil {
			return fmt.Errorf("link %d: %w", i, err)
		}
		if err := configureEndpoint(pathA, lk.A, lk.MTU, bridgeOf(lk.A.Node)); err != nil {
			return fmt.Errorf("link %d: %w", i, err)
		}
		if err := configureEndpoint(pathB, lk.B, lk.MTU, bridgeOf(lk.B.Node)); err != nil {
			return fmt.Errorf("link %d: %w", i, err)
		}
	}
	for _, n := range l.t.Nodes {
		env := nodeEnv(l.t, n, l.opts.ExtraEnv)
		for _, c := range n.Exec {
			if err := runExec(ctx, l.NetnsPath(n.Name), n.Name, c, env, l.LogPath(n.Name)); err != nil {
				return err
			}
		}
	}
	for i, n := range l.t.Nodes {
		if n.Cmd == "" {
			continue
		}
		l.supervise(i, n)
	}
	return nil
}

func (l *Lab) startEmulated(i int, lk *topology.Link, pathA, pathB string) error {
	relay, err := l.create(relayName(l.t, i))
	if err != nil {
		return fmt.Errorf("link %d: relay: %w", i, err)
	}
	spec := LinkSpec{
		Index: i, A: Side{Netns: pathA, Iface: lk.A.Iface}, B: Side{Netns: pathB, Iface: lk.B.Iface},
		RelayNetns: relay, MTU: lk.MTU, AtoB: lk.AtoB, BtoA: lk.BtoA,
		Seed: int64(i + 1),
	}
	el, err := l.opts.Emulator.Start(l.ctx, spec)
	if err != nil {
		return fmt.Errorf("link %d (%s:%s-%s:%s): emulate: %w", i, lk.A.Node, lk.A.Iface, lk.B.Node, lk.B.Iface, err)
	}
	l.mu.Lock()
	l.emu[i] = el
	l.mu.Unlock()
	return nil
}

func (l *Lab) supervise(i int, n *topology.Node) {
	s := &supervisor{
		node: n.Name, nsPath: l.NetnsPath(n.Name), cmdline: n.Cmd, logPath: l.LogPath(n.Name),
		env:        nodeEnv(l.t, n, l.opts.ExtraEnv),
		minBackoff: l.opts.RestartMin, maxBackoff: l.opts.RestartMax,
		log: l.log, done: make(chan struct{}),
	}
	s.started = func(pid, restarts int) {
		err := l.state.update(func(st *State) {
			st.Nodes[i].PID, st.Nodes[i].Restarts = pid, restarts
			st.Nodes[i].Started = time.Now().UTC()
		})
		if err != nil {
			l.log.Error("record pid", "node", n.Name, "err", err)
		}
	}
	l.mu.Lock()
	l.sups = append(l.sups, s)
	l.mu.Unlock()
	go s.run(l.ctx)
}

// Wait blocks until ctx ends, then closes the lab, or until the lab is
// closed elsewhere; it returns what Close returned.
func (l *Lab) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return l.Close()
	case <-l.done:
		return l.closeErr
	}
}

// Close removes the lab: its processes (SIGTERM, SIGKILL after the grace;
// any other process found in its namespaces too), emulated links,
// namespaces and state file. Logs stay. Close can be called again.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		l.closeErr = l.teardown()
		close(l.done)
	})
	<-l.done
	return l.closeErr
}

// madeByNodes lists the namespaces the nodes made themselves under their
// own namespace's name (mec-agent's app instances, with --netns-prefix
// clab-<lab>-<node>-): they go with the lab. Made after the runner's,
// they come after them in the list and so are deleted first.
func (l *Lab) madeByNodes(made []string) []string {
	return nodeMade(l.opts.NetnsDir, made)
}

func (l *Lab) teardown() error {
	l.mu.Lock()
	l.closed = true
	sups, emu, made := l.sups, l.emu, l.made
	l.mu.Unlock()
	l.cancel()
	var wg sync.WaitGroup
	for _, s := range sups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.stop(l.opts.StopGrace)
		}()
	}
	wg.Wait()
	var errs []error
	// Namespaces the nodes made under the lab's name (an agent's app
	// instances, named with that prefix) go with it, after the ones the
	// runner made are emptied of processes.
	made = append(made, l.madeByNodes(made)...)
	paths := make([]string, len(made))
	for i, name := range made {
		paths[i] = l.path(name)
	}
	if err := killProcs(context.Background(), paths, l.opts.StopGrace); err != nil {
		errs = append(errs, err)
	}
	for i, el := range emu {
		if el == nil {
			continue
		}
		if err := el.Close(); err != nil {
			errs = append(errs, fmt.Errorf("link %d: %w", i, err))
		}
	}
	for i := len(made) - 1; i >= 0; i-- {
		if err := netns.Delete(l.opts.NetnsDir, made[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Keep the state: Down can finish the job.
		err := errors.Join(errs...)
		l.log.Error("lab teardown incomplete", "err", err)
		return fmt.Errorf("lab %s: teardown: %w", l.t.Name, err)
	}
	if err := removeState(l.opts.StateDir); err != nil {
		return err
	}
	l.log.Info("lab down")
	return nil
}
