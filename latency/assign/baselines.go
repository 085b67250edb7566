package assign

import (
	"math"
	"math/rand/v2"
	"sort"

	"github.com/mecorch/mecorch/latency/topogen"
)

// The baselines place UEs first come, first served (in UE index order,
// which is unrelated to geography), under the same capacity rule as the
// assigner: a host takes at most its session capacity.

// Random puts each UE on a uniformly random host with room.
func Random(t *topogen.Topology, seed uint64) Assignment {
	h := newHosts(t)
	a := newAssignment(t, h)
	rng := rand.New(rand.NewPCG(seed, 0x72616e64))
	n := t.NumHosts()
	for u := range a.Host {
		host := -1
		for range 64 {
			if x := rng.IntN(n); h.room(x) {
				host = x
				break
			}
		}
		if host < 0 { // nearly full: take any host with room
			for x := range n {
				if h.room(x) {
					host = x
					break
				}
			}
		}
		if host >= 0 {
			a.Host[u] = int32(host)
			h.load[host]++
		}
	}
	return a
}

// utilHeap is a lazy min-heap of hosts by utilization: an entry is stale
// once its host's utilization changed (a fresh entry was pushed then).
type utilHeap struct {
	key  []float64
	host []int32
}

func (q *utilHeap) push(k float64, h int32) {
	q.key = append(q.key, k)
	q.host = append(q.host, h)
	for i := len(q.key) - 1; i > 0; {
		p := (i - 1) / 2
		if q.key[p] <= q.key[i] {
			break
		}
		q.swap(p, i)
		i = p
	}
}

func (q *utilHeap) swap(i, j int) {
	q.key[i], q.key[j] = q.key[j], q.key[i]
	q.host[i], q.host[j] = q.host[j], q.host[i]
}

func (q *utilHeap) popTop() {
	last := len(q.key) - 1
	q.swap(0, last)
	q.key, q.host = q.key[:last], q.host[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q.key) && q.key[l] < q.key[m] {
			m = l
		}
		if r < len(q.key) && q.key[r] < q.key[m] {
			m = r
		}
		if m == i {
			return
		}
		q.swap(m, i)
		i = m
	}
}

// top returns the least-utilized host with room, or -1.
func (q *utilHeap) top(h *hosts) (int32, float64) {
	for len(q.key) > 0 {
		x := q.host[0]
		if q.key[0] == h.util(int(x)) && h.room(int(x)) {
			return x, q.key[0]
		}
		q.popTop()
	}
	return -1, math.Inf(1)
}

// leastLoaded returns the least-utilized host with room in [f, e), or -1.
func leastLoaded(h *hosts, f, e int) int32 {
	best, bu := int32(-1), math.Inf(1)
	for x := f; x < e; x++ {
		if h.room(x) && h.util(x) < bu {
			best, bu = int32(x), h.util(x)
		}
	}
	return best
}

// NearestByHop puts each UE on a host with the fewest routed hops from its
// cell, ties broken by the lowest utilization (what hop-count placement in
// AdvantEDGE-like tools does). The hop levels of the hub-and-spoke topology
// are nested: own site; own hub; own city's other sites and other hubs
// (same count); everything else. A level is reached only when all lower
// ones are full, so one heap per group answers the tie-break.
func NearestByHop(t *topogen.Topology) Assignment {
	h := newHosts(t)
	a := newAssignment(t, h)
	nonhub := make([]utilHeap, t.NumCities())
	var hubs, allNonhub utilHeap
	for x := range t.NumHosts() {
		s := int(h.site[x])
		if t.IsHub(s) {
			hubs.push(0, int32(x))
		} else {
			nonhub[t.SiteCity(s)].push(0, int32(x))
			allNonhub.push(0, int32(x))
		}
	}
	for u := range a.Host {
		cell := int(a.Cell[u])
		home := t.CellSite(cell)
		city := t.CellCity(cell)
		f, e := t.SiteHosts(home)
		x := leastLoaded(&h, f, e)
		if x < 0 {
			hf, _ := t.CitySites(city)
			f, e = t.SiteHosts(hf)
			x = leastLoaded(&h, f, e)
		}
		if x < 0 {
			x1, u1 := nonhub[city].top(&h)
			x2, u2 := hubs.top(&h)
			x = x1
			if x2 >= 0 && (x1 < 0 || u2 < u1) {
				x = x2
			}
		}
		if x < 0 {
			x, _ = allNonhub.top(&h)
		}
		if x < 0 {
			continue
		}
		a.Host[u] = x
		h.load[x]++
		k := h.util(int(x))
		if s := int(h.site[x]); t.IsHub(s) {
			hubs.push(k, x)
		} else {
			nonhub[t.SiteCity(s)].push(k, x)
			allNonhub.push(k, x)
		}
	}
	return a
}

// GreedyNearest is the first-come greedy without regret ordering or
// queueing awareness: each UE goes to the site with the lowest measured RTT
// that has a host with room (least-utilized host there).
func GreedyNearest(t *topogen.Topology) Assignment {
	h := newHosts(t)
	a := newAssignment(t, h)
	for u := range a.Host {
		cell := int(a.Cell[u])
		x := int32(-1)
		for _, s := range t.NearestMeasured(cell) {
			f, e := t.SiteHosts(int(s.Site))
			if x = leastLoaded(&h, f, e); x >= 0 {
				break
			}
		}
		if x < 0 {
			best := math.Inf(1)
			for s := range t.NumSites() {
				f, e := t.SiteHosts(s)
				if y := leastLoaded(&h, f, e); y >= 0 {
					if d := float64(t.MeasuredCellSiteRTT(cell, s)); d < best {
						x, best = y, d
					}
				}
			}
		}
		if x >= 0 {
			a.Host[u] = x
			h.load[x]++
		}
	}
	return a
}

// KubeSampled mimics kube-scheduler: it looks at hosts round-robin from where
// the last decision stopped, keeps the first numFeasibleToFind hosts with
// room (percentageOfNodesToScore's adaptive default: 50% − hosts/125%, at
// least 5%, at least 100 hosts), and scores them by least-allocated
// (0–100) plus a same-zone preference (100), with no latency input; ties go
// to a random host among the best.
func KubeSampled(t *topogen.Topology, seed uint64) Assignment {
	h := newHosts(t)
	a := newAssignment(t, h)
	rng := rand.New(rand.NewPCG(seed, 0x6b756265))
	n := t.NumHosts()
	find := n
	if n >= 100 {
		pct := max(5, 50-n/125)
		find = max(100, n*pct/100)
	}
	next := 0
	for u := range a.Host {
		city := t.CellCity(int(a.Cell[u]))
		best, bestScore, ties := int32(-1), math.Inf(-1), 0
		found, seen := 0, 0
		for ; seen < n && found < find; seen++ {
			x := (next + seen) % n
			if !h.room(x) {
				continue
			}
			found++
			score := 100 * float64(h.cap[x]-h.load[x]-1) / float64(h.cap[x])
			if t.SiteCity(int(h.site[x])) == city {
				score += 100
			}
			switch {
			case score > bestScore:
				best, bestScore, ties = int32(x), score, 1
			case score == bestScore:
				ties++
				if rng.IntN(ties) == 0 {
					best = int32(x)
				}
			}
		}
		next = (next + seen) % n
		if best >= 0 {
			a.Host[u] = best
			h.load[best]++
		}
	}
	return a
}

// DiktyoZone mimics network-aware scheduling with hand-entered zone-pair
// costs: the zone with the lowest configured cost from the UE's zone that
// has room wins, and within it the least-utilized host.
func DiktyoZone(t *topogen.Topology) Assignment {
	h := newHosts(t)
	a := newAssignment(t, h)
	nz := t.NumCities()
	zones := make([]utilHeap, nz)
	for x := range t.NumHosts() {
		zones[t.SiteCity(int(h.site[x]))].push(0, int32(x))
	}
	order := make([][]int, nz)
	for z := range nz {
		o := make([]int, nz)
		for i := range o {
			o[i] = i
		}
		sort.SliceStable(o, func(i, j int) bool { return t.ZoneCost(z, o[i]) < t.ZoneCost(z, o[j]) })
		order[z] = o
	}
	for u := range a.Host {
		city := t.CellCity(int(a.Cell[u]))
		for _, z := range order[city] {
			x, _ := zones[z].top(&h)
			if x < 0 {
				continue
			}
			a.Host[u] = x
			h.load[x]++
			zones[z].push(h.util(int(x)), x)
			break
		}
	}
	return a
}
