package placement

import (
	"time"

	"github.com/mecorch/mecorch/mec"
)

// Request is what to place: one instance's needs and the constraints of its
// instantiate request and AppD.
type Request struct {
	Need        mec.Resources
	Constraints mec.PlacementConstraints
	// Peers counts, per site ID, the instances with the same SpreadKey that
	// already run or are being placed there. The caller computes it from the
	// store (and bumps it between the replicas of one request), because the
	// engine sees hosts, not instances.
	Peers map[string]int
	// Serve lists the cells the instance serves, with their UE load, for
	// the latency filter and score (WithLatency); none, no latency stage.
	Serve []CellLoad
	// MaxLatency is the one-way latency bound to every served cell,
	// radio included; 0 means none (the latency score still ranks).
	MaxLatency time.Duration
}

// Snapshot is the inventory as seen at decision time: hosts, with their
// Allocated, and the sites they belong to. It indexes sites once, so that a
// decision never builds a map per host.
type Snapshot struct {
	hosts    []mec.Host
	sites    []mec.Site
	hostSite []int32 // per host: index into sites, -1 when its site is not in the snapshot
	siteByID map[string]int32
}

// NewSnapshot indexes hosts and sites. It takes ownership of hosts: Reserve
// writes to their Allocated, and the caller must not change them meanwhile.
// Labels maps are shared and only read.
func NewSnapshot(hosts []mec.Host, sites []mec.Site) *Snapshot {
	s := &Snapshot{
		hosts:    hosts,
		sites:    make([]mec.Site, len(sites)),
		hostSite: make([]int32, len(hosts)),
		siteByID: make(map[string]int32, len(sites)),
	}
	copy(s.sites, sites)
	for i := range s.sites {
		s.siteByID[s.sites[i].ID] = int32(i)
	}
	for i := range hosts {
		idx, ok := s.siteByID[hosts[i].SiteID]
		if !ok {
			idx = -1
		}
		s.hostSite[i] = idx
	}
	return s
}

// Len is the number of hosts.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return len(s.hosts)
}

// Hosts returns the hosts, in the order given to NewSnapshot. Callers must
// not modify them; use Reserve.
func (s *Snapshot) Hosts() []mec.Host {
	if s == nil {
		return nil
	}
	return s.hosts
}

// Sites returns the sites, in the order given to NewSnapshot.
func (s *Snapshot) Sites() []mec.Site {
	if s == nil {
		return nil
	}
	return s.sites
}

// Site returns the site with that ID.
func (s *Snapshot) Site(id string) (*mec.Site, bool) {
	if s == nil {
		return nil, false
	}
	i, ok := s.siteByID[id]
	if !ok {
		return nil, false
	}
	return &s.sites[i], true
}

// Host returns the host with that ID and its site (nil when the site is not
// in the snapshot). It scans: hosts are looked up by ID only around a
// decision, never inside one, and an index would cost every snapshot a map
// of all hosts.
func (s *Snapshot) Host(id string) (*mec.Host, *mec.Site, bool) {
	i := s.hostIndex(id)
	if i < 0 {
		return nil, nil, false
	}
	return &s.hosts[i], s.siteOf(i), true
}

// Reserve adds r to the Allocated of the host with that ID, so that the
// next decision on this snapshot (the next replica of the same request) sees
// the capacity the previous one took. It reports whether the host exists.
func (s *Snapshot) Reserve(hostID string, r mec.Resources) bool {
	i := s.hostIndex(hostID)
	if i < 0 {
		return false
	}
	s.hosts[i].Allocated = s.hosts[i].Allocated.Add(r)
	return true
}

func (s *Snapshot) hostIndex(id string) int {
	if s == nil {
		return -1
	}
	for i := range s.hosts {
		if s.hosts[i].ID == id {
			return i
		}
	}
	return -1
}

func (s *Snapshot) siteOf(host int) *mec.Site {
	if idx := s.hostSite[host]; idx >= 0 {
		return &s.sites[idx]
	}
	return nil
}
