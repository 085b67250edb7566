//go:build linux

package agentwire

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/mec/agentproto"
)

// requireSCTP skips where the kernel has no SCTP: the one capability a
// test may skip for, also under CI=true. Any other failure fails.
func requireSCTP(t *testing.T) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP)
	if errors.Is(err, unix.EPROTONOSUPPORT) {
		t.Skip("no SCTP in this kernel: socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP) fails with EPROTONOSUPPORT")
	}
	if err != nil {
		t.Fatalf("SCTP socket: %v", err)
	}
	_ = unix.Close(fd)
}

func TestPaddrParamsLayout(t *testing.T) {
	b := paddrParams(1500 * time.Millisecond)
	if got := binary.NativeEndian.Uint32(b[132:]); got != 1500 {
		t.Errorf("spp_hbinterval = %d", got)
	}
	if got := binary.NativeEndian.Uint32(b[146:]); got != sppHBEnable {
		t.Errorf("spp_flags = %#x", got)
	}
	for i, v := range b {
		if v != 0 && (i < 132 || (i >= 136 && i < 146) || i >= 150) {
			t.Errorf("byte %d = %d, want 0 (assoc id, address, pathmaxrxt, pathmtu, sackdelay untouched)", i, v)
		}
	}
	zero := paddrParams(0)
	if got := binary.NativeEndian.Uint32(zero[132:]); got != 1 {
		t.Errorf("a zero interval must not mean 'leave unchanged': %d", got)
	}
	if unsafe.Sizeof(paddrinfo{}) != 152 || unsafe.Offsetof(paddrinfo{}.Srtt) != 140 {
		t.Errorf("paddrinfo is %d bytes, srtt at %d; struct sctp_paddrinfo is 152, srtt at 140",
			unsafe.Sizeof(paddrinfo{}), unsafe.Offsetof(paddrinfo{}.Srtt))
	}
}

func TestParseSockaddrs(t *testing.T) {
	var b []byte
	v4 := make([]byte, unix.SizeofSockaddrInet4)
	binary.NativeEndian.PutUint16(v4, unix.AF_INET)
	copy(v4[4:], []byte{10, 0, 0, 1})
	v6 := make([]byte, unix.SizeofSockaddrInet6)
	binary.NativeEndian.PutUint16(v6, unix.AF_INET6)
	copy(v6[8:], netip.MustParseAddr("fd00::2").AsSlice())
	mapped := make([]byte, unix.SizeofSockaddrInet6)
	binary.NativeEndian.PutUint16(mapped, unix.AF_INET6)
	copy(mapped[8:], netip.MustParseAddr("::ffff:10.0.1.1").AsSlice())
	b = append(append(append(b, v4...), v6...), mapped...)
	got, err := parseSockaddrs(b, 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("%v %v", got, err)
	}
	if joinAddrs(got) != "10.0.0.1,fd00::2,10.0.1.1" {
		t.Errorf("addresses %s", joinAddrs(got))
	}
	if len(got[0].raw) != unix.SizeofSockaddrInet4 || len(got[1].raw) != unix.SizeofSockaddrInet6 {
		t.Errorf("raw sockaddr lengths %d %d", len(got[0].raw), len(got[1].raw))
	}
	if _, err := parseSockaddrs(b[:20], 2); err == nil {
		t.Error("a cut list was accepted")
	}
}

func TestSRTTUnits(t *testing.T) {
	if hz := configHZ(strings.NewReader("# CONFIG_HZ_100 is not set\nCONFIG_HZ_250=y\nCONFIG_HZ=250\n")); hz != 250 {
		t.Errorf("configHZ = %d", hz)
	}
	if hz := configHZ(strings.NewReader("CONFIG_HZ_PERIODIC=y\n")); hz != 0 {
		t.Errorf("configHZ without CONFIG_HZ = %d", hz)
	}
	if got := srttMicros(3, 250); got != 12000 {
		t.Errorf("3 ticks at 250 Hz = %d µs", got)
	}
	if got := srttMicros(3, 0); got != 3000 {
		t.Errorf("3 ticks, rate unknown = %d µs (taken as ms)", got)
	}
	t.Logf("this kernel ticks at %d Hz", kernelHZ())
}

func TestDialSCTPWithoutKernelSupportSaysSo(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP)
	if err == nil {
		_ = unix.Close(fd)
		t.Skip("this kernel has SCTP")
	}
	_, err = DialSCTP(context.Background(), "sctp://127.0.0.1:7000", nil, DialOptions{})
	if !errors.Is(err, unix.EPROTONOSUPPORT) || !strings.Contains(err.Error(), "no SCTP") {
		t.Fatalf("err = %v", err)
	}
	if _, err := ListenSCTP(nil, 0, ServerOptions{}); !errors.Is(err, unix.EPROTONOSUPPORT) {
		t.Fatalf("listen: %v", err)
	}
}

// TestSCTPMultiHomed runs a two-path association over 127.0.0.1 and
// 127.0.0.2: the hello with its token, a frame near the size limit, an
// oversize one refused with an Error frame, and both paths confirmed by
// the kernel's heartbeats.
func TestSCTPMultiHomed(t *testing.T) {
	requireSCTP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}
	l, err := ListenSCTP(addrs, 0, ServerOptions{PathHeartbeat: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	accepted := make(chan Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
			close(accepted)
			return
		}
		accepted <- c
	}()
	url := fmt.Sprintf("sctp://[127.0.0.1,127.0.0.2]:%d", l.Port())
	client, err := DialSCTP(ctx, url, addrs, DialOptions{PathHeartbeat: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := <-accepted
	if server == nil {
		t.FailNow()
	}
	defer server.Close()

	hello := agentproto.Hello{HostID: "h1", SiteID: "s1", Token: "tok"}
	if err := client.Send(ctx, mustFrame(t, agentproto.TypeHello, 1, 0, hello)); err != nil {
		t.Fatal(err)
	}
	f, err := server.Recv(ctx)
	var got agentproto.Hello
	if err != nil || agentproto.DecodeBody(f, &got) != nil || got.Token != "tok" {
		t.Fatalf("hello: %+v %v", got, err)
	}
	// Near the limit: many SCTP messages for one frame.
	big := agentproto.Logs{InstanceID: "i", Data: strings.Repeat("x", agentproto.MaxFrameBytes-200)}
	if err := client.Send(ctx, mustFrame(t, agentproto.TypeLogs, 2, 0, big)); err != nil {
		t.Fatal(err)
	}
	var gotBig agentproto.Logs
	if f, err := server.Recv(ctx); err != nil || agentproto.DecodeBody(f, &gotBig) != nil || len(gotBig.Data) != len(big.Data) {
		t.Fatalf("big frame: %d bytes, %v", len(gotBig.Data), err)
	}
	if err := server.Send(ctx, mustFrame(t, agentproto.TypeWelcome, 1, 1, agentproto.Welcome{HeartbeatIntervalMs: 1000})); err != nil {
		t.Fatal(err)
	}
	if f, err := client.Recv(ctx); err != nil || f.Type != agentproto.TypeWelcome || f.ReplyTo != 1 {
		t.Fatalf("welcome: %+v %v", f, err)
	}

	// Both paths confirmed and active.
	var paths []agentproto.Path
	for {
		paths = client.Paths()
		active := 0
		for _, p := range paths {
			if p.State == agentproto.PathActive {
				active++
			}
		}
		if len(paths) == 2 && active == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("paths never both active: %+v", paths)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range paths {
		// The kernel counts SRTT in ticks: loopback is below one, so 0 is
		// a true reading here; a real link reads above it.
		if p.SRTTMicros < 0 || p.Local == "" {
			t.Errorf("path %+v", p)
		}
	}
	t.Logf("paths: %+v", paths)
	if sp := server.Paths(); len(sp) != 2 {
		t.Errorf("server paths %+v", sp)
	}

	// A frame over the limit: the server refuses it, the client gets the Error frame.
	if err := client.(*conn).t.writeFrame(make([]byte, agentproto.MaxFrameBytes+1), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err = server.Recv(ctx)
	var pe *agentproto.ProtocolError
	if !errors.As(err, &pe) || pe.Code != agentproto.CodeTooLarge {
		t.Fatalf("oversize: %v", err)
	}
	go server.CloseWith(pe.Code, pe.Detail)
	f, err = client.Recv(ctx)
	var e agentproto.Error
	if err != nil || agentproto.DecodeBody(f, &e) != nil || e.Code != agentproto.CodeTooLarge {
		t.Fatalf("Error frame: %+v %v", f, err)
	}
	if _, err := client.Recv(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("after the Error frame: %v", err)
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSCTPFramingOverSeqpacket runs the SCTP transport's framing, chunking
// and close over a SOCK_SEQPACKET socket pair, which keeps message
// boundaries as SCTP does: all of it but the SCTP socket options runs on
// kernels without SCTP too.
func TestSCTPFramingOverSeqpacket(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := newSettings(0, 0, 0, 0)
	a, err := newSCTPConn(fds[0], s, 250)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := newSCTPConn(fds[1], s, 250)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Many frames, both ways, one of them in many chunks.
	big := agentproto.Logs{InstanceID: "i", Data: strings.Repeat("y", agentproto.MaxFrameBytes-200)}
	go func() {
		for seq := uint64(1); seq <= 50; seq++ {
			body := any(agentproto.Heartbeat{Time: time.Now(), Generation: int64(seq)})
			typ := agentproto.TypeHeartbeat
			if seq == 25 {
				body, typ = big, agentproto.TypeLogs
			}
			if err := a.Send(ctx, mustFrame(t, typ, seq, 0, body)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for seq := uint64(1); seq <= 50; seq++ {
		f, err := b.Recv(ctx)
		if err != nil || f.Seq != seq {
			t.Fatalf("frame %d: %+v %v", seq, f, err)
		}
		if seq == 25 {
			var l agentproto.Logs
			if err := agentproto.DecodeBody(f, &l); err != nil || l.Data != big.Data {
				t.Fatalf("big frame: %d bytes, %v", len(l.Data), err)
			}
		}
	}
	if err := b.Send(ctx, mustFrame(t, agentproto.TypeDesired, 1, 0, agentproto.DesiredState{HostID: "h", Generation: 1})); err != nil {
		t.Fatal(err)
	}
	if f, err := a.Recv(ctx); err != nil || f.Type != agentproto.TypeDesired {
		t.Fatalf("desired: %+v %v", f, err)
	}

	// Oversize: refused and skipped; the Error frame reaches the sender, then the end.
	if err := a.(*conn).t.writeFrame(make([]byte, agentproto.MaxFrameBytes+1), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err = b.Recv(ctx)
	var pe *agentproto.ProtocolError
	if !errors.As(err, &pe) || pe.Code != agentproto.CodeTooLarge {
		t.Fatalf("oversize: %v", err)
	}
	closed := make(chan struct{})
	go func() { _ = b.CloseWith(pe.Code, pe.Detail); close(closed) }()
	f, err := a.Recv(ctx)
	var e agentproto.Error
	if err != nil || agentproto.DecodeBody(f, &e) != nil || e.Code != agentproto.CodeTooLarge {
		t.Fatalf("Error frame: %+v %v", f, err)
	}
	if _, err := a.Recv(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("after the Error frame: %v", err)
	}
	<-closed
	if a.Paths() != nil && len(a.Paths()) != 0 {
		t.Errorf("paths of a non-SCTP socket: %v", a.Paths())
	}
}
