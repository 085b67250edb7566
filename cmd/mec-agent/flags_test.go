package main

import (
	"io"
	"strings"
	"testing"
)

// TestSteeringFlags: steering needs the UE pools (without them every
// reply not to a known UE would be dropped), and the core-side learning
// is refused until it is safe.
func TestSteeringFlags(t *testing.T) {
	base := []string{"--orchestrator", "http://127.0.0.1:8080", "--host-id", "h", "--site", "s", "--token-file", "/dev/null"}
	cases := []struct {
		extra []string
		err   string
	}{
		{nil, ""},
		{[]string{"--steer-iface", "eth2", "--ue-prefix", "10.45.0.0/16"}, ""},
		{[]string{"--steer-iface", "eth2"}, "needs at least one --ue-prefix"},
		{[]string{"--ue-prefix", "10.45.0.0/16"}, "need --steer-iface"},
		{[]string{"--steer-iface", "eth2", "--ue-prefix", "10.45.0.0/16", "--core-iface", "eth1"}, "not safe yet"},
		{[]string{"--steer-iface", "eth2", "--ue-prefix", "10.45.0.0"}, "ue-prefix"},
	}
	for _, tc := range cases {
		_, err := parse(append(append([]string{}, base...), tc.extra...), io.Discard)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v", tc.extra, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: err = %v, want %q", tc.extra, err, tc.err)
		}
	}
}
