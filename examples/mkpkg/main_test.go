package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The committed package is exactly what mkpkg builds from the committed
// sources, so anyone can check it.
func TestCommittedPackageIsReproducible(t *testing.T) {
	b, err := build("../sample-app")
	if err != nil {
		t.Fatal(err)
	}
	if b.manifestChanged {
		t.Errorf("examples/sample-app/%s has stale hashes; run go run ./examples/mkpkg examples/sample-app examples/edge-echo.zip", b.manifestPath)
	}
	committed, err := os.ReadFile("../edge-echo.zip")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.zip, committed) {
		t.Error("examples/edge-echo.zip differs from a fresh build; rebuild it with mkpkg")
	}
	sum, err := os.ReadFile("../edge-echo.zip.sha256")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x  edge-echo.zip\n", sha256.Sum256(committed)); string(sum) != want {
		t.Errorf("edge-echo.zip.sha256 = %q, want %q", sum, want)
	}
}

func TestRunUpdatesStaleManifest(t *testing.T) {
	src := t.TempDir()
	for _, name := range []string{"TOSCA-Metadata/TOSCA.meta", "Definitions/edge-echo.yaml", "Artifacts/edge-echo.sh", "edge-echo.mf"} {
		data, err := os.ReadFile(filepath.Join("../sample-app", name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "Artifacts/edge-echo.sh" {
			data = append(data, "# changed\n"...)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "app.zip")
	var stdout, stderr bytes.Buffer
	if err := run(src, out, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "updated hashes") {
		t.Errorf("stderr = %q", stderr.String())
	}
	zipData, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256(zipData)); !strings.HasPrefix(stdout.String(), want) {
		t.Errorf("stdout = %q, want the SHA-256 %s", stdout.String(), want)
	}
	// A second run finds nothing to update and builds the same bytes.
	stderr.Reset()
	if err := run(src, out+"2", &stdout, &stderr); err != nil || stderr.Len() != 0 {
		t.Fatalf("second run: %v, %q", err, stderr.String())
	}
	again, _ := os.ReadFile(out + "2")
	if !bytes.Equal(again, zipData) {
		t.Error("second build differs")
	}
}

func TestBuildRefusesLinks(t *testing.T) {
	src := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := build(src); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("err = %v", err)
	}
}
