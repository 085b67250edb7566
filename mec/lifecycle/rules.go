package lifecycle

import (
	"encoding/json"
	"fmt"

	"github.com/mecorch/mecorch/appd"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/agentproto"
)

// appRules is what a package's AppD asks of the data plane: its traffic
// rules and DNS rules, in the agent's terms.
type appRules struct {
	traffic   []agentproto.TrafficRule
	dns       []agentproto.DNSRule
	bandwidth *agentproto.Bandwidth // from x-mecorch-bandwidth; nil: not shaped
}

// rulesOf reads the rules of pkg's AppD (validated at onboarding, so they
// are only translated here).
func rulesOf(pkg mec.AppPackage) (appRules, error) {
	var a appd.AppD
	if err := json.Unmarshal(pkg.AppD, &a); err != nil {
		return appRules{}, fmt.Errorf("decode AppD of package %s: %w", pkg.ID, err)
	}
	var out appRules
	for _, r := range a.AppTrafficRule {
		tr := agentproto.TrafficRule{ID: r.TrafficRuleID, FilterType: string(r.FilterType),
			Action: string(r.Action.Canonical())}
		if r.Priority != nil {
			tr.Priority = int(*r.Priority)
		}
		tr.SetDSCP = intOf(r.XDSCP)
		for _, f := range r.TrafficFilter {
			tr.Filters = append(tr.Filters, agentproto.TrafficFilter{
				SrcAddress: f.SrcAddress, DstAddress: f.DstAddress, SrcPort: f.SrcPort, DstPort: f.DstPort,
				Protocol: f.Protocol, Tag: f.Tag, SrcTunnelAddress: f.SrcTunnelAddress, TgtTunnelAddress: f.TgtTunnelAddress,
				SrcTunnelPort: f.SrcTunnelPort, DstTunnelPort: f.DstTunnelPort,
				QCI: intOf(f.QCI), DSCP: intOf(f.DSCP), TC: intOf(f.TC),
			})
		}
		out.traffic = append(out.traffic, tr)
	}
	for _, r := range a.AppDNSRule {
		dr := agentproto.DNSRule{ID: r.DNSRuleID, DomainName: r.DomainName, IPAddressType: string(r.IPAddressType), IPAddress: r.IPAddress}
		if r.TTL != nil {
			dr.TTL = int(*r.TTL)
		}
		out.dns = append(out.dns, dr)
	}
	out.bandwidth = bandwidthOf(a.Bandwidth)
	return out, nil
}

// bandwidthOf turns x-mecorch-bandwidth (MEC 015's directions: downlink is
// towards the UE, uplink towards the app) into the agent's rates; nil when
// the AppD asks for none.
func bandwidthOf(bw []appd.BandwidthDescriptor) *agentproto.Bandwidth {
	down, up, downOK, upOK := appd.Rates(bw)
	if !downOK && !upOK {
		return nil
	}
	var out agentproto.Bandwidth
	if downOK {
		out.Downlink = &agentproto.Rate{RateBps: down.FixedBps, CeilBps: down.CeilBps}
	}
	if upOK {
		out.Uplink = &agentproto.Rate{RateBps: up.FixedBps, CeilBps: up.CeilBps}
	}
	return &out
}

func intOf(v *int64) *int {
	if v == nil {
		return nil
	}
	i := int(*v)
	return &i
}
