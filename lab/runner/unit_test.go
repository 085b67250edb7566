package runner

import (
	"slices"
	"strings"
	"testing"

	"github.com/mecorch/mecorch/lab/topology"
)

func TestMissingCaps(t *testing.T) {
	for _, tc := range []struct {
		name, status, want string
	}{
		{"root", "Name:\tx\nCapEff:\t000001ffffffffff\n", ""},
		{"none", "CapEff:\t0000000000000000\n", "CAP_SYS_ADMIN (to mount network namespaces) and CAP_NET_ADMIN"},
		{"net admin only", "CapEff:\t0000000000001000\n", "needs CAP_SYS_ADMIN"},
		{"sys admin only", "CapEff:\t0000000000200000\n", "needs CAP_NET_ADMIN"},
		{"no line", "Name:\tx\n", "no CapEff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := missingCaps(tc.status)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "root") {
				t.Errorf("missingCaps = %v, want it to say %q and root", err, tc.want)
			}
		})
	}
}

func TestNodeEnv(t *testing.T) {
	topo := threeNodes("lab1", "/bin/true")
	n := topo.Nodes[2]
	n.Env = map[string]string{"PATH": "/opt/bin", "SHARED": "node"}
	n.Labels = map[string]string{"site.role": "edge"}
	env := nodeEnv(topo, n, map[string]string{"SHARED": "extra", "ONLY_EXTRA": "1"})
	for _, want := range []string{
		"PATH=/opt/bin", "SHARED=node", "ONLY_EXTRA=1",
		"CLAB_LABEL_CONTAINERLAB=lab1", "CLAB_LABEL_CLAB_NODE_NAME=c", "CLAB_LABEL_SITE_ROLE=edge", "CLAB_INTFS=1",
	} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %s: %v", want, env)
		}
	}
	if b := nodeEnv(topo, topo.Nodes[1], nil); !slices.Contains(b, "PATH="+DefaultPath) || !slices.Contains(b, "CLAB_INTFS=2") {
		t.Errorf("b's env: %v", b)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*topology.Topology)
		want   string
	}{
		{"ok", func(*topology.Topology) {}, ""},
		{"kind", func(t *topology.Topology) { t.Nodes[0].Kind = "nokia_srlinux" }, `kind "nokia_srlinux"`},
		{"twice", func(t *topology.Topology) { t.Nodes[1].Name = "a" }, "defined twice"},
		{"unknown node", func(t *topology.Topology) { t.Links[0].B.Node = "z" }, `unknown node "z"`},
		{"iface reused", func(t *topology.Topology) { t.Links[1].A = t.Links[0].B }, "b:eth1 used twice"},
		{"iface lo", func(t *topology.Topology) { t.Links[0].A.Iface = "lo" }, `"lo"`},
		{"mac", func(t *topology.Topology) { t.Links[0].A.MAC = "02:zz" }, "mac of a:eth1"},
		{"underscore", func(t *topology.Topology) { t.Nodes[0].Name = "_link0" }, `node "_link0"`},
		{"lab name", func(t *topology.Topology) { t.Name = "a/b" }, `lab name "a/b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := threeNodes("lab1", "/bin/true")
			tc.change(topo)
			err := validate(topo)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPlanState(t *testing.T) {
	topo := threeNodes("lab1", "/bin/true")
	topo.Links[1].AtoB.Delay = 5e6
	st := planState(topo, Options{}.withDefaults("lab1"))
	if st.StateDir != "/var/lib/mecorch-lab/lab1" || st.NetnsDir != "/run/netns" {
		t.Errorf("dirs: %s %s", st.StateDir, st.NetnsDir)
	}
	if !slices.Equal(st.Namespaces, []string{"clab-lab1-a", "clab-lab1-b", "clab-lab1-c"}) ||
		!slices.Equal(st.RelayNamespaces, []string{"clab-lab1-_link1"}) {
		t.Errorf("namespaces %v, relays %v", st.Namespaces, st.RelayNamespaces)
	}
	if st.Links[0].Emulated || !st.Links[1].Emulated || st.Links[1].A != "b:eth2" || st.RunnerStartTicks == 0 {
		t.Errorf("state: %+v", st)
	}
}
