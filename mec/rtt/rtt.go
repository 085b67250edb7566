// Package rtt is mecorch's side of latency measurement: it decides what
// each agent probes (latency/probeplan over the inventory), takes the
// agents' RTT windows into the RTT map (latency/rttmap), and answers
// placement's "measure this pair directly" requests. The agent channel
// (etsi-api/agenthub) carries plans and reports; the operator API serves
// the map.
//
// The map lives in memory: after a restart it is rebuilt from the next
// reports, one window (10 s by default) later. Several replicas each keep
// the map of the agents connected to them.
package rtt

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mecorch/mecorch/latency/probeplan"
	"github.com/mecorch/mecorch/latency/rttmap"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/agentproto"
)

// Config tunes the service.
type Config struct {
	// Interval is the time between two probes of one target; Window the
	// span each report sums up.
	Interval time.Duration
	Window   time.Duration
	// Rotate is how often the rotating part of the plans moves on, so
	// that over time every site pair is measured now and then.
	Rotate time.Duration
	// Refresh is how often the inventory (hosts, cells, sites) is read
	// again for the plans and the map's topology.
	Refresh time.Duration
	// CellPort is the STAMP port of cells' RAN addresses.
	CellPort int
	// MaxTargets bounds each agent's plan.
	MaxTargets int
	// UrgentFor is how long a "measure directly" request stays at the head
	// of a plan.
	UrgentFor time.Duration
	// Fresh is the map's freshness limit.
	Fresh time.Duration
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = 100 * time.Millisecond
	}
	if c.Window <= 0 {
		c.Window = 10 * time.Second
	}
	if c.Rotate <= 0 {
		c.Rotate = time.Minute
	}
	if c.Refresh <= 0 {
		c.Refresh = 15 * time.Second
	}
	if c.CellPort <= 0 {
		c.CellPort = 862
	}
	if c.MaxTargets <= 0 {
		c.MaxTargets = 16
	}
	if c.UrgentFor <= 0 {
		c.UrgentFor = 2 * time.Minute
	}
	if c.Fresh <= 0 {
		c.Fresh = 3 * c.Window
	}
	return c
}

// Validate refuses timings an agent would refuse in its plan (see
// agentproto's bounds): a plan it cannot take would leave every host
// unprobed.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.Interval < agentproto.MinProbeInterval || c.Interval > agentproto.MaxProbeInterval {
		return fmt.Errorf("probe interval %v: must be from %v to %v", c.Interval, agentproto.MinProbeInterval, agentproto.MaxProbeInterval)
	}
	if c.Window < agentproto.MinProbeWindow || c.Window > agentproto.MaxProbeWindow {
		return fmt.Errorf("RTT window %v: must be from %v to %v", c.Window, agentproto.MinProbeWindow, agentproto.MaxProbeWindow)
	}
	if c.Window < 10*c.Interval {
		return fmt.Errorf("RTT window %v holds fewer than 10 probes of interval %v", c.Window, c.Interval)
	}
	if c.MaxTargets > agentproto.MaxProbeTargets {
		return fmt.Errorf("%d probe targets: at most %d", c.MaxTargets, agentproto.MaxProbeTargets)
	}
	if c.CellPort > 65535 {
		return fmt.Errorf("cell STAMP port %d: at most 65535", c.CellPort)
	}
	return nil
}

// Service keeps the map and the plans.
type Service struct {
	cfg   Config
	store mec.Store
	clock mec.Clock
	log   *slog.Logger
	m     *rttmap.Map
	plan  *probeplan.Planner

	mu     sync.Mutex
	addrs  map[string]string // host → its reflector's ip:port, from its hello
	inv    probeplan.Inventory
	prep   *probeplan.Prepared // inv, indexed once for every host's plan
	epoch  uint64
	notify func()
}

// New returns the service. notify, which may be nil, is called (without
// locks held, never blocking for long) when plans may have changed, so
// that the channel sends the new ones.
func New(cfg Config, store mec.Store, clock mec.Clock, log *slog.Logger) *Service {
	cfg = cfg.WithDefaults()
	s := &Service{cfg: cfg, store: store, clock: clock, log: log, addrs: map[string]string{}}
	s.m = rttmap.New(rttmap.Config{Fresh: cfg.Fresh, Clock: clock})
	s.plan = probeplan.New(probeplan.Config{Max: cfg.MaxTargets, Distance: s.distance, Clock: clock})
	return s
}

// Map is the RTT map (for placement and the operator API).
func (s *Service) Map() *rttmap.Map { return s.m }

// Config is the service's configuration, defaults filled.
func (s *Service) Config() Config { return s.cfg }

// OnChange sets the function called when plans may have changed.
func (s *Service) OnChange(fn func()) {
	s.mu.Lock()
	s.notify = fn
	s.mu.Unlock()
}

// distance is the planner's idea of how far two sites are: the map's
// site-to-site RTT when it knows one.
func (s *Service) distance(a, b string) (time.Duration, bool) {
	if e := s.m.SiteSite(a, b); e.Quality.Usable() {
		return e.RTT, true
	}
	return s.m.SiteEstimate(a, b)
}

// Run refreshes the inventory and rotates the plans until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("read inventory for probe plans", "err", err)
	}
	refresh := time.NewTicker(s.cfg.Refresh)
	defer refresh.Stop()
	rotate := time.NewTicker(s.cfg.Rotate)
	defer rotate.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-refresh.C:
			if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("read inventory for probe plans", "err", err)
			}
		case <-rotate.C:
			s.mu.Lock()
			s.epoch++
			s.mu.Unlock()
			s.changed()
		}
	}
}

// Refresh reads the inventory again: the map's topology and the plans'
// candidates.
func (s *Service) Refresh(ctx context.Context) error {
	var (
		hosts []mec.Host
		cells []mec.Cell
		sites []mec.Site
	)
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		if hosts, err = mec.LoadAll[mec.Host](tx, mec.KindHost); err != nil {
			return err
		}
		if cells, err = mec.LoadAll[mec.Cell](tx, mec.KindCell); err != nil {
			return err
		}
		sites, err = mec.LoadAll[mec.Site](tx, mec.KindSite)
		return err
	})
	if err != nil {
		return err
	}
	hostSite := make(map[string]string, len(hosts))
	for _, h := range hosts {
		hostSite[h.ID] = h.SiteID
	}
	cellSite := make(map[string]string, len(cells))
	for _, c := range cells {
		cellSite[c.ID] = c.SiteID
	}
	s.m.SetTopology(hostSite, cellSite)

	s.mu.Lock()
	inv := probeplan.Inventory{}
	for _, h := range hosts {
		// Only hosts whose agent said where its reflector is can probe
		// or be probed; the others join the plans when they connect.
		if a := s.addrs[h.ID]; a != "" {
			inv.Hosts = append(inv.Hosts, probeplan.Host{ID: h.ID, Site: h.SiteID, Addr: a})
		}
	}
	for _, c := range cells {
		if c.RANAddress == "" {
			continue
		}
		inv.Cells = append(inv.Cells, probeplan.Cell{ID: c.ID, Site: c.SiteID,
			Addr: net.JoinHostPort(c.RANAddress, strconv.Itoa(s.cfg.CellPort))})
	}
	for _, st := range sites {
		// A site registered without coordinates has 0,0 (no cell site
		// stands there): listed, all such sites would look 0 km apart and
		// every host would take them all for its nearest.
		if st.Latitude == 0 && st.Longitude == 0 {
			continue
		}
		inv.Sites = append(inv.Sites, probeplan.Site{ID: st.ID, Lat: st.Latitude, Lon: st.Longitude})
	}
	same := sameInventory(s.inv, inv)
	s.inv = inv
	// Prepared again on every refresh, not only on change: it ranks the
	// nearest sites by the map's distances, which the map keeps learning.
	s.prep = s.plan.Prepare(inv)
	s.mu.Unlock()
	if !same {
		s.changed()
	}
	return nil
}

func sameInventory(a, b probeplan.Inventory) bool {
	return slices.Equal(a.Hosts, b.Hosts) && slices.Equal(a.Cells, b.Cells) && slices.Equal(a.Sites, b.Sites)
}

// Connected records where a host's reflector answers. advertised is the
// hello's probeAddr; an empty host part in it is filled with the address
// the agent's connection comes from (remote, "ip:port").
func (s *Service) Connected(ctx context.Context, hostID, advertised, remote string) error {
	addr, err := ResolveProbeAddr(advertised, remote)
	if err != nil {
		return err
	}
	s.mu.Lock()
	changed := s.addrs[hostID] != addr
	s.addrs[hostID] = addr
	s.mu.Unlock()
	if changed {
		return s.Refresh(ctx)
	}
	return nil
}

// Disconnected forgets where a host's reflector is: its session ended,
// and peers probing a silent host would only fill the map with losses.
// Its next session says again.
func (s *Service) Disconnected(ctx context.Context, hostID string) error {
	s.mu.Lock()
	_, had := s.addrs[hostID]
	delete(s.addrs, hostID)
	s.mu.Unlock()
	if had {
		return s.Refresh(ctx)
	}
	return nil
}

// ResolveProbeAddr fills an advertised ":port" (or "0.0.0.0:port", "[::]:port")
// with the IP the agent's connection comes from (remote). An advertised
// loopback address is refused unless the agent itself connects over
// loopback (everything on one machine): peers elsewhere would probe
// themselves and record near-zero RTTs.
func ResolveProbeAddr(advertised, remote string) (string, error) {
	host, port, err := net.SplitHostPort(advertised)
	if err != nil {
		return "", fmt.Errorf("probeAddr %q: %w", advertised, err)
	}
	rh, _, rerr := net.SplitHostPort(remote)
	rip, perr := netip.ParseAddr(rh)
	if host != "" {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return "", fmt.Errorf("probeAddr %q: the host must be an IP address", advertised)
		}
		if !ip.IsUnspecified() {
			if ip.IsLoopback() && (rerr != nil || perr != nil || !rip.IsLoopback()) {
				return "", fmt.Errorf("probeAddr %q is a loopback address, which peers cannot reach", advertised)
			}
			if ip.IsMulticast() || ip.IsLinkLocalUnicast() {
				return "", fmt.Errorf("probeAddr %q is not an address peers can probe", advertised)
			}
			return advertised, nil
		}
	}
	if rerr != nil {
		return "", fmt.Errorf("the agent's remote address %q: %w", remote, rerr)
	}
	if perr != nil {
		return "", fmt.Errorf("the agent's remote address %q is not one IP (give the agent --stamp-listen ip:port)", remote)
	}
	return net.JoinHostPort(rip.Unmap().String(), port), nil
}

// Plan is the probe plan of one host now.
func (s *Service) Plan(hostID string) agentproto.ProbePlan {
	s.mu.Lock()
	prep, epoch := s.prep, s.epoch
	s.mu.Unlock()
	plan := agentproto.ProbePlan{Targets: []agentproto.ProbeTarget{},
		IntervalMs: s.cfg.Interval.Milliseconds(), WindowMs: s.cfg.Window.Milliseconds()}
	if prep == nil {
		return plan
	}
	for _, t := range prep.Plan(hostID, epoch) {
		if t.Addr == "" {
			continue
		}
		plan.Targets = append(plan.Targets, agentproto.ProbeTarget{ID: t.ID, Kind: t.Kind, Addr: t.Addr})
		if len(plan.Targets) == agentproto.MaxProbeTargets {
			break
		}
	}
	return plan
}

// Report takes one host's windows into the map. A window about a target
// the map does not know (a host or cell deleted meanwhile) is dropped.
//
// Windows are stamped with mecorch's clock on arrival, keeping their span:
// freshness and ordering must not depend on each agent's clock, which may
// be off or stepped.
func (s *Service) Report(hostID string, results []agentproto.RTTResult) {
	now := s.clock()
	for _, r := range results {
		st := r.Stats
		span := st.To.Sub(st.From)
		st.To, st.From = now, now.Add(-span)
		if err := s.m.Report(hostID, r.Kind, r.Target, st); err != nil {
			s.log.Debug("RTT window dropped", "host", hostID, "target", r.Target, "err", err)
		}
	}
}

// Measure asks for direct measurements of cells from a site: the next
// plan of one of the site's hosts puts them first for a while. Placement
// calls it when a winner rests on estimates.
func (s *Service) Measure(siteID string, cells []string) {
	s.mu.Lock()
	inv := s.inv
	s.mu.Unlock()
	until := s.clock().Add(s.cfg.UrgentFor)
	n := 0
	for _, c := range inv.Cells {
		if slices.Contains(cells, c.ID) {
			s.plan.Urgent(siteID, probeplan.Target{ID: c.ID, Kind: agentproto.TargetCell, Addr: c.Addr}, until)
			n++
		}
	}
	if n > 0 {
		s.log.Info("measuring directly the latency a placement rests on", "site", siteID, "cells", cells)
		s.changed()
	}
}

func (s *Service) changed() {
	s.mu.Lock()
	fn := s.notify
	s.mu.Unlock()
	if fn != nil {
		fn()
	}
}
