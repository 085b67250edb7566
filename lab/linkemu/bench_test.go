package linkemu

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkRelay offers b.N 64-byte UDP datagrams from a to b through a
// link with 5 ms of delay, paced at a given rate (or as fast as the
// sender goes, "max"), and reports what arrived: the rate, the loss and
// the one-way delay's median and 99th percentile, which show whether the
// relay keeps the delay at that rate.
//
//	go test -run '^$' -bench Relay -benchtime 2s ./lab/linkemu
func BenchmarkRelay(b *testing.B) {
	for _, pps := range []int{5_000, 10_000, 20_000, 50_000, 0} {
		name := "pps=max"
		if pps > 0 {
			name = fmt.Sprintf("pps=%d", pps)
		}
		b.Run(name, func(b *testing.B) { benchRelay(b, pps) })
	}
}

func benchRelay(b *testing.B, pps int) {
	const delay = 5 * time.Millisecond
	l := newLab(b)
	link := l.start(b, Params{Delay: delay}, Params{Delay: delay})
	c, echoTo := l.echoPair(b)
	pingPong(b, c, echoTo, 3)
	to := netip.AddrPortFrom(addrB.Addr(), 7010)
	sink := listenUDP(b, l.b, to)
	forceBuffer(b, sink, unix.SO_RCVBUFFORCE)
	forceBuffer(b, c, unix.SO_SNDBUFFORCE)

	base := time.Now()
	type result struct {
		delays []time.Duration
		first  time.Duration
		last   time.Duration
	}
	results := make(chan result, 1)
	go func() {
		var r result
		buf := make([]byte, 128)
		for wait := 5 * time.Second; ; wait = 200 * time.Millisecond {
			_ = sink.SetReadDeadline(time.Now().Add(wait))
			n, _, err := sink.ReadFromUDPAddrPort(buf)
			if err != nil {
				results <- r
				return
			}
			if n < 8 {
				continue
			}
			now := time.Since(base)
			if r.delays == nil {
				r.first = now
			}
			r.last = now
			r.delays = append(r.delays, now-time.Duration(binary.BigEndian.Uint64(buf)))
		}
	}()

	b.ResetTimer()
	msg := make([]byte, 64)
	for i := 0; i < b.N; {
		target := b.N
		if pps > 0 {
			target = min(b.N, int(time.Since(base).Seconds()*float64(pps))+1)
		}
		for ; i < target; i++ {
			binary.BigEndian.PutUint64(msg, uint64(time.Since(base)))
			if _, err := c.WriteToUDPAddrPort(msg, to); err != nil {
				b.Fatal(err)
			}
		}
		if i < b.N {
			time.Sleep(time.Millisecond)
		}
	}
	r := <-results
	b.StopTimer()

	st := link.Stats().AtoB
	got := len(r.delays)
	b.ReportMetric(100*float64(b.N-got)/float64(b.N), "loss%")
	if got < 2 {
		return
	}
	b.ReportMetric(float64(got-1)/(r.last-r.first).Seconds(), "rx-pps")
	slices.Sort(r.delays)
	b.ReportMetric(float64(r.delays[got/2])/1e6, "p50-ms")
	b.ReportMetric(float64(r.delays[got*99/100])/1e6, "p99-ms")
	b.ReportMetric(float64(st.MaxLate)/1e6, "maxlate-ms")
}

// forceBuffer sets a socket buffer beyond the namespace's maximum.
func forceBuffer(b *testing.B, c *net.UDPConn, opt int) {
	rc, err := c.SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 8<<20) }); err != nil {
		b.Fatal(err)
	}
	if serr != nil {
		b.Fatal(serr)
	}
}
