// Package spectest checks, in tests, that mecorch's HTTP bodies conform to
// the ETSI MEC OpenAPI files kept in shared/etsi-mec. The API packages' tests
// use it; product code never imports it.
//
// The v3 ETSI files are generated and carry known defects (placeholder enums,
// {"TypeName": ...} body wrappers, missing 204 responses; see
// shared/etsi-mec/README.md). They are corrected here, in the validator,
// never by bending mecorch's responses: see quirks.go for each patch, and
// Spec.Patches for the list applied to one file.
//
// Typical use in a handler test:
//
//	spec := spectest.Load(t, "MEC010-2_AppPkgMgmt.yaml")
//	spec.ValidateSchema(t, "AppPkgInfo", body)      // one body against a named schema
//	spec.ValidateResponse(t, resp, body)             // a whole response against its operation
package spectest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// EnvSharedDir overrides where shared/ is found.
const EnvSharedDir = "MECORCH_SHARED_DIR"

// Spec is one loaded and patched ETSI OpenAPI file. It is safe for
// concurrent use once loaded.
type Spec struct {
	name     string
	doc      *openapi3.T
	basePath string
	patches  []string
}

// SharedDir returns the shared/ folder: $MECORCH_SHARED_DIR if set, else
// ../shared beside the repository root (the folder holding go.mod, found by
// walking up from the working directory, which go test sets to the
// package's folder).
func SharedDir() (string, error) {
	if dir := os.Getenv(EnvSharedDir); dir != "" {
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find shared dir: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			shared := filepath.Join(filepath.Dir(dir), "shared")
			if _, err := os.Stat(filepath.Join(shared, "etsi-mec")); err != nil {
				return "", fmt.Errorf("find shared dir: %s has no etsi-mec folder (set %s): %w", shared, EnvSharedDir, err)
			}
			return shared, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("find shared dir: no go.mod above %s (set %s)", wd, EnvSharedDir)
		}
	}
}

// Load opens the ETSI file name (e.g. "MEC010-2_AppLcm.yaml", relative to
// shared/etsi-mec) and fails t if it cannot.
func Load(t testing.TB, name string) *Spec {
	t.Helper()
	s, err := Open(name)
	if err != nil {
		t.Fatalf("spectest: %v", err)
	}
	return s
}

// Open loads and patches the ETSI file name, relative to shared/etsi-mec.
func Open(name string) (*Spec, error) {
	shared, err := SharedDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(shared, "etsi-mec")
	doc, err := loadDoc(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	if doc.Components == nil {
		return nil, fmt.Errorf("load %s: no components (a fragment, not an OpenAPI document)", name)
	}
	older, err := loadOlder(filepath.Join(dir, "older"), name)
	if err != nil {
		return nil, err
	}
	s := &Spec{name: name, doc: doc}
	s.patches = append(s.patches, patchEnums(doc, buildOlderIndex(older))...)
	s.patches = append(s.patches, unwrapBodies(doc)...)
	s.patches = append(s.patches, addMissingSuccess(doc)...)
	if len(doc.Servers) > 0 {
		// The servers entries are placeholders (https://localhost/app_pkgm/v1):
		// only their path is meaningful.
		if u, err := url.Parse(doc.Servers[0].URL); err == nil {
			s.basePath = strings.TrimSuffix(u.Path, "/")
		}
	}
	return s, nil
}

func loadDoc(path string) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("validate %s: %w", path, err)
	}
	return doc, nil
}

// loadOlder loads the v2.1.1 files, the one of the same API first so that
// its enums win over another API's schema of the same name.
func loadOlder(dir, name string) ([]*openapi3.T, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	stem := strings.TrimSuffix(name, filepath.Ext(name))
	var first, rest []*openapi3.T
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		doc, err := loadDoc(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(e.Name(), stem+"_") {
			first = append(first, doc)
		} else {
			rest = append(rest, doc)
		}
	}
	return append(first, rest...), nil
}

// Doc is the patched document.
func (s *Spec) Doc() *openapi3.T { return s.doc }

// BasePath is the path of the file's servers entry, e.g. "/app_pkgm/v1".
func (s *Spec) BasePath() string { return s.basePath }

// Patches lists, one line each, what was relaxed in the file.
func (s *Spec) Patches() []string { return append([]string(nil), s.patches...) }

// CheckSchema validates body (JSON) against the component schema name and
// returns every violation found.
func (s *Spec) CheckSchema(name string, body []byte) error {
	ref, ok := s.doc.Components.Schemas[name]
	if !ok || ref.Value == nil {
		return fmt.Errorf("%s has no schema %q", s.name, name)
	}
	var value any
	if err := json.Unmarshal(body, &value); err != nil {
		return fmt.Errorf("%s: body is not JSON: %w", name, err)
	}
	if err := ref.Value.VisitJSON(value, openapi3.MultiErrors(), openapi3.VisitAsResponse(), openapi3.EnableJSONSchema2020(),
		openapi3.SetSchemaErrorMessageCustomizer(schemaReason)); err != nil {
		return fmt.Errorf("%s (%s): %w", name, s.name, err)
	}
	return nil
}

// ValidateSchema reports through t.Errorf every way body (JSON) departs from
// the component schema name.
func (s *Spec) ValidateSchema(t testing.TB, name string, body []byte) {
	t.Helper()
	if err := s.CheckSchema(name, body); err != nil {
		t.Errorf("spectest: %v\nbody: %s", err, truncate(body))
	}
}

// CheckResponse validates a response (status, headers, content type, body)
// against the operation req resolves to in the file. req.URL.Path may
// include the file's base path. A status the operation does not declare is
// an error.
func (s *Spec) CheckResponse(req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := s.findRoute(req.Method, req.URL.Path)
	if err != nil {
		return err
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options: &openapi3filter.Options{
			MultiError:            true,
			IncludeResponseStatus: true,
			// The schema dump kin-openapi appends to every error runs to
			// pages for ETSI types; the JSON pointer and reason suffice.
			SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.SetSchemaErrorMessageCustomizer(schemaReason)},
		},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s → %d (%s %s): %w", req.Method, req.URL.Path, status, s.name, route.Path, err)
	}
	return nil
}

// ValidateResponse reports through t.Errorf every way resp departs from its
// operation. body is the response body, already read by the caller
// (resp.Body is not touched); resp.Request must be set, as it is on
// responses from an http.Client.
func (s *Spec) ValidateResponse(t testing.TB, resp *http.Response, body []byte) {
	t.Helper()
	if resp.Request == nil {
		t.Errorf("spectest: response has no Request to find its operation by")
		return
	}
	if err := s.CheckResponse(resp.Request, resp.StatusCode, resp.Header, body); err != nil {
		t.Errorf("spectest: %v\nbody: %s", err, truncate(body))
	}
}

// findRoute matches path (with or without the base path) against the file's
// path templates, segment by segment; literal segments win over templated
// ones so /app_instances/{id} does not swallow a literal sibling.
func (s *Spec) findRoute(method, path string) (*routers.Route, map[string]string, error) {
	rel := strings.TrimPrefix(path, s.basePath)
	if rel == "" {
		rel = "/"
	}
	segs := strings.Split(strings.Trim(rel, "/"), "/")
	var (
		best       string
		bestParams map[string]string
		bestScore  = -1
	)
	for tmpl := range s.doc.Paths.Map() {
		tsegs := strings.Split(strings.Trim(tmpl, "/"), "/")
		if len(tsegs) != len(segs) {
			continue
		}
		params := make(map[string]string)
		score := 0
		ok := true
		for i, ts := range tsegs {
			if strings.HasPrefix(ts, "{") && strings.HasSuffix(ts, "}") {
				v, err := url.PathUnescape(segs[i])
				if err != nil || v == "" {
					ok = false
					break
				}
				params[ts[1:len(ts)-1]] = v
				continue
			}
			if ts != segs[i] {
				ok = false
				break
			}
			score++
		}
		if ok && (score > bestScore || (score == bestScore && tmpl < best)) {
			best, bestParams, bestScore = tmpl, params, score
		}
	}
	if bestScore < 0 {
		return nil, nil, fmt.Errorf("%s: no path matches %s (base path %q)", s.name, path, s.basePath)
	}
	item := s.doc.Paths.Value(best)
	op := item.GetOperation(strings.ToUpper(method))
	if op == nil {
		return nil, nil, fmt.Errorf("%s: %s has no %s operation", s.name, best, method)
	}
	return &routers.Route{Spec: s.doc, Path: best, PathItem: item, Method: strings.ToUpper(method), Operation: op}, bestParams, nil
}

func truncate(body []byte) string {
	const max = 2048
	if len(body) > max {
		return string(body[:max]) + "…"
	}
	return string(body)
}

// ReadBody reads and closes resp.Body, failing t on a read error: a helper
// for the common "read, then validate" step.
func ReadBody(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("spectest: read body: %v", err)
	}
	return b
}

// schemaReason keeps a schema error to where and why: kin-openapi otherwise
// appends the whole schema and value, pages long for ETSI types.
func schemaReason(err *openapi3.SchemaError) string {
	return fmt.Sprintf("at %q: %s", "/"+strings.Join(err.JSONPointer(), "/"), err.Reason)
}
