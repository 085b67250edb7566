package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/apprun"
)

// defaultGrace is how long an instance that is no longer wanted at all
// (not in the desired state) gets to stop before it is killed.
const defaultGrace = 10 * time.Second

// reconcile makes one pass: what should run and does not is started, what
// runs and should not is stopped or removed; nothing else is touched.
// Starts (with their image download) and stops (with their grace period)
// run beside the pass, so that one slow instance holds up no other.
func (a *Agent) reconcile(ctx context.Context) {
	a.mu.Lock()
	ds := a.desired
	unsaved := a.unsaved
	a.mu.Unlock()
	if ds == nil {
		// Nothing is known yet (a new host, or one whose state was lost):
		// instances found running are left alone until the orchestrator
		// says what it wants.
		return
	}
	if unsaved {
		a.persist(*ds)
	}
	have := map[string]apprun.Status{}
	for _, st := range a.rt.List() {
		have[st.ID] = st
	}
	wanted := map[string]bool{}
	for _, in := range ds.Instances {
		wanted[in.ID] = true
		if a.isBusy(in.ID) || a.backingOff(in.ID) {
			continue
		}
		st, known := have[in.ID]
		grace := time.Duration(in.StopGraceSeconds) * time.Second
		switch in.State {
		case agentproto.ObservedRunning:
			// Failed means the runtime is backing off before a restart
			// (or its policy gave up): not the reconcile's to undo.
			if known && (st.State == agentproto.ObservedRunning || st.State == agentproto.ObservedFailed) {
				continue
			}
			// A new attempt: the last one's failure is history, and must
			// not fail the operation this attempt is for.
			a.setFailure(in.ID, "")
			a.async(ctx, in.ID, "start", func(ctx context.Context) error { return a.start(ctx, in) })
		case agentproto.ObservedStopped:
			a.setFailure(in.ID, "")
			if known && st.State != agentproto.ObservedStopped {
				a.async(ctx, in.ID, "stop", func(ctx context.Context) error { return a.rt.Stop(ctx, in.ID, grace) })
			}
		case agentproto.DesiredAbsentState:
			a.setFailure(in.ID, "")
			if known {
				a.async(ctx, in.ID, "remove", func(ctx context.Context) error { return a.stopAndRemove(ctx, in.ID, grace) })
			}
		}
	}
	for id := range have {
		if !wanted[id] && !a.isBusy(id) && !a.backingOff(id) {
			a.setFailure(id, "")
			a.async(ctx, id, "remove", func(ctx context.Context) error { return a.stopAndRemove(ctx, id, defaultGrace) })
		}
	}
	a.syncDataplane(ds, have)
	a.mu.Lock()
	if ds.Generation > a.applied {
		a.applied = ds.Generation
	}
	a.mu.Unlock()
}

// syncDataplane hands the data plane the instances that are wanted Running
// and run: a starting one joins on the pass its start's end triggers, a
// stopped one leaves on the next pass. The same error every pass is logged
// once, so a lasting fault does not flood the log.
func (a *Agent) syncDataplane(ds *agentproto.DesiredState, have map[string]apprun.Status) {
	if a.cfg.Dataplane == nil {
		return
	}
	st := DataplaneState{UETunnels: ds.UETunnels, Remote: ds.Remote, Peers: ds.Peers}
	for _, in := range ds.Instances {
		if in.State == agentproto.ObservedRunning && have[in.ID].State == agentproto.ObservedRunning {
			st.Running = append(st.Running, in)
		}
	}
	msg := ""
	if err := a.cfg.Dataplane.Sync(st); err != nil {
		msg = err.Error()
	}
	if msg != a.dpErr {
		if msg != "" {
			a.log.Error("data plane", "err", msg)
		} else {
			a.log.Info("data plane in sync")
		}
		a.dpErr = msg
	}
}

func (a *Agent) start(ctx context.Context, in agentproto.DesiredInstance) error {
	exe, err := a.images.Fetch(ctx, in)
	if err != nil {
		a.setFailure(in.ID, "software image: "+err.Error())
		return fmt.Errorf("fetch software image: %w", err)
	}
	spec := apprun.Spec{
		ID: in.ID, Exec: exe,
		Env:       []string{"MEC_APPD_ID=" + in.AppDID, "MEC_HOST_ID=" + a.cfg.HostID},
		MilliCPU:  in.Resources.MilliCPU,
		MemoryMiB: in.Resources.MemoryMiB,
		Restart:   a.cfg.Restart,
	}
	if err := a.rt.Start(ctx, spec); err != nil {
		a.setFailure(in.ID, "start: "+err.Error())
		return err
	}
	a.setFailure(in.ID, "")
	return nil
}

func (a *Agent) stopAndRemove(ctx context.Context, id string, grace time.Duration) error {
	if err := a.rt.Stop(ctx, id, grace); err != nil && !errors.Is(err, apprun.ErrNotFound) {
		return err
	}
	if err := a.rt.Remove(ctx, id); err != nil {
		return err
	}
	if f, ok := a.images.(interface{ Forget(string) }); ok {
		f.Forget(id)
	}
	return nil
}

// async runs a start, stop or remove in its own goroutine, marking the
// instance busy meanwhile so that the next passes leave it alone; a new
// pass follows its end so that the report catches up. A failed one is not
// tried again before the next Resync, so a lasting failure cannot spin.
func (a *Agent) async(ctx context.Context, id, what string, f func(context.Context) error) {
	a.mu.Lock()
	a.busy[id] = true
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		err := f(ctx)
		a.mu.Lock()
		delete(a.busy, id)
		if err != nil {
			a.retryAt[id] = time.Now().Add(a.cfg.Resync)
		} else {
			delete(a.retryAt, id)
		}
		a.mu.Unlock()
		switch {
		case err != nil && ctx.Err() == nil:
			a.log.Error(what+" instance", "instance", id, "err", err)
		case err == nil:
			a.log.Info("instance "+what+" done", "instance", id)
		}
		a.poke(a.kick)
	}()
}

func (a *Agent) backingOff(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.retryAt[id]
	return ok && time.Now().Before(t)
}

func (a *Agent) isBusy(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.busy[id]
}

func (a *Agent) setFailure(id, msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if msg == "" {
		delete(a.failures, id)
	} else {
		a.failures[id] = msg
	}
}
