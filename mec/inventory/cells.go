package inventory

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/mecorch/mecorch/mec"
)

// PLMN is a public land mobile network: mobile country code (3 digits) and
// mobile network code (2 or 3 digits, kept as given: "01" and "001" are
// different networks).
type PLMN struct {
	MCC string `json:"mcc"`
	MNC string `json:"mnc"`
}

// NRCGI is an NR cell global identity (MEC 012/013 Nrcgi): a PLMN and a
// 36-bit NR cell identity in 9 hex digits.
type NRCGI struct {
	PLMN     PLMN   `json:"plmn"`
	NRCellID string `json:"nrcellId"`
}

// ECGI is an E-UTRAN cell global identity (MEC 012/013 Ecgi): a PLMN and a
// 28-bit cell identity in 7 hex digits.
type ECGI struct {
	PLMN   PLMN   `json:"plmn"`
	CellID string `json:"cellId"`
}

// CellSpec is a cell as an operator registers it: exactly one of NRCGI and
// ECGI, the site whose edge serves it and, optionally, the RAN node's
// address that the agents probe for RTT. ID is optional; if set it must be
// the canonical ID the identity yields.
type CellSpec struct {
	ID         string `json:"id,omitempty"`
	NRCGI      *NRCGI `json:"nrcgi,omitempty"`
	ECGI       *ECGI  `json:"ecgi,omitempty"`
	SiteID     string `json:"siteId"`
	RANAddress string `json:"ranAddress,omitempty"`
}

// ValidateCell returns every wrong field of c.
func ValidateCell(c CellSpec) []mec.InvalidParam {
	var bad params
	switch {
	case c.NRCGI == nil && c.ECGI == nil:
		bad.add("nrcgi", "required unless ecgi is given")
		bad.add("ecgi", "required unless nrcgi is given")
	case c.NRCGI != nil && c.ECGI != nil:
		bad.add("ecgi", "must not be given together with nrcgi: a cell has one identity")
	}
	if c.NRCGI != nil {
		checkPLMN(&bad, "nrcgi.plmn", c.NRCGI.PLMN)
		if !isHex(c.NRCGI.NRCellID, 9) {
			bad.add("nrcgi.nrcellId", "must be the 36-bit NR cell identity in 9 hex digits")
		}
	}
	if c.ECGI != nil {
		checkPLMN(&bad, "ecgi.plmn", c.ECGI.PLMN)
		if !isHex(c.ECGI.CellID, 7) {
			bad.add("ecgi.cellId", "must be the 28-bit E-UTRA cell identity in 7 hex digits")
		}
	}
	if c.SiteID == "" {
		bad.add("siteId", "required")
	}
	if c.RANAddress != "" {
		if ip, err := netip.ParseAddr(c.RANAddress); err != nil || ip.Zone() != "" {
			bad.add("ranAddress", "not an IP address")
		}
	}
	if len(bad) == 0 && c.ID != "" && strings.ToLower(c.ID) != cellOf(c).ID {
		bad.add("id", "must be %q, the canonical ID of the cell's identity, or absent", cellOf(c).ID)
	}
	return bad
}

func checkPLMN(bad *params, path string, p PLMN) {
	if !isDigits(p.MCC, 3, 3) {
		bad.add(path+".mcc", "must be 3 decimal digits")
	}
	if !isDigits(p.MNC, 2, 3) {
		bad.add(path+".mnc", "must be 2 or 3 decimal digits")
	}
}

// CellID returns the canonical ID of a cell: MCC-MNC-cellIdHex, in lower
// case. It assumes ValidateCell found nothing wrong.
func CellID(c CellSpec) string { return cellOf(c).ID }

// cellOf is the stored form of a valid spec, CreatedAt aside.
func cellOf(c CellSpec) mec.Cell {
	out := mec.Cell{SiteID: c.SiteID}
	var p PLMN
	switch {
	case c.NRCGI != nil:
		out.RAT, p, out.CellID = mec.RATNR, c.NRCGI.PLMN, c.NRCGI.NRCellID
	case c.ECGI != nil:
		out.RAT, p, out.CellID = mec.RATEUTRA, c.ECGI.PLMN, c.ECGI.CellID
	}
	out.MCC, out.MNC, out.CellID = p.MCC, p.MNC, strings.ToLower(out.CellID)
	out.ID = out.MCC + "-" + out.MNC + "-" + out.CellID
	if c.RANAddress != "" {
		out.RANAddress = canonicalAddr(c.RANAddress)
	}
	return out
}

// SpecOf returns the spec that registers c, the inverse of what Create
// stores: the API renders cells in this shape.
func SpecOf(c mec.Cell) CellSpec {
	spec := CellSpec{ID: c.ID, SiteID: c.SiteID, RANAddress: c.RANAddress}
	p := PLMN{MCC: c.MCC, MNC: c.MNC}
	if c.RAT == mec.RATEUTRA {
		spec.ECGI = &ECGI{PLMN: p, CellID: c.CellID}
	} else {
		spec.NRCGI = &NRCGI{PLMN: p, NRCellID: c.CellID}
	}
	return spec
}

// CreateCell registers a cell on an existing site, under its canonical ID.
func (s *Service) CreateCell(ctx context.Context, spec CellSpec) (mec.Cell, int64, error) {
	if bad := ValidateCell(spec); len(bad) > 0 {
		return mec.Cell{}, 0, invalid("cell", bad)
	}
	c := cellOf(spec)
	c.CreatedAt = s.now()
	var ver int64
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		if err := siteMustExist(tx, c.SiteID); err != nil {
			return err
		}
		v, err := mec.Save(tx, mec.KindCell, c.ID, c, mec.MustNotExist)
		if errors.Is(err, mec.ErrExists) {
			return exists("cell", c.ID)
		}
		ver = v
		return err
	})
	if err != nil {
		return mec.Cell{}, 0, wrap(err, "create cell %q", c.ID)
	}
	s.log.Info("cell created", "cell", c.ID, "site", c.SiteID)
	return c, ver, nil
}

// GetCell returns a cell and its version. The ID's hex digits may be in
// either case.
func (s *Service) GetCell(ctx context.Context, id string) (mec.Cell, int64, error) {
	id = strings.ToLower(id)
	var c mec.Cell
	var ver int64
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		c, ver, err = loadCell(tx, id)
		return err
	})
	return c, ver, wrap(err, "get cell %q", id)
}

// ListCells returns the cells of siteID, or every cell when siteID is
// empty, ordered by ID.
func (s *Service) ListCells(ctx context.Context, siteID string) ([]mec.Cell, error) {
	var cells []mec.Cell
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		if siteID == "" {
			cells, err = mec.LoadAll[mec.Cell](tx, mec.KindCell)
		} else {
			cells, err = cellsOfSite(tx, siteID)
		}
		return err
	})
	return cells, wrap(err, "list cells")
}

// UpdateCell replaces the cell id with spec, which must carry the same
// identity (the ID is the identity: a different one is a different cell).
// ifVersion is mec.AnyVersion or the version the caller read.
func (s *Service) UpdateCell(ctx context.Context, id string, spec CellSpec, ifVersion int64) (mec.Cell, int64, error) {
	id = strings.ToLower(id)
	bad := ValidateCell(spec)
	if len(bad) == 0 && cellOf(spec).ID != id {
		field := "nrcgi"
		if spec.ECGI != nil {
			field = "ecgi"
		}
		bad = append(bad, mec.InvalidParam{Name: field, Reason: fmt.Sprintf("identifies cell %q, not %q", cellOf(spec).ID, id)})
	}
	if len(bad) > 0 {
		return mec.Cell{}, 0, invalid("cell", bad)
	}
	c := cellOf(spec)
	var ver int64
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		cur, v, err := loadCell(tx, id)
		if err != nil {
			return err
		}
		if err := checkVersion("cell", id, v, ifVersion); err != nil {
			return err
		}
		if c.SiteID != cur.SiteID {
			if err := siteMustExist(tx, c.SiteID); err != nil {
				return err
			}
		}
		c.CreatedAt = cur.CreatedAt
		if c == cur {
			ver = v
			return nil
		}
		ver, err = mec.Save(tx, mec.KindCell, id, c, v)
		return err
	})
	if err != nil {
		return mec.Cell{}, 0, wrap(err, "update cell %q", id)
	}
	return c, ver, nil
}

// DeleteCell removes a cell.
func (s *Service) DeleteCell(ctx context.Context, id string, ifVersion int64) error {
	id = strings.ToLower(id)
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		_, v, err := loadCell(tx, id)
		if err != nil {
			return err
		}
		if err := checkVersion("cell", id, v, ifVersion); err != nil {
			return err
		}
		return tx.Delete(mec.KindCell, id, v)
	})
	if err != nil {
		return wrap(err, "delete cell %q", id)
	}
	s.log.Info("cell deleted", "cell", id)
	return nil
}

// loadCell reads a cell, turning absence into a 404.
func loadCell(tx mec.Tx, id string) (mec.Cell, int64, error) {
	c, v, err := mec.Load[mec.Cell](tx, mec.KindCell, id)
	if errors.Is(err, mec.ErrNotFound) {
		return c, 0, notFound("cell", id)
	}
	return c, v, err
}

// cellsOfSite returns the cells whose SiteID is siteID.
func cellsOfSite(tx mec.Tx, siteID string) ([]mec.Cell, error) {
	all, err := mec.LoadAll[mec.Cell](tx, mec.KindCell)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(c mec.Cell) bool { return c.SiteID != siteID }), nil
}

func isDigits(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
