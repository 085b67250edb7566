package linkemu

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestDelayAccuracy(t *testing.T) {
	cases := []struct {
		name       string
		aToB, bToA time.Duration
	}{
		{"1ms each way", time.Millisecond, time.Millisecond},
		{"5ms each way", 5 * time.Millisecond, 5 * time.Millisecond},
		{"asymmetric 2ms/8ms", 2 * time.Millisecond, 8 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			l.start(t, Params{Delay: tc.aToB}, Params{Delay: tc.bToA})
			c, to := l.echoPair(t)
			pingPong(t, c, to, 5) // resolves neighbours
			rtts := pingPong(t, c, to, 50)
			want := tc.aToB + tc.bToA
			got := median(rtts)
			t.Logf("rtt min %v median %v max %v, want %v", rtts[0], got, rtts[len(rtts)-1], want)
			if d := got - want; d < -tolerance(want) || d > tolerance(want) {
				t.Errorf("median rtt %v, want %v ± %v", got, want, tolerance(want))
			}
		})
	}
}

func TestNoDelayPassesTraffic(t *testing.T) {
	l := newLab(t)
	link := l.start(t, Params{}, Params{})
	c, to := l.echoPair(t)
	rtts := pingPong(t, c, to, 50)
	t.Logf("rtt min %v median %v max %v", rtts[0], median(rtts), rtts[len(rtts)-1])
	if median(rtts) > 2*time.Millisecond {
		t.Errorf("median rtt %v without delay", median(rtts))
	}
	st := link.Stats()
	if st.AtoB.Relayed < 50 || st.BtoA.Relayed < 50 {
		t.Errorf("stats %+v: fewer than 50 frames each way", st)
	}
}

func TestSetChangesDelayLive(t *testing.T) {
	l := newLab(t)
	link := l.start(t, Params{Delay: 2 * time.Millisecond}, Params{Delay: 2 * time.Millisecond})
	c, to := l.echoPair(t)
	pingPong(t, c, to, 5)
	for _, d := range []time.Duration{2 * time.Millisecond, 10 * time.Millisecond, time.Millisecond} {
		if err := link.Set(Params{Delay: d}, Params{Delay: d}); err != nil {
			t.Fatal(err)
		}
		rtts := pingPong(t, c, to, 30)
		want, got := 2*d, median(rtts)
		t.Logf("delay %v: median rtt %v", d, got)
		if diff := got - want; diff < -tolerance(want) || diff > tolerance(want) {
			t.Errorf("delay %v: median rtt %v, want %v ± %v", d, got, want, tolerance(want))
		}
	}
	if err := link.Set(Params{Delay: -1}, Params{}); err == nil {
		t.Error("Set took a negative delay")
	}
}

func TestLoss(t *testing.T) {
	l := newLab(t)
	link := l.start(t, Params{}, Params{})
	c, to := l.echoPair(t)
	pingPong(t, c, to, 3) // neighbours resolved before the loss starts
	sink := listenUDP(t, l.b, netip.AddrPortFrom(addrB.Addr(), 7008))
	if err := link.Set(Params{LossPct: 50}, Params{}); err != nil {
		t.Fatal(err)
	}
	const n = 400
	before := link.Stats().AtoB
	for i := range n {
		if _, err := c.WriteToUDPAddrPort([]byte{byte(i)}, sink.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // stays under the sockets' buffers
		}
	}
	got := 0
	buf := make([]byte, 16)
	for {
		_ = sink.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := sink.ReadFromUDPAddrPort(buf); err != nil {
			if !isTimeout(err) {
				t.Fatal(err)
			}
			break
		}
		got++
	}
	after := link.Stats().AtoB
	lost := after.Lost - before.Lost
	t.Logf("%d of %d arrived; relay counted %d lost", got, n, lost)
	// Binomial(400, 0.5): mean 200, standard deviation 10; ±5σ.
	if got < 150 || got > 250 {
		t.Errorf("%d of %d arrived with 50%% loss", got, n)
	}
	if lost < uint64(n-got) || lost > uint64(n-got)+10 {
		t.Errorf("relay counted %d lost, %d did not arrive", lost, n-got)
	}
}

func TestRate(t *testing.T) {
	l := newLab(t)
	link := l.start(t, Params{RateKbit: 10_000}, Params{})
	c, echoTo := l.echoPair(t)
	pingPong(t, c, echoTo, 3) // neighbours resolved before the flood
	to := netip.AddrPortFrom(addrB.Addr(), 7009)
	sink := listenUDP(t, l.b, to)
	_ = sink.SetReadBuffer(4 << 20)
	// Offer some 20 Mbit/s of 1472-byte datagrams (1514-byte frames) for
	// 1.2 s; what leaves the link must be its rate.
	const payload = 1472
	type arrival struct {
		at time.Time
		n  int
	}
	arrivals := make(chan []arrival, 1)
	go func() {
		var got []arrival
		buf := make([]byte, 2048)
		for wait := 2 * time.Second; ; wait = 500 * time.Millisecond {
			_ = sink.SetReadDeadline(time.Now().Add(wait))
			n, _, err := sink.ReadFromUDPAddrPort(buf)
			if err != nil {
				arrivals <- got
				return
			}
			got = append(got, arrival{time.Now(), n})
		}
	}()
	msg := make([]byte, payload)
	start := time.Now()
	sent := 0
	for time.Since(start) < 1200*time.Millisecond {
		for float64(sent) < time.Since(start).Seconds()*20e6/8/1514 {
			if _, err := c.WriteToUDPAddrPort(msg, to); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		time.Sleep(time.Millisecond)
	}
	got := <-arrivals
	if len(got) < 100 {
		t.Fatalf("%d of %d datagrams arrived; stats %+v", len(got), sent, link.Stats())
	}
	// The first arrivals left an empty queue: measure once it has built up.
	got = got[10:]
	bytes := 0
	for _, a := range got[1:] {
		bytes += a.n
	}
	span := got[len(got)-1].at.Sub(got[0].at)
	mbps := float64(bytes) * 8 / span.Seconds() / 1e6
	st := link.Stats().AtoB
	t.Logf("sent %d, got %d over %v: %.2f Mbit/s of payload (%.2f of frames); stats %+v",
		sent, len(got)+10, span, mbps, mbps*1514/1472, st)
	if mbps < 8 || mbps > 10.5 {
		t.Errorf("throughput %.2f Mbit/s through a 10 Mbit/s link", mbps)
	}
	// The kernel's tbf does the pacing (and the dropping), not the relay.
	drops, _, err := link.ShapedDrops()
	if err != nil {
		t.Fatal(err)
	}
	if drops == 0 || st.QueueDrops != 0 {
		t.Errorf("offered twice the rate: tbf dropped %d, the relay %d (want some, and none)", drops, st.QueueDrops)
	}
	// Lifting the rate removes the tbf.
	if err := link.Set(Params{}, Params{}); err != nil {
		t.Fatal(err)
	}
	if d, _, err := link.ShapedDrops(); err != nil || d != 0 {
		t.Errorf("after lifting the rate: tbf still there (drops %d, %v)", d, err)
	}
}

func TestJitterKeepsOrder(t *testing.T) {
	l := newLab(t)
	const delay, jitter = 5 * time.Millisecond, 2 * time.Millisecond
	link := l.start(t, Params{Delay: delay, Jitter: jitter}, Params{Delay: delay, Jitter: jitter})
	c, to := l.echoPair(t)
	pingPong(t, c, to, 3)
	// Probes some a millisecond apart, closer than the jitter's spread:
	// were frames not kept in order they would come back shuffled.
	// Each carries its sequence number and when it was sent.
	const n = 300
	base := time.Now()
	go func() {
		msg := make([]byte, 64)
		for i := range n {
			binary.BigEndian.PutUint64(msg, uint64(i))
			binary.BigEndian.PutUint64(msg[8:], uint64(time.Since(base)))
			if _, err := c.WriteToUDPAddrPort(msg, to); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	var rtts []time.Duration
	last := -1
	buf := make([]byte, 64)
	for len(rtts) < n {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		m, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("after %d echoes: %v", len(rtts), err)
		}
		if m < 16 {
			continue
		}
		seq := int(binary.BigEndian.Uint64(buf))
		if seq <= last {
			t.Fatalf("echo %d after %d: reordered", seq, last)
		}
		last = seq
		rtts = append(rtts, time.Since(base)-time.Duration(binary.BigEndian.Uint64(buf[8:])))
	}
	slices.Sort(rtts)
	// A frame's delay is within Delay ± Jitter; keeping the order only
	// holds it back to the due time of the one ahead, within that range
	// too. The 10th and 90th percentiles must be in it: the extremes would
	// measure how busy the machine is.
	lo, hi := 2*(delay-jitter), 2*(delay+jitter)
	p10, p90 := rtts[n/10], rtts[n-n/10]
	t.Logf("rtt min %v p10 %v median %v p90 %v max %v; bounds [%v, %v]; stats %+v",
		rtts[0], p10, median(rtts), p90, rtts[n-1], lo, hi, link.Stats())
	if p10 < lo || p90 > hi+tolerance(hi) {
		t.Errorf("rtt p10 %v, p90 %v: outside [%v, %v + %v]", p10, p90, lo, hi, tolerance(hi))
	}
	if p90-p10 < jitter/2 {
		t.Errorf("10th and 90th percentiles of rtt %v apart: jitter not applied", p90-p10)
	}
}
