package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/mecorch/mecorch/lab/runner"
	"github.com/mecorch/mecorch/traffic/netns"
)

// echoPackage packages the echo app with appd as its AppD.
func echoPackage(t *testing.T, name, appd string) []byte {
	t.Helper()
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg")
	if out, err := exec.Command("cp", "-r", filepath.Join("..", "examples", "sample-app"), pkg).CombinedOutput(); err != nil {
		t.Fatalf("copy sample app: %v\n%s", err, out)
	}
	if err := os.Remove(filepath.Join(pkg, "Artifacts", "edge-echo.sh")); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(pkg, "Artifacts", "edge-echo"), "./examples/echoapp")
	build.Dir, build.Env = "..", append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build echoapp: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(pkg, "Definitions", "edge-echo.yaml"), []byte(appd), 0o644); err != nil {
		t.Fatal(err)
	}
	mf := filepath.Join(pkg, "edge-echo.mf")
	m, err := os.ReadFile(mf)
	if err != nil {
		t.Fatal(err)
	}
	m = bytes.Replace(m, []byte("Artifacts/edge-echo.sh"), []byte("Artifacts/edge-echo"), 1)
	m = bytes.Replace(m, []byte("app_provider_id: mecorch-examples"), []byte("app_provider_id: mecorch-lab"), 1)
	m = bytes.Replace(m, []byte("app_product_name: edge-echo"), []byte("app_product_name: "+name), 1)
	if err := os.WriteFile(mf, m, 0o644); err != nil {
		t.Fatal(err)
	}
	zip := filepath.Join(dir, name+".zip")
	mk := exec.Command("go", "run", "./examples/mkpkg", pkg, zip)
	mk.Dir = ".."
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("mkpkg: %v\n%s", err, out)
	}
	data, err := os.ReadFile(zip)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// lastInterval is a UE simulator's last stats line.
func lastInterval(t *testing.T, path string) ueInterval {
	t.Helper()
	data, _ := os.ReadFile(path)
	var out ueInterval
	for _, line := range strings.Split(string(data), "\n") {
		var s ueInterval
		if json.Unmarshal([]byte(line), &s) == nil && s.Type == "stats" {
			out = s
		}
	}
	return out
}

// dnAnswers is the central DN's answer count from its last stats line.
func dnAnswers(t *testing.T, lab *runner.Lab) int64 {
	t.Helper()
	data, _ := os.ReadFile(lab.LogPath("dn"))
	var n int64
	for _, line := range strings.Split(string(data), "\n") {
		var s struct {
			Type       string `json:"type"`
			UDPAnswers int64  `json:"udpAnswers"`
		}
		if json.Unmarshal([]byte(line), &s) == nil && s.Type == "dn_stats" {
			n = s.UDPAnswers
		}
	}
	return n
}

// agentMetrics scrapes an agent's /metrics from the lab's core router.
type agentMetrics struct {
	url string
	hc  *http.Client
}

func metricsAt(lab *runner.Lab, addr string) agentMetrics {
	return agentMetrics{url: "http://" + addr + ":9470/metrics", hc: httpFrom(lab, "core")}
}

func (m agentMetrics) scrape() (map[string]float64, error) {
	resp, err := m.hc.Get(m.url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", m.url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

func (m agentMetrics) up() bool { _, err := m.scrape(); return err == nil }

// ruleCount is a rule's packet counter (0 when absent).
func (m agentMetrics) ruleCount(t *testing.T, inst, rule string, remote bool) int64 {
	t.Helper()
	ms, err := m.scrape()
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf(`mecorch_agent_traffic_rule_packets_total{instance=%q,remote="%t",rule=%q}`, inst, remote, rule)
	return int64(ms[key])
}

func (m agentMetrics) event(t *testing.T, name string) int64 {
	t.Helper()
	ms, err := m.scrape()
	if err != nil {
		t.Fatal(err)
	}
	return int64(ms[fmt.Sprintf(`mecorch_agent_dataplane_events_total{event=%q}`, name)])
}

// linkStats reads an interface's counters inside a namespace.
func linkStats(t *testing.T, nsPath, name string) netlink.LinkStatistics {
	t.Helper()
	var st netlink.LinkStatistics
	err := netns.Do(nsPath, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		if l.Attrs().Statistics != nil {
			st = *l.Attrs().Statistics
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s in %s: %v", name, nsPath, err)
	}
	return st
}

// tcxCount is how many programs are attached with tcx at ingress of name.
func tcxCount(t *testing.T, nsPath, name string) int {
	t.Helper()
	var n int
	err := netns.Do(nsPath, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		n = len(res.Programs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// restartNode ends a node's process with SIGTERM; the lab's supervisor
// starts it again.
func restartNode(t *testing.T, lab *runner.Lab, node string) {
	t.Helper()
	st, err := lab.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		if n.Name == node && n.PID > 0 {
			if err := syscall.Kill(n.PID, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no running process for %s in %+v", node, st.Nodes)
}

// blastAndMeasure sends, from gnb1, G-PDUs from an unknown UE to each
// service address at offered bits/s each (inner packets of 1200 bytes), and
// returns what each instance received over window, measured as the bits
// its host-side veth sent it (after the shaper): ID → service address in
// targets, result by service address.
func blastAndMeasure(t *testing.T, lab *runner.Lab, targets map[string]string, offered float64, window time.Duration) map[string]float64 {
	t.Helper()
	var conn *net.UDPConn
	err := netns.Do(lab.NetnsPath("gnb1"), func() error {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.1.1.2:0")))
		conn = c
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	upf := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.100.1.2:2152"))
	var frames [][]byte
	for _, svc := range targets {
		frames = append(frames, labGPDU(0x999, netip.MustParseAddr("10.45.0.200"), netip.MustParseAddr(svc), 1200))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		per := offered / 8 / float64(len(frames[0])) // packets/s per target
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		start, sent := time.Now(), 0.0
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			due := time.Since(start).Seconds() * per
			for ; sent < due; sent++ {
				for _, f := range frames {
					_, _ = conn.WriteToUDP(f, upf)
				}
			}
		}
	}()
	time.Sleep(time.Second) // queues fill, HTB settles
	veths := map[string]string{}
	for id, svc := range targets {
		veths[svc] = netns.VethName("mecv", id)
	}
	before := map[string]uint64{}
	for svc, v := range veths {
		before[svc] = linkStats(t, lab.NetnsPath("edge1"), v).TxBytes
	}
	t0 := time.Now()
	time.Sleep(window)
	out := map[string]float64{}
	for svc, v := range veths {
		out[svc] = float64(linkStats(t, lab.NetnsPath("edge1"), v).TxBytes-before[svc]) * 8 / time.Since(t0).Seconds()
	}
	cancel()
	<-done
	return out
}

// labGPDU is an uplink G-PDU (TEID, PDU Session Container UL, QFI 9)
// carrying a UDP datagram of size bytes (IP included) from ue to svc:7.
func labGPDU(teid uint32, ue, svc netip.Addr, size int) []byte {
	inner := make([]byte, size)
	inner[0], inner[8], inner[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(inner[2:], uint16(size))
	copy(inner[12:], ue.AsSlice())
	copy(inner[16:], svc.AsSlice())
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(inner[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(inner[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(inner[20:], 40000)
	binary.BigEndian.PutUint16(inner[22:], 7)
	binary.BigEndian.PutUint16(inner[24:], uint16(size-20)) // UDP checksum 0: none
	g := []byte{0x34, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x85, 1, 0x10, 9, 0}
	binary.BigEndian.PutUint16(g[2:], uint16(len(g)-8+size))
	binary.BigEndian.PutUint32(g[4:], teid)
	return append(g, inner...)
}
