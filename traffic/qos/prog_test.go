package qos

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
)

// requireRoot skips a test that needs root, except under CI=true, where a
// skip would let a green run hide a test that never ran.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root; CI=true forbids skipping")
	}
	t.Skip("needs root")
}

// skbCtx is struct __sk_buff as far as the test needs it: BPF_PROG_TEST_RUN
// copies priority in and back out, so the test sees what the program set.
// The padding makes it at least as large as the kernel's struct, which the
// kernel wants for the output (the part beyond its struct must be zero).
type skbCtx struct {
	Len, PktType, Mark, QueueMapping, Protocol uint32
	VlanPresent, VlanTCI, VlanProto, Priority  uint32
	_                                          [55]uint32
}

// frame builds an Ethernet frame carrying a UDP datagram from src to dst.
func frame(src, dst netip.Addr) []byte {
	eth := make([]byte, 14)
	copy(eth[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(eth[6:12], []byte{2, 0, 0, 0, 0, 1})
	udp := []byte{0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0, 'q', 'o', 's', '!'}
	if src.Is4() {
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		ip[8], ip[9] = 64, 17
		s, d := src.As4(), dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		return append(append(eth, ip...), udp...)
	}
	binary.BigEndian.PutUint16(eth[12:], 0x86DD)
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
	ip[6], ip[7] = 17, 64
	s, d := src.As16(), dst.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	return append(append(eth, ip...), udp...)
}

func arpFrame() []byte {
	f := make([]byte, 42)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	binary.BigEndian.PutUint16(f[12:], 0x0806)
	return f
}

// loadProg loads the program with the given settings and address map,
// without attaching it anywhere.
func loadProg(t *testing.T, dir Direction, classes map[netip.Addr]uint32) *qosObjects {
	t.Helper()
	requireRoot(t)
	var objs qosObjects
	if err := loadQosObjects(&objs, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { objs.Close() })
	set := qosSettings{Direction: uint32(dir), DefaultClass: ClassHandle(DefaultMinor)}
	if err := objs.Config.Put(uint32(0), &set); err != nil {
		t.Fatal(err)
	}
	for a, c := range classes {
		if err := objs.Classes.Put(qosAddrKey{Addr: a.As16()}, c); err != nil {
			t.Fatal(err)
		}
	}
	return &objs
}

// run returns skb->priority after the program ran on pkt, which starts with
// priority 7 so that an untouched priority would show.
func run(t *testing.T, prog *ebpf.Program, pkt []byte) (uint32, uint32) {
	t.Helper()
	in := skbCtx{Priority: 7}
	var out skbCtx
	ret, err := prog.Run(&ebpf.RunOptions{Data: pkt, Context: in, ContextOut: &out})
	if err != nil {
		t.Fatal(err)
	}
	return out.Priority, ret
}

func TestProgramSetsPriority(t *testing.T) {
	a4 := netip.MustParseAddr("10.1.0.5")
	a6 := netip.MustParseAddr("fd00:1::5")
	peer4 := netip.MustParseAddr("192.0.2.1")
	peer6 := netip.MustParseAddr("2001:db8::1")
	other4 := netip.MustParseAddr("10.1.0.6")
	other6 := netip.MustParseAddr("fd00:1::6")
	classA, class6 := ClassHandle(0x10), ClassHandle(0x11)
	def := ClassHandle(DefaultMinor)
	const tcxNext = 0xffffffff // TCX_NEXT (-1) as the u32 retval

	for _, tc := range []struct {
		name     string
		dir      Direction
		src, dst netip.Addr
		want     uint32
	}{
		{"v4 source matches", BySource, a4, peer4, classA},
		{"v6 source matches", BySource, a6, peer6, class6},
		{"v4 other source", BySource, other4, peer4, def},
		{"v6 other source", BySource, other6, peer6, def},
		{"v4 only destination matches", BySource, peer4, a4, def},
		{"v4 destination matches", ByDestination, peer4, a4, classA},
		{"v6 destination matches", ByDestination, peer6, a6, class6},
		{"v6 only source matches", ByDestination, a6, peer6, def},
		{"v4 other destination", ByDestination, peer4, other4, def},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := loadProg(t, tc.dir, map[netip.Addr]uint32{a4: classA, a6: class6})
			prio, ret := run(t, objs.Qos, frame(tc.src, tc.dst))
			if prio != tc.want {
				t.Errorf("priority %#x, want %#x", prio, tc.want)
			}
			if ret != tcxNext {
				t.Errorf("return %#x, want TCX_NEXT", ret)
			}
		})
	}

	t.Run("non-IP goes to the default class", func(t *testing.T) {
		objs := loadProg(t, BySource, map[netip.Addr]uint32{a4: classA})
		if prio, _ := run(t, objs.Qos, arpFrame()); prio != def {
			t.Errorf("priority %#x, want %#x", prio, def)
		}
	})
	t.Run("unconfigured program leaves priority alone", func(t *testing.T) {
		requireRoot(t)
		var objs qosObjects
		if err := loadQosObjects(&objs, nil); err != nil {
			t.Fatal(err)
		}
		defer objs.Close()
		if prio, _ := run(t, objs.Qos, frame(a4, peer4)); prio != 7 {
			t.Errorf("priority %#x, want 7 (untouched)", prio)
		}
	})
}
