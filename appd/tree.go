package appd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"gopkg.in/yaml.v3"
)

// The AppD is read into this format-neutral tree first, and only then into
// Go values. encoding/json stops at the first wrong type and names the field
// without array indexes; yaml.v3 reports only a line number. Walking our own
// tree lets one decoder report every wrong type with a full path, for JSON
// and YAML alike.

type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindList
	kindMap
)

func (k kind) String() string {
	switch k {
	case kindBool:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindList:
		return "an array"
	case kindMap:
		return "an object"
	default:
		return "null"
	}
}

type tnode struct {
	kind kind
	// text is the string value, the decimal form of a number, or
	// "true"/"false".
	text string
	// plain marks an unquoted YAML scalar; raw is its source text. YAML
	// authors write `appSoftVersion: 1.0` and mean a string, so a plain
	// number or boolean may stand for a string (JSON gets no such leniency).
	plain bool
	raw   string
	list  []*tnode
	keys  []string
	vals  []*tnode
	line  int // YAML only; 0 when unknown
}

// Limits on the tree guard against deep nesting and YAML alias expansion
// (a "billion laughs" document expands exponentially, and a self-referring
// anchor would loop forever). Without aliases a document has fewer values
// than bytes, so the value budget grows with the input: generous for
// anchors reused a few times, small enough that a hostile document is
// refused in milliseconds.
const (
	maxTreeDepth     = 100
	minTreeNodes     = 10_000
	treeNodesPerByte = 10
	maxTreeNodes     = 1 << 20
)

type treeBudget struct{ nodes, max int }

func newTreeBudget(inputLen int) *treeBudget {
	return &treeBudget{max: min(maxTreeNodes, max(minTreeNodes, treeNodesPerByte*inputLen))}
}

func (b *treeBudget) take(depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("document nests deeper than %d levels", maxTreeDepth)
	}
	b.nodes++
	if b.nodes > b.max {
		return fmt.Errorf("document has more than %d values (after expanding YAML aliases)", b.max)
	}
	return nil
}

// parseTree picks the format the way the AppD API does: a document whose
// first non-space byte is '{' is JSON, anything else is YAML.
func parseTree(data []byte) (*tnode, error) {
	trimmed := bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed = bytes.TrimLeft(trimmed, " \t\r\n")
	if len(bytes.TrimSpace(trimmed)) == 0 {
		return nil, errors.New("empty document")
	}
	if trimmed[0] == '{' {
		return jsonTree(trimmed)
	}
	return yamlTree(trimmed)
}

func jsonTree(data []byte) (*tnode, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	b := newTreeBudget(len(data))
	n, err := b.jsonValue(dec, 0)
	if err != nil {
		return nil, jsonSyntaxError(data, dec, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, jsonSyntaxError(data, dec, errors.New("unexpected data after the top-level value"))
	}
	return n, nil
}

func jsonSyntaxError(data []byte, dec *json.Decoder, err error) error {
	off := dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = errors.New("unexpected end of input")
	}
	line, col := lineCol(data, off)
	return fmt.Errorf("invalid JSON at line %d, column %d: %w", line, col, err)
}

func lineCol(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line, col = 1, 1
	for _, c := range data[:off] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

func (b *treeBudget) jsonValue(dec *json.Decoder, depth int) (*tnode, error) {
	if err := b.take(depth); err != nil {
		return nil, err
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &tnode{kind: kindMap}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, errors.New("object key is not a string")
				}
				v, err := b.jsonValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, key)
				n.vals = append(n.vals, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return n, nil
		case '[':
			n := &tnode{kind: kindList}
			for dec.More() {
				v, err := b.jsonValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.list = append(n.list, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return n, nil
		}
		return nil, fmt.Errorf("unexpected %q", rune(t))
	case string:
		return &tnode{kind: kindString, text: t}, nil
	case json.Number:
		return &tnode{kind: kindNumber, text: t.String()}, nil
	case bool:
		return &tnode{kind: kindBool, text: strconv.FormatBool(t)}, nil
	case nil:
		return &tnode{kind: kindNull}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

func yamlTree(data []byte) (*tnode, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, errors.New("empty document")
		}
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
	case err != nil:
		return nil, fmt.Errorf("invalid YAML: %w", err)
	default:
		// A second document would be silently ignored by most readers; an
		// AppD is one document.
		return nil, fmt.Errorf("invalid YAML: more than one document (second one at line %d)", extra.Line)
	}
	return yamlNodeTree(&doc, len(data))
}

// yamlNodeTree converts a parsed YAML node; inputLen sizes the value budget
// (0 when unknown, as in UnmarshalYAML).
func yamlNodeTree(n *yaml.Node, inputLen int) (*tnode, error) {
	return newTreeBudget(inputLen).yamlValue(n, 0)
}

func (b *treeBudget) yamlValue(n *yaml.Node, depth int) (*tnode, error) {
	if err := b.take(depth); err != nil {
		return nil, err
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return &tnode{kind: kindNull}, nil
		}
		return b.yamlValue(n.Content[0], depth+1)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, fmt.Errorf("line %d: unknown alias", n.Line)
		}
		return b.yamlValue(n.Alias, depth+1)
	case yaml.ScalarNode:
		return yamlScalar(n)
	case yaml.SequenceNode:
		t := &tnode{kind: kindList, line: n.Line}
		for _, c := range n.Content {
			v, err := b.yamlValue(c, depth+1)
			if err != nil {
				return nil, err
			}
			t.list = append(t.list, v)
		}
		return t, nil
	case yaml.MappingNode:
		return b.yamlMapping(n, depth)
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

func (b *treeBudget) yamlMapping(n *yaml.Node, depth int) (*tnode, error) {
	t := &tnode{kind: kindMap, line: n.Line}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		for k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: mapping keys must be scalars", k.Line)
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		tv, err := b.yamlValue(v, depth+1)
		if err != nil {
			return nil, err
		}
		t.keys = append(t.keys, k.Value)
		t.vals = append(t.vals, tv)
	}
	// Merge keys (<<) add the entries the mapping does not set itself.
	for _, m := range merges {
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, s := range srcs {
			mt, err := b.yamlValue(s, depth+1)
			if err != nil {
				return nil, err
			}
			if mt.kind != kindMap {
				return nil, fmt.Errorf("line %d: merge key (<<) needs a mapping", s.Line)
			}
			for j, key := range mt.keys {
				if !hasKey(t.keys, key) {
					t.keys = append(t.keys, key)
					t.vals = append(t.vals, mt.vals[j])
				}
			}
		}
	}
	return t, nil
}

func hasKey(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

func yamlScalar(n *yaml.Node) (*tnode, error) {
	plain := n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0
	t := &tnode{plain: plain, raw: n.Value, line: n.Line}
	switch n.ShortTag() {
	case "!!null":
		t.kind = kindNull
	case "!!bool":
		var v bool
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		t.kind, t.text = kindBool, strconv.FormatBool(v)
	case "!!int", "!!float":
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		t.kind = kindNumber
		switch x := v.(type) {
		case int:
			t.text = strconv.Itoa(x)
		case int64:
			t.text = strconv.FormatInt(x, 10)
		case uint64:
			t.text = strconv.FormatUint(x, 10)
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				t.text = "non-finite"
			} else {
				t.text = strconv.FormatFloat(x, 'g', -1, 64)
			}
		default:
			t.kind, t.text = kindString, n.Value
		}
	default:
		// !!str, !!timestamp, !!binary and application tags keep their text.
		t.kind, t.text = kindString, n.Value
	}
	return t, nil
}
