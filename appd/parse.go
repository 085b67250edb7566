package appd

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem with one field. Path names the field the way
// the API reports invalid parameters: dotted lowerCamel names from the spec
// with zero-based indexes, e.g. appTrafficRule[1].trafficFilter[0].srcAddress[2].
type FieldError struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

func (e FieldError) String() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

// ValidationError carries every problem found in a document or package, not
// just the first, so that a provider can fix them all in one round.
type ValidationError struct {
	Errors []FieldError
}

// maxErrorsInMessage keeps Error() readable; the full list is in Errors.
const maxErrorsInMessage = 5

func (e *ValidationError) Error() string {
	var b strings.Builder
	n := len(e.Errors)
	if n == 1 {
		b.WriteString("1 invalid field: ")
	} else {
		fmt.Fprintf(&b, "%d invalid fields: ", n)
	}
	for i, fe := range e.Errors {
		if i == maxErrorsInMessage {
			fmt.Fprintf(&b, "; and %d more", n-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(fe.String())
	}
	return b.String()
}

// prefixed returns the errors with prefix added to every path, for errors of
// a nested document (the AppD inside a package is reported under "appD.").
func prefixed(prefix string, errs []FieldError) []FieldError {
	out := make([]FieldError, len(errs))
	for i, e := range errs {
		switch {
		case e.Path == "":
			e.Path = prefix
		case strings.HasPrefix(e.Path, "["):
			e.Path = prefix + e.Path
		default:
			e.Path = prefix + "." + e.Path
		}
		out[i] = e
	}
	return out
}

func joinPath(base, name string) string {
	if !isPlainName(name) {
		name = strconv.Quote(name)
		return base + "[" + name + "]"
	}
	if base == "" {
		return name
	}
	return base + "." + name
}

func indexPath(base string, i int) string {
	return base + "[" + strconv.Itoa(i) + "]"
}

// isPlainName reports whether a key can be written after a dot without
// ambiguity; other keys (free-form content) are written as ["key"].
func isPlainName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
		case i > 0 && (r >= '0' && r <= '9' || r == '-'):
		default:
			return false
		}
	}
	return true
}

// Parse decodes an AppD from JSON or YAML (a document whose first non-space
// byte is '{' is JSON) and validates it. Unknown fields are ignored; wrongly
// typed fields and failed checks are all returned together as a
// *ValidationError. Syntax errors are returned as plain errors.
func Parse(data []byte) (*AppD, error) {
	n, err := parseTree(data)
	if err != nil {
		return nil, err
	}
	if n.kind != kindMap {
		return nil, &ValidationError{Errors: []FieldError{{Reason: "the AppD must be an object, not " + n.kind.String()}}}
	}
	// The v3 OpenAPI file wraps bodies as {"AppD": {...}}; accept that too.
	if len(n.keys) == 1 && n.keys[0] == "AppD" && n.vals[0].kind == kindMap {
		n = n.vals[0]
	}
	d := newDecoder()
	a := &AppD{}
	d.decode(n, reflect.ValueOf(a).Elem(), "")
	a.normalize()
	errs := d.errs
	// A field that failed to decode is zero, so Validate would also call it
	// missing; keep only the type error for it.
	for _, fe := range a.Validate() {
		if !coveredBy(fe.Path, d.errs) {
			errs = append(errs, fe)
		}
	}
	if len(errs) > 0 {
		return nil, &ValidationError{Errors: errs}
	}
	return a, nil
}

func coveredBy(path string, typeErrs []FieldError) bool {
	for _, te := range typeErrs {
		if path == te.Path || strings.HasPrefix(path, te.Path+".") || strings.HasPrefix(path, te.Path+"[") {
			return true
		}
	}
	return false
}

// UnmarshalJSON decodes with the same rules as Parse (both forms of every
// quirk accepted) but does not validate.
func (a *AppD) UnmarshalJSON(data []byte) error {
	if err := unmarshalJSONInto(data, a); err != nil {
		return err
	}
	a.normalize()
	return nil
}

// UnmarshalYAML is the yaml.v3 counterpart of UnmarshalJSON.
func (a *AppD) UnmarshalYAML(n *yaml.Node) error {
	if err := unmarshalYAMLInto(n, a); err != nil {
		return err
	}
	a.normalize()
	return nil
}

// normalize rewrites the accepted legacy spellings into the v3 ones, so that
// the rest of mecorch handles one form only. docs/appd.md lists them.
func (a *AppD) normalize() {
	for i := range a.MecVersion {
		a.MecVersion[i] = strings.TrimSpace(a.MecVersion[i])
	}
	for i := range a.AppTrafficRule {
		r := &a.AppTrafficRule[i]
		r.Action = r.Action.Canonical()
		for j := range r.DstInterface {
			if ti := r.DstInterface[j].TunnelInfo; ti != nil {
				ti.TunnelType = ti.TunnelType.Canonical()
			}
		}
	}
	if l := a.AppLatency; l != nil && l.MaxLatency == 0 && l.hasLegacy() {
		if ns, err := l.legacyNanoseconds(); err == nil {
			l.MaxLatency = ns
		}
	}
}
