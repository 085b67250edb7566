// Package ipv4udp builds and parses the IPv4/UDP packets a simulated UE
// sends and receives inside GTP-U tunnels: a real IPv4 header with its
// checksum and a UDP header with its checksum over the pseudo-header, so
// that what crosses N3 is what a real UE's packet would be.
//
// Parse is strict: the IPv4 total length must fill the buffer, the UDP
// length must fill the IPv4 payload, both checksums must verify (a UDP
// checksum of 0, "none", is allowed by RFC 768 over IPv4), and fragments
// are refused, since nothing here reassembles them.
package ipv4udp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Sizes and numbers of RFC 791 and RFC 768.
const (
	HeaderLen    = 20 // IPv4 header without options
	UDPHeaderLen = 8
	ProtoUDP     = 17
	DefaultTTL   = 64
	maxTotalLen  = 0xffff
	flagDF       = 0x4000
	flagMF       = 0x2000
	offsetMask   = 0x1fff
)

// Errors Parse and ParseHeader wrap.
var (
	ErrTruncated = errors.New("ipv4udp: truncated")
	ErrMalformed = errors.New("ipv4udp: malformed")
	ErrChecksum  = errors.New("ipv4udp: bad checksum")
)

// sum adds b to acc as big-endian 16-bit words, an odd last octet padded
// with a zero (RFC 1071).
func sum(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

// Checksum is the Internet checksum of b: the one's complement of the
// one's complement sum of its 16-bit words. Over data that holds its own
// correct checksum it is 0.
func Checksum(b []byte) uint16 { return ^fold(sum(b, 0)) }

// pseudoSum is the sum of the UDP pseudo-header (RFC 768).
func pseudoSum(src, dst netip.Addr, udpLen int) uint32 {
	s, d := src.As4(), dst.As4()
	acc := sum(s[:], 0)
	acc = sum(d[:], acc)
	return acc + ProtoUDP + uint32(udpLen)
}

// Header is an IPv4 header (RFC 791):
//
//	octet 0     version (4) | IHL (4, in 4-octet words)
//	octet 1     type of service
//	octets 2-3  total length
//	octets 4-5  identification
//	octets 6-7  flags (reserved, DF, MF) | fragment offset (13)
//	octet 8     TTL
//	octet 9     protocol
//	octets 10-11 header checksum
//	octets 12-15 source, 16-19 destination, then options to IHL*4
type Header struct {
	HeaderLen     int // IHL*4, options included
	TOS           uint8
	TotalLen      int
	ID            uint16
	DontFragment  bool
	MoreFragments bool
	FragOffset    uint16 // in 8-octet units
	TTL           uint8
	Protocol      uint8
	Src, Dst      netip.Addr
}

// ParseHeader checks and returns the IPv4 header of the packet that fills
// b, whatever its protocol.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, fmt.Errorf("%w: %d octets, an IPv4 header has %d", ErrTruncated, len(b), HeaderLen)
	}
	if v := b[0] >> 4; v != 4 {
		return Header{}, fmt.Errorf("%w: IP version %d, want 4", ErrMalformed, v)
	}
	h := Header{
		HeaderLen: int(b[0]&0x0f) * 4,
		TOS:       b[1],
		TotalLen:  int(binary.BigEndian.Uint16(b[2:4])),
		ID:        binary.BigEndian.Uint16(b[4:6]),
		TTL:       b[8],
		Protocol:  b[9],
		Src:       netip.AddrFrom4([4]byte(b[12:16])),
		Dst:       netip.AddrFrom4([4]byte(b[16:20])),
	}
	frag := binary.BigEndian.Uint16(b[6:8])
	h.DontFragment, h.MoreFragments, h.FragOffset = frag&flagDF != 0, frag&flagMF != 0, frag&offsetMask
	switch {
	case h.HeaderLen < HeaderLen:
		return Header{}, fmt.Errorf("%w: IHL %d words, at least 5", ErrMalformed, h.HeaderLen/4)
	case h.TotalLen < h.HeaderLen:
		return Header{}, fmt.Errorf("%w: total length %d shorter than the header's %d", ErrMalformed, h.TotalLen, h.HeaderLen)
	case len(b) < h.TotalLen:
		return Header{}, fmt.Errorf("%w: total length %d, %d octets", ErrTruncated, h.TotalLen, len(b))
	case len(b) > h.TotalLen:
		return Header{}, fmt.Errorf("%w: total length %d, %d octets", ErrMalformed, h.TotalLen, len(b))
	}
	if c := Checksum(b[:h.HeaderLen]); c != 0 {
		return Header{}, fmt.Errorf("%w: IPv4 header from %s to %s", ErrChecksum, h.Src, h.Dst)
	}
	return h, nil
}

// Datagram is a UDP datagram in an IPv4 packet.
type Datagram struct {
	Src, Dst netip.AddrPort // IPv4 (or IPv4-mapped IPv6) addresses
	TTL      uint8          // 0 means DefaultTTL when marshalling
	ID       uint16
	TOS      uint8
	Payload  []byte
}

// Len is the marshalled size of d.
func (d *Datagram) Len() int { return HeaderLen + UDPHeaderLen + len(d.Payload) }

// Marshal returns d as an IPv4 packet, with DF set and both checksums.
func (d *Datagram) Marshal() ([]byte, error) { return d.Append(make([]byte, 0, d.Len())) }

// Append appends d as an IPv4 packet to b.
func (d *Datagram) Append(b []byte) ([]byte, error) {
	src, dst := d.Src.Addr().Unmap(), d.Dst.Addr().Unmap()
	if !src.Is4() || !dst.Is4() {
		return b, fmt.Errorf("ipv4udp: %s → %s is not IPv4", d.Src, d.Dst)
	}
	total := d.Len()
	if total > maxTotalLen {
		return b, fmt.Errorf("ipv4udp: %d octets do not fit an IPv4 packet", total)
	}
	ttl := d.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	start := len(b)
	b = append(b, 0x45, d.TOS)
	b = binary.BigEndian.AppendUint16(b, uint16(total))
	b = binary.BigEndian.AppendUint16(b, d.ID)
	b = binary.BigEndian.AppendUint16(b, flagDF)
	b = append(b, ttl, ProtoUDP, 0, 0)
	b = append(b, src.AsSlice()...)
	b = append(b, dst.AsSlice()...)
	ip := b[start:]
	binary.BigEndian.PutUint16(ip[10:12], Checksum(ip[:HeaderLen]))

	udpLen := UDPHeaderLen + len(d.Payload)
	b = binary.BigEndian.AppendUint16(b, d.Src.Port())
	b = binary.BigEndian.AppendUint16(b, d.Dst.Port())
	b = binary.BigEndian.AppendUint16(b, uint16(udpLen))
	b = append(b, 0, 0)
	b = append(b, d.Payload...)
	udp := b[start+HeaderLen:]
	c := ^fold(sum(udp, pseudoSum(src, dst, udpLen)))
	if c == 0 {
		c = 0xffff // 0 would mean "no checksum" (RFC 768)
	}
	binary.BigEndian.PutUint16(udp[6:8], c)
	return b, nil
}

// Parse checks and returns the IPv4/UDP packet that fills b. Payload
// aliases b.
func Parse(b []byte) (Datagram, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return Datagram{}, err
	}
	if h.Protocol != ProtoUDP {
		return Datagram{}, fmt.Errorf("%w: protocol %d, want %d (UDP)", ErrMalformed, h.Protocol, ProtoUDP)
	}
	if h.MoreFragments || h.FragOffset != 0 {
		return Datagram{}, fmt.Errorf("%w: a fragment (offset %d, MF %v)", ErrMalformed, h.FragOffset*8, h.MoreFragments)
	}
	udp := b[h.HeaderLen:h.TotalLen]
	if len(udp) < UDPHeaderLen {
		return Datagram{}, fmt.Errorf("%w: %d octets after the IPv4 header, a UDP header has %d", ErrTruncated, len(udp), UDPHeaderLen)
	}
	if n := int(binary.BigEndian.Uint16(udp[4:6])); n != len(udp) {
		return Datagram{}, fmt.Errorf("%w: UDP length %d in an IPv4 payload of %d", ErrMalformed, n, len(udp))
	}
	if binary.BigEndian.Uint16(udp[6:8]) != 0 {
		if c := ^fold(sum(udp, pseudoSum(h.Src, h.Dst, len(udp)))); c != 0 {
			return Datagram{}, fmt.Errorf("%w: UDP from %s to %s", ErrChecksum, h.Src, h.Dst)
		}
	}
	return Datagram{
		Src:     netip.AddrPortFrom(h.Src, binary.BigEndian.Uint16(udp[0:2])),
		Dst:     netip.AddrPortFrom(h.Dst, binary.BigEndian.Uint16(udp[2:4])),
		TTL:     h.TTL,
		ID:      h.ID,
		TOS:     h.TOS,
		Payload: udp[UDPHeaderLen:],
	}, nil
}
