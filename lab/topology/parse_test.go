package topology

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// nodesDoc starts the nodes section at line 4.
func nodesDoc(nodes string) string { return "name: t\ntopology:\n  nodes:\n" + nodes }

// linksDoc has nodes a, b, c (kind linux) and br (bridge); links start at line 9.
func linksDoc(links string) string {
	return "name: t\ntopology:\n  nodes:\n    a: {kind: linux}\n    b: {kind: linux}\n" +
		"    c: {kind: linux}\n    br: {kind: bridge}\n  links:\n" + links
}

func TestParseRefusals(t *testing.T) {
	long := strings.Repeat("n", 60)
	tests := []struct {
		name      string
		yaml      string
		line, col int
		path, msg string
	}{
		{"template", "name: t\ntopology:\n  nodes:\n    a: {kind: {{ .Kind }}}\n", 4, 15, "", "Go templates"},
		{"unclosed variable", "name: ${NAME\n", 1, 7, "", "without a closing }"},
		{"unsupported substitution", "name: ${NAME:+x}\n", 1, 7, "", "unsupported substitution ${NAME:+x}"},
		{"yaml syntax", "name: t\ntopology:\n  nodes: [\n", 3, 0, "", "YAML:"},
		{"empty file", "", 1, 0, "", "the file is empty"},
		{"two documents", "name: t\n---\nname: u\n", 2, 1, "", "second"},
		{"not a mapping", "- a\n", 1, 1, "", "want a mapping"},
		{"no name", "topology:\n  nodes:\n    a: {kind: linux}\n", 1, 1, "name", "has no name"},
		{"bad name", "name: -x\ntopology:\n  nodes:\n    a: {kind: linux}\n", 1, 1, "name", `"-x" is not a lab name`},
		{"prefix", "name: t\nprefix: lab\ntopology:\n  nodes:\n    a: {kind: linux}\n", 2, 1, "prefix", `prefix "lab" is not supported`},
		{"unknown top-level", "name: t\nnmae: x\ntopology:\n  nodes:\n    a: {kind: linux}\n", 2, 1, "nmae", `unknown field "nmae"`},
		{"clab top-level", "name: t\nsettings: {}\ntopology:\n  nodes:\n    a: {kind: linux}\n", 2, 1, "settings", "not supported by the netns runner"},
		{"no topology", "name: t\n", 1, 1, "topology", "no topology section"},
		{"no nodes", "name: t\ntopology:\n  nodes: {}\n", 3, 3, "topology.nodes", "no nodes"},
		{"groups", nodesDoc("    a: {kind: linux}\n  groups: {}\n"), 5, 3, "topology.groups", "not supported"},
		{"unknown node field", nodesDoc("    a:\n      kind: linux\n      imgae: x\n"), 6, 7, "topology.nodes.a.imgae", `unknown field "imgae"`},
		{"clab node field", nodesDoc("    a:\n      kind: linux\n      ports: [80:80]\n"), 6, 7, "topology.nodes.a.ports", `containerlab's "ports" is not supported`},
		{"unsupported kind", nodesDoc("    a:\n      kind: nokia_srlinux\n"), 5, 7, "topology.nodes.a.kind", `kind "nokia_srlinux" is not supported`},
		{"no kind", nodesDoc("    a: {image: x}\n"), 4, 5, "topology.nodes.a", "has no kind"},
		{"bad node name", nodesDoc("    a|b: {kind: linux}\n"), 4, 5, "topology.nodes.a|b", "not a node name"},
		{"duplicate node", nodesDoc("    a: {kind: linux}\n    b: {kind: linux}\n    a: {kind: linux}\n"), 6, 5, "topology.nodes.a", `duplicate key "a" (first defined at line 4)`},
		{"namespace too long", nodesDoc("    " + long + ": {kind: linux}\n"), 4, 5, "topology.nodes." + long, "more than 64"},
		{"exec not a list", nodesDoc("    a:\n      kind: linux\n      exec: ip link\n"), 6, 7, "topology.nodes.a.exec", "exec must be a list of strings"},
		{"exec item not a string", nodesDoc("    a:\n      kind: linux\n      exec:\n        - {ip: link}\n"), 7, 11, "topology.nodes.a.exec[0]", "want a string"},
		{"env value", nodesDoc("    a:\n      kind: linux\n      env: {A: [1]}\n"), 6, 13, "topology.nodes.a.env.A", "want a string, number or boolean"},
		{"cmd not a string", nodesDoc("    a:\n      kind: linux\n      cmd: [a, b]\n"), 6, 12, "topology.nodes.a.cmd", "want a string"},
		{"startup-delay", nodesDoc("    a:\n      kind: linux\n      startup-delay: -1\n"), 6, 7, "topology.nodes.a.startup-delay", "must not be negative"},
		{"bridge cmd", nodesDoc("    br:\n      kind: bridge\n      cmd: sleep 1\n"), 6, 7, "topology.nodes.br.cmd", "a bridge runs no process"},
		{"bridge name", nodesDoc("    bridge-with-a-long-name:\n      kind: bridge\n"), 4, 5, "topology.nodes.bridge-with-a-long-name", "longer than 15 bytes"},

		{"missing node", linksDoc("    - endpoints: [a:eth1, x:eth1]\n"), 9, 27, "topology.links[0].endpoints[1]", `no node "x"`},
		{"not node:iface", linksDoc("    - endpoints: [a, b:eth1]\n"), 9, 19, "topology.links[0].endpoints[0]", `"a" is not "node:interface"`},
		{"endpoint used twice", linksDoc("    - endpoints: [a:eth1, b:eth1]\n    - endpoints: [a:eth1, c:eth1]\n"), 10, 19, "topology.links[1].endpoints[0]", "a:eth1 is already used by the link at line 9"},
		{"same endpoint both ends", linksDoc("    - endpoints: [a:eth1, a:eth1]\n"), 9, 27, "topology.links[0].endpoints[1]", "already used"},
		{"bridge ports share the host", linksDoc("    - endpoints: [br:p1, a:eth1]\n    - endpoints: [b:eth1, br:p1]\n"), 10, 27, "", "bridge port p1 is already used"},
		{"interface too long", linksDoc("    - endpoints: [a:eth1234567890123, b:eth1]\n"), 9, 19, "", "longer than 15 bytes (16)"},
		{"interface with slash", linksDoc("    - type: veth\n      endpoints:\n        - {node: a, interface: e/1}\n        - {node: b, interface: eth1}\n"), 11, 11, "topology.links[0].endpoints[0]", "no '/' or ':'"},
		{"interface dot-dot", linksDoc("    - endpoints: [a:.., b:eth1]\n"), 9, 19, "", "not a valid interface name"},
		{"interface space", linksDoc("    - endpoints: [\"a:e 1\", b:eth1]\n"), 9, 19, "", "no whitespace"},
		{"eth0", linksDoc("    - endpoints: [a:eth0, b:eth1]\n"), 9, 19, "", "eth0 is containerlab's management interface"},
		{"host link", linksDoc("    - endpoints: [a:eth1, host:veth-a]\n"), 9, 27, "", "host links are not supported"},
		{"link type", linksDoc("    - type: macvlan\n      endpoints: []\n"), 9, 7, "topology.links[0].type", `link type "macvlan" is not supported`},
		{"unknown link type", linksDoc("    - type: wire\n      endpoints: []\n"), 9, 7, "topology.links[0].type", `unknown link type "wire"`},
		{"mapping endpoints in brief form", linksDoc("    - endpoints:\n        - {node: a, interface: eth1}\n        - {node: b, interface: eth1}\n"), 10, 11, "", "need the extended link form"},
		{"three endpoints", linksDoc("    - endpoints: [a:eth1, b:eth1, c:eth1]\n"), 9, 7, "topology.links[0].endpoints", "2 endpoints, not 3"},
		{"no endpoints", linksDoc("    - mtu: 1500\n"), 9, 7, "topology.links[0]", "no endpoints"},
		{"endpoint without interface", linksDoc("    - type: veth\n      endpoints:\n        - {node: a}\n        - {node: b, interface: eth1}\n"), 11, 11, "", "needs node and interface"},
		{"endpoint vars", linksDoc("    - type: veth\n      endpoints:\n        - {node: a, interface: eth1, vars: {delay: 1ms}}\n        - {node: b, interface: eth1}\n"), 11, 38, "", "endpoint vars are not read"},
		{"bad mac", linksDoc("    - type: veth\n      endpoints:\n        - {node: a, interface: eth1, mac: 01:00:5e:00:00:01}\n        - {node: b, interface: eth1}\n"), 11, 38, "", "multicast"},
		{"labels in brief form", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      labels: {x: y}\n"), 10, 7, "topology.links[0].labels", "extended link form"},
		{"unknown link field", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      delay: 2ms\n"), 10, 7, "topology.links[0].delay", `unknown field "delay"`},
		{"ipv4 not a prefix", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      ipv4: [10.0.0.1, 10.0.0.2/30]\n"), 10, 14, "topology.links[0].endpoints[0].ipv4", `"10.0.0.1" is not an address with a prefix length`},
		{"ipv4 count", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      ipv4: [10.0.0.1/30]\n"), 10, 7, "topology.links[0].ipv4", "one prefix per endpoint (2, \"\" for none), not 1"},
		{"ipv6 in ipv4", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      ipv4: [\"2001:db8::1/64\", \"\"]\n"), 10, 14, "", "not an ipv4 prefix"},
		{"ipv4 in ipv6", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      ipv6: [\"\", 10.0.0.2/30]\n"), 10, 18, "", "not an ipv6 prefix"},
		{"duplicate address", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      ipv4: [10.0.0.1/30, 10.0.0.2/30]\n    - endpoints: [a:eth2, c:eth1]\n      ipv4: [10.0.0.1/30, 10.0.0.6/30]\n"), 12, 14, "", "address 10.0.0.1 is already used at line 10"},
		{"address twice", linksDoc("    - type: veth\n      endpoints:\n        - {node: a, interface: eth1, ipv4: 10.0.0.1/30}\n        - {node: b, interface: eth1}\n      ipv4: [10.0.0.5/30, 10.0.0.2/30]\n"), 11, 44, "", "also given in the link's ipv4 list"},
		{"mtu", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      mtu: 70000\n"), 10, 7, "topology.links[0].mtu", "out of range"},
		{"delay syntax", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      vars: {delay: 2}\n"), 10, 21, "topology.links[0].vars.delay", `"2" is not a duration`},
		{"delay too long", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      vars: {delay: 10s}\n"), 10, 14, "topology.links[0].vars.delay", "not below 10s"},
		{"negative delay", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      vars: {delay: -1ms}\n"), 10, 14, "", "must not be negative"},
		{"jitter above delay", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      vars: {delay: 1ms, jitter: 2ms}\n"), 10, 26, "topology.links[0].vars.jitter", "jitter 2ms is more than the delay 1ms"},
		{"direction jitter above delay", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      vars: {delay: 5ms, jitter: 2ms, b-to-a: {delay: 1ms}}\n"), 10, 26, "topology.links[0].vars.jitter", "jitter 2ms is more than the delay 1ms"},
		{"loss range", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      vars: {loss: 101}\n"), 10, 14, "topology.links[0].vars.loss", "0 to 100"},
		{"loss string", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      vars: {loss: 1%}\n"), 10, 20, "topology.links[0].vars.loss", "want a number"},
		{"rate negative", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      vars: {rate: -5}\n"), 10, 14, "topology.links[0].vars.rate", "must be from 0 to 1000000000"},
		{"rate absurd", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      vars: {rate: 2305843009213693952}\n"), 10, 14, "topology.links[0].vars.rate", "must be from 0 to 1000000000"},
		{"interface name shell syntax", linksDoc("    - endpoints: [\"a:e;touch\", b:eth1]\n"), 9, 0, "", "interface names take letters, digits"},
		{"rate not an integer", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      vars: {rate: 10mbit}\n"), 10, 20, "", "want an integer"},
		{"unknown var", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      vars: {dealy: 2ms}\n"), 10, 14, "topology.links[0].vars.dealy", `unknown field "dealy"`},
		{"unknown direction var", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      vars: {a-to-b: {delay: 1ms, dup: 1}}\n"), 10, 35, "topology.links[0].vars.a-to-b.dup", "accepted: delay, jitter, loss, rate"},
		{"nested direction", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      vars: {a-to-b: {b-to-a: {}}}\n"), 10, 23, "", "directions do not nest"},
		{"duplicate var", linksDoc("    - endpoints: [a:eth1, b:eth1]\n      vars:\n        delay: 1ms\n        delay: 2ms\n"), 12, 9, "", "first defined at line 11"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.clab.yml", []byte(tc.yaml), nil)
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("Parse = %v, want *Error", err)
			}
			for _, p := range perr.Problems {
				if p.Line == tc.line && (tc.col == 0 || p.Col == tc.col) &&
					(tc.path == "" || p.Path == tc.path) && strings.Contains(p.Msg, tc.msg) {
					return
				}
			}
			t.Errorf("want a problem at %d:%d %s %q, got:\n%v", tc.line, tc.col, tc.path, tc.msg, err)
		})
	}
}

func TestErrorListsEveryProblem(t *testing.T) {
	_, err := Parse("lab/x.clab.yml", []byte(linksDoc(
		"    - endpoints: [a:eth1, x:eth1]\n    - endpoints: [b:eth1, c:eth1]\n      vars: {loss: 200}\n")), nil)
	want := "lab/x.clab.yml:9:27: topology.links[0].endpoints[1]: no node \"x\" in topology.nodes\n" +
		"lab/x.clab.yml:11:14: topology.links[1].vars.loss: loss is a percentage: 0 to 100, not 200"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestRefusalLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: t\ntopology:\n  defaults:\n    env: &a0 {k: v}\n    labels:\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, "      x%d: &a%d {<<: [*a%d, *a%d], k%d: v}\n", i, i, i-1, i-1, i)
	}
	b.WriteString("  nodes: {n: {kind: linux, env: *a39}}\n")
	_, err := Parse("x", []byte(b.String()), nil)
	if err == nil || !strings.Contains(err.Error(), "expands (through aliases) to more than") {
		t.Errorf("alias bomb: %.300v", err)
	}

	_, err = Parse("x", []byte(linksDoc(strings.Repeat("    - endpoints: [a:eth1, b:eth1]\n", 500))), nil)
	var perr *Error
	if !errors.As(err, &perr) || len(perr.Problems) != maxProblems+1 ||
		perr.Problems[maxProblems].Msg != "... and 898 more problems" {
		t.Errorf("many problems: %d, last %+v", len(perr.Problems), perr.Problems[len(perr.Problems)-1])
	}
}

func TestMergeDefaultsKindsNode(t *testing.T) {
	src := mergeExample
	top, err := Parse("m.clab.yml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	n1, n2, sw := top.Node("n1"), top.Node("n2"), top.Node("sw")
	if n1.Image != "img:kind" || n2.Image != "img:node" || n1.Cmd != "from-defaults" || n2.Cmd != "own" || n1.Group != "g" {
		t.Errorf("scalars: %+v %+v", n1, n2)
	}
	if got := strings.Join(n1.Exec, ";"); got != "echo defaults;echo kind;echo node" {
		t.Errorf("exec %q", got)
	}
	if n1.Env["A"] != "d" || n1.Env["B"] != "k" || n1.Env["C"] != "n" || n1.Env["D"] != "1" || n2.Env["C"] != "k" {
		t.Errorf("env %v %v", n1.Env, n2.Env)
	}
	if n1.Labels["team"] != "d" || n1.Line != 18 {
		t.Errorf("labels %v line %d", n1.Labels, n1.Line)
	}
	if sw.Kind != KindBridge || sw.Cmd != "" || sw.Exec != nil {
		t.Errorf("bridge inherits commands: %+v", sw)
	}
	if top.Prefix != "" || top.ContainerName("n1") != "n1" || top.Namespace("n1") != "clab-m-n1" {
		t.Errorf("prefix %q", top.Prefix)
	}
	if len(top.Warnings) != 1 || top.Warnings[0].Line != 16 || !strings.Contains(top.Warnings[0].Msg, "binds are ignored") {
		t.Errorf("warnings %v", top.WarningText())
	}
}

func TestExtendedLinksAnchorsAndDirections(t *testing.T) {
	src := extendedExample
	top, err := Parse("x.clab.yml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if top.Node("a").Cmd != "run-a" || top.Node("b").Kind != KindLinux {
		t.Errorf("anchors: %+v %+v", top.Node("a"), top.Node("b"))
	}
	l := top.Links[0]
	if l.Line != 9 || l.MTU != 9000 || l.Labels["medium"] != "fibre" || l.A.MAC != "02:00:00:00:00:01" {
		t.Errorf("link %+v", l)
	}
	if l.A.Addr.String() != "10.0.0.1/31" || l.B.Addr.String() != "10.0.0.2/31" || l.A.Addr6.String() != "2001:db8::1/64" || l.B.Addr6.IsValid() {
		t.Errorf("addresses %+v %+v", l.A, l.B)
	}
	wantAB := Impairment{Delay: 10 * time.Millisecond, Jitter: time.Millisecond, LossPct: 0.5}
	wantBA := Impairment{Delay: 5 * time.Millisecond, Jitter: time.Millisecond, RateKbit: 1000}
	if l.AtoB != wantAB || l.BtoA != wantBA {
		t.Errorf("impairments %+v %+v", l.AtoB, l.BtoA)
	}
}

const mergeExample = `name: m
prefix: ""
mgmt: {network: custom}
topology:
  defaults:
    kind: linux
    env: {A: d, B: d}
    labels: {team: d}
    exec: [echo defaults]
    cmd: from-defaults
  kinds:
    linux:
      image: img:kind
      env: {B: k, C: k}
      exec: [echo kind]
      binds: [/a:/a]
  nodes:
    n1:
      env: {C: n, D: 1}
      exec: [echo node]
      group: g
      startup-delay: 3
    n2:
      image: img:node
      cmd: own
    sw:
      kind: bridge
  links:
    - endpoints: [n1:eth1, sw:n1-p]
    - endpoints: [n2:eth1, sw:n2-p]
`

const extendedExample = `name: x
topology:
  defaults: &def
    kind: linux
  nodes:
    a: {<<: *def, cmd: run-a}
    b: *def
  links:
    - type: veth
      mtu: 9000
      endpoints:
        - {node: a, interface: eth1, mac: "02:00:00:00:00:01", ipv6: "2001:db8::1/64"}
        - {node: b, interface: eth1, ipv4: 10.0.0.2/31}
      ipv4: ["10.0.0.1/31", ""]
      labels: {medium: fibre}
      vars:
        delay: 5ms
        jitter: 1ms
        loss: 0.5
        rate: 1000
        a-to-b: {delay: 10ms, rate: 0}
        b-to-a: {loss: 0}
`
