package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mecorch/mecorch/lab/bootstrap"
	"github.com/mecorch/mecorch/lab/runner"
	"github.com/mecorch/mecorch/lab/topology"
	"github.com/mecorch/mecorch/traffic/netns"
)

const (
	cellB1 = "262-01-0000000b1"
	cellB2 = "262-01-0000000b2"
)

// TestLatencyPlacementFollowsMeasurements runs lab/latency-2site.clab.yml:
// the agents measure, with STAMP, their RTT to site B's gNB; an app with a
// 6 ms one-way bound, placed for site B's cells, lands on edge-a, whose
// measured path to the cells is shortest, not on edge-b, the host at site B.
// When edge-a's link slows past the bound, the SLA watch raises an alarm and
// moves the instance to edge-b, once.
func TestLatencyPlacementFollowsMeasurements(t *testing.T) {
	lab, topo := upLab(t, "latency-2site.clab.yml", "orchestrator", "edge-a", "edge-b", "gnb-b")
	api := apiClient{base: "http://10.9.0.1:8080", token: os.Getenv("MECORCH_ADMIN_TOKEN"), hc: httpFrom(lab, "agg")}
	res, err := bootstrap.Run(context.Background(), topo, bootstrap.Config{API: api.base, Token: api.token, HTTP: api.hc, Wait: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cells) != 2 || len(res.Hosts) != 2 {
		t.Fatalf("bootstrap registered cells %v and hosts %v", res.Cells, res.Hosts)
	}

	// Both sites' agents measure the cells: edge-a across agg (1 + 0.5 ms
	// each way), edge-b across its slow link (4 + 0.5 ms).
	for _, c := range []struct {
		site string
		want time.Duration
	}{{"site-a", 3 * time.Millisecond}, {"site-b", 9 * time.Millisecond}} {
		e := api.waitMeasured(t, "cell_site/"+cellB1+"/"+c.site, 60*time.Second)
		t.Logf("%s ↔ %s: measured RTT %v (p95 %v, source %s, reporters %v)", cellB1, c.site,
			time.Duration(e.RTTNs), time.Duration(e.Stats.P95Ns), e.Stats.Source, e.Reporters)
		if !within(time.Duration(e.RTTNs), c.want) {
			t.Errorf("%s ↔ %s: measured %v, the lab's configured RTT is %v", cellB1, c.site, time.Duration(e.RTTNs), c.want)
		}
		if e.Stats.Source != "kernel" && e.Stats.Source != "hardware" {
			t.Errorf("%s ↔ %s: timestamps from %q, want the kernel's", cellB1, c.site, e.Stats.Source)
		}
	}

	pkg := latencyPackage(t, 6*time.Millisecond)
	appDID := api.onboard(t, pkg)
	var in struct{ ID string }
	api.call(t, "POST", "/app_lcm/v1/app_instances", map[string]string{"appDId": appDID, "appInstanceName": "near-b"}, &in, 201)
	api.call(t, "POST", "/app_lcm/v1/app_instances/"+in.ID+"/instantiate",
		map[string]any{"x-mecorch-placement": map[string]any{"cells": []string{cellB1, cellB2}}}, nil, 202)
	inst := api.instance(t, in.ID)
	if inst.Ext.HostID != "edge-a" {
		t.Fatalf("placed on %s, want edge-a (measured nearest to site B's cells); decision %+v", inst.Ext.HostID, inst.Ext.Placement)
	}
	var lostB bool
	for _, c := range inst.Ext.Placement.Top {
		t.Logf("candidate %s: total %.3f, latency %+v: %s", c.HostID, c.Total, c.Latency, c.Why)
		if c.Latency == nil || c.Why == "" {
			t.Errorf("candidate %s has no latency or reason: %+v", c.HostID, c)
		}
		if c.HostID == "edge-b" {
			lostB = true
		}
	}
	if !lostB {
		t.Errorf("edge-b is not among the recorded candidates: %+v", inst.Ext.Placement)
	}
	// The operator reads the same decision, with what it was placed for.
	var pv struct {
		HostID      string `json:"hostId"`
		Constraints struct {
			Cells        []string `json:"cells"`
			MaxLatencyNs int64    `json:"maxLatencyNs"`
		} `json:"constraints"`
		Decision struct {
			Top []scored `json:"top"`
		} `json:"decision"`
	}
	api.call(t, "GET", "/api/v1/app_instances/"+in.ID+"/placement", nil, &pv, 200)
	if pv.HostID != "edge-a" || len(pv.Decision.Top) != len(inst.Ext.Placement.Top) ||
		pv.Constraints.MaxLatencyNs != int64(6*time.Millisecond) || len(pv.Constraints.Cells) != 2 {
		t.Errorf("operator's placement view %+v", pv)
	}
	api.waitRunning(t, in.ID, "edge-a")

	// edge-a's link slows to 6 ms each way: 6.5 ms + 1 ms radio > 6 ms.
	i, ok := lab.LinkIndex("edge-a", "eth1")
	if !ok {
		t.Fatal("no edge-a:eth1 link")
	}
	slow := topology.Impairment{Delay: 6 * time.Millisecond}
	if err := lab.SetImpairment(i, slow, slow); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	deadline := changed.Add(60 * time.Second)
	for {
		inst = api.instance(t, in.ID)
		if inst.Ext.HostID != "edge-a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the instance stayed on edge-a for 60 s after its link broke the bound")
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("re-placed on %s %v after the link slowed down", inst.Ext.HostID, time.Since(changed).Round(100*time.Millisecond))
	if inst.Ext.HostID != "edge-b" || inst.Ext.Moves != 1 {
		t.Fatalf("after the breach: host %s, moves %d; want edge-b, 1", inst.Ext.HostID, inst.Ext.Moves)
	}
	var alarms []struct {
		ManagedObjectID string `json:"managedObjectId"`
		ProbableCause   string `json:"probableCause"`
	}
	api.call(t, "GET", "/api/v1/alarms", nil, &alarms, 200)
	raised := false
	for _, a := range alarms {
		raised = raised || (a.ManagedObjectID == in.ID && strings.Contains(strings.ToLower(a.ProbableCause), "latency"))
	}
	if !raised {
		t.Errorf("no latency alarm on the instance: %+v", alarms)
	}
	api.waitRunning(t, in.ID, "edge-b")
	// Once: several more windows with edge-a still slow and edge-b within
	// the bound move nothing.
	time.Sleep(10 * time.Second)
	if inst = api.instance(t, in.ID); inst.Ext.HostID != "edge-b" || inst.Ext.Moves != 1 {
		t.Errorf("10 s later: host %s, moves %d; want edge-b, 1", inst.Ext.HostID, inst.Ext.Moves)
	}
}

// latencyPackage builds the sample app (its echoapp build) with an AppD
// whose appLatency.maxLatency is bound, under an appDId of its own.
func latencyPackage(t *testing.T, bound time.Duration) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "sample-app", "Definitions", "edge-echo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "appDId: 5f1c1d2e-8a4b-4c57-9d0e-3b7a6e2f0c11", "appDId: 7a0e55c3-latency-bound-edge-echo", 1)
	s = strings.Replace(s, "Artifacts/edge-echo.sh", "Artifacts/edge-echo", 1)
	s = strings.Replace(s, "maxLatency: 10000000 # 10 ms, in ns", fmt.Sprintf("maxLatency: %d", bound.Nanoseconds()), 1)
	if !strings.Contains(s, fmt.Sprintf("maxLatency: %d\n", bound.Nanoseconds())) {
		t.Fatal("the sample AppD's appLatency is not where the test expects it")
	}
	return echoPackage(t, "edge-echo", "mecorch-examples", s)
}

// httpFrom is an HTTP client whose connections start in a node's
// namespace: mecorch listens inside the lab.
func httpFrom(lab *runner.Lab, node string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := netns.Do(lab.NetnsPath(node), func() error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
}

type apiClient struct {
	base, token string
	hc          *http.Client
}

// call sends body as JSON and decodes the answer into out, failing the
// test on another status than want.
func (a apiClient) call(t *testing.T, method, path string, body, out any, want int) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	if err := a.do(method, path, "application/json", r, out, want); err != nil {
		t.Fatal(err)
	}
}

func (a apiClient) do(method, path, ctype string, body io.Reader, out any, want int) error {
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// rttEntry is the part of an RTT map entry the test reads.
type rttEntry struct {
	RTTNs     int64    `json:"rttNs"`
	Quality   string   `json:"quality"`
	Reporters []string `json:"reporters"`
	Stats     struct {
		P95Ns  int64  `json:"p95Ns"`
		Source string `json:"source"`
	} `json:"stats"`
}

func (a apiClient) waitMeasured(t *testing.T, pair string, wait time.Duration) rttEntry {
	t.Helper()
	deadline := time.Now().Add(wait)
	var e rttEntry
	for {
		a.call(t, "GET", "/api/v1/rtt/"+pair, nil, &e, 200)
		if e.Quality == "measured" {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never measured: %+v", pair, e)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// onboard uploads a package and waits until it is ONBOARDED.
func (a apiClient) onboard(t *testing.T, data []byte) string {
	t.Helper()
	sum := sha256.Sum256(data)
	var pkg struct{ ID string }
	a.call(t, "POST", "/app_pkgm/v1/onboarded_app_packages", map[string]any{"appPkgName": "latency-echo", "appPkgVersion": "1.0.0",
		"checksum": map[string]string{"algorithm": "SHA-256", "hash": hex.EncodeToString(sum[:])}}, &pkg, 201)
	if err := a.do("PUT", "/app_pkgm/v1/onboarded_app_packages/"+pkg.ID+"/package_content", "application/zip", bytes.NewReader(data), nil, 202); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var p struct{ AppDID, OnboardingState string }
		a.call(t, "GET", "/app_pkgm/v1/onboarded_app_packages/"+pkg.ID, nil, &p, 200)
		if p.OnboardingState == "ONBOARDED" {
			return p.AppDID
		}
		if time.Now().After(deadline) {
			t.Fatalf("package is %s after 30 s", p.OnboardingState)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type scored struct {
	HostID  string  `json:"hostId"`
	Total   float64 `json:"total"`
	Latency *struct {
		MeanNs, WorstNs int64
		Estimated       int
	} `json:"latency"`
	Why string `json:"why"`
}

type instanceView struct {
	InstantiationState string `json:"instantiationState"`
	Ext                struct {
		HostID        string `json:"hostId"`
		ObservedState string `json:"observedState"`
		Moves         int    `json:"moves"`
		Placement     struct {
			Top []scored `json:"top"`
		} `json:"placement"`
	} `json:"x-mecorch"`
}

func (a apiClient) instance(t *testing.T, id string) instanceView {
	t.Helper()
	var in instanceView
	a.call(t, "GET", "/app_lcm/v1/app_instances/"+id, nil, &in, 200)
	return in
}

// waitRunning waits until the instance runs on host.
func (a apiClient) waitRunning(t *testing.T, id, host string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		in := a.instance(t, id)
		if in.Ext.HostID == host && in.Ext.ObservedState == "Running" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s not running on %s after 60 s: %+v", id, host, in)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
