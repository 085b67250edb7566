package applcm

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/catalog"
)

func TestInstanceResource(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		r := e.do("POST", "app_instances", map[string]any{"appDId": e.pkg.AppDID, "appInstanceName": "echo-1", "appInstanceDescription": "first"})
		wantStatus(t, r, http.StatusCreated)
		e.spec.ValidateSchema(t, "AppInstanceInfo", r.body)
		info := r.json(t)
		id := info["id"].(string)
		self := e.srv.URL + Prefix + "/app_instances/" + id
		if loc := r.Header.Get("Location"); loc != self {
			t.Errorf("Location %q, want %q", loc, self)
		}
		want := map[string]any{"appDId": e.pkg.AppDID, "appInstanceName": "echo-1", "appInstanceDescription": "first",
			"appPkgId": e.pkg.ID, "appName": e.pkg.AppName, "appProvider": e.pkg.AppProvider,
			"appSoftVersion": e.pkg.AppSoftwareVersion, "appDVersion": e.pkg.AppDVersion, "instantiationState": mec.NotInstantiated}
		for k, v := range want {
			if info[k] != v {
				t.Errorf("%s = %v, want %v", k, info[k], v)
			}
		}
		lnk := info["_links"].(map[string]any)
		if lnk["self"].(map[string]any)["href"] != self || lnk["instantiate"].(map[string]any)["href"] != self+"/instantiate" {
			t.Errorf("links %v", lnk)
		}
		if lnk["terminate"] != nil || lnk["operate"] != nil || info["instantiatedAppState"] != nil {
			t.Errorf("a NOT_INSTANTIATED instance offers terminate or operate, or has a state: %v", info)
		}

		// GET, with its ETag and a conditional GET.
		g := e.do("GET", "app_instances/"+id, nil)
		wantStatus(t, g, http.StatusOK)
		tag := g.Header.Get("ETag")
		if tag == "" {
			t.Fatal("GET of an instance has no ETag")
		}
		nm := e.doHeader("GET", "app_instances/"+id, nil, http.Header{"If-None-Match": {tag}})
		wantStatus(t, nm, http.StatusNotModified)

		// The list: task links are left out by default (Query.Exclude_default).
		e.createInstance("echo-2")
		l := e.do("GET", "app_instances", nil)
		wantStatus(t, l, http.StatusOK)
		items := l.list(t)
		if len(items) != 2 {
			t.Fatalf("list has %d instances, want 2", len(items))
		}
		for _, it := range items {
			if it["_links"].(map[string]any)["instantiate"] != nil {
				t.Errorf("default list shows the instantiate link: %v", it)
			}
		}
		all := e.do("GET", "app_instances?all_fields", nil)
		wantStatus(t, all, http.StatusOK)
		if all.list(t)[0]["_links"].(map[string]any)["instantiate"] == nil {
			t.Errorf("all_fields hides the instantiate link: %s", all.body)
		}
		f := e.do("GET", "app_instances?filter="+url.QueryEscape("(eq,appInstanceName,echo-1)"), nil)
		wantStatus(t, f, http.StatusOK)
		if got := f.list(t); len(got) != 1 || got[0]["id"] != id {
			t.Errorf("filter by name: %s", f.body)
		}
		bad := e.do("GET", "app_instances?filter="+url.QueryEscape("(eq,noSuchAttribute,1)"), nil)
		wantStatus(t, bad, http.StatusBadRequest)
		wantParams(t, bad, "filter")

		d := e.do("DELETE", "app_instances/"+id, nil)
		wantStatus(t, d, http.StatusNoContent)
		wantStatus(t, e.do("GET", "app_instances/"+id, nil), http.StatusNotFound)
		wantStatus(t, e.do("DELETE", "app_instances/"+id, nil), http.StatusNotFound)
		if n := len(e.do("GET", "app_instances", nil).list(t)); n != 1 {
			t.Errorf("after delete the list has %d instances, want 1", n)
		}
	})
}

func TestCreateInstanceErrors(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		tests := []struct {
			name   string
			body   any
			status int
			params []string
		}{
			{"no body", nil, http.StatusBadRequest, []string{"appDId"}},
			{"empty object", "{}", http.StatusBadRequest, []string{"appDId"}},
			{"malformed", `{"appDId":`, http.StatusBadRequest, []string{"body"}},
			{"not an object", `["x"]`, http.StatusBadRequest, []string{"body"}},
			{"wrong types", `{"appDId": 7, "appInstanceName": true, "appInstanceDescription": {}}`, http.StatusBadRequest,
				[]string{"appDId", "appInstanceName", "appInstanceDescription"}},
			{"unknown attribute", map[string]any{"appDId": e.pkg.AppDID, "appDid": "typo"}, http.StatusBadRequest, []string{"appDid"}},
			{"bad placement info", map[string]any{"appDId": e.pkg.AppDID, "appPlacementInfo": map[string]any{"mepName": "x"}},
				http.StatusBadRequest, []string{"appPlacementInfo.mepId"}},
			{"no such appDId", map[string]any{"appDId": "no-such-app"}, http.StatusUnprocessableEntity, []string{"appDId"}},
		}
		for _, tc := range tests {
			r := e.do("POST", "app_instances", tc.body)
			if r.StatusCode != tc.status {
				t.Errorf("%s: status %d, want %d\n%s", tc.name, r.StatusCode, tc.status, r.body)
				continue
			}
			wantParams(t, r, tc.params...)
		}

		txt := e.doHeader("POST", "app_instances", "appDId=x", http.Header{"Content-Type": {"text/plain"}})
		wantStatus(t, txt, http.StatusUnsupportedMediaType)
		huge := `{"appDId": "` + strings.Repeat("x", maxBody) + `"}`
		wantStatus(t, e.do("POST", "app_instances", huge), http.StatusRequestEntityTooLarge)

		if _, err := e.cat.SetOperationalState(context.Background(), e.pkg.ID, mec.PkgDisabled, catalog.Unconditional()); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, e.do("POST", "app_instances", map[string]any{"appDId": e.pkg.AppDID}), http.StatusConflict)
	})
}

func TestRouting(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		for _, path := range []string{"nothing_here", "app_instances/x/y/z", "app_instances/x/reboot", "/app_lcm/v2/app_instances"} {
			r := e.do("GET", path, nil)
			wantStatus(t, r, http.StatusNotFound)
		}
		tests := []struct{ method, path, allow string }{
			{"PUT", "app_instances", "GET, HEAD, POST"},
			{"PATCH", "app_instances/x", "DELETE, GET, HEAD"},
			{"GET", "app_instances/x/instantiate", "POST"},
			{"DELETE", "app_lcm_op_occs", "GET, HEAD"},
			{"GET", "app_lcm_op_occs/x/retry", "POST"},
			{"POST", "subscriptions/x", "DELETE, GET, HEAD"},
		}
		for _, tc := range tests {
			r := e.do(tc.method, tc.path, nil)
			wantStatus(t, r, http.StatusMethodNotAllowed)
			if got := r.Header.Get("Allow"); got != tc.allow {
				t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
			}
		}
		for _, path := range []string{"app_instances/nope", "app_lcm_op_occs/nope", "subscriptions/nope"} {
			wantStatus(t, e.do("GET", path, nil), http.StatusNotFound)
		}
		for _, task := range []string{"instantiate", "operate", "terminate"} {
			wantStatus(t, e.do("POST", "app_instances/nope/"+task, taskBody(task)), http.StatusNotFound)
		}
		for _, task := range []string{"cancel", "fail", "retry"} {
			wantStatus(t, e.do("POST", "app_lcm_op_occs/nope/"+task, nil), http.StatusNotFound)
		}
	})
}

// taskBody is a valid body for each task.
func taskBody(task string) any {
	switch task {
	case "operate":
		return map[string]any{"changeStateTo": "STOPPED"}
	case "terminate":
		return map[string]any{"terminationType": "FORCEFUL"}
	}
	return map[string]any{}
}

// TestConfiguredBaseURL: behind a proxy, links and Location use the
// configured external URL, not the request's host.
func TestConfiguredBaseURL(t *testing.T) {
	onEnginesWith(t, Config{BaseURL: "https://mec.example.com/"}, func(t *testing.T, e *env) {
		r := e.do("POST", "app_instances", map[string]any{"appDId": e.pkg.AppDID})
		wantStatus(t, r, http.StatusCreated)
		id := r.json(t)["id"].(string)
		want := "https://mec.example.com/app_lcm/v1/app_instances/" + id
		if loc := r.Header.Get("Location"); loc != want {
			t.Errorf("Location %q, want %q", loc, want)
		}
		self := r.json(t)["_links"].(map[string]any)["self"].(map[string]any)["href"].(string)
		if self != want || !strings.HasPrefix(self, "https://") {
			t.Errorf("self %q, want %q", self, want)
		}
		e.standardSites()
		r = e.do("POST", "app_instances/"+id+"/instantiate", nil)
		wantStatus(t, r, http.StatusAccepted)
		if loc := r.Header.Get("Location"); !strings.HasPrefix(loc, "https://mec.example.com/app_lcm/v1/app_lcm_op_occs/") {
			t.Errorf("202 Location %q", loc)
		}
	})
}
