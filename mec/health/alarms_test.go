package health_test

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/health"
)

func pathSpec(obj string) health.AlarmSpec {
	return health.AlarmSpec{ManagedObjectID: obj, ProbableCause: health.CauseTransportPathDown,
		PerceivedSeverity: health.SeverityMajor, EventType: health.EventCommunications,
		FaultType: "SCTP path down", FaultDetails: []string{"local 10.0.0.1", "remote 10.0.0.2"}}
}

func status(err error) int {
	var p *mec.Problem
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}

// TestAlarmLifecycle: raise is idempotent while active, a change updates
// the alarm, clear keeps it (cleared) under the same ID, a new raise opens
// a new alarm, ack works once.
func TestAlarmLifecycle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st mec.Store) {
		e := newEnv(t, st, defaults)
		a := e.alarms
		raised, err := a.Raise(e.ctx, pathSpec("h1/path/a-b"))
		if err != nil {
			t.Fatal(err)
		}
		if raised.ID == "" || raised.AckState != health.Unacknowledged || !raised.AlarmRaisedTime.Equal(e.clock.Now()) ||
			!raised.EventTime.Equal(e.clock.Now()) || raised.AlarmChangedTime != nil || raised.AlarmClearedTime != nil {
			t.Fatalf("raised: %+v", raised)
		}
		// The same again, later: nothing changes, nothing is published.
		e.clock.Advance(time.Second)
		again, err := a.Raise(e.ctx, pathSpec("h1/path/a-b"))
		if err != nil || again.ID != raised.ID || again.AlarmChangedTime != nil || !again.EventTime.Equal(raised.EventTime) {
			t.Fatalf("raised again: %+v, %v", again, err)
		}
		if got := e.ev.alarmEvents(); len(got) != 1 {
			t.Fatalf("events after a repeated raise: %v", got)
		}
		// Another cause on the same object is another alarm.
		other := pathSpec("h1/path/a-b")
		other.ProbableCause = "somethingElse"
		o, err := a.Raise(e.ctx, other)
		if err != nil || o.ID == raised.ID {
			t.Fatalf("other cause: %+v, %v", o, err)
		}
		// A change of severity is a change.
		e.clock.Advance(time.Second)
		spec := pathSpec("h1/path/a-b")
		spec.PerceivedSeverity = health.SeverityCritical
		changed, err := a.Raise(e.ctx, spec)
		if err != nil || changed.ID != raised.ID || changed.PerceivedSeverity != health.SeverityCritical ||
			changed.AlarmChangedTime == nil || !changed.AlarmChangedTime.Equal(e.clock.Now()) || !changed.AlarmRaisedTime.Equal(raised.AlarmRaisedTime) {
			t.Fatalf("changed: %+v, %v", changed, err)
		}
		got, err := a.Get(e.ctx, raised.ID)
		if err != nil || got.PerceivedSeverity != health.SeverityCritical {
			t.Fatalf("get active: %+v, %v", got, err)
		}

		acked, err := a.Ack(e.ctx, raised.ID)
		if err != nil || acked.AckState != health.Acknowledged || acked.AlarmAcknowledgedTime == nil {
			t.Fatalf("ack: %+v, %v", acked, err)
		}
		if _, err := a.Ack(e.ctx, raised.ID); status(err) != http.StatusConflict {
			t.Fatalf("second ack: %v", err)
		}

		e.clock.Advance(time.Second)
		if err := a.Clear(e.ctx, "h1/path/a-b", health.CauseTransportPathDown); err != nil {
			t.Fatal(err)
		}
		got, err = a.Get(e.ctx, raised.ID)
		if err != nil || got.PerceivedSeverity != health.SeverityCleared || got.AlarmClearedTime == nil ||
			!got.AlarmClearedTime.Equal(e.clock.Now()) || got.AckState != health.Acknowledged {
			t.Fatalf("cleared: %+v, %v", got, err)
		}
		// Clearing again, or what was never raised, does nothing.
		n := len(e.ev.alarmEvents())
		if err := a.Clear(e.ctx, "h1/path/a-b", health.CauseTransportPathDown); err != nil {
			t.Fatal(err)
		}
		if err := a.Clear(e.ctx, "nothing", health.CauseHostUnreachable); err != nil {
			t.Fatal(err)
		}
		if len(e.ev.alarmEvents()) != n {
			t.Fatalf("clearing nothing published %v", e.ev.alarmEvents()[n:])
		}
		// A cleared alarm can still be acknowledged; an object is not an
		// alarm.
		if err := a.Clear(e.ctx, other.ManagedObjectID, other.ProbableCause); err != nil {
			t.Fatal(err)
		}
		if got, err := a.Ack(e.ctx, o.ID); err != nil || got.AckState != health.Acknowledged || got.PerceivedSeverity != health.SeverityCleared {
			t.Fatalf("ack of a cleared alarm: %+v, %v", got, err)
		}
		if _, err := a.Ack(e.ctx, other.ManagedObjectID); status(err) != http.StatusNotFound {
			t.Fatalf("ack of an object ID: %v", err)
		}
		n = len(e.ev.alarmEvents())

		// Raised again: a new alarm; the cleared one stays.
		fresh, err := a.Raise(e.ctx, pathSpec("h1/path/a-b"))
		if err != nil || fresh.ID == raised.ID || fresh.AckState != health.Unacknowledged {
			t.Fatalf("raised after clear: %+v, %v", fresh, err)
		}
		ids := func(f health.Filter) []string {
			as, err := a.List(e.ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, al := range as {
				out = append(out, al.ID)
			}
			return out
		}
		if got := ids(health.Filter{ManagedObjectID: "h1/path/a-b"}); !slices.Equal(got, []string{fresh.ID}) {
			t.Errorf("active of the object: %v", got)
		}
		if got := ids(health.Filter{State: health.StateCleared}); !slices.Equal(got, []string{raised.ID, o.ID}) {
			t.Errorf("cleared: %v", got)
		}
		if got := ids(health.Filter{State: health.StateAll, ProbableCause: health.CauseTransportPathDown}); !slices.Equal(got, []string{raised.ID, fresh.ID}) {
			t.Errorf("all of the cause, oldest first: %v", got)
		}
		want := []string{"AlarmNotification:transportPathDown:MAJOR", "AlarmNotification:somethingElse:MAJOR",
			"AlarmNotification:transportPathDown:CRITICAL", "AlarmClearedNotification:transportPathDown:CLEARED",
			"AlarmClearedNotification:somethingElse:CLEARED", "AlarmNotification:transportPathDown:MAJOR"}
		if got := e.ev.alarmEvents(); !slices.Equal(got, want) {
			t.Errorf("events %v, want %v", got, want)
		}

		for _, id := range []string{"nope", "", raised.ID[:24], raised.ID + "x", "\x00"} {
			if _, err := a.Get(e.ctx, id); !errors.Is(err, mec.ErrNotFound) || status(err) != http.StatusNotFound {
				t.Errorf("get %q: %v", id, err)
			}
		}
		for _, bad := range []health.AlarmSpec{
			{ProbableCause: "x", PerceivedSeverity: health.SeverityMajor, EventType: health.EventQoS},
			{ManagedObjectID: "x", PerceivedSeverity: health.SeverityMajor, EventType: health.EventQoS},
			{ManagedObjectID: "x", ProbableCause: "x", PerceivedSeverity: health.SeverityCleared, EventType: health.EventQoS},
			{ManagedObjectID: "x", ProbableCause: "x", PerceivedSeverity: health.SeverityMajor, EventType: "BOGUS"},
		} {
			if _, err := a.Raise(e.ctx, bad); err == nil {
				t.Errorf("raised %+v", bad)
			}
		}
	})
}

// TestAlarmPrune: cleared alarms past the retention go, on the monitor's
// pass; active ones and recent cleared ones stay.
func TestAlarmPrune(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st mec.Store) {
		e := newEnv(t, st, health.Config{ClearedRetention: time.Hour})
		old, _ := e.alarms.Raise(e.ctx, pathSpec("old"))
		if err := e.alarms.Clear(e.ctx, "old", health.CauseTransportPathDown); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(30 * time.Minute)
		recent, _ := e.alarms.Raise(e.ctx, pathSpec("recent"))
		if err := e.alarms.Clear(e.ctx, "recent", health.CauseTransportPathDown); err != nil {
			t.Fatal(err)
		}
		active, _ := e.alarms.Raise(e.ctx, pathSpec("active"))
		e.clock.Advance(31 * time.Minute)
		e.check()
		if _, err := e.alarms.Get(e.ctx, old.ID); !errors.Is(err, mec.ErrNotFound) {
			t.Errorf("old cleared alarm kept: %v", err)
		}
		for _, id := range []string{recent.ID, active.ID} {
			if _, err := e.alarms.Get(e.ctx, id); err != nil {
				t.Errorf("alarm %s pruned: %v", id, err)
			}
		}
	})
}
