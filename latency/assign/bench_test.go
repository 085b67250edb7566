package assign

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mecorch/mecorch/latency/topogen"
)

// The benchmarks report the targets; see the package doc for the
// model. Run: go test -run '^$' -bench . ./latency/assign

func large(util float64) *topogen.Topology {
	cfg := topogen.DefaultConfig()
	cfg.Utilization = util
	return topogen.Generate(cfg)
}

func pctl(d []time.Duration, q float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	f := make([]float64, len(s))
	for i, v := range s {
		f[i] = float64(v)
	}
	return quantile(f, q)
}

func BenchmarkAssign100k(b *testing.B) {
	topo := large(0.8)
	b.ReportMetric(float64(topo.NumHosts()), "hosts")
	b.ResetTimer()
	unplaced := 0
	for range b.N {
		a := New(topo, DefaultOptions())
		unplaced = a.Assign()
	}
	b.StopTimer()
	perOp := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(topo.NumUEs())/perOp, "ues/s")
	b.ReportMetric(float64(unplaced), "unplaced")
}

func BenchmarkHandover(b *testing.B) {
	topo := large(0.8)
	a := New(topo, DefaultOptions())
	a.Assign()
	p95Before := Evaluate(topo, a.Result()).P95
	rng := rand.New(rand.NewPCG(42, 1))
	type ho struct{ ue, cell int }
	// Draw the handovers first so that the timed loop holds only the
	// re-placement.
	hos := make([]ho, b.N)
	cur := slices.Clone(a.ueCell)
	for i := range hos {
		ue := rng.IntN(topo.NumUEs())
		nc := topo.NeighbourCell(rng, int(cur[ue]))
		cur[ue] = int32(nc)
		hos[i] = ho{ue, nc}
	}
	durs := make([]time.Duration, b.N)
	migrations := 0
	b.ResetTimer()
	for i, h := range hos {
		t0 := time.Now()
		if a.Handover(h.ue, h.cell) {
			migrations++
		}
		durs[i] = time.Since(t0)
	}
	b.StopTimer()
	after := Evaluate(topo, a.Result())
	b.ReportMetric(pctl(durs, 0.50)/1e3, "p50_us")
	b.ReportMetric(pctl(durs, 0.99)/1e3, "p99_us")
	b.ReportMetric(float64(migrations)/float64(b.N), "migrations/handover")
	b.ReportMetric(float64(p95Before)/1e6, "p95_before_ms")
	b.ReportMetric(float64(after.P95)/1e6, "p95_after_ms")
}

func BenchmarkSiteFailure(b *testing.B) {
	topo := large(0.8)
	a := New(topo, DefaultOptions())
	a.Assign()
	rng := rand.New(rand.NewPCG(7, 7))
	durs := make([]time.Duration, 0, b.N)
	moved := 0
	b.ResetTimer()
	for range b.N {
		site := rng.IntN(topo.NumSites())
		t0 := time.Now()
		moved += len(a.FailSite(site))
		durs = append(durs, time.Since(t0))
		b.StopTimer()
		a.RestoreSite(site)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(pctl(durs, 0.5)/1e6, "p50_ms")
	b.ReportMetric(pctl(durs, 0.99)/1e6, "p99_ms")
	b.ReportMetric(float64(slices.Max(durs))/1e6, "max_ms")
	b.ReportMetric(float64(moved)/float64(b.N), "ues_moved/failure")
	if m := Evaluate(topo, a.Result()); m.Unplaced != 0 || m.Over != 0 {
		b.Fatalf("after failures: unplaced %d over %d", m.Unplaced, m.Over)
	}
}

// BenchmarkQuality scores every algorithm on true latencies. small has
// 40 sites / 1,500 UEs (exact optimum computed), large is the 100k shape.
func BenchmarkQuality(b *testing.B) {
	sizes := []struct {
		name  string
		exact bool
		cfg   func(util float64) topogen.Config
	}{
		{"small", true, func(u float64) topogen.Config { return topogen.SmallConfig(3, 1500, u) }},
		{"large", false, func(u float64) topogen.Config {
			c := topogen.DefaultConfig()
			c.Utilization = u
			return c
		}},
	}
	for _, sz := range sizes {
		for _, util := range []float64{0.80, 0.95} {
			b.Run(sz.name+"/util"+itoa(int(util*100)), func(b *testing.B) {
				for range b.N {
					quality(b, sz.cfg(util), sz.exact)
				}
			})
		}
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func quality(b *testing.B, cfg topogen.Config, exact bool) {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	topo := topogen.Generate(cfg)
	o := Evaluate(topo, ours(topo))
	ro := DefaultOptions()
	ro.Regret = true
	ra := New(topo, ro)
	ra.Assign()
	b.ReportMetric(ms(Evaluate(topo, ra.Result()).P95), "p95_ours_regret_ms")
	// The same topology with a perfect RTT map (the noise draws are
	// separate from the structure): what measurement error costs.
	clean := cfg
	clean.MeasureP95RelErr = 0
	b.ReportMetric(ms(Evaluate(topo, ours(topogen.Generate(clean))).P95), "p95_ours_noisefree_ms")
	hop := Evaluate(topo, NearestByHop(topo))
	dik := Evaluate(topo, DiktyoZone(topo))
	lb := LowerBound(topo)
	b.ReportMetric(float64(topo.NumUEs())/float64(topo.TotalCapacity()), "util")
	b.ReportMetric(ms(o.P95), "p95_ours_ms")
	b.ReportMetric(ms(Evaluate(topo, Random(topo, 1)).P95), "p95_random_ms")
	b.ReportMetric(ms(hop.P95), "p95_hop_ms")
	b.ReportMetric(ms(Evaluate(topo, GreedyNearest(topo)).P95), "p95_greedy_ms")
	b.ReportMetric(ms(Evaluate(topo, KubeSampled(topo, 1)).P95), "p95_kube_ms")
	b.ReportMetric(ms(dik.P95), "p95_diktyo_ms")
	b.ReportMetric(ms(lb.P95), "p95_lowerbound_ms")
	b.ReportMetric(float64(o.P95)/float64(lb.P95), "ours/lowerbound")
	b.ReportMetric(float64(o.P95)/float64(hop.P95), "ours/hop")
	b.ReportMetric(float64(o.P95)/float64(dik.P95), "ours/diktyo")
	b.ReportMetric(ms(o.Mean), "mean_ours_ms")
	b.ReportMetric(ms(o.RadioP95), "p95_radio_ms")
	b.ReportMetric(TrueBestFraction(topo), "truebest_frac")
	if exact {
		ex, err := Exact(topo)
		if err != nil {
			b.Fatal(err)
		}
		e := Evaluate(topo, ex)
		b.ReportMetric(ms(e.P95), "p95_exact_ms")
		b.ReportMetric(ms(e.Mean), "mean_exact_ms")
		b.ReportMetric(float64(o.P95)/float64(e.P95), "ours/exact")
	}
}
