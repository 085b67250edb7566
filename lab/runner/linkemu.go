package runner

import (
	"context"
	"log/slog"

	"github.com/mecorch/mecorch/lab/linkemu"
	"github.com/mecorch/mecorch/lab/topology"
)

// LinkEmulator is the default Emulator: lab/linkemu's user-space relay,
// which holds frames for their delay where the kernel has no netem.
type LinkEmulator struct {
	Logger *slog.Logger
}

// Start starts the relay of one link.
func (e LinkEmulator) Start(ctx context.Context, spec LinkSpec) (EmulatedLink, error) {
	log := e.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l, err := linkemu.Start(ctx, linkemu.Config{
		A:          linkemu.Side{Netns: spec.A.Netns, Iface: spec.A.Iface},
		B:          linkemu.Side{Netns: spec.B.Netns, Iface: spec.B.Iface},
		RelayNetns: spec.RelayNetns,
		MTU:        spec.MTU,
		AtoB:       params(spec.AtoB),
		BtoA:       params(spec.BtoA),
		Logger:     log.With("link", spec.Index),
		Seed:       spec.Seed,
	})
	if err != nil {
		return nil, err
	}
	return emulated{l}, nil
}

type emulated struct{ l *linkemu.Link }

func (e emulated) Set(aToB, bToA topology.Impairment) error {
	return e.l.Set(params(aToB), params(bToA))
}

func (e emulated) Close() error { return e.l.Close() }

func params(i topology.Impairment) linkemu.Params {
	return linkemu.Params{Delay: i.Delay, Jitter: i.Jitter, LossPct: i.LossPct, RateKbit: i.RateKbit}
}
