package rttmap

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mecorch/mecorch/latency"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(d time.Duration) {
	c.mu.Lock()
	c.t = t0.Add(d)
	c.mu.Unlock()
}

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

// win is a 10 s window ending at t0+end with median p50; lost == sent is
// total loss.
func win(end time.Duration, p50 time.Duration, sent, lost int) latency.Stats {
	st := latency.Stats{Sent: sent, Lost: lost, Loss: float64(lost) / float64(sent),
		From: t0.Add(end - 10*time.Second), To: t0.Add(end), Source: latency.SourceKernel}
	if lost < sent {
		st.Min, st.P50, st.P95, st.P99 = p50*9/10, p50, p50*12/10, p50*13/10
	}
	return st
}

func ok(end time.Duration, p50 time.Duration) latency.Stats { return win(end, p50, 100, 0) }

// newTestMap: sites S1 (h1a, h1b), S2 (h2a), S3 (h3a); cells c1@S1, c2@S2.
func newTestMap(t testing.TB, cfg Config) (*Map, *clock) {
	t.Helper()
	c := &clock{t: t0}
	cfg.Clock = c.Now
	m := New(cfg)
	m.SetTopology(
		map[string]string{"h1a": "S1", "h1b": "S1", "h2a": "S2", "h3a": "S3"},
		map[string]string{"c1": "S1", "c2": "S2"},
	)
	return m, c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestMeasuredStaleUnknown(t *testing.T) {
	m, c := newTestMap(t, Config{})
	must(t, m.Report("h1a", "host", "h2a", ok(0, ms(10))))

	tests := []struct {
		at      time.Duration
		a, b    string
		quality Quality
		rtt     time.Duration
	}{
		{5 * time.Second, "S1", "S2", Measured, ms(10)},
		{5 * time.Second, "S2", "S1", Measured, ms(10)},  // symmetric
		{30 * time.Second, "S1", "S2", Measured, ms(10)}, // exactly Fresh: still fresh
		{31 * time.Second, "S1", "S2", Stale, ms(10)},
		{5 * time.Second, "S1", "S3", Unknown, 0},
		{5 * time.Second, "S1", "nowhere", Unknown, 0},
	}
	for _, tt := range tests {
		c.set(tt.at)
		e := m.SiteSite(tt.a, tt.b)
		if e.Quality != tt.quality || e.RTT != tt.rtt {
			t.Errorf("at %v SiteSite(%s,%s) = %s %v, want %s %v", tt.at, tt.a, tt.b, e.Quality, e.RTT, tt.quality, tt.rtt)
		}
		if e.A > e.B || e.Kind != SiteSite {
			t.Errorf("SiteSite(%s,%s): kind %s A %s B %s, want ordered A < B", tt.a, tt.b, e.Kind, e.A, e.B)
		}
		if tt.quality != Unknown && (e.Stats == nil || !e.MeasuredAt.Equal(t0)) {
			t.Errorf("at %v: Stats %v MeasuredAt %v, want the window ending at t0", tt.at, e.Stats, e.MeasuredAt)
		}
	}
}

func TestMultipleReporters(t *testing.T) {
	m, c := newTestMap(t, Config{})
	must(t, m.Report("h1a", "host", "h2a", ok(0, ms(10))))
	must(t, m.Report("h2a", "host", "h1a", ok(1*time.Second, ms(14))))
	must(t, m.Report("h1b", "host", "h2a", ok(2*time.Second, ms(30))))

	tests := []struct {
		at        time.Duration
		quality   Quality
		rtt       time.Duration
		reporters []string
	}{
		{5 * time.Second, Measured, ms(14), []string{"h1a", "h1b", "h2a"}},
		{30500 * time.Millisecond, Measured, ms(22), []string{"h1b", "h2a"}}, // h1a stale: mean of 14, 30
		{31500 * time.Millisecond, Measured, ms(30), []string{"h1b"}},
		{33 * time.Second, Stale, ms(14), []string{"h1a", "h1b", "h2a"}},
	}
	for _, tt := range tests {
		c.set(tt.at)
		e := m.SiteSite("S2", "S1")
		if e.Quality != tt.quality || e.RTT != tt.rtt || !slices.Equal(e.Reporters, tt.reporters) {
			t.Errorf("at %v: %s %v %v, want %s %v %v", tt.at, e.Quality, e.RTT, e.Reporters, tt.quality, tt.rtt, tt.reporters)
		}
		if e.Stats == nil || e.Stats.P50 != ms(30) {
			t.Errorf("at %v: Stats %+v, want the latest window (P50 30ms)", tt.at, e.Stats)
		}
	}
}

func TestIntraSiteAndCell(t *testing.T) {
	m, c := newTestMap(t, Config{})
	must(t, m.Report("h1a", "host", "h1b", ok(0, ms(0.2))))
	must(t, m.Report("h1a", "cell", "c1", ok(0, ms(3))))
	c.set(time.Second)
	if e := m.SiteSite("S1", "S1"); e.Quality != Measured || e.RTT != ms(0.2) {
		t.Errorf("intra-site: %s %v", e.Quality, e.RTT)
	}
	e := m.CellSite("c1", "S1")
	if e.Quality != Measured || e.RTT != ms(3) || e.Kind != CellSite || e.A != "c1" || e.B != "S1" {
		t.Errorf("CellSite(c1,S1) = %+v", e)
	}
	if e := m.CellSite("c1", "S2"); e.Quality != Unknown {
		t.Errorf("CellSite(c1,S2) = %s, want unknown (no path)", e.Quality)
	}
}

func TestTotalLoss(t *testing.T) {
	m, c := newTestMap(t, Config{})
	must(t, m.Report("h1a", "host", "h2a", ok(0, ms(10))))
	must(t, m.Report("h1a", "host", "h2a", win(10*time.Second, 0, 100, 100)))
	c.set(11 * time.Second)
	e := m.SiteSite("S1", "S2")
	if e.Quality != Measured || e.RTT != ms(10) || e.Stats.Loss != 1 {
		t.Errorf("after one lossy window: %s %v loss %v, want measured 10ms loss 1", e.Quality, e.RTT, e.Stats.Loss)
	}
	// Lossy windows go on past Fresh after the last received one: the
	// carried RTT expires, the pair is measured as not answering.
	for i := 2; i <= 4; i++ {
		must(t, m.Report("h1a", "host", "h2a", win(time.Duration(i)*10*time.Second, 0, 100, 100)))
	}
	c.set(41 * time.Second)
	e = m.SiteSite("S1", "S2")
	if e.Quality != Unknown || e.RTT != 0 || e.Stats == nil || e.Stats.Loss != 1 {
		t.Errorf("after 40 s of loss: %s %v stats %+v, want unknown with loss-1 stats", e.Quality, e.RTT, e.Stats)
	}
	if n := len(m.History(SiteSite, "S2", "S1")); n != 5 {
		t.Errorf("history has %d windows, want all 5 (lossy ones kept)", n)
	}
	// A pair that never answered.
	must(t, m.Report("h1a", "cell", "c2", win(40*time.Second, 0, 10, 10)))
	if e := m.CellSite("c2", "S1"); e.Quality != Unknown || e.Stats == nil {
		t.Errorf("never answered: %s stats %v", e.Quality, e.Stats)
	}
}

func TestReportErrorsAndReplay(t *testing.T) {
	m, c := newTestMap(t, Config{})
	c.set(time.Minute)
	bad := ok(0, ms(1))
	bad.Lost = 200
	tests := []struct {
		name            string
		host, kind, tgt string
		st              latency.Stats
	}{
		{"unknown host", "hx", "host", "h2a", ok(0, ms(1))},
		{"unknown target host", "h1a", "host", "hx", ok(0, ms(1))},
		{"unknown cell", "h1a", "cell", "cx", ok(0, ms(1))},
		{"bad kind", "h1a", "site", "S2", ok(0, ms(1))},
		{"itself", "h1a", "host", "h1a", ok(0, ms(1))},
		{"empty window", "h1a", "host", "h2a", latency.Stats{To: t0}},
		{"lost > sent", "h1a", "host", "h2a", bad},
		{"future", "h1a", "host", "h2a", ok(time.Hour, ms(1))},
		{"no end", "h1a", "host", "h2a", latency.Stats{Sent: 1}},
	}
	for _, tt := range tests {
		if err := m.Report(tt.host, tt.kind, tt.tgt, tt.st); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	if len(m.Entries()) != 0 {
		t.Errorf("refused reports left entries: %+v", m.Entries())
	}
	w := ok(50*time.Second, ms(7))
	must(t, m.Report("h1a", "host", "h2a", w))
	must(t, m.Report("h1a", "host", "h2a", w))                          // replay
	must(t, m.Report("h1a", "host", "h2a", ok(40*time.Second, ms(99)))) // older
	if n := len(m.History(SiteSite, "S1", "S2")); n != 1 {
		t.Errorf("history %d, want 1: replayed and older windows change nothing", n)
	}
	if e := m.SiteSite("S1", "S2"); e.RTT != ms(7) {
		t.Errorf("RTT %v after an older window, want 7ms", e.RTT)
	}
}

func TestHistoryBound(t *testing.T) {
	m, _ := newTestMap(t, Config{History: 3})
	for i := 1; i <= 5; i++ {
		must(t, m.Report("h1a", "cell", "c1", ok(time.Duration(i)*time.Second, ms(float64(i)))))
	}
	h := m.History(CellSite, "c1", "S1")
	var got []time.Duration
	for _, p := range h {
		got = append(got, p.Stats.P50)
		if p.Host != "h1a" {
			t.Errorf("point host %q", p.Host)
		}
	}
	if want := []time.Duration{ms(3), ms(4), ms(5)}; !slices.Equal(got, want) {
		t.Errorf("history P50s %v, want %v (the latest 3, oldest first)", got, want)
	}
}

func TestTopologyChange(t *testing.T) {
	m, c := newTestMap(t, Config{})
	must(t, m.Report("h1a", "host", "h2a", ok(0, ms(10))))
	must(t, m.Report("h1b", "host", "h3a", ok(0, ms(20))))
	must(t, m.Report("h2a", "cell", "c2", ok(0, ms(2))))
	must(t, m.Report("h1a", "cell", "c1", ok(0, ms(1))))
	c.set(time.Second)

	// h2a leaves, h1b moves to S3, c1 is decommissioned.
	m.SetTopology(
		map[string]string{"h1a": "S1", "h1b": "S3", "h3a": "S3", "h2b": "S2"},
		map[string]string{"c2": "S2"},
	)
	for _, e := range m.Entries() {
		t.Errorf("entry survived the change: %+v", e)
	}
	if m.History(SiteSite, "S1", "S2") != nil || m.History(CellSite, "c1", "S1") != nil {
		t.Error("history of dropped pairs survived")
	}
	if err := m.Report("h2a", "host", "h1a", ok(time.Second, ms(1))); err == nil {
		t.Error("report by a removed host accepted")
	}
	must(t, m.Report("h1b", "host", "h3a", ok(time.Second, ms(0.3))))
	if e := m.SiteSite("S3", "S3"); e.Quality != Measured {
		t.Errorf("moved host's new intra-site pair: %s", e.Quality)
	}
}

func TestForget(t *testing.T) {
	m, c := newTestMap(t, Config{})
	must(t, m.Report("h1a", "host", "h2a", ok(0, ms(10))))
	must(t, m.Report("h1b", "host", "h2a", ok(0, ms(12))))
	must(t, m.Report("h3a", "host", "h1a", ok(0, ms(30))))
	c.set(time.Second)
	m.Forget("h1a")
	if e := m.SiteSite("S1", "S2"); e.RTT != ms(12) || !slices.Equal(e.Reporters, []string{"h1b"}) {
		t.Errorf("S1-S2 after Forget(h1a): %v %v", e.RTT, e.Reporters)
	}
	if e := m.SiteSite("S1", "S3"); e.Quality != Unknown {
		t.Errorf("S1-S3 measured only of h1a: %s after Forget", e.Quality)
	}
}

// train feeds rounds of windows between hosts on a line of sites, where
// the RTT is 10 ms per site apart plus 1 ms, skipping the pair skip.
func train(t *testing.T, m *Map, c *clock, hosts []string, rtt func(i, j int) time.Duration, skip [2]int, rounds int) time.Duration {
	t.Helper()
	var now time.Duration
	for r := 0; r < rounds; r++ {
		now += time.Second
		c.set(now)
		for i := range hosts {
			for j := range hosts {
				if i == j || [2]int{i, j} == skip || [2]int{j, i} == skip {
					continue
				}
				must(t, m.Report(hosts[i], "host", hosts[j], ok(now, rtt(i, j))))
			}
		}
	}
	c.set(now)
	return now
}

func TestVivaldiEstimate(t *testing.T) {
	c := &clock{t: t0}
	m := New(Config{Clock: c.Now, Vivaldi: vivaldiSeed(1)})
	// Eight sites in a plane; S1–S4 (50 ms apart) is never probed, all
	// other pairs are, so the embedding is rigid and the estimate must
	// land near the truth.
	x := []float64{0, 30, 0, 30, 60, 10, 45, 20}
	y := []float64{0, 0, 40, 40, 10, 70, 55, 25}
	var hosts []string
	topo := map[string]string{}
	for i := range x {
		h := fmt.Sprintf("h%d", i+1)
		hosts = append(hosts, h)
		topo[h] = fmt.Sprintf("S%d", i+1)
	}
	m.SetTopology(topo, nil)
	rtt := func(i, j int) time.Duration {
		dx, dy := x[i]-x[j], y[i]-y[j]
		return ms(sqrt(dx*dx+dy*dy) + 2)
	}
	train(t, m, c, hosts, rtt, [2]int{0, 3}, 100)
	e := m.SiteSite("S4", "S1")
	if e.Quality != Estimated || e.Via != "vivaldi" || e.Stats != nil || e.Reporters != nil {
		t.Fatalf("S1-S4: %+v, want a Vivaldi estimate without stats", e)
	}
	t.Logf("S1-S4 Vivaldi estimate %v (truth 52ms)", e.RTT)
	if want := ms(52); e.RTT < want*85/100 || e.RTT > want*115/100 {
		t.Errorf("S1-S4 estimate %v, want 52ms ± 15%%", e.RTT)
	}
	// One host cannot estimate its own site's intra-site RTT.
	if e := m.SiteSite("S1", "S1"); e.Quality != Unknown {
		t.Errorf("intra-site with one host: %s, want unknown", e.Quality)
	}
	// A measured pair going stale falls back to its estimate, keeping the
	// old window to show.
	c.set(time.Hour)
	e = m.SiteSite("S1", "S2")
	if e.Quality != Estimated || e.Stats == nil {
		t.Errorf("stale S1-S2 with coordinates: %s stats %v, want estimated with the old stats", e.Quality, e.Stats)
	}
}

func TestCellEstimateThroughOwnSite(t *testing.T) {
	m, c := newTestMap(t, Config{})
	must(t, m.Report("h2a", "cell", "c2", ok(0, ms(5))))   // c2 from its own site
	must(t, m.Report("h1a", "host", "h2a", ok(0, ms(10)))) // S1–S2
	c.set(time.Second)
	e := m.CellSite("c2", "S1")
	if e.Quality != Estimated || e.RTT != ms(15) || e.Via != "site:S2" || e.Stats != nil {
		t.Errorf("CellSite(c2,S1) = %+v, want estimated 15ms via site:S2", e)
	}
	if e := m.CellSite("c2", "S3"); e.Quality != Unknown {
		t.Errorf("CellSite(c2,S3) = %s, want unknown: S2–S3 unknown", e.Quality)
	}

	// A direct measurement wins while fresh; once stale, the path does
	// again as long as its hops are fresh.
	must(t, m.Report("h1a", "cell", "c2", ok(time.Second, ms(40))))
	c.set(2 * time.Second)
	if e := m.CellSite("c2", "S1"); e.Quality != Measured || e.RTT != ms(40) {
		t.Errorf("direct: %s %v", e.Quality, e.RTT)
	}
	c.set(36 * time.Second)
	must(t, m.Report("h2a", "cell", "c2", ok(35*time.Second, ms(5))))
	must(t, m.Report("h1a", "host", "h2a", ok(35*time.Second, ms(10))))
	c.set(40 * time.Second)
	if e := m.CellSite("c2", "S1"); e.Quality != Estimated || e.RTT != ms(15) || e.Stats == nil || e.Stats.P50 != ms(40) {
		t.Errorf("stale direct, fresh path: %+v", e)
	}
	// Everything stale: the direct measurement is shown as stale.
	c.set(time.Hour)
	if e := m.CellSite("c2", "S1"); e.Quality != Stale || e.RTT != ms(40) {
		t.Errorf("all stale: %s %v, want stale 40ms", e.Quality, e.RTT)
	}
}

func TestEntriesSorted(t *testing.T) {
	m, c := newTestMap(t, Config{})
	must(t, m.Report("h3a", "host", "h2a", ok(0, ms(10))))
	must(t, m.Report("h1a", "cell", "c2", ok(0, ms(10))))
	must(t, m.Report("h1a", "host", "h2a", ok(0, ms(10))))
	c.set(time.Second)
	var got []string
	for _, e := range m.Entries() {
		got = append(got, fmt.Sprintf("%s:%s-%s:%s", e.Kind, e.A, e.B, e.Quality))
	}
	want := []string{"cellSite:c2-S1:measured", "siteSite:S1-S2:measured", "siteSite:S2-S3:measured"}
	if !slices.Equal(got, want) {
		t.Errorf("Entries = %v, want %v", got, want)
	}
}

func TestLookupsDoNotAllocate(t *testing.T) {
	m, c := newTestMap(t, Config{})
	must(t, m.Report("h2a", "cell", "c2", ok(0, ms(5))))
	must(t, m.Report("h1a", "host", "h2a", ok(0, ms(10))))
	c.set(time.Second)
	for name, f := range map[string]func(){
		"SiteSite measured":  func() { m.SiteSite("S2", "S1") },
		"SiteSite unknown":   func() { m.SiteSite("S2", "S3") },
		"CellSite estimated": func() { m.CellSite("c2", "S1") },
		"CellSite measured":  func() { m.CellSite("c2", "S2") },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocs per lookup", name, n)
		}
	}
}

// TestConcurrent is for -race: reports, topology changes and lookups at
// once.
func TestConcurrent(t *testing.T) {
	m, c := newTestMap(t, Config{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				switch g {
				case 0:
					_ = m.Report("h1a", "host", "h2a", ok(time.Duration(i)*time.Second, ms(10)))
				case 1:
					_ = m.Report("h2a", "cell", "c2", ok(time.Duration(i)*time.Second, ms(3)))
					c.set(time.Duration(i) * time.Second)
				case 2:
					m.SiteSite("S1", "S2")
					m.CellSite("c2", "S1")
					m.Entries()
				case 3:
					if i%50 == 0 {
						m.SetTopology(map[string]string{"h1a": "S1", "h2a": "S2"}, map[string]string{"c2": "S2"})
					}
					m.History(SiteSite, "S1", "S2")
				}
			}
		}()
	}
	wg.Wait()
}
