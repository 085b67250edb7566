package apppkgm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
)

// Request bodies are read into a tree of raw fields and checked field by
// field, rather than unmarshalled into a struct, so that one answer lists
// every missing or mistyped field with its path; encoding/json stops at the
// first. Unknown fields are tolerated: ETSI bodies grow between versions and
// a client on a newer one must still be served.

// obj is one JSON object of a request body being checked.
type obj struct {
	path   string // of the object itself; "" at the top
	fields map[string]json.RawMessage
	bad    *[]mec.InvalidParam
}

// readJSON checks r's Content-Type against accepted and reads at most
// maxJSONBytes of body. The error is a ProblemDetails-ready *problem.Error
// (400, 413 or 415).
func readJSON(w http.ResponseWriter, r *http.Request, accepted ...string) ([]byte, error) {
	if err := checkContentType(r, accepted...); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBytes))
	if err != nil {
		return nil, bodyReadError(err, maxJSONBytes)
	}
	return body, nil
}

// parseObject parses body, which must be exactly one JSON object.
func parseObject(body []byte) (obj, error) {
	bad := []mec.InvalidParam{}
	dec := json.NewDecoder(bytes.NewReader(body))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return obj{}, syntaxProblem(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return obj{}, problem.Invalid("malformed JSON body: more data after the JSON object")
	}
	if jsonKind(raw) != "object" {
		return obj{}, problem.Invalid("the body must be a JSON object, not " + jsonKind(raw))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return obj{}, syntaxProblem(err)
	}
	return obj{fields: fields, bad: &bad}, nil
}

func syntaxProblem(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return problem.Invalid(fmt.Sprintf("malformed JSON body at byte %d: %v", se.Offset, err))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return problem.Invalid("malformed JSON body: empty or truncated")
	}
	return problem.Invalid("malformed JSON body: " + err.Error())
}

// bodyReadError turns a failed body read into 413 when the limit was hit.
func bodyReadError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &problem.Error{Status: http.StatusRequestEntityTooLarge,
			Detail: fmt.Sprintf("request body exceeds the limit of %d bytes", limit)}
	}
	return problem.Invalid("reading the request body: " + err.Error())
}

// checkContentType answers 415 unless r's media type is one of accepted.
func checkContentType(r *http.Request, accepted ...string) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && slices.Contains(accepted, mt) {
		return nil
	}
	got := "no Content-Type"
	if ct != "" {
		got = "Content-Type " + strconv.Quote(ct)
	}
	return &problem.Error{Status: http.StatusUnsupportedMediaType,
		Detail: fmt.Sprintf("%s; send %s", got, strings.Join(accepted, " or "))}
}

// problems returns the collected field errors as a 400, or nil.
func (o obj) problems(detail string) error {
	if len(*o.bad) == 0 {
		return nil
	}
	return problem.Invalid(detail, *o.bad...)
}

func (o obj) name(field string) string {
	if o.path == "" {
		return field
	}
	return o.path + "." + field
}

func (o obj) fail(field, reason string) {
	*o.bad = append(*o.bad, mec.InvalidParam{Name: o.name(field), Reason: reason})
}

// raw returns a field's value; null counts as absent, as ETSI treats it.
func (o obj) raw(field string, required bool) (json.RawMessage, bool) {
	v, ok := o.fields[field]
	if !ok || jsonKind(v) == "null" {
		if required {
			o.fail(field, "required")
		}
		return nil, false
	}
	return v, true
}

// str returns a string field ("" when absent or wrong).
func (o obj) str(field string, required bool) string {
	v, ok := o.raw(field, required)
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		o.fail(field, "must be a string, not "+jsonKind(v))
		return ""
	}
	if required && strings.TrimSpace(s) == "" {
		o.fail(field, "required: must not be empty")
	}
	return s
}

// enum returns a string field that must be one of allowed.
func (o obj) enum(field string, required bool, allowed ...string) string {
	s := o.str(field, required)
	if s != "" && !slices.Contains(allowed, s) {
		o.fail(field, fmt.Sprintf("%q is not one of %s", s, strings.Join(allowed, ", ")))
		return ""
	}
	return s
}

// uri returns a string field that must be an absolute URI.
func (o obj) uri(field string, required bool) string {
	s := o.str(field, required)
	if s == "" {
		return ""
	}
	if u, err := url.Parse(s); err != nil || u.Scheme == "" {
		o.fail(field, "must be an absolute URI")
		return ""
	}
	return s
}

// object returns a nested object to check.
func (o obj) object(field string, required bool) (obj, bool) {
	v, ok := o.raw(field, required)
	if !ok {
		return obj{}, false
	}
	var m map[string]json.RawMessage
	if jsonKind(v) != "object" || json.Unmarshal(v, &m) != nil {
		o.fail(field, "must be an object, not "+jsonKind(v))
		return obj{}, false
	}
	return obj{path: o.name(field), fields: m, bad: o.bad}, true
}

// rawObject returns a field that must be an object and is kept verbatim
// (userDefinedData, KeyValuePairs).
func (o obj) rawObject(field string) json.RawMessage {
	v, ok := o.raw(field, false)
	if !ok {
		return nil
	}
	if jsonKind(v) != "object" {
		o.fail(field, "must be an object, not "+jsonKind(v))
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		o.fail(field, "malformed")
		return nil
	}
	return buf.Bytes()
}

// objects returns the elements of an array of objects.
func (o obj) objects(field string) []obj {
	v, ok := o.raw(field, false)
	if !ok {
		return nil
	}
	var elems []json.RawMessage
	if jsonKind(v) != "array" || json.Unmarshal(v, &elems) != nil {
		o.fail(field, "must be an array, not "+jsonKind(v))
		return nil
	}
	out := make([]obj, 0, len(elems))
	for i, e := range elems {
		name := fmt.Sprintf("%s[%d]", field, i)
		var m map[string]json.RawMessage
		if jsonKind(e) != "object" || json.Unmarshal(e, &m) != nil {
			o.fail(name, "must be an object, not "+jsonKind(e))
			continue
		}
		out = append(out, obj{path: o.name(name), fields: m, bad: o.bad})
	}
	return out
}

// jsonKind names the JSON type of a raw value for error messages.
func jsonKind(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}
