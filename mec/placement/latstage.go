package placement

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// Latency stage names: the filter is named after the AppD field it
// enforces (appLatency), like the other filters after their constraints.
const (
	NameAppLatency = "appLatency"
	NameLatency    = "latency"
)

// LatencyWeight is the latency score's default weight: large enough that
// latency ranks first, then spread (SpreadWeight), then headroom. The score
// moves in steps of latencyQuantum of mean latency; one step is worth at
// least 1e-4 of score for any bound up to 1 s and for means up to about
// 100 ms without a bound, so 1e7 makes the smallest latency step outweigh
// the whole spread range (100) and headroom (1). Latencies within one step
// tie, and then spread and headroom decide.
const LatencyWeight = 1e7

// latencyQuantum is the resolution of the latency score: STAMP medians on
// one metro path move by about this much from window to window, so smaller
// differences are noise that must not override spreading replicas.
const latencyQuantum = 100 * time.Microsecond

// latencyReference is where the score is 0.5 when the request has no
// bound: 1/(1+mean/5ms). 5 ms one-way is a typical edge budget (an AR or
// cloud-gaming app), so sites within it score well and the score keeps
// falling, smoothly, for sites further away.
const latencyReference = 5 * time.Millisecond

// latencyCore is what a LatencyFilter and a LatencyScore built together
// share, so that one decision computes each site's latency once for both.
type latencyCore struct{ cfg LatencyConfig }

// LatencyFilter keeps a site only when, for every served cell
// (Request.Serve), the map has a usable (measured or estimated) entry and
// half its RTT plus the cell's radio latency is within Request.MaxLatency.
// A site the map knows nothing about, or only stale things, is rejected:
// it is never assumed close. It runs only when the request has a bound and
// cells to serve. Build it with WithLatency or NewLatencyFilter.
type LatencyFilter struct{ core *latencyCore }

// LatencyScore ranks sites by the mean one-way latency to the served cells
// weighted by their load: 1 - mean/MaxLatency with a bound, 1/(1+mean/5ms)
// without; 0 for a site without usable latency to every cell. It runs
// whenever the request has cells to serve. Build it with WithLatency or
// NewLatencyScore.
type LatencyScore struct{ core *latencyCore }

// NewLatencyFilter and NewLatencyScore build the stages apart; a filter and
// a score built apart each look the map up, where WithLatency's share one
// lookup per site.
func NewLatencyFilter(cfg LatencyConfig) LatencyFilter { return LatencyFilter{&latencyCore{cfg}} }

// NewLatencyScore: see NewLatencyFilter.
func NewLatencyScore(cfg LatencyConfig) LatencyScore { return LatencyScore{&latencyCore{cfg}} }

// WithLatency returns copies of filters and scores with the latency filter
// inserted before the first StateFilter (after the request's own
// constraints, before host state and capacity, so that "no host fits" names
// latency before full hosts) or appended when there is none, and the latency
// score added with LatencyWeight.
func WithLatency(filters []Filter, scores []Weighted, cfg LatencyConfig) ([]Filter, []Weighted) {
	core := &latencyCore{cfg}
	lf := LatencyFilter{core}
	fs := make([]Filter, 0, len(filters)+1)
	inserted := false
	for _, f := range filters {
		if _, ok := f.(StateFilter); ok && !inserted {
			fs, inserted = append(fs, lf), true
		}
		fs = append(fs, f)
	}
	if !inserted {
		fs = append(fs, lf)
	}
	ws := append([]Weighted{{Score: LatencyScore{core}, Weight: LatencyWeight}}, scores...)
	return fs, ws
}

func (LatencyFilter) Name() string { return NameAppLatency }

func (LatencyFilter) Explain() string {
	return "are at sites without a usable latency measurement to a served cell, or too far from one for the latency bound"
}

func (f LatencyFilter) cfg() LatencyConfig {
	if f.core == nil {
		return LatencyConfig{}
	}
	return f.core.cfg
}

// Keep and KeepSite are the stage without a decision around it: they look
// the map up each time. The engine runs the prepared form instead.
func (f LatencyFilter) Keep(req *Request, _ *mec.Host, s *mec.Site) bool { return f.KeepSite(req, s) }

func (f LatencyFilter) KeepSite(req *Request, s *mec.Site) bool {
	if req.MaxLatency <= 0 || len(req.Serve) == 0 {
		return true
	}
	li, ok := Latency(f.cfg(), s.ID, req.Serve)
	return ok && li.WorstNs <= int64(req.MaxLatency)
}

func (f LatencyFilter) PrepareFilter(req *Request, snap *Snapshot) Filter {
	if req.MaxLatency <= 0 || len(req.Serve) == 0 {
		return nil
	}
	return &latFilter{t: newLatTable(f.core, req, snap)}
}

func (f LatencyFilter) prepareFilterIn(sc *scratch, req *Request, snap *Snapshot) Filter {
	if req.MaxLatency <= 0 || len(req.Serve) == 0 {
		return nil
	}
	return &latFilter{t: sc.latencyTable(f.core, req, snap)}
}

func (LatencyScore) Name() string { return NameLatency }

func (f LatencyScore) Score(req *Request, _ *mec.Host, s *mec.Site) float64 {
	return f.ScoreSite(req, s)
}

func (f LatencyScore) ScoreSite(req *Request, s *mec.Site) float64 {
	if len(req.Serve) == 0 {
		return 0
	}
	var cfg LatencyConfig
	if f.core != nil {
		cfg = f.core.cfg
	}
	li, ok := Latency(cfg, s.ID, req.Serve)
	if !ok {
		return 0
	}
	return latencyValue(li.MeanNs, req.MaxLatency)
}

func (f LatencyScore) PrepareScore(req *Request, snap *Snapshot) Score {
	if len(req.Serve) == 0 {
		return nil
	}
	return &latScore{t: newLatTable(f.core, req, snap)}
}

func (f LatencyScore) prepareScoreIn(sc *scratch, req *Request, snap *Snapshot) Score {
	if len(req.Serve) == 0 {
		return nil
	}
	return &latScore{t: sc.latencyTable(f.core, req, snap)}
}

// latencyValue maps a mean one-way latency to [0,1], quantized to
// latencyQuantum.
func latencyValue(meanNs int64, bound time.Duration) float64 {
	q := math.Round(float64(meanNs)/float64(latencyQuantum)) * float64(latencyQuantum)
	if bound > 0 {
		return clamp01(1 - q/float64(bound))
	}
	return 1 / (1 + q/float64(latencyReference))
}

// latTable is one decision's latency per site, computed on first use and
// shared by the latency filter and score.
type latTable struct {
	core  *latencyCore
	snap  *Snapshot
	bound time.Duration
	cells []servedCell
	sites []siteLat

	// What the filter turned away, for its explanation.
	noMeasure, tooFar int // sites
	nearestTooFar     int64
	missingCell       string
	missingSite       string
}

func (t *latTable) init(core *latencyCore, req *Request, snap *Snapshot) {
	if core == nil {
		core = &latencyCore{}
	}
	sites := t.sites
	*t = latTable{core: core, snap: snap, bound: req.MaxLatency, cells: prepareCells(core.cfg, req.Serve)}
	t.sites = grow(sites, len(snap.Sites()))
	clear(t.sites)
}

func newLatTable(core *latencyCore, req *Request, snap *Snapshot) *latTable {
	t := new(latTable)
	t.init(core, req, snap)
	return t
}

// at is site si's latency, computed on first use.
func (t *latTable) at(si int32) *siteLat {
	l := &t.sites[si]
	if !l.done {
		measureSite(t.core.cfg.Map, t.snap.sites[si].ID, t.cells, l)
	}
	return l
}

// index finds a site given by pointer (the SiteFilter and SiteScore
// methods, which the engine does not call on these stages).
func (t *latTable) index(s *mec.Site) int32 {
	if i, ok := t.snap.siteByID[s.ID]; ok {
		return i
	}
	return -1
}

// latFilter is LatencyFilter prepared for one decision.
type latFilter struct{ t *latTable }

func (*latFilter) Name() string { return NameAppLatency }

func (f *latFilter) Keep(req *Request, _ *mec.Host, s *mec.Site) bool { return f.KeepSite(req, s) }

func (f *latFilter) KeepSite(_ *Request, s *mec.Site) bool {
	i := f.t.index(s)
	return i >= 0 && f.keepSiteAt(i)
}

func (f *latFilter) keepSiteAt(si int32) bool {
	t := f.t
	l := t.at(si)
	if !l.ok(len(t.cells)) {
		if t.noMeasure == 0 {
			t.missingCell, t.missingSite = t.cells[l.missing].id, t.snap.sites[si].ID
		}
		t.noMeasure++
		return false
	}
	if l.worstNs > int64(t.bound) {
		if t.tooFar == 0 || l.worstNs < t.nearestTooFar {
			t.nearestTooFar = l.worstNs
		}
		t.tooFar++
		return false
	}
	return true
}

// Explain says which of the two reasons turned the sites away, with the
// numbers: a site without measurements needs probes, a site too far needs
// a looser bound or a closer site.
func (f *latFilter) Explain() string {
	t := f.t
	var parts []string
	if t.noMeasure > 0 {
		parts = append(parts, fmt.Sprintf("are at %d site(s) without a usable latency measurement to a served cell (e.g. cell %s from site %s: unknown or stale)",
			t.noMeasure, t.missingCell, t.missingSite))
	}
	if t.tooFar > 0 {
		parts = append(parts, fmt.Sprintf("are at %d site(s) too far from the served cells (the nearest at %s one-way worst against a %s bound)",
			t.tooFar, ms(t.nearestTooFar), ms(int64(t.bound))))
	}
	if len(parts) == 0 {
		return LatencyFilter{}.Explain()
	}
	return strings.Join(parts, ", or ")
}

// latScore is LatencyScore prepared for one decision.
type latScore struct{ t *latTable }

func (*latScore) Name() string { return NameLatency }

func (s *latScore) Score(req *Request, _ *mec.Host, site *mec.Site) float64 {
	return s.ScoreSite(req, site)
}

func (s *latScore) ScoreSite(_ *Request, site *mec.Site) float64 {
	i := s.t.index(site)
	if i < 0 {
		return 0
	}
	return s.scoreSiteAt(i)
}

func (s *latScore) scoreSiteAt(si int32) float64 {
	l := s.t.at(si)
	if !l.ok(len(s.t.cells)) {
		return 0
	}
	return latencyValue(l.meanNs, s.t.bound)
}

// ms formats nanoseconds as milliseconds with one decimal.
func ms(ns int64) string { return fmt.Sprintf("%.1f ms", float64(ns)/1e6) }
