package linkemu

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Lateness is a histogram of how long after their due time frames left:
// the relay's own error, which adds to the delay a link was given.
//
// A mean or a maximum says little about that error (one frame delayed by
// a page fault sets the maximum for good), and a quantile needs the whole
// distribution; a fixed set of buckets keeps it at one atomic add per
// frame. Buckets are a microsecond wide up to 16 µs, then 16 to an
// octave (at most 1/16, 6%, of the value wide) up to lateHistMax;
// later frames share the last bucket.
type Lateness struct {
	// Counts are frames per bucket; see LateBucketBound.
	Counts [lateBuckets]uint64
}

const (
	lateSub     = 16 // linear µs buckets, and buckets per octave above them
	lateOctaves = 16 // 16 µs·2^16 ≈ 1 s
	lateBuckets = lateSub + lateOctaves*lateSub + 1
	// lateHistMax is where the last, open bucket starts.
	lateHistMax = lateSub << lateOctaves * time.Microsecond
)

// lateBucket is the bucket of a lateness of d (negative counts as 0).
func lateBucket(d time.Duration) int {
	us := uint64(max(d, 0) / time.Microsecond)
	if us < lateSub {
		return int(us)
	}
	// us in [16·2^k, 16·2^(k+1)): octave k, sub-bucket from the next
	// four bits below the leading one.
	k := bits.Len64(us) - 5
	if k >= lateOctaves {
		return lateBuckets - 1
	}
	sub := int(us>>uint(k)) - lateSub
	return lateSub + k*lateSub + sub
}

// LateBucketBound is the upper bound of bucket i (exclusive): a frame
// counted there left less than that late. The last bucket has none
// (returns the largest Duration).
func LateBucketBound(i int) time.Duration {
	switch {
	case i < lateSub:
		return time.Duration(i+1) * time.Microsecond
	case i >= lateBuckets-1:
		return time.Duration(1<<63 - 1)
	}
	k, sub := (i-lateSub)/lateSub, (i-lateSub)%lateSub
	return time.Duration(uint64(lateSub+sub+1)<<uint(k)) * time.Microsecond
}

// Total is the number of frames counted.
func (h Lateness) Total() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile is an upper bound of the q-quantile (0 < q ≤ 1) of the
// lateness: the bound of the bucket that holds it. 0 if nothing was
// counted.
func (h Lateness) Quantile(q float64) time.Duration {
	total := h.Total()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.999999)
	rank = min(max(rank, 1), total)
	var n uint64
	for i, c := range h.Counts {
		if n += c; n >= rank {
			return LateBucketBound(i)
		}
	}
	return LateBucketBound(lateBuckets - 1)
}

// Sub is what was counted since the snapshot earlier was taken: the
// lateness over an interval.
func (h Lateness) Sub(earlier Lateness) Lateness {
	for i := range h.Counts {
		h.Counts[i] -= earlier.Counts[i]
	}
	return h
}

// lateCounter is a Lateness as it is being counted, by the sender while
// Stats reads it.
type lateCounter [lateBuckets]atomic.Uint64

func (c *lateCounter) add(d time.Duration) { c[lateBucket(d)].Add(1) }

func (c *lateCounter) snapshot() Lateness {
	var h Lateness
	for i := range c {
		h.Counts[i] = c[i].Load()
	}
	return h
}
