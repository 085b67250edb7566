package placement

import (
	"fmt"

	"github.com/mecorch/mecorch/mec"
)

// explain fills ScoredHost.Why of out (best first): the winner says what it
// won on against the runner-up, every other candidate what it lost on
// against the winner. Both are the score with the largest weighted
// difference, because that is the one that decided the order; the words
// carry the numbers so that an operator need not read the breakdown.
func (sc *scratch) explain(req *Request, snap *Snapshot, out []mec.ScoredHost) {
	if len(out) == 0 {
		return
	}
	win := &out[0]
	// sc.top is out's order; its entries know their hosts' sites.
	siteOf := func(i int) string { return snap.hosts[sc.top[i].host].SiteID }
	winSite := siteOf(0)
	if len(out) == 1 {
		win.Why = "the only host that fits" + latencySuffix(win.Latency)
	} else {
		name := sc.widestGap(win, &out[1])
		switch name {
		case "":
			win.Why = "tied with " + out[1].HostID + " on every score; won the tie-break" + latencySuffix(win.Latency)
		case NameLatency:
			win.Why = "lowest latency: " + latencyPhrase(win.Latency)
		default:
			win.Why = wonOn(name, win, req.Peers[winSite]) + latencySuffix(win.Latency)
		}
	}
	for i := 1; i < len(out); i++ {
		o := &out[i]
		name := sc.widestGap(win, o)
		if name == "" {
			o.Why = "tied with the winner on every score; lost the tie-break"
			continue
		}
		o.Why = lostOn(name, win, o, req.Peers[siteOf(i)])
	}
}

// widestGap names the active score in which a leads b by the largest
// weighted margin, "" when a leads in none.
func (sc *scratch) widestGap(a, b *mec.ScoredHost) string {
	best, gap := "", 0.0
	for _, as := range sc.scores {
		if d := as.weight * (a.Scores[as.name] - b.Scores[as.name]); d > gap {
			best, gap = as.name, d
		}
	}
	return best
}

func wonOn(name string, h *mec.ScoredHost, peers int) string {
	switch name {
	case NameSpread:
		if peers <= 0 {
			return "no replica on its site yet"
		}
		return fmt.Sprintf("fewest replicas on its site (%d)", peers)
	case NameHeadroom:
		return fmt.Sprintf("most headroom (%.0f%% free after placement)", 100*h.Scores[name])
	}
	return fmt.Sprintf("best %s score (%.3f)", name, h.Scores[name])
}

func lostOn(name string, win, h *mec.ScoredHost, peers int) string {
	switch name {
	case NameLatency:
		if h.Latency == nil || win.Latency == nil {
			break
		}
		// A score of 0 with figures is a mean right at the bound, not a
		// missing measurement.
		if h.Scores[name] == 0 && h.Latency.WorstCell == "" {
			return "no usable latency measurement to the served cells"
		}
		if h.Scores[name] == 0 && h.Latency.MeanNs <= win.Latency.MeanNs {
			return "no usable latency measurement to every served cell"
		}
		return fmt.Sprintf("%s more latency (%s vs %s mean)",
			ms(h.Latency.MeanNs-win.Latency.MeanNs), ms(h.Latency.MeanNs), ms(win.Latency.MeanNs))
	case NameSpread:
		return fmt.Sprintf("site already has %d replica(s)", max(peers, 0))
	case NameHeadroom:
		return fmt.Sprintf("less headroom (%.0f%% vs %.0f%% free after placement)", 100*h.Scores[name], 100*win.Scores[name])
	}
	return fmt.Sprintf("lower %s score (%.3f vs %.3f)", name, h.Scores[name], win.Scores[name])
}

// latencyPhrase: "3.1 ms mean, 3.4 ms worst to 2 cells, measured".
func latencyPhrase(li *mec.LatencyInfo) string {
	if li == nil {
		return "unknown"
	}
	how := "measured"
	switch {
	case li.Estimated >= li.Cells:
		how = "estimated"
	case li.Estimated > 0:
		how = fmt.Sprintf("%d of them estimated", li.Estimated)
	}
	cells := "cells"
	if li.Cells == 1 {
		cells = "cell"
	}
	return fmt.Sprintf("%s mean, %s worst to %d %s, %s", ms(li.MeanNs), ms(li.WorstNs), li.Cells, cells, how)
}

func latencySuffix(li *mec.LatencyInfo) string {
	if li == nil {
		return ""
	}
	return "; latency " + latencyPhrase(li)
}
