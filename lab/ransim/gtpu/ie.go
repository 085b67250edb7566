package gtpu

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Information elements of the path-management and tunnel-management
// messages (TS 29.281 §8). Types below 128 are TV (a fixed length per
// type), the others TLV (a 2-octet length).
const (
	ieRecovery    uint8 = 14  // TV, 1 octet: restart counter, always 0 in GTP-U
	ieTEIDDataI   uint8 = 16  // TV, 4 octets: a TEID
	iePeerAddress uint8 = 133 // TLV: an IPv4 (4) or IPv6 (16) address
	firstTLV      uint8 = 128
)

// tvLength is the value length of a TV IE type; ok is false for types
// this package does not know, whose length nobody can tell.
func tvLength(t uint8) (n int, ok bool) {
	switch t {
	case ieRecovery:
		return 1, true
	case ieTEIDDataI:
		return 4, true
	}
	return 0, false
}

// NewEchoRequest returns an Echo Request: TEID 0 and the S flag set, as
// §5.1 wants for path-management messages.
func NewEchoRequest(seq uint16) *Message {
	return &Message{Type: EchoRequest, HasSeq: true, Seq: seq}
}

// NewEchoResponse answers req: the same sequence number and the Recovery
// IE (§7.2.2) with restart counter 0.
func NewEchoResponse(req *Message) *Message {
	return &Message{Type: EchoResponse, HasSeq: true, Seq: req.Seq, Payload: []byte{ieRecovery, 0}}
}

// NewEndMarker returns the End Marker that tells the end of tunnel teid
// that no more packets come on the old path (§7.3.2).
func NewEndMarker(teid uint32) *Message { return &Message{Type: EndMarker, TEID: teid} }

// NewErrorIndication returns the Error Indication (§7.3.1) a tunnel
// endpoint sends for a G-PDU on a TEID it does not know: TEID 0 in the
// header, the unknown TEID and the receiving endpoint's address in IEs.
func NewErrorIndication(teid uint32, self netip.Addr) (*Message, error) {
	if !self.IsValid() {
		return nil, fmt.Errorf("gtpu: error indication needs the peer address")
	}
	a := self.Unmap().AsSlice()
	p := []byte{ieTEIDDataI}
	p = binary.BigEndian.AppendUint32(p, teid)
	p = append(p, iePeerAddress)
	p = binary.BigEndian.AppendUint16(p, uint16(len(a)))
	p = append(p, a...)
	return &Message{Type: ErrorIndication, HasSeq: true, Payload: p}, nil
}

// ParseErrorIndication returns the TEID and address an Error Indication
// reports.
func ParseErrorIndication(m *Message) (teid uint32, peer netip.Addr, err error) {
	if m.Type != ErrorIndication {
		return 0, netip.Addr{}, fmt.Errorf("gtpu: %s is not an error indication", m.Type)
	}
	var haveTEID bool
	err = walkIEs(m.Payload, func(t uint8, v []byte) error {
		switch t {
		case ieTEIDDataI:
			teid, haveTEID = binary.BigEndian.Uint32(v), true
		case iePeerAddress:
			var ok bool
			if peer, ok = netip.AddrFromSlice(v); !ok {
				return fmt.Errorf("%w: GTP-U peer address of %d octets", ErrMalformed, len(v))
			}
		}
		return nil
	})
	if err != nil {
		return 0, netip.Addr{}, err
	}
	if !haveTEID || !peer.IsValid() {
		return 0, netip.Addr{}, fmt.Errorf("%w: error indication without its TEID Data I or peer address IE", ErrMalformed)
	}
	return teid, peer, nil
}

// walkIEs calls f with each IE's type and value.
func walkIEs(b []byte, f func(t uint8, v []byte) error) error {
	for len(b) > 0 {
		t := b[0]
		var n, off int
		if t >= firstTLV {
			if len(b) < 3 {
				return fmt.Errorf("%w: IE %d without its length", ErrTruncated, t)
			}
			n, off = int(binary.BigEndian.Uint16(b[1:3])), 3
		} else {
			l, ok := tvLength(t)
			if !ok {
				return fmt.Errorf("%w: TV IE %d of unknown length", ErrMalformed, t)
			}
			n, off = l, 1
		}
		if len(b) < off+n {
			return fmt.Errorf("%w: IE %d of %d octets, %d left", ErrTruncated, t, n, len(b)-off)
		}
		if err := f(t, b[off:off+n]); err != nil {
			return err
		}
		b = b[off+n:]
	}
	return nil
}
