// Package placement chooses the host for one app instance: filters remove
// the hosts that cannot take it, weighted scores rank the rest, and the
// result is a mec.Decision that records why (how many hosts each filter
// removed, the top candidates with their per-score breakdown).
//
// The engine knows no particular filter or score. Every stage is a value
// passed to New, so new criteria (the measured-latency filter and RTT score
// that read the latency package's map, for instance) are more Filter and
// Score values, appended to DefaultFilters and DefaultScores, with no change
// here. Three optional interfaces let a stage stay cheap without the engine
// knowing what it does:
//
//   - SiteFilter and SiteScore: the answer depends on the site alone, so the
//     engine asks once per site and decision instead of once per host (an
//     area test, an RTT lookup towards the cells to serve);
//   - FilterPreparer and ScorePreparer: the stage looks at the request once
//     per decision, turns lists into sets, and returns nil when the request
//     does not constrain what it checks, so the engine skips it.
//
// What a future stage needs from the request (the cells to serve, a latency
// bound) is added as a field of Request; the built-in stages ignore fields
// they do not know.
//
// The engine is safe for concurrent use. A Snapshot is read-only during
// Place and Rank; the caller may Reserve on it between decisions.
package placement
