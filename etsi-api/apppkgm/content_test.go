package apppkgm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/mecorch/mecorch/mec"
)

func TestGetAppD(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		info := e.onboard()
		path := "/onboarded_app_packages/" + info.ID + "/appd"
		r := e.do("GET", path, nil, nil).wantStatus(t, http.StatusOK)
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if err := e.spec.CheckResponse(r.Request, r.StatusCode, r.Header, appDStandIns(t, r.body)); err != nil {
			t.Errorf("spectest: %v\nbody: %s", err, r.body)
		}
		var asJSON map[string]any
		r.decode(t, &asJSON)
		if asJSON["appDId"] != sampleAppDID || asJSON["appName"] != sampleApp {
			t.Errorf("AppD %v", asJSON)
		}
		// By appDId too.
		e.do("GET", "/onboarded_app_packages/"+sampleAppDID+"/appd", nil, nil).wantStatus(t, http.StatusOK)

		for _, accept := range []string{"application/yaml", "text/plain", "application/json;q=0.5, application/yaml"} {
			r := e.do("GET", path, map[string]string{"Accept": accept}, nil).wantStatus(t, http.StatusOK)
			if !strings.Contains(r.Header.Get("Content-Type"), "yaml") && !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
				t.Errorf("Accept %s: Content-Type %q", accept, r.Header.Get("Content-Type"))
			}
			var asYAML any
			if err := yaml.Unmarshal(r.body, &asYAML); err != nil {
				t.Fatalf("Accept %s: not YAML: %v\n%s", accept, err, r.body)
			}
			if bytes.HasPrefix(bytes.TrimSpace(r.body), []byte("{")) {
				t.Errorf("Accept %s: flow-style YAML:\n%s", accept, r.body)
			}
			if !reflect.DeepEqual(viaJSON(t, asYAML), viaJSON(t, asJSON)) {
				t.Errorf("Accept %s: YAML differs from JSON:\n%s", accept, r.body)
			}
		}
		e.wantProblem(e.do("GET", path, map[string]string{"Accept": "application/xml"}, nil), http.StatusNotAcceptable)

		_, hash := samplePkg(t)
		created := e.createPkg(hash)
		e.wantProblem(e.do("GET", "/onboarded_app_packages/"+created.ID+"/appd", nil, nil), http.StatusConflict)
		e.wantProblem(e.do("GET", "/onboarded_app_packages/"+mec.NewID()+"/appd", nil, nil), http.StatusNotFound)
	})
}

// appDStandIns rewrites two attributes of an AppD where the v3 file's
// schema contradicts its own text, which spectest does not relax (yet):
// mecVersion is "type: string" though the text (and v2.1.1) make it a list
// of versions, and swImage is "type: object" with "items" (a broken array)
// though it is "a reference to the actual software image", a path in the
// package. Each is checked for the shape mecorch sends, then replaced by a
// value of the schema's type.
func appDStandIns(t *testing.T, body []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("AppD: %v", err)
	}
	versions, ok := m["mecVersion"].([]any)
	if !ok || len(versions) == 0 {
		t.Errorf("mecVersion %v, want a list of versions", m["mecVersion"])
	}
	parts := make([]string, 0, len(versions))
	for _, v := range versions {
		parts = append(parts, fmt.Sprint(v))
	}
	m["mecVersion"] = strings.Join(parts, ",")
	images, _ := m["swImageDescriptor"].([]any)
	for i, im := range images {
		desc, _ := im.(map[string]any)
		if _, ok := desc["swImage"].(string); !ok {
			t.Errorf("swImageDescriptor[%d].swImage %v, want a path", i, desc["swImage"])
		}
		desc["swImage"] = map[string]any{}
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// viaJSON normalises a decoded document (YAML gives ints, JSON floats).
func viaJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGetPackageContent(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		data, hash := samplePkg(t)
		info := e.onboard()
		path := "/onboarded_app_packages/" + info.ID + "/package_content"

		r := e.do("GET", path, nil, nil).wantStatus(t, http.StatusOK)
		if !bytes.Equal(r.body, data) {
			t.Errorf("content differs from the upload (%d bytes, want %d)", len(r.body), len(data))
		}
		if r.Header.Get("Content-Type") != "application/zip" || r.Header.Get("Accept-Ranges") != "bytes" {
			t.Errorf("headers %v", r.Header)
		}
		etag := r.Header.Get("ETag")
		if etag != `"`+hash+`"` {
			t.Errorf("ETag %q, want the checksum", etag)
		}
		e.do("GET", "/onboarded_app_packages/"+sampleAppDID+"/package_content", nil, nil).wantStatus(t, http.StatusOK)

		r = e.do("GET", path, map[string]string{"Range": "bytes=0-9"}, nil).wantStatus(t, http.StatusPartialContent)
		if !bytes.Equal(r.body, data[:10]) || r.Header.Get("Content-Range") != fmt.Sprintf("bytes 0-9/%d", len(data)) {
			t.Errorf("206: %d bytes, Content-Range %q", len(r.body), r.Header.Get("Content-Range"))
		}
		r = e.do("GET", path, map[string]string{"Range": "bytes=-4"}, nil).wantStatus(t, http.StatusPartialContent)
		if !bytes.Equal(r.body, data[len(data)-4:]) {
			t.Errorf("suffix range: %x", r.body)
		}
		r = e.do("GET", path, map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(data)+10)}, nil)
		e.wantProblem(r, http.StatusRequestedRangeNotSatisfiable)
		if r.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(data)) {
			t.Errorf("416 Content-Range %q", r.Header.Get("Content-Range"))
		}
		// If-Range with the current ETag honours the range; a stale one
		// gets the whole content.
		e.do("GET", path, map[string]string{"Range": "bytes=0-9", "If-Range": etag}, nil).wantStatus(t, http.StatusPartialContent)
		e.do("GET", path, map[string]string{"Range": "bytes=0-9", "If-Range": `"stale"`}, nil).wantStatus(t, http.StatusOK)
		e.do("GET", path, map[string]string{"If-None-Match": etag}, nil).wantStatus(t, http.StatusNotModified)
		e.wantProblem(e.do("GET", path, map[string]string{"Accept": "application/json"}, nil), http.StatusNotAcceptable)

		created := e.createPkg(hash)
		e.wantProblem(e.do("GET", "/onboarded_app_packages/"+created.ID+"/package_content", nil, nil), http.StatusConflict)
		e.wantProblem(e.do("GET", "/onboarded_app_packages/"+mec.NewID()+"/package_content", nil, nil), http.StatusNotFound)
	})
}
