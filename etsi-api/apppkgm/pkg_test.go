package apppkgm

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// The sample package of the repository, and its AppD's identity.
const (
	samplePath   = "../../examples/edge-echo.zip"
	sampleAppDir = "../../examples/sample-app"
	sampleAppDID = "5f1c1d2e-8a4b-4c57-9d0e-3b7a6e2f0c11"
	sampleApp    = "edge-echo"
)

// samplePkg returns examples/edge-echo.zip and its SHA-256, checked against
// the .sha256 file beside it.
func samplePkg(t *testing.T) ([]byte, string) {
	t.Helper()
	data, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatalf("sample package: %v", err)
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	if line, err := os.ReadFile(samplePath + ".sha256"); err == nil && !strings.HasPrefix(string(line), hash) {
		t.Fatalf("%s has SHA-256 %s; the .sha256 file says %s", samplePath, hash, line)
	}
	return data, hash
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// buildPkg zips examples/sample-app after edit has changed its files
// (path → content), with the manifest's hashes recomputed so that only
// the edit is wrong.
func buildPkg(t *testing.T, edit func(files map[string][]byte)) []byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(sampleAppDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(sampleAppDir, p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatalf("read sample app: %v", err)
	}
	edit(files)
	for name, content := range files {
		if path.Ext(name) == ".mf" {
			files[name] = rehash(content, files)
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Store, Modified: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatalf("zip %s: %v", n, err)
		}
		if _, err := w.Write(files[n]); err != nil {
			t.Fatalf("zip %s: %v", n, err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatalf("zip: %v", err)
	}
	return buf.Bytes()
}

// rehash rewrites each "Hash:" of a SOL 004 manifest with the SHA-256 of
// the file named by the "Source:" before it.
func rehash(mf []byte, files map[string][]byte) []byte {
	lines := strings.Split(string(mf), "\n")
	src := ""
	for i, l := range lines {
		if v, ok := strings.CutPrefix(l, "Source:"); ok {
			src = strings.TrimSpace(v)
		}
		if _, ok := strings.CutPrefix(l, "Hash:"); ok && files[src] != nil {
			lines[i] = "Hash: " + sha256Hex(files[src])
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// editAppD replaces old by new in the sample's AppD.
func editAppD(t *testing.T, pairs ...string) func(map[string][]byte) {
	return func(files map[string][]byte) {
		const name = "Definitions/edge-echo.yaml"
		s := string(files[name])
		for i := 0; i+1 < len(pairs); i += 2 {
			if !strings.Contains(s, pairs[i]) {
				t.Fatalf("AppD has no %q to replace", pairs[i])
			}
			s = strings.Replace(s, pairs[i], pairs[i+1], 1)
		}
		files[name] = []byte(s)
	}
}

func createBody(hash string) map[string]any {
	return map[string]any{
		"appPkgName": sampleApp, "appPkgVersion": "1.0.0", "appProvider": "mecorch-examples",
		"appPkgPath":      "https://packages.example.com/edge-echo.zip",
		"checksum":        map[string]string{"algorithm": "SHA-256", "hash": hash},
		"userDefinedData": map[string]any{"team": "edge"},
	}
}

// createPkg creates a package resource expecting content with hash.
func (e *env) createPkg(hash string) AppPkgInfo {
	e.t.Helper()
	r := e.doJSON("POST", "/onboarded_app_packages", createBody(hash)).wantStatus(e.t, 201)
	e.validPkgResponse(r)
	info := e.validPkgInfo(r.body)
	if loc := r.Header.Get("Location"); loc != info.Links.Self.Href {
		e.t.Errorf("Location %q, want the self link %q", loc, info.Links.Self.Href)
	}
	return info
}

// upload PUTs content as a raw zip.
func (e *env) upload(id string, content []byte) reply {
	e.t.Helper()
	return e.do("PUT", "/onboarded_app_packages/"+id+"/package_content", map[string]string{"Content-Type": "application/zip"}, content)
}

// onboard creates and uploads the sample package.
func (e *env) onboard() AppPkgInfo {
	e.t.Helper()
	data, hash := samplePkg(e.t)
	info := e.createPkg(hash)
	r := e.upload(info.ID, data).wantStatus(e.t, 202)
	if len(r.body) != 0 {
		e.t.Errorf("202 with a body: %s", r.body)
	}
	return e.getPkg(info.ID)
}

// getPkg GETs one package, checked against the file.
func (e *env) getPkg(ref string) AppPkgInfo {
	e.t.Helper()
	r := e.do("GET", "/onboarded_app_packages/"+ref, nil, nil).wantStatus(e.t, 200)
	e.validPkgResponse(r)
	return e.validPkgInfo(r.body)
}

// fromAppD are the AppPkgInfo attributes copied from the AppD: required by
// the schema, unknown before onboarding.
func fromAppD() []string {
	return []string{"appDId", "appName", "appSoftwareVersion", "appDVersion", "softwareImages", "mecInfo"}
}

// validPkgInfo checks an AppPkgInfo against the schema and decodes it.
// Two departures from the schema are allowed for, and asserted rather than
// ignored: the attributes in excluded were removed by the default
// attribute selector, and before onboarding the attributes that come from
// the AppD are absent (the schema requires them; mecorch does not invent
// them). Both are put back with stand-in values for the schema check alone.
func (e *env) validPkgInfo(body []byte, excluded ...string) AppPkgInfo {
	e.t.Helper()
	e.spec.ValidateSchema(e.t, "AppPkgInfo", e.standIns(body, excluded...))
	var info AppPkgInfo
	if err := json.Unmarshal(body, &info); err != nil {
		e.t.Fatalf("AppPkgInfo: %v", err)
	}
	return info
}

// standIns returns body with stand-ins for the attributes that may be
// absent (see validPkgInfo), failing the test if they are present.
func (e *env) standIns(body []byte, excluded ...string) []byte {
	e.t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		e.t.Fatalf("AppPkgInfo: %v: %s", err, body)
	}
	standIn := map[string]any{
		"appDId": "-", "appName": "-", "appSoftwareVersion": "-", "appDVersion": "-",
		"softwareImages": []any{map[string]any{}}, "mecInfo": []any{"-"},
		"checksum": map[string]any{"algorithm": "-", "hash": "-"},
	}
	absent := append([]string(nil), excluded...)
	if m["onboardingState"] != mec.PkgOnboarded {
		absent = append(absent, fromAppD()...)
	}
	for _, k := range absent {
		if v, ok := m[k]; ok {
			e.t.Errorf("%s is %v in %s; want it absent", k, v, m["onboardingState"])
		}
	}
	for _, k := range absent {
		if standIn[k] != nil {
			m[k] = standIn[k]
		}
	}
	patched, err := json.Marshal(m)
	if err != nil {
		e.t.Fatal(err)
	}
	return patched
}

// validPkgResponse checks a response carrying one AppPkgInfo against its
// operation, with validPkgInfo's stand-ins.
func (e *env) validPkgResponse(r reply) {
	e.t.Helper()
	if err := e.spec.CheckResponse(r.Request, r.StatusCode, r.Header, e.standIns(r.body)); err != nil {
		e.t.Errorf("spectest: %v\nbody: %s", err, r.body)
	}
}

// putInstance stores an app instance of pkg, making the package IN_USE.
func (e *env) putInstance(pkg AppPkgInfo) {
	e.t.Helper()
	in := mec.AppInstance{ID: mec.NewID(), AppPkgID: pkg.ID, AppDID: pkg.AppDID, AppName: pkg.AppName,
		AppProvider: pkg.AppProvider, InstantiationState: mec.NotInstantiated, CreatedAt: e.clock.Now()}
	err := e.store.Update(e.t.Context(), func(tx mec.Tx) error {
		_, err := mec.Save(tx, mec.KindAppInstance, in.ID, in, mec.MustNotExist)
		return err
	})
	if err != nil {
		e.t.Fatalf("store instance: %v", err)
	}
}
