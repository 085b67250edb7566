package inventory

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/mecorch/mecorch/mec"
)

// maxText bounds free-text fields (names, zones) so that one request cannot
// make every list response huge.
const maxText = 256

// params collects invalid fields in the order they were found.
type params []mec.InvalidParam

func (p *params) add(name, format string, args ...any) {
	*p = append(*p, mec.InvalidParam{Name: name, Reason: fmt.Sprintf(format, args...)})
}

// ValidateSite returns every wrong field of s as an operator would send it.
// An empty ID is fine (Create generates one); CreatedAt is the server's.
func ValidateSite(s mec.Site) []mec.InvalidParam {
	var bad params
	if s.ID != "" {
		if reason := checkID(s.ID); reason != "" {
			bad.add("id", "%s", reason)
		}
	}
	switch {
	case strings.TrimSpace(s.Name) == "":
		bad.add("name", "required")
	case len(s.Name) > maxText:
		bad.add("name", "at most %d bytes", maxText)
	}
	if len(s.Zone) > maxText {
		bad.add("zone", "at most %d bytes", maxText)
	}
	if s.Country != "" && !isCountryCode(s.Country) {
		bad.add("countryCode", "not an ISO 3166-1 alpha-2 code in upper case (e.g. \"DE\")")
	}
	// Written as negations so that NaN, which compares false, is refused.
	if !(s.Latitude >= -90 && s.Latitude <= 90) {
		bad.add("latitude", "must be between -90 and 90")
	}
	if !(s.Longitude >= -180 && s.Longitude <= 180) {
		bad.add("longitude", "must be between -180 and 180")
	}
	if !s.CreatedAt.IsZero() {
		bad.add("createdAt", "read-only: set by the server")
	}
	return bad
}

// ValidateHost returns every wrong field of h as an operator would send it.
// The fields the lifecycle, the agents and the server keep must be zero: a
// client that sets them would otherwise believe they took effect.
func ValidateHost(h mec.Host) []mec.InvalidParam {
	var bad params
	if h.ID != "" {
		if reason := checkID(h.ID); reason != "" {
			bad.add("id", "%s", reason)
		}
	}
	if h.SiteID == "" {
		bad.add("siteId", "required")
	}
	if len(h.Name) > maxText {
		bad.add("name", "at most %d bytes", maxText)
	}
	checkCapacity(&bad, h.Capacity)
	checkLabels(&bad, h.Labels)
	checkAddresses(&bad, h.Addresses)

	const why = "read-only: %s"
	if h.Allocated != (mec.Resources{}) {
		bad.add("allocated", why, "the sum of the reservations of the instances placed on the host")
	}
	if h.State != "" {
		bad.add("state", why, "reported by the host's agent; cordon and uncordon the host to drain it")
	}
	if h.DesiredGeneration != 0 {
		bad.add("desiredGeneration", why, "counted by the orchestrator")
	}
	if h.ReportedGeneration != 0 {
		bad.add("reportedGeneration", why, "reported by the host's agent")
	}
	if h.AgentVersion != "" {
		bad.add("agentVersion", why, "reported by the host's agent")
	}
	if h.LastHeartbeat != nil {
		bad.add("lastHeartbeat", why, "reported by the host's agent")
	}
	if !h.CreatedAt.IsZero() {
		bad.add("createdAt", why, "set by the server")
	}
	return bad
}

// checkCapacity wants every dimension non-negative and CPU and memory
// positive: a host without either can run nothing, and is a typo.
func checkCapacity(bad *params, c mec.Resources) {
	dims := []struct {
		name     string
		v        int64
		positive bool
	}{
		{"capacity.milliCpu", c.MilliCPU, true},
		{"capacity.memoryMiB", c.MemoryMiB, true},
		{"capacity.storageGB", c.StorageGB, false},
		{"capacity.gpus", c.GPUs, false},
	}
	for _, d := range dims {
		switch {
		case d.positive && d.v <= 0:
			bad.add(d.name, "must be greater than 0")
		case d.v < 0:
			bad.add(d.name, "must not be negative")
		}
	}
}

// checkLabels applies the Kubernetes label syntax, which placement
// constraints (hostLabels) and operators' tooling already speak.
func checkLabels(bad *params, labels map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		var reasons []string
		if r := labelKeyError(k); r != "" {
			reasons = append(reasons, "key "+r)
		}
		if r := labelValueError(labels[k]); r != "" {
			reasons = append(reasons, "value "+r)
		}
		if len(reasons) > 0 {
			bad.add("labels."+k, "%s", strings.Join(reasons, "; "))
		}
	}
}

// checkAddresses wants IP addresses, each once, without a zone: a zone names
// an interface of the machine that reads it, not of the host.
func checkAddresses(bad *params, addrs []string) {
	seen := make(map[netip.Addr]int, len(addrs))
	for i, a := range addrs {
		name := fmt.Sprintf("addresses[%d]", i)
		ip, err := netip.ParseAddr(a)
		switch {
		case err != nil:
			bad.add(name, "not an IP address")
		case ip.Zone() != "":
			bad.add(name, "must not have a zone")
		default:
			if j, dup := seen[ip.Unmap()]; dup {
				bad.add(name, "duplicate of addresses[%d]", j)
			} else {
				seen[ip.Unmap()] = i
			}
		}
	}
}

// canonicalAddrs rewrites valid addresses in their canonical text form
// (lower-case IPv6, no leading zeros), so that equal addresses compare equal.
func canonicalAddrs(addrs []string) []string {
	if len(addrs) == 0 {
		return nil
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = canonicalAddr(a)
	}
	return out
}

func canonicalAddr(a string) string {
	if ip, err := netip.ParseAddr(a); err == nil {
		return ip.String()
	}
	return a
}

// checkID is the rule of client-chosen site and host IDs: a DNS label, so
// that an ID is safe in a URL path, a log line and a hostname.
func checkID(id string) string {
	if len(id) > 63 {
		return "at most 63 characters"
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		default:
			return "must match [a-z0-9][a-z0-9-]{0,62}"
		}
	}
	return ""
}

// labelKeyError checks a Kubernetes label key: an optional DNS subdomain
// prefix and a slash, then a name.
func labelKeyError(k string) string {
	name := k
	if i := strings.LastIndexByte(k, '/'); i >= 0 {
		prefix := k[:i]
		name = k[i+1:]
		if prefix == "" {
			return "prefix must not be empty"
		}
		if r := dnsSubdomainError(prefix); r != "" {
			return "prefix " + r
		}
	}
	if name == "" {
		return "name must not be empty"
	}
	if r := labelNameError(name); r != "" {
		return "name " + r
	}
	return ""
}

// labelValueError checks a label value: empty, or a label name.
func labelValueError(v string) string {
	if v == "" {
		return ""
	}
	return labelNameError(v)
}

// labelNameError: at most 63 characters, alphanumeric at both ends, '-',
// '_' and '.' between.
func labelNameError(s string) string {
	if len(s) > 63 {
		return "must be at most 63 characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		inner := c == '-' || c == '_' || c == '.'
		if !alnum && (!inner || i == 0 || i == len(s)-1) {
			return "must be alphanumeric at both ends with only '-', '_' or '.' between"
		}
	}
	return ""
}

// dnsSubdomainError checks an RFC 1123 subdomain in lower case.
func dnsSubdomainError(s string) string {
	if len(s) > 253 {
		return "must be at most 253 characters"
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || len(part) > 63 {
			return "must be a DNS subdomain (labels of 1 to 63 characters separated by dots)"
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
			if !alnum && (c != '-' || i == 0 || i == len(part)-1) {
				return "must be a lower-case DNS subdomain"
			}
		}
	}
	return ""
}
