// Command mkpkg builds a MEC application package (a CSAR zip, ETSI GS
// NFV-SOL 004 layout) from a directory:
//
//	go run ./examples/mkpkg examples/sample-app examples/edge-echo.zip
//
// It recomputes the SHA-256 of every file into the manifest (keeping the
// manifest's metadata block as written), updates the manifest in the
// directory if it was stale, writes the zip and <zip>.sha256, checks the
// result with appd.ReadPackage and prints the package's SHA-256.
//
// The zip is byte-reproducible: entries sorted by path, stored (not
// deflated, whose output may change between Go releases), a fixed
// modification time and mode 0644 whatever the checkout's file modes.
package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mecorch/mecorch/appd"
)

const toscaMeta = "TOSCA-Metadata/TOSCA.meta"

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mkpkg <source-dir> <out.zip>")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mkpkg:", err)
		os.Exit(1)
	}
}

func run(dir, out string, stdout, stderr io.Writer) error {
	b, err := build(dir)
	if err != nil {
		return err
	}
	if b.manifestChanged {
		mf := filepath.Join(dir, filepath.FromSlash(b.manifestPath))
		if err := os.WriteFile(mf, b.manifest, 0o644); err != nil {
			return fmt.Errorf("update manifest: %w", err)
		}
		fmt.Fprintf(stderr, "mkpkg: updated hashes in %s\n", mf)
	}
	if err := os.WriteFile(out, b.zip, 0o644); err != nil {
		return fmt.Errorf("write package: %w", err)
	}
	sum := sha256.Sum256(b.zip)
	line := fmt.Sprintf("%x  %s\n", sum, filepath.Base(out))
	if err := os.WriteFile(out+".sha256", []byte(line), 0o644); err != nil {
		return fmt.Errorf("write checksum: %w", err)
	}
	fmt.Fprintf(stdout, "%x  %s\n", sum, out)
	return nil
}

type built struct {
	zip             []byte
	manifestPath    string
	manifest        []byte
	manifestChanged bool
}

// build reads dir and returns the package; it writes nothing.
func build(dir string) (*built, error) {
	contents, err := readTree(dir)
	if err != nil {
		return nil, err
	}
	meta, ok := contents[toscaMeta]
	if !ok {
		return nil, fmt.Errorf("%s: no %s", dir, toscaMeta)
	}
	mfPath, err := manifestPath(meta)
	if err != nil {
		return nil, err
	}
	oldMF, ok := contents[mfPath]
	if !ok {
		return nil, fmt.Errorf("%s: no manifest %s (write its metadata block by hand; mkpkg adds the hashes)", dir, mfPath)
	}
	names := make([]string, 0, len(contents))
	for name := range contents {
		names = append(names, name)
	}
	sort.Strings(names)

	mf := bytes.NewBufferString(manifestHead(oldMF))
	for _, name := range names {
		if name == toscaMeta || name == mfPath {
			continue
		}
		sum := sha256.Sum256(contents[name])
		fmt.Fprintf(mf, "\nSource: %s\nAlgorithm: SHA-256\nHash: %s\n", name, hex.EncodeToString(sum[:]))
	}
	b := &built{manifestPath: mfPath, manifest: mf.Bytes(), manifestChanged: !bytes.Equal(mf.Bytes(), oldMF)}
	contents[mfPath] = b.manifest

	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	modified := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, name := range names {
		h := &zip.FileHeader{Name: name, Method: zip.Store, Modified: modified}
		h.SetMode(0o644)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return nil, fmt.Errorf("zip %s: %w", name, err)
		}
		if _, err := w.Write(contents[name]); err != nil {
			return nil, fmt.Errorf("zip %s: %w", name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("zip: %w", err)
	}
	b.zip = zbuf.Bytes()
	if _, err := appd.ReadPackage(b.zip, appd.DefaultLimits()); err != nil {
		return nil, fmt.Errorf("the built package does not read back: %w", err)
	}
	return b, nil
}

// readTree returns every regular file under dir by slash path. Links are
// refused: a package must not depend on what they point to.
func readTree(dir string) (map[string][]byte, error) {
	contents := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		contents[filepath.ToSlash(rel)] = data
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return contents, nil
}

// manifestPath applies the SOL004 rule appd applies: ETSI-Entry-Manifest,
// or the base name of Entry-Definitions with .mf, at the root.
func manifestPath(meta []byte) (string, error) {
	keys := map[string]string{}
	for _, line := range strings.Split(string(meta), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			keys[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if mf := keys["ETSI-Entry-Manifest"]; mf != "" {
		return mf, nil
	}
	entry := keys["Entry-Definitions"]
	if entry == "" {
		return "", errors.New(toscaMeta + ": no Entry-Definitions")
	}
	base := path.Base(entry)
	return strings.TrimSuffix(base, path.Ext(base)) + ".mf", nil
}

// manifestHead is the manifest up to its first Source line: the metadata
// block and anything else written by hand.
func manifestHead(mf []byte) string {
	var head []string
	for _, line := range strings.Split(strings.ReplaceAll(string(mf), "\r\n", "\n"), "\n") {
		if strings.HasPrefix(line, "Source:") {
			break
		}
		head = append(head, line)
	}
	return strings.TrimRight(strings.Join(head, "\n"), "\n") + "\n"
}
