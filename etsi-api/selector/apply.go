package selector

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WithDefaultExcluded sets the complex attributes the resource leaves out
// unless asked for (MEC 010-2 AppInstanceInfo: vimConnectionInfo,
// instantiate, terminate, operate). They are excluded when no selector
// parameter is given, and with exclude_default. It returns s.
func (s *Selector) WithDefaultExcluded(paths ...string) *Selector {
	s.DefaultExcluded = s.DefaultExcluded[:0]
	for _, p := range paths {
		s.DefaultExcluded = append(s.DefaultExcluded, strings.Split(p, "/"))
	}
	return s
}

// Apply keeps the items that match every filter expression and selects
// their attributes. Items may be any JSON-marshalable values (typed ETSI
// structs, maps); each result is a fresh map[string]any, so the caller's
// values are never modified. alwaysKeep lists the attribute paths that no
// selector may remove: the resource's mandatory complex attributes, such as
// "_links".
//
// Attribute selection follows SOL 013 table 5.3.2-2, where a "complex"
// attribute is one whose JSON value is an object or an array:
//   - no parameter: everything but the default-excluded attributes;
//   - all_fields: everything;
//   - fields=L: every simple attribute, plus the complex ones in L or
//     alwaysKeep (a path a/b keeps a's simple attributes and a/b);
//   - exclude_fields=L: everything but L;
//   - exclude_default: everything but the default-excluded attributes;
//   - exclude_default and fields=L: the same, but L is kept.
func (s *Selector) Apply(items []any, alwaysKeep ...string) ([]any, error) {
	keep := make([][]string, 0, len(alwaysKeep))
	for _, p := range alwaysKeep {
		keep = append(keep, strings.Split(p, "/"))
	}
	out := make([]any, 0, len(items))
	for i, item := range items {
		m, err := toJSONObject(item)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		if !s.Match(m) {
			continue
		}
		out = append(out, s.project(m, keep))
	}
	return out, nil
}

// Match reports whether the JSON object m satisfies every filter
// expression.
func (s *Selector) Match(m map[string]any) bool {
	for _, e := range s.Filter {
		if !e.match(m) {
			return false
		}
	}
	return true
}

func toJSONObject(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	return m, nil
}

// match evaluates e on m. Where the path crosses arrays the attribute has
// several values; a positive operator (eq, in, cont, gt...) matches when any
// value satisfies it, and neq, nin and ncont are its exact negation, so they
// also match an absent attribute (SOL 013: "neq" is "not equal to", which an
// absent attribute is).
func (e Expr) match(m map[string]any) bool {
	leaves := collect(m, e.Path, nil)
	switch e.Op {
	case OpNeq:
		return !anyLeaf(leaves, OpEq, e.Values)
	case OpNin:
		return !anyLeaf(leaves, OpIn, e.Values)
	case OpNcont:
		return !anyLeaf(leaves, OpCont, e.Values)
	default:
		return anyLeaf(leaves, e.Op, e.Values)
	}
}

// collect gathers the values at path under v, fanning out over arrays both
// on the way and at the end (so (eq,mecInfo,3.1.1) tests each element).
func collect(v any, path []string, out []any) []any {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			out = collect(e, path, out)
		}
		return out
	case map[string]any:
		if len(path) == 0 {
			return append(out, v)
		}
		child, ok := v[path[0]]
		if !ok {
			return out
		}
		return collect(child, path[1:], out)
	default:
		if len(path) == 0 {
			return append(out, v)
		}
		return out
	}
}

func anyLeaf(leaves []any, op Op, values []string) bool {
	for _, leaf := range leaves {
		for _, want := range values {
			if test(leaf, op, want) {
				return true
			}
		}
	}
	return false
}

// test applies a positive operator to one attribute value. The filter value
// is read as the attribute's JSON type: a number for numbers, true/false for
// booleans; strings that both parse as RFC 3339 times compare as times, the
// rest byte-wise.
func test(leaf any, op Op, want string) bool {
	if op == OpCont {
		s, ok := leaf.(string)
		return ok && strings.Contains(s, want)
	}
	c, ok := compare(leaf, want)
	if !ok {
		return false
	}
	switch op {
	case OpEq, OpIn:
		return c == 0
	case OpGt:
		return c > 0
	case OpGte:
		return c >= 0
	case OpLt:
		return c < 0
	case OpLte:
		return c <= 0
	}
	return false
}

func compare(leaf any, want string) (int, bool) {
	switch v := leaf.(type) {
	case string:
		if a, err := time.Parse(time.RFC3339Nano, v); err == nil {
			if b, err := time.Parse(time.RFC3339Nano, want); err == nil {
				return a.Compare(b), true
			}
		}
		return strings.Compare(v, want), true
	case float64:
		w, err := strconv.ParseFloat(want, 64)
		if err != nil {
			return 0, false
		}
		switch {
		case v < w:
			return -1, true
		case v > w:
			return 1, true
		}
		return 0, true
	case bool:
		w, err := strconv.ParseBool(want)
		if err != nil {
			return 0, false
		}
		switch {
		case v == w:
			return 0, true
		case !v:
			return -1, true
		}
		return 1, true
	}
	return 0, false // null, objects: no order, no equality with text
}

// node is a tree of attribute paths; whole means the subtree is kept as is.
type node struct {
	whole bool
	kids  map[string]*node
}

func (n *node) add(path []string) {
	for _, seg := range path {
		if n.whole {
			return
		}
		if n.kids == nil {
			n.kids = make(map[string]*node)
		}
		child, ok := n.kids[seg]
		if !ok {
			child = &node{}
			n.kids[seg] = child
		}
		n = child
	}
	n.whole, n.kids = true, nil
}

func (s *Selector) project(m map[string]any, keep [][]string) map[string]any {
	switch {
	case s.AllFields:
		return m
	case s.Fields != nil && !s.ExcludeDefault:
		tree := &node{}
		for _, p := range append(append([][]string{}, s.Fields...), keep...) {
			tree.add(p)
		}
		return keepSimpleAnd(m, tree)
	case s.ExcludeFields != nil:
		return exclude(m, s.ExcludeFields, keep)
	default: // no parameter, or exclude_default (with or without fields)
		return exclude(m, s.DefaultExcluded, append(append([][]string{}, keep...), s.Fields...))
	}
}

// keepSimpleAnd keeps every simple attribute of m, and its complex ones
// only where tree names them.
func keepSimpleAnd(m map[string]any, tree *node) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		child := tree.kids[k]
		switch {
		case child != nil && child.whole:
			out[k] = v
		case child != nil:
			out[k] = descend(v, child)
		case !isComplex(v):
			out[k] = v
		}
	}
	return out
}

func descend(v any, tree *node) any {
	switch v := v.(type) {
	case map[string]any:
		return keepSimpleAnd(v, tree)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = descend(e, tree)
		}
		return out
	}
	return v
}

func isComplex(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return true
	}
	return false
}

// exclude removes the paths from m (m is the caller's private copy),
// sparing any path related to a protected one: an always-kept attribute
// stays whole.
func exclude(m map[string]any, paths, protected [][]string) map[string]any {
	for _, p := range paths {
		if related(p, protected) {
			continue
		}
		remove(m, p)
	}
	return m
}

func related(p []string, others [][]string) bool {
	for _, o := range others {
		n := min(len(p), len(o))
		if n > 0 && equal(p[:n], o[:n]) {
			return true
		}
	}
	return false
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func remove(v any, path []string) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			remove(e, path)
		}
	case map[string]any:
		if len(path) == 1 {
			delete(v, path[0])
			return
		}
		if child, ok := v[path[0]]; ok {
			remove(child, path[1:])
		}
	}
}
