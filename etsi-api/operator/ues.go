package operator

import (
	"net/http"

	"github.com/mecorch/mecorch/mec/uectx"
)

// WithUEs serves /api/v1/ue_cell_changes and /api/v1/ues from ues.
func WithUEs(ues *uectx.Service) Option { return func(h *handler) { h.ues = ues } }

// reportCellChange answers POST /api/v1/ue_cell_changes
// {"ueId","fromCell","toCell","time"}: the RAN (or the lab's UE
// simulator) says a UE moved; the answer is the UE's context.
func (h *handler) reportCellChange(w http.ResponseWriter, r *http.Request) {
	var c uectx.CellChange
	if err := decode(w, r, &c); err != nil {
		h.fail(w, r, err)
		return
	}
	ue, err := h.ues.Report(r.Context(), c)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	reply(w, http.StatusOK, 0, ue)
}

// listUEs answers GET /api/v1/ues[?cellId=].
func (h *handler) listUEs(w http.ResponseWriter, r *http.Request) {
	ues, err := h.ues.List(r.Context(), r.URL.Query().Get("cellId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	reply(w, http.StatusOK, 0, ues)
}

func (h *handler) getUE(w http.ResponseWriter, r *http.Request) {
	ue, err := h.ues.Get(r.Context(), r.PathValue("ueId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	reply(w, http.StatusOK, 0, ue)
}
