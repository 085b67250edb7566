package dns

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strings"
)

// Values of Rule.IPAddressType and Rule.State, spelled as in MEC 011 (clause 7.1.2.3).
const (
	IPv4     = "IP_V4"
	IPv6     = "IP_V6"
	Active   = "ACTIVE"
	Inactive = "INACTIVE"
)

// DefaultTTL is the TTL, in seconds, of a local answer whose rule carries no ttl. It is short because
// rules follow app instances: when an instance moves (or its rule turns INACTIVE) a UE should stop using
// the old address within half a minute, while a UE opening many connections still asks once, not each
// time. MEC 011's own note that a rule without ttl "shall not expire" is about the rule's lifetime, not
// about how long a client may cache the answer, so it does not call for an unbounded TTL here.
const DefaultTTL = 30

// maxTTL is the largest TTL RFC 2181 §8 allows; larger values are read as zero by some resolvers.
const maxTTL = math.MaxInt32

// Rule is one MEC 011 DnsRule, as the agent receives it: a name that UEs on this edge resolve to an
// app instance's address. The JSON tags mirror MEC 011 DnsRule so a rule can be passed through unchanged.
type Rule struct {
	ID            string `json:"dnsRuleId"`
	DomainName    string `json:"domainName"`
	IPAddressType string `json:"ipAddressType"` // IP_V4 | IP_V6
	IPAddress     string `json:"ipAddress"`
	TTL           int    `json:"ttl,omitempty"` // seconds; 0 (absent) means DefaultTTL
	State         string `json:"state"`         // ACTIVE | INACTIVE
}

// FieldError is one problem with a rule set, with the path of the offending field
// (e.g. "rules[2].ipAddress") so an API layer can turn it into ProblemDetails as is.
type FieldError struct {
	Field  string
	Reason string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

// InvalidRulesError lists every problem found in a rule set, not just the first, so an operator can
// fix a set in one round trip.
type InvalidRulesError struct {
	Problems []FieldError
}

func (e *InvalidRulesError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return "invalid DNS rules: " + strings.Join(parts, "; ")
}

// ParseRules decodes a JSON array of MEC 011 DnsRule objects and validates it as a set. Unknown fields
// are ignored, as newer MEC 011 versions may add some.
func ParseRules(data []byte) ([]Rule, error) {
	var rules []Rule
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&rules); err != nil {
		return nil, fmt.Errorf("decode DNS rules: %w", err)
	}
	// Trailing data means the body is not the single array we were given to understand.
	if dec.More() {
		return nil, fmt.Errorf("decode DNS rules: trailing data after the array")
	}
	if err := ValidateRules(rules); err != nil {
		return nil, err
	}
	return rules, nil
}

// ValidateRules checks a rule set as a whole. It returns an *InvalidRulesError or nil.
func ValidateRules(rules []Rule) error {
	_, err := buildTable(rules)
	return err
}

// answer is what a name resolves to locally for one address family.
type answer struct {
	addr netip.Addr
	ttl  uint32
}

// entry is everything the responder says about one name: a name with an entry exists, so a query for a
// family it lacks gets NODATA rather than NXDOMAIN or an upstream's answer.
type entry struct {
	v4, v6 *answer
}

// table is an immutable lookup from a canonical name (lower case, trailing dot) to its entry. It is
// never modified after buildTable returns, which is what lets queries read it without locks.
type table struct {
	names map[string]entry
}

type famKey struct {
	name string
	v6   bool
}

// buildTable validates rules and, if they are all valid, compiles the ACTIVE ones into a table.
//
// Conflicts (one name and family mapped to two addresses) are checked among ACTIVE rules only: during a
// relocation the old instance's rule is INACTIVE while the new one is ACTIVE for the same name, and that
// set is legitimate. Two rules agreeing on the address are not a conflict.
func buildTable(rules []Rule) (*table, error) {
	var problems []FieldError
	bad := func(i int, field, format string, args ...any) {
		problems = append(problems, FieldError{
			Field:  fmt.Sprintf("rules[%d].%s", i, field),
			Reason: fmt.Sprintf(format, args...),
		})
	}
	ids := make(map[string]int, len(rules))
	owner := make(map[famKey]int, len(rules)) // which rule set each (name, family) first
	t := &table{names: make(map[string]entry, len(rules))}
	for i, r := range rules {
		if r.ID == "" {
			bad(i, "dnsRuleId", "required")
		} else if j, dup := ids[r.ID]; dup {
			bad(i, "dnsRuleId", "%q already used by rules[%d]", r.ID, j)
		} else {
			ids[r.ID] = i
		}
		name, nameErr := canonicalDomain(r.DomainName)
		if nameErr != "" {
			bad(i, "domainName", "%s", nameErr)
		}
		var v6, typeOK bool
		switch r.IPAddressType {
		case IPv4:
			typeOK = true
		case IPv6:
			v6, typeOK = true, true
		default:
			bad(i, "ipAddressType", "%q is not %s or %s", r.IPAddressType, IPv4, IPv6)
		}
		addr, addrErr := parseAddress(r.IPAddress, v6)
		if typeOK && addrErr != "" {
			bad(i, "ipAddress", "%s", addrErr)
		}
		if r.TTL < 0 || r.TTL > maxTTL {
			bad(i, "ttl", "%d is outside 0..%d", r.TTL, maxTTL)
		}
		switch r.State {
		case Active, Inactive:
		default:
			bad(i, "state", "%q is not %s or %s", r.State, Active, Inactive)
		}
		if r.State != Active || nameErr != "" || !typeOK || addrErr != "" {
			continue
		}
		ttl := uint32(DefaultTTL)
		if r.TTL > 0 && r.TTL <= maxTTL {
			ttl = uint32(r.TTL)
		}
		k := famKey{name, v6}
		e := t.names[name]
		slot := &e.v4
		if v6 {
			slot = &e.v6
		}
		if prev := *slot; prev != nil {
			if prev.addr != addr {
				bad(i, "ipAddress", "%s conflicts with %s for %s %s in rules[%d]",
					addr, prev.addr, r.IPAddressType, r.DomainName, owner[k])
			}
			// Same address twice: keep the first rule's TTL, deterministically.
			continue
		}
		*slot = &answer{addr: addr, ttl: ttl}
		t.names[name] = e
		owner[k] = i
	}
	if len(problems) > 0 {
		return nil, &InvalidRulesError{Problems: problems}
	}
	return t, nil
}

// canonicalDomain returns the lookup key for a rule's domain name, or a reason it is not acceptable.
// Only plain host names are accepted (letters, digits, hyphen, and underscore for service labels):
// wildcards and escapes would need matching rules this responder does not have, and IDNs must come
// already in their A-label (punycode) form, as on the wire.
func canonicalDomain(s string) (string, string) {
	name := strings.TrimSuffix(s, ".")
	switch {
	case name == "":
		return "", "required (and not the root)"
	case len(name) > 253:
		return "", fmt.Sprintf("%d characters, more than 253", len(name))
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return "", fmt.Sprintf("%q has an empty label", s)
		}
		if len(label) > 63 {
			return "", fmt.Sprintf("%q has a label longer than 63 characters", s)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Sprintf("%q has a label starting or ending with a hyphen", s)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Sprintf("%q contains %q; only letters, digits, '-' and '_' are allowed", s, c)
			}
		}
	}
	return strings.ToLower(name) + ".", ""
}

// parseAddress parses a rule's address and checks it against the declared family. IPv4-mapped IPv6
// addresses are refused for IP_V6 because a UE would put them in an AAAA connection attempt that no
// IPv4 app instance answers; zones and unspecified or multicast addresses cannot name an app instance.
func parseAddress(s string, v6 bool) (netip.Addr, string) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Sprintf("%q is not an IP address", s)
	}
	switch {
	case addr.Zone() != "":
		return netip.Addr{}, fmt.Sprintf("%q has a zone", s)
	case !v6 && !addr.Is4():
		return netip.Addr{}, fmt.Sprintf("%q is not an IPv4 address", s)
	case v6 && (!addr.Is6() || addr.Is4In6()):
		return netip.Addr{}, fmt.Sprintf("%q is not an IPv6 address", s)
	case addr.IsUnspecified() || addr.IsMulticast():
		return netip.Addr{}, fmt.Sprintf("%q cannot be an app instance's address", s)
	}
	return addr, ""
}

// lookup returns the entry for a query name, in any case and with or without the trailing dot.
func (t *table) lookup(qname string) (entry, bool) {
	e, ok := t.names[strings.ToLower(strings.TrimSuffix(qname, "."))+"."]
	return e, ok
}
