package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mecorch/mecorch/lab/bootstrap"
	"github.com/mecorch/mecorch/lab/runner"
	"github.com/mecorch/mecorch/traffic/classify"
	"github.com/mecorch/mecorch/traffic/netns"
	"golang.org/x/sys/unix"
)

// Service addresses of the lab's two apps: steer-echo answers 10.77.0.7,
// which nothing in the core does; dup-echo takes copies of what UEs send to
// the central DN (10.100.2.2), and answers them from that address too.
const (
	steerSvc = "10.77.0.7"
	dupSvc   = "10.100.2.2"
)

// TestSteeringAcrossTwoSites runs lab/steer-2site.clab.yml, with real UEs,
// gNB and UPF (lab/ransim) and real mec-agents enforcing the apps' MEC 011
// traffic rules in eBPF:
//   - an app whose only instance is at site 2 answers a UE of site 1: edge1
//     steers the UE's packets into the VXLAN overlay, edge2's instance
//     answers, and edge2 encapsulates the answer in the UE's downlink tunnel
//     (provisioned through the operator API);
//   - with an instance at site 1 too, edge1 steers to it locally;
//   - a flow no rule matches reaches the core (the central DN answers), and
//     its downlink teaches edge1 the UE's tunnel;
//   - DUPLICATE_DECAPSULATED: a copy reaches an edge app, whose answer comes
//     back through the learnt tunnel, and the original still reaches the
//     central DN;
//   - bandwidth: an app limited to 10 Mbit/s gets that under a saturating
//     sender while its neighbour keeps its 30 Mbit/s;
//   - the agent restarts with no gap: the pinned programs keep steering.
func TestSteeringAcrossTwoSites(t *testing.T) {
	// The agents pin under a bpffs of the test's own (the lab's nodes
	// share this machine's mounts).
	pins := t.TempDir()
	if err := unix.Mount("bpffs", pins, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Setenv("MECORCH_LAB_PIN_DIR", pins)
	t.Cleanup(func() {
		for _, n := range []string{"steer-2site-edge1", "steer-2site-edge2"} {
			if err := classify.RemovePins(filepath.Join(pins, n)); err != nil {
				t.Errorf("remove pins: %v", err)
			}
		}
		if err := unix.Unmount(pins, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount the test's bpffs: %v", err)
		}
	})
	lab, topo := upLab(t, "steer-2site.clab.yml", "orchestrator", "edge1", "edge2", "gnb1", "upf", "ue1", "ue1b")
	api := apiClient{base: "http://10.100.0.2:8080", token: os.Getenv("MECORCH_ADMIN_TOKEN"), hc: httpFrom(lab, "core")}
	if _, err := bootstrap.Run(context.Background(), topo, bootstrap.Config{API: api.base, Token: api.token, HTTP: api.hc, Wait: 60 * time.Second}); err != nil {
		t.Fatal(err)
	}
	// ue1b only talks to edge apps: its tunnel cannot be learnt from the
	// core's downlink, so the operator provisions it (gnb1's N3 address,
	// the gNB's downlink TEID for it, the UPF's address as source).
	api.call(t, "PUT", "/api/v1/ue_tunnels/10.45.0.11", map[string]any{"gnbAddress": "10.1.1.2", "teid": 0x1111, "qfi": 9,
		"sourceAddress": "10.100.1.2"}, nil, 201)

	steer := api.onboard(t, steeringPackage(t, "steer-echo", steerSvc, "FORWARD_DECAPSULATED", 10_000_000, 46))
	edge1, edge2 := metricsAt(lab, "10.0.1.2"), metricsAt(lab, "10.0.2.2")

	t.Run("a site-1 UE reaches the site-2 instance over VXLAN", func(t *testing.T) {
		far := instantiateAt(t, api, steer, "steer-far", "site2")
		api.waitRunning(t, far, "edge2")
		since := time.Now()
		waitAnswers(t, lab, "ue1b", since, steerSvc+":7", 30*time.Second)
		n := edge1.ruleCount(t, far, "steer-echo-uplink", true)
		if n == 0 {
			t.Errorf("edge1 counts no packet on the remote rule of %s", far)
		}
		if tx := linkStats(t, lab.NetnsPath("edge1"), "mecvx0").TxPackets; tx == 0 {
			t.Error("edge1's VXLAN device sent nothing")
		}
		// edge2 answered through the tunnel the operator provisioned.
		if ms, err := edge2.scrape(); err != nil || ms["mecorch_agent_ue_tunnels"] < 1 {
			t.Errorf("edge2 knows no UE tunnel (%v)", err)
		}
		t.Logf("edge1 steered %d packets of ue1b into the overlay to %s on edge2", n, far)
	})

	var near string
	t.Run("with an instance at site 1 the UE is served locally", func(t *testing.T) {
		near = instantiateAt(t, api, steer, "steer-near", "site1")
		api.waitRunning(t, near, "edge1")
		deadline := time.Now().Add(30 * time.Second)
		for edge1.ruleCount(t, near, "steer-echo-uplink", false) < 20 {
			if time.Now().After(deadline) {
				t.Fatalf("edge1 does not steer to its own instance %s", near)
			}
			time.Sleep(500 * time.Millisecond)
		}
		waitAnswers(t, lab, "ue1b", time.Now(), steerSvc+":7", 10*time.Second)
		// The rule's x-mecorch-dscp: what reaches the app carries EF (46);
		// ue1b sends with DSCP 0.
		if tos, ok := captureTOS(t, lab.NetnsPath("edge1"), netns.VethName("mecv", near), steerSvc, 3*time.Second); !ok || tos>>2 != 46 {
			t.Errorf("packets to the app: TOS %#x (seen %v), want DSCP 46 from the rule's x-mecorch-dscp", tos, ok)
		}
	})

	t.Run("a flow no rule matches reaches the core", func(t *testing.T) {
		st := waitAnswers(t, lab, "ue1", time.Now(), "central", 10*time.Second)
		if len(st.AnsweredBy) != 1 {
			t.Errorf("ue1 answered by %v, want only the central DN", st.AnsweredBy)
		}
		if got := edge1.event(t, "learned"); got == 0 {
			t.Error("edge1 learnt no UE tunnel from the core's downlink")
		}
	})

	t.Run("DUPLICATE_DECAPSULATED delivers to the app and to the core", func(t *testing.T) {
		dup := api.onboard(t, steeringPackage(t, "dup-echo", dupSvc, "DUPLICATE_DECAPSULATED", 50_000_000, -1))
		in := instantiateAt(t, api, dup, "dup", "site1")
		api.waitRunning(t, in, "edge1")
		since := time.Now()
		// The edge copy answers first; the central DN's answer to the
		// original comes later and the UE counts it as late.
		st := waitAnswers(t, lab, "ue1", since, dupSvc+":7", 30*time.Second)
		deadline := time.Now().Add(10 * time.Second)
		for st.Late == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Second)
			st = lastInterval(t, lab.LogPath("ue1"))
		}
		if st.Late == 0 {
			t.Errorf("ue1 got no second (central) answer: %+v", st)
		}
		before := dnAnswers(t, lab)
		time.Sleep(2 * time.Second)
		if after := dnAnswers(t, lab); after <= before {
			t.Errorf("the central DN answered nothing more (%d then %d): the originals did not reach the core", before, after)
		}
		t.Logf("ue1: %+v", st)
	})

	t.Run("an app limited to 10 Mbit/s gets it, its neighbour keeps its share", func(t *testing.T) {
		res := blastAndMeasure(t, lab, []blastTarget{{ID: near, Svc: steerSvc, Offered: 25e6},
			{ID: dupInstance(t, api, "dup"), Svc: dupSvc, Offered: 15e6}}, 4*time.Second)
		a, b := res[steerSvc], res[dupSvc]
		t.Logf("limited app (10 Mbit/s): offered %.2f, received %.2f Mbit/s; neighbour (50 Mbit/s): offered %.2f, received %.2f Mbit/s",
			a.Offered/1e6, a.Received/1e6, b.Offered/1e6, b.Received/1e6)
		if a.Offered < 15e6 {
			t.Fatalf("the sender offered the limited app only %.2f Mbit/s: not saturating, nothing to judge", a.Offered/1e6)
		}
		if a.Received < 9e6 || a.Received > 11e6 {
			t.Errorf("limited app got %.2f Mbit/s, want 10 ± 10%%", a.Received/1e6)
		}
		if b.Received < 0.9*b.Offered {
			t.Errorf("the neighbour got %.2f of the %.2f Mbit/s it was offered", b.Received/1e6, b.Offered/1e6)
		}
	})

	t.Run("an agent restart leaves no gap", func(t *testing.T) {
		before := edge1.ruleCount(t, near, "steer-echo-uplink", false)
		// The blast's backlog in the shaper delays ue1b's requests for a
		// while: wait for a clean interval first.
		deadline := time.Now().Add(15 * time.Second)
		for st := lastInterval(t, lab.LogPath("ue1b")); st.Lost > 0 || st.Received == 0; st = lastInterval(t, lab.LogPath("ue1b")) {
			if time.Now().After(deadline) {
				t.Fatalf("ue1b does not recover from the blast: %+v", st)
			}
			time.Sleep(500 * time.Millisecond)
		}
		// While the agent is down and coming back, the app's answers to
		// ue1b (a request every 50 ms) keep leaving edge1 for gnb1 in the
		// UE's tunnel: the largest gap between two of them, seen on gnb1's
		// N3 link, stays far below what a restart takes (the process start,
		// the reconnection and the first pass: about a second here).
		gaps := watchDownlink(t, lab.NetnsPath("gnb1"), "eth1", 0x1111, 7*time.Second)
		time.Sleep(time.Second)
		restartNode(t, lab, "edge1")
		g := <-gaps
		t.Logf("answers to ue1b at gnb1 across the restart: %d, largest gap %v", g.n, g.max)
		if g.n < 100 || g.max > 250*time.Millisecond {
			t.Errorf("steering paused across the agent's restart: %d answers in 7 s, largest gap %v", g.n, g.max)
		}
		deadline = time.Now().Add(20 * time.Second)
		for !edge1.up() {
			if time.Now().After(deadline) {
				t.Fatal("edge1's agent did not come back")
			}
			time.Sleep(300 * time.Millisecond)
		}
		waitAnswers(t, lab, "ue1b", time.Now(), steerSvc+":7", 10*time.Second)
		if logs, _ := os.ReadFile(lab.LogPath("edge1")); !strings.Contains(string(logs), `"reused":true`) {
			t.Error("the restarted agent did not take the pinned maps over")
		}
		progs := tcxCount(t, lab.NetnsPath("edge1"), "eth2")
		if progs != 1 {
			t.Errorf("%d tcx programs on edge1's eth2 after the restart, want 1 (no leak)", progs)
		}
		t.Logf("rule counter before the restart %d (the new process counts from its own start)", before)
	})
}

// steeringPackage builds an echo-app package whose AppD steers UDP port 7
// to svc (from the UE pool) with action, answers name.steer.example with
// svc, limits the uplink (MEC 015: from UEs, towards the app) to bps and,
// with dscp ≥ 0, re-marks the steered packets with it.
func steeringPackage(t *testing.T, name, svc, action string, bps, dscp int) []byte {
	t.Helper()
	remark := ""
	if dscp >= 0 {
		remark = fmt.Sprintf("    x-mecorch-dscp: %d\n", dscp)
	}
	appd := fmt.Sprintf(`appDId: %[1]s-0000-4000-8000-lab
appName: %[1]s
appProvider: mecorch-lab
appSoftVersion: "1.0.0"
appDVersion: "1.0"
mecVersion: ["3.1.1"]
appDescription: echo app for the steering lab
virtualComputeDescriptor:
  virtualComputeDescId: %[1]s-compute
  virtualCpu: {numVirtualCpu: 1}
  virtualMemory: {virtualMemSize: 128}
swImageDescriptor:
  - id: %[1]s-image
    name: %[1]s
    version: "1.0.0"
    containerFormat: BARE
    swImage: Artifacts/edge-echo
    operatingSystem: Linux
appExtCpd:
  - inherited_attributes: {cpdId: %[1]s-ext, layerProtocol: [IPV4]}
appTrafficRule:
  - trafficRuleId: steer-echo-uplink
    filterType: FLOW
    priority: 10
    action: %[3]s
    trafficFilter:
      - srcAddress: ["10.45.0.0/16"]
        dstAddress: ["%[2]s/32"]
        dstPort: ["7"]
        protocol: [UDP]
%[5]sappDNSRule:
  - {dnsRuleId: %[1]s-dns, domainName: %[1]s.steer.example, ipAddressType: IP_V4, ipAddress: %[2]s, ttl: 30}
x-mecorch-bandwidth:
  - {allocationDirection: "01", fixedAllocation: "%[4]d"}
`, name, svc, action, bps, remark)
	return echoPackage(t, name, "mecorch-lab", appd)
}

// instantiateAt creates and instantiates an instance of appDID at site.
func instantiateAt(t *testing.T, api apiClient, appDID, name, site string) string {
	t.Helper()
	var in struct{ ID string }
	api.call(t, "POST", "/app_lcm/v1/app_instances", map[string]string{"appDId": appDID, "appInstanceName": name}, &in, 201)
	api.call(t, "POST", "/app_lcm/v1/app_instances/"+in.ID+"/instantiate",
		map[string]any{"x-mecorch-placement": map[string]any{"siteIds": []string{site}}}, nil, 202)
	return in.ID
}

// dupInstance finds the instance named name.
func dupInstance(t *testing.T, api apiClient, name string) string {
	t.Helper()
	var list []struct {
		ID   string `json:"id"`
		Name string `json:"appInstanceName"`
	}
	api.call(t, "GET", "/app_lcm/v1/app_instances", nil, &list, 200)
	for _, in := range list {
		if in.Name == name {
			return in.ID
		}
	}
	t.Fatalf("no instance named %s", name)
	return ""
}

// ueInterval is one stats line of a UE simulator.
type ueInterval struct {
	Type       string           `json:"type"`
	Time       time.Time        `json:"time"`
	Received   int64            `json:"received"`
	Lost       int64            `json:"lost"`
	Late       int64            `json:"late"`
	AnsweredBy map[string]int64 `json:"answeredBy"`
}

// waitAnswers waits for a UE stats interval after since in which who
// answered, and returns it.
func waitAnswers(t *testing.T, lab *runner.Lab, ue string, since time.Time, who string, wait time.Duration) ueInterval {
	t.Helper()
	deadline := time.Now().Add(wait)
	var st ueInterval
	for {
		st = lastInterval(t, lab.LogPath(ue))
		if st.Time.After(since) && st.AnsweredBy[who] > 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no answer from %s after %v; last interval %+v", ue, who, wait, st)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
