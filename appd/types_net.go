package appd

import "time"

// TrafficRuleDescriptor (clause 6.2.1.9). Priority 0 is the highest and 255
// the lowest.
type TrafficRuleDescriptor struct {
	TrafficRuleID string          `json:"trafficRuleId" yaml:"trafficRuleId"`
	FilterType    FilterType      `json:"filterType" yaml:"filterType"`
	Priority      *int64          `json:"priority" yaml:"priority"`
	TrafficFilter []TrafficFilter `json:"trafficFilter" yaml:"trafficFilter"`
	Action        TrafficAction   `json:"action" yaml:"action"`
	// DstInterface is one object in v3 and an array of up to two in v2; the
	// duplicate actions need two (client side first, core side second).
	DstInterface InterfaceList `json:"dstInterface,omitempty" yaml:"dstInterface,omitempty"`
	// XDSCP is mecorch's extension x-mecorch-dscp (0-63): the DSCP the edge
	// re-marks matching traffic with (what reaches the app; for PASSTHROUGH
	// the packet going on). MEC 011 has no such field.
	XDSCP *int64 `json:"x-mecorch-dscp,omitempty" yaml:"x-mecorch-dscp,omitempty"`
}

// TrafficFilter (clause 6.2.1.10). Addresses are an address, a prefix
// (address/length or, for IPv4, address/dotted-mask) or a range a-b; ports
// are a port or a range lo-hi.
type TrafficFilter struct {
	SrcAddress       []string `json:"srcAddress,omitempty" yaml:"srcAddress,omitempty"`
	DstAddress       []string `json:"dstAddress,omitempty" yaml:"dstAddress,omitempty"`
	SrcPort          []string `json:"srcPort,omitempty" yaml:"srcPort,omitempty"`
	DstPort          []string `json:"dstPort,omitempty" yaml:"dstPort,omitempty"`
	Protocol         []string `json:"protocol,omitempty" yaml:"protocol,omitempty"`
	Tag              []string `json:"tag,omitempty" yaml:"tag,omitempty"`
	URI              []string `json:"uri,omitempty" yaml:"uri,omitempty"`
	PacketLabel      []string `json:"packetLabel,omitempty" yaml:"packetLabel,omitempty"`
	SrcTunnelAddress []string `json:"srcTunnelAddress,omitempty" yaml:"srcTunnelAddress,omitempty"`
	TgtTunnelAddress []string `json:"tgtTunnelAddress,omitempty" yaml:"tgtTunnelAddress,omitempty"`
	SrcTunnelPort    []string `json:"srcTunnelPort,omitempty" yaml:"srcTunnelPort,omitempty"`
	DstTunnelPort    []string `json:"dstTunnelPort,omitempty" yaml:"dstTunnelPort,omitempty"`
	QCI              *int64   `json:"qCI,omitempty" yaml:"qCI,omitempty"`
	DSCP             *int64   `json:"dSCP,omitempty" yaml:"dSCP,omitempty"`
	TC               *int64   `json:"tC,omitempty" yaml:"tC,omitempty"`
}

// InterfaceDescriptor (clause 6.2.1.11).
type InterfaceDescriptor struct {
	InterfaceType InterfaceType `json:"interfaceType" yaml:"interfaceType"`
	TunnelInfo    *TunnelInfo   `json:"tunnelInfo,omitempty" yaml:"tunnelInfo,omitempty"`
	SrcMACAddress string        `json:"srcMACAddress,omitempty" yaml:"srcMACAddress,omitempty"`
	DstMACAddress string        `json:"dstMACAddress,omitempty" yaml:"dstMACAddress,omitempty"`
	DstIPAddress  string        `json:"dstIPAddress,omitempty" yaml:"dstIPAddress,omitempty"`
}

// TunnelInfo (clause 6.2.1.12).
type TunnelInfo struct {
	TunnelType         TunnelType `json:"tunnelType" yaml:"tunnelType"`
	TunnelDstAddress   string     `json:"tunnelDstAddress" yaml:"tunnelDstAddress"`
	TunnelSrcAddress   string     `json:"tunnelSrcAddress" yaml:"tunnelSrcAddress"`
	TunnelSpecificData any        `json:"tunnelSpecificData,omitempty" yaml:"tunnelSpecificData,omitempty"`
}

// DNSRuleDescriptor (clause 6.2.1.13). TTL is in seconds.
type DNSRuleDescriptor struct {
	DNSRuleID     string        `json:"dnsRuleId" yaml:"dnsRuleId"`
	DomainName    string        `json:"domainName" yaml:"domainName"`
	IPAddressType IPAddressType `json:"ipAddressType" yaml:"ipAddressType"`
	IPAddress     string        `json:"ipAddress" yaml:"ipAddress"`
	TTL           *int64        `json:"ttl,omitempty" yaml:"ttl,omitempty"`
}

// LatencyDescriptor (clause 6.2.1.14): MaxLatency is the one-way latency
// between the client and the app instance the app tolerates, in
// nanoseconds. TimeUnit and Latency are an older form of the same value
// (a number and its unit); Parse converts them into MaxLatency.
type LatencyDescriptor struct {
	MaxLatency uint32  `json:"maxLatency" yaml:"maxLatency"`
	TimeUnit   string  `json:"timeUnit,omitempty" yaml:"timeUnit,omitempty"`
	Latency    float64 `json:"latency,omitempty" yaml:"latency,omitempty"`
}

// MaxLatencyDuration is MaxLatency as a time.Duration.
func (l *LatencyDescriptor) MaxLatencyDuration() time.Duration {
	if l == nil {
		return 0
	}
	return time.Duration(l.MaxLatency) * time.Nanosecond
}

func (l *LatencyDescriptor) hasLegacy() bool {
	return l.TimeUnit != "" || l.Latency != 0
}
