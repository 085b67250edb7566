package latency

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Window keeps one target's latest samples and sums up those sent within a
// sliding span. Memory is bounded: a ring of capacity samples, the oldest
// overwritten first, so a burst of probes shortens the window instead of
// growing it.
//
// A Window is for one target and is not safe for concurrent use: the prober
// owns it and reads it from the goroutine that adds to it (Stats reuses
// internal scratch buffers so that it does not allocate once warmed up).
type Window struct {
	span time.Duration
	ring []Sample
	next int // where the next sample goes
	n    int // samples held (≤ len(ring))

	// scratch, reused by Stats
	sel  []Sample
	rtts []time.Duration
}

// NewWindow returns a window over span holding at most capacity samples.
// A non-positive capacity is taken as 1 and a non-positive span as one
// nanosecond, so the zero configuration still works (if uselessly).
func NewWindow(span time.Duration, capacity int) *Window {
	if capacity < 1 {
		capacity = 1
	}
	if span <= 0 {
		span = 1
	}
	return &Window{span: span, ring: make([]Sample, capacity)}
}

// Span is the window's length.
func (w *Window) Span() time.Duration { return w.span }

// Len is the number of samples held, in or out of the span.
func (w *Window) Len() int { return w.n }

// Add records a sample, dropping the oldest one held when full. Samples may
// arrive out of SentAt order (answers overtake each other, losses are
// declared at timeout); Stats sorts them.
func (w *Window) Add(s Sample) {
	w.ring[w.next] = s
	w.next = (w.next + 1) % len(w.ring)
	if w.n < len(w.ring) {
		w.n++
	}
}

// Stats sums up the samples whose SentAt is in (now-span, now]:
//   - Sent, Lost and Loss count them;
//   - Min, P50, P95 and P99 are over the received RTTs, P by nearest rank
//     (the smallest RTT such that at least p% of the RTTs are ≤ it: the
//     ⌈p·n/100⌉-th smallest), so every reported value was really measured;
//   - Jitter is RFC 3550 A.8's estimator run over the received RTTs in
//     SentAt order (ties by Seq), starting from 0;
//   - Source is the worst among the samples (lost ones included: their
//     send stamp is part of the picture), empty when there are none;
//   - From and To are now-span and now.
func (w *Window) Stats(now time.Time) Stats {
	from := now.Add(-w.span)
	st := Stats{From: from, To: now}

	w.sel = w.sel[:0]
	for i := 0; i < w.n; i++ {
		s := w.ring[i]
		if s.SentAt.After(from) && !s.SentAt.After(now) {
			w.sel = append(w.sel, s)
		}
	}
	if len(w.sel) == 0 {
		return st
	}
	slices.SortFunc(w.sel, func(a, b Sample) int {
		if c := a.SentAt.Compare(b.SentAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})

	st.Source = w.sel[0].Source
	w.rtts = w.rtts[:0]
	var jitter float64
	var prev time.Duration
	for _, s := range w.sel {
		st.Source = Worse(st.Source, s.Source)
		st.Sent++
		if s.Lost {
			st.Lost++
			continue
		}
		if len(w.rtts) > 0 {
			d := math.Abs(float64(s.RTT - prev))
			jitter += (d - jitter) / 16
		}
		prev = s.RTT
		w.rtts = append(w.rtts, s.RTT)
	}
	st.Loss = float64(st.Lost) / float64(st.Sent)
	st.Jitter = time.Duration(math.Round(jitter))
	if len(w.rtts) == 0 {
		return st
	}
	slices.Sort(w.rtts)
	st.Min = w.rtts[0]
	st.P50 = nearestRank(w.rtts, 50)
	st.P95 = nearestRank(w.rtts, 95)
	st.P99 = nearestRank(w.rtts, 99)
	return st
}

// nearestRank returns the p-th percentile of sorted (non-empty) by nearest
// rank. Integer arithmetic keeps ⌈p·n/100⌉ exact.
func nearestRank(sorted []time.Duration, p int) time.Duration {
	n := len(sorted)
	rank := (p*n + 99) / 100
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}
