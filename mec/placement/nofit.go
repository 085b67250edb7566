package placement

import (
	"strconv"
	"strings"
)

// NoFitError is returned by Place when no host passes every filter. It says
// how many hosts each filter removed, so the API can answer "3 hosts lack
// free memory, 2 are NotReady or Draining" rather than "no host".
type NoFitError struct {
	Considered int
	// Rejections lists the filters that removed hosts, in pipeline order.
	Rejections []Rejection
}

// Rejection is how many hosts one filter removed.
type Rejection struct {
	Filter string // the filter's Name
	Reason string // the filter's Explain, or "rejected by <name>"
	Hosts  int
}

// Error reads as one sentence.
func (e *NoFitError) Error() string {
	var b strings.Builder
	b.WriteString("no host fits the instance (")
	b.WriteString(strconv.Itoa(e.Considered))
	b.WriteString(" considered)")
	for i, r := range e.Rejections {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(r.Hosts))
		b.WriteByte(' ')
		b.WriteString(r.Reason)
	}
	return b.String()
}

// Counts returns filter name → hosts removed, the form Decision.Rejected
// uses.
func (e *NoFitError) Counts() map[string]int {
	m := make(map[string]int, len(e.Rejections))
	for _, r := range e.Rejections {
		m[r.Filter] += r.Hosts
	}
	return m
}

// preparedExplainer is an Explainer among this package's prepared
// stages; Explainer proper is asked of the stages given to New.
type preparedExplainer interface {
	Filter
	Explainer
}

func (e *Engine) noFit(sc *scratch, considered int) *NoFitError {
	nf := &NoFitError{Considered: considered}
	if sc.unknownSite > 0 {
		nf.Rejections = append(nf.Rejections, Rejection{
			Filter: SiteUnknown,
			Reason: "belong to a site missing from the inventory",
			Hosts:  sc.unknownSite,
		})
	}
	for i, f := range e.filters {
		if sc.counts[i] == 0 {
			continue
		}
		reason := "rejected by " + f.Name()
		if x, ok := f.(Explainer); ok {
			reason = x.Explain()
		}
		// A prepared stage that can explain itself knows this
		// decision's numbers (the latency filter: which sites had no
		// measurement, how far the nearest was).
		for _, af := range sc.filters {
			if x, ok := af.f.(preparedExplainer); ok && af.slot == i {
				reason = x.Explain()
			}
		}
		nf.Rejections = append(nf.Rejections, Rejection{Filter: f.Name(), Reason: reason, Hosts: sc.counts[i]})
	}
	return nf
}

func (e *Engine) rejected(sc *scratch) map[string]int {
	var m map[string]int
	add := func(name string, n int) {
		if n == 0 {
			return
		}
		if m == nil {
			m = make(map[string]int)
		}
		m[name] = n
	}
	add(SiteUnknown, sc.unknownSite)
	for i, f := range e.filters {
		add(f.Name(), sc.counts[i])
	}
	return m
}
