// Package agentproto is the message stream between mecorch and the agent on
// each edge server: what the messages are, how they are framed and which of
// them each side may send. Transports (websocket, SCTP) carry the frames;
// they live in etsi-api/agentwire. docs/agent-protocol.md is the reference.
package agentproto

import (
	"encoding/json"
	"time"

	"github.com/mecorch/mecorch/latency"
	"github.com/mecorch/mecorch/mec"
)

// Version is the protocol version this build speaks. A frame of another
// version is refused and the connection closed.
const Version = 1

// MaxFrameBytes bounds one frame; a larger one is refused.
const MaxFrameBytes = 1 << 20

// Message types. The comment says who sends it.
const (
	TypeHello       = "hello"       // agent → mecorch, first frame
	TypeWelcome     = "welcome"     // mecorch → agent, answer to hello
	TypeDesired     = "desired"     // mecorch → agent, the host's desired state
	TypeStatus      = "status"      // agent → mecorch, the generation reached and instance states
	TypeHeartbeat   = "heartbeat"   // agent → mecorch
	TypeLogsRequest = "logsRequest" // mecorch → agent
	TypeLogs        = "logs"        // agent → mecorch, answer to logsRequest (replyTo)
	TypePaths       = "paths"       // agent → mecorch, transport path measurements (SCTP)
	TypeProbePlan   = "probePlan"   // mecorch → agent, the STAMP targets to probe
	TypeRTT         = "rtt"         // agent → mecorch, per-target RTT windows
	TypeError       = "error"       // either side, before closing
)

// Frame is one message on the wire: a JSON object with the protocol version,
// the type, a sequence number per sender and the type's body.
type Frame struct {
	V       int             `json:"v"`
	Type    string          `json:"type"`
	Seq     uint64          `json:"seq,omitempty"`
	ReplyTo uint64          `json:"replyTo,omitempty"`
	Body    json.RawMessage `json:"body,omitempty"`
}

// Hello opens a session. HostID must be the host the agent's credential is
// for. The orchestrator registers the host (or updates its capacity, labels
// and agent version) from it.
type Hello struct {
	HostID       string            `json:"hostId"`
	SiteID       string            `json:"siteId"`
	AgentVersion string            `json:"agentVersion"`
	Capacity     mec.Resources     `json:"capacity"`
	Labels       map[string]string `json:"labels,omitempty"`
	// Generation is the last desired generation the agent applied (0 if none).
	Generation int64 `json:"generation"`
	// ProbeAddr is where the agent's STAMP reflector answers
	// ("ip:port"): peers at other sites probe it. An empty host part
	// ("":862") means the address the agent reaches mecorch from, as
	// mecorch sees it.
	ProbeAddr string `json:"probeAddr,omitempty"`
	// VTEP is the agent's VXLAN underlay address (--vtep): other hosts
	// reach its instances through it. Empty: no overlay on this host.
	VTEP string `json:"vtep,omitempty"`
	// Token is the agent's bearer token on transports without HTTP headers
	// (SCTP); empty on websocket, where it rides on the upgrade request.
	// Hello's String and LogValue leave it out: it must never be logged.
	Token string `json:"token,omitempty"`
}

// Welcome accepts a session.
type Welcome struct {
	HeartbeatIntervalMs int64  `json:"heartbeatIntervalMs"`
	ServerVersion       string `json:"serverVersion"`
}

// DesiredInstance is one instance as its host's agent must run it.
type DesiredInstance struct {
	ID               string        `json:"id"`
	AppDID           string        `json:"appDId"`
	AppPkgID         string        `json:"appPkgId"`
	State            string        `json:"state"` // Running, Stopped or Absent
	Resources        mec.Resources `json:"resources"`
	StopGraceSeconds int           `json:"stopGraceSeconds,omitempty"`
	// TrafficRules and DNSRules are the app's MEC 011 rules (from its
	// AppD's appTrafficRule and appDNSRule), for the host's data plane to
	// enforce while the instance runs.
	TrafficRules []TrafficRule `json:"trafficRules,omitempty"`
	DNSRules     []DNSRule     `json:"dnsRules,omitempty"`
	// Bandwidth shapes the instance's interface (nil: not shaped).
	Bandwidth *Bandwidth `json:"bandwidth,omitempty"`
}

// TrafficRule is a MEC 011 TrafficRule as the agent enforces it. Actions
// are the v3 names (v2's FORWARD_AS_IS and the like are mapped already).
type TrafficRule struct {
	ID         string          `json:"trafficRuleId"`
	FilterType string          `json:"filterType,omitempty"` // FLOW or PACKET
	Priority   int             `json:"priority"`             // 0 (first) to 255
	Action     string          `json:"action"`
	Filters    []TrafficFilter `json:"trafficFilter"`
	// SetDSCP (0-63) re-marks matching traffic (from the AppD's
	// x-mecorch-dscp); nil keeps the DSCP.
	SetDSCP *int `json:"setDscp,omitempty"`
}

// TrafficFilter is a MEC 011 TrafficFilter: within a field the values are
// alternatives, and every field given must match. The agent's classifier
// checks the values themselves (traffic/classify).
type TrafficFilter struct {
	SrcAddress       []string `json:"srcAddress,omitempty"`
	DstAddress       []string `json:"dstAddress,omitempty"`
	SrcPort          []string `json:"srcPort,omitempty"`
	DstPort          []string `json:"dstPort,omitempty"`
	Protocol         []string `json:"protocol,omitempty"`
	Tag              []string `json:"tag,omitempty"`
	SrcTunnelAddress []string `json:"srcTunnelAddress,omitempty"`
	TgtTunnelAddress []string `json:"tgtTunnelAddress,omitempty"`
	SrcTunnelPort    []string `json:"srcTunnelPort,omitempty"`
	DstTunnelPort    []string `json:"dstTunnelPort,omitempty"`
	QCI              *int     `json:"qCI,omitempty"`
	DSCP             *int     `json:"dSCP,omitempty"`
	TC               *int     `json:"tC,omitempty"`
}

// DNSRule is a MEC 011 DnsRule: queries for DomainName are answered with
// IPAddress.
type DNSRule struct {
	ID            string `json:"dnsRuleId"`
	DomainName    string `json:"domainName"`
	IPAddressType string `json:"ipAddressType"` // IP_V4 or IP_V6
	IPAddress     string `json:"ipAddress"`
	TTL           int    `json:"ttl,omitempty"` // seconds
}

// Traffic rule actions.
const (
	ActionDrop                  = "DROP"
	ActionPassthrough           = "PASSTHROUGH"
	ActionForwardDecapsulated   = "FORWARD_DECAPSULATED"
	ActionForwardEncapsulated   = "FORWARD_ENCAPSULATED"
	ActionDuplicateDecapsulated = "DUPLICATE_DECAPSULATED"
	ActionDuplicateEncapsulated = "DUPLICATE_ENCAPSULATED"
)

// DesiredState is what one host must make true. Generation grows with every
// change, so an agent that has applied generation g can ignore anything
// older and report g back.
type DesiredState struct {
	HostID     string            `json:"hostId"`
	Generation int64             `json:"generation"`
	Instances  []DesiredInstance `json:"instances"`
	// UETunnels are the UE tunnels the operator provisioned, for every
	// host's return path (learnt ones are the agent's own).
	UETunnels []UETunnel `json:"ueTunnels,omitempty"`
	// Remote are instances on other hosts this host steers to over VXLAN,
	// for apps with traffic rules and no instance running here.
	Remote []RemoteInstance `json:"remoteInstances,omitempty"`
	// Peers are the other hosts with a VXLAN endpoint (Hello.VTEP).
	Peers []TunnelPeer `json:"tunnelPeers,omitempty"`
}

// Observed instance states.
const (
	ObservedRunning = "Running"
	ObservedStopped = "Stopped"
	ObservedFailed  = "Failed"
)

// Usage is what an instance (or the host) consumes now.
type Usage struct {
	MilliCPU    int64 `json:"milliCpu"`
	MemoryBytes int64 `json:"memoryBytes"`
}

// InstanceStatus is one instance as the agent sees it.
type InstanceStatus struct {
	ID       string `json:"id"`
	State    string `json:"state"` // Running, Stopped or Failed; an instance not listed is absent
	Message  string `json:"message,omitempty"`
	Address  string `json:"address,omitempty"` // the instance's address on the host's app bridge
	MAC      string `json:"mac,omitempty"`     // its interface's Ethernet address (for VXLAN steering from other hosts)
	Restarts int    `json:"restarts,omitempty"`
	Usage    *Usage `json:"usage,omitempty"`
}

// Report is what an agent reports: the generation it has applied and the
// instances it runs.
type Report struct {
	HostID       string           `json:"hostId"`
	Generation   int64            `json:"generation"`
	AgentVersion string           `json:"agentVersion,omitempty"`
	Instances    []InstanceStatus `json:"instances"`
	Usage        *Usage           `json:"usage,omitempty"`
	// TrafficRuleCounters and DataPlane are the host data plane's counts
	// (absent without one).
	TrafficRuleCounters []RuleCounter   `json:"trafficRuleCounters,omitempty"`
	DataPlane           *DataPlaneStats `json:"dataPlane,omitempty"`
}

// Heartbeat says the agent is alive between reports.
type Heartbeat struct {
	Time       time.Time `json:"time"`
	Generation int64     `json:"generation"`
}

// LogsRequest asks for the tail of an instance's stdout/stderr log.
type LogsRequest struct {
	InstanceID string `json:"instanceId"`
	MaxBytes   int    `json:"maxBytes"`
}

// Logs answers a LogsRequest (Frame.ReplyTo is the request's Seq).
type Logs struct {
	InstanceID string `json:"instanceId"`
	Data       string `json:"data"`
	Truncated  bool   `json:"truncated,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Path is one transport path of a multi-homed association.
type Path struct {
	Local      string `json:"local"`
	Remote     string `json:"remote"`
	State      string `json:"state"` // Active or Inactive
	SRTTMicros int64  `json:"srttMicros"`
}

// Paths reports the transport's paths (SCTP only).
type Paths struct {
	Paths []Path `json:"paths"`
}

// Error tells the peer why the connection is being closed.
type Error struct {
	Code   string `json:"code"` // e.g. badFrame, badVersion, forbidden, tooLarge, unexpected
	Detail string `json:"detail"`
}

// Probe target kinds.
const (
	TargetHost = "host" // a peer host's STAMP reflector
	TargetCell = "cell" // a cell's RAN address
)

// MaxProbeTargets bounds a plan: probing is meant to be sparse, the map
// estimates the rest.
const MaxProbeTargets = 64

// ProbeTarget is one target of a probe plan.
type ProbeTarget struct {
	// ID is the host or cell ID; reports name the target by it.
	ID   string `json:"id"`
	Kind string `json:"kind"` // host or cell
	Addr string `json:"addr"` // ip:port of its STAMP reflector
}

// Bounds of a probe plan's timing.
const (
	MinProbeInterval = 10 * time.Millisecond
	MaxProbeInterval = time.Minute
	MinProbeWindow   = time.Second
	MaxProbeWindow   = 10 * time.Minute
)

// ProbePlan replaces the agent's probe targets. An empty plan stops
// probing.
type ProbePlan struct {
	Targets []ProbeTarget `json:"targets"`
	// IntervalMs is the time between two probes of one target; WindowMs
	// the window each RTT report sums up.
	IntervalMs int64 `json:"intervalMs"`
	WindowMs   int64 `json:"windowMs"`
}

// RTTResult is one target's window.
type RTTResult struct {
	Target string        `json:"target"` // the target's ID
	Kind   string        `json:"kind"`   // host or cell
	Stats  latency.Stats `json:"stats"`
}

// RTTReport carries the windows that ended since the last report.
type RTTReport struct {
	Results []RTTResult `json:"results"`
}
