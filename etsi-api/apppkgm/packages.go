package apppkgm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/catalog"
)

// createPkg is POST /onboarded_app_packages (CreateAppPkg → AppPkgInfo).
func (h *Handler) createPkg(w http.ResponseWriter, r *http.Request) {
	if !h.acceptsJSON(w, r) {
		return
	}
	body, err := readJSON(w, r, "application/json")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req, err := decodeCreateAppPkg(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req.Owner = auth.OwnerOf(r.Context())
	p, err := h.cat.Create(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	info := h.pkgInfo(p, mec.PkgNotInUse)
	w.Header().Set("Location", info.Links.Self.Href)
	h.writeJSON(w, r, http.StatusCreated, info)
}

// decodeCreateAppPkg reads a CreateAppPkg body (6.2.3.2).
//
// appPkgPath is required by the schema, but the standard leaves "how to
// convey appPkgPath" for further study and mecorch takes the content by
// PUT …/package_content, so it is optional here; when given it must be a
// URI and is kept for the record.
func decodeCreateAppPkg(body []byte) (catalog.CreateRequest, error) {
	o, err := parseObject(body)
	if err != nil {
		return catalog.CreateRequest{}, err
	}
	req := catalog.CreateRequest{
		PkgName:         o.str("appPkgName", true),
		PkgVersion:      o.str("appPkgVersion", true),
		AppProvider:     o.str("appProvider", false),
		PkgPath:         o.uri("appPkgPath", false),
		UserDefinedData: o.rawObject("userDefinedData"),
	}
	if c, ok := o.object("checksum", true); ok {
		req.Checksum = mec.Checksum{Algorithm: c.str("algorithm", true), Hash: c.str("hash", true)}
	}
	return req, o.problems("invalid CreateAppPkg")
}

// getPkg is GET /onboarded_app_packages/{appDId}.
func (h *Handler) getPkg(w http.ResponseWriter, r *http.Request) {
	if !h.acceptsJSON(w, r) {
		return
	}
	st, err := h.lookup(r.Context(), r.PathValue("appDId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("ETag", st.etag())
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, st.etag(), true) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.writeJSON(w, r, http.StatusOK, h.pkgInfo(st.pkg, st.usage))
}

// patchPkg is PATCH /onboarded_app_packages/{appDId}: enable or disable.
func (h *Handler) patchPkg(w http.ResponseWriter, r *http.Request) {
	if !h.acceptsJSON(w, r) {
		return
	}
	body, err := readJSON(w, r, "application/merge-patch+json", "application/json")
	if err != nil {
		w.Header().Set("Accept-Patch", "application/merge-patch+json, application/json")
		h.fail(w, r, err)
		return
	}
	state, err := decodeModifications(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ref, pre, err := h.precondition(r, r.PathValue("appDId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p, err := h.cat.SetOperationalState(r.Context(), ref, state, pre)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, AppPkgInfoModifications{OperationalState: p.OperationalState})
}

// decodeModifications reads AppPkgInfoModifications. v2.1.1 of the file
// spells the attribute "operationState"; it is accepted when
// "operationalState" is absent, so that clients of that version work.
func decodeModifications(body []byte) (string, error) {
	o, err := parseObject(body)
	if err != nil {
		return "", err
	}
	field := "operationalState"
	if _, ok := o.fields[field]; !ok {
		if _, ok := o.fields["operationState"]; ok {
			field = "operationState"
		}
	}
	state := o.enum(field, true, mec.PkgEnabled, mec.PkgDisabled)
	return state, o.problems("invalid AppPkgInfoModifications")
}

// deletePkg is DELETE /onboarded_app_packages/{appDId}.
func (h *Handler) deletePkg(w http.ResponseWriter, r *http.Request) {
	ref, pre, err := h.precondition(r, r.PathValue("appDId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.cat.Delete(r.Context(), ref, pre); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// pkgState is a package as stored, with what its ETag is made of.
type pkgState struct {
	pkg     mec.AppPackage
	version int64
	usage   string
}

// etag is the store version and the usage state: the usage state is part
// of the representation but is derived from the instances, so the version
// alone would let a 304 hide a package becoming IN_USE.
func (s pkgState) etag() string {
	return fmt.Sprintf(`"%d-%s"`, s.version, s.usage)
}

// lookup finds a package by resource ID or appDId, as the catalog does,
// and reads its store version with it; another owner's package is not
// found.
func (h *Handler) lookup(ctx context.Context, ref string) (pkgState, error) {
	var st pkgState
	err := h.store.View(ctx, func(tx mec.Tx) error {
		p, v, err := mec.Load[mec.AppPackage](tx, mec.KindAppPackage, ref)
		if errors.Is(err, mec.ErrNotFound) {
			if p, err = catalog.FindOnboarded(tx, ref); errors.Is(err, mec.ErrNotFound) {
				return pkgNotFound(ref)
			}
			if err != nil {
				return err
			}
			var rec mec.Record
			rec, err = tx.Get(mec.KindAppPackage, p.ID)
			v = rec.Version
		}
		if err == nil && !auth.VisibleTo(ctx, p.Owner) {
			return pkgNotFound(ref)
		}
		st.pkg, st.version = p, v
		return err
	})
	if err != nil {
		return st, err
	}
	if st.usage, err = h.cat.UsageState(ctx, st.pkg.ID); err != nil {
		return st, fmt.Errorf("usage state of %s: %w", st.pkg.ID, err)
	}
	return st, nil
}

// precondition turns r's If-Match into what the catalog checks in the
// change's own transaction. The ETag is read here first only to answer a
// tag that does not match at once and to learn which package ref names:
// the change is then asked of that package by ID (an appDId could name
// another package by then) at the version and usage state the matching tag
// stands for, so that a change landing in between answers 412 too. "*"
// asks only that the package exist. Either way the package must be the
// caller's (or the caller an operator), and the change is asked by ID:
// neither a package's ID nor its owner ever changes, so the check holds in
// the change's transaction too.
func (h *Handler) precondition(r *http.Request, ref string) (string, catalog.Precondition, error) {
	im := strings.Join(r.Header.Values("If-Match"), ",")
	if strings.TrimSpace(im) == "" || anyTag(im) {
		p, err := h.pkgFor(r.Context(), ref)
		if err != nil {
			return ref, catalog.Precondition{}, err
		}
		return p.ID, catalog.Unconditional(), nil
	}
	st, err := h.lookup(r.Context(), ref)
	if err != nil {
		return ref, catalog.Precondition{}, err
	}
	if !etagMatches(im, st.etag(), false) {
		return ref, catalog.Precondition{}, problem.New(http.StatusPreconditionFailed,
			fmt.Sprintf("app package %s has changed: its ETag is %s, If-Match asked for %s", st.pkg.ID, st.etag(), im))
	}
	return st.pkg.ID, catalog.Precondition{Version: st.version, Usage: st.usage}, nil
}

// anyTag reports whether a conditional header is "*".
func anyTag(header string) bool {
	for _, t := range strings.Split(header, ",") {
		if strings.TrimSpace(t) == "*" {
			return true
		}
	}
	return false
}

// etagMatches reports whether a conditional header's list of entity tags
// matches etag: "*" matches any; weak comparison (If-None-Match) ignores
// the W/ prefix, strong comparison (If-Match) never matches a weak tag.
func etagMatches(header, etag string, weak bool) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		if strings.HasPrefix(t, "W/") {
			if !weak {
				continue
			}
			t = t[2:]
		}
		if t == etag {
			return true
		}
	}
	return false
}
