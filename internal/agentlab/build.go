package agentlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binaries are the programs a lab runs and the app package it deploys.
type Binaries struct {
	Mecorch, Agent string
	// Package is a CSAR zip of the sample app whose software image is the
	// echoapp binary.
	Package string
}

// Build compiles mecorch, mec-agent and the echo app from the module at
// root into dir, and packages the echo app as the sample app's image.
func Build(root, dir string) (Binaries, error) {
	b := Binaries{Mecorch: filepath.Join(dir, "mecorch"), Agent: filepath.Join(dir, "mec-agent"), Package: filepath.Join(dir, "edge-echo.zip")}
	build := func(out, pkg string) error {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
		return nil
	}
	src := filepath.Join(dir, "pkgsrc")
	if err := os.CopyFS(src, os.DirFS(filepath.Join(root, "examples", "sample-app"))); err != nil {
		return b, err
	}
	for _, p := range [][2]string{{b.Mecorch, "./cmd/mecorch"}, {b.Agent, "./cmd/mec-agent"}, {filepath.Join(src, "Artifacts", "edge-echo"), "./examples/echoapp"}} {
		if err := build(p[0], p[1]); err != nil {
			return b, err
		}
	}
	// The sample app's image is a shell script needing socat; the lab's is
	// the self-contained echoapp binary.
	_ = os.Remove(filepath.Join(src, "Artifacts", "edge-echo.sh"))
	appd := filepath.Join(src, "Definitions", "edge-echo.yaml")
	data, err := os.ReadFile(appd)
	if err != nil {
		return b, err
	}
	if err := os.WriteFile(appd, []byte(strings.ReplaceAll(string(data), "Artifacts/edge-echo.sh", "Artifacts/edge-echo")), 0o644); err != nil {
		return b, err
	}
	mf := filepath.Join(src, "edge-echo.mf")
	data, err = os.ReadFile(mf)
	if err != nil {
		return b, err
	}
	if err := os.WriteFile(mf, []byte(strings.ReplaceAll(string(data), "Artifacts/edge-echo.sh", "Artifacts/edge-echo")), 0o644); err != nil {
		return b, err
	}
	cmd := exec.Command("go", "run", "./examples/mkpkg", src, b.Package)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return b, fmt.Errorf("mkpkg: %v\n%s", err, out)
	}
	return b, nil
}
