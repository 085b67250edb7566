package rttmap

import (
	"cmp"
	"slices"
	"time"

	"github.com/mecorch/mecorch/latency/vivaldi"
)

// at returns what p shows at now, and whether that is fresh. A fresh
// entry is Measured, or Unknown when its fresh windows received nothing.
func (p *pair) at(now time.Time) (Entry, bool) {
	for i := len(p.stages) - 1; i >= 0; i-- {
		if !p.stages[i].until.Before(now) {
			return p.stages[i].e, true
		}
	}
	return p.stale, false
}

// SiteSite is what the map says of sites a and b (in either order; a == b
// is the pair of two hosts of one site). It is O(1) in the number of sites
// and does not allocate; the Entry's Reporters and Stats are shared and
// read-only.
//
// Quality, in order: Measured when a window ended within Fresh; Estimated
// (Via "vivaldi") between the centroids of up to four hosts of each site
// whose coordinates are confident enough; Stale
// with the RTT of the old measurement; Unknown.
func (m *Map) SiteSite(a, b string) Entry {
	now := m.cfg.Clock()
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.siteSiteAt(a, b, now)
}

func (m *Map) siteSiteAt(a, b string, now time.Time) Entry {
	if b < a {
		a, b = b, a
	}
	p := m.siteSite[[2]string{a, b}]
	var old Entry
	if p != nil {
		e, fresh := p.at(now)
		if fresh {
			return e
		}
		old = e
	}
	if rtt, ok := m.vivaldiSites(a, b); ok {
		e := Entry{Kind: SiteSite, A: a, B: b, RTT: rtt, Quality: Estimated, Via: "vivaldi"}
		if p != nil {
			e.Stats, e.MeasuredAt = p.latest, p.latest.To
		}
		return e
	}
	if p != nil {
		return old
	}
	return Entry{Kind: SiteSite, A: a, B: b, Quality: Unknown}
}

// vivaldiSites is the Vivaldi distance between the two sites' centroids
// (cached by refreshSite). Hosts of one site sit at nearly the same point,
// so the centroid distance is close to the mean of the host-to-host
// estimates at a sixteenth of the cost, which matters when placement asks
// for thousands of sites. Within one site it takes two confident hosts.
func (m *Map) vivaldiSites(a, b string) (time.Duration, bool) {
	ca, ok := m.siteCoords[a]
	if !ok {
		return 0, false
	}
	cb, ok := m.siteCoords[b]
	if !ok || (a == b && ca.n < 2) {
		return 0, false
	}
	return ca.c.DistanceTo(cb.c), true
}

// siteCoord is a site's centroid coordinate and how many hosts made it.
type siteCoord struct {
	c vivaldi.Coordinate
	n int
}

// refreshSite recomputes the centroid of up to siteEstimateHosts hosts of
// site whose Vivaldi error is at most EstimateMaxError: the mean of their
// vectors, heights and adjustments. Report calls it for the two sites
// whose hosts just moved.
func (m *Map) refreshSite(site string) {
	var sc siteCoord
	for _, h := range m.siteHosts[site] {
		if sc.n == siteEstimateHosts {
			break
		}
		c, ok := m.viv.Coordinate(h)
		if !ok || c.Error > m.cfg.EstimateMaxError {
			continue
		}
		for i := range c.Vec {
			sc.c.Vec[i] += c.Vec[i]
		}
		sc.c.Height += c.Height
		sc.c.Adjustment += c.Adjustment
		sc.c.Error = max(sc.c.Error, c.Error)
		sc.n++
	}
	if sc.n == 0 {
		delete(m.siteCoords, site)
		return
	}
	f := 1 / float64(sc.n)
	for i := range sc.c.Vec {
		sc.c.Vec[i] *= f
	}
	sc.c.Height *= f
	sc.c.Adjustment *= f
	m.siteCoords[site] = sc
}

// CellSite is what the map says of cell and site. It is O(1) in the number
// of sites and cells and does not allocate; the Entry's Reporters and
// Stats are shared and read-only.
//
// Quality, in order: Measured when a host of site measured the cell within
// Fresh; Estimated (Via "site:<cell's site>") as the fresh measurement from
// the cell's own site to the cell plus that site's SiteSite RTT to site,
// measured or estimated (the radio side and the transport side of the
// path, the way UE traffic goes); Stale with the old measurement's RTT;
// Unknown.
func (m *Map) CellSite(cell, site string) Entry {
	now := m.cfg.Clock()
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.cellSiteAt(cell, site, now)
}

func (m *Map) cellSiteAt(cell, site string, now time.Time) Entry {
	p := m.cellSiteP[[2]string{cell, site}]
	var old Entry
	if p != nil {
		e, fresh := p.at(now)
		if fresh {
			return e
		}
		old = e
	}
	if own, ok := m.cellSite[cell]; ok && own != site {
		if op := m.cellSiteP[[2]string{cell, own}]; op != nil {
			if first, fresh := op.at(now); fresh && first.Quality == Measured {
				if hop := m.siteSiteAt(own, site, now); hop.Quality.Usable() {
					e := Entry{Kind: CellSite, A: cell, B: site, RTT: first.RTT + hop.RTT,
						Quality: Estimated, Via: m.siteVia[own]}
					if p != nil {
						e.Stats, e.MeasuredAt = p.latest, p.latest.To
					}
					return e
				}
			}
		}
	}
	if p != nil {
		return old
	}
	return Entry{Kind: CellSite, A: cell, B: site, Quality: Unknown}
}

// Entries returns every pair that has a measurement, fresh or not, as the
// lookups would show it now (a stale pair with an estimate shows the
// estimate), sorted by kind, A, B.
func (m *Map) Entries() []Entry {
	now := m.cfg.Clock()
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Entry, 0, len(m.siteSite)+len(m.cellSiteP))
	for k := range m.siteSite {
		out = append(out, m.siteSiteAt(k[0], k[1], now))
	}
	for k := range m.cellSiteP {
		out = append(out, m.cellSiteAt(k[0], k[1], now))
	}
	slices.SortFunc(out, func(x, y Entry) int {
		return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.A, y.A), cmp.Compare(x.B, y.B))
	})
	return out
}

// History returns the windows kept for a pair, oldest first, from every
// reporter (a copy). For SiteSite the order of a and b does not matter.
func (m *Map) History(kind Kind, a, b string) []Point {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var p *pair
	switch kind {
	case SiteSite:
		p = m.siteSite[[2]string{min(a, b), max(a, b)}]
	case CellSite:
		p = m.cellSiteP[[2]string{a, b}]
	}
	if p == nil {
		return nil
	}
	return p.history()
}

// SiteEstimate is the Vivaldi estimate between two sites alone, measured
// or not (false when the coordinates are not confident enough): what a
// probe planner ranks neighbours by.
func (m *Map) SiteEstimate(a, b string) (time.Duration, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.vivaldiSites(a, b)
}
