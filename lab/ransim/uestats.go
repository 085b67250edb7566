package ransim

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// UEReport is one JSON line a UE writes. Type says which fields are set:
// "stats" (every report interval, over that interval) and "final" (over
// the whole run) carry UEStats; "handover", "cell_change_reported" and
// "cell_change_report_failed" carry UEHandover.
type UEReport struct {
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	UE   string    `json:"ue"`
	Cell string    `json:"cell,omitempty"`
	GNB  string    `json:"gnb"`
	*UEStats
	*UEHandover
}

// UEStats is what a UE saw over an interval or a run. A request is lost
// when no answer came within the timeout; an answer after that is late.
// Latencies are round trips, in milliseconds.
type UEStats struct {
	Sent     int64   `json:"sent"`
	Received int64   `json:"received"`
	Lost     int64   `json:"lost"`
	Late     int64   `json:"late"`
	InFlight int64   `json:"inFlight,omitempty"` // final: sent, neither answered nor timed out yet
	LossPct  float64 `json:"lossPct"`
	P50Ms    float64 `json:"p50Ms"`
	P95Ms    float64 `json:"p95Ms"`
	P99Ms    float64 `json:"p99Ms"`
	MaxMs    float64 `json:"maxMs"`
	// AnsweredBy counts answers by the name the server put before them,
	// or by its address when it gave none.
	AnsweredBy map[string]int64 `json:"answeredBy"`
}

// UEHandover describes a handover and the report of it.
type UEHandover struct {
	FromCell string `json:"fromCell,omitempty"`
	ToCell   string `json:"toCell"`
	FromGNB  string `json:"fromGnb"`
	Error    string `json:"error,omitempty"`
}

// reservoirSize bounds the latencies a UE keeps for its run's
// percentiles: beyond it they are a uniform sample (algorithm R).
const reservoirSize = 100_000

// tally accumulates a UE's counts and latencies.
type tally struct {
	sent, received, lost, late int64
	by                         map[string]int64
	samples                    []time.Duration
	seen                       int64 // samples offered, for the reservoir
	rng                        *rand.Rand
}

func newTally(rng *rand.Rand) *tally { return &tally{by: map[string]int64{}, rng: rng} }

func (t *tally) answer(rtt time.Duration, by string) {
	t.received++
	t.by[by]++
	t.seen++
	if len(t.samples) < reservoirSize {
		t.samples = append(t.samples, rtt)
		return
	}
	if i := t.rng.Int64N(t.seen); i < reservoirSize {
		t.samples[i] = rtt
	}
}

func (t *tally) stats() *UEStats {
	s := &UEStats{Sent: t.sent, Received: t.received, Lost: t.lost, Late: t.late, AnsweredBy: map[string]int64{}}
	for k, v := range t.by {
		s.AnsweredBy[k] = v
	}
	if n := t.received + t.lost; n > 0 {
		s.LossPct = round3(100 * float64(t.lost) / float64(n))
	}
	sorted := slices.Clone(t.samples)
	slices.Sort(sorted)
	s.P50Ms, s.P95Ms, s.P99Ms = ms(percentile(sorted, 50)), ms(percentile(sorted, 95)), ms(percentile(sorted, 99))
	if len(sorted) > 0 {
		s.MaxMs = ms(sorted[len(sorted)-1])
	}
	return s
}

// percentile is the nearest-rank percentile of sorted samples; 0 for
// none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
