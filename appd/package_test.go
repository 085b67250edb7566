package appd

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"io/fs"
	"strings"
	"testing"
)

func TestReadPackageSample(t *testing.T) {
	data := readFile(t, sampleZipPath)
	p, err := ReadPackage(data, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if p.AppD.AppName != "edge-echo" || p.AppDPath != "Definitions/edge-echo.yaml" || p.ManifestPath != "edge-echo.mf" {
		t.Errorf("package = %+v", p)
	}
	if p.Meta["CSAR-Version"] != "1.1" || p.Manifest["app_provider_id"] != "mecorch-examples" {
		t.Errorf("meta = %v, manifest = %v", p.Meta, p.Manifest)
	}
	var names []string
	for _, f := range p.Files {
		names = append(names, f.Path)
	}
	if got := strings.Join(names, " "); got != "Artifacts/edge-echo.sh Definitions/edge-echo.yaml TOSCA-Metadata/TOSCA.meta edge-echo.mf" {
		t.Errorf("files = %s", got)
	}
	script := readFile(t, sampleDir+"Artifacts/edge-echo.sh")
	img := p.SoftwareImages
	if len(img) != 1 || img[0].Path != "Artifacts/edge-echo.sh" || img[0].Size != int64(len(script)) ||
		img[0].SHA256 != fmt.Sprintf("%x", sha256.Sum256(script)) || img[0].ID != "edge-echo-image" {
		t.Errorf("images = %+v", img)
	}
	got, err := p.Open("Artifacts/edge-echo.sh")
	if err != nil || !bytes.Equal(got, script) {
		t.Errorf("Open = %q, %v", got, err)
	}
	if _, err := p.Open("nope"); err == nil {
		t.Error("Open of a missing file succeeded")
	}
	// The caller's buffer changing under the package is noticed.
	i := bytes.Index(data, []byte("busybox nc"))
	data[i] = 'B'
	if _, err := p.Open("Artifacts/edge-echo.sh"); err == nil {
		t.Error("Open did not notice changed content")
	}
}

func TestReadPackageContentErrors(t *testing.T) {
	tests := []struct {
		name       string
		build      func(t *testing.T) []byte
		path, want string
	}{
		{"wrong hash", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["edge-echo.mf"] = f.manifestFor(sampleManifestHead, "edge-echo.mf")
			f["Artifacts/edge-echo.sh"] = append(f["Artifacts/edge-echo.sh"], '#')
			return f.rawZip(t)
		}, "package/Artifacts/edge-echo.sh", "SHA-256 mismatch"},
		{"unlisted file", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["edge-echo.mf"] = f.manifestFor(sampleManifestHead, "edge-echo.mf")
			f["Artifacts/notes.txt"] = []byte("hi")
			return f.rawZip(t)
		}, "package/Artifacts/notes.txt", "not listed in edge-echo.mf"},
		{"missing listed file", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["Artifacts/data.bin"] = []byte("x")
			f["edge-echo.mf"] = f.manifestFor(sampleManifestHead, "edge-echo.mf")
			delete(f, "Artifacts/data.bin")
			return f.rawZip(t)
		}, "package/Artifacts/data.bin", "listed in edge-echo.mf but missing"},
		{"missing TOSCA.meta", func(t *testing.T) []byte {
			f := sampleFiles(t)
			delete(f, "TOSCA-Metadata/TOSCA.meta")
			return f.zip(t)
		}, "package/TOSCA-Metadata/TOSCA.meta", "is missing"},
		{"TOSCA.meta without CSAR-Version", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["TOSCA-Metadata/TOSCA.meta"] = bytes.Replace(f["TOSCA-Metadata/TOSCA.meta"], []byte("CSAR-Version: 1.1\n"), nil, 1)
			return f.zip(t)
		}, "package/TOSCA-Metadata/TOSCA.meta", "CSAR-Version is required"},
		{"TOSCA.meta syntax", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["TOSCA-Metadata/TOSCA.meta"] = append(f["TOSCA-Metadata/TOSCA.meta"], "garbage line\n"...)
			return f.zip(t)
		}, "package/TOSCA-Metadata/TOSCA.meta", "line 6: expected"},
		{"Entry-Definitions pointing nowhere", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["TOSCA-Metadata/TOSCA.meta"] = bytes.Replace(f["TOSCA-Metadata/TOSCA.meta"], []byte("Definitions/edge-echo.yaml"), []byte("Definitions/other.yaml"), 1)
			return f.zip(t)
		}, "package/TOSCA-Metadata/TOSCA.meta", "names Definitions/other.yaml, which is not in the package"},
		{"Entry-Definitions escaping", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["TOSCA-Metadata/TOSCA.meta"] = bytes.Replace(f["TOSCA-Metadata/TOSCA.meta"], []byte("Definitions/edge-echo.yaml"), []byte("../edge-echo.yaml"), 1)
			return f.zip(t)
		}, "package/TOSCA-Metadata/TOSCA.meta", "escapes the package root"},
		{"Entry-Definitions not an AppD file", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["TOSCA-Metadata/TOSCA.meta"] = bytes.Replace(f["TOSCA-Metadata/TOSCA.meta"], []byte("Definitions/edge-echo.yaml"), []byte("Artifacts/edge-echo.sh"), 1)
			return f.zip(t)
		}, "package/TOSCA-Metadata/TOSCA.meta", "must name a .json, .yaml or .yml AppD"},
		{"manifest by convention missing", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["TOSCA-Metadata/TOSCA.meta"] = bytes.Replace(f["TOSCA-Metadata/TOSCA.meta"], []byte("ETSI-Entry-Manifest: edge-echo.mf\n"), nil, 1)
			// The manifest is there, but not under the conventional name.
			f["app.mf"] = f.manifestFor(sampleManifestHead, "app.mf")
			delete(f, "edge-echo.mf")
			return f.rawZip(t)
		}, "package/edge-echo.mf", "is missing"},
		{"ETSI-Entry-Change-Log missing", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["TOSCA-Metadata/TOSCA.meta"] = append(f["TOSCA-Metadata/TOSCA.meta"], "ETSI-Entry-Change-Log: Files/ChangeLog.txt\n"...)
			return f.zip(t)
		}, "package/TOSCA-Metadata/TOSCA.meta", "ETSI-Entry-Change-Log names Files/ChangeLog.txt"},
		{"manifest Hash without Source", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["edge-echo.mf"] = append([]byte("Hash: 00\n"), f.manifestFor(sampleManifestHead, "edge-echo.mf")...)
			return f.rawZip(t)
		}, "package/edge-echo.mf", "line 1: Hash without a preceding Source"},
		{"manifest entry without hash", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["edge-echo.mf"] = append(f.manifestFor(sampleManifestHead, "edge-echo.mf"), "\nSource: x\nAlgorithm: SHA-256\n"...)
			return f.rawZip(t)
		}, "package/edge-echo.mf", "needs both Algorithm and Hash"},
		{"manifest unsupported algorithm", func(t *testing.T) []byte {
			f := sampleFiles(t)
			mf := f.manifestFor(sampleManifestHead, "edge-echo.mf")
			f["edge-echo.mf"] = bytes.Replace(mf, []byte("Algorithm: SHA-256"), []byte("Algorithm: MD5"), 1)
			return f.rawZip(t)
		}, "package/Artifacts/edge-echo.sh", "unsupported checksum algorithm"},
		{"manifest external source", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["edge-echo.mf"] = append(f.manifestFor(sampleManifestHead, "edge-echo.mf"), "\nSource: /etc/passwd\nAlgorithm: SHA-256\nHash: 00\n"...)
			return f.rawZip(t)
		}, "package/edge-echo.mf", "external artifacts are not supported"},
		{"manifest metadata missing", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["edge-echo.mf"] = f.manifestFor(strings.Replace(sampleManifestHead, "  app_package_version: 1.0.0\n", "", 1), "edge-echo.mf")
			return f.rawZip(t)
		}, "package/edge-echo.mf", "metadata app_package_version is required"},
		{"manifest release date", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["edge-echo.mf"] = f.manifestFor(strings.Replace(sampleManifestHead, "2025-01-15T00:00:00Z", "15/01/2025", 1), "edge-echo.mf")
			return f.rawZip(t)
		}, "package/edge-echo.mf", "not an RFC 3339 date-time"},
		{"manifest provider differs from AppD", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["edge-echo.mf"] = f.manifestFor(strings.Replace(sampleManifestHead, "app_provider_id: mecorch-examples", "app_provider_id: someone-else", 1), "edge-echo.mf")
			return f.rawZip(t)
		}, "package/edge-echo.mf", "differs from appD.appProvider"},
		{"invalid AppD", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["Definitions/edge-echo.yaml"] = bytes.Replace(f["Definitions/edge-echo.yaml"], []byte("appDId:"), []byte("appDIdentifier:"), 1)
			return f.zip(t)
		}, "appD.appDId", "is required"},
		{"invalid AppD, nested field", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["Definitions/edge-echo.yaml"] = bytes.Replace(f["Definitions/edge-echo.yaml"], []byte("priority: 10"), []byte("priority: 300"), 1)
			return f.zip(t)
		}, "appD.appTrafficRule[0].priority", "outside 0..255"},
		{"AppD syntax error", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["Definitions/edge-echo.yaml"] = []byte("appDId: [")
			return f.zip(t)
		}, "appD", "invalid YAML"},
		{"TOSCA service template", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["Definitions/edge-echo.yaml"] = []byte("tosca_definitions_version: tosca_simple_profile_yaml_1_2\n")
			return f.zip(t)
		}, "appD", "is a TOSCA service template"},
		{"software image not in package", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["Definitions/edge-echo.yaml"] = bytes.Replace(f["Definitions/edge-echo.yaml"], []byte("swImage: Artifacts/edge-echo.sh"), []byte("swImage: Artifacts/missing.img"), 1)
			return f.zip(t)
		}, "appD.swImageDescriptor[0].swImage", "names Artifacts/missing.img, which is not in the package"},
		{"software image checksum", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["Definitions/edge-echo.yaml"] = bytes.Replace(f["Definitions/edge-echo.yaml"], []byte("    operatingSystem: Linux\n"),
				[]byte("    operatingSystem: Linux\n    checksum: {algorithm: sha-512, hash: "+strings.Repeat("0", 128)+"}\n"), 1)
			return f.zip(t)
		}, "appD.swImageDescriptor[0].checksum", "SHA-512 of Artifacts/edge-echo.sh is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ReadPackage(tt.build(t), DefaultLimits())
			if p != nil {
				t.Fatal("got a package")
			}
			wantOnly(t, fieldErrors(t, err), tt.path, tt.want)
		})
	}
}

func TestReadPackageAccepts(t *testing.T) {
	tests := []struct {
		name  string
		build func(t *testing.T) []byte
	}{
		{"SHA-512 entries, CMS signature and other blocks", func(t *testing.T) []byte {
			f := sampleFiles(t)
			script := f["Artifacts/edge-echo.sh"]
			h := hashHex(t, "SHA-512", script)
			mf := strings.Replace(string(f.manifestFor(sampleManifestHead, "edge-echo.mf")),
				fmt.Sprintf("Algorithm: SHA-256\nHash: %x", sha256.Sum256(script)), "Algorithm: SHA-512\nHash: "+strings.ToUpper(h), 1)
			mf = strings.Replace(mf, "metadata:", "# written by hand\nnon_mano_artifact_sets:\n  onap_ves_events:\n    Source: Artifacts/x.yaml\nmetadata:", 1)
			f["edge-echo.mf"] = []byte(mf + "\n-----BEGIN CMS-----\nMIIB…\n-----END CMS-----\n")
			return f.rawZip(t)
		}},
		{"manifest found by Entry-Definitions base name", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["TOSCA-Metadata/TOSCA.meta"] = bytes.Replace(f["TOSCA-Metadata/TOSCA.meta"], []byte("ETSI-Entry-Manifest: edge-echo.mf\n"), nil, 1)
			return f.zip(t)
		}},
		{"container image reference and directory entries", func(t *testing.T) []byte {
			f := sampleFiles(t)
			f["Definitions/edge-echo.yaml"] = bytes.Replace(f["Definitions/edge-echo.yaml"], []byte("swImage: Artifacts/edge-echo.sh"), []byte("swImage: registry.example/edge/echo:1.0"), 1)
			f["edge-echo.mf"] = f.manifestFor(sampleManifestHead, "edge-echo.mf")
			entries := []zipEntry{{name: "Artifacts/", mode: fs.ModeDir | 0o755}}
			for _, name := range []string{"TOSCA-Metadata/TOSCA.meta", "Definitions/edge-echo.yaml", "Artifacts/edge-echo.sh", "edge-echo.mf"} {
				entries = append(entries, zipEntry{name: name, body: f[name]})
			}
			return buildZip(t, entries)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ReadPackage(tt.build(t), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if p.AppD == nil || p.AppD.Validate() != nil {
				t.Fatal("package without a valid AppD")
			}
		})
	}
}

// sampleEntries returns the sample package's entries plus extra ones.
func sampleEntries(t testing.TB, extra ...zipEntry) []byte {
	t.Helper()
	f := sampleFiles(t)
	f["edge-echo.mf"] = f.manifestFor(sampleManifestHead, "edge-echo.mf")
	var entries []zipEntry
	for _, name := range []string{"TOSCA-Metadata/TOSCA.meta", "Definitions/edge-echo.yaml", "Artifacts/edge-echo.sh", "edge-echo.mf"} {
		entries = append(entries, zipEntry{name: name, body: f[name]})
	}
	return buildZip(t, append(entries, extra...))
}

func TestReadPackageRefusesHostileZips(t *testing.T) {
	tests := []struct {
		name  string
		build func(t *testing.T) []byte
		lim   Limits
		want  string
	}{
		{"not a zip", func(t *testing.T) []byte { return []byte("PK\x03\x04 nope") }, Limits{}, "not a zip archive"},
		{"zip bomb", func(t *testing.T) []byte {
			return sampleEntries(t, zipEntry{name: "Artifacts/zeros.bin", body: make([]byte, 64<<20)})
		}, Limits{MaxInflated: 16 << 20}, "more than 16777216 bytes"},
		{"zip bomb with lying header", func(t *testing.T) []byte { return sampleEntries(t, lyingEntry(t, 64<<20, 1000)) }, Limits{MaxInflated: 16 << 20}, "cannot inflate"},
		{"file over the per-file limit", func(t *testing.T) []byte {
			return sampleEntries(t, zipEntry{name: "Artifacts/big.bin", body: make([]byte, 2<<20)})
		}, Limits{MaxFileSize: 1 << 20}, "per-file limit"},
		{"too many entries", func(t *testing.T) []byte {
			var extra []zipEntry
			for i := 0; i < 1000; i++ {
				extra = append(extra, zipEntry{name: fmt.Sprintf("Artifacts/f%04d", i)})
			}
			return sampleEntries(t, extra...)
		}, Limits{}, "1004 entries, more than the limit of 1000"},
		{"dot-dot path", func(t *testing.T) []byte { return sampleEntries(t, zipEntry{name: "Artifacts/../../etc/cron.d/x"}) }, Limits{}, "escapes the package root"},
		{"absolute path", func(t *testing.T) []byte { return sampleEntries(t, zipEntry{name: "/etc/passwd"}) }, Limits{}, "absolute path"},
		{"drive letter", func(t *testing.T) []byte { return sampleEntries(t, zipEntry{name: "C:/x"}) }, Limits{}, "drive letter"},
		{"backslash", func(t *testing.T) []byte { return sampleEntries(t, zipEntry{name: `Artifacts\..\..\x`}) }, Limits{}, "backslash"},
		{"unclean path", func(t *testing.T) []byte { return sampleEntries(t, zipEntry{name: "Artifacts//x"}) }, Limits{}, "not clean"},
		{"symlink", func(t *testing.T) []byte {
			return sampleEntries(t, zipEntry{name: "Artifacts/link", body: []byte("/etc/shadow"), mode: fs.ModeSymlink | 0o777})
		}, Limits{}, "symbolic link"},
		{"named pipe", func(t *testing.T) []byte {
			return sampleEntries(t, zipEntry{name: "Artifacts/fifo", mode: fs.ModeNamedPipe | 0o644})
		}, Limits{}, "not a regular file"},
		{"duplicate entry", func(t *testing.T) []byte {
			return sampleEntries(t, zipEntry{name: "Artifacts/edge-echo.sh", body: []byte("#!/bin/sh\nrm -rf /\n")})
		}, Limits{}, "appears more than once"},
		{"names differing in case", func(t *testing.T) []byte { return sampleEntries(t, zipEntry{name: "artifacts/EDGE-ECHO.sh"}) }, Limits{}, "differ only in case"},
		{"file used as a directory", func(t *testing.T) []byte { return sampleEntries(t, zipEntry{name: "edge-echo.mf/x"}) }, Limits{}, "both a file and a directory"},
		{"encrypted entry", func(t *testing.T) []byte {
			return sampleEntries(t, zipEntry{raw: &zip.FileHeader{Name: "Artifacts/secret", Method: zip.Store, Flags: 0x1}})
		}, Limits{}, "encrypted"},
		{"unknown compression", func(t *testing.T) []byte {
			return sampleEntries(t, zipEntry{raw: &zip.FileHeader{Name: "Artifacts/bz", Method: 12}})
		}, Limits{}, "compression method 12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ReadPackage(tt.build(t), tt.lim)
			if p != nil {
				t.Fatal("got a package")
			}
			errs := fieldErrors(t, err)
			if len(errs) != 1 || !strings.HasPrefix(errs[0].Path, "package") || !strings.Contains(errs[0].Reason, tt.want) {
				t.Fatalf("want one package error …%s…, got %v", tt.want, errs)
			}
		})
	}
}

// lyingEntry is a deflated entry of n zero bytes whose headers claim only
// claimed bytes.
func lyingEntry(t *testing.T, n, claimed int) zipEntry {
	t.Helper()
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	fw.Write(make([]byte, n))
	fw.Close()
	h := &zip.FileHeader{Name: "Artifacts/bomb.bin", Method: zip.Deflate,
		CompressedSize64: uint64(buf.Len()), UncompressedSize64: uint64(claimed), CRC32: crc32.ChecksumIEEE(make([]byte, claimed))}
	return zipEntry{raw: h, body: buf.Bytes()}
}

// The reader counts inflated bytes itself instead of trusting headers.
func TestStreamCountsInflatedBytes(t *testing.T) {
	zr, err := zip.NewReader(bytes.NewReader(sampleEntries(t)), int64(len(sampleEntries(t))))
	if err != nil {
		t.Fatal(err)
	}
	r := &pkgReader{lim: Limits{MaxInflated: 600}}
	var total int64
	var lastErr error
	for _, f := range zr.File {
		n, err := r.stream(f, 1<<20, &bytes.Buffer{})
		total += n
		if err != nil {
			lastErr = err
			break
		}
	}
	if lastErr == nil || !strings.Contains(lastErr.Error(), "more than 600 bytes in total") || total > 601 {
		t.Errorf("err = %v after %d bytes", lastErr, total)
	}
}
