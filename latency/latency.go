// Package latency measures round-trip times and keeps what they say: the
// values shared by the STAMP sender and reflector (latency/stamp), the
// sliding-window estimator (Window), the RTT map that placement reads
// (latency/rttmap), network coordinates (latency/vivaldi), probe plans
// (latency/probeplan), and the UE-session assigner with its benchmark
// topology (latency/assign, latency/topogen).
//
// It knows nothing of apps or ETSI: targets are IDs and addresses, sites and
// cells are strings.
package latency

import "time"

// Source says where a sample's timestamps came from, best first. A sample is
// only as good as its worst stamp: a kernel receive stamp paired with a
// user-space send stamp is a user-space sample.
type Source string

const (
	// SourceHardware: stamped by the NIC (SO_TIMESTAMPING raw hardware).
	SourceHardware Source = "hardware"
	// SourceKernel: stamped by the kernel's network stack
	// (SO_TIMESTAMPING software stamps), unaffected by how busy the
	// process is.
	SourceKernel Source = "kernel"
	// SourceUser: read from the clock in user space around send and
	// receive; a busy machine inflates it.
	SourceUser Source = "user"
)

// Rank orders sources: higher is better; an unknown source ranks lowest.
func (s Source) Rank() int {
	switch s {
	case SourceHardware:
		return 3
	case SourceKernel:
		return 2
	case SourceUser:
		return 1
	}
	return 0
}

// Worse returns the worse of two sources.
func Worse(a, b Source) Source {
	if a.Rank() <= b.Rank() {
		return a
	}
	return b
}

// Sample is one probe's outcome towards a target.
type Sample struct {
	// Target is the probed target's ID (as given in its plan).
	Target string
	// Seq is the sender's sequence number of the probe.
	Seq uint32
	// SentAt is when the probe left (by its send stamp).
	SentAt time.Time
	// RTT is the round trip with the reflector's own residence time
	// (its transmit stamp minus its receive stamp) taken out. Zero when
	// Lost.
	RTT time.Duration
	// Lost: no answer came before the sender's timeout.
	Lost bool
	// Source is the worst of the four timestamps' sources the sender could
	// tell (its own two; the reflector's are taken as they come).
	Source Source
}

// Stats sums up one target's samples over a window. Durations marshal as
// integer nanoseconds.
type Stats struct {
	// Sent counts the probes whose answer was due in the window; Lost
	// those that got none. Received = Sent - Lost.
	Sent int `json:"sent"`
	Lost int `json:"lost"`
	// Loss is Lost/Sent (0 when nothing was sent).
	Loss float64 `json:"loss"`
	// Min, P50, P95 and P99 are of the RTTs received in the window;
	// all zero when nothing was received.
	Min time.Duration `json:"minNs"`
	P50 time.Duration `json:"p50Ns"`
	P95 time.Duration `json:"p95Ns"`
	P99 time.Duration `json:"p99Ns"`
	// Jitter is the RFC 3550 (A.8) interarrival jitter estimate over the
	// received RTTs, in order of sending: J += (|D| - J)/16, with D the
	// difference between consecutive RTTs.
	Jitter time.Duration `json:"jitterNs"`
	// Source is the worst timestamp source among the window's samples.
	Source Source `json:"source,omitempty"`
	// From and To bound the window.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Received is the number of answered probes.
func (s Stats) Received() int { return s.Sent - s.Lost }
