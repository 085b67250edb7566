package rttmap

import (
	"time"

	"github.com/mecorch/mecorch/latency"
)

// Kind is what a map entry relates.
type Kind string

const (
	// SiteSite: two sites, measured between their hosts. A and B are
	// site IDs with A < B (the map is symmetric).
	SiteSite Kind = "siteSite"
	// CellSite: a cell and a site, measured from the site's hosts to the
	// cell's RAN address. A is the cell ID, B the site ID.
	CellSite Kind = "cellSite"
)

// Quality says how far an entry's RTT can be trusted.
type Quality string

const (
	// Measured: from probes whose latest window ended within the map's
	// freshness limit.
	Measured Quality = "measured"
	// Estimated: not probed (or its measurement went stale and a fresh
	// estimate exists): a path through measured hops, or network
	// coordinates. Via says which.
	Estimated Quality = "estimated"
	// Stale: only a measurement older than the freshness limit, and no
	// estimate. Placement does not use it; it is shown so that an operator
	// sees what went quiet.
	Stale Quality = "stale"
	// Unknown: nothing at all.
	Unknown Quality = "unknown"
)

// Usable reports whether placement may rely on q.
func (q Quality) Usable() bool { return q == Measured || q == Estimated }

// Entry is what the map says of one pair.
type Entry struct {
	Kind Kind   `json:"kind"`
	A    string `json:"a"`
	B    string `json:"b"`
	// RTT is the value to use: the median of the latest window when
	// measured, the estimate otherwise. Zero when Unknown.
	RTT     time.Duration `json:"rttNs"`
	Quality Quality       `json:"quality"`
	// Via explains an estimate: "site:<id>" for a path through a measured
	// hop at that site, "vivaldi" for network coordinates.
	Via string `json:"via,omitempty"`
	// Stats is the latest measured window (nil when never measured).
	Stats *latency.Stats `json:"stats,omitempty"`
	// MeasuredAt is when the latest measured window ended (zero if never).
	MeasuredAt time.Time `json:"measuredAt,omitzero"`
	// Reporters are the hosts whose windows make up the measurement.
	Reporters []string `json:"reporters,omitempty"`
}

// Point is one window in a pair's history.
type Point struct {
	Host  string        `json:"host"` // the reporting host
	Stats latency.Stats `json:"stats"`
}
