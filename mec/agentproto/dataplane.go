package agentproto

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Bandwidth is what an instance's interface may carry, in bits per second,
// from its AppD's x-mecorch-bandwidth (shaped after MEC 015 BwInfo) or,
// later, from MEC 015 allocations. The directions are MEC 015's: downlink
// is towards the UE, that is what the instance sends; uplink is towards
// the application, what the instance receives. A nil direction is not
// shaped.
type Bandwidth struct {
	Downlink *Rate `json:"downlink,omitempty"` // from the instance, towards the UE
	Uplink   *Rate `json:"uplink,omitempty"`   // towards the instance
}

// Rate is an HTB class: RateBps guaranteed, up to CeilBps when the link
// has room (CeilBps 0 means RateBps).
type Rate struct {
	RateBps uint64 `json:"rateBps"`
	CeilBps uint64 `json:"ceilBps,omitempty"`
}

// Bounds of a Rate: HTB takes 64-bit rates, but below 8 kbit/s a class
// starves its own control traffic, and above 400 Gbit/s is a typo.
const (
	MinRateBps = 8_000
	MaxRateBps = 400_000_000_000
)

// UETunnel is a UE's downlink GTP-U tunnel as the operator provisions it
// (the agent also learns them from downlink traffic): how an app's reply
// reaches the UE through the RAN.
type UETunnel struct {
	UEAddress     string `json:"ueAddress"`     // the UE's IP address
	GNBAddress    string `json:"gnbAddress"`    // outer destination: the gNB's N3 address (IPv4)
	TEID          uint32 `json:"teid"`          // downlink TEID, allocated by the gNB
	QFI           int    `json:"qfi"`           // 0-63
	SourceAddress string `json:"sourceAddress"` // outer source: the N3 address the gNB expects (the UPF's; IPv4)
}

// RemoteInstance is an instance on another host that this host's data
// plane steers to over the VXLAN overlay, because the app has no instance
// here: its traffic rules, and where to send what matches.
type RemoteInstance struct {
	ID           string        `json:"id"`
	AppDID       string        `json:"appDId"`
	HostID       string        `json:"hostId"`
	VTEP         string        `json:"vtep"` // the host's underlay address
	MAC          string        `json:"mac"`  // the instance's own interface
	TrafficRules []TrafficRule `json:"trafficRules"`
	// DNSRules are the app's, so that this host's DNS responder answers
	// for it too (the service addresses are the app's, not the instance's).
	DNSRules []DNSRule `json:"dnsRules,omitempty"`
}

// TunnelPeer is another host with a VXLAN endpoint.
type TunnelPeer struct {
	HostID string `json:"hostId"`
	VTEP   string `json:"vtep"`
}

// RuleCounter is what one traffic rule of one instance has matched on
// this host since the agent started. Remote is set for rules steering to an
// instance on another host.
type RuleCounter struct {
	InstanceID    string `json:"instanceId"`
	TrafficRuleID string `json:"trafficRuleId"`
	Packets       uint64 `json:"packets"`
	Bytes         uint64 `json:"bytes"`
	Remote        bool   `json:"remote,omitempty"`
}

// DataPlaneStats are the host data plane's event counts since the agent
// started, and the size of its UE map.
type DataPlaneStats struct {
	UEs              int    `json:"ues"`              // UE tunnels known (learnt and provisioned)
	Learned          uint64 `json:"learned"`          // UE map writes from downlink GTP-U
	DroppedUnknownUE uint64 `json:"droppedUnknownUe"` // replies to a UE with no known tunnel
	SteerFailed      uint64 `json:"steerFailed"`
	EncapFailed      uint64 `json:"encapFailed"`
	TooBig           uint64 `json:"tooBig"` // replies dropped: too big for the tunnel (GSO, or past the uplink MTU)
}

// Bounds of the data-plane lists.
const (
	MaxUETunnels = 65536
	MaxRemote    = 1024
	MaxPeers     = 1024
	MaxCounters  = 16384
)

func (c *checker) addr(path, v string, want4 bool) {
	a, err := netip.ParseAddr(v)
	switch {
	case err != nil || a.Zone() != "":
		c.add(path, "must be an IP address")
	case want4 && !a.Unmap().Is4():
		c.add(path, "must be an IPv4 address")
	case a.IsUnspecified() || a.IsMulticast():
		c.add(path, "must be a unicast address")
	}
}

func (c *checker) bandwidth(path string, b *Bandwidth) {
	if b == nil {
		return
	}
	for _, d := range []struct {
		name string
		r    *Rate
	}{{"downlink", b.Downlink}, {"uplink", b.Uplink}} {
		if d.r == nil {
			continue
		}
		p := path + "." + d.name
		if d.r.RateBps < MinRateBps || d.r.RateBps > MaxRateBps {
			c.add(p+".rateBps", fmt.Sprintf("must be from %d to %d", MinRateBps, MaxRateBps))
		}
		if d.r.CeilBps != 0 && (d.r.CeilBps < d.r.RateBps || d.r.CeilBps > MaxRateBps) {
			c.add(p+".ceilBps", fmt.Sprintf("must be 0, or from rateBps to %d", MaxRateBps))
		}
	}
}

func (c *checker) ueTunnels(path string, ts []UETunnel) {
	if len(ts) > MaxUETunnels {
		c.add(path, fmt.Sprintf("at most %d tunnels", MaxUETunnels))
		return
	}
	seen := make(map[netip.Addr]bool, len(ts))
	for i, t := range ts {
		p := path + "[" + strconv.Itoa(i) + "]"
		c.addr(p+".ueAddress", t.UEAddress, false)
		if a, err := netip.ParseAddr(t.UEAddress); err == nil {
			if seen[a.Unmap()] {
				c.add(p+".ueAddress", "given twice")
			}
			seen[a.Unmap()] = true
		}
		c.addr(p+".gnbAddress", t.GNBAddress, true)
		c.addr(p+".sourceAddress", t.SourceAddress, true)
		c.between(p+".qfi", int64(t.QFI), 0, 63)
	}
}

func (c *checker) mac(path, v string) {
	if m, err := net.ParseMAC(v); err != nil || len(m) != 6 || m[0]&1 == 1 {
		c.add(path, "must be a unicast Ethernet address")
	}
}

func (c *checker) remote(path string, rs []RemoteInstance) {
	if len(rs) > MaxRemote {
		c.add(path, fmt.Sprintf("at most %d remote instances", MaxRemote))
		return
	}
	seen := make(map[string]bool, len(rs))
	for i, r := range rs {
		p := path + "[" + strconv.Itoa(i) + "]"
		c.uniqueID(p+".id", r.ID, seen)
		c.maxLen(p+".appDId", r.AppDID, maxAddrLen)
		c.id(p+".hostId", r.HostID)
		c.addr(p+".vtep", r.VTEP, false)
		c.mac(p+".mac", r.MAC)
		c.trafficRules(p+".trafficRules", r.TrafficRules)
		c.dnsRules(p+".dnsRules", r.DNSRules)
	}
}

func (c *checker) peers(path string, ps []TunnelPeer) {
	if len(ps) > MaxPeers {
		c.add(path, fmt.Sprintf("at most %d peers", MaxPeers))
		return
	}
	seen := make(map[string]bool, len(ps))
	for i, t := range ps {
		p := path + "[" + strconv.Itoa(i) + "]"
		c.uniqueID(p+".hostId", t.HostID, seen)
		c.addr(p+".vtep", t.VTEP, false)
	}
}

func (c *checker) counters(path string, cs []RuleCounter) {
	if len(cs) > MaxCounters {
		c.add(path, fmt.Sprintf("at most %d counters", MaxCounters))
		return
	}
	for i, r := range cs {
		p := path + "[" + strconv.Itoa(i) + "]"
		c.id(p+".instanceId", r.InstanceID)
		c.id(p+".trafficRuleId", r.TrafficRuleID)
	}
}
