package classify

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
)

// Frame builders: just enough of each header for the classifier.

func eth(etype uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	b[0], b[6] = 0x02, 0x02
	binary.BigEndian.PutUint16(b[12:], etype)
	return append(b, payload...)
}

type ip4 struct {
	src, dst string
	proto    uint8
	tos      uint8
	frag     uint16 // flags+offset field as on the wire
}

func (h ip4) build(payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	b[0], b[1], b[8], b[9] = 0x45, h.tos, 64, h.proto
	binary.BigEndian.PutUint16(b[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(b[6:], h.frag)
	copy(b[12:], netip.MustParseAddr(h.src).AsSlice())
	copy(b[16:], netip.MustParseAddr(h.dst).AsSlice())
	return append(b, payload...)
}

type ip6 struct {
	src, dst string
	nh       uint8
	tc       uint8
}

func (h ip6) build(payload []byte) []byte {
	b := make([]byte, 40, 40+len(payload))
	b[0], b[1] = 0x60|h.tc>>4, h.tc<<4
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6], b[7] = h.nh, 64
	copy(b[8:], netip.MustParseAddr(h.src).AsSlice())
	copy(b[24:], netip.MustParseAddr(h.dst).AsSlice())
	return append(b, payload...)
}

func udp(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func tcp(sport, dport uint16) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4
	return b
}

// gtpu builds a G-PDU; opt adds the 4-octet optional field with next as the
// first extension type (E set when exts is non-empty); exts are whole
// extension headers, each ending in its next-type octet.
func gtpu(teid uint32, opt bool, exts [][]byte, inner []byte) []byte {
	flags := byte(0x30)
	var body []byte
	if opt || len(exts) > 0 {
		flags |= 0x02 // S
		o := []byte{0, 1, 0, 0}
		if len(exts) > 0 {
			flags |= 0x04
			o[3] = 0x85
		}
		body = append(body, o...)
	}
	for _, e := range exts {
		body = append(body, e...)
	}
	body = append(body, inner...)
	b := make([]byte, 8, 8+len(body))
	b[0], b[1] = flags, 255
	binary.BigEndian.PutUint16(b[2:], uint16(len(body)))
	binary.BigEndian.PutUint32(b[4:], teid)
	return append(b, body...)
}

// pduSession is a PDU Session Container (TS 38.415) of PDU type pduType with
// qfi, followed by next extension type next.
func pduSession(pduType, qfi, next byte) []byte {
	return []byte{1, pduType << 4, qfi & 0x3f, next}
}

// skbCtx is struct __sk_buff as raw words; mark is word 2 (offset 8),
// gso_segs word 41 (offset 164), gso_size word 44 (offset 176).
type skbCtx [48]uint32

const (
	tcxNext   = 0xffffffff // TCX_NEXT (-1): no verdict, as test_run reports it
	staleMark = 0xdead     // the mark run hands in: no match must leave it
)

func run(t testing.TB, prog *ebpf.Program, frame []byte) (rc uint32, mark uint32) {
	t.Helper()
	in := skbCtx{}
	in[2] = staleMark
	var out skbCtx
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame, Context: in[:], ContextOut: out[:]})
	if err != nil {
		t.Fatalf("prog run (%d bytes): %v", len(frame), err)
	}
	return ret, out[2]
}

// newClassifier loads the program or, without the capability, skips — except
// under CI=true, where a green run must mean the test ran.
func newClassifier(t testing.TB) *Classifier {
	t.Helper()
	c, err := New()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("load classifier (CI=true, not skipping): %v", err)
		}
		t.Skipf("cannot load BPF program (needs root/CAP_BPF): %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
