package mec

import "time"

// EventType names a change the ETSI APIs notify subscribers of.
type EventType string

// Events published after a change has been committed.
const (
	EventPkgOnboarded EventType = "AppPackageOnBoarded"
	EventPkgEnabled   EventType = "AppPackageEnabled"
	EventPkgDisabled  EventType = "AppPackageDisabled"
	EventPkgDeleted   EventType = "AppPackageDeleted"
	// EventInstanceState: an instance was created, changed state or was
	// deleted (Deleted set).
	EventInstanceState EventType = "AppInstanceStateChange"
	// EventOpOccState: an LCM operation occurrence changed state.
	EventOpOccState EventType = "AppLcmOpOccStateChange"
	// EventAlarm: an alarm was raised or changed (Alarm set); the names
	// are those of the ETSI NFV fault management notifications.
	EventAlarm EventType = "AlarmNotification"
	// EventAlarmCleared: an alarm was cleared (Alarm set).
	EventAlarmCleared EventType = "AlarmClearedNotification"
)

// Event is one committed change.
type Event struct {
	Type     EventType
	At       time.Time
	Package  *AppPackage
	Instance *AppInstance
	OpOcc    *LcmOpOcc
	// Instance accompanies OpOcc events too, as it stood after the change.
	Created bool // the resource was created by this change
	Deleted bool // the resource was deleted by this change
	// PrevHostID is set when the change moved the instance (and its
	// operation) off another host: the host whose desired state lost it.
	// Instance.HostID and OpOcc.HostID name the new one.
	PrevHostID string
	// Alarm is the alarm of EventAlarm and EventAlarmCleared.
	Alarm *Alarm
}

// EventSink receives events after commit. Publish must not block: the API
// layer queues notification deliveries behind it.
type EventSink interface {
	Publish(Event)
}

// Clock tells the time; injected so that expiry and timeouts are tested
// without sleeping.
type Clock func() time.Time

// Error makes a stored problem usable as a Go error, so the domain can
// refuse a request with the status and field paths the API must return.
func (p *Problem) Error() string { return p.Detail }

// Errorf returns a Problem with status and a formatted detail.
func Errorf(status int, params []InvalidParam, format string, args ...any) *Problem {
	return &Problem{Status: status, Detail: sprintf(format, args...), InvalidParams: params}
}
