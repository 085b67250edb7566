package rttmap

import (
	"fmt"
	"testing"
	"time"
)

// benchMap is a map of the size of the placement benchmark: 2,500 sites of
// four hosts and three cells each, where every host has reported its own
// cells, one peer and one host at each of the next four sites.
func benchMap(b *testing.B) (*Map, *clock) {
	const sites, hostsPer, cellsPer = 2500, 4, 3
	c := &clock{t: t0}
	// Three rounds do not pin the coordinates below the default error
	// limit; accepting every coordinate lets the Vivaldi lookups happen.
	m := New(Config{Clock: c.Now, EstimateMaxError: 1.5})
	hosts, cells := map[string]string{}, map[string]string{}
	for s := range sites {
		for h := range hostsPer {
			hosts[fmt.Sprintf("h%d-%d", s, h)] = fmt.Sprintf("s%d", s)
		}
		for k := range cellsPer {
			cells[fmt.Sprintf("c%d-%d", s, k)] = fmt.Sprintf("s%d", s)
		}
	}
	m.SetTopology(hosts, cells)
	c.set(10 * time.Second)
	for round := 1; round <= 3; round++ {
		end := time.Duration(round) * 3 * time.Second
		for s := range sites {
			for h := range hostsPer {
				host := fmt.Sprintf("h%d-%d", s, h)
				for k := range cellsPer {
					must(b, m.Report(host, "cell", fmt.Sprintf("c%d-%d", s, k), ok(end, ms(2+float64(k)))))
				}
				must(b, m.Report(host, "host", fmt.Sprintf("h%d-%d", s, (h+1)%hostsPer), ok(end, ms(0.2))))
				for d := 1; d <= 4; d++ {
					must(b, m.Report(host, "host", fmt.Sprintf("h%d-%d", (s+d)%sites, h), ok(end, ms(float64(5*d)))))
				}
			}
		}
	}
	return m, c
}

func BenchmarkLookup(b *testing.B) {
	m, _ := benchMap(b)
	for _, bc := range []struct {
		name string
		f    func() Entry
		want Quality
	}{
		{"SiteSite/measured", func() Entry { return m.SiteSite("s10", "s12") }, Measured},
		{"SiteSite/vivaldi", func() Entry { return m.SiteSite("s10", "s900") }, Estimated},
		{"CellSite/measured", func() Entry { return m.CellSite("c10-1", "s10") }, Measured},
		{"CellSite/viaSite", func() Entry { return m.CellSite("c10-1", "s12") }, Estimated},
		{"CellSite/viaSiteVivaldi", func() Entry { return m.CellSite("c10-1", "s900") }, Estimated},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if q := bc.f().Quality; q != bc.want {
				b.Fatalf("quality %s, want %s", q, bc.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				bc.f()
			}
		})
	}
}

func BenchmarkReport(b *testing.B) {
	m, c := benchMap(b)
	c.set(time.Hour)
	end := 10 * time.Second
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if i%2500 == 0 {
			end += time.Second
		}
		s := i % 2500
		_ = m.Report(fmt.Sprintf("h%d-0", s), "host", fmt.Sprintf("h%d-0", (s+1)%2500), ok(end, ms(5)))
	}
}
