package operator

import (
	"net/http"
	"strings"
	"testing"
)

func TestSitesCRUD(t *testing.T) {
	forEachEngine(t, func(t *testing.T, a *api) {
		var s siteResponse
		body := map[string]any{"id": "site-1", "name": "Tower 1", "zone": "north", "countryCode": "DE", "latitude": 52.52, "longitude": 13.4}
		a.do("POST", "/api/v1/sites", body).ok(http.StatusCreated, &s).
			wantHeader("Location", "/api/v1/sites/site-1").wantHeader("ETag", `"1"`)
		want := siteResponse{ID: "site-1", Name: "Tower 1", Zone: "north", CountryCode: "DE", Latitude: 52.52, Longitude: 13.4, CreatedAt: testNow}
		if s != want {
			t.Errorf("created %+v, want %+v", s, want)
		}

		var got siteResponse
		a.do("GET", "/api/v1/sites/site-1", nil).ok(http.StatusOK, &got).wantHeader("ETag", `"1"`)
		if got != want {
			t.Errorf("get %+v, want %+v", got, want)
		}
		a.do("GET", "/api/v1/sites/site-1", nil, "If-None-Match", `"1"`).ok(http.StatusNotModified, nil).wantHeader("ETag", `"1"`)
		a.do("GET", "/api/v1/sites/site-1", nil, "If-None-Match", `W/"7"`).ok(http.StatusOK, nil)

		// Without an ID the server makes one.
		var gen siteResponse
		res := a.do("POST", "/api/v1/sites", map[string]any{"name": "CO 3"}).ok(http.StatusCreated, &gen)
		if len(gen.ID) != 36 || res.header.Get("Location") != "/api/v1/sites/"+gen.ID {
			t.Errorf("generated site %q at %q", gen.ID, res.header.Get("Location"))
		}

		var list []siteResponse
		a.do("GET", "/api/v1/sites", nil).ok(http.StatusOK, &list)
		if len(list) != 2 {
			t.Errorf("list = %+v, want 2 sites", list)
		}

		// Replace, conditionally.
		put := map[string]any{"name": "Tower 1b", "latitude": 1, "longitude": 2}
		var upd siteResponse
		a.do("PUT", "/api/v1/sites/site-1", put, "If-Match", `"1"`).ok(http.StatusOK, &upd).wantHeader("ETag", `"2"`)
		if upd.Name != "Tower 1b" || upd.Zone != "" || upd.CountryCode != "" || upd.ID != "site-1" || !upd.CreatedAt.Equal(testNow) {
			t.Errorf("replaced: %+v", upd)
		}
		a.do("PUT", "/api/v1/sites/site-1", put, "If-Match", `"1"`).problem(http.StatusPreconditionFailed)
		a.do("PUT", "/api/v1/sites/site-1", put, "If-Match", `W/"2"`).problem(http.StatusPreconditionFailed)
		a.do("PUT", "/api/v1/sites/site-1", put, "If-Match", `"1", "2"`).ok(http.StatusOK, nil).wantHeader("ETag", `"2"`)
		a.do("PUT", "/api/v1/sites/site-1", put, "If-Match", `"1", "3"`).problem(http.StatusPreconditionFailed)
		a.do("PUT", "/api/v1/sites/nope", put).problem(http.StatusNotFound)
		a.do("DELETE", "/api/v1/sites/site-1", nil, "If-Match", `"1"`).problem(http.StatusPreconditionFailed)
		a.do("DELETE", "/api/v1/sites/site-1", nil, "If-Match", `"2"`).ok(http.StatusNoContent, nil)
		a.do("GET", "/api/v1/sites/site-1", nil).problem(http.StatusNotFound)
		a.do("DELETE", "/api/v1/sites/site-1", nil).problem(http.StatusNotFound)
		a.do("POST", "/api/v1/sites", map[string]any{"id": gen.ID, "name": "again"}).problem(http.StatusConflict)
	})
}

func TestSiteBodyErrors(t *testing.T) {
	tests := []struct {
		name   string
		method string
		body   string
		ctype  string
		status int
		params []string
		detail string // a substring of the problem's detail
	}{
		{"validation, all fields", "POST", `{"id":"Bad ID","countryCode":"de","latitude":95,"longitude":-200}`, "", 400,
			[]string{"id", "name", "countryCode", "latitude", "longitude"}, "invalid site"},
		{"read-only createdAt with the rest", "POST", `{"name":"x","latitude":-99,"createdAt":"2025-01-01T00:00:00Z"}`, "", 400,
			[]string{"createdAt", "latitude"}, "read-only"},
		{"wrong type", "POST", `{"name":"x","latitude":"north"}`, "", 400, []string{"latitude"}, "latitude must be a JSON number"},
		{"unknown field", "POST", `{"name":"x","altitude":12}`, "", 400, []string{"altitude"}, "unknown field"},
		{"syntax error", "POST", `{"name":"x",}`, "", 400, nil, "byte offset"},
		{"truncated", "POST", `{"name":"x"`, "", 400, nil, "middle"},
		{"empty body", "POST", ``, "", 400, nil, "empty"},
		{"not an object", "POST", `["x"]`, "", 400, nil, "must be a JSON object"},
		{"trailing data", "POST", `{"name":"x"} {"name":"y"}`, "", 400, nil, "nothing after it"},
		{"not JSON", "POST", `name=x`, "application/x-www-form-urlencoded", 415, nil, "not JSON"},
		{"put id mismatch", "PUT", `{"id":"other","name":""}`, "", 400, []string{"id", "name"}, "invalid site"},
	}
	forEachEngine(t, func(t *testing.T, a *api) {
		a.mustSite("site-1")
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				path := "/api/v1/sites"
				if tt.method == "PUT" {
					path += "/site-1"
				}
				var headers []string
				if tt.ctype != "" {
					headers = []string{"Content-Type", tt.ctype}
				}
				p := a.do(tt.method, path, tt.body, headers...).problem(tt.status)
				params(t, p, tt.params...)
				if !strings.Contains(p.Detail, tt.detail) {
					t.Errorf("detail %q does not say %q", p.Detail, tt.detail)
				}
				if p.Instance != path {
					t.Errorf("instance = %q, want %q", p.Instance, path)
				}
			})
		}
	})
}

func TestSiteDeleteConflict(t *testing.T) {
	forEachEngine(t, func(t *testing.T, a *api) {
		a.mustSite("site-1")
		a.do("POST", "/api/v1/hosts", hostBody("edge1", "site-1")).ok(http.StatusCreated, nil)
		p := a.do("DELETE", "/api/v1/sites/site-1", nil).problem(http.StatusConflict)
		if !strings.Contains(p.Detail, `"edge1"`) {
			t.Errorf("detail %q does not name the host", p.Detail)
		}
		a.do("DELETE", "/api/v1/hosts/edge1", nil).ok(http.StatusNoContent, nil)
		a.do("DELETE", "/api/v1/sites/site-1", nil).ok(http.StatusNoContent, nil)
	})
}

func TestBodyTooLarge(t *testing.T) {
	forEachEngine(t, func(t *testing.T, a *api) {
		big := `{"name":"` + strings.Repeat("x", maxBody) + `"}`
		a.do("POST", "/api/v1/sites", big).problem(http.StatusRequestEntityTooLarge)

		// Without a Content-Length the limit still holds while reading.
		req, err := http.NewRequest("POST", a.url+"/api/v1/sites", struct{ *strings.Reader }{strings.NewReader(big)})
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge || res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("chunked: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
		}
		// Just under the limit is decoded (and found wanting only in content).
		fits := `{"name":"` + strings.Repeat("x", maxBody-20) + `"}`
		params(t, a.do("POST", "/api/v1/sites", fits).problem(http.StatusBadRequest), "name")
	})
}

func TestRouting(t *testing.T) {
	forEachEngine(t, func(t *testing.T, a *api) {
		tests := []struct {
			method, path string
			status       int
			allow        string
		}{
			{"PATCH", "/api/v1/sites/site-1", 405, "DELETE, GET, HEAD, PUT"},
			{"DELETE", "/api/v1/sites", 405, "GET, HEAD, POST"},
			{"PUT", "/api/v1/hosts", 405, "GET, HEAD, POST"},
			{"GET", "/api/v1/hosts/edge1/cordon", 405, "POST"},
			{"POST", "/api/v1/cells/001-01-000000001", 405, "DELETE, GET, HEAD, PUT"},
			{"GET", "/api/v1/nothing", 404, ""},
			{"GET", "/api/v1/sites/a/b", 404, ""},
			{"GET", "/api/v1/", 404, ""},
			{"GET", "/api/v1/sites/", 404, ""},
			{"GET", "/api/v1/sites/%2F", 404, ""},
			{"POST", "/api/v1/hosts/edge1/reboot", 404, ""},
		}
		for _, tt := range tests {
			res := a.do(tt.method, tt.path, nil)
			res.problem(tt.status)
			res.wantHeader("Allow", tt.allow)
		}
	})
}
