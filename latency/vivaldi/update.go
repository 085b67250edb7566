package vivaldi

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// ErrReset is returned when an update produced a non-finite coordinate and
// the node was put back at the origin: a bug or an absurd input got past
// validation, and a NaN must never spread to the peers.
var ErrReset = errors.New("vivaldi: coordinate was invalid and has been reset")

// node is one node's learning state: its coordinate, its recent residuals
// for the adjustment term, and its per-peer RTT filters.
type node struct {
	coord  Coordinate
	adj    []float64 // ring of RTT − raw distance, seconds
	adjIdx int
	filter map[string]*rttFilter
}

type rttFilter struct {
	rtts []float64 // ring, seconds
	next int
}

func newNode(cfg Config) *node {
	return &node{
		coord:  origin(cfg),
		adj:    make([]float64, 0, cfg.AdjustmentWindow),
		filter: make(map[string]*rttFilter),
	}
}

func checkRTT(cfg Config, rtt time.Duration) error {
	if rtt < 0 || rtt > cfg.MaxRTT {
		return fmt.Errorf("vivaldi: rtt %v out of range [0, %v]", rtt, cfg.MaxRTT)
	}
	return nil
}

func checkCoord(c Coordinate) error {
	if !c.Valid() || c.Error < 0 || c.Height < 0 {
		return fmt.Errorf("vivaldi: invalid peer coordinate %+v", c)
	}
	return nil
}

// filtered records rtt from peer and returns the median of that peer's
// latest RTTs (the upper median when even, so that a pair is not averaged
// into a value nobody measured).
func (n *node) filtered(cfg Config, peer string, rtt float64) float64 {
	f := n.filter[peer]
	if f == nil {
		f = &rttFilter{rtts: make([]float64, 0, cfg.LatencyFilter)}
		n.filter[peer] = f
	}
	if len(f.rtts) < cfg.LatencyFilter {
		f.rtts = append(f.rtts, rtt)
	} else {
		f.rtts[f.next] = rtt
		f.next = (f.next + 1) % cfg.LatencyFilter
	}
	var buf [16]float64
	s := append(buf[:0], f.rtts...)
	slices.Sort(s)
	return s[len(s)/2]
}

// observe updates n from one filtered RTT (seconds) to a peer at other.
func (n *node) observe(cfg Config, other Coordinate, rtt float64, rng *rand.Rand) error {
	rtt = math.Max(rtt, zero)
	c := n.coord

	// Vivaldi proper, with the adaptive timestep: a node trusts an
	// observation in proportion to how unsure it is of itself compared
	// with the peer.
	dist := c.DistanceTo(other).Seconds()
	wrongness := math.Abs(dist-rtt) / rtt
	total := math.Max(c.Error+other.Error, zero)
	weight := c.Error / total
	c.Error = cfg.CE*weight*wrongness + c.Error*(1-cfg.CE*weight)
	c.Error = math.Min(c.Error, cfg.ErrorMax)
	c = c.applyForce(cfg, cfg.CC*weight*(rtt-dist), other, rng)

	// Adjustment: half the mean residual, since both ends add theirs.
	res := rtt - c.rawDistance(&other)
	if len(n.adj) < cfg.AdjustmentWindow {
		n.adj = append(n.adj, res)
	} else {
		n.adj[n.adjIdx] = res
		n.adjIdx = (n.adjIdx + 1) % cfg.AdjustmentWindow
	}
	var sum float64
	for _, r := range n.adj {
		sum += r
	}
	c.Adjustment = sum / (2 * float64(cfg.AdjustmentWindow))

	// Gravity towards the origin.
	o := origin(cfg)
	g := c.rawDistance(&o) / cfg.GravityRho
	c = c.applyForce(cfg, -g*g, o, rng)

	if !c.Valid() {
		n.coord = origin(cfg)
		n.adj, n.adjIdx = n.adj[:0], 0
		return ErrReset
	}
	n.coord = c
	return nil
}

// Client is one node's view: its own coordinate, updated from its peers'.
// It is safe for concurrent use.
type Client struct {
	mu   sync.Mutex
	cfg  Config
	self *node
	rng  *rand.Rand
}

// New returns a client at the origin.
func New(cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, self: newNode(cfg), rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed))}, nil
}

// Coordinate returns the client's current coordinate.
func (c *Client) Coordinate() Coordinate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.self.coord
}

// Update takes a measured RTT to peer, whose coordinate is peerCoord, and
// returns the client's new coordinate. A negative or too long RTT, or an
// invalid peer coordinate, is refused and changes nothing.
func (c *Client) Update(peer string, peerCoord Coordinate, rtt time.Duration) (Coordinate, error) {
	if err := checkRTT(c.cfg, rtt); err != nil {
		return c.Coordinate(), err
	}
	if err := checkCoord(peerCoord); err != nil {
		return c.Coordinate(), err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.self.filtered(c.cfg, peer, rtt.Seconds())
	err := c.self.observe(c.cfg, peerCoord, r, c.rng)
	return c.self.coord, err
}

// DistanceTo is the RTT the client's coordinate predicts to other.
func (c *Client) DistanceTo(other Coordinate) time.Duration {
	return c.Coordinate().DistanceTo(other)
}
