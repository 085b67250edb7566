// Package assign places UE sessions on edge hosts so that the controllable
// latency (one-way transport from the UE's cell to the host's site plus the
// sojourn at the host) stays low, deciding only on measured RTTs. It holds
// the assigner (Assigner: initial plan, handover re-placement, site
// failure), the baselines it is judged against (random, nearest-by-hop,
// first-come nearest-by-measured-RTT, a Kubernetes-like sampled scorer, a
// Diktyo-like zone scorer), the oracles (capacity-relaxed lower bound, exact
// sum-optimum by min-cost flow) and the evaluation on true latencies.
//
// # Model
//
// A host h has a session capacity C_h (hard) and a service time S_h. With n
// sessions its utilization is ρ = RhoMax·n/C_h (a host at its session
// capacity runs at RhoMax of its CPU) and every session on it sees the M/M/1
// sojourn S_h/(1−ρ): convex in n and bounded by S_h/(1−RhoMax) = 20·S_h, so
// the cost of a host, n·S_h/(1−ρ), is convex and unit slots have increasing
// marginal costs. The controllable latency of a UE is RTT(cell, site)/2 + the
// sojourn at its host; radio latency is reported separately. Every
// algorithm, baseline and oracle is scored with this one model on the true
// RTTs; only the oracles see true RTTs when deciding.
package assign

import (
	"math"
	"sort"
	"time"

	"github.com/mecorch/mecorch/latency/topogen"
)

// RhoMax is the CPU utilization of a host holding its session capacity.
const RhoMax = 0.95

// Sojourn is the time a session spends at a host with service time svc
// (ns) holding n sessions of capacity c, in ns.
func Sojourn(svc float64, n, c int) float64 {
	if c <= 0 {
		return math.Inf(1)
	}
	return svc / (1 - RhoMax*float64(n)/float64(c))
}

// hostCost is the summed sojourn of all n sessions on a host.
func hostCost(svc float64, n, c int) float64 {
	if n == 0 {
		return 0
	}
	return float64(n) * Sojourn(svc, n, c)
}

// marginalAdd is the increase of the summed sojourn when a host goes from n
// to n+1 sessions: what one more session costs everyone there.
func marginalAdd(svc float64, n, c int) float64 {
	return hostCost(svc, n+1, c) - hostCost(svc, n, c)
}

// Assignment maps UEs to hosts; Host[ue] is -1 for an unplaced UE.
type Assignment struct {
	Cell []int32 // the UE's cell when the assignment was taken
	Host []int32
	Load []int32 // sessions per host
}

// hosts is the capacity view every algorithm shares.
type hosts struct {
	cap  []int32
	svc  []float64
	site []int32
	load []int32
}

func newHosts(t *topogen.Topology) hosts {
	n := t.NumHosts()
	h := hosts{cap: make([]int32, n), svc: make([]float64, n), site: make([]int32, n), load: make([]int32, n)}
	for i := range n {
		x := t.Host(i)
		h.cap[i] = int32(x.Capacity)
		h.svc[i] = float64(x.Service)
		h.site[i] = int32(x.Site)
	}
	return h
}

func (h *hosts) room(i int) bool { return h.load[i] < h.cap[i] }

func (h *hosts) util(i int) float64 { return float64(h.load[i]) / float64(h.cap[i]) }

func (h *hosts) marg(i int) float64 {
	return marginalAdd(h.svc[i], int(h.load[i]), int(h.cap[i]))
}

func newAssignment(t *topogen.Topology, h hosts) Assignment {
	a := Assignment{Cell: make([]int32, t.NumUEs()), Host: make([]int32, t.NumUEs()), Load: h.load}
	for u := range a.Cell {
		a.Cell[u] = int32(t.UECell(u))
		a.Host[u] = -1
	}
	return a
}

// Metrics summarise an assignment on true latencies.
type Metrics struct {
	Placed, Unplaced int
	// Controllable latency (transport + sojourn), one-way.
	Mean, P50, P95, P99 time.Duration
	// Sum is the objective the exact oracle minimises, in ns.
	Sum float64
	// RadioP95 is the p95 of the cells' radio latency over placed UEs.
	RadioP95 time.Duration
	// Over counts hosts above capacity (must be 0).
	Over int
}

// Evaluate scores a on the topology's true RTTs.
func Evaluate(t *topogen.Topology, a Assignment) Metrics {
	var m Metrics
	lat := make([]float64, 0, len(a.Host))
	radio := make([]float64, 0, len(a.Host))
	load := make([]int32, t.NumHosts())
	for _, h := range a.Host {
		if h >= 0 {
			load[h]++
		}
	}
	for h := range load {
		if int(load[h]) > t.Host(h).Capacity {
			m.Over++
		}
	}
	for u, h := range a.Host {
		if h < 0 {
			m.Unplaced++
			continue
		}
		m.Placed++
		x := t.Host(int(h))
		cell := int(a.Cell[u])
		l := float64(t.CellSiteRTT(cell, x.Site))/2 + Sojourn(float64(x.Service), int(load[h]), x.Capacity)
		lat = append(lat, l)
		radio = append(radio, float64(t.CellRadio(cell)))
		m.Sum += l
	}
	if len(lat) == 0 {
		return m
	}
	m.Mean = time.Duration(m.Sum / float64(len(lat)))
	sort.Float64s(lat)
	sort.Float64s(radio)
	m.P50 = time.Duration(quantile(lat, 0.50))
	m.P95 = time.Duration(quantile(lat, 0.95))
	m.P99 = time.Duration(quantile(lat, 0.99))
	m.RadioP95 = time.Duration(quantile(radio, 0.95))
	return m
}

// quantile reads q from sorted s (nearest rank).
func quantile(s []float64, q float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(len(s)-1, i))]
}
