package operator

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/inventory"
)

// resources is an amount of compute on the wire. CPU is in (possibly
// fractional) vCPUs, as operators count it; the domain keeps millicores.
type resources struct {
	VCPU      float64 `json:"vcpu"`
	MemoryMiB int64   `json:"memoryMiB"`
	StorageGB int64   `json:"storageGB"`
	GPUs      int64   `json:"gpus"`
}

// hostRequest is the body of POST and PUT /api/v1/hosts. The read-only
// fields are there to be refused by name, so that a client that sends back a
// host it read learns which fields to drop rather than "unknown field".
type hostRequest struct {
	ID        string            `json:"id"`
	SiteID    string            `json:"siteId"`
	Name      string            `json:"name"`
	Capacity  resources         `json:"capacity"`
	Labels    map[string]string `json:"labels"`
	Addresses []string          `json:"addresses"`

	Allocated          json.RawMessage `json:"allocated"`
	Free               json.RawMessage `json:"free"`
	State              json.RawMessage `json:"state"`
	DesiredGeneration  json.RawMessage `json:"desiredGeneration"`
	ReportedGeneration json.RawMessage `json:"reportedGeneration"`
	AgentVersion       json.RawMessage `json:"agentVersion"`
	VTEP               json.RawMessage `json:"vtep"`
	LastHeartbeat      json.RawMessage `json:"lastHeartbeat"`
	CreatedAt          json.RawMessage `json:"createdAt"`
}

// hostResponse is a host as the API shows it.
type hostResponse struct {
	ID                 string            `json:"id"`
	SiteID             string            `json:"siteId"`
	Name               string            `json:"name,omitempty"`
	Capacity           resources         `json:"capacity"`
	Allocated          resources         `json:"allocated"`
	Free               resources         `json:"free"`
	Labels             map[string]string `json:"labels,omitempty"`
	Addresses          []string          `json:"addresses,omitempty"`
	State              mec.HostState     `json:"state"`
	DesiredGeneration  int64             `json:"desiredGeneration"`
	ReportedGeneration int64             `json:"reportedGeneration"`
	AgentVersion       string            `json:"agentVersion,omitempty"`
	VTEP               string            `json:"vtep,omitempty"`
	LastHeartbeat      *time.Time        `json:"lastHeartbeat,omitempty"`
	CreatedAt          time.Time         `json:"createdAt"`
}

// host converts the body to the domain, with what only the wire can get
// wrong: read-only fields sent, and vCPUs finer than a millicore.
func (b hostRequest) host() (mec.Host, []mec.InvalidParam) {
	bad := readOnly(map[string]json.RawMessage{
		"allocated": b.Allocated, "free": b.Free, "state": b.State,
		"desiredGeneration": b.DesiredGeneration, "reportedGeneration": b.ReportedGeneration,
		"agentVersion": b.AgentVersion, "vtep": b.VTEP, "lastHeartbeat": b.LastHeartbeat, "createdAt": b.CreatedAt,
	}, "reported by the agent or kept by the server; cordon or uncordon a host to change its state")
	milli, reason := milliCPU(b.Capacity.VCPU)
	if reason != "" {
		bad = append(bad, mec.InvalidParam{Name: "capacity.vcpu", Reason: reason})
	}
	h := mec.Host{
		ID: b.ID, SiteID: b.SiteID, Name: b.Name, Labels: b.Labels, Addresses: b.Addresses,
		Capacity: mec.Resources{MilliCPU: milli, MemoryMiB: b.Capacity.MemoryMiB, StorageGB: b.Capacity.StorageGB, GPUs: b.Capacity.GPUs},
	}
	return h, bad
}

// milliCPU converts vCPUs to millicores, refusing what would be rounded:
// an operator who typed 0.0005 meant something this API cannot hold.
func milliCPU(vcpu float64) (int64, string) {
	m := vcpu * 1000
	r := math.Round(m)
	if math.Abs(r) > 1<<53 {
		return 0, "too large"
	}
	if math.Abs(m-r) > 1e-6 {
		return 0, "must be a multiple of 0.001 (one millicore)"
	}
	return int64(r), ""
}

func resourcesOut(r mec.Resources) resources {
	return resources{VCPU: float64(r.MilliCPU) / 1000, MemoryMiB: r.MemoryMiB, StorageGB: r.StorageGB, GPUs: r.GPUs}
}

func hostOut(h mec.Host) hostResponse {
	return hostResponse{
		ID: h.ID, SiteID: h.SiteID, Name: h.Name,
		Capacity: resourcesOut(h.Capacity), Allocated: resourcesOut(h.Allocated), Free: resourcesOut(h.Free()),
		Labels: h.Labels, Addresses: h.Addresses, State: h.State,
		DesiredGeneration: h.DesiredGeneration, ReportedGeneration: h.ReportedGeneration,
		AgentVersion: h.AgentVersion, VTEP: h.VTEP, LastHeartbeat: h.LastHeartbeat, CreatedAt: h.CreatedAt,
	}
}

// wireParams renames the domain's field paths to the wire's: the domain
// counts CPU in millicores where the API speaks vCPUs.
func wireParams(ps []mec.InvalidParam) []mec.InvalidParam {
	out := make([]mec.InvalidParam, len(ps))
	for i, p := range ps {
		if p.Name == "capacity.milliCpu" {
			p.Name = "capacity.vcpu"
		}
		out[i] = p
	}
	return out
}

// hostError is err with the wire's field paths.
func hostError(err error) error {
	var mp *mec.Problem
	if !errors.As(err, &mp) || len(mp.InvalidParams) == 0 {
		return err
	}
	p := *mp
	p.InvalidParams = wireParams(mp.InvalidParams)
	p.Detail = strings.ReplaceAll(mp.Detail, "capacity.milliCpu", "capacity.vcpu")
	return &p
}

func hostLocation(id string) string { return "/api/v1/hosts/" + url.PathEscape(id) }

func (h *handler) createHost(w http.ResponseWriter, r *http.Request) {
	var body hostRequest
	if err := decode(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	host, bad := body.host()
	if len(bad) > 0 {
		h.fail(w, r, invalid("host", merge(bad, wireParams(inventory.ValidateHost(host)))))
		return
	}
	host, ver, err := h.inv.CreateHost(r.Context(), host)
	if err != nil {
		h.fail(w, r, hostError(err))
		return
	}
	created(w, hostLocation(host.ID), ver, hostOut(host))
}

func (h *handler) listHosts(w http.ResponseWriter, r *http.Request) {
	hosts, err := h.inv.ListHosts(r.Context(), r.URL.Query().Get("siteId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]hostResponse, 0, len(hosts))
	for _, host := range hosts {
		out = append(out, hostOut(host))
	}
	reply(w, http.StatusOK, 0, out)
}

func (h *handler) getHost(w http.ResponseWriter, r *http.Request) {
	host, ver, err := h.inv.GetHost(r.Context(), r.PathValue("hostId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	replyGet(w, r, ver, hostOut(host))
}

func (h *handler) putHost(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("hostId")
	var body hostRequest
	if err := decode(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	host, bad := body.host()
	if len(bad) > 0 {
		h.fail(w, r, invalid("host", merge(bad, pathID(body.ID, id), wireParams(inventory.ValidateHost(host)))))
		return
	}
	ifVersion, err := ifMatch(r, func() (int64, error) {
		_, v, err := h.inv.GetHost(r.Context(), id)
		return v, err
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	host, ver, err := h.inv.UpdateHost(r.Context(), id, host, ifVersion)
	if err != nil {
		h.fail(w, r, hostError(err))
		return
	}
	reply(w, http.StatusOK, ver, hostOut(host))
}

func (h *handler) deleteHost(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("hostId")
	ifVersion, err := ifMatch(r, func() (int64, error) {
		_, v, err := h.inv.GetHost(r.Context(), id)
		return v, err
	})
	if err == nil {
		err = h.inv.DeleteHost(r.Context(), id, ifVersion)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// cordonHost drains a host: it keeps its instances and takes no new ones.
func (h *handler) cordonHost(w http.ResponseWriter, r *http.Request) {
	h.setState(w, r, mec.HostDraining)
}

// uncordonHost lifts a cordon.
func (h *handler) uncordonHost(w http.ResponseWriter, r *http.Request) {
	h.setState(w, r, mec.HostReady)
}

func (h *handler) setState(w http.ResponseWriter, r *http.Request, state mec.HostState) {
	host, ver, err := h.inv.SetState(r.Context(), r.PathValue("hostId"), state)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	reply(w, http.StatusOK, ver, hostOut(host))
}
