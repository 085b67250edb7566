package agentwire

import (
	"math/rand/v2"
	"time"
)

// Backoff spaces an agent's reconnect attempts, so that a thousand agents
// cut off by one orchestrator restart do not all return in the same
// second.
type Backoff struct {
	// Initial is the wait before the first retry; it doubles with every
	// attempt up to Max (Max below Initial means Initial, always).
	Initial, Max time.Duration
	// Jitter is the random share of each wait, from 0 to 1: with 1 the
	// wait is uniform in [0, d] ("full jitter"), with 0.5 in [d/2, d]
	// ("equal jitter"), with 0 it is d.
	Jitter float64
}

// Next returns the wait before retry number attempt (0 for the first).
// rnd returns a number in [0, 1); nil means math/rand/v2.Float64. The
// wait never exceeds Max.
func (b Backoff) Next(attempt int, rnd func() float64) time.Duration {
	if b.Initial <= 0 {
		return 0
	}
	ceiling := max(b.Max, b.Initial)
	d := b.Initial
	for i := 0; i < attempt && d < ceiling; i++ {
		if d > ceiling/2 {
			d = ceiling
			break
		}
		d *= 2
	}
	d = min(d, ceiling)
	j := min(max(b.Jitter, 0), 1)
	if j == 0 {
		return d
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	r := min(max(rnd(), 0), 1)
	wait := time.Duration(float64(d)*(1-j) + float64(d)*j*r)
	return min(max(wait, 0), d)
}
