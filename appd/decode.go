package appd

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder fills Go values from a tnode, using the json tag names (which the
// yaml tags repeat). It keeps going after a wrong type so that one pass finds
// every problem; the offending field is left at its zero value.
type decoder struct {
	errs   []FieldError
	fields map[reflect.Type][]fieldInfo
}

type fieldInfo struct {
	name  string
	index int
}

// treeUnmarshaler is implemented by the types that accept more than one form
// (see quirks.go).
type treeUnmarshaler interface {
	unmarshalTree(d *decoder, n *tnode, path string)
}

func newDecoder() *decoder {
	return &decoder{fields: map[reflect.Type][]fieldInfo{}}
}

func (d *decoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
}

func (d *decoder) typeError(path, want string, n *tnode) {
	d.fail(path, "must be %s, not %s", want, n.kind)
}

func (d *decoder) decode(n *tnode, v reflect.Value, path string) {
	if v.CanAddr() {
		if u, ok := v.Addr().Interface().(treeUnmarshaler); ok {
			u.unmarshalTree(d, n, path)
			return
		}
	}
	if n.kind == kindNull {
		// As in encoding/json, null leaves the zero value; Validate then
		// reports a required field as missing.
		v.Set(reflect.Zero(v.Type()))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.kind != kindList {
			d.typeError(path, "an array", n)
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.list), len(n.list))
		for i, e := range n.list {
			d.decode(e, s.Index(i), indexPath(path, i))
		}
		v.Set(s)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.String:
		if s, ok := d.stringValue(n, path); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if n.kind != kindBool {
			d.typeError(path, "a boolean", n)
			return
		}
		v.SetBool(n.text == "true")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if i, ok := d.intValue(n, path); ok {
			if v.OverflowInt(i) {
				d.fail(path, "%d is out of range for %s", i, v.Type().Kind())
				return
			}
			v.SetInt(i)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if i, ok := d.intValue(n, path); ok {
			if i < 0 || v.OverflowUint(uint64(i)) {
				d.fail(path, "%d is out of range for %s (0..%d)", i, v.Type().Kind(), maxUint(v.Type().Bits()))
				return
			}
			v.SetUint(uint64(i))
		}
	case reflect.Float32, reflect.Float64:
		if f, ok := d.floatValue(n, path); ok {
			v.SetFloat(f)
		}
	case reflect.Interface:
		if v.NumMethod() != 0 {
			d.fail(path, "cannot decode into %s", v.Type())
			return
		}
		if a := d.toAny(n, path); a != nil {
			v.Set(reflect.ValueOf(a))
		}
	default:
		d.fail(path, "cannot decode into %s", v.Type())
	}
}

func maxUint(bits int) uint64 {
	if bits >= 64 {
		return math.MaxUint64
	}
	return 1<<uint(bits) - 1
}

func (d *decoder) stringValue(n *tnode, path string) (string, bool) {
	switch {
	case n.kind == kindString:
		return n.text, true
	case n.plain && (n.kind == kindNumber || n.kind == kindBool):
		return n.raw, true
	}
	d.typeError(path, "a string", n)
	return "", false
}

func (d *decoder) floatValue(n *tnode, path string) (float64, bool) {
	if n.kind != kindNumber {
		d.typeError(path, "a number", n)
		return 0, false
	}
	f, err := strconv.ParseFloat(n.text, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		d.fail(path, "must be a finite number")
		return 0, false
	}
	return f, true
}

func (d *decoder) intValue(n *tnode, path string) (int64, bool) {
	if n.kind != kindNumber {
		d.typeError(path, "an integer", n)
		return 0, false
	}
	if i, err := strconv.ParseInt(n.text, 10, 64); err == nil {
		return i, true
	}
	f, ok := d.floatValue(n, path)
	if !ok {
		return 0, false
	}
	if f != math.Trunc(f) {
		d.fail(path, "must be an integer, not %s", n.text)
		return 0, false
	}
	if f < math.MinInt64 || f >= math.MaxInt64 {
		d.fail(path, "%s is out of range", n.text)
		return 0, false
	}
	return int64(f), true
}

func (d *decoder) decodeStruct(n *tnode, v reflect.Value, path string) {
	if n.kind != kindMap {
		d.typeError(path, "an object", n)
		return
	}
	at := d.keyIndex(n, path)
	for _, f := range d.structFields(v.Type()) {
		// Unknown keys are ignored on purpose: the AppD keeps growing and a
		// newer descriptor must still load.
		if i, ok := at[f.name]; ok {
			d.decode(n.vals[i], v.Field(f.index), joinPath(path, f.name))
		}
	}
}

// keyIndex maps each key to its position and reports duplicates, which
// encoding/json would resolve silently (last wins) and yaml.v3 would refuse.
func (d *decoder) keyIndex(n *tnode, path string) map[string]int {
	at := make(map[string]int, len(n.keys))
	for i, k := range n.keys {
		if _, dup := at[k]; dup {
			d.fail(joinPath(path, k), "duplicate key")
			continue
		}
		at[k] = i
	}
	return at
}

func (d *decoder) decodeMap(n *tnode, v reflect.Value, path string) {
	if n.kind != kindMap {
		d.typeError(path, "an object", n)
		return
	}
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(path, "cannot decode into %s", t)
		return
	}
	at := d.keyIndex(n, path)
	m := reflect.MakeMapWithSize(t, len(at))
	for i, k := range n.keys {
		if at[k] != i {
			continue
		}
		ev := reflect.New(t.Elem()).Elem()
		d.decode(n.vals[i], ev, joinPath(path, k))
		m.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), ev)
	}
	v.Set(m)
}

// toAny converts free-form content (KeyValuePairs, inherited_attributes, …)
// to the values encoding/json would produce, except that integers stay
// int64 so they print back unchanged.
func (d *decoder) toAny(n *tnode, path string) any {
	switch n.kind {
	case kindBool:
		return n.text == "true"
	case kindNumber:
		if i, err := strconv.ParseInt(n.text, 10, 64); err == nil {
			return i
		}
		f, ok := d.floatValue(n, path)
		if !ok {
			return nil
		}
		return f
	case kindString:
		return n.text
	case kindList:
		out := make([]any, len(n.list))
		for i, e := range n.list {
			out[i] = d.toAny(e, indexPath(path, i))
		}
		return out
	case kindMap:
		at := d.keyIndex(n, path)
		out := make(map[string]any, len(at))
		for i, k := range n.keys {
			if at[k] == i {
				out[k] = d.toAny(n.vals[i], joinPath(path, k))
			}
		}
		return out
	}
	return nil
}

func (d *decoder) structFields(t reflect.Type) []fieldInfo {
	if fs, ok := d.fields[t]; ok {
		return fs
	}
	var fs []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fs = append(fs, fieldInfo{name: name, index: i})
	}
	d.fields[t] = fs
	return fs
}

// decodeTreeInto runs the decoder on a whole tree; it backs the UnmarshalJSON
// and UnmarshalYAML methods so that encoding/json and yaml.v3 users get the
// same forms accepted as Parse accepts.
func decodeTreeInto(n *tnode, v any) error {
	d := newDecoder()
	d.decode(n, reflect.ValueOf(v).Elem(), "")
	if len(d.errs) > 0 {
		return &ValidationError{Errors: d.errs}
	}
	return nil
}

func unmarshalJSONInto(data []byte, v any) error {
	n, err := jsonTree(data)
	if err != nil {
		return err
	}
	return decodeTreeInto(n, v)
}

func unmarshalYAMLInto(node *yaml.Node, v any) error {
	// The source length is unknown here; the number of nodes written out
	// (aliases not expanded) stands in for it.
	n, err := yamlNodeTree(node, countYAMLNodes(node, 0))
	if err != nil {
		return err
	}
	return decodeTreeInto(n, v)
}

// countYAMLNodes counts nodes without following aliases, stopping early
// once the count no longer matters for the budget.
func countYAMLNodes(n *yaml.Node, depth int) int {
	if n == nil || depth > maxTreeDepth {
		return 0
	}
	c := 1
	for _, k := range n.Content {
		if c > maxTreeNodes {
			break
		}
		c += countYAMLNodes(k, depth+1)
	}
	return c
}
