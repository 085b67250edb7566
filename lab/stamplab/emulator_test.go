package stamplab

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mecorch/mecorch/lab/linkemu"
	"github.com/mecorch/mecorch/lab/runner"
	"github.com/mecorch/mecorch/lab/topology"
)

// keepLinks is runner's default emulator (lab/linkemu) that also keeps the
// links it starts, so that the test can read the relay's lateness, which
// runner does not expose.
type keepLinks struct {
	mu    sync.Mutex
	links []*linkemu.Link
}

func (k *keepLinks) Start(ctx context.Context, spec runner.LinkSpec) (runner.EmulatedLink, error) {
	l, err := linkemu.Start(ctx, linkemu.Config{
		A:          linkemu.Side{Netns: spec.A.Netns, Iface: spec.A.Iface},
		B:          linkemu.Side{Netns: spec.B.Netns, Iface: spec.B.Iface},
		RelayNetns: spec.RelayNetns,
		MTU:        spec.MTU,
		AtoB:       params(spec.AtoB),
		BtoA:       params(spec.BtoA),
		Seed:       spec.Seed,
	})
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.links = append(k.links, l)
	k.mu.Unlock()
	return kept{l}, nil
}

// only returns the one link the topology has.
func (k *keepLinks) only() (*linkemu.Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.links) != 1 {
		return nil, fmt.Errorf("%d emulated links, want 1", len(k.links))
	}
	return k.links[0], nil
}

type kept struct{ l *linkemu.Link }

func (k kept) Set(aToB, bToA topology.Impairment) error { return k.l.Set(params(aToB), params(bToA)) }
func (k kept) Close() error                             { return k.l.Close() }

func params(i topology.Impairment) linkemu.Params {
	return linkemu.Params{Delay: i.Delay, Jitter: i.Jitter, LossPct: i.LossPct, RateKbit: i.RateKbit}
}

// lateness is the relay's lateness in both directions over an interval.
type lateness struct{ aToB, bToA linkemu.Lateness }

func lateSince(l *linkemu.Link, before linkemu.Stats) lateness {
	st := l.Stats()
	return lateness{st.AtoB.Late.Sub(before.AtoB.Late), st.BtoA.Late.Sub(before.BtoA.Late)}
}

func (x lateness) String() string {
	f := func(h linkemu.Lateness) string {
		return fmt.Sprintf("n %d p50<%v p95<%v p99<%v", h.Total(),
			h.Quantile(0.5).Round(time.Microsecond), h.Quantile(0.95).Round(time.Microsecond), h.Quantile(0.99).Round(time.Microsecond))
	}
	return "relay late a→b " + f(x.aToB) + "; b→a " + f(x.bToA)
}
