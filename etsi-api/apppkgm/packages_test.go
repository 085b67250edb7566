package apppkgm

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

func TestCreateUploadOnboard(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		data, hash := samplePkg(t)
		created := e.createPkg(hash)
		if created.OnboardingState != mec.PkgCreated || created.OperationalState != mec.PkgDisabled || created.UsageState != mec.PkgNotInUse {
			t.Errorf("new package states %s/%s/%s, want CREATED/DISABLED/NOT_IN_USE",
				created.OnboardingState, created.OperationalState, created.UsageState)
		}
		if created.Checksum.Hash != hash || created.AppProvider != "mecorch-examples" || string(created.UserDefinedData) != `{"team":"edge"}` {
			t.Errorf("created package does not echo the request: %+v", created)
		}
		self := e.srv.URL + Prefix + "/onboarded_app_packages/" + created.ID
		if created.Links.Self.Href != self || created.Links.AppD.Href != self+"/appd" || created.Links.AppPkgContent.Href != self+"/package_content" {
			t.Errorf("links %+v, want absolute links under %s", created.Links, self)
		}

		r := e.upload(created.ID, data).wantStatus(t, http.StatusAccepted)
		if len(r.body) != 0 {
			t.Errorf("202 with a body: %s", r.body)
		}
		got := e.getPkg(created.ID)
		if got.OnboardingState != mec.PkgOnboarded || got.OperationalState != mec.PkgEnabled || got.UsageState != mec.PkgNotInUse {
			t.Errorf("onboarded states %s/%s/%s, want ONBOARDED/ENABLED/NOT_IN_USE", got.OnboardingState, got.OperationalState, got.UsageState)
		}
		if got.AppDID != sampleAppDID || got.AppName != sampleApp || got.AppSoftwareVersion != "1.0.0" || got.AppDVersion != "1.0" {
			t.Errorf("AppD attributes not copied: %+v", got)
		}
		if len(got.MecInfo) != 1 || got.MecInfo[0] != "3.1.1" {
			t.Errorf("mecInfo %v, want [3.1.1]", got.MecInfo)
		}
		if len(got.SoftwareImages) != 1 || got.SoftwareImages[0].ID != "edge-echo-image" || got.SoftwareImages[0].Checksum.Hash == "" {
			t.Fatalf("softwareImages %+v", got.SoftwareImages)
		}
		for _, a := range got.AdditionalArtifacts {
			if a.ArtifactPath == got.SoftwareImages[0].ImagePath {
				t.Errorf("the software image %s is listed as an additional artifact", a.ArtifactPath)
			}
		}
		if len(got.AdditionalArtifacts) == 0 {
			t.Errorf("no additionalArtifacts (the AppD at least is one)")
		}
		if got.OnboardingFailureDetails != nil {
			t.Errorf("onboarded package with failure details %+v", got.OnboardingFailureDetails)
		}
		// The path parameter is the appDId in the v3 file: both work.
		if byAppD := e.getPkg(sampleAppDID); byAppD.ID != created.ID {
			t.Errorf("GET by appDId found %s, want %s", byAppD.ID, created.ID)
		}
		ev := e.events.last(t, mec.EventPkgOnboarded)
		if ev.Package.ID != created.ID {
			t.Errorf("onboarded event for %s", ev.Package.ID)
		}
	})
}

func TestUploadMultipart(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		data, hash := samplePkg(t)
		info := e.createPkg(hash)
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		_ = mw.WriteField("note", "before the file")
		fw, _ := mw.CreateFormFile("file", "edge-echo.zip")
		_, _ = fw.Write(data)
		_ = mw.Close()
		e.do("PUT", "/onboarded_app_packages/"+info.ID+"/package_content",
			map[string]string{"Content-Type": mw.FormDataContentType()}, body.Bytes()).wantStatus(t, http.StatusAccepted)
		if got := e.getPkg(info.ID); got.OnboardingState != mec.PkgOnboarded {
			t.Errorf("after multipart upload: %s", got.OnboardingState)
		}

		// A form without a file part names the part it lacks.
		other := e.createPkg(hash)
		body.Reset()
		mw = multipart.NewWriter(&body)
		_ = mw.WriteField("note", "no file")
		_ = mw.Close()
		p := e.wantProblem(e.do("PUT", "/onboarded_app_packages/"+other.ID+"/package_content",
			map[string]string{"Content-Type": mw.FormDataContentType()}, body.Bytes()), http.StatusBadRequest)
		wantParams(t, p, "file")
	})
}

func TestCreateAppPkgInvalid(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		cases := []struct {
			name   string
			body   string
			status int
			params []string
		}{
			{"everything missing", `{}`, 400, []string{"appPkgName", "appPkgVersion", "checksum"}},
			{"wrong types", `{"appPkgName": 7, "appPkgVersion": "1", "checksum": {"algorithm": ["SHA-256"], "hash": true},
				"userDefinedData": "x", "appPkgPath": 3}`, 400,
				[]string{"appPkgName", "checksum.algorithm", "checksum.hash", "userDefinedData", "appPkgPath"}},
			{"checksum not an object", `{"appPkgName": "a", "appPkgVersion": "1", "checksum": "abc"}`, 400, []string{"checksum"}},
			{"checksum fields missing", `{"appPkgName": "a", "appPkgVersion": "1", "checksum": {}}`, 400,
				[]string{"checksum.algorithm", "checksum.hash"}},
			{"unsupported algorithm", `{"appPkgName": "a", "appPkgVersion": "1", "checksum": {"algorithm": "MD5", "hash": "00"}}`, 400,
				[]string{"checksum.algorithm"}},
			{"path not a URI", `{"appPkgName": "a", "appPkgVersion": "1", "appPkgPath": "not a uri",
				"checksum": {"algorithm": "SHA-256", "hash": "` + strings.Repeat("0", 64) + `"}}`, 400, []string{"appPkgPath"}},
			{"not an object", `[1,2]`, 400, nil},
			{"malformed", `{"appPkgName": `, 400, nil},
			{"trailing data", `{} {}`, 400, nil},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				p := e.wantProblem(e.doJSON("POST", "/onboarded_app_packages", c.body), c.status)
				wantParams(t, p, c.params...)
			})
		}
		t.Run("unknown fields are tolerated", func(t *testing.T) {
			b := createBody(strings.Repeat("a", 64))
			b["futureAttribute"] = map[string]any{"x": 1}
			e.doJSON("POST", "/onboarded_app_packages", b).wantStatus(t, http.StatusCreated)
		})
		t.Run("wrong content type", func(t *testing.T) {
			e.wantProblem(e.do("POST", "/onboarded_app_packages", map[string]string{"Content-Type": "text/plain"}, []byte(`{}`)), http.StatusUnsupportedMediaType)
			e.wantProblem(e.do("POST", "/onboarded_app_packages", nil, []byte(`{}`)), http.StatusUnsupportedMediaType)
		})
		t.Run("too large", func(t *testing.T) {
			big := `{"appPkgName": "` + strings.Repeat("x", int(maxJSONBytes)) + `"}`
			e.wantProblem(e.doJSON("POST", "/onboarded_app_packages", big), http.StatusRequestEntityTooLarge)
		})
		t.Run("not acceptable", func(t *testing.T) {
			r := e.do("POST", "/onboarded_app_packages", map[string]string{"Content-Type": "application/json", "Accept": "application/xml"},
				[]byte(`{}`))
			e.wantProblem(r, http.StatusNotAcceptable)
		})
	})
}

func TestUploadWrongChecksum(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		data, _ := samplePkg(t)
		info := e.createPkg(strings.Repeat("ab", 32))
		p := e.wantProblem(e.upload(info.ID, data), http.StatusUnprocessableEntity)
		wantParams(t, p, "checksum")
		got := e.getPkg(info.ID)
		if got.OnboardingState != mec.PkgCreated || got.OnboardingFailureDetails == nil {
			t.Fatalf("after a refused upload: state %s, failure %+v", got.OnboardingState, got.OnboardingFailureDetails)
		}
		if f := got.OnboardingFailureDetails; f.Status != http.StatusUnprocessableEntity || len(f.InvalidParams) == 0 || f.InvalidParams[0].Name != "checksum" {
			t.Errorf("onboardingFailureDetails %+v", f)
		}
	})
}

func TestUploadBrokenAppD(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		broken := buildPkg(t, editAppD(t,
			"virtualMemSize: 512", "virtualMemSize: -512",
			"ipAddressType: IP_V4", "ipAddressType: IP_V5",
			"mecVersion: [\"3.1.1\"]", "mecVersion: 3"))
		info := e.createPkg(sha256Hex(broken))
		p := e.wantProblem(e.upload(info.ID, broken), http.StatusUnprocessableEntity)
		wantParams(t, p,
			"appD.virtualComputeDescriptor.virtualMemory.virtualMemSize",
			"appD.appDNSRule[0].ipAddressType")
		if len(p.InvalidParams) < 3 {
			t.Errorf("want every problem listed, got %+v", p.InvalidParams)
		}
		if got := e.getPkg(info.ID); got.OnboardingState != mec.PkgCreated {
			t.Errorf("broken package is %s", got.OnboardingState)
		}
		// The package can be fixed by uploading again.
		good := buildPkg(t, func(map[string][]byte) {})
		fixed := e.createPkg(sha256Hex(good))
		e.upload(fixed.ID, good).wantStatus(t, http.StatusAccepted)
	})
}

func TestUploadErrors(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		data, _ := samplePkg(t)
		onboarded := e.onboard()
		p := e.wantProblem(e.upload(onboarded.ID, data), http.StatusConflict)
		if !strings.Contains(p.Detail, "CREATED") {
			t.Errorf("409 detail %q does not say why", p.Detail)
		}
		e.wantProblem(e.upload(mec.NewID(), data), http.StatusNotFound)

		created := e.createPkg(sha256Hex(data))
		e.wantProblem(e.do("PUT", "/onboarded_app_packages/"+created.ID+"/package_content",
			map[string]string{"Content-Type": "application/json"}, data), http.StatusUnsupportedMediaType)
		p = e.wantProblem(e.upload(created.ID, []byte{}), http.StatusBadRequest)
		wantParams(t, p, "body")
		notZip := []byte("this is not a zip file")
		other := e.createPkg(sha256Hex(notZip))
		p = e.wantProblem(e.upload(other.ID, notZip), http.StatusUnprocessableEntity)
		if len(p.InvalidParams) == 0 {
			t.Errorf("422 without invalidParams")
		}
	})
}

func TestUploadTooLarge(t *testing.T) {
	for _, eng := range engines() {
		t.Run(eng.name, func(t *testing.T) {
			data, hash := samplePkg(t)
			e := newEnv(t, eng, Config{MaxUploadBytes: int64(len(data) - 1)})
			info := e.createPkg(hash)
			e.wantProblem(e.upload(info.ID, data), http.StatusRequestEntityTooLarge)
			// Without a Content-Length the limit is found while reading.
			var body bytes.Buffer
			mw := multipart.NewWriter(&body)
			fw, _ := mw.CreateFormFile("file", "edge-echo.zip")
			_, _ = fw.Write(data)
			_ = mw.Close()
			req, _ := http.NewRequest("PUT", e.srv.URL+Prefix+"/onboarded_app_packages/"+info.ID+"/package_content",
				struct{ *bytes.Buffer }{&body}) // hides the length
			req.Header.Set("Content-Type", mw.FormDataContentType())
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("chunked oversized multipart: %d", resp.StatusCode)
			}
			if got := e.getPkg(info.ID); got.OnboardingState != mec.PkgCreated || got.OnboardingFailureDetails != nil {
				t.Errorf("an oversized upload touched the package: %+v", got)
			}
		})
	}
}

func TestPatchOperationalState(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		info := e.onboard()
		path := "/onboarded_app_packages/" + info.ID
		patch := func(state, ctype string) reply {
			return e.do("PATCH", path, map[string]string{"Content-Type": ctype}, []byte(`{"operationalState":"`+state+`"}`))
		}
		r := e.valid(patch("DISABLED", "application/merge-patch+json").wantStatus(t, http.StatusOK))
		var mods AppPkgInfoModifications
		r.decode(t, &mods)
		if mods.OperationalState != mec.PkgDisabled {
			t.Errorf("PATCH answered %+v", mods)
		}
		if got := e.getPkg(info.ID); got.OperationalState != mec.PkgDisabled {
			t.Errorf("after disable: %s", got.OperationalState)
		}
		if ev := e.events.last(t, mec.EventPkgDisabled); ev.Package.ID != info.ID {
			t.Errorf("disabled event for %s", ev.Package.ID)
		}
		e.wantProblem(patch("DISABLED", "application/json"), http.StatusConflict)
		e.valid(patch("ENABLED", "application/json").wantStatus(t, http.StatusOK))
		e.wantProblem(patch("ENABLED", "application/json"), http.StatusConflict)
		// By appDId, and with v2.1.1's spelling of the attribute.
		e.valid(e.do("PATCH", "/onboarded_app_packages/"+sampleAppDID, map[string]string{"Content-Type": "application/json"},
			[]byte(`{"operationState":"DISABLED"}`)).wantStatus(t, http.StatusOK))

		p := e.wantProblem(patch("SLEEPING", "application/json"), http.StatusBadRequest)
		wantParams(t, p, "operationalState")
		p = e.wantProblem(e.do("PATCH", path, jsonCT, []byte(`{}`)), http.StatusBadRequest)
		wantParams(t, p, "operationalState")
		r = patch("ENABLED", "text/plain")
		e.wantProblem(r, http.StatusUnsupportedMediaType)
		if r.Header.Get("Accept-Patch") == "" {
			t.Errorf("415 on PATCH without Accept-Patch")
		}
		e.wantProblem(e.do("PATCH", "/onboarded_app_packages/"+mec.NewID(), jsonCT, []byte(`{"operationalState":"ENABLED"}`)), http.StatusNotFound)

		_, hash := samplePkg(t)
		created := e.createPkg(hash)
		p = e.wantProblem(e.do("PATCH", "/onboarded_app_packages/"+created.ID, jsonCT, []byte(`{"operationalState":"ENABLED"}`)), http.StatusConflict)
		if !strings.Contains(p.Detail, "ONBOARDED") {
			t.Errorf("409 detail %q", p.Detail)
		}
	})
}

func TestConditionalRequests(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		info := e.onboard()
		path := "/onboarded_app_packages/" + info.ID
		r := e.do("GET", path, nil, nil).wantStatus(t, http.StatusOK)
		etag := r.Header.Get("ETag")
		if etag == "" || strings.HasPrefix(etag, "W/") {
			t.Fatalf("ETag %q, want a strong ETag", etag)
		}
		r = e.do("GET", path, map[string]string{"If-None-Match": `"other", ` + etag}, nil).wantStatus(t, http.StatusNotModified)
		if len(r.body) != 0 || r.Header.Get("ETag") != etag {
			t.Errorf("304 with body %q, ETag %q", r.body, r.Header.Get("ETag"))
		}
		e.do("GET", path, map[string]string{"If-None-Match": `"other"`}, nil).wantStatus(t, http.StatusOK)

		disable := []byte(`{"operationalState":"DISABLED"}`)
		e.wantProblem(e.do("PATCH", path, map[string]string{"Content-Type": "application/json", "If-Match": `"1-NOT_IN_USE-stale"`}, disable),
			http.StatusPreconditionFailed)
		if got := e.getPkg(info.ID); got.OperationalState != mec.PkgEnabled {
			t.Errorf("a refused PATCH changed the package: %s", got.OperationalState)
		}
		e.valid(e.do("PATCH", path, map[string]string{"Content-Type": "application/json", "If-Match": etag}, disable).wantStatus(t, http.StatusOK))
		// The change made the old ETag stale.
		e.wantProblem(e.do("PATCH", path, map[string]string{"Content-Type": "application/json", "If-Match": etag},
			[]byte(`{"operationalState":"ENABLED"}`)), http.StatusPreconditionFailed)
		e.wantProblem(e.do("DELETE", path, map[string]string{"If-Match": etag}, nil), http.StatusPreconditionFailed)
		e.do("GET", path, map[string]string{"If-None-Match": etag}, nil).wantStatus(t, http.StatusOK)

		// An instance changes the usage state, and so the ETag.
		cur := e.do("GET", path, nil, nil).Header.Get("ETag")
		e.putInstance(info)
		r = e.do("GET", path, map[string]string{"If-None-Match": cur}, nil).wantStatus(t, http.StatusOK)
		if got := e.validPkgInfo(r.body); got.UsageState != mec.PkgInUse {
			t.Errorf("usageState %s with an instance", got.UsageState)
		}
	})
}

func TestDeletePackage(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		info := e.onboard()
		path := "/onboarded_app_packages/" + info.ID
		e.putInstance(info)
		if got := e.getPkg(info.ID); got.UsageState != mec.PkgInUse {
			t.Errorf("usageState %s, want IN_USE", got.UsageState)
		}
		p := e.wantProblem(e.do("DELETE", path, nil, nil), http.StatusConflict)
		if !strings.Contains(p.Detail, "IN_USE") {
			t.Errorf("409 detail %q", p.Detail)
		}

		other := e.onboardAnother(t)
		r := e.do("DELETE", "/onboarded_app_packages/"+other.ID, nil, nil).wantStatus(t, http.StatusNoContent)
		e.valid(r)
		if len(r.body) != 0 {
			t.Errorf("204 with body %q", r.body)
		}
		e.wantProblem(e.do("GET", "/onboarded_app_packages/"+other.ID, nil, nil), http.StatusNotFound)
		e.wantProblem(e.do("DELETE", "/onboarded_app_packages/"+other.ID, nil, nil), http.StatusNotFound)
		if ev := e.events.last(t, mec.EventPkgDeleted); ev.Package.ID != other.ID {
			t.Errorf("deleted event for %s", ev.Package.ID)
		}

		// A package that never got content can be deleted too.
		created := e.createPkg(strings.Repeat("0", 64))
		e.do("DELETE", "/onboarded_app_packages/"+created.ID, nil, nil).wantStatus(t, http.StatusNoContent)
	})
}

// onboardAnother onboards a second package: the sample with another
// appDId, since one appDId is onboarded once.
func (e *env) onboardAnother(t *testing.T) AppPkgInfo {
	t.Helper()
	data := buildPkg(t, editAppD(t, "appDId: "+sampleAppDID, "appDId: "+mec.NewID()))
	info := e.createPkg(sha256Hex(data))
	e.upload(info.ID, data).wantStatus(t, http.StatusAccepted)
	return e.getPkg(info.ID)
}

func TestListPackages(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		r := e.valid(e.do("GET", "/onboarded_app_packages", nil, nil).wantStatus(t, http.StatusOK))
		if strings.TrimSpace(string(r.body)) != "[]" {
			t.Errorf("empty list is %s, want []", r.body)
		}
		enabled := e.onboard()
		disabled := e.onboardAnother(t)
		e.do("PATCH", "/onboarded_app_packages/"+disabled.ID, jsonCT, []byte(`{"operationalState":"DISABLED"}`)).wantStatus(t, http.StatusOK)
		created := e.createPkg(strings.Repeat("0", 64))

		list := func(query string, excluded ...string) []AppPkgInfo {
			t.Helper()
			r := e.do("GET", "/onboarded_app_packages"+query, nil, nil).wantStatus(t, http.StatusOK)
			var raw []json.RawMessage
			r.decode(t, &raw)
			out := make([]AppPkgInfo, 0, len(raw))
			for _, item := range raw {
				out = append(out, e.validPkgInfo(item, excluded...))
			}
			return out
		}
		ids := func(infos []AppPkgInfo) map[string]bool {
			m := map[string]bool{}
			for _, i := range infos {
				m[i.ID] = true
			}
			return m
		}

		// By default the spec's default exclusions apply.
		all := list("", "checksum", "softwareImages", "additionalArtifacts")
		if got := ids(all); len(got) != 3 || !got[enabled.ID] || !got[disabled.ID] || !got[created.ID] {
			t.Errorf("list: %v", got)
		}
		full := list("?all_fields")
		for _, p := range full {
			if p.Checksum.Hash == "" {
				t.Errorf("all_fields lost the checksum of %s", p.ID)
			}
		}

		got := list("?filter=(eq,operationalState,ENABLED)", "checksum", "softwareImages", "additionalArtifacts")
		if len(got) != 1 || got[0].ID != enabled.ID {
			t.Errorf("filter ENABLED: %v", ids(got))
		}
		got = list("?filter=(eq,onboardingState,ONBOARDED);(eq,appName," + sampleApp + ")&all_fields")
		if len(got) != 2 {
			t.Errorf("filter ONBOARDED and appName: %v", ids(got))
		}
		got = list("?filter=(neq,onboardingState,ONBOARDED)&fields=checksum", "softwareImages", "additionalArtifacts")
		if len(got) != 1 || got[0].ID != created.ID || got[0].Checksum.Hash == "" {
			t.Errorf("fields=checksum: %+v", got)
		}
		got = list("?filter=(eq,id,"+enabled.ID+")&exclude_fields=userDefinedData,softwareImages", "softwareImages")
		if len(got) != 1 || got[0].UserDefinedData != nil || got[0].Links.Self.Href == "" {
			t.Errorf("exclude_fields: %+v", got)
		}
		got = list("?exclude_default&filter=(eq,id,"+enabled.ID+")", "checksum", "softwareImages", "additionalArtifacts")
		if len(got) != 1 {
			t.Errorf("exclude_default: %+v", got)
		}

		for _, q := range []string{"?filter=(eq,operationalState", "?filter=(like,appName,x)", "?filter=(eq,noSuchAttribute,x)",
			"?fields=noSuchAttribute", "?all_fields&exclude_default"} {
			r := e.do("GET", "/onboarded_app_packages"+q, nil, nil)
			p := e.wantProblem(r, http.StatusBadRequest)
			if len(p.InvalidParams) == 0 {
				t.Errorf("%s: 400 names no parameter", q)
			}
		}
		p := e.wantProblem(e.do("GET", "/onboarded_app_packages?filter=(eq,operationalState", nil, nil), http.StatusBadRequest)
		wantParams(t, p, "filter")
	})
}

func TestRouting(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		for _, path := range []string{"/nothing", "/onboarded_app_packages/x/y/z", "/app_packages", "/"} {
			p := e.wantProblem(e.do("GET", path, nil, nil), http.StatusNotFound)
			if p.Instance == "" {
				t.Errorf("%s: problem without instance", path)
			}
		}
		cases := map[string]string{
			"PUT /onboarded_app_packages":                      "GET",
			"POST /onboarded_app_packages/x":                   "PATCH",
			"DELETE /onboarded_app_packages/x/package_content": "PUT",
			"POST /onboarded_app_packages/x/appd":              "GET",
			"PATCH /subscriptions":                             "POST",
			"PUT /subscriptions/x":                             "DELETE",
		}
		for req, allowed := range cases {
			method, path, _ := strings.Cut(req, " ")
			r := e.do(method, path, nil, nil)
			e.wantProblem(r, http.StatusMethodNotAllowed)
			if !strings.Contains(r.Header.Get("Allow"), allowed) {
				t.Errorf("%s: Allow %q lacks %s", req, r.Header.Get("Allow"), allowed)
			}
		}
	})
}
