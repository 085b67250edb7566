package operator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/inventory"
)

// cellRequest is the body of POST and PUT /api/v1/cells: the cell's identity
// in the MEC 012/013 shape (nrcgi or ecgi), its site and its RAN address.
type cellRequest struct {
	ID         string           `json:"id"`
	NRCGI      *inventory.NRCGI `json:"nrcgi"`
	ECGI       *inventory.ECGI  `json:"ecgi"`
	SiteID     string           `json:"siteId"`
	RANAddress string           `json:"ranAddress"`

	RAT       json.RawMessage `json:"rat"`       // read-only: follows from nrcgi or ecgi
	CreatedAt json.RawMessage `json:"createdAt"` // read-only: set by the server
}

// cellResponse is a cell as the API shows it.
type cellResponse struct {
	ID         string           `json:"id"`
	RAT        mec.RAT          `json:"rat"`
	NRCGI      *inventory.NRCGI `json:"nrcgi,omitempty"`
	ECGI       *inventory.ECGI  `json:"ecgi,omitempty"`
	SiteID     string           `json:"siteId"`
	RANAddress string           `json:"ranAddress,omitempty"`
	CreatedAt  time.Time        `json:"createdAt"`
}

func (b cellRequest) spec() inventory.CellSpec {
	return inventory.CellSpec{ID: b.ID, NRCGI: b.NRCGI, ECGI: b.ECGI, SiteID: b.SiteID, RANAddress: b.RANAddress}
}

func (b cellRequest) readOnly() []mec.InvalidParam {
	var bad []mec.InvalidParam
	if present(b.RAT) {
		bad = append(bad, mec.InvalidParam{Name: "rat", Reason: "read-only: NR for an nrcgi, EUTRA for an ecgi"})
	}
	if present(b.CreatedAt) {
		bad = append(bad, mec.InvalidParam{Name: "createdAt", Reason: "read-only: set by the server"})
	}
	return bad
}

func cellOut(c mec.Cell) cellResponse {
	spec := inventory.SpecOf(c)
	return cellResponse{ID: c.ID, RAT: c.RAT, NRCGI: spec.NRCGI, ECGI: spec.ECGI,
		SiteID: c.SiteID, RANAddress: c.RANAddress, CreatedAt: c.CreatedAt}
}

func cellLocation(id string) string { return "/api/v1/cells/" + url.PathEscape(id) }

func (h *handler) createCell(w http.ResponseWriter, r *http.Request) {
	var body cellRequest
	if err := decode(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	if ro := body.readOnly(); len(ro) > 0 {
		h.fail(w, r, invalid("cell", merge(ro, inventory.ValidateCell(body.spec()))))
		return
	}
	c, ver, err := h.inv.CreateCell(r.Context(), body.spec())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	created(w, cellLocation(c.ID), ver, cellOut(c))
}

func (h *handler) listCells(w http.ResponseWriter, r *http.Request) {
	cells, err := h.inv.ListCells(r.Context(), r.URL.Query().Get("siteId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]cellResponse, 0, len(cells))
	for _, c := range cells {
		out = append(out, cellOut(c))
	}
	reply(w, http.StatusOK, 0, out)
}

func (h *handler) getCell(w http.ResponseWriter, r *http.Request) {
	c, ver, err := h.inv.GetCell(r.Context(), r.PathValue("cellId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	replyGet(w, r, ver, cellOut(c))
}

func (h *handler) putCell(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("cellId")
	var body cellRequest
	if err := decode(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	if ro := body.readOnly(); len(ro) > 0 {
		h.fail(w, r, invalid("cell", merge(ro, inventory.ValidateCell(body.spec()))))
		return
	}
	ifVersion, err := ifMatch(r, func() (int64, error) {
		_, v, err := h.inv.GetCell(r.Context(), id)
		return v, err
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	c, ver, err := h.inv.UpdateCell(r.Context(), id, body.spec(), ifVersion)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	reply(w, http.StatusOK, ver, cellOut(c))
}

func (h *handler) deleteCell(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("cellId")
	ifVersion, err := ifMatch(r, func() (int64, error) {
		_, v, err := h.inv.GetCell(r.Context(), id)
		return v, err
	})
	if err == nil {
		err = h.inv.DeleteCell(r.Context(), id, ifVersion)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
