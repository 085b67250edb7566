package probeplan

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// grid is sites on a rows×cols grid 0.5° apart, hostsPer hosts and
// cellsPer cells each.
func grid(rows, cols, hostsPer, cellsPer int) Inventory {
	var inv Inventory
	for r := range rows {
		for c := range cols {
			id := fmt.Sprintf("s%03d-%03d", r, c)
			inv.Sites = append(inv.Sites, Site{ID: id, Lat: 40 + float64(r)*0.5, Lon: float64(c) * 0.5})
			for h := range hostsPer {
				inv.Hosts = append(inv.Hosts, Host{ID: fmt.Sprintf("%s/h%d", id, h), Site: id, Addr: "10.0.0.1"})
			}
			for k := range cellsPer {
				inv.Cells = append(inv.Cells, Cell{ID: fmt.Sprintf("%s/c%d", id, k), Site: id, Addr: "10.1.0.1"})
			}
		}
	}
	return inv
}

func TestPlanBounds(t *testing.T) {
	inv := grid(6, 6, 3, 2)
	known := map[string]bool{}
	for _, h := range inv.Hosts {
		known["host/"+h.ID] = true
	}
	for _, c := range inv.Cells {
		known["cell/"+c.ID] = true
	}
	for _, cfg := range []Config{{}, {Max: 5}, {Max: 1}, {Max: 30, Neighbours: 10, Rotating: 8}} {
		pr := New(cfg).Prepare(inv)
		max := New(cfg).cfg.Max
		for epoch := range uint64(5) {
			for _, h := range inv.Hosts {
				plan := pr.Plan(h.ID, epoch)
				if len(plan) > max || len(plan) == 0 {
					t.Fatalf("cfg %+v: %s has %d targets, want 1..%d", cfg, h.ID, len(plan), max)
				}
				seen := map[string]bool{}
				for _, tg := range plan {
					k := tg.Kind + "/" + tg.ID
					if tg.Kind == KindHost && tg.ID == h.ID {
						t.Errorf("%s probes itself", h.ID)
					}
					if seen[k] {
						t.Errorf("%s: duplicate %s", h.ID, k)
					}
					if !known[k] || tg.Addr == "" {
						t.Errorf("%s: target %+v not in the inventory", h.ID, tg)
					}
					seen[k] = true
				}
			}
		}
	}
	if New(Config{}).Plan(inv, "nobody", 0) != nil {
		t.Error("plan for an unknown host")
	}
}

// TestPlanPriorities checks the order on a known layout with the default
// config: 2 own cells, 1 peer, 4 neighbour hosts, neighbour cells split
// over 3 hosts, 3 rotating.
func TestPlanPriorities(t *testing.T) {
	inv := grid(5, 5, 3, 2)
	p := New(Config{})
	host := "s002-002/h1" // centre of the grid
	plan := p.Plan(inv, host, 7)
	kinds := func(ts []Target) (s []string) {
		for _, t := range ts {
			s = append(s, t.Kind+":"+t.ID[:8])
		}
		return s
	}
	if plan[0].ID != "s002-002/c0" || plan[1].ID != "s002-002/c1" {
		t.Errorf("own cells not first: %v", kinds(plan))
	}
	if plan[2].Kind != KindHost || plan[2].ID[:8] != "s002-002" {
		t.Errorf("third is not a same-site peer: %v", kinds(plan))
	}
	// The four nearest sites of the centre of a 0.5° grid are its four
	// direct neighbours (0.5° of longitude at 41° N is shorter than 0.5°
	// of latitude, so east and west come first).
	var got []string
	for _, tg := range plan[3:7] {
		got = append(got, tg.ID[:8])
	}
	want := []string{"s002-001", "s002-003", "s001-002", "s003-002"}
	if !slices.Equal(got, want) {
		t.Errorf("neighbour hosts at %v, want %v", got, want)
	}
	// 2 + 1 + 4, then host 1's share of the 8 neighbour cells (j = 1,
	// 4, 7), then 3 more nearest hosts up to 13, then 3 rotating.
	if len(plan) != 16 {
		t.Errorf("plan has %d targets, want the full 16: %v", len(plan), kinds(plan))
	}
	for i, tg := range plan[7:10] {
		if tg.Kind != KindCell || !slices.Contains(want, tg.ID[:8]) || tg.ID[9:] != []string{"c1", "c0", "c1"}[i] {
			t.Errorf("neighbour cell slot %d holds %s", i, tg.ID)
		}
	}
	for _, tg := range plan[10:13] {
		if tg.Kind != KindHost || slices.Contains(want, tg.ID[:8]) || tg.ID[:8] == "s002-002" {
			t.Errorf("next-nearest slot holds %s", tg.ID)
		}
	}
	for _, tg := range plan[13:] {
		if tg.Kind != KindHost || slices.Contains(append(want, "s002-002"), tg.ID[:8]) {
			t.Errorf("rotating slot holds %s, want a host at another site", tg.ID)
		}
	}
}

func TestPlanDeterministic(t *testing.T) {
	inv := grid(6, 7, 2, 3)
	shuffled := Inventory{Hosts: slices.Clone(inv.Hosts), Cells: slices.Clone(inv.Cells), Sites: slices.Clone(inv.Sites)}
	rng := rand.New(rand.NewPCG(1, 1))
	rng.Shuffle(len(shuffled.Hosts), func(i, j int) { shuffled.Hosts[i], shuffled.Hosts[j] = shuffled.Hosts[j], shuffled.Hosts[i] })
	rng.Shuffle(len(shuffled.Cells), func(i, j int) { shuffled.Cells[i], shuffled.Cells[j] = shuffled.Cells[j], shuffled.Cells[i] })
	rng.Shuffle(len(shuffled.Sites), func(i, j int) { shuffled.Sites[i], shuffled.Sites[j] = shuffled.Sites[j], shuffled.Sites[i] })
	a, b := New(Config{}).Prepare(inv), New(Config{}).Prepare(shuffled)
	differs := false
	for _, h := range inv.Hosts {
		for e := range uint64(3) {
			pa, pb := a.Plan(h.ID, e), b.Plan(h.ID, e)
			if !slices.Equal(pa, pb) {
				t.Fatalf("%s epoch %d: plans differ with inventory order:\n%v\n%v", h.ID, e, pa, pb)
			}
			if e > 0 && !slices.Equal(pa, a.Plan(h.ID, e-1)) {
				differs = true
			}
		}
	}
	if !differs {
		t.Error("no plan changed between epochs: nothing rotates")
	}
}

// TestRotationCoverage: a host alone at its site, over ⌈sites/Rotating⌉
// consecutive epochs from any start, probes a host at every other site,
// and successive epochs pick different sites.
func TestRotationCoverage(t *testing.T) {
	inv := grid(7, 6, 1, 0) // 42 sites, one host each
	p := New(Config{})
	pr := p.Prepare(inv)
	host := inv.Hosts[9].ID
	epochs := uint64((len(inv.Sites) + 2) / 3)
	for _, start := range []uint64{0, 5, 1 << 40} {
		covered := map[string]bool{}
		var prev []string
		for e := start; e < start+epochs; e++ {
			var sites []string
			for _, tg := range pr.Plan(host, e) {
				covered[tg.ID[:8]] = true
				sites = append(sites, tg.ID[:8])
			}
			rot := sites[len(sites)-3:]
			if slices.Equal(rot, prev) {
				t.Errorf("epoch %d rotates to the same sites as the one before: %v", e, rot)
			}
			prev = rot
		}
		for _, s := range inv.Sites {
			if s.ID != host[:8] && !covered[s.ID] {
				t.Errorf("start %d: site %s not probed within %d epochs", start, s.ID, epochs)
			}
		}
	}
}

func TestUrgentFirst(t *testing.T) {
	inv := grid(4, 4, 3, 2)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := New(Config{Clock: func() time.Time { return now }})
	site := "s001-001"
	far := Target{ID: "s003-003/h2", Kind: KindHost, Addr: "10.9.9.9"}
	p.Urgent(site, far, now.Add(time.Minute))
	p.Urgent(site, far, now.Add(2*time.Minute)) // extends, no duplicate
	pr := p.Prepare(inv)
	first := 0
	for h := range 3 {
		plan := pr.Plan(fmt.Sprintf("%s/h%d", site, h), 1)
		if plan[0] == far {
			first++
		}
		if n := slices.Index(plan, far); n > 0 {
			t.Errorf("host %d has the urgent target at %d, not first", h, n)
		}
	}
	if first != 1 {
		t.Errorf("%d hosts of %s put the urgent target first, want exactly 1", first, site)
	}
	now = now.Add(90 * time.Second) // past the first until, before the second
	if c := countFirst(pr, site, far); c != 1 {
		t.Errorf("after the extension: %d hosts, want 1", c)
	}
	now = now.Add(time.Minute)
	if c := countFirst(pr, site, far); c != 0 {
		t.Errorf("after until: %d hosts still have it first", c)
	}
}

func countFirst(pr *Prepared, site string, tg Target) int {
	n := 0
	for h := range 3 {
		if plan := pr.Plan(fmt.Sprintf("%s/h%d", site, h), 1); len(plan) > 0 && plan[0] == tg {
			n++
		}
	}
	return n
}

// TestNeighbourSpread: the hosts of a site probe different hosts at each
// neighbour site, and across a whole grid no host is probed by its
// neighbours much more than another.
func TestNeighbourSpread(t *testing.T) {
	inv := grid(6, 6, 3, 0)
	pr := New(Config{Rotating: 1}).Prepare(inv)
	load := map[string]int{}
	for _, h := range inv.Hosts {
		plan := pr.Plan(h.ID, 0)
		for _, tg := range plan[1:5] { // after the peer: the 4 neighbour hosts
			load[tg.ID]++
		}
	}
	// Each site's three hosts must hit three different hosts at each of
	// its neighbour sites.
	for _, s := range []string{"s000-000", "s002-003", "s005-005"} {
		per := map[string]map[string]bool{}
		for h := range 3 {
			for _, tg := range pr.Plan(fmt.Sprintf("%s/h%d", s, h), 0)[1:5] {
				if per[tg.ID[:8]] == nil {
					per[tg.ID[:8]] = map[string]bool{}
				}
				per[tg.ID[:8]][tg.ID] = true
			}
		}
		for site, hosts := range per {
			if len(hosts) != 3 {
				t.Errorf("hosts of %s probe %d distinct hosts at %s, want 3", s, len(hosts), site)
			}
		}
	}
	// How many sites count a site as a neighbour depends on where it
	// is in the grid; within a site the load must be even.
	for _, s := range inv.Sites {
		lo, hi := 1<<30, 0
		for h := range 3 {
			l := load[fmt.Sprintf("%s/h%d", s.ID, h)]
			lo, hi = min(lo, l), max(hi, l)
		}
		if hi-lo > 1 || hi == 0 {
			t.Errorf("site %s: neighbour probes per host range %d..%d", s.ID, lo, hi)
		}
	}
}

func TestDistanceFuncAndFallback(t *testing.T) {
	inv := grid(3, 3, 1, 0)
	// The map says s002-002, the far corner, is 0.1 ms from s000-000 and
	// knows nothing else: the rest is ranked geographically.
	dist := func(a, b string) (time.Duration, bool) {
		if (a == "s000-000" && b == "s002-002") || (a == "s002-002" && b == "s000-000") {
			return 100 * time.Microsecond, true
		}
		return 0, false
	}
	plan := New(Config{Distance: dist, Neighbours: 2}).Plan(inv, "s000-000/h0", 0)
	if plan[0].ID != "s002-002/h0" || plan[1].ID != "s000-001/h0" {
		t.Errorf("nearest by Distance then great circle: got %v", plan[:2])
	}
	if km := greatCircleKm(Site{Lat: 0, Lon: 0}, Site{Lat: 0, Lon: 1}); km < 111 || km > 111.4 {
		t.Errorf("1° of equator = %.1f km, want 111.2", km)
	}
}

func TestOwnCellsFillPlan(t *testing.T) {
	inv := grid(2, 2, 2, 20)
	plan := New(Config{}).Plan(inv, "s000-000/h0", 0)
	if len(plan) != 16 {
		t.Fatalf("%d targets, want 16", len(plan))
	}
	for _, tg := range plan {
		if tg.Kind != KindCell || tg.ID[:8] != "s000-000" {
			t.Errorf("%+v: with 20 own cells the plan should hold only them", tg)
		}
	}
}

func TestConcurrentUrgentAndPlan(t *testing.T) {
	inv := grid(3, 3, 2, 1)
	p := New(Config{})
	pr := p.Prepare(inv)
	done := make(chan bool)
	go func() {
		for i := range 200 {
			p.Urgent("s001-001", Target{ID: fmt.Sprintf("x%d", i%5), Kind: KindCell, Addr: "a"}, time.Now().Add(time.Minute))
		}
		done <- true
	}()
	for i := range 200 {
		pr.Plan(inv.Hosts[i%len(inv.Hosts)].ID, uint64(i))
	}
	<-done
}

// benchInventory is 2,500 sites (50×50), 4 hosts and 3 cells each.
func benchInventory() Inventory { return grid(50, 50, 4, 3) }

// BenchmarkPlan plans one host of a prepared inventory whose sites are
// already ranked: the steady state.
func BenchmarkPlan(b *testing.B) {
	inv := benchInventory()
	pr := New(Config{}).Prepare(inv)
	for _, h := range inv.Hosts {
		pr.Plan(h.ID, 0)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		pr.Plan(inv.Hosts[i%len(inv.Hosts)].ID, uint64(i/len(inv.Hosts)))
		i++
	}
}

// BenchmarkPrepareAndPlanAll is a full epoch after an inventory change:
// Prepare, then plan all 10,000 hosts (ranking each site's neighbours once,
// with the great-circle fallback). ns/host is the cost per agent.
func BenchmarkPrepareAndPlanAll(b *testing.B) {
	inv := benchInventory()
	p := New(Config{})
	b.ReportAllocs()
	for b.Loop() {
		pr := p.Prepare(inv)
		for _, h := range inv.Hosts {
			pr.Plan(h.ID, 1)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(inv.Hosts)), "ns/host")
}

// TestCellsOfSitesWithoutHosts: a tower with cells but no server of its
// own is measured from the nearest sites that have hosts.
func TestCellsOfSitesWithoutHosts(t *testing.T) {
	inv := Inventory{
		Sites: []Site{{ID: "a", Lat: 48.1, Lon: 11.5}, {ID: "tower", Lat: 48.11, Lon: 11.51}, {ID: "far", Lat: 52.5, Lon: 13.4}},
		Hosts: []Host{{ID: "ha", Site: "a", Addr: "10.0.0.1:862"}, {ID: "hf", Site: "far", Addr: "10.0.0.9:862"}},
		Cells: []Cell{{ID: "c1", Site: "tower", Addr: "10.1.0.1:862"}, {ID: "c2", Site: "tower", Addr: "10.1.0.1:862"}},
	}
	plan := New(Config{}).Plan(inv, "ha", 0)
	got := map[string]bool{}
	for _, tg := range plan {
		got[tg.Kind+"/"+tg.ID] = true
	}
	if !got["cell/c1"] || !got["cell/c2"] {
		t.Fatalf("the host next to a hostless tower does not probe its cells: %+v", plan)
	}
}
