package topogen

import "time"

// Config returns the configuration the topology was generated from (after
// defaults were applied).
func (t *Topology) Config() Config { return t.cfg }

// NumSites, NumCities, NumCells, NumHosts and NumUEs give the sizes.
func (t *Topology) NumSites() int  { return t.cfg.Sites }
func (t *Topology) NumCities() int { return t.cfg.Cities }
func (t *Topology) NumCells() int  { return len(t.cellSite) }
func (t *Topology) NumHosts() int  { return len(t.hosts) }
func (t *Topology) NumUEs() int    { return len(t.ueCell) }

// Host describes host h.
func (t *Topology) Host(h int) Host { return t.hosts[h] }

// SiteHosts gives the hosts of a site as the range [first, end).
func (t *Topology) SiteHosts(site int) (first, end int) {
	return int(t.siteHostFrom[site]), int(t.siteHostFrom[site+1])
}

// CitySites gives the sites of a city (zone) as the range [first, end); the
// first is the city's hub.
func (t *Topology) CitySites(city int) (first, end int) {
	return int(t.cityFirst[city]), int(t.cityFirst[city+1])
}

// SiteCity is the city (zone) a site belongs to.
func (t *Topology) SiteCity(site int) int { return int(t.siteCity[site]) }

// IsHub reports whether the site is its city's hub.
func (t *Topology) IsHub(site int) bool { return t.isHub(site) }

// CellSite is the site a cell hangs off.
func (t *Topology) CellSite(cell int) int { return int(t.cellSite[cell]) }

// CellCity is the city (zone) of a cell.
func (t *Topology) CellCity(cell int) int { return int(t.siteCity[t.cellSite[cell]]) }

// CellRadio is the one-way radio latency of a cell; it is not part of any
// RTT here.
func (t *Topology) CellRadio(cell int) time.Duration { return t.radio[cell] }

// UECell is the cell a UE starts in.
func (t *Topology) UECell(ue int) int { return int(t.ueCell[ue]) }

// ZoneCost is the static, hand-entered cost between two zones (cities) that
// a Diktyo-like scheduler is configured with: nominal distance, not measured.
func (t *Topology) ZoneCost(a, b int) time.Duration { return t.zoneCost[a*t.cfg.Cities+b] }

// Detoured reports whether the site pair was given a detour.
func (t *Topology) Detoured(a, b int) bool { return t.detoured(a, b) }

// TotalCapacity sums the session capacity of all hosts.
func (t *Topology) TotalCapacity() int {
	n := 0
	for _, h := range t.hosts {
		n += h.Capacity
	}
	return n
}
