package applcm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mecorch/mecorch/appd"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/lifecycle"
	"github.com/mecorch/mecorch/mec/placement"
)

func (h *Handler) instantiate(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	in, err := decodeInstantiate(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id := r.PathValue("appInstanceId")
	if _, err := h.ownedInstance(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	need, err := h.overriddenNeed(r.Context(), id, in)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	op, err := h.lc.Instantiate(r.Context(), id, lifecycle.InstantiateRequest{Constraints: in.Constraints, Need: need, Params: in.Params})
	if err != nil {
		h.fail(w, r, noFitPaths(err))
		return
	}
	h.accepted(w, r, op)
}

func (h *Handler) operate(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	in, err := decodeOperate(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.ownedInstance(r.Context(), r.PathValue("appInstanceId")); err != nil {
		h.fail(w, r, err)
		return
	}
	op, err := h.lc.Operate(r.Context(), r.PathValue("appInstanceId"),
		lifecycle.OperateRequest{ChangeStateTo: in.ChangeStateTo, GraceSeconds: in.GraceSeconds, Params: in.Params})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.accepted(w, r, op)
}

func (h *Handler) terminate(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	in, err := decodeTerminate(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.ownedInstance(r.Context(), r.PathValue("appInstanceId")); err != nil {
		h.fail(w, r, err)
		return
	}
	op, err := h.lc.Terminate(r.Context(), r.PathValue("appInstanceId"),
		lifecycle.TerminateRequest{GraceSeconds: in.GraceSeconds, Params: in.Params})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.accepted(w, r, op)
}

// overriddenNeed is what an instance reserves when the request overrides
// the AppD's virtualComputeDescriptor, osContainerDescriptor or
// virtualStorageDescriptor (NOTE 1 of 6.2.2.7), or nil when it does not.
// The overrides are laid over the package's AppD and the result is parsed
// and validated as an AppD, so an override is held to the same rules as a
// descriptor, with the same field paths, which are also the request's.
func (h *Handler) overriddenNeed(ctx context.Context, instID string, in instantiateInput) (*mec.Resources, error) {
	if in.Compute == nil && in.Containers == nil && in.Storage == nil {
		return nil, nil
	}
	inst, err := h.lc.Get(ctx, instID)
	if err != nil {
		return nil, err
	}
	var pkg mec.AppPackage
	err = h.store.View(ctx, func(tx mec.Tx) error {
		pkg, _, err = mec.Load[mec.AppPackage](tx, mec.KindAppPackage, inst.AppPkgID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("app package %s of instance %s: %w", inst.AppPkgID, instID, err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(pkg.AppD, &doc); err != nil {
		return nil, fmt.Errorf("decode AppD of package %s: %w", pkg.ID, err)
	}
	// The AppD has exactly one of the two compute attributes (its NOTE 5):
	// the request's replaces whichever the package had.
	if in.Compute != nil {
		delete(doc, "osContainerDescriptor")
		doc["virtualComputeDescriptor"] = in.Compute
	}
	if in.Containers != nil {
		delete(doc, "virtualComputeDescriptor")
		doc["osContainerDescriptor"] = in.Containers
	}
	if in.Storage != nil {
		doc["virtualStorageDescriptor"] = in.Storage
	}
	merged, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("merge AppD overrides: %w", err)
	}
	// Only what the request supplies is its to fix: a rule that the
	// combination breaks elsewhere (a container override of a VM AppD
	// has no mcioIdentificationData) does not change what is reserved.
	_, err = appd.Parse(merged)
	var ve *appd.ValidationError
	if errors.As(err, &ve) {
		rp := report{}
		for _, fe := range ve.Errors {
			if under(fe.Path, overridden(in)...) {
				rp.add(fe.Path, "%s", fe.Reason)
			}
		}
		if err := rp.err("InstantiateAppRequest (AppD overrides)"); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("parse AppD of package %s with overrides: %w", pkg.ID, err)
	}
	var a appd.AppD
	if err := json.Unmarshal(merged, &a); err != nil {
		return nil, fmt.Errorf("decode AppD of package %s with overrides: %w", pkg.ID, err)
	}
	cpu, mem, disk, gpus := a.ComputeNeeds()
	return &mec.Resources{MilliCPU: cpu, MemoryMiB: mem, StorageGB: disk, GPUs: gpus}, nil
}

// overridden names the AppD attributes the request replaces.
func overridden(in instantiateInput) []string {
	var names []string
	if in.Compute != nil {
		names = append(names, "virtualComputeDescriptor")
	}
	if in.Containers != nil {
		names = append(names, "osContainerDescriptor")
	}
	if in.Storage != nil {
		names = append(names, "virtualStorageDescriptor")
	}
	return names
}

// under reports whether path is one of names or inside one.
func under(path string, names ...string) bool {
	for _, n := range names {
		if path == n || strings.HasPrefix(path, n+".") || strings.HasPrefix(path, n+"[") {
			return true
		}
	}
	return false
}

// noFitPaths renames, in a "no host fits" problem, the placement filters
// that enforce a request attribute to that attribute's path in
// InstantiateAppRequest, so that a client is told what to change in its
// own terms. Filters of the hosts' state and room keep their names: no
// attribute of the request is at fault there.
func noFitPaths(err error) error {
	var p *mec.Problem
	if !errors.As(err, &p) || len(p.InvalidParams) == 0 {
		return err
	}
	out := *p
	out.InvalidParams = make([]mec.InvalidParam, len(p.InvalidParams))
	for i, ip := range p.InvalidParams {
		switch ip.Name {
		case placement.NameHostIDs:
			ip.Name = "selectedMECHostInfo"
		case placement.NameCountryCode, placement.NameArea:
			ip.Name = "locationConstraints." + ip.Name
		case placement.NameSiteIDs, placement.NameZones, placement.NameHostLabels:
			ip.Name = placementExt + "." + ip.Name
		default:
			// The domain names a served cell constraints.cells[i]; the
			// request carries it in the extension.
			if rest, ok := strings.CutPrefix(ip.Name, "constraints.cells"); ok {
				ip.Name = placementExt + ".cells" + rest
			}
		}
		out.InvalidParams[i] = ip
	}
	return &out
}
