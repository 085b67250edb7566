//go:build linux

package classifynft

// Bench-only: this file shells out to `ip` and `nft` to build namespaces,
// veths and nftables rule sets. Product code must not do that.

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/traffic/classify"
)

var (
	interval = flag.Duration("classifynft.interval", 2*time.Second, "how long each case sends frames")
	sizes    = flag.String("classifynft.rules", "1,100,10000", "rule counts, comma-separated")
	withGTP  = flag.Bool("classifynft.gtpu", true, "also run the GTP-U frame cases")
)

const (
	nsA, nsB   = "mecbench-cnft-a", "mecbench-cnft-b"
	ifA, ifB   = "cnfta", "cnftb"
	nftTable   = "mecbench"
	firstPort  = 10000
	missPort   = 9999
	userHZ     = 100 // /proc/stat unit (USER_HZ is 100 on Linux/x86)
	sendBatch  = 64  // frames per sendmmsg
	gtpuPort   = 2152
	payloadLen = 18
)

// The frames go to a MAC that is not cnftb's: the packet is PACKET_OTHERHOST,
// so whatever passes the classifier is dropped at the top of ip_rcv. That keeps
// the pass path short and identical for every case, so differences are the
// classifier's. tcx ingress and the netdev ingress hook both run before that.
var (
	macB     = []byte{0x02, 0, 0, 0, 0, 0x0b}
	macOther = []byte{0x02, 0, 0, 0, 0, 0xcc}
	macA     = []byte{0x02, 0, 0, 0, 0, 0x0a}
)

// env is the two namespaces and the veth pair between them.
type env struct {
	a, b   netns.NsHandle
	hB     *netlink.Handle
	idxB   int
	fd     int // AF_PACKET socket on cnfta (namespace A)
	cpu    int // the sender's CPU
	cls    *classify.Classifier
	nftSet bool // the set variant loads (typeof raw payload) for GTP-U
}

func run(tb testing.TB, stdin string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v: %s", strings.Join(args, " "), err, firstLines(string(out), 5))
	}
	return string(out)
}

func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "\n")
}

func cleanupNS() {
	for _, n := range []string{nsA, nsB} {
		exec.Command("ip", "netns", "del", n).Run()
	}
}

// inNS runs fn on a thread moved into ns (and moved back).
func inNS(tb testing.TB, ns netns.NsHandle, fn func()) {
	tb.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		tb.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		tb.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(err) // never leave a pooled thread in the wrong namespace
		}
	}()
	fn()
}

func setup(b *testing.B) *env {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			b.Fatal("needs root (CI=true, not skipping)")
		}
		b.Skip("needs root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				b.Fatalf("%s missing (CI=true, not skipping)", tool)
			}
			b.Skipf("%s missing (apt-get install -y nftables iproute2)", tool)
		}
	}
	cleanupNS()
	e := &env{fd: -1, cpu: runtime.NumCPU() - 1}
	b.Cleanup(func() { e.close(); cleanupNS() })
	run(b, "", "ip", "netns", "add", nsA)
	run(b, "", "ip", "netns", "add", nsB)
	for _, n := range []string{nsA, nsB} {
		for _, k := range []string{"all", "default"} {
			run(b, "", "ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv6.conf."+k+".disable_ipv6=1")
		}
	}
	run(b, "", "ip", "-n", nsA, "link", "add", ifA, "address", mac(macA), "type", "veth",
		"peer", "name", ifB, "address", mac(macB), "netns", nsB)
	run(b, "", "ip", "-n", nsA, "link", "set", ifA, "up")
	run(b, "", "ip", "-n", nsB, "link", "set", ifB, "up")

	var err error
	if e.a, err = netns.GetFromName(nsA); err != nil {
		b.Fatal(err)
	}
	if e.b, err = netns.GetFromName(nsB); err != nil {
		b.Fatal(err)
	}
	if e.hB, err = netlink.NewHandleAt(e.b); err != nil {
		b.Fatal(err)
	}
	lb, err := e.hB.LinkByName(ifB)
	if err != nil {
		b.Fatal(err)
	}
	e.idxB = lb.Attrs().Index
	inNS(b, e.a, func() {
		la, err := netlink.LinkByName(ifA)
		if err != nil {
			b.Fatal(err)
		}
		// Protocol 0: the socket only sends. With ETH_P_ALL it would also be
		// a tap receiving a copy of every frame it sends.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			b.Fatal(err)
		}
		e.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: la.Attrs().Index}); err != nil {
			b.Fatal(err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			b.Fatal(err)
		}
	})
	if e.cls, err = classify.New(); err != nil {
		b.Fatal(err)
	}
	return e
}

func (e *env) close() {
	if e.cls != nil {
		e.cls.Close()
	}
	if e.fd >= 0 {
		unix.Close(e.fd)
	}
	if e.hB != nil {
		e.hB.Close()
	}
	e.a.Close()
	e.b.Close()
}

func mac(m []byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// --- frames ---

func csum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func ipv4udp(src, dst [4]byte, sport, dport uint16, payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	copy(p[12:], src[:])
	copy(p[16:], dst[:])
	binary.BigEndian.PutUint16(p[10:], csum(p[:20]))
	binary.BigEndian.PutUint16(p[20:], sport)
	binary.BigEndian.PutUint16(p[22:], dport)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload))) // checksum 0: none
	copy(p[28:], payload)
	return p
}

func ether(ip []byte) []byte {
	f := append(append(append([]byte{}, macOther...), macA...), 0x08, 0x00)
	return append(f, ip...)
}

// udpFrame: Ethernet/IPv4/UDP to dport, 60 bytes on the wire.
func udpFrame(dport uint16) []byte {
	return ether(ipv4udp([4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, 40000, dport, make([]byte, payloadLen)))
}

// gtpuFrame: a G-PDU (flags 0x30, no optional fields, TEID 7) on UDP 2152
// carrying IPv4/UDP to inner dport.
func gtpuFrame(dport uint16) []byte {
	inner := ipv4udp([4]byte{10, 45, 0, 1}, [4]byte{10, 46, 0, 2}, 40000, dport, make([]byte, payloadLen))
	g := make([]byte, 8, 8+len(inner))
	g[0], g[1] = 0x30, 0xff
	binary.BigEndian.PutUint16(g[2:], uint16(len(inner)))
	binary.BigEndian.PutUint32(g[4:], 7)
	g = append(g, inner...)
	return ether(ipv4udp([4]byte{192, 0, 2, 1}, [4]byte{192, 0, 2, 2}, gtpuPort, gtpuPort, g))
}

// --- rule sets, the same for both classifiers: rule i is dst port firstPort+i → DROP ---

func ebpfRules(n int, gtp bool) []classify.Rule {
	rules := make([]classify.Rule, n)
	for i := range rules {
		f := classify.Filter{Protocol: []string{"UDP"}, DstPort: []string{strconv.Itoa(firstPort + i)}}
		if gtp {
			f.TunnelType = "GTP_U" // ports then constrain the inner (UE) packet
		}
		rules[i] = classify.Rule{ID: fmt.Sprint("r", i), Priority: 1, Action: classify.ActionDrop,
			Filters: []classify.Filter{f}}
	}
	return rules
}

// nftMatch is the nft expression for "dst port P" on the frame kind. nft has
// no GTP-U parser in 1.0.6, so the G-PDU variant uses fixed offsets from the
// outer transport header (GTP-U type at +9, inner protocol at +25, inner dst
// port at +38): valid only for the frame shape used here (no GTP-U optional
// fields, inner IHL 5), i.e. less work than the eBPF parser does.
func nftMatch(gtp bool, rhs string) string {
	if gtp {
		return "udp dport 2152 @th,72,8 255 @th,200,8 17 @th,304,16 " + rhs
	}
	return "udp dport " + rhs
}

func nftLinear(n int, gtp bool) string {
	var s strings.Builder
	fmt.Fprintf(&s, "table netdev %s {\n chain ingress {\n  type filter hook ingress device %q priority 0; policy accept;\n", nftTable, ifB)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&s, "  %s counter drop\n", nftMatch(gtp, strconv.Itoa(firstPort+i)))
	}
	s.WriteString(" }\n}\n")
	return s.String()
}

func nftSet(n int, gtp bool) string {
	var s strings.Builder
	typ := "type inet_service"
	if gtp {
		typ = "typeof @th,304,16"
	}
	fmt.Fprintf(&s, "table netdev %s {\n set ports {\n  %s\n  elements = { ", nftTable, typ)
	for i := 0; i < n; i++ {
		if i > 0 {
			s.WriteString(", ")
		}
		s.WriteString(strconv.Itoa(firstPort + i))
	}
	fmt.Fprintf(&s, " }\n }\n chain ingress {\n  type filter hook ingress device %q priority 0; policy accept;\n  %s counter drop\n }\n}\n",
		ifB, nftMatch(gtp, "@ports"))
	return s.String()
}

func nftLoad(b *testing.B, script string) {
	run(b, script, "ip", "netns", "exec", nsB, "nft", "-f", "-")
}

func nftDelete() {
	exec.Command("ip", "netns", "exec", nsB, "nft", "delete", "table", "netdev", nftTable).Run()
}

// nftLastCounter is the packet count of the last rule of the ingress chain.
func nftLastCounter(b *testing.B) uint64 {
	out := run(b, "", "ip", "netns", "exec", nsB, "nft", "list", "chain", "netdev", nftTable, "ingress")
	m := regexp.MustCompile(`counter packets (\d+)`).FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		b.Fatalf("no counter in nft output: %s", firstLines(out, 5))
	}
	v, _ := strconv.ParseUint(m[len(m)-1][1], 10, 64)
	return v
}

// --- measurement ---

type cpuStat struct{ softirq, busy uint64 } // jiffies (USER_HZ)

// procStat returns the softirq and busy (non-idle, non-iowait) time of every CPU summed.
func procStat() (cpuStat, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuStat{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	fl := strings.Fields(sc.Text()) // cpu user nice system idle iowait irq softirq steal ...
	var v [8]uint64
	for i := range v {
		v[i], _ = strconv.ParseUint(fl[i+1], 10, 64)
	}
	return cpuStat{softirq: v[6], busy: v[0] + v[1] + v[2] + v[5] + v[6]}, nil
}

func (e *env) rxB() (packets, dropped uint64, err error) {
	l, err := e.hB.LinkByIndex(e.idxB)
	if err != nil {
		return 0, 0, err
	}
	s := l.Attrs().Statistics
	return s.RxPackets, s.RxDropped, nil
}

type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

type result struct {
	sent, rx, rxDropped uint64
	wall                time.Duration
	thread              time.Duration // sender thread CPU (it runs the softirq inline)
	st                  cpuStat
}

// send pins one thread to e.cpu and sends frame as fast as it can for d.
// veth_xmit queues to this CPU's backlog and the softirq runs when the
// transmit path re-enables bottom halves, so the receive side (tcx or nft
// ingress included) runs on the sender's CPU, mostly in its context.
func (e *env) send(b *testing.B, frame []byte, d time.Duration) result {
	iov := make([]unix.Iovec, sendBatch)
	msgs := make([]mmsghdr, sendBatch)
	for i := range msgs {
		iov[i].Base = &frame[0]
		iov[i].SetLen(len(frame))
		msgs[i].hdr.Iov = &iov[i]
		msgs[i].hdr.Iovlen = 1
	}
	type out struct {
		r   result
		err error
	}
	done := make(chan out)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread (pinned) exits with the goroutine
		var r result
		var set unix.CPUSet
		set.Set(e.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			done <- out{err: err}
			return
		}
		runtime.Gosched()
		var ru0, ru1 unix.Rusage
		rx0, drop0, err1 := e.rxB()
		st0, err2 := procStat()
		unix.Getrusage(unix.RUSAGE_THREAD, &ru0)
		t0 := time.Now()
		end := t0.Add(d)
		for i := 0; ; i++ {
			n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(e.fd), uintptr(unsafe.Pointer(&msgs[0])), sendBatch, 0, 0, 0)
			if errno != 0 && errno != unix.ENOBUFS && errno != unix.EAGAIN {
				done <- out{err: fmt.Errorf("sendmmsg: %w", errno)}
				return
			}
			if errno == 0 {
				r.sent += uint64(n)
			}
			if i&15 == 0 && time.Now().After(end) {
				break
			}
		}
		r.wall = time.Since(t0)
		unix.Getrusage(unix.RUSAGE_THREAD, &ru1)
		st1, err3 := procStat()
		rx1, drop1, err4 := e.rxB()
		for _, err := range []error{err1, err2, err3, err4} {
			if err != nil {
				done <- out{err: err}
				return
			}
		}
		r.thread = time.Duration(unix.TimevalToNsec(ru1.Utime) - unix.TimevalToNsec(ru0.Utime) +
			unix.TimevalToNsec(ru1.Stime) - unix.TimevalToNsec(ru0.Stime))
		r.rx, r.rxDropped = rx1-rx0, drop1-drop0
		r.st = cpuStat{softirq: st1.softirq - st0.softirq, busy: st1.busy - st0.busy}
		done <- out{r: r}
	}()
	o := <-done
	if o.err != nil {
		b.Fatal(o.err)
	}
	return o.r
}

func (e *env) attachTCX(b *testing.B) link.Link {
	var l link.Link
	inNS(b, e.b, func() {
		var err error
		l, err = link.AttachTCX(link.TCXOptions{Interface: e.idxB, Program: e.cls.Program(), Attach: ebpf.AttachTCXIngress})
		if err != nil {
			b.Fatalf("attach tcx on %s: %v", ifB, err)
		}
	})
	return l
}

var rounds = flag.Int("classifynft.rounds", 3, "ABAB rounds: each round runs every implementation once")

var impls = []string{"none", "ebpf", "nft-linear", "nft-set"}

// runCase installs impl, sends frame for one interval, checks what the last
// rule counted, and removes impl again.
func (e *env) runCase(b *testing.B, impl string, n int, gtp bool, frame []byte, match bool) result {
	var matched func() uint64
	switch impl {
	case "ebpf":
		l := e.attachTCX(b)
		defer l.Close()
		lastID := fmt.Sprint("r", n-1)
		matched = func() uint64 {
			c, err := e.cls.Counters()
			if err != nil {
				b.Fatal(err)
			}
			return c[lastID].Packets
		}
	case "nft-linear", "nft-set":
		script := nftLinear(n, gtp)
		if impl == "nft-set" {
			script = nftSet(n, gtp)
		}
		nftDelete()
		nftLoad(b, script)
		defer nftDelete()
		matched = func() uint64 { return nftLastCounter(b) }
	}
	var m0 uint64
	if matched != nil {
		m0 = matched()
	}
	r := e.send(b, frame, *interval)
	if r.rx == 0 {
		b.Fatalf("%s: no frame reached %s (sent %d)", impl, ifB, r.sent)
	}
	if r.rxDropped > 0 || r.sent != r.rx {
		b.Logf("%s: sent %d, entered %s %d, rx_dropped %d", impl, r.sent, ifB, r.rx, r.rxDropped)
	}
	if matched != nil {
		got := matched() - m0
		if match && float64(got) < 0.99*float64(r.rx) || !match && got != 0 {
			b.Errorf("%s: last rule counted %d of %d frames", impl, got, r.rx)
		}
	}
	return r
}

// BenchmarkClassifyNFT runs, for each rule count and frame, the same frames
// through: nothing (baseline), the eBPF classifier at tcx ingress, an nft
// netdev ingress chain of one rule per port (linear, like the classifier),
// and an nft chain with one rule and a set of the ports. Each sub-benchmark
// runs -classifynft.rounds rounds of all four in turn (ABAB…), so machine
// noise spreads over all of them, and reports per implementation X:
//
//   - X-pps: frames entering cnftb per second;
//   - X-cpu-ns/pkt: sender thread CPU time per frame (getrusage, exact in
//     sum; the receive path, classifier included, runs inline on it);
//   - X-softirq-ns/pkt: /proc/stat softirq time, all CPUs, per frame. It is
//     tick-sampled (CONFIG_HZ, no IRQ_TIME_ACCOUNTING here), so coarser.
//
// X-cpu-ns/pkt minus none-cpu-ns/pkt is the classifier's cost per packet.
func BenchmarkClassifyNFT(b *testing.B) {
	e := setup(b)
	var counts []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > classify.MaxEntries {
			b.Fatalf("-classifynft.rules: bad count %q", s)
		}
		counts = append(counts, n)
	}
	frames := []string{"udp"}
	if *withGTP {
		frames = append(frames, "gtpu")
	}
	for _, n := range counts {
		for _, kind := range frames {
			gtp := kind == "gtpu"
			mk := udpFrame
			if gtp {
				mk = gtpuFrame
			}
			if err := e.cls.Apply(ebpfRules(n, gtp)); err != nil {
				b.Fatal(err)
			}
			for _, fc := range []struct {
				name  string
				frame []byte
				match bool
			}{{"match-last", mk(uint16(firstPort + n - 1)), true}, {"no-match", mk(missPort), false}} {
				b.Run(fmt.Sprintf("rules=%d/%s/%s", n, kind, fc.name), func(b *testing.B) {
					sum := map[string]*result{}
					for _, impl := range impls {
						sum[impl] = &result{}
					}
					for i := 0; i < b.N; i++ {
						for r := 0; r < *rounds; r++ {
							for _, impl := range impls {
								x := e.runCase(b, impl, n, gtp, fc.frame, fc.match)
								s := sum[impl]
								s.sent += x.sent
								s.rx += x.rx
								s.wall += x.wall
								s.thread += x.thread
								s.st.softirq += x.st.softirq
							}
						}
					}
					for _, impl := range impls {
						s := sum[impl]
						pkts := float64(s.rx)
						b.ReportMetric(pkts/s.wall.Seconds(), impl+"-pps")
						b.ReportMetric(float64(s.thread.Nanoseconds())/pkts, impl+"-cpu-ns/pkt")
						b.ReportMetric(float64(s.st.softirq)*1e9/userHZ/pkts, impl+"-softirq-ns/pkt")
					}
					b.ReportMetric(0, "ns/op") // ns/op is the whole ABAB sequence: meaningless
				})
			}
		}
	}
}
