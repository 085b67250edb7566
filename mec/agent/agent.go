// Package agent is the reconcile loop of mec-agent, the process on every
// edge server that runs app instances. It holds the host's last desired
// state (kept on local disk, so that a restarted agent brings its
// instances back while the orchestrator is unreachable), makes the runtime
// match it, and tells the channel what to report. It knows nothing of the
// transport: the channel (etsi-api/agentclient) feeds it desired states and
// sends its reports.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/apprun"
)

// Images turns a desired instance into the path of its executable,
// fetching and unpacking its software image if it is not on disk yet.
type Images interface {
	Fetch(ctx context.Context, in agentproto.DesiredInstance) (string, error)
}

// Config is the agent's local configuration.
type Config struct {
	HostID       string
	AgentVersion string
	// StateDir keeps desired.json, the last desired state applied.
	StateDir string
	// Resync is how often the runtime is checked against the desired state
	// even when nothing was received (a crashed instance, a failed fetch).
	Resync time.Duration
	// OfflineGrace is how long a starting agent waits for the orchestrator
	// before it applies the desired state kept on disk. An agent that gets
	// through in time never starts what the orchestrator has since moved
	// elsewhere.
	OfflineGrace time.Duration
	// Restart is the restart policy of every instance.
	Restart apprun.RestartPolicy
	// Dataplane, if set, enforces the running instances' traffic rules
	// after every pass (see DATAPLANE.md); nil leaves traffic alone.
	Dataplane Dataplane
	Logger    *slog.Logger
}

// Agent applies desired states to a runtime.
type Agent struct {
	cfg    Config
	rt     apprun.Runtime
	images Images
	log    *slog.Logger

	mu       sync.Mutex
	desired  *agentproto.DesiredState // nil until one is known
	applied  int64                    // the generation the last reconcile pass completed
	failures map[string]string        // instance → why it could not be started
	busy     map[string]bool          // instances with a start, stop or remove in flight
	retryAt  map[string]time.Time     // instances whose last start/stop/remove failed: not before then
	unsaved  bool                     // desired could not be written to disk yet
	wg       sync.WaitGroup           // the starts, stops and removes in flight
	last     string                   // the last report, to tell whether it changed
	dpErr    string                   // the last Dataplane.Sync error, logged once; reconcile's goroutine only

	kick    chan struct{}
	changed chan struct{}
	online  chan struct{}
	onceOn  sync.Once
}

// New returns an agent over rt. It reads the desired state kept in
// cfg.StateDir, if any; Run applies it.
func New(cfg Config, rt apprun.Runtime, images Images) (*Agent, error) {
	if cfg.HostID == "" || cfg.StateDir == "" {
		return nil, errors.New("agent: HostID and StateDir are required")
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 5 * time.Second
	}
	if cfg.Restart == "" {
		cfg.Restart = apprun.RestartAlways
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &Agent{cfg: cfg, rt: rt, images: images, log: cfg.Logger,
		failures: map[string]string{}, busy: map[string]bool{}, retryAt: map[string]time.Time{},
		kick: make(chan struct{}, 1), changed: make(chan struct{}, 1), online: make(chan struct{})}
	ds, err := loadDesired(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if ds != nil {
		if ds.HostID != cfg.HostID {
			return nil, fmt.Errorf("agent: %s holds the desired state of host %q, not %q", cfg.StateDir, ds.HostID, cfg.HostID)
		}
		a.desired = ds
	}
	return a, nil
}

// Generation is the last desired generation the agent applied.
func (a *Agent) Generation() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied
}

// Apply takes a desired state from the orchestrator: an older generation
// than the one held is ignored; a newer one is kept on disk before it is
// acted on, so that a crash right after never loses it.
func (a *Agent) Apply(ds agentproto.DesiredState) error {
	if ds.HostID != a.cfg.HostID {
		return fmt.Errorf("desired state for host %q sent to the agent of %q", ds.HostID, a.cfg.HostID)
	}
	a.mu.Lock()
	if a.desired != nil && ds.Generation < a.desired.Generation {
		a.mu.Unlock()
		a.log.Warn("ignoring an older desired state", "generation", ds.Generation, "held", a.desired.Generation)
		return nil
	}
	// Acted on even when it cannot be kept (a full or failing disk): the
	// orchestrator sends a generation once, and the copy on disk would
	// otherwise stay older than what runs. Writing it is retried every pass.
	a.desired = &ds
	err := saveDesired(a.cfg.StateDir, ds)
	a.unsaved = err != nil
	a.mu.Unlock()
	a.onceOn.Do(func() { close(a.online) })
	a.poke(a.kick)
	if err != nil {
		return fmt.Errorf("desired state %d taken but not kept on disk (retrying): %w", ds.Generation, err)
	}
	return nil
}

// persist retries keeping the desired state on disk.
func (a *Agent) persist(ds agentproto.DesiredState) {
	err := saveDesired(a.cfg.StateDir, ds)
	a.mu.Lock()
	if a.desired != nil && a.desired.Generation == ds.Generation {
		a.unsaved = err != nil
	}
	a.mu.Unlock()
	if err != nil {
		a.log.Error("keep desired state on disk", "generation", ds.Generation, "err", err)
	}
}

// Changed signals (coalesced) that the report differs from the last one.
func (a *Agent) Changed() <-chan struct{} { return a.changed }

// Run reconciles until ctx ends: at once when a desired state arrives,
// every Resync otherwise. On start it waits up to OfflineGrace for the
// orchestrator before it falls back to the desired state on disk.
func (a *Agent) Run(ctx context.Context) error {
	if a.cfg.OfflineGrace > 0 {
		t := time.NewTimer(a.cfg.OfflineGrace)
		select {
		case <-a.online:
		case <-t.C:
			a.mu.Lock()
			if a.desired != nil {
				a.log.Warn("orchestrator unreachable: applying the desired state kept on disk", "generation", a.desired.Generation)
			}
			a.mu.Unlock()
		case <-ctx.Done():
			t.Stop()
			return nil
		}
		t.Stop()
	}
	tick := time.NewTicker(a.cfg.Resync)
	defer tick.Stop()
	for {
		a.reconcile(ctx)
		a.noteReport()
		select {
		case <-ctx.Done():
			a.wg.Wait()
			return nil
		case <-a.kick:
		case <-tick.C:
		}
	}
}

// Report is what the agent observes now, for the orchestrator.
func (a *Agent) Report() agentproto.Report {
	a.mu.Lock()
	desired := a.desired
	gen := a.applied
	failures := make(map[string]string, len(a.failures))
	for k, v := range a.failures {
		failures[k] = v
	}
	a.mu.Unlock()
	r := agentproto.Report{HostID: a.cfg.HostID, Generation: gen, AgentVersion: a.cfg.AgentVersion, Instances: []agentproto.InstanceStatus{}}
	want := map[string]agentproto.DesiredInstance{}
	if desired != nil {
		for _, in := range desired.Instances {
			want[in.ID] = in
		}
	}
	seen := map[string]bool{}
	var used agentproto.Usage
	for _, st := range a.rt.List() {
		seen[st.ID] = true
		is := agentproto.InstanceStatus{ID: st.ID, State: st.State, Message: st.Message, Restarts: st.Restarts}
		if st.Address.IsValid() {
			is.Address = st.Address.String()
		}
		if st.MilliCPU > 0 || st.MemoryBytes > 0 {
			is.Usage = &agentproto.Usage{MilliCPU: st.MilliCPU, MemoryBytes: st.MemoryBytes}
			used.MilliCPU += st.MilliCPU
			used.MemoryBytes += st.MemoryBytes
		}
		if msg, failed := failures[st.ID]; failed && st.State != agentproto.ObservedRunning {
			is.State, is.Message = agentproto.ObservedFailed, msg
		}
		r.Instances = append(r.Instances, is)
	}
	for id, in := range want {
		if seen[id] {
			continue
		}
		switch {
		case failures[id] != "":
			r.Instances = append(r.Instances, agentproto.InstanceStatus{ID: id, State: agentproto.ObservedFailed, Message: failures[id]})
		case in.State == agentproto.ObservedStopped:
			// Wanted stopped and not running: that is what stopped means,
			// also for an instance never started on this host.
			r.Instances = append(r.Instances, agentproto.InstanceStatus{ID: id, State: agentproto.ObservedStopped})
		}
	}
	sort.Slice(r.Instances, func(i, j int) bool { return r.Instances[i].ID < r.Instances[j].ID })
	if used != (agentproto.Usage{}) {
		r.Usage = &used
	}
	if dp := a.cfg.Dataplane; dp != nil {
		macs := dp.MACs()
		for i := range r.Instances {
			if m, ok := macs[r.Instances[i].ID]; ok {
				r.Instances[i].MAC = m.String()
			}
		}
		r.TrafficRuleCounters, r.DataPlane = dp.Report()
	}
	return r
}

// Logs returns the tail of an instance's log.
func (a *Agent) Logs(id string, maxBytes int) ([]byte, bool, error) {
	return a.rt.Logs(id, maxBytes)
}

// noteReport signals Changed when the report differs from the last one.
func (a *Agent) noteReport() {
	r := a.Report()
	// Usage moves all the time: it rides along with reports, it does not
	// cause one.
	for i := range r.Instances {
		r.Instances[i].Usage = nil
	}
	key := fmt.Sprint(r.Generation, r.Instances)
	a.mu.Lock()
	same := key == a.last
	a.last = key
	a.mu.Unlock()
	if !same {
		a.poke(a.changed)
	}
}

func (a *Agent) poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
