package inventory

import (
	"context"
	"net/http"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

func TestCellLifecycle(t *testing.T) {
	ctx := context.Background()
	inv, _ := newTestService(t)

	_, _, err := inv.CreateCell(ctx, goodNR())
	checkNames(t, wantStatus(t, err, http.StatusUnprocessableEntity).InvalidParams, []string{"siteId"})

	mustSite(t, inv, "site-1")
	mustSite(t, inv, "site-2")
	c, v, err := inv.CreateCell(ctx, goodNR())
	if err != nil {
		t.Fatal(err)
	}
	want := mec.Cell{ID: "001-01-00000000a", RAT: mec.RATNR, MCC: "001", MNC: "01", CellID: "00000000a",
		SiteID: "site-1", RANAddress: "10.2.0.1", CreatedAt: testNow}
	if c != want || v != 1 {
		t.Errorf("created %+v at %d, want %+v at 1", c, v, want)
	}
	lte, _, err := inv.CreateCell(ctx, goodLTE())
	if err != nil || lte.ID != "310-410-00000b1" || lte.RAT != mec.RATEUTRA {
		t.Errorf("created %+v, %v", lte, err)
	}

	// The same identity in another case is the same cell.
	dup := goodNR()
	dup.NRCGI.NRCellID = "00000000a"
	_, _, err = inv.CreateCell(ctx, dup)
	wantStatus(t, err, http.StatusConflict)

	if got, _, err := inv.GetCell(ctx, "001-01-00000000A"); err != nil || got != want {
		t.Errorf("get = %+v, %v", got, err)
	}

	// Update: site and RAN address change; the identity cannot.
	move := goodNR()
	move.SiteID, move.RANAddress = "site-2", ""
	moved, v2, err := inv.UpdateCell(ctx, want.ID, move, v)
	if err != nil || moved.SiteID != "site-2" || moved.RANAddress != "" || !moved.CreatedAt.Equal(testNow) || v2 != 2 {
		t.Errorf("update = %+v at %d, %v", moved, v2, err)
	}
	_, _, err = inv.UpdateCell(ctx, want.ID, move, v)
	wantStatus(t, err, http.StatusPreconditionFailed)
	other := goodNR()
	other.NRCGI.NRCellID = "00000000b"
	_, _, err = inv.UpdateCell(ctx, want.ID, other, mec.AnyVersion)
	checkNames(t, wantStatus(t, err, http.StatusBadRequest).InvalidParams, []string{"nrcgi"})
	move.SiteID = "site-9"
	_, _, err = inv.UpdateCell(ctx, want.ID, move, mec.AnyVersion)
	wantStatus(t, err, http.StatusUnprocessableEntity)
	_, _, err = inv.UpdateCell(ctx, "310-410-00000b2", goodLTE(), mec.AnyVersion)
	checkNames(t, wantStatus(t, err, http.StatusBadRequest).InvalidParams, []string{"ecgi"})

	for site, n := range map[string]int{"": 2, "site-1": 1, "site-2": 1, "site-3": 0} {
		cells, err := inv.ListCells(ctx, site)
		if err != nil || len(cells) != n {
			t.Errorf("ListCells(%q) = %d cells, %v; want %d", site, len(cells), err, n)
		}
	}

	wantStatus(t, inv.DeleteCell(ctx, want.ID, 1), http.StatusPreconditionFailed)
	if err := inv.DeleteCell(ctx, want.ID, v2); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, inv.DeleteCell(ctx, want.ID, mec.AnyVersion), http.StatusNotFound)
}

func TestSpecOfRoundTrips(t *testing.T) {
	for _, spec := range []CellSpec{goodNR(), goodLTE()} {
		c := cellOf(spec)
		back := SpecOf(c)
		if CellID(back) != c.ID || cellOf(back) != c {
			t.Errorf("%+v → %+v → %+v", spec, c, cellOf(back))
		}
	}
}
