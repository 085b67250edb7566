package operator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
)

// maxBody bounds a request body: an inventory resource is a few hundred
// bytes, and the limit keeps one client from holding the server's memory.
const maxBody = 1 << 20

// decode reads r's body, one JSON object, into v. Fields v does not have are
// refused rather than ignored, so that a misspelt field fails loudly instead
// of silently keeping its default.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return problem.New(http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q is not JSON: send application/json", ct))
		}
	}
	if r.ContentLength > maxBody {
		return tooLarge()
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge()
		}
		return problem.Invalid("the body must be one JSON object with nothing after it")
	}
	return nil
}

func tooLarge() error {
	return problem.New(http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body exceeds %d bytes", maxBody))
}

// decodeError explains a decoding failure with the field path or the byte
// offset of the fault whenever the decoder knows it.
func decodeError(err error) error {
	var (
		mbe  *http.MaxBytesError
		syn  *json.SyntaxError
		typ  *json.UnmarshalTypeError
		name string
	)
	switch {
	case errors.As(err, &mbe):
		return tooLarge()
	case errors.Is(err, io.EOF):
		return problem.Invalid("the request body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem.Invalid("the request body ends in the middle of a JSON value")
	case errors.As(err, &syn):
		return problem.Invalid(fmt.Sprintf("malformed JSON at byte offset %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: ")))
	case errors.As(err, &typ):
		want := jsonKind(typ.Type)
		if typ.Field == "" {
			return problem.Invalid(fmt.Sprintf("the body must be a JSON %s, not %s", want, typ.Value))
		}
		return problem.Invalid(fmt.Sprintf("%s must be a JSON %s, not %s", typ.Field, want, typ.Value),
			mec.InvalidParam{Name: typ.Field, Reason: fmt.Sprintf("must be a JSON %s, not %s", want, typ.Value)})
	case unknownField(err, &name):
		return problem.Invalid(fmt.Sprintf("unknown field %q", name), mec.InvalidParam{Name: name, Reason: "unknown field"})
	}
	return problem.Invalid("malformed JSON: " + strings.TrimPrefix(err.Error(), "json: "))
}

// unknownField recognises DisallowUnknownFields' error, which has no type
// of its own, by its text.
func unknownField(err error, name *string) bool {
	const prefix = "json: unknown field "
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		return false
	}
	n, uerr := strconv.Unquote(strings.TrimPrefix(msg, prefix))
	if uerr != nil {
		n = strings.TrimPrefix(msg, prefix)
	}
	*name = n
	return true
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "value"
}

// present reports whether a field was sent with a value.
func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// readOnly lists the read-only fields that were sent.
func readOnly(fields map[string]json.RawMessage, why string) []mec.InvalidParam {
	var bad []mec.InvalidParam
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if present(fields[name]) {
			bad = append(bad, mec.InvalidParam{Name: name, Reason: "read-only: " + why})
		}
	}
	return bad
}

// merge joins the problems found at the wire level with the domain's,
// keeping the first reason given for a field.
func merge(lists ...[]mec.InvalidParam) []mec.InvalidParam {
	seen := map[string]bool{}
	var out []mec.InvalidParam
	for _, l := range lists {
		for _, p := range l {
			if !seen[p.Name] {
				seen[p.Name] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// invalid is the 400 of a body with wrong fields.
func invalid(what string, bad []mec.InvalidParam) error {
	return problem.Invalid(fmt.Sprintf("invalid %s: %s: %s (%d invalid field(s))", what, bad[0].Name, bad[0].Reason, len(bad)), bad...)
}

// pathID checks that a body's optional ID names the resource of the path.
func pathID(bodyID, pathID string) []mec.InvalidParam {
	if bodyID == "" || bodyID == pathID {
		return nil
	}
	return []mec.InvalidParam{{Name: "id", Reason: fmt.Sprintf("must be %q, the resource being replaced, or absent", pathID)}}
}
