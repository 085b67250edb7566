package lifecycle_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/lifecycle"
	"github.com/mecorch/mecorch/mec/placement"
	"github.com/mecorch/mecorch/mec/placement/placementtest"
	"github.com/mecorch/mecorch/mec/uectx"
)

// fakeLatencyMap: cell↔site RTTs, measured; missing pairs are Unknown.
type fakeLatencyMap = placementtest.LatencyMap

// withLatency swaps the fixture's service for one whose engine reads m,
// adds NR cells c1 (site s1) and c2 (site s2), a UE on c2, and a package
// app-lat whose AppD bounds latency to 5 ms.
func (f *fixture) withLatency(m fakeLatencyMap) {
	f.t.Helper()
	fs, ws := placement.WithLatency(placement.DefaultFilters(), placement.DefaultScores(), placement.LatencyConfig{Map: m})
	e, err := placement.New(fs, ws, placement.Options{Clock: f.clock.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	f.lc = lifecycle.New(lifecycle.Config{OpTimeout: time.Minute}, f.store, e, f.ev, f.clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	appD, _ := json.Marshal(map[string]any{"appDId": "app-lat", "appName": "ar", "appProvider": "p", "appSoftVersion": "1", "appDVersion": "1",
		"virtualComputeDescriptor": map[string]any{"virtualComputeDescId": "vc", "virtualCpu": map[string]any{"numVirtualCpu": 1},
			"virtualMemory": map[string]any{"virtualMemSize": 512}},
		"appLatency": map[string]any{"maxLatency": 5_000_000}})
	f.update(func(tx mec.Tx) error {
		for _, c := range []mec.Cell{{ID: "c1", RAT: mec.RATNR, SiteID: "s1"}, {ID: "c2", RAT: mec.RATNR, SiteID: "s2"}} {
			if _, err := mec.Save(tx, mec.KindCell, c.ID, c, mec.MustNotExist); err != nil {
				return err
			}
		}
		if _, err := mec.Save(tx, mec.KindUEContext, "ue-1", uectx.UE{ID: "ue-1", CellID: "c2", SiteID: "s2"}, mec.MustNotExist); err != nil {
			return err
		}
		_, err := mec.Save(tx, mec.KindAppPackage, "pkg-lat", mec.AppPackage{ID: "pkg-lat", AppDID: "app-lat", AppName: "ar",
			OnboardingState: mec.PkgOnboarded, OperationalState: mec.PkgEnabled, AppD: appD}, mec.MustNotExist)
		return err
	})
}

func (f *fixture) instantiate(appDID string, cons mec.PlacementConstraints) (mec.AppInstance, error) {
	f.t.Helper()
	ctx := context.Background()
	in, err := f.lc.Create(ctx, lifecycle.CreateRequest{AppDID: appDID})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.lc.Instantiate(ctx, in.ID, lifecycle.InstantiateRequest{Constraints: cons}); err != nil {
		return in, err
	}
	in, _ = f.lc.Get(ctx, in.ID)
	f.report(in.HostID, map[string]string{in.ID: lifecycle.ObservedRunning})
	in, _ = f.lc.Get(ctx, in.ID)
	return in, nil
}

func TestInstantiateTakesLatencyFromAppDAndUEs(t *testing.T) {
	f := newFixture(t)
	// c2 (where the UE is) is 2 ms one way from s2 and 6 ms from s1.
	f.withLatency(fakeLatencyMap{{"c2", "s2"}: 2 * time.Millisecond, {"c2", "s1"}: 10 * time.Millisecond})
	in, err := f.instantiate("app-lat", mec.PlacementConstraints{})
	if err != nil {
		t.Fatal(err)
	}
	if in.Constraints.MaxLatencyNs != 5_000_000 {
		t.Errorf("stored bound %d, want the AppD's 5 ms", in.Constraints.MaxLatencyNs)
	}
	if in.HostID != "h2" || in.Placement == nil || in.Placement.Rejected[placement.NameAppLatency] != 1 {
		t.Fatalf("placed on %s, decision %+v; want h2 with h1 rejected by appLatency", in.HostID, in.Placement)
	}
	top := in.Placement.Top[0]
	if top.Latency == nil || top.Latency.WorstNs != int64(2*time.Millisecond) || top.Why == "" {
		t.Errorf("decision record %+v", top)
	}

	// The request's own bound wins over the AppD's; a bound nothing
	// meets is a 409 (latency may improve) naming appLatency.
	_, err = f.instantiate("app-lat", mec.PlacementConstraints{MaxLatencyNs: int64(time.Millisecond)})
	var p *mec.Problem
	if !errors.As(err, &p) || p.Status != http.StatusConflict || len(p.InvalidParams) == 0 || p.InvalidParams[0].Name != placement.NameAppLatency {
		t.Errorf("1 ms bound: %v (%+v)", err, p)
	}
	checkBooks(t, f.store)
}

func TestInstantiateUnknownNamedCell(t *testing.T) {
	f := newFixture(t)
	f.withLatency(fakeLatencyMap{})
	_, err := f.instantiate("app-lat", mec.PlacementConstraints{Cells: []string{"c1", "nope"}})
	var p *mec.Problem
	if !errors.As(err, &p) || p.Status != http.StatusUnprocessableEntity || len(p.InvalidParams) != 1 || p.InvalidParams[0].Name != "constraints.cells[1]" {
		t.Fatalf("unknown cell: %v (%+v)", err, p)
	}
}

func TestRelocate(t *testing.T) {
	f := newFixture(t)
	m := fakeLatencyMap{{"c1", "s1"}: 2 * time.Millisecond, {"c1", "s2"}: 4 * time.Millisecond}
	f.withLatency(m)
	ctx := context.Background()
	in, err := f.instantiate("app-lat", mec.PlacementConstraints{Cells: []string{"c1"}})
	if err != nil || in.HostID != "h1" {
		t.Fatalf("placed on %s, %v; want h1", in.HostID, err)
	}
	genH1, genH2 := f.host("h1").DesiredGeneration, f.host("h2").DesiredGeneration

	// Refused: nothing changes.
	_, err = f.lc.Relocate(ctx, in.ID, lifecycle.RelocateOptions{Accept: func(mec.Decision) bool { return false }})
	if !errors.Is(err, lifecycle.ErrNotBetter) {
		t.Fatalf("refused relocation: %v", err)
	}
	if got, _ := f.lc.Get(ctx, in.ID); got.HostID != "h1" || got.Moves != 0 || f.host("h1").DesiredGeneration != genH1 {
		t.Fatalf("refused relocation changed the instance: %+v", got)
	}

	// Accepted: h2 (the only other host), both generations move.
	var seen mec.Decision
	mv, err := f.lc.Relocate(ctx, in.ID, lifecycle.RelocateOptions{Accept: func(d mec.Decision) bool { seen = d; return true }})
	if err != nil || mv.From != "h1" || mv.To != "h2" {
		t.Fatalf("relocation: %+v, %v", mv, err)
	}
	if seen.HostID != "h2" || seen.Top[0].Latency == nil || seen.Top[0].Latency.WorstNs != int64(3*time.Millisecond) {
		t.Errorf("Accept saw %+v", seen)
	}
	got, _ := f.lc.Get(ctx, in.ID)
	if got.HostID != "h2" || got.Moves != 1 || got.LastMovedAt == nil || !got.LastMovedAt.Equal(f.clock.Now()) {
		t.Errorf("after relocation: %+v", got)
	}
	if f.host("h1").DesiredGeneration != genH1+1 || f.host("h2").DesiredGeneration != genH2+1 {
		t.Errorf("generations h1 %d→%d, h2 %d→%d", genH1, f.host("h1").DesiredGeneration, genH2, f.host("h2").DesiredGeneration)
	}
	checkBooks(t, f.store)

	// Within the cooldown: deferred.
	f.clock.Advance(time.Minute)
	if _, err := f.lc.Relocate(ctx, in.ID, lifecycle.RelocateOptions{MoveCooldown: 10 * time.Minute}); !errors.Is(err, lifecycle.ErrMoveCooldown) {
		t.Fatalf("within cooldown: %v", err)
	}

	// No other host fits: it stays on h2.
	f.setState("h1", mec.HostDraining)
	f.clock.Advance(time.Hour)
	_, err = f.lc.Relocate(ctx, in.ID, lifecycle.RelocateOptions{MoveCooldown: 10 * time.Minute})
	if !errors.Is(err, lifecycle.ErrNoOtherHost) {
		t.Fatalf("no other host: %v", err)
	}
	if got, _ := f.lc.Get(ctx, in.ID); got.HostID != "h2" || got.Moves != 1 {
		t.Errorf("failed relocation changed the instance: %+v", got)
	}
	checkBooks(t, f.store)
}
