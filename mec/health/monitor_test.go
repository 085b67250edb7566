package health_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/health"
	"github.com/mecorch/mecorch/mec/lifecycle"
)

// defaults: a 2s heartbeat, 3 missed make a host NotReady (silence longer
// than 6s), moves at once, 60s move cooldown, 30s ready hold.
var defaults = health.Config{}

// TestHostLostAndBack follows one host failure through: silence, NotReady
// and its alarm, the instances moved (an operation in progress follows its
// instance and completes on the new host; a termination in progress
// completes), the host's return (alarm cleared, its desired state without
// the moved instances) and the hold on new placements that follows it.
func TestHostLostAndBack(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st mec.Store) {
		e := newEnv(t, st, defaults)
		e.beat("h1", "h2")
		// Everything lands on h1 while h2 is cordoned.
		e.setState("h2", mec.HostDraining)
		running, _ := e.instantiate()
		pending, instOp := e.instantiate()
		leaving, _ := e.instantiate()
		e.report("h1", map[string]string{running.ID: lifecycle.ObservedRunning, leaving.ID: lifecycle.ObservedRunning})
		termOp, err := e.lc.Terminate(e.ctx, leaving.ID, lifecycle.TerminateRequest{})
		if err != nil {
			t.Fatal(err)
		}
		e.setState("h2", mec.HostReady)
		if e.op(instOp.ID).State != mec.OpStateProcessing || e.instance(running.ID).HostID != "h1" {
			t.Fatal("setup: want a running and a pending instance on h1")
		}
		gen1, gen2 := e.host("h1").DesiredGeneration, e.host("h2").DesiredGeneration

		// h1 falls silent; h2 keeps beating. 6s of silence is still
		// within 3 × 2s.
		e.run(6*time.Second, "h2")
		if h := e.host("h1"); h.State != mec.HostReady {
			t.Fatalf("h1 %s after 6s of silence", h.State)
		}
		if as := e.alarmsOf("h1", health.CauseHostUnreachable, health.StateAll); len(as) != 0 {
			t.Fatalf("alarm before the limit: %+v", as)
		}
		e.run(time.Second, "h2")
		h1 := e.host("h1")
		if h1.State != mec.HostNotReady || h1.LastNotReady == nil || !h1.LastNotReady.Equal(e.clock.Now()) {
			t.Fatalf("h1 after 7s of silence: %s, lastNotReady %v", h1.State, h1.LastNotReady)
		}
		al := e.active("h1", health.CauseHostUnreachable)
		if al.PerceivedSeverity != health.SeverityCritical || al.EventType != health.EventCommunications ||
			al.AckState != health.Unacknowledged || !al.IsRootCause || !al.AlarmRaisedTime.Equal(e.clock.Now()) {
			t.Errorf("host alarm: %+v", al)
		}
		details := strings.Join(al.FaultDetails, "; ")
		if !strings.Contains(details, "missedHeartbeats: 3") || !strings.Contains(details, "lastHeartbeat: 2026-05-04T10:00:00Z") {
			t.Errorf("host alarm details: %q", details)
		}

		// Moved at once: both generations bumped, the books balanced.
		e.checkBooks()
		for _, id := range []string{running.ID, pending.ID} {
			if in := e.instance(id); in.HostID != "h2" || in.Moves != 1 {
				t.Errorf("instance %s on %s after %d moves, want h2", id, in.HostID, in.Moves)
			}
		}
		if g := e.host("h1").DesiredGeneration; g != gen1+3 {
			t.Errorf("h1 generation %d, want %d", g, gen1+3)
		}
		h2 := e.host("h2")
		if h2.DesiredGeneration != gen2+2 {
			t.Errorf("h2 generation %d, want %d", h2.DesiredGeneration, gen2+2)
		}
		op := e.op(instOp.ID)
		if op.HostID != "h2" || op.State != mec.OpStateProcessing || op.TargetGeneration <= gen2 || op.TargetGeneration > h2.DesiredGeneration {
			t.Errorf("pending instantiation: host %s, %s, target %d (h2 at %d)", op.HostID, op.State, op.TargetGeneration, h2.DesiredGeneration)
		}
		// The termination h1 never confirmed is complete.
		if op := e.op(termOp.ID); op.State != mec.OpStateCompleted {
			t.Errorf("termination on the dead host: %s", op.State)
		}
		if in := e.instance(leaving.ID); in.InstantiationState != mec.NotInstantiated || in.HostID != "" {
			t.Errorf("terminated instance: %s on %q", in.InstantiationState, in.HostID)
		}
		if ids := e.desired("h1"); len(ids) != 0 {
			t.Errorf("h1's desired state lists %v", ids)
		}

		// h2's agent starts both: the instantiation completes there.
		e.report("h2", map[string]string{running.ID: lifecycle.ObservedRunning, pending.ID: lifecycle.ObservedRunning})
		if op := e.op(instOp.ID); op.State != mec.OpStateCompleted {
			t.Errorf("instantiation after h2's report: %s", op.State)
		}
		if in := e.instance(pending.ID); in.InstantiationState != mec.Instantiated || in.OperationalState != mec.OpStarted {
			t.Errorf("instance after h2's report: %s/%s", in.InstantiationState, in.OperationalState)
		}

		// h1 comes back: Ready, alarm cleared on the next pass, and its
		// desired state still without what moved (its agent stops them).
		e.run(10*time.Second, "h2")
		e.beat("h1")
		if h := e.host("h1"); h.State != mec.HostReady || h.ReadySince == nil {
			t.Fatalf("h1 after its heartbeat: %s", h.State)
		}
		e.check()
		if as := e.alarmsOf("h1", health.CauseHostUnreachable, health.StateActive); len(as) != 0 {
			t.Fatalf("host alarm still active: %+v", as)
		}
		cleared := e.alarmsOf("h1", health.CauseHostUnreachable, health.StateCleared)
		if len(cleared) != 1 || cleared[0].ID != al.ID || cleared[0].AlarmClearedTime == nil || cleared[0].PerceivedSeverity != health.SeverityCleared {
			t.Fatalf("cleared alarms: %+v", cleared)
		}
		e.report("h1", map[string]string{running.ID: lifecycle.ObservedRunning, pending.ID: lifecycle.ObservedRunning})
		if ids := e.desired("h1"); len(ids) != 0 {
			t.Errorf("h1's desired state after its return lists %v", ids)
		}
		if in := e.instance(running.ID); in.HostID != "h2" {
			t.Errorf("h1's stale report took the instance back: %s", in.HostID)
		}
		e.checkBooks()
		if got := e.ev.alarmEvents(); !slices.Equal(got, []string{"AlarmNotification:hostUnreachable:CRITICAL", "AlarmClearedNotification:hostUnreachable:CLEARED"}) {
			t.Errorf("alarm events: %v", got)
		}

		// Flap guard: for 30s after its return h1 takes nothing new, even
		// though spreading would send the next replica there.
		held, _ := e.instantiate()
		if held.HostID != "h2" {
			t.Fatalf("new placement on h1 %v after its return", e.clock.Now().Sub(*e.host("h1").ReadySince))
		}
		e.run(29*time.Second, "h1", "h2")
		if in, _ := e.instantiate(); in.HostID != "h2" {
			t.Fatal("new placement on h1 29s after its return")
		}
		e.run(time.Second, "h1", "h2")
		if in, _ := e.instantiate(); in.HostID != "h1" {
			t.Fatalf("after the hold the replica went to %s, want h1", in.HostID)
		}
		e.checkBooks()
	})
}

// TestRestartKeepsFleetReady: after mecorch was down, every stored heartbeat
// is old; a new monitor counts silence from its own start.
func TestRestartKeepsFleetReady(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st mec.Store) {
		e := newEnv(t, st, defaults)
		e.beat("h1", "h2")
		e.clock.Advance(time.Hour) // mecorch down for an hour
		e.mon = e.newMonitor()
		e.check()
		e.run(6*time.Second, "h2") // h2's agent reconnected; h1's not yet
		for _, id := range []string{"h1", "h2"} {
			if h := e.host(id); h.State != mec.HostReady {
				t.Fatalf("%s %s within 6s of the restart", id, h.State)
			}
		}
		if as, _ := e.alarms.List(e.ctx, health.Filter{State: health.StateAll}); len(as) != 0 {
			t.Fatalf("alarms after the restart: %+v", as)
		}
		e.run(time.Second, "h2")
		if h1, h2 := e.host("h1"), e.host("h2"); h1.State != mec.HostNotReady || h2.State != mec.HostReady {
			t.Fatalf("7s after the restart: h1 %s, h2 %s", h1.State, h2.State)
		}
		// Missed heartbeats are counted from the real last one.
		details := strings.Join(e.active("h1", health.CauseHostUnreachable).FaultDetails, "; ")
		if !strings.Contains(details, "missedHeartbeats: 1803") {
			t.Errorf("details: %q", details)
		}
	})
}

// TestNoCapacity: an instance no host can take stays, with an alarm
// correlated to the host's; the alarm clears when the host comes back, and
// when, on a second failure, a new host with room appears and takes it.
func TestNoCapacity(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st mec.Store) {
		e := newEnv(t, st, defaults)
		e.beat("h1", "h2")
		e.setState("h2", mec.HostDraining)
		in, _ := e.instantiate()
		e.report("h1", map[string]string{in.ID: lifecycle.ObservedRunning})

		e.run(7*time.Second, "h2")
		if e.host("h1").State != mec.HostNotReady || e.instance(in.ID).HostID != "h1" {
			t.Fatalf("h1 %s, instance on %s", e.host("h1").State, e.instance(in.ID).HostID)
		}
		hostAlarm := e.active("h1", health.CauseHostUnreachable)
		al := e.active(in.ID, health.CauseNoCapacityForReplacement)
		if al.PerceivedSeverity != health.SeverityMajor || al.EventType != health.EventProcessingError ||
			!slices.Equal(al.CorrelatedAlarmIDs, []string{hostAlarm.ID}) || al.RootCauseFaultyResource == nil ||
			al.RootCauseFaultyResource.FaultyResource.ResourceID != "h1" {
			t.Errorf("no-capacity alarm: %+v", al)
		}
		if d := strings.Join(al.FaultDetails, "; "); !strings.Contains(d, "no host fits") {
			t.Errorf("details without the placement's reason: %q", d)
		}
		e.checkBooks()
		// Each pass tries again; the alarm stays one, unchanged.
		e.run(3*time.Second, "h2")
		if again := e.active(in.ID, health.CauseNoCapacityForReplacement); again.ID != al.ID || again.AlarmChangedTime != nil {
			t.Errorf("alarm after more passes: %+v", again)
		}

		// h1 comes back: both alarms clear, the instance never moved.
		e.beat("h1")
		e.check()
		if as := e.alarmsOf("", "", health.StateActive); len(as) != 0 {
			t.Fatalf("active alarms after h1's return: %+v", as)
		}
		if got := e.instance(in.ID); got.HostID != "h1" || got.Moves != 0 {
			t.Fatalf("instance on %s after %d moves", got.HostID, got.Moves)
		}

		// h1 fails again: a new alarm; then h3 registers and its agent
		// comes up (Ready for the first time: not held), and takes it.
		e.run(7*time.Second, "h2")
		second := e.active(in.ID, health.CauseNoCapacityForReplacement)
		if second.ID == al.ID {
			t.Error("a new failure reuses the cleared alarm's ID")
		}
		e.addHost("h3", "s3")
		e.beat("h3")
		e.run(time.Second, "h2", "h3")
		if got := e.instance(in.ID); got.HostID != "h3" || got.Moves != 1 {
			t.Fatalf("instance on %s after %d moves, want h3", got.HostID, got.Moves)
		}
		if as := e.alarmsOf(in.ID, health.CauseNoCapacityForReplacement, health.StateActive); len(as) != 0 {
			t.Fatalf("no-capacity alarm still active: %+v", as)
		}
		if as := e.alarmsOf(in.ID, health.CauseNoCapacityForReplacement, health.StateCleared); len(as) != 2 {
			t.Fatalf("cleared no-capacity alarms: %d, want 2", len(as))
		}
		e.active("h1", health.CauseHostUnreachable) // h1 is still down
		e.checkBooks()
	})
}

// TestMoveCooldown: an instance moved off one failed host is not moved
// again within MoveCooldown when its new host fails too.
func TestMoveCooldown(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st mec.Store) {
		e := newEnv(t, st, defaults)
		e.addHost("h3", "s3")
		e.beat("h1", "h2", "h3")
		e.setState("h2", mec.HostDraining)
		e.setState("h3", mec.HostDraining)
		in, _ := e.instantiate()
		e.setState("h2", mec.HostReady)

		e.run(7*time.Second, "h2", "h3") // h1 fails: the instance moves to h2
		if got := e.instance(in.ID); got.HostID != "h2" {
			t.Fatalf("first move to %s, want h2", got.HostID)
		}
		movedAt := e.clock.Now()
		e.setState("h3", mec.HostReady)
		e.run(7*time.Second, "h3") // h2 fails 7s after the move
		if e.host("h2").State != mec.HostNotReady {
			t.Fatal("h2 not NotReady")
		}
		e.run(time.Duration(52)*time.Second, "h3")
		if got := e.instance(in.ID); got.HostID != "h2" || got.Moves != 1 {
			t.Fatalf("%v after the first move: on %s after %d moves", e.clock.Now().Sub(movedAt), got.HostID, got.Moves)
		}
		// Held, not stuck: no alarm for it.
		if as := e.alarmsOf(in.ID, "", health.StateAll); len(as) != 0 {
			t.Errorf("alarms on the held instance: %+v", as)
		}
		e.run(time.Second, "h3")
		if got := e.instance(in.ID); got.HostID != "h3" || got.Moves != 2 {
			t.Fatalf("after the cooldown: on %s after %d moves, want h3", got.HostID, got.Moves)
		}
		e.checkBooks()
	})
}

// TestReplaceAfter: a NotReady host keeps its instances for ReplaceAfter.
func TestReplaceAfter(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st mec.Store) {
		e := newEnv(t, st, health.Config{ReplaceAfter: 10 * time.Second})
		e.beat("h1", "h2")
		e.setState("h2", mec.HostDraining)
		in, _ := e.instantiate()
		e.setState("h2", mec.HostReady)
		e.run(7*time.Second, "h2")
		if e.host("h1").State != mec.HostNotReady {
			t.Fatal("h1 not NotReady")
		}
		e.run(9*time.Second, "h2")
		if got := e.instance(in.ID); got.HostID != "h1" {
			t.Fatalf("moved %v after NotReady", 9*time.Second)
		}
		e.run(time.Second, "h2")
		if got := e.instance(in.ID); got.HostID != "h2" {
			t.Fatalf("not moved 10s after NotReady: on %s", got.HostID)
		}
	})
}

// TestConfig: defaults, and refusals of what cannot work.
func TestConfig(t *testing.T) {
	c := health.Config{}.WithDefaults()
	want := health.Config{HeartbeatInterval: 2 * time.Second, MissedHeartbeats: 3, MoveCooldown: time.Minute,
		ReadyHold: 30 * time.Second, CheckInterval: time.Second, ClearedRetention: 7 * 24 * time.Hour}
	if c != want {
		t.Fatalf("defaults %+v, want %+v", c, want)
	}
	if h := (health.Config{ReadyHold: -1}).PlacementHold(); h != 0 {
		t.Errorf("negative ReadyHold gives a placement hold of %v", h)
	}
	e := newEnv(t, openBolt(t), defaults)
	for _, bad := range []health.Config{{MissedHeartbeats: -1}, {HeartbeatInterval: -time.Second}, {CheckInterval: -time.Second}, {ReplaceAfter: -time.Second}} {
		if _, err := health.New(bad, e.store, e.lc, e.alarms, e.clock.Now, e.log); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
}
