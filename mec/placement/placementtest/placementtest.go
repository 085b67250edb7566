// Package placementtest holds test doubles for placement's inputs.
package placementtest

import (
	"time"

	"github.com/mecorch/mecorch/latency/rttmap"
)

// LatencyMap is a fake RTT map (no probes behind it) for the tests of
// placement's callers: cell↔site RTTs from a table, all measured; pairs it
// lacks are Unknown. It implements placement.LatencyMap.
type LatencyMap map[[2]string]time.Duration

// CellSite answers from the table.
func (m LatencyMap) CellSite(cell, site string) rttmap.Entry {
	rtt, ok := m[[2]string{cell, site}]
	if !ok {
		return rttmap.Entry{Kind: rttmap.CellSite, A: cell, B: site, Quality: rttmap.Unknown}
	}
	return rttmap.Entry{Kind: rttmap.CellSite, A: cell, B: site, RTT: rtt, Quality: rttmap.Measured}
}
