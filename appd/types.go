package appd

// The types follow MEC 010-2 v3.1.1 (clause 6.2.1) and, for the parts the
// AppD borrows from NFV IFA 011 (compute, storage, software images), the
// schemas of the same OpenAPI file. JSON and YAML names are the spec's.
// Optional numbers whose zero value is meaningful (priority 0, DSCP 0, a
// zero timeout) are pointers, so that "absent" and "zero" stay apart.

// AppD is a MEC application descriptor.
type AppD struct {
	AppDID         string     `json:"appDId" yaml:"appDId"`
	AppName        string     `json:"appName" yaml:"appName"`
	AppProvider    string     `json:"appProvider" yaml:"appProvider"`
	AppSoftVersion string     `json:"appSoftVersion" yaml:"appSoftVersion"`
	AppDVersion    string     `json:"appDVersion" yaml:"appDVersion"`
	MecVersion     StringList `json:"mecVersion" yaml:"mecVersion"`
	AppInfoName    string     `json:"appInfoName,omitempty" yaml:"appInfoName,omitempty"`
	AppDescription string     `json:"appDescription" yaml:"appDescription"`

	// Exactly one of VirtualComputeDescriptor (a VM) and
	// OsContainerDescriptor (a set of containers) is present (NOTE 5).
	VirtualComputeDescriptor *VirtualComputeDescriptor `json:"virtualComputeDescriptor,omitempty" yaml:"virtualComputeDescriptor,omitempty"`
	OsContainerDescriptor    []OsContainerDescriptor   `json:"osContainerDescriptor,omitempty" yaml:"osContainerDescriptor,omitempty"`

	SwImageDescriptor        OneOrMany[SwImageDescriptor] `json:"swImageDescriptor" yaml:"swImageDescriptor"`
	VirtualStorageDescriptor []VirtualStorageDescriptor   `json:"virtualStorageDescriptor,omitempty" yaml:"virtualStorageDescriptor,omitempty"`
	AppExtCpd                []AppExternalCpd             `json:"appExtCpd" yaml:"appExtCpd"`

	AppServiceRequired    []ServiceDependency   `json:"appServiceRequired,omitempty" yaml:"appServiceRequired,omitempty"`
	AppServiceOptional    []ServiceDependency   `json:"appServiceOptional,omitempty" yaml:"appServiceOptional,omitempty"`
	AppServiceProduced    []ServiceDescriptor   `json:"appServiceProduced,omitempty" yaml:"appServiceProduced,omitempty"`
	AppFeatureRequired    []FeatureDependency   `json:"appFeatureRequired,omitempty" yaml:"appFeatureRequired,omitempty"`
	AppFeatureOptional    []FeatureDependency   `json:"appFeatureOptional,omitempty" yaml:"appFeatureOptional,omitempty"`
	TransportDependencies []TransportDependency `json:"transportDependencies,omitempty" yaml:"transportDependencies,omitempty"`

	AppTrafficRule []TrafficRuleDescriptor `json:"appTrafficRule,omitempty" yaml:"appTrafficRule,omitempty"`
	AppDNSRule     []DNSRuleDescriptor     `json:"appDNSRule,omitempty" yaml:"appDNSRule,omitempty"`
	AppLatency     *LatencyDescriptor      `json:"appLatency,omitempty" yaml:"appLatency,omitempty"`
	// Bandwidth is mecorch's extension x-mecorch-bandwidth (see
	// BandwidthDescriptor): what each instance's interface may carry.
	Bandwidth []BandwidthDescriptor `json:"x-mecorch-bandwidth,omitempty" yaml:"x-mecorch-bandwidth,omitempty"`

	TerminateAppInstanceOpConfig   *TerminateAppInstanceOpConfig   `json:"terminateAppInstanceOpConfig,omitempty" yaml:"terminateAppInstanceOpConfig,omitempty"`
	ChangeAppInstanceStateOpConfig *ChangeAppInstanceStateOpConfig `json:"changeAppInstanceStateOpConfig,omitempty" yaml:"changeAppInstanceStateOpConfig,omitempty"`
	UserContextTransferCapability  *UserContextTransferCapability  `json:"userContextTransferCapability,omitempty" yaml:"userContextTransferCapability,omitempty"`
	AppNetworkPolicy               *AppNetworkPolicy               `json:"appNetworkPolicy,omitempty" yaml:"appNetworkPolicy,omitempty"`

	// Container-only attributes (NOTE 6 and 7).
	MciopID                       string                              `json:"mciopId,omitempty" yaml:"mciopId,omitempty"`
	McioIdentificationData        *McioIdentificationData             `json:"mcioIdentificationData,omitempty" yaml:"mcioIdentificationData,omitempty"`
	LogicalNode                   []LogicalNodeRequirements           `json:"logicalNode,omitempty" yaml:"logicalNode,omitempty"`
	RequestAdditionalCapabilities []RequestedAdditionalCapabilityData `json:"requestAdditionalCapabilities,omitempty" yaml:"requestAdditionalCapabilities,omitempty"`
	McioConstraintParams          []string                            `json:"mcioConstraintParams,omitempty" yaml:"mcioConstraintParams,omitempty"`
}

// KeyValuePairs is free-form content (NFV "array of key-value pairs").
type KeyValuePairs map[string]any

// VirtualComputeDescriptor describes the single VM realising the app.
type VirtualComputeDescriptor struct {
	VirtualComputeDescID          string                              `json:"virtualComputeDescId" yaml:"virtualComputeDescId"`
	LogicalNode                   []LogicalNodeRequirements           `json:"logicalNode,omitempty" yaml:"logicalNode,omitempty"`
	RequestAdditionalCapabilities []RequestedAdditionalCapabilityData `json:"requestAdditionalCapabilities,omitempty" yaml:"requestAdditionalCapabilities,omitempty"`
	ComputeRequirements           []any                               `json:"computeRequirements,omitempty" yaml:"computeRequirements,omitempty"`
	VirtualMemory                 *VirtualMemoryData                  `json:"virtualMemory" yaml:"virtualMemory"`
	VirtualCPU                    *VirtualCPUData                     `json:"virtualCpu" yaml:"virtualCpu"`
	VirtualDisk                   []BlockStorageData                  `json:"virtualDisk,omitempty" yaml:"virtualDisk,omitempty"`
}

// VirtualMemoryData: VirtualMemSize is in MB.
type VirtualMemoryData struct {
	VirtualMemSize                   float64         `json:"virtualMemSize" yaml:"virtualMemSize"`
	VirtualMemOversubscriptionPolicy string          `json:"virtualMemOversubscriptionPolicy,omitempty" yaml:"virtualMemOversubscriptionPolicy,omitempty"`
	VduMemRequirements               []KeyValuePairs `json:"vduMemRequirements,omitempty" yaml:"vduMemRequirements,omitempty"`
	NumaEnabled                      *bool           `json:"numaEnabled,omitempty" yaml:"numaEnabled,omitempty"`
	HugePagesRequirements            string          `json:"hugePagesRequirements,omitempty" yaml:"hugePagesRequirements,omitempty"`
}

// VirtualCPUData: VirtualCPUClock is in MHz.
type VirtualCPUData struct {
	CPUArchitecture                  string                 `json:"cpuArchitecture,omitempty" yaml:"cpuArchitecture,omitempty"`
	NumVirtualCPU                    int64                  `json:"numVirtualCpu" yaml:"numVirtualCpu"`
	VirtualCPUClock                  float64                `json:"virtualCpuClock,omitempty" yaml:"virtualCpuClock,omitempty"`
	VirtualCPUOversubscriptionPolicy string                 `json:"virtualCpuOversubscriptionPolicy,omitempty" yaml:"virtualCpuOversubscriptionPolicy,omitempty"`
	VduCPURequirements               []KeyValuePairs        `json:"vduCpuRequirements,omitempty" yaml:"vduCpuRequirements,omitempty"`
	VirtualCPUPinning                *VirtualCPUPinningData `json:"virtualCpuPinning,omitempty" yaml:"virtualCpuPinning,omitempty"`
}

// VirtualCPUPinningData: policy STATIC or DYNAMIC.
type VirtualCPUPinningData struct {
	VirtualCPUPinningPolicy string   `json:"virtualCpuPinningPolicy,omitempty" yaml:"virtualCpuPinningPolicy,omitempty"`
	VirtualCPUPinningRule   []string `json:"virtualCpuPinningRule,omitempty" yaml:"virtualCpuPinningRule,omitempty"`
}

// LogicalNodeRequirements (NFV): the details are free-form.
type LogicalNodeRequirements struct {
	ID                           string `json:"id" yaml:"id"`
	LogicalNodeRequirementDetail []any  `json:"logicalNodeRequirementDetail,omitempty" yaml:"logicalNodeRequirementDetail,omitempty"`
}

// RequestedAdditionalCapabilityData asks for e.g. an accelerator.
type RequestedAdditionalCapabilityData struct {
	RequestedAdditionalCapabilityName             string          `json:"requestedAdditionalCapabilityName" yaml:"requestedAdditionalCapabilityName"`
	SupportMandatory                              *bool           `json:"supportMandatory" yaml:"supportMandatory"`
	MinRequestedAdditionalCapabilityVersion       string          `json:"minRequestedAdditionalCapabilityVersion,omitempty" yaml:"minRequestedAdditionalCapabilityVersion,omitempty"`
	PreferredRequestedAdditionalCapabilityVersion string          `json:"preferredRequestedAdditionalCapabilityVersion,omitempty" yaml:"preferredRequestedAdditionalCapabilityVersion,omitempty"`
	TargetPerformanceParameters                   []KeyValuePairs `json:"targetPerformanceParameters" yaml:"targetPerformanceParameters"`
}

// BlockStorageData: SizeOfStorage is in GB.
type BlockStorageData struct {
	SizeOfStorage          float64         `json:"sizeOfStorage" yaml:"sizeOfStorage"`
	VduStorageRequirements []KeyValuePairs `json:"vduStorageRequirements,omitempty" yaml:"vduStorageRequirements,omitempty"`
	RdmaEnabled            *bool           `json:"rdmaEnabled,omitempty" yaml:"rdmaEnabled,omitempty"`
	SwImageDesc            *SwImageDesc    `json:"swImageDesc,omitempty" yaml:"swImageDesc,omitempty"`
}

// OsContainerDescriptor describes one of the containers realising the app.
// Requested and limit CPU are in milli-CPU, memory in MB, ephemeral storage
// in GB (the units the spec gives as examples; see docs/appd.md).
type OsContainerDescriptor struct {
	OsContainerDescID                  string                 `json:"osContainerDescId" yaml:"osContainerDescId"`
	Name                               string                 `json:"name" yaml:"name"`
	Description                        string                 `json:"description" yaml:"description"`
	RequestedCPUResources              int64                  `json:"requestedCpuResources,omitempty" yaml:"requestedCpuResources,omitempty"`
	RequestedMemoryResources           float64                `json:"requestedMemoryResources,omitempty" yaml:"requestedMemoryResources,omitempty"`
	RequestedEphemeralStorageResources float64                `json:"requestedEphemeralStorageResources,omitempty" yaml:"requestedEphemeralStorageResources,omitempty"`
	ExtendedResourceRequests           []KeyValuePairs        `json:"extendedResourceRequests,omitempty" yaml:"extendedResourceRequests,omitempty"`
	CPUResourceLimit                   int64                  `json:"cpuResourceLimit,omitempty" yaml:"cpuResourceLimit,omitempty"`
	MemoryResourceLimit                float64                `json:"memoryResourceLimit,omitempty" yaml:"memoryResourceLimit,omitempty"`
	EphemeralStorageResourceLimit      float64                `json:"ephemeralStorageResourceLimit,omitempty" yaml:"ephemeralStorageResourceLimit,omitempty"`
	HugePageResources                  map[string]string      `json:"hugePageResources,omitempty" yaml:"hugePageResources,omitempty"`
	CPUPinningRequirements             *VirtualCPUPinningData `json:"cpuPinningRequirements,omitempty" yaml:"cpuPinningRequirements,omitempty"`
	SwImageDesc                        *SwImageDesc           `json:"swImageDesc" yaml:"swImageDesc"`
	BootData                           string                 `json:"bootData,omitempty" yaml:"bootData,omitempty"`
	MonitoringParameters               []MonitoringParameter  `json:"monitoringParameters,omitempty" yaml:"monitoringParameters,omitempty"`
}

// MonitoringParameter names a metric to collect.
type MonitoringParameter struct {
	MonitoringParameterID string `json:"monitoringParameterId" yaml:"monitoringParameterId"`
	Name                  string `json:"name,omitempty" yaml:"name,omitempty"`
	PerformanceMetric     string `json:"performanceMetric" yaml:"performanceMetric"`
	CollectionPeriod      string `json:"collectionPeriod,omitempty" yaml:"collectionPeriod,omitempty"`
}

// SwImageDescriptor describes a software image. The AppD's
// swImageDescriptor and the swImageDesc inside container and storage
// descriptors have the same attributes in the spec (SwImageDescriptor and
// SwImageDesc), so they share one Go type.
type SwImageDescriptor struct {
	ID                                 string        `json:"id" yaml:"id"`
	Name                               string        `json:"name" yaml:"name"`
	Version                            string        `json:"version" yaml:"version"`
	Checksum                           *ChecksumData `json:"checksum,omitempty" yaml:"checksum,omitempty"`
	ContainerFormat                    string        `json:"containerFormat" yaml:"containerFormat"`
	DiskFormat                         string        `json:"diskFormat,omitempty" yaml:"diskFormat,omitempty"`
	MinDisk                            float64       `json:"minDisk,omitempty" yaml:"minDisk,omitempty"`
	MinRAM                             float64       `json:"minRam,omitempty" yaml:"minRam,omitempty"`
	Size                               float64       `json:"size,omitempty" yaml:"size,omitempty"`
	SwImage                            SwImageRef    `json:"swImage" yaml:"swImage"`
	OperatingSystem                    string        `json:"operatingSystem,omitempty" yaml:"operatingSystem,omitempty"`
	SupportedVirtualisationEnvironment []string      `json:"supportedVirtualisationEnvironment,omitempty" yaml:"supportedVirtualisationEnvironment,omitempty"`
}

// SwImageDesc is the spec's name for the same structure inside other
// descriptors.
type SwImageDesc = SwImageDescriptor

// ChecksumData: Algorithm is a hash function textual name (e.g. sha-256).
type ChecksumData struct {
	Algorithm string `json:"algorithm" yaml:"algorithm"`
	Hash      string `json:"hash" yaml:"hash"`
}

// VirtualStorageDescriptor: TypeOfStorage is BLOCK, OBJECT or FILE and the
// matching *StorageData is required.
type VirtualStorageDescriptor struct {
	ID                  string             `json:"id,omitempty" yaml:"id,omitempty"`
	TypeOfStorage       string             `json:"typeOfStorage" yaml:"typeOfStorage"`
	BlockStorageData    *BlockStorageData  `json:"blockStorageData,omitempty" yaml:"blockStorageData,omitempty"`
	ObjectStorageData   *ObjectStorageData `json:"objectStorageData,omitempty" yaml:"objectStorageData,omitempty"`
	FileStorageData     *FileStorageData   `json:"fileStorageData,omitempty" yaml:"fileStorageData,omitempty"`
	NfviMaintenanceInfo map[string]any     `json:"nfviMaintenanceInfo,omitempty" yaml:"nfviMaintenanceInfo,omitempty"`
	PerVnfcInstance     *bool              `json:"perVnfcInstance,omitempty" yaml:"perVnfcInstance,omitempty"`
}

// ObjectStorageData: MaxSizeOfStorage is in GB.
type ObjectStorageData struct {
	MaxSizeOfStorage float64 `json:"maxSizeOfStorage,omitempty" yaml:"maxSizeOfStorage,omitempty"`
}

// FileStorageData: SizeOfStorage is in GB.
type FileStorageData struct {
	SizeOfStorage      float64        `json:"sizeOfStorage,omitempty" yaml:"sizeOfStorage,omitempty"`
	FileSystemProtocol string         `json:"fileSystemProtocol,omitempty" yaml:"fileSystemProtocol,omitempty"`
	IntVirtualLinkDesc map[string]any `json:"intVirtualLinkDesc,omitempty" yaml:"intVirtualLinkDesc,omitempty"`
}

// McioIdentificationData names the MCIO (e.g. a Kubernetes object).
type McioIdentificationData struct {
	Name string `json:"name" yaml:"name"`
	Type string `json:"type" yaml:"type"`
}

// TerminateAppInstanceOpConfig: the spec gives the timeouts no unit (NFV
// uses seconds).
type TerminateAppInstanceOpConfig struct {
	MinGracefulTerminationTimeout            *float64 `json:"minGracefulTerminationTimeout" yaml:"minGracefulTerminationTimeout"`
	MaxRecommendedGracefulTerminationTimeout *float64 `json:"maxRecommendedGracefulTerminationTimeout,omitempty" yaml:"maxRecommendedGracefulTerminationTimeout,omitempty"`
	Parameter                                []string `json:"parameter,omitempty" yaml:"parameter,omitempty"`
}

// ChangeAppInstanceStateOpConfig: timeouts as in TerminateAppInstanceOpConfig.
type ChangeAppInstanceStateOpConfig struct {
	MinGracefulStopTimeout            *float64 `json:"minGracefulStopTimeout" yaml:"minGracefulStopTimeout"`
	MaxRecommendedGracefulStopTimeout *float64 `json:"maxRecommendedGracefulStopTimeout,omitempty" yaml:"maxRecommendedGracefulStopTimeout,omitempty"`
	Parameter                         []string `json:"parameter,omitempty" yaml:"parameter,omitempty"`
}

// UserContextTransferCapability: UserContextTransferSupport is present if
// and only if the application is stateful.
type UserContextTransferCapability struct {
	StatefulApplication        *bool `json:"statefulApplication" yaml:"statefulApplication"`
	UserContextTransferSupport *bool `json:"userContextTransferSupport,omitempty" yaml:"userContextTransferSupport,omitempty"`
}

// AppNetworkPolicy says which access networks should carry the traffic.
type AppNetworkPolicy struct {
	SteeredNetwork *SteeredNetwork `json:"steeredNetwork" yaml:"steeredNetwork"`
}

// SteeredNetwork: each flag is the application's preference.
type SteeredNetwork struct {
	CellularNetwork    *bool `json:"cellularNetwork,omitempty" yaml:"cellularNetwork,omitempty"`
	WiFiNetwork        *bool `json:"wi-fiNetwork,omitempty" yaml:"wi-fiNetwork,omitempty"`
	FixedAccessNetwork *bool `json:"fixedAccessNetwork,omitempty" yaml:"fixedAccessNetwork,omitempty"`
}
