package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/mecorch/mecorch/latency"
	"github.com/mecorch/mecorch/latency/stamp"
	"github.com/mecorch/mecorch/mec/agentproto"
)

// ProberConfig is what the agent's latency probing needs.
type ProberConfig struct {
	// Listen is where the STAMP reflector answers (default ":862", the
	// port RFC 8762 assigns).
	Listen string
	// Mode is the sender's timestamping: "auto" (kernel stamps, user
	// space only where the kernel has none) or "user".
	Mode string
	// Timeout is how long an answer may take before the probe counts as
	// lost (default 1 s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Prober runs the host's STAMP reflector and, following mecorch's probe
// plan, a sender towards the plan's targets. Samples are summed up per
// target over the plan's window; each window's results wait in Results
// until the channel sends them.
type Prober struct {
	cfg ProberConfig
	log *slog.Logger
	ref *stamp.Reflector

	mu   sync.Mutex
	plan agentproto.ProbePlan
	// windows are keyed by kind/ID (a host and a cell may share an ID),
	// and so are the sender's targets.
	windows  map[string]*latency.Window
	sender   *stamp.Sender
	sendIntv time.Duration // the running sender's probe interval
	stopSend context.CancelFunc
	wake     chan struct{} // a new plan was set
	results  chan []agentproto.RTTResult
}

// NewProber binds the reflector's socket, so that a port in use fails the
// agent's start rather than its first probe.
func NewProber(cfg ProberConfig) (*Prober, error) {
	if cfg.Listen == "" {
		cfg.Listen = ":862"
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = stamp.ModeAuto
	case stamp.ModeAuto, stamp.ModeUser:
	default:
		return nil, fmt.Errorf("STAMP mode %q: want %s or %s", cfg.Mode, stamp.ModeAuto, stamp.ModeUser)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ref, err := stamp.NewReflector(stamp.ReflectorConfig{Listen: cfg.Listen, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("STAMP reflector on %s: %w", cfg.Listen, err)
	}
	return &Prober{
		cfg: cfg, log: cfg.Logger, ref: ref,
		windows: map[string]*latency.Window{},
		wake:    make(chan struct{}, 1),
		results: make(chan []agentproto.RTTResult, 4),
	}, nil
}

// Addr is the reflector's address, for the hello's probeAddr: its port,
// with the host part left empty when it listens on every address, so that
// mecorch fills in the address it sees the agent come from.
func (p *Prober) Addr() string {
	a, ok := p.ref.Addr().(*net.UDPAddr)
	if !ok {
		return p.ref.Addr().String()
	}
	if a.IP == nil || a.IP.IsUnspecified() {
		return fmt.Sprintf(":%d", a.Port)
	}
	return a.String()
}

// Reflected is how many probes the reflector has answered.
func (p *Prober) Reflected() uint64 { return p.ref.Counters().Reflected }

// Results delivers the windows that ended, one batch per window. A batch
// the channel does not take before the next one ends is dropped: a
// window's worth of RTTs is only worth sending fresh.
func (p *Prober) Results() <-chan []agentproto.RTTResult { return p.results }

// SetPlan replaces the probe targets. Windows of targets that stay keep
// their samples.
func (p *Prober) SetPlan(plan agentproto.ProbePlan) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.plan
	p.plan = plan
	// A window whose span or capacity no longer fits the plan starts
	// over: a ring sized for a slower probe rate would silently cover
	// only part of the span.
	resize := old.WindowMs != plan.WindowMs || windowCapacity(old) != windowCapacity(plan)
	keep := make(map[string]bool, len(plan.Targets))
	for _, t := range plan.Targets {
		k := targetKey(t.Kind, t.ID)
		keep[k] = true
		if _, ok := p.windows[k]; !ok || resize {
			p.windows[k] = latency.NewWindow(p.window(), windowCapacity(plan))
		}
	}
	for k := range p.windows {
		if !keep[k] {
			delete(p.windows, k)
		}
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// windowCapacity holds every sample of a window with room to spare.
func windowCapacity(plan agentproto.ProbePlan) int {
	if plan.IntervalMs <= 0 {
		return 256
	}
	return int(2*plan.WindowMs/plan.IntervalMs) + 16
}

func (p *Prober) window() time.Duration {
	if p.plan.WindowMs <= 0 {
		return 10 * time.Second
	}
	return time.Duration(p.plan.WindowMs) * time.Millisecond
}

// Run serves the reflector and probes until ctx ends.
func (p *Prober) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := p.ref.Run(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("STAMP reflector stopped", "err", err)
		}
	}()
	defer wg.Wait()
	defer p.stopSender()
	var (
		interval time.Duration
		tick     *time.Ticker
		tickC    <-chan time.Time
	)
	for {
		select {
		case <-ctx.Done():
			if tick != nil {
				tick.Stop()
			}
			return nil
		case <-p.wake:
			if err := p.applyPlan(ctx, &wg); err != nil {
				p.log.Error("probe plan", "err", err)
			}
			p.mu.Lock()
			w := p.window()
			p.mu.Unlock()
			if w != interval {
				if tick != nil {
					tick.Stop()
				}
				interval = w
				tick = time.NewTicker(w)
				tickC = tick.C
			}
		case now := <-tickC:
			p.flush(now)
		}
	}
}

// applyPlan starts, restarts (when the probe interval changed) or stops the
// sender for the current plan.
func (p *Prober) applyPlan(ctx context.Context, wg *sync.WaitGroup) error {
	p.mu.Lock()
	plan := p.plan
	p.mu.Unlock()
	targets := make([]stamp.Target, 0, len(plan.Targets))
	for _, t := range plan.Targets {
		targets = append(targets, stamp.Target{ID: targetKey(t.Kind, t.ID), Addr: t.Addr})
	}
	interval := time.Duration(plan.IntervalMs) * time.Millisecond
	if p.sender != nil && (len(targets) == 0 || p.sendIntv != interval) {
		p.stopSender()
	}
	if len(targets) == 0 {
		return nil
	}
	if p.sender == nil {
		s, err := stamp.NewSender(stamp.SenderConfig{Interval: interval, Timeout: p.cfg.Timeout, Mode: p.cfg.Mode, Logger: p.log}, p.add)
		if err != nil {
			return fmt.Errorf("STAMP sender: %w", err)
		}
		sctx, cancel := context.WithCancel(ctx)
		p.sender, p.stopSend, p.sendIntv = s, cancel, interval
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(sctx); err != nil && sctx.Err() == nil {
				p.log.Error("STAMP sender stopped", "err", err)
			}
		}()
	}
	p.sender.SetTargets(targets)
	return nil
}

func (p *Prober) stopSender() {
	if p.stopSend != nil {
		p.stopSend()
	}
	p.sender, p.stopSend = nil, nil
}

// add takes one sample from the sender.
func (p *Prober) add(s latency.Sample) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := p.windows[s.Target]; w != nil {
		w.Add(s)
	}
}

// verdictSlack is how late after its timeout the sender may declare a
// probe lost (its expiry ticks, scheduling).
const verdictSlack = 200 * time.Millisecond

// flush sums up the window that ended a timeout (and the sender's slack)
// ago: probes sent later may still be waiting for their answer or their
// verdict of loss, and belong to the next window, so that every probe
// counts once.
func (p *Prober) flush(now time.Time) {
	end := now.Add(-p.cfg.Timeout - verdictSlack)
	p.mu.Lock()
	out := make([]agentproto.RTTResult, 0, len(p.windows))
	for k, w := range p.windows {
		st := w.Stats(end)
		if st.Sent == 0 {
			continue
		}
		kind, id, _ := strings.Cut(k, "/")
		out = append(out, agentproto.RTTResult{Target: id, Kind: kind, Stats: st})
	}
	p.mu.Unlock()
	if len(out) == 0 {
		return
	}
	select {
	case p.results <- out:
	default:
		p.log.Debug("dropping an RTT window: the channel is not taking them")
	}
}

// targetKey names a target in the windows and to the sender: kind/ID.
func targetKey(kind, id string) string { return kind + "/" + id }
