// Package rttmap is the RTT map placement reads: what mecorch knows of the
// round trip between every two sites and between every cell and every site,
// how it knows it (measured, estimated, stale, unknown) and since when.
//
// Agents report one latency.Stats per probed target per window; the map
// keeps each reporter's latest window per pair, a bounded history, and a
// Vivaldi coordinate per host learned from every host-to-host window, so
// that the pairs nobody probes still get an estimate. Lookups are O(1) and
// allocation-free because placement asks for every site of every decision.
package rttmap

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/mecorch/mecorch/latency"
	"github.com/mecorch/mecorch/latency/vivaldi"
)

// Target kinds accepted by Report.
const (
	TargetHost = "host"
	TargetCell = "cell"
)

// Config tunes a Map; zero fields take their defaults.
type Config struct {
	// Fresh is how long after its window ended a measurement counts
	// (default 30 s, three default windows: one lost report does not
	// turn a pair stale).
	Fresh time.Duration
	// History is how many windows are kept per pair (default 360: an
	// hour of 10 s windows from one reporter).
	History int
	// Clock tells the time (default time.Now); tests inject their own.
	Clock func() time.Time
	// Vivaldi configures the coordinates (defaults: vivaldi.DefaultConfig).
	Vivaldi vivaldi.Config
	// EstimateMaxError is the largest Vivaldi error (relative) a host's
	// coordinate may have to take part in an estimate (default 0.75): a
	// new host starts at 1.5, "anywhere", and placement must not trust
	// it until a few measurements have pinned it down.
	EstimateMaxError float64
}

// siteEstimateHosts bounds how many hosts make a site's centroid, so that
// recomputing it on Report costs the same however big the site is.
const siteEstimateHosts = 4

// Map is the RTT map. It is safe for concurrent use; the Entry values it
// returns share internal slices and Stats (Reporters, *Stats), which the
// caller must treat as read-only.
type Map struct {
	mu  sync.RWMutex
	cfg Config

	hostSite  map[string]string
	cellSite  map[string]string
	siteHosts map[string][]string // sorted host IDs per site
	siteVia   map[string]string   // "site:<id>", built once so lookups do not concatenate
	// siteCoords caches per site the centroid of the confident
	// coordinates of up to siteEstimateHosts of its hosts (refreshSite).
	siteCoords map[string]siteCoord

	siteSite  map[[2]string]*pair // key: A ≤ B site IDs
	cellSiteP map[[2]string]*pair // key: cell, site

	viv *vivaldi.Set
}

// New returns an empty map. It panics on a negative Fresh, History or
// EstimateMaxError and on an invalid Vivaldi config: those are wiring
// mistakes, not conditions to handle at run time.
func New(cfg Config) *Map {
	if cfg.Fresh < 0 || cfg.History < 0 || cfg.EstimateMaxError < 0 {
		panic("rttmap: Fresh, History and EstimateMaxError must be ≥ 0")
	}
	if cfg.Fresh == 0 {
		cfg.Fresh = 30 * time.Second
	}
	if cfg.History == 0 {
		cfg.History = 360
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.EstimateMaxError == 0 {
		cfg.EstimateMaxError = 0.75
	}
	viv, err := vivaldi.NewSet(cfg.Vivaldi)
	if err != nil {
		panic(fmt.Sprintf("rttmap: %v", err))
	}
	return &Map{
		cfg:        cfg,
		hostSite:   map[string]string{},
		cellSite:   map[string]string{},
		siteHosts:  map[string][]string{},
		siteVia:    map[string]string{},
		siteCoords: map[string]siteCoord{},
		siteSite:   map[[2]string]*pair{},
		cellSiteP:  map[[2]string]*pair{},
		viv:        viv,
	}
}

// reporter is one host's latest window towards one pair.
type reporter struct {
	host, target string
	last         latency.Stats
	// rtt is what this reporter contributes to the pair's median: the
	// P50 of its latest window that received anything, carried over
	// total-loss windows only while that window is itself within Fresh
	// of the latest one.
	rtt    time.Duration
	hasRTT bool
	rttAt  time.Time
}

// stage is the entry a pair shows while its first n reporters (newest
// window first) are fresh: valid until the n-th one's window ends plus
// Fresh. Precomputing them at Report time keeps lookups pure reads.
type stage struct {
	until time.Time
	e     Entry
}

type pair struct {
	kind      Kind
	a, b      string
	reporters map[string]*reporter
	hist      []Point
	histNext  int
	latest    *latency.Stats // newest window of any reporter
	stages    []stage        // stages[i] has i+1 reporters; until decreases with i
	stale     Entry          // what the pair shows once every window is stale
}

func (p *pair) addHistory(max int, pt Point) {
	if len(p.hist) < max {
		p.hist = append(p.hist, pt)
		return
	}
	p.hist[p.histNext] = pt
	p.histNext = (p.histNext + 1) % max
}

func (p *pair) history() []Point {
	out := make([]Point, 0, len(p.hist))
	out = append(out, p.hist[p.histNext:]...)
	return append(out, p.hist[:p.histNext]...)
}

// rebuild recomputes the stages from the reporters.
func (p *pair) rebuild(fresh time.Duration) {
	rs := slices.Collect(maps.Values(p.reporters))
	slices.SortFunc(rs, func(x, y *reporter) int {
		if c := y.last.To.Compare(x.last.To); c != 0 {
			return c
		}
		return cmp.Compare(x.host, y.host)
	})
	p.stages = p.stages[:0]
	p.latest, p.stale = nil, Entry{}
	if len(rs) == 0 {
		return
	}
	latest := rs[0].last
	p.latest = &latest
	var rtts []time.Duration
	for n := 1; n <= len(rs); n++ {
		prefix := rs[:n]
		e := Entry{Kind: p.kind, A: p.a, B: p.b, Stats: p.latest, MeasuredAt: latest.To,
			Reporters: make([]string, 0, n), Quality: Unknown}
		rtts = rtts[:0]
		for _, r := range prefix {
			e.Reporters = append(e.Reporters, r.host)
			if r.hasRTT {
				rtts = append(rtts, r.rtt)
			}
		}
		slices.Sort(e.Reporters)
		if len(rtts) > 0 {
			e.RTT, e.Quality = median(rtts), Measured
		}
		p.stages = append(p.stages, stage{until: prefix[n-1].last.To.Add(fresh), e: e})
	}
	// Stale shows what was measured when the newest window came in.
	for i := len(p.stages) - 1; i >= 0; i-- {
		if !p.stages[i].until.Before(latest.To) {
			p.stale = p.stages[i].e
			if p.stale.Quality == Measured {
				p.stale.Quality = Stale
			}
			break
		}
	}
}

// median sorts v and returns its median, the mean of the middle two when
// the count is even (two reporters are usually the two directions of one
// path).
func median(v []time.Duration) time.Duration {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// SetTopology says where each host and cell is (hostSite: host → site,
// cellSite: cell → site), replacing what was known. Windows reported by or
// about a host that is gone or has moved to another site, and about a cell
// that is gone, are dropped (with the pairs left without any, history
// included), and so are the coordinates of hosts that are gone.
func (m *Map) SetTopology(hostSite map[string]string, cellSite map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// A host that is gone or has moved takes its coordinate with it: it
	// described where the host was.
	for h, s := range m.hostSite {
		if ns, ok := hostSite[h]; !ok || ns != s {
			m.viv.Remove(h)
		}
	}
	m.hostSite = maps.Clone(hostSite)
	m.cellSite = maps.Clone(cellSite)
	if m.hostSite == nil {
		m.hostSite = map[string]string{}
	}
	if m.cellSite == nil {
		m.cellSite = map[string]string{}
	}
	m.siteHosts = map[string][]string{}
	m.siteVia = map[string]string{}
	for h, s := range m.hostSite {
		m.siteHosts[s] = append(m.siteHosts[s], h)
		m.siteVia[s] = "site:" + s
	}
	for _, s := range m.cellSite {
		m.siteVia[s] = "site:" + s
	}
	for _, hs := range m.siteHosts {
		slices.Sort(hs)
	}
	m.prune(func(r *reporter, kind Kind, key [2]string) bool {
		k, ok := m.key(r.host, kind, r.target)
		return ok && k == key
	})
	m.refreshAllSites()
}

func (m *Map) refreshAllSites() {
	clear(m.siteCoords)
	for s := range m.siteHosts {
		m.refreshSite(s)
	}
}

// Forget drops every window reported by or about host and its coordinate.
// The topology is left alone: the host may come back with fresh reports.
func (m *Map) Forget(host string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prune(func(r *reporter, kind Kind, _ [2]string) bool {
		return r.host != host && (kind != SiteSite || r.target != host)
	})
	m.viv.Remove(host)
	m.refreshAllSites()
}

// prune keeps the reporters keep approves of, dropping pairs left empty.
func (m *Map) prune(keep func(r *reporter, kind Kind, key [2]string) bool) {
	for _, set := range []map[[2]string]*pair{m.siteSite, m.cellSiteP} {
		for key, p := range set {
			changed := false
			for h, r := range p.reporters {
				if !keep(r, p.kind, key) {
					delete(p.reporters, h)
					changed = true
				}
			}
			switch {
			case len(p.reporters) == 0:
				delete(set, key)
			case changed:
				p.rebuild(m.cfg.Fresh)
			}
		}
	}
}

// key returns the pair a window by host towards target belongs to.
func (m *Map) key(host string, kind Kind, target string) ([2]string, bool) {
	hs, ok := m.hostSite[host]
	if !ok {
		return [2]string{}, false
	}
	switch kind {
	case SiteSite:
		ts, ok := m.hostSite[target]
		if !ok {
			return [2]string{}, false
		}
		return [2]string{min(hs, ts), max(hs, ts)}, true
	case CellSite:
		if _, ok := m.cellSite[target]; !ok {
			return [2]string{}, false
		}
		return [2]string{target, hs}, true
	}
	return [2]string{}, false
}

// Report takes one window measured by host towards a target of kind
// "host" or "cell". A host target makes or updates the SiteSite pair of
// the two hosts' sites (the same site twice for two hosts of one site) and
// teaches both hosts' coordinates the window's P50; a cell target the
// CellSite pair (cell, host's site).
//
// A window that received nothing (total loss) is kept: it is the pair's
// newest Stats (Loss 1) and goes to history, but it does not move the RTT:
// the reporter keeps contributing its last received P50 while that is
// within Fresh of the lossy window, and nothing after that. A pair whose
// fresh reporters have no RTT to contribute shows Quality Unknown with its
// Stats, rather than an estimate: it was measured, and the measurement
// says it does not answer.
//
// Windows that are not newer than the reporter's latest for the pair are
// ignored (a replayed report changes nothing). Unknown host, target or
// kind, a host probing itself, and inconsistent Stats are errors.
func (m *Map) Report(host string, targetKind string, targetID string, st latency.Stats) error {
	var kind Kind
	switch targetKind {
	case TargetHost:
		kind = SiteSite
	case TargetCell:
		kind = CellSite
	default:
		return fmt.Errorf("rttmap: report by %s: target kind %q is neither %q nor %q", host, targetKind, TargetHost, TargetCell)
	}
	if err := checkStats(st); err != nil {
		return fmt.Errorf("rttmap: report by %s on %s %s: %w", host, targetKind, targetID, err)
	}
	if kind == SiteSite && host == targetID {
		return fmt.Errorf("rttmap: report by %s on itself", host)
	}
	now := m.cfg.Clock()
	if st.To.After(now.Add(m.cfg.Fresh)) {
		return fmt.Errorf("rttmap: report by %s on %s %s: window ends at %v, in the future", host, targetKind, targetID, st.To)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.hostSite[host]; !ok {
		return fmt.Errorf("rttmap: report by unknown host %q", host)
	}
	key, ok := m.key(host, kind, targetID)
	if !ok {
		return fmt.Errorf("rttmap: report by %s on unknown %s %q", host, targetKind, targetID)
	}
	set := m.siteSite
	if kind == CellSite {
		set = m.cellSiteP
	}
	p := set[key]
	if p == nil {
		p = &pair{kind: kind, a: key[0], b: key[1], reporters: map[string]*reporter{}}
		set[key] = p
	}
	r := p.reporters[host]
	if r != nil && !st.To.After(r.last.To) {
		return nil
	}
	if r == nil {
		r = &reporter{host: host}
		p.reporters[host] = r
	}
	r.target, r.last = targetID, st
	if st.Received() > 0 {
		r.rtt, r.hasRTT, r.rttAt = st.P50, true, st.To
	} else if r.hasRTT && st.To.Sub(r.rttAt) > m.cfg.Fresh {
		r.hasRTT = false
	}
	p.addHistory(m.cfg.History, Point{Host: host, Stats: st})
	p.rebuild(m.cfg.Fresh)

	if kind == SiteSite && st.Received() > 0 {
		// A refused RTT (beyond Vivaldi's MaxRTT) still counts as a
		// measurement; it just teaches the coordinates nothing.
		_ = m.viv.Observe(host, targetID, st.P50)
		m.refreshSite(key[0])
		if key[1] != key[0] {
			m.refreshSite(key[1])
		}
	}
	return nil
}

func checkStats(st latency.Stats) error {
	switch {
	case st.To.IsZero():
		return errors.New("window without an end (To)")
	case st.Sent <= 0:
		return errors.New("empty window (nothing sent)")
	case st.Lost < 0 || st.Lost > st.Sent:
		return fmt.Errorf("lost %d of %d sent", st.Lost, st.Sent)
	case st.Min < 0 || st.P50 < 0 || st.P95 < 0 || st.P99 < 0 || st.Jitter < 0:
		return errors.New("negative duration")
	case st.Received() > 0 && (st.P50 < st.Min || st.P95 < st.P50 || st.P99 < st.P95):
		return errors.New("percentiles out of order")
	}
	return nil
}
