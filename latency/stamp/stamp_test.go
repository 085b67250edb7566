package stamp

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mecorch/mecorch/latency"
)

// need fails under CI=true (where every capability must be there) and
// skips elsewhere.
func need(t *testing.T, format string, a ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, a...)
	}
	t.Skipf(format, a...)
}

func startReflector(t *testing.T, cfg ReflectorConfig) *Reflector {
	t.Helper()
	r, err := NewReflector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runReflector(t, r)
	return r
}

// runReflector runs r until the test ends.
func runReflector(t *testing.T, r *Reflector) { runUntilEnd(t, "reflector", r.Run) }

// runUntilEnd runs run until the test ends, and fails the test if it
// ended with an error.
func runUntilEnd(t *testing.T, what string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s Run: %v", what, err)
		}
	})
}

// collector gathers samples by target.
type collector struct {
	mu sync.Mutex
	by map[string][]latency.Sample
}

func (c *collector) add(s latency.Sample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string][]latency.Sample{}
	}
	c.by[s.Target] = append(c.by[s.Target], s)
}

func (c *collector) get(id string) []latency.Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]latency.Sample(nil), c.by[id]...)
}

// waitFor polls until cond holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startSender(t *testing.T, cfg SenderConfig, c *collector) *Sender {
	t.Helper()
	s, err := NewSender(cfg, c.add)
	if err != nil {
		t.Fatal(err)
	}
	runSender(t, s)
	return s
}

// runSender runs s until the test ends.
func runSender(t *testing.T, s *Sender) { runUntilEnd(t, "sender", s.Run) }

func port(a net.Addr) uint16 { return uint16(a.(*net.UDPAddr).Port) }

func TestLoopbackRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		mode, listen, target string
		want                 latency.Source
	}{
		{ModeAuto, "127.0.0.1:0", "127.0.0.1", latency.SourceKernel},
		{ModeUser, "127.0.0.1:0", "127.0.0.1", latency.SourceUser},
		{ModeAuto, "[::1]:0", "::1", latency.SourceKernel},
		{ModeAuto, ":0", "127.0.0.1", latency.SourceKernel}, // dual-stack reflector, IPv4 probe
	} {
		t.Run(tc.mode+"/"+tc.listen, func(t *testing.T) {
			r := startReflector(t, ReflectorConfig{Listen: tc.listen})
			var c collector
			local := ":0"
			if tc.listen == "[::1]:0" {
				local = "[::1]:0"
			}
			s := startSender(t, SenderConfig{Local: local, Interval: 10 * time.Millisecond, Mode: tc.mode}, &c)
			target := netip.AddrPortFrom(netip.MustParseAddr(tc.target), port(r.Addr())).String()
			s.SetTargets([]Target{{ID: "r", Addr: target}})
			waitFor(t, 5*time.Second, "10 samples", func() bool { return len(c.get("r")) >= 10 })
			for _, x := range c.get("r") {
				if x.Lost {
					t.Errorf("seq %d lost on loopback", x.Seq)
					continue
				}
				if x.RTT <= 0 || x.RTT > 50*time.Millisecond {
					t.Errorf("seq %d: RTT %v", x.Seq, x.RTT)
				}
				if x.Source != tc.want {
					need(t, "seq %d: source %s, want %s (kernel timestamping missing?)", x.Seq, x.Source, tc.want)
				}
			}
			if got := s.Source(); got != tc.want {
				t.Errorf("Source() = %s, want %s", got, tc.want)
			}
			rc := r.Counters()
			if rc.Reflected < 10 || rc.Malformed != 0 {
				t.Errorf("reflector counters %+v", rc)
			}
			if tc.want == latency.SourceKernel && rc.KernelRX == 0 {
				t.Errorf("reflector used no kernel receive stamp: %+v", rc)
			}
			if sc := s.Counters(); sc.Unmatched != 0 || sc.Duplicate != 0 || sc.Malformed != 0 {
				t.Errorf("sender counters %+v", sc)
			}
		})
	}
}

// A TWAMP-light sender's shortest probe gets a well-formed answer in the
// reflector layout both protocols share.
func TestTWAMPLightInterop(t *testing.T) {
	r := startReflector(t, ReflectorConfig{Listen: "127.0.0.1:0"})
	conn, err := net.DialUDP("udp", nil, r.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sent := time.Now()
	probe := make([]byte, 14)
	probe[3] = 42 // sequence number
	ts := NTPTimestamp(sent)
	for i := range 8 {
		probe[4+i] = byte(uint64(ts) >> (56 - 8*i))
	}
	probe[12], probe[13] = 0x00, 0x01 // S=0 Z=0 Scale=0 Multiplier=1
	if _, err := conn.Write(probe); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 2048)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if n < MinTWAMPReplySize {
		t.Fatalf("answer of %d octets", n)
	}
	a, err := DecodeReflector(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	if a.Seq != 42 || a.SenderSeq != 42 || a.SenderTimestamp != ts || a.SenderErrorEstimate.Multiplier != 1 {
		t.Errorf("answer %+v", a)
	}
	if a.SenderTTL != 64 {
		t.Errorf("Ses-Sender TTL %d, want loopback's 64", a.SenderTTL)
	}
	t2, t3 := a.ReceiveTimestamp.Time(false), a.Timestamp.Time(false)
	if t2.Before(sent) || t3.Before(t2) || t3.Sub(sent) > time.Second {
		t.Errorf("stamps: sent %v, T2 %v, T3 %v", sent, t2, t3)
	}
}

// Symmetric size: the answer to a probe with TLVs is as long, with the
// TLVs back and flagged as unrecognized.
func TestReflectorKeepsSizeAndTLVs(t *testing.T) {
	r := startReflector(t, ReflectorConfig{Listen: "127.0.0.1:0", SSIDs: []uint16{9}})
	conn, err := net.DialUDP("udp", nil, r.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p := SenderPacket{Seq: 1, SSID: 9, TLVs: []TLV{{Type: 1, Value: make([]byte, 100)}}}
	b, _ := p.MarshalBinary()
	other := SenderPacket{Seq: 2, SSID: 10}
	ob, _ := other.MarshalBinary()
	for _, x := range [][]byte{ob, {1, 2, 3}, b} {
		if _, err := conn.Write(x); err != nil {
			t.Fatal(err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 2048)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	a, err := DecodeReflector(buf[:n])
	if err != nil || n != len(b) || a.SSID != 9 || len(a.TLVs) != 1 || a.TLVs[0].Flags != TLVFlagU || len(a.TLVs[0].Value) != 100 {
		t.Fatalf("answer of %d octets to %d: %+v, %v", n, len(b), a, err)
	}
	waitFor(t, time.Second, "counters", func() bool { c := r.Counters(); return c.Filtered == 1 && c.Malformed == 1 })
}

func TestSetTargetsMidRun(t *testing.T) {
	r1 := startReflector(t, ReflectorConfig{Listen: "127.0.0.1:0"})
	r2 := startReflector(t, ReflectorConfig{Listen: "127.0.0.1:0"})
	var c collector
	s := startSender(t, SenderConfig{Interval: 10 * time.Millisecond}, &c)
	a := Target{ID: "a", Addr: r1.Addr().String()}
	b := Target{ID: "b", Addr: r2.Addr().String()}
	s.SetTargets([]Target{a})
	waitFor(t, 5*time.Second, "a's samples", func() bool { return len(c.get("a")) >= 5 })
	s.SetTargets([]Target{a, b})
	waitFor(t, 5*time.Second, "b's samples", func() bool { return len(c.get("b")) >= 5 })
	s.SetTargets([]Target{b})
	time.Sleep(50 * time.Millisecond) // let a's last probe come back
	na := len(c.get("a"))
	waitFor(t, 5*time.Second, "more of b", func() bool { return len(c.get("b")) >= 15 })
	if got := len(c.get("a")); got != na {
		t.Errorf("a was probed after it was removed: %d samples, then %d", na, got)
	}
	// a kept its session across the change: its sequence numbers run on.
	for i, x := range c.get("a") {
		if x.Seq != uint32(i) {
			t.Fatalf("a's sample %d has seq %d", i, x.Seq)
		}
	}
	for i, x := range c.get("b") {
		if x.Seq != uint32(i) || x.Lost {
			t.Fatalf("b's sample %d: %+v", i, x)
		}
	}
}

func TestLossDetection(t *testing.T) {
	// A bound socket that never answers: nobody reflects there.
	dead, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	r := startReflector(t, ReflectorConfig{Listen: "127.0.0.1:0"})
	var c collector
	s := startSender(t, SenderConfig{Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond}, &c)
	s.SetTargets([]Target{{ID: "dead", Addr: dead.LocalAddr().String()}, {ID: "live", Addr: r.Addr().String()}})
	waitFor(t, 5*time.Second, "lost samples", func() bool { return len(c.get("dead")) >= 5 })
	for _, x := range c.get("dead") {
		if !x.Lost || x.RTT != 0 {
			t.Errorf("dead target's sample %+v", x)
		}
	}
	for _, x := range c.get("live") {
		if x.Lost {
			t.Errorf("live target lost seq %d", x.Seq)
		}
	}
	if sc := s.Counters(); sc.Lost < 5 {
		t.Errorf("counters %+v", sc)
	}
}

// An answer that comes twice is counted, not reported twice; one that
// comes after its probe was declared lost is counted as late.
func TestDuplicateAndLateAnswers(t *testing.T) {
	for _, late := range []bool{false, true} {
		relay, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer relay.Close()
		var c collector
		s := startSender(t, SenderConfig{Interval: time.Hour, Timeout: 100 * time.Millisecond}, &c)
		s.SetTargets([]Target{{ID: "x", Addr: relay.LocalAddr().String()}})
		buf := make([]byte, 2048)
		relay.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, from, err := relay.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		p, err := DecodeSender(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		if late {
			waitFor(t, 3*time.Second, "the loss", func() bool { return len(c.get("x")) == 1 })
		}
		now := NTPTimestamp(time.Now())
		a := ReflectorPacket{Seq: p.Seq, SSID: p.SSID, SenderSeq: p.Seq, Timestamp: now, ReceiveTimestamp: now}
		b, _ := a.MarshalBinary()
		relay.WriteTo(b, from)
		relay.WriteTo(b, from)
		if late {
			waitFor(t, 3*time.Second, "late answers", func() bool { return s.Counters().Late == 2 })
			if got := c.get("x"); len(got) != 1 || !got[0].Lost {
				t.Errorf("samples %+v, want one lost", got)
			}
			continue
		}
		waitFor(t, 3*time.Second, "duplicate", func() bool { return s.Counters().Duplicate == 1 })
		time.Sleep(150 * time.Millisecond) // past the timeout: no loss either
		if got := c.get("x"); len(got) != 1 || got[0].Lost {
			t.Errorf("samples %+v, want one answered", got)
		}
	}
}

// TestImpossibleStampsAreDropped: a reflector whose stamps cannot be right
// (it answers before it received, or claims to have held the probe longer
// than the whole round trip: a clock stepped on its side) yields no
// sample, only a count; a sane answer after it still does.
func TestImpossibleStampsAreDropped(t *testing.T) {
	relay, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	var c collector
	s := startSender(t, SenderConfig{Interval: 50 * time.Millisecond, Timeout: time.Second}, &c)
	s.SetTargets([]Target{{ID: "x", Addr: relay.LocalAddr().String()}})
	buf := make([]byte, 2048)
	for i, residence := range []time.Duration{-time.Millisecond, 2 * time.Second, 10 * time.Microsecond} {
		relay.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, from, err := relay.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		p, err := DecodeSender(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		rx := time.Now()
		a := ReflectorPacket{Seq: p.Seq, SSID: p.SSID, SenderSeq: p.Seq, SenderTimestamp: p.Timestamp,
			ReceiveTimestamp: NTPTimestamp(rx), Timestamp: NTPTimestamp(rx.Add(residence))}
		b, _ := a.MarshalBinary()
		if _, err := relay.WriteTo(b, from); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			waitFor(t, 3*time.Second, "the bad answer counted", func() bool { return s.Counters().BadStamps == uint64(i+1) })
		}
	}
	waitFor(t, 3*time.Second, "the sane answer", func() bool {
		for _, smp := range c.get("x") {
			if !smp.Lost {
				return true
			}
		}
		return false
	})
	for _, smp := range c.get("x") {
		if !smp.Lost && (smp.RTT < 0 || smp.RTT > time.Second) {
			t.Errorf("a sample with an impossible RTT got through: %+v", smp)
		}
	}
	if got := s.Counters().BadStamps; got != 2 {
		t.Errorf("BadStamps = %d, want 2", got)
	}
}

// TestSendStampCountSlipRecovers: when our count of the kernel's send IDs
// slips (as after a failed send that used one), the first stamp that does
// not fit finds its probe, the count is set right, and later probes get
// kernel stamps again instead of falling back to user space for good.
func TestSendStampCountSlipRecovers(t *testing.T) {
	r := startReflector(t, ReflectorConfig{Listen: "127.0.0.1:0"})
	var c collector
	s := startSender(t, SenderConfig{Interval: 20 * time.Millisecond, Timeout: time.Second}, &c)
	s.SetTargets([]Target{{ID: "x", Addr: r.Addr().String()}})
	waitFor(t, 3*time.Second, "kernel-stamped samples", func() bool { return s.Counters().KernelTX >= 5 })
	if !s.sock.tx {
		t.Fatal("no kernel send stamps on this socket")
	}
	s.mu.Lock()
	s.txNext-- // the kernel is now one ahead of our count
	s.mu.Unlock()
	waitFor(t, 5*time.Second, "the count set right", func() bool { return s.Counters().TXResync >= 1 })
	n := len(c.get("x"))
	waitFor(t, 5*time.Second, "ten more samples", func() bool { return len(c.get("x")) >= n+10 })
	got := c.get("x")
	for _, smp := range got[len(got)-5:] {
		if smp.Lost || smp.Source != latency.SourceKernel {
			t.Errorf("after the resync: %+v, want kernel-stamped", smp)
		}
	}
}
