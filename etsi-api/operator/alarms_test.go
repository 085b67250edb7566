package operator

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/health"
	"github.com/mecorch/mecorch/mec/inventory"
)

// alarmsAPI runs fn against an operator API with alarms over every store
// engine, with the alarms service to raise them with.
func alarmsAPI(t *testing.T, fn func(t *testing.T, a *api, alarms *health.Alarms, now *time.Time)) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			st := e.open(t)
			log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			now := testNow
			clock := func() time.Time { return now }
			alarms := health.NewAlarms(st, nil, clock, log)
			srv := httptest.NewServer(NewHandler(inventory.New(st, clock, log), log, WithAlarms(alarms)))
			t.Cleanup(srv.Close)
			fn(t, &api{t: t, url: srv.URL, store: st}, alarms, &now)
		})
	}
}

// wireAlarm is an alarm as a client reads it.
type wireAlarm struct {
	ID                      string     `json:"id"`
	ManagedObjectID         string     `json:"managedObjectId"`
	AlarmRaisedTime         time.Time  `json:"alarmRaisedTime"`
	AlarmClearedTime        *time.Time `json:"alarmClearedTime"`
	AlarmAcknowledgedTime   *time.Time `json:"alarmAcknowledgedTime"`
	AckState                string     `json:"ackState"`
	PerceivedSeverity       string     `json:"perceivedSeverity"`
	EventType               string     `json:"eventType"`
	ProbableCause           string     `json:"probableCause"`
	IsRootCause             *bool      `json:"isRootCause"`
	FaultDetails            []string   `json:"faultDetails"`
	RootCauseFaultyResource *struct {
		FaultyResource struct {
			ResourceID string `json:"resourceId"`
		} `json:"faultyResource"`
		FaultyResourceType string `json:"faultyResourceType"`
	} `json:"rootCauseFaultyResource"`
	Links struct {
		Self struct {
			Href string `json:"href"`
		} `json:"self"`
	} `json:"_links"`
}

func TestAlarmsAPI(t *testing.T) {
	alarmsAPI(t, func(t *testing.T, a *api, alarms *health.Alarms, now *time.Time) {
		var list []wireAlarm
		a.do("GET", "/api/v1/alarms", nil).ok(http.StatusOK, &list)
		if list == nil || len(list) != 0 {
			t.Fatalf("no alarms: %v", list)
		}
		host, err := alarms.Raise(context.Background(), health.AlarmSpec{ManagedObjectID: "h1", ProbableCause: health.CauseHostUnreachable,
			PerceivedSeverity: health.SeverityCritical, EventType: health.EventCommunications, IsRootCause: true,
			RootCauseFaultyResource: &mec.FaultyResourceInfo{FaultyResource: mec.ResourceHandle{ResourceID: "h1"}, FaultyResourceType: "COMPUTE"},
			FaultDetails:            []string{"missedHeartbeats: 3"}})
		if err != nil {
			t.Fatal(err)
		}
		*now = now.Add(time.Second)
		inst, err := alarms.Raise(context.Background(), health.AlarmSpec{ManagedObjectID: "i1", ProbableCause: health.CauseNoCapacityForReplacement,
			PerceivedSeverity: health.SeverityMajor, EventType: health.EventProcessingError})
		if err != nil {
			t.Fatal(err)
		}
		if err := alarms.Clear(context.Background(), "i1", health.CauseNoCapacityForReplacement); err != nil {
			t.Fatal(err)
		}

		// Active by default; cleared and all on request; by object.
		ids := func(query string) []string {
			var l []wireAlarm
			a.do("GET", "/api/v1/alarms"+query, nil).ok(http.StatusOK, &l)
			out := []string{}
			for _, al := range l {
				out = append(out, al.ID)
			}
			return out
		}
		for query, want := range map[string][]string{
			"":                              {host.ID},
			"?state=active":                 {host.ID},
			"?state=cleared":                {inst.ID},
			"?state=all":                    {host.ID, inst.ID},
			"?state=all&managedObjectId=i1": {inst.ID},
			"?managedObjectId=i1":           {},
		} {
			if got := ids(query); !slices.Equal(got, want) {
				t.Errorf("GET /api/v1/alarms%s = %v, want %v", query, got, want)
			}
		}
		p := a.do("GET", "/api/v1/alarms?state=open", nil).problem(http.StatusBadRequest)
		params(t, p, "state")

		var got wireAlarm
		a.do("GET", "/api/v1/alarms/"+host.ID, nil).ok(http.StatusOK, &got)
		if got.ID != host.ID || got.ManagedObjectID != "h1" || got.PerceivedSeverity != "CRITICAL" || got.EventType != "COMMUNICATIONS_ALARM" ||
			got.AckState != "UNACKNOWLEDGED" || got.ProbableCause != "hostUnreachable" || got.IsRootCause == nil || !*got.IsRootCause ||
			!got.AlarmRaisedTime.Equal(testNow) || got.RootCauseFaultyResource == nil || got.RootCauseFaultyResource.FaultyResource.ResourceID != "h1" ||
			got.Links.Self.Href != "/api/v1/alarms/"+host.ID || len(got.FaultDetails) != 1 {
			t.Errorf("alarm: %+v", got)
		}
		a.do("GET", "/api/v1/alarms/"+inst.ID, nil).ok(http.StatusOK, &got)
		if got.PerceivedSeverity != "CLEARED" || got.AlarmClearedTime == nil {
			t.Errorf("cleared alarm: %+v", got)
		}
		a.do("GET", "/api/v1/alarms/nope", nil).problem(http.StatusNotFound)

		// Acknowledge: the answer is the modifications; twice is a 409.
		var mods map[string]any
		a.do("PATCH", "/api/v1/alarms/"+host.ID, `{"ackState":"ACKNOWLEDGED"}`, "Content-Type", "application/merge-patch+json").ok(http.StatusOK, &mods)
		if len(mods) != 1 || mods["ackState"] != "ACKNOWLEDGED" {
			t.Errorf("PATCH answer: %v", mods)
		}
		a.do("GET", "/api/v1/alarms/"+host.ID, nil).ok(http.StatusOK, &got)
		if got.AckState != "ACKNOWLEDGED" || got.AlarmAcknowledgedTime == nil {
			t.Errorf("after ack: %+v", got)
		}
		a.do("PATCH", "/api/v1/alarms/"+host.ID, map[string]any{"ackState": "ACKNOWLEDGED"}).problem(http.StatusConflict)
		a.do("PATCH", "/api/v1/alarms/nope", map[string]any{"ackState": "ACKNOWLEDGED"}).problem(http.StatusNotFound)

		// Bad bodies name the field.
		for body, want := range map[string]string{
			`{"ackState":"UNACKNOWLEDGED"}`:          "ackState",
			`{"ackState":1}`:                         "ackState",
			`{}`:                                     "ackState",
			`{"ackState":null}`:                      "ackState",
			`{"ackState":"ACKNOWLEDGED","note":"x"}`: "note",
		} {
			p := a.do("PATCH", "/api/v1/alarms/"+inst.ID, body).problem(http.StatusBadRequest)
			params(t, p, want)
		}
		a.do("PATCH", "/api/v1/alarms/"+inst.ID, `{"ackState":`).problem(http.StatusBadRequest)
		a.do("PATCH", "/api/v1/alarms/"+inst.ID, `{"ackState":"ACKNOWLEDGED"}`, "Content-Type", "text/plain").problem(http.StatusUnsupportedMediaType)
		a.do("DELETE", "/api/v1/alarms/"+inst.ID, nil).problem(http.StatusMethodNotAllowed)
	})
}

// TestAlarmsNotServedWithout: a handler built without alarms has no such
// resource.
func TestAlarmsNotServedWithout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, a *api) {
		a.do("GET", "/api/v1/alarms", nil).problem(http.StatusNotFound)
	})
}
