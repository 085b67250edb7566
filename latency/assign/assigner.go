package assign

import (
	"math"
	"sync"
	"time"

	"github.com/mecorch/mecorch/latency/topogen"
)

// Options tune the assigner.
type Options struct {
	// Bound is the one-way controllable latency a UE's current host must
	// meet to be kept after a handover regardless of better hosts
	// (appLatency.maxLatency); 0 means no bound, only the hysteresis.
	Bound time.Duration
	// HysteresisRel and HysteresisAbs: after a handover the UE stays on
	// its host while its estimated latency is within max(Abs, Rel·best)
	// of the best candidate's; moving costs a session migration.
	HysteresisRel float64
	HysteresisAbs time.Duration
	// ImprovePasses bounds the local-improvement passes after the greedy.
	ImprovePasses int
	// Workers builds the per-cell candidate lists in parallel.
	Workers int
	// Regret orders the initial greedy by regret instead of cheapest
	// decision first (see runGreedy).
	Regret bool
}

// DefaultOptions are the options the benchmarks use.
func DefaultOptions() Options {
	return Options{HysteresisRel: 0.25, HysteresisAbs: 500 * time.Microsecond, ImprovePasses: 3, Workers: 2}
}

// cand is a site a cell may use, with the measured one-way transport.
type cand struct {
	site int32
	half float64 // ns
}

// Assigner places UE sessions using only the measured view of the
// topology (NearestMeasured lists and MeasuredCellSiteRTT). It is not safe
// for concurrent use.
type Assigner struct {
	topo   *topogen.Topology
	opts   Options
	h      hosts
	failed []bool
	cands  [][]cand // per cell, the nearest sites by measured RTT
	ueCell []int32
	ueHost []int32
	// Per site, the usable host with the lowest marginal cost and that
	// cost (+Inf when none): candidates are scanned per site, so a
	// decision costs K site looks instead of K·hosts-per-site.
	sHost []int32
	sMarg []float64
}

// New prepares an assigner for the topology's UEs, all unplaced.
func New(t *topogen.Topology, opts Options) *Assigner {
	a := &Assigner{
		topo:   t,
		opts:   opts,
		h:      newHosts(t),
		failed: make([]bool, t.NumHosts()),
		ueCell: make([]int32, t.NumUEs()),
		ueHost: make([]int32, t.NumUEs()),
		sHost:  make([]int32, t.NumSites()),
		sMarg:  make([]float64, t.NumSites()),
	}
	for s := range a.sHost {
		a.refresh(s)
	}
	for u := range a.ueCell {
		a.ueCell[u] = int32(t.UECell(u))
		a.ueHost[u] = -1
	}
	return a
}

// Assign computes a plan for all UEs from scratch, at their current cells. It returns the number of
// UEs left unplaced (non-zero only when capacity runs out).
func (a *Assigner) Assign() int {
	// Start from empty hosts so that a second call re-plans from scratch.
	clear(a.h.load)
	for s := range a.sHost {
		a.refresh(s)
	}
	a.buildCands()
	nc := a.topo.NumCells()
	demand := make([]int32, nc)
	for _, c := range a.ueCell {
		demand[c]++
	}
	alloc := a.placeGreedy(demand)
	a.improve(alloc)
	// Hand the cell-level counts out to the cells' UEs.
	unplaced := 0
	for u, c := range a.ueCell {
		l := alloc[c]
		for len(l) > 0 && l[0].n == 0 {
			l = l[1:]
		}
		alloc[c] = l
		if len(l) == 0 {
			a.ueHost[u] = -1
			unplaced++
			continue
		}
		a.ueHost[u] = l[0].host
		l[0].n--
	}
	return unplaced
}

func (a *Assigner) buildCands() {
	nc := a.topo.NumCells()
	a.cands = make([][]cand, nc)
	w := max(1, a.opts.Workers)
	var wg sync.WaitGroup
	for g := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := g; c < nc; c += w {
				near := a.topo.NearestMeasured(c)
				l := make([]cand, len(near))
				for i, s := range near {
					l[i] = cand{s.Site, float64(s.RTT) / 2}
				}
				a.cands[c] = l
			}
		}()
	}
	wg.Wait()
}

// refresh recomputes the site cache after a load or state change there.
func (a *Assigner) refresh(site int) {
	f, e := a.topo.SiteHosts(site)
	best, bm := int32(-1), math.Inf(1)
	for h := f; h < e; h++ {
		if a.usable(h) {
			if m := a.h.marg(h); m < bm {
				best, bm = int32(h), m
			}
		}
	}
	a.sHost[site], a.sMarg[site] = best, bm
}

// move shifts one session from host `from` (-1: none) to host `to` (-1:
// none) and keeps the site caches right.
func (a *Assigner) move(from, to int32) {
	if from >= 0 {
		a.h.load[from]--
		a.refresh(int(a.h.site[from]))
	}
	if to >= 0 {
		a.h.load[to]++
		a.refresh(int(a.h.site[to]))
	}
}

// measuredHalf is the measured one-way transport from cell to host.
func (a *Assigner) measuredHalf(cell int, host int32) float64 {
	site := a.h.site[host]
	for _, c := range a.cands[cell] {
		if c.site == site {
			return c.half
		}
	}
	return float64(a.topo.MeasuredCellSiteRTT(cell, int(a.h.site[host]))) / 2
}

func (a *Assigner) usable(h int) bool { return !a.failed[h] && a.h.room(h) }

// fallback finds the cheapest usable host outside the candidate list,
// scanning every site: only reached when all candidates are full.
func (a *Assigner) fallback(cell int) (host int32, half, cost float64) {
	host, cost = -1, math.Inf(1)
	for s, m := range a.sMarg {
		if math.IsInf(m, 1) || m >= cost {
			continue
		}
		hf := float64(a.topo.MeasuredCellSiteRTT(cell, s)) / 2
		if c := hf + m; c < cost {
			host, half, cost = a.sHost[s], hf, c
		}
	}
	return host, half, cost
}

// Handover moves ue to newCell and re-places it if its host no longer does:
// it stays while the host is alive and either meets Options.Bound or is
// within the hysteresis margin of the best candidate. It reports whether the
// session migrated.
func (a *Assigner) Handover(ue, newCell int) bool {
	a.ueCell[ue] = int32(newCell)
	cur := a.ueHost[ue]
	curCost := math.Inf(1)
	if cur >= 0 && !a.failed[cur] {
		half := a.measuredHalf(newCell, cur)
		n, c := int(a.h.load[cur]), int(a.h.cap[cur])
		if a.opts.Bound > 0 && half+Sojourn(a.h.svc[cur], n, c) <= float64(a.opts.Bound) {
			return false
		}
		// Judge staying and moving by the plan's own objective (summed
		// latency): what the UE costs everyone here versus there.
		curCost = half + hostCost(a.h.svc[cur], n, c) - hostCost(a.h.svc[cur], n-1, c)
	}
	best, bestCost := int32(-1), math.Inf(1)
	for _, c := range a.cands[newCell] {
		if x := a.sHost[c.site]; x >= 0 && x != cur {
			if v := c.half + a.sMarg[c.site]; v < bestCost {
				best, bestCost = x, v
			}
		}
	}
	if best < 0 && math.IsInf(curCost, 1) {
		best, _, _ = a.fallback(newCell)
	}
	if best < 0 {
		return false
	}
	margin := max(float64(a.opts.HysteresisAbs), a.opts.HysteresisRel*bestCost)
	if curCost <= bestCost+margin {
		return false
	}
	a.ueHost[ue] = best
	a.move(cur, best)
	return cur >= 0
}

// FailSite takes a site's hosts out of service and re-places only the UEs
// they held. It returns those UEs.
func (a *Assigner) FailSite(site int) []int {
	f, e := a.topo.SiteHosts(site)
	for h := f; h < e; h++ {
		a.failed[h] = true
		a.h.load[h] = 0
	}
	a.refresh(site)
	var moved []int
	demand := map[int32]int32{}
	for u, h := range a.ueHost {
		if int(h) >= f && int(h) < e {
			moved = append(moved, u)
			a.ueHost[u] = -1
			demand[a.ueCell[u]]++
		}
	}
	alloc := a.placeGreedySparse(demand)
	for _, u := range moved {
		c := a.ueCell[u]
		l := alloc[c]
		for len(l) > 0 && l[0].n == 0 {
			l = l[1:]
		}
		alloc[c] = l
		if len(l) == 0 {
			continue
		}
		a.ueHost[u] = l[0].host
		l[0].n--
	}
	return moved
}

// Result snapshots the current plan.
func (a *Assigner) Result() Assignment {
	r := Assignment{
		Cell: append([]int32(nil), a.ueCell...),
		Host: append([]int32(nil), a.ueHost...),
		Load: append([]int32(nil), a.h.load...),
	}
	return r
}

// RestoreSite puts a failed site's hosts back in service, empty. UEs are
// not moved back: that would cost migrations for no broken bound.
func (a *Assigner) RestoreSite(site int) {
	f, e := a.topo.SiteHosts(site)
	for h := f; h < e; h++ {
		a.failed[h] = false
	}
	a.refresh(site)
}
