package dns

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestValidateRules(t *testing.T) {
	ok := Rule{ID: "r", DomainName: "app.example.com", IPAddressType: IPv4, IPAddress: "10.0.0.1", State: Active}
	with := func(f func(*Rule)) Rule { r := ok; f(&r); return r }
	cases := []struct {
		name   string
		rules  []Rule
		fields []string // problems expected, in order; none means valid
	}{
		{"empty set", nil, nil},
		{"one rule", []Rule{ok}, nil},
		{"v6", []Rule{with(func(r *Rule) { r.IPAddressType, r.IPAddress = IPv6, "2001:db8::1" })}, nil},
		{"underscore label and trailing dot", []Rule{with(func(r *Rule) { r.DomainName = "_svc.app.example." })}, nil},
		{"missing id", []Rule{with(func(r *Rule) { r.ID = "" })}, []string{"rules[0].dnsRuleId"}},
		{"duplicate id", []Rule{ok, with(func(r *Rule) { r.DomainName = "b.example" })}, []string{"rules[1].dnsRuleId"}},
		{"root domain", []Rule{with(func(r *Rule) { r.DomainName = "." })}, []string{"rules[0].domainName"}},
		{"empty label", []Rule{with(func(r *Rule) { r.DomainName = "a..example" })}, []string{"rules[0].domainName"}},
		{"wildcard", []Rule{with(func(r *Rule) { r.DomainName = "*.example" })}, []string{"rules[0].domainName"}},
		{"space", []Rule{with(func(r *Rule) { r.DomainName = "a b.example" })}, []string{"rules[0].domainName"}},
		{"hyphen edge", []Rule{with(func(r *Rule) { r.DomainName = "-a.example" })}, []string{"rules[0].domainName"}},
		{"long label", []Rule{with(func(r *Rule) { r.DomainName = strings.Repeat("a", 64) + ".example" })}, []string{"rules[0].domainName"}},
		{"long name", []Rule{with(func(r *Rule) { r.DomainName = strings.Repeat("abcdefg.", 32) + "example" })}, []string{"rules[0].domainName"}},
		{"bad type", []Rule{with(func(r *Rule) { r.IPAddressType = "IPv4" })}, []string{"rules[0].ipAddressType"}},
		{"v6 address as IP_V4", []Rule{with(func(r *Rule) { r.IPAddress = "2001:db8::1" })}, []string{"rules[0].ipAddress"}},
		{"v4 address as IP_V6", []Rule{with(func(r *Rule) { r.IPAddressType = IPv6 })}, []string{"rules[0].ipAddress"}},
		{"mapped v4 as IP_V6", []Rule{with(func(r *Rule) { r.IPAddressType, r.IPAddress = IPv6, "::ffff:10.0.0.1" })}, []string{"rules[0].ipAddress"}},
		{"not an address", []Rule{with(func(r *Rule) { r.IPAddress = "10.0.0" })}, []string{"rules[0].ipAddress"}},
		{"zone", []Rule{with(func(r *Rule) { r.IPAddressType, r.IPAddress = IPv6, "fe80::1%eth0" })}, []string{"rules[0].ipAddress"}},
		{"unspecified", []Rule{with(func(r *Rule) { r.IPAddress = "0.0.0.0" })}, []string{"rules[0].ipAddress"}},
		{"negative ttl", []Rule{with(func(r *Rule) { r.TTL = -1 })}, []string{"rules[0].ttl"}},
		{"ttl over 2^31-1", []Rule{with(func(r *Rule) { r.TTL = 1 << 31 })}, []string{"rules[0].ttl"}},
		{"bad state", []Rule{with(func(r *Rule) { r.State = "active" })}, []string{"rules[0].state"}},
		{
			"conflicting active rules, case and dot differ",
			[]Rule{ok, with(func(r *Rule) { r.ID, r.DomainName, r.IPAddress = "r2", "APP.example.com.", "10.0.0.2" })},
			[]string{"rules[1].ipAddress"},
		},
		{"same address twice", []Rule{ok, with(func(r *Rule) { r.ID = "r2" })}, nil},
		{"conflict with an inactive rule", []Rule{ok, with(func(r *Rule) { r.ID, r.IPAddress, r.State = "r2", "10.0.0.2", Inactive })}, nil},
		{"v4 and v6 for one name", []Rule{ok, with(func(r *Rule) { r.ID, r.IPAddressType, r.IPAddress = "r2", IPv6, "2001:db8::1" })}, nil},
		{
			"every problem reported",
			[]Rule{with(func(r *Rule) { r.ID, r.DomainName, r.State = "", "", "" })},
			[]string{"rules[0].dnsRuleId", "rules[0].domainName", "rules[0].state"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateRules(tc.rules)
			if len(tc.fields) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var inv *InvalidRulesError
			if !errors.As(err, &inv) {
				t.Fatalf("error %v, want *InvalidRulesError", err)
			}
			var got []string
			for _, p := range inv.Problems {
				got = append(got, p.Field)
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("problems at %v, want %v (%v)", got, tc.fields, err)
			}
		})
	}
}

func TestParseRulesMEC011JSON(t *testing.T) {
	body := `[{"dnsRuleId":"dns1","domainName":"www.example.com","ipAddressType":"IP_V4",
	           "ipAddress":"10.45.0.10","ttl":60,"state":"ACTIVE","futureField":true}]`
	rules, err := ParseRules([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := Rule{ID: "dns1", DomainName: "www.example.com", IPAddressType: IPv4, IPAddress: "10.45.0.10", TTL: 60, State: Active}
	if len(rules) != 1 || rules[0] != want {
		t.Errorf("got %+v, want %+v", rules, want)
	}
	for _, bad := range []string{`{}`, `[{"ttl":"60"}]`, `[] []`, `[{"dnsRuleId":"x"}]`} {
		if _, err := ParseRules([]byte(bad)); err == nil {
			t.Errorf("ParseRules(%s) accepted", bad)
		}
	}
}

// FuzzRulesJSON feeds arbitrary bodies to the rule parser: it must never panic, and whatever it
// accepts must survive a JSON round trip and answer every ACTIVE rule's name as stated.
func FuzzRulesJSON(f *testing.F) {
	f.Add([]byte(`[{"dnsRuleId":"a","domainName":"x.example","ipAddressType":"IP_V4","ipAddress":"10.0.0.1","state":"ACTIVE"}]`))
	f.Add([]byte(`[{"dnsRuleId":"a","domainName":"X.example.","ipAddressType":"IP_V6","ipAddress":"2001:db8::1","ttl":5,"state":"INACTIVE"}]`))
	f.Add([]byte(`[{"dnsRuleId":"a","domainName":"a..b","ipAddressType":"IP_V4","ipAddress":"1.2.3","state":"ACTIVE"}]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := ParseRules(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(rules)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseRules(again); err != nil {
			t.Fatalf("accepted rules fail after a round trip: %v", err)
		}
		tab, err := buildTable(rules)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rules {
			if r.State != Active {
				continue
			}
			e, ok := tab.lookup(strings.ToUpper(r.DomainName))
			a := e.v4
			if r.IPAddressType == IPv6 {
				a = e.v6
			}
			// Equal addresses may be spelled differently ("::1", "0::1"): compare them parsed.
			want, _ := parseAddress(r.IPAddress, r.IPAddressType == IPv6)
			if !ok || a == nil || a.addr != want {
				t.Fatalf("rules[%d] %s %s not answered as %s", i, r.DomainName, r.IPAddressType, r.IPAddress)
			}
		}
	})
}
