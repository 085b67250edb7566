package vivaldi

import (
	"errors"
	"math/rand/v2"
	"time"
)

// Set holds the coordinates of a whole system and runs Vivaldi centrally:
// each measured RTT between two nodes updates both, each from the other's
// coordinate as it was before the measurement.
//
// A Set is not safe for concurrent use with Observe or Remove; Estimate,
// Error, Coordinate and Len only read, so they may run concurrently with
// each other (the RTT map guards a Set with its own RWMutex this way).
type Set struct {
	cfg   Config
	nodes map[string]*node
	rng   *rand.Rand
}

// NewSet returns an empty set.
func NewSet(cfg Config) (*Set, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Set{cfg: cfg, nodes: make(map[string]*node), rng: rand.New(rand.NewPCG(cfg.Seed, 0x5e7))}, nil
}

// Observe takes an RTT measured between nodes a and b (in either
// direction) and moves both. Nodes not seen before start at the origin.
// A negative or too long RTT, or a node measured against itself, is
// refused and changes nothing. ErrReset says a node had to be reset (the
// other end's update still happened).
func (s *Set) Observe(a, b string, rtt time.Duration) error {
	if a == b {
		return errors.New("vivaldi: a node cannot be measured against itself")
	}
	if a == "" || b == "" {
		return errors.New("vivaldi: empty node ID")
	}
	if err := checkRTT(s.cfg, rtt); err != nil {
		return err
	}
	na, nb := s.get(a), s.get(b)
	ca, cb := na.coord, nb.coord
	r := rtt.Seconds()
	errA := na.observe(s.cfg, cb, na.filtered(s.cfg, b, r), s.rng)
	errB := nb.observe(s.cfg, ca, nb.filtered(s.cfg, a, r), s.rng)
	return errors.Join(errA, errB)
}

func (s *Set) get(id string) *node {
	n := s.nodes[id]
	if n == nil {
		n = newNode(s.cfg)
		s.nodes[id] = n
	}
	return n
}

// Estimate is the RTT the coordinates predict between a and b; false when
// either has never been observed. It does not allocate.
func (s *Set) Estimate(a, b string) (time.Duration, bool) {
	na, ok := s.nodes[a]
	if !ok {
		return 0, false
	}
	nb, ok := s.nodes[b]
	if !ok {
		return 0, false
	}
	return na.coord.DistanceTo(nb.coord), true
}

// Error is the node's own error estimate: ErrorMax for a node never seen.
func (s *Set) Error(id string) float64 {
	if n, ok := s.nodes[id]; ok {
		return n.coord.Error
	}
	return s.cfg.ErrorMax
}

// Coordinate returns a node's coordinate.
func (s *Set) Coordinate(id string) (Coordinate, bool) {
	n, ok := s.nodes[id]
	if !ok {
		return Coordinate{}, false
	}
	return n.coord, true
}

// Len is the number of nodes.
func (s *Set) Len() int { return len(s.nodes) }

// Remove forgets a node and the RTT filters others keep of it.
func (s *Set) Remove(id string) {
	if _, ok := s.nodes[id]; !ok {
		return
	}
	delete(s.nodes, id)
	for _, n := range s.nodes {
		delete(n.filter, id)
	}
}

// Config is the configuration in use, defaults filled in.
func (s *Set) Config() Config { return s.cfg }
