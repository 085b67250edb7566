package placement

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mecorch/mecorch/latency/rttmap"
	"github.com/mecorch/mecorch/mec"
)

// fakeLatencyMap is a LatencyMap from a table; pairs it lacks are Unknown.
type fakeLatencyMap map[[2]string]rttmap.Entry

func (m fakeLatencyMap) CellSite(cell, site string) rttmap.Entry {
	if e, ok := m[[2]string{cell, site}]; ok {
		return e
	}
	return rttmap.Entry{Kind: rttmap.CellSite, A: cell, B: site, Quality: rttmap.Unknown}
}

func (m fakeLatencyMap) set(cell, site string, rtt time.Duration, q rttmap.Quality) {
	m[[2]string{cell, site}] = rttmap.Entry{Kind: rttmap.CellSite, A: cell, B: site, RTT: rtt, Quality: q}
}

// latFleet: sites a, b, c, one identical host each, so that only latency,
// spread and the tie-break tell them apart.
func latFleet() ([]mec.Host, []mec.Site) {
	sites := []mec.Site{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	var hosts []mec.Host
	for _, s := range sites {
		hosts = append(hosts, host(s.ID+"1", s.ID, mec.HostReady, big(), res(8000, 32768, 0, 0), nil))
	}
	return hosts, sites
}

func latEngine(t *testing.T, cfg LatencyConfig) *Engine {
	t.Helper()
	f, s := WithLatency(DefaultFilters(), DefaultScores(), cfg)
	e, err := New(f, s, Options{Clock: func() time.Time { return testTime }})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func nr(cell string, w float64) CellLoad { return CellLoad{CellID: cell, RAT: mec.RATNR, Weight: w} }

func TestLatencyHelper(t *testing.T) {
	m := fakeLatencyMap{}
	m.set("x", "a", 4*time.Millisecond, rttmap.Measured)   // 2 + 1 (NR) = 3 ms
	m.set("y", "a", 10*time.Millisecond, rttmap.Estimated) // 5 + 4 (EUTRA) = 9 ms
	m.set("z", "a", 2*time.Millisecond, rttmap.Stale)
	cfg := LatencyConfig{Map: m}
	serve := []CellLoad{nr("x", 3), {CellID: "y", RAT: mec.RATEUTRA, Weight: 1}}
	li, ok := Latency(cfg, "a", serve)
	want := mec.LatencyInfo{MeanNs: int64(4500 * time.Microsecond), WorstNs: int64(9 * time.Millisecond), WorstCell: "y", Cells: 2, Estimated: 1}
	if !ok || li != want {
		t.Errorf("Latency = %+v, %v; want %+v, true", li, ok, want)
	}
	// A configured radio latency replaces the default.
	cfg.Radio = map[mec.RAT]time.Duration{mec.RATNR: 500 * time.Microsecond}
	if li, _ := Latency(cfg, "a", serve[:1]); li.WorstNs != int64(2500*time.Microsecond) {
		t.Errorf("NR radio 0.5 ms: worst %d, want 2.5 ms", li.WorstNs)
	}
	// A stale cell makes the answer incomplete; the usable cells still count.
	li, ok = Latency(LatencyConfig{Map: m}, "a", []CellLoad{nr("x", 1), nr("z", 1)})
	if ok || li.WorstNs != int64(3*time.Millisecond) || li.Cells != 2 {
		t.Errorf("with a stale cell: %+v, %v; want worst 3 ms over 2 cells, not ok", li, ok)
	}
	if li, ok := Latency(LatencyConfig{Map: m}, "nowhere", serve); ok || li.WorstNs != 0 {
		t.Errorf("unknown site: %+v, %v", li, ok)
	}
	// All weights zero: a plain mean.
	if li, _ := Latency(LatencyConfig{Map: m}, "a", []CellLoad{nr("x", 0), {CellID: "y", RAT: mec.RATEUTRA}}); li.MeanNs != int64(6*time.Millisecond) {
		t.Errorf("zero weights: mean %d, want 6 ms", li.MeanNs)
	}
}

func TestLatencyFilterBound(t *testing.T) {
	m := fakeLatencyMap{}
	m.set("x", "a", 2*time.Millisecond, rttmap.Measured)  // 2 ms one way
	m.set("x", "b", 10*time.Millisecond, rttmap.Measured) // 6 ms
	m.set("x", "c", 1*time.Millisecond, rttmap.Stale)     // would be closest, but stale
	e := latEngine(t, LatencyConfig{Map: m})
	hosts, sites := latFleet()
	snap := NewSnapshot(hosts, sites)

	req := &Request{Need: res(1000, 1024, 0, 0), Serve: []CellLoad{nr("x", 1)}, MaxLatency: 5 * time.Millisecond}
	d, err := e.Place(req, snap)
	if err != nil {
		t.Fatal(err)
	}
	if d.HostID != "a1" || d.Candidates != 1 || d.Rejected[NameAppLatency] != 2 {
		t.Errorf("decision %s, %d candidates, rejected %v; want a1, 1, appLatency 2", d.HostID, d.Candidates, d.Rejected)
	}

	// A bound no site meets: the error says too far, with the numbers.
	req.MaxLatency = time.Millisecond
	_, err = e.Place(req, snap)
	var nf *NoFitError
	if !errors.As(err, &nf) || nf.Counts()[NameAppLatency] != 3 {
		t.Fatalf("err = %v, want a NoFitError with 3 hosts removed by appLatency", err)
	}
	msg := nf.Error()
	for _, want := range []string{"too far", "2.0 ms one-way worst against a 1.0 ms bound", "without a usable latency measurement", "site c"} {
		if !strings.Contains(msg, want) {
			t.Errorf("NoFitError %q lacks %q", msg, want)
		}
	}

	// Only unknown and stale: the error says no measurement, not too far.
	req.Serve = []CellLoad{nr("nowhere", 1)}
	req.MaxLatency = time.Second
	_, err = e.Place(req, snap)
	if !errors.As(err, &nf) || strings.Contains(nf.Error(), "too far") || !strings.Contains(nf.Error(), "without a usable latency") {
		t.Errorf("err = %v, want only 'no measurement'", err)
	}

	// No bound: nothing is filtered, and the unusable site scores 0.
	req.Serve, req.MaxLatency = []CellLoad{nr("x", 1)}, 0
	d, err = e.Place(req, snap)
	if err != nil || d.HostID != "a1" || d.Candidates != 3 {
		t.Fatalf("no bound: %+v, %v", d, err)
	}
	for _, sh := range d.Top {
		if sh.HostID == "c1" && sh.Scores[NameLatency] != 0 {
			t.Errorf("stale site scores %v, want 0", sh.Scores[NameLatency])
		}
	}
}

func TestLatencyStagesSkipWithoutCells(t *testing.T) {
	e := latEngine(t, LatencyConfig{Map: fakeLatencyMap{}})
	hosts, sites := latFleet()
	// A bound but no cells: no latency stage, every host is a candidate
	// and no breakdown or latency is recorded.
	d, err := e.Place(&Request{Need: res(1000, 1024, 0, 0), MaxLatency: time.Millisecond}, NewSnapshot(hosts, sites))
	if err != nil || d.Candidates != 3 {
		t.Fatalf("%+v, %v", d, err)
	}
	if _, ok := d.Top[0].Scores[NameLatency]; ok || d.Top[0].Latency != nil {
		t.Errorf("latency recorded without cells to serve: %+v", d.Top[0])
	}
}

func TestLatencyWeightingByLoad(t *testing.T) {
	// a is near x and far from y; b the opposite. Where the UEs are
	// decides.
	m := fakeLatencyMap{}
	m.set("x", "a", 2*time.Millisecond, rttmap.Measured)
	m.set("y", "a", 12*time.Millisecond, rttmap.Measured)
	m.set("x", "b", 12*time.Millisecond, rttmap.Measured)
	m.set("y", "b", 2*time.Millisecond, rttmap.Measured)
	e := latEngine(t, LatencyConfig{Map: m})
	hosts, sites := latFleet()
	for _, tt := range []struct {
		wx, wy float64
		want   string
	}{{10, 1, "a1"}, {1, 10, "b1"}} {
		req := &Request{Need: res(1000, 1024, 0, 0), Serve: []CellLoad{nr("x", tt.wx), nr("y", tt.wy)}, MaxLatency: 10 * time.Millisecond}
		d, err := e.Place(req, NewSnapshot(slices.Clone(hosts), sites))
		if err != nil {
			t.Fatal(err)
		}
		if d.HostID != tt.want {
			t.Errorf("load x=%v y=%v: placed on %s, want %s", tt.wx, tt.wy, d.HostID, tt.want)
		}
	}
}

func TestLatencyRanksBeforeSpreadAndHeadroom(t *testing.T) {
	m := fakeLatencyMap{}
	m.set("x", "a", 2*time.Millisecond, rttmap.Measured) // 2 ms
	m.set("x", "b", 4*time.Millisecond, rttmap.Measured) // 3 ms
	m.set("x", "c", 4*time.Millisecond+40*time.Microsecond, rttmap.Measured)
	e := latEngine(t, LatencyConfig{Map: m})
	hosts, sites := latFleet()
	// b's host is much emptier than c's: headroom would pick b.
	hosts[1].Allocated = res(0, 0, 0, 0)
	hosts[2].Allocated = res(30000, 120000, 0, 0)
	serve := []CellLoad{nr("x", 1)}

	// a is closest though it already has a replica.
	req := &Request{Need: res(1000, 1024, 0, 0), Serve: serve, Peers: map[string]int{"a": 1}}
	d, err := e.Place(req, NewSnapshot(slices.Clone(hosts), sites))
	if err != nil || d.HostID != "a1" {
		t.Fatalf("closest site with a replica: %s, %v; want a1", d.HostID, err)
	}
	if !strings.HasPrefix(d.Top[0].Why, "lowest latency: 2.0 ms mean, 2.0 ms worst to 1 cell, measured") {
		t.Errorf("winner Why %q", d.Top[0].Why)
	}
	if got := whyOf(d, "b1"); got != "1.0 ms more latency (3.0 ms vs 2.0 ms mean)" {
		t.Errorf("b1 Why %q", got)
	}

	// b and c are 20 µs apart (one way), within one step of the score: a tie, which spread decides
	// against b's replica, though b has more headroom.
	delete(m, [2]string{"x", "a"})
	req.Peers = map[string]int{"b": 1}
	d, err = e.Place(req, NewSnapshot(slices.Clone(hosts), sites))
	if err != nil || d.HostID != "c1" {
		t.Fatalf("near-tie on latency: %s, %v; want c1 (spread)", d.HostID, err)
	}
	if got := whyOf(d, "b1"); got != "site already has 1 replica(s)" {
		t.Errorf("b1 Why %q", got)
	}
	if w := d.Top[0].Why; !strings.HasPrefix(w, "no replica on its site yet; latency 3.0 ms mean") {
		t.Errorf("winner Why %q", w)
	}

	// No peers: headroom decides the tie.
	req.Peers = nil
	d, err = e.Place(req, NewSnapshot(slices.Clone(hosts), sites))
	if err != nil || d.HostID != "b1" {
		t.Fatalf("tie without peers: %s, %v; want b1 (headroom)", d.HostID, err)
	}
	if got := whyOf(d, "c1"); !strings.HasPrefix(got, "less headroom (") {
		t.Errorf("c1 Why %q", got)
	}
	if d.Top[0].Latency == nil || d.Top[0].Latency.Cells != 1 {
		t.Errorf("winner latency %+v", d.Top[0].Latency)
	}
}

func whyOf(d mec.Decision, hostID string) string {
	for _, sh := range d.Top {
		if sh.HostID == hostID {
			return sh.Why
		}
	}
	return "<not in top>"
}

func TestLatencyMeasureEstimatedWinner(t *testing.T) {
	m := fakeLatencyMap{}
	m.set("x", "a", 2*time.Millisecond, rttmap.Estimated)
	m.set("y", "a", 2*time.Millisecond, rttmap.Measured)
	m.set("x", "b", 8*time.Millisecond, rttmap.Measured)
	m.set("y", "b", 8*time.Millisecond, rttmap.Measured)
	var asked [][]string
	cfg := LatencyConfig{Map: m, Measure: func(site string, cells []string) {
		asked = append(asked, append([]string{site}, cells...))
	}}
	e := latEngine(t, cfg)
	hosts, sites := latFleet()
	req := &Request{Need: res(1000, 1024, 0, 0), Serve: []CellLoad{nr("x", 1), nr("y", 1)}, MaxLatency: 10 * time.Millisecond}
	d, err := e.Place(req, NewSnapshot(hosts, sites))
	if err != nil || d.HostID != "a1" {
		t.Fatalf("%s, %v", d.HostID, err)
	}
	if !slices.EqualFunc(asked, [][]string{{"a", "x"}}, slices.Equal) {
		t.Errorf("Measure calls %v, want [[a x]]", asked)
	}
	if w := d.Top[0].Why; !strings.Contains(w, "1 of them estimated") {
		t.Errorf("winner Why %q does not say it is partly estimated", w)
	}

	// A measured winner asks for nothing.
	asked = nil
	m.set("x", "a", 2*time.Millisecond, rttmap.Measured)
	if _, err := e.Place(req, NewSnapshot(hosts, sites)); err != nil || asked != nil {
		t.Errorf("measured winner: Measure calls %v, err %v", asked, err)
	}
}

func TestWithLatencyOrder(t *testing.T) {
	f, s := WithLatency(DefaultFilters(), DefaultScores(), LatencyConfig{})
	names := make([]string, len(f))
	for i := range f {
		names[i] = f[i].Name()
	}
	li, si := slices.Index(names, NameAppLatency), slices.Index(names, NameState)
	if li < 0 || li != si-1 || li < slices.Index(names, NameHostLabels) {
		t.Errorf("filter order %v: appLatency must follow the constraints and precede state", names)
	}
	if s[0].Score.Name() != NameLatency || s[0].Weight != LatencyWeight || len(s) != len(DefaultScores())+1 {
		t.Errorf("scores %+v", s)
	}
	if len(DefaultFilters()) != len(f)-1 {
		t.Error("WithLatency changed DefaultFilters")
	}
	// A nil map knows nothing: with a bound, nothing fits.
	e, _ := New(f, s, Options{})
	hosts, sites := latFleet()
	_, err := e.Place(&Request{Serve: []CellLoad{nr("x", 1)}, MaxLatency: time.Second}, NewSnapshot(hosts, sites))
	var nf *NoFitError
	if !errors.As(err, &nf) || nf.Counts()[NameAppLatency] != 3 {
		t.Errorf("nil map: %v", err)
	}
}
