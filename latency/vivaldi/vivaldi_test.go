package vivaldi

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// topology is a synthetic network: nodes at points in a plane (distances in
// ms of RTT) behind access links of their own (heights), so that it is
// exactly the model Vivaldi with heights fits, plus multiplicative noise.
type topology struct {
	x, y, h []float64 // ms
}

func newTopology(rng *rand.Rand, n int) topology {
	t := topology{x: make([]float64, n), y: make([]float64, n), h: make([]float64, n)}
	for i := range n {
		t.x[i] = rng.Float64() * 80
		t.y[i] = rng.Float64() * 80
		t.h[i] = 1 + rng.Float64()*4
	}
	return t
}

func (t topology) rtt(i, j int) float64 {
	return math.Hypot(t.x[i]-t.x[j], t.y[i]-t.y[j]) + t.h[i] + t.h[j]
}

func id(i int) string { return string(rune('A'+i/26)) + string(rune('a'+i%26)) }

func msd(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

// TestSetConvergesOnUnobservedPairs learns from a sparse set of pairs (each
// node measured against 8 random others, as a probe plan would) and checks
// the estimates of the pairs never measured.
//
// The bound: the topology is 2-D plus heights, which the 8-D+height space
// embeds exactly, so what is left is the ±5% noise (whose median filter
// leaves a few %) and Vivaldi's residual from the spring relaxation with the
// adaptive timestep. Dabek et al. report median relative errors around 10%
// on real Internet matrices that do not embed exactly; on an embeddable one
// we demand better: 10%. The run measures about 2% with this seed (see the
// log line), so the bound leaves room for a different seed without letting
// a broken update (which gives errors of 30–100%) pass.
func TestSetConvergesOnUnobservedPairs(t *testing.T) {
	const n, degree, rounds = 60, 8, 150
	rng := rand.New(rand.NewPCG(1, 2))
	topo := newTopology(rng, n)

	observed := make(map[[2]int]bool)
	var pairs [][2]int
	for i := range n {
		for len(pairs) < (i+1)*degree {
			j := rng.IntN(n)
			k := [2]int{min(i, j), max(i, j)}
			if i == j || observed[k] {
				continue
			}
			observed[k] = true
			pairs = append(pairs, k)
		}
	}

	s, err := NewSet(Config{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	for range rounds {
		rng.Shuffle(len(pairs), func(a, b int) { pairs[a], pairs[b] = pairs[b], pairs[a] })
		for _, p := range pairs {
			noise := 1 + (rng.Float64()-0.5)*0.1
			if err := s.Observe(id(p[0]), id(p[1]), msd(topo.rtt(p[0], p[1])*noise)); err != nil {
				t.Fatal(err)
			}
		}
	}

	var rel []float64
	for i := range n {
		for j := i + 1; j < n; j++ {
			if observed[[2]int{i, j}] {
				continue
			}
			est, ok := s.Estimate(id(i), id(j))
			if !ok {
				t.Fatalf("no estimate for %s-%s", id(i), id(j))
			}
			want := topo.rtt(i, j)
			rel = append(rel, math.Abs(float64(est)/float64(time.Millisecond)-want)/want)
		}
	}
	slices.Sort(rel)
	med, p90 := rel[len(rel)/2], rel[len(rel)*9/10]
	t.Logf("unobserved pairs: %d, median relative error %.3f, p90 %.3f, mean node error %.3f",
		len(rel), med, p90, meanError(s, n))
	if med > 0.10 {
		t.Errorf("median relative error %.3f > 0.10", med)
	}
	if e := meanError(s, n); e > 0.5 {
		t.Errorf("mean node error estimate %.3f did not come down from %.1f", e, s.Config().ErrorMax)
	}
}

func meanError(s *Set, n int) float64 {
	var sum float64
	for i := range n {
		sum += s.Error(id(i))
	}
	return sum / float64(n)
}

func TestSetValidation(t *testing.T) {
	s, err := NewSet(Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		a, b string
		rtt  time.Duration
		ok   bool
	}{
		{"negative", "a", "b", -time.Millisecond, false},
		{"huge", "a", "b", time.Minute, false},
		{"self", "a", "a", time.Millisecond, false},
		{"empty id", "", "b", time.Millisecond, false},
		{"zero is fine (clamped)", "a", "b", 0, true},
		{"max is fine", "a", "b", 10 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Len()
			err := s.Observe(tt.a, tt.b, tt.rtt)
			if (err == nil) != tt.ok {
				t.Fatalf("Observe err = %v, want ok=%v", err, tt.ok)
			}
			if !tt.ok && s.Len() != before {
				t.Errorf("refused observation added nodes")
			}
		})
	}
	if _, ok := s.Estimate("a", "nobody"); ok {
		t.Error("estimate for an unknown node")
	}
	if got := s.Error("nobody"); got != 1.5 {
		t.Errorf("Error(unknown) = %v, want ErrorMax 1.5", got)
	}
	s.Remove("b")
	if _, ok := s.Estimate("a", "b"); ok {
		t.Error("estimate after Remove")
	}
	if _, err := NewSet(Config{CC: math.NaN()}); err == nil {
		t.Error("NaN config accepted")
	}
	if _, err := New(Config{GravityRho: -1}); err == nil {
		t.Error("negative config accepted")
	}
}

func TestClientUpdate(t *testing.T) {
	c, err := New(Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c.Coordinate().Error != 1.5 {
		t.Fatalf("new client error %v, want 1.5", c.Coordinate().Error)
	}
	// A fixed, confident peer 50 ms away at the origin-ish.
	peer := Coordinate{Error: 0.05, Height: 10e-6}
	peer.Vec[0] = 0.001
	for range 200 {
		if _, err := c.Update("p", peer, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	got := c.DistanceTo(peer)
	if d := got - 50*time.Millisecond; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("distance to peer %v, want 50ms ± 1ms", got)
	}
	if e := c.Coordinate().Error; e > 0.1 {
		t.Errorf("error %v did not come down", e)
	}

	before := c.Coordinate()
	bad := peer
	bad.Vec[3] = math.NaN()
	for _, tc := range []struct {
		name string
		pc   Coordinate
		rtt  time.Duration
	}{
		{"NaN peer", bad, time.Millisecond},
		{"negative height", Coordinate{Height: -1}, time.Millisecond},
		{"negative rtt", peer, -1},
		{"huge rtt", peer, time.Hour},
	} {
		if _, err := c.Update("p", tc.pc, tc.rtt); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if c.Coordinate() != before {
		t.Error("refused updates moved the coordinate")
	}
}

// TestLatencyFilter: one spike among steady RTTs does not move a converged
// node much, because the median of the last three ignores it.
func TestLatencyFilter(t *testing.T) {
	c, _ := New(Config{Seed: 3})
	peer := Coordinate{Error: 0.05, Height: 10e-6}
	for range 100 {
		c.Update("p", peer, 20*time.Millisecond)
	}
	before := c.DistanceTo(peer)
	c.Update("p", peer, 2*time.Second)
	after := c.DistanceTo(peer)
	if d := after - before; d > time.Millisecond || d < -time.Millisecond {
		t.Errorf("one spike moved the distance from %v to %v", before, after)
	}
}

func TestCoincidentNodesSeparate(t *testing.T) {
	s, _ := NewSet(Config{Seed: 5})
	for range 50 {
		if err := s.Observe("a", "b", 30*time.Millisecond); err != nil && !errors.Is(err, ErrReset) {
			t.Fatal(err)
		}
	}
	est, _ := s.Estimate("a", "b")
	if est < 25*time.Millisecond || est > 35*time.Millisecond {
		t.Errorf("two nodes starting at the same point: estimate %v, want ~30ms", est)
	}
}

func TestDistanceNeverNegative(t *testing.T) {
	a := Coordinate{Adjustment: -1}
	b := Coordinate{Height: 0.002}
	if d := a.DistanceTo(b); d != 2*time.Millisecond {
		t.Errorf("DistanceTo = %v, want the raw 2ms when the adjustment would go negative", d)
	}
}

func BenchmarkSetObserve(b *testing.B) {
	s, _ := NewSet(Config{})
	rng := rand.New(rand.NewPCG(1, 1))
	b.ReportAllocs()
	for b.Loop() {
		i, j := rng.IntN(100), rng.IntN(100)
		if i == j {
			continue
		}
		s.Observe(id(i), id(j), msd(10+float64(i+j)))
	}
}

func BenchmarkSetEstimate(b *testing.B) {
	s, _ := NewSet(Config{})
	s.Observe("a", "b", 10*time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		s.Estimate("a", "b")
	}
}
