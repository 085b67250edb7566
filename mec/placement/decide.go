package placement

import "github.com/mecorch/mecorch/mec"

// scratch is one decision's working memory, pooled by the Engine so that a
// decision over thousands of hosts allocates nothing per host.
type scratch struct {
	filters []activeFilter
	scores  []activeScore
	// siteVerdict holds, per site, the index in filters of the first
	// site filter that rejects the site, or -1.
	siteVerdict []int32
	// siteScores holds, per site, the value of each site score
	// (siteScores[site*nSiteScores+slot]).
	siteScores  []float64
	nSiteScores int
	invWeight   float64
	seed        uint64

	counts      []int // hosts removed, per Engine.filters index
	unknownSite int
	candidates  int
	top         []entry // best first, at most k

	// lat is the decision's latency per site, shared by the latency
	// filter and score (latOn: in use for this decision).
	lat   latTable
	latOn bool
}

// siteAtFilter and siteAtScore are the site stages of this package that
// keep per-site state for a decision: the engine gives them the site's
// index, which spares a lookup by ID per site.
type siteAtFilter interface{ keepSiteAt(si int32) bool }
type siteAtScore interface{ scoreSiteAt(si int32) float64 }

// sharedFilter and sharedScore are stages of this package that share
// per-decision work through the scratch (the latency filter and score
// compute each site's latency once between them).
type sharedFilter interface {
	prepareFilterIn(sc *scratch, req *Request, snap *Snapshot) Filter
}
type sharedScore interface {
	prepareScoreIn(sc *scratch, req *Request, snap *Snapshot) Score
}

// latencyTable returns the decision's latency table for core, set up on
// first use. A second, different core in one pipeline (two latency stages
// built apart) gets a table of its own.
func (sc *scratch) latencyTable(core *latencyCore, req *Request, snap *Snapshot) *latTable {
	if sc.latOn {
		if sc.lat.core == core && core != nil {
			return &sc.lat
		}
		return newLatTable(core, req, snap)
	}
	sc.lat.init(core, req, snap)
	sc.latOn = true
	return &sc.lat
}

type activeFilter struct {
	f    Filter
	site SiteFilter   // f as a SiteFilter, or nil
	at   siteAtFilter // f as a siteAtFilter, or nil
	slot int          // index in Engine.filters, for counts
}

type activeScore struct {
	name     string
	s        Score
	site     SiteScore   // s as a SiteScore, or nil
	at       siteAtScore // s as a siteAtScore, or nil
	siteSlot int
	weight   float64
}

type entry struct {
	total float64
	host  int32
}

// run fills sc with the outcome of the pipeline for req over snap, keeping
// the k best candidates.
func (e *Engine) run(sc *scratch, req *Request, snap *Snapshot, k int) {
	sc.reset(len(e.filters))
	e.prepare(sc, req, snap)
	if snap == nil {
		return
	}
	k = min(k, len(snap.hosts))
	if cap(sc.top) < k {
		sc.top = make([]entry, 0, k)
	}
	sc.seed = tieSeed(req.Constraints.SpreadKey)

	// Site pass: one verdict and one value per site score, for all the
	// site's hosts.
	nss := sc.nSiteScores
	sc.siteVerdict = grow(sc.siteVerdict, len(snap.sites))
	sc.siteScores = grow(sc.siteScores, len(snap.sites)*nss)
	for si := range snap.sites {
		s := &snap.sites[si]
		verdict := int32(-1)
		for fi := range sc.filters {
			af := &sc.filters[fi]
			if af.site == nil {
				continue
			}
			var keep bool
			if af.at != nil {
				keep = af.at.keepSiteAt(int32(si))
			} else {
				keep = af.site.KeepSite(req, s)
			}
			if !keep {
				verdict = int32(fi)
				break
			}
		}
		sc.siteVerdict[si] = verdict
		if verdict >= 0 || nss == 0 {
			continue
		}
		for _, as := range sc.scores {
			switch {
			case as.at != nil:
				sc.siteScores[si*nss+as.siteSlot] = clamp01(as.at.scoreSiteAt(int32(si)))
			case as.site != nil:
				sc.siteScores[si*nss+as.siteSlot] = clamp01(as.site.ScoreSite(req, s))
			}
		}
	}

	// Host pass.
	for hi := range snap.hosts {
		si := snap.hostSite[hi]
		if si < 0 {
			sc.unknownSite++
			continue
		}
		h, s := &snap.hosts[hi], &snap.sites[si]
		if slot := sc.reject(req, h, s, sc.siteVerdict[si]); slot >= 0 {
			sc.counts[slot]++
			continue
		}
		sc.candidates++
		var total float64
		for i := range sc.scores {
			as := &sc.scores[i]
			var v float64
			if as.site != nil {
				v = sc.siteScores[int(si)*nss+as.siteSlot]
			} else {
				v = clamp01(as.s.Score(req, h, s))
			}
			total += as.weight * v
		}
		sc.offer(entry{total: total * sc.invWeight, host: int32(hi)}, k, snap)
	}
}

// reject returns the Engine.filters index of the first filter that removes
// h, or -1 when h passes them all.
func (sc *scratch) reject(req *Request, h *mec.Host, s *mec.Site, siteVerdict int32) int {
	for fi := range sc.filters {
		af := &sc.filters[fi]
		if af.site != nil {
			if int32(fi) == siteVerdict {
				return af.slot
			}
			continue
		}
		if !af.f.Keep(req, h, s) {
			return af.slot
		}
	}
	return -1
}

// prepare picks the stages that apply to req.
func (e *Engine) prepare(sc *scratch, req *Request, snap *Snapshot) {
	for i, f := range e.filters {
		if p, ok := f.(sharedFilter); ok {
			if f = p.prepareFilterIn(sc, req, snap); f == nil {
				continue
			}
		} else if p, ok := f.(FilterPreparer); ok {
			if f = p.PrepareFilter(req, snap); f == nil {
				continue
			}
		}
		af := activeFilter{f: f, slot: i}
		af.site, _ = f.(SiteFilter)
		if af.site != nil {
			af.at, _ = f.(siteAtFilter)
		}
		sc.filters = append(sc.filters, af)
	}
	var wsum float64
	for _, w := range e.scores {
		s := w.Score
		if p, ok := s.(sharedScore); ok {
			if s = p.prepareScoreIn(sc, req, snap); s == nil {
				continue
			}
		} else if p, ok := s.(ScorePreparer); ok {
			if s = p.PrepareScore(req, snap); s == nil {
				continue
			}
		}
		as := activeScore{name: w.Score.Name(), s: s, weight: w.Weight, siteSlot: -1}
		if ss, ok := s.(SiteScore); ok {
			as.site, as.siteSlot = ss, sc.nSiteScores
			as.at, _ = s.(siteAtScore)
			sc.nSiteScores++
		}
		sc.scores = append(sc.scores, as)
		wsum += w.Weight
	}
	if wsum > 0 {
		sc.invWeight = 1 / wsum
	}
}

// offer keeps c if it is among the k best seen so far. top stays sorted,
// so a decision costs O(hosts · log k) comparisons and never sorts the
// candidates.
func (sc *scratch) offer(c entry, k int, snap *Snapshot) {
	n := len(sc.top)
	if n == k {
		if k == 0 || !sc.better(c, sc.top[n-1], snap) {
			return
		}
		n--
		sc.top = sc.top[:n]
	}
	lo, hi := 0, n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if sc.better(c, sc.top[mid], snap) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	sc.top = append(sc.top, entry{})
	copy(sc.top[lo+1:], sc.top[lo:n])
	sc.top[lo] = c
}

// better orders candidates: higher total first; equal totals (identical
// hosts are common: a new site's servers are alike) by a hash of the host
// ID seeded with the spread key, then by ID. The hash, rather than the ID
// alone, keeps ties from always going to the lexically first host, and the
// seed makes different apps break them differently; both are fixed by the
// request, so the same request on the same snapshot picks the same host
// whatever the order of the hosts.
func (sc *scratch) better(a, b entry, snap *Snapshot) bool {
	if a.total != b.total {
		return a.total > b.total
	}
	ida, idb := snap.hosts[a.host].ID, snap.hosts[b.host].ID
	if ha, hb := tieHash(sc.seed, ida), tieHash(sc.seed, idb); ha != hb {
		return ha < hb
	}
	return ida < idb
}

// ranked turns the kept candidates into ScoredHosts with their breakdown,
// their latency to the served cells and why each won or lost. Only these
// few hosts are scored a second time, so the hot loop never builds a map.
func (e *Engine) ranked(sc *scratch, req *Request, snap *Snapshot) []mec.ScoredHost {
	if len(sc.top) == 0 {
		return nil
	}
	out := make([]mec.ScoredHost, len(sc.top))
	for i, c := range sc.top {
		h := &snap.hosts[c.host]
		si := snap.hostSite[c.host]
		s := &snap.sites[si]
		scores := make(map[string]float64, len(sc.scores))
		for _, as := range sc.scores {
			if as.site != nil {
				scores[as.name] = sc.siteScores[int(si)*sc.nSiteScores+as.siteSlot]
			} else {
				scores[as.name] = clamp01(as.s.Score(req, h, s))
			}
		}
		out[i] = mec.ScoredHost{HostID: h.ID, Total: c.total, Scores: scores}
		if sc.latOn {
			li := sc.lat.at(si).info(sc.lat.cells)
			out[i].Latency = &li
		}
	}
	sc.explain(req, snap, out)
	return out
}

func (sc *scratch) reset(nFilters int) {
	clear(sc.filters)
	clear(sc.scores)
	sc.filters, sc.scores = sc.filters[:0], sc.scores[:0]
	sc.nSiteScores, sc.invWeight = 0, 0
	sc.counts = grow(sc.counts, nFilters)
	clear(sc.counts)
	sc.unknownSite, sc.candidates = 0, 0
	sc.top = sc.top[:0]
	sc.latOn = false
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func clamp01(v float64) float64 {
	if !(v > 0) { // also NaN
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}

// FNV-1a, 64 bit.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func tieSeed(key string) uint64 { return tieHash(fnvOffset, key) }

func tieHash(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}
