package latency

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

// sample sends probe seq at t0+at; rtt<0 means lost.
func sample(seq uint32, at time.Duration, rtt time.Duration, src Source) Sample {
	s := Sample{Target: "x", Seq: seq, SentAt: t0.Add(at), RTT: rtt, Source: src}
	if rtt < 0 {
		s.Lost, s.RTT = true, 0
	}
	return s
}

func TestWindowStats(t *testing.T) {
	sec := time.Second
	// 10, 14, 12, 20 ms in send order: D = 4, 2, 8 ms.
	// J1 = 4/16 = 0.25; J2 = 0.25 + (2-0.25)/16 = 0.359375;
	// J3 = 0.359375 + (8-0.359375)/16 = 0.8369140625 ms.
	jit := time.Duration(836914)
	tests := []struct {
		name    string
		span    time.Duration
		cap     int
		samples []Sample
		now     time.Duration
		want    Stats
	}{
		{
			name: "empty",
			span: 10 * sec, cap: 8,
			now:  20 * sec,
			want: Stats{},
		},
		{
			name: "in order, jitter by hand",
			span: 10 * sec, cap: 8,
			samples: []Sample{
				sample(1, 1*sec, ms(10), SourceKernel),
				sample(2, 2*sec, ms(14), SourceKernel),
				sample(3, 3*sec, ms(12), SourceKernel),
				sample(4, 4*sec, ms(20), SourceKernel),
			},
			now: 5 * sec,
			want: Stats{Sent: 4, Min: ms(10), P50: ms(12), P95: ms(20), P99: ms(20),
				Jitter: jit, Source: SourceKernel},
		},
		{
			name: "out of order SentAt gives the same jitter",
			span: 10 * sec, cap: 8,
			samples: []Sample{
				sample(3, 3*sec, ms(12), SourceKernel),
				sample(1, 1*sec, ms(10), SourceKernel),
				sample(4, 4*sec, ms(20), SourceKernel),
				sample(2, 2*sec, ms(14), SourceKernel),
			},
			now: 5 * sec,
			want: Stats{Sent: 4, Min: ms(10), P50: ms(12), P95: ms(20), P99: ms(20),
				Jitter: jit, Source: SourceKernel},
		},
		{
			name: "loss skipped by jitter, counted in loss, worst source",
			span: 10 * sec, cap: 8,
			samples: []Sample{
				sample(1, 1*sec, ms(10), SourceHardware),
				sample(2, 2*sec, -1, SourceUser),
				sample(3, 3*sec, ms(14), SourceKernel),
				sample(4, 4*sec, -1, SourceKernel),
			},
			now: 5 * sec,
			// one difference, 4 ms: J = 0.25 ms
			want: Stats{Sent: 4, Lost: 2, Loss: 0.5, Min: ms(10), P50: ms(10),
				P95: ms(14), P99: ms(14), Jitter: ms(0.25), Source: SourceUser},
		},
		{
			name: "total loss",
			span: 10 * sec, cap: 8,
			samples: []Sample{
				sample(1, 1*sec, -1, SourceKernel),
				sample(2, 2*sec, -1, SourceKernel),
			},
			now:  5 * sec,
			want: Stats{Sent: 2, Lost: 2, Loss: 1, Source: SourceKernel},
		},
		{
			name: "span is (now-span, now]: the sample at now-span and the future one are out",
			span: 10 * sec, cap: 8,
			samples: []Sample{
				sample(1, 0, ms(50), SourceKernel),        // at now-span: out
				sample(2, 1*sec, ms(10), SourceKernel),    // in
				sample(3, 10*sec, ms(11), SourceKernel),   // at now: in
				sample(4, 11*sec, ms(99), SourceHardware), // future: out
			},
			now: 10 * sec,
			want: Stats{Sent: 2, Min: ms(10), P50: ms(10), P95: ms(11), P99: ms(11),
				Jitter: ms(1) / 16, Source: SourceKernel},
		},
		{
			name: "capacity drops the oldest",
			span: 10 * sec, cap: 2,
			samples: []Sample{
				sample(1, 1*sec, ms(1), SourceKernel),
				sample(2, 2*sec, ms(30), SourceKernel),
				sample(3, 3*sec, ms(40), SourceKernel),
			},
			now: 5 * sec,
			want: Stats{Sent: 2, Min: ms(30), P50: ms(30), P95: ms(40), P99: ms(40),
				Jitter: ms(10) / 16, Source: SourceKernel},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWindow(tt.span, tt.cap)
			for _, s := range tt.samples {
				w.Add(s)
			}
			now := t0.Add(tt.now)
			want := tt.want
			want.From, want.To = now.Add(-tt.span), now
			if got := w.Stats(now); got != want {
				t.Errorf("Stats:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestWindowPercentiles checks nearest rank on 1..100 ms and on 1..1000
// ms, where P95 and P99 are the 95th/99th and 950th/990th values.
func TestWindowPercentiles(t *testing.T) {
	for _, n := range []int{1, 2, 100, 1000} {
		w := NewWindow(time.Hour, n)
		for i := n; i >= 1; i-- { // reversed RTT order
			w.Add(sample(uint32(i), time.Duration(i)*time.Millisecond, ms(float64(i)), SourceKernel))
		}
		st := w.Stats(t0.Add(time.Minute))
		rank := func(p int) time.Duration { return ms(float64((p*n + 99) / 100)) }
		if st.Min != ms(1) || st.P50 != rank(50) || st.P95 != rank(95) || st.P99 != rank(99) {
			t.Errorf("n=%d: min %v p50 %v p95 %v p99 %v; want %v %v %v %v",
				n, st.Min, st.P50, st.P95, st.P99, ms(1), rank(50), rank(95), rank(99))
		}
	}
	// Spot values, not derived from the formula above.
	w := NewWindow(time.Hour, 10)
	for i := 1; i <= 10; i++ {
		w.Add(sample(uint32(i), time.Duration(i), ms(float64(i)), SourceKernel))
	}
	st := w.Stats(t0.Add(time.Second))
	if st.P50 != ms(5) || st.P95 != ms(10) || st.P99 != ms(10) {
		t.Errorf("1..10: p50 %v p95 %v p99 %v, want 5ms 10ms 10ms", st.P50, st.P95, st.P99)
	}
}

func TestWindowZeroConfig(t *testing.T) {
	w := NewWindow(0, 0)
	w.Add(sample(1, 0, ms(3), SourceUser))
	w.Add(sample(2, 0, ms(4), SourceUser))
	if w.Len() != 1 {
		t.Fatalf("Len = %d, want 1", w.Len())
	}
	if st := w.Stats(t0); st.Sent != 1 || st.P50 != ms(4) {
		t.Errorf("Stats = %+v, want the one latest sample", st)
	}
}

func BenchmarkWindowAddStats(b *testing.B) {
	// 10 probes/s over a 10 s window: 100 samples, one Stats per window.
	w := NewWindow(10*time.Second, 128)
	b.ReportAllocs()
	var seq uint32
	for b.Loop() {
		for range 100 {
			seq++
			rtt := ms(float64(10 + seq%7))
			if seq%50 == 0 {
				rtt = -1
			}
			w.Add(sample(seq, time.Duration(seq)*100*time.Millisecond, rtt, SourceKernel))
		}
		_ = w.Stats(t0.Add(time.Duration(seq) * 100 * time.Millisecond))
	}
}
