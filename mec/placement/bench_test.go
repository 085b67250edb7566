package placement

import (
	"slices"
	"testing"
	"time"

	"github.com/mecorch/mecorch/latency"
	"github.com/mecorch/mecorch/latency/rttmap"
	"github.com/mecorch/mecorch/mec"
)

// benchRequests are the two shapes of request the benchmark times: a
// replica with peers on a few sites and no location constraint (every host
// goes through the whole pipeline), and one constrained the way an
// instantiate request with locationConstraints and host labels is.
func benchRequests(sites []mec.Site) map[string]*Request {
	peers := map[string]int{}
	for i := 0; i < 5; i++ {
		peers[sites[i*97].ID] = 1 + i%2
	}
	need := mec.Resources{MilliCPU: 2000, MemoryMiB: 4096, StorageGB: 20}
	return map[string]*Request{
		"spread": {
			Need:        need,
			Constraints: mec.PlacementConstraints{SpreadKey: "appd-1"},
			Peers:       peers,
		},
		"constrained": {
			Need: need,
			Constraints: mec.PlacementConstraints{
				Zones:       []string{"zone-01", "zone-02", "zone-03", "zone-05", "zone-08", "zone-13"},
				CountryCode: "FR",
				// Roughly France, with a hole.
				Area: [][][2]float64{
					{{-5, 42}, {8, 42}, {8, 51}, {-5, 51}, {-5, 42}},
					{{1, 46}, {3, 46}, {3, 47}, {1, 47}, {1, 46}},
				},
				HostLabels: map[string]string{"arch": "amd64"},
				SpreadKey:  "appd-2",
			},
			Peers: peers,
		},
	}
}

// BenchmarkPlace10kHosts times one decision over 10,000 hosts in 1,000
// sites and reports, besides the mean, the median and 99th percentile of
// single decisions.
func BenchmarkPlace10kHosts(b *testing.B) {
	hosts, sites := fleet(42, 1000, 10)
	snap := NewSnapshot(hosts, sites)
	e := Default(Options{Clock: func() time.Time { return time.Time{} }})
	reqs := benchRequests(sites)
	for _, name := range []string{"spread", "constrained"} {
		req := reqs[name]
		b.Run(name, func(b *testing.B) {
			if _, err := e.Place(req, snap); err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				d, err := e.Place(req, snap)
				lat = append(lat, time.Since(t0))
				if err != nil || d.HostID == "" {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
			b.ReportMetric(float64(lat[(len(lat)*99)/100]), "p99-ns")
		})
	}
}

// BenchmarkRank10kHosts is Place with 100 fallbacks kept instead of 5.
func BenchmarkRank10kHosts(b *testing.B) {
	hosts, sites := fleet(42, 1000, 10)
	snap := NewSnapshot(hosts, sites)
	e := Default(Options{})
	req := benchRequests(sites)["spread"]
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(e.Rank(req, snap, 100)) != 100 {
			b.Fatal("short ranking")
		}
	}
}

// BenchmarkNewSnapshot10kHosts is the cost of indexing the inventory, paid
// once per snapshot rather than per decision.
func BenchmarkNewSnapshot10kHosts(b *testing.B) {
	hosts, sites := fleet(42, 1000, 10)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if NewSnapshot(hosts, sites).Len() != len(hosts) {
			b.Fatal("lost hosts")
		}
	}
}

// BenchmarkPlaceLatency10kHosts times a decision over 10,000 hosts in
// 2,500 sites with four served cells and a latency bound, so that the
// latency filter and score look up 10,000 cell↔site pairs, once per site,
// in a real RTT map (rttmap.Map) fed as the agents feed it: one window
// per site and cell, a few pairs never measured.
func BenchmarkPlaceLatency10kHosts(b *testing.B) {
	hosts, sites := fleet(42, 2500, 4)
	snap := NewSnapshot(hosts, sites)
	cells := []string{"001-01-000000a01", "001-01-000000a02", "001-01-000000a03", "001-01-000000a04"}
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	m := rttmap.New(rttmap.Config{Clock: func() time.Time { return now }})
	hostSite := map[string]string{}
	for _, s := range sites {
		hostSite["probe-"+s.ID] = s.ID
	}
	cellSite := map[string]string{}
	for i, c := range cells {
		cellSite[c] = sites[i].ID
	}
	m.SetTopology(hostSite, cellSite)
	for si, s := range sites {
		for ci, c := range cells {
			if (si+ci)%11 == 0 {
				continue // never measured: unknown
			}
			rtt := time.Duration(1+(si*31+ci*17)%40) * time.Millisecond
			st := latency.Stats{Sent: 100, Min: rtt, P50: rtt, P95: rtt, P99: rtt, Source: latency.SourceKernel,
				From: now.Add(-10 * time.Second), To: now}
			if err := m.Report("probe-"+s.ID, rttmap.TargetCell, c, st); err != nil {
				b.Fatal(err)
			}
		}
	}
	f, sc := WithLatency(DefaultFilters(), DefaultScores(), LatencyConfig{Map: m})
	e, err := New(f, sc, Options{Clock: func() time.Time { return time.Time{} }})
	if err != nil {
		b.Fatal(err)
	}
	req := benchRequests(sites)["spread"]
	req.Serve = []CellLoad{
		{CellID: cells[0], RAT: mec.RATNR, Weight: 40},
		{CellID: cells[1], RAT: mec.RATNR, Weight: 12},
		{CellID: cells[2], RAT: mec.RATEUTRA, Weight: 3},
		{CellID: cells[3], RAT: mec.RATNR, Weight: 1},
	}
	req.MaxLatency = 20 * time.Millisecond
	if _, err := e.Place(req, snap); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d, err := e.Place(req, snap); err != nil || d.HostID == "" {
			b.Fatal(err)
		}
	}
}
