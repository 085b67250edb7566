package apppkgm

import (
	"context"
	"net/http"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/mec"
)

// The rules themselves (who sees what, who hears what) are auth's:
// auth.VisibleTo, auth.Hears.

// pkgFor resolves ref (a package ID or appDId) to a package ctx's caller
// may act on. Another owner's package is as absent as a missing one: a 403
// would tell that it exists.
func (h *Handler) pkgFor(ctx context.Context, ref string) (mec.AppPackage, error) {
	p, err := h.cat.Get(ctx, ref)
	if err != nil {
		return mec.AppPackage{}, err
	}
	if !auth.VisibleTo(ctx, p.Owner) {
		return mec.AppPackage{}, pkgNotFound(ref)
	}
	return p, nil
}

// pkgNotFound is the 404 of a package that is missing or not the caller's,
// worded as the catalog words the first.
func pkgNotFound(ref string) error {
	return mec.Errorf(http.StatusNotFound, nil, "app package %q not found", ref)
}
