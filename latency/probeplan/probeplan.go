// Package probeplan decides what each agent probes. An agent can afford a
// handful of STAMP sessions (Max, 16 by default) while the inventory holds
// thousands of sites, so mecorch chooses, per agent and epoch: what
// placement needs measured directly (urgent requests, the site's own cells,
// its nearest sites) and a rotating sample of the rest, so that over time
// every site pair gets a real measurement to check the estimates against.
//
// The trade-off: nearest sites and own cells are probed every epoch because
// they are where placement most often lands and where an estimate's error
// matters most in relative terms; far sites are probed a few slots at a
// time and left to Vivaldi in between. A site with more own cells than Max
// spends everything on them and gets no rotation: its cells are what its UEs
// attach to.
package probeplan

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Kinds of target, as rttmap.Report takes them.
const (
	KindHost = "host"
	KindCell = "cell"
)

// Host is an edge server running an agent.
type Host struct{ ID, Site, Addr string }

// Cell is a cell whose RAN address answers STAMP.
type Cell struct{ ID, Site, Addr string }

// Site is a place with hosts and/or cells; Lat and Lon (degrees) stand in
// for distance where the RTT map has nothing.
type Site struct {
	ID       string
	Lat, Lon float64
}

// Inventory is what there is to probe.
type Inventory struct {
	Hosts []Host
	Cells []Cell
	Sites []Site
}

// Target is one thing for an agent to probe.
type Target struct {
	ID   string
	Kind string // KindHost or KindCell
	Addr string
}

// Config tunes a Planner; zero fields take their defaults.
type Config struct {
	// Max is the most targets per agent (default 16).
	Max int
	// Neighbours is how many nearest sites an agent probes a host of
	// every epoch (default 4).
	Neighbours int
	// Rotating is how many slots go to the rotating sample (default 3).
	Rotating int
	// Distance ranks sites by RTT (the RTT map's measurement or
	// estimate). Where it is nil or says false, the great-circle
	// distance between the sites' coordinates stands in, at 10 µs of
	// RTT per km (light in fibre, ~5 µs/km one way, there and back);
	// real paths are longer than great circles, so where the two mix
	// the geographic figure flatters a site a little. A site without
	// either sorts last.
	Distance func(siteA, siteB string) (time.Duration, bool)
	// Clock tells the time for Urgent requests (default time.Now).
	Clock func() time.Time
}

// Planner makes plans. It is safe for concurrent use.
type Planner struct {
	cfg Config

	mu     sync.Mutex
	urgent map[string][]urgentReq // by site
}

type urgentReq struct {
	target Target
	until  time.Time
}

// New returns a planner.
func New(cfg Config) *Planner {
	if cfg.Max <= 0 {
		cfg.Max = 16
	}
	if cfg.Neighbours <= 0 {
		cfg.Neighbours = 4
	}
	if cfg.Rotating <= 0 {
		cfg.Rotating = 3
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Planner{cfg: cfg, urgent: map[string][]urgentReq{}}
}

// Urgent asks for target to be measured directly from site until until
// (a candidate about to win a placement on an estimate): the plans of one
// host of site, chosen by the target so that several requests spread over
// the site's hosts, put it first until then. Asking again for the same
// target moves until.
func (p *Planner) Urgent(site string, target Target, until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rs := p.urgent[site]
	for i := range rs {
		if rs[i].target.ID == target.ID && rs[i].target.Kind == target.Kind {
			rs[i] = urgentReq{target, until}
			return
		}
	}
	p.urgent[site] = append(rs, urgentReq{target, until})
}

// urgentFor returns the live requests of site, dropping expired ones.
func (p *Planner) urgentFor(site string, now time.Time) []urgentReq {
	p.mu.Lock()
	defer p.mu.Unlock()
	rs := p.urgent[site]
	if len(rs) == 0 {
		return nil
	}
	live := rs[:0]
	for _, r := range rs {
		if now.Before(r.until) {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		delete(p.urgent, site)
		return nil
	}
	p.urgent[site] = live
	return slices.Clone(live)
}

// Plan is Prepare(inv).Plan(hostID, epoch): convenient for one host, but
// a caller planning many hosts of one inventory should Prepare once.
func (p *Planner) Plan(inv Inventory, hostID string, epoch uint64) []Target {
	return p.Prepare(inv).Plan(hostID, epoch)
}

// fnv is FNV-1a: a stable hash, so plans do not depend on map order or on
// the process.
func fnv(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// greatCircleKm is the haversine distance on a 6371 km sphere.
func greatCircleKm(a, b Site) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	la1, la2 := a.Lat*rad, b.Lat*rad
	dla, dlo := la2-la1, (b.Lon-a.Lon)*rad
	h := math.Sin(dla/2)*math.Sin(dla/2) + math.Cos(la1)*math.Cos(la2)*math.Sin(dlo/2)*math.Sin(dlo/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(h)))
}

// rttPerKm is fibre's ~5 µs/km one way, doubled for a round trip.
const rttPerKm = 10 * time.Microsecond
