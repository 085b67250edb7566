package lifecycle_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecorch/mecorch/appd"
	"github.com/mecorch/mecorch/internal/enginetest"
	"github.com/mecorch/mecorch/internal/pgtest"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/inventory"
	"github.com/mecorch/mecorch/mec/lifecycle"
	"github.com/mecorch/mecorch/mec/placement"
	"github.com/mecorch/mecorch/mec/store/boltstore"
	"github.com/mecorch/mecorch/mec/uetunnel"
)

var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// forEachEngine runs fn over a fresh store of each engine.
func forEachEngine(t *testing.T, fn func(t *testing.T, st mec.Store)) { enginetest.Each(t, &pg, fn) }

// rtts is a settable site-to-site RTT table, the lifecycle's Distance.
type rtts struct {
	mu sync.Mutex
	m  map[[2]string]time.Duration
}

func (r *rtts) set(a, b string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b < a {
		a, b = b, a
	}
	r.m[[2]string{a, b}] = d
}

func (r *rtts) distance(a, b string) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b < a {
		a, b = b, a
	}
	d, ok := r.m[[2]string{a, b}]
	return d, ok
}

type dpFixture struct {
	t       *testing.T
	st      mec.Store
	lc      *lifecycle.Service
	tunnels *uetunnel.Service
	rtt     *rtts
	told    [][]string // what DesiredChanged was told
}

// newDPFixture: sites s1, s2, s3; hosts h1@s1, h2@s2, h3@s3 with VTEPs and
// h4@s2 without; the package of app-1 has a traffic rule, a DNS rule and a
// bandwidth, that of app-2 no traffic rule.
func newDPFixture(t *testing.T, st mec.Store) *dpFixture {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clk := &fakeClock{now: time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)}
	f := &dpFixture{t: t, st: st, rtt: &rtts{m: map[[2]string]time.Duration{}}}
	f.lc = lifecycle.New(lifecycle.Config{Distance: f.rtt.distance, DesiredChanged: func(ids []string) { f.told = append(f.told, ids) }},
		st, placement.Default(placement.Options{Clock: clk.Now}), &events{}, clk.Now, log)
	f.tunnels = uetunnel.New(st, log, f.lc.KickDataPlane)
	pkg := func(appDID string, rules bool) mec.AppPackage {
		a := map[string]any{"appDId": appDID, "appName": appDID, "appProvider": "p", "appSoftVersion": "1", "appDVersion": "1",
			"virtualComputeDescriptor": map[string]any{"virtualComputeDescId": "vc", "virtualCpu": map[string]any{"numVirtualCpu": 1},
				"virtualMemory": map[string]any{"virtualMemSize": 512}}}
		if rules {
			a["appTrafficRule"] = []any{map[string]any{"trafficRuleId": "r1", "filterType": "FLOW", "priority": 3, "action": "FORWARD_DECAPSULATED",
				"trafficFilter": []any{map[string]any{"dstAddress": []string{"10.0.0.7"}, "protocol": []string{"UDP"}}}}}
			a["appDNSRule"] = []any{map[string]any{"dnsRuleId": "d1", "domainName": appDID + ".mec.example", "ipAddressType": "IP_V4", "ipAddress": "10.0.0.7"}}
			a["x-mecorch-bandwidth"] = []any{map[string]any{"allocationDirection": "00", "fixedAllocation": "20000000", "ceilAllocation": "50000000"},
				map[string]any{"allocationDirection": "01", "fixedAllocation": "1000000"}}
		}
		b, _ := json.Marshal(a)
		return mec.AppPackage{ID: "pkg-" + appDID, AppDID: appDID, AppName: appDID, OnboardingState: mec.PkgOnboarded, OperationalState: mec.PkgEnabled, AppD: b}
	}
	err := st.Update(context.Background(), func(tx mec.Tx) error {
		for _, s := range []string{"s1", "s2", "s3"} {
			if _, err := mec.Save(tx, mec.KindSite, s, mec.Site{ID: s, Name: s}, mec.MustNotExist); err != nil {
				return err
			}
		}
		for _, h := range []mec.Host{{ID: "h1", SiteID: "s1", VTEP: "192.0.2.1"}, {ID: "h2", SiteID: "s2", VTEP: "192.0.2.2"},
			{ID: "h3", SiteID: "s3", VTEP: "192.0.2.3"}, {ID: "h4", SiteID: "s2"}} {
			h.State, h.Capacity = mec.HostReady, mec.Resources{MilliCPU: 8000, MemoryMiB: 8192, StorageGB: 10}
			if _, err := mec.Save(tx, mec.KindHost, h.ID, h, mec.MustNotExist); err != nil {
				return err
			}
		}
		for _, p := range []mec.AppPackage{pkg("app-1", true), pkg("app-2", false)} {
			if _, err := mec.Save(tx, mec.KindAppPackage, p.ID, p, mec.MustNotExist); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sync runs a data-plane sync and returns the hosts it bumped, sorted.
func (f *dpFixture) sync() []string {
	f.t.Helper()
	ids, err := f.lc.SyncDataPlane(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

func (f *dpFixture) expectBumped(want ...string) {
	f.t.Helper()
	if got := f.sync(); !slices.Equal(got, want) {
		f.t.Fatalf("sync bumped %v, want %v", got, want)
	}
}

// desired reads a host's desired state and checks that it passes the
// agent protocol's checks.
func (f *dpFixture) desired(hostID string) lifecycle.DesiredState {
	f.t.Helper()
	ds, err := f.lc.DesiredState(context.Background(), hostID)
	if err != nil {
		f.t.Fatal(err)
	}
	fr, err := agentproto.NewFrame(agentproto.TypeDesired, 1, 0, ds)
	if err == nil {
		err = agentproto.DecodeBody(fr, &agentproto.DesiredState{})
	}
	if err != nil {
		f.t.Fatalf("desired state of %s fails the protocol's checks: %v", hostID, err)
	}
	return ds
}

// place instantiates an instance of appDID on hostID.
func (f *dpFixture) place(appDID, hostID string) mec.AppInstance {
	f.t.Helper()
	ctx := context.Background()
	in, err := f.lc.Create(ctx, lifecycle.CreateRequest{AppDID: appDID})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.lc.Instantiate(ctx, in.ID, lifecycle.InstantiateRequest{Constraints: mec.PlacementConstraints{HostIDs: []string{hostID}}}); err != nil {
		f.t.Fatal(err)
	}
	in, _ = f.lc.Get(ctx, in.ID)
	return in
}

// report has hostID's agent report its instances at its desired
// generation, with their MACs.
func (f *dpFixture) report(hostID string, st map[string]agentproto.InstanceStatus) {
	f.t.Helper()
	r := lifecycle.HostReport{HostID: hostID, Generation: f.desired(hostID).Generation}
	for id, s := range st {
		s.ID = id
		r.Instances = append(r.Instances, s)
	}
	slices.SortFunc(r.Instances, func(a, b agentproto.InstanceStatus) int { return strings.Compare(a.ID, b.ID) })
	if err := f.lc.ReportStatus(context.Background(), r); err != nil {
		f.t.Fatal(err)
	}
}

func (f *dpFixture) version(kind mec.Kind, id string) int64 {
	f.t.Helper()
	var v int64
	if err := f.st.View(context.Background(), func(tx mec.Tx) error {
		rec, err := tx.Get(kind, id)
		v = rec.Version
		return err
	}); err != nil {
		f.t.Fatal(err)
	}
	return v
}

func remoteIDs(ds lifecycle.DesiredState) []string {
	var out []string
	for _, r := range ds.Remote {
		out = append(out, r.HostID+"/"+r.ID)
	}
	return out
}

func peerIDs(ds lifecycle.DesiredState) []string {
	var out []string
	for _, p := range ds.Peers {
		out = append(out, p.HostID+"="+p.VTEP)
	}
	return out
}

// TestDataPlaneSync walks the changes that move hosts' data-plane parts
// and checks that exactly the hosts concerned are bumped, and what their
// desired states then say.
func TestDataPlaneSync(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st mec.Store) {
		f := newDPFixture(t, st)
		ctx := context.Background()
		f.rtt.set("s1", "s2", 10*time.Millisecond)
		f.rtt.set("s1", "s3", 9*time.Millisecond)

		// The first sync records the part of every host with a VTEP (they
		// have peers); h4 has nothing to its data plane yet.
		f.expectBumped("h1", "h2", "h3")
		if len(f.told) != 1 || len(f.told[0]) != 3 {
			t.Fatalf("DesiredChanged told %v", f.told)
		}
		f.expectBumped()
		if got := peerIDs(f.desired("h1")); !slices.Equal(got, []string{"h2=192.0.2.2", "h3=192.0.2.3"}) {
			t.Fatalf("h1's peers %v", got)
		}
		if ds := f.desired("h4"); len(ds.Peers) != 0 || len(ds.Remote) != 0 {
			t.Fatalf("h4 has no VTEP, yet %+v", ds)
		}

		// Placed, not running: nothing to steer to yet. The local
		// instance carries its bandwidth.
		a2 := f.place("app-1", "h2")
		f.expectBumped()
		if bw := f.desired("h2").Instances[0].Bandwidth; bw == nil || *bw.Downlink != (agentproto.Rate{RateBps: 20_000_000, CeilBps: 50_000_000}) ||
			*bw.Uplink != (agentproto.Rate{RateBps: 1_000_000}) {
			t.Fatalf("bandwidth %+v", bw)
		}
		// Running, but no MAC known: still nothing.
		f.report("h2", map[string]agentproto.InstanceStatus{a2.ID: {State: "Running"}})
		f.expectBumped()
		// With its MAC, h1 and h3 steer to it; h2 runs it, h4 has no
		// overlay.
		f.report("h2", map[string]agentproto.InstanceStatus{a2.ID: {State: "Running", MAC: "02:00:00:00:00:AA"}})
		if in, _ := f.lc.Get(ctx, a2.ID); in.MAC != "02:00:00:00:00:aa" {
			t.Fatalf("recorded MAC %q", in.MAC)
		}
		f.expectBumped("h1", "h3")
		ds := f.desired("h1")
		if got := remoteIDs(ds); !slices.Equal(got, []string{"h2/" + a2.ID}) {
			t.Fatalf("h1's remote instances %v", got)
		}
		r := ds.Remote[0]
		if r.VTEP != "192.0.2.2" || r.MAC != "02:00:00:00:00:aa" || r.AppDID != "app-1" || len(r.TrafficRules) != 1 ||
			r.TrafficRules[0].Action != agentproto.ActionForwardDecapsulated || len(r.DNSRules) != 1 {
			t.Fatalf("remote instance %+v", r)
		}
		// Reports come every few seconds: the same one writes nothing.
		iv, hv := f.version(mec.KindAppInstance, a2.ID), f.version(mec.KindHost, "h2")
		f.report("h2", map[string]agentproto.InstanceStatus{a2.ID: {State: "Running", MAC: "02:00:00:00:00:aa"}})
		if f.version(mec.KindAppInstance, a2.ID) != iv || f.version(mec.KindHost, "h2") != hv {
			t.Fatal("a repeated report rewrote the instance or the host")
		}
		f.expectBumped()

		// A second instance, at s3: h1 keeps steering to h2's while s3 is
		// not nearer by the margin (9 ms against 10 ms)…
		a3 := f.place("app-1", "h3")
		// Before any sync, h3's desired state already stops steering
		// app-1 elsewhere: it has an instance of its own coming.
		if got := remoteIDs(f.desired("h3")); len(got) != 0 {
			t.Fatalf("h3 has app-1 placed and still steers to %v", got)
		}
		f.report("h3", map[string]agentproto.InstanceStatus{a3.ID: {State: "Running", MAC: "02:00:00:00:00:bb"}})
		f.expectBumped("h3") // it runs its own now
		if got := remoteIDs(f.desired("h3")); len(got) != 0 {
			t.Fatalf("h3 runs app-1 and still steers to %v", got)
		}
		// … and moves once it is (5 ms).
		f.rtt.set("s1", "s3", 5*time.Millisecond)
		f.expectBumped("h1")
		if got := remoteIDs(f.desired("h1")); !slices.Equal(got, []string{"h3/" + a3.ID}) {
			t.Fatalf("h1's remote instances %v", got)
		}

		// Provisioning a UE tunnel reaches every host.
		if _, _, err := f.tunnels.Put(ctx, uetunnel.Tunnel{UEAddress: "10.45.0.9", GNBAddress: "10.1.1.2", TEID: 7, QFI: 9, SourceAddress: "10.1.1.1"}); err != nil {
			t.Fatal(err)
		}
		f.expectBumped("h1", "h2", "h3", "h4")
		if ds := f.desired("h4"); len(ds.UETunnels) != 1 || ds.UETunnels[0] != (agentproto.UETunnel{UEAddress: "10.45.0.9", GNBAddress: "10.1.1.2",
			TEID: 7, QFI: 9, SourceAddress: "10.1.1.1"}) {
			t.Fatalf("h4's UE tunnels %+v", ds.UETunnels)
		}

		// h4 gets a VTEP: every host with one has a new peer, and h4
		// steers to the instance of its own site.
		if err := f.lc.RecordVTEP(ctx, "h4", "::ffff:192.0.2.4"); err != nil {
			t.Fatal(err)
		}
		hv = f.version(mec.KindHost, "h4")
		if err := f.lc.RecordVTEP(ctx, "h4", "192.0.2.4"); err != nil || f.version(mec.KindHost, "h4") != hv {
			t.Fatalf("the same VTEP again rewrote the host (%v)", err)
		}
		f.expectBumped("h1", "h2", "h3", "h4")
		if got := remoteIDs(f.desired("h4")); !slices.Equal(got, []string{"h2/" + a2.ID}) {
			t.Fatalf("h4's remote instances %v", got)
		}

		// The instance on h2 is terminated: h4 turns to h3's; h2 now
		// steers to it too.
		if _, err := f.lc.Terminate(ctx, a2.ID, lifecycle.TerminateRequest{}); err != nil {
			t.Fatal(err)
		}
		f.expectBumped("h2", "h4")
		if got := remoteIDs(f.desired("h4")); !slices.Equal(got, []string{"h3/" + a3.ID}) {
			t.Fatalf("h4's remote instances %v", got)
		}
		// h2 no longer wants its own instance of app-1: it steers too.
		if got := remoteIDs(f.desired("h2")); !slices.Equal(got, []string{"h3/" + a3.ID}) {
			t.Fatalf("h2's remote instances %v", got)
		}

		// A generation moved by the sync is one the agent may report.
		f.report("h2", nil)
		f.expectBumped() // the terminated instance is gone: h2's part stays

		// A host going away: it is no one's peer any more, and its
		// document goes with it.
		inv := inventory.New(st, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err := inv.DeleteHost(ctx, "h4", mec.AnyVersion); err != nil {
			t.Fatal(err)
		}
		f.expectBumped("h1", "h2", "h3")
		if err := st.View(ctx, func(tx mec.Tx) error {
			_, err := tx.Get(mec.KindHostDataPlane, "h4")
			return err
		}); err == nil {
			t.Fatal("the deleted host's data-plane document is kept")
		}
		f.expectBumped()
	})
}

// TestDataPlaneTieAndNoMap: without an RTT map, or between equally near
// sites, the lowest instance ID wins; apps without traffic rules are never
// steered to.
func TestDataPlaneTieAndNoMap(t *testing.T) {
	f := newDPFixture(t, openBoltStore(t))
	f.lc = lifecycle.New(lifecycle.Config{}, f.st, placement.Default(placement.Options{}), nil, time.Now,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	b := f.place("app-1", "h2")
	c := f.place("app-1", "h3")
	n := f.place("app-2", "h3")
	f.report("h2", map[string]agentproto.InstanceStatus{b.ID: {State: "Running", MAC: "02:00:00:00:00:02"}})
	f.report("h3", map[string]agentproto.InstanceStatus{c.ID: {State: "Running", MAC: "02:00:00:00:00:03"},
		n.ID: {State: "Running", MAC: "02:00:00:00:00:04"}})
	f.sync()
	want := b.HostID + "/" + b.ID
	if c.ID < b.ID {
		want = c.HostID + "/" + c.ID
	}
	if got := remoteIDs(f.desired("h1")); !slices.Equal(got, []string{want}) {
		t.Fatalf("h1's remote instances %v, want %s", got, want)
	}
}

func openBoltStore(t *testing.T) mec.Store {
	st, err := boltstore.Open(t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// TestRunDataPlane: a kick reaches the agents' side (DesiredChanged)
// after the settling pause, without waiting for the resync; a host with
// nothing to its data plane is not bumped by the start-up sync.
func TestRunDataPlane(t *testing.T) {
	st := openBoltStore(t)
	changed := make(chan []string, 8)
	lc := lifecycle.New(lifecycle.Config{DataPlaneResync: time.Hour, DataPlaneSettle: 10 * time.Millisecond,
		DesiredChanged: func(ids []string) { changed <- ids }}, st, placement.Default(placement.Options{}), nil, time.Now,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	err := st.Update(context.Background(), func(tx mec.Tx) error {
		_, err := mec.Save(tx, mec.KindHost, "h1", mec.Host{ID: "h1", SiteID: "s1", State: mec.HostReady}, mec.MustNotExist)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { _ = lc.RunDataPlane(ctx); close(done) }()
	wait := func() []string {
		select {
		case ids := <-changed:
			return ids
		case <-time.After(5 * time.Second):
			t.Fatal("no data-plane sync after a kick")
		}
		return nil
	}
	tunnels := uetunnel.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), lc.KickDataPlane)
	if _, _, err := tunnels.Put(ctx, uetunnel.Tunnel{UEAddress: "10.45.0.1", GNBAddress: "10.1.1.2", SourceAddress: "10.1.1.1"}); err != nil {
		t.Fatal(err)
	}
	if ids := wait(); !slices.Equal(ids, []string{"h1"}) {
		t.Fatalf("bumped %v", ids)
	}
	cancel()
	<-done
}

// TestBoundsAgree: the bounds appd and uetunnel keep for themselves (they
// may not import the agent protocol) are the protocol's.
func TestBoundsAgree(t *testing.T) {
	if appd.MinBandwidthBps != agentproto.MinRateBps || appd.MaxBandwidthBps != agentproto.MaxRateBps {
		t.Errorf("appd bandwidth bounds %d..%d, agentproto %d..%d", appd.MinBandwidthBps, uint64(appd.MaxBandwidthBps),
			agentproto.MinRateBps, uint64(agentproto.MaxRateBps))
	}
	if uetunnel.MaxTunnels != agentproto.MaxUETunnels {
		t.Errorf("uetunnel.MaxTunnels %d, agentproto.MaxUETunnels %d", uetunnel.MaxTunnels, agentproto.MaxUETunnels)
	}
}

// TestDataPlaneSkipsHostsNotReady: an instance on a host that stopped
// reporting keeps its last observed state for a while; no other host steers
// to it meanwhile.
func TestDataPlaneSkipsHostsNotReady(t *testing.T) {
	f := newDPFixture(t, openBoltStore(t))
	b := f.place("app-1", "h2")
	c := f.place("app-1", "h3")
	f.report("h2", map[string]agentproto.InstanceStatus{b.ID: {State: "Running", MAC: "02:00:00:00:00:02"}})
	f.report("h3", map[string]agentproto.InstanceStatus{c.ID: {State: "Running", MAC: "02:00:00:00:00:03"}})
	err := f.st.Update(context.Background(), func(tx mec.Tx) error {
		h, v, err := mec.Load[mec.Host](tx, mec.KindHost, "h2")
		if err != nil {
			return err
		}
		h.State = mec.HostNotReady
		_, err = mec.Save(tx, mec.KindHost, h.ID, h, v)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// h2 is the nearer: only its state keeps it out.
	f.rtt.set("s1", "s2", time.Millisecond)
	f.rtt.set("s1", "s3", 10*time.Millisecond)
	f.sync()
	if got, want := remoteIDs(f.desired("h1")), []string{"h3/" + c.ID}; !slices.Equal(got, want) {
		t.Fatalf("h1's remote instances %v, want %v (h2 is NotReady)", got, want)
	}
}
