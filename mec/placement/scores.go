package placement

import "github.com/mecorch/mecorch/mec"

// Score names, as they appear in ScoredHost.Scores.
const (
	NameSpread   = "spread"
	NameHeadroom = "headroom"
)

// SpreadScore prefers sites with fewer instances of the same SpreadKey:
// 1/(1+n) for n peers on the site, so that replicas land on different sites
// (one site's power or backhaul failure takes one replica, not all) while a
// full spread is impossible still prefers the least loaded site.
type SpreadScore struct{}

func (SpreadScore) Name() string { return NameSpread }

func (f SpreadScore) Score(req *Request, _ *mec.Host, s *mec.Site) float64 {
	return f.ScoreSite(req, s)
}

func (SpreadScore) ScoreSite(req *Request, s *mec.Site) float64 {
	n := req.Peers[s.ID]
	if n < 0 {
		n = 0
	}
	return 1 / float64(1+n)
}

// PrepareScore drops the score when there are no peers: every site would
// score 1, which ranks nothing and would only pull every total towards 1.
func (f SpreadScore) PrepareScore(req *Request, _ *Snapshot) Score {
	for _, n := range req.Peers {
		if n > 0 {
			return f
		}
	}
	return nil
}

// HeadroomScore prefers the host left with the most room once the instance
// is placed (least-allocated): the free fraction of CPU and of memory after
// the reservation, averaged. Spreading load keeps room on every host for an
// instance that grows or a neighbour's failover, which matters more at the
// edge, where a site has few servers, than packing hosts to save power.
// Storage and GPUs are left out: they are rarely the scarce resource of a
// host, and a GPU host would otherwise look emptier to every app that needs
// none. A dimension of zero capacity is ignored, not counted as full.
type HeadroomScore struct{}

func (HeadroomScore) Name() string { return NameHeadroom }

func (HeadroomScore) Score(req *Request, h *mec.Host, _ *mec.Site) float64 {
	var sum float64
	var dims int
	if c := h.Capacity.MilliCPU; c > 0 {
		sum += clamp01(float64(c-h.Allocated.MilliCPU-req.Need.MilliCPU) / float64(c))
		dims++
	}
	if c := h.Capacity.MemoryMiB; c > 0 {
		sum += clamp01(float64(c-h.Allocated.MemoryMiB-req.Need.MemoryMiB) / float64(c))
		dims++
	}
	if dims == 0 {
		return 0
	}
	return sum / float64(dims)
}
