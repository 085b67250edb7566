package lifecycle_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/lifecycle"
)

// setState writes a host's state as the health monitor or an operator
// would.
func (f *fixture) setState(hostID string, st mec.HostState) {
	f.t.Helper()
	f.update(func(tx mec.Tx) error {
		h, v, err := mec.Load[mec.Host](tx, mec.KindHost, hostID)
		if err != nil {
			return err
		}
		h.State = st
		_, err = mec.Save(tx, mec.KindHost, hostID, h, v)
		return err
	})
}

// checkBooks asserts that every host's Allocated is the sum of its
// instances' reservations, that each host's index lists exactly its
// instances, and that the spread counts match the instances per site.
func checkBooks(t *testing.T, store mec.Store) {
	t.Helper()
	err := store.View(context.Background(), func(tx mec.Tx) error {
		hosts, err := mec.LoadAll[mec.Host](tx, mec.KindHost)
		if err != nil {
			return err
		}
		insts, err := mec.LoadAll[mec.AppInstance](tx, mec.KindAppInstance)
		if err != nil {
			return err
		}
		groups, err := mec.LoadAll[lifecycle.SpreadGroup](tx, mec.KindSpreadGroup)
		if err != nil {
			return err
		}
		sum, onHost, perSite := map[string]mec.Resources{}, map[string][]string{}, map[string]map[string]int{}
		for _, in := range insts {
			if in.HostID == "" {
				if in.Reserved != (mec.Resources{}) {
					t.Errorf("instance %s holds %+v on no host", in.ID, in.Reserved)
				}
				continue
			}
			sum[in.HostID] = sum[in.HostID].Add(in.Reserved)
			onHost[in.HostID] = append(onHost[in.HostID], in.ID)
			if perSite[in.Constraints.SpreadKey] == nil {
				perSite[in.Constraints.SpreadKey] = map[string]int{}
			}
			perSite[in.Constraints.SpreadKey][in.SiteID]++
		}
		for _, h := range hosts {
			if h.Allocated != sum[h.ID] {
				t.Errorf("host %s: allocated %+v, its instances hold %+v", h.ID, h.Allocated, sum[h.ID])
			}
			idx, _, err := mec.LoadOr(tx, mec.KindHostInstances, h.ID, lifecycle.HostInstances{})
			if err != nil {
				return err
			}
			want := onHost[h.ID]
			slices.Sort(want)
			if !slices.Equal(idx.Instances, want) {
				t.Errorf("host %s: index %v, instances %v", h.ID, idx.Instances, want)
			}
		}
		for _, g := range groups {
			for site, n := range g.Sites {
				if perSite[g.Key][site] != n {
					t.Errorf("spread %s: %d on site %s counted, %d there", g.Key, n, site, perSite[g.Key][site])
				}
			}
			for site, n := range perSite[g.Key] {
				if g.Sites[site] != n {
					t.Errorf("spread %s: %d on site %s, %d counted", g.Key, n, site, g.Sites[site])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeat(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	version := func() int64 {
		var v int64
		_ = f.store.View(ctx, func(tx mec.Tx) error {
			_, v, _ = mec.Load[mec.Host](tx, mec.KindHost, "h1")
			return nil
		})
		return v
	}
	f.setState("h1", mec.HostUnknown)
	if err := f.lc.Heartbeat(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	h := f.host("h1")
	if h.State != mec.HostReady || h.ReadySince == nil || !h.ReadySince.Equal(f.clock.Now()) {
		t.Fatalf("first heartbeat: state %s, readySince %v", h.State, h.ReadySince)
	}
	before := version()
	f.clock.Advance(2 * time.Second)
	if err := f.lc.Heartbeat(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != before {
		t.Fatalf("a heartbeat that changes nothing rewrote the host: version %d → %d", before, v)
	}
	var l mec.HostLiveness
	_ = f.store.View(ctx, func(tx mec.Tx) error {
		l, _, _ = mec.Load[mec.HostLiveness](tx, mec.KindHostLiveness, "h1")
		return nil
	})
	if !l.LastHeartbeat.Equal(f.clock.Now()) {
		t.Fatalf("liveness %v, want %v", l.LastHeartbeat, f.clock.Now())
	}

	// Back from NotReady: Ready again, with a new ReadySince; a report
	// does the same.
	for _, via := range []string{"heartbeat", "report"} {
		f.setState("h1", mec.HostNotReady)
		f.clock.Advance(time.Minute)
		if via == "heartbeat" {
			if err := f.lc.Heartbeat(ctx, "h1"); err != nil {
				t.Fatal(err)
			}
		} else {
			f.report("h1", nil)
		}
		h = f.host("h1")
		if h.State != mec.HostReady || h.ReadySince == nil || !h.ReadySince.Equal(f.clock.Now()) {
			t.Fatalf("%s after NotReady: state %s, readySince %v", via, h.State, h.ReadySince)
		}
	}
	// A cordon is the operator's: a heartbeat leaves it.
	f.setState("h1", mec.HostDraining)
	if err := f.lc.Heartbeat(ctx, "h1"); err != nil || f.host("h1").State != mec.HostDraining {
		t.Fatalf("heartbeat of a Draining host: %s, %v", f.host("h1").State, err)
	}
	if err := f.lc.Heartbeat(ctx, "nope"); err == nil {
		t.Fatal("heartbeat of an unknown host accepted")
	}
}

// TestEvacuate: a failed host's running instance moves, an operation in
// progress follows its instance and completes on the new host, a
// termination in progress completes, and the books balance after each step.
func TestEvacuate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Everything lands on h1 while h2 is cordoned.
	f.setState("h2", mec.HostDraining)
	running, _ := f.instantiated()
	f.report("h1", map[string]string{running.ID: lifecycle.ObservedRunning})
	pending, instOp := f.instantiated()
	leaving, _ := f.instantiated()
	f.report("h1", map[string]string{running.ID: lifecycle.ObservedRunning, leaving.ID: lifecycle.ObservedRunning})
	termOp, err := f.lc.Terminate(ctx, leaving.ID, lifecycle.TerminateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []mec.AppInstance{running, pending, leaving} {
		if in.HostID != "h1" {
			t.Fatalf("instance %s on %s, want h1", in.ID, in.HostID)
		}
	}
	checkBooks(t, f.store)

	f.setState("h1", mec.HostNotReady)
	f.setState("h2", mec.HostReady)
	gen1, gen2 := f.host("h1").DesiredGeneration, f.host("h2").DesiredGeneration
	f.ev.mu.Lock()
	f.ev.evs = nil
	f.ev.mu.Unlock()
	res, err := f.lc.Evacuate(ctx, "h1", lifecycle.EvacuateOptions{MoveCooldown: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	checkBooks(t, f.store)
	if len(res.Moved) != 2 || len(res.Terminated) != 1 || res.Terminated[0] != leaving.ID || len(res.Stuck)+len(res.Deferred)+len(res.Kept) != 0 {
		t.Fatalf("result %+v", res)
	}
	if g := f.host("h1").DesiredGeneration; g != gen1+3 {
		t.Errorf("h1 generation %d, want %d (one per instance)", g, gen1+3)
	}
	h2 := f.host("h2")
	if h2.DesiredGeneration != gen2+2 || h2.Allocated != (mec.Resources{MilliCPU: 2000, MemoryMiB: 1024}) {
		t.Errorf("h2 after: generation %d (want %d), allocated %+v", h2.DesiredGeneration, gen2+2, h2.Allocated)
	}
	in, _ := f.lc.Get(ctx, running.ID)
	if in.HostID != "h2" || in.SiteID != "s2" || in.Moves != 1 || in.LastMovedAt == nil || in.ObservedState != "" ||
		in.DesiredState != mec.DesiredRunning || in.InstantiationState != mec.Instantiated {
		t.Errorf("moved instance: %+v", in)
	}
	op, _ := f.lc.OpOcc(ctx, instOp.ID)
	if op.HostID != "h2" || op.State != mec.OpStateProcessing || op.TargetGeneration <= gen2 {
		t.Errorf("instantiate op after the move: host %s, state %s, target %d", op.HostID, op.State, op.TargetGeneration)
	}
	op, _ = f.lc.OpOcc(ctx, termOp.ID)
	in, _ = f.lc.Get(ctx, leaving.ID)
	if op.State != mec.OpStateCompleted || in.InstantiationState != mec.NotInstantiated || in.HostID != "" {
		t.Errorf("termination on the failed host: op %s, instance %s on %q", op.State, in.InstantiationState, in.HostID)
	}
	// Listeners learn of both hosts.
	f.ev.mu.Lock()
	prev := 0
	for _, ev := range f.ev.evs {
		if ev.PrevHostID == "h1" {
			prev++
		}
		if ev.Instance != nil && ev.Instance.ID == running.ID && ev.Instance.HostID != "h2" {
			t.Errorf("event of the moved instance names host %q", ev.Instance.HostID)
		}
	}
	f.ev.mu.Unlock()
	if prev < 3 {
		t.Errorf("%d events carry PrevHostID h1, want one per instance at least", prev)
	}
	ds, _ := f.lc.DesiredState(ctx, "h1")
	if len(ds.Instances) != 0 {
		t.Errorf("h1's desired state still lists %+v", ds.Instances)
	}
	// The op that followed completes when h2 reports the instance.
	f.report("h2", map[string]string{running.ID: lifecycle.ObservedRunning, pending.ID: lifecycle.ObservedRunning})
	if op, _ := f.lc.OpOcc(ctx, instOp.ID); op.State != mec.OpStateCompleted {
		t.Errorf("instantiate op after h2's report: %s", op.State)
	}
	// h1 comes back and reports the moved instances still running: they
	// are no longer its, and nothing changes for them.
	f.report("h1", map[string]string{running.ID: lifecycle.ObservedRunning, pending.ID: lifecycle.ObservedRunning})
	if in, _ := f.lc.Get(ctx, running.ID); in.HostID != "h2" {
		t.Errorf("h1's stale report moved the instance back to %s", in.HostID)
	}
	checkBooks(t, f.store)

	// A second failure within the cooldown defers; after it, the
	// instance moves again.
	f.setState("h2", mec.HostNotReady)
	res, err = f.lc.Evacuate(ctx, "h2", lifecycle.EvacuateOptions{MoveCooldown: time.Minute})
	if err != nil || len(res.Deferred) != 2 || len(res.Moved) != 0 {
		t.Fatalf("within the cooldown: %+v, %v", res, err)
	}
	f.clock.Advance(time.Minute)
	res, err = f.lc.Evacuate(ctx, "h2", lifecycle.EvacuateOptions{MoveCooldown: time.Minute, StopIfReady: true})
	if err != nil || len(res.Moved) != 2 {
		t.Fatalf("after the cooldown: %+v, %v", res, err)
	}
	if in, _ := f.lc.Get(ctx, running.ID); in.HostID != "h1" || in.Moves != 2 {
		t.Errorf("second move: on %s after %d moves", in.HostID, in.Moves)
	}
	checkBooks(t, f.store)
}

// TestEvacuateStuck: with no other host that fits, nothing moves, nothing is
// written, and the result says why.
func TestEvacuateStuck(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.setState("h2", mec.HostDraining)
	in, _ := f.instantiated()
	f.setState("h1", mec.HostNotReady)
	before := f.host("h1")
	res, err := f.lc.Evacuate(ctx, "h1", lifecycle.EvacuateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stuck) != 1 || res.Stuck[0].InstanceID != in.ID || res.Stuck[0].Reason == "" ||
		res.Stuck[0].Problem == nil || res.Stuck[0].Problem.Status != http.StatusConflict {
		t.Fatalf("result %+v", res)
	}
	if after := f.host("h1"); after.DesiredGeneration != before.DesiredGeneration || after.Allocated != before.Allocated {
		t.Fatalf("a failed move changed the host: %+v → %+v", before, after)
	}
	checkBooks(t, f.store)
	// StopIfReady leaves everything on a host that came back.
	f.setState("h1", mec.HostReady)
	res, err = f.lc.Evacuate(ctx, "h1", lifecycle.EvacuateOptions{StopIfReady: true})
	if err != nil || len(res.Kept) != 1 {
		t.Fatalf("Ready host with StopIfReady: %+v, %v", res, err)
	}
	if _, err := f.lc.Evacuate(ctx, "nope", lifecycle.EvacuateOptions{}); err == nil {
		t.Fatal("evacuated an unknown host")
	}
}
