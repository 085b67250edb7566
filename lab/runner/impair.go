package runner

import (
	"fmt"

	"github.com/mecorch/mecorch/lab/topology"
)

// LinkIndex finds the link with an end at node:iface.
func (l *Lab) LinkIndex(node, iface string) (int, bool) {
	for i, lk := range l.t.Links {
		if (lk.A.Node == node && lk.A.Iface == iface) || (lk.B.Node == node && lk.B.Iface == iface) {
			return i, true
		}
	}
	return 0, false
}

// SetImpairment changes what link i (its index in the topology) does to
// the packets A sends to B and to those B sends to A, while the lab runs.
// Only an emulated link can change: one declared with an impairment, or
// any link when the lab was started with Options.EmulateAll.
func (l *Lab) SetImpairment(i int, aToB, bToA topology.Impairment) error {
	if i < 0 || i >= len(l.t.Links) {
		return fmt.Errorf("lab %s: no link %d (it has %d)", l.t.Name, i, len(l.t.Links))
	}
	lk := l.t.Links[i]
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("lab %s: closed", l.t.Name)
	}
	el := l.emu[i]
	if el == nil {
		return fmt.Errorf("lab %s: link %d (%s:%s-%s:%s) is a plain veth pair: declare an impairment on it or start the lab with EmulateAll",
			l.t.Name, i, lk.A.Node, lk.A.Iface, lk.B.Node, lk.B.Iface)
	}
	if err := el.Set(aToB, bToA); err != nil {
		return fmt.Errorf("lab %s: link %d: %w", l.t.Name, i, err)
	}
	l.log.Info("link impairment set", "link", i, "aToB", aToB, "bToA", bToA)
	return l.state.update(func(st *State) {
		st.Links[i].AtoB, st.Links[i].BtoA = aToB, bToA
	})
}

// SetEndpointImpairment is SetImpairment for the link with an end at
// node:iface: out applies to the packets that end sends, in to those it
// receives.
func (l *Lab) SetEndpointImpairment(node, iface string, out, in topology.Impairment) error {
	i, ok := l.LinkIndex(node, iface)
	if !ok {
		return fmt.Errorf("lab %s: no link at %s:%s", l.t.Name, node, iface)
	}
	if lk := l.t.Links[i]; lk.A.Node == node && lk.A.Iface == iface {
		return l.SetImpairment(i, out, in)
	}
	return l.SetImpairment(i, in, out)
}

// Status reports on the running lab, as the package's Status does.
func (l *Lab) Status() (*LabStatus, error) {
	st := l.state.snapshot()
	return statusOf(&st, true)
}
