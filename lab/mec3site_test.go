// The lab's end-to-end tests: lab/mec-3site.clab.yml realized in network
// namespaces by the runner, with every binary its nodes run built from
// this tree. They need root; under CI=true a machine without it fails them.
package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mecorch/mecorch/lab/bootstrap"
	"github.com/mecorch/mecorch/lab/runner"
	"github.com/mecorch/mecorch/lab/topology"
	"github.com/mecorch/mecorch/traffic/netns"
)

var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() != 0 {
			if os.Getenv("CI") == "true" {
				fmt.Fprintln(os.Stderr, "the lab tests need root (namespaces); CI=true forbids skipping")
				return 1
			}
			fmt.Fprintln(os.Stderr, "skipping the lab tests: not root")
			return 0
		}
		dir, err := os.MkdirTemp("", "lab-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		for _, pkg := range []string{"./cmd/mecorch", "./cmd/mec-agent", "./cmd/mec-labsim"} {
			cmd := exec.Command("go", "build", "-o", dir+"/", pkg)
			cmd.Dir = ".."
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
				return 1
			}
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

// upThreeSite brings lab/mec-3site.clab.yml up with state, store and token
// in temp dirs, and tears it down at the end, checking nothing is left.
func upThreeSite(t *testing.T) (*runner.Lab, *topology.Topology) {
	return upLab(t, "mec-3site.clab.yml", "orchestrator", "edge1", "upf", "gnb1", "ue1", "dn")
}

// upLab brings a lab file up with state, store and token in temp dirs, and
// tears it down at the end, checking nothing is left. When the test failed,
// the tails of the logs of logNodes are shown.
func upLab(t *testing.T, file string, logNodes ...string) (*runner.Lab, *topology.Topology) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("lab-test-admin-token-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MECORCH_ADMIN_TOKEN", "lab-test-admin-token-0123456789")
	t.Setenv("MECORCH_LAB_TOKEN_FILE", tokenFile)
	t.Setenv("MECORCH_LAB_STORE", filepath.Join(dir, "store"))
	topo, err := topology.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	// The agents keep their state under /var/lib/mec-agent/<node>; the
	// test's own agents must not meet a real lab's.
	for _, n := range topo.Nodes {
		n.Cmd = strings.ReplaceAll(n.Cmd, "/var/lib/mec-agent/", filepath.Join(dir, "agents")+"/")
	}
	lab, err := runner.Up(context.Background(), topo, runner.Options{StateDir: filepath.Join(dir, "lab"),
		ExtraEnv: map[string]string{"PATH": binDir + ":" + runner.DefaultPath}})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range logNodes {
				data, _ := os.ReadFile(lab.LogPath(n))
				if len(data) > 3000 {
					data = data[len(data)-3000:]
				}
				t.Logf("---- %s\n%s", n, data)
			}
		}
		if err := lab.Close(); err != nil {
			t.Errorf("lab down: %v", err)
		}
		if left, _ := netns.List(netns.DefaultDir, "clab-"+topo.Name+"-"); len(left) > 0 {
			t.Errorf("namespaces left: %v", left)
		}
		for _, n := range topo.Nodes {
			if procs, _ := netns.Procs(filepath.Join(netns.DefaultDir, topo.Namespace(n.Name))); len(procs) > 0 {
				t.Errorf("processes left in %s: %v", n.Name, procs)
			}
		}
	})
	return lab, topo
}

// waitOrchestrator waits until mecorch answers inside the lab, from the
// DC's router: the nodes' processes have started and the lab has settled.
func waitOrchestrator(t *testing.T, lab *runner.Lab) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var c net.Conn
		err := netns.Do(lab.NetnsPath("dc"), func() error {
			var err error
			c, err = net.DialTimeout("tcp", "10.100.0.2:8080", time.Second)
			return err
		})
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mecorch never answered inside the lab: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rtt measures the median round trip of UDP probes from the link's A
// side to an echo on its B side's address.
func rtt(t *testing.T, lab *runner.Lab, l *topology.Link, probes int) time.Duration {
	t.Helper()
	dst := netip.AddrPortFrom(l.B.Addr.Addr(), 40007)
	var pc net.PacketConn
	if err := netns.Do(lab.NetnsPath(l.B.Node), func() error {
		var err error
		pc, err = net.ListenPacket("udp", dst.String())
		return err
	}); err != nil {
		t.Fatalf("echo on %s: %v", l.B.Node, err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	var c net.Conn
	if err := netns.Do(lab.NetnsPath(l.A.Node), func() error {
		var err error
		c, err = net.Dial("udp", dst.String())
		return err
	}); err != nil {
		t.Fatalf("probe from %s: %v", l.A.Node, err)
	}
	defer c.Close()
	var rtts []time.Duration
	buf := make([]byte, 64)
	// Untimed probes first: neighbour resolution and the first packets'
	// cold paths are not the link's delay.
	for i := 0; i < 3; i++ {
		_, _ = c.Write([]byte("warm-up"))
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = c.Read(buf)
	}
	for i := 0; len(rtts) < probes && i < probes*3; i++ {
		msg := fmt.Sprintf("probe %d", i)
		start := time.Now()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, err := c.Read(buf)
			if err != nil {
				break // lost (the links may drop): try another
			}
			if string(buf[:n]) == msg {
				rtts = append(rtts, time.Since(start))
				break
			}
		}
	}
	if len(rtts) < probes {
		t.Fatalf("link %s:%s–%s:%s: %d of %d probes answered", l.A.Node, l.A.Iface, l.B.Node, l.B.Iface, len(rtts), probes)
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2]
}

// within says whether got is within max(10 %, 0.3 ms) of want.
func within(got, want time.Duration) bool {
	tol := max(want/10, 300*time.Microsecond)
	return got >= want-tol && got <= want+tol
}

// TestThreeSiteLinksMeasureTheirDelay: every link of the 3-site lab
// measures the round trip its vars configure, within max(10 %, 0.3 ms); a
// delay changed while the lab runs is measured at once; the lab goes
// leaving nothing behind.
func TestThreeSiteLinksMeasureTheirDelay(t *testing.T) {
	lab, topo := upThreeSite(t)
	waitOrchestrator(t, lab)
	for _, l := range topo.Links {
		want := l.AtoB.Delay + l.BtoA.Delay
		got := rtt(t, lab, l, 21)
		t.Logf("%s:%s – %s:%s  configured RTT %v, measured median %v", l.A.Node, l.A.Iface, l.B.Node, l.B.Iface, want, got)
		if !within(got, want) {
			t.Errorf("link %s–%s (line %d): measured RTT %v, configured %v", l.A.Node, l.B.Node, l.Line, got, want)
		}
	}

	i, ok := lab.LinkIndex("hub", "eth1") // hub–dc, 8 ms each way
	if !ok {
		t.Fatal("no hub:eth1 link")
	}
	l := topo.Links[i]
	slower := topology.Impairment{Delay: 20 * time.Millisecond}
	if err := lab.SetImpairment(i, slower, slower); err != nil {
		t.Fatal(err)
	}
	if got := rtt(t, lab, l, 11); !within(got, 40*time.Millisecond) {
		t.Errorf("after the change to 20 ms each way the hub–dc RTT is %v", got)
	}
	faster := topology.Impairment{Delay: 3 * time.Millisecond}
	if err := lab.SetImpairment(i, faster, faster); err != nil {
		t.Fatal(err)
	}
	if got := rtt(t, lab, l, 11); !within(got, 6*time.Millisecond) {
		t.Errorf("after the change to 3 ms each way the hub–dc RTT is %v", got)
	}
}

// TestThreeSiteUETrafficCrossesTheCore: each UE's requests go to its gNB
// over the simulated radio, through the backhaul to the UPF as GTP-U, out
// to the data network's server and back; the UE's own report says how many
// were answered, by whom, and the round trip it saw, which must include
// the path's configured delays.
func TestThreeSiteUETrafficCrossesTheCore(t *testing.T) {
	lab, topo := upThreeSite(t)
	// One-way from each UE to the DN: radio 1 ms, site link 0 ms, site to
	// hub 2 (15 for site 3), hub to DC 8, the DC's links 0.
	paths := map[string]time.Duration{"ue1": 11 * time.Millisecond, "ue2": 11 * time.Millisecond, "ue3": 24 * time.Millisecond}
	for ue, oneWay := range paths {
		var last ueStats
		deadline := time.Now().Add(30 * time.Second)
		for {
			last = lastStats(t, lab.LogPath(ue))
			if last.Received >= 5 { // a stats line counts one interval (1 s at 10 requests/s)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no traffic answered through the core after 30 s: %+v", ue, last)
			}
			time.Sleep(500 * time.Millisecond)
		}
		if last.AnsweredBy["central"] == 0 {
			t.Errorf("%s: answers came from %v, not the central DN", ue, last.AnsweredBy)
		}
		want := 2 * oneWay
		if got := time.Duration(last.P50Ms * float64(time.Millisecond)); got < want || got > want+want/4 {
			t.Errorf("%s: median round trip %v through the core, want about %v (the links' delays)", ue, got, want)
		}
		t.Logf("%s: %d answered by %v, p50 %.2f ms, p99 %.2f ms (path RTT %v)", ue, last.Received, last.AnsweredBy, last.P50Ms, last.P99Ms, want)
	}
	_ = topo
}

type ueStats struct {
	Type       string           `json:"type"`
	GNB        string           `json:"gnb"`
	Received   int64            `json:"received"`
	P50Ms      float64          `json:"p50Ms"`
	P99Ms      float64          `json:"p99Ms"`
	AnsweredBy map[string]int64 `json:"answeredBy"`
}

// lastStats is the UE simulator's last stats line in its log.
func lastStats(t *testing.T, path string) ueStats {
	t.Helper()
	data, _ := os.ReadFile(path)
	var out ueStats
	for _, line := range strings.Split(string(data), "\n") {
		var s ueStats
		if json.Unmarshal([]byte(line), &s) == nil && s.AnsweredBy != nil {
			out = s
		}
	}
	return out
}

// TestThreeSiteHandoverReachesMecorch: once the lab's sites and cells are
// registered (lab/bootstrap, as make run does), ue1 hands over from site
// 1's cell to site 2's after 20 s; its traffic goes on through gnb2 and
// mecorch learns the UE's new cell.
func TestThreeSiteHandoverReachesMecorch(t *testing.T) {
	lab, topo := upThreeSite(t)
	waitOrchestrator(t, lab)
	// mecorch listens inside the lab: reach it from the DC's router.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := netns.Do(lab.NetnsPath("dc"), func() error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
	api, token := "http://10.100.0.2:8080", os.Getenv("MECORCH_ADMIN_TOKEN")
	res, err := bootstrap.Run(context.Background(), topo, bootstrap.Config{API: api, Token: token, HTTP: hc, Wait: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cells) != 6 || len(res.Hosts) != 3 {
		t.Fatalf("bootstrap registered %v cells and %v hosts", res.Cells, res.Hosts)
	}
	var ue struct{ CellID, SiteID, PrevCellID string }
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequest("GET", api+"/api/v1/ues/ue1", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := hc.Do(req); err == nil {
			if resp.StatusCode == http.StatusOK {
				_ = json.NewDecoder(resp.Body).Decode(&ue)
			}
			resp.Body.Close()
		}
		if ue.CellID == "262-01-0000000b1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mecorch never learnt ue1's handover: %+v", ue)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if ue.SiteID != "site2" || ue.PrevCellID != "262-01-0000000a1" {
		t.Errorf("ue1's context after the handover: %+v", ue)
	}
	// Its traffic goes on, now through gnb2.
	deadline = time.Now().Add(20 * time.Second)
	for {
		st := lastStats(t, lab.LogPath("ue1"))
		if st.GNB == "10.2.2.1:9000" && st.Received > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ue1's traffic does not flow through gnb2 after the handover: %+v", st)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
