package probeplan

import (
	"cmp"
	"math"
	"slices"
	"sync"
	"time"
)

// Prepared is an inventory indexed for planning. Preparing is O(hosts +
// cells + sites); each site's nearest sites are ranked the first time a
// host of it is planned (O(sites), as many Distance calls) and cached, so
// planning every host of an inventory costs O(sites²) once and O(Max) per
// host after that. Prepare again when the inventory changes, and now and
// then as the RTT map learns (the ranking is a snapshot of Distance). A
// Prepared is safe for concurrent use.
type Prepared struct {
	p       *Planner
	sites   []siteInfo // by ID
	siteIdx map[string]int
	hosts   map[string]hostRef
	// hostSites lists, ascending, the indexes of the sites with hosts:
	// the rotating sample walks it.
	hostSites []int
}

type siteInfo struct {
	site   Site
	coords bool // site listed in the inventory, so Lat/Lon mean something
	hosts  []Host
	cells  []Cell

	once    sync.Once
	nearest []int // other sites with hosts or cells, nearest first, at most Max
}

type hostRef struct {
	site, idx int // site index, index among the site's hosts
}

// Prepare indexes inv. Sites referenced by hosts or cells but missing from
// inv.Sites are added without coordinates; duplicate IDs keep the first.
func (p *Planner) Prepare(inv Inventory) *Prepared {
	pr := &Prepared{p: p, siteIdx: map[string]int{}, hosts: map[string]hostRef{}}
	byID := map[string]*siteInfo{}
	get := func(id string) *siteInfo {
		s := byID[id]
		if s == nil {
			s = &siteInfo{site: Site{ID: id}}
			byID[id] = s
		}
		return s
	}
	for _, s := range inv.Sites {
		if si := get(s.ID); !si.coords {
			si.site, si.coords = s, true
		}
	}
	seenHost := map[string]bool{}
	for _, h := range inv.Hosts {
		if !seenHost[h.ID] {
			seenHost[h.ID] = true
			si := get(h.Site)
			si.hosts = append(si.hosts, h)
		}
	}
	seenCell := map[string]bool{}
	for _, c := range inv.Cells {
		if !seenCell[c.ID] {
			seenCell[c.ID] = true
			si := get(c.Site)
			si.cells = append(si.cells, c)
		}
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	pr.sites = make([]siteInfo, len(ids))
	for i, id := range ids {
		si := byID[id]
		slices.SortFunc(si.hosts, func(a, b Host) int { return cmp.Compare(a.ID, b.ID) })
		slices.SortFunc(si.cells, func(a, b Cell) int { return cmp.Compare(a.ID, b.ID) })
		pr.sites[i] = siteInfo{site: si.site, coords: si.coords, hosts: si.hosts, cells: si.cells}
		pr.siteIdx[id] = i
		for j, h := range si.hosts {
			pr.hosts[h.ID] = hostRef{site: i, idx: j}
		}
		if len(si.hosts) > 0 {
			pr.hostSites = append(pr.hostSites, i)
		}
	}
	return pr
}

// distance ranks site j from site i; ok false when nothing is known.
func (pr *Prepared) distance(i, j int) (time.Duration, bool) {
	a, b := &pr.sites[i], &pr.sites[j]
	if f := pr.p.cfg.Distance; f != nil {
		if d, ok := f(a.site.ID, b.site.ID); ok {
			return d, true
		}
	}
	if a.coords && b.coords {
		return time.Duration(greatCircleKm(a.site, b.site) * float64(rttPerKm)), true
	}
	return 0, false
}

// nearest returns site i's nearest other sites that have hosts or cells,
// at most Max of them (no plan can use more), ranking them on first use.
func (pr *Prepared) nearest(i int) []int {
	si := &pr.sites[i]
	si.once.Do(func() {
		type cand struct {
			idx int
			d   time.Duration
		}
		k := pr.p.cfg.Max
		best := make([]cand, 0, k+1)
		less := func(a, b cand) bool { return a.d < b.d || (a.d == b.d && a.idx < b.idx) }
		for j := range pr.sites {
			if j == i || (len(pr.sites[j].hosts) == 0 && len(pr.sites[j].cells) == 0) {
				continue
			}
			d, ok := pr.distance(i, j)
			if !ok {
				d = math.MaxInt64
			}
			c := cand{j, d}
			if len(best) == k && !less(c, best[k-1]) {
				continue
			}
			pos, _ := slices.BinarySearchFunc(best, c, func(x, y cand) int {
				if less(x, y) {
					return -1
				}
				if less(y, x) {
					return 1
				}
				return 0
			})
			best = slices.Insert(best, pos, c)
			if len(best) > k {
				best = best[:k]
			}
		}
		si.nearest = make([]int, len(best))
		for n, c := range best {
			si.nearest[n] = c.idx
		}
	})
	return si.nearest
}

// Plan returns what hostID probes in epoch: at most Max targets, never the
// host itself, no duplicates, most important first:
//
//  1. urgent requests assigned to this host;
//  2. its site's cells;
//  3. one peer of its site: the k-th next host, k = 1 + epoch mod (n-1),
//     so every host is probed by one peer each epoch and every peer pair
//     comes up in turn;
//  4. one host at each of the Neighbours nearest sites with hosts, the
//     i-th host of this site taking the (i + hash(site))-th host there, so
//     a site's hosts and the sites around spread the load;
//  5. cells of the Neighbours nearest sites that have cells, with or
//     without hosts, split among this site's hosts (cell j to host j mod
//     n), while Rotating slots remain free; then, if room is left, hosts
//     at the next nearest sites (as in 4);
//  6. the rotating sample: Rotating sites with hosts, other than this one
//     and those of 4 and 5, at positions offset + epoch·Rotating + j of their
//     list, the offset spreading this site's hosts around the list: each
//     host covers every site within ⌈sites/Rotating⌉ epochs, the site as a
//     whole n times faster. (The list excludes the sites of 4 and 5,
//     which are fixed for a host in a given inventory; an urgent request
//     can shorten 5 and so shift the rotation for an epoch.)
//
// An unknown host gets nil. The result is the caller's.
func (pr *Prepared) Plan(hostID string, epoch uint64) []Target {
	ref, ok := pr.hosts[hostID]
	if !ok {
		return nil
	}
	cfg := pr.p.cfg
	site := &pr.sites[ref.site]
	n := len(site.hosts)
	out := make([]Target, 0, cfg.Max)
	add := func(limit int, t Target) {
		if len(out) >= limit || (t.Kind == KindHost && t.ID == hostID) {
			return
		}
		for _, o := range out {
			if o.ID == t.ID && o.Kind == t.Kind {
				return
			}
		}
		out = append(out, t)
	}
	hostTarget := func(h Host) Target { return Target{ID: h.ID, Kind: KindHost, Addr: h.Addr} }

	// 1. Urgent.
	for _, r := range pr.p.urgentFor(site.site.ID, cfg.Clock()) {
		if pr.urgentHost(ref.site, r.target) == ref.idx {
			add(cfg.Max, r.target)
		}
	}
	// 2. Own cells.
	for _, c := range site.cells {
		add(cfg.Max, Target{ID: c.ID, Kind: KindCell, Addr: c.Addr})
	}
	// 3. One peer.
	if n > 1 {
		k := 1 + int(epoch%uint64(n-1))
		add(cfg.Max, hostTarget(site.hosts[(ref.idx+k)%n]))
	}
	// 4. Nearest sites' hosts.
	near := pr.nearest(ref.site)
	var neigh [64]int // sites used in 4, 5 and 5b; Neighbours beyond 64 are not planned
	neighbours := neigh[:0]
	for _, j := range near {
		if len(neighbours) == min(cfg.Neighbours, len(neigh)) {
			break
		}
		t := &pr.sites[j]
		if len(t.hosts) == 0 {
			continue
		}
		neighbours = append(neighbours, j)
		add(cfg.Max, hostTarget(t.hosts[(uint64(ref.idx)+fnv(site.site.ID))%uint64(len(t.hosts))]))
	}
	// 5. Cells of the nearest sites, split among this site's hosts. Sites
	// without hosts count here (a tower with no server of its own): their
	// cells can only be measured from elsewhere.
	rest := cfg.Max - cfg.Rotating
	j := 0
	cellSites := 0
	for _, s := range near {
		if cellSites == cfg.Neighbours {
			break
		}
		if len(pr.sites[s].cells) == 0 {
			continue
		}
		cellSites++
		for _, c := range pr.sites[s].cells {
			if j%n == ref.idx {
				add(rest, Target{ID: c.ID, Kind: KindCell, Addr: c.Addr})
			}
			j++
		}
	}
	// 5b. Room left: hosts at the next nearest sites.
	for _, s := range near {
		if len(out) >= rest || len(neighbours) == len(neigh) {
			break
		}
		t := &pr.sites[s]
		if len(t.hosts) == 0 || slices.Contains(neighbours, s) {
			continue
		}
		neighbours = append(neighbours, s)
		add(rest, hostTarget(t.hosts[(uint64(ref.idx)+fnv(site.site.ID))%uint64(len(t.hosts))]))
	}
	// 6. Rotating sample.
	pr.rotate(ref, epoch, neighbours, func(t Host) { add(cfg.Max, hostTarget(t)) })
	return out
}

// rotate calls pick for this epoch's rotating sample of host ref.
func (pr *Prepared) rotate(ref hostRef, epoch uint64, neighbours []int, pick func(Host)) {
	cfg := pr.p.cfg
	// Exclude this site and its neighbours: positions in hostSites.
	var ex [65]int
	excl := ex[:0]
	for _, s := range append(neighbours[:len(neighbours):len(neighbours)], ref.site) {
		if pos, ok := slices.BinarySearch(pr.hostSites, s); ok {
			excl = append(excl, pos)
		}
	}
	slices.Sort(excl)
	cands := len(pr.hostSites) - len(excl)
	if cands <= 0 {
		return
	}
	site := &pr.sites[ref.site]
	n := uint64(len(site.hosts))
	stride := (uint64(cands) + n - 1) / n
	offset := fnv(site.site.ID) + uint64(ref.idx)*stride
	for r := 0; r < min(cfg.Rotating, cands); r++ {
		c := int((offset + epoch*uint64(cfg.Rotating) + uint64(r)) % uint64(cands))
		// Map the candidate index back to hostSites, skipping excluded.
		g := c
		for _, x := range excl {
			if x <= g {
				g++
			}
		}
		t := &pr.sites[pr.hostSites[g]]
		pick(t.hosts[(fnv(site.hosts[ref.idx].ID)+epoch)%uint64(len(t.hosts))])
	}
}

// urgentHost is the index, among site si's hosts, of the one that probes
// target: chosen by the target's hash, moved on if it is the target.
func (pr *Prepared) urgentHost(si int, target Target) int {
	hosts := pr.sites[si].hosts
	i := int(fnv(target.Kind+"/"+target.ID) % uint64(len(hosts)))
	if target.Kind == KindHost && hosts[i].ID == target.ID && len(hosts) > 1 {
		i = (i + 1) % len(hosts)
	}
	return i
}
