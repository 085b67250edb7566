package applcm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/lifecycle"
)

// instanceInfo is AppInstanceInfo (6.2.2.4), plus mecorch's extension.
type instanceInfo struct {
	ID                   string            `json:"id"`
	Name                 string            `json:"appInstanceName,omitempty"`
	Description          string            `json:"appInstanceDescription,omitempty"`
	AppDID               string            `json:"appDId"`
	AppProvider          string            `json:"appProvider"`
	AppName              string            `json:"appName"`
	AppSoftVersion       string            `json:"appSoftVersion"`
	AppDVersion          string            `json:"appDVersion"`
	AppPkgID             string            `json:"appPkgId"`
	InstantiationState   string            `json:"instantiationState"`
	InstantiatedAppState *instantiatedApp  `json:"instantiatedAppState,omitempty"`
	Links                instanceLinks     `json:"_links"`
	Ext                  *instanceExtended `json:"x-mecorch,omitempty"`
}

type instantiatedApp struct {
	OperationalState string       `json:"operationalState"`
	AppInstLocation  *locationInf `json:"appInstLocation,omitempty"`
}

// locationInf is LocationInformation (6.2.2.31): where the instance's site
// is, when the site has a country (the attribute requires one).
type locationInf struct {
	CountryCode string `json:"countryCode"`
	// GeographicalPosition is a GeoJSON Point; the file types it a string,
	// so it travels as the Point's JSON text.
	GeographicalPosition string `json:"geographicalPosition,omitempty"`
}

// instanceLinks holds the task links only while the task is possible, as
// the _links descriptions require.
type instanceLinks struct {
	Self        link  `json:"self"`
	Instantiate *link `json:"instantiate,omitempty"`
	Terminate   *link `json:"terminate,omitempty"`
	Operate     *link `json:"operate,omitempty"`
}

// instanceExtended is "x-mecorch" in AppInstanceInfo: where the instance
// runs and why. AppInstanceInfo does not forbid additional properties, so
// ETSI clients ignore it.
type instanceExtended struct {
	HostID        string                    `json:"hostId,omitempty"`
	SiteID        string                    `json:"siteId,omitempty"`
	DesiredState  string                    `json:"desiredState,omitempty"`
	ObservedState string                    `json:"observedState,omitempty"`
	PendingOpOcc  *link                     `json:"pendingAppLcmOpOcc,omitempty"`
	Reserved      *mec.Resources            `json:"reserved,omitempty"`
	Constraints   *mec.PlacementConstraints `json:"constraints,omitempty"`
	Placement     *mec.Decision             `json:"placement,omitempty"`
	// Moves counts the times mecorch re-placed the instance (off a failed
	// host, or for its latency bound); LastMovedAt is the latest.
	Moves       int        `json:"moves,omitempty"`
	LastMovedAt *time.Time `json:"lastMovedAt,omitempty"`
}

// toInstanceInfo renders in; sites holds the sites by ID (for the location).
func toInstanceInfo(l links, in mec.AppInstance, sites map[string]mec.Site) instanceInfo {
	self := l.instance(in.ID)
	info := instanceInfo{
		ID: in.ID, Name: in.Name, Description: in.Description, AppDID: in.AppDID,
		AppProvider: in.AppProvider, AppName: in.AppName, AppSoftVersion: in.AppSoftVersion,
		AppDVersion: in.AppDVersion, AppPkgID: in.AppPkgID, InstantiationState: in.InstantiationState,
		Links: instanceLinks{Self: link{self}},
	}
	idle := in.PendingOpID == ""
	switch in.InstantiationState {
	case mec.Instantiated:
		info.InstantiatedAppState = &instantiatedApp{OperationalState: in.OperationalState, AppInstLocation: location(sites[in.SiteID])}
		if idle {
			info.Links.Terminate = &link{self + "/terminate"}
			info.Links.Operate = &link{self + "/operate"}
		}
	default:
		if idle {
			info.Links.Instantiate = &link{self + "/instantiate"}
		}
	}
	if in.HostID != "" || in.PendingOpID != "" || in.Placement != nil {
		ext := &instanceExtended{HostID: in.HostID, SiteID: in.SiteID, DesiredState: in.DesiredState,
			ObservedState: in.ObservedState, Placement: in.Placement, Moves: in.Moves, LastMovedAt: in.LastMovedAt}
		if in.PendingOpID != "" {
			ext.PendingOpOcc = &link{l.opOcc(in.PendingOpID)}
		}
		if in.HostID != "" {
			r, c := in.Reserved, in.Constraints
			ext.Reserved, ext.Constraints = &r, &c
		}
		info.Ext = ext
	}
	return info
}

func location(s mec.Site) *locationInf {
	if s.Country == "" {
		return nil
	}
	point, _ := json.Marshal(struct {
		Type        string     `json:"type"`
		Coordinates [2]float64 `json:"coordinates"`
	}{"Point", [2]float64{s.Longitude, s.Latitude}})
	return &locationInf{CountryCode: s.Country, GeographicalPosition: string(point)}
}

// sites reads every site, for the locations of instances.
func (h *Handler) sites(ctx context.Context) (map[string]mec.Site, error) {
	out := map[string]mec.Site{}
	err := h.store.View(ctx, func(tx mec.Tx) error {
		all, err := mec.LoadAll[mec.Site](tx, mec.KindSite)
		for _, s := range all {
			out[s.ID] = s
		}
		return err
	})
	return out, err
}

// site reads one site; a site that is gone yields no location, not an
// error: the instance is still worth showing.
func (h *Handler) site(ctx context.Context, id string) (map[string]mec.Site, error) {
	out := map[string]mec.Site{}
	if id == "" {
		return out, nil
	}
	err := h.store.View(ctx, func(tx mec.Tx) error {
		s, _, err := mec.Load[mec.Site](tx, mec.KindSite, id)
		if errors.Is(err, mec.ErrNotFound) {
			return nil
		}
		out[id] = s
		return err
	})
	return out, err
}

func (h *Handler) createInstance(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req, err := decodeCreate(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	in, err := h.lc.Create(r.Context(), lifecycle.CreateRequest{AppDID: req.AppDID, Name: req.Name, Description: req.Description,
		Owner: auth.OwnerOf(r.Context()), OwnPackageOnly: auth.Restricted(r.Context())})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	l := links(h.base(r))
	w.Header().Set("Location", l.instance(in.ID))
	writeJSON(w, http.StatusCreated, toInstanceInfo(l, in, nil))
}

func (h *Handler) listInstances(w http.ResponseWriter, r *http.Request) {
	sel, err := parseSelection(r, instanceResource())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	all, err := h.lc.List(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sites, err := h.sites(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	l := links(h.base(r))
	items := make([]any, 0, len(all))
	for _, in := range all {
		if auth.VisibleTo(r.Context(), in.Owner) {
			items = append(items, toInstanceInfo(l, in, sites))
		}
	}
	h.writeSelected(w, r, sel, items)
}

func (h *Handler) getInstance(w http.ResponseWriter, r *http.Request) {
	in, err := h.ownedInstance(r.Context(), r.PathValue("appInstanceId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sites, err := h.site(r.Context(), in.SiteID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeTagged(w, r, toInstanceInfo(links(h.base(r)), in, sites))
}

func (h *Handler) deleteInstance(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("appInstanceId")
	if _, err := h.ownedInstance(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.lc.Delete(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// accepted answers an accepted task with where its operation
// occurrence lives. The body is empty, as 7.4.x says for every task.
func (h *Handler) accepted(w http.ResponseWriter, r *http.Request, op mec.LcmOpOcc) {
	w.Header().Set("Location", links(h.base(r)).opOcc(op.ID))
	w.Header().Set("Content-Length", strconv.Itoa(0))
	w.WriteHeader(http.StatusAccepted)
}
