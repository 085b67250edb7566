package linkemu

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mecorch/mecorch/traffic/netns"
)

// TestTCP moves a megabyte each way over a link with delay and a little
// loss: large segments (GSO) or checksums left to offload would not
// cross the relay. With jumbo frames too: the relay's buffers follow the
// MTU.
func TestTCP(t *testing.T) {
	for _, mtu := range []int{0, 9000} {
		t.Run(fmt.Sprintf("mtu=%d", mtu), func(t *testing.T) { testTCP(t, mtu) })
	}
}

func testTCP(t *testing.T, mtu int) {
	l := newLab(t)
	link := l.start(t, Params{Delay: time.Millisecond, LossPct: 0.5}, Params{Delay: time.Millisecond, LossPct: 0.5},
		func(c *Config) { c.MTU = mtu })
	if mtu > 0 {
		for _, ns := range []string{l.a, l.b} {
			h, err := handleIn(ns)
			if err != nil {
				t.Fatal(err)
			}
			eth, err := h.LinkByName("eth1")
			h.Close()
			if err != nil {
				t.Fatal(err)
			}
			if eth.Attrs().MTU != mtu {
				t.Fatalf("eth1 in %s has mtu %d, want %d", ns, eth.Attrs().MTU, mtu)
			}
		}
	}
	up := make([]byte, 1<<20)
	down := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range up {
		up[i], down[i] = byte(rng.Uint32()), byte(rng.Uint32())
	}
	var ln net.Listener
	if err := netns.Do(l.b, func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(addrB.Addr(), 8080).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			served <- err
			return
		}
		_, err = c.Write(append(h.Sum(nil), down...))
		served <- err
	}()
	var c net.Conn
	d := net.Dialer{Timeout: 5 * time.Second}
	if err := netns.Do(l.a, func() (err error) {
		c, err = d.Dial("tcp4", netip.AddrPortFrom(addrB.Addr(), 8080).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	if _, err := c.Write(up); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	t.Logf("2 MB over TCP in %v", time.Since(start))
	sum := sha256.Sum256(up)
	if len(got) != 32+len(down) || !bytes.Equal(got[:32], sum[:]) {
		t.Fatalf("upload arrived damaged (got %d bytes back)", len(got))
	}
	if !bytes.Equal(got[32:], down) {
		t.Fatal("download arrived damaged")
	}
	if st := link.Stats(); st.AtoB.Errors+st.BtoA.Errors > 0 {
		t.Errorf("relay errors: %+v", st)
	}
}

// TestVLAN relays tagged frames: the kernel takes the tag out of every
// frame it receives and the relay must put it back. The test's kernel
// may lack 802.1Q interfaces, so the frames are sent and read raw, with
// the relay's own socket code (a receiver puts the tag back).
func TestVLAN(t *testing.T) {
	l := newLab(t)
	l.start(t, Params{Delay: time.Millisecond}, Params{})
	open := func(nsPath string) *packetSocket {
		h, err := handleIn(nsPath)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		link, err := h.LinkByName("eth1")
		if err != nil {
			t.Fatal(err)
		}
		s, err := openPacketSocket(nsPath, "eth1", link.Attrs().Index)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	out, in := newSender(open(l.a)), newReceiver(open(l.b))
	frame := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, // broadcast, from a local MAC
		0x81, 0x00, 0x20, 0x64, // 802.1Q, priority 1, VLAN 100
		0x88, 0xb5, // local experimental EtherType
	}
	frame = append(frame, []byte("linkemu vlan test................................")...)
	if err := out.send(frame); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 2048)
		for {
			f, _, err := in.recv(buf)
			if err != nil {
				close(got)
				return
			}
			if len(f) > 17 && f[16] == 0x88 && f[17] == 0xb5 {
				got <- bytes.Clone(f)
				return
			}
		}
	}()
	select {
	case f := <-got:
		if !bytes.Equal(f, frame) {
			t.Errorf("frame arrived as\n% x\nsent\n% x", f, frame)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("tagged frame did not arrive")
	}
}
