package lifecycle_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/lifecycle"
	"github.com/mecorch/mecorch/mec/placement"
	"github.com/mecorch/mecorch/mec/store/boltstore"
)

// fakeClock is a settable clock: expiry is tested without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// events records what the service published.
type events struct {
	mu  sync.Mutex
	evs []mec.Event
}

func (e *events) Publish(ev mec.Event) { e.mu.Lock(); defer e.mu.Unlock(); e.evs = append(e.evs, ev) }
func (e *events) opStates() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var s []string
	for _, ev := range e.evs {
		if ev.OpOcc != nil {
			s = append(s, ev.OpOcc.Operation+":"+ev.OpOcc.State)
		}
	}
	return s
}

type fixture struct {
	t     *testing.T
	store mec.Store
	lc    *lifecycle.Service
	clock *fakeClock
	ev    *events
}

// newFixture: a site with two Ready hosts of 4 vCPU / 4 GiB and an enabled,
// onboarded package whose instances need 1 vCPU / 512 MiB.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := boltstore.Open(t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	clk := &fakeClock{now: time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)}
	ev := &events{}
	f := &fixture{t: t, store: s, clock: clk, ev: ev}
	f.lc = lifecycle.New(lifecycle.Config{OpTimeout: time.Minute}, s, placement.Default(placement.Options{Clock: clk.Now}), ev, clk.Now,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	appD, _ := json.Marshal(map[string]any{"appDId": "app-1", "appName": "echo", "appProvider": "p", "appSoftVersion": "1", "appDVersion": "1",
		"virtualComputeDescriptor": map[string]any{"virtualComputeDescId": "vc", "virtualCpu": map[string]any{"numVirtualCpu": 1},
			"virtualMemory": map[string]any{"virtualMemSize": 512}},
		"appTrafficRule": []any{map[string]any{"trafficRuleId": "r1", "filterType": "FLOW", "priority": 3, "action": "FORWARD_AS_IS",
			"trafficFilter": []any{map[string]any{"dstPort": []string{"7"}, "protocol": []string{"UDP"}, "qCI": 9}}}},
		"appDNSRule": []any{map[string]any{"dnsRuleId": "d1", "domainName": "echo.mec.example", "ipAddressType": "IP_V4",
			"ipAddress": "10.0.0.7", "ttl": 60}}})
	f.update(func(tx mec.Tx) error {
		if _, err := mec.Save(tx, mec.KindSite, "s1", mec.Site{ID: "s1", Name: "one", Zone: "z1"}, mec.MustNotExist); err != nil {
			return err
		}
		if _, err := mec.Save(tx, mec.KindSite, "s2", mec.Site{ID: "s2", Name: "two", Zone: "z2"}, mec.MustNotExist); err != nil {
			return err
		}
		for _, h := range []mec.Host{{ID: "h1", SiteID: "s1"}, {ID: "h2", SiteID: "s2"}} {
			h.State, h.Capacity = mec.HostReady, mec.Resources{MilliCPU: 4000, MemoryMiB: 4096, StorageGB: 10}
			if _, err := mec.Save(tx, mec.KindHost, h.ID, h, mec.MustNotExist); err != nil {
				return err
			}
		}
		_, err := mec.Save(tx, mec.KindAppPackage, "pkg-1", mec.AppPackage{ID: "pkg-1", AppDID: "app-1", AppName: "echo",
			OnboardingState: mec.PkgOnboarded, OperationalState: mec.PkgEnabled, AppD: appD}, mec.MustNotExist)
		return err
	})
	return f
}

func (f *fixture) update(fn func(mec.Tx) error) {
	f.t.Helper()
	if err := f.store.Update(context.Background(), fn); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) host(id string) mec.Host {
	f.t.Helper()
	var h mec.Host
	err := f.store.View(context.Background(), func(tx mec.Tx) error {
		var err error
		h, _, err = mec.Load[mec.Host](tx, mec.KindHost, id)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

func (f *fixture) report(hostID string, states map[string]string) {
	f.t.Helper()
	r := lifecycle.HostReport{HostID: hostID, Generation: f.host(hostID).DesiredGeneration}
	for id, st := range states {
		r.Instances = append(r.Instances, lifecycle.InstanceStatus{ID: id, State: st})
	}
	if err := f.lc.ReportStatus(context.Background(), r); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) instantiated() (mec.AppInstance, mec.LcmOpOcc) {
	f.t.Helper()
	ctx := context.Background()
	in, err := f.lc.Create(ctx, lifecycle.CreateRequest{AppDID: "app-1"})
	if err != nil {
		f.t.Fatal(err)
	}
	op, err := f.lc.Instantiate(ctx, in.ID, lifecycle.InstantiateRequest{})
	if err != nil {
		f.t.Fatal(err)
	}
	in, _ = f.lc.Get(ctx, in.ID)
	return in, op
}

func status(err error) int {
	var p *mec.Problem
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}

func TestInstantiateReservesAndCompletesOnReport(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	in, op := f.instantiated()
	if op.State != mec.OpStateProcessing || op.Operation != mec.OpInstantiate {
		t.Fatalf("op = %s %s, want INSTANTIATE PROCESSING", op.Operation, op.State)
	}
	h := f.host(in.HostID)
	if h.Allocated != (mec.Resources{MilliCPU: 1000, MemoryMiB: 512}) || h.DesiredGeneration != 1 || op.TargetGeneration != 1 {
		t.Fatalf("host after placement: allocated %+v gen %d; op target %d", h.Allocated, h.DesiredGeneration, op.TargetGeneration)
	}
	ds, err := f.lc.DesiredState(ctx, in.HostID)
	if err != nil || ds.Generation != 1 || len(ds.Instances) != 1 || ds.Instances[0].State != mec.DesiredRunning {
		t.Fatalf("desired state = %+v, %v", ds, err)
	}
	// The app's traffic and DNS rules travel with it, the v2 action name
	// in its v3 spelling, and pass the protocol's checks.
	di := ds.Instances[0]
	if len(di.TrafficRules) != 1 || di.TrafficRules[0].ID != "r1" || di.TrafficRules[0].Action != agentproto.ActionForwardEncapsulated ||
		di.TrafficRules[0].Priority != 3 || len(di.TrafficRules[0].Filters) != 1 || *di.TrafficRules[0].Filters[0].QCI != 9 ||
		len(di.DNSRules) != 1 || di.DNSRules[0].IPAddress != "10.0.0.7" || di.DNSRules[0].TTL != 60 {
		t.Fatalf("rules in the desired state: %+v %+v", di.TrafficRules, di.DNSRules)
	}
	if fr, err := agentproto.NewFrame(agentproto.TypeDesired, 1, 0, ds); err != nil {
		t.Fatal(err)
	} else if err := agentproto.DecodeBody(fr, &agentproto.DesiredState{}); err != nil {
		t.Fatalf("the desired state does not pass the protocol's checks: %v", err)
	}
	// A report of an older generation settles nothing.
	if err := f.lc.ReportStatus(ctx, lifecycle.HostReport{HostID: in.HostID, Generation: 0}); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.lc.OpOcc(ctx, op.ID); got.State != mec.OpStateProcessing {
		t.Fatalf("stale report moved the op to %s", got.State)
	}
	f.report(in.HostID, map[string]string{in.ID: lifecycle.ObservedRunning})
	got, _ := f.lc.OpOcc(ctx, op.ID)
	in, _ = f.lc.Get(ctx, in.ID)
	if got.State != mec.OpStateCompleted || in.InstantiationState != mec.Instantiated || in.OperationalState != mec.OpStarted || in.PendingOpID != "" {
		t.Fatalf("after report: op %s, instance %s/%s pending %q", got.State, in.InstantiationState, in.OperationalState, in.PendingOpID)
	}
	// The same report again changes nothing.
	n := len(f.ev.opStates())
	f.report(in.HostID, map[string]string{in.ID: lifecycle.ObservedRunning})
	if len(f.ev.opStates()) != n {
		t.Fatalf("replayed report published op events: %v", f.ev.opStates())
	}
	// A report from the future is refused.
	err = f.lc.ReportStatus(ctx, lifecycle.HostReport{HostID: in.HostID, Generation: 99})
	if status(err) != http.StatusConflict {
		t.Fatalf("future generation: %v", err)
	}
}

func TestOperateAndTerminateRelease(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	in, _ := f.instantiated()
	f.report(in.HostID, map[string]string{in.ID: lifecycle.ObservedRunning})
	host := in.HostID

	if _, err := f.lc.Operate(ctx, in.ID, lifecycle.OperateRequest{ChangeStateTo: mec.OpStarted}); status(err) != http.StatusConflict {
		t.Fatalf("operate to the current state: %v", err)
	}
	op, err := f.lc.Operate(ctx, in.ID, lifecycle.OperateRequest{ChangeStateTo: mec.OpStopped, GraceSeconds: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.lc.Terminate(ctx, in.ID, lifecycle.TerminateRequest{}); status(err) != http.StatusConflict {
		t.Fatalf("terminate during operate: %v", err)
	}
	f.report(host, map[string]string{in.ID: lifecycle.ObservedStopped})
	if got, _ := f.lc.OpOcc(ctx, op.ID); got.State != mec.OpStateCompleted {
		t.Fatalf("operate op %s", got.State)
	}
	if err := f.lc.Delete(ctx, in.ID); status(err) != http.StatusConflict {
		t.Fatalf("delete while instantiated: %v", err)
	}
	op, err = f.lc.Terminate(ctx, in.ID, lifecycle.TerminateRequest{GraceSeconds: 10})
	if err != nil {
		t.Fatal(err)
	}
	f.report(host, nil) // the instance is gone from the host
	got, _ := f.lc.OpOcc(ctx, op.ID)
	in, _ = f.lc.Get(ctx, in.ID)
	h := f.host(host)
	if got.State != mec.OpStateCompleted || in.InstantiationState != mec.NotInstantiated || in.HostID != "" || h.Allocated != (mec.Resources{}) {
		t.Fatalf("after terminate: op %s, instance %s on %q, host allocated %+v", got.State, in.InstantiationState, in.HostID, h.Allocated)
	}
	err = f.store.View(ctx, func(tx mec.Tx) error {
		recs, err := tx.List(mec.KindSpreadGroup)
		if len(recs) != 0 {
			t.Errorf("spread groups left after the last instance went: %d", len(recs))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.lc.Delete(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.lc.Get(ctx, in.ID); status(err) != http.StatusNotFound {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestCancelRetryFail(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	in, op := f.instantiated()
	host := in.HostID
	if _, err := f.lc.Retry(ctx, op.ID); status(err) != http.StatusConflict {
		t.Fatalf("retry of a PROCESSING op: %v", err)
	}
	got, err := f.lc.Cancel(ctx, op.ID)
	if err != nil || got.State != mec.OpStateFailedTemp {
		t.Fatalf("cancel: %+v %v", got, err)
	}
	if h := f.host(host); h.Allocated != (mec.Resources{}) {
		t.Fatalf("cancel kept the reservation: %+v", h.Allocated)
	}
	// The instance stays bound to the failed op: no new instantiation.
	if _, err := f.lc.Instantiate(ctx, in.ID, lifecycle.InstantiateRequest{}); status(err) != http.StatusConflict {
		t.Fatalf("instantiate while FAILED_TEMP: %v", err)
	}
	got, err = f.lc.Retry(ctx, op.ID)
	if err != nil || got.State != mec.OpStateProcessing {
		t.Fatalf("retry: %+v %v", got, err)
	}
	in, _ = f.lc.Get(ctx, in.ID)
	if f.host(in.HostID).Allocated.MilliCPU != 1000 {
		t.Fatalf("retry did not reserve again")
	}
	f.report(in.HostID, map[string]string{in.ID: lifecycle.ObservedFailed})
	got, _ = f.lc.OpOcc(ctx, op.ID)
	if got.State != mec.OpStateFailedTemp || got.Error == nil {
		t.Fatalf("agent-reported failure: %+v", got)
	}
	got, err = f.lc.Fail(ctx, op.ID)
	if err != nil || got.State != mec.OpStateFailed {
		t.Fatalf("fail: %+v %v", got, err)
	}
	in, _ = f.lc.Get(ctx, in.ID)
	if in.PendingOpID != "" || in.HostID != "" || in.InstantiationState != mec.NotInstantiated {
		t.Fatalf("instance after FAILED: %+v", in)
	}
	if _, err := f.lc.Instantiate(ctx, in.ID, lifecycle.InstantiateRequest{}); err != nil {
		t.Fatalf("instantiate after fail: %v", err)
	}
}

func TestExpireOps(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, op := f.instantiated()
	f.clock.Advance(59 * time.Second)
	if n, err := f.lc.ExpireOps(ctx); err != nil || n != 0 {
		t.Fatalf("expired %d early (%v)", n, err)
	}
	f.clock.Advance(2 * time.Second)
	if n, err := f.lc.ExpireOps(ctx); err != nil || n != 1 {
		t.Fatalf("expired %d, want 1 (%v)", n, err)
	}
	got, _ := f.lc.OpOcc(ctx, op.ID)
	if got.State != mec.OpStateFailedTemp || got.Error == nil || got.Error.Status != http.StatusGatewayTimeout {
		t.Fatalf("expired op: %+v", got)
	}
}

func TestSpreadAndNoFit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, _ := f.instantiated()
	b, _ := f.instantiated()
	if a.SiteID == b.SiteID {
		t.Fatalf("two replicas on site %s while another site had room", a.SiteID)
	}
	in, _ := f.lc.Create(ctx, lifecycle.CreateRequest{AppDID: "app-1"})
	_, err := f.lc.Instantiate(ctx, in.ID, lifecycle.InstantiateRequest{Constraints: mec.PlacementConstraints{Zones: []string{"nowhere"}}})
	if status(err) != http.StatusUnprocessableEntity {
		t.Fatalf("no host in zone: %v", err)
	}
	_, err = f.lc.Instantiate(ctx, in.ID, lifecycle.InstantiateRequest{Need: &mec.Resources{MilliCPU: 64000, MemoryMiB: 1}})
	if status(err) != http.StatusConflict {
		t.Fatalf("no room: %v", err)
	}
	var p *mec.Problem
	if !errors.As(err, &p) || len(p.InvalidParams) == 0 {
		t.Fatalf("no-fit problem names no filter: %+v", p)
	}
	// A failed placement leaves nothing behind.
	if h := f.host("h1"); h.Allocated.MilliCPU > 1000 {
		t.Fatalf("refused placement reserved: %+v", h.Allocated)
	}
}

// TestHeartbeatLeavesHostAlone: a report that changes nothing but the
// heartbeat does not rewrite the host (its version, the operator's ETag,
// stays), and the heartbeat lands in its own document.
func TestHeartbeatLeavesHostAlone(t *testing.T) {
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
	f.report("h1", nil) // first report: Unknown → Ready
	before := version()
	f.clock.Advance(10 * time.Second)
	f.report("h1", nil)
	if after := version(); after != before {
		t.Fatalf("heartbeat rewrote the host: version %d → %d", before, after)
	}
	var l mec.HostLiveness
	_ = f.store.View(ctx, func(tx mec.Tx) error {
		l, _, _ = mec.Load[mec.HostLiveness](tx, mec.KindHostLiveness, "h1")
		return nil
	})
	if !l.LastHeartbeat.Equal(f.clock.Now()) {
		t.Fatalf("last heartbeat %v, want %v", l.LastHeartbeat, f.clock.Now())
	}
}

// TestPlacementObservedOncePerDecision: the metrics hook hears each
// instantiation once, with its outcome.
func TestPlacementObservedOncePerDecision(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var seen []string
	lc := lifecycle.New(lifecycle.Config{ObservePlacement: func(outcome string, took time.Duration) {
		if took < 0 {
			t.Errorf("negative placement time %v", took)
		}
		seen = append(seen, outcome)
	}}, f.store, placement.Default(placement.Options{Clock: f.clock.Now}), f.ev, f.clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	in, err := lc.Create(ctx, lifecycle.CreateRequest{AppDID: "app-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Instantiate(ctx, in.ID, lifecycle.InstantiateRequest{Constraints: mec.PlacementConstraints{Zones: []string{"nowhere"}}}); err == nil {
		t.Fatal("placed in a zone with no host")
	}
	if _, err := lc.Instantiate(ctx, in.ID, lifecycle.InstantiateRequest{}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0] != "nofit" || seen[1] != "placed" {
		t.Fatalf("observed %v, want [nofit placed]", seen)
	}
}
