// Package vivaldi keeps network coordinates: a point per node such that the
// distance between two points predicts the RTT between the two nodes, so
// that mecorch can estimate the pairs nobody probes.
//
// It is Vivaldi (Dabek et al., "Vivaldi: A Decentralized Network Coordinate
// System", SIGCOMM 2004) with an adaptive timestep driven by each node's
// confidence, plus the refinements that Serf and Consul run in production:
// a height per node (the access link every path to it crosses), a per-peer
// median filter over the last few RTTs, a non-Euclidean adjustment term
// (Ledlie et al., "Network Coordinates in the Wild", NSDI 2007) and a weak
// gravity towards the origin that stops the whole system from drifting.
//
// Two ways to run it: a Client per node that updates its own coordinate from
// its peers' (decentralized, as agents would), or a Set that holds every
// node's coordinate and updates both ends of each measured RTT (central, as
// mecorch does: every measurement reaches it anyway).
package vivaldi

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Dim is the number of Euclidean dimensions. Eight is where more dimensions
// stop buying accuracy on Internet latencies (Ledlie et al.); the height
// carries what no Euclidean dimension can.
const Dim = 8

// zero is the threshold below which a distance or error counts as zero:
// it keeps divisions finite.
const zero = 1.0e-6

// Config tunes the algorithm. The zero value of a field means its default
// (DefaultConfig); negative values are refused by New and NewSet.
type Config struct {
	// ErrorMax is a new node's error and the ceiling of any node's error
	// (a relative error: 1.5 means "150% wrong, could be anywhere").
	ErrorMax float64
	// CE bounds how much one observation moves a node's error estimate.
	CE float64
	// CC bounds how far one observation moves a node's coordinate (the
	// adaptive timestep is CC × local error / (local + remote error)).
	CC float64
	// AdjustmentWindow is how many recent (RTT − distance) residuals
	// make up the adjustment term; 0 keeps the default, -1 is refused.
	AdjustmentWindow int
	// HeightMin is the smallest height, in seconds (10 µs by default):
	// a node always has some access cost, and a zero height would never
	// grow again.
	HeightMin float64
	// LatencyFilter is how many of a peer's latest RTTs are kept; the
	// median of them is what updates the coordinate, so one queueing
	// spike does not throw a node across the map.
	LatencyFilter int
	// GravityRho scales the pull towards the origin, in seconds: the
	// force is (distance from origin / rho)², negligible for normal
	// distances and strong for a coordinate that ran away.
	GravityRho float64
	// MaxRTT is the largest RTT accepted; longer ones are refused as
	// broken measurements (default 10 s).
	MaxRTT time.Duration
	// Seed seeds the random unit vector used to separate two nodes at
	// the same point, so that runs are reproducible.
	Seed uint64
}

// DefaultConfig returns the parameters Serf and Consul ship with.
func DefaultConfig() Config {
	return Config{
		ErrorMax:         1.5,
		CE:               0.25,
		CC:               0.25,
		AdjustmentWindow: 20,
		HeightMin:        10.0e-6,
		LatencyFilter:    3,
		GravityRho:       150.0,
		MaxRTT:           10 * time.Second,
	}
}

func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	for _, f := range []struct {
		name string
		v    float64
	}{{"ErrorMax", c.ErrorMax}, {"CE", c.CE}, {"CC", c.CC}, {"HeightMin", c.HeightMin}, {"GravityRho", c.GravityRho}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return c, fmt.Errorf("vivaldi: config %s = %v: want a finite value ≥ 0", f.name, f.v)
		}
	}
	if c.AdjustmentWindow < 0 || c.LatencyFilter < 0 || c.MaxRTT < 0 {
		return c, errors.New("vivaldi: config AdjustmentWindow, LatencyFilter and MaxRTT must be ≥ 0")
	}
	if c.ErrorMax == 0 {
		c.ErrorMax = d.ErrorMax
	}
	if c.CE == 0 {
		c.CE = d.CE
	}
	if c.CC == 0 {
		c.CC = d.CC
	}
	if c.AdjustmentWindow == 0 {
		c.AdjustmentWindow = d.AdjustmentWindow
	}
	if c.HeightMin == 0 {
		c.HeightMin = d.HeightMin
	}
	if c.LatencyFilter == 0 {
		c.LatencyFilter = d.LatencyFilter
	}
	if c.GravityRho == 0 {
		c.GravityRho = d.GravityRho
	}
	if c.MaxRTT == 0 {
		c.MaxRTT = d.MaxRTT
	}
	return c, nil
}

// Coordinate is a node's position. Lengths are in seconds, as float64, so
// that the arithmetic needs no conversions; it is a plain value (the
// vector is an array), safe to copy and compare.
type Coordinate struct {
	Vec [Dim]float64 `json:"vec"`
	// Error is the node's own estimate of its relative error.
	Error float64 `json:"error"`
	// Adjustment is added to every distance from this node: the mean
	// residual the Euclidean space could not absorb.
	Adjustment float64 `json:"adjustment"`
	// Height is the node's access cost, added to every distance.
	Height float64 `json:"height"`
}

// origin returns a new node's coordinate.
func origin(cfg Config) Coordinate {
	return Coordinate{Error: cfg.ErrorMax, Height: cfg.HeightMin}
}

// Valid reports whether every component is finite.
func (c Coordinate) Valid() bool {
	for _, v := range c.Vec {
		if !finite(v) {
			return false
		}
	}
	return finite(c.Error) && finite(c.Adjustment) && finite(c.Height)
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// DistanceTo is the RTT the coordinates predict between c and other. The
// adjustment terms are left out when they would make it negative: an
// estimate is never below zero.
func (c Coordinate) DistanceTo(other Coordinate) time.Duration {
	raw := c.rawDistance(&other)
	if adj := raw + c.Adjustment + other.Adjustment; adj > 0 {
		raw = adj
	}
	return seconds(raw)
}

func (c *Coordinate) rawDistance(other *Coordinate) float64 {
	// One loop over pointers: lookups call this per host pair, and the
	// copies of two diff/norm calls cost as much as the arithmetic.
	var s float64
	for i := range c.Vec {
		d := c.Vec[i] - other.Vec[i]
		s += d * d
	}
	return math.Sqrt(s) + c.Height + other.Height
}

func seconds(s float64) time.Duration {
	if !finite(s) || s < 0 {
		return 0
	}
	if s > float64(math.MaxInt64)/1e9 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * 1e9)
}

func diff(a, b [Dim]float64) [Dim]float64 {
	var d [Dim]float64
	for i := range d {
		d[i] = a[i] - b[i]
	}
	return d
}

func norm(v [Dim]float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

// unitFrom returns the unit vector pointing from b to a and |a-b|; when the
// two coincide it picks a random direction, since two nodes at the same
// point must still be pushed apart.
func unitFrom(a, b [Dim]float64, rng *rand.Rand) ([Dim]float64, float64) {
	d := diff(a, b)
	if mag := norm(d); mag > zero {
		for i := range d {
			d[i] /= mag
		}
		return d, mag
	}
	for {
		for i := range d {
			d[i] = rng.Float64() - 0.5
		}
		if mag := norm(d); mag > zero {
			for i := range d {
				d[i] /= mag
			}
			return d, 0
		}
	}
}

// applyForce moves c along the line from other by force seconds (away from
// other when positive). The height moves in proportion to its share of the
// distance, as in the height-vector model: a node whose RTTs are all too
// long is more likely to have a slow access link than to be far away.
func (c Coordinate) applyForce(cfg Config, force float64, other Coordinate, rng *rand.Rand) Coordinate {
	unit, mag := unitFrom(c.Vec, other.Vec, rng)
	for i := range c.Vec {
		c.Vec[i] += unit[i] * force
	}
	if mag > zero {
		c.Height = (c.Height+other.Height)*force/mag + c.Height
		c.Height = math.Max(c.Height, cfg.HeightMin)
	}
	return c
}
