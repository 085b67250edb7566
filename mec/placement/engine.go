package placement

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// Filter removes the hosts that cannot take an instance.
type Filter interface {
	// Name identifies the filter in Decision.Rejected and NoFitError. The
	// built-in filters use the JSON name of the constraint they enforce, so
	// the API can point at the field that emptied the candidate list.
	Name() string
	// Keep reports whether h, on site s, may take req. s is never nil: the
	// engine removes hosts of unknown sites before any filter runs.
	Keep(req *Request, h *mec.Host, s *mec.Site) bool
}

// SiteFilter is a Filter whose verdict depends on the site alone. The engine
// calls KeepSite once per site and decision and applies the answer to every
// host of the site; it never calls Keep.
type SiteFilter interface {
	Filter
	KeepSite(req *Request, s *mec.Site) bool
}

// FilterPreparer is implemented by filters that look at the request once
// per decision. PrepareFilter returns the filter to run for this request
// (with lists turned into sets, say), or nil when the request does not
// constrain what the filter checks, in which case the engine skips it.
type FilterPreparer interface {
	PrepareFilter(req *Request, snap *Snapshot) Filter
}

// Explainer is implemented by filters that can say, in a phrase, what is
// wrong with the hosts they remove ("lack free memory"); NoFitError uses it.
// It is asked of the filter given to New; the engine's own latency filter,
// once prepared, answers with the decision's numbers instead.
type Explainer interface {
	Explain() string
}

// Score rates a host that passed every filter.
type Score interface {
	// Name keys the score in ScoredHost.Scores.
	Name() string
	// Score returns a value in [0,1], higher is better. The engine clamps
	// anything else (NaN counts as 0) so that one faulty stage cannot
	// break the order.
	Score(req *Request, h *mec.Host, s *mec.Site) float64
}

// SiteScore is a Score that depends on the site alone; the engine calls
// ScoreSite once per site and decision and never calls Score.
type SiteScore interface {
	Score
	ScoreSite(req *Request, s *mec.Site) float64
}

// ScorePreparer is the Score counterpart of FilterPreparer: nil means the
// score says nothing for this request (it would be the same for every host)
// and leaves the weighted average, so that Decision.Score stays readable.
type ScorePreparer interface {
	PrepareScore(req *Request, snap *Snapshot) Score
}

// Weighted is a score and its weight in the total. A host's total is the
// weighted mean of the active scores, so it stays in [0,1].
type Weighted struct {
	Score  Score
	Weight float64
}

// Options tune an Engine.
type Options struct {
	// Clock stamps Decision.DecidedAt, once per decision; nil means
	// time.Now.
	Clock mec.Clock
	// TopN is how many ranked candidates Place records in Decision.Top;
	// 0 means 5. The caller falls back to them, in order, when a
	// concurrent reservation takes the first one.
	TopN int
}

// SiteUnknown is the name under which hosts whose site is missing from the
// snapshot are counted as rejected. It is reserved: no filter may use it.
const SiteUnknown = "siteUnknown"

// Engine runs the filter-then-score pipeline. It is immutable after New and
// safe for concurrent use.
type Engine struct {
	filters []Filter
	scores  []Weighted
	clock   mec.Clock
	topN    int
	// scratch holds the per-decision buffers (one verdict and score slot
	// per site, the top-k) so that a decision allocates only what it
	// returns.
	scratch sync.Pool
}

// New returns an engine that runs filters in order (a host rejected by
// several counts against the first) and ranks the survivors by the weighted
// mean of scores. Names must be unique within filters and within scores.
func New(filters []Filter, scores []Weighted, opts Options) (*Engine, error) {
	e := &Engine{
		filters: append([]Filter(nil), filters...),
		scores:  append([]Weighted(nil), scores...),
		clock:   opts.Clock,
		topN:    opts.TopN,
	}
	if e.clock == nil {
		e.clock = time.Now
	}
	if e.topN < 0 {
		return nil, fmt.Errorf("placement: TopN %d is negative", e.topN)
	}
	if e.topN == 0 {
		e.topN = 5
	}
	seen := map[string]bool{SiteUnknown: true}
	for i, f := range e.filters {
		if f == nil {
			return nil, fmt.Errorf("placement: filter %d is nil", i)
		}
		if n := f.Name(); n == "" || seen[n] {
			return nil, fmt.Errorf("placement: filter %d: name %q is empty, reserved or used twice", i, n)
		}
		seen[f.Name()] = true
	}
	seen = map[string]bool{}
	for i, w := range e.scores {
		if w.Score == nil {
			return nil, fmt.Errorf("placement: score %d is nil", i)
		}
		if n := w.Score.Name(); n == "" || seen[n] {
			return nil, fmt.Errorf("placement: score %d: name %q is empty or used twice", i, n)
		}
		seen[w.Score.Name()] = true
		if w.Weight < 0 || math.IsNaN(w.Weight) || math.IsInf(w.Weight, 0) {
			return nil, fmt.Errorf("placement: score %q: weight %v must be finite and not negative", w.Score.Name(), w.Weight)
		}
	}
	e.scratch.New = func() any { return new(scratch) }
	return e, nil
}

// DefaultFilters is the standard filter order: the request's own
// constraints first, then host state, then free capacity. The order decides
// under which filter a host that fails several is counted, and constraints
// first gives the useful answer: "of the hosts you asked for, 3 lack memory"
// rather than "9,000 lack memory".
func DefaultFilters() []Filter {
	return []Filter{
		HostIDFilter{},
		SiteIDFilter{},
		ZoneFilter{},
		CountryFilter{},
		AreaFilter{},
		LabelFilter{},
		StateFilter{},
		CapacityFilter{Dim: CPU},
		CapacityFilter{Dim: Memory},
		CapacityFilter{Dim: Storage},
		CapacityFilter{Dim: GPU},
	}
}

// SpreadWeight and HeadroomWeight are the default weights. Spreading
// replicas across sites is meant to win whenever it is possible: a site
// with n peers scores 1/(1+n), so moving from n to n+1 peers costs
// 100/((n+1)(n+2)) of weighted score, which outweighs the whole headroom
// range (1) up to n = 8. Past nine replicas on one site, spreading has
// failed anyway and a much emptier host may win.
const (
	SpreadWeight   = 100
	HeadroomWeight = 1
)

// DefaultScores is the standard ranking: spread across sites, then the
// host that keeps the most headroom.
func DefaultScores() []Weighted {
	return []Weighted{
		{Score: SpreadScore{}, Weight: SpreadWeight},
		{Score: HeadroomScore{}, Weight: HeadroomWeight},
	}
}

// Default returns the engine with DefaultFilters and DefaultScores.
func Default(opts Options) *Engine {
	e, err := New(DefaultFilters(), DefaultScores(), opts)
	if err != nil {
		// Only a negative TopN can fail here; the stages are valid by
		// construction (TestDefault).
		panic(err)
	}
	return e
}

// errNilRequest is returned for a nil request: a caller bug, not a "no fit".
var errNilRequest = errors.New("placement: nil request")

// Place chooses the host for req. When no host passes every filter it
// returns a *NoFitError that says how many hosts each filter removed.
//
// The decision is a proposal: the caller reserves on Decision.HostID in a
// store transaction that checks the host's free capacity again, and falls
// back to Decision.Top[1:], in order, when a concurrent reservation got
// there first.
func (e *Engine) Place(req *Request, snap *Snapshot) (mec.Decision, error) {
	if req == nil {
		return mec.Decision{}, errNilRequest
	}
	sc := e.scratch.Get().(*scratch)
	defer e.release(sc)
	e.run(sc, req, snap, e.topN)
	d := mec.Decision{
		Candidates: sc.candidates,
		Considered: snap.Len(),
		Rejected:   e.rejected(sc),
		DecidedAt:  e.clock(),
	}
	if sc.candidates == 0 {
		return d, e.noFit(sc, snap.Len())
	}
	d.Top = e.ranked(sc, req, snap)
	best := sc.top[0].host
	d.HostID = snap.hosts[best].ID
	d.SiteID = snap.hosts[best].SiteID
	d.Score = d.Top[0].Total
	e.askMeasure(sc, best, snap)
	return d, nil
}

// askMeasure asks for direct measurements when the winner's latency rests
// on estimates: the estimate was good enough to place on, and a probe
// tells whether it was right before the next decision leans on it again.
func (e *Engine) askMeasure(sc *scratch, best int32, snap *Snapshot) {
	if !sc.latOn || sc.lat.core.cfg.Measure == nil {
		return
	}
	si := snap.hostSite[best]
	if sc.lat.at(si).estimated == 0 {
		return
	}
	site := snap.sites[si].ID
	if cells := estimatedCells(sc.lat.core.cfg.Map, site, sc.lat.cells); len(cells) > 0 {
		sc.lat.core.cfg.Measure(site, cells)
	}
}

// release returns sc to the pool without the stages it holds, which may
// point into the request.
func (e *Engine) release(sc *scratch) {
	clear(sc.filters)
	clear(sc.scores)
	sc.lat.core, sc.lat.snap, sc.lat.cells, sc.latOn = nil, nil, nil, false
	e.scratch.Put(sc)
}

// Rank returns the n best candidates for req, best first, each with its
// per-score breakdown; empty when nothing fits. It is Place for callers that
// want more fallbacks than Decision.Top holds.
func (e *Engine) Rank(req *Request, snap *Snapshot, n int) []mec.ScoredHost {
	if req == nil || n <= 0 {
		return nil
	}
	sc := e.scratch.Get().(*scratch)
	defer e.release(sc)
	e.run(sc, req, snap, n)
	return e.ranked(sc, req, snap)
}
