package apppkgm

import (
	"fmt"
	"net/http"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/etsi-api/selector"
)

// pkgAttributes are AppPkgInfo's top-level attributes, the names a filter
// or attribute selector may start with; any other is a 400.
func pkgAttributes() []string {
	return []string{"id", "appDId", "appProvider", "appName", "appSoftwareVersion", "appDVersion",
		"checksum", "signingCertificate", "softwareImages", "additionalArtifacts", "onboardingState",
		"operationalState", "usageState", "mecInfo", "userDefinedData", "onboardingFailureDetails", "_links"}
}

// listPkgs is GET /onboarded_app_packages, with the MEC 009 filter and
// attribute selectors. As the ETSI file's exclude_default says, checksum,
// softwareImages and additionalArtifacts are left out unless a selector
// parameter asks otherwise (all_fields, fields, exclude_fields).
func (h *Handler) listPkgs(w http.ResponseWriter, r *http.Request) {
	if !h.acceptsJSON(w, r) {
		return
	}
	sel, err := selector.ParseRequest(r, pkgAttributes()...)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sel.WithDefaultExcluded("checksum", "softwareImages", "additionalArtifacts")
	pkgs, usage, err := h.cat.List(r.Context())
	if err != nil {
		h.fail(w, r, fmt.Errorf("list app packages: %w", err))
		return
	}
	items := make([]any, 0, len(pkgs))
	for _, p := range pkgs {
		if auth.VisibleTo(r.Context(), p.Owner) {
			items = append(items, h.pkgInfo(p, usage[p.ID]))
		}
	}
	// _links and mecInfo are mandatory; mecInfo is an array of strings,
	// "complex" by its JSON type only, so fields= must not drop it.
	out, err := sel.Apply(items, "_links", "mecInfo")
	if err != nil {
		h.fail(w, r, fmt.Errorf("select app packages: %w", err))
		return
	}
	h.writeJSON(w, r, http.StatusOK, out)
}
