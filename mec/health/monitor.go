package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/lifecycle"
)

// Config tunes the Monitor. Zero fields take the defaults (WithDefaults).
type Config struct {
	// HeartbeatInterval is how often agents heartbeat (default 2s).
	HeartbeatInterval time.Duration
	// MissedHeartbeats is how many intervals a host may stay silent
	// before it is NotReady (default 3).
	MissedHeartbeats int
	// ReplaceAfter is how long a host stays NotReady before its instances
	// are moved (default 0: at once).
	ReplaceAfter time.Duration
	// MoveCooldown keeps an instance that was moved where it is for this
	// long, even if its new host fails too (default 60s; negative: none).
	MoveCooldown time.Duration
	// ReadyHold keeps a host back from NotReady out of new placements
	// until it has been Ready this long (default 30s; negative: none). The
	// placement engine's StateFilter must be given the same value.
	ReadyHold time.Duration
	// CheckInterval is how often Run checks (default HeartbeatInterval/2).
	CheckInterval time.Duration
	// ClearedRetention is how long cleared alarms are kept (default 7
	// days; negative: for ever).
	ClearedRetention time.Duration
}

// Defaults.
const (
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultMissedHeartbeats  = 3
	DefaultMoveCooldown      = time.Minute
	DefaultReadyHold         = 30 * time.Second
	DefaultClearedRetention  = 7 * 24 * time.Hour
)

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.MissedHeartbeats == 0 {
		c.MissedHeartbeats = DefaultMissedHeartbeats
	}
	if c.MoveCooldown == 0 {
		c.MoveCooldown = DefaultMoveCooldown
	}
	if c.ReadyHold == 0 {
		c.ReadyHold = DefaultReadyHold
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = c.HeartbeatInterval / 2
	}
	if c.ClearedRetention == 0 {
		c.ClearedRetention = DefaultClearedRetention
	}
	return c
}

// PlacementHold is the hold to give the placement engine's StateFilter.
func (c Config) PlacementHold() time.Duration { return max(c.WithDefaults().ReadyHold, 0) }

func (c Config) validate() error {
	var bad []error
	if c.HeartbeatInterval < 0 {
		bad = append(bad, fmt.Errorf("heartbeat interval %v is negative", c.HeartbeatInterval))
	}
	if c.MissedHeartbeats < 0 {
		bad = append(bad, fmt.Errorf("missed heartbeats %d is negative", c.MissedHeartbeats))
	}
	if c.ReplaceAfter < 0 {
		bad = append(bad, fmt.Errorf("replace-after %v is negative", c.ReplaceAfter))
	}
	if c.CheckInterval <= 0 {
		bad = append(bad, fmt.Errorf("check interval %v is not positive", c.CheckInterval))
	}
	return errors.Join(bad...)
}

// Monitor watches the hosts' heartbeats, marks silent hosts NotReady, moves
// their instances elsewhere and keeps the alarms that say so.
type Monitor struct {
	cfg    Config
	store  mec.Store
	lc     *lifecycle.Service
	alarms *Alarms
	clock  mec.Clock
	log    *slog.Logger
	// start is when this monitor began watching. Silence is counted from
	// the later of a host's last heartbeat and start: while mecorch was
	// down no agent could reach it, so after a restart every stored
	// heartbeat looks old, and the fleet must get its intervals again.
	start time.Time
}

// New returns a monitor; cfg's zero fields take the defaults.
func New(cfg Config, store mec.Store, lc *lifecycle.Service, alarms *Alarms, clock mec.Clock, log *slog.Logger) (*Monitor, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("health monitor: %w", err)
	}
	if store == nil || lc == nil || alarms == nil || clock == nil || log == nil {
		return nil, errors.New("health monitor: store, lifecycle, alarms, clock and logger are all required")
	}
	return &Monitor{cfg: cfg, store: store, lc: lc, alarms: alarms, clock: clock, log: log, start: clock()}, nil
}

// Config returns the monitor's configuration, defaults applied.
func (m *Monitor) Config() Config { return m.cfg }

// Run checks every CheckInterval until ctx ends. A failed check is logged
// and the next one tries again.
func (m *Monitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := m.Check(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("host health check", "err", err)
			}
		}
	}
}

// limit is how long a host may stay silent.
func (m *Monitor) limit() time.Duration {
	return time.Duration(m.cfg.MissedHeartbeats) * m.cfg.HeartbeatInterval
}

// since is when a host's silence began, as far as this monitor can tell.
func (m *Monitor) since(beat time.Time) time.Time {
	if beat.Before(m.start) {
		return m.start
	}
	return beat
}

type alarmKey struct{ object, cause string }

// scan is what one check reads, in one read transaction.
type scan struct {
	hosts     []mec.Host
	beats     map[string]time.Time
	active    map[alarmKey]Alarm
	oldest    *time.Time                 // the earliest clearing of a kept cleared alarm
	instances map[string]mec.AppInstance // those of active noCapacityForReplacement alarms
	indexed   map[string]int             // instances on each silent host
}

func (m *Monitor) scan(ctx context.Context, now time.Time) (scan, error) {
	var sc scan
	err := m.store.View(ctx, func(tx mec.Tx) error {
		sc = scan{beats: map[string]time.Time{}, active: map[alarmKey]Alarm{},
			instances: map[string]mec.AppInstance{}, indexed: map[string]int{}}
		var err error
		if sc.hosts, err = mec.LoadAll[mec.Host](tx, mec.KindHost); err != nil {
			return err
		}
		beats, err := mec.LoadAll[mec.HostLiveness](tx, mec.KindHostLiveness)
		if err != nil {
			return err
		}
		for _, b := range beats {
			sc.beats[b.HostID] = b.LastHeartbeat
		}
		recs, err := tx.List(mec.KindAlarm)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			var al Alarm
			if err := json.Unmarshal(rec.Doc, &al); err != nil {
				return fmt.Errorf("decode alarm %q: %w", rec.ID, err)
			}
			if al.PerceivedSeverity == SeverityCleared {
				if c := al.AlarmClearedTime; c != nil && (sc.oldest == nil || c.Before(*sc.oldest)) {
					sc.oldest = c
				}
				continue
			}
			sc.active[alarmKey{al.ManagedObjectID, al.ProbableCause}] = al
			if al.ProbableCause != CauseNoCapacityForReplacement {
				continue
			}
			in, _, err := mec.Load[mec.AppInstance](tx, mec.KindAppInstance, al.ManagedObjectID)
			if err == nil {
				sc.instances[in.ID] = in
			} else if !errors.Is(err, mec.ErrNotFound) {
				return err
			}
		}
		for _, h := range sc.hosts {
			beat, ok := sc.beats[h.ID]
			if !ok || now.Sub(m.since(beat)) <= m.limit() {
				continue
			}
			idx, _, err := mec.LoadOr(tx, mec.KindHostInstances, h.ID, lifecycle.HostInstances{})
			if err != nil {
				return err
			}
			sc.indexed[h.ID] = len(idx.Instances)
		}
		return nil
	})
	return sc, err
}

// Check makes one pass over the hosts:
//   - a Ready host silent for longer than MissedHeartbeats intervals
//     becomes NotReady, with a CRITICAL hostUnreachable alarm;
//   - a silent host (NotReady, or cordoned Draining) that has been down for
//     ReplaceAfter is evacuated: its instances move to other hosts that
//     fit; each that fits nowhere gets a MAJOR noCapacityForReplacement
//     alarm and is tried again on the next pass, as are instances held by
//     MoveCooldown;
//   - a host heard from again (Ready) has its alarm cleared, and an
//     instance no longer waiting for a new host has its alarm cleared;
//   - cleared alarms older than ClearedRetention are deleted.
func (m *Monitor) Check(ctx context.Context) error {
	now := m.clock()
	sc, err := m.scan(ctx, now)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	var errs []error
	down := map[string]bool{}
	known := map[string]bool{}
	for _, h := range sc.hosts {
		known[h.ID] = true
		beat, reported := sc.beats[h.ID]
		if !reported {
			continue // never heard of: Unknown, nothing to lose
		}
		hostAlarm, alarmed := sc.active[alarmKey{h.ID, CauseHostUnreachable}]
		since := m.since(beat)
		if now.Sub(since) <= m.limit() {
			if alarmed && h.State != mec.HostNotReady {
				errs = append(errs, m.alarms.Clear(ctx, h.ID, CauseHostUnreachable))
			}
			continue
		}
		if h.State == mec.HostReady {
			var changed bool
			if h, changed, err = m.markNotReady(ctx, h.ID, now); err != nil {
				errs = append(errs, err)
				continue
			}
			if changed {
				m.log.Warn("host NotReady: heartbeats lost", "host", h.ID, "lastHeartbeat", beat,
					"missed", missed(now, beat, m.cfg.HeartbeatInterval))
			}
		}
		if h.State != mec.HostNotReady && h.State != mec.HostDraining {
			continue
		}
		down[h.ID] = true
		if !alarmed {
			if hostAlarm, err = m.alarms.Raise(ctx, m.hostAlarm(h, beat, now)); err != nil {
				errs = append(errs, err)
			}
		}
		downSince := since.Add(m.limit())
		if h.State == mec.HostNotReady && h.LastNotReady != nil {
			downSince = m.since(*h.LastNotReady)
		}
		if now.Sub(downSince) < m.cfg.ReplaceAfter || sc.indexed[h.ID] == 0 {
			continue
		}
		errs = append(errs, m.evacuate(ctx, h, hostAlarm))
	}
	for k := range sc.active {
		switch k.cause {
		case CauseHostUnreachable:
			if !known[k.object] { // the host was deleted
				errs = append(errs, m.alarms.Clear(ctx, k.object, k.cause))
			}
		case CauseNoCapacityForReplacement:
			// Cleared when the instance no longer waits for a new host:
			// gone, moved, terminated, or its host is back.
			if in, ok := sc.instances[k.object]; !ok || !down[in.HostID] {
				errs = append(errs, m.alarms.Clear(ctx, k.object, k.cause))
			}
		}
	}
	if r := m.cfg.ClearedRetention; r > 0 && sc.oldest != nil && now.Sub(*sc.oldest) > r {
		if _, err := m.alarms.Prune(ctx, now.Add(-r)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// markNotReady writes the host NotReady unless, seen again in the write
// transaction, it is no longer Ready or has heartbeated meanwhile.
func (m *Monitor) markNotReady(ctx context.Context, hostID string, now time.Time) (mec.Host, bool, error) {
	var h mec.Host
	changed := false
	err := m.store.Update(ctx, func(tx mec.Tx) error {
		changed = false
		var hv int64
		var err error
		if h, hv, err = mec.Load[mec.Host](tx, mec.KindHost, hostID); err != nil {
			return err
		}
		if h.State != mec.HostReady {
			return nil
		}
		l, _, err := mec.Load[mec.HostLiveness](tx, mec.KindHostLiveness, hostID)
		if err != nil {
			return err
		}
		if now.Sub(m.since(l.LastHeartbeat)) <= m.limit() {
			return nil
		}
		t := now.UTC().Round(0)
		h.State, h.LastNotReady = mec.HostNotReady, &t
		_, err = mec.Save(tx, mec.KindHost, h.ID, h, hv)
		changed = err == nil
		return err
	})
	if err != nil {
		return h, false, fmt.Errorf("mark host %s NotReady: %w", hostID, err)
	}
	return h, changed, nil
}

func (m *Monitor) hostAlarm(h mec.Host, beat, now time.Time) AlarmSpec {
	return AlarmSpec{
		ManagedObjectID: h.ID, ProbableCause: CauseHostUnreachable,
		PerceivedSeverity: SeverityCritical, EventType: EventCommunications,
		FaultType: "host heartbeat lost", IsRootCause: true,
		RootCauseFaultyResource: &mec.FaultyResourceInfo{FaultyResource: mec.ResourceHandle{ResourceID: h.ID}, FaultyResourceType: "COMPUTE"},
		FaultDetails: []string{
			"lastHeartbeat: " + beat.UTC().Format(time.RFC3339Nano),
			"missedHeartbeats: " + strconv.FormatInt(missed(now, beat, m.cfg.HeartbeatInterval), 10),
			"heartbeatInterval: " + m.cfg.HeartbeatInterval.String(),
			"hostState: " + string(h.State),
		},
	}
}

func missed(now, beat time.Time, interval time.Duration) int64 {
	if interval <= 0 {
		return 0
	}
	return int64(now.Sub(beat) / interval)
}

// evacuate moves what it can off h and keeps the instances' alarms in step.
func (m *Monitor) evacuate(ctx context.Context, h mec.Host, hostAlarm Alarm) error {
	res, err := m.lc.Evacuate(ctx, h.ID, lifecycle.EvacuateOptions{MoveCooldown: max(m.cfg.MoveCooldown, 0), StopIfReady: true})
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, mv := range res.Moved {
		errs = append(errs, m.alarms.Clear(ctx, mv.InstanceID, CauseNoCapacityForReplacement))
	}
	for _, id := range res.Terminated {
		errs = append(errs, m.alarms.Clear(ctx, id, CauseNoCapacityForReplacement))
	}
	for _, st := range res.Stuck {
		spec := AlarmSpec{
			ManagedObjectID: st.InstanceID, ProbableCause: CauseNoCapacityForReplacement,
			PerceivedSeverity: SeverityMajor, EventType: EventProcessingError,
			FaultType:               "no host fits the instance of a failed host",
			RootCauseFaultyResource: &mec.FaultyResourceInfo{FaultyResource: mec.ResourceHandle{ResourceID: h.ID}, FaultyResourceType: "COMPUTE"},
			FaultDetails:            []string{"host: " + h.ID + " (" + string(h.State) + ")", "placement: " + st.Reason},
		}
		if hostAlarm.ID != "" {
			spec.CorrelatedAlarmIDs = []string{hostAlarm.ID}
		}
		if _, err := m.alarms.Raise(ctx, spec); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
