package placement

import (
	"sort"
	"strings"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// Filter names. They are the JSON names of the fields they enforce
// (constraints.* and capacity.*), so the API can turn a NoFitError into
// ProblemDetails invalidParams without a table of its own.
const (
	NameHostIDs     = "hostIds"
	NameSiteIDs     = "siteIds"
	NameZones       = "zones"
	NameCountryCode = "countryCode"
	NameArea        = "area"
	NameHostLabels  = "hostLabels"
	NameState       = "state"
	NameCPU         = "milliCpu"
	NameMemory      = "memoryMiB"
	NameStorage     = "storageGB"
	NameGPU         = "gpus"
)

// HostIDFilter keeps the hosts named in Constraints.HostIDs (ETSI
// selectedMECHostInfo); no names, no constraint.
type HostIDFilter struct{}

func (HostIDFilter) Name() string    { return NameHostIDs }
func (HostIDFilter) Explain() string { return "are not among the requested hosts" }

func (HostIDFilter) Keep(req *Request, h *mec.Host, _ *mec.Site) bool {
	return contains(req.Constraints.HostIDs, h.ID)
}

// PrepareFilter turns a long list into a set: a scan is faster than a map
// for the usual one or two names, not for a hundred.
func (f HostIDFilter) PrepareFilter(req *Request, _ *Snapshot) Filter {
	ids := req.Constraints.HostIDs
	switch {
	case len(ids) == 0:
		return nil
	case len(ids) <= 16:
		return f
	}
	set := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	return hostIDSet{set}
}

type hostIDSet struct{ ids map[string]struct{} }

func (hostIDSet) Name() string { return NameHostIDs }

func (f hostIDSet) Keep(_ *Request, h *mec.Host, _ *mec.Site) bool {
	_, ok := f.ids[h.ID]
	return ok
}

// SiteIDFilter keeps the hosts of the sites in Constraints.SiteIDs.
type SiteIDFilter struct{}

func (SiteIDFilter) Name() string    { return NameSiteIDs }
func (SiteIDFilter) Explain() string { return "are at sites that were not requested" }

func (f SiteIDFilter) Keep(req *Request, _ *mec.Host, s *mec.Site) bool { return f.KeepSite(req, s) }

func (SiteIDFilter) KeepSite(req *Request, s *mec.Site) bool {
	return contains(req.Constraints.SiteIDs, s.ID)
}

func (f SiteIDFilter) PrepareFilter(req *Request, _ *Snapshot) Filter {
	return unless(len(req.Constraints.SiteIDs) == 0, f)
}

// ZoneFilter keeps the hosts of sites in one of Constraints.Zones.
type ZoneFilter struct{}

func (ZoneFilter) Name() string    { return NameZones }
func (ZoneFilter) Explain() string { return "are outside the requested zones" }

func (f ZoneFilter) Keep(req *Request, _ *mec.Host, s *mec.Site) bool { return f.KeepSite(req, s) }

func (ZoneFilter) KeepSite(req *Request, s *mec.Site) bool {
	return contains(req.Constraints.Zones, s.Zone)
}

func (f ZoneFilter) PrepareFilter(req *Request, _ *Snapshot) Filter {
	return unless(len(req.Constraints.Zones) == 0, f)
}

// CountryFilter keeps the hosts of sites in Constraints.CountryCode (ETSI
// locationConstraints.countryCode). ISO 3166 codes are compared without
// regard to case: "fr" is France too.
type CountryFilter struct{}

func (CountryFilter) Name() string    { return NameCountryCode }
func (CountryFilter) Explain() string { return "are outside the requested country" }

func (f CountryFilter) Keep(req *Request, _ *mec.Host, s *mec.Site) bool { return f.KeepSite(req, s) }

func (CountryFilter) KeepSite(req *Request, s *mec.Site) bool {
	return strings.EqualFold(s.Country, req.Constraints.CountryCode)
}

func (f CountryFilter) PrepareFilter(req *Request, _ *Snapshot) Filter {
	return unless(req.Constraints.CountryCode == "", f)
}

// LabelFilter keeps the hosts that carry every label of
// Constraints.HostLabels. A label asked for with an empty value only has to
// be present ("gpu": "" means any GPU model); a label whose value must be
// empty cannot be asked for, which no operator has needed.
type LabelFilter struct{}

func (LabelFilter) Name() string    { return NameHostLabels }
func (LabelFilter) Explain() string { return "lack a requested label" }

func (LabelFilter) Keep(req *Request, h *mec.Host, _ *mec.Site) bool {
	for k, want := range req.Constraints.HostLabels {
		if !labelMatches(h.Labels, k, want) {
			return false
		}
	}
	return true
}

// PrepareFilter copies the wanted labels into a slice: ranging over a map
// for each of thousands of hosts costs more than the lookups themselves.
// Sorted, so that the work done per host does not depend on map order.
func (LabelFilter) PrepareFilter(req *Request, _ *Snapshot) Filter {
	want := req.Constraints.HostLabels
	if len(want) == 0 {
		return nil
	}
	p := labelPairs{pairs: make([][2]string, 0, len(want))}
	for k, v := range want {
		p.pairs = append(p.pairs, [2]string{k, v})
	}
	sort.Slice(p.pairs, func(i, j int) bool { return p.pairs[i][0] < p.pairs[j][0] })
	return p
}

type labelPairs struct{ pairs [][2]string }

func (labelPairs) Name() string { return NameHostLabels }

func (p labelPairs) Keep(_ *Request, h *mec.Host, _ *mec.Site) bool {
	for _, kv := range p.pairs {
		if !labelMatches(h.Labels, kv[0], kv[1]) {
			return false
		}
	}
	return true
}

func labelMatches(labels map[string]string, key, want string) bool {
	got, ok := labels[key]
	return ok && (want == "" || got == want)
}

// StateFilter keeps hosts in one of the Allowed states; none listed means
// Ready and Unknown. Unknown is schedulable because a registered host stays
// Unknown until its agent first reports, and until agents exist nothing
// would ever be placed otherwise; placing there is safe because the agent
// applies its desired state when it comes up. NotReady (agent lost) and
// Draining (operator cordon) take nothing new.
//
// ReadyHold is a flap guard: a Ready host that came back from NotReady
// (Host.LastNotReady set) less than ReadyHold ago (Host.ReadySince) takes
// nothing new until it has stayed up that long, so that a host whose link
// comes and goes does not collect instances only to lose them again. A host
// Ready for the first time is not held. Clock tells the time for it (nil:
// time.Now); 0 holds nothing.
type StateFilter struct {
	Allowed   []mec.HostState
	ReadyHold time.Duration
	Clock     mec.Clock
}

func (StateFilter) Name() string { return NameState }

func (f StateFilter) Explain() string {
	allowed := f.allowed()
	names := make([]string, len(allowed))
	for i, st := range allowed {
		names[i] = string(st)
	}
	why := "are not " + strings.Join(names, " or ")
	if f.ReadyHold > 0 {
		why += ", or came back from NotReady less than " + f.ReadyHold.String() + " ago"
	}
	return why
}

// Keep reads the clock only for hosts back from an outage, which are few,
// so a decision over thousands of hosts does not ask the time thousands of
// times.
func (f StateFilter) Keep(_ *Request, h *mec.Host, _ *mec.Site) bool {
	ok := false
	if f.Allowed == nil {
		ok = h.State == mec.HostReady || h.State == mec.HostUnknown
	} else {
		for _, st := range f.Allowed {
			if h.State == st {
				ok = true
				break
			}
		}
	}
	if !ok || f.ReadyHold <= 0 || h.State != mec.HostReady || h.ReadySince == nil || h.LastNotReady == nil {
		return ok
	}
	return f.now().Sub(*h.ReadySince) >= f.ReadyHold
}

func (f StateFilter) now() time.Time {
	if f.Clock == nil {
		return time.Now()
	}
	return f.Clock()
}

func (f StateFilter) allowed() []mec.HostState {
	if f.Allowed == nil {
		return []mec.HostState{mec.HostReady, mec.HostUnknown}
	}
	return f.Allowed
}

// WithReadyHold returns a copy of filters whose StateFilters hold back, by
// clock, the hosts that came back from NotReady less than hold ago (see
// StateFilter.ReadyHold): placement.New(WithReadyHold(DefaultFilters(), …),
// DefaultScores(), opts) is Default with the flap guard.
func WithReadyHold(filters []Filter, hold time.Duration, clock mec.Clock) []Filter {
	out := append([]Filter(nil), filters...)
	for i, f := range out {
		if sf, ok := f.(StateFilter); ok {
			sf.ReadyHold, sf.Clock = hold, clock
			out[i] = sf
		}
	}
	return out
}

// Dimension is one kind of resource in mec.Resources.
type Dimension int

const (
	CPU Dimension = iota
	Memory
	Storage
	GPU
)

// CapacityFilter keeps the hosts whose free amount (Capacity - Allocated)
// of Dim covers the request's need. One filter per dimension, rather than
// one for all, so that a NoFitError can say which resource is short. The
// four together are exactly mec.Resources.Fits, which the reservation
// checks again in its transaction: the two must never disagree, or the
// caller would retry on hosts that can never pass. A Dim other than the
// four constants is treated as GPU.
type CapacityFilter struct {
	Dim Dimension
}

func (f CapacityFilter) Name() string {
	switch f.Dim {
	case CPU:
		return NameCPU
	case Memory:
		return NameMemory
	case Storage:
		return NameStorage
	default:
		return NameGPU
	}
}

func (f CapacityFilter) Explain() string {
	switch f.Dim {
	case CPU:
		return "lack free CPU"
	case Memory:
		return "lack free memory"
	case Storage:
		return "lack free storage"
	default:
		return "lack free GPUs"
	}
}

func (f CapacityFilter) Keep(req *Request, h *mec.Host, _ *mec.Site) bool {
	switch f.Dim {
	case CPU:
		return h.Capacity.MilliCPU-h.Allocated.MilliCPU >= req.Need.MilliCPU
	case Memory:
		return h.Capacity.MemoryMiB-h.Allocated.MemoryMiB >= req.Need.MemoryMiB
	case Storage:
		return h.Capacity.StorageGB-h.Allocated.StorageGB >= req.Need.StorageGB
	default:
		return h.Capacity.GPUs-h.Allocated.GPUs >= req.Need.GPUs
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// unless returns nil (skip the filter) when cond holds, else f.
func unless(cond bool, f Filter) Filter {
	if cond {
		return nil
	}
	return f
}
