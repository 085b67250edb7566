package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Load reads and parses a topology file, expanding variables from the
// process environment.
func Load(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	return Parse(path, data, os.Getenv)
}

// Parse reads a containerlab topology as containerlab reads it (variables
// expanded, then a strict YAML decode) and checks what the netns runner
// needs. file names the source in messages. env looks variables up (nil:
// none set). It touches nothing on the host. A refusal is an *Error
// listing every problem with its line.
func Parse(file string, data []byte, env func(string) string) (*Topology, error) {
	fail := func(ps []Problem) error {
		sortProblems(ps)
		ps = dedupe(ps)
		if len(ps) > maxProblems {
			more := len(ps) - maxProblems
			ps = append(ps[:maxProblems:maxProblems], Problem{Msg: fmt.Sprintf("... and %d more problems", more)})
		}
		return &Error{File: file, Problems: ps}
	}
	rendered, problems, warnings := render(data, env)
	if len(problems) > 0 {
		return nil, fail(problems)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(rendered))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fail([]Problem{{Line: 1, Msg: "the file is empty"}})
		}
		return nil, fail([]Problem{yamlProblem(err)})
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		return nil, fail([]Problem{{Line: more.Line, Col: more.Column, Msg: "a topology file holds one YAML document, this is a second"}})
	} else if !errors.Is(err, io.EOF) {
		return nil, fail([]Problem{yamlProblem(err)})
	}
	p := &parser{budget: entryBudget, warnings: warnings, nodeKey: map[string]*yaml.Node{}}
	t := p.top(&doc)
	if len(p.problems) > 0 {
		return nil, fail(p.problems)
	}
	t.File = file
	sortProblems(p.warnings)
	t.Warnings = p.warnings
	return t, nil
}

// maxProblems bounds a refusal's length: past it, the rest are counted.
const maxProblems = 100

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

func yamlProblem(err error) Problem {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Line: line, Msg: "YAML: " + msg[len(m[0]):]}
	}
	return Problem{Msg: msg}
}

var labName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Keys containerlab knows that our runner does not realize: refused with
// that reason rather than as unknown.
var (
	clabTopLevel = set("settings", "debug")
	clabTopology = set("groups")
)

func set(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

func (p *parser) unknown(e entry, path string, clab map[string]bool, accepted []string) {
	if clab[e.name] {
		p.add(e.key, join(path, e.name), "containerlab's %q is not supported by the netns runner", e.name)
		return
	}
	p.add(e.key, join(path, e.name), "unknown field %q (accepted: %s)", e.name, oneOf(accepted))
}

func (p *parser) top(doc *yaml.Node) *Topology {
	root := doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root = doc.Content[0]
	}
	t := &Topology{Prefix: "clab"}
	entries, ok := p.mapping(root, "")
	if !ok {
		return t
	}
	var nameKey, topoVal *yaml.Node
	for _, e := range entries {
		switch e.name {
		case "name":
			nameKey = e.key
			t.Name, _ = p.str(e.val, "name")
		case "prefix":
			pre, ok := p.str(e.val, "prefix")
			switch {
			case !ok:
			case pre == "" || pre == "clab":
				t.Prefix = pre
			default:
				p.add(e.key, "prefix", "prefix %q is not supported: leave it out (containers clab-<lab>-<node>) or set it to \"\"", pre)
			}
		case "mgmt":
			// The Docker management network; the netns runner has none.
			p.mapping(e.val, "mgmt")
		case "topology":
			topoVal = e.val
			if isNull(e.val) {
				p.add(e.key, "topology", "topology is empty")
			}
		default:
			p.unknown(e, "", clabTopLevel, []string{"name", "prefix", "mgmt", "topology"})
		}
	}
	switch {
	case nameKey == nil:
		p.add(root, "name", "the lab has no name (namespaces are named clab-<name>-<node>)")
	case !labName.MatchString(t.Name):
		p.add(nameKey, "name", "%q is not a lab name: letters, digits, '.', '_' and '-', starting with a letter or digit", t.Name)
	}
	if topoVal == nil {
		p.add(root, "topology", "the file has no topology section")
		return t
	}
	p.topology(t, topoVal)
	return t
}

func (p *parser) topology(t *Topology, n *yaml.Node) {
	const path = "topology"
	entries, ok := p.mapping(n, path)
	if !ok {
		return
	}
	var defaults *nodeDef
	kinds := map[string]*nodeDef{}
	var nodesVal, linksVal *yaml.Node
	var nodesKey *yaml.Node
	for _, e := range entries {
		switch e.name {
		case "defaults":
			defaults = p.nodeDef(e.val, "topology.defaults")
		case "kinds":
			ks, _ := p.mapping(e.val, "topology.kinds")
			for _, k := range ks {
				kinds[k.name] = p.nodeDef(k.val, "topology.kinds."+k.name)
			}
		case "nodes":
			nodesKey, nodesVal = e.key, e.val
		case "links":
			linksVal = e.val
		default:
			p.unknown(e, path, clabTopology, []string{"defaults", "kinds", "nodes", "links"})
		}
	}
	if defaults == nil {
		defaults = &nodeDef{}
	}
	nodes, _ := p.mapping(nodesVal, "topology.nodes")
	if len(nodes) == 0 {
		where := nodesKey
		if where == nil {
			where = n
		}
		p.add(where, "topology.nodes", "the topology has no nodes")
	}
	for _, e := range nodes {
		if node := p.node(t, e, defaults, kinds); node != nil {
			t.Nodes = append(t.Nodes, node)
		}
	}
	p.links(t, linksVal)
	p.checkNames(t)
}
