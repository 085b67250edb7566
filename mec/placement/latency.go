package placement

import (
	"math"
	"time"

	"github.com/mecorch/mecorch/latency/rttmap"
	"github.com/mecorch/mecorch/mec"
)

// LatencyMap is what placement reads of the RTT map: the entry for one
// cell and one site. The latency package's rttmap.Map implements it;
// placement names only the method so that it does not depend on how the map
// is kept.
type LatencyMap interface {
	CellSite(cell, site string) rttmap.Entry
}

// CellLoad is one cell the instance serves and how much of its load is
// there (the UEs camped on it): the latency score weights each cell's
// latency by it.
type CellLoad struct {
	CellID string
	RAT    mec.RAT
	Weight float64
}

// Default radio latencies, one way, added to half the measured RTT between
// a site and a cell's RAN address: the RTT covers the transport to the
// gNB/eNB, not the air interface. 1 ms for NR is the user-plane target of
// 3GPP TR 38.913 for eMBB (0.5 ms for URLLC, which a deployment can set);
// 4 ms for E-UTRA is the usual LTE air-interface figure (scheduling request,
// grant and one TTI). A cell of unknown technology gets the larger one, so
// that it is never assumed closer than it may be.
const (
	DefaultRadioNR    = time.Millisecond
	DefaultRadioEUTRA = 4 * time.Millisecond
)

// LatencyConfig is how placement learns latency.
type LatencyConfig struct {
	// Map answers cell↔site RTTs. A nil Map knows nothing: every site is
	// then without usable latency, which the latency filter rejects.
	Map LatencyMap
	// Radio is the one-way radio latency per technology, added to half
	// the RTT; a technology missing here gets its default
	// (DefaultRadioNR, DefaultRadioEUTRA; DefaultRadioEUTRA for any
	// other).
	Radio map[mec.RAT]time.Duration
	// Measure, when set, is called after a decision whose winner's
	// latency rests partly on estimates, with the winning site and the
	// cells that were estimated, so that the caller asks that site's
	// agents to probe those cells directly. It is called from Place,
	// possibly more than once for one placement (a store may run the
	// placing transaction again), so it must be cheap and must not block:
	// queue the request.
	Measure func(siteID string, cells []string)
}

// radio is the one-way radio latency of rat.
func (c LatencyConfig) radio(rat mec.RAT) time.Duration {
	if d, ok := c.Radio[rat]; ok {
		return d
	}
	if rat == mec.RATNR {
		return DefaultRadioNR
	}
	return DefaultRadioEUTRA
}

// servedCell is a CellLoad prepared for a decision: its radio latency
// resolved and its weight made safe.
type servedCell struct {
	id     string
	radio  time.Duration
	weight float64
}

func prepareCells(cfg LatencyConfig, serve []CellLoad) []servedCell {
	out := make([]servedCell, len(serve))
	for i, c := range serve {
		w := c.Weight
		if !(w > 0) || math.IsInf(w, 0) { // NaN, negative, infinite: no say
			w = 0
		}
		out[i] = servedCell{id: c.CellID, radio: cfg.radio(c.RAT), weight: w}
	}
	return out
}

// siteLat is one site's latency to the served cells. Its zero value is
// "not computed yet".
type siteLat struct {
	done bool
	// usable counts the served cells with a Measured or Estimated entry;
	// estimated those of them that are estimates.
	usable, estimated int32
	// missing is the index of the first served cell without a usable
	// entry, -1 when there is none.
	missing int32
	// worst is the index of the furthest usable cell.
	worst           int32
	meanNs, worstNs int64
}

// ok reports whether every served cell has a usable entry.
func (l *siteLat) ok(cells int) bool { return int(l.usable) == cells && cells > 0 }

// measureSite fills out with site's latency to cells, one map lookup per
// cell. The mean is weighted by the cells' load over the usable cells; when
// no usable cell has any load (all weights 0) every cell counts the same.
func measureSite(m LatencyMap, site string, cells []servedCell, out *siteLat) {
	*out = siteLat{done: true, missing: -1, worst: -1}
	var sum, wsum, plain float64
	for i := range cells {
		c := &cells[i]
		var e rttmap.Entry
		if m != nil {
			e = m.CellSite(c.id, site)
		}
		if !e.Quality.Usable() || e.RTT < 0 {
			if out.missing < 0 {
				out.missing = int32(i)
			}
			continue
		}
		out.usable++
		if e.Quality == rttmap.Estimated {
			out.estimated++
		}
		ow := int64(e.RTT/2 + c.radio)
		if out.worst < 0 || ow > out.worstNs {
			out.worst, out.worstNs = int32(i), ow
		}
		sum += c.weight * float64(ow)
		wsum += c.weight
		plain += float64(ow)
	}
	switch {
	case wsum > 0:
		out.meanNs = int64(math.Round(sum / wsum))
	case out.usable > 0:
		out.meanNs = int64(math.Round(plain / float64(out.usable)))
	}
}

// info is l as the decision record shows it.
func (l *siteLat) info(cells []servedCell) mec.LatencyInfo {
	li := mec.LatencyInfo{MeanNs: l.meanNs, WorstNs: l.worstNs, Cells: len(cells), Estimated: int(l.estimated)}
	if l.worst >= 0 {
		li.WorstCell = cells[l.worst].id
	}
	return li
}

// Latency is siteID's one-way latency to the served cells by the rule
// placement uses: for each cell, half the map's RTT plus the cell's radio
// latency; the mean weighted by the cells' load, the worst, and how many
// cells were estimates. ok is true when every served cell has a usable
// (measured or estimated) entry. When some do not, the figures cover the
// cells that do (all zero when none does) and Cells still counts every
// served cell, so that a caller can tell a breach it can prove (WorstNs
// over a bound) from a site it knows nothing about.
func Latency(cfg LatencyConfig, siteID string, serve []CellLoad) (mec.LatencyInfo, bool) {
	if len(serve) == 0 {
		return mec.LatencyInfo{}, false
	}
	cells := prepareCells(cfg, serve)
	var l siteLat
	measureSite(cfg.Map, siteID, cells, &l)
	return l.info(cells), l.ok(len(cells))
}

// estimatedCells lists the served cells whose entry for site is an
// estimate. It asks the map again rather than keep a list per site during
// the decision: it runs once, for the winner.
func estimatedCells(m LatencyMap, site string, cells []servedCell) []string {
	var out []string
	if m == nil {
		return nil
	}
	for _, c := range cells {
		if m.CellSite(c.id, site).Quality == rttmap.Estimated {
			out = append(out, c.id)
		}
	}
	return out
}
