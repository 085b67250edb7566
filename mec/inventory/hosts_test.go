package inventory

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// allocate does what the lifecycle does when it places an instance: adds to
// the host's Allocated and bumps its desired generation, in one transaction.
func allocate(ctx context.Context, st mec.Store, hostID string, need mec.Resources) error {
	return st.Update(ctx, func(tx mec.Tx) error {
		h, v, err := mec.Load[mec.Host](tx, mec.KindHost, hostID)
		if err != nil {
			return err
		}
		h.Allocated = h.Allocated.Add(need)
		h.DesiredGeneration++
		_, err = mec.Save(tx, mec.KindHost, hostID, h, v)
		return err
	})
}

func putInstance(t *testing.T, st mec.Store, in mec.AppInstance) {
	t.Helper()
	err := st.Update(context.Background(), func(tx mec.Tx) error {
		_, err := mec.Save(tx, mec.KindAppInstance, in.ID, in, mec.AnyVersion)
		return err
	})
	if err != nil {
		t.Fatalf("put instance: %v", err)
	}
}

func TestHostCreate(t *testing.T) {
	ctx := context.Background()
	inv, _ := newTestService(t)

	_, _, err := inv.CreateHost(ctx, goodHost())
	p := wantStatus(t, err, http.StatusUnprocessableEntity)
	checkNames(t, p.InvalidParams, []string{"siteId"})

	mustSite(t, inv, "site-1")
	in := goodHost()
	in.Addresses = []string{"10.1.0.10", "2001:DB8:0::10"}
	h, v, err := inv.CreateHost(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if v != 1 || h.State != mec.HostUnknown || h.Allocated != (mec.Resources{}) || !h.CreatedAt.Equal(testNow) {
		t.Errorf("created %+v at version %d", h, v)
	}
	if !slices.Equal(h.Addresses, []string{"10.1.0.10", "2001:db8::10"}) {
		t.Errorf("addresses = %v, want them canonical", h.Addresses)
	}
	got, _, err := inv.GetHost(ctx, h.ID)
	if err != nil || got.State != mec.HostUnknown || got.Labels["gpu"] != "a100" {
		t.Errorf("get = %+v, %v", got, err)
	}

	_, _, err = inv.CreateHost(ctx, goodHost())
	wantStatus(t, err, http.StatusConflict)

	// Fields other services own are refused, not ignored.
	in = goodHost()
	in.ID, in.State, in.Allocated.GPUs = "edge2", mec.HostReady, 1
	_, _, err = inv.CreateHost(ctx, in)
	checkNames(t, wantStatus(t, err, http.StatusBadRequest).InvalidParams, []string{"allocated", "state"})

	in = goodHost()
	in.ID = ""
	h, _, err = inv.CreateHost(ctx, in)
	if err != nil || checkID(h.ID) != "" {
		t.Errorf("generated ID %q, %v", h.ID, err)
	}
}

func TestHostListBySite(t *testing.T) {
	ctx := context.Background()
	inv, _ := newTestService(t)
	mustSite(t, inv, "s1")
	mustSite(t, inv, "s2")
	for i, site := range []string{"s2", "s1", "s2"} {
		h := goodHost()
		h.ID, h.SiteID = fmt.Sprintf("h%d", i), site
		if _, _, err := inv.CreateHost(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(hs []mec.Host) string {
		var out []string
		for _, h := range hs {
			out = append(out, h.ID)
		}
		return strings.Join(out, ",")
	}
	for site, want := range map[string]string{"": "h0,h1,h2", "s2": "h0,h2", "s1": "h1", "nowhere": ""} {
		hs, err := inv.ListHosts(ctx, site)
		if err != nil || ids(hs) != want {
			t.Errorf("ListHosts(%q) = %s, %v; want %s", site, ids(hs), err, want)
		}
	}
}

func TestHostUpdateKeepsWhatOthersOwn(t *testing.T) {
	forEachEngine(t, func(t *testing.T, inv *Service, st mec.Store) {
		ctx := context.Background()
		mustSite(t, inv, "site-1")
		mustSite(t, inv, "site-2")
		if _, _, err := inv.CreateHost(ctx, goodHost()); err != nil {
			t.Fatal(err)
		}
		need := mec.Resources{MilliCPU: 4000, MemoryMiB: 8192, StorageGB: 10, GPUs: 1}
		if err := allocate(ctx, st, "edge1-a", need); err != nil {
			t.Fatal(err)
		}
		beat := testNow.Add(time.Minute)
		err := st.Update(ctx, func(tx mec.Tx) error { // what the agent's heartbeat writes
			h, v, err := mec.Load[mec.Host](tx, mec.KindHost, "edge1-a")
			if err != nil {
				return err
			}
			h.State, h.ReportedGeneration, h.AgentVersion, h.LastHeartbeat = mec.HostReady, 1, "0.3.1", &beat
			_, err = mec.Save(tx, mec.KindHost, h.ID, h, v)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}

		edit := goodHost()
		edit.ID = ""
		edit.Name, edit.Labels, edit.Addresses = "renamed", nil, []string{"10.9.9.9"}
		edit.Capacity.MilliCPU = 8000
		h, v, err := inv.UpdateHost(ctx, "edge1-a", edit, mec.AnyVersion)
		if err != nil {
			t.Fatal(err)
		}
		if h.Allocated != need || h.DesiredGeneration != 1 || h.ReportedGeneration != 1 || h.State != mec.HostReady ||
			h.AgentVersion != "0.3.1" || h.LastHeartbeat == nil || !h.CreatedAt.Equal(testNow) {
			t.Errorf("update lost what others own: %+v", h)
		}
		if h.Name != "renamed" || h.Labels != nil || h.Capacity.MilliCPU != 8000 || h.Addresses[0] != "10.9.9.9" {
			t.Errorf("update did not replace: %+v", h)
		}
		if v != 4 {
			t.Errorf("version = %d, want 4 (create, allocate, heartbeat, update)", v)
		}
		stored, _, _ := inv.GetHost(ctx, "edge1-a")
		if stored.Allocated != need || stored.Name != "renamed" {
			t.Errorf("stored %+v", stored)
		}

		// Shrinking below the allocation is refused, per dimension.
		edit.Capacity = mec.Resources{MilliCPU: 2000, MemoryMiB: 65536, StorageGB: 5, GPUs: 1}
		_, _, err = inv.UpdateHost(ctx, "edge1-a", edit, mec.AnyVersion)
		checkNames(t, wantStatus(t, err, http.StatusConflict).InvalidParams, []string{"capacity.milliCpu", "capacity.storageGB"})
		edit.Capacity = need // exactly full is fine
		if _, _, err := inv.UpdateHost(ctx, "edge1-a", edit, mec.AnyVersion); err != nil {
			t.Errorf("capacity equal to allocation: %v", err)
		}

		// Moving: to a missing site is a 422; with instances on it a 409.
		edit.SiteID = "site-9"
		_, _, err = inv.UpdateHost(ctx, "edge1-a", edit, mec.AnyVersion)
		wantStatus(t, err, http.StatusUnprocessableEntity)
		putInstance(t, st, mec.AppInstance{ID: "inst-1", HostID: "edge1-a", InstantiationState: mec.Instantiated, DesiredState: mec.DesiredRunning})
		edit.SiteID = "site-2"
		_, _, err = inv.UpdateHost(ctx, "edge1-a", edit, mec.AnyVersion)
		if p := wantStatus(t, err, http.StatusConflict); !strings.Contains(p.Detail, "inst-1") {
			t.Errorf("detail %q does not name the instance", p.Detail)
		}

		_, _, err = inv.UpdateHost(ctx, "edge1-a", edit, 1)
		wantStatus(t, err, http.StatusPreconditionFailed)
		_, _, err = inv.UpdateHost(ctx, "nope", edit, mec.AnyVersion)
		wantStatus(t, err, http.StatusNotFound)
		edit.ID = "other"
		_, _, err = inv.UpdateHost(ctx, "edge1-a", edit, mec.AnyVersion)
		checkNames(t, wantStatus(t, err, http.StatusBadRequest).InvalidParams, []string{"id"})
	})
}

func TestDeleteHostWithInstances(t *testing.T) {
	tests := []struct {
		name     string
		instance mec.AppInstance
		refused  bool
	}{
		{"instantiated", mec.AppInstance{InstantiationState: mec.Instantiated, DesiredState: mec.DesiredRunning}, true},
		{"instantiated, stopped", mec.AppInstance{InstantiationState: mec.Instantiated, DesiredState: mec.DesiredStopped}, true},
		{"being terminated", mec.AppInstance{InstantiationState: mec.NotInstantiated, DesiredState: mec.DesiredAbsent}, true},
		{"being instantiated", mec.AppInstance{InstantiationState: mec.NotInstantiated, DesiredState: mec.DesiredRunning}, true},
		{"terminated", mec.AppInstance{InstantiationState: mec.NotInstantiated}, false},
		{"on another host", mec.AppInstance{InstantiationState: mec.Instantiated, DesiredState: mec.DesiredRunning, HostID: "edge-other"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			inv, st := newTestService(t)
			mustSite(t, inv, "site-1")
			if _, _, err := inv.CreateHost(ctx, goodHost()); err != nil {
				t.Fatal(err)
			}
			in := tt.instance
			in.ID = "inst-7"
			if in.HostID == "" {
				in.HostID = "edge1-a"
			}
			putInstance(t, st, in)
			err := inv.DeleteHost(ctx, "edge1-a", mec.AnyVersion)
			if !tt.refused {
				if err != nil {
					t.Fatalf("delete: %v", err)
				}
				return
			}
			if p := wantStatus(t, err, http.StatusConflict); !strings.Contains(p.Detail, `"inst-7"`) {
				t.Errorf("detail %q does not name the instance", p.Detail)
			}
			if _, _, err := inv.GetHost(ctx, "edge1-a"); err != nil {
				t.Errorf("host gone after a refused delete: %v", err)
			}
		})
	}
}

func TestDeleteHostPrecondition(t *testing.T) {
	ctx := context.Background()
	inv, _ := newTestService(t)
	mustSite(t, inv, "site-1")
	_, v, err := inv.CreateHost(ctx, goodHost())
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, inv.DeleteHost(ctx, "edge1-a", v+1), http.StatusPreconditionFailed)
	if err := inv.DeleteHost(ctx, "edge1-a", v); err != nil {
		t.Fatal(err)
	}
	err = inv.DeleteHost(ctx, "edge1-a", mec.AnyVersion)
	if wantStatus(t, err, http.StatusNotFound); !errors.Is(err, mec.ErrNotFound) {
		t.Errorf("%v does not match mec.ErrNotFound", err)
	}
}

func TestSetState(t *testing.T) {
	beat := testNow
	tests := []struct {
		name      string
		from      mec.HostState
		heartbeat *time.Time
		to        mec.HostState
		want      mec.HostState
		bumps     bool
	}{
		{"cordon a ready host", mec.HostReady, &beat, mec.HostDraining, mec.HostDraining, true},
		{"cordon a host never heard of", mec.HostUnknown, nil, mec.HostDraining, mec.HostDraining, true},
		{"cordon twice", mec.HostDraining, &beat, mec.HostDraining, mec.HostDraining, false},
		{"uncordon", mec.HostDraining, &beat, mec.HostReady, mec.HostReady, true},
		{"uncordon a host whose agent never reported", mec.HostDraining, nil, mec.HostReady, mec.HostUnknown, true},
		{"uncordon a not-ready host keeps it not ready", mec.HostNotReady, &beat, mec.HostReady, mec.HostNotReady, false},
		{"uncordon an unknown host keeps it unknown", mec.HostUnknown, nil, mec.HostReady, mec.HostUnknown, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			inv, st := newTestService(t)
			mustSite(t, inv, "site-1")
			if _, _, err := inv.CreateHost(ctx, goodHost()); err != nil {
				t.Fatal(err)
			}
			var before int64
			err := st.Update(ctx, func(tx mec.Tx) error {
				h, v, err := mec.Load[mec.Host](tx, mec.KindHost, "edge1-a")
				if err != nil {
					return err
				}
				h.State, h.LastHeartbeat = tt.from, tt.heartbeat
				before, err = mec.Save(tx, mec.KindHost, h.ID, h, v)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			h, v, err := inv.SetState(ctx, "edge1-a", tt.to)
			if err != nil {
				t.Fatal(err)
			}
			if h.State != tt.want {
				t.Errorf("state = %s, want %s", h.State, tt.want)
			}
			if bumped := v != before; bumped != tt.bumps {
				t.Errorf("version %d → %d, bump wanted: %v", before, v, tt.bumps)
			}
			if stored, _, _ := inv.GetHost(ctx, "edge1-a"); stored.State != tt.want {
				t.Errorf("stored state = %s, want %s", stored.State, tt.want)
			}
		})
	}

	inv, _ := newTestService(t)
	_, _, err := inv.SetState(context.Background(), "edge1-a", mec.HostNotReady)
	wantStatus(t, err, http.StatusBadRequest)
	_, _, err = inv.SetState(context.Background(), "edge1-a", mec.HostDraining)
	wantStatus(t, err, http.StatusNotFound)
}

// TestConcurrentHostUpdates races operator edits against the lifecycle's
// allocations on one host: every allocation that commits must survive,
// because inventory writes back what it read in the same transaction. On
// one hot row an engine may give up after its retries (mec.ErrConflict);
// that is an outcome, a lost allocation is not.
func TestConcurrentHostUpdates(t *testing.T) {
	forEachEngine(t, func(t *testing.T, inv *Service, st mec.Store) {
		ctx := context.Background()
		mustSite(t, inv, "site-1")
		if _, _, err := inv.CreateHost(ctx, goodHost()); err != nil {
			t.Fatal(err)
		}
		const editors, rounds, allocations = 8, 10, 40
		unit := mec.Resources{MilliCPU: 100, MemoryMiB: 64}
		var (
			wg                sync.WaitGroup
			committed, edited atomic.Int64
			gaveUp            atomic.Int64
		)
		outcome := func(what string, err error, ok *atomic.Int64) {
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, mec.ErrConflict):
				gaveUp.Add(1)
			default:
				t.Errorf("%s: %v", what, err)
			}
		}
		for e := range editors {
			wg.Go(func() {
				for i := range rounds {
					h := goodHost()
					h.ID = ""
					h.Labels = map[string]string{"editor": fmt.Sprint(e), "round": fmt.Sprint(i)}
					_, _, err := inv.UpdateHost(ctx, "edge1-a", h, mec.AnyVersion)
					outcome("edit", err, &edited)
				}
			})
		}
		for range allocations {
			wg.Go(func() { outcome("allocate", allocate(ctx, st, "edge1-a", unit), &committed) })
		}
		wg.Wait()
		h, _, err := inv.GetHost(ctx, "edge1-a")
		if err != nil {
			t.Fatal(err)
		}
		n := committed.Load()
		want := mec.Resources{MilliCPU: 100 * n, MemoryMiB: 64 * n}
		if h.Allocated != want || h.DesiredGeneration != n {
			t.Errorf("allocated %+v at generation %d, want %+v at %d", h.Allocated, h.DesiredGeneration, want, n)
		}
		if n == 0 || edited.Load() == 0 {
			t.Errorf("%d allocations and %d edits committed: the race did not run", n, edited.Load())
		}
		t.Logf("%d allocations and %d edits committed, %d gave up on conflicts", n, edited.Load(), gaveUp.Load())
	})
}

// TestConcurrentConditionalUpdates: of writers that all read one version,
// exactly one wins; the others learn they were stale.
func TestConcurrentConditionalUpdates(t *testing.T) {
	forEachEngine(t, func(t *testing.T, inv *Service, _ mec.Store) {
		ctx := context.Background()
		mustSite(t, inv, "site-1")
		_, v, err := inv.CreateHost(ctx, goodHost())
		if err != nil {
			t.Fatal(err)
		}
		const writers = 10
		var wg sync.WaitGroup
		statuses := make(chan int, writers)
		for w := range writers {
			wg.Go(func() {
				h := goodHost()
				h.Name = fmt.Sprintf("writer %d", w)
				_, _, err := inv.UpdateHost(ctx, "edge1-a", h, v)
				statuses <- statusOf(err)
				if err != nil && statusOf(err) == 0 {
					t.Errorf("writer %d: %v", w, err)
				}
			})
		}
		wg.Wait()
		close(statuses)
		count := map[int]int{}
		for s := range statuses {
			count[s]++
		}
		if count[0] != 1 || count[http.StatusPreconditionFailed] != writers-1 {
			t.Errorf("outcomes by status = %v, want one success and %d × 412", count, writers-1)
		}
	})
}

// TestRecreatedHostContinuesGenerations: a host deleted and registered again
// under the same ID starts past its old desired generation, so an agent
// that kept the old desired state takes the new one for newer.
func TestRecreatedHostContinuesGenerations(t *testing.T) {
	ctx := context.Background()
	inv, st := newTestService(t)
	mustSite(t, inv, "site-1")
	if _, _, err := inv.CreateHost(ctx, goodHost()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := allocate(ctx, st, "edge1-a", mec.Resources{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := inv.DeleteHost(ctx, "edge1-a", mec.AnyVersion); err != nil {
		t.Fatal(err)
	}
	h, _, err := inv.CreateHost(ctx, goodHost())
	if err != nil {
		t.Fatal(err)
	}
	if h.DesiredGeneration != 4 {
		t.Fatalf("recreated host starts at generation %d, want 4", h.DesiredGeneration)
	}
	// The tombstone is spent: a third incarnation continues from the second.
	if err := inv.DeleteHost(ctx, "edge1-a", mec.AnyVersion); err != nil {
		t.Fatal(err)
	}
	if h, _, _ = inv.CreateHost(ctx, goodHost()); h.DesiredGeneration != 5 {
		t.Fatalf("third incarnation at generation %d, want 5", h.DesiredGeneration)
	}
}
