package topology

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

const threeSite = "../mec-3site.clab.yml"

func TestThreeSiteLab(t *testing.T) {
	top, err := Load(threeSite)
	if err != nil {
		t.Fatal(err)
	}
	if top.Name != "mec-3site" || len(top.Warnings) != 0 {
		t.Fatalf("name %q, warnings %v", top.Name, top.WarningText())
	}
	var names []string
	for _, n := range top.Nodes {
		names = append(names, n.Name)
		if n.Kind != KindLinux || n.Image == "" {
			t.Errorf("%s: kind %q image %q", n.Name, n.Kind, n.Image)
		}
	}
	want := "dc orchestrator upf dn hub edge1 edge2 edge3 gnb1 gnb2 gnb3 ue1 ue2 ue3"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("nodes %q, want %q", got, want)
	}
	if c := top.Node("orchestrator").Cmd; c != "mecorch serve --listen 0.0.0.0:8080 --store /var/lib/mecorch" {
		t.Errorf("orchestrator cmd %q", c)
	}
	for _, l := range top.Links {
		if !l.A.Addr.IsValid() || !l.B.Addr.IsValid() || !l.A.Addr.Overlaps(l.B.Addr) {
			t.Errorf("link at line %d: addresses %s %s", l.Line, l.A.Addr, l.B.Addr)
		}
	}
	if len(top.Links) != 13 {
		t.Errorf("%d links, want 13", len(top.Links))
	}
	for _, s := range []string{"1", "2", "3"} {
		// The cells mecorch's inventory is told of are those the gNB serves.
		gnb := top.Node("gnb" + s)
		cells := gnb.Labels["mecorch.cells"]
		if strings.Count(cells, ",") != 1 || !strings.Contains(gnb.Cmd, " --cell "+cells+" ") || gnb.Labels["mecorch.site"] != "site"+s {
			t.Errorf("gnb%s: cells %q, labels %v, cmd %q", s, cells, gnb.Labels, gnb.Cmd)
		}
		if edge := top.Node("edge" + s); edge.Labels["mecorch.host"] != "true" || !strings.Contains(edge.Cmd, " --host-id edge"+s+" ") {
			t.Errorf("edge%s: labels %v, cmd %q", s, edge.Labels, edge.Cmd)
		}
		if l := linkBetween(top, "gnb"+s, "ue"+s); l == nil {
			t.Errorf("ue%s is not attached to gnb%s", s, s)
		}
	}
	// One-way delays along the paths, as the issue asks: sites 2 ms from
	// the hub (site 3 behind 15 ms of microwave), the hub 8 ms from the DC.
	for _, c := range []struct {
		from, to string
		want     time.Duration
	}{
		{"edge1", "hub", 2 * time.Millisecond},
		{"edge2", "hub", 2 * time.Millisecond},
		{"edge3", "hub", 15 * time.Millisecond},
		{"hub", "dc", 8 * time.Millisecond},
		{"gnb1", "orchestrator", 10 * time.Millisecond},
		{"gnb3", "upf", 23 * time.Millisecond},
		{"ue2", "dn", 11 * time.Millisecond},
		{"edge1", "edge3", 17 * time.Millisecond},
	} {
		there, back := pathDelay(t, top, c.from, c.to), pathDelay(t, top, c.to, c.from)
		if there != c.want || back != c.want {
			t.Errorf("%s→%s %s, back %s, want %s", c.from, c.to, there, back, c.want)
		}
	}
	micro := linkBetween(top, "hub", "edge3")
	if micro.AtoB.RateKbit != 200000 || micro.BtoA.RateKbit != 100000 || micro.AtoB.Jitter != time.Millisecond {
		t.Errorf("microwave %+v %+v", micro.AtoB, micro.BtoA)
	}
}

func linkBetween(top *Topology, a, b string) *Link {
	for _, l := range top.Links {
		if l.A.Node == a && l.B.Node == b || l.A.Node == b && l.B.Node == a {
			return l
		}
	}
	return nil
}

// pathDelay sums the one-way delays along the fewest-hops path (the lab
// is a tree, so there is one).
func pathDelay(t *testing.T, top *Topology, from, to string) time.Duration {
	t.Helper()
	dist := map[string]time.Duration{from: 0}
	queue := []string{from}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, l := range top.Links {
			next, d := "", time.Duration(0)
			switch n {
			case l.A.Node:
				next, d = l.B.Node, l.AtoB.Delay
			case l.B.Node:
				next, d = l.A.Node, l.BtoA.Delay
			}
			if _, seen := dist[next]; next != "" && !seen {
				dist[next] = dist[n] + d
				queue = append(queue, next)
			}
		}
	}
	d, ok := dist[to]
	if !ok {
		t.Fatalf("no path %s→%s", from, to)
	}
	return d
}

func clabSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "..", "shared", "containerlab", "clab.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	const id = "https://containerlab.dev/clab.schema.json"
	c := jsonschema.NewCompiler()
	if err := c.AddResource(id, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// schemaCheck validates a file as containerlab sees it: rendered, then
// YAML, as JSON values.
func schemaCheck(t *testing.T, s *jsonschema.Schema, src []byte) error {
	t.Helper()
	rendered, problems, _ := render(src, nil)
	if len(problems) > 0 {
		t.Fatalf("render: %v", problems)
	}
	var v any
	if err := yaml.Unmarshal(rendered, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst)
}

func TestThreeSiteLabMatchesContainerlabSchema(t *testing.T) {
	s := clabSchema(t)
	src, err := os.ReadFile(threeSite)
	if err != nil {
		t.Fatal(err)
	}
	if err := schemaCheck(t, s, src); err != nil {
		t.Errorf("%s: %v", threeSite, err)
	}
	// The validator does refuse: a node field containerlab does not know.
	bad := bytes.Replace(src, []byte("    hub:\n"), []byte("    hub:\n      flavour: x\n"), 1)
	if err := schemaCheck(t, s, bad); err == nil {
		t.Error("the schema accepts an unknown node field")
	}
}

func TestAcceptedExamplesMatchContainerlabSchema(t *testing.T) {
	s := clabSchema(t)
	for _, src := range []string{mergeExample, extendedExample} {
		if _, err := Parse("x.clab.yml", []byte(src), nil); err != nil {
			t.Fatal(err)
		}
		if err := schemaCheck(t, s, []byte(src)); err != nil {
			t.Errorf("%v\n%s", err, src)
		}
	}
}

func TestCheckHost(t *testing.T) {
	top, err := Load(threeSite)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := top.CheckHost(dir); err != nil {
		t.Fatalf("empty netns dir: %v", err)
	}
	if err := top.CheckHost(filepath.Join(dir, "absent")); err != nil {
		t.Fatalf("no netns dir: %v", err)
	}
	for _, name := range []string{"clab-mec-3site-hub", "clab-mec-3site-hub2", "other"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	err = top.CheckHost(dir)
	var perr *Error
	if !errors.As(err, &perr) || len(perr.Problems) != 1 {
		t.Fatalf("CheckHost = %v, want one collision", err)
	}
	p := perr.Problems[0]
	if p.Line != top.Node("hub").Line || p.Path != "topology.nodes.hub" || !strings.Contains(p.Msg, "clab-mec-3site-hub already exists") {
		t.Errorf("problem %+v", p)
	}
}

func TestNetemCommands(t *testing.T) {
	top, err := Load(threeSite)
	if err != nil {
		t.Fatal(err)
	}
	want := `containerlab tools netem set -n clab-mec-3site-hub -i eth1 --delay 8ms
containerlab tools netem set -n clab-mec-3site-dc -i eth1 --delay 8ms
containerlab tools netem set -n clab-mec-3site-hub -i eth2 --delay 2ms
containerlab tools netem set -n clab-mec-3site-edge1 -i eth1 --delay 2ms
containerlab tools netem set -n clab-mec-3site-hub -i eth3 --delay 2ms
containerlab tools netem set -n clab-mec-3site-edge2 -i eth1 --delay 2ms
containerlab tools netem set -n clab-mec-3site-hub -i eth4 --delay 15ms --jitter 1ms --loss 0.01 --rate 200000
containerlab tools netem set -n clab-mec-3site-edge3 -i eth1 --delay 15ms --jitter 1ms --loss 0.01 --rate 100000
containerlab tools netem set -n clab-mec-3site-gnb1 -i eth2 --delay 1ms --jitter 0.2ms
containerlab tools netem set -n clab-mec-3site-ue1 -i eth1 --delay 1ms --jitter 0.2ms
containerlab tools netem set -n clab-mec-3site-gnb2 -i eth2 --delay 1ms --jitter 0.2ms
containerlab tools netem set -n clab-mec-3site-ue2 -i eth1 --delay 1ms --jitter 0.2ms
containerlab tools netem set -n clab-mec-3site-gnb3 -i eth2 --delay 1ms --jitter 0.2ms
containerlab tools netem set -n clab-mec-3site-ue3 -i eth1 --delay 1ms --jitter 0.2ms`
	if got := strings.Join(NetemCommands(top), "\n"); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	// One direction only, no prefix, and a bridge's port on the host.
	src := `name: n
prefix: ""
topology:
  nodes:
    a: {kind: linux}
    sw: {kind: bridge}
  links:
    - endpoints: [a:eth1, sw:a-port]
      vars: {b-to-a: {delay: 1500us, loss: 2.5, rate: 512}, a-to-b: {loss: 1}}
`
	top, err = Parse("n.clab.yml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	want = "containerlab tools netem set -n a -i eth1 --loss 1\n" +
		"tc qdisc replace dev a-port root netem delay 1.5ms loss 2.5% rate 512kbit"
	if got := strings.Join(NetemCommands(top), "\n"); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestEveryLabFileLoadsAndMatchesContainerlabSchema: each topology in lab/
// is one our runner realizes and containerlab accepts.
func TestEveryLabFileLoadsAndMatchesContainerlabSchema(t *testing.T) {
	s := clabSchema(t)
	files, err := filepath.Glob(filepath.Join("..", "*.clab.yml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("lab files %v, %v", files, err)
	}
	for _, f := range files {
		top, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(top.Warnings) != 0 {
			t.Errorf("%s: warnings %v", f, top.WarningText())
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := schemaCheck(t, s, src); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
