package applcm

import (
	"context"
	"net/http"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/mec"
)

// The rules themselves (who sees what, who hears what) are auth's:
// auth.VisibleTo, auth.Hears.

// ownedInstance checks that the instance id is ctx's caller's to see and
// act on. Another owner's instance is as absent as a missing one (a 403
// would tell that it exists). An instance's owner never changes, so the
// check still holds when the lifecycle acts on it in a later transaction.
func (h *Handler) ownedInstance(ctx context.Context, id string) (mec.AppInstance, error) {
	in, err := h.lc.Get(ctx, id)
	if err != nil {
		return mec.AppInstance{}, err
	}
	if !auth.VisibleTo(ctx, in.Owner) {
		return mec.AppInstance{}, mec.Errorf(http.StatusNotFound, nil, "app instance %q not found", id)
	}
	return in, nil
}

// ownedOpOcc is ownedInstance for an LCM operation occurrence, which
// belongs to the owner of its instance (recorded on it when it began).
func (h *Handler) ownedOpOcc(ctx context.Context, id string) (mec.LcmOpOcc, error) {
	op, err := h.lc.OpOcc(ctx, id)
	if err != nil {
		return mec.LcmOpOcc{}, err
	}
	if !auth.VisibleTo(ctx, op.Owner) {
		return mec.LcmOpOcc{}, mec.Errorf(http.StatusNotFound, nil, "app LCM operation occurrence %q not found", id)
	}
	return op, nil
}
