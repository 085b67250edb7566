package spectest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// recorder is a testing.TB that keeps what would have failed the test, so
// a test can assert that the validator reports a failure.
type recorder struct {
	testing.TB // nil: only the methods below are called
	mu         sync.Mutex
	errs       []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) failed() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.errs, "\n")
}

// appPkgInfo is a valid MEC 010-2 AppPkgInfo; mutate the returned map to
// break it.
func appPkgInfo() map[string]any {
	return map[string]any{
		"id":                 "9b1c7a4e-0000-4000-8000-000000000001",
		"appDId":             "appd-1",
		"appName":            "video-analytics",
		"appProvider":        "acme",
		"appSoftwareVersion": "1.2.0",
		"appDVersion":        "3.1.1",
		"checksum":           map[string]any{"algorithm": "SHA-256", "hash": "ab12"},
		"softwareImages":     []any{map[string]any{"id": "img-1"}},
		"onboardingState":    "ONBOARDED",
		"operationalState":   "ENABLED",
		"usageState":         "NOT_IN_USE",
		"mecInfo":            []any{"3.1.1"},
		"_links": map[string]any{
			"self":          map[string]any{"href": "http://127.0.0.1/app_pkgm/v1/onboarded_app_packages/1"},
			"appD":          map[string]any{"href": "http://127.0.0.1/app_pkgm/v1/onboarded_app_packages/1/appd"},
			"appPkgContent": map[string]any{"href": "http://127.0.0.1/app_pkgm/v1/onboarded_app_packages/1/package_content"},
		},
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidAppPkgInfoPasses(t *testing.T) {
	spec := Load(t, "MEC010-2_AppPkgMgmt.yaml")
	spec.ValidateSchema(t, "AppPkgInfo", mustJSON(t, appPkgInfo()))
}

func TestInvalidBodiesAreReported(t *testing.T) {
	spec := Load(t, "MEC010-2_AppPkgMgmt.yaml")
	tests := []struct {
		name   string
		break_ func(m map[string]any)
		want   string // in the reported failure
	}{
		{"missing required field", func(m map[string]any) { delete(m, "appDId") }, `"/appDId"`},
		{"missing nested required field", func(m map[string]any) { delete(m["_links"].(map[string]any), "self") }, `"/_links/self"`},
		{"wrong type", func(m map[string]any) { m["id"] = 42 }, `"/id"`},
		{"wrong array type", func(m map[string]any) { m["mecInfo"] = "3.1.1" }, `"/mecInfo"`},
		// checksum is a $ref with a description beside it (OAS 3.1): the
		// referenced schema must still apply.
		{"wrong type behind a $ref with siblings", func(m map[string]any) { m["checksum"] = "sha256:ab12" }, `"/checksum"`},
		{"missing field behind a $ref with siblings", func(m map[string]any) { delete(m["checksum"].(map[string]any), "hash") }, `hash`},
		// The file's enum is a SEE_DESCRIPTION placeholder; the v2.1.1 enum
		// replaces it, so a value outside the description's list fails.
		{"value outside the patched enum", func(m map[string]any) { m["onboardingState"] = "READY" }, `"/onboardingState"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := appPkgInfo()
			tt.break_(m)
			rec := &recorder{}
			spec.ValidateSchema(rec, "AppPkgInfo", mustJSON(t, m))
			got := rec.failed()
			if got == "" {
				t.Fatalf("no failure reported")
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("failure does not name %s:\n%s", tt.want, got)
			}
		})
	}
}

func TestNotJSONIsReported(t *testing.T) {
	spec := Load(t, "MEC010-2_AppPkgMgmt.yaml")
	if err := spec.CheckSchema("AppPkgInfo", []byte("{not json")); err == nil {
		t.Fatal("want an error for a body that is not JSON")
	}
	if err := spec.CheckSchema("NoSuchType", []byte("{}")); err == nil {
		t.Fatal("want an error for an unknown schema")
	}
}

// Every schema of the MEC 010-2 files must compile: validating an empty
// object may fail validation, never compilation.
func TestEverySchemaOfMEC0102Loads(t *testing.T) {
	files := map[string][]string{
		"MEC010-2_AppPkgMgmt.yaml": {"AppPkgInfo", "AppPkgSubscriptionInfo", "AppPkgNotification", "ProblemDetails", "AppD"},
		"MEC010-2_AppLcm.yaml": {"AppInstanceInfo", "AppLcmOpOcc", "AppInstSubscriptionInfo", "AppInstNotification",
			"AppLcmOpOccNotification", "AppLcmOpOccSubscriptionInfo", "ProblemDetails"},
	}
	for file, names := range files {
		spec := Load(t, file)
		for _, name := range sortedKeys(spec.Doc().Components.Schemas) {
			err := spec.CheckSchema(name, []byte(`{}`))
			if err != nil && strings.Contains(err.Error(), "failed to") {
				t.Errorf("%s %s: %v", file, name, err)
			}
		}
		for _, name := range names {
			if _, ok := spec.Doc().Components.Schemas[name]; !ok {
				t.Errorf("%s: no schema %s", file, name)
			}
		}
	}
}

func TestPlaceholderEnums(t *testing.T) {
	lcm := Load(t, "MEC010-2_AppLcm.yaml")
	info := map[string]any{
		"id": "i1", "appDId": "d1", "appProvider": "acme", "appName": "a", "appSoftVersion": "1",
		"appDVersion": "1", "appPkgId": "p1", "instantiationState": "INSTANTIATED",
		"instantiatedAppState": map[string]any{"operationalState": "STARTED"},
		"_links":               map[string]any{"self": map[string]any{"href": "http://127.0.0.1/x"}},
	}
	lcm.ValidateSchema(t, "AppInstanceInfo", mustJSON(t, info))

	info["instantiationState"] = "HALF_INSTANTIATED"
	rec := &recorder{}
	lcm.ValidateSchema(rec, "AppInstanceInfo", mustJSON(t, info))
	if !strings.Contains(rec.failed(), "/instantiationState") {
		t.Errorf("an instantiationState outside the v2.1.1 enum passed: %q", rec.failed())
	}

	// AppLcmOpOcc.operationState has no v2.1.1 counterpart: the placeholder
	// enum is dropped rather than guessed, so FAILED_TEMP (which the
	// description lists) is accepted.
	occ := map[string]any{
		"id": "o1", "operationState": "FAILED_TEMP", "stateEnteredTime": map[string]any{"seconds": 1, "nanoSeconds": 0},
		"startTime": map[string]any{"seconds": 1, "nanoSeconds": 0}, "lcmOperation": "INSTANTIATE",
		"_links": map[string]any{"self": map[string]any{"href": "http://127.0.0.1/x"}, "appInstance": map[string]any{"href": "http://127.0.0.1/y"}},
	}
	lcm.ValidateSchema(t, "AppLcmOpOcc", mustJSON(t, occ))

	var patched bool
	for _, p := range lcm.Patches() {
		if strings.HasPrefix(p, "AppLcmOpOcc/operationState: dropped") {
			patched = true
		}
	}
	if !patched {
		t.Errorf("patch list does not record the dropped AppLcmOpOcc/operationState enum:\n%s", strings.Join(lcm.Patches(), "\n"))
	}
}

// serve answers each path of routes with its status and body, as a real
// handler would.
func serve(t *testing.T, routes map[string]func(w http.ResponseWriter)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := routes[r.Method+" "+r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h(w)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func writeJSON(status int, contentType string, body []byte) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}
}

func TestValidateResponse(t *testing.T) {
	spec := Load(t, "MEC010-2_AppPkgMgmt.yaml")
	if spec.BasePath() != "/app_pkgm/v1" {
		t.Fatalf("BasePath = %q", spec.BasePath())
	}
	pkg := mustJSON(t, appPkgInfo())
	wrappedPkg := mustJSON(t, map[string]any{"AppPkgInfo": appPkgInfo()})
	problem := []byte(`{"status":404,"detail":"no such package","title":"Not Found"}`)
	srv := serve(t, map[string]func(http.ResponseWriter){
		"GET /app_pkgm/v1/onboarded_app_packages/good":    writeJSON(200, "application/json", pkg),
		"GET /app_pkgm/v1/onboarded_app_packages/wrapped": writeJSON(200, "application/json", wrappedPkg),
		"GET /app_pkgm/v1/onboarded_app_packages/missing": writeJSON(404, "application/problem+json", problem),
		"GET /app_pkgm/v1/onboarded_app_packages/teapot":  writeJSON(418, "application/json", []byte(`{}`)),
		"GET /app_pkgm/v1/onboarded_app_packages":         writeJSON(200, "application/json", []byte("["+string(pkg)+"]")),
		"DELETE /app_pkgm/v1/onboarded_app_packages/good": writeJSON(204, "", nil),
	})
	tests := []struct {
		method, path string
		wantFail     string // "" when the response conforms
	}{
		{"GET", "/onboarded_app_packages/good", ""},
		{"GET", "/onboarded_app_packages", ""},
		{"GET", "/onboarded_app_packages/missing", ""},
		{"DELETE", "/onboarded_app_packages/good", ""},
		// The file wraps the body as {"AppPkgInfo": ...}; the spec text and
		// mecorch do not, so a wrapped body is the one that must fail.
		{"GET", "/onboarded_app_packages/wrapped", "is missing"},
		{"GET", "/onboarded_app_packages/teapot", "status is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+"/app_pkgm/v1"+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := ReadBody(t, resp)
			rec := &recorder{}
			spec.ValidateResponse(rec, resp, body)
			got := rec.failed()
			switch {
			case tt.wantFail == "" && got != "":
				t.Errorf("conforming response reported:\n%s", got)
			case tt.wantFail != "" && !strings.Contains(got, tt.wantFail):
				t.Errorf("want a failure containing %q, got:\n%s", tt.wantFail, got)
			}
		})
	}
}

func TestPolymorphicSubscriptionResponse(t *testing.T) {
	spec := Load(t, "MEC010-2_AppLcm.yaml")
	sub := mustJSON(t, map[string]any{
		"id": "s1", "subscriptionType": "AppInstanceStateChangeSubscription", "callbackUri": "http://127.0.0.1:9/cb",
		"_links": map[string]any{"self": map[string]any{"href": "http://127.0.0.1/app_lcm/v1/subscriptions/s1"}},
	})
	srv := serve(t, map[string]func(http.ResponseWriter){
		"GET /app_lcm/v1/subscriptions/s1": writeJSON(200, "application/json", sub),
		"GET /app_lcm/v1/subscriptions/s2": writeJSON(200, "application/json", []byte(`{"id":"s2"}`)),
	})
	for id, wantOK := range map[string]bool{"s1": true, "s2": false} {
		resp, err := srv.Client().Get(srv.URL + "/app_lcm/v1/subscriptions/" + id)
		if err != nil {
			t.Fatal(err)
		}
		body := ReadBody(t, resp)
		rec := &recorder{}
		spec.ValidateResponse(rec, resp, body)
		if ok := rec.failed() == ""; ok != wantOK {
			t.Errorf("%s: conforms = %v, want %v: %s", id, ok, wantOK, rec.failed())
		}
	}
}

func TestMissingSuccessResponseIsAdded(t *testing.T) {
	spec := Load(t, "MEC011_AppSupport.yaml")
	req := httptest.NewRequest("POST", spec.BasePath()+"/applications/a1/confirm_ready", nil)
	if err := spec.CheckResponse(req, http.StatusNoContent, http.Header{}, nil); err != nil {
		t.Errorf("204 to confirm_ready rejected: %v", err)
	}
}

func TestSharedDirOverride(t *testing.T) {
	dir, err := SharedDir()
	if err != nil {
		t.Fatalf("SharedDir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "etsi-mec", "MEC010-2_AppLcm.yaml")); err != nil {
		t.Fatalf("found %s, which lacks the ETSI files: %v", dir, err)
	}
	empty := t.TempDir()
	t.Setenv(EnvSharedDir, empty)
	if got, _ := SharedDir(); got != empty {
		t.Errorf("SharedDir with %s set = %q", EnvSharedDir, got)
	}
	if _, err := Open("MEC010-2_AppLcm.yaml"); err == nil {
		t.Errorf("Open from an empty shared dir succeeded")
	}
}

func TestFragmentIsRefused(t *testing.T) {
	if _, err := Open("MEC010-2_definitions-fragment.yaml"); err == nil {
		t.Fatal("a fragment without components loaded as a document")
	}
}
