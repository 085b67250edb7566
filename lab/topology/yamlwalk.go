package topology

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// parser walks the yaml.v3 node tree, so that every problem has the
// position of its key, and collects problems instead of stopping at the
// first.
type parser struct {
	problems, warnings []Problem
	// budget bounds the entries visited: aliases can make a small file
	// expand to an enormous one.
	budget    int
	overspent bool
	// nodeKey is where each node is defined, for messages about it.
	nodeKey map[string]*yaml.Node
}

const entryBudget = 1 << 20

type entry struct {
	name     string
	key, val *yaml.Node
}

func at(n *yaml.Node, path, format string, args ...any) Problem {
	p := Problem{Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	return p
}

func (p *parser) add(n *yaml.Node, path, format string, args ...any) {
	p.problems = append(p.problems, at(n, path, format, args...))
}

func (p *parser) warn(n *yaml.Node, path, format string, args ...any) {
	p.warnings = append(p.warnings, at(n, path, format, args...))
}

func (p *parser) spend(n int, where *yaml.Node) bool {
	p.budget -= n
	if p.budget < 0 && !p.overspent {
		p.overspent = true
		p.add(where, "", "the file expands (through aliases) to more than %d entries", entryBudget)
	}
	return !p.overspent
}

// deref follows aliases.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// mapping returns the entries of a mapping, in file order, with merge keys
// (<<) flattened under the explicit ones. Duplicate keys, which yaml.v3
// only catches when decoding into a map, are problems naming both lines.
// A null value is an empty mapping; ok is false for anything else.
func (p *parser) mapping(n *yaml.Node, path string) (entries []entry, ok bool) {
	n = deref(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		p.add(n, path, "want a mapping, got %s", describe(n))
		return nil, false
	}
	if !p.spend(len(n.Content)/2, n) {
		return nil, false
	}
	seen := map[string]*yaml.Node{}
	var merged []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merged = append(merged, p.mergeSources(v, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.add(k, path, "keys must be plain strings, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.add(k, join(path, k.Value), "duplicate key %q (first defined at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		entries = append(entries, entry{k.Value, k, v})
	}
	for _, e := range merged {
		if _, dup := seen[e.name]; !dup {
			seen[e.name] = e.key
			entries = append(entries, e)
		}
	}
	return entries, true
}

func (p *parser) mergeSources(v *yaml.Node, path string) []entry {
	v = deref(v)
	var srcs []*yaml.Node
	if v != nil && v.Kind == yaml.SequenceNode {
		srcs = v.Content
	} else {
		srcs = []*yaml.Node{v}
	}
	var out []entry
	for _, s := range srcs {
		if s = deref(s); s == nil || s.Kind != yaml.MappingNode {
			p.add(s, path, "<< merges mappings only")
			continue
		}
		es, _ := p.mapping(s, path)
		out = append(out, es...)
	}
	return out
}

// sequence returns the items of a sequence; null is empty.
func (p *parser) sequence(n *yaml.Node, path string) ([]*yaml.Node, bool) {
	n = deref(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n, path, "want a list, got %s", describe(n))
		return nil, false
	}
	if !p.spend(len(n.Content), n) {
		return nil, false
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, it := range n.Content {
		items[i] = deref(it)
	}
	return items, true
}

// str reads a scalar as a string, as yaml's decoding into a string field
// does (numbers and booleans included); null is "".
func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	n = deref(n)
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!binary" {
		p.add(n, path, "want a string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) strList(n *yaml.Node, path string) ([]string, bool) {
	items, ok := p.sequence(n, path)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		if isNull(it) || it.Kind != yaml.ScalarNode {
			p.add(it, index(path, i), "want a string, got %s", describe(it))
			ok = false
			continue
		}
		out = append(out, it.Value)
	}
	return out, ok
}

// strMap reads a mapping of scalars (env, labels).
func (p *parser) strMap(n *yaml.Node, path string) (map[string]string, bool) {
	entries, ok := p.mapping(n, path)
	if !ok {
		return nil, false
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		v := deref(e.val)
		if isNull(v) || v.Kind != yaml.ScalarNode {
			p.add(e.key, join(path, e.name), "want a string, number or boolean, got %s", describe(v))
			ok = false
			continue
		}
		out[e.name] = v.Value
	}
	return out, ok
}

func (p *parser) integer(n *yaml.Node, path string) (int64, bool) {
	n = deref(n)
	var v int64
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		p.add(n, path, "want an integer, got %s", describe(n))
		return 0, false
	}
	return v, true
}

func (p *parser) number(n *yaml.Node, path string) (float64, bool) {
	n = deref(n)
	var v float64
	if n == nil || n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&v) != nil {
		p.add(n, path, "want a number, got %s", describe(n))
		return 0, false
	}
	return v, true
}

func (p *parser) duration(n *yaml.Node, path string) (time.Duration, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
		p.add(n, path, "want a duration such as 2ms, got %s", describe(n))
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		p.add(n, path, "%q is not a duration (Go syntax: 2ms, 0.5ms, 1.5s)", n.Value)
		return 0, false
	}
	return d, true
}

func describe(n *yaml.Node) string {
	n = deref(n)
	switch {
	case n == nil || isNull(n):
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Tag == "!!str":
		return strconv.Quote(n.Value)
	default:
		return n.Value
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// oneOf renders the accepted keys of a mapping for a message.
func oneOf(keys []string) string { return strings.Join(keys, ", ") }
