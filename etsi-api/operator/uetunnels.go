package operator

import (
	"fmt"
	"math"
	"net/http"
	"net/url"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/uetunnel"
)

// WithUETunnels serves /api/v1/ue_tunnels from tunnels.
func WithUETunnels(tunnels *uetunnel.Service) Option { return func(h *handler) { h.tunnels = tunnels } }

// ueTunnelRequest is the body of PUT /api/v1/ue_tunnels/{ueAddress}.
// Pointers tell a member left out from a zero; ueAddress may be sent (a
// tunnel read back) but must be the path's. Numbers are read wide, so that
// one out of range is named with its range rather than as a type error.
type ueTunnelRequest struct {
	UEAddress     *string `json:"ueAddress"`
	GNBAddress    *string `json:"gnbAddress"`
	TEID          *int64  `json:"teid"`
	QFI           *int64  `json:"qfi"`
	SourceAddress *string `json:"sourceAddress"`
}

func ueTunnelLocation(ue string) string { return "/api/v1/ue_tunnels/" + url.PathEscape(ue) }

// tunnel converts the body to the domain, with what only the wire can get
// wrong: members missing, numbers out of their type's range, a UE address
// other than the path's.
func (b ueTunnelRequest) tunnel(pathUE string) (uetunnel.Tunnel, []mec.InvalidParam) {
	var bad []mec.InvalidParam
	t := uetunnel.Tunnel{UEAddress: pathUE}
	if b.UEAddress != nil {
		if ue, p := uetunnel.ParseUEAddress(*b.UEAddress); p != nil || ue.String() != pathUE {
			bad = append(bad, mec.InvalidParam{Name: "ueAddress", Reason: fmt.Sprintf("must be %s, the UE address of the path, or absent", pathUE)})
		}
	}
	str := func(name string, v *string, dst *string) {
		if v == nil {
			bad = append(bad, mec.InvalidParam{Name: name, Reason: "required"})
			return
		}
		*dst = *v
	}
	str("gnbAddress", b.GNBAddress, &t.GNBAddress)
	str("sourceAddress", b.SourceAddress, &t.SourceAddress)
	switch {
	case b.TEID == nil:
		bad = append(bad, mec.InvalidParam{Name: "teid", Reason: "required"})
	case *b.TEID < 0 || *b.TEID > math.MaxUint32:
		bad = append(bad, mec.InvalidParam{Name: "teid", Reason: fmt.Sprintf("must be from 0 to %d", uint64(math.MaxUint32))})
	default:
		t.TEID = uint32(*b.TEID)
	}
	switch {
	case b.QFI == nil:
		bad = append(bad, mec.InvalidParam{Name: "qfi", Reason: "required"})
	case *b.QFI < 0 || *b.QFI > 63:
		bad = append(bad, mec.InvalidParam{Name: "qfi", Reason: "must be from 0 to 63"})
	default:
		t.QFI = int(*b.QFI)
	}
	return t, bad
}

// putUETunnel creates (201) or replaces (200) the tunnel of a UE address.
func (h *handler) putUETunnel(w http.ResponseWriter, r *http.Request) {
	ue, bad := uetunnel.ParseUEAddress(r.PathValue("ueAddress"))
	if bad != nil {
		h.fail(w, r, invalid("UE address in the path", bad))
		return
	}
	var body ueTunnelRequest
	if err := decode(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	t, wire := body.tunnel(ue.String())
	_, domain := uetunnel.Validate(t)
	if all := merge(wire, domain); len(all) > 0 {
		h.fail(w, r, invalid("UE tunnel", all))
		return
	}
	t, created, err := h.tunnels.Put(r.Context(), t)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if created {
		w.Header().Set("Location", ueTunnelLocation(t.UEAddress))
		reply(w, http.StatusCreated, 0, t)
		return
	}
	reply(w, http.StatusOK, 0, t)
}

// listUETunnels answers GET /api/v1/ue_tunnels, ordered by UE address
// (IPv4 before IPv6).
func (h *handler) listUETunnels(w http.ResponseWriter, r *http.Request) {
	ts, err := h.tunnels.List(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if ts == nil {
		ts = []uetunnel.Tunnel{}
	}
	reply(w, http.StatusOK, 0, ts)
}

func (h *handler) getUETunnel(w http.ResponseWriter, r *http.Request) {
	t, err := h.tunnels.Get(r.Context(), r.PathValue("ueAddress"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	reply(w, http.StatusOK, 0, t)
}

func (h *handler) deleteUETunnel(w http.ResponseWriter, r *http.Request) {
	if err := h.tunnels.Delete(r.Context(), r.PathValue("ueAddress")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
