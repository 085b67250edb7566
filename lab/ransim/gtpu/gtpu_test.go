package gtpu

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// unhex reads a vector written with spaces and "|" between fields.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "|", "").Replace(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ext(t testing.TB, p PDUSessionContainer) Extension {
	t.Helper()
	e, err := p.Extension()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The vectors are written from TS 29.281 §5.1/§5.2 and TS 38.415 §5.5.2.
// Octet 1 is version (3 bits) | PT | spare | E | S | PN: 0x30 is version
// 1, PT 1, no optional fields; 0x34 adds E, 0x32 S, 0x33 S and PN.
func TestDecodeEncodeVectors(t *testing.T) {
	for _, tc := range []struct {
		name string
		wire string
		want Message
	}{{
		name: "G-PDU without optional fields",
		// flags | type 255 | length 4 | TEID 1 | payload
		wire: "30 ff 0004 00000001 | deadbeef",
		want: Message{Type: GPDU, TEID: 1, Payload: []byte{0xde, 0xad, 0xbe, 0xef}},
	}, {
		name: "UL G-PDU with a PDU session container, QFI 9",
		// length 10 = 4 optional + 4 extension + 2 payload
		// optional: seq 0 | N-PDU 0 | next 0x85
		// extension: 1 unit | PDU type 1 (UL) << 4 | QFI 9 | next 0
		wire: "34 ff 000a 00000100 | 0000 00 85 | 01 10 09 00 | 4500",
		want: Message{Type: GPDU, TEID: 0x100, Extensions: []Extension{{ExtPDUSessionContainer, []byte{0x10, 0x09}}}, Payload: []byte{0x45, 0}},
	}, {
		name: "DL G-PDU: PPP, RQI, PPI 5, QFI 9",
		// extension: 2 units | PDU type 0 | PPP 0x80 | RQI 0x40 | QFI 9 | PPI 5 << 5 | 3 padding | next 0
		wire: "34 ff 000d 00000200 | 0000 00 85 | 02 00 c9 a0 000000 00 | 78",
		want: Message{Type: GPDU, TEID: 0x200, Extensions: []Extension{{ExtPDUSessionContainer, []byte{0x00, 0xc9, 0xa0, 0, 0, 0}}}, Payload: []byte{'x'}},
	}, {
		name: "two extension headers: UDP port, then PDU session container",
		wire: "34 ff 000c 00000007 | 0000 00 40 | 01 0868 85 | 01 10 05 00",
		want: Message{Type: GPDU, TEID: 7, Extensions: []Extension{{ExtUDPPort, []byte{0x08, 0x68}}, {ExtPDUSessionContainer, []byte{0x10, 0x05}}}, Payload: []byte{}},
	}, {
		name: "S and PN flags",
		// seq 42 | N-PDU 7 | next 0 | payload
		wire: "33 ff 0005 00000007 | 002a 07 00 | ff",
		want: Message{Type: GPDU, TEID: 7, HasSeq: true, Seq: 42, HasNPDU: true, NPDU: 7, Payload: []byte{0xff}},
	}, {
		name: "E flag alone carries the unused sequence number",
		wire: "34 ff 0008 00000001 | 1234 56 85 | 01 10 01 00",
		want: Message{Type: GPDU, TEID: 1, Seq: 0x1234, NPDU: 0x56, Extensions: []Extension{{ExtPDUSessionContainer, []byte{0x10, 0x01}}}, Payload: []byte{}},
	}, {
		name: "Echo Request",
		wire: "32 01 0004 00000000 | 1234 00 00",
		want: *NewEchoRequest(0x1234),
	}, {
		name: "Echo Response with the Recovery IE",
		wire: "32 02 0006 00000000 | 1234 00 00 | 0e 00",
		want: *NewEchoResponse(NewEchoRequest(0x1234)),
	}, {
		name: "End Marker",
		wire: "30 fe 0000 00000200",
		want: *NewEndMarker(0x200),
	}, {
		name: "Error Indication: TEID Data I 0x100, peer 10.62.0.2",
		// IE 16 (TV) 00000100 | IE 133 (TLV) length 4 0a3e0002
		wire: "32 1a 0010 00000000 | 0000 00 00 | 10 00000100 | 85 0004 0a3e0002",
		want: func() Message {
			m, err := NewErrorIndication(0x100, netip.MustParseAddr("10.62.0.2"))
			if err != nil {
				t.Fatal(err)
			}
			return *m
		}(),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			wire := unhex(t, tc.wire)
			got, err := Decode(wire)
			if err != nil {
				t.Fatal(err)
			}
			norm := func(m Message) Message {
				if len(m.Payload) == 0 {
					m.Payload = nil
				}
				return m
			}
			if !reflect.DeepEqual(norm(*got), norm(tc.want)) {
				t.Fatalf("Decode = %+v\nwant     %+v", *got, tc.want)
			}
			enc, err := tc.want.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, wire) {
				t.Fatalf("Encode = % x\nwant     % x", enc, wire)
			}
			if n := tc.want.Len(); n != len(wire) {
				t.Fatalf("Len = %d, want %d", n, len(wire))
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, wire string
		want       error
	}{
		{"shorter than the header", "30 ff 0000 000000", ErrTruncated},
		{"version 2", "50 ff 0000 00000001", ErrMalformed},
		{"GTP' (PT 0)", "20 ff 0000 00000001", ErrMalformed},
		{"spare bit", "38 ff 0000 00000001", ErrMalformed},
		{"length beyond the datagram", "30 ff 0005 00000001 | deadbeef", ErrTruncated},
		{"datagram beyond the length", "30 ff 0003 00000001 | deadbeef", ErrMalformed},
		{"S flag without room for the optional octets", "32 ff 0002 00000001 | 0000", ErrTruncated},
		{"next extension type without the E flag", "32 ff 0004 00000001 | 0000 00 85", ErrMalformed},
		{"E flag and no extension", "34 ff 0004 00000001 | 0000 00 00", ErrMalformed},
		{"extension of length 0", "34 ff 0008 00000001 | 0000 00 85 | 00 10 09 00", ErrMalformed},
		{"extension longer than the message", "34 ff 0008 00000001 | 0000 00 85 | 02 10 09 00", ErrTruncated},
		{"chain announces one more extension", "34 ff 0008 00000001 | 0000 00 85 | 01 10 09 85", ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(unhex(t, tc.wire))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %+v, %v; want %v", m, err, tc.want)
			}
		})
	}
}

func TestPDUSessionContainer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		want    PDUSessionContainer
		err     error
	}{
		{"UL QFI 9", "10 09", PDUSessionContainer{Type: PDUTypeUL, QFI: 9}, nil},
		{"UL QFI 63 with padding", "10 3f 000000 00", PDUSessionContainer{Type: PDUTypeUL, QFI: 63}, nil},
		{"DL QFI 1", "00 01", PDUSessionContainer{Type: PDUTypeDL, QFI: 1}, nil},
		{"DL RQI", "00 41", PDUSessionContainer{Type: PDUTypeDL, QFI: 1, RQI: true}, nil},
		{"DL PPP PPI 7", "00 81 e0 000000", PDUSessionContainer{Type: PDUTypeDL, QFI: 1, PPP: true, PPI: 7}, nil},
		{"DL spare bits ignored", "01 01 1f 000000", PDUSessionContainer{Type: PDUTypeDL, QFI: 1}, nil},
		{"DL PPP without its octet", "00 81", PDUSessionContainer{}, ErrTruncated},
		{"DL QMP (not implemented)", "08 01 000000 00", PDUSessionContainer{}, ErrMalformed},
		{"UL SNP (not implemented)", "11 01", PDUSessionContainer{}, ErrMalformed},
		{"UL new IE flag (not implemented)", "10 41", PDUSessionContainer{}, ErrMalformed},
		{"PDU type 2", "20 01", PDUSessionContainer{}, ErrMalformed},
		{"one octet", "10", PDUSessionContainer{}, ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePDUSessionContainer(unhex(t, tc.content))
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("Parse = %+v, %v; want %+v, %v", got, err, tc.want, tc.err)
			}
		})
	}
	for _, bad := range []PDUSessionContainer{
		{Type: PDUTypeUL, QFI: 64},
		{Type: PDUTypeUL, QFI: 1, RQI: true},
		{Type: PDUTypeDL, QFI: 1, PPP: true, PPI: 8},
		{Type: 3, QFI: 1},
	} {
		if _, err := bad.Extension(); err == nil {
			t.Errorf("Extension(%+v) succeeded", bad)
		}
	}
}

func TestNewGPDUAndPDUSession(t *testing.T) {
	psc := PDUSessionContainer{Type: PDUTypeDL, QFI: 9, RQI: true}
	m, err := NewGPDU(0x200, &psc, []byte("inner"))
	if err != nil {
		t.Fatal(err)
	}
	wire, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(wire)
	if err != nil {
		t.Fatal(err)
	}
	p, ok, err := got.PDUSession()
	if err != nil || !ok || p != psc {
		t.Fatalf("PDUSession = %+v %v %v", p, ok, err)
	}
	if got.TEID != 0x200 || string(got.Payload) != "inner" {
		t.Fatalf("decoded %+v", got)
	}
	bare, _ := NewGPDU(1, nil, nil)
	if _, ok, _ := bare.PDUSession(); ok {
		t.Fatal("a G-PDU without extensions has a PDU session container")
	}
}

func TestEncodeRefuses(t *testing.T) {
	for name, m := range map[string]Message{
		"extension of 3 octets":    {Type: GPDU, Extensions: []Extension{{ExtUDPPort, []byte{1, 2, 3}}}},
		"extension of type 0":      {Type: GPDU, Extensions: []Extension{{0, []byte{1, 2}}}},
		"extension over 255 units": {Type: GPDU, Extensions: []Extension{{ExtUDPPort, make([]byte, 256*4-2)}}},
		"payload over 65535":       {Type: GPDU, Payload: make([]byte, 0x10000)},
	} {
		if _, err := m.Encode(); err == nil {
			t.Errorf("%s: Encode succeeded", name)
		}
	}
}

func TestErrorIndication(t *testing.T) {
	for _, a := range []string{"10.62.0.2", "fd00::2"} {
		m, err := NewErrorIndication(0xabcdef01, netip.MustParseAddr(a))
		if err != nil {
			t.Fatal(err)
		}
		teid, peer, err := ParseErrorIndication(m)
		if err != nil || teid != 0xabcdef01 || peer.String() != a {
			t.Fatalf("%s: %#x %v %v", a, teid, peer, err)
		}
	}
	for name, p := range map[string]string{
		"no peer address":        "10 00000100",
		"unknown TV IE":          "0f 00",
		"TLV without its length": "85 00",
		"TLV beyond the message": "10 00000100 | 85 0004 0a3e",
		"peer address of 5":      "10 00000100 | 85 0005 0a3e000203",
	} {
		if _, _, err := ParseErrorIndication(&Message{Type: ErrorIndication, Payload: unhex(t, p)}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := ParseErrorIndication(NewEndMarker(1)); err == nil {
		t.Error("an end marker parsed as an error indication")
	}
}
