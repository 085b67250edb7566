package health_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mecorch/mecorch/internal/pgtest"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/health"
	"github.com/mecorch/mecorch/mec/lifecycle"
	"github.com/mecorch/mecorch/mec/placement"
	"github.com/mecorch/mecorch/mec/store/boltstore"
	"github.com/mecorch/mecorch/mec/store/pgstore"
)

// pg is one throwaway Postgres cluster for the test binary.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// forEachEngine runs fn on a fresh store of every engine.
func forEachEngine(t *testing.T, fn func(t *testing.T, st mec.Store)) {
	engines := []struct {
		name string
		open func(t *testing.T) mec.Store
	}{
		{"bolt", openBolt},
		{"postgres", func(t *testing.T) mec.Store {
			st, err := pgstore.Open(context.Background(), pg.Database(t), pgstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { fn(t, e.open(t)) })
	}
}

func openBolt(t *testing.T) mec.Store {
	st, err := boltstore.Open(t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// fakeClock is a settable clock: silence and cooldowns pass without
// sleeping.
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

// events records what was published.
type events struct {
	mu  sync.Mutex
	evs []mec.Event
}

func (e *events) Publish(ev mec.Event) { e.mu.Lock(); defer e.mu.Unlock(); e.evs = append(e.evs, ev) }

func (e *events) alarmEvents() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.evs {
		if ev.Alarm != nil {
			out = append(out, string(ev.Type)+":"+ev.Alarm.ProbableCause+":"+string(ev.Alarm.PerceivedSeverity))
		}
	}
	return out
}

// env is a lifecycle, alarms and a monitor over one store, with sites s1,
// s2 and s3, hosts h1 (s1) and h2 (s2) of 4 vCPU / 4 GiB registered
// (Unknown), and an onboarded package whose instances need 1 vCPU / 512 MiB.
type env struct {
	t      *testing.T
	ctx    context.Context
	store  mec.Store
	clock  *fakeClock
	ev     *events
	log    *slog.Logger
	cfg    health.Config
	lc     *lifecycle.Service
	alarms *health.Alarms
	mon    *health.Monitor
}

func newEnv(t *testing.T, st mec.Store, cfg health.Config) *env {
	t.Helper()
	clk := &fakeClock{now: time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)}
	e := &env{t: t, ctx: context.Background(), store: st, clock: clk, ev: &events{}, cfg: cfg,
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	engine, err := placement.New(placement.WithReadyHold(placement.DefaultFilters(), cfg.PlacementHold(), clk.Now),
		placement.DefaultScores(), placement.Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.lc = lifecycle.New(lifecycle.Config{}, st, engine, e.ev, clk.Now, e.log)
	e.alarms = health.NewAlarms(st, e.ev, clk.Now, e.log)
	e.mon = e.newMonitor()
	appD, _ := json.Marshal(map[string]any{"appDId": "app-1", "appName": "echo", "appProvider": "p", "appSoftVersion": "1", "appDVersion": "1",
		"virtualComputeDescriptor": map[string]any{"virtualComputeDescId": "vc", "virtualCpu": map[string]any{"numVirtualCpu": 1},
			"virtualMemory": map[string]any{"virtualMemSize": 512}}})
	e.update(func(tx mec.Tx) error {
		for _, s := range []string{"s1", "s2", "s3"} {
			if _, err := mec.Save(tx, mec.KindSite, s, mec.Site{ID: s, Name: s}, mec.MustNotExist); err != nil {
				return err
			}
		}
		_, err := mec.Save(tx, mec.KindAppPackage, "pkg-1", mec.AppPackage{ID: "pkg-1", AppDID: "app-1", AppName: "echo",
			OnboardingState: mec.PkgOnboarded, OperationalState: mec.PkgEnabled, AppD: appD}, mec.MustNotExist)
		return err
	})
	e.addHost("h1", "s1")
	e.addHost("h2", "s2")
	return e
}

func (e *env) newMonitor() *health.Monitor {
	e.t.Helper()
	m, err := health.New(e.cfg, e.store, e.lc, e.alarms, e.clock.Now, e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) update(fn func(mec.Tx) error) {
	e.t.Helper()
	if err := e.store.Update(e.ctx, fn); err != nil {
		e.t.Fatal(err)
	}
}

// addHost registers a host as the inventory does: Unknown, empty.
func (e *env) addHost(id, site string) {
	e.t.Helper()
	e.update(func(tx mec.Tx) error {
		h := mec.Host{ID: id, SiteID: site, State: mec.HostUnknown, CreatedAt: e.clock.Now(),
			Capacity: mec.Resources{MilliCPU: 4000, MemoryMiB: 4096, StorageGB: 10}}
		_, err := mec.Save(tx, mec.KindHost, id, h, mec.MustNotExist)
		return err
	})
}

// setState cordons (Draining) or uncordons (Ready) a host.
func (e *env) setState(id string, st mec.HostState) {
	e.t.Helper()
	e.update(func(tx mec.Tx) error {
		h, v, err := mec.Load[mec.Host](tx, mec.KindHost, id)
		if err != nil {
			return err
		}
		h.State = st
		_, err = mec.Save(tx, mec.KindHost, id, h, v)
		return err
	})
}

func (e *env) host(id string) mec.Host {
	e.t.Helper()
	var h mec.Host
	err := e.store.View(e.ctx, func(tx mec.Tx) error {
		var err error
		h, _, err = mec.Load[mec.Host](tx, mec.KindHost, id)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

func (e *env) instance(id string) mec.AppInstance {
	e.t.Helper()
	in, err := e.lc.Get(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return in
}

func (e *env) op(id string) mec.LcmOpOcc {
	e.t.Helper()
	op, err := e.lc.OpOcc(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return op
}

func (e *env) beat(hosts ...string) {
	e.t.Helper()
	for _, h := range hosts {
		if err := e.lc.Heartbeat(e.ctx, h); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) check() {
	e.t.Helper()
	if err := e.mon.Check(e.ctx); err != nil {
		e.t.Fatal(err)
	}
}

// run lets d pass in steps of one second: at each step the live hosts
// heartbeat and the monitor checks, as in a running server.
func (e *env) run(d time.Duration, live ...string) {
	e.t.Helper()
	for step := time.Duration(0); step < d; step += time.Second {
		e.clock.Advance(time.Second)
		e.beat(live...)
		e.check()
	}
}

// instantiate creates and instantiates an instance of app-1.
func (e *env) instantiate() (mec.AppInstance, mec.LcmOpOcc) {
	e.t.Helper()
	in, err := e.lc.Create(e.ctx, lifecycle.CreateRequest{AppDID: "app-1"})
	if err != nil {
		e.t.Fatal(err)
	}
	op, err := e.lc.Instantiate(e.ctx, in.ID, lifecycle.InstantiateRequest{})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.instance(in.ID), op
}

// report is the host's agent reporting its current generation with states.
func (e *env) report(hostID string, states map[string]string) {
	e.t.Helper()
	r := lifecycle.HostReport{HostID: hostID, Generation: e.host(hostID).DesiredGeneration}
	for id, st := range states {
		r.Instances = append(r.Instances, lifecycle.InstanceStatus{ID: id, State: st})
	}
	if err := e.lc.ReportStatus(e.ctx, r); err != nil {
		e.t.Fatal(err)
	}
}

// alarmsOf lists the alarms of one object and cause in state.
func (e *env) alarmsOf(object, cause string, state health.State) []health.Alarm {
	e.t.Helper()
	as, err := e.alarms.List(e.ctx, health.Filter{State: state, ManagedObjectID: object, ProbableCause: cause})
	if err != nil {
		e.t.Fatal(err)
	}
	return as
}

// active returns the one active alarm of object and cause, failing
// otherwise.
func (e *env) active(object, cause string) health.Alarm {
	e.t.Helper()
	as := e.alarmsOf(object, cause, health.StateActive)
	if len(as) != 1 {
		e.t.Fatalf("%d active %s alarms on %s, want 1: %+v", len(as), cause, object, as)
	}
	return as[0]
}

// checkBooks asserts that every host's Allocated is the sum of the
// reservations of the instances on it, and that its index lists exactly
// them.
func (e *env) checkBooks() {
	e.t.Helper()
	err := e.store.View(e.ctx, func(tx mec.Tx) error {
		hosts, err := mec.LoadAll[mec.Host](tx, mec.KindHost)
		if err != nil {
			return err
		}
		insts, err := mec.LoadAll[mec.AppInstance](tx, mec.KindAppInstance)
		if err != nil {
			return err
		}
		sum, on := map[string]mec.Resources{}, map[string][]string{}
		for _, in := range insts {
			if in.HostID != "" {
				sum[in.HostID] = sum[in.HostID].Add(in.Reserved)
				on[in.HostID] = append(on[in.HostID], in.ID)
			}
		}
		for _, h := range hosts {
			if h.Allocated != sum[h.ID] {
				e.t.Errorf("host %s: allocated %+v, its instances hold %+v", h.ID, h.Allocated, sum[h.ID])
			}
			idx, _, err := mec.LoadOr(tx, mec.KindHostInstances, h.ID, lifecycle.HostInstances{})
			if err != nil {
				return err
			}
			want := on[h.ID]
			slices.Sort(want)
			if !slices.Equal(idx.Instances, want) {
				e.t.Errorf("host %s: index %v, instances %v", h.ID, idx.Instances, want)
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// desired lists the instance IDs in a host's desired state.
func (e *env) desired(hostID string) []string {
	e.t.Helper()
	ds, err := e.lc.DesiredState(e.ctx, hostID)
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	for _, in := range ds.Instances {
		ids = append(ids, in.ID)
	}
	return ids
}
