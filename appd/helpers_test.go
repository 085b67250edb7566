package appd

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	sampleAppDPath = "../examples/sample-app/Definitions/edge-echo.yaml"
	sampleZipPath  = "../examples/edge-echo.zip"
	sampleDir      = "../examples/sample-app/"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sampleYAML(t testing.TB) []byte { return readFile(t, sampleAppDPath) }

func sampleAppD(t testing.TB) *AppD {
	t.Helper()
	a, err := Parse(sampleYAML(t))
	if err != nil {
		t.Fatalf("sample AppD: %v", err)
	}
	return a
}

// sampleMap is the sample AppD as generic data, for building variants.
func sampleMap(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(sampleYAML(t), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func toJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fieldErrors returns the FieldErrors of a *ValidationError, failing the
// test for any other error.
func fieldErrors(t testing.TB, err error) []FieldError {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %T: %v", err, err)
	}
	return ve.Errors
}

// wantOnly asserts that errs is exactly one error at path whose reason
// contains reason.
func wantOnly(t testing.TB, errs []FieldError, path, reason string) {
	t.Helper()
	if len(errs) != 1 || errs[0].Path != path || !strings.Contains(errs[0].Reason, reason) {
		t.Fatalf("want only %s: …%s…, got %v", path, reason, errs)
	}
}

// wantHas asserts that errs holds an error at path whose reason contains
// reason.
func wantHas(t testing.TB, errs []FieldError, path, reason string) {
	t.Helper()
	for _, e := range errs {
		if e.Path == path && strings.Contains(e.Reason, reason) {
			return
		}
	}
	t.Fatalf("want %s: …%s…, got %v", path, reason, errs)
}

// zipEntry is one entry of a hand-built zip; header fields override the
// defaults so that tests can build hostile archives.
type zipEntry struct {
	name string
	body []byte
	mode fs.FileMode // 0 means a regular 0644 file
	raw  *zip.FileHeader
}

func buildZip(t testing.TB, entries []zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		if e.raw != nil {
			w, err := zw.CreateRaw(e.raw)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(e.body)
			continue
		}
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// samplePackageFiles are the sample package's source files (without the
// manifest's hashes, which pkgFiles.zip computes).
type pkgFiles map[string][]byte

func sampleFiles(t testing.TB) pkgFiles {
	t.Helper()
	f := pkgFiles{}
	for _, name := range []string{"TOSCA-Metadata/TOSCA.meta", "Definitions/edge-echo.yaml", "Artifacts/edge-echo.sh"} {
		f[name] = readFile(t, sampleDir+name)
	}
	f["edge-echo.mf"] = []byte(sampleManifestHead)
	return f
}

const sampleManifestHead = `metadata:
  app_provider_id: mecorch-examples
  app_product_name: edge-echo
  app_release_date_time: 2025-01-15T00:00:00Z
  app_package_version: 1.0.0
`

// manifestFor appends a correct SHA-256 entry for every file but TOSCA.meta
// and the manifest to head.
func (f pkgFiles) manifestFor(head, mfName string) []byte {
	var names []string
	for name := range f {
		if name != "TOSCA-Metadata/TOSCA.meta" && name != mfName {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(head)
	for _, name := range names {
		fmt.Fprintf(&b, "\nSource: %s\nAlgorithm: SHA-256\nHash: %x\n", name, sha256.Sum256(f[name]))
	}
	return []byte(b.String())
}

// zip builds the package with a correct manifest named edge-echo.mf.
func (f pkgFiles) zip(t testing.TB) []byte {
	t.Helper()
	f["edge-echo.mf"] = f.manifestFor(sampleManifestHead, "edge-echo.mf")
	return f.rawZip(t)
}

// rawZip builds the package as is.
func (f pkgFiles) rawZip(t testing.TB) []byte {
	t.Helper()
	var names []string
	for name := range f {
		names = append(names, name)
	}
	sort.Strings(names)
	var entries []zipEntry
	for _, name := range names {
		entries = append(entries, zipEntry{name: name, body: f[name]})
	}
	return buildZip(t, entries)
}

func ptr[T any](v T) *T { return &v }
