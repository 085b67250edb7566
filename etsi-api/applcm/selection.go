package applcm

import (
	"net/http"
	"net/url"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/etsi-api/selector"
	"github.com/mecorch/mecorch/mec"
)

// selection is what a collection GET shows: which items (filter) with which
// attributes (all_fields, fields, exclude_fields, exclude_default).
type selection struct {
	sel *selector.Selector
	// keep lists the attributes no selector may remove: the schema
	// requires them.
	keep []string
}

// resource describes a collection's items for selection.
type resource struct {
	known           []string // top-level attribute names
	defaultExcluded []string // left out unless asked for
	keep            []string
}

// instanceResource: AppInstanceInfo. Query.Exclude_default names
// vimConnectionInfo and the instantiate, terminate and operate links; the
// placement decision, large and of interest to operators only, joins them.
func instanceResource() resource {
	return resource{
		known: []string{"id", "appInstanceName", "appInstanceDescription", "appDId", "appProvider", "appName",
			"appSoftVersion", "appDVersion", "appPkgId", "vimConnectionInfo", "nsInstanceId", "vnfInstanceId",
			"instantiationState", "instantiatedAppState", "communicationInterface", "_links", "x-mecorch"},
		defaultExcluded: []string{"vimConnectionInfo", "_links/instantiate", "_links/terminate", "_links/operate", "x-mecorch/placement"},
		keep:            []string{"_links/self"},
	}
}

// opOccResource: AppLcmOpOcc. Query.Exclude_default1 names operationParams
// and _links, but the schema requires _links: it is always kept.
func opOccResource() resource {
	return resource{
		known: []string{"id", "operationState", "stateEnteredTime", "startTime", "lcmOperation", "operationParams",
			"isCancelPending", "cancelMode", "error", "_links", "x-mecorch"},
		defaultExcluded: []string{"operationParams"},
		keep:            []string{"_links", "stateEnteredTime", "startTime"},
	}
}

// parseSelection reads the selector parameters of r. The v3 file names
// those of /app_lcm_op_occs filter1, fields1, exclude_fields1 and
// exclude_default1 (a generator artefact); they are read as their plain
// names.
func parseSelection(r *http.Request, res resource) (selection, error) {
	raw, err := selector.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return selection{}, problem.Invalid("malformed query string", mec.InvalidParam{Name: "query", Reason: err.Error()})
	}
	q := url.Values{}
	for k, v := range raw {
		switch k {
		case "filter1", "fields1", "exclude_fields1", "exclude_default1":
			k = k[:len(k)-1]
		}
		q[k] = append(q[k], v...)
	}
	sel, err := selector.Parse(q, res.known...)
	if err != nil {
		return selection{}, err
	}
	return selection{sel: sel.WithDefaultExcluded(res.defaultExcluded...), keep: res.keep}, nil
}

// writeSelected answers a collection GET with the selected items, always a
// JSON array.
func (h *Handler) writeSelected(w http.ResponseWriter, r *http.Request, s selection, items []any) {
	out, err := s.sel.Apply(items, s.keep...)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
