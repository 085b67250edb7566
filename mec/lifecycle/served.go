package lifecycle

import (
	"context"
	"fmt"
	"net/http"
	"sort"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/placement"
	"github.com/mecorch/mecorch/mec/uectx"
)

// servedCells is the latency stage's view of what an instance serves: the
// cells its constraints name (each weighted 1 plus the UEs camped on it, so
// that a named cell counts even while empty), or else every cell where UEs
// are, weighted by their number. Nothing to serve means no latency stage.
// A named cell missing from the inventory is a 422 naming the field: the
// request must change.
//
// An instance with neither a latency bound nor named cells serves nobody
// in particular: it gets no latency stage, and its placement reads no UE
// context (UEs are not tied to apps yet, so "where the UEs are" would be
// every UE for every app).
func servedCells(tx mec.Tx, cons mec.PlacementConstraints) ([]placement.CellLoad, error) {
	if cons.MaxLatencyNs <= 0 && len(cons.Cells) == 0 {
		return nil, nil
	}
	cells, err := mec.LoadAll[mec.Cell](tx, mec.KindCell)
	if err != nil {
		return nil, fmt.Errorf("load cells: %w", err)
	}
	byID := make(map[string]mec.Cell, len(cells))
	for _, c := range cells {
		byID[c.ID] = c
	}
	ues, err := mec.LoadAll[uectx.UE](tx, mec.KindUEContext)
	if err != nil {
		return nil, fmt.Errorf("load UE contexts: %w", err)
	}
	camped := make(map[string]int)
	for _, u := range ues {
		if u.CellID != "" {
			camped[u.CellID]++
		}
	}
	if len(cons.Cells) > 0 {
		var bad []mec.InvalidParam
		out := make([]placement.CellLoad, 0, len(cons.Cells))
		seen := make(map[string]bool, len(cons.Cells))
		for i, id := range cons.Cells {
			c, ok := byID[id]
			if !ok {
				bad = append(bad, mec.InvalidParam{Name: fmt.Sprintf("constraints.cells[%d]", i), Reason: fmt.Sprintf("no cell %q in the inventory", id)})
				continue
			}
			if seen[id] {
				continue
			}
			seen[id] = true
			out = append(out, placement.CellLoad{CellID: id, RAT: c.RAT, Weight: float64(1 + camped[id])})
		}
		if len(bad) > 0 {
			return nil, mec.Errorf(http.StatusUnprocessableEntity, bad, "constraints name %d cell(s) that are not in the inventory", len(bad))
		}
		return out, nil
	}
	out := make([]placement.CellLoad, 0, len(camped))
	for id, n := range camped {
		// A UE's cell removed from the inventory since: its RAT is
		// unknown, and placement assumes the slower radio for it.
		out = append(out, placement.CellLoad{CellID: id, RAT: byID[id].RAT, Weight: float64(n)})
	}
	// Map order must not leak into the decision (the weighted mean's
	// rounding, Measure's cell order).
	sort.Slice(out, func(i, j int) bool { return out[i].CellID < out[j].CellID })
	return out, nil
}

// ServedCells is servedCells for the SLA watch: what the instance serves
// now, by the rule placement used.
func (s *Service) ServedCells(ctx context.Context, cons mec.PlacementConstraints) ([]placement.CellLoad, error) {
	var out []placement.CellLoad
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		out, err = servedCells(tx, cons)
		return err
	})
	return out, err
}
