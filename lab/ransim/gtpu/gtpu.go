// Package gtpu encodes and decodes GTP-U version 1 messages (3GPP TS
// 29.281): the G-PDU that carries user packets between a gNB and a UPF on
// N3, the path-management Echo Request and Response, the End Marker sent
// on a path switch and the Error Indication, with the optional sequence
// number and N-PDU number and the extension header chain, among which the
// PDU Session Container of TS 38.415 that carries a packet's QoS flow.
//
// The kernel here has no gtp module, so the lab's RAN and core simulators
// speak GTP-U from user space through this package.
//
// Decode is strict: a message whose length field disagrees with the
// datagram, whose optional fields or extension headers do not fit, or
// whose spare bit is set is refused. What Decode accepts, Encode gives back
// byte for byte.
package gtpu

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Port is the registered UDP port of GTP-U.
const Port = 2152

// MessageType is the second octet of the header (TS 29.281 §6.1).
type MessageType uint8

// The message types GTP-U uses.
const (
	EchoRequest                    MessageType = 1
	EchoResponse                   MessageType = 2
	ErrorIndication                MessageType = 26
	SupportedExtensionHeadersNotif MessageType = 31
	TunnelStatus                   MessageType = 253
	EndMarker                      MessageType = 254
	GPDU                           MessageType = 255
)

// Header layout.
const (
	headerLen           = 8 // the mandatory part
	optionalLen         = 4 // sequence number, N-PDU number, next extension header type
	maxLength           = 0xffff
	extensionLengthUnit = 4
	extensionOverhead   = 2 // an extension's length octet and next-type octet
	maxExtensionUnits   = 0xff

	version1    uint8 = 1 << 5
	versionMask uint8 = 0xe0
	flagPT      uint8 = 1 << 4
	flagSpare   uint8 = 1 << 3
	flagE       uint8 = 1 << 2
	flagS       uint8 = 1 << 1
	flagPN      uint8 = 1 << 0

	extensionNoMore uint8 = 0
)

func (t MessageType) String() string {
	switch t {
	case EchoRequest:
		return "EchoRequest"
	case EchoResponse:
		return "EchoResponse"
	case ErrorIndication:
		return "ErrorIndication"
	case SupportedExtensionHeadersNotif:
		return "SupportedExtensionHeadersNotification"
	case TunnelStatus:
		return "TunnelStatus"
	case EndMarker:
		return "EndMarker"
	case GPDU:
		return "G-PDU"
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// ExtensionType is a "next extension header type" (TS 29.281 §5.2.1).
type ExtensionType uint8

// Extension header types. Only the PDU Session Container is interpreted
// (PDUSession); the others are carried as opaque content.
const (
	ExtUDPPort             ExtensionType = 0x40
	ExtLongPDCPPDUNumber   ExtensionType = 0x82
	ExtNRRANContainer      ExtensionType = 0x84
	ExtPDUSessionContainer ExtensionType = 0x85
	ExtPDCPPDUNumber       ExtensionType = 0xc0
)

// Errors Decode wraps: the input ended before what it announced, or it
// holds something the specification does not allow.
var (
	ErrTruncated = errors.New("gtpu: truncated")
	ErrMalformed = errors.New("gtpu: malformed")
)

// Extension is one extension header. Content excludes the length octet
// and the next-type octet, so its length is 4n-2 for n from 1 to 255.
type Extension struct {
	Type    ExtensionType
	Content []byte
}

// Message is one GTP-U message. Header layout (TS 29.281 §5.1), octets:
//
//	1     version (3 bits, 1) | PT (1, 1 = GTP) | spare (0) | E | S | PN
//	2     message type
//	3-4   length: octets after the first 8 (optional part, extension
//	      headers, payload)
//	5-8   TEID
//	9-10  sequence number  } present when any of E, S, PN is set;
//	11    N-PDU number     } the values of those whose flag is clear
//	12    next ext. type   } are carried but mean nothing
//
// followed by the extension headers, each: length in 4-octet units
// (including this octet), content, next extension header type (0: none).
type Message struct {
	Type MessageType
	TEID uint32
	// HasSeq is the S flag: Seq is meaningful.
	HasSeq bool
	Seq    uint16
	// HasNPDU is the PN flag: NPDU is meaningful.
	HasNPDU bool
	NPDU    uint8
	// Extensions, in chain order; the E flag is set when there are any.
	Extensions []Extension
	// Payload is what follows the header: for a G-PDU the user packet,
	// for the other messages their information elements. Decode makes
	// it alias the input.
	Payload []byte
}

func (m *Message) hasOptional() bool { return m.HasSeq || m.HasNPDU || len(m.Extensions) > 0 }

// Len is the encoded size of m.
func (m *Message) Len() int {
	n := headerLen
	if m.hasOptional() {
		n += optionalLen
	}
	for _, e := range m.Extensions {
		n += len(e.Content) + extensionOverhead
	}
	return n + len(m.Payload)
}

// Encode returns m on the wire.
func (m *Message) Encode() ([]byte, error) { return m.Append(make([]byte, 0, m.Len())) }

// Append appends m on the wire to b.
func (m *Message) Append(b []byte) ([]byte, error) {
	n := m.Len()
	if n-headerLen > maxLength {
		return b, fmt.Errorf("gtpu: encode %s: %d octets after the header, at most %d fit the length field", m.Type, n-headerLen, maxLength)
	}
	for i, e := range m.Extensions {
		if e.Type == ExtensionType(extensionNoMore) {
			return b, fmt.Errorf("gtpu: encode %s: extension %d has type 0, which ends the chain", m.Type, i)
		}
		size := len(e.Content) + extensionOverhead
		if size%extensionLengthUnit != 0 || size/extensionLengthUnit > maxExtensionUnits {
			return b, fmt.Errorf("gtpu: encode %s: extension %d (type %#x) has %d content octets, not 4n-2 with n 1 to 255", m.Type, i, uint8(e.Type), len(e.Content))
		}
	}
	flags := version1 | flagPT
	if len(m.Extensions) > 0 {
		flags |= flagE
	}
	if m.HasSeq {
		flags |= flagS
	}
	if m.HasNPDU {
		flags |= flagPN
	}
	b = append(b, flags, uint8(m.Type))
	b = binary.BigEndian.AppendUint16(b, uint16(n-headerLen))
	b = binary.BigEndian.AppendUint32(b, m.TEID)
	if !m.hasOptional() {
		return append(b, m.Payload...), nil
	}
	b = binary.BigEndian.AppendUint16(b, m.Seq)
	b = append(b, m.NPDU, nextType(m.Extensions, 0))
	for i, e := range m.Extensions {
		b = append(b, uint8((len(e.Content)+extensionOverhead)/extensionLengthUnit))
		b = append(b, e.Content...)
		b = append(b, nextType(m.Extensions, i+1))
	}
	return append(b, m.Payload...), nil
}

func nextType(exts []Extension, i int) uint8 {
	if i < len(exts) {
		return uint8(exts[i].Type)
	}
	return extensionNoMore
}

// Decode parses one message that fills b (a UDP datagram's payload). The
// returned message's Payload and extension contents alias b.
func Decode(b []byte) (*Message, error) {
	if len(b) < headerLen {
		return nil, fmt.Errorf("%w: %d octets, the header alone has %d", ErrTruncated, len(b), headerLen)
	}
	flags := b[0]
	if v := flags & versionMask; v != version1 {
		return nil, fmt.Errorf("%w: version %d, want 1", ErrMalformed, v>>5)
	}
	if flags&flagPT == 0 {
		return nil, fmt.Errorf("%w: protocol type 0 (GTP'), want 1 (GTP)", ErrMalformed)
	}
	if flags&flagSpare != 0 {
		return nil, fmt.Errorf("%w: spare bit set", ErrMalformed)
	}
	m := &Message{
		Type:    MessageType(b[1]),
		TEID:    binary.BigEndian.Uint32(b[4:8]),
		HasSeq:  flags&flagS != 0,
		HasNPDU: flags&flagPN != 0,
	}
	length := int(binary.BigEndian.Uint16(b[2:4]))
	switch rest := len(b) - headerLen; {
	case rest < length:
		return nil, fmt.Errorf("%w: length field says %d octets follow the header, %d do", ErrTruncated, length, rest)
	case rest > length:
		return nil, fmt.Errorf("%w: length field says %d octets follow the header, %d do", ErrMalformed, length, rest)
	}
	body := b[headerLen:]
	if flags&(flagE|flagS|flagPN) == 0 {
		m.Payload = body
		return m, nil
	}
	if len(body) < optionalLen {
		return nil, fmt.Errorf("%w: flags %#02x announce the 4 optional octets, the length field leaves %d", ErrTruncated, flags, len(body))
	}
	m.Seq = binary.BigEndian.Uint16(body[0:2])
	m.NPDU = body[2]
	next := body[3]
	body = body[optionalLen:]
	if flags&flagE == 0 {
		if next != extensionNoMore {
			return nil, fmt.Errorf("%w: next extension header type %#02x without the E flag", ErrMalformed, next)
		}
		m.Payload = body
		return m, nil
	}
	if next == extensionNoMore {
		return nil, fmt.Errorf("%w: E flag set but the next extension header type is 0", ErrMalformed)
	}
	for next != extensionNoMore {
		if len(body) < 1 {
			return nil, fmt.Errorf("%w: extension header %#02x announced, the message ends", ErrTruncated, next)
		}
		units := int(body[0])
		if units == 0 {
			return nil, fmt.Errorf("%w: extension header %#02x has length 0", ErrMalformed, next)
		}
		size := units * extensionLengthUnit
		if len(body) < size {
			return nil, fmt.Errorf("%w: extension header %#02x of %d octets, %d left", ErrTruncated, next, size, len(body))
		}
		m.Extensions = append(m.Extensions, Extension{Type: ExtensionType(next), Content: body[1 : size-1]})
		next = body[size-1]
		body = body[size:]
	}
	m.Payload = body
	return m, nil
}

// Extension returns the first extension header of type t.
func (m *Message) Extension(t ExtensionType) (Extension, bool) {
	for _, e := range m.Extensions {
		if e.Type == t {
			return e, true
		}
	}
	return Extension{}, false
}
