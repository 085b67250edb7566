package operator

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/inventory"
	"github.com/mecorch/mecorch/mec/uetunnel"
)

// FuzzRequestBodies feeds arbitrary bytes to the decoding and validation of
// every inventory body: nothing may panic, every refusal must be a 4xx
// problem, and whatever passes must pass the domain's checks as well.
func FuzzRequestBodies(f *testing.F) {
	for _, seed := range []string{
		nrBody,
		`{"ecgi":{"plmn":{"mcc":"310","mnc":"410"},"cellId":"00000B1"},"siteId":"s"}`,
		`{"id":"edge1","siteId":"s","capacity":{"vcpu":0.25,"memoryMiB":1},"labels":{"a/b":"c"},"addresses":["::1"]}`,
		`{"id":"s","name":"n","countryCode":"DE","latitude":1e1,"longitude":-0}`,
		`{"capacity":{"vcpu":1e308}}`, `{"state":null}`, `[]`, `{`, `{"a":1}`, ``,
		`{"gnbAddress":"10.1.1.2","teid":4294967295,"qfi":9,"sourceAddress":"10.1.1.1"}`, `{"teid":-1,"qfi":64}`,
	} {
		f.Add([]byte(seed))
	}
	cellID := regexp.MustCompile(`^[0-9]{3}-[0-9]{2,3}-([0-9a-f]{7}|[0-9a-f]{9})$`)
	f.Fuzz(func(t *testing.T, body []byte) {
		decodeInto := func(v any) bool {
			req := httptest.NewRequest("POST", "/api/v1/x", bytes.NewReader(body))
			err := decode(httptest.NewRecorder(), req, v)
			var pe *problem.Error
			if err != nil && (!errors.As(err, &pe) || pe.Status < 400 || pe.Status > 499) {
				t.Fatalf("decode error %v is not a 4xx problem", err)
			}
			return err == nil
		}

		var site siteRequest
		if decodeInto(&site) && len(site.readOnly()) == 0 {
			_ = inventory.ValidateSite(site.site())
		}

		var host hostRequest
		if decodeInto(&host) {
			h, bad := host.host()
			if len(bad) == 0 && len(inventory.ValidateHost(h)) == 0 {
				if h.Capacity.MilliCPU <= 0 || h.Capacity.MemoryMiB <= 0 || h.State != "" {
					t.Fatalf("accepted host %+v", h)
				}
			}
		}

		// A UE tunnel that passes the wire's and the domain's checks is
		// one the agent protocol accepts.
		var tun ueTunnelRequest
		if decodeInto(&tun) {
			tt, wire := tun.tunnel("10.45.0.1")
			if canon, domain := uetunnel.Validate(tt); len(wire) == 0 && len(domain) == 0 {
				ds := agentproto.DesiredState{HostID: "h", UETunnels: []agentproto.UETunnel{agentproto.UETunnel(canon)}}
				fr, err := agentproto.NewFrame(agentproto.TypeDesired, 1, 0, ds)
				if err == nil {
					err = agentproto.DecodeBody(fr, &agentproto.DesiredState{})
				}
				if err != nil {
					t.Fatalf("accepted tunnel %+v fails the agent protocol: %v", canon, err)
				}
			}
		}

		var cell cellRequest
		if decodeInto(&cell) && len(cell.readOnly()) == 0 {
			spec := cell.spec()
			if len(inventory.ValidateCell(spec)) == 0 {
				if id := inventory.CellID(spec); !cellID.MatchString(id) {
					t.Fatalf("accepted cell with ID %q", id)
				}
			}
		}
	})
}
