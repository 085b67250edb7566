// Package health watches the edge hosts' agents and keeps mecorch's alarms.
// The Monitor marks a host NotReady when its heartbeats stop, raises an
// alarm, and moves the host's instances to other hosts that fit (with flap
// guards on both the hosts and the instances); when the host comes back the
// alarm clears. Alarms is the store of alarms, with the fields of the ETSI
// NFV fault management Alarm (SOL 002/003), served by the operator API
// under /api/v1/alarms. See docs/alarms.md.
package health

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// Alarm is the stored alarm; its type lives in mec so that events can carry
// it.
type Alarm = mec.Alarm

// Severity is an alarm's perceivedSeverity.
type Severity = mec.AlarmSeverity

// Perceived severities (ETSI NFV SOL 002/003, ITU-T X.733).
const (
	SeverityCritical      Severity = "CRITICAL"
	SeverityMajor         Severity = "MAJOR"
	SeverityMinor         Severity = "MINOR"
	SeverityWarning       Severity = "WARNING"
	SeverityIndeterminate Severity = "INDETERMINATE"
	SeverityCleared       Severity = "CLEARED"
)

// EventType is an alarm's eventType.
type EventType = mec.AlarmEventType

// Event types (ETSI NFV SOL 002/003, ITU-T X.733).
const (
	EventCommunications  EventType = "COMMUNICATIONS_ALARM"
	EventProcessingError EventType = "PROCESSING_ERROR_ALARM"
	EventEnvironmental   EventType = "ENVIRONMENTAL_ALARM"
	EventQoS             EventType = "QOS_ALARM"
	EventEquipment       EventType = "EQUIPMENT_ALARM"
)

// AckState is an alarm's ackState.
type AckState = mec.AlarmAckState

// Acknowledgement states.
const (
	Unacknowledged AckState = "UNACKNOWLEDGED"
	Acknowledged   AckState = "ACKNOWLEDGED"
)

// Probable causes mecorch raises alarms for.
const (
	// CauseHostUnreachable: a host's agent stopped heartbeating; the
	// managed object is the host.
	CauseHostUnreachable = "hostUnreachable"
	// CauseNoCapacityForReplacement: an instance of a failed host could
	// not be placed anywhere else; the managed object is the instance.
	CauseNoCapacityForReplacement = "noCapacityForReplacement"
	// CauseTransportPathDown: one path of a host's multi-homed SCTP
	// association went down; the managed object is the path.
	CauseTransportPathDown = "transportPathDown"
)

// AlarmSpec is what raising an alarm says about the fault.
type AlarmSpec struct {
	ManagedObjectID         string
	ProbableCause           string
	PerceivedSeverity       Severity
	EventType               EventType
	FaultType               string
	FaultDetails            []string
	RootCauseFaultyResource *mec.FaultyResourceInfo
	IsRootCause             bool
	CorrelatedAlarmIDs      []string
}

// State selects alarms by whether they are cleared.
type State string

// Alarm states for List.
const (
	StateActive  State = "active"
	StateCleared State = "cleared"
	StateAll     State = "all"
)

// Filter selects alarms for List; zero fields select everything, and a
// zero State means active.
type Filter struct {
	State           State
	ManagedObjectID string
	ProbableCause   string
}

// Alarms raises, clears, acknowledges and lists alarms. It holds no state
// of its own: any number of goroutines may use one.
type Alarms struct {
	store mec.Store
	sink  mec.EventSink
	clock mec.Clock
	log   *slog.Logger
}

// NewAlarms returns the alarms kept in store. Raising, changing and
// clearing an alarm publish an mec.EventAlarm or mec.EventAlarmCleared to
// sink (which may be nil).
func NewAlarms(store mec.Store, sink mec.EventSink, clock mec.Clock, log *slog.Logger) *Alarms {
	return &Alarms{store: store, sink: sink, clock: clock, log: log}
}

// now is the clock's time in UTC without a monotonic reading, so that what
// Raise returns equals what a later Get decodes.
func (a *Alarms) now() time.Time { return a.clock().UTC().Round(0) }

// An active alarm is stored under activeKey(object, cause) and its ID is
// that key, a dash and a random suffix; once cleared it is stored under its
// ID. So raising and clearing read one document, and a new alarm after a
// cleared one gets a new ID, as ETSI wants.
const keyLen = 24

func activeKey(object, cause string) string {
	sum := sha256.Sum256([]byte(object + "\x00" + cause))
	return hex.EncodeToString(sum[:])[:keyLen]
}

func newAlarmID(key string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return key + "-" + hex.EncodeToString(b[:])
}

// Raise raises the alarm of spec's managed object and probable cause, or,
// when one is active already, updates it: a changed severity, event type,
// fault type or details sets alarmChangedTime and eventTime; the same again
// changes nothing (no write, no event).
func (a *Alarms) Raise(ctx context.Context, spec AlarmSpec) (Alarm, error) {
	if err := checkSpec(spec); err != nil {
		return Alarm{}, err
	}
	key := activeKey(spec.ManagedObjectID, spec.ProbableCause)
	// Most raises repeat an active alarm: find out without a write
	// transaction, which the embedded store serialises.
	var cur Alarm
	found := false
	err := a.store.View(ctx, func(tx mec.Tx) error {
		var err error
		cur, _, err = mec.Load[Alarm](tx, mec.KindAlarm, key)
		found = err == nil
		if errors.Is(err, mec.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return Alarm{}, fmt.Errorf("raise %s on %s: %w", spec.ProbableCause, spec.ManagedObjectID, err)
	}
	if found && same(cur, spec) {
		return cur, nil
	}
	var out Alarm
	var ev *mec.Event
	err = a.store.Update(ctx, func(tx mec.Tx) error {
		ev = nil
		now := a.now()
		cur, v, err := mec.LoadOr(tx, mec.KindAlarm, key, Alarm{})
		if err != nil {
			return err
		}
		if v != mec.MustNotExist && same(cur, spec) {
			out = cur
			return nil
		}
		if v == mec.MustNotExist {
			cur = Alarm{ID: newAlarmID(key), ManagedObjectID: spec.ManagedObjectID, ProbableCause: spec.ProbableCause,
				AlarmRaisedTime: now, AckState: Unacknowledged}
		} else {
			cur.AlarmChangedTime = &now
		}
		cur.PerceivedSeverity, cur.EventType, cur.FaultType = spec.PerceivedSeverity, spec.EventType, spec.FaultType
		cur.FaultDetails, cur.RootCauseFaultyResource = slices.Clone(spec.FaultDetails), spec.RootCauseFaultyResource
		cur.IsRootCause, cur.CorrelatedAlarmIDs = spec.IsRootCause, slices.Clone(spec.CorrelatedAlarmIDs)
		cur.EventTime = now
		if _, err := mec.Save(tx, mec.KindAlarm, key, cur, v); err != nil {
			return err
		}
		out = cur
		ev = &mec.Event{Type: mec.EventAlarm, At: now, Alarm: &out, Created: v == mec.MustNotExist}
		return nil
	})
	if err != nil {
		return Alarm{}, fmt.Errorf("raise %s on %s: %w", spec.ProbableCause, spec.ManagedObjectID, err)
	}
	if ev != nil {
		if ev.Created {
			a.log.Warn("alarm raised", "alarm", out.ID, "object", out.ManagedObjectID, "cause", out.ProbableCause,
				"severity", out.PerceivedSeverity, "details", out.FaultDetails)
		}
		a.publish(*ev)
	}
	return out, nil
}

// same reports whether raising spec again would change nothing in a.
func same(a Alarm, spec AlarmSpec) bool {
	return a.PerceivedSeverity == spec.PerceivedSeverity && a.EventType == spec.EventType && a.FaultType == spec.FaultType &&
		slices.Equal(a.FaultDetails, spec.FaultDetails) && a.IsRootCause == spec.IsRootCause &&
		slices.Equal(a.CorrelatedAlarmIDs, spec.CorrelatedAlarmIDs) &&
		sameResource(a.RootCauseFaultyResource, spec.RootCauseFaultyResource)
}

func sameResource(a, b *mec.FaultyResourceInfo) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func checkSpec(spec AlarmSpec) error {
	var bad []string
	if spec.ManagedObjectID == "" {
		bad = append(bad, "managed object ID is empty")
	}
	if spec.ProbableCause == "" {
		bad = append(bad, "probable cause is empty")
	}
	switch spec.PerceivedSeverity {
	case SeverityCritical, SeverityMajor, SeverityMinor, SeverityWarning, SeverityIndeterminate:
	default:
		bad = append(bad, fmt.Sprintf("severity %q cannot be raised (CLEARED is Clear's)", spec.PerceivedSeverity))
	}
	switch spec.EventType {
	case EventCommunications, EventProcessingError, EventEnvironmental, EventQoS, EventEquipment:
	default:
		bad = append(bad, fmt.Sprintf("unknown event type %q", spec.EventType))
	}
	if len(bad) > 0 {
		return fmt.Errorf("raise alarm: %v", bad)
	}
	return nil
}

// Clear clears the active alarm of the managed object and probable cause:
// its severity becomes CLEARED, with alarmClearedTime. Clearing what is not
// raised is not an error and writes nothing.
func (a *Alarms) Clear(ctx context.Context, managedObjectID, probableCause string) error {
	key := activeKey(managedObjectID, probableCause)
	active := false
	err := a.store.View(ctx, func(tx mec.Tx) error {
		_, err := tx.Get(mec.KindAlarm, key)
		active = err == nil
		if errors.Is(err, mec.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil || !active {
		return wrapf(err, "clear %s on %s", probableCause, managedObjectID)
	}
	var cleared *Alarm
	err = a.store.Update(ctx, func(tx mec.Tx) error {
		cleared = nil
		cur, v, err := mec.Load[Alarm](tx, mec.KindAlarm, key)
		if errors.Is(err, mec.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		now := a.now()
		cur.PerceivedSeverity = SeverityCleared
		cur.AlarmClearedTime, cur.AlarmChangedTime, cur.EventTime = &now, &now, now
		if err := tx.Delete(mec.KindAlarm, key, v); err != nil {
			return err
		}
		if _, err := mec.Save(tx, mec.KindAlarm, cur.ID, cur, mec.MustNotExist); err != nil {
			return err
		}
		cleared = &cur
		return nil
	})
	if err != nil {
		return wrapf(err, "clear %s on %s", probableCause, managedObjectID)
	}
	if cleared != nil {
		a.log.Info("alarm cleared", "alarm", cleared.ID, "object", managedObjectID, "cause", probableCause)
		a.publish(mec.Event{Type: mec.EventAlarmCleared, At: *cleared.AlarmClearedTime, Alarm: cleared})
	}
	return nil
}

// Ack acknowledges an alarm, active or cleared. Acknowledging it twice is
// a 409, as ETSI has it.
func (a *Alarms) Ack(ctx context.Context, id string) (Alarm, error) {
	var out Alarm
	err := a.store.Update(ctx, func(tx mec.Tx) error {
		cur, key, v, err := locate(tx, id)
		if err != nil {
			return err
		}
		if cur.AckState == Acknowledged {
			return mec.Errorf(http.StatusConflict, []mec.InvalidParam{{Name: "ackState", Reason: "the alarm is ACKNOWLEDGED already"}},
				"alarm %s is ACKNOWLEDGED already", id)
		}
		now := a.now()
		cur.AckState, cur.AlarmAcknowledgedTime = Acknowledged, &now
		if _, err := mec.Save(tx, mec.KindAlarm, key, cur, v); err != nil {
			return err
		}
		out = cur
		return nil
	})
	return out, err
}

// Get returns one alarm, active or cleared.
func (a *Alarms) Get(ctx context.Context, id string) (Alarm, error) {
	var out Alarm
	err := a.store.View(ctx, func(tx mec.Tx) error {
		var err error
		out, _, _, err = locate(tx, id)
		return err
	})
	return out, err
}

// List returns the alarms f selects, oldest raised first.
func (a *Alarms) List(ctx context.Context, f Filter) ([]Alarm, error) {
	var all []Alarm
	err := a.store.View(ctx, func(tx mec.Tx) error {
		var err error
		all, err = mec.LoadAll[Alarm](tx, mec.KindAlarm)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list alarms: %w", err)
	}
	out := all[:0]
	for _, al := range all {
		if f.matches(al) {
			out = append(out, al)
		}
	}
	sortAlarms(out)
	return out, nil
}

func (f Filter) matches(al Alarm) bool {
	cleared := al.PerceivedSeverity == SeverityCleared
	switch f.State {
	case StateAll:
	case StateCleared:
		if !cleared {
			return false
		}
	default:
		if cleared {
			return false
		}
	}
	return (f.ManagedObjectID == "" || al.ManagedObjectID == f.ManagedObjectID) &&
		(f.ProbableCause == "" || al.ProbableCause == f.ProbableCause)
}

func sortAlarms(as []Alarm) {
	sort.Slice(as, func(i, j int) bool {
		if !as[i].AlarmRaisedTime.Equal(as[j].AlarmRaisedTime) {
			return as[i].AlarmRaisedTime.Before(as[j].AlarmRaisedTime)
		}
		return as[i].ID < as[j].ID
	})
}

// Prune deletes the alarms cleared before before and returns how many.
func (a *Alarms) Prune(ctx context.Context, before time.Time) (int, error) {
	n := 0
	err := a.store.Update(ctx, func(tx mec.Tx) error {
		n = 0
		recs, err := tx.List(mec.KindAlarm)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if len(rec.ID) == keyLen {
				continue // active
			}
			var al Alarm
			if err := json.Unmarshal(rec.Doc, &al); err != nil {
				return fmt.Errorf("decode alarm %q: %w", rec.ID, err)
			}
			if al.AlarmClearedTime != nil && al.AlarmClearedTime.Before(before) {
				if err := tx.Delete(mec.KindAlarm, rec.ID, rec.Version); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, wrapf(err, "prune cleared alarms")
}

// locate finds an alarm by ID: under its active key while it is active,
// under its ID once cleared.
func locate(tx mec.Tx, id string) (Alarm, string, int64, error) {
	if len(id) > keyLen && id[keyLen] == '-' {
		key := id[:keyLen]
		al, v, err := mec.Load[Alarm](tx, mec.KindAlarm, key)
		if err == nil && al.ID == id {
			return al, key, v, nil
		}
		if err != nil && !errors.Is(err, mec.ErrNotFound) {
			return Alarm{}, "", 0, err
		}
	}
	if id != "" && len(id) != keyLen {
		al, v, err := mec.Load[Alarm](tx, mec.KindAlarm, id)
		if err == nil {
			return al, id, v, nil
		}
		if !errors.Is(err, mec.ErrNotFound) && !errors.Is(err, mec.ErrInvalid) {
			return Alarm{}, "", 0, err
		}
	}
	return Alarm{}, "", 0, &notFound{mec.Errorf(http.StatusNotFound, nil, "alarm %q not found", id)}
}

// notFound is a 404 problem that also is mec.ErrNotFound.
type notFound struct{ p *mec.Problem }

func (e *notFound) Error() string   { return e.p.Detail }
func (e *notFound) Unwrap() []error { return []error{e.p, mec.ErrNotFound} }

func (a *Alarms) publish(ev mec.Event) {
	if a.sink != nil {
		a.sink.Publish(ev)
	}
}

func wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
