// Package mec is mecorch's domain: edge sites, hosts and cells, onboarded app
// packages, app instances and their lifecycle operations, and the Store that
// keeps them. It knows nothing of HTTP; etsi-api translates ETSI bodies into
// these types and back.
package mec

import (
	"encoding/json"
	"time"
)

// Resources is an amount of compute on a host: what it has (capacity), what
// instances hold (allocated), or what one instance needs. CPU is in
// millicores so that container requests such as 250m fit without floats.
type Resources struct {
	MilliCPU  int64 `json:"milliCpu"`
	MemoryMiB int64 `json:"memoryMiB"`
	StorageGB int64 `json:"storageGB"`
	GPUs      int64 `json:"gpus"`
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.MilliCPU + o.MilliCPU, r.MemoryMiB + o.MemoryMiB, r.StorageGB + o.StorageGB, r.GPUs + o.GPUs}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.MilliCPU - o.MilliCPU, r.MemoryMiB - o.MemoryMiB, r.StorageGB - o.StorageGB, r.GPUs - o.GPUs}
}

// Fits reports whether need fits in r in every dimension.
func (r Resources) Fits(need Resources) bool {
	return need.MilliCPU <= r.MilliCPU && need.MemoryMiB <= r.MemoryMiB &&
		need.StorageGB <= r.StorageGB && need.GPUs <= r.GPUs
}

// Site is a place with edge servers: a cell-tower site, a central office, a
// regional data centre.
type Site struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Zone      string    `json:"zone,omitempty"`
	Country   string    `json:"countryCode,omitempty"` // ISO 3166 alpha-2, for ETSI locationConstraints.countryCode
	Latitude  float64   `json:"latitude"`
	Longitude float64   `json:"longitude"`
	CreatedAt time.Time `json:"createdAt"`
}

// HostState is whether a host's agent is reachable and serving.
type HostState string

const (
	HostUnknown  HostState = "Unknown" // registered, no agent has reported yet
	HostReady    HostState = "Ready"
	HostNotReady HostState = "NotReady"
	HostDraining HostState = "Draining" // operator cordon: keeps its instances, takes no new ones
)

// Host is one edge server. Allocated is the sum of the reservations of the
// instances placed on it and is written in the same transaction as they are.
//
// DesiredGeneration increases every time the set or state of the host's
// instances changes; the agent reports the generation it has applied in
// ReportedGeneration. The desired state itself is derived: the instances whose
// HostID is this host (see DesiredState).
type Host struct {
	ID                 string            `json:"id"`
	SiteID             string            `json:"siteId"`
	Name               string            `json:"name,omitempty"`
	Capacity           Resources         `json:"capacity"`
	Allocated          Resources         `json:"allocated"`
	Labels             map[string]string `json:"labels,omitempty"`
	Addresses          []string          `json:"addresses,omitempty"`
	State              HostState         `json:"state"`
	DesiredGeneration  int64             `json:"desiredGeneration"`
	ReportedGeneration int64             `json:"reportedGeneration"`
	AgentVersion       string            `json:"agentVersion,omitempty"`
	// VTEP is the host's VXLAN underlay address, as its agent's hello
	// says (empty: no overlay on the host). Other hosts steer to its
	// instances through it.
	VTEP          string     `json:"vtep,omitempty"`
	LastHeartbeat *time.Time `json:"lastHeartbeat,omitempty"`
	// ReadySince is when the host last became Ready (its agent's first
	// report or heartbeat, or its return from NotReady).
	ReadySince *time.Time `json:"readySince,omitempty"`
	// LastNotReady is when the host was last found silent and marked
	// NotReady. It is kept after the host comes back: with ReadySince it
	// tells a host back from an outage, which placement holds back for a
	// while (flap guard), from one that came up for the first time.
	LastNotReady *time.Time `json:"lastNotReady,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
}

// HostLiveness is the part of a host's status that every agent report
// refreshes; it is stored apart from Host (KindHostLiveness) and merged into
// Host.LastHeartbeat when a host is read.
type HostLiveness struct {
	HostID        string    `json:"hostId"`
	LastHeartbeat time.Time `json:"lastHeartbeat"`
}

// HostTombstone is what is kept of a deleted host (KindHostTombstone).
type HostTombstone struct {
	HostID            string `json:"hostId"`
	DesiredGeneration int64  `json:"desiredGeneration"`
}

// Free is what is left on h for new reservations.
func (h Host) Free() Resources { return h.Capacity.Sub(h.Allocated) }

// RAT is a cell's radio access technology.
type RAT string

const (
	RATNR    RAT = "NR"    // 5G, identified by an NR CGI (36-bit cell identity)
	RATEUTRA RAT = "EUTRA" // LTE, identified by an ECGI (28-bit cell identity)
)

// Cell is a radio cell served by the edge of one site. ID is the global cell
// identity in canonical text form: MCC-MNC-cellIdHex (e.g. "001-01-00000a0b1").
type Cell struct {
	ID         string    `json:"id"`
	RAT        RAT       `json:"rat"`
	MCC        string    `json:"mcc"`
	MNC        string    `json:"mnc"`
	CellID     string    `json:"cellId"` // hex: 9 digits for NR, 7 for E-UTRA
	SiteID     string    `json:"siteId"`
	RANAddress string    `json:"ranAddress,omitempty"` // the gNB/eNB's IP, probed for RTT
	CreatedAt  time.Time `json:"createdAt"`
}

// Onboarding states of an app package (MEC 010-2 6.2.3.3).
const (
	PkgCreated    = "CREATED"
	PkgUploading  = "UPLOADING"
	PkgProcessing = "PROCESSING"
	PkgOnboarded  = "ONBOARDED"
	// PkgError is not an ETSI state; the spec keeps a failed package in
	// CREATED with onboardingFailureDetails set, and so do we.
)

// Operational and usage states of an app package.
const (
	PkgEnabled  = "ENABLED"
	PkgDisabled = "DISABLED"
	PkgInUse    = "IN_USE"
	PkgNotInUse = "NOT_IN_USE"
)

// Checksum is an algorithm name (SHA-256, SHA-512) and a hex digest.
type Checksum struct {
	Algorithm string `json:"algorithm"`
	Hash      string `json:"hash"`
}

// Problem is a stored RFC 7807 problem (an onboarding failure, an operation
// error), kept in the domain so that the API can return it verbatim.
type Problem struct {
	Type   string `json:"type,omitempty"`
	Title  string `json:"title,omitempty"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// InvalidParams lists every field that was wrong, by its path in the
	// document (e.g. "appD.virtualComputeDescriptor.virtualMemory.virtualMemSize").
	InvalidParams []InvalidParam `json:"invalidParams,omitempty"`
}

// InvalidParam is one wrong field.
type InvalidParam struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// AppPackage is an app package resource (AppPkgInfo) and what onboarding
// learnt from its content. AppD holds the parsed descriptor as canonical JSON
// (appd.AppD marshalled), empty until the package is ONBOARDED.
type AppPackage struct {
	ID                 string          `json:"id"`
	PkgName            string          `json:"appPkgName"`
	PkgVersion         string          `json:"appPkgVersion"`
	PkgPath            string          `json:"appPkgPath,omitempty"`
	Checksum           Checksum        `json:"checksum"`
	UserDefinedData    json.RawMessage `json:"userDefinedData,omitempty"`
	AppDID             string          `json:"appDId,omitempty"`
	AppProvider        string          `json:"appProvider,omitempty"`
	AppName            string          `json:"appName,omitempty"`
	AppSoftwareVersion string          `json:"appSoftwareVersion,omitempty"`
	AppDVersion        string          `json:"appDVersion,omitempty"`
	MecInfo            []string        `json:"mecInfo,omitempty"`
	SoftwareImages     []SoftwareImage `json:"softwareImages,omitempty"`
	Artifacts          []string        `json:"additionalArtifacts,omitempty"` // paths inside the package
	OnboardingState    string          `json:"onboardingState"`
	OperationalState   string          `json:"operationalState"`
	OnboardingFailure  *Problem        `json:"onboardingFailureDetails,omitempty"`
	AppD               json.RawMessage `json:"appD,omitempty"`
	ContentSize        int64           `json:"contentSize,omitempty"` // bytes of the uploaded zip, kept as blob ID
	ContentType        string          `json:"contentType,omitempty"`
	// ProcessingSince is when the current upload began to be checked; a
	// package PROCESSING for far longer was abandoned by a crashed server.
	ProcessingSince *time.Time `json:"processingSince,omitempty"`
	// Owner is the client that created the package; empty for packages
	// created before ownership was recorded.
	Owner     string    `json:"owner,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// SoftwareImage is what the package says about one software image.
type SoftwareImage struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	Path      string   `json:"path,omitempty"` // inside the package, when the image ships in it
	Checksum  Checksum `json:"checksum"`
	SizeBytes int64    `json:"size,omitempty"`
}

// Instantiation states (MEC 010-2 6.2.2.4).
const (
	NotInstantiated = "NOT_INSTANTIATED"
	Instantiated    = "INSTANTIATED"
)

// Operational states of an instantiated app.
const (
	OpStarted = "STARTED"
	OpStopped = "STOPPED"
)

// AppInstance is an app instance resource. While INSTANTIATED it holds
// Reserved on HostID (its share of Host.Allocated) and appears in that
// host's desired state with DesiredState.
type AppInstance struct {
	ID                 string               `json:"id"`
	Name               string               `json:"appInstanceName,omitempty"`
	Description        string               `json:"appInstanceDescription,omitempty"`
	AppDID             string               `json:"appDId"`
	AppPkgID           string               `json:"appPkgId"`
	AppProvider        string               `json:"appProvider"`
	AppName            string               `json:"appName"`
	AppSoftVersion     string               `json:"appSoftVersion"`
	AppDVersion        string               `json:"appDVersion"`
	InstantiationState string               `json:"instantiationState"`
	OperationalState   string               `json:"operationalState,omitempty"` // when INSTANTIATED
	HostID             string               `json:"hostId,omitempty"`
	SiteID             string               `json:"siteId,omitempty"`
	Reserved           Resources            `json:"reserved"`
	Constraints        PlacementConstraints `json:"constraints"`
	// DesiredState is what the host's agent must make true: Running,
	// Stopped, or Absent (terminating: remove, then the orchestrator
	// releases the reservation when the agent reports it gone).
	DesiredState string `json:"desiredState,omitempty"`
	// ObservedState is the last state the host's agent reported.
	ObservedState string `json:"observedState,omitempty"`
	// MAC is the Ethernet address of the instance's interface on its
	// host, as the agent last reported it: other hosts' data planes steer
	// to it over VXLAN. Cleared when the instance leaves its host.
	MAC string `json:"mac,omitempty"`
	// PendingOpID is the LCM operation in progress (or FAILED_TEMP, waiting
	// for retry or fail); while set, other operations are refused with 409.
	PendingOpID string `json:"pendingOpId,omitempty"`
	// StopGraceSeconds is how long the agent lets the app stop gracefully
	// before it kills it (0: forceful).
	StopGraceSeconds int       `json:"stopGraceSeconds,omitempty"`
	Placement        *Decision `json:"placement,omitempty"`
	// Moves counts the times the instance was re-placed off a failed
	// host, LastMovedAt is the latest; a recent move holds the instance
	// where it is for a while (flap guard).
	Moves       int        `json:"moves,omitempty"`
	LastMovedAt *time.Time `json:"lastMovedAt,omitempty"`
	// Owner is the client that created the instance; empty for instances
	// created before ownership was recorded.
	Owner     string    `json:"owner,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Desired states of an instance on its host.
const (
	DesiredRunning = "Running"
	DesiredStopped = "Stopped"
	DesiredAbsent  = "Absent"
)

// PlacementConstraints narrow where an instance may go. They come from the
// instantiate request (ETSI locationConstraints and selectedMECHostInfo, and
// mecorch's own extension) and the AppD.
type PlacementConstraints struct {
	HostIDs     []string          `json:"hostIds,omitempty"` // selectedMECHostInfo
	SiteIDs     []string          `json:"siteIds,omitempty"`
	Zones       []string          `json:"zones,omitempty"`
	CountryCode string            `json:"countryCode,omitempty"`
	Area        [][][2]float64    `json:"area,omitempty"` // GeoJSON Polygon coordinates: rings of [lon, lat]
	HostLabels  map[string]string `json:"hostLabels,omitempty"`
	// SpreadKey groups replicas that should land on different sites; by
	// default the AppD ID.
	SpreadKey string `json:"spreadKey,omitempty"`
	// Cells are the cells the instance must serve (mecorch's extension);
	// none named means the cells where the UEs are.
	Cells []string `json:"cells,omitempty"`
	// MaxLatencyNs is the one-way latency bound towards the served cells,
	// radio included: the AppD's appLatency.maxLatency, 0 for none.
	MaxLatencyNs int64 `json:"maxLatencyNs,omitempty"`
}

// Decision records why a placement chose what it chose.
type Decision struct {
	HostID     string         `json:"hostId"`
	SiteID     string         `json:"siteId"`
	Score      float64        `json:"score"`
	Candidates int            `json:"candidates"`         // hosts that passed every filter
	Considered int            `json:"considered"`         // hosts looked at
	Rejected   map[string]int `json:"rejected,omitempty"` // filter name → hosts it removed
	Top        []ScoredHost   `json:"top,omitempty"`
	DecidedAt  time.Time      `json:"decidedAt"`
}

// ScoredHost is one ranked candidate with its per-score breakdown.
type ScoredHost struct {
	HostID string             `json:"hostId"`
	Total  float64            `json:"total"`
	Scores map[string]float64 `json:"scores,omitempty"`
	// Latency is what placement knew of the host's latency to the cells
	// the instance serves; nil when the request had no latency bound and
	// no cells to serve.
	Latency *LatencyInfo `json:"latency,omitempty"`
	// Why says, in a sentence, why the candidate won or what it lost on
	// against the winner.
	Why string `json:"why,omitempty"`
}

// LatencyInfo is one candidate's latency towards the served cells: one-way,
// half the RTT plus the cell's radio latency.
type LatencyInfo struct {
	// MeanNs is the mean over the served cells weighted by their UE load.
	MeanNs int64 `json:"meanNs"`
	// WorstNs and WorstCell are the served cell furthest away.
	WorstNs   int64  `json:"worstNs"`
	WorstCell string `json:"worstCell,omitempty"`
	// Cells is how many served cells were looked at; Estimated how many
	// of them were estimates rather than measurements.
	Cells     int `json:"cells"`
	Estimated int `json:"estimated,omitempty"`
}

// LCM operation types and states (MEC 010-2 6.2.2.13).
const (
	OpInstantiate = "INSTANTIATE"
	OpOperate     = "OPERATE"
	OpTerminate   = "TERMINATE"

	OpStateStarting   = "STARTING"
	OpStateProcessing = "PROCESSING"
	OpStateCompleted  = "COMPLETED"
	OpStateFailed     = "FAILED"
	OpStateFailedTemp = "FAILED_TEMP"
)

// LcmOpOcc is one lifecycle operation occurrence. It completes when the
// instance's host reports a generation at or past TargetGeneration with the
// instance in the wanted state.
type LcmOpOcc struct {
	ID               string          `json:"id"`
	AppInstanceID    string          `json:"appInstanceId"`
	Operation        string          `json:"lcmOperation"`
	State            string          `json:"operationState"`
	StartTime        time.Time       `json:"startTime"`
	StateEnteredTime time.Time       `json:"stateEnteredTime"`
	OperationParams  json.RawMessage `json:"operationParams,omitempty"`
	HostID           string          `json:"hostId,omitempty"`
	TargetGeneration int64           `json:"targetGeneration,omitempty"`
	Error            *Problem        `json:"error,omitempty"`
	// What the operation asked for, in domain terms, so that a retry can
	// do it again: the desired state and grace of OPERATE and TERMINATE,
	// the needs and constraints of INSTANTIATE.
	DesiredState string                `json:"desiredState,omitempty"`
	GraceSeconds int                   `json:"graceSeconds,omitempty"`
	Need         *Resources            `json:"need,omitempty"`
	Constraints  *PlacementConstraints `json:"constraints,omitempty"`
	// Owner is the Owner of the instance when the operation began, kept
	// here so that the operation stays its owner's after the instance is
	// deleted.
	Owner string `json:"owner,omitempty"`
}

// Subscription is a notification subscription of either ETSI API. Kind is
// the ETSI subscriptionType (AppPackageOnBoardingSubscription,
// AppPackageChangeSubscription, AppInstanceStateChangeSubscription,
// AppLcmOpOccStateChangeSubscription, ...). Filter is the subscription's own
// filter object kept as sent, so that the API layer owns its matching.
type Subscription struct {
	ID          string          `json:"id"`
	API         string          `json:"api"` // "app_pkgm" or "app_lcm"
	Type        string          `json:"subscriptionType"`
	CallbackURI string          `json:"callbackUri"`
	Filter      json.RawMessage `json:"filter,omitempty"`
	Request     json.RawMessage `json:"request,omitempty"` // the whole request body as accepted
	Owner       string          `json:"owner,omitempty"`   // client ID that created it
	// OwnerRole is the role Owner had when it created the subscription:
	// an operator's subscription hears of every resource, an app
	// provider's only of its own, and the role is not otherwise known
	// where notifications are built.
	OwnerRole string    `json:"ownerRole,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Alarm is a fault raised on a managed object (a host, an app instance, a
// transport path), with the fields of the ETSI NFV SOL 002/003 Alarm. It is
// kept as a KindAlarm document; mec/health raises, clears and lists alarms
// and defines the values of the enumerations.
type Alarm struct {
	ID string `json:"id"`
	// ManagedObjectID is the ID of what is faulty: a host ID, an app
	// instance ID, "<hostId>/path/<local>-<remote>" for a transport path.
	ManagedObjectID         string              `json:"managedObjectId"`
	RootCauseFaultyResource *FaultyResourceInfo `json:"rootCauseFaultyResource,omitempty"`
	AlarmRaisedTime         time.Time           `json:"alarmRaisedTime"`
	AlarmChangedTime        *time.Time          `json:"alarmChangedTime,omitempty"`
	AlarmClearedTime        *time.Time          `json:"alarmClearedTime,omitempty"`
	AlarmAcknowledgedTime   *time.Time          `json:"alarmAcknowledgedTime,omitempty"`
	AckState                AlarmAckState       `json:"ackState"`
	PerceivedSeverity       AlarmSeverity       `json:"perceivedSeverity"`
	EventTime               time.Time           `json:"eventTime"`
	EventType               AlarmEventType      `json:"eventType"`
	FaultType               string              `json:"faultType,omitempty"`
	ProbableCause           string              `json:"probableCause"`
	IsRootCause             bool                `json:"isRootCause"`
	CorrelatedAlarmIDs      []string            `json:"correlatedAlarmIds,omitempty"`
	FaultDetails            []string            `json:"faultDetails,omitempty"`
}

// AlarmSeverity is an alarm's perceivedSeverity (CRITICAL … CLEARED).
type AlarmSeverity string

// AlarmEventType is an alarm's eventType (COMMUNICATIONS_ALARM, …).
type AlarmEventType string

// AlarmAckState is ACKNOWLEDGED or UNACKNOWLEDGED.
type AlarmAckState string

// FaultyResourceInfo names the resource at the root of a fault.
type FaultyResourceInfo struct {
	FaultyResource     ResourceHandle `json:"faultyResource"`
	FaultyResourceType string         `json:"faultyResourceType"` // COMPUTE, STORAGE or NETWORK
}

// ResourceHandle identifies a resource: for mecorch, a host or a link.
type ResourceHandle struct {
	ResourceID string `json:"resourceId"`
}
