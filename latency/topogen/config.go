// Package topogen generates seeded, deterministic edge topologies for
// evaluating UE-session placement (latency/assign): sites clustered in
// cities, heterogeneous hosts, cells, UEs placed by population, a mobility
// model that produces handovers, the true RTT between any cell and any site,
// and a "measured" view of the same RTTs with a configurable error.
//
// # Model
//
// Cities are points in an AreaKm × AreaKm square with Zipf-like sizes (weight
// of city i ∝ 1/(i+1)^CityZipf). Sites are shared out to cities by weight
// (each city has at least one); the first site of a city is its hub (the
// metro central office), the others sit uniformly in a disc around it whose
// radius grows with the square root of the city's site count.
//
// Routing is hub-and-spoke. A site reaches its city hub over a spoke (one hop,
// 0 hops for the hub site itself); hubs reach each other over the metro core
// (one hop). The ideal round trip of a path is its length at KmRTT per km
// (10 µs/km round trip in fibre) plus HopRTT per hop. Every site pair adds an
// endpoint cost EndpointRTT (the far end's stack and reflector) and a per-pair
// jitter uniform in [0, PairJitter). Because PairJitter < EndpointRTT and the
// ideal distances form a shortest-path metric, ordinary pairs never violate
// the triangle inequality; a DetourFraction of pairs are detoured (a long
// physical route): their RTT is multiplied by a factor in
// [DetourMin, DetourMax) and gets EndpointRTT+2·PairJitter more, which makes the
// direct path longer than the path via a third site on the ideal route. Only
// detoured pairs can violate the inequality (tests check the fraction).
//
// A cell belongs to one site (CellsPerSite sectors each) and reaches it over a
// backhaul (one hop plus a few kilometres); the cell→site RTT is the backhaul
// plus the site→site RTT from its home site (plus EndpointRTT for the home
// site itself). Radio latency per cell (one-way, uniform in
// [RadioMin, RadioMax)) is separate and never part of the RTT.
//
// The measured view multiplies each cell→site RTT by (1+σ·z): z standard
// normal per (cell, site), deterministic for the seed, clamped to ±4; σ is
// chosen so that the p95 of the relative error |σ·z| is MeasureP95RelErr.
//
// Hosts per site are uniform in [HostsMin, HostsMax]; each has CPU cores drawn
// from CPUChoices, a session capacity proportional to its cores (scaled so the
// configured UEs fill Utilization of the total capacity) and a service time
// BaseService·16/cores. UEs are spread over cities by city weight and over a
// city's cells by a log-normal cell weight (hot spots). The mobility model
// hands a UE over to a neighbouring cell: with probability InCityHandover a
// cell of its own site or of one of the 4 nearest sites in its city,
// otherwise a cell of one of the 3 nearest other cities.
//
// Zone-pair costs model what an operator would type in for a Diktyo-like
// scheduler: the nominal hub-to-hub distance at KmRTT, rounded up to a whole
// millisecond, 0 within a zone (city). They are static and never measured.
package topogen

import "time"

// Config sets the size and the shape of a generated topology.
type Config struct {
	Seed int64

	Sites        int
	Cities       int
	CityZipf     float64 // exponent of city weights
	AreaKm       float64 // side of the square the cities sit in
	CityRadiusKm float64 // radius of the largest city

	HostsMin, HostsMax int   // hosts per site, uniform
	CPUChoices         []int // cores per host, picked uniformly
	BaseService        time.Duration
	Utilization        float64 // UEs / total session capacity

	CellsPerSite int
	UEs          int

	KmRTT       time.Duration // round trip per km of fibre
	HopRTT      time.Duration // round trip cost of one routed hop
	EndpointRTT time.Duration // per-pair endpoint cost (must exceed PairJitter)
	PairJitter  time.Duration

	DetourFraction       float64
	DetourMin, DetourMax float64

	RadioMin, RadioMax time.Duration

	MeasureP95RelErr float64

	// Nearest is how many sites the per-cell nearest lists hold (by true
	// and by measured RTT); they stand for what an RTT map answers.
	Nearest int

	InCityHandover float64
}

// DefaultConfig is the 100k-UE benchmark shape: 2,500 sites in 50 cities,
// 2–6 hosts per site (10,000 on average), 3 cells per site, 80% utilization.
func DefaultConfig() Config {
	return Config{
		Seed:             1,
		Sites:            2500,
		Cities:           50,
		CityZipf:         1.0,
		AreaKm:           1200,
		CityRadiusKm:     40,
		HostsMin:         2,
		HostsMax:         6,
		CPUChoices:       []int{8, 16, 32},
		BaseService:      500 * time.Microsecond,
		Utilization:      0.8,
		CellsPerSite:     3,
		UEs:              100000,
		KmRTT:            10 * time.Microsecond,
		HopRTT:           100 * time.Microsecond,
		EndpointRTT:      100 * time.Microsecond,
		PairJitter:       80 * time.Microsecond,
		DetourFraction:   0.03,
		DetourMin:        1.5,
		DetourMax:        3,
		RadioMin:         2 * time.Millisecond,
		RadioMax:         8 * time.Millisecond,
		MeasureP95RelErr: 0.05,
		Nearest:          256,
		InCityHandover:   0.9,
	}
}

// SmallConfig is a topology small enough for the exact optimum: 40 sites in
// 4 cities, 3 cells per site.
func SmallConfig(seed int64, ues int, util float64) Config {
	c := DefaultConfig()
	c.Seed = seed
	c.Sites = 40
	c.Cities = 4
	c.AreaKm = 300
	c.UEs = ues
	c.Utilization = util
	return c
}
