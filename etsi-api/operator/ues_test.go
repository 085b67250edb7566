package operator

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec/inventory"
	"github.com/mecorch/mecorch/mec/uectx"
)

// TestUECellChanges: a UE's cell changes are recorded with the cell's
// site; unknown cells and bad bodies are refused with the field path; an
// older report does not undo a newer one.
func TestUECellChanges(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			st := e.open(t)
			log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			clock := func() time.Time { return testNow }
			srv := httptest.NewServer(NewHandler(inventory.New(st, clock, log), log, WithUEs(uectx.New(st, clock, log))))
			t.Cleanup(srv.Close)
			a := &api{t: t, url: srv.URL, store: st}
			a.mustSite("site-1")
			a.mustSite("site-2")
			a.do("POST", "/api/v1/cells", `{"nrcgi":{"plmn":{"mcc":"262","mnc":"01"},"nrcellId":"0000000a1"},"siteId":"site-1"}`).ok(http.StatusCreated, nil)
			a.do("POST", "/api/v1/cells", `{"nrcgi":{"plmn":{"mcc":"262","mnc":"01"},"nrcellId":"0000000b1"},"siteId":"site-2"}`).ok(http.StatusCreated, nil)

			var ue uectx.UE
			a.do("POST", "/api/v1/ue_cell_changes", map[string]any{"ueId": "ue1", "toCell": "262-01-0000000a1", "time": "2026-01-01T10:00:00Z"}).ok(http.StatusOK, &ue)
			if ue.CellID != "262-01-0000000a1" || ue.SiteID != "site-1" || ue.Changes != 0 {
				t.Fatalf("first report: %+v", ue)
			}
			a.do("POST", "/api/v1/ue_cell_changes", map[string]any{"ueId": "ue1", "fromCell": "262-01-0000000a1", "toCell": "262-01-0000000b1", "time": "2026-01-01T10:00:05Z"}).ok(http.StatusOK, &ue)
			if ue.CellID != "262-01-0000000b1" || ue.SiteID != "site-2" || ue.PrevCellID != "262-01-0000000a1" || ue.Changes != 1 {
				t.Fatalf("handover: %+v", ue)
			}
			// A late report of an earlier move changes nothing.
			a.do("POST", "/api/v1/ue_cell_changes", map[string]any{"ueId": "ue1", "toCell": "262-01-0000000a1", "time": "2026-01-01T10:00:01Z"}).ok(http.StatusOK, &ue)
			if ue.CellID != "262-01-0000000b1" {
				t.Fatalf("an older report won: %+v", ue)
			}
			var list []uectx.UE
			a.do("GET", "/api/v1/ues?cellId=262-01-0000000b1", nil).ok(http.StatusOK, &list)
			if len(list) != 1 || list[0].ID != "ue1" {
				t.Fatalf("UEs in the cell: %+v", list)
			}
			a.do("GET", "/api/v1/ues/ue1", nil).ok(http.StatusOK, &ue)
			a.do("GET", "/api/v1/ues/nope", nil).problem(http.StatusNotFound)

			params(t, a.do("POST", "/api/v1/ue_cell_changes", map[string]any{"ueId": "ue1", "toCell": "262-01-ffffffff0"}).problem(http.StatusUnprocessableEntity), "toCell")
			params(t, a.do("POST", "/api/v1/ue_cell_changes", map[string]any{"toCell": ""}).problem(http.StatusBadRequest), "ueId", "toCell")
			a.do("POST", "/api/v1/ue_cell_changes", `{"ueId":"ue1","toCell":"262-01-0000000a1","bogus":1}`).problem(http.StatusBadRequest)
		})
	}
}
