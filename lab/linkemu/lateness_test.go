package linkemu

import (
	"testing"
	"time"
)

// Every lateness falls in a bucket whose bound is above it and whose
// predecessor's bound is not, and buckets are at most 1/16 of their
// values wide: the quantiles are tight upper bounds.
func TestLatenessBuckets(t *testing.T) {
	for us := int64(0); us < 3_000_000; us += 1 + us/7 {
		d := time.Duration(us) * time.Microsecond
		i := lateBucket(d)
		if d >= lateHistMax {
			if i != lateBuckets-1 {
				t.Fatalf("%v: bucket %d, want the last", d, i)
			}
			continue
		}
		hi := LateBucketBound(i)
		lo := time.Duration(0)
		if i > 0 {
			lo = LateBucketBound(i - 1)
		}
		if d < lo || d >= hi {
			t.Fatalf("%v: bucket %d is [%v, %v)", d, i, lo, hi)
		}
		if w := hi - lo; w > time.Microsecond && w > hi/16 {
			t.Fatalf("%v: bucket %d is %v wide", d, i, w)
		}
	}
	if lateBucket(-time.Second) != 0 {
		t.Fatal("early frames must count as on time")
	}
}

func TestLatenessQuantiles(t *testing.T) {
	var c lateCounter
	if q := c.snapshot().Quantile(0.5); q != 0 {
		t.Fatalf("empty: %v", q)
	}
	for i := range 100 {
		c.add(time.Duration(i) * time.Microsecond) // 0..99 µs
	}
	before := c.snapshot()
	for range 100 {
		c.add(time.Millisecond)
	}
	h := c.snapshot()
	if h.Total() != 200 {
		t.Fatalf("total %d", h.Total())
	}
	// p50 of all is the 100th frame, 99 µs (bucket [98, 100) µs); p95 is 1 ms.
	if q := h.Quantile(0.5); q != 100*time.Microsecond {
		t.Fatalf("p50 %v", q)
	}
	if q := h.Quantile(0.95); q < time.Millisecond || q > time.Millisecond*17/16 {
		t.Fatalf("p95 %v", q)
	}
	d := h.Sub(before)
	if d.Total() != 100 || d.Quantile(0.01) < time.Millisecond {
		t.Fatalf("interval: total %d, p1 %v", d.Total(), d.Quantile(0.01))
	}
}
