package slawatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/health"
	"github.com/mecorch/mecorch/mec/lifecycle"
	"github.com/mecorch/mecorch/mec/placement"
)

// instance judges one instance's window and acts on it.
func (p *pass) instance(ctx context.Context, in *mec.AppInstance) error {
	w := p.w
	tr := w.track[in.ID]
	if tr == nil {
		tr = &track{}
		w.track[in.ID] = tr
	}
	serve, err := p.servedCells(ctx, in.Constraints)
	if err != nil {
		return fmt.Errorf("served cells: %w", err)
	}
	bound := in.Constraints.MaxLatencyNs
	li, ok := placement.Latency(w.deps.Latency, in.SiteID, serve)
	switch {
	case len(serve) == 0:
		// No UEs and no named cells: nothing to be late to.
		w.log.Debug("SLA watch: instance serves no cell", "instance", in.ID)
		return nil
	case li.WorstNs > bound:
		// Over the bound on the cells that are measured: a breach even
		// if others are unknown.
		return p.breach(ctx, in, tr, li, serve)
	case !ok:
		w.log.Info("SLA watch: latency unknown, neither breach nor within bound", "instance", in.ID, "site", in.SiteID,
			"cells", li.Cells, "boundNs", bound)
		return nil
	}
	tr.breaches, tr.oks = 0, tr.oks+1
	if tr.alarmed && tr.oks >= w.cfg.ClearWindows {
		if err := w.deps.Alarms.Clear(ctx, in.ID, CauseLatencyBoundExceeded); err != nil {
			return err
		}
		tr.alarmed = false
		w.log.Info("SLA watch: latency back within bound, alarm cleared", "instance", in.ID, "worstNs", li.WorstNs, "boundNs", bound)
	}
	if w.cfg.Improve && !tr.alarmed {
		return p.improve(ctx, in, tr, li)
	}
	return nil
}

// breach counts a window over the bound; past BreachWindows it alarms and,
// budget permitting, relocates.
func (p *pass) breach(ctx context.Context, in *mec.AppInstance, tr *track, li mec.LatencyInfo, serve []placement.CellLoad) error {
	w := p.w
	tr.oks, tr.improves = 0, 0
	tr.breaches++
	if li.Estimated > 0 && w.deps.Latency.Measure != nil {
		// A breach that rests on estimates asks the site's hosts to
		// measure the cells directly: by the time it has lasted
		// BreachWindows checks, the figures judged are measured ones.
		cells := make([]string, len(serve))
		for i, c := range serve {
			cells[i] = c.CellID
		}
		w.deps.Latency.Measure(in.SiteID, cells)
	}
	if tr.breaches < w.cfg.BreachWindows {
		return nil
	}
	bound := in.Constraints.MaxLatencyNs
	spec := health.AlarmSpec{
		ManagedObjectID:   in.ID,
		ProbableCause:     CauseLatencyBoundExceeded,
		PerceivedSeverity: health.SeverityMajor,
		EventType:         health.EventQoS,
		FaultType:         "latency",
		FaultDetails: []string{
			fmt.Sprintf("worst one-way latency %s to cell %s from site %s, bound %s", ms(li.WorstNs), li.WorstCell, in.SiteID, ms(bound)),
			fmt.Sprintf("mean %s over %d served cell(s), %d estimated", ms(li.MeanNs), li.Cells, li.Estimated),
			fmt.Sprintf("over the bound for %d consecutive window(s)", tr.breaches),
		},
	}
	if _, err := w.deps.Alarms.Raise(ctx, spec); err != nil {
		return err
	}
	tr.alarmed = true
	if why := p.budget(in, tr); why != "" {
		w.log.Warn("SLA watch: latency bound exceeded, not moved", "instance", in.ID, "reason", why, "worstNs", li.WorstNs, "boundNs", bound)
		return nil
	}
	accept := func(next mec.Decision) bool {
		n := top(next)
		return n != nil && n.WorstNs <= bound && n.WorstNs <= li.WorstNs-int64(w.cfg.Margin)
	}
	return p.relocate(ctx, in, tr, accept, "latency bound exceeded")
}

// improve counts the passes in which another site would be much closer and
// moves once there have been ImproveWindows of them in a row. It asks the
// placement with a refusing Accept (nothing changes) to learn the best
// candidate, and only when the budget would allow the move anyway.
func (p *pass) improve(ctx context.Context, in *mec.AppInstance, tr *track, li mec.LatencyInfo) error {
	w := p.w
	if p.budget(in, tr) != "" {
		tr.improves = 0
		return nil
	}
	gain := max(int64(w.cfg.ImproveMin), int64(w.cfg.ImproveFraction*float64(li.MeanNs)))
	bound := in.Constraints.MaxLatencyNs
	worth := func(next mec.Decision) bool {
		n := top(next)
		return n != nil && n.WorstNs <= bound && n.MeanNs <= li.MeanNs-gain
	}
	if tr.improves+1 < w.cfg.ImproveWindows {
		found := false
		_, err := w.deps.Lifecycle.Relocate(ctx, in.ID, lifecycle.RelocateOptions{Accept: func(next mec.Decision) bool {
			found = worth(next)
			return false
		}})
		if err != nil && !errors.Is(err, lifecycle.ErrNotBetter) && !errors.Is(err, lifecycle.ErrNoOtherHost) {
			return err
		}
		if found {
			tr.improves++
		} else {
			tr.improves = 0
		}
		return nil
	}
	return p.relocate(ctx, in, tr, worth, "a much closer site")
}

// budget says why the instance may not move now, "" when it may.
func (p *pass) budget(in *mec.AppInstance, tr *track) string {
	w := p.w
	if p.moves >= w.cfg.MaxMovesPerPass {
		return fmt.Sprintf("%d move(s) already this pass", p.moves)
	}
	if in.LastMovedAt != nil && p.now.Sub(*in.LastMovedAt) < w.cfg.MoveCooldown {
		return fmt.Sprintf("moved %s ago, cooldown %s", p.now.Sub(*in.LastMovedAt), w.cfg.MoveCooldown)
	}
	recent := tr.moves[:0]
	for _, t := range tr.moves {
		if p.now.Sub(t) < time.Hour {
			recent = append(recent, t)
		}
	}
	tr.moves = recent
	if len(recent) >= w.cfg.MaxMovesPerHour {
		return fmt.Sprintf("%d move(s) in the last hour", len(recent))
	}
	return ""
}

func (p *pass) relocate(ctx context.Context, in *mec.AppInstance, tr *track, accept func(mec.Decision) bool, why string) error {
	w := p.w
	mv, err := w.deps.Lifecycle.Relocate(ctx, in.ID, lifecycle.RelocateOptions{MoveCooldown: w.cfg.MoveCooldown, Accept: accept})
	switch {
	case errors.Is(err, lifecycle.ErrNotBetter), errors.Is(err, lifecycle.ErrNoOtherHost), errors.Is(err, lifecycle.ErrMoveCooldown):
		w.log.Warn("SLA watch: no better host, instance stays", "instance", in.ID, "reason", why, "err", err)
		tr.improves = 0
		return nil
	case err != nil:
		return err
	}
	p.moves++
	tr.moves = append(tr.moves, p.now)
	tr.breaches, tr.oks, tr.improves = 0, 0, 0
	w.log.Info("SLA watch: instance relocated", "instance", in.ID, "from", mv.From, "to", mv.To, "reason", why)
	return nil
}

// top is the chosen host's latency in a decision.
func top(d mec.Decision) *mec.LatencyInfo {
	if len(d.Top) == 0 {
		return nil
	}
	return d.Top[0].Latency
}

func ms(ns int64) string { return fmt.Sprintf("%.1f ms", float64(ns)/1e6) }

// servedCells is lifecycle's ServedCells, read once per pass for each set
// of named cells: every instance without named cells serves the cells where
// the UEs are, and reading all UE contexts once per instance would make a
// pass cost instances × UEs.
func (p *pass) servedCells(ctx context.Context, cons mec.PlacementConstraints) ([]placement.CellLoad, error) {
	key := strings.Join(cons.Cells, "\x00")
	if serve, ok := p.served[key]; ok {
		return serve, nil
	}
	serve, err := p.w.deps.Lifecycle.ServedCells(ctx, cons)
	if err != nil {
		return nil, err
	}
	if p.served == nil {
		p.served = map[string][]placement.CellLoad{}
	}
	p.served[key] = serve
	return serve, nil
}
