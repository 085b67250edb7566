package agentwire

import (
	"testing"
	"time"
)

func TestBackoffNext(t *testing.T) {
	const ms = time.Millisecond
	fixed := func(v float64) func() float64 { return func() float64 { return v } }
	tests := []struct {
		name    string
		b       Backoff
		attempt int
		rnd     func() float64
		want    time.Duration
	}{
		{"first, no jitter", Backoff{Initial: 100 * ms, Max: time.Second}, 0, nil, 100 * ms},
		{"doubles", Backoff{Initial: 100 * ms, Max: time.Second}, 3, nil, 800 * ms},
		{"capped", Backoff{Initial: 100 * ms, Max: time.Second}, 4, nil, time.Second},
		{"huge attempt stays capped", Backoff{Initial: 100 * ms, Max: time.Second}, 1 << 30, nil, time.Second},
		{"negative attempt is the first", Backoff{Initial: 100 * ms, Max: time.Second}, -5, nil, 100 * ms},
		{"max below initial", Backoff{Initial: 100 * ms, Max: 10 * ms}, 3, nil, 100 * ms},
		{"no initial", Backoff{Max: time.Second}, 3, nil, 0},
		{"full jitter low", Backoff{Initial: 100 * ms, Max: time.Second, Jitter: 1}, 1, fixed(0), 0},
		{"full jitter mid", Backoff{Initial: 100 * ms, Max: time.Second, Jitter: 1}, 1, fixed(0.25), 50 * ms},
		{"equal jitter low", Backoff{Initial: 100 * ms, Max: time.Second, Jitter: 0.5}, 1, fixed(0), 100 * ms},
		{"equal jitter high", Backoff{Initial: 100 * ms, Max: time.Second, Jitter: 0.5}, 1, fixed(0.999999999), 200 * ms},
		{"jitter over 1 is 1", Backoff{Initial: 100 * ms, Max: time.Second, Jitter: 7}, 0, fixed(0.5), 50 * ms},
		{"rnd out of range is clamped", Backoff{Initial: 100 * ms, Max: time.Second, Jitter: 1}, 10, fixed(3), time.Second},
		{"huge durations do not overflow", Backoff{Initial: time.Duration(1 << 61), Max: time.Duration(1<<63 - 1)}, 10, nil, time.Duration(1<<63 - 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.b.Next(tt.attempt, tt.rnd)
			// Float arithmetic may round a nanosecond either way.
			if d := got - tt.want; d < -time.Nanosecond || d > time.Nanosecond {
				t.Fatalf("Next(%d) = %s, want %s", tt.attempt, got, tt.want)
			}
		})
	}
}

func TestBackoffNeverExceedsMax(t *testing.T) {
	b := Backoff{Initial: 300 * time.Millisecond, Max: 7 * time.Second, Jitter: 0.5}
	for attempt := range 100 {
		for _, r := range []float64{0, 0.3, 0.999999} {
			d := b.Next(attempt, func() float64 { return r })
			if d > b.Max || d < 0 {
				t.Fatalf("Next(%d) with rnd %v = %s", attempt, r, d)
			}
		}
		if d := b.Next(attempt, nil); d > b.Max || d < 0 { // the default source
			t.Fatalf("Next(%d) = %s", attempt, d)
		}
	}
}
