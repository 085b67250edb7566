package linkemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"

	"github.com/mecorch/mecorch/traffic/netns"
)

// Side is one end of a link: the interface a node sees.
type Side struct {
	// Netns is the path of the node's namespace; "" is the current one.
	Netns string
	// Iface is the interface Start creates there (at most 15 bytes). It
	// must not exist; Start brings it up without an address.
	Iface string
}

// Config describes a link.
type Config struct {
	A, B Side
	// RelayNetns is the path of the namespace that holds the relay's
	// ends of the link; "" is the current one. Several links can share
	// one.
	RelayNetns string
	// RelayA and RelayB name the relay's ends; derived from the sides if
	// empty (see netns.VethName). A link by that name in the relay
	// namespace is taken for a leftover of an earlier run and replaced.
	RelayA, RelayB string
	// MTU of all four veth ends; the kernel's default (1500) if 0.
	MTU        int
	AtoB, BtoA Params
	Logger     *slog.Logger
	// Seed drives jitter and loss; 0 picks one at random.
	Seed int64
}

// Link is a running link.
type Link struct {
	cfg Config
	log *slog.Logger
	// closers are the sockets and timers, closed to stop the relay.
	closers []io.Closer
	pipes   [2]*pipe // AtoB, BtoA
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Start creates the link's veths and relays frames between them until ctx
// ends or Close. Close must be called in any case: it removes the veths.
func Start(ctx context.Context, cfg Config) (_ *Link, err error) {
	for _, s := range []Side{cfg.A, cfg.B} {
		if s.Iface == "" || len(s.Iface) > netns.MaxLinkName {
			return nil, fmt.Errorf("linkemu: interface name %q must have 1 to %d bytes", s.Iface, netns.MaxLinkName)
		}
	}
	if err := cfg.AtoB.Validate(); err != nil {
		return nil, fmt.Errorf("linkemu: a to b: %w", err)
	}
	if err := cfg.BtoA.Validate(); err != nil {
		return nil, fmt.Errorf("linkemu: b to a: %w", err)
	}
	if cfg.MTU < 0 || cfg.MTU > 65535 {
		return nil, fmt.Errorf("linkemu: mtu %d out of range", cfg.MTU)
	}
	id := cfg.RelayNetns + "\x00" + cfg.A.Netns + "\x00" + cfg.A.Iface + "\x00" + cfg.B.Netns + "\x00" + cfg.B.Iface
	if cfg.RelayA == "" {
		cfg.RelayA = netns.VethName("lea", id)
	}
	if cfg.RelayB == "" {
		cfg.RelayB = netns.VethName("leb", id)
	}
	for _, n := range []string{cfg.RelayA, cfg.RelayB} {
		if len(n) > netns.MaxLinkName {
			return nil, fmt.Errorf("linkemu: relay interface name %q is longer than %d bytes", n, netns.MaxLinkName)
		}
	}
	if cfg.RelayA == cfg.RelayB {
		return nil, fmt.Errorf("linkemu: relay ends both named %s", cfg.RelayA)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	seed := uint64(cfg.Seed)
	if seed == 0 {
		seed = rand.Uint64()
	}
	l := &Link{cfg: cfg, log: cfg.Logger.With("a", cfg.A.Iface, "b", cfg.B.Iface)}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("linkemu: %w", err), l.Close())
		}
	}()

	relay, err := handleIn(cfg.RelayNetns)
	if err != nil {
		return nil, err
	}
	defer relay.Close()
	idxA, err := makeHalf(cfg.RelayNetns, relay, cfg.RelayA, cfg.A, cfg.MTU)
	if err != nil {
		return nil, err
	}
	idxB, err := makeHalf(cfg.RelayNetns, relay, cfg.RelayB, cfg.B, cfg.MTU)
	if err != nil {
		return nil, err
	}
	sockA, err := openPacketSocket(cfg.RelayNetns, cfg.RelayA, idxA)
	if err != nil {
		return nil, err
	}
	l.closers = append(l.closers, sockA)
	sockB, err := openPacketSocket(cfg.RelayNetns, cfg.RelayB, idxB)
	if err != nil {
		return nil, err
	}
	l.closers = append(l.closers, sockB)

	mtu := cfg.MTU
	if mtu == 0 {
		mtu = 1500
	}
	// Room for the Ethernet header, two VLAN tags and the one the
	// kernel took out (see receiver.recv).
	bufSize := vlanHeadroom + mtu + 14 + 8
	var sleepers [2]*sleeper
	for i := range sleepers {
		if sleepers[i], err = newSleeper(); err != nil {
			return nil, err
		}
		l.closers = append(l.closers, sleepers[i])
	}
	ctx, l.cancel = context.WithCancel(ctx)
	if err := shape(cfg.A, cfg.AtoB.RateKbit, cfg.MTU); err != nil {
		return nil, err
	}
	if err := shape(cfg.B, cfg.BtoA.RateKbit, cfg.MTU); err != nil {
		return nil, err
	}
	l.pipes[0] = newPipe("a-b", relayed(cfg.AtoB), sockA, sockB, sleepers[0], bufSize, seed, ctx.Done(), l.log)
	l.pipes[1] = newPipe("b-a", relayed(cfg.BtoA), sockB, sockA, sleepers[1], bufSize, seed+1, ctx.Done(), l.log)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		<-ctx.Done()
		// Ends the blocked reads and waits.
		l.closeFiles()
	}()
	for _, p := range l.pipes {
		l.wg.Add(2)
		go func() { defer l.wg.Done(); p.receive() }()
		go func() { defer l.wg.Done(); p.transmit() }()
	}
	l.log.Info("linkemu: link up", "relay_a", cfg.RelayA, "relay_b", cfg.RelayB,
		"a_to_b", cfg.AtoB, "b_to_a", cfg.BtoA)
	return l, nil
}

func (l *Link) closeFiles() {
	for _, c := range l.closers {
		c.Close()
	}
}

// Set changes both directions' parameters. Frames that arrive after the
// call get them; frames already held keep their due times, and frames
// keep their order, so a shorter delay takes effect once the frames held
// for the longer one have left.
func (l *Link) Set(aToB, bToA Params) error {
	if err := aToB.Validate(); err != nil {
		return fmt.Errorf("linkemu: a to b: %w", err)
	}
	if err := bToA.Validate(); err != nil {
		return fmt.Errorf("linkemu: b to a: %w", err)
	}
	if err := shape(l.cfg.A, aToB.RateKbit, l.cfg.MTU); err != nil {
		return fmt.Errorf("linkemu: %w", err)
	}
	if err := shape(l.cfg.B, bToA.RateKbit, l.cfg.MTU); err != nil {
		return fmt.Errorf("linkemu: %w", err)
	}
	ra, rb := relayed(aToB), relayed(bToA)
	l.pipes[0].params.Store(&ra)
	l.pipes[1].params.Store(&rb)
	l.log.Info("linkemu: link changed", "a_to_b", aToB, "b_to_a", bToA)
	return nil
}

// ShapedDrops is what the kernel's rate limiting dropped, per direction.
func (l *Link) ShapedDrops() (aToB, bToA uint64, err error) {
	if aToB, err = shapedDrops(l.cfg.A); err != nil {
		return 0, 0, err
	}
	bToA, err = shapedDrops(l.cfg.B)
	return aToB, bToA, err
}

// Stats returns the counters of both directions.
func (l *Link) Stats() Stats {
	return Stats{AtoB: l.pipes[0].counts.snapshot(), BtoA: l.pipes[1].counts.snapshot()}
}

// Close stops relaying, drops the frames held and removes the veths.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		if l.cancel != nil {
			l.cancel()
			l.wg.Wait()
		} else {
			l.closeFiles()
		}
		// Deleting a relay end deletes its peer on the node's side.
		l.closeErr = errors.Join(
			netns.DelVeth(l.cfg.RelayNetns, l.cfg.RelayA),
			netns.DelVeth(l.cfg.RelayNetns, l.cfg.RelayB))
		if l.closeErr != nil {
			l.closeErr = fmt.Errorf("linkemu: close: %w", l.closeErr)
		}
	})
	return l.closeErr
}
