package agentwire

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestParseSCTPURL(t *testing.T) {
	tests := []struct {
		in    string
		hosts []string
		port  int
		bad   bool
	}{
		{in: "sctp://10.0.0.1:7000", hosts: []string{"10.0.0.1"}, port: 7000},
		{in: "sctp://mecorch.example:7000", hosts: []string{"mecorch.example"}, port: 7000},
		{in: "sctp://[10.0.0.1,10.0.1.1]:7000", hosts: []string{"10.0.0.1", "10.0.1.1"}, port: 7000},
		{in: "sctp://[10.0.0.1, fd00::1 ,a.example]:7000/ignored", hosts: []string{"10.0.0.1", "fd00::1", "a.example"}, port: 7000},
		{in: "sctp://[fd00::1]:7000", hosts: []string{"fd00::1"}, port: 7000},
		{in: "sctp://10.0.0.1:7000?addr=10.0.1.1&addr=fd00::2", hosts: []string{"10.0.0.1", "10.0.1.1", "fd00::2"}, port: 7000},
		{in: "sctp://[10.0.0.1,10.0.0.1]:7000?addr=10.0.0.1", hosts: []string{"10.0.0.1"}, port: 7000},
		{in: "sctp://10.0.0.1:7000/?addr=10.0.1.1#frag", hosts: []string{"10.0.0.1", "10.0.1.1"}, port: 7000},
		{in: "ws://10.0.0.1:7000", bad: true},
		{in: "sctp://10.0.0.1", bad: true},
		{in: "sctp://10.0.0.1:0", bad: true},
		{in: "sctp://10.0.0.1:70000", bad: true},
		{in: "sctp://[10.0.0.1,]:7000", bad: true},
		{in: "sctp://[10.0.0.1:7000", bad: true},
		{in: "sctp://[10.0.0.1]7000", bad: true},
		{in: "sctp://[fd00::1,fd00:::2]:7000", bad: true},
		{in: "sctp://10.0.0.1:7000?host=x", bad: true},
		{in: "sctp://user:pw@10.0.0.1:7000", bad: true},
	}
	for _, tt := range tests {
		hosts, port, err := parseSCTPURL(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("%s: accepted as %v %d", tt.in, hosts, port)
			}
			continue
		}
		if err != nil || port != tt.port || !reflect.DeepEqual(hosts, tt.hosts) {
			t.Errorf("%s: %v %d %v, want %v %d", tt.in, hosts, port, err, tt.hosts, tt.port)
		}
	}
}

func TestFormatSCTPAddrs(t *testing.T) {
	one := []netip.Addr{netip.MustParseAddr("fd00::1")}
	two := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}
	if got := formatSCTPAddrs(one, 7000); got != "[fd00::1]:7000" {
		t.Errorf("one: %s", got)
	}
	got := formatSCTPAddrs(two, 7000)
	if got != "[10.0.0.1,fd00::1]:7000" {
		t.Errorf("two: %s", got)
	}
	// What it writes, the URL parser reads back.
	if hosts, port, err := parseSCTPURL("sctp://" + got); err != nil || port != 7000 || len(hosts) != 2 {
		t.Errorf("reparse: %v %d %v", hosts, port, err)
	}
}
