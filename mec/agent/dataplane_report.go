package agent

import (
	"net"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mecorch/mecorch/mec/agentproto"
)

// Report gives the per-rule counters of the instances' rules (the DNS
// steering rule is the host's, and only on /metrics) and the data plane's
// event counts. Errors reading the maps leave the part out: a report is
// never held up by them.
func (s *Steering) Report() ([]agentproto.RuleCounter, *agentproto.DataPlaneStats) {
	s.mu.Lock()
	remote := make(map[string]bool, len(s.remote))
	for k := range s.remote {
		remote[k] = true
	}
	s.mu.Unlock()
	var out []agentproto.RuleCounter
	if cs, err := s.cls.Counters(); err == nil {
		for id, c := range cs {
			inst, rule, ok := strings.Cut(id, "/")
			if !ok || inst == dnsRuleOwner {
				continue
			}
			out = append(out, agentproto.RuleCounter{InstanceID: inst, TrafficRuleID: rule, Packets: c.Packets, Bytes: c.Bytes, Remote: remote[id]})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].InstanceID != out[j].InstanceID {
			return out[i].InstanceID < out[j].InstanceID
		}
		return out[i].TrafficRuleID < out[j].TrafficRuleID
	})
	if len(out) > agentproto.MaxCounters {
		out = out[:agentproto.MaxCounters]
	}
	st, err := s.cls.Stats()
	if err != nil {
		return out, nil
	}
	dp := &agentproto.DataPlaneStats{Learned: st.Learned, DroppedUnknownUE: st.DroppedUnknownUE,
		SteerFailed: st.SteerFailed, EncapFailed: st.EncapFailed, TooBig: st.TooBig}
	if ues, err := s.cls.UEs(); err == nil {
		dp.UEs = len(ues)
	}
	return out, dp
}

// dnsRuleOwner is the ID prefix of the host's own DNS steering rule.
const dnsRuleOwner = "dns"

// MACs are the running instances' own MACs.
func (s *Steering) MACs() map[string]net.HardwareAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]net.HardwareAddr, len(s.inst))
	for id, st := range s.inst {
		if st.mac != nil {
			out[id] = st.mac
		}
	}
	return out
}

// Collector exposes the data plane on the agent's Prometheus /metrics.
func (s *Steering) Collector() prometheus.Collector {
	return steeringCollector{s: s,
		rulePackets: prometheus.NewDesc("mecorch_agent_traffic_rule_packets_total",
			"Packets a traffic rule matched on this host since the agent started.", []string{"instance", "rule", "remote"}, nil),
		ruleBytes: prometheus.NewDesc("mecorch_agent_traffic_rule_bytes_total",
			"Bytes a traffic rule matched on this host since the agent started.", []string{"instance", "rule", "remote"}, nil),
		events: prometheus.NewDesc("mecorch_agent_dataplane_events_total",
			"Data-plane events: learned (UE tunnel writes), dropped_unknown_ue, steer_failed, encap_failed, too_big.", []string{"event"}, nil),
		ues: prometheus.NewDesc("mecorch_agent_ue_tunnels",
			"UE tunnels in the return path's map (learnt and provisioned).", nil, nil),
		dns: prometheus.NewDesc("mecorch_agent_dns_queries_total",
			"Queries the edge DNS responder handled, by outcome.", []string{"outcome"}, nil),
	}
}

type steeringCollector struct {
	s                                        *Steering
	rulePackets, ruleBytes, events, ues, dns *prometheus.Desc
}

func (c steeringCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rulePackets, c.ruleBytes, c.events, c.ues, c.dns} {
		ch <- d
	}
}

func (c steeringCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	s.mu.Lock()
	remote := make(map[string]bool, len(s.remote))
	for k := range s.remote {
		remote[k] = true
	}
	s.mu.Unlock()
	if cs, err := s.cls.Counters(); err == nil {
		for id, v := range cs {
			inst, rule, _ := strings.Cut(id, "/")
			r := "false"
			if remote[id] {
				r = "true"
			}
			ch <- prometheus.MustNewConstMetric(c.rulePackets, prometheus.CounterValue, float64(v.Packets), inst, rule, r)
			ch <- prometheus.MustNewConstMetric(c.ruleBytes, prometheus.CounterValue, float64(v.Bytes), inst, rule, r)
		}
	}
	if st, err := s.cls.Stats(); err == nil {
		for _, e := range []struct {
			name string
			v    uint64
		}{{"learned", st.Learned}, {"dropped_unknown_ue", st.DroppedUnknownUE}, {"steer_failed", st.SteerFailed},
			{"encap_failed", st.EncapFailed}, {"too_big", st.TooBig}} {
			ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(e.v), e.name)
		}
	}
	if ues, err := s.cls.UEs(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.ues, prometheus.GaugeValue, float64(len(ues)))
	}
	if s.dns != nil {
		d := s.dns.Counters()
		for _, e := range []struct {
			name string
			v    uint64
		}{{"local", d.Local}, {"forwarded", d.Forwarded}, {"upstream_failure", d.UpstreamFailures}, {"refused", d.Refused}} {
			ch <- prometheus.MustNewConstMetric(c.dns, prometheus.CounterValue, float64(e.v), e.name)
		}
	}
}
