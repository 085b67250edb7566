package steerpath

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// Addresses and ports of the frames. The gNB (gen) sends uplink G-PDUs to
// dut's N3 address; the inner packet goes from a UE to the app.
var (
	gnbAddr  = netip.MustParseAddr("192.0.2.1")
	n3Addr   = netip.MustParseAddr("192.0.2.2")
	ueAddr   = netip.MustParseAddr("10.45.0.7")
	dutAddr  = netip.MustParseAddr("10.46.0.1")
	appAddr  = netip.MustParseAddr("10.46.0.2")
	macGen   = net.HardwareAddr{0x02, 0x5e, 0, 0, 0, 0x01}
	macDutG  = net.HardwareAddr{0x02, 0x5e, 0, 0, 0, 0x02}
	macDutA  = net.HardwareAddr{0x02, 0x5e, 0, 0, 0, 0x03}
	macApp   = net.HardwareAddr{0x02, 0x5e, 0, 0, 0, 0x04}
	teid     = uint32(0x1001)
	qfi      = byte(9)
	ueSport  = uint16(40000)
	appPort  = uint16(5000) // the matching rule's inner destination port
	gtpuPort = uint16(2152)
)

const (
	// gtpuHdrLen is the GTP-U header with the optional field (E set) and one
	// PDU Session Container: 8 + 4 + 4.
	gtpuHdrLen = 16
	// encapOverhead is what the outer headers add to the inner packet:
	// Ethernet, IPv4, UDP, GTP-U.
	encapOverhead = 14 + 20 + 8 + gtpuHdrLen
	// wireExtra is what a frame occupies on an Ethernet link beyond its
	// bytes: FCS 4, preamble and start delimiter 8, inter-frame gap 12.
	wireExtra = 4 + 8 + 12
	// minInner is the smallest inner packet: IPv4 and UDP headers and a
	// 1-byte payload.
	minInner = 20 + 8 + 1
	// maxInner keeps the outer IPv4 packet within the veths' 1500-byte MTU.
	maxInner = 1500 - 20 - 8 - gtpuHdrLen
)

// frames are the bytes of one inner size.
type frames struct {
	inner   []byte // the UE's IPv4/UDP packet
	payload []byte // its UDP payload
	frame   []byte // what gen sends: Ethernet/IPv4/UDP 2152/GTP-U/inner
	decap   []byte // what the app must receive: app MAC, gen MAC, IPv4, inner
}

// wireBytes is the size of the sent frame on an Ethernet link, padding,
// FCS, preamble and inter-frame gap included.
func (f frames) wireBytes() int { return max(len(f.frame), 60) + wireExtra }

// buildFrames makes a G-PDU whose inner IPv4 packet is innerLen bytes long.
// The IPv4 header checksums are right, so that the app's stack accepts the
// decapsulated packet. Both UDP checksums are 0 (none, as IPv4 allows): with
// an inner checksum, GRO on the app's veth would validate it, reading the
// whole payload, and in pipeline mode those bytes were written by the other
// CPU. That is work of the app's stack, not of the path; the payload is
// checked byte for byte by verify instead.
func buildFrames(innerLen int) (frames, error) {
	if innerLen < minInner || innerLen > maxInner {
		return frames{}, fmt.Errorf("inner size %d not in %d-%d", innerLen, minInner, maxInner)
	}
	var f frames
	f.payload = make([]byte, innerLen-28)
	for i := range f.payload {
		f.payload[i] = byte(i*7 + 3)
	}
	f.inner = ipv4UDP(ueAddr, appAddr, ueSport, appPort, f.payload)

	g := make([]byte, gtpuHdrLen, gtpuHdrLen+len(f.inner))
	g[0], g[1] = 0x34, 0xff // version 1, PT, E; G-PDU
	binary.BigEndian.PutUint16(g[2:], uint16(gtpuHdrLen-8+len(f.inner)))
	binary.BigEndian.PutUint32(g[4:], teid)
	g[11] = 0x85                            // next extension: PDU Session Container
	copy(g[12:], []byte{1, 1 << 4, qfi, 0}) // UL PDU SESSION INFORMATION, QFI, no next
	g = append(g, f.inner...)
	outer := ipv4UDP(gnbAddr, n3Addr, gtpuPort, gtpuPort, g)
	f.frame = ether(macDutG, macGen, outer)
	f.decap = ether(macApp, macGen, f.inner)
	if len(f.frame) != encapOverhead+innerLen {
		return frames{}, fmt.Errorf("frame is %d bytes, want %d", len(f.frame), encapOverhead+innerLen)
	}
	return f, nil
}

func ether(dst, src net.HardwareAddr, ip []byte) []byte {
	b := make([]byte, 14, 14+len(ip))
	copy(b, dst)
	copy(b[6:], src)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	return append(b, ip...)
}

func ipv4UDP(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], ^fold(sum(0, p[:20])))
	u := p[20:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	return p
}

func sum(s uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
