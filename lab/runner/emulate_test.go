package runner

import (
	"strings"
	"testing"
	"time"

	"github.com/mecorch/mecorch/lab/topology"
)

// Against the real emulator (lab/linkemu): a link declared with a delay
// holds packets for it, and the delay can change while the lab runs.
func TestEmulatedLinkDelayChanges(t *testing.T) {
	o := testOptions(t)
	topo := &topology.Topology{
		Name: labName(t),
		Nodes: []*topology.Node{
			{Name: "ue", Kind: topology.KindLinux},
			{
				Name: "edge", Kind: topology.KindLinux, Cmd: "exec '" + testExe(t) + "'",
				Env: map[string]string{"RUNNER_TEST_ROLE": "echo", "RUNNER_TEST_ADDR": ":7777"},
			},
			{Name: "far", Kind: topology.KindLinux},
		},
		Links: []*topology.Link{{
			A:    topology.Endpoint{Node: "ue", Iface: "eth1", Addr: pfx("10.9.0.1/24"), MAC: "02:00:00:00:09:01"},
			B:    topology.Endpoint{Node: "edge", Iface: "eth1", Addr: pfx("10.9.0.2/24")},
			MTU:  1400,
			AtoB: topology.Impairment{Delay: 20 * time.Millisecond},
			BtoA: topology.Impairment{Delay: 10 * time.Millisecond},
		}, {
			// Plain: no impairment declared.
			A: topology.Endpoint{Node: "edge", Iface: "eth2", Addr: pfx("10.9.1.1/24")},
			B: topology.Endpoint{Node: "far", Iface: "eth1", Addr: pfx("10.9.1.2/24")},
		}},
	}
	lab, err := Up(t.Context(), topo, o)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	ue := lab.NetnsPath("ue")
	rtt, err := echo(ue, "10.9.0.2:7777", 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rtt < 30*time.Millisecond {
		t.Errorf("round trip %v over a 20ms+10ms link", rtt)
	}
	st, err := lab.Status()
	if err != nil {
		t.Fatal(err)
	}
	if it, _ := iface(nodeStatus(t, st, "ue"), "eth1"); it.MTU != 1400 || it.MAC != "02:00:00:00:09:01" || it.OperState != "up" {
		t.Errorf("ue:eth1 = %+v", it)
	}

	if err := lab.SetEndpointImpairment("edge", "eth1", topology.Impairment{Delay: 50 * time.Millisecond},
		topology.Impairment{Delay: 60 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if rtt, err = echo(ue, "10.9.0.2:7777", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if rtt < 110*time.Millisecond {
		t.Errorf("round trip %v after the delay went to 60ms+50ms", rtt)
	}
	st, err = Status(o.StateDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l := st.Links[0]; !l.Emulated || l.AtoB.Delay != 60*time.Millisecond || l.BtoA.Delay != 50*time.Millisecond {
		t.Errorf("link 0 in the state: %+v", l)
	}
	if err := lab.SetImpairment(1, topology.Impairment{Delay: time.Millisecond}, topology.Impairment{}); err == nil ||
		!strings.Contains(err.Error(), "plain veth pair") {
		t.Errorf("SetImpairment on a plain link = %v", err)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	checkGone(t, o, nil, nil)
}
