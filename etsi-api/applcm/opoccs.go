package applcm

import (
	"encoding/json"
	"net/http"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
)

// opOccInfo is AppLcmOpOcc (6.2.2.13), plus mecorch's extension.
type opOccInfo struct {
	ID               string          `json:"id"`
	OperationState   string          `json:"operationState"`
	StateEnteredTime timeStamp       `json:"stateEnteredTime"`
	StartTime        timeStamp       `json:"startTime"`
	LcmOperation     string          `json:"lcmOperation"`
	OperationParams  json.RawMessage `json:"operationParams,omitempty"`
	// IsCancelPending is always false: a cancellation takes effect within
	// the request that asks for it.
	IsCancelPending bool `json:"isCancelPending"`
	// Error is why the operation is FAILED_TEMP or FAILED, as in the NFV
	// LCM operation occurrences AppLcmOpOcc mirrors; the v3 file has no
	// attribute for it and allows additional ones.
	Error *problem.Details `json:"error,omitempty"`
	Links opOccLinks       `json:"_links"`
	Ext   *opOccExtended   `json:"x-mecorch,omitempty"`
}

type opOccLinks struct {
	Self        link `json:"self"`
	AppInstance link `json:"appInstance"`
}

// opOccExtended is "x-mecorch" in AppLcmOpOcc: the host whose agent must
// report, and the desired-state generation that completes the operation.
type opOccExtended struct {
	HostID           string `json:"hostId,omitempty"`
	TargetGeneration int64  `json:"targetGeneration,omitempty"`
}

func toOpOccInfo(l links, op mec.LcmOpOcc) opOccInfo {
	info := opOccInfo{
		ID: op.ID, OperationState: op.State, StateEnteredTime: stamp(op.StateEnteredTime), StartTime: stamp(op.StartTime),
		LcmOperation: op.Operation, OperationParams: op.OperationParams,
		Links: opOccLinks{Self: link{l.opOcc(op.ID)}, AppInstance: link{l.instance(op.AppInstanceID)}},
	}
	if op.Error != nil {
		info.Error = &problem.Details{Type: op.Error.Type, Title: op.Error.Title, Status: op.Error.Status,
			Detail: op.Error.Detail, InvalidParams: op.Error.InvalidParams}
		if info.Error.Title == "" {
			info.Error.Title = http.StatusText(op.Error.Status)
		}
	}
	if op.HostID != "" {
		info.Ext = &opOccExtended{HostID: op.HostID, TargetGeneration: op.TargetGeneration}
	}
	return info
}

func (h *Handler) listOpOccs(w http.ResponseWriter, r *http.Request) {
	sel, err := parseSelection(r, opOccResource())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ops, err := h.lc.OpOccs(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	l := links(h.base(r))
	items := make([]any, 0, len(ops))
	for _, op := range ops {
		if auth.VisibleTo(r.Context(), op.Owner) {
			items = append(items, toOpOccInfo(l, op))
		}
	}
	h.writeSelected(w, r, sel, items)
}

func (h *Handler) getOpOcc(w http.ResponseWriter, r *http.Request) {
	op, err := h.ownedOpOcc(r.Context(), r.PathValue("appLcmOpOccId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeTagged(w, r, toOpOccInfo(links(h.base(r)), op))
}

// cancelOpOcc answers 202 with an empty body (7.4.11.3.1), although the
// operation is already FAILED_TEMP when it returns.
func (h *Handler) cancelOpOcc(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := decodeCancel(body); err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.ownedOpOcc(r.Context(), r.PathValue("appLcmOpOccId")); err != nil {
		h.fail(w, r, err)
		return
	}
	op, err := h.lc.Cancel(r.Context(), r.PathValue("appLcmOpOccId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.accepted(w, r, op)
}

// failOpOcc answers 200 with the operation, now FAILED (7.4.12.3.1). The
// request body "shall be empty"; whatever is sent is ignored.
func (h *Handler) failOpOcc(w http.ResponseWriter, r *http.Request) {
	if _, err := h.ownedOpOcc(r.Context(), r.PathValue("appLcmOpOccId")); err != nil {
		h.fail(w, r, err)
		return
	}
	op, err := h.lc.Fail(r.Context(), r.PathValue("appLcmOpOccId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toOpOccInfo(links(h.base(r)), op))
}

// retryOpOcc answers 202 with an empty body (7.4.13.3.1); the operation is
// PROCESSING again, at the same URI.
func (h *Handler) retryOpOcc(w http.ResponseWriter, r *http.Request) {
	if _, err := h.ownedOpOcc(r.Context(), r.PathValue("appLcmOpOccId")); err != nil {
		h.fail(w, r, err)
		return
	}
	op, err := h.lc.Retry(r.Context(), r.PathValue("appLcmOpOccId"))
	if err != nil {
		h.fail(w, r, noFitPaths(err))
		return
	}
	h.accepted(w, r, op)
}
