package operator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/inventory"
)

// siteRequest is the body of POST and PUT /api/v1/sites.
type siteRequest struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Zone        string          `json:"zone"`
	CountryCode string          `json:"countryCode"`
	Latitude    float64         `json:"latitude"`
	Longitude   float64         `json:"longitude"`
	CreatedAt   json.RawMessage `json:"createdAt"` // read-only: refused if sent
}

// siteResponse is a site as the API shows it.
type siteResponse struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Zone        string    `json:"zone,omitempty"`
	CountryCode string    `json:"countryCode,omitempty"`
	Latitude    float64   `json:"latitude"`
	Longitude   float64   `json:"longitude"`
	CreatedAt   time.Time `json:"createdAt"`
}

func (b siteRequest) site() mec.Site {
	return mec.Site{ID: b.ID, Name: b.Name, Zone: b.Zone, Country: b.CountryCode, Latitude: b.Latitude, Longitude: b.Longitude}
}

func (b siteRequest) readOnly() []mec.InvalidParam {
	return readOnly(map[string]json.RawMessage{"createdAt": b.CreatedAt}, "set by the server")
}

func siteOut(s mec.Site) siteResponse {
	return siteResponse{ID: s.ID, Name: s.Name, Zone: s.Zone, CountryCode: s.Country,
		Latitude: s.Latitude, Longitude: s.Longitude, CreatedAt: s.CreatedAt}
}

func siteLocation(id string) string { return "/api/v1/sites/" + url.PathEscape(id) }

func (h *handler) createSite(w http.ResponseWriter, r *http.Request) {
	var body siteRequest
	if err := decode(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	if ro := body.readOnly(); len(ro) > 0 {
		h.fail(w, r, invalid("site", merge(ro, inventory.ValidateSite(body.site()))))
		return
	}
	site, ver, err := h.inv.CreateSite(r.Context(), body.site())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	created(w, siteLocation(site.ID), ver, siteOut(site))
}

func (h *handler) listSites(w http.ResponseWriter, r *http.Request) {
	sites, err := h.inv.ListSites(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]siteResponse, 0, len(sites))
	for _, s := range sites {
		out = append(out, siteOut(s))
	}
	reply(w, http.StatusOK, 0, out)
}

func (h *handler) getSite(w http.ResponseWriter, r *http.Request) {
	site, ver, err := h.inv.GetSite(r.Context(), r.PathValue("siteId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	replyGet(w, r, ver, siteOut(site))
}

func (h *handler) putSite(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("siteId")
	var body siteRequest
	if err := decode(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	if ro := body.readOnly(); len(ro) > 0 {
		h.fail(w, r, invalid("site", merge(ro, pathID(body.ID, id), inventory.ValidateSite(body.site()))))
		return
	}
	ifVersion, err := ifMatch(r, func() (int64, error) {
		_, v, err := h.inv.GetSite(r.Context(), id)
		return v, err
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	site, ver, err := h.inv.UpdateSite(r.Context(), id, body.site(), ifVersion)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	reply(w, http.StatusOK, ver, siteOut(site))
}

func (h *handler) deleteSite(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("siteId")
	ifVersion, err := ifMatch(r, func() (int64, error) {
		_, v, err := h.inv.GetSite(r.Context(), id)
		return v, err
	})
	if err == nil {
		err = h.inv.DeleteSite(r.Context(), id, ifVersion)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
