package applcm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
)

// readBody returns r's body, bounded, after checking that it is declared
// JSON (or not declared at all). An empty body is returned as nil.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, problem.New(http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q is not JSON: send application/json", ct))
		}
	}
	if r.ContentLength > maxBody {
		return nil, tooLarge()
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge()
	}
	if err != nil {
		return nil, problem.Invalid("the request body could not be read: " + err.Error())
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	return b, nil
}

func tooLarge() error {
	return problem.New(http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body exceeds %d bytes", maxBody))
}

// report collects every wrong field of one request body, by its path, so
// that a client learns all its mistakes from one 400.
type report struct {
	bad []mec.InvalidParam
}

func (rp *report) add(path, format string, args ...any) {
	rp.bad = append(rp.bad, mec.InvalidParam{Name: path, Reason: fmt.Sprintf(format, args...)})
}

// err is the 400 listing what was wrong, or nil.
func (rp *report) err(what string) error {
	if len(rp.bad) == 0 {
		return nil
	}
	return problem.Invalid(fmt.Sprintf("invalid %s: %d field(s) wrong", what, len(rp.bad)), rp.bad...)
}

// object is one JSON object of a request, read member by member. Reading a
// member marks it known; unknown reports the members nobody read, because a
// misspelt attribute silently ignored (a placement constraint, say) is worse
// than a 400.
type object struct {
	path    string
	members map[string]json.RawMessage
	known   map[string]bool
	rp      *report
}

// parseObject decodes raw as a JSON object at path. A null or absent value
// is (nil, true): absent. A value of another type is reported.
func parseObject(rp *report, path string, raw json.RawMessage) (*object, bool) {
	if isNull(raw) {
		return nil, true
	}
	raw = bytes.TrimSpace(raw)
	if raw[0] != '{' {
		rp.add(orBody(path), "must be a JSON object")
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		rp.add(orBody(path), "malformed JSON object: %s", strings.TrimPrefix(err.Error(), "json: "))
		return nil, false
	}
	return &object{path: path, members: m, known: map[string]bool{}, rp: rp}, true
}

// parseBody is parseObject for a whole request body, which must be valid
// JSON before any member is looked at.
func parseBody(rp *report, body []byte) (*object, bool) {
	if body == nil {
		return nil, true
	}
	if !json.Valid(body) {
		var v any
		err := json.Unmarshal(body, &v)
		msg := "malformed JSON"
		var se *json.SyntaxError
		if errors.As(err, &se) {
			msg = fmt.Sprintf("malformed JSON at byte offset %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
		}
		rp.add("body", "%s", msg)
		return nil, false
	}
	return parseObject(rp, "", body)
}

func orBody(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

func (o *object) at(name string) string {
	if o.path == "" {
		return name
	}
	return o.path + "." + name
}

// raw returns a member's value, marking it known; absent and null are nil.
func (o *object) raw(name string) json.RawMessage {
	if o == nil {
		return nil
	}
	o.known[name] = true
	v := o.members[name]
	if isNull(v) {
		return nil
	}
	return v
}

func (o *object) has(name string) bool { return o.raw(name) != nil }

// str reads a string member of at most max bytes.
func (o *object) str(name string, required bool, max int) string {
	v := o.raw(name)
	if v == nil {
		if required {
			o.rp.add(o.at(name), "required")
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		o.rp.add(o.at(name), "must be a string")
		return ""
	}
	if required && strings.TrimSpace(s) == "" {
		o.rp.add(o.at(name), "must not be empty")
	}
	if len(s) > max {
		o.rp.add(o.at(name), "longer than %d bytes", max)
		return ""
	}
	return s
}

// oneOf reads a string member that must be one of values.
func (o *object) oneOf(name string, required bool, values ...string) string {
	s := o.str(name, required, 64)
	if s == "" {
		return ""
	}
	for _, v := range values {
		if s == v {
			return s
		}
	}
	o.rp.add(o.at(name), "must be one of %s", strings.Join(values, ", "))
	return ""
}

// integer reads an integer member in [min, max]; ok is false when it is
// absent or wrong.
func (o *object) integer(name string, min, max int64) (int64, bool) {
	v := o.raw(name)
	if v == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
	if err != nil {
		o.rp.add(o.at(name), "must be an integer")
		return 0, false
	}
	if n < min || n > max {
		o.rp.add(o.at(name), "must be between %d and %d", min, max)
		return 0, false
	}
	return n, true
}

// obj reads an object member (nil when absent or wrong).
func (o *object) obj(name string) *object {
	v := o.raw(name)
	if v == nil {
		return nil
	}
	sub, _ := parseObject(o.rp, o.at(name), v)
	return sub
}

// array reads an array member (nil when absent or wrong).
func (o *object) array(name string) []json.RawMessage {
	v := o.raw(name)
	if v == nil {
		return nil
	}
	var a []json.RawMessage
	if err := json.Unmarshal(v, &a); err != nil {
		o.rp.add(o.at(name), "must be an array")
		return nil
	}
	return a
}

// strList reads a member that is a string or an array of strings (the v3
// file renders several 0..N attributes as a single string), each one of
// values when values are given.
func (o *object) strList(name string, values ...string) []string {
	v := o.raw(name)
	if v == nil {
		return nil
	}
	var list []string
	var one string
	single := json.Unmarshal(v, &one) == nil
	if single {
		list = []string{one}
	} else if err := json.Unmarshal(v, &list); err != nil {
		o.rp.add(o.at(name), "must be a string or an array of strings")
		return nil
	}
	if len(values) == 0 {
		return list
	}
	out := list[:0]
	for i, s := range list {
		ok := false
		for _, want := range values {
			ok = ok || s == want
		}
		if !ok {
			path := index(o.at(name), i)
			if single {
				path = o.at(name)
			}
			o.rp.add(path, "must be one of %s", strings.Join(values, ", "))
			continue
		}
		out = append(out, s)
	}
	return out
}

// unknown reports every member that was not read.
func (o *object) unknown() {
	if o == nil {
		return
	}
	var names []string
	for name := range o.members {
		if !o.known[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		o.rp.add(o.at(name), "unknown attribute")
	}
}

// index is the path of element i of the array at path.
func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }
