package applcm

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

// TestPlacementConstraints: each ETSI constraint and each attribute of the
// x-mecorch-placement extension steers the instance to the one host that
// satisfies it.
func TestPlacementConstraints(t *testing.T) {
	// A square around Marseille (site-b), closed, counter-clockwise.
	marseille := map[string]any{"type": "Polygon", "coordinates": []any{[]any{
		[]any{5.0, 43.0}, []any{6.0, 43.0}, []any{6.0, 44.0}, []any{5.0, 44.0}, []any{5.0, 43.0}}}}
	marseilleText, _ := json.Marshal(marseille)
	tests := []struct {
		name string
		req  map[string]any
		host string
	}{
		{"selected host as a string", map[string]any{"selectedMECHostInfo": []any{map[string]any{"hostId": "h-c1"}}}, "h-c1"},
		{"selected host as an object", map[string]any{"selectedMECHostInfo": []any{map[string]any{"hostId": map[string]any{"hostId": "h-b1"}}}}, "h-b1"},
		{"selected host by id", map[string]any{"selectedMECHostInfo": []any{map[string]any{"hostId": map[string]any{"id": "h-a1"}}}}, "h-a1"},
		{"country", map[string]any{"locationConstraints": map[string]any{"countryCode": "DE"}}, "h-c1"},
		{"area", map[string]any{"locationConstraints": map[string]any{"area": marseille}}, "h-b1"},
		{"area as text", map[string]any{"locationConstraints": map[string]any{"countryCode": "FR", "area": string(marseilleText)}}, "h-b1"},
		{"zone", map[string]any{placementExt: map[string]any{"zones": []any{"east"}}}, "h-c1"},
		{"site", map[string]any{placementExt: map[string]any{"siteIds": []any{"site-b"}}}, "h-b1"},
		{"label", map[string]any{placementExt: map[string]any{"hostLabels": map[string]any{"tier": "gold"}}}, "h-a1"},
		{"label present", map[string]any{placementExt: map[string]any{"hostLabels": map[string]any{"tier": ""}, "zones": []any{"south", "east"}}}, "h-b1"},
	}
	onEngines(t, func(t *testing.T, e *env) {
		e.standardSites()
		for _, tc := range tests {
			id := e.createInstance(tc.name)
			opID := e.instantiate(id, tc.req)
			info := e.instance(id)
			if got := hostOf(info); got != tc.host {
				t.Errorf("%s: placed on %q, want %q", tc.name, got, tc.host)
			}
			ext := info["x-mecorch"].(map[string]any)
			if ext["placement"].(map[string]any)["hostId"] != tc.host {
				t.Errorf("%s: placement decision %v", tc.name, ext["placement"])
			}
			// Free the room again for the next case.
			wantStatus(t, e.do("POST", "app_lcm_op_occs/"+opID+"/cancel", nil), http.StatusAccepted)
			wantStatus(t, e.do("POST", "app_lcm_op_occs/"+opID+"/fail", nil), http.StatusOK)
		}
	})
}

// TestSpreadAcrossSites: replicas of one app land on different sites while
// sites without one are left.
func TestSpreadAcrossSites(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		e.standardSites()
		e.addHost("h-a2", "site-a", 4, nil) // site-a has two hosts: still one replica
		seen := map[string]bool{}
		for i := 0; i < 3; i++ {
			id := e.createInstance("replica")
			e.instantiate(id, map[string]any{})
			site := e.instance(id)["x-mecorch"].(map[string]any)["siteId"].(string)
			if seen[site] {
				t.Errorf("replica %d placed on %s, which already has one", i, site)
			}
			seen[site] = true
		}
		// A different spread key starts afresh.
		id := e.createInstance("other")
		e.instantiate(id, map[string]any{placementExt: map[string]any{"spreadKey": "other-group"}})
		if e.instance(id)["x-mecorch"].(map[string]any)["constraints"].(map[string]any)["spreadKey"] != "other-group" {
			t.Errorf("spread key not kept")
		}
	})
}

// TestNoFit: constraints no host meets are the client's to change (422);
// hosts that match but are full are worth retrying (409).
func TestNoFit(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		e.standardSites()
		id := e.createInstance("nowhere")
		r := e.do("POST", "app_instances/"+id+"/instantiate", map[string]any{placementExt: map[string]any{"zones": []any{"atlantis"}}})
		wantStatus(t, r, http.StatusUnprocessableEntity)
		wantParams(t, r, placementExt+".zones")
		r = e.do("POST", "app_instances/"+id+"/instantiate", map[string]any{"selectedMECHostInfo": []any{map[string]any{"hostId": "h-zz"}}})
		wantStatus(t, r, http.StatusUnprocessableEntity)
		wantParams(t, r, "selectedMECHostInfo")
		// A served cell the inventory does not know, named at its path
		// in the request.
		r = e.do("POST", "app_instances/"+id+"/instantiate", map[string]any{placementExt: map[string]any{"cells": []any{"001-01-00000dead"}}})
		wantStatus(t, r, http.StatusUnprocessableEntity)
		wantParams(t, r, placementExt+".cells[0]")
		// Each host is counted under the first filter that turns it away.
		r = e.do("POST", "app_instances/"+id+"/instantiate", map[string]any{"locationConstraints": map[string]any{"countryCode": "FR"},
			placementExt: map[string]any{"hostLabels": map[string]any{"tier": "bronze"}}})
		wantStatus(t, r, http.StatusUnprocessableEntity)
		wantParams(t, r, "locationConstraints.countryCode", placementExt+".hostLabels")

		for i := 0; i < 12; i++ {
			e.instantiate(e.createInstance("filler"), map[string]any{})
		}
		r = e.do("POST", "app_instances/"+id+"/instantiate", map[string]any{})
		wantStatus(t, r, http.StatusConflict)
		wantParams(t, r, "milliCpu")
		r = e.do("POST", "app_instances/"+id+"/instantiate", map[string]any{"selectedMECHostInfo": []any{map[string]any{"hostId": "h-a1"}}})
		wantStatus(t, r, http.StatusConflict)
		wantParams(t, r, "selectedMECHostInfo", "milliCpu")
		if info := e.instance(id); info["instantiationState"] != mec.NotInstantiated || info["x-mecorch"] != nil {
			t.Errorf("a refused instantiation left traces: %v", info)
		}
	})
}

// TestComputeOverride: a virtualComputeDescriptor or osContainerDescriptor
// in the request replaces the AppD's, for what is reserved; a wrong one is
// a 400 with the paths of the request.
func TestComputeOverride(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		e.standardSites()
		vm := map[string]any{"virtualComputeDescriptor": map[string]any{
			"virtualComputeDescId": "big", "virtualCpu": map[string]any{"numVirtualCpu": 2},
			"virtualMemory": map[string]any{"virtualMemSize": 1024}}}
		id := e.createInstance("big")
		e.instantiate(id, vm)
		host := hostOf(e.instance(id))
		if got := e.host(host).Allocated; got.MilliCPU != 2000 || got.MemoryMiB != 1024 {
			t.Errorf("a 2-vCPU override reserved %+v", got)
		}

		containers := map[string]any{"osContainerDescriptor": []any{map[string]any{
			"osContainerDescId": "c1", "name": "echo", "description": "echo server", "requestedCpuResources": 250,
			"requestedMemoryResources": 128,
			"swImageDesc":              map[string]any{"id": "img", "name": "echo", "version": "1", "containerFormat": "DOCKER", "swImage": "echo:1"}}}}
		id2 := e.createInstance("small")
		e.instantiate(id2, containers)
		info := e.instance(id2)
		reserved := info["x-mecorch"].(map[string]any)["reserved"].(map[string]any)
		if reserved["milliCpu"] != 250.0 || reserved["memoryMiB"] != 128.0 {
			t.Errorf("a 250m container override reserved %v", reserved)
		}

		bad := map[string]any{"virtualComputeDescriptor": map[string]any{
			"virtualComputeDescId": "bad", "virtualCpu": map[string]any{"numVirtualCpu": "two"}}}
		id3 := e.createInstance("bad")
		r := e.do("POST", "app_instances/"+id3+"/instantiate", bad)
		wantStatus(t, r, http.StatusBadRequest)
		for _, p := range problemParams(t, r) {
			if len(p.Name) < len("virtualComputeDescriptor") || p.Name[:len("virtualComputeDescriptor")] != "virtualComputeDescriptor" {
				t.Errorf("override error outside the override: %+v", p)
			}
		}
	})
}

func problemParams(t *testing.T, r response) []mec.InvalidParam {
	t.Helper()
	var p struct {
		InvalidParams []mec.InvalidParam `json:"invalidParams"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body: %v", err)
	}
	return p.InvalidParams
}
