package topogen

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"
)

// Host is one edge server.
type Host struct {
	Site     int
	Capacity int // sessions
	CPU      int // cores
	Service  time.Duration
}

// SiteRTT is one entry of a per-cell nearest list.
type SiteRTT struct {
	Site int32
	RTT  time.Duration
}

// Topology is a generated instance. It is read-only after Generate and safe
// for concurrent readers.
type Topology struct {
	cfg   Config
	sigma float64 // relative error std-dev of the measured view

	cityX, cityY []float64
	cityFirst    []int32 // sites of city c are [cityFirst[c], cityFirst[c+1])
	coreRTT      []float64
	cityOrder    [][]int32 // other cities by core RTT, nearest first
	zoneCost     []time.Duration

	siteX, siteY []float64
	siteCity     []int32
	spokeRTT     []float64 // ns, 0 for hubs
	siteHostFrom []int32   // hosts of site s are [siteHostFrom[s], siteHostFrom[s+1])

	hosts []Host

	cellSite    []int32
	backhaul    []float64 // ns
	radio       []time.Duration
	cellNbrs    [][]int32 // in-city neighbour cells
	cityNbrs    [][]int32 // nearest other cities
	nearTrue    [][]SiteRTT
	nearMeasure [][]SiteRTT

	ueCell []int32
}

// Generate builds the topology for cfg. The same cfg gives the same topology.
func Generate(cfg Config) *Topology {
	if cfg.Cities < 1 {
		cfg.Cities = 1
	}
	if cfg.Sites < cfg.Cities {
		cfg.Sites = cfg.Cities
	}
	if cfg.CellsPerSite < 1 {
		cfg.CellsPerSite = 1
	}
	if cfg.HostsMin < 1 {
		cfg.HostsMin = 1
	}
	if cfg.HostsMax < cfg.HostsMin {
		cfg.HostsMax = cfg.HostsMin
	}
	if len(cfg.CPUChoices) == 0 {
		cfg.CPUChoices = []int{16}
	}
	if cfg.Utilization <= 0 {
		cfg.Utilization = 0.8
	}
	if cfg.Nearest < 1 {
		cfg.Nearest = 16
	}
	t := &Topology{cfg: cfg, sigma: cfg.MeasureP95RelErr / 1.959964}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x70706f67656e))
	t.genCities(rng)
	t.genSites(rng)
	t.genHosts(rng)
	t.genCells(rng)
	t.genUEs(rng)
	t.genNearest()
	return t
}

func (t *Topology) genCities(rng *rand.Rand) {
	n := t.cfg.Cities
	t.cityX = make([]float64, n)
	t.cityY = make([]float64, n)
	w := make([]float64, n)
	var sum float64
	for i := range n {
		t.cityX[i] = rng.Float64() * t.cfg.AreaKm
		t.cityY[i] = rng.Float64() * t.cfg.AreaKm
		w[i] = 1 / math.Pow(float64(i+1), t.cfg.CityZipf)
		sum += w[i]
	}
	// Every city gets one site, the rest go by weight; the rounding
	// remainder goes to the largest city.
	extra := t.cfg.Sites - n
	counts := make([]int, n)
	given := 0
	for i := range n {
		counts[i] = 1 + int(float64(extra)*w[i]/sum)
		given += counts[i]
	}
	counts[0] += t.cfg.Sites - given
	t.cityFirst = make([]int32, n+1)
	for i := range n {
		t.cityFirst[i+1] = t.cityFirst[i] + int32(counts[i])
	}
	km := float64(t.cfg.KmRTT)
	t.coreRTT = make([]float64, n*n)
	t.zoneCost = make([]time.Duration, n*n)
	for a := range n {
		for b := range n {
			d := math.Hypot(t.cityX[a]-t.cityX[b], t.cityY[a]-t.cityY[b])
			t.coreRTT[a*n+b] = d * km
			if a != b {
				ms := math.Ceil(d * km / float64(time.Millisecond))
				t.zoneCost[a*n+b] = time.Duration(ms) * time.Millisecond
			}
		}
	}
	t.cityOrder = make([][]int32, n)
	t.cityNbrs = make([][]int32, n)
	for a := range n {
		o := make([]int32, 0, n-1)
		for b := range n {
			if b != a {
				o = append(o, int32(b))
			}
		}
		sort.Slice(o, func(i, j int) bool { return t.coreRTT[a*n+int(o[i])] < t.coreRTT[a*n+int(o[j])] })
		t.cityOrder[a] = o
		t.cityNbrs[a] = o[:min(3, len(o))]
	}
}

func (t *Topology) genSites(rng *rand.Rand) {
	n := t.cfg.Sites
	t.siteX = make([]float64, n)
	t.siteY = make([]float64, n)
	t.siteCity = make([]int32, n)
	t.spokeRTT = make([]float64, n)
	largest := float64(t.cityFirst[1] - t.cityFirst[0])
	for c := range t.cfg.Cities {
		first, end := t.cityFirst[c], t.cityFirst[c+1]
		r := t.cfg.CityRadiusKm * math.Sqrt(float64(end-first)/largest)
		r = max(r, 3)
		for s := first; s < end; s++ {
			t.siteCity[s] = int32(c)
			if s == first {
				t.siteX[s], t.siteY[s] = t.cityX[c], t.cityY[c]
				continue
			}
			// Uniform in the disc.
			rho := r * math.Sqrt(rng.Float64())
			phi := 2 * math.Pi * rng.Float64()
			t.siteX[s] = t.cityX[c] + rho*math.Cos(phi)
			t.siteY[s] = t.cityY[c] + rho*math.Sin(phi)
			t.spokeRTT[s] = rho*float64(t.cfg.KmRTT) + float64(t.cfg.HopRTT)
		}
	}
}

func (t *Topology) genHosts(rng *rand.Rand) {
	t.siteHostFrom = make([]int32, t.cfg.Sites+1)
	cpuSum := 0
	for s := range t.cfg.Sites {
		k := t.cfg.HostsMin + rng.IntN(t.cfg.HostsMax-t.cfg.HostsMin+1)
		for range k {
			cpu := t.cfg.CPUChoices[rng.IntN(len(t.cfg.CPUChoices))]
			cpuSum += cpu
			t.hosts = append(t.hosts, Host{
				Site:    s,
				CPU:     cpu,
				Service: time.Duration(float64(t.cfg.BaseService) * 16 / float64(cpu)),
			})
		}
		t.siteHostFrom[s+1] = int32(len(t.hosts))
	}
	perCore := float64(t.cfg.UEs) / t.cfg.Utilization / float64(cpuSum)
	for i := range t.hosts {
		t.hosts[i].Capacity = max(1, int(math.Round(perCore*float64(t.hosts[i].CPU))))
	}
}

func (t *Topology) genCells(rng *rand.Rand) {
	nc := t.cfg.Sites * t.cfg.CellsPerSite
	t.cellSite = make([]int32, nc)
	t.backhaul = make([]float64, nc)
	t.radio = make([]time.Duration, nc)
	for c := range nc {
		t.cellSite[c] = int32(c / t.cfg.CellsPerSite)
		t.backhaul[c] = float64(t.cfg.HopRTT) + (1+4*rng.Float64())*float64(t.cfg.KmRTT)
		t.radio[c] = t.cfg.RadioMin + time.Duration(rng.Float64()*float64(t.cfg.RadioMax-t.cfg.RadioMin))
	}
	// In-city neighbours: the cells of the own site and of the 4 nearest
	// sites of the same city.
	t.cellNbrs = make([][]int32, nc)
	cps := t.cfg.CellsPerSite
	for city := range t.cfg.Cities {
		first, end := int(t.cityFirst[city]), int(t.cityFirst[city+1])
		idx := make([]int, 0, end-first)
		for s := first; s < end; s++ {
			idx = idx[:0]
			for o := first; o < end; o++ {
				if o != s {
					idx = append(idx, o)
				}
			}
			sort.Slice(idx, func(i, j int) bool {
				return t.siteDistKm(s, idx[i]) < t.siteDistKm(s, idx[j])
			})
			sites := append([]int{s}, idx[:min(4, len(idx))]...)
			for k := range cps {
				cell := s*cps + k
				var nb []int32
				for _, o := range sites {
					for j := range cps {
						if o*cps+j != cell {
							nb = append(nb, int32(o*cps+j))
						}
					}
				}
				t.cellNbrs[cell] = nb
			}
		}
	}
}

func (t *Topology) siteDistKm(a, b int) float64 {
	return math.Hypot(t.siteX[a]-t.siteX[b], t.siteY[a]-t.siteY[b])
}

func (t *Topology) genUEs(rng *rand.Rand) {
	nc := len(t.cellSite)
	// City weight follows the Zipf city size; within a city a log-normal
	// cell weight makes hot spots. Sampling by cumulative weight keeps the
	// UE count exact.
	cum := make([]float64, nc)
	var sum float64
	for c := range nc {
		city := int(t.siteCity[t.cellSite[c]])
		sites := float64(t.cityFirst[city+1] - t.cityFirst[city])
		cityW := 1 / math.Pow(float64(city+1), t.cfg.CityZipf)
		sum += cityW / sites * math.Exp(0.5*rng.NormFloat64())
		cum[c] = sum
	}
	t.ueCell = make([]int32, t.cfg.UEs)
	for u := range t.ueCell {
		x := rng.Float64() * sum
		t.ueCell[u] = int32(sort.SearchFloat64s(cum, x))
		if int(t.ueCell[u]) >= nc {
			t.ueCell[u] = int32(nc - 1)
		}
	}
}
