package assign

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/mecorch/mecorch/latency/topogen"
)

// siteBest is, per site, the host with the lowest service time: where an
// unloaded UE is served fastest.
func siteBest(t *topogen.Topology) (host []int32, svc []float64, minSvc float64) {
	n := t.NumSites()
	host, svc = make([]int32, n), make([]float64, n)
	minSvc = math.Inf(1)
	for s := range n {
		f, e := t.SiteHosts(s)
		svc[s] = math.Inf(1)
		for h := f; h < e; h++ {
			if v := float64(t.Host(h).Service); v < svc[s] {
				host[s], svc[s] = int32(h), v
			}
		}
		minSvc = min(minSvc, svc[s])
	}
	return host, svc, minSvc
}

// trueBestUnloaded is the lowest true latency of one UE of cell with no
// capacity limit and no queueing beyond the unloaded service time, and the
// site giving it. The true nearest list is scanned until no further site
// can win; only when the list runs out first are all sites scanned.
func trueBestUnloaded(t *topogen.Topology, cell int, svc []float64, minSvc float64) (float64, int) {
	best, site := math.Inf(1), -1
	near := t.NearestTrue(cell)
	done := false
	for _, s := range near {
		half := float64(s.RTT) / 2
		if half+minSvc >= best {
			done = true
			break
		}
		if v := half + svc[s.Site]; v < best {
			best, site = v, int(s.Site)
		}
	}
	if !done && len(near) < t.NumSites() {
		for s := range t.NumSites() {
			if v := float64(t.CellSiteRTT(cell, s))/2 + svc[s]; v < best {
				best, site = v, s
			}
		}
	}
	return best, site
}

// Bound is the capacity-relaxed lower bound on controllable latency.
type Bound struct {
	Mean, P95 time.Duration
}

// LowerBound puts every UE at its true-best host with no capacity limit and
// no queueing: no feasible plan does better at any percentile.
func LowerBound(t *topogen.Topology) Bound {
	_, svc, minSvc := siteBest(t)
	per := make([]float64, t.NumCells())
	for c := range per {
		per[c], _ = trueBestUnloaded(t, c, svc, minSvc)
	}
	lat := make([]float64, t.NumUEs())
	var sum float64
	for u := range lat {
		lat[u] = per[t.UECell(u)]
		sum += lat[u]
	}
	sort.Float64s(lat)
	return Bound{Mean: time.Duration(sum / float64(len(lat))), P95: time.Duration(quantile(lat, 0.95))}
}

// TrueBestFraction measures how often the measured view picks the true best
// host, with capacity left out so that only measurement error matters: per
// UE, the pick minimises measured RTT/2 + unloaded service time over the
// cell's measured nearest sites; it counts as right when its true latency
// equals the true optimum over all hosts (hosts at one site with the same
// service time are equally right).
func TrueBestFraction(t *topogen.Topology) float64 {
	_, svc, minSvc := siteBest(t)
	right := make([]bool, t.NumCells())
	for c := range right {
		best, _ := trueBestUnloaded(t, c, svc, minSvc)
		pick, pv := -1, math.Inf(1)
		for _, s := range t.NearestMeasured(c) {
			if v := float64(s.RTT)/2 + svc[s.Site]; v < pv {
				pick, pv = int(s.Site), v
			}
		}
		got := float64(t.CellSiteRTT(c, pick))/2 + svc[pick]
		right[c] = got <= best+1e-6
	}
	n := 0
	for u := range t.NumUEs() {
		if right[t.UECell(u)] {
			n++
		}
	}
	return float64(n) / float64(t.NumUEs())
}

// Problem is a transportation problem with convex host costs: Demand[i]
// UEs at origin i, Half[i][j] the one-way transport from origin i to host j,
// and host j taking at most Cap[j] UEs with service time Svc[j] (ns).
type Problem struct {
	Demand []int
	Half   [][]float64
	Cap    []int
	Svc    []float64
}

// Cost is the summed controllable latency of x (x[i][j] UEs of origin i on
// host j): the objective SolveExact minimises.
func (p *Problem) Cost(x [][]int) float64 {
	var c float64
	for j := range p.Cap {
		n := 0
		for i := range x {
			n += x[i][j]
			c += float64(x[i][j]) * p.Half[i][j]
		}
		c += hostCost(p.Svc[j], n, p.Cap[j])
	}
	return c
}

// SolveExact minimises Problem.Cost exactly (the sum objective, not a
// percentile). Host j's convex cost is split into unit slots whose
// marginal costs increase, which makes it a min-cost flow
// source→origin→host→slot→sink; successive shortest paths with Dijkstra
// on reduced costs (dense, O(V²) per unit) solve it. Because slot costs are
// increasing, only the next free slot of a host is ever on a shortest path,
// so one dynamic host→sink arc stands for all of them.
func SolveExact(p *Problem) ([][]int, float64, error) {
	no, nh := len(p.Demand), len(p.Cap)
	total, capSum := 0, 0
	for _, d := range p.Demand {
		total += d
	}
	for _, c := range p.Cap {
		capSum += c
	}
	if total > capSum {
		return nil, 0, fmt.Errorf("demand %d exceeds capacity %d", total, capSum)
	}
	x := make([][]int, no)
	for i := range x {
		x[i] = make([]int, nh)
	}
	rem := append([]int(nil), p.Demand...)
	load := make([]int, nh)
	// Nodes: origins 0..no-1, hosts no..no+nh-1, sink no+nh. The source is
	// implicit: every origin with demand left starts at distance 0.
	nv := no + nh + 1
	sink := nv - 1
	pot := make([]float64, nv)
	dist := make([]float64, nv)
	prev := make([]int, nv)
	done := make([]bool, nv)
	for range total {
		for v := range nv {
			dist[v], prev[v], done[v] = math.Inf(1), -1, false
		}
		for i := range no {
			if rem[i] > 0 {
				dist[i] = 0 - pot[i]
			}
		}
		for {
			u, du := -1, math.Inf(1)
			for v := range nv {
				if !done[v] && dist[v] < du {
					u, du = v, dist[v]
				}
			}
			if u < 0 {
				break
			}
			done[u] = true
			relax := func(v int, c float64) {
				if d := du + c + pot[u] - pot[v]; d < dist[v] {
					dist[v], prev[v] = d, u
				}
			}
			switch {
			case u < no:
				// Origin→host arcs have no capacity limit: a full host
				// is passed through by moving one of its UEs onwards.
				for j := range nh {
					relax(no+j, p.Half[u][j])
				}
			case u < sink:
				j := u - no
				for i := range no {
					if x[i][j] > 0 {
						relax(i, -p.Half[i][j])
					}
				}
				if load[j] < p.Cap[j] {
					relax(sink, marginalAdd(p.Svc[j], load[j], p.Cap[j]))
				}
			}
		}
		if math.IsInf(dist[sink], 1) {
			return nil, 0, fmt.Errorf("no augmenting path")
		}
		for v := range nv {
			if !math.IsInf(dist[v], 1) {
				pot[v] += dist[v]
			}
		}
		// Walk back: sink ← host ← origin (← host ← origin)* ← source.
		v := sink
		j := prev[v] - no
		load[j]++
		v = prev[v]
		for {
			i := prev[v]
			x[i][v-no]++
			if prev[i] < 0 {
				rem[i]--
				break
			}
			x[i][prev[i]-no]--
			v = prev[i]
		}
	}
	return x, p.Cost(x), nil
}

// Exact computes the sum-optimal plan for the topology on true latencies
// (every cell may use every host). Meant for small instances: it costs
// O(UEs · (cells+hosts)²).
func Exact(t *topogen.Topology) (Assignment, error) {
	h := newHosts(t)
	a := newAssignment(t, h)
	nc, nh := t.NumCells(), t.NumHosts()
	demand := make([]int, nc)
	for _, c := range a.Cell {
		demand[c]++
	}
	var cells []int
	for c, d := range demand {
		if d > 0 {
			cells = append(cells, c)
		}
	}
	p := &Problem{Demand: make([]int, len(cells)), Half: make([][]float64, len(cells)), Cap: make([]int, nh), Svc: h.svc}
	for j := range nh {
		p.Cap[j] = int(h.cap[j])
	}
	for i, c := range cells {
		p.Demand[i] = demand[c]
		p.Half[i] = make([]float64, nh)
		for j := range nh {
			p.Half[i][j] = float64(t.CellSiteRTT(c, int(h.site[j]))) / 2
		}
	}
	x, _, err := SolveExact(p)
	if err != nil {
		return a, fmt.Errorf("exact optimum: %w", err)
	}
	share := make([][]int, nc)
	for i, c := range cells {
		share[c] = x[i]
	}
	next := make([]int, nc)
	for u, c := range a.Cell {
		row := share[c]
		for next[c] < nh && row[next[c]] == 0 {
			next[c]++
		}
		row[next[c]]--
		a.Host[u] = int32(next[c])
		h.load[next[c]]++
	}
	return a, nil
}
