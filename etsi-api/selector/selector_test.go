package selector

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mecorch/mecorch/etsi-api/problem"
)

func TestParseFilter(t *testing.T) {
	tests := []struct {
		filter string
		want   []Expr
	}{
		{"(eq,operationalState,ENABLED)", []Expr{{OpEq, []string{"operationalState"}, []string{"ENABLED"}}}},
		{"(eq,instantiatedAppState/operationalState,STARTED)", []Expr{{OpEq, []string{"instantiatedAppState", "operationalState"}, []string{"STARTED"}}}},
		{"(in,appName,a,b,c);(neq,appProvider,acme)", []Expr{
			{OpIn, []string{"appName"}, []string{"a", "b", "c"}},
			{OpNeq, []string{"appProvider"}, []string{"acme"}},
		}},
		// SOL 013 5.2.2: quote a value holding ',', ')' or a quote; a quote
		// inside is doubled.
		{"(eq,appName,'a,b')", []Expr{{OpEq, []string{"appName"}, []string{"a,b"}}}},
		{"(eq,appName,'it''s (x)')", []Expr{{OpEq, []string{"appName"}, []string{"it's (x)"}}}},
		{"(eq,appName,'')", []Expr{{OpEq, []string{"appName"}, []string{""}}}},
		{"(cont,appName,'x,y',z)", []Expr{{OpCont, []string{"appName"}, []string{"x,y", "z"}}}},
		{"(gte,size,10)", []Expr{{OpGte, []string{"size"}, []string{"10"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			s, err := Parse(url.Values{"filter": {tt.filter}})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(s.Filter, tt.want) {
				t.Errorf("got %+v\nwant %+v", s.Filter, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	known := []string{"id", "appName", "operationalState", "instantiatedAppState", "_links"}
	tests := []struct {
		name      string
		query     string
		wantParam string
	}{
		{"unknown operator", "filter=(like,appName,x)", "filter"},
		{"missing value", "filter=(eq,appName)", "filter"},
		{"unclosed", "filter=(eq,appName,x", "filter"},
		{"no parens", "filter=eq,appName,x", "filter"},
		{"two values for eq", "filter=(eq,appName,a,b)", "filter"},
		{"trailing separator", "filter=(eq,appName,a);", "filter"},
		{"junk after expression", "filter=(eq,appName,a)x", "filter"},
		{"empty value", "filter=(eq,appName,)", "filter"},
		{"unquoted quote", "filter=(eq,appName,it's)", "filter"},
		{"unterminated quote", "filter=(eq,appName,'abc)", "filter"},
		{"empty path segment", "filter=(eq,instantiatedAppState//x,a)", "filter"},
		{"empty filter", "filter=", "filter"},
		{"unknown filter attribute", "filter=(eq,colour,red)", "filter"},
		{"unknown fields attribute", "fields=colour", "fields"},
		{"unknown exclude_fields attribute", "exclude_fields=colour", "exclude_fields"},
		{"empty field", "fields=appName,", "fields"},
		{"all_fields with fields", "all_fields&fields=_links", "all_fields"},
		{"fields with exclude_fields", "fields=_links&exclude_fields=instantiatedAppState", "exclude_fields"},
		{"exclude_default with exclude_fields", "exclude_default&exclude_fields=_links", "exclude_default"},
		{"all_fields with a value", "all_fields=yes", "all_fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(q, known...)
			var pe *problem.Error
			if !errors.As(err, &pe) {
				t.Fatalf("want a *problem.Error, got %v", err)
			}
			if pe.Status != http.StatusBadRequest {
				t.Errorf("status %d, want 400", pe.Status)
			}
			var names []string
			for _, p := range pe.InvalidParams {
				names = append(names, p.Name)
			}
			if !slices.Contains(names, tt.wantParam) {
				t.Errorf("invalidParams %v do not name %q (%v)", names, tt.wantParam, pe.InvalidParams)
			}
		})
	}
}

func TestParseRequestKeepsSemicolons(t *testing.T) {
	// A client that does not percent-encode ';': URL.Query drops the pair.
	r := httptest.NewRequest("GET", "/app_lcm/v1/app_instances?filter=(eq,appProvider,acme);(eq,instantiatedAppState/operationalState,STARTED)&fields=ports", nil)
	if got := r.URL.Query().Get("filter"); got != "" {
		t.Logf("URL.Query kept the filter (%q); ParseQuery is then merely equivalent", got)
	}
	s, err := ParseRequest(r)
	if err != nil {
		t.Fatalf("ParseRequest: %v", err)
	}
	if len(s.Filter) != 2 || s.Fields == nil {
		t.Fatalf("got filter %+v fields %v", s.Filter, s.Fields)
	}
	got, err := s.Apply(items(t), "id")
	if err != nil {
		t.Fatal(err)
	}
	if g := ids(t, got); g != "a" {
		t.Errorf("matched %q, want a", g)
	}

	bad := httptest.NewRequest("GET", "/x?filter=%zz", nil)
	if _, err := ParseRequest(bad); err == nil {
		t.Error("want an error for a malformed escape")
	}
}

func TestParseLenientWithoutKnownNames(t *testing.T) {
	s, err := Parse(url.Values{"filter": {"(eq,colour,red)"}, "fields": {"shape"}})
	if err != nil {
		t.Fatalf("Parse without known names: %v", err)
	}
	got, err := s.Apply(items(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("a filter on an absent attribute matched %d items", len(got))
	}
}

// appInstance mirrors the JSON shape of a MEC 010-2 AppInstanceInfo, as a
// typed value to show Apply takes structs.
type appInstance struct {
	ID                   string `json:"id"`
	AppName              string `json:"appName"`
	AppProvider          string `json:"appProvider"`
	InstantiationState   string `json:"instantiationState"`
	InstantiatedAppState *struct {
		S string `json:"operationalState"`
	} `json:"instantiatedAppState,omitempty"`
	MecInfo   []string       `json:"mecInfo,omitempty"`
	Size      int            `json:"size"`
	Enabled   bool           `json:"enabled"`
	CreatedAt string         `json:"createdAt"`
	Ports     []port         `json:"ports,omitempty"`
	Links     map[string]any `json:"_links"`
}

type port struct {
	Name string `json:"name"`
	Port int    `json:"port"`
}

func items(t *testing.T) []any {
	t.Helper()
	state := func(s string) *struct {
		S string `json:"operationalState"`
	} {
		return &struct {
			S string `json:"operationalState"`
		}{s}
	}
	links := func(id string) map[string]any { return map[string]any{"self": map[string]any{"href": "/x/" + id}} }
	return []any{
		appInstance{ID: "a", AppName: "video", AppProvider: "acme", InstantiationState: "INSTANTIATED", InstantiatedAppState: state("STARTED"),
			MecInfo: []string{"2.1.1", "3.1.1"}, Size: 5, Enabled: true, CreatedAt: "2026-01-02T10:00:00Z",
			Ports: []port{{"http", 80}, {"grpc", 9090}}, Links: links("a")},
		appInstance{ID: "b", AppName: "it's, odd", AppProvider: "acme", InstantiationState: "INSTANTIATED", InstantiatedAppState: state("STOPPED"),
			MecInfo: []string{"3.1.1"}, Size: 50, CreatedAt: "2026-01-03T10:00:00+02:00", Links: links("b")},
		appInstance{ID: "c", AppName: "video-2", AppProvider: "other", InstantiationState: "NOT_INSTANTIATED",
			Size: 500, CreatedAt: "2026-01-01T00:00:00Z", Links: links("c")},
	}
}

func ids(t *testing.T, got []any) string {
	t.Helper()
	var out []string
	for _, g := range got {
		out = append(out, g.(map[string]any)["id"].(string))
	}
	return strings.Join(out, ",")
}

func TestFilterMatching(t *testing.T) {
	tests := []struct{ filter, want string }{
		{"(eq,appProvider,acme)", "a,b"},
		{"(neq,appProvider,acme)", "c"},
		{"(eq,instantiatedAppState/operationalState,STARTED)", "a"},
		// neq is the negation of eq: an absent attribute is "not equal".
		{"(neq,instantiatedAppState/operationalState,STARTED)", "b,c"},
		{"(in,appName,video,video-2)", "a,c"},
		{"(nin,appName,video,video-2)", "b"},
		{"(eq,appName,'it''s, odd')", "b"},
		{"(cont,appName,vid)", "a,c"},
		{"(ncont,appName,vid)", "b"},
		{"(cont,appName,xyz,'s, o')", "b"},
		// numbers compare as numbers, not text ("50" > "500" as text).
		{"(gt,size,40)", "b,c"},
		{"(lt,size,50)", "a"},
		{"(lte,size,50)", "a,b"},
		{"(gte,size,500)", "c"},
		{"(gt,size,abc)", ""},
		{"(eq,enabled,true)", "a"},
		// times compare as instants: b is 08:00Z on the 3rd.
		{"(gt,createdAt,2026-01-03T09:00:00Z)", ""},
		{"(gt,createdAt,2026-01-02T12:00:00Z)", "b"},
		// arrays: any element.
		{"(eq,mecInfo,2.1.1)", "a"},
		{"(eq,mecInfo,3.1.1)", "a,b"},
		{"(neq,mecInfo,2.1.1)", "b,c"},
		{"(eq,ports/port,9090)", "a"},
		{"(eq,ports/name,http);(eq,appProvider,acme)", "a"},
		{"(eq,appProvider,acme);(eq,instantiationState,NOT_INSTANTIATED)", ""},
		{"(eq,_links/self/href,/x/c)", "c"},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			s, err := Parse(url.Values{"filter": {tt.filter}})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := s.Apply(items(t), "id", "_links")
			if err != nil {
				t.Fatal(err)
			}
			if g := ids(t, got); g != tt.want {
				t.Errorf("matched %q, want %q", g, tt.want)
			}
		})
	}
}

func keys(t *testing.T, v any) string {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("not an object: %#v", v)
	}
	var k []string
	for name := range m {
		k = append(k, name)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}

func TestAttributeSelectors(t *testing.T) {
	tests := []struct {
		query           string
		defaultExcluded []string
		want            string // top-level keys of item a
		wantState       string // keys of item a's instantiatedAppState, if kept
	}{
		{"", nil, "_links,appName,appProvider,createdAt,enabled,id,instantiatedAppState,instantiationState,mecInfo,ports,size", "operationalState"},
		// With no parameter the default exclusions apply (MEC 010-2).
		{"", []string{"ports", "mecInfo"}, "_links,appName,appProvider,createdAt,enabled,id,instantiatedAppState,instantiationState,size", "operationalState"},
		{"all_fields", []string{"ports", "mecInfo"}, "_links,appName,appProvider,createdAt,enabled,id,instantiatedAppState,instantiationState,mecInfo,ports,size", "operationalState"},
		// fields: simple attributes, plus the listed and always-kept complex ones.
		{"fields=ports", nil, "_links,appName,appProvider,createdAt,enabled,id,instantiationState,ports,size", ""},
		{"fields=instantiatedAppState/operationalState,mecInfo", nil, "_links,appName,appProvider,createdAt,enabled,id,instantiatedAppState,instantiationState,mecInfo,size", "operationalState"},
		{"exclude_fields=ports,instantiatedAppState", nil, "_links,appName,appProvider,createdAt,enabled,id,instantiationState,mecInfo,size", ""},
		// An always-kept attribute survives exclude_fields.
		{"exclude_fields=_links,ports", nil, "_links,appName,appProvider,createdAt,enabled,id,instantiatedAppState,instantiationState,mecInfo,size", "operationalState"},
		{"exclude_default", []string{"ports"}, "_links,appName,appProvider,createdAt,enabled,id,instantiatedAppState,instantiationState,mecInfo,size", "operationalState"},
		{"exclude_default&fields=ports", []string{"ports", "mecInfo"}, "_links,appName,appProvider,createdAt,enabled,id,instantiatedAppState,instantiationState,ports,size", "operationalState"},
	}
	for _, tt := range tests {
		t.Run(tt.query+"/"+strings.Join(tt.defaultExcluded, "+"), func(t *testing.T) {
			q, err := ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Parse(q)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := s.WithDefaultExcluded(tt.defaultExcluded...).Apply(items(t), "id", "_links")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Fatalf("selectors dropped items: %d left", len(got))
			}
			a := got[0].(map[string]any)
			if k := keys(t, a); k != tt.want {
				t.Errorf("kept %s\nwant %s", k, tt.want)
			}
			if tt.wantState != "" {
				if k := keys(t, a["instantiatedAppState"]); k != tt.wantState {
					t.Errorf("instantiatedAppState kept %s, want %s", k, tt.wantState)
				}
			}
		})
	}
}

func TestNestedFieldsThroughArrays(t *testing.T) {
	item := map[string]any{
		"id": "x",
		"appServiceRequired": []any{
			map[string]any{"serName": "rnis", "version": "2", "transport": map[string]any{"name": "REST"}, "serCategory": map[string]any{"id": "c"}},
		},
	}
	s, err := Parse(url.Values{"fields": {"appServiceRequired/transport"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Apply([]any{item}, "id")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got[0])
	want := `{"appServiceRequired":[{"serName":"rnis","transport":{"name":"REST"},"version":"2"}],"id":"x"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	// The caller's value is untouched.
	if _, ok := item["appServiceRequired"].([]any)[0].(map[string]any)["serCategory"]; !ok {
		t.Error("Apply modified its input")
	}
}

func TestApplyDoesNotModifyInputOnExclude(t *testing.T) {
	item := map[string]any{"id": "x", "ports": []any{1, 2}}
	s, err := Parse(url.Values{"exclude_fields": {"ports"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply([]any{item}); err != nil {
		t.Fatal(err)
	}
	if _, ok := item["ports"]; !ok {
		t.Error("exclude_fields removed the attribute from the caller's map")
	}
}

func TestApplyRejectsNonObjects(t *testing.T) {
	s, _ := Parse(url.Values{})
	if _, err := s.Apply([]any{"just a string"}); err == nil {
		t.Error("want an error for an item that is not a JSON object")
	}
	if _, err := s.Apply([]any{func() {}}); err == nil {
		t.Error("want an error for an item that cannot be marshalled")
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"filter=(eq,operationalState,ENABLED)",
		"filter=(eq,instantiatedAppState/operationalState,STARTED);(in,appName,a,'b,c')",
		"filter=(cont,a,'it''s')&fields=a/b,c",
		"exclude_fields=x&exclude_default",
		"all_fields",
		"filter=((((",
		"filter=(eq,a,'",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := ParseQuery(raw)
		if err != nil {
			return
		}
		s, err := Parse(q)
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Status != http.StatusBadRequest || len(pe.InvalidParams) == 0 {
				t.Fatalf("error is not a 400 problem with invalidParams: %v", err)
			}
			return
		}
		item := map[string]any{"a": map[string]any{"b": []any{1.0, "x", nil, true}}, "c": "y", "id": "z"}
		if _, err := s.Apply([]any{item}, "id"); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	})
}
