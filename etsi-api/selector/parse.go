// Package selector implements the query parameters ETSI collection GETs
// share (ETSI GS MEC 009 clause 6.19, ETSI GS NFV-SOL 013 clause 5):
// attribute-based filtering (filter) and attribute selectors (all_fields,
// fields, exclude_fields, exclude_default).
//
// It works on generic JSON — each item is turned into a map[string]any by a
// JSON round trip — so one implementation serves every ETSI type, and the
// attribute names are the JSON names the client sees.
//
//	sel, err := selector.Parse(r.URL.Query(), "id", "appDId", "appName", ...)
//	if err != nil { problem.WriteError(w, r, err); return }
//	out, err := sel.Apply(items, "id", "_links")
//
// Unknown attributes: SOL 013 answers 400 to a filter or selector naming an
// attribute the resource does not have. Parse checks the first segment of
// every attribute path against the names it is given; given none it is
// lenient and an unknown attribute simply matches nothing (filter) or keeps
// nothing (fields).
package selector

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
)

// Op is a filter operator (SOL 013 table 5.2.2-1).
type Op string

// The operators.
const (
	OpEq    Op = "eq"
	OpNeq   Op = "neq"
	OpGt    Op = "gt"
	OpLt    Op = "lt"
	OpGte   Op = "gte"
	OpLte   Op = "lte"
	OpIn    Op = "in"
	OpNin   Op = "nin"
	OpCont  Op = "cont"
	OpNcont Op = "ncont"
)

// arity tells whether op is known and whether it takes one or more values
// (in, nin, cont, ncont) rather than exactly one.
func arity(op Op) (multi, known bool) {
	switch op {
	case OpEq, OpNeq, OpGt, OpLt, OpGte, OpLte:
		return false, true
	case OpIn, OpNin, OpCont, OpNcont:
		return true, true
	}
	return false, false
}

// Expr is one "(op,attr,value[,value...])" term.
type Expr struct {
	Op     Op
	Path   []string // the attribute path, split at '/'
	Values []string
}

// Selector is a parsed set of filter and attribute-selector parameters. The
// zero value selects everything.
type Selector struct {
	Filter []Expr // ANDed

	// Attribute selection (SOL 013 table 5.3.2-2). Fields and
	// ExcludeFields are nil when their parameter is absent.
	AllFields      bool
	Fields         [][]string // complex attributes to include
	ExcludeFields  [][]string // complex attributes to leave out
	ExcludeDefault bool

	// DefaultExcluded lists the complex attributes the API excludes by
	// default (set with WithDefaultExcluded).
	DefaultExcluded [][]string
}

// Parameter names.
const (
	ParamFilter         = "filter"
	ParamAllFields      = "all_fields"
	ParamFields         = "fields"
	ParamExcludeFields  = "exclude_fields"
	ParamExcludeDefault = "exclude_default"
)

// ParseRequest is Parse on r's query string, read with ParseQuery so that
// the ';' joining filter expressions survives even when the client did not
// percent-encode it.
func ParseRequest(r *http.Request, known ...string) (*Selector, error) {
	q, err := ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, problem.Invalid("malformed query string", mec.InvalidParam{Name: "query", Reason: err.Error()})
	}
	return Parse(q, known...)
}

// ParseQuery decodes a raw query string like url.ParseQuery, except that
// only '&' separates parameters. url.ParseQuery (and so URL.Query) rejects
// or drops a pair holding a bare ';', which is exactly how ETSI filters join
// expressions: "filter=(eq,a,1);(eq,b,2)".
func ParseQuery(raw string) (url.Values, error) {
	q := url.Values{}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: %w", k, err)
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: %w", key, err)
		}
		q[key] = append(q[key], val)
	}
	return q, nil
}

// maxExprs bounds the work one query can ask for.
const maxExprs = 64

// Parse reads the filter and selector parameters of query. known, when
// given, lists the top-level attribute names of the resource; an attribute
// path starting with any other name is refused. Every error is a
// *problem.Error (400) whose invalidParams name the parameter at fault.
func Parse(query url.Values, known ...string) (*Selector, error) {
	s := &Selector{}
	var bad []mec.InvalidParam
	fail := func(param, format string, args ...any) {
		bad = append(bad, mec.InvalidParam{Name: param, Reason: fmt.Sprintf(format, args...)})
	}
	checkKnown := func(param string, path []string) {
		if len(known) > 0 && !slices.Contains(known, path[0]) {
			fail(param, "unknown attribute %q", strings.Join(path, "/"))
		}
	}

	for _, raw := range query[ParamFilter] {
		exprs, err := parseFilter(raw)
		if err != nil {
			fail(ParamFilter, "%v", err)
			continue
		}
		for _, e := range exprs {
			checkKnown(ParamFilter, e.Path)
		}
		s.Filter = append(s.Filter, exprs...)
	}
	if len(s.Filter) > maxExprs {
		fail(ParamFilter, "more than %d expressions", maxExprs)
	}

	_, s.AllFields = query[ParamAllFields]
	_, s.ExcludeDefault = query[ParamExcludeDefault]
	for _, flag := range []string{ParamAllFields, ParamExcludeDefault} {
		for _, v := range query[flag] {
			if v != "" {
				fail(flag, "takes no value")
			}
		}
	}
	var err error
	if s.Fields, err = parsePaths(query[ParamFields]); err != nil {
		fail(ParamFields, "%v", err)
	}
	if s.ExcludeFields, err = parsePaths(query[ParamExcludeFields]); err != nil {
		fail(ParamExcludeFields, "%v", err)
	}
	for _, p := range s.Fields {
		checkKnown(ParamFields, p)
	}
	for _, p := range s.ExcludeFields {
		checkKnown(ParamExcludeFields, p)
	}

	// SOL 013 table 5.3.2-1: all_fields stands alone; fields and
	// exclude_fields are alternatives; exclude_default may go with fields.
	if s.AllFields && (s.Fields != nil || s.ExcludeFields != nil || s.ExcludeDefault) {
		fail(ParamAllFields, "cannot be combined with fields, exclude_fields or exclude_default")
	}
	if s.Fields != nil && s.ExcludeFields != nil {
		fail(ParamExcludeFields, "cannot be combined with fields")
	}
	if s.ExcludeFields != nil && s.ExcludeDefault {
		fail(ParamExcludeDefault, "cannot be combined with exclude_fields")
	}
	if bad != nil {
		return nil, problem.Invalid("invalid attribute-based filter or selector", bad...)
	}
	return s, nil
}

// parsePaths splits comma-separated attribute paths; nil when the parameter
// is absent.
func parsePaths(raws []string) ([][]string, error) {
	if raws == nil {
		return nil, nil
	}
	out := [][]string{}
	for _, raw := range raws {
		for _, p := range strings.Split(raw, ",") {
			path, err := splitPath(p)
			if err != nil {
				return nil, err
			}
			out = append(out, path)
		}
	}
	if len(out) > maxExprs {
		return nil, fmt.Errorf("more than %d attributes", maxExprs)
	}
	return out, nil
}

// splitPath validates an attribute path "a/b/c".
func splitPath(p string) ([]string, error) {
	if p == "" {
		return nil, fmt.Errorf("empty attribute name")
	}
	parts := strings.Split(p, "/")
	for _, part := range parts {
		if part == "" {
			return nil, fmt.Errorf("attribute %q has an empty segment", p)
		}
		if strings.ContainsAny(part, "(),;'") {
			return nil, fmt.Errorf("attribute %q contains a reserved character", p)
		}
	}
	return parts, nil
}

// parseFilter parses "(op,attr,v1[,v2...]);(op,attr,v)..." (SOL 013 clause
// 5.2.2). A value holding ',', ')' or '\” is quoted with '\”, and a quote
// inside a quoted value is doubled.
func parseFilter(raw string) ([]Expr, error) {
	var exprs []Expr
	p := &filterParser{s: raw}
	for {
		if p.eof() {
			return nil, fmt.Errorf("empty expression at offset %d", p.i)
		}
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		exprs = append(exprs, e)
		if len(exprs) > maxExprs {
			return nil, fmt.Errorf("more than %d expressions", maxExprs)
		}
		if p.eof() {
			return exprs, nil
		}
		if p.s[p.i] != ';' {
			return nil, fmt.Errorf("expected ';' at offset %d", p.i)
		}
		p.i++
	}
}

type filterParser struct {
	s string
	i int
}

func (p *filterParser) eof() bool { return p.i >= len(p.s) }

func (p *filterParser) expr() (Expr, error) {
	start := p.i
	if p.s[p.i] != '(' {
		return Expr{}, fmt.Errorf("expected '(' at offset %d", p.i)
	}
	p.i++
	op, end := p.bare()
	if end != ',' {
		return Expr{}, fmt.Errorf("expression at offset %d: want (op,attribute,value)", start)
	}
	e := Expr{Op: Op(op)}
	multi, ok := arity(e.Op)
	if !ok {
		return Expr{}, fmt.Errorf("unknown operator %q", op)
	}
	attr, end := p.bare()
	if end != ',' {
		return Expr{}, fmt.Errorf("expression at offset %d: want (op,attribute,value)", start)
	}
	path, err := splitPath(attr)
	if err != nil {
		return Expr{}, err
	}
	e.Path = path
	for {
		v, end, err := p.value()
		if err != nil {
			return Expr{}, err
		}
		e.Values = append(e.Values, v)
		if end == ')' {
			break
		}
		if end != ',' {
			return Expr{}, fmt.Errorf("expression at offset %d is not closed", start)
		}
	}
	if !multi && len(e.Values) != 1 {
		return Expr{}, fmt.Errorf("operator %s takes one value, got %d", e.Op, len(e.Values))
	}
	return e, nil
}

// bare reads up to the next ',' or ')' and returns what it read and that
// delimiter (0 at the end of input), consuming the delimiter.
func (p *filterParser) bare() (string, byte) {
	start := p.i
	for !p.eof() {
		switch c := p.s[p.i]; c {
		case ',', ')':
			p.i++
			return p.s[start : p.i-1], c
		}
		p.i++
	}
	return p.s[start:], 0
}

// value reads one value, quoted or not, and the delimiter after it.
func (p *filterParser) value() (string, byte, error) {
	if p.eof() {
		return "", 0, fmt.Errorf("missing value at offset %d", p.i)
	}
	if p.s[p.i] != '\'' {
		start := p.i
		v, end := p.bare()
		if v == "" {
			return "", 0, fmt.Errorf("empty value at offset %d (quote an empty string as '')", start)
		}
		if strings.ContainsRune(v, '\'') {
			return "", 0, fmt.Errorf("value %q holds a quote and must be quoted", v)
		}
		return v, end, nil
	}
	start := p.i
	p.i++
	var b strings.Builder
	for {
		if p.eof() {
			return "", 0, fmt.Errorf("unterminated quoted value at offset %d", start)
		}
		c := p.s[p.i]
		p.i++
		if c != '\'' {
			b.WriteByte(c)
			continue
		}
		if !p.eof() && p.s[p.i] == '\'' { // doubled quote
			b.WriteByte('\'')
			p.i++
			continue
		}
		break
	}
	if p.eof() {
		return "", 0, fmt.Errorf("quoted value at offset %d is not followed by ',' or ')'", start)
	}
	end := p.s[p.i]
	if end != ',' && end != ')' {
		return "", 0, fmt.Errorf("quoted value at offset %d is not followed by ',' or ')'", start)
	}
	p.i++
	return b.String(), end, nil
}
