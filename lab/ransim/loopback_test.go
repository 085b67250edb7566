package ransim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mecorch/mecorch/lab/ransim/gtpu"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// syncBuffer is a bytes.Buffer safe to read while a UE writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) reports(t *testing.T) []UEReport {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []UEReport
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var r UEReport
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("UE line %q: %v", sc.Bytes(), err)
		}
		out = append(out, r)
	}
	return out
}

// runner runs simulators until the test ends and checks they stopped
// cleanly.
type runner interface{ Run(context.Context) error }

func start(t *testing.T, r runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%T.Run: %v", r, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%T.Run did not return", r)
		}
	})
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

const (
	cellA = "262-01-0000000a1"
	cellB = "262-01-0000000b1"
)

func testSession() Session {
	return Session{UE: netip.MustParseAddr("10.45.0.2"), ULTEID: 0x100, DLTEID: 0x200, QFI: 9}
}

// TestLoopbackTrafficAndHandover runs the whole chain on 127.0.0.1 (no
// privileges): requests cross gNB 1, UPF and DN, the UE moves to gNB 2
// mid-stream, traffic carries on, the UPF switches the downlink and tells
// gNB 1 with an End Marker, and mecorch is told of one cell change.
func TestLoopbackTrafficAndHandover(t *testing.T) {
	log := testLogger(t)
	dn := must[*DN](t)(NewDN(DNConfig{Addr: "127.0.0.1:0", Name: "dn-central", TCP: true}, log))
	start(t, dn)
	upf := must[*UPF](t)(NewUPF(UPFConfig{N3Addr: "127.0.0.1:0", N6Addr: "127.0.0.1", Sessions: []Session{testSession()}}, log))
	start(t, upf)
	gnb := func(name, cell string) *GNB {
		g := must[*GNB](t)(NewGNB(GNBConfig{Name: name, Cells: []string{cell}, RadioAddr: "127.0.0.1:0", N3Addr: "127.0.0.1:0",
			UPFAddr: upf.N3Addr().String(), Sessions: []Session{testSession()}}, log))
		start(t, g)
		return g
	}
	gnb1, gnb2 := gnb("gnb1", cellA), gnb("gnb2", cellB)
	rec, srv := newRecorder(t, "tok")
	reporter := must[*HTTPReporter](t)(NewHTTPReporter(srv.URL, "tok", nil))

	out := &syncBuffer{}
	const count = 120
	ue := must[*UE](t)(NewUE(UEConfig{
		ID: "ue1", Addr: testSession().UE, GNB: gnb1.RadioAddr().String(), Cell: cellA,
		Target: dn.UDPAddr().AddrPort(), Rate: 100, Count: count, Timeout: 3 * time.Second, ReportEvery: 200 * time.Millisecond,
		Handover: &Handover{After: 500 * time.Millisecond, GNB: gnb2.RadioAddr().String(), Cell: cellB},
		Reporter: reporter, Out: out, LocalAddr: "127.0.0.1:0",
	}, log))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ue.Run(ctx); err != nil {
		t.Fatal(err)
	}

	tot := ue.Totals()
	if tot.Sent != count || tot.Received != count || tot.Lost != 0 || tot.AnsweredBy["dn-central"] != count {
		t.Fatalf("UE totals %+v", tot)
	}
	s1, s2, us := gnb1.Stats(), gnb2.Stats(), upf.Stats()
	if s1.Uplink == 0 || s2.Uplink == 0 || s1.Uplink+s2.Uplink != count || s1.Downlink+s2.Downlink != count {
		t.Fatalf("traffic did not cross both gNBs: %+v %+v", s1, s2)
	}
	if s1.EndMarkers != 1 || s2.EndMarkers != 0 || us.PathSwitches != 1 || us.Uplink != count || us.Downlink != count {
		t.Fatalf("path switch: gnb1 %+v gnb2 %+v upf %+v", s1, s2, us)
	}
	got := rec.got()
	if len(got) != 1 || got[0].UEID != "ue1" || got[0].FromCell != cellA || got[0].ToCell != cellB || time.Since(got[0].Time) > time.Minute {
		t.Fatalf("cell changes = %+v", got)
	}
	kinds := map[string]int{}
	var final UEReport
	for _, r := range out.reports(t) {
		kinds[r.Type]++
		if r.Type == "final" {
			final = r
		}
	}
	if kinds["handover"] != 1 || kinds["cell_change_reported"] != 1 || kinds["final"] != 1 || kinds["stats"] < 2 {
		t.Fatalf("UE lines: %v", kinds)
	}
	if final.Cell != cellB || final.GNB != gnb2.RadioAddr().String() || final.Received != count || final.P99Ms <= 0 || final.P50Ms > final.P99Ms {
		t.Fatalf("final line: %+v %+v", final, final.UEStats)
	}
}

// TestPathManagementAndRefusals: both tunnel ends answer Echo Requests,
// report an unknown TEID with an Error Indication, and count what they
// refuse instead of forwarding it.
func TestPathManagementAndRefusals(t *testing.T) {
	log := testLogger(t)
	upf := must[*UPF](t)(NewUPF(UPFConfig{N3Addr: "127.0.0.1:0", Sessions: []Session{testSession()}}, log))
	start(t, upf)
	gnb := must[*GNB](t)(NewGNB(GNBConfig{Name: "g", Cells: []string{cellA}, RadioAddr: "127.0.0.1:0", N3Addr: "127.0.0.1:0",
		UPFAddr: upf.N3Addr().String(), Sessions: []Session{testSession()}}, log))
	start(t, gnb)
	peer := must[*net.UDPConn](t)(net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}))
	defer peer.Close()
	ask := func(to netip.AddrPort, m *gtpu.Message) *gtpu.Message {
		t.Helper()
		b := must[[]byte](t)(m.Encode())
		if _, err := peer.WriteToUDPAddrPort(b, to); err != nil {
			t.Fatal(err)
		}
		_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		n, _, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no answer from %s: %v", to, err)
		}
		return must[*gtpu.Message](t)(gtpu.Decode(buf[:n]))
	}
	for _, to := range []netip.AddrPort{upf.N3Addr(), gnb.N3Addr()} {
		resp := ask(to, gtpu.NewEchoRequest(4711))
		if resp.Type != gtpu.EchoResponse || !resp.HasSeq || resp.Seq != 4711 || !bytes.Equal(resp.Payload, []byte{14, 0}) {
			t.Fatalf("%s: echo answer %+v", to, resp)
		}
		unknown := must[*gtpu.Message](t)(gtpu.NewGPDU(0xdead, &gtpu.PDUSessionContainer{Type: gtpu.PDUTypeUL, QFI: 9}, []byte{0x45}))
		ei := ask(to, unknown)
		teid, _, err := gtpu.ParseErrorIndication(ei)
		if err != nil || teid != 0xdead {
			t.Fatalf("%s: error indication %+v: %#x %v", to, ei, teid, err)
		}
	}
	// Refused without an answer: garbage, a G-PDU without the container,
	// one with the wrong QFI, one whose inner packet is not the UE's.
	send := func(to netip.AddrPort, b []byte) {
		if _, err := peer.WriteToUDPAddrPort(b, to); err != nil {
			t.Fatal(err)
		}
	}
	send(upf.N3Addr(), []byte("not GTP-U"))
	bare := must[*gtpu.Message](t)(gtpu.NewGPDU(0x100, nil, []byte{0x45}))
	send(upf.N3Addr(), must[[]byte](t)(bare.Encode()))
	wrongQFI := must[*gtpu.Message](t)(gtpu.NewGPDU(0x100, &gtpu.PDUSessionContainer{Type: gtpu.PDUTypeUL, QFI: 5}, []byte{0x45}))
	send(upf.N3Addr(), must[[]byte](t)(wrongQFI.Encode()))
	badInner := must[*gtpu.Message](t)(gtpu.NewGPDU(0x100, &gtpu.PDUSessionContainer{Type: gtpu.PDUTypeUL, QFI: 9}, []byte("not IPv4")))
	send(upf.N3Addr(), must[[]byte](t)(badInner.Encode()))
	send(gnb.RadioAddr(), []byte("not IPv4"))
	waitFor(t, func() bool {
		s, g := upf.Stats(), gnb.Stats()
		return s.Malformed == 1 && s.BadContainer == 2 && s.BadInner == 1 && s.UnknownTEID == 1 && s.Uplink == 0 && g.Malformed == 1
	}, func() any { return []any{upf.Stats(), gnb.Stats()} })
}

// waitFor polls cond; counters are updated by other goroutines.
func waitFor(t *testing.T, cond func() bool, state func() any) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met: %+v", state())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDNEcho(t *testing.T) {
	dn := must[*DN](t)(NewDN(DNConfig{Addr: "127.0.0.1:0", Name: "edge", TCP: true}, testLogger(t)))
	start(t, dn)
	c := must[net.Conn](t)(net.Dial("udp", dn.UDPAddr().String()))
	defer c.Close()
	_, _ = c.Write([]byte("ping"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "edge|ping" {
		t.Fatalf("UDP echo %q %v", buf[:n], err)
	}
	tc := must[net.Conn](t)(net.Dial("tcp", dn.TCPAddr().String()))
	defer tc.Close()
	_, _ = io.WriteString(tc, "one\ntwo\n")
	_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(tc)
	for _, want := range []string{"edge|one\n", "edge|two\n"} {
		if line, err := r.ReadString('\n'); err != nil || line != want {
			t.Fatalf("TCP echo %q %v, want %q", line, err, want)
		}
	}
	if _, err := NewDN(DNConfig{Addr: "127.0.0.1:0", Name: "a|b"}, testLogger(t)); err == nil {
		t.Fatal("a name with the separator was accepted")
	}
}
