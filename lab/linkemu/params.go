package linkemu

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// maxHeld bounds the frames one direction holds at once (waiting out their
// delay), whatever the delay and the packet rate: 32768 frames of
// 1.5 KB are 48 MB.
const maxHeld = 1 << 15

// Params are one direction's properties.
type Params struct {
	// Delay is added to every frame.
	Delay time.Duration
	// Jitter spreads the delay uniformly over [Delay-Jitter, Delay+Jitter]
	// (never below zero). Frames keep their order: one drawn earlier than
	// the frame ahead of it leaves right after that one.
	Jitter time.Duration
	// LossPct drops this percentage of the frames, at random.
	LossPct float64
	// RateKbit, if positive, is the link's rate in kbit/s (1000 bit/s),
	// Ethernet header included. The kernel's tbf applies it on the sending
	// node's interface, before the relay (see shape).
	RateKbit int64
}

// Validate tells whether p can be applied.
func (p Params) Validate() error {
	switch {
	case p.Delay < 0:
		return fmt.Errorf("delay %v is negative", p.Delay)
	case p.Jitter < 0:
		return fmt.Errorf("jitter %v is negative", p.Jitter)
	case math.IsNaN(p.LossPct) || p.LossPct < 0 || p.LossPct > 100:
		return fmt.Errorf("loss %v%% is not in [0, 100]", p.LossPct)
	case p.RateKbit < 0 || p.RateKbit > maxRateKbit:
		return fmt.Errorf("rate %d kbit/s is not in [0, %d]", p.RateKbit, maxRateKbit)
	}
	return nil
}

// maxRateKbit bounds a rate (1 Tbit/s), far above what a lab link
// carries and far below where its arithmetic would overflow.
const maxRateKbit = 1_000_000_000

// DirStats count what happened to one direction's frames.
type DirStats struct {
	// Relayed frames were written to the far side.
	Relayed uint64
	// Lost frames were dropped by LossPct.
	Lost uint64
	// QueueDrops were dropped because the relay held as many frames as
	// it may (rate drops are the kernel's: Link.ShapedDrops).
	QueueDrops uint64
	// Errors are frames that could not be read whole (larger than the
	// MTU) or written.
	Errors uint64
	// MaxQueue is the most frames held at once, queued and in flight.
	MaxQueue int
	// MaxLate is the longest a frame left after its due time: the
	// relay's own error, which a busy machine makes grow.
	MaxLate time.Duration
	// Late is the distribution of that error over every frame relayed;
	// Late.Sub of an earlier snapshot gives it over an interval.
	Late Lateness
}

// Stats are both directions' counters since Start.
type Stats struct {
	AtoB, BtoA DirStats
}

// counters are a direction's DirStats as they are being counted.
type counters struct {
	relayed, lost, queueDrops, errors atomic.Uint64
	maxQueue, maxLate                 atomic.Int64
	late                              lateCounter
}

func (c *counters) snapshot() DirStats {
	return DirStats{
		Relayed:    c.relayed.Load(),
		Lost:       c.lost.Load(),
		QueueDrops: c.queueDrops.Load(),
		Errors:     c.errors.Load(),
		MaxQueue:   int(c.maxQueue.Load()),
		MaxLate:    time.Duration(c.maxLate.Load()),
		Late:       c.late.snapshot(),
	}
}
