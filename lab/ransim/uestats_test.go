package ransim

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 95: 95 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := percentile(s, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("empty: %v", got)
	}
	if got := percentile(s[:1], 99); got != time.Millisecond {
		t.Errorf("one sample: %v", got)
	}
}

func TestTallyStats(t *testing.T) {
	tl := newTally(rand.New(rand.NewPCG(1, 2)))
	tl.sent = 4
	tl.answer(time.Millisecond, "a")
	tl.answer(3*time.Millisecond, "a")
	tl.answer(2*time.Millisecond, "b")
	tl.lost = 1
	s := tl.stats()
	if s.Received != 3 || s.LossPct != 25 || s.P50Ms != 2 || s.MaxMs != 3 || s.AnsweredBy["a"] != 2 || s.AnsweredBy["b"] != 1 {
		t.Fatalf("stats = %+v", s)
	}
	// The reservoir stays bounded.
	for range reservoirSize + 10 {
		tl.answer(time.Millisecond, "a")
	}
	if len(tl.samples) != reservoirSize {
		t.Fatalf("%d samples kept", len(tl.samples))
	}
}

func TestParseAnswer(t *testing.T) {
	req := make([]byte, 20)
	copy(req, payloadMagic)
	binary.BigEndian.PutUint64(req[4:], 77)
	for _, tc := range []struct {
		in   []byte
		name string
		seq  uint64
		ok   bool
	}{
		{req, "", 77, true},
		{append([]byte("edge-1|"), req...), "edge-1", 77, true},
		{append([]byte("|"), req...), "", 77, true},
		{[]byte("edge-1|nope"), "", 0, false},
		{[]byte("nothing"), "", 0, false},
		{req[:10], "", 0, false},
	} {
		name, seq, ok := parseAnswer(tc.in)
		if name != tc.name || seq != tc.seq || ok != tc.ok {
			t.Errorf("parseAnswer(%q) = %q %d %v", tc.in, name, seq, ok)
		}
	}
}
