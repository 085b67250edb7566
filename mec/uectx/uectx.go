// Package uectx keeps where each UE is: its serving cell, as the RAN (or
// the lab's simulators) reports cell changes. Placement and mobility read
// it to know which cells an app's users are in. Until the ETSI location
// and RNI APIs (MEC 013/012) feed it, cell changes arrive through the
// operator API.
package uectx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// UE is one UE's context.
type UE struct {
	ID string `json:"ueId"`
	// CellID and SiteID are where the UE is now (the cell's id as the
	// inventory keys it, e.g. 262-01-0000000a1).
	CellID string    `json:"cellId"`
	SiteID string    `json:"siteId"`
	Since  time.Time `json:"since"`
	// PrevCellID is the cell it came from; Changes counts the changes.
	PrevCellID string `json:"prevCellId,omitempty"`
	Changes    int    `json:"changes"`
}

// CellChange is one report: the UE moved from one cell to another at Time.
type CellChange struct {
	UEID     string    `json:"ueId"`
	FromCell string    `json:"fromCell,omitempty"`
	ToCell   string    `json:"toCell"`
	Time     time.Time `json:"time"`
}

// Service records cell changes.
type Service struct {
	store mec.Store
	clock mec.Clock
	log   *slog.Logger
}

// New returns the service.
func New(store mec.Store, clock mec.Clock, log *slog.Logger) *Service {
	return &Service{store: store, clock: clock, log: log}
}

// maxID bounds a UE id.
const maxID = 128

// Report records a cell change. The cell moved to must be registered; a
// report older than what is recorded (reports may arrive out of order) is
// ignored and the current context returned. A fromCell that differs from
// the recorded cell is accepted: the report is the newer truth, and the
// log says so.
func (s *Service) Report(ctx context.Context, c CellChange) (UE, error) {
	var bad []mec.InvalidParam
	if c.UEID == "" || len(c.UEID) > maxID {
		bad = append(bad, mec.InvalidParam{Name: "ueId", Reason: fmt.Sprintf("must be 1 to %d characters", maxID)})
	}
	if c.ToCell == "" {
		bad = append(bad, mec.InvalidParam{Name: "toCell", Reason: "required"})
	}
	if len(bad) > 0 {
		return UE{}, mec.Errorf(http.StatusBadRequest, bad, "invalid cell change")
	}
	if c.Time.IsZero() {
		c.Time = s.clock()
	}
	c.Time = c.Time.UTC().Round(0)
	var out UE
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		cell, _, err := mec.Load[mec.Cell](tx, mec.KindCell, c.ToCell)
		if errors.Is(err, mec.ErrNotFound) {
			return mec.Errorf(http.StatusUnprocessableEntity, []mec.InvalidParam{{Name: "toCell", Reason: "no such cell in the inventory"}},
				"cell %q is not registered", c.ToCell)
		}
		if err != nil {
			return err
		}
		cur, v, err := mec.LoadOr(tx, mec.KindUEContext, c.UEID, UE{ID: c.UEID})
		if err != nil {
			return err
		}
		out = cur
		if v != mec.MustNotExist && !c.Time.After(cur.Since) {
			return nil // older than what we know
		}
		if v != mec.MustNotExist && c.FromCell != "" && c.FromCell != cur.CellID {
			s.log.Warn("cell change from another cell than recorded", "ue", c.UEID, "recorded", cur.CellID, "reportedFrom", c.FromCell, "to", c.ToCell)
		}
		if cur.CellID == cell.ID {
			return nil
		}
		next := UE{ID: c.UEID, CellID: cell.ID, SiteID: cell.SiteID, Since: c.Time, PrevCellID: cur.CellID, Changes: cur.Changes}
		if v != mec.MustNotExist {
			next.Changes++
		} else if c.FromCell != "" {
			// First heard of at a handover: where it came from is the
			// report's word.
			next.PrevCellID, next.Changes = c.FromCell, 1
		}
		if _, err := mec.Save(tx, mec.KindUEContext, c.UEID, next, v); err != nil {
			return err
		}
		out = next
		return nil
	})
	return out, err
}

// Get returns one UE's context.
func (s *Service) Get(ctx context.Context, id string) (UE, error) {
	var out UE
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		out, _, err = mec.Load[UE](tx, mec.KindUEContext, id)
		return err
	})
	if errors.Is(err, mec.ErrNotFound) {
		return UE{}, mec.Errorf(http.StatusNotFound, nil, "no UE %q", id)
	}
	return out, err
}

// List returns every UE, or those in one cell, by id.
func (s *Service) List(ctx context.Context, cellID string) ([]UE, error) {
	var out []UE
	err := s.store.View(ctx, func(tx mec.Tx) error {
		all, err := mec.LoadAll[UE](tx, mec.KindUEContext)
		for _, u := range all {
			if cellID == "" || u.CellID == cellID {
				out = append(out, u)
			}
		}
		return err
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if out == nil {
		out = []UE{}
	}
	return out, err
}
