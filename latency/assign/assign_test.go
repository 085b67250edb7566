package assign

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mecorch/mecorch/latency/topogen"
)

func small(t *testing.T, util float64) *topogen.Topology {
	t.Helper()
	return topogen.Generate(topogen.SmallConfig(3, 1500, util))
}

func checkPlan(t *testing.T, name string, topo *topogen.Topology, a Assignment) Metrics {
	t.Helper()
	m := Evaluate(topo, a)
	if m.Over != 0 {
		t.Fatalf("%s: %d hosts over capacity", name, m.Over)
	}
	if topo.NumUEs() <= topo.TotalCapacity() && m.Unplaced != 0 {
		t.Fatalf("%s: %d UEs unplaced with enough capacity", name, m.Unplaced)
	}
	return m
}

func ours(topo *topogen.Topology) Assignment {
	a := New(topo, DefaultOptions())
	a.Assign()
	return a.Result()
}

func TestCapacityAndCoverage(t *testing.T) {
	for _, util := range []float64{0.8, 0.95, 1.0} {
		topo := small(t, util)
		checkPlan(t, "ours", topo, ours(topo))
		checkPlan(t, "random", topo, Random(topo, 1))
		checkPlan(t, "hop", topo, NearestByHop(topo))
		checkPlan(t, "greedy", topo, GreedyNearest(topo))
		checkPlan(t, "kube", topo, KubeSampled(topo, 1))
		checkPlan(t, "diktyo", topo, DiktyoZone(topo))
	}
}

func TestOverCapacityLeavesRestUnplaced(t *testing.T) {
	topo := small(t, 1.2)
	m := checkPlan(t, "ours", topo, ours(topo))
	if m.Placed != topo.TotalCapacity() {
		t.Fatalf("placed %d, capacity %d", m.Placed, topo.TotalCapacity())
	}
}

func TestOracleOursRandomOrder(t *testing.T) {
	topo := small(t, 0.9)
	ex, err := Exact(topo)
	if err != nil {
		t.Fatal(err)
	}
	me := checkPlan(t, "exact", topo, ex)
	mo := checkPlan(t, "ours", topo, ours(topo))
	mr := checkPlan(t, "random", topo, Random(topo, 7))
	lb := LowerBound(topo)
	t.Logf("mean lb %v exact %v ours %v random %v", lb.Mean, me.Mean, mo.Mean, mr.Mean)
	if !(float64(lb.Mean) <= me.Sum/float64(me.Placed) && me.Sum <= mo.Sum*(1+1e-9) && mo.Sum < mr.Sum) {
		t.Fatalf("want lb ≤ exact ≤ ours < random on the sum objective: %v %v %v %v", lb.Mean, me.Mean, mo.Mean, mr.Mean)
	}
	if lb.P95 > me.P95 {
		t.Fatalf("lower bound p95 %v above exact p95 %v", lb.P95, me.P95)
	}
}

// brute enumerates every placement of the problem's UEs.
func brute(p *Problem) float64 {
	var units []int
	for i, d := range p.Demand {
		for range d {
			units = append(units, i)
		}
	}
	nh := len(p.Cap)
	x := make([][]int, len(p.Demand))
	for i := range x {
		x[i] = make([]int, nh)
	}
	load := make([]int, nh)
	best := math.Inf(1)
	var rec func(k int)
	rec = func(k int) {
		if k == len(units) {
			best = min(best, p.Cost(x))
			return
		}
		for j := range nh {
			if load[j] < p.Cap[j] {
				load[j]++
				x[units[k]][j]++
				rec(k + 1)
				load[j]--
				x[units[k]][j]--
			}
		}
	}
	rec(0)
	return best
}

func TestExactMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 40 {
		no, nh := 1+rng.IntN(3), 2+rng.IntN(3)
		p := &Problem{Demand: make([]int, no), Half: make([][]float64, no), Cap: make([]int, nh), Svc: make([]float64, nh)}
		total := 0
		for i := range no {
			p.Demand[i] = rng.IntN(3)
			total += p.Demand[i]
			p.Half[i] = make([]float64, nh)
			for j := range nh {
				p.Half[i][j] = 1e6 * rng.Float64() * 5
			}
		}
		capSum := 0
		for j := range nh {
			p.Cap[j] = 1 + rng.IntN(3)
			capSum += p.Cap[j]
			p.Svc[j] = 1e5 + 1e6*rng.Float64()
		}
		if total > capSum || total > 7 {
			continue
		}
		x, got, err := SolveExact(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := range x {
			s := 0
			for j := range x[i] {
				if x[i][j] < 0 {
					t.Fatalf("trial %d: negative flow", trial)
				}
				s += x[i][j]
			}
			if s != p.Demand[i] {
				t.Fatalf("trial %d: origin %d gets %d, demand %d", trial, i, s, p.Demand[i])
			}
		}
		if want := brute(p); math.Abs(got-want) > 1e-6*max(1, want) {
			t.Fatalf("trial %d: exact %v, brute force %v", trial, got, want)
		}
	}
}

func TestHandoverKeepsHostWithinBound(t *testing.T) {
	topo := small(t, 0.8)
	opts := DefaultOptions()
	opts.Bound = 1_000_000_000 // 1 s: every live host meets it
	a := New(topo, opts)
	a.Assign()
	rng := rand.New(rand.NewPCG(1, 1))
	for range 500 {
		ue := rng.IntN(topo.NumUEs())
		before := a.ueHost[ue]
		if a.Handover(ue, topo.NeighbourCell(rng, int(a.ueCell[ue]))) || a.ueHost[ue] != before {
			t.Fatalf("UE %d moved although its host meets the bound", ue)
		}
	}
}

func TestHandoverHysteresisAndMove(t *testing.T) {
	// Lightly loaded, so that queueing cannot outweigh a far host.
	topo := small(t, 0.3)
	a := New(topo, DefaultOptions())
	a.Assign()
	// A handover to another sector of the same site changes nothing worth
	// a migration.
	ue := 0
	cell := int(a.ueCell[ue])
	sib := cell ^ 1
	if topo.CellSite(sib) != topo.CellSite(cell) {
		sib = cell - 1
	}
	h := a.ueHost[ue]
	if a.Handover(ue, sib) || a.ueHost[ue] != h {
		t.Fatal("UE migrated on a same-site handover")
	}
	// A handover to a far city must move it to a host near the new cell.
	far := -1
	for c := range topo.NumCells() {
		if topo.CellSiteRTT(c, int(a.h.site[h])) > 3_000_000 {
			far = c
			break
		}
	}
	if far < 0 {
		t.Skip("no far cell in this topology")
	}
	if !a.Handover(ue, far) {
		t.Fatal("UE kept a host 3 ms away")
	}
	r := a.Result()
	if m := Evaluate(topo, r); m.Over != 0 || m.Unplaced != 0 {
		t.Fatalf("after handover: over %d unplaced %d", m.Over, m.Unplaced)
	}
}

func TestFailSiteMovesOnlyItsUEs(t *testing.T) {
	topo := small(t, 0.8)
	a := New(topo, DefaultOptions())
	a.Assign()
	before := a.Result()
	site := int(a.h.site[before.Host[0]])
	moved := a.FailSite(site)
	after := a.Result()
	f, e := topo.SiteHosts(site)
	on := func(h int32) bool { return int(h) >= f && int(h) < e }
	n := 0
	for u := range before.Host {
		switch {
		case on(before.Host[u]):
			n++
			if on(after.Host[u]) || after.Host[u] < 0 {
				t.Fatalf("UE %d still on the failed site or unplaced", u)
			}
		case after.Host[u] != before.Host[u]:
			t.Fatalf("UE %d not on the failed site was moved", u)
		}
	}
	if n == 0 || n != len(moved) {
		t.Fatalf("moved %d, on site %d", len(moved), n)
	}
	if m := Evaluate(topo, after); m.Over != 0 {
		t.Fatal("capacity exceeded after failure")
	}
	a.RestoreSite(site)
	if a.failed[f] {
		t.Fatal("site not restored")
	}
}

// TestNearestByHopPicksFewestHops replays the baseline's decisions.
func TestNearestByHopPicksFewestHops(t *testing.T) {
	topo := small(t, 0.95)
	a := NearestByHop(topo)
	load := make([]int, topo.NumHosts())
	for u, h := range a.Host {
		cell := int(a.Cell[u])
		got := topo.CellSiteHops(cell, topo.Host(int(h)).Site)
		gotU := float64(load[h]) / float64(topo.Host(int(h)).Capacity)
		for x := range load {
			if load[x] >= topo.Host(x).Capacity {
				continue
			}
			hx := topo.CellSiteHops(cell, topo.Host(x).Site)
			ux := float64(load[x]) / float64(topo.Host(x).Capacity)
			if hx < got || (hx == got && ux < gotU) {
				t.Fatalf("UE %d: host %d (%d hops, util %.2f) but %d has %d hops util %.2f", u, h, got, gotU, x, hx, ux)
			}
		}
		load[h]++
	}
}

func TestDiktyoPicksCheapestZone(t *testing.T) {
	topo := small(t, 0.95)
	a := DiktyoZone(topo)
	load := make([]int, topo.NumHosts())
	for u, h := range a.Host {
		z := topo.CellCity(int(a.Cell[u]))
		got := topo.ZoneCost(z, topo.SiteCity(topo.Host(int(h)).Site))
		gotU := float64(load[h]) / float64(topo.Host(int(h)).Capacity)
		for x := range load {
			if load[x] >= topo.Host(x).Capacity {
				continue
			}
			cx := topo.ZoneCost(z, topo.SiteCity(topo.Host(x).Site))
			ux := float64(load[x]) / float64(topo.Host(x).Capacity)
			if cx < got || (cx == got && ux < gotU) {
				t.Fatalf("UE %d: host %d zone cost %v util %.2f, but %d has %v util %.2f", u, h, got, gotU, x, cx, ux)
			}
		}
		load[h]++
	}
}

func TestTrueBestFractionWithoutNoise(t *testing.T) {
	cfg := topogen.SmallConfig(4, 1500, 0.8)
	cfg.MeasureP95RelErr = 0
	if f := TrueBestFraction(topogen.Generate(cfg)); f < 0.99 {
		t.Fatalf("noise-free true-best fraction %.3f", f)
	}
	cfg.MeasureP95RelErr = 0.5
	if f := TrueBestFraction(topogen.Generate(cfg)); f > 0.95 {
		t.Fatalf("50%% noise still picks the true best for %.3f", f)
	}
}
