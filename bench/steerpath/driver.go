package steerpath

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/traffic/classify"
	"github.com/mecorch/mecorch/traffic/netns"
)

// Config says what to measure.
type Config struct {
	// InnerSizes are the lengths of the inner IPv4 packets, in bytes.
	InnerSizes []int
	// RuleCounts are the sizes of the classifier's rule sets; the rule
	// that matches is always the last one tried.
	RuleCounts []int
	// Interval is how long each run is timed; Warmup is sent before it,
	// uncounted.
	Interval, Warmup time.Duration
	// Rounds is how many times each case runs; a round runs every case
	// once, in the same order (ABAB...).
	Rounds int
	// Batch is the number of frames per sendmmsg.
	Batch int
	// Pipeline moves dut's and app's receive processing to a second CPU
	// (RPS on dut's veth), so that sender and receive side are two stages.
	// Without it all of it runs inline on the sender's CPU, in the
	// sender's system calls.
	Pipeline bool
	// QuietWait is how long a run may wait for the machine to be idle
	// before it starts anyway (see waitQuiet); 0 does not wait.
	QuietWait time.Duration
}

// DefaultConfig is what `make bench-steer` measures.
func DefaultConfig() Config {
	return Config{
		InnerSizes: []int{64, 512, 1400},
		RuleCounts: []int{1, 100},
		Interval:   time.Second,
		Warmup:     200 * time.Millisecond,
		Rounds:     5,
		Batch:      64,
		QuietWait:  30 * time.Second,
	}
}

func (c Config) validate() error {
	if len(c.InnerSizes) == 0 || len(c.RuleCounts) == 0 {
		return errors.New("steerpath: no inner sizes or no rule counts")
	}
	for _, s := range c.InnerSizes {
		if s < minInner || s > maxInner {
			return fmt.Errorf("steerpath: inner size %d not in %d-%d", s, minInner, maxInner)
		}
	}
	for _, n := range c.RuleCounts {
		if n < 1 || n > classify.MaxEntries {
			return fmt.Errorf("steerpath: rule count %d not in 1-%d", n, classify.MaxEntries)
		}
	}
	if c.Interval <= 0 || c.Warmup < 0 || c.Rounds < 1 || c.Batch < 1 || c.QuietWait < 0 {
		return fmt.Errorf("steerpath: bad interval %v, warmup %v, rounds %d or batch %d", c.Interval, c.Warmup, c.Rounds, c.Batch)
	}
	return nil
}

// The cases of a round.
const (
	// CaseSender drops every frame at dut's ingress: the sender's own rate.
	CaseSender = "sender-only"
	// CaseBaseline redirects every frame to the app unchanged (baselineProg).
	CaseBaseline = "baseline"
	// CaseClassify ("classify-N") steers with N rules, the matching one last.
	CaseClassify = "classify-"
)

// matchID is the ID of the rule the frames match.
const matchID = "app"

// Driver owns the namespaces, the programs and the sender's socket.
type Driver struct {
	cfg            Config
	log            *slog.Logger
	topo           *topology
	cls            *classify.Classifier
	baseline, drop *ebpf.Program
	fd             int
	sndCPU, dutCPU int
}

// New builds the namespaces and links, loads the programs and opens the
// sender's socket. It needs root. Close undoes it all, also after a
// failed Run.
func New(cfg Config, log *slog.Logger) (d *Driver, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("steerpath: allowed CPUs: %w", err)
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	d = &Driver{cfg: cfg, log: log, fd: -1, sndCPU: cpus[0], dutCPU: cpus[0]}
	rps := -1
	if cfg.Pipeline {
		if len(cpus) < 2 {
			return nil, fmt.Errorf("steerpath: pipeline mode needs 2 CPUs, this process may use %d", len(cpus))
		}
		d.dutCPU, rps = cpus[1], cpus[1]
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.Close())
			d = nil
		}
	}()
	if d.topo, err = newTopology(rps); err != nil {
		return d, fmt.Errorf("steerpath: %w", err)
	}
	if d.cls, err = classify.New(); err != nil {
		return d, fmt.Errorf("steerpath: %w", err)
	}
	if d.baseline, err = baselineProg(d.topo.dutAIdx); err != nil {
		return d, fmt.Errorf("steerpath: %w", err)
	}
	if d.drop, err = dropProg(); err != nil {
		return d, fmt.Errorf("steerpath: %w", err)
	}
	if d.fd, err = openSender(d.topo.gen, d.topo.genIdx); err != nil {
		return d, fmt.Errorf("steerpath: %w", err)
	}
	return d, nil
}

// Close releases everything New made and deletes the namespaces.
func (d *Driver) Close() error {
	var errs []error
	if d.fd >= 0 {
		errs = append(errs, unix.Close(d.fd))
		d.fd = -1
	}
	for _, p := range []*ebpf.Program{d.baseline, d.drop} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	if d.cls != nil {
		errs = append(errs, d.cls.Close())
	}
	if d.topo != nil {
		errs = append(errs, d.topo.close())
	}
	d.baseline, d.drop, d.cls, d.topo = nil, nil, nil, nil
	return errors.Join(errs...)
}

// cases are a round's cases, in order.
func (d *Driver) cases() []string {
	cs := []string{CaseSender, CaseBaseline}
	for _, n := range d.cfg.RuleCounts {
		cs = append(cs, CaseClassify+strconv.Itoa(n))
	}
	return cs
}

// ruleSet is n FORWARD_DECAPSULATED rules to the app's veth, each for one
// inner destination port of the app's address; only the last (matchID)
// matches the frames.
func ruleSet(n int, dest classify.Dest) []classify.Rule {
	rule := func(id string, port int) classify.Rule {
		return classify.Rule{ID: id, Priority: 10, Action: classify.ActionForwardDecapsulated, Dest: dest,
			Filters: []classify.Filter{{TunnelType: "GTP_U", DstAddress: []string{appAddr.String()},
				Protocol: []string{"UDP"}, DstPort: []string{strconv.Itoa(port)}}}}
	}
	rs := make([]classify.Rule, 0, n)
	for i := 1; i < n; i++ {
		rs = append(rs, rule("other-"+strconv.Itoa(i), int(appPort)+i))
	}
	return append(rs, rule(matchID, int(appPort)))
}

// install puts the case's program at dut's ingress (and the classifier's
// rules in place).
func (d *Driver) install(c string) (link.Link, error) {
	prog := d.drop
	switch {
	case c == CaseBaseline:
		prog = d.baseline
	case strings.HasPrefix(c, CaseClassify):
		n, err := strconv.Atoi(strings.TrimPrefix(c, CaseClassify))
		if err != nil {
			return nil, fmt.Errorf("case %q: %w", c, err)
		}
		dest := classify.Dest{Ifindex: d.topo.dutAIdx, MAC: macApp}
		if err := d.cls.Apply(ruleSet(n, dest)); err != nil {
			return nil, fmt.Errorf("apply %d rules: %w", n, err)
		}
		prog = d.cls.Program()
	case c != CaseSender:
		return nil, fmt.Errorf("unknown case %q", c)
	}
	return attachIngress(d.topo.dut, d.topo.dutGIdx, prog)
}

func isClassify(c string) bool { return c != CaseSender && c != CaseBaseline }

// Run measures every inner size: first a correctness check of each case,
// then the timed rounds.
func (d *Driver) Run(ctx context.Context) (*Report, error) {
	rep := &Report{Config: d.cfg, SenderCPU: d.sndCPU, DUTCPU: d.dutCPU, Pipeline: d.cfg.Pipeline}
	for _, size := range d.cfg.InnerSizes {
		fr, err := buildFrames(size)
		if err != nil {
			return nil, err
		}
		for _, c := range d.cases() {
			if c == CaseSender {
				continue
			}
			if err := d.verify(c, fr); err != nil {
				return nil, fmt.Errorf("inner %d B, %s: %w", size, c, err)
			}
		}
		res, err := d.rounds(ctx, fr)
		if err != nil {
			return nil, fmt.Errorf("inner %d B: %w", size, err)
		}
		rep.Results = append(rep.Results, res...)
	}
	return rep, nil
}

// rounds runs the timed rounds of one inner size with the app's sink in
// place.
func (d *Driver) rounds(ctx context.Context, fr frames) ([]Result, error) {
	sink, err := attachIngress(d.topo.app, d.topo.appIdx, d.drop)
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	cases := d.cases()
	res := make([]Result, len(cases))
	for i, c := range cases {
		res[i] = Result{Inner: len(fr.inner), Case: c, Frame: len(fr.frame), Wire: fr.wireBytes()}
	}
	for r := 0; r < d.cfg.Rounds; r++ {
		for i, c := range cases {
			quiet, err := waitQuiet(ctx, d.cfg.QuietWait)
			if err != nil {
				return nil, err
			}
			if !quiet && d.cfg.QuietWait > 0 {
				d.log.Warn("machine busy, starting anyway", "waited", d.cfg.QuietWait)
			}
			run, err := d.runCase(ctx, c, fr)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", r+1, c, err)
			}
			d.log.Info("run", "inner", len(fr.inner), "case", c, "round", r+1,
				"Mpps", fmt.Sprintf("%.3f", run.PPS()/1e6), "sender Mpps", fmt.Sprintf("%.3f", run.SenderPPS()/1e6),
				"sender CPU", fmt.Sprintf("%.0f%%", 100*run.SenderCPU.Busy), "DUT CPU", fmt.Sprintf("%.0f%%", 100*run.DUTCPU.Busy))
			res[i].Runs = append(res[i].Runs, run)
		}
	}
	return res, nil
}

// snapshot is every counter a run reads.
type snapshot struct {
	dutG, app            linkStats
	matched, steerFailed uint64
	cpu                  []cpuTimes // sender's CPU, DUT's CPU
}

func (d *Driver) snap() (snapshot, error) {
	var s snapshot
	var err error
	t := d.topo
	for _, l := range []struct {
		dst *linkStats
		h   func() (linkStats, error)
	}{
		{&s.dutG, func() (linkStats, error) { return t.stats(t.hDut, t.dutGIdx) }},
		{&s.app, func() (linkStats, error) { return t.stats(t.hApp, t.appIdx) }},
	} {
		if *l.dst, err = l.h(); err != nil {
			return s, err
		}
	}
	cnt, err := d.cls.Counters()
	if err != nil {
		return s, err
	}
	s.matched = cnt[matchID].Packets
	st, err := d.cls.Stats()
	if err != nil {
		return s, err
	}
	s.steerFailed = st.SteerFailed
	s.cpu, err = readCPUTimes(d.sndCPU, d.dutCPU)
	return s, err
}

// drain is how long a run waits after the sender stops for the frames in
// flight to be processed before the final count.
const drain = 50 * time.Millisecond

// runCase times one case, then checks over the whole run, from an idle
// pipeline to an idle pipeline, that every frame is accounted for and that
// what reached the app is what the case should deliver.
func (d *Driver) runCase(ctx context.Context, c string, fr frames) (Run, error) {
	l, err := d.install(c)
	if err != nil {
		return Run{}, err
	}
	defer l.Close()
	idle0, err := d.snap()
	if err != nil {
		return Run{}, err
	}
	w, err := blast(ctx, d.fd, d.sndCPU, d.cfg.Batch, fr.frame, d.cfg.Warmup, d.cfg.Interval, d.snap)
	if err != nil {
		return Run{}, err
	}
	time.Sleep(drain)
	idle1, err := d.snap()
	if err != nil {
		return Run{}, err
	}
	run := newRun(c == CaseSender, w, idle0, idle1)
	if entered := idle1.dutG.rxPackets - idle0.dutG.rxPackets; entered != w.sentAll {
		return run, fmt.Errorf("the kernel took %d frames from the sender, %d entered %s", w.sentAll, entered, ifDutG)
	}
	return run, checkRun(c, fr, idle0, idle1, d.topo.appNAPI)
}

// checkRun checks a whole run's counters.
func checkRun(c string, fr frames, a, b snapshot, napi bool) error {
	// A veth in NAPI mode counts received bytes after the Ethernet header.
	hdr := 0
	if napi {
		hdr = 14
	}
	entered := b.dutG.rxPackets - a.dutG.rxPackets
	delivered := b.app.rxPackets - a.app.rxPackets
	rxBytes := b.app.rxBytes - a.app.rxBytes
	if entered == 0 {
		return fmt.Errorf("no frame entered %s", ifDutG)
	}
	switch {
	case c == CaseSender:
		if delivered != 0 {
			return fmt.Errorf("%d frames reached the app with everything dropped at dut", delivered)
		}
		return nil
	case c == CaseBaseline:
		if delivered == 0 || rxBytes != delivered*uint64(len(fr.frame)-hdr) {
			return fmt.Errorf("app received %d frames, %d bytes: want frames of %d bytes", delivered, rxBytes, len(fr.frame)-hdr)
		}
		return nil
	}
	matched := b.matched - a.matched
	if failed := b.steerFailed - a.steerFailed; failed != 0 {
		return fmt.Errorf("classifier could not steer %d frames", failed)
	}
	if matched != entered {
		return fmt.Errorf("the matching rule counted %d of the %d frames that entered %s", matched, entered, ifDutG)
	}
	if delivered == 0 || rxBytes != delivered*uint64(len(fr.decap)-hdr) {
		return fmt.Errorf("app received %d frames, %d bytes: want decapsulated frames of %d bytes", delivered, rxBytes, len(fr.decap)-hdr)
	}
	return nil
}

// verify sends a few frames through case c with the app's stack in place
// of the sink and checks what arrives byte for byte: for the classifier the
// decapsulated frame addressed to the app, which its stack hands to a UDP
// socket with the payload intact; for the baseline the frame as sent.
func (d *Driver) verify(c string, fr frames) error {
	const n = 3
	l, err := d.install(c)
	if err != nil {
		return err
	}
	defer l.Close()
	capFd, udpFd, err := d.appSockets(isClassify(c))
	if err != nil {
		return err
	}
	defer unix.Close(capFd)
	if udpFd >= 0 {
		defer unix.Close(udpFd)
	}
	before, err := d.cls.Counters()
	if err != nil {
		return err
	}
	st0, err := d.cls.Stats()
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := unix.Sendto(d.fd, fr.frame, 0, &unix.SockaddrLinklayer{Ifindex: d.topo.genIdx}); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	want := fr.frame
	if isClassify(c) {
		want = fr.decap
	}
	buf := make([]byte, 2048)
	got := 0
	for deadline := time.Now().Add(2 * time.Second); got < n && time.Now().Before(deadline); {
		m, from, err := unix.Recvfrom(capFd, buf, 0)
		if err != nil {
			continue // timeout: look again until the deadline
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if !bytes.Equal(buf[:m], want) {
			return fmt.Errorf("app received %d bytes\n%x\nwant %d bytes\n%x", m, buf[:m], len(want), want)
		}
		got++
	}
	if got < n {
		return fmt.Errorf("%d of %d frames reached the app", got, n)
	}
	if !isClassify(c) {
		return nil
	}
	for i := 0; i < n; i++ {
		m, from, err := unix.Recvfrom(udpFd, buf, 0)
		if err != nil {
			return fmt.Errorf("app's UDP socket, datagram %d: %w", i+1, err)
		}
		sa, _ := from.(*unix.SockaddrInet4)
		if sa == nil || netip.AddrFrom4(sa.Addr) != ueAddr || sa.Port != int(ueSport) || !bytes.Equal(buf[:m], fr.payload) {
			return fmt.Errorf("app's UDP socket got %d bytes from %v, want the %d-byte payload from %s:%d", m, from, len(fr.payload), ueAddr, ueSport)
		}
	}
	after, err := d.cls.Counters()
	if err != nil {
		return err
	}
	for id, cnt := range after {
		want := uint64(0)
		if id == matchID {
			want = n
		}
		if got := cnt.Packets - before[id].Packets; got != want {
			return fmt.Errorf("rule %s counted %d frames, want %d", id, got, want)
		}
	}
	st1, err := d.cls.Stats()
	if err != nil {
		return err
	}
	if st1.SteerFailed != st0.SteerFailed {
		return fmt.Errorf("classifier could not steer %d frames", st1.SteerFailed-st0.SteerFailed)
	}
	return nil
}

// appSockets opens, in the app's namespace, a capture socket on its veth
// and (withUDP) a UDP socket on the frames' inner destination.
func (d *Driver) appSockets(withUDP bool) (capFd, udpFd int, err error) {
	capFd, udpFd = -1, -1
	err = netns.Do(d.topo.app, func() error {
		proto := htons(unix.ETH_P_ALL)
		if capFd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(proto)); err != nil {
			return fmt.Errorf("capture socket: %w", err)
		}
		if err := unix.Bind(capFd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: d.topo.appIdx}); err != nil {
			return fmt.Errorf("bind capture socket: %w", err)
		}
		if !withUDP {
			return nil
		}
		if udpFd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0); err != nil {
			return fmt.Errorf("UDP socket: %w", err)
		}
		return unix.Bind(udpFd, &unix.SockaddrInet4{Addr: appAddr.As4(), Port: int(appPort)})
	})
	for _, fd := range []int{capFd, udpFd} {
		if fd >= 0 && err == nil {
			tv := unix.Timeval{Usec: 100000}
			err = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		}
	}
	if err != nil {
		for _, fd := range []int{capFd, udpFd} {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
		return -1, -1, err
	}
	return capFd, udpFd, nil
}

// htons turns a protocol number into network byte order, as AF_PACKET
// takes it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
