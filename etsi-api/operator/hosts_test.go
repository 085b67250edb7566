package operator

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

// allocate writes what the lifecycle would when it places an instance: the
// instance and its share of the host's Allocated.
func (a *api) allocate(hostID, instanceID string, need mec.Resources) {
	a.t.Helper()
	err := a.store.Update(context.Background(), func(tx mec.Tx) error {
		h, v, err := mec.Load[mec.Host](tx, mec.KindHost, hostID)
		if err != nil {
			return err
		}
		h.Allocated = h.Allocated.Add(need)
		h.DesiredGeneration++
		if _, err := mec.Save(tx, mec.KindHost, hostID, h, v); err != nil {
			return err
		}
		in := mec.AppInstance{ID: instanceID, HostID: hostID, SiteID: h.SiteID, InstantiationState: mec.Instantiated,
			DesiredState: mec.DesiredRunning, Reserved: need}
		_, err = mec.Save(tx, mec.KindAppInstance, instanceID, in, mec.MustNotExist)
		return err
	})
	if err != nil {
		a.t.Fatalf("allocate: %v", err)
	}
}

func TestHostsCRUD(t *testing.T) {
	forEachEngine(t, func(t *testing.T, a *api) {
		a.mustSite("site-1")
		a.mustSite("site-2")

		body := hostBody("edge1-a", "site-1")
		body["capacity"] = map[string]any{"vcpu": 15.5, "memoryMiB": 65536, "storageGB": 500, "gpus": 1}
		var h hostResponse
		a.do("POST", "/api/v1/hosts", body).ok(http.StatusCreated, &h).
			wantHeader("Location", "/api/v1/hosts/edge1-a").wantHeader("ETag", `"1"`)
		full := resources{VCPU: 15.5, MemoryMiB: 65536, StorageGB: 500, GPUs: 1}
		if h.Capacity != full || h.Free != full || h.Allocated != (resources{}) || h.State != mec.HostUnknown ||
			h.SiteID != "site-1" || h.Labels["gpu"] != "a100" || !slices.Equal(h.Addresses, []string{"10.1.0.10"}) ||
			h.DesiredGeneration != 0 || h.LastHeartbeat != nil || !h.CreatedAt.Equal(testNow) {
			t.Errorf("created %+v", h)
		}
		// The wire shape, not just what Go decodes: vcpu as a number, no milliCpu.
		raw := a.do("GET", "/api/v1/hosts/edge1-a", nil).ok(http.StatusOK, nil).wantHeader("ETag", `"1"`).body
		for _, want := range []string{`"capacity":{"vcpu":15.5,"memoryMiB":65536,"storageGB":500,"gpus":1}`, `"free":{"vcpu":15.5`, `"state":"Unknown"`} {
			if !strings.Contains(string(raw), want) {
				t.Errorf("GET body %s lacks %s", raw, want)
			}
		}

		a.do("POST", "/api/v1/hosts", hostBody("edge2-a", "site-2")).ok(http.StatusCreated, nil)
		for query, want := range map[string]string{"": "edge1-a,edge2-a", "?siteId=site-2": "edge2-a", "?siteId=none": ""} {
			var list []hostResponse
			a.do("GET", "/api/v1/hosts"+query, nil).ok(http.StatusOK, &list)
			var ids []string
			for _, h := range list {
				ids = append(ids, h.ID)
			}
			if strings.Join(ids, ",") != want {
				t.Errorf("GET /api/v1/hosts%s = %v, want %s", query, ids, want)
			}
		}
		if raw := a.do("GET", "/api/v1/hosts?siteId=none", nil).body; strings.TrimSpace(string(raw)) != "[]" {
			t.Errorf("empty list = %s, want []", raw)
		}

		// An instance lands: PUT keeps what the lifecycle wrote.
		need := mec.Resources{MilliCPU: 2500, MemoryMiB: 4096, StorageGB: 10}
		a.allocate("edge1-a", "inst-1", need)
		put := hostBody("", "site-1")
		delete(put, "id")
		put["labels"] = map[string]string{"tier": "gold"}
		var upd hostResponse
		a.do("PUT", "/api/v1/hosts/edge1-a", put, "If-Match", `"2"`).ok(http.StatusOK, &upd).wantHeader("ETag", `"3"`)
		if upd.Allocated != (resources{VCPU: 2.5, MemoryMiB: 4096, StorageGB: 10}) ||
			upd.Free != (resources{VCPU: 13.5, MemoryMiB: 61440, StorageGB: 490, GPUs: 1}) ||
			upd.DesiredGeneration != 1 || upd.Labels["tier"] != "gold" || upd.Labels["gpu"] != "" {
			t.Errorf("updated %+v", upd)
		}
		a.do("PUT", "/api/v1/hosts/edge1-a", put, "If-Match", `"2"`).problem(http.StatusPreconditionFailed)

		// Cordon and uncordon.
		var c hostResponse
		a.do("POST", "/api/v1/hosts/edge1-a/cordon", nil).ok(http.StatusOK, &c).wantHeader("ETag", `"4"`)
		if c.State != mec.HostDraining {
			t.Errorf("cordoned state = %s", c.State)
		}
		a.do("POST", "/api/v1/hosts/edge1-a/cordon", nil).ok(http.StatusOK, nil).wantHeader("ETag", `"4"`)
		a.do("POST", "/api/v1/hosts/edge1-a/uncordon", nil).ok(http.StatusOK, &c)
		if c.State != mec.HostUnknown { // no agent ever reported: not Ready
			t.Errorf("uncordoned state = %s, want Unknown", c.State)
		}
		a.do("POST", "/api/v1/hosts/nope/cordon", nil).problem(http.StatusNotFound)

		// Instances keep the host.
		p := a.do("DELETE", "/api/v1/hosts/edge1-a", nil).problem(http.StatusConflict)
		if !strings.Contains(p.Detail, `"inst-1"`) {
			t.Errorf("detail %q does not name the instance", p.Detail)
		}
		a.do("DELETE", "/api/v1/hosts/edge2-a", nil, "If-Match", `"9"`).problem(http.StatusPreconditionFailed)
		a.do("DELETE", "/api/v1/hosts/edge2-a", nil, "If-Match", `"1"`).ok(http.StatusNoContent, nil)
		a.do("GET", "/api/v1/hosts/edge2-a", nil).problem(http.StatusNotFound)
	})
}

func TestHostBodyErrors(t *testing.T) {
	tests := []struct {
		name   string
		method string
		edit   func(b map[string]any)
		status int
		params []string
	}{
		{"capacity and addresses, together", "POST", func(b map[string]any) {
			b["capacity"] = map[string]any{"vcpu": 0, "memoryMiB": -1, "storageGB": -1}
			b["addresses"] = []string{"10.0.0.1", "not-an-ip"}
			b["labels"] = map[string]string{"foo": "bad value"}
		}, 400, []string{"capacity.vcpu", "capacity.memoryMiB", "capacity.storageGB", "labels.foo", "addresses[1]"}},
		{"vcpu finer than a millicore", "POST", func(b map[string]any) {
			b["capacity"] = map[string]any{"vcpu": 0.0005, "memoryMiB": 0}
		}, 400, []string{"capacity.vcpu", "capacity.memoryMiB"}},
		{"read-only fields", "POST", func(b map[string]any) {
			b["state"] = "Ready"
			b["allocated"] = map[string]any{"vcpu": 1}
			b["free"] = map[string]any{}
			b["vtep"] = "192.0.2.1"
			b["siteId"] = ""
		}, 400, []string{"allocated", "free", "state", "vtep", "siteId"}},
		{"wrong type, nested", "POST", func(b map[string]any) {
			b["capacity"] = map[string]any{"vcpu": 1, "memoryMiB": 1.5}
		}, 400, []string{"capacity.memoryMiB"}},
		{"unknown field", "POST", func(b map[string]any) { b["rack"] = "r1" }, 400, []string{"rack"}},
		{"missing site", "POST", func(b map[string]any) { b["siteId"] = "site-9" }, 422, []string{"siteId"}},
		{"duplicate", "POST", func(b map[string]any) { b["id"] = "edge1" }, 409, nil},
		{"put id mismatch", "PUT", func(b map[string]any) { b["id"] = "edge2" }, 400, []string{"id"}},
		{"put below allocation", "PUT", func(b map[string]any) {
			b["capacity"] = map[string]any{"vcpu": 1, "memoryMiB": 65536, "gpus": 0}
		}, 409, []string{"capacity.vcpu", "capacity.storageGB", "capacity.gpus"}},
		{"put moves a host with instances", "PUT", func(b map[string]any) { b["siteId"] = "site-2" }, 409, []string{"siteId"}},
	}
	forEachEngine(t, func(t *testing.T, a *api) {
		a.mustSite("site-1")
		a.mustSite("site-2")
		a.do("POST", "/api/v1/hosts", hostBody("edge1", "site-1")).ok(http.StatusCreated, nil)
		a.allocate("edge1", "inst-1", mec.Resources{MilliCPU: 2000, MemoryMiB: 1024, StorageGB: 1, GPUs: 1})
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				b := hostBody("edge-new", "site-1")
				path := "/api/v1/hosts"
				if tt.method == "PUT" {
					b["id"] = "edge1"
					path += "/edge1"
				}
				tt.edit(b)
				p := a.do(tt.method, path, b).problem(tt.status)
				params(t, p, tt.params...)
				if strings.Contains(p.Detail, "milliCpu") {
					t.Errorf("detail %q speaks the domain's units", p.Detail)
				}
			})
		}
		var h hostResponse
		a.do("GET", "/api/v1/hosts/edge1", nil).ok(http.StatusOK, &h)
		if h.SiteID != "site-1" || h.Capacity.VCPU != 16 {
			t.Errorf("a refused PUT changed the host: %+v", h)
		}
	})
}

// TestHostRoundTripRefusesReadOnly: a host read and sent back as is is
// refused with the fields to drop, not accepted with them silently ignored.
func TestHostRoundTripRefusesReadOnly(t *testing.T) {
	forEachEngine(t, func(t *testing.T, a *api) {
		a.mustSite("site-1")
		var doc map[string]json.RawMessage
		a.do("POST", "/api/v1/hosts", hostBody("edge1", "site-1")).ok(http.StatusCreated, &doc)
		p := a.do("PUT", "/api/v1/hosts/edge1", doc).problem(http.StatusBadRequest)
		params(t, p, "allocated", "createdAt", "desiredGeneration", "free", "reportedGeneration", "state")
	})
}
