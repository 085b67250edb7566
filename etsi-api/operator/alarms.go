package operator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/health"
)

// alarmResponse is an alarm as the API shows it: the ETSI NFV Alarm with
// its _links.
type alarmResponse struct {
	mec.Alarm
	Links alarmLinks `json:"_links"`
}

type alarmLinks struct {
	Self link `json:"self"`
}

type link struct {
	Href string `json:"href"`
}

// alarmModifications is the body of PATCH /api/v1/alarms/{alarmId} and of
// its answer (ETSI NFV SOL 002/003 AlarmModifications).
type alarmModifications struct {
	AckState health.AckState `json:"ackState"`
}

func alarmLocation(id string) string { return "/api/v1/alarms/" + url.PathEscape(id) }

func alarmOut(a mec.Alarm) alarmResponse {
	return alarmResponse{Alarm: a, Links: alarmLinks{Self: link{Href: alarmLocation(a.ID)}}}
}

// listAlarms answers GET /api/v1/alarms?state=active|cleared|all&managedObjectId=
// (state defaults to active).
func (h *handler) listAlarms(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := health.Filter{State: health.State(q.Get("state")), ManagedObjectID: q.Get("managedObjectId")}
	switch f.State {
	case "":
		f.State = health.StateActive
	case health.StateActive, health.StateCleared, health.StateAll:
	default:
		h.fail(w, r, problem.Invalid("state must be active, cleared or all, not "+strconv.Quote(string(f.State)),
			mec.InvalidParam{Name: "state", Reason: "must be active, cleared or all"}))
		return
	}
	alarms, err := h.alarms.List(r.Context(), f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]alarmResponse, 0, len(alarms))
	for _, a := range alarms {
		out = append(out, alarmOut(a))
	}
	reply(w, http.StatusOK, 0, out)
}

func (h *handler) getAlarm(w http.ResponseWriter, r *http.Request) {
	a, err := h.alarms.Get(r.Context(), r.PathValue("alarmId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	reply(w, http.StatusOK, 0, alarmOut(a))
}

// patchAlarm acknowledges an alarm. As in ETSI NFV SOL 002/003, the answer
// is the modifications made, and acknowledging an acknowledged alarm is a
// 409.
func (h *handler) patchAlarm(w http.ResponseWriter, r *http.Request) {
	var raw struct {
		AckState json.RawMessage `json:"ackState"`
	}
	if err := decode(w, r, &raw); err != nil {
		h.fail(w, r, err)
		return
	}
	if !present(raw.AckState) {
		h.fail(w, r, problem.Invalid("ackState is required", mec.InvalidParam{Name: "ackState", Reason: "required"}))
		return
	}
	var mods alarmModifications
	if err := json.Unmarshal(raw.AckState, &mods.AckState); err != nil || mods.AckState != health.Acknowledged {
		h.fail(w, r, problem.Invalid("ackState must be ACKNOWLEDGED", mec.InvalidParam{Name: "ackState", Reason: "must be ACKNOWLEDGED"}))
		return
	}
	if _, err := h.alarms.Ack(r.Context(), r.PathValue("alarmId")); err != nil {
		h.fail(w, r, err)
		return
	}
	reply(w, http.StatusOK, 0, mods)
}
