// Package slawatch holds placed app instances to their latency bound
// (constraints.maxLatencyNs, from the AppD's appLatency): every pass it
// computes each instance's one-way latency to the cells it serves from the
// RTT map, raises an alarm when the bound has been broken for a few windows
// in a row, and relocates the instance to a host that meets it. Hysteresis
// (consecutive windows to breach and to clear), a cooldown after a move, and
// per-instance and per-pass move budgets keep it from flapping; an optional
// improvement rule moves an instance that meets its bound only when another
// site is much closer, for several passes in a row.
package slawatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/health"
	"github.com/mecorch/mecorch/mec/lifecycle"
	"github.com/mecorch/mecorch/mec/placement"
)

// CauseLatencyBoundExceeded is the probable cause of the alarm raised on an
// instance whose latency to its served cells exceeds its bound.
const CauseLatencyBoundExceeded = "latencyBoundExceeded"

// Config tunes the watch. Zero fields take the defaults in brackets.
type Config struct {
	// Interval between passes (30 s): a few STAMP windows, so that one
	// pass sees a new measurement.
	Interval time.Duration
	// BreachWindows consecutive passes over the bound raise the alarm
	// and try a move (3); ClearWindows consecutive passes within it
	// clear the alarm (3). A pass without usable latency counts for
	// neither: it is unknown, and logged as such.
	BreachWindows, ClearWindows int
	// MoveCooldown is how long a moved instance stays put (10 min).
	MoveCooldown time.Duration
	// MaxMovesPerHour per instance (2) and MaxMovesPerPass over the fleet
	// (5) bound the migrations; a breach the budget forbids is alarmed
	// and logged, not moved.
	MaxMovesPerHour, MaxMovesPerPass int
	// Margin is how much lower than the current worst latency the new
	// host's worst must be for a breach move (1 ms), so that a move
	// buys a real gain, not noise.
	Margin time.Duration
	// Improve enables moving an instance that meets its bound when a
	// candidate's mean latency is lower by at least max(ImproveMin (2 ms),
	// ImproveFraction (0.5) of the current mean) for ImproveWindows (3)
	// consecutive passes, budget permitting. Off by default: a move
	// interrupts the app's users.
	Improve         bool
	ImproveMin      time.Duration
	ImproveFraction float64
	ImproveWindows  int
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur(&c.Interval, 30*time.Second)
	def(&c.BreachWindows, 3)
	def(&c.ClearWindows, 3)
	defDur(&c.MoveCooldown, 10*time.Minute)
	def(&c.MaxMovesPerHour, 2)
	def(&c.MaxMovesPerPass, 5)
	defDur(&c.Margin, time.Millisecond)
	defDur(&c.ImproveMin, 2*time.Millisecond)
	if !(c.ImproveFraction > 0) {
		c.ImproveFraction = 0.5
	}
	def(&c.ImproveWindows, 3)
}

// Deps are what the watch works with; all are required but Log (discarded
// when nil).
type Deps struct {
	Store     mec.Store
	Lifecycle *lifecycle.Service
	Alarms    *health.Alarms
	// Latency is the map and radio latencies placement uses (Measure is
	// not called by the watch).
	Latency placement.LatencyConfig
	Clock   mec.Clock
	Log     *slog.Logger
}

// Watch is the SLA watch. Its counters belong to one goroutine: call Run,
// or Check from one goroutine at a time.
type Watch struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	// track holds each watched instance's counters, by instance ID.
	track map[string]*track
}

// track is one instance's hysteresis and budget.
type track struct {
	breaches, oks, improves int
	alarmed                 bool
	moves                   []time.Time // relocations by the watch in the last hour
}

// New returns a watch; cfg's zero fields take their defaults.
func New(cfg Config, deps Deps) (*Watch, error) {
	if deps.Store == nil || deps.Lifecycle == nil || deps.Alarms == nil || deps.Clock == nil {
		return nil, errors.New("slawatch: store, lifecycle, alarms and clock are required")
	}
	if deps.Latency.Map == nil {
		return nil, errors.New("slawatch: a latency map is required")
	}
	cfg.defaults()
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watch{cfg: cfg, deps: deps, log: log, track: map[string]*track{}}, nil
}

// Run checks every Interval until ctx ends. A failed pass is logged and the
// next one runs: the watch must outlive a store hiccup.
func (w *Watch) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := w.Check(ctx); err != nil && ctx.Err() == nil {
				w.log.Error("SLA watch pass failed", "err", err)
			}
		}
	}
}

// Check runs one pass over the instances.
func (w *Watch) Check(ctx context.Context) error {
	var insts []mec.AppInstance
	err := w.deps.Store.View(ctx, func(tx mec.Tx) error {
		var err error
		insts, err = mec.LoadAll[mec.AppInstance](tx, mec.KindAppInstance)
		return err
	})
	if err != nil {
		return fmt.Errorf("slawatch: list instances: %w", err)
	}
	p := pass{w: w, now: w.deps.Clock(), seen: make(map[string]bool, len(insts))}
	var errs []error
	for i := range insts {
		in := &insts[i]
		if in.InstantiationState != mec.Instantiated || in.DesiredState != mec.DesiredRunning ||
			in.Constraints.MaxLatencyNs <= 0 || in.HostID == "" {
			continue
		}
		p.seen[in.ID] = true
		if err := p.instance(ctx, in); err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", in.ID, err))
		}
	}
	// Instances that went away, or no longer run under a bound: their
	// counters go, and so does an alarm on them.
	for id, tr := range w.track {
		if p.seen[id] {
			continue
		}
		if tr.alarmed {
			if err := w.deps.Alarms.Clear(ctx, id, CauseLatencyBoundExceeded); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		delete(w.track, id)
	}
	return errors.Join(errs...)
}

// pass is one Check's state: the time and the moves made so far.
type pass struct {
	w     *Watch
	now   time.Time
	moves int
	seen  map[string]bool
	// served caches the served cells by the constraints' named cells.
	served map[string][]placement.CellLoad
}
