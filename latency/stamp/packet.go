// Package stamp measures round-trip times with STAMP (RFC 8762), carrying
// the RFC 8972 session identifier (SSID): a Reflector that answers test
// packets (and TWAMP-light ones, whose layout STAMP keeps), and a Sender
// that probes a changing set of targets from one socket and turns the
// answers into latency.Samples.
//
// Both sides take their stamps from the kernel (SO_TIMESTAMPING) where it
// gives them, because a user-space clock read around send and receive
// measures the scheduler as much as the network: on a busy machine it is
// off by milliseconds.
package stamp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Sizes of the unauthenticated test packets. The Session-Sender and
// Session-Reflector base packets are both 44 octets (RFC 8762 §4.2.1 and
// §4.3.1); RFC 8972 TLVs follow at offset 44. A TWAMP-light sender (RFC
// 5357 §4.1.2) may send as little as its first three fields, and a TWAMP
// reflector answers with at least 41 octets, where the Ses-Sender TTL ends.
const (
	BaseSize           = 44
	MinTWAMPSenderSize = 14
	MinTWAMPReplySize  = 41
	tlvHeaderSize      = 4
)

// Field offsets, named after the RFCs' figures.
const (
	offSeq       = 0  // Sequence Number, 4 octets
	offTS        = 4  // Timestamp, 8
	offErrEst    = 12 // Error Estimate, 2
	offSSID      = 14 // SSID (RFC 8972; MBZ in RFC 8762 and RFC 5357), 2
	offRecvTS    = 16 // reflector: Receive Timestamp, 8
	offSendSeq   = 24 // reflector: Session-Sender Sequence Number, 4
	offSendTS    = 28 // reflector: Session-Sender Timestamp, 8
	offSendErr   = 36 // reflector: Session-Sender Error Estimate, 2
	offSendTTL   = 40 // reflector: Ses-Sender TTL, 1 (after 2 MBZ octets)
	offTLVs      = BaseSize
	ntpUnixDelta = 2208988800 // seconds from 1900-01-01 to 1970-01-01
)

// Decoding errors; a decoder's error wraps one of them.
var (
	ErrShort = errors.New("stamp: packet too short")
	ErrTLV   = errors.New("stamp: malformed TLV")
)

// Timestamp is a test packet's 64-bit timestamp as it is on the wire: NTP
// (seconds since 1900 and a binary fraction) when the Error Estimate's Z
// is 0, PTPv2 truncated (seconds since 1970 and nanoseconds) when it is 1.
// Keeping the wire value makes encoding lossless; Time interprets it.
type Timestamp uint64

// NTPTimestamp is t in NTP 64-bit format.
func NTPTimestamp(t time.Time) Timestamp {
	sec := uint64(t.Unix() + ntpUnixDelta)
	frac := (uint64(t.Nanosecond()) << 32) / 1e9
	return Timestamp(sec<<32 | frac)
}

// PTPTimestamp is t in PTPv2 truncated format. The epoch is taken as the
// system clock's: STAMP only ever subtracts two stamps of one clock.
func PTPTimestamp(t time.Time) Timestamp {
	return Timestamp(uint64(t.Unix())<<32 | uint64(t.Nanosecond()))
}

// Time interprets the timestamp in NTP (ptp false) or PTPv2 truncated
// format. The NTP era is the one around 1900-2036 extended past 2036 by
// taking small second counts as era 1, as RFC 5905 suggests.
func (ts Timestamp) Time(ptp bool) time.Time {
	sec := int64(uint64(ts) >> 32)
	low := uint64(ts) & 0xffffffff
	if ptp {
		return time.Unix(sec, int64(low%1e9))
	}
	if sec < 1<<31 { // era 1: after 2036-02-07
		sec += 1 << 32
	}
	ns := (low*1e9 + 1<<31) >> 32
	return time.Unix(sec-ntpUnixDelta, int64(ns))
}

// ErrorEstimate is RFC 4656 §4.1.2's field as STAMP uses it: S says the
// clock is synchronized to UTC, Z (RFC 8186) that the timestamps are PTPv2
// truncated rather than NTP, and the error is Multiplier·2^(Scale-32) s.
type ErrorEstimate struct {
	Sync       bool
	PTP        bool
	Scale      uint8 // 6 bits
	Multiplier uint8
}

func (e ErrorEstimate) wire() uint16 {
	var v uint16
	if e.Sync {
		v |= 1 << 15
	}
	if e.PTP {
		v |= 1 << 14
	}
	return v | uint16(e.Scale&0x3f)<<8 | uint16(e.Multiplier)
}

func errorEstimate(v uint16) ErrorEstimate {
	return ErrorEstimate{Sync: v&(1<<15) != 0, PTP: v&(1<<14) != 0, Scale: uint8(v>>8) & 0x3f, Multiplier: uint8(v)}
}

// Duration is the estimated error.
func (e ErrorEstimate) Duration() time.Duration {
	// Multiplier·2^Scale fits in 72 bits at most; work in float to stay
	// clear of overflow, the estimate being coarse anyway.
	s := float64(e.Multiplier) * float64(uint64(1)<<e.Scale) / float64(uint64(1)<<32)
	return time.Duration(s * float64(time.Second))
}

// TLV is an RFC 8972 §4 TLV: one Flags octet (U, M, I and reserved bits),
// a Type octet, a 2-octet Length of the Value.
type TLV struct {
	Flags uint8
	Type  uint8
	Value []byte
}

// TLV flags (RFC 8972 §4): Unrecognized, Malformed, Integrity failed.
const (
	TLVFlagU = 0x80
	TLVFlagM = 0x40
	TLVFlagI = 0x20
)

func (t TLV) size() int { return tlvHeaderSize + len(t.Value) }

// SenderPacket is an unauthenticated Session-Sender test packet (RFC
// 8762 §4.2.1 with RFC 8972 §3's SSID), or a TWAMP-light one.
type SenderPacket struct {
	Seq           uint32
	Timestamp     Timestamp
	ErrorEstimate ErrorEstimate
	SSID          uint16
	TLVs          []TLV
	// Len is the length on the wire: 0 for the base 44 octets plus the
	// TLVs; 14 to 43 for a TWAMP-light packet (no TLVs, and no SSID
	// below 16). The decoder sets it.
	Len int
}

// ReflectorPacket is an unauthenticated Session-Reflector test packet
// (RFC 8762 §4.3.1 with RFC 8972 §3's SSID), whose first 41 octets are
// the TWAMP reflector packet's (RFC 5357 §4.2.1).
type ReflectorPacket struct {
	Seq                 uint32
	Timestamp           Timestamp // when the answer left (T3)
	ErrorEstimate       ErrorEstimate
	SSID                uint16
	ReceiveTimestamp    Timestamp // when the probe came (T2)
	SenderSeq           uint32
	SenderTimestamp     Timestamp
	SenderErrorEstimate ErrorEstimate
	SenderTTL           uint8
	TLVs                []TLV
	// Len is the length on the wire: 0 for 44 plus the TLVs; 41 to 43 for
	// a minimal TWAMP answer (no TLVs). The decoder sets it.
	Len int
}

func tlvsSize(tlvs []TLV) int {
	n := 0
	for _, t := range tlvs {
		n += t.size()
	}
	return n
}

// wireLen checks Len against the TLVs and gives the length to encode.
func wireLen(l, minShort int, tlvs []TLV) (int, error) {
	full := BaseSize + tlvsSize(tlvs)
	for _, t := range tlvs {
		if len(t.Value) > 0xffff {
			return 0, fmt.Errorf("stamp: TLV type %d: value of %d octets", t.Type, len(t.Value))
		}
	}
	switch {
	case l == 0 || l == full:
		return full, nil
	case l >= minShort && l < BaseSize && len(tlvs) == 0:
		return l, nil
	}
	return 0, fmt.Errorf("stamp: length %d does not fit %d octets of TLVs", l, full-BaseSize)
}

func appendTLVs(b []byte, tlvs []TLV) []byte {
	for _, t := range tlvs {
		b = append(b, t.Flags, t.Type)
		b = binary.BigEndian.AppendUint16(b, uint16(len(t.Value)))
		b = append(b, t.Value...)
	}
	return b
}

// MarshalBinary encodes the packet; MBZ octets are zero.
func (p *SenderPacket) MarshalBinary() ([]byte, error) {
	n, err := wireLen(p.Len, MinTWAMPSenderSize, p.TLVs)
	if err != nil {
		return nil, err
	}
	if n < offSSID+2 && p.SSID != 0 {
		return nil, fmt.Errorf("stamp: a %d-octet packet has no room for SSID %d", n, p.SSID)
	}
	b := make([]byte, max(n, BaseSize), n+BaseSize)
	binary.BigEndian.PutUint32(b[offSeq:], p.Seq)
	binary.BigEndian.PutUint64(b[offTS:], uint64(p.Timestamp))
	binary.BigEndian.PutUint16(b[offErrEst:], p.ErrorEstimate.wire())
	binary.BigEndian.PutUint16(b[offSSID:], p.SSID)
	return appendTLVs(b[:min(n, BaseSize)], p.TLVs), nil
}

// DecodeSender decodes a Session-Sender packet: 44 octets and TLVs, or a
// TWAMP-light one of 14 to 43 octets. MBZ octets are ignored (RFC 8762
// says so of the receiver); TLVs that do not add up to the packet's
// length are refused.
func DecodeSender(b []byte) (SenderPacket, error) {
	var p SenderPacket
	if len(b) < MinTWAMPSenderSize {
		return p, fmt.Errorf("sender packet of %d octets, want at least %d: %w", len(b), MinTWAMPSenderSize, ErrShort)
	}
	p.Seq = binary.BigEndian.Uint32(b[offSeq:])
	p.Timestamp = Timestamp(binary.BigEndian.Uint64(b[offTS:]))
	p.ErrorEstimate = errorEstimate(binary.BigEndian.Uint16(b[offErrEst:]))
	if len(b) >= offSSID+2 {
		p.SSID = binary.BigEndian.Uint16(b[offSSID:])
	}
	p.Len = len(b)
	if len(b) > BaseSize {
		tlvs, err := decodeTLVs(b[offTLVs:])
		if err != nil {
			return SenderPacket{}, fmt.Errorf("sender packet: %w", err)
		}
		p.TLVs = tlvs
	}
	return p, nil
}

// MarshalBinary encodes the packet; MBZ octets are zero.
func (p *ReflectorPacket) MarshalBinary() ([]byte, error) {
	n, err := wireLen(p.Len, MinTWAMPReplySize, p.TLVs)
	if err != nil {
		return nil, err
	}
	b := make([]byte, BaseSize, n+BaseSize)
	p.put(b)
	return appendTLVs(b[:min(n, BaseSize)], p.TLVs), nil
}

// put writes the 44 base octets into b.
func (p *ReflectorPacket) put(b []byte) {
	binary.BigEndian.PutUint32(b[offSeq:], p.Seq)
	binary.BigEndian.PutUint64(b[offTS:], uint64(p.Timestamp))
	binary.BigEndian.PutUint16(b[offErrEst:], p.ErrorEstimate.wire())
	binary.BigEndian.PutUint16(b[offSSID:], p.SSID)
	binary.BigEndian.PutUint64(b[offRecvTS:], uint64(p.ReceiveTimestamp))
	binary.BigEndian.PutUint32(b[offSendSeq:], p.SenderSeq)
	binary.BigEndian.PutUint64(b[offSendTS:], uint64(p.SenderTimestamp))
	binary.BigEndian.PutUint16(b[offSendErr:], p.SenderErrorEstimate.wire())
	b[offSendErr+2], b[offSendErr+3] = 0, 0
	b[offSendTTL] = p.SenderTTL
	clear(b[offSendTTL+1 : BaseSize])
}

// DecodeReflector decodes a Session-Reflector packet: 44 octets and
// TLVs, or a TWAMP reflector packet of 41 to 43 octets.
func DecodeReflector(b []byte) (ReflectorPacket, error) {
	var p ReflectorPacket
	if len(b) < MinTWAMPReplySize {
		return p, fmt.Errorf("reflector packet of %d octets, want at least %d: %w", len(b), MinTWAMPReplySize, ErrShort)
	}
	p.Seq = binary.BigEndian.Uint32(b[offSeq:])
	p.Timestamp = Timestamp(binary.BigEndian.Uint64(b[offTS:]))
	p.ErrorEstimate = errorEstimate(binary.BigEndian.Uint16(b[offErrEst:]))
	p.SSID = binary.BigEndian.Uint16(b[offSSID:])
	p.ReceiveTimestamp = Timestamp(binary.BigEndian.Uint64(b[offRecvTS:]))
	p.SenderSeq = binary.BigEndian.Uint32(b[offSendSeq:])
	p.SenderTimestamp = Timestamp(binary.BigEndian.Uint64(b[offSendTS:]))
	p.SenderErrorEstimate = errorEstimate(binary.BigEndian.Uint16(b[offSendErr:]))
	p.SenderTTL = b[offSendTTL]
	p.Len = len(b)
	if len(b) > BaseSize {
		tlvs, err := decodeTLVs(b[offTLVs:])
		if err != nil {
			return ReflectorPacket{}, fmt.Errorf("reflector packet: %w", err)
		}
		p.TLVs = tlvs
	}
	return p, nil
}

// decodeTLVs splits b into TLVs; the values alias b.
func decodeTLVs(b []byte) ([]TLV, error) {
	var tlvs []TLV
	for off := 0; off < len(b); {
		if len(b)-off < tlvHeaderSize {
			return nil, fmt.Errorf("%d octets left at offset %d, less than a TLV header: %w", len(b)-off, offTLVs+off, ErrTLV)
		}
		l := int(binary.BigEndian.Uint16(b[off+2:]))
		if off+tlvHeaderSize+l > len(b) {
			return nil, fmt.Errorf("TLV type %d at offset %d says %d octets, %d left: %w",
				b[off+1], offTLVs+off, l, len(b)-off-tlvHeaderSize, ErrTLV)
		}
		v := b[off+tlvHeaderSize : off+tlvHeaderSize+l : off+tlvHeaderSize+l]
		tlvs = append(tlvs, TLV{Flags: b[off], Type: b[off+1], Value: v})
		off += tlvHeaderSize + l
	}
	return tlvs, nil
}
