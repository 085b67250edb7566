package assign

import (
	"math"
	"slices"
)

// hc is a share of a cell's UEs on one host.
type hc struct {
	host int32
	n    int32
	half float64 // measured one-way transport, ns
}

// bigRegret ranks cells left with a single usable candidate first: if they
// lose it they fall back to a far host.
const bigRegret = 1e15

// eval finds the cheapest and second-cheapest candidate sites for one more
// UE of cell, by measured transport plus the marginal summed sojourn at the
// site's cheapest usable host, and returns that host.
func (a *Assigner) eval(cell int) (best int32, half, bestCost, second float64) {
	best, bestCost, second = -1, math.Inf(1), math.Inf(1)
	for _, c := range a.cands[cell] {
		v := c.half + a.sMarg[c.site]
		if v < bestCost {
			second = bestCost
			best, half, bestCost = a.sHost[c.site], c.half, v
		} else if v < second {
			second = v
		}
	}
	if best < 0 {
		best, half, bestCost = a.fallback(cell)
	}
	return best, half, bestCost, second
}

type heapItem struct {
	key float64
	pos int32
}

// maxHeap is a binary max-heap on key.
type maxHeap []heapItem

func (q *maxHeap) push(it heapItem) {
	*q = append(*q, it)
	s := *q
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p].key >= s[i].key {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (q *maxHeap) pop() heapItem {
	s := *q
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].key > s[m].key {
			m = l
		}
		if r < len(s) && s[r].key > s[m].key {
			m = r
		}
		if m == i {
			break
		}
		s[m], s[i] = s[i], s[m]
		i = m
	}
	*q = s
	return top
}

// runGreedy places rem[i] UEs of cells[i] one decision at a time, each at
// the site with the lowest measured transport plus marginal summed sojourn.
// By default the globally cheapest decision goes first (marginal costs only
// grow as hosts fill, so lazily re-evaluated keys are exact); with
// Options.Regret the cell with the largest gap between its best and
// second-best site goes first (a cell that would lose most by waiting).
// On the benchmark instances cheapest-first came out better, so it is the
// default; the quality benchmark reports both.
func (a *Assigner) runGreedy(cells []int32, rem []int32) [][]hc {
	out := make([][]hc, len(cells))
	q := make(maxHeap, 0, len(cells))
	for i := range cells {
		if rem[i] > 0 {
			q.push(heapItem{math.Inf(1), int32(i)})
		}
	}
	for len(q) > 0 {
		it := q.pop()
		i := int(it.pos)
		cell := int(cells[i])
		best, half, bestCost, second := a.eval(cell)
		if best < 0 {
			continue // no capacity anywhere: the rest stay unplaced
		}
		key := -bestCost
		if a.opts.Regret {
			key = second - bestCost
			if math.IsInf(second, 1) {
				key = bigRegret
			}
		}
		if len(q) > 0 && key < q[0].key {
			q.push(heapItem{key, int32(i)})
			continue
		}
		limit := second
		if !a.opts.Regret && len(q) > 0 {
			limit = min(limit, -q[0].key)
		}
		// Give the best site as many of the cell's UEs as stay no dearer
		// there than the cell's second-best site (and, cheapest-first,
		// than the next decision waiting in the queue).
		site := a.h.site[best]
		for n := 0; rem[i] > 0; n++ {
			x := a.sHost[site]
			if x < 0 || (n > 0 && half+a.sMarg[site] > limit) {
				break
			}
			a.move(-1, x)
			out[i] = addShare(out[i], x, 1, half)
			rem[i]--
		}
		if rem[i] > 0 {
			q.push(heapItem{key, int32(i)})
		}
	}
	return out
}

func addShare(l []hc, host int32, n int32, half float64) []hc {
	for k := range l {
		if l[k].host == host {
			l[k].n += n
			return l
		}
	}
	return append(l, hc{host, n, half})
}

// placeGreedy places the per-cell demand of every cell.
func (a *Assigner) placeGreedy(demand []int32) [][]hc {
	cells := make([]int32, len(demand))
	for c := range cells {
		cells[c] = int32(c)
	}
	return a.runGreedy(cells, demand)
}

// placeGreedySparse places the demand of a few cells.
func (a *Assigner) placeGreedySparse(demand map[int32]int32) map[int32][]hc {
	cells := make([]int32, 0, len(demand))
	rem := make([]int32, 0, len(demand))
	for c := range demand {
		cells = append(cells, c)
	}
	// Map order is random; sorted cells keep a re-plan deterministic.
	slices.Sort(cells)
	for _, c := range cells {
		rem = append(rem, demand[c])
	}
	out := a.runGreedy(cells, rem)
	m := make(map[int32][]hc, len(cells))
	for i, c := range cells {
		m[c] = out[i]
	}
	return m
}

// improve moves single UEs to a cheaper candidate host while that lowers
// the summed measured latency (transport of the UE plus the change in
// everyone's sojourn at both hosts), for at most ImprovePasses passes.
func (a *Assigner) improve(alloc [][]hc) {
	for range a.opts.ImprovePasses {
		moved := 0
		for cell := range alloc {
			for i := 0; i < len(alloc[cell]); i++ {
				for alloc[cell][i].n > 0 {
					e := alloc[cell][i]
					h1 := int(e.host)
					n1, c1 := int(a.h.load[h1]), int(a.h.cap[h1])
					gain := e.half + hostCost(a.h.svc[h1], n1, c1) - hostCost(a.h.svc[h1], n1-1, c1)
					best, bestHalf, bestCost := int32(-1), 0.0, gain-1
					for _, c := range a.cands[cell] {
						x := a.sHost[c.site]
						if x < 0 || int(x) == h1 {
							continue
						}
						if v := c.half + a.sMarg[c.site]; v < bestCost {
							best, bestHalf, bestCost = x, c.half, v
						}
					}
					if best < 0 {
						break
					}
					alloc[cell][i].n--
					a.move(int32(h1), best)
					alloc[cell] = addShare(alloc[cell], best, 1, bestHalf)
					moved++
				}
			}
		}
		if moved == 0 {
			return
		}
	}
}
