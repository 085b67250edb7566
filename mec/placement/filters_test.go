package placement

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// verdict runs f the way the engine does (prepared, site-level when it can)
// and checks that every path that should agree does: the prepared filter,
// the unprepared one, and KeepSite against Keep.
func verdict(t *testing.T, f Filter, req *Request, h *mec.Host, s *mec.Site) bool {
	t.Helper()
	run := f
	if p, ok := f.(FilterPreparer); ok {
		if run = p.PrepareFilter(req, nil); run == nil {
			return true // the request does not constrain this
		}
		if run.Name() != f.Name() {
			t.Fatalf("prepared filter is named %q, want %q", run.Name(), f.Name())
		}
		if raw := f.Keep(req, h, s); raw != run.Keep(req, h, s) {
			t.Fatalf("prepared %s says %v, unprepared says %v", f.Name(), !raw, raw)
		}
	}
	got := run.Keep(req, h, s)
	if sf, ok := run.(SiteFilter); ok {
		if bySite := sf.KeepSite(req, s); bySite != got {
			t.Fatalf("%s: KeepSite %v, Keep %v", f.Name(), bySite, got)
		}
	}
	return got
}

func host(id, site string, state mec.HostState, capacity, allocated mec.Resources, labels map[string]string) mec.Host {
	return mec.Host{ID: id, SiteID: site, State: state, Capacity: capacity, Allocated: allocated, Labels: labels}
}

func res(cpu, mem, storage, gpus int64) mec.Resources {
	return mec.Resources{MilliCPU: cpu, MemoryMiB: mem, StorageGB: storage, GPUs: gpus}
}

func TestHostIDFilter(t *testing.T) {
	many := make([]string, 40) // past the threshold where the filter builds a set
	for i := range many {
		many[i] = fmt.Sprintf("h%d", i)
	}
	tests := []struct {
		name string
		ids  []string
		host string
		want bool
	}{
		{"no constraint", nil, "h1", true},
		{"listed", []string{"h0", "h1"}, "h1", true},
		{"not listed", []string{"h0", "h2"}, "h1", false},
		{"case matters", []string{"H1"}, "h1", false},
		{"listed in a long list", many, "h39", true},
		{"not in a long list", many, "h40", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &Request{Constraints: mec.PlacementConstraints{HostIDs: tt.ids}}
			h := mec.Host{ID: tt.host, SiteID: "s"}
			if got := verdict(t, HostIDFilter{}, req, &h, &mec.Site{ID: "s"}); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSiteIDFilter(t *testing.T) {
	tests := []struct {
		name  string
		sites []string
		site  string
		want  bool
	}{
		{"no constraint", nil, "a", true},
		{"listed", []string{"a", "b"}, "b", true},
		{"not listed", []string{"a", "b"}, "c", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &Request{Constraints: mec.PlacementConstraints{SiteIDs: tt.sites}}
			h := mec.Host{ID: "h", SiteID: tt.site}
			if got := verdict(t, SiteIDFilter{}, req, &h, &mec.Site{ID: tt.site}); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestZoneFilter(t *testing.T) {
	tests := []struct {
		name  string
		zones []string
		zone  string
		want  bool
	}{
		{"no constraint", nil, "north", true},
		{"no constraint, site without zone", nil, "", true},
		{"in zone", []string{"north", "south"}, "south", true},
		{"other zone", []string{"north"}, "south", false},
		{"site without zone", []string{"north"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &Request{Constraints: mec.PlacementConstraints{Zones: tt.zones}}
			s := mec.Site{ID: "s", Zone: tt.zone}
			if got := verdict(t, ZoneFilter{}, req, &mec.Host{ID: "h", SiteID: "s"}, &s); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCountryFilter(t *testing.T) {
	tests := []struct {
		name    string
		want    string
		country string
		keep    bool
	}{
		{"no constraint", "", "FR", true},
		{"same", "FR", "FR", true},
		{"case-insensitive", "fr", "FR", true},
		{"other", "DE", "FR", false},
		{"site without country", "DE", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &Request{Constraints: mec.PlacementConstraints{CountryCode: tt.want}}
			s := mec.Site{ID: "s", Country: tt.country}
			if got := verdict(t, CountryFilter{}, req, &mec.Host{ID: "h", SiteID: "s"}, &s); got != tt.keep {
				t.Errorf("got %v, want %v", got, tt.keep)
			}
		})
	}
}

func TestLabelFilter(t *testing.T) {
	labels := map[string]string{"arch": "amd64", "gpu": "a100", "empty": ""}
	tests := []struct {
		name   string
		want   map[string]string
		labels map[string]string
		keep   bool
	}{
		{"no constraint", nil, labels, true},
		{"no constraint, unlabelled host", nil, nil, true},
		{"one matches", map[string]string{"arch": "amd64"}, labels, true},
		{"all match", map[string]string{"arch": "amd64", "gpu": "a100"}, labels, true},
		{"one of two differs", map[string]string{"arch": "amd64", "gpu": "t4"}, labels, false},
		{"value differs", map[string]string{"arch": "arm64"}, labels, false},
		{"missing", map[string]string{"fpga": "x"}, labels, false},
		{"empty value means present", map[string]string{"gpu": ""}, labels, true},
		{"present with empty value", map[string]string{"empty": ""}, labels, true},
		{"empty value, absent", map[string]string{"fpga": ""}, labels, false},
		{"unlabelled host", map[string]string{"arch": "amd64"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &Request{Constraints: mec.PlacementConstraints{HostLabels: tt.want}}
			h := mec.Host{ID: "h", SiteID: "s", Labels: tt.labels}
			if got := verdict(t, LabelFilter{}, req, &h, &mec.Site{ID: "s"}); got != tt.keep {
				t.Errorf("got %v, want %v", got, tt.keep)
			}
		})
	}
}

func TestStateFilter(t *testing.T) {
	tests := []struct {
		allowed []mec.HostState
		state   mec.HostState
		want    bool
	}{
		{nil, mec.HostReady, true},
		{nil, mec.HostUnknown, true},
		{nil, mec.HostNotReady, false},
		{nil, mec.HostDraining, false},
		{nil, "", false},
		{[]mec.HostState{mec.HostReady}, mec.HostReady, true},
		{[]mec.HostState{mec.HostReady}, mec.HostUnknown, false},
		{[]mec.HostState{}, mec.HostReady, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%s", tt.allowed, tt.state), func(t *testing.T) {
			h := mec.Host{ID: "h", SiteID: "s", State: tt.state}
			if got := verdict(t, StateFilter{Allowed: tt.allowed}, &Request{}, &h, &mec.Site{ID: "s"}); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if got, want := (StateFilter{}).Explain(), "are not Ready or Unknown"; got != want {
		t.Errorf("Explain = %q, want %q", got, want)
	}
}

// TestStateFilterReadyHold: a host back from NotReady is held for
// ReadyHold; one Ready for the first time, an Unknown one, and every host
// when the hold is 0 are not.
func TestStateFilterReadyHold(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	tests := []struct {
		name         string
		hold         time.Duration
		state        mec.HostState
		readySince   *time.Time
		lastNotReady *time.Time
		want         bool
	}{
		{"back 10s ago, hold 30s", 30 * time.Second, mec.HostReady, at(-10 * time.Second), at(-time.Minute), false},
		{"back exactly 30s ago", 30 * time.Second, mec.HostReady, at(-30 * time.Second), at(-time.Minute), true},
		{"back long ago", 30 * time.Second, mec.HostReady, at(-time.Hour), at(-2 * time.Hour), true},
		{"first Ready, never lost", 30 * time.Second, mec.HostReady, at(-time.Second), nil, true},
		{"Ready without ReadySince", 30 * time.Second, mec.HostReady, nil, at(-time.Minute), true},
		{"Unknown stays allowed", 30 * time.Second, mec.HostUnknown, nil, nil, true},
		{"NotReady stays out", 30 * time.Second, mec.HostNotReady, at(-time.Hour), at(-time.Second), false},
		{"no hold", 0, mec.HostReady, at(-time.Second), at(-time.Minute), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mec.Host{ID: "h", SiteID: "s", State: tt.state, ReadySince: tt.readySince, LastNotReady: tt.lastNotReady}
			f := StateFilter{ReadyHold: tt.hold, Clock: func() time.Time { return now }}
			if got := verdict(t, f, &Request{}, &h, &mec.Site{ID: "s"}); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if got, want := (StateFilter{ReadyHold: 30 * time.Second}).Explain(), "are not Ready or Unknown, or came back from NotReady less than 30s ago"; got != want {
		t.Errorf("Explain = %q, want %q", got, want)
	}
}

// TestWithReadyHold: the engine built from WithReadyHold holds a host back
// from an outage and places on it once the hold has passed, and the
// original filter list is left as it was.
func TestWithReadyHold(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	base := DefaultFilters()
	filters := WithReadyHold(base, time.Minute, clock)
	for _, f := range base {
		if sf, ok := f.(StateFilter); ok && sf.ReadyHold != 0 {
			t.Fatal("WithReadyHold changed the list it was given")
		}
	}
	e, err := New(filters, DefaultScores(), Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	back, lost := now.Add(-10*time.Second), now.Add(-time.Hour)
	h := host("back", "s", mec.HostReady, res(4000, 4096, 0, 0), res(0, 0, 0, 0), nil)
	h.ReadySince, h.LastNotReady = &back, &lost
	snap := func() *Snapshot { return NewSnapshot([]mec.Host{h}, []mec.Site{{ID: "s"}}) }
	_, err = e.Place(&Request{Need: res(1000, 512, 0, 0)}, snap())
	var nf *NoFitError
	if !errors.As(err, &nf) || nf.Counts()[NameState] != 1 {
		t.Fatalf("host back 10s ago with a 1m hold: %v", err)
	}
	back = now.Add(-2 * time.Minute)
	h.ReadySince = &back
	if d, err := e.Place(&Request{Need: res(1000, 512, 0, 0)}, snap()); err != nil || d.HostID != "back" {
		t.Fatalf("after the hold: %+v, %v", d, err)
	}
}

func TestCapacityFilter(t *testing.T) {
	capacity := res(8000, 16384, 100, 1)
	tests := []struct {
		name      string
		allocated mec.Resources
		need      mec.Resources
		want      [4]bool // CPU, Memory, Storage, GPU
	}{
		{"empty host", res(0, 0, 0, 0), res(2000, 4096, 10, 0), [4]bool{true, true, true, true}},
		{"exactly full after", res(6000, 12288, 90, 0), res(2000, 4096, 10, 1), [4]bool{true, true, true, true}},
		{"one over in each", res(6001, 12289, 91, 1), res(2000, 4096, 10, 1), [4]bool{false, false, false, false}},
		{"only memory short", res(1000, 16000, 0, 0), res(2000, 4096, 10, 0), [4]bool{true, false, true, true}},
		{"zero need on a full host", capacity, res(0, 0, 0, 0), [4]bool{true, true, true, true}},
		{"zero need on an overcommitted host", res(9000, 0, 0, 0), res(0, 0, 0, 0), [4]bool{false, true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &Request{Need: tt.need}
			h := mec.Host{ID: "h", SiteID: "s", Capacity: capacity, Allocated: tt.allocated}
			all := true
			for d := CPU; d <= GPU; d++ {
				got := verdict(t, CapacityFilter{Dim: d}, req, &h, &mec.Site{ID: "s"})
				if got != tt.want[d] {
					t.Errorf("%s: got %v, want %v", CapacityFilter{Dim: d}.Name(), got, tt.want[d])
				}
				all = all && got
			}
			// The four together must be exactly what the reservation
			// checks, or the caller would retry on hosts that never fit.
			if fits := h.Free().Fits(tt.need); fits != all {
				t.Errorf("filters say %v, mec.Resources.Fits says %v", all, fits)
			}
		})
	}
}

func TestFilterNamesAndReasons(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range DefaultFilters() {
		if seen[f.Name()] {
			t.Errorf("name %q used twice", f.Name())
		}
		seen[f.Name()] = true
		x, ok := f.(Explainer)
		if !ok || x.Explain() == "" {
			t.Errorf("%s has no reason for NoFitError", f.Name())
		}
	}
}
