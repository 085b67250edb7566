package appd

// AppExternalCpd (clause 6.2.1.6): an external connection point of the app.
// InheritedAttributes holds the NFV Cpd attributes (cpdId, layerProtocol,
// …), which MEC 010-2 does not spell out.
type AppExternalCpd struct {
	VirtualNetworkInterfaceRequirements []VirtualNetworkInterfaceRequirements `json:"virtualNetworkInterfaceRequirements,omitempty" yaml:"virtualNetworkInterfaceRequirements,omitempty"`
	AdditionalServiceData               []AdditionalServiceData               `json:"additionalServiceData,omitempty" yaml:"additionalServiceData,omitempty"`
	InheritedAttributes                 map[string]any                        `json:"inherited_attributes" yaml:"inherited_attributes"`
}

// VirtualNetworkInterfaceRequirements (NFV): at least one of the three
// requirement attributes is present.
type VirtualNetworkInterfaceRequirements struct {
	Name                                     string `json:"name,omitempty" yaml:"name,omitempty"`
	Description                              string `json:"description,omitempty" yaml:"description,omitempty"`
	StandardizedNetworkInterfaceRequirements string `json:"standardizedNetworkInterfaceRequirements,omitempty" yaml:"standardizedNetworkInterfaceRequirements,omitempty"`
	NetworkInterfaceRequirements             string `json:"networkInterfaceRequirements,omitempty" yaml:"networkInterfaceRequirements,omitempty"`
	NicIoRequirements                        any    `json:"nicIoRequirements,omitempty" yaml:"nicIoRequirements,omitempty"`
}

// AdditionalServiceData lists the ports a connection point exposes.
type AdditionalServiceData struct {
	PortData    []ServicePortData `json:"portData" yaml:"portData"`
	ServiceData string            `json:"serviceData,omitempty" yaml:"serviceData,omitempty"`
}

// ServicePortData: Protocol is TCP, UDP or SCTP.
type ServicePortData struct {
	Name             string `json:"name" yaml:"name"`
	Protocol         string `json:"protocol" yaml:"protocol"`
	Port             int64  `json:"port" yaml:"port"`
	PortConfigurable *bool  `json:"portConfigurable" yaml:"portConfigurable"`
}

// ServiceDependency (clause 6.2.1.17): a MEC service the app consumes.
type ServiceDependency struct {
	SerName                  string                `json:"serName" yaml:"serName"`
	SerCategory              *CategoryRef          `json:"serCategory,omitempty" yaml:"serCategory,omitempty"`
	Version                  string                `json:"version" yaml:"version"`
	SerTransportDependencies []TransportDependency `json:"serTransportDependencies,omitempty" yaml:"serTransportDependencies,omitempty"`
	RequestedPermissions     []any                 `json:"requestedPermissions,omitempty" yaml:"requestedPermissions,omitempty"`
}

// ServiceDescriptor (clause 6.2.1.7): a MEC service the app produces.
type ServiceDescriptor struct {
	SerName     string       `json:"serName" yaml:"serName"`
	SerCategory *CategoryRef `json:"serCategory,omitempty" yaml:"serCategory,omitempty"`
	Version     string       `json:"version" yaml:"version"`
	// TransportsSupported is an array in v3 and a single object in v2.
	TransportsSupported OneOrMany[TransportsSupported] `json:"transportsSupported,omitempty" yaml:"transportsSupported,omitempty"`
}

// CategoryRef (MEC 011).
type CategoryRef struct {
	Href    string `json:"href" yaml:"href"`
	ID      string `json:"id" yaml:"id"`
	Name    string `json:"name" yaml:"name"`
	Version string `json:"version" yaml:"version"`
}

// FeatureDependency (clause 6.2.1.8).
type FeatureDependency struct {
	FeatureName string `json:"featureName" yaml:"featureName"`
	Version     string `json:"version" yaml:"version"`
}

// TransportDependency (clause 6.2.1.18).
type TransportDependency struct {
	Transport   *TransportDescriptor `json:"transport" yaml:"transport"`
	Serializers []string             `json:"serializers" yaml:"serializers"`
	Labels      []string             `json:"labels" yaml:"labels"`
}

// TransportsSupported is a transport with the serialisers offered on it.
type TransportsSupported struct {
	Transport   *TransportDescriptor `json:"transport" yaml:"transport"`
	Serializers []string             `json:"serializers" yaml:"serializers"`
}

// TransportDescriptor (clause 6.2.1.19). Type is a MEC 011 TransportType
// (REST_HTTP, MB_TOPIC_BASED, …).
type TransportDescriptor struct {
	Name             string         `json:"name" yaml:"name"`
	Description      string         `json:"description,omitempty" yaml:"description,omitempty"`
	Type             string         `json:"type" yaml:"type"`
	Protocol         string         `json:"protocol" yaml:"protocol"`
	Version          string         `json:"version" yaml:"version"`
	Security         *SecurityInfo  `json:"security" yaml:"security"`
	ImplSpecificInfo map[string]any `json:"implSpecificInfo,omitempty" yaml:"implSpecificInfo,omitempty"`
}

// SecurityInfo (MEC 011).
type SecurityInfo struct {
	OAuth2Info *OAuth2Info `json:"oAuth2Info,omitempty" yaml:"oAuth2Info,omitempty"`
}

// OAuth2Info (MEC 011): grant types are OAUTH2_AUTHORIZATION_CODE,
// OAUTH2_IMPLICIT_GRANT, OAUTH2_RESOURCE_OWNER, OAUTH2_CLIENT_CREDENTIALS.
type OAuth2Info struct {
	GrantTypes    []string `json:"grantTypes" yaml:"grantTypes"`
	TokenEndpoint string   `json:"tokenEndpoint,omitempty" yaml:"tokenEndpoint,omitempty"`
}
