package topology

import (
	"errors"
	"os"
	"testing"
)

func FuzzParse(f *testing.F) {
	if src, err := os.ReadFile(threeSite); err == nil {
		f.Add(src)
	}
	f.Add([]byte(mergeExample))
	f.Add([]byte(extendedExample))
	f.Add([]byte(linksDoc("    - endpoints: [a:eth1, b:eth1]\n      ipv4: [10.0.0.1/30, 10.0.0.2/30]\n      vars: {delay: 1ms, a-to-b: {jitter: 0.5ms}}\n")))
	f.Add([]byte("name: ${X:=a}\ntopology:\n  defaults: &d {kind: linux}\n  nodes: {a: *d, b: {<<: *d}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		env := func(k string) string {
			if k == "X" {
				return "x"
			}
			return ""
		}
		top, err := Parse("f.clab.yml", data, env)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Problems) == 0 {
				t.Fatalf("refusal without problems: %v", err)
			}
			return
		}
		nodes := map[string]*Node{}
		for _, n := range top.Nodes {
			if nodes[n.Name] != nil {
				t.Fatalf("node %q twice", n.Name)
			}
			nodes[n.Name] = n
			if n.Kind != KindLinux && n.Kind != KindBridge {
				t.Fatalf("node %q of kind %q", n.Name, n.Kind)
			}
			if len(top.Namespace(n.Name)) > maxNamespace {
				t.Fatalf("namespace %q too long", top.Namespace(n.Name))
			}
		}
		used := map[Endpoint]bool{}
		for _, l := range top.Links {
			for _, ep := range []Endpoint{l.A, l.B} {
				if nodes[ep.Node] == nil {
					t.Fatalf("link to missing node %q", ep.Node)
				}
				if len(ep.Iface) == 0 || len(ep.Iface) > 15 || ifaceProblem(ep.Iface) != "" {
					t.Fatalf("interface %q", ep.Iface)
				}
				key := Endpoint{Node: ep.Node, Iface: ep.Iface}
				if used[key] {
					t.Fatalf("endpoint %s:%s twice", ep.Node, ep.Iface)
				}
				used[key] = true
			}
			for _, im := range []Impairment{l.AtoB, l.BtoA} {
				if im.Delay < 0 || im.Delay >= maxDelay || im.Jitter > im.Delay || !(im.LossPct >= 0 && im.LossPct <= 100) || im.RateKbit < 0 {
					t.Fatalf("impairment %+v", im)
				}
			}
		}
		_ = NetemCommands(top)
	})
}
