package apprun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/mecorch/mecorch/traffic/netns"
)

// Process runs instances as plain processes. See the package comment.
type Process struct {
	cfg   Config
	log   *slog.Logger
	clock Clock
	cg    cgroups
	gw    netip.Prefix // the bridge's address, the instances' gateway
	boot  string

	// Lock order: an instance's op, then its mu, then p.mu; never an
	// instance's lock while holding p.mu.
	mu     sync.Mutex
	insts  map[string]*instance // by id
	closed bool
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup
}

// instance is one app instance. Its names and address are fixed for its
// life; the rest is guarded by mu.
type instance struct {
	id, key, dir string
	nsName, veth string
	addr         netip.Addr

	// op serialises Start, Stop and Remove, which may wait (a grace
	// period) without holding mu.
	op sync.Mutex

	mu        sync.Mutex
	spec      Spec
	state     string
	message   string
	restarts  int
	exit      *exitRecord
	cur       *run          // the process, nil when none runs
	want      bool          // it should run: a supervisor is in charge
	cancel    chan struct{} // closed to end the supervisor
	superDone chan struct{} // closed when the supervisor has ended
	removed   bool
	// usage sampling
	cpuAt    time.Time
	cpuNanos uint64
	milliCPU int64
	oomBase  uint64
}

// minSample is the shortest interval a CPU rate is computed over.
const minSample = 500 * time.Millisecond

// NewProcess detects the cgroup hierarchy, then adopts the instances of
// cfg.StateDir whose process still runs and lists the others as not
// running.
func NewProcess(cfg Config) (*Process, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.HostNetns != "" && !netns.IsMounted(cfg.HostNetns) {
		return nil, fmt.Errorf("apprun: host netns %s is not a mounted namespace", cfg.HostNetns)
	}
	cg, err := detectCgroups(cfg.Mountinfo, cfg.Cgroup)
	if err != nil {
		return nil, fmt.Errorf("apprun: %w", err)
	}
	boot, err := bootID()
	if err != nil {
		return nil, fmt.Errorf("apprun: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("apprun: state dir: %w", err)
	}
	if cfg.RunAs != nil {
		if err := cfg.RunAs.checkReach(cfg.StateDir); err != nil {
			return nil, err
		}
	}
	p := &Process{
		cfg: cfg, log: cfg.Logger, clock: cfg.Clock, cg: cg, gw: gateway(cfg.Subnet), boot: boot,
		insts: map[string]*instance{}, done: make(chan struct{}),
	}
	if err := p.recover(); err != nil {
		return nil, err
	}
	p.wg.Add(1)
	go p.rotateLogs()
	p.log.Info("app runtime ready", "cgroups", cg.version(), "instances", len(p.insts), "stateDir", cfg.StateDir)
	return p, nil
}

func (p *Process) newInstance(id string, addr netip.Addr) *instance {
	key := keyOf(id)
	return &instance{
		id: id, key: key, dir: filepath.Join(p.cfg.StateDir, key),
		nsName: p.cfg.NetnsPrefix + key, veth: netns.VethName(p.cfg.VethPrefix, id), addr: addr,
		state: StateStopped,
	}
}

func (p *Process) nsPath(in *instance) string { return netns.Path(p.cfg.NetnsDir, in.nsName) }

// Network is where an instance's traffic enters and leaves it, for the
// host's data plane to steer: the host end of its veth (in the namespace of
// the app bridge, Config.HostNetns), its namespace's path, and the name of
// its own end there. The names are fixed for the instance's life; whether
// the links exist is the caller's to find out.
type Network struct {
	HostNetns string // empty: the runtime's own
	HostLink  string
	Netns     string
	Link      string
}

// Network returns the instance's network names, false for an unknown id.
func (p *Process) Network(id string) (Network, bool) {
	in := p.lookup(id)
	if in == nil {
		return Network{}, false
	}
	// eth0: netns.AddVeth's default, which launch does not override.
	return Network{HostNetns: p.cfg.HostNetns, HostLink: in.veth, Netns: p.nsPath(in), Link: "eth0"}, true
}

// recover loads the state directory.
func (p *Process) recover() error {
	keys, err := subdirs(p.cfg.StateDir)
	if err != nil {
		return fmt.Errorf("apprun: read state: %w", err)
	}
	for _, key := range keys {
		dir := filepath.Join(p.cfg.StateDir, key)
		rec, err := readRecord(dir)
		if err == nil && keyOf(rec.Spec.ID) != key {
			err = fmt.Errorf("instance %q recorded in %s", rec.Spec.ID, dir)
		}
		if err != nil {
			p.log.Warn("unreadable instance state, left for Sweep", "dir", dir, "err", err)
			continue
		}
		in := p.newInstance(rec.Spec.ID, rec.Address)
		in.spec, in.restarts, in.exit = rec.Spec, rec.Restarts, rec.Exit
		var rr runRecord
		hadRun := readJSON(filepath.Join(dir, runFile), &rr) == nil
		if hadRun {
			r, err := p.adopt(rr)
			if err != nil {
				p.log.Info("instance's process is gone", "instance", in.id, "pid", rr.PID, "why", err)
				_ = os.Remove(filepath.Join(dir, runFile))
			} else {
				in.mu.Lock()
				in.cur, in.want, in.state = r, true, StateRunning
				in.oomBase = p.cg.oomKills(key)
				in.cpuNanos, _ = p.cg.usage(key)
				in.cpuAt = p.clock.Now()
				p.superviseLocked(in, r)
				in.mu.Unlock()
				p.log.Info("instance adopted", "instance", in.id, "pid", r.pid)
			}
		}
		if in.cur == nil {
			switch {
			case in.exit != nil:
				in.state, in.message = in.exit.State, in.exit.Message
			case hadRun:
				in.message = "exited while the agent was not running"
			default:
				in.message = "not running since the agent restarted"
			}
		}
		p.insts[in.id] = in
	}
	return nil
}

// instanceFor returns the instance of spec.ID, creating its state (and
// allocating its address) if it is new.
func (p *Process) instanceFor(spec Spec) (*instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if in := p.insts[spec.ID]; in != nil {
		return in, nil
	}
	used := map[netip.Addr]bool{}
	for _, in := range p.insts {
		used[in.addr] = true
	}
	addr, err := allocate(p.cfg.Subnet, used)
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", spec.ID, err)
	}
	in := p.newInstance(spec.ID, addr)
	in.spec = spec
	if err := os.MkdirAll(in.dir, 0o700); err != nil {
		return nil, fmt.Errorf("instance %s: state dir: %w", spec.ID, err)
	}
	if err := p.saveRecord(in); err != nil {
		return nil, err
	}
	p.insts[spec.ID] = in
	return in, nil
}

// saveRecord writes the instance's record; in.mu is held (or in is not
// shared yet).
func (p *Process) saveRecord(in *instance) error {
	rec := record{Spec: in.spec, Address: in.addr, Restarts: in.restarts, Exit: in.exit}
	if err := writeJSON(filepath.Join(in.dir, recordFile), rec); err != nil {
		return fmt.Errorf("instance %s: %w", in.id, err)
	}
	return nil
}

func (p *Process) lookup(id string) *instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.insts[id]
}

func (p *Process) snapshot() []*instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*instance, 0, len(p.insts))
	for _, in := range p.insts {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (p *Process) isClosed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Start implements Runtime.
func (p *Process) Start(ctx context.Context, spec Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if c := p.cfg.RunAs; c != nil {
		if err := c.checkExec(spec); err != nil {
			return err
		}
	}
	spec = spec.withDefaults()
	for {
		in, err := p.instanceFor(spec)
		if err != nil {
			return err
		}
		in.op.Lock()
		if in.removed { // removed while we waited: make it anew
			in.op.Unlock()
			continue
		}
		err = p.start(ctx, in, spec)
		in.op.Unlock()
		return err
	}
}

func (p *Process) start(ctx context.Context, in *instance, spec Spec) error {
	in.mu.Lock()
	if in.want && in.spec.equal(spec) {
		in.mu.Unlock()
		return nil
	}
	busy := in.want || in.cur != nil
	in.mu.Unlock()
	if busy {
		if err := p.stop(ctx, in, p.cfg.StopGrace); err != nil {
			return err
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if p.isClosed() {
		return ErrClosed
	}
	in.spec, in.exit = spec, nil
	if err := p.saveRecord(in); err != nil {
		return err
	}
	r, err := p.launch(in)
	if err != nil {
		// Stopped, not Failed: the agent's reconcile retries what is
		// stopped and leaves what failed to the restart policy.
		in.state, in.message = StateStopped, "start failed: "+err.Error()
		return fmt.Errorf("start instance %s: %w", in.id, err)
	}
	in.want, in.state, in.message = true, StateRunning, ""
	p.superviseLocked(in, r)
	return nil
}

// Stop implements Runtime.
func (p *Process) Stop(ctx context.Context, id string, grace time.Duration) error {
	if p.isClosed() {
		return ErrClosed
	}
	in := p.lookup(id)
	if in == nil {
		return fmt.Errorf("stop %s: %w", id, ErrNotFound)
	}
	in.op.Lock()
	defer in.op.Unlock()
	if in.removed {
		return fmt.Errorf("stop %s: %w", id, ErrNotFound)
	}
	return p.stop(ctx, in, grace)
}

// stop ends supervision and the process; in.op is held.
func (p *Process) stop(ctx context.Context, in *instance, grace time.Duration) error {
	in.mu.Lock()
	in.want = false
	if in.cancel != nil {
		close(in.cancel)
		in.cancel = nil
	}
	r, superDone := in.cur, in.superDone
	in.mu.Unlock()
	msg := "stopped"
	if r != nil {
		desc, err := p.terminate(ctx, r, grace)
		if err != nil {
			return fmt.Errorf("stop instance %s: %w", in.id, err)
		}
		msg += " (" + desc + ")"
	}
	if superDone != nil {
		<-superDone
	}
	// Whatever the process left behind in its cgroup (a daemonised child
	// in a session of its own) goes too.
	killProcs(p.cg.procs(in.key))
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cur == r {
		in.cur = nil
	}
	in.state, in.message = StateStopped, msg
	in.exit = &exitRecord{State: in.state, Message: msg}
	_ = os.Remove(filepath.Join(in.dir, runFile))
	if err := p.saveRecord(in); err != nil {
		p.log.Warn("save instance state", "instance", in.id, "err", err)
	}
	p.log.Info("instance stopped", "instance", in.id, "how", msg)
	return nil
}

// Remove implements Runtime.
func (p *Process) Remove(ctx context.Context, id string) error {
	if p.isClosed() {
		return ErrClosed
	}
	in := p.lookup(id)
	if in == nil {
		// Nothing known, but a crash may have left pieces under its name.
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.destroy(ctx, keyOf(id), id)
	}
	in.op.Lock()
	defer in.op.Unlock()
	if in.removed {
		return nil
	}
	if err := p.stop(ctx, in, 0); err != nil {
		return err
	}
	if err := p.destroy(ctx, in.key, in.id); err != nil {
		return err
	}
	in.mu.Lock()
	in.removed = true
	in.mu.Unlock()
	p.mu.Lock()
	delete(p.insts, id)
	p.mu.Unlock()
	p.log.Info("instance removed", "instance", id)
	return nil
}

// destroy deletes every piece an instance may have: processes, cgroup,
// link, namespace, and last its state, so that a crash half-way leaves
// state for Sweep to find.
func (p *Process) destroy(ctx context.Context, key, id string) error {
	var errs []error
	if err := p.cg.remove(ctx, key); err != nil {
		errs = append(errs, err)
	}
	nsName := p.cfg.NetnsPrefix + key
	// A process that left the cgroup cannot have left the namespace.
	if pids, _ := netns.Procs(netns.Path(p.cfg.NetnsDir, nsName)); len(pids) > 0 {
		killProcs(pids)
	}
	if err := netns.DelVeth(p.cfg.HostNetns, netns.VethName(p.cfg.VethPrefix, id)); err != nil {
		errs = append(errs, err)
	}
	if err := netns.Delete(p.cfg.NetnsDir, nsName); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(filepath.Join(p.cfg.StateDir, key)); err != nil {
			errs = append(errs, fmt.Errorf("remove state: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove instance %s: %w", id, err)
	}
	return nil
}

// Status implements Runtime.
func (p *Process) Status(id string) (Status, bool) {
	in := p.lookup(id)
	if in == nil {
		return Status{}, false
	}
	return p.status(in), true
}

// List implements Runtime; instances come sorted by id.
func (p *Process) List() []Status {
	ins := p.snapshot()
	out := make([]Status, 0, len(ins))
	for _, in := range ins {
		out = append(out, p.status(in))
	}
	return out
}

func (p *Process) status(in *instance) Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	st := Status{ID: in.id, State: in.state, Address: in.addr, Restarts: in.restarts, Message: in.message}
	if in.cur == nil {
		return st
	}
	st.PID = in.cur.pid
	cpu, mem := p.cg.usage(in.key)
	now := p.clock.Now()
	if el := now.Sub(in.cpuAt); el >= minSample && cpu >= in.cpuNanos {
		in.milliCPU = int64((cpu - in.cpuNanos) * 1000 / uint64(el))
		in.cpuAt, in.cpuNanos = now, cpu
	}
	st.MilliCPU, st.MemoryBytes = in.milliCPU, mem
	return st
}

// Logs implements Runtime.
func (p *Process) Logs(id string, maxBytes int) ([]byte, bool, error) {
	in := p.lookup(id)
	if in == nil {
		return nil, false, fmt.Errorf("logs of %s: %w", id, ErrNotFound)
	}
	return tailLog(filepath.Join(in.dir, logFile), maxBytes)
}

// Close implements Runtime: supervision ends, processes run on.
func (p *Process) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// rotateLogs keeps the logs of running instances within their bound.
func (p *Process) rotateLogs() {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case <-p.clock.After(p.cfg.LogCheckInterval):
		}
		for _, in := range p.snapshot() {
			in.mu.Lock()
			if in.cur != nil {
				if err := rotateLog(filepath.Join(in.dir, logFile), p.cfg.LogMaxBytes); err != nil {
					p.log.Warn("rotate log", "instance", in.id, "err", err)
				}
			}
			in.mu.Unlock()
		}
	}
}

// EnsureBridge makes the app bridge (with its gateway address) if it is
// not there yet: the host's data plane may need it before the first
// instance starts (the VXLAN overlay is enslaved to it).
func (p *Process) EnsureBridge() error {
	return netns.EnsureBridge(p.cfg.HostNetns, p.cfg.Bridge, p.gw)
}
