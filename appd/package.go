package appd

import (
	"archive/zip"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"sort"
	"strings"
	"time"
)

// Limits bound what ReadPackage will inflate. A zero field takes its value
// from DefaultLimits, so that a forgotten field never means "unlimited".
type Limits struct {
	// MaxEntries is the most entries (files and directories) in the zip.
	MaxEntries int
	// MaxInflated is the most bytes all files may inflate to, counted while
	// reading (zip headers are not trusted).
	MaxInflated int64
	// MaxFileSize is the most bytes one file may inflate to.
	MaxFileSize int64
	// MaxDescriptorSize is the most bytes of TOSCA.meta, the manifest and
	// the AppD, which are held in memory and parsed.
	MaxDescriptorSize int64
}

// DefaultLimits: 1000 entries, 512 MiB in total and per file, 4 MiB per
// descriptor.
func DefaultLimits() Limits {
	return Limits{MaxEntries: 1000, MaxInflated: 512 << 20, MaxFileSize: 512 << 20, MaxDescriptorSize: 4 << 20}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	if l.MaxInflated <= 0 {
		l.MaxInflated = d.MaxInflated
	}
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = d.MaxFileSize
	}
	if l.MaxDescriptorSize <= 0 {
		l.MaxDescriptorSize = d.MaxDescriptorSize
	}
	return l
}

// Package is an app package that passed every check.
type Package struct {
	AppD         *AppD
	AppDPath     string            // the Entry-Definitions file
	ManifestPath string            // the .mf file
	Meta         map[string]string // TOSCA.meta keys
	Manifest     map[string]string // the manifest's metadata block
	Files        []File            // every regular file, sorted by path
	// SoftwareImages are the AppD's swImageDescriptor entries, resolved
	// against the package where the image is a file in it.
	SoftwareImages []Image

	files map[string]*zip.File
	sums  map[string]string // path → SHA-256 at read time
	lim   Limits
}

// File is one regular file of a package.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Image is a software image of the app. Path, SHA256 and Size are set when
// the image is a file in the package; otherwise Ref is a URL or a container
// image reference to fetch from elsewhere.
type Image struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Ref     string `json:"ref,omitempty"`
	Path    string `json:"path,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Size    int64  `json:"size,omitempty"`
}

// Open returns the content of a regular file of the package. It inflates
// the file again (within MaxFileSize) and checks it still has the SHA-256
// recorded by ReadPackage, in case the caller's buffer changed since.
func (p *Package) Open(name string) ([]byte, error) {
	f, ok := p.files[name]
	if !ok {
		return nil, fmt.Errorf("open %s: no such file in the package", name)
	}
	r := &pkgReader{lim: p.lim}
	data, err := r.readAll(f, p.lim.MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if err := VerifyChecksum(data, Checksum{Algorithm: "SHA-256", Hash: p.sums[name]}); err != nil {
		return nil, fmt.Errorf("open %s: content changed since the package was read: %w", name, err)
	}
	return data, nil
}

func pkgPath(name string) string { return "package/" + name }

func invalid(path, format string, args ...any) *ValidationError {
	return &ValidationError{Errors: []FieldError{{Path: path, Reason: fmt.Sprintf(format, args...)}}}
}

// pkgReader counts inflated bytes across the whole package.
type pkgReader struct {
	lim      Limits
	inflated int64
}

func (r *pkgReader) stream(f *zip.File, max int64, w io.Writer) (int64, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("cannot open entry: %w", err)
	}
	defer rc.Close()
	limit := min(max, r.lim.MaxInflated-r.inflated)
	n, err := io.Copy(w, io.LimitReader(rc, limit+1))
	r.inflated += n
	switch {
	case n > limit && n > max:
		return n, fmt.Errorf("inflates to more than %d bytes (limit per file)", max)
	case n > limit:
		return n, fmt.Errorf("package inflates to more than %d bytes in total", r.lim.MaxInflated)
	case err != nil:
		return n, fmt.Errorf("cannot inflate: %w", err)
	}
	return n, nil
}

func (r *pkgReader) readAll(f *zip.File, max int64) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := r.stream(f, max, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ReadPackage reads an app package: a zip archive in the CSAR layout of
// ETSI GS NFV-SOL 004 with TOSCA-Metadata/TOSCA.meta, a manifest, and an
// AppD named by Entry-Definitions. Archives that could harm a reader are
// refused outright; otherwise every problem with the content is returned
// together as a *ValidationError (paths "package/<file>" for the archive,
// "appD.<field>" for the AppD). See docs/appd.md for the rules.
func ReadPackage(data []byte, lim Limits) (*Package, error) {
	lim = lim.withDefaults()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, invalid("package", "not a zip archive: %v", err)
	}
	files, dirs, verr := checkEntries(zr, lim)
	if verr != nil {
		return nil, verr
	}
	r := &pkgReader{lim: lim}
	p := &Package{files: files, sums: map[string]string{}, lim: lim}

	metaFile, ok := files[toscaMetaPath]
	if !ok {
		return nil, invalid(pkgPath(toscaMetaPath), "is missing; an app package must have TOSCA-Metadata/TOSCA.meta")
	}
	metaBytes, err := r.readAll(metaFile, lim.MaxDescriptorSize)
	if err != nil {
		return nil, invalid(pkgPath(toscaMetaPath), "%v", err)
	}
	meta, problems := parseToscaMeta(metaBytes)
	if len(problems) > 0 {
		return nil, problemsAt(pkgPath(toscaMetaPath), problems)
	}
	p.Meta = meta

	var errs []FieldError
	p.AppDPath, p.ManifestPath, errs = locateDescriptors(meta, files, dirs)
	if p.AppDPath == "" || p.ManifestPath == "" {
		return nil, &ValidationError{Errors: errs}
	}
	held := map[string][]byte{toscaMetaPath: metaBytes}
	for _, name := range []string{p.ManifestPath, p.AppDPath} {
		b, err := r.readAll(files[name], lim.MaxDescriptorSize)
		if err != nil {
			return nil, invalid(pkgPath(name), "%v", err)
		}
		held[name] = b
	}
	mf, problems := parseManifest(held[p.ManifestPath])
	if len(problems) > 0 {
		ve := problemsAt(pkgPath(p.ManifestPath), problems)
		ve.Errors = append(ve.Errors, errs...)
		return nil, ve
	}
	p.Manifest = mf.metadata

	a, appdErrs := parseEmbeddedAppD(held[p.AppDPath])
	errs = append(errs, appdErrs...)
	p.AppD = a

	sums, verr := p.hashFiles(r, mf, a, held)
	if verr != nil {
		return nil, verr
	}
	errs = append(errs, p.checkListing(mf, sums)...)
	errs = append(errs, checkManifestMetadata(pkgPath(p.ManifestPath), mf.metadata, a)...)
	if a != nil {
		errs = append(errs, p.resolveImages(a, sums)...)
	}
	if len(errs) > 0 {
		return nil, &ValidationError{Errors: errs}
	}
	return p, nil
}

func problemsAt(path string, problems []string) *ValidationError {
	ve := &ValidationError{}
	for _, pr := range problems {
		ve.Errors = append(ve.Errors, FieldError{Path: path, Reason: pr})
	}
	return ve
}

// locateDescriptors finds the AppD and the manifest named (directly or by
// convention) in TOSCA.meta, and checks the other ETSI-Entry-* references.
func locateDescriptors(meta map[string]string, files map[string]*zip.File, dirs map[string]bool) (appdPath, mfPath string, errs []FieldError) {
	metaErr := func(format string, args ...any) {
		errs = append(errs, FieldError{Path: pkgPath(toscaMetaPath), Reason: fmt.Sprintf(format, args...)})
	}
	entry := meta["Entry-Definitions"]
	switch ext := strings.ToLower(path.Ext(entry)); {
	case checkEntryName(entry) != nil:
		metaErr("Entry-Definitions %q: %v", entry, checkEntryName(entry))
	case ext != ".json" && ext != ".yaml" && ext != ".yml":
		metaErr("Entry-Definitions %q must name a .json, .yaml or .yml AppD", entry)
	case files[entry] == nil:
		metaErr("Entry-Definitions names %s, which is not in the package", entry)
	default:
		appdPath = entry
	}
	// SOL004: without ETSI-Entry-Manifest, the manifest sits at the root
	// with the base name of the entry definitions.
	mf, named := meta["ETSI-Entry-Manifest"]
	if !named {
		base := path.Base(entry)
		mf = strings.TrimSuffix(base, path.Ext(base)) + ".mf"
	}
	switch {
	case checkEntryName(mf) != nil:
		metaErr("ETSI-Entry-Manifest %q: %v", mf, checkEntryName(mf))
	case !strings.EqualFold(path.Ext(mf), ".mf"):
		metaErr("ETSI-Entry-Manifest %q must name a .mf file", mf)
	case files[mf] == nil && named:
		metaErr("ETSI-Entry-Manifest names %s, which is not in the package", mf)
	case files[mf] == nil:
		errs = append(errs, FieldError{Path: pkgPath(mf), Reason: "is missing (no ETSI-Entry-Manifest, so the manifest must be at the root with the base name of Entry-Definitions)"})
	default:
		mfPath = mf
	}
	for _, k := range []string{"ETSI-Entry-Change-Log", "ETSI-Entry-Certificate", "ETSI-Entry-Licenses", "ETSI-Entry-Tests"} {
		v, ok := meta[k]
		if !ok {
			continue
		}
		canBeDir := k == "ETSI-Entry-Licenses" || k == "ETSI-Entry-Tests"
		name := strings.TrimSuffix(v, "/")
		if checkEntryName(name) != nil || files[name] == nil && !(canBeDir && dirs[name]) {
			metaErr("%s names %s, which is not in the package", k, v)
		}
	}
	return appdPath, mfPath, errs
}

func parseEmbeddedAppD(data []byte) (*AppD, []FieldError) {
	a, err := Parse(data)
	if err == nil {
		return a, nil
	}
	if bytes.Contains(data, []byte("tosca_definitions_version")) {
		return nil, []FieldError{{Path: "appD", Reason: "is a TOSCA service template; the entry definitions must be a MEC 010-2 AppD in JSON or YAML"}}
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		return nil, prefixed("appD", ve.Errors)
	}
	return nil, []FieldError{{Path: "appD", Reason: err.Error()}}
}

// hashFiles reads every regular file once, computing its SHA-256 and any
// other digest the manifest or the AppD's image checksums ask for.
func (p *Package) hashFiles(r *pkgReader, mf *manifest, a *AppD, held map[string][]byte) (map[string]map[string]string, *ValidationError) {
	want := map[string][]string{}
	for _, e := range mf.entries {
		want[e.source] = append(want[e.source], e.algorithm)
	}
	if a != nil {
		for _, s := range a.SwImageDescriptor {
			if s.Checksum != nil {
				if name, ok := localImagePath(s.SwImage.Reference()); ok {
					want[name] = append(want[name], s.Checksum.Algorithm)
				}
			}
		}
	}
	names := make([]string, 0, len(p.files))
	for name := range p.files {
		names = append(names, name)
	}
	sort.Strings(names)
	sums := map[string]map[string]string{}
	for _, name := range names {
		hashers := map[string]hash.Hash{}
		var writers []io.Writer
		for _, alg := range append([]string{"SHA-256"}, want[name]...) {
			h, canon, err := newHash(alg)
			if err != nil || hashers[canon] != nil {
				continue // an unsupported algorithm is reported by the comparison
			}
			hashers[canon] = h
			writers = append(writers, h)
		}
		w := io.MultiWriter(writers...)
		var size int64
		if b, ok := held[name]; ok {
			w.Write(b)
			size = int64(len(b))
		} else {
			n, err := r.stream(p.files[name], r.lim.MaxFileSize, w)
			if err != nil {
				return nil, invalid(pkgPath(name), "%v", err)
			}
			size = n
		}
		sums[name] = map[string]string{}
		for canon, h := range hashers {
			sums[name][canon] = hex.EncodeToString(h.Sum(nil))
		}
		p.sums[name] = sums[name]["SHA-256"]
		p.Files = append(p.Files, File{Path: name, Size: size, SHA256: sums[name]["SHA-256"]})
	}
	return sums, nil
}

// checkListing enforces the manifest rule: every listed file exists and has
// the listed hash, and every regular file other than TOSCA.meta, the
// manifest and signature material is listed.
func (p *Package) checkListing(mf *manifest, sums map[string]map[string]string) []FieldError {
	var errs []FieldError
	listed := map[string]bool{}
	for _, e := range mf.entries {
		listed[e.source] = true
		if err := checkEntryName(e.source); err != nil {
			errs = append(errs, FieldError{Path: pkgPath(p.ManifestPath), Reason: fmt.Sprintf("line %d: Source %q: %v (external artifacts are not supported)", e.line, e.source, err)})
			continue
		}
		if e.source == p.ManifestPath {
			errs = append(errs, FieldError{Path: pkgPath(p.ManifestPath), Reason: fmt.Sprintf("line %d: the manifest cannot list itself", e.line)})
			continue
		}
		digests, ok := sums[e.source]
		if !ok {
			errs = append(errs, FieldError{Path: pkgPath(e.source), Reason: "is listed in " + p.ManifestPath + " but missing from the package"})
			continue
		}
		_, canon, err := newHash(e.algorithm)
		if err != nil {
			errs = append(errs, FieldError{Path: pkgPath(e.source), Reason: fmt.Sprintf("%s line %d: %v", p.ManifestPath, e.line, err)})
			continue
		}
		if got := digests[canon]; !strings.EqualFold(got, e.hash) {
			errs = append(errs, FieldError{Path: pkgPath(e.source), Reason: fmt.Sprintf("%s mismatch: %s lists %s, the file has %s", canon, p.ManifestPath, e.hash, got)})
		}
	}
	exempt := map[string]bool{toscaMetaPath: true, p.ManifestPath: true, p.Meta["ETSI-Entry-Certificate"]: true}
	for _, s := range mf.signed {
		exempt[s] = true
	}
	for _, f := range p.Files {
		if !listed[f.Path] && !exempt[f.Path] {
			errs = append(errs, FieldError{Path: pkgPath(f.Path), Reason: "is not listed in " + p.ManifestPath + " (every file must be)"})
		}
	}
	return errs
}

func checkManifestMetadata(mfPath string, md map[string]string, a *AppD) []FieldError {
	var errs []FieldError
	bad := func(format string, args ...any) {
		errs = append(errs, FieldError{Path: mfPath, Reason: fmt.Sprintf(format, args...)})
	}
	for _, k := range requiredManifestKeys() {
		if md[k] == "" {
			bad("metadata %s is required", k)
		}
	}
	if v := md["app_release_date_time"]; v != "" {
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			bad("metadata app_release_date_time %q is not an RFC 3339 date-time", v)
		}
	}
	if a != nil {
		if v := md["app_provider_id"]; v != "" && v != a.AppProvider {
			bad("metadata app_provider_id %q differs from appD.appProvider %q", v, a.AppProvider)
		}
		if v := md["app_product_name"]; v != "" && v != a.AppName {
			bad("metadata app_product_name %q differs from appD.appName %q", v, a.AppName)
		}
	}
	return errs
}

// localImagePath tells a swImage that names a file in the package from one
// to fetch elsewhere: a URL has a scheme, a container image reference has a
// tag or digest (":" or "@"); anything else is a path from the package root.
func localImagePath(ref string) (string, bool) {
	if ref == "" || strings.Contains(ref, "://") || strings.ContainsAny(ref, ":@") {
		return "", false
	}
	return strings.TrimPrefix(ref, "./"), true
}

func (p *Package) resolveImages(a *AppD, sums map[string]map[string]string) []FieldError {
	var errs []FieldError
	for i, s := range a.SwImageDescriptor {
		fp := "appD." + indexPath("swImageDescriptor", i)
		img := Image{ID: s.ID, Name: s.Name, Version: s.Version, Ref: s.SwImage.Reference()}
		name, local := localImagePath(img.Ref)
		if local {
			if err := checkEntryName(name); err != nil {
				errs = append(errs, FieldError{Path: fp + ".swImage", Reason: fmt.Sprintf("%q: %v", img.Ref, err)})
				continue
			}
			digests, ok := sums[name]
			if !ok {
				errs = append(errs, FieldError{Path: fp + ".swImage", Reason: fmt.Sprintf("names %s, which is not in the package", name)})
				continue
			}
			img.Path, img.SHA256 = name, digests["SHA-256"]
			for _, f := range p.Files {
				if f.Path == name {
					img.Size = f.Size
				}
			}
			if cs := s.Checksum; cs != nil {
				if _, canon, err := newHash(cs.Algorithm); err == nil && !strings.EqualFold(digests[canon], cs.Hash) {
					errs = append(errs, FieldError{Path: fp + ".checksum", Reason: fmt.Sprintf("%s of %s is %s, not %s", canon, name, digests[canon], cs.Hash)})
				}
			}
		}
		p.SoftwareImages = append(p.SoftwareImages, img)
	}
	return errs
}
