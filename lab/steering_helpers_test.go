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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/lab/runner"
	"github.com/mecorch/mecorch/traffic/netns"
)

// echoPackage packages the echo app with appd as its AppD; name and
// provider go into the manifest, which must agree with the AppD's appName
// and appProvider.
func echoPackage(t *testing.T, name, provider, appd string) []byte {
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
	m = bytes.Replace(m, []byte("app_provider_id: mecorch-examples"), []byte("app_provider_id: "+provider), 1)
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

// restartNode ends a node's process group (the shell the runner started
// and the command in it) with SIGTERM; the lab's supervisor starts it
// again.
func restartNode(t *testing.T, lab *runner.Lab, node string) {
	t.Helper()
	st, err := lab.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		if n.Name == node && n.PID > 0 {
			if err := syscall.Kill(-n.PID, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no running process for %s in %+v", node, st.Nodes)
}

// blastTarget is one instance the blast sends to, at Offered bits/s of
// decapsulated frames (Ethernet + inner IP).
type blastTarget struct {
	ID, Svc string
	Offered float64
}

// blastResult is what a target was actually offered over the window (the
// sender may fall short on a busy machine) and what it received, both in
// bits/s of decapsulated frames.
type blastResult struct{ Offered, Received float64 }

// innerSize is the blast's inner IPv4 packet: 1200 bytes, 1214 on the
// instance's veth with its Ethernet header.
const innerSize = 1200

// blastAndMeasure sends, from gnb1, G-PDUs from an unknown UE to each
// target's service address, and measures over window what each instance
// received: the bytes its host-side veth sent it (after the shaper).
func blastAndMeasure(t *testing.T, lab *runner.Lab, targets []blastTarget, window time.Duration) map[string]blastResult {
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
	frames := make([][]byte, len(targets))
	sent := make([]atomic.Int64, len(targets))
	for i, tg := range targets {
		frames[i] = labGPDU(0x999, netip.MustParseAddr("10.45.0.200"), netip.MustParseAddr(tg.Svc), innerSize)
	}
	// A send buffer far above what the shaper queues: the skbs queued in
	// an instance's HTB class still count against the socket that sent
	// them, and a small buffer would hold the sender to the shaped rate
	// instead of saturating it.
	if rc, err := conn.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 32<<20)
		})
	}
	pc := ipv4.NewPacketConn(conn)
	batch := make([]ipv4.Message, 32)
	for j := range batch {
		batch[j] = ipv4.Message{Buffers: [][]byte{nil}, Addr: upf}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		start := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			el := time.Since(start).Seconds()
			for i, tg := range targets {
				due := int64(el * tg.Offered / 8 / (innerSize + 14))
				// sendmmsg in batches: one syscall per batch keeps the
				// sender ahead of what it offers on a 2-CPU machine.
				for n := due - sent[i].Load(); n > 0; n = due - sent[i].Load() {
					msgs := batch[:min(int(n), len(batch))]
					for j := range msgs {
						msgs[j].Buffers[0] = frames[i]
					}
					w, err := pc.WriteBatch(msgs, 0)
					sent[i].Add(int64(w))
					if err != nil || w == 0 {
						break
					}
				}
			}
		}
	}()
	defer func() { cancel(); <-done }()
	time.Sleep(time.Second) // queues fill, HTB settles
	before := make([]uint64, len(targets))
	sent0 := make([]int64, len(targets))
	for i, tg := range targets {
		before[i] = linkStats(t, lab.NetnsPath("edge1"), netns.VethName("mecv", tg.ID)).TxBytes
		sent0[i] = sent[i].Load()
	}
	t0 := time.Now()
	time.Sleep(window)
	out := map[string]blastResult{}
	for i, tg := range targets {
		rx := linkStats(t, lab.NetnsPath("edge1"), netns.VethName("mecv", tg.ID)).TxBytes - before[i]
		tx := sent[i].Load() - sent0[i]
		secs := time.Since(t0).Seconds()
		out[tg.Svc] = blastResult{Offered: float64(tx) * (innerSize + 14) * 8 / secs, Received: float64(rx) * 8 / secs}
	}
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

// downlinkGaps is what watchDownlink saw: how many G-PDUs, and the
// largest time between two of them.
type downlinkGaps struct {
	n   int
	max time.Duration
}

// watchDownlink captures, for d, the G-PDUs with TEID teid arriving on
// iface in nsPath (AF_PACKET), and reports on the channel when done.
func watchDownlink(t *testing.T, nsPath, iface string, teid uint32, d time.Duration) <-chan downlinkGaps {
	t.Helper()
	var fd int
	err := netns.Do(nsPath, func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		const ethPIPNet = 0x0008 // htons(ETH_P_IP) on little-endian
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, ethPIPNet)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: ethPIPNet, Ifindex: l.Attrs().Index})
	})
	if err != nil {
		t.Fatalf("capture on %s: %v", iface, err)
	}
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	out := make(chan downlinkGaps, 1)
	go func() {
		defer unix.Close(fd)
		var g downlinkGaps
		var last time.Time
		buf := make([]byte, 2048)
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			p := buf[:n]
			// Ethernet, IPv4 with no options, UDP 2152 -> 2152, GTP-U.
			if n < 14+20+8+8 || p[14] != 0x45 || p[14+9] != 17 ||
				binary.BigEndian.Uint16(p[36:]) != 2152 || binary.BigEndian.Uint32(p[46:]) != teid {
				continue
			}
			now := time.Now()
			if !last.IsZero() && now.Sub(last) > g.max {
				g.max = now.Sub(last)
			}
			last = now
			g.n++
		}
		out <- g
	}()
	return out
}

// captureTOS returns the TOS byte of the first IPv4 packet to dst leaving
// iface (in nsPath) within d.
func captureTOS(t *testing.T, nsPath, iface, dst string, d time.Duration) (byte, bool) {
	t.Helper()
	want := netip.MustParseAddr(dst).As4()
	var fd int
	err := netns.Do(nsPath, func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		// ETH_P_ALL: only such taps see what a link sends.
		const ethPAllNet = 0x0300 // htons(ETH_P_ALL) on little-endian
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, ethPAllNet)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: ethPAllNet, Ifindex: l.Attrs().Index})
	})
	if err != nil {
		t.Fatalf("capture on %s: %v", iface, err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for end := time.Now().Add(d); time.Now().Before(end); {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil || n < 34 || buf[12] != 0x08 || buf[13] != 0x00 || buf[14]>>4 != 4 || [4]byte(buf[30:34]) != want {
			continue
		}
		return buf[15], true
	}
	return 0, false
}
