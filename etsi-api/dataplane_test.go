package etsiapi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"
)

// dpDesired is the data-plane side of a pushed desired state.
type dpDesired struct {
	Generation int64 `json:"generation"`
	Instances  []struct {
		ID, State string
	} `json:"instances"`
	UETunnels []struct {
		UEAddress string `json:"ueAddress"`
		TEID      uint32 `json:"teid"`
	} `json:"ueTunnels"`
	Remote []struct {
		ID, AppDID, HostID, VTEP, MAC string
		TrafficRules                  []struct {
			ID string `json:"trafficRuleId"`
		} `json:"trafficRules"`
	} `json:"remoteInstances"`
	Peers []struct{ HostID, VTEP string } `json:"tunnelPeers"`
}

// nextDesired reads pushed desired states until one satisfies ok; each one
// must be newer than the last (agents ignore the others).
func (a *wsAgent) nextDesired(last *int64, ok func(dpDesired) bool) dpDesired {
	a.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var ds dpDesired
		if err := json.Unmarshal(a.next("desired").Body, &ds); err != nil {
			a.t.Fatal(err)
		}
		if ds.Generation <= *last {
			a.t.Fatalf("desired state pushed at generation %d after %d", ds.Generation, *last)
		}
		*last = ds.Generation
		if ok(ds) {
			return ds
		}
	}
	a.t.Fatal("no desired state as expected")
	return dpDesired{}
}

// TestDataPlanePropagation: changes elsewhere that alter a host's data
// plane (a tunnel peer arriving, a UE tunnel provisioned, an app's
// instance starting on another host) reach the connected agent as a newer
// generation, with no other trigger; the agent's counters are shown by the
// agents API.
func TestDataPlanePropagation(t *testing.T) {
	for name, open := range engines(t) {
		t.Run(name, func(t *testing.T) {
			s := start(t, open(t))
			s.must("POST", "/api/v1/sites", map[string]any{"id": "s1", "name": "one"}, http.StatusCreated)
			s.must("POST", "/api/v1/sites", map[string]any{"id": "s2", "name": "two"}, http.StatusCreated)
			agent := func(host, site, vtep string) (*wsAgent, *int64) {
				a, _, err := s.dialAgent(s.token(host, "agent"))
				if err != nil {
					t.Fatal(err)
				}
				h := hello(host, site)
				h["vtep"] = vtep
				a.send("hello", 1, h)
				a.next("welcome")
				last := int64(-1)
				return a, &last
			}
			a1, g1 := agent("h1", "s1", "192.0.2.1")
			a2, g2 := agent("h2", "s2", "192.0.2.2")
			peers := func(want string) func(dpDesired) bool {
				return func(ds dpDesired) bool { return len(ds.Peers) == 1 && ds.Peers[0].HostID == want }
			}
			a1.nextDesired(g1, peers("h2"))
			ds := a2.nextDesired(g2, peers("h1"))
			if ds.Peers[0].VTEP != "192.0.2.1" {
				t.Fatalf("h2's peers %+v", ds.Peers)
			}
			var host struct {
				VTEP string `json:"vtep"`
			}
			_ = json.Unmarshal(s.must("GET", "/api/v1/hosts/h1", nil, http.StatusOK), &host)
			if host.VTEP != "192.0.2.1" {
				t.Fatalf("h1's VTEP %q", host.VTEP)
			}

			// A UE tunnel provisioned by the operator reaches both.
			s.must("PUT", "/api/v1/ue_tunnels/10.45.0.9", map[string]any{"gnbAddress": "10.1.1.2", "teid": 77, "qfi": 9,
				"sourceAddress": "10.1.1.1"}, http.StatusCreated)
			tunnel := func(ds dpDesired) bool { return len(ds.UETunnels) == 1 && ds.UETunnels[0].TEID == 77 }
			a1.nextDesired(g1, tunnel)
			a2.nextDesired(g2, tunnel)

			// The sample app (it has a traffic rule) starts on h1: h2
			// steers to it once h1's agent reports it running with its MAC.
			zip, err := os.ReadFile("../examples/edge-echo.zip")
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(zip)
			var pkg struct{ ID string }
			_ = json.Unmarshal(s.must("POST", "/app_pkgm/v1/onboarded_app_packages", map[string]any{"appPkgName": "echo", "appPkgVersion": "1",
				"checksum": map[string]any{"algorithm": "SHA-256", "hash": hex.EncodeToString(sum[:])}}, http.StatusCreated), &pkg)
			s.must("PUT", "/app_pkgm/v1/onboarded_app_packages/"+pkg.ID+"/package_content", zip, http.StatusAccepted)
			var info struct {
				AppDID string `json:"appDId"`
			}
			for deadline := time.Now().Add(10 * time.Second); info.AppDID == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				_ = json.Unmarshal(s.must("GET", "/app_pkgm/v1/onboarded_app_packages/"+pkg.ID, nil, http.StatusOK), &info)
			}
			var in struct{ ID string }
			_ = json.Unmarshal(s.must("POST", "/app_lcm/v1/app_instances", map[string]any{"appDId": info.AppDID}, http.StatusCreated), &in)
			s.must("POST", "/app_lcm/v1/app_instances/"+in.ID+"/instantiate",
				map[string]any{"x-mecorch-placement": map[string]any{"siteIds": []string{"s1"}}}, http.StatusAccepted)
			ds = a1.nextDesired(g1, func(ds dpDesired) bool { return len(ds.Instances) == 1 })
			if ds.Instances[0].ID != in.ID {
				t.Fatalf("h1's instances %+v", ds.Instances)
			}
			a1.send("status", 2, map[string]any{"hostId": "h1", "generation": ds.Generation, "instances": []any{
				map[string]any{"id": in.ID, "state": "Running", "address": "10.200.0.2", "mac": "02:42:0A:C8:00:02"}},
				"trafficRuleCounters": []any{map[string]any{"instanceId": in.ID, "trafficRuleId": "echo-udp", "packets": 12, "bytes": 960}},
				"dataPlane":           map[string]any{"ues": 1, "learned": 3, "droppedUnknownUe": 0, "steerFailed": 0, "encapFailed": 0}})
			ds = a2.nextDesired(g2, func(ds dpDesired) bool { return len(ds.Remote) == 1 })
			r := ds.Remote[0]
			if r.ID != in.ID || r.HostID != "h1" || r.VTEP != "192.0.2.1" || r.MAC != "02:42:0a:c8:00:02" || r.AppDID != info.AppDID || len(r.TrafficRules) == 0 {
				t.Fatalf("h2's remote instance %+v", r)
			}
			// h1 runs the app itself: it steers nowhere.
			s.must("GET", "/api/v1/hosts/h1/desired-state", nil, http.StatusOK)
			var d1 dpDesired
			_ = json.Unmarshal(s.must("GET", "/api/v1/hosts/h1/desired-state", nil, http.StatusOK), &d1)
			if len(d1.Remote) != 0 {
				t.Fatalf("h1 steers to %+v", d1.Remote)
			}
			// A generation the sync moved is one h2 may report.
			a2.send("status", 2, map[string]any{"hostId": "h2", "generation": ds.Generation, "instances": []any{}})
			var h2 struct {
				ReportedGeneration int64 `json:"reportedGeneration"`
			}
			for deadline := time.Now().Add(10 * time.Second); h2.ReportedGeneration != ds.Generation && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				_ = json.Unmarshal(s.must("GET", "/api/v1/hosts/h2", nil, http.StatusOK), &h2)
			}
			if h2.ReportedGeneration != ds.Generation {
				t.Fatalf("h2 reported generation %d, want %d", h2.ReportedGeneration, ds.Generation)
			}

			// The counters h1 reported, on the agents API.
			type counters struct {
				HostID    string `json:"hostId"`
				DataPlane *struct {
					UEs     int    `json:"ues"`
					Learned uint64 `json:"learned"`
				} `json:"dataPlane"`
				TrafficRuleCounters []struct {
					InstanceID, TrafficRuleID string
					Packets                   uint64
				} `json:"trafficRuleCounters"`
			}
			var one counters
			_ = json.Unmarshal(s.must("GET", "/api/v1/agents/h1", nil, http.StatusOK), &one)
			if one.DataPlane == nil || one.DataPlane.Learned != 3 || len(one.TrafficRuleCounters) != 1 || one.TrafficRuleCounters[0].Packets != 12 {
				t.Fatalf("h1's counters %+v", one)
			}
			var all []counters
			_ = json.Unmarshal(s.must("GET", "/api/v1/agents", nil, http.StatusOK), &all)
			if len(all) != 2 || all[0].HostID != "h1" || all[0].DataPlane == nil || all[1].DataPlane != nil {
				t.Fatalf("agents %+v", all)
			}
			// A report without counts keeps the last ones.
			a1.send("status", 3, map[string]any{"hostId": "h1", "generation": ds.Generation, "instances": []any{
				map[string]any{"id": in.ID, "state": "Running", "mac": "02:42:0a:c8:00:02"}}})
			a1.send("heartbeat", 4, map[string]any{"time": time.Now().UTC(), "generation": 0})
			_ = json.Unmarshal(s.must("GET", "/api/v1/agents/h1", nil, http.StatusOK), &one)
			if one.DataPlane == nil {
				t.Fatal("a report without counts dropped the last ones")
			}

			// An operator deleting h2 takes it out of h1's peers.
			a2.conn.Close()
			s.must("DELETE", "/api/v1/hosts/h2", nil, http.StatusNoContent)
			a1.nextDesired(g1, func(ds dpDesired) bool { return len(ds.Peers) == 0 })
		})
	}
}
