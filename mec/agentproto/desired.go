package agentproto

// States a DesiredInstance may ask for: Running and Stopped are spelled as
// the observed states they ask for; Absent means the instance is being
// terminated and must be stopped (within StopGraceSeconds) and removed.
const (
	DesiredRunning     = ObservedRunning
	DesiredStopped     = ObservedStopped
	DesiredAbsentState = "Absent"
)
