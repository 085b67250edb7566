package agentproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/mecorch/mecorch/latency"
	"github.com/mecorch/mecorch/mec"
)

// Bounds of body fields.
const (
	MaxIDLen      = 128 // host, site and instance IDs
	maxVersionLen = 128
	maxLabelKey   = 128
	maxLabelValue = 1024
	maxTokenLen   = 16 << 10
	maxCodeLen    = 64
	maxAddrLen    = 256
)

// DecodeBody reads f's body into v, strictly (no unknown fields, no
// trailing data), and validates it when v is one of this package's body
// types: *Hello, *Welcome, *DesiredState, *Report (type status),
// *Heartbeat, *LogsRequest, *Logs, *Paths, *Error. A body type that does
// not belong to f.Type is refused with CodeUnexpected; anything else wrong
// is CodeBadFrame with the field paths in ProtocolError.Params.
func DecodeBody(f Frame, v any) error {
	if want := bodyTypeFor(v); want != "" && want != f.Type {
		return protoErr(CodeUnexpected, "a %s frame does not carry a %s body", truncate(f.Type, 64), want)
	}
	if len(bytes.TrimSpace(f.Body)) == 0 {
		return protoErr(CodeBadFrame, "%s body is missing", truncate(f.Type, 64))
	}
	dec := json.NewDecoder(bytes.NewReader(f.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return protoErr(CodeBadFrame, "%s body: %s", truncate(f.Type, 64), jsonReason(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return protoErr(CodeBadFrame, "%s body: trailing data after the JSON value", truncate(f.Type, 64))
	}
	return validate(v)
}

// bodyTypeFor names the message type whose body v is, or "" for a type
// this package does not know (decoded strictly, not validated).
func bodyTypeFor(v any) string {
	switch v.(type) {
	case *Hello:
		return TypeHello
	case *Welcome:
		return TypeWelcome
	case *DesiredState:
		return TypeDesired
	case *Report:
		return TypeStatus
	case *Heartbeat:
		return TypeHeartbeat
	case *LogsRequest:
		return TypeLogsRequest
	case *Logs:
		return TypeLogs
	case *Paths:
		return TypePaths
	case *ProbePlan:
		return TypeProbePlan
	case *RTTReport:
		return TypeRTT
	case *Error:
		return TypeError
	}
	return ""
}

func validate(v any) error {
	var c checker
	switch b := v.(type) {
	case *Hello:
		c.id("hostId", b.HostID)
		c.id("siteId", b.SiteID)
		c.maxLen("agentVersion", b.AgentVersion, maxVersionLen)
		c.resources("capacity", b.Capacity)
		c.nonNegative("generation", b.Generation)
		for _, k := range slices.Sorted(maps.Keys(b.Labels)) {
			if k == "" || len(k) > maxLabelKey || !utf8.ValidString(k) {
				c.add("labels", fmt.Sprintf("a label key must be 1 to %d bytes of UTF-8", maxLabelKey))
				continue
			}
			c.maxLen("labels."+k, b.Labels[k], maxLabelValue)
		}
		if b.ProbeAddr != "" {
			c.hostPort("probeAddr", b.ProbeAddr, true)
		}
		if b.VTEP != "" {
			c.addr("vtep", b.VTEP, false)
		}
		if len(b.Token) > maxTokenLen {
			c.add("token", fmt.Sprintf("at most %d bytes", maxTokenLen)) // never the value
		}
		return invalid(TypeHello, c.params)
	case *Welcome:
		c.nonNegative("heartbeatIntervalMs", b.HeartbeatIntervalMs)
		c.maxLen("serverVersion", b.ServerVersion, maxVersionLen)
		return invalid(TypeWelcome, c.params)
	case *DesiredState:
		c.id("hostId", b.HostID)
		c.nonNegative("generation", b.Generation)
		seen := make(map[string]bool, len(b.Instances))
		for i, in := range b.Instances {
			p := "instances[" + strconv.Itoa(i) + "]"
			c.uniqueID(p+".id", in.ID, seen)
			c.maxLen(p+".appDId", in.AppDID, maxAddrLen)
			c.maxLen(p+".appPkgId", in.AppPkgID, maxAddrLen)
			c.oneOf(p+".state", in.State, DesiredRunning, DesiredStopped, DesiredAbsentState)
			c.resources(p+".resources", in.Resources)
			c.nonNegative(p+".stopGraceSeconds", int64(in.StopGraceSeconds))
			c.trafficRules(p+".trafficRules", in.TrafficRules)
			c.dnsRules(p+".dnsRules", in.DNSRules)
			c.bandwidth(p+".bandwidth", in.Bandwidth)
		}
		c.ueTunnels("ueTunnels", b.UETunnels)
		c.remote("remoteInstances", b.Remote)
		c.peers("tunnelPeers", b.Peers)
		return invalid(TypeDesired, c.params)
	case *Report:
		// hostId may be empty on HTTP (the path names the host); on the
		// channel the session compares it with the hello's.
		c.maxLen("hostId", b.HostID, MaxIDLen)
		c.nonNegative("generation", b.Generation)
		c.maxLen("agentVersion", b.AgentVersion, maxVersionLen)
		c.usage("usage", b.Usage)
		seen := make(map[string]bool, len(b.Instances))
		for i, in := range b.Instances {
			p := "instances[" + strconv.Itoa(i) + "]"
			c.uniqueID(p+".id", in.ID, seen)
			c.oneOf(p+".state", in.State, ObservedRunning, ObservedStopped, ObservedFailed)
			c.maxLen(p+".address", in.Address, maxAddrLen)
			c.nonNegative(p+".restarts", int64(in.Restarts))
			c.usage(p+".usage", in.Usage)
			if in.MAC != "" {
				c.mac(p+".mac", in.MAC)
			}
		}
		c.counters("trafficRuleCounters", b.TrafficRuleCounters)
		return invalid(TypeStatus, c.params)
	case *Heartbeat:
		if b.Time.IsZero() {
			c.add("time", "required")
		}
		c.nonNegative("generation", b.Generation)
		return invalid(TypeHeartbeat, c.params)
	case *LogsRequest:
		c.id("instanceId", b.InstanceID)
		if b.MaxBytes < 1 || b.MaxBytes > MaxFrameBytes {
			c.add("maxBytes", fmt.Sprintf("must be from 1 to %d", MaxFrameBytes))
		}
		return invalid(TypeLogsRequest, c.params)
	case *Logs:
		c.id("instanceId", b.InstanceID)
		return invalid(TypeLogs, c.params)
	case *Paths:
		for i, p := range b.Paths {
			pp := "paths[" + strconv.Itoa(i) + "]"
			c.required(pp+".local", p.Local, maxAddrLen)
			c.required(pp+".remote", p.Remote, maxAddrLen)
			c.oneOf(pp+".state", p.State, PathActive, PathInactive)
			c.nonNegative(pp+".srttMicros", p.SRTTMicros)
		}
		return invalid(TypePaths, c.params)
	case *ProbePlan:
		if len(b.Targets) > MaxProbeTargets {
			c.add("targets", fmt.Sprintf("at most %d targets", MaxProbeTargets))
		}
		seen := make(map[string]bool, len(b.Targets))
		for i, t := range b.Targets {
			p := "targets[" + strconv.Itoa(i) + "]"
			c.oneOf(p+".kind", t.Kind, TargetHost, TargetCell)
			c.id(p+".id", t.ID)
			if key := t.Kind + "/" + t.ID; seen[key] {
				c.add(p+".id", "the plan names this "+truncate(t.Kind, 8)+" twice")
			} else {
				seen[key] = true
			}
			c.hostPort(p+".addr", t.Addr, false)
		}
		if len(b.Targets) > 0 {
			c.between("intervalMs", b.IntervalMs, MinProbeInterval.Milliseconds(), MaxProbeInterval.Milliseconds())
			c.between("windowMs", b.WindowMs, MinProbeWindow.Milliseconds(), MaxProbeWindow.Milliseconds())
		}
		return invalid(TypeProbePlan, c.params)
	case *RTTReport:
		if len(b.Results) > MaxProbeTargets {
			c.add("results", fmt.Sprintf("at most %d results", MaxProbeTargets))
		}
		for i, r := range b.Results {
			p := "results[" + strconv.Itoa(i) + "]"
			c.id(p+".target", r.Target)
			c.oneOf(p+".kind", r.Kind, TargetHost, TargetCell)
			c.stats(p+".stats", r.Stats)
		}
		return invalid(TypeRTT, c.params)
	case *Error:
		c.required("code", b.Code, maxCodeLen)
		return invalid(TypeError, c.params)
	}
	return nil
}

// checker collects every wrong field, so that one refusal names them all.
type checker struct{ params []mec.InvalidParam }

func (c *checker) add(path, reason string) {
	c.params = append(c.params, mec.InvalidParam{Name: path, Reason: reason})
}

func (c *checker) id(path, v string) { c.required(path, v, MaxIDLen) }

func (c *checker) required(path, v string, max int) {
	if v == "" {
		c.add(path, "required")
		return
	}
	c.maxLen(path, v, max)
}

func (c *checker) maxLen(path, v string, max int) {
	if len(v) > max {
		c.add(path, fmt.Sprintf("at most %d bytes", max))
	} else if !utf8.ValidString(v) {
		c.add(path, "not valid UTF-8")
	}
}

func (c *checker) uniqueID(path, v string, seen map[string]bool) {
	c.id(path, v)
	if v == "" {
		return
	}
	if seen[v] {
		c.add(path, "duplicate instance id "+strconv.Quote(truncate(v, MaxIDLen)))
	}
	seen[v] = true
}

func (c *checker) oneOf(path, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	reason := "must be one of"
	for i, a := range allowed {
		if i > 0 {
			reason += ","
		}
		reason += " " + a
	}
	c.add(path, reason)
}

func (c *checker) nonNegative(path string, v int64) {
	if v < 0 {
		c.add(path, "must not be negative")
	}
}

func (c *checker) resources(path string, r mec.Resources) {
	c.nonNegative(path+".milliCpu", r.MilliCPU)
	c.nonNegative(path+".memoryMiB", r.MemoryMiB)
	c.nonNegative(path+".storageGB", r.StorageGB)
	c.nonNegative(path+".gpus", r.GPUs)
}

func (c *checker) usage(path string, u *Usage) {
	if u == nil {
		return
	}
	c.nonNegative(path+".milliCpu", u.MilliCPU)
	c.nonNegative(path+".memoryBytes", u.MemoryBytes)
}

// hostPort checks an "ip:port" address; anyHost allows an empty host part.
func (c *checker) hostPort(path, v string, anyHost bool) {
	host, port, err := net.SplitHostPort(v)
	if err != nil || len(v) > maxAddrLen {
		c.add(path, "must be ip:port")
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		c.add(path, "the port must be from 1 to 65535")
	}
	if host == "" && anyHost {
		return
	}
	if _, err := netip.ParseAddr(host); err != nil {
		c.add(path, "the host must be an IP address")
	}
}

func (c *checker) between(path string, v, lo, hi int64) {
	if v < lo || v > hi {
		c.add(path, fmt.Sprintf("must be from %d to %d", lo, hi))
	}
}

// stats checks a window for what would poison the RTT map: negative or
// out-of-order durations, counts that do not add up, an unknown source.
func (c *checker) stats(path string, st latency.Stats) {
	if st.Sent < 0 || st.Lost < 0 || st.Lost > st.Sent {
		c.add(path+".lost", "sent and lost must satisfy 0 <= lost <= sent")
	}
	if st.Loss < 0 || st.Loss > 1 || st.Loss != st.Loss {
		c.add(path+".loss", "must be from 0 to 1")
	}
	if st.Min < 0 || st.P50 < st.Min || st.P95 < st.P50 || st.P99 < st.P95 || st.P99 > maxRTT {
		c.add(path, "must have 0 <= minNs <= p50Ns <= p95Ns <= p99Ns <= 60 s")
	}
	if st.Jitter < 0 || st.Jitter > maxRTT {
		c.add(path+".jitterNs", "must be from 0 to 60 s")
	}
	if st.Received() > 0 {
		c.oneOf(path+".source", string(st.Source), string(latency.SourceHardware), string(latency.SourceKernel), string(latency.SourceUser))
	}
	if st.From.IsZero() || st.To.Before(st.From) {
		c.add(path+".to", "a window needs from <= to")
	}
}

// maxRTT bounds a reported RTT: anything longer is a broken clock.
const maxRTT = 60 * time.Second

// maxRules bounds an instance's traffic or DNS rules.
const maxRules = 256

// trafficRules checks the rules' shape: IDs, priorities, actions. The
// filters' values are the classifier's to check, with the same field
// paths, when the agent compiles them.
func (c *checker) trafficRules(path string, rules []TrafficRule) {
	if len(rules) > maxRules {
		c.add(path, fmt.Sprintf("at most %d rules", maxRules))
		return
	}
	seen := map[string]bool{}
	for i, r := range rules {
		p := path + "[" + strconv.Itoa(i) + "]"
		c.id(p+".trafficRuleId", r.ID)
		if seen[r.ID] {
			c.add(p+".trafficRuleId", "duplicate rule id")
		}
		seen[r.ID] = true
		c.between(p+".priority", int64(r.Priority), 0, 255)
		c.oneOf(p+".action", r.Action, ActionDrop, ActionPassthrough, ActionForwardDecapsulated,
			ActionForwardEncapsulated, ActionDuplicateDecapsulated, ActionDuplicateEncapsulated)
		if r.FilterType != "" {
			c.oneOf(p+".filterType", r.FilterType, "FLOW", "PACKET")
		}
		if len(r.Filters) == 0 {
			c.add(p+".trafficFilter", "at least one filter")
		}
		if r.SetDSCP != nil {
			c.between(p+".setDscp", int64(*r.SetDSCP), 0, 63)
		}
	}
}

func (c *checker) dnsRules(path string, rules []DNSRule) {
	if len(rules) > maxRules {
		c.add(path, fmt.Sprintf("at most %d rules", maxRules))
		return
	}
	for i, r := range rules {
		p := path + "[" + strconv.Itoa(i) + "]"
		c.id(p+".dnsRuleId", r.ID)
		c.required(p+".domainName", r.DomainName, 253)
		c.oneOf(p+".ipAddressType", r.IPAddressType, "IP_V4", "IP_V6")
		if a, err := netip.ParseAddr(r.IPAddress); err != nil || (r.IPAddressType == "IP_V4") != a.Is4() {
			c.add(p+".ipAddress", "must be an address of ipAddressType")
		}
		c.nonNegative(p+".ttl", int64(r.TTL))
	}
}
