package appd

import (
	"strings"
	"testing"
)

// containerAppD turns the sample into an app realised by two containers.
func containerAppD(t *testing.T) *AppD {
	t.Helper()
	a := sampleAppD(t)
	img := a.SwImageDescriptor[0]
	a.VirtualComputeDescriptor = nil
	a.OsContainerDescriptor = []OsContainerDescriptor{
		{OsContainerDescID: "echo", Name: "echo", Description: "echo server", RequestedCPUResources: 250, RequestedMemoryResources: 128, SwImageDesc: &img},
		{OsContainerDescID: "sidecar", Name: "sidecar", Description: "metrics", CPUResourceLimit: 100, MemoryResourceLimit: 64, SwImageDesc: &img},
	}
	a.McioIdentificationData = &McioIdentificationData{Name: "edge-echo", Type: "Deployment"}
	return a
}

func TestValidateSampleAndContainerVariant(t *testing.T) {
	if errs := sampleAppD(t).Validate(); errs != nil {
		t.Errorf("sample: %v", errs)
	}
	if errs := containerAppD(t).Validate(); errs != nil {
		t.Errorf("container variant: %v", errs)
	}
	var nilAppD *AppD
	if errs := nilAppD.Validate(); len(errs) != 1 {
		t.Errorf("nil AppD: %v", errs)
	}
}

func TestValidateRules(t *testing.T) {
	rule := func(a *AppD) *TrafficRuleDescriptor { return &a.AppTrafficRule[0] }
	filter := func(a *AppD) *TrafficFilter { return &a.AppTrafficRule[0].TrafficFilter[0] }
	tunnel := func() *TunnelInfo {
		return &TunnelInfo{TunnelType: TunnelGTPU, TunnelDstAddress: "192.0.2.1", TunnelSrcAddress: "192.0.2.2"}
	}
	tests := []struct {
		name       string
		containers bool // start from containerAppD instead of the sample
		edit       func(a *AppD)
		path, want string
	}{
		// Required top-level attributes.
		{"appDId missing", false, func(a *AppD) { a.AppDID = "" }, "appDId", "is required"},
		{"appName blank", false, func(a *AppD) { a.AppName = "  " }, "appName", "is required"},
		{"appProvider missing", false, func(a *AppD) { a.AppProvider = "" }, "appProvider", "is required"},
		{"appSoftVersion missing", false, func(a *AppD) { a.AppSoftVersion = "" }, "appSoftVersion", "is required"},
		{"appDVersion missing", false, func(a *AppD) { a.AppDVersion = "" }, "appDVersion", "is required"},
		{"appDescription missing", false, func(a *AppD) { a.AppDescription = "" }, "appDescription", "is required"},
		{"mecVersion missing", false, func(a *AppD) { a.MecVersion = nil }, "mecVersion", "is required"},
		{"mecVersion not x.y.z", false, func(a *AppD) { a.MecVersion = StringList{"3.1.1", "3.1"} }, "mecVersion[1]", "x.y.z"},
		{"mecVersion empty entry", false, func(a *AppD) { a.MecVersion = StringList{""} }, "mecVersion[0]", "is required"},
		// Compute.
		{"no compute descriptor", false, func(a *AppD) { a.VirtualComputeDescriptor = nil }, "virtualComputeDescriptor", "exactly one"},
		{"both compute descriptors", true, func(a *AppD) {
			a.VirtualComputeDescriptor = sampleAppD(t).VirtualComputeDescriptor
		}, "osContainerDescriptor", "exactly one"},
		{"virtualComputeDescId missing", false, func(a *AppD) { a.VirtualComputeDescriptor.VirtualComputeDescID = "" }, "virtualComputeDescriptor.virtualComputeDescId", "is required"},
		{"virtualMemory missing", false, func(a *AppD) { a.VirtualComputeDescriptor.VirtualMemory = nil }, "virtualComputeDescriptor.virtualMemory", "is required"},
		{"virtualMemSize zero", false, func(a *AppD) { a.VirtualComputeDescriptor.VirtualMemory.VirtualMemSize = 0 }, "virtualComputeDescriptor.virtualMemory.virtualMemSize", "greater than 0"},
		{"virtualCpu missing", false, func(a *AppD) { a.VirtualComputeDescriptor.VirtualCPU = nil }, "virtualComputeDescriptor.virtualCpu", "is required"},
		{"numVirtualCpu negative", false, func(a *AppD) { a.VirtualComputeDescriptor.VirtualCPU.NumVirtualCPU = -2 }, "virtualComputeDescriptor.virtualCpu.numVirtualCpu", "greater than 0"},
		{"pinning policy", false, func(a *AppD) {
			a.VirtualComputeDescriptor.VirtualCPU.VirtualCPUPinning = &VirtualCPUPinningData{VirtualCPUPinningPolicy: "STICKY"}
		}, "virtualComputeDescriptor.virtualCpu.virtualCpuPinning.virtualCpuPinningPolicy", "not one of STATIC, DYNAMIC"},
		{"virtual disk size", false, func(a *AppD) { a.VirtualComputeDescriptor.VirtualDisk = []BlockStorageData{{SizeOfStorage: -1}} }, "virtualComputeDescriptor.virtualDisk[0].sizeOfStorage", "greater than 0"},
		{"capability without supportMandatory", false, func(a *AppD) {
			a.VirtualComputeDescriptor.RequestAdditionalCapabilities = []RequestedAdditionalCapabilityData{{RequestedAdditionalCapabilityName: "GPU", TargetPerformanceParameters: []KeyValuePairs{}}}
		}, "virtualComputeDescriptor.requestAdditionalCapabilities[0].supportMandatory", "is required"},
		{"logicalNode with a VM", false, func(a *AppD) { a.LogicalNode = []LogicalNodeRequirements{{ID: "n1"}} }, "logicalNode", "absent when virtualComputeDescriptor"},
		{"mcioIdentificationData with a VM", false, func(a *AppD) { a.McioIdentificationData = &McioIdentificationData{Name: "x", Type: "y"} }, "mcioIdentificationData", "absent"},
		{"two images with a VM", false, func(a *AppD) {
			img := a.SwImageDescriptor[0]
			img.ID = "other"
			a.SwImageDescriptor = append(a.SwImageDescriptor, img)
		}, "swImageDescriptor", "single image"},
		{"containers without mcioIdentificationData", true, func(a *AppD) { a.McioIdentificationData = nil }, "mcioIdentificationData", "is required"},
		{"container without image", true, func(a *AppD) { a.OsContainerDescriptor[1].SwImageDesc = nil }, "osContainerDescriptor[1].swImageDesc", "is required"},
		{"container image without id", true, func(a *AppD) {
			img := *a.OsContainerDescriptor[0].SwImageDesc
			img.ID = ""
			a.OsContainerDescriptor[0].SwImageDesc = &img
		}, "osContainerDescriptor[0].swImageDesc.id", "is required"},
		{"container limit below request", true, func(a *AppD) { a.OsContainerDescriptor[0].CPUResourceLimit = 100 }, "osContainerDescriptor[0].cpuResourceLimit", "below the requested"},
		{"container negative memory", true, func(a *AppD) { a.OsContainerDescriptor[0].RequestedMemoryResources = -1 }, "osContainerDescriptor[0].requestedMemoryResources", "negative"},
		{"duplicate container id", true, func(a *AppD) { a.OsContainerDescriptor[1].OsContainerDescID = "echo" }, "osContainerDescriptor[1].osContainerDescId", "duplicate identifier"},
		{"monitoring parameter", true, func(a *AppD) {
			a.OsContainerDescriptor[0].MonitoringParameters = []MonitoringParameter{{MonitoringParameterID: "m"}}
		}, "osContainerDescriptor[0].monitoringParameters[0].performanceMetric", "is required"},
		{"mcioConstraintParams", true, func(a *AppD) { a.McioConstraintParams = []string{"nodePool", "gpuPlease"} }, "mcioConstraintParams[1]", "not one of"},
		// Software images.
		{"no software image", false, func(a *AppD) { a.SwImageDescriptor = nil }, "swImageDescriptor", "is required"},
		{"duplicate image id", true, func(a *AppD) { a.SwImageDescriptor = append(a.SwImageDescriptor, a.SwImageDescriptor[0]) }, "swImageDescriptor[1].id", "duplicate identifier"},
		{"swImage missing", false, func(a *AppD) { a.SwImageDescriptor[0].SwImage = SwImageRef{} }, "swImageDescriptor[0].swImage", "is required"},
		{"containerFormat missing", false, func(a *AppD) { a.SwImageDescriptor[0].ContainerFormat = "" }, "swImageDescriptor[0].containerFormat", "is required"},
		{"checksum algorithm", false, func(a *AppD) { a.SwImageDescriptor[0].Checksum = &ChecksumData{Algorithm: "md5", Hash: "00"} }, "swImageDescriptor[0].checksum", "unsupported checksum algorithm"},
		{"checksum length", false, func(a *AppD) { a.SwImageDescriptor[0].Checksum = &ChecksumData{Algorithm: "sha-256", Hash: "abcd"} }, "swImageDescriptor[0].checksum", "64 hex digits"},
		{"image size negative", false, func(a *AppD) { a.SwImageDescriptor[0].Size = -3 }, "swImageDescriptor[0].size", "negative"},
		// Storage.
		{"storage type", false, func(a *AppD) {
			a.VirtualStorageDescriptor = []VirtualStorageDescriptor{{ID: "s", TypeOfStorage: "TAPE"}}
		}, "virtualStorageDescriptor[0].typeOfStorage", "not one of BLOCK, OBJECT, FILE"},
		{"block storage data missing", false, func(a *AppD) {
			a.VirtualStorageDescriptor = []VirtualStorageDescriptor{{ID: "s", TypeOfStorage: "BLOCK"}}
		}, "virtualStorageDescriptor[0].blockStorageData", "is required when typeOfStorage is BLOCK"},
		{"duplicate storage id", false, func(a *AppD) {
			s := VirtualStorageDescriptor{ID: "s", TypeOfStorage: "FILE", FileStorageData: &FileStorageData{SizeOfStorage: 1}}
			a.VirtualStorageDescriptor = []VirtualStorageDescriptor{s, s}
		}, "virtualStorageDescriptor[1].id", "duplicate identifier"},
		// External connection points.
		{"no appExtCpd", false, func(a *AppD) { a.AppExtCpd = nil }, "appExtCpd", "is required"},
		{"inherited_attributes missing", false, func(a *AppD) { a.AppExtCpd[0].InheritedAttributes = nil }, "appExtCpd[0].inherited_attributes", "is required"},
		{"service port out of range", false, func(a *AppD) { a.AppExtCpd[0].AdditionalServiceData[0].PortData[1].Port = 0 }, "appExtCpd[0].additionalServiceData[0].portData[1].port", "outside 1..65535"},
		{"service port protocol", false, func(a *AppD) { a.AppExtCpd[0].AdditionalServiceData[0].PortData[0].Protocol = "QUIC" }, "appExtCpd[0].additionalServiceData[0].portData[0].protocol", "not one of TCP, UDP, SCTP"},
		{"portConfigurable missing", false, func(a *AppD) { a.AppExtCpd[0].AdditionalServiceData[0].PortData[0].PortConfigurable = nil }, "appExtCpd[0].additionalServiceData[0].portData[0].portConfigurable", "is required"},
		{"network interface requirements empty", false, func(a *AppD) {
			a.AppExtCpd[0].VirtualNetworkInterfaceRequirements = []VirtualNetworkInterfaceRequirements{{Name: "x"}}
		}, "appExtCpd[0].virtualNetworkInterfaceRequirements[0]", "needs one of"},
		// Services, features, transports.
		{"required service without version", false, func(a *AppD) { a.AppServiceRequired = []ServiceDependency{{SerName: "RNIS"}} }, "appServiceRequired[0].version", "is required"},
		{"service category incomplete", false, func(a *AppD) {
			a.AppServiceOptional = []ServiceDependency{{SerName: "RNIS", Version: "2", SerCategory: &CategoryRef{Href: "h", ID: "i", Name: "n"}}}
		}, "appServiceOptional[0].serCategory.version", "is required"},
		{"produced service without name", false, func(a *AppD) { a.AppServiceProduced[0].SerName = "" }, "appServiceProduced[0].serName", "is required"},
		{"feature without version", false, func(a *AppD) { a.AppFeatureRequired = []FeatureDependency{{FeatureName: "UEIdentity"}} }, "appFeatureRequired[0].version", "is required"},
		{"transport dependency without transport", false, func(a *AppD) {
			a.TransportDependencies = []TransportDependency{{Serializers: []string{"JSON"}, Labels: []string{"l"}}}
		}, "transportDependencies[0].transport", "is required"},
		{"serializer lower case", false, func(a *AppD) {
			a.TransportDependencies = []TransportDependency{{Transport: restTransport(), Serializers: []string{"json"}, Labels: []string{"l"}}}
		}, "transportDependencies[0].serializers[0]", "UPPER_CASE extension"},
		{"labels missing", false, func(a *AppD) {
			a.TransportDependencies = []TransportDependency{{Transport: restTransport(), Serializers: []string{"CBOR"}}}
		}, "transportDependencies[0].labels", "is required"},
		{"transport security missing", false, func(a *AppD) {
			tr := restTransport()
			tr.Security = nil
			a.AppServiceProduced[0].TransportsSupported = OneOrMany[TransportsSupported]{{Transport: tr, Serializers: []string{"JSON"}}}
		}, "appServiceProduced[0].transportsSupported[0].transport.security", "is required"},
		{"oauth2 token endpoint", false, func(a *AppD) {
			tr := restTransport()
			tr.Security.OAuth2Info = &OAuth2Info{GrantTypes: []string{"OAUTH2_CLIENT_CREDENTIALS"}}
			a.AppServiceRequired = []ServiceDependency{{SerName: "x", Version: "1", SerTransportDependencies: []TransportDependency{{Transport: tr, Serializers: []string{"JSON"}, Labels: []string{"l"}}}}}
		}, "appServiceRequired[0].serTransportDependencies[0].transport.security.oAuth2Info.tokenEndpoint", "is required"},
		// Traffic rules.
		{"trafficRuleId missing", false, func(a *AppD) { rule(a).TrafficRuleID = "" }, "appTrafficRule[0].trafficRuleId", "is required"},
		{"filterType", false, func(a *AppD) { rule(a).FilterType = "STREAM" }, "appTrafficRule[0].filterType", "not one of FLOW, PACKET"},
		{"priority missing", false, func(a *AppD) { rule(a).Priority = nil }, "appTrafficRule[0].priority", "is required"},
		{"priority 256", false, func(a *AppD) { rule(a).Priority = ptr[int64](256) }, "appTrafficRule[0].priority", "outside 0..255"},
		{"priority -1", false, func(a *AppD) { rule(a).Priority = ptr[int64](-1) }, "appTrafficRule[0].priority", "outside 0..255"},
		{"no traffic filter", false, func(a *AppD) { rule(a).TrafficFilter = nil }, "appTrafficRule[0].trafficFilter", "at least one"},
		{"action unknown", false, func(a *AppD) { rule(a).Action = "FORWARD" }, "appTrafficRule[0].action", "not one of DROP"},
		{"DROP with an interface", false, func(a *AppD) { rule(a).Action = ActionDrop }, "appTrafficRule[0].dstInterface", "absent when action is DROP"},
		{"FORWARD with two interfaces", false, func(a *AppD) { rule(a).DstInterface = append(rule(a).DstInterface, rule(a).DstInterface[0]) }, "appTrafficRule[0].dstInterface", "takes 1"},
		{"DUPLICATE with one interface", false, func(a *AppD) { rule(a).Action = ActionDuplicateEncapsulated }, "appTrafficRule[0].dstInterface", "needs two"},
		{"duplicate trafficRuleId", false, func(a *AppD) { a.AppTrafficRule = append(a.AppTrafficRule, a.AppTrafficRule[0]) }, "appTrafficRule[1].trafficRuleId", "duplicate identifier"},
		{"srcAddress", false, func(a *AppD) { filter(a).SrcAddress = []string{"10.0.0.0/8", "10.1.2.3", "10.0.0.0/33"} }, "appTrafficRule[0].trafficFilter[0].srcAddress[2]", "not an IP address or prefix"},
		{"dstAddress range reversed", false, func(a *AppD) { filter(a).DstAddress = []string{"10.0.0.9-10.0.0.1"} }, "appTrafficRule[0].trafficFilter[0].dstAddress[0]", "ends before it starts"},
		{"range mixes families", false, func(a *AppD) { filter(a).DstAddress = []string{"10.0.0.1-2001:db8::1"} }, "appTrafficRule[0].trafficFilter[0].dstAddress[0]", "mixes IPv4 and IPv6"},
		{"non-contiguous mask", false, func(a *AppD) { filter(a).SrcAddress = []string{"10.0.0.0/255.0.255.0"} }, "appTrafficRule[0].trafficFilter[0].srcAddress[0]", "not an IP address or prefix"},
		{"zoned address", false, func(a *AppD) { filter(a).SrcAddress = []string{"fe80::1%eth0"} }, "appTrafficRule[0].trafficFilter[0].srcAddress[0]", "not an IP address"},
		{"tunnel address", false, func(a *AppD) { filter(a).TgtTunnelAddress = []string{"gnb-1"} }, "appTrafficRule[0].trafficFilter[0].tgtTunnelAddress[0]", "not an IP address"},
		{"port out of range", false, func(a *AppD) { filter(a).DstPort = []string{"7", "70000"} }, "appTrafficRule[0].trafficFilter[0].dstPort[1]", "0..65535"},
		{"port range reversed", false, func(a *AppD) { filter(a).SrcPort = []string{"2000-1000"} }, "appTrafficRule[0].trafficFilter[0].srcPort[0]", "ends before it starts"},
		{"port not a number", false, func(a *AppD) { filter(a).DstTunnelPort = []string{"+2152"} }, "appTrafficRule[0].trafficFilter[0].dstTunnelPort[0]", "not a port"},
		{"protocol", false, func(a *AppD) { filter(a).Protocol = []string{"tcp", "17", "HTTP"} }, "appTrafficRule[0].trafficFilter[0].protocol[2]", "not a protocol number"},
		{"protocol number", false, func(a *AppD) { filter(a).Protocol = []string{"256"} }, "appTrafficRule[0].trafficFilter[0].protocol[0]", "outside 0..255"},
		{"qCI", false, func(a *AppD) { filter(a).QCI = ptr[int64](0) }, "appTrafficRule[0].trafficFilter[0].qCI", "outside 1..255"},
		{"dSCP", false, func(a *AppD) { filter(a).DSCP = ptr[int64](64) }, "appTrafficRule[0].trafficFilter[0].dSCP", "outside 0..63"},
		{"tC", false, func(a *AppD) { filter(a).TC = ptr[int64](256) }, "appTrafficRule[0].trafficFilter[0].tC", "outside 0..255"},
		{"x-mecorch-dscp", false, func(a *AppD) { rule(a).XDSCP = ptr[int64](64) }, "appTrafficRule[0].x-mecorch-dscp", "outside 0..63"},
		{"x-mecorch-dscp on DROP", false, func(a *AppD) { rule(a).Action, rule(a).DstInterface, rule(a).XDSCP = ActionDrop, nil, ptr[int64](46) }, "appTrafficRule[0].x-mecorch-dscp", "absent when action is DROP"},
		// Interfaces and tunnels.
		{"interfaceType", false, func(a *AppD) { rule(a).DstInterface[0].InterfaceType = "VLAN" }, "appTrafficRule[0].dstInterface.interfaceType", "not one of TUNNEL, MAC, IP"},
		{"IP interface without address", false, func(a *AppD) { rule(a).DstInterface[0].DstIPAddress = "" }, "appTrafficRule[0].dstInterface.dstIPAddress", "is required"},
		{"IP interface bad address", false, func(a *AppD) { rule(a).DstInterface[0].DstIPAddress = "10.0.0.256" }, "appTrafficRule[0].dstInterface.dstIPAddress", "not an IP address"},
		{"TUNNEL without tunnelInfo", false, func(a *AppD) { rule(a).DstInterface[0] = InterfaceDescriptor{InterfaceType: InterfaceTunnel} }, "appTrafficRule[0].dstInterface.tunnelInfo", "is required"},
		{"tunnelInfo on an IP interface", false, func(a *AppD) { rule(a).DstInterface[0].TunnelInfo = tunnel() }, "appTrafficRule[0].dstInterface.tunnelInfo", "only allowed"},
		{"tunnelType", false, func(a *AppD) {
			ti := tunnel()
			ti.TunnelType = "VXLAN"
			rule(a).DstInterface[0] = InterfaceDescriptor{InterfaceType: InterfaceTunnel, TunnelInfo: ti}
		}, "appTrafficRule[0].dstInterface.tunnelInfo.tunnelType", "not one of GTP_U"},
		{"tunnel families differ", false, func(a *AppD) {
			ti := tunnel()
			ti.TunnelSrcAddress = "2001:db8::2"
			rule(a).DstInterface[0] = InterfaceDescriptor{InterfaceType: InterfaceTunnel, TunnelInfo: ti}
		}, "appTrafficRule[0].dstInterface.tunnelInfo.tunnelSrcAddress", "same address family"},
		{"MAC interface bad address", false, func(a *AppD) {
			rule(a).DstInterface[0] = InterfaceDescriptor{InterfaceType: InterfaceMAC, DstMACAddress: "02:00:00:00:00:01", SrcMACAddress: "02:00:00"}
		}, "appTrafficRule[0].dstInterface.srcMACAddress", "not a MAC address"},
		{"indexed interface path", false, func(a *AppD) {
			rule(a).Action = ActionDuplicateDecapsulated
			rule(a).DstInterface = InterfaceList{rule(a).DstInterface[0], {InterfaceType: InterfaceMAC}}
		}, "appTrafficRule[0].dstInterface[1].dstMACAddress", "is required"},
		// DNS rules.
		{"dnsRuleId missing", false, func(a *AppD) { a.AppDNSRule[0].DNSRuleID = "" }, "appDNSRule[0].dnsRuleId", "is required"},
		{"domainName", false, func(a *AppD) { a.AppDNSRule[0].DomainName = "echo..example" }, "appDNSRule[0].domainName", "labels are 1..63"},
		{"domainName characters", false, func(a *AppD) { a.AppDNSRule[0].DomainName = "echo mec.example" }, "appDNSRule[0].domainName", "not allowed"},
		{"ipAddressType", false, func(a *AppD) { a.AppDNSRule[0].IPAddressType = "IPV4" }, "appDNSRule[0].ipAddressType", "not one of IP_V4, IP_V6"},
		{"ipAddress family", false, func(a *AppD) { a.AppDNSRule[0].IPAddressType = IPv6 }, "appDNSRule[0].ipAddress", "does not match ipAddressType IP_V6"},
		{"ttl negative", false, func(a *AppD) { a.AppDNSRule[0].TTL = ptr[int64](-5) }, "appDNSRule[0].ttl", "outside 0.."},
		{"duplicate dnsRuleId", false, func(a *AppD) { a.AppDNSRule = append(a.AppDNSRule, a.AppDNSRule[0]) }, "appDNSRule[1].dnsRuleId", "duplicate identifier"},
		// Latency.
		{"maxLatency zero", false, func(a *AppD) { a.AppLatency.MaxLatency = 0 }, "appLatency.maxLatency", "greater than 0"},
		{"legacy time unit", false, func(a *AppD) { a.AppLatency = &LatencyDescriptor{Latency: 10, TimeUnit: "fortnight"} }, "appLatency.timeUnit", "not a time unit"},
		{"legacy latency overflow", false, func(a *AppD) { a.AppLatency = &LatencyDescriptor{Latency: 5, TimeUnit: "s"} }, "appLatency.latency", "exceeds the largest maxLatency"},
		{"legacy latency disagrees", false, func(a *AppD) { a.AppLatency = &LatencyDescriptor{MaxLatency: 1000, Latency: 10, TimeUnit: "ms"} }, "appLatency.maxLatency", "disagrees"},
		// Operation configs, context transfer, network policy.
		{"terminate timeout missing", false, func(a *AppD) { a.TerminateAppInstanceOpConfig.MinGracefulTerminationTimeout = nil }, "terminateAppInstanceOpConfig.minGracefulTerminationTimeout", "is required"},
		{"stop timeouts inverted", false, func(a *AppD) { a.ChangeAppInstanceStateOpConfig.MaxRecommendedGracefulStopTimeout = ptr(1.0) }, "changeAppInstanceStateOpConfig.maxRecommendedGracefulStopTimeout", "below minGracefulStopTimeout"},
		{"statefulApplication missing", false, func(a *AppD) { a.UserContextTransferCapability.StatefulApplication = nil }, "userContextTransferCapability.statefulApplication", "is required"},
		{"stateful without support flag", false, func(a *AppD) { a.UserContextTransferCapability.StatefulApplication = ptr(true) }, "userContextTransferCapability.userContextTransferSupport", "required when statefulApplication is true"},
		{"stateless with support flag", false, func(a *AppD) { a.UserContextTransferCapability.UserContextTransferSupport = ptr(true) }, "userContextTransferCapability.userContextTransferSupport", "absent when statefulApplication is false"},
		{"network policy", false, func(a *AppD) { a.AppNetworkPolicy = &AppNetworkPolicy{} }, "appNetworkPolicy.steeredNetwork", "is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := sampleAppD(t)
			if tt.containers {
				a = containerAppD(t)
			}
			tt.edit(a)
			wantOnly(t, a.Validate(), tt.path, tt.want)
		})
	}
}

func restTransport() *TransportDescriptor {
	return &TransportDescriptor{Name: "rest", Type: "REST_HTTP", Protocol: "HTTP", Version: "1.1", Security: &SecurityInfo{}}
}

// Forms the validator must accept; each would be easy to refuse by mistake.
func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name string
		edit func(a *AppD)
	}{
		{"priority 0 is the highest", func(a *AppD) { a.AppTrafficRule[0].Priority = ptr[int64](0) }},
		{"DSCP 0", func(a *AppD) { a.AppTrafficRule[0].TrafficFilter[0].DSCP = ptr[int64](0) }},
		{"re-mark to EF", func(a *AppD) { a.AppTrafficRule[0].XDSCP = ptr[int64](46) }},
		{"address forms", func(a *AppD) {
			a.AppTrafficRule[0].TrafficFilter[0].SrcAddress = []string{"10.0.0.1", "10.0.0.0/255.255.0.0", "10.0.0.1-10.0.0.9", "2001:db8::/32", "2001:db8::/48-2001:db8:1::/48", "::ffff:10.0.0.1"}
		}},
		{"port range", func(a *AppD) { a.AppTrafficRule[0].TrafficFilter[0].DstPort = []string{"0-65535", "7"} }},
		{"legacy action name", func(a *AppD) { a.AppTrafficRule[0].Action = "FORWARD_AS_IS" }},
		{"forward without interface", func(a *AppD) { a.AppTrafficRule[0].DstInterface = nil }},
		{"GTP-U tunnel, v2 spelling", func(a *AppD) {
			a.AppTrafficRule[0].DstInterface[0] = InterfaceDescriptor{InterfaceType: InterfaceTunnel, TunnelInfo: &TunnelInfo{TunnelType: "GTP-U", TunnelDstAddress: "192.0.2.1", TunnelSrcAddress: "192.0.2.2"}}
		}},
		{"wildcard and trailing dot", func(a *AppD) { a.AppDNSRule[0].DomainName = "*.echo.mec.example." }},
		{"IPv6 DNS answer", func(a *AppD) { a.AppDNSRule[0].IPAddressType, a.AppDNSRule[0].IPAddress = IPv6, "2001:db8::7" }},
		{"legacy latency", func(a *AppD) { a.AppLatency = &LatencyDescriptor{Latency: 10, TimeUnit: "ms"} }},
		{"stateful with support", func(a *AppD) {
			a.UserContextTransferCapability = &UserContextTransferCapability{StatefulApplication: ptr(true), UserContextTransferSupport: ptr(false)}
		}},
		{"extension transport type", func(a *AppD) {
			tr := restTransport()
			tr.Type = "QUIC_STREAM"
			a.TransportDependencies = []TransportDependency{{Transport: tr, Serializers: []string{"CBOR"}, Labels: []string{"l"}}}
		}},
		{"implicit grant needs no endpoint", func(a *AppD) {
			tr := restTransport()
			tr.Security.OAuth2Info = &OAuth2Info{GrantTypes: []string{"OAUTH2_IMPLICIT_GRANT"}}
			a.TransportDependencies = []TransportDependency{{Transport: tr, Serializers: []string{"JSON"}, Labels: []string{"l"}}}
		}},
		{"checksum upper-case hex", func(a *AppD) {
			a.SwImageDescriptor[0].Checksum = &ChecksumData{Algorithm: "SHA-256", Hash: strings.Repeat("AB", 32)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := sampleAppD(t)
			tt.edit(a)
			if errs := a.Validate(); errs != nil {
				t.Errorf("unexpected errors: %v", errs)
			}
		})
	}
}
