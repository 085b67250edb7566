package spectest

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// The patches below relax the ETSI files where they are known to be wrong
// (see shared/etsi-mec/README.md, "Known quirks"). Each one only widens what
// the validator accepts, so that a response written to the spec's PDF text
// is not rejected for a generator artefact; none of them narrows anything.
// Every patch applied is recorded in Spec.Patches so a test can print what
// was relaxed.
//
// OpenAPI 3.1 itself needs no patch with kin-openapi v0.153: it loads and
// validates every file here, applies $ref siblings (the files put a
// description next to most $refs) as JSON Schema 2020-12 does, supports
// type arrays such as [string, "null"] (none of these files uses them), and
// openapi3filter validates 3.1 documents with its JSON Schema 2020-12
// validator, which CheckSchema uses too so both paths agree.

// placeholderEnumValue is what ETSI's doc2oas generator writes when the
// permitted values are only listed in the description.
const placeholderEnumValue = "SEE_DESCRIPTION"

// enumToken finds the upper-case constants (CREATED, IP_V4, GTP-U, ...) a
// description lists as permitted values.
var enumToken = regexp.MustCompile(`\b[A-Z][A-Z0-9]*(?:[_-][A-Z0-9]+)*\b`)

// openList tells that a description's list of values is not exhaustive
// ("TUNNEL, MAC, IP, etc."), so no enum may be derived from it.
var openList = regexp.MustCompile(`(?i)\betc\b`)

// schemaVisit is one schema met while walking a document: key names where it
// sits, as "Component/property/property[]", restarting at every $ref so that
// the same key names the same place in the v2.1.1 and v3 files. An alias
// visit names a $ref'd schema by the place that refers to it instead
// (AppPkgInfo/onboardingState for v2.1.1's $ref to OnboardingState), so that
// a v3 inline schema finds its v2.1.1 counterpart.
type schemaVisit struct {
	key    string
	schema *openapi3.Schema
	alias  bool
}

// walkSchemas calls fn once per distinct *Schema reachable from the
// document's component schemas, plus once per alias. Values copied by
// kin-openapi for $ref siblings are distinct pointers and are visited too,
// under the key of the component they copy.
func walkSchemas(doc *openapi3.T, fn func(schemaVisit)) {
	if doc.Components == nil {
		return
	}
	seen := make(map[*openapi3.Schema]bool)
	var walk func(key string, ref *openapi3.SchemaRef)
	walk = func(key string, ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil {
			return
		}
		if name, ok := strings.CutPrefix(ref.Ref, "#/components/schemas/"); ok {
			if name != key {
				fn(schemaVisit{key: key, schema: ref.Value, alias: true})
			}
			key = name
		}
		s := ref.Value
		if seen[s] {
			return
		}
		seen[s] = true
		fn(schemaVisit{key: key, schema: s})
		for _, name := range sortedKeys(s.Properties) {
			walk(key+"/"+name, s.Properties[name])
		}
		walk(key+"[]", s.Items)
		walk(key+"{}", s.AdditionalProperties.Schema)
		for i, sub := range s.AllOf {
			walk(fmt.Sprintf("%s|allOf%d", key, i), sub)
		}
		for i, sub := range s.AnyOf {
			walk(fmt.Sprintf("%s|anyOf%d", key, i), sub)
		}
		for i, sub := range s.OneOf {
			walk(fmt.Sprintf("%s|oneOf%d", key, i), sub)
		}
	}
	for _, name := range sortedKeys(doc.Components.Schemas) {
		walk(name, &openapi3.SchemaRef{Ref: "#/components/schemas/" + name, Value: doc.Components.Schemas[name].Value})
	}
}

// olderIndex maps walk keys of the v2.1.1 files to their schemas.
type olderIndex map[string]*openapi3.Schema

func buildOlderIndex(docs []*openapi3.T) olderIndex {
	idx := make(olderIndex)
	for _, doc := range docs {
		walkSchemas(doc, func(v schemaVisit) {
			if _, dup := idx[v.key]; !dup { // the first file, the same API's, wins
				idx[v.key] = v.schema
			}
		})
	}
	return idx
}

// isPlaceholderEnum reports whether s's enum is a generator placeholder:
// SEE_DESCRIPTION, or a single value while the description names others
// (DNSRuleDescriptor.ipAddressType: enum [IP_V4], "value: IP_V6, IP_V4").
func isPlaceholderEnum(s *openapi3.Schema) bool {
	if len(s.Enum) == 0 {
		return false
	}
	if slices.Contains(s.Enum, any(placeholderEnumValue)) {
		return true
	}
	if len(s.Enum) != 1 {
		return false
	}
	only, ok := s.Enum[0].(string)
	if !ok {
		return false
	}
	for _, tok := range enumToken.FindAllString(s.Description, -1) {
		if tok != only && len(tok) > 1 {
			return true
		}
	}
	return false
}

// olderEnum returns the v2.1.1 enum for the place key names, looking through
// array items (v3 sometimes renders a 0..N attribute as a scalar), and
// whether the v2.1.1 attribute was an array.
func (idx olderIndex) olderEnum(key string) (values []any, wasArray bool) {
	if old, ok := idx[key]; ok {
		if len(old.Enum) > 0 {
			return old.Enum, false
		}
		if old.Type.Is("array") && old.Items != nil && old.Items.Value != nil && len(old.Items.Value.Enum) > 0 {
			return old.Items.Value.Enum, true
		}
	}
	return nil, false
}

// patchEnums replaces placeholder enums with the v2.1.1 enum where one
// exists and agrees with the v3 description, and drops them otherwise.
func patchEnums(doc *openapi3.T, older olderIndex) []string {
	var patches []string
	walkSchemas(doc, func(v schemaVisit) {
		s := v.schema
		if v.alias || !isPlaceholderEnum(s) {
			return
		}
		placeholder := fmt.Sprint(s.Enum)
		values, wasArray := older.olderEnum(v.key)
		if values == nil || openList.MatchString(s.Description) || !allMentioned(values, s.Description) {
			s.Enum = nil
			patches = append(patches, fmt.Sprintf("%s: dropped placeholder enum %s (permitted values are only in the description)", v.key, placeholder))
			return
		}
		// The v3 description may name values v2.1.1 lacked (FAILED_TEMP);
		// adding its constants can only widen the enum, never reject a value
		// the spec text allows.
		s.Enum = unionEnum(values, enumToken.FindAllString(s.Description, -1))
		patches = append(patches, fmt.Sprintf("%s: placeholder enum %s replaced by the v2.1.1 values plus the description's: %v", v.key, placeholder, s.Enum))
		if wasArray && s.Type.Is("string") {
			// MEC 010-2 v2.1.1 and the spec text give this attribute
			// cardinality 0..N; the v3 file renders it as a scalar. Accept
			// both so an array written to the spec is not rejected.
			scalar := *s
			scalar.Description = ""
			*s = openapi3.Schema{
				Description: s.Description,
				AnyOf: openapi3.SchemaRefs{
					openapi3.NewSchemaRef("", &scalar),
					openapi3.NewSchemaRef("", &openapi3.Schema{Type: &openapi3.Types{"array"}, Items: openapi3.NewSchemaRef("", &scalar)}),
				},
			}
			patches = append(patches, fmt.Sprintf("%s: scalar in v3, array (0..N) in v2.1.1: both accepted", v.key))
		}
	})
	return patches
}

func allMentioned(values []any, description string) bool {
	if description == "" {
		return true
	}
	for _, v := range values {
		if !strings.Contains(description, fmt.Sprint(v)) {
			return false
		}
	}
	return true
}

func unionEnum(values []any, extra []string) []any {
	out := slices.Clone(values)
	for _, e := range extra {
		if !slices.Contains(out, any(e)) {
			out = append(out, e)
		}
	}
	return out
}

// unwrapBodies replaces the generator's {"TypeName": {...}} wrapper of a
// request or response body by the inner schema: mecorch sends bare bodies as
// the v2.x files and the spec text do. A wrapper is an inline object with one
// property named with a capital letter and nothing else; MEC 013's genuine
// lowerCamel wrappers ({"userList": ...}) are left alone.
//
// Where the body is polymorphic the generator kept only one of its types,
// sometimes the wrong one (MEC 010-2 AppLcm POST /subscriptions answers an
// "AppLcmOpOccSubscriptionRequest"); the description then lists the types
// the spec allows, and the body is checked against any of those instead.
func unwrapBodies(doc *openapi3.T) []string {
	var patches []string
	unwrap := func(where, description string, content openapi3.Content) {
		for _, mt := range sortedKeys(content) {
			media := content[mt]
			if media == nil {
				continue
			}
			inner, name, ok := wrapped(media.Schema)
			if !ok {
				continue
			}
			if alts := listedSchemas(doc, description); len(alts) >= 2 {
				refs := make(openapi3.SchemaRefs, 0, len(alts))
				for _, alt := range alts {
					refs = append(refs, &openapi3.SchemaRef{Ref: "#/components/schemas/" + alt, Value: doc.Components.Schemas[alt].Value})
				}
				media.Schema = openapi3.NewSchemaRef("", &openapi3.Schema{AnyOf: refs})
				patches = append(patches, fmt.Sprintf("%s %s: {%q: ...} wrapper replaced by any of the types its description lists: %v", where, mt, name, alts))
				continue
			}
			media.Schema = inner
			patches = append(patches, fmt.Sprintf("%s %s: unwrapped {%q: ...} body", where, mt, name))
		}
	}
	eachOperation(doc, func(where string, op *openapi3.Operation) {
		if op.RequestBody != nil && op.RequestBody.Value != nil && op.RequestBody.Ref == "" {
			unwrap(where+" request", op.RequestBody.Value.Description, op.RequestBody.Value.Content)
		}
		if op.Responses == nil {
			return
		}
		for _, code := range sortedKeys(op.Responses.Map()) {
			r := op.Responses.Value(code)
			if r != nil && r.Value != nil && r.Ref == "" && r.Value.Description != nil {
				unwrap(where+" response "+code, *r.Value.Description, r.Value.Content)
			}
		}
	})
	if doc.Components != nil {
		for _, name := range sortedKeys(doc.Components.RequestBodies) {
			if rb := doc.Components.RequestBodies[name]; rb != nil && rb.Value != nil {
				unwrap("requestBodies."+name, rb.Value.Description, rb.Value.Content)
			}
		}
		for _, name := range sortedKeys(doc.Components.Responses) {
			if r := doc.Components.Responses[name]; r != nil && r.Value != nil && r.Value.Description != nil {
				unwrap("responses."+name, *r.Value.Description, r.Value.Content)
			}
		}
	}
	return patches
}

var typeName = regexp.MustCompile(`\b[A-Z][A-Za-z0-9]+\b`)

// listedSchemas returns, in order, the component schema names a description
// mentions.
func listedSchemas(doc *openapi3.T, description string) []string {
	var names []string
	for _, w := range typeName.FindAllString(description, -1) {
		if ref, ok := doc.Components.Schemas[w]; ok && ref.Value != nil && !slices.Contains(names, w) {
			names = append(names, w)
		}
	}
	return names
}

func wrapped(ref *openapi3.SchemaRef) (*openapi3.SchemaRef, string, bool) {
	if ref == nil || ref.Ref != "" || ref.Value == nil {
		return nil, "", false
	}
	s := ref.Value
	if len(s.Properties) != 1 || len(s.Required) != 0 || s.Items != nil || len(s.AllOf)+len(s.AnyOf)+len(s.OneOf) != 0 {
		return nil, "", false
	}
	if s.Type != nil && !s.Type.Is("object") {
		return nil, "", false
	}
	for name, inner := range s.Properties {
		if name == "" || name[0] < 'A' || name[0] > 'Z' || inner == nil {
			return nil, "", false
		}
		return inner, name, true
	}
	return nil, "", false
}

// addMissingSuccess gives a 204 to operations that list only error
// responses (confirm_ready, confirm_termination): the spec text answers 204
// No Content there, and the validator rejects undeclared statuses.
func addMissingSuccess(doc *openapi3.T) []string {
	var patches []string
	eachOperation(doc, func(where string, op *openapi3.Operation) {
		if op.Responses == nil {
			op.Responses = openapi3.NewResponses()
		}
		for code := range op.Responses.Map() {
			if n, err := strconv.Atoi(code); (err == nil && n >= 200 && n < 300) || strings.EqualFold(code, "2XX") {
				return
			}
		}
		desc := "No Content (added by spectest: the file lists no success response)"
		op.Responses.Set(strconv.Itoa(http.StatusNoContent), &openapi3.ResponseRef{Value: &openapi3.Response{Description: &desc}})
		patches = append(patches, where+": added the 204 response the file omits")
	})
	return patches
}

// eachOperation calls fn for every operation under paths (not callbacks:
// mecorch only sends those, and notifications are checked by schema name).
func eachOperation(doc *openapi3.T, fn func(where string, op *openapi3.Operation)) {
	if doc.Paths == nil {
		return
	}
	for _, path := range sortedKeys(doc.Paths.Map()) {
		item := doc.Paths.Value(path)
		ops := item.Operations()
		for _, method := range sortedKeys(ops) {
			fn(method+" "+path, ops[method])
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
