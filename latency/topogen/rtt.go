package topogen

import (
	"math"
	"math/rand/v2"
	"time"
)

// Salts keep the per-pair draws of different quantities independent.
const (
	saltJitter uint64 = 0x6a09e667f3bcc908
	saltDetour uint64 = 0xbb67ae8584caa73b
	saltFactor uint64 = 0x3c6ef372fe94f82b
	saltMeasA  uint64 = 0xa54ff53a5f1d36f1
	saltMeasB  uint64 = 0x510e527fade682d1
)

func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit is a deterministic uniform draw in [0,1) for (a, b, salt): per-pair
// values are computed, not stored, so a 7,500 × 2,500 matrix costs nothing.
func (t *Topology) unit(a, b int, salt uint64) float64 {
	h := mix(uint64(t.cfg.Seed) ^ salt)
	h = mix(h ^ uint64(a)<<32 ^ uint64(b))
	return float64(h>>11) / (1 << 53)
}

func (t *Topology) isHub(s int) bool { return t.spokeRTT[s] == 0 }

func (t *Topology) hubHops(s int) int {
	if t.isHub(s) {
		return 0
	}
	return 1
}

// ideal is the detour-free, jitter-free round trip between two distinct
// sites along the hub-and-spoke route, in ns.
func (t *Topology) ideal(a, b int) float64 {
	A, B := int(t.siteCity[a]), int(t.siteCity[b])
	d := t.spokeRTT[a] + t.spokeRTT[b]
	if A != B {
		d += t.coreRTT[A*t.cfg.Cities+B] + float64(t.cfg.HopRTT)
	}
	return d
}

func (t *Topology) detoured(a, b int) bool {
	if a > b {
		a, b = b, a
	}
	return a != b && t.unit(a, b, saltDetour) < t.cfg.DetourFraction
}

func (t *Topology) siteRTT(a, b int) float64 {
	if a == b {
		return 0
	}
	if a > b {
		a, b = b, a
	}
	d := t.ideal(a, b) + float64(t.cfg.EndpointRTT) + t.unit(a, b, saltJitter)*float64(t.cfg.PairJitter)
	if t.unit(a, b, saltDetour) < t.cfg.DetourFraction {
		f := t.cfg.DetourMin + t.unit(a, b, saltFactor)*(t.cfg.DetourMax-t.cfg.DetourMin)
		d = d*f + float64(t.cfg.EndpointRTT) + 2*float64(t.cfg.PairJitter)
	}
	return d
}

// SiteRTT is the true round trip between two sites (0 for a site to itself).
func (t *Topology) SiteRTT(a, b int) time.Duration { return time.Duration(t.siteRTT(a, b)) }

func (t *Topology) cellSiteRTT(cell, site int) float64 {
	home := int(t.cellSite[cell])
	if home == site {
		return t.backhaul[cell] + float64(t.cfg.EndpointRTT)
	}
	return t.backhaul[cell] + t.siteRTT(home, site)
}

// CellSiteRTT is the true round trip from a cell to a site (radio excluded).
func (t *Topology) CellSiteRTT(cell, site int) time.Duration {
	return time.Duration(t.cellSiteRTT(cell, site))
}

// measErr is the relative error of the measured view for (cell, site).
func (t *Topology) measErr(cell, site int) float64 {
	u1 := t.unit(cell, site, saltMeasA)
	u2 := t.unit(cell, site, saltMeasB)
	z := math.Sqrt(-2*math.Log(1-u1)) * math.Cos(2*math.Pi*u2)
	z = max(-4, min(4, z))
	return t.sigma * z
}

// MeasuredCellSiteRTT is what the RTT map would report for (cell, site):
// the true RTT with the configured measurement error.
func (t *Topology) MeasuredCellSiteRTT(cell, site int) time.Duration {
	return time.Duration(t.cellSiteRTT(cell, site) * (1 + t.measErr(cell, site)))
}

// CellSiteHops counts routed hops from a cell to a site: the backhaul, the
// spokes and the core hop between cities.
func (t *Topology) CellSiteHops(cell, site int) int {
	home := int(t.cellSite[cell])
	if home == site {
		return 1
	}
	h := 1 + t.hubHops(home) + t.hubHops(site)
	if t.siteCity[home] != t.siteCity[site] {
		h++
	}
	return h
}

// genNearest fills the per-cell nearest lists by true and by measured RTT.
// Cities are visited nearest first and a city is skipped once its lower
// bound (the core RTT, shrunk by the largest measurement error) cannot beat
// the K-th entry, so the lists are exact without a full scan.
func (t *Topology) genNearest() {
	k := min(t.cfg.Nearest, t.cfg.Sites)
	nc := len(t.cellSite)
	t.nearTrue = make([][]SiteRTT, nc)
	t.nearMeasure = make([][]SiteRTT, nc)
	shrink := 1 - 4*t.sigma
	n := t.cfg.Cities
	for cell := range nc {
		home := int(t.cellSite[cell])
		A := int(t.siteCity[home])
		tr := make([]SiteRTT, 0, k)
		me := make([]SiteRTT, 0, k)
		visit := func(city int) {
			for s := int(t.cityFirst[city]); s < int(t.cityFirst[city+1]); s++ {
				d := t.cellSiteRTT(cell, s)
				tr = insertTopK(tr, k, SiteRTT{int32(s), time.Duration(d)})
				me = insertTopK(me, k, SiteRTT{int32(s), time.Duration(d * (1 + t.measErr(cell, s)))})
			}
		}
		visit(A)
		for _, B := range t.cityOrder[A] {
			lb := t.backhaul[cell] + t.coreRTT[A*n+int(B)]
			needT := len(tr) < k || time.Duration(lb) < tr[k-1].RTT
			needM := len(me) < k || time.Duration(lb*shrink) < me[k-1].RTT
			if !needT && !needM {
				break
			}
			visit(int(B))
		}
		t.nearTrue[cell] = tr
		t.nearMeasure[cell] = me
	}
}

// insertTopK keeps l sorted ascending by RTT and at most k long.
func insertTopK(l []SiteRTT, k int, e SiteRTT) []SiteRTT {
	if len(l) == k && e.RTT >= l[k-1].RTT {
		return l
	}
	if len(l) < k {
		l = append(l, e)
	} else {
		l[k-1] = e
	}
	for i := len(l) - 1; i > 0 && l[i].RTT < l[i-1].RTT; i-- {
		l[i], l[i-1] = l[i-1], l[i]
	}
	return l
}

// NearestTrue lists the Config.Nearest sites with the lowest true RTT from
// cell, nearest first. The slice is shared: do not modify it.
func (t *Topology) NearestTrue(cell int) []SiteRTT { return t.nearTrue[cell] }

// NearestMeasured lists the Config.Nearest sites with the lowest measured
// RTT from cell (what an RTT map query answers), nearest first. Shared.
func (t *Topology) NearestMeasured(cell int) []SiteRTT { return t.nearMeasure[cell] }

// NeighbourCell draws the target of a handover from cell.
func (t *Topology) NeighbourCell(rng *rand.Rand, cell int) int {
	nb := t.cellNbrs[cell]
	if len(nb) > 0 && (rng.Float64() < t.cfg.InCityHandover || t.cfg.Cities == 1) {
		return int(nb[rng.IntN(len(nb))])
	}
	A := t.siteCity[t.cellSite[cell]]
	cn := t.cityNbrs[A]
	if len(cn) == 0 {
		return cell
	}
	B := int(cn[rng.IntN(len(cn))])
	first, end := int(t.cityFirst[B]), int(t.cityFirst[B+1])
	s := first + rng.IntN(end-first)
	return s*t.cfg.CellsPerSite + rng.IntN(t.cfg.CellsPerSite)
}
