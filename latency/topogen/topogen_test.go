package topogen

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func mediumConfig(seed int64) Config {
	c := DefaultConfig()
	c.Seed = seed
	c.Sites = 200
	c.Cities = 8
	c.UEs = 5000
	c.AreaKm = 600
	c.Nearest = 16 // well below the site count, so the city pruning is exercised
	return c
}

func TestDeterministic(t *testing.T) {
	a := Generate(mediumConfig(7))
	b := Generate(mediumConfig(7))
	c := Generate(mediumConfig(8))
	same := func(x, y *Topology) bool {
		if x.NumHosts() != y.NumHosts() || x.NumUEs() != y.NumUEs() {
			return false
		}
		for h := range x.NumHosts() {
			if x.Host(h) != y.Host(h) {
				return false
			}
		}
		for u := range x.NumUEs() {
			if x.UECell(u) != y.UECell(u) {
				return false
			}
		}
		for cell := 0; cell < x.NumCells(); cell += 7 {
			for s := 0; s < x.NumSites(); s += 3 {
				if x.CellSiteRTT(cell, s) != y.CellSiteRTT(cell, s) ||
					x.MeasuredCellSiteRTT(cell, s) != y.MeasuredCellSiteRTT(cell, s) {
					return false
				}
			}
		}
		ra, rb := rand.New(rand.NewPCG(1, 2)), rand.New(rand.NewPCG(1, 2))
		for cell := range x.NumCells() {
			if x.NeighbourCell(ra, cell) != y.NeighbourCell(rb, cell) {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Fatal("same seed gave different topologies")
	}
	if same(a, c) {
		t.Fatal("different seeds gave the same topology")
	}
}

func TestSizes(t *testing.T) {
	cfg := mediumConfig(3)
	topo := Generate(cfg)
	if topo.NumSites() != cfg.Sites || topo.NumCities() != cfg.Cities {
		t.Fatalf("sites %d cities %d", topo.NumSites(), topo.NumCities())
	}
	if topo.NumCells() != cfg.Sites*cfg.CellsPerSite || topo.NumUEs() != cfg.UEs {
		t.Fatalf("cells %d ues %d", topo.NumCells(), topo.NumUEs())
	}
	for s := range topo.NumSites() {
		f, e := topo.SiteHosts(s)
		if n := e - f; n < cfg.HostsMin || n > cfg.HostsMax {
			t.Fatalf("site %d has %d hosts", s, n)
		}
	}
	sites := 0
	for c := range topo.NumCities() {
		f, e := topo.CitySites(c)
		if e <= f || !topo.IsHub(f) {
			t.Fatalf("city %d: sites [%d,%d), first hub %v", c, f, e, topo.IsHub(f))
		}
		sites += e - f
	}
	if sites != cfg.Sites {
		t.Fatalf("cities hold %d sites", sites)
	}
	util := float64(cfg.UEs) / float64(topo.TotalCapacity())
	if math.Abs(util-cfg.Utilization) > 0.03 {
		t.Fatalf("utilization %.3f, want ≈ %.2f", util, cfg.Utilization)
	}
	// Zipf: the first city is the largest.
	f0, e0 := topo.CitySites(0)
	fl, el := topo.CitySites(cfg.Cities - 1)
	if e0-f0 <= el-fl {
		t.Fatalf("city 0 has %d sites, last city %d", e0-f0, el-fl)
	}
}

// TestTriangleViolations checks that the pairs violating the triangle
// inequality are exactly (a large share of) the detoured ones, at about the
// configured fraction.
func TestTriangleViolations(t *testing.T) {
	cfg := mediumConfig(11)
	cfg.Sites = 120
	cfg.DetourFraction = 0.05
	topo := Generate(cfg)
	n := topo.NumSites()
	pairs, detoured, violating := 0, 0, 0
	for a := range n {
		for b := a + 1; b < n; b++ {
			pairs++
			direct := topo.SiteRTT(a, b)
			viol := false
			for c := range n {
				if c != a && c != b && topo.SiteRTT(a, c)+topo.SiteRTT(c, b) < direct {
					viol = true
					break
				}
			}
			if topo.Detoured(a, b) {
				detoured++
			}
			if viol {
				violating++
				if !topo.Detoured(a, b) {
					t.Fatalf("pair %d-%d violates the triangle inequality without a detour", a, b)
				}
			}
		}
	}
	frac := float64(violating) / float64(pairs)
	t.Logf("pairs %d detoured %d violating %d (%.4f)", pairs, detoured, violating, frac)
	if frac < 0.6*cfg.DetourFraction || frac > 1.3*cfg.DetourFraction {
		t.Fatalf("violating fraction %.4f, configured %.3f", frac, cfg.DetourFraction)
	}
}

func TestNearestListsExact(t *testing.T) {
	topo := Generate(mediumConfig(5))
	k := topo.Config().Nearest
	for cell := 0; cell < topo.NumCells(); cell += 5 {
		type e struct {
			site   int
			tr, me int64
		}
		all := make([]e, topo.NumSites())
		for s := range all {
			all[s] = e{s, int64(topo.CellSiteRTT(cell, s)), int64(topo.MeasuredCellSiteRTT(cell, s))}
		}
		sort.Slice(all, func(i, j int) bool { return all[i].tr < all[j].tr })
		nt := topo.NearestTrue(cell)
		if len(nt) != k || int64(nt[k-1].RTT) != all[k-1].tr || int64(nt[0].RTT) != all[0].tr {
			t.Fatalf("cell %d: nearest true list is not the true top %d", cell, k)
		}
		sort.Slice(all, func(i, j int) bool { return all[i].me < all[j].me })
		nm := topo.NearestMeasured(cell)
		if len(nm) != k || int64(nm[k-1].RTT) != all[k-1].me {
			t.Fatalf("cell %d: nearest measured list is not the measured top %d", cell, k)
		}
	}
}

func TestMeasurementError(t *testing.T) {
	cfg := mediumConfig(9)
	cfg.MeasureP95RelErr = 0.05
	topo := Generate(cfg)
	var errs []float64
	for cell := 0; cell < topo.NumCells(); cell += 3 {
		for s := range topo.NumSites() {
			tr := float64(topo.CellSiteRTT(cell, s))
			errs = append(errs, math.Abs(float64(topo.MeasuredCellSiteRTT(cell, s))/tr-1))
		}
	}
	sort.Float64s(errs)
	p95 := errs[len(errs)*95/100]
	if math.Abs(p95-0.05) > 0.005 {
		t.Fatalf("p95 relative error %.4f, want 0.05", p95)
	}
}

func TestHandoversStayMostlyInCity(t *testing.T) {
	topo := Generate(mediumConfig(4))
	rng := rand.New(rand.NewPCG(3, 4))
	in, n := 0, 20000
	for range n {
		c := rng.IntN(topo.NumCells())
		nc := topo.NeighbourCell(rng, c)
		if nc == c {
			t.Fatal("handover to the same cell")
		}
		if topo.CellCity(nc) == topo.CellCity(c) {
			in++
		}
	}
	if f := float64(in) / float64(n); f < 0.85 || f > 0.95 {
		t.Fatalf("in-city handovers %.3f, want ≈ 0.9", f)
	}
}

func TestHopsAndZones(t *testing.T) {
	topo := Generate(mediumConfig(2))
	cell := 4 // a non-hub site's cell unless site 1 is a hub
	home := topo.CellSite(cell)
	if topo.CellSiteHops(cell, home) != 1 {
		t.Fatal("home site is not one hop away")
	}
	for s := range topo.NumSites() {
		h := topo.CellSiteHops(cell, s)
		if s != home && (h < 2 || h > 4) {
			t.Fatalf("hops to %d = %d", s, h)
		}
	}
	for a := range topo.NumCities() {
		if topo.ZoneCost(a, a) != 0 {
			t.Fatal("intra-zone cost not zero")
		}
		for b := range topo.NumCities() {
			if topo.ZoneCost(a, b) != topo.ZoneCost(b, a) {
				t.Fatal("zone cost not symmetric")
			}
		}
	}
}
