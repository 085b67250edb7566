package stamp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// unhex reads a vector written field by field, one field per line, as in
// the RFCs' figures; "#" starts a comment.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "#")
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 8762 §4.2.1 with RFC 8972 §3: Session-Sender test packet.
const senderVector = `
	00 00 01 02                 # Sequence Number 258
	e9 8b 9f 00 80 00 00 00     # Timestamp: NTP seconds 0xe98b9f00, fraction 1/2
	c1 05                       # Error Estimate: S=1 Z=1 Scale=1 Multiplier=5
	12 34                       # SSID
	00000000 00000000 00000000 00000000 00000000 00000000 00000000  # MBZ, 28 octets
`

// RFC 8762 §4.3.1 with RFC 8972 §3: Session-Reflector test packet.
const reflectorVector = `
	00 00 01 02                 # Sequence Number
	00 00 00 0a 00 00 00 07     # Timestamp (PTP: 10 s, 7 ns)
	56 01                       # Error Estimate: S=0 Z=1 Scale=22 Multiplier=1
	12 34                       # SSID
	00 00 00 09 00 00 00 05     # Receive Timestamp (PTP: 9 s, 5 ns)
	00 00 01 02                 # Session-Sender Sequence Number
	e9 8b 9f 00 80 00 00 00     # Session-Sender Timestamp
	c1 05                       # Session-Sender Error Estimate
	00 00                       # MBZ
	3f                          # Ses-Sender TTL 63
	00 00 00                    # MBZ
`

func TestSenderPacketLayout(t *testing.T) {
	b := unhex(t, senderVector)
	if len(b) != BaseSize {
		t.Fatalf("vector has %d octets", len(b))
	}
	want := SenderPacket{Seq: 258, Timestamp: 0xe98b9f0080000000,
		ErrorEstimate: ErrorEstimate{Sync: true, PTP: true, Scale: 1, Multiplier: 5}, SSID: 0x1234, Len: 44}
	got, err := DecodeSender(b)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeSender = %+v, %v; want %+v", got, err, want)
	}
	want.Len = 0
	enc, err := want.MarshalBinary()
	if err != nil || !bytes.Equal(enc, b) {
		t.Fatalf("MarshalBinary = %x, %v; want %x", enc, err, b)
	}
}

func TestReflectorPacketLayout(t *testing.T) {
	b := unhex(t, reflectorVector)
	want := ReflectorPacket{Seq: 258, Timestamp: 10<<32 | 7, ErrorEstimate: ErrorEstimate{PTP: true, Scale: 22, Multiplier: 1},
		SSID: 0x1234, ReceiveTimestamp: 9<<32 | 5, SenderSeq: 258, SenderTimestamp: 0xe98b9f0080000000,
		SenderErrorEstimate: ErrorEstimate{Sync: true, PTP: true, Scale: 1, Multiplier: 5}, SenderTTL: 63, Len: 44}
	got, err := DecodeReflector(b)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeReflector = %+v, %v; want %+v", got, err, want)
	}
	if tm := got.Timestamp.Time(true); !tm.Equal(time.Unix(10, 7)) {
		t.Errorf("PTP timestamp = %v", tm)
	}
	want.Len = 0
	enc, err := want.MarshalBinary()
	if err != nil || !bytes.Equal(enc, b) {
		t.Fatalf("MarshalBinary = %x, %v; want %x", enc, err, b)
	}
	// A TWAMP reflector packet (RFC 5357 §4.2.1) is the first 41 octets.
	tw, err := DecodeReflector(b[:41])
	if err != nil || tw.SenderTTL != 63 || tw.SenderSeq != 258 || tw.Len != 41 {
		t.Errorf("41-octet TWAMP answer = %+v, %v", tw, err)
	}
}

func TestTLVs(t *testing.T) {
	base := unhex(t, senderVector)
	two := append(append([]byte{}, base...), unhex(t, `
		80 01 0003 aabbcc   # U flag, type 1 (Extra Padding), 3 octets
		00 07 0000          # type 7, empty
	`)...)
	p, err := DecodeSender(two)
	if err != nil {
		t.Fatal(err)
	}
	want := []TLV{{Flags: TLVFlagU, Type: 1, Value: []byte{0xaa, 0xbb, 0xcc}}, {Type: 7, Value: []byte{}}}
	if !reflect.DeepEqual(p.TLVs, want) {
		t.Errorf("TLVs = %+v", p.TLVs)
	}
	if enc, err := p.MarshalBinary(); err != nil || !bytes.Equal(enc, two) {
		t.Errorf("re-encoded = %x, %v", enc, err)
	}
	for name, tail := range map[string]string{
		"length past the end": "00 01 0004 aabbcc",
		"half a header":       "00 01",
		"trailing octets":     "00 01 0000 ff",
	} {
		_, err := DecodeSender(append(append([]byte{}, base...), unhex(t, tail)...))
		if !errors.Is(err, ErrTLV) {
			t.Errorf("%s: err = %v, want ErrTLV", name, err)
		}
	}
}

func TestShortPackets(t *testing.T) {
	// A minimal TWAMP-light probe: sequence, timestamp, error estimate.
	tw := unhex(t, "00000007 e98b9f0000000000 8001")
	p, err := DecodeSender(tw)
	if err != nil || p.Seq != 7 || p.Len != 14 || p.SSID != 0 || !p.ErrorEstimate.Sync {
		t.Fatalf("14-octet probe = %+v, %v", p, err)
	}
	if enc, err := p.MarshalBinary(); err != nil || !bytes.Equal(enc, tw) {
		t.Errorf("re-encoded = %x, %v", enc, err)
	}
	if _, err := DecodeSender(tw[:13]); !errors.Is(err, ErrShort) {
		t.Errorf("13 octets: err = %v", err)
	}
	if _, err := DecodeReflector(make([]byte, 40)); !errors.Is(err, ErrShort) {
		t.Errorf("40-octet answer: err = %v", err)
	}
	bad := SenderPacket{Len: 20, TLVs: []TLV{{Type: 1}}}
	if _, err := bad.MarshalBinary(); err == nil {
		t.Error("a 20-octet packet with a TLV encoded")
	}
}

func TestTimestamps(t *testing.T) {
	tm := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	if got := NTPTimestamp(tm).Time(false); got.Sub(tm).Abs() > time.Nanosecond {
		t.Errorf("NTP round trip: %v, want %v", got, tm)
	}
	if got := PTPTimestamp(tm).Time(true); !got.Equal(tm) {
		t.Errorf("PTP round trip: %v, want %v", got, tm)
	}
	// 1970-01-01 is NTP second 2208988800 (0x83aa7e80).
	if got := uint64(NTPTimestamp(time.Unix(0, 0))) >> 32; got != 0x83aa7e80 {
		t.Errorf("NTP seconds of the Unix epoch = %#x", got)
	}
	e := ErrorEstimate{Scale: 22, Multiplier: 1}
	if d := e.Duration(); d < 976*time.Microsecond || d > 977*time.Microsecond {
		t.Errorf("2^-10 s = %v", d)
	}
	for _, v := range []uint16{0, 0xffff, 0x8001, 0x4000, 0x3fff} {
		if got := errorEstimate(v).wire(); got != v {
			t.Errorf("error estimate %#x came back %#x", v, got)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(make([]byte, 14))
	f.Add(make([]byte, 44))
	f.Add(append(make([]byte, 44), 0, 1, 0, 2, 9, 9))
	f.Add(append(make([]byte, 44), 0, 1, 0, 9))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := DecodeSender(b); err == nil {
			enc, err := p.MarshalBinary()
			if err != nil {
				t.Fatalf("decoded %+v does not encode: %v", p, err)
			}
			q, err := DecodeSender(enc)
			if err != nil || !reflect.DeepEqual(normTLV(p.TLVs), normTLV(q.TLVs)) {
				t.Fatalf("sender round trip: %+v, %v; want %+v", q, err, p)
			}
			p.TLVs, q.TLVs = nil, nil
			if !reflect.DeepEqual(p, q) {
				t.Fatalf("sender round trip: %+v; want %+v", q, p)
			}
		}
		if p, err := DecodeReflector(b); err == nil {
			enc, err := p.MarshalBinary()
			if err != nil {
				t.Fatalf("decoded %+v does not encode: %v", p, err)
			}
			q, err := DecodeReflector(enc)
			if err != nil || !reflect.DeepEqual(normTLV(p.TLVs), normTLV(q.TLVs)) {
				t.Fatalf("reflector round trip: %+v, %v; want %+v", q, err, p)
			}
			p.TLVs, q.TLVs = nil, nil
			if !reflect.DeepEqual(p, q) {
				t.Fatalf("reflector round trip: %+v; want %+v", q, p)
			}
		}
	})
}

// normTLV makes empty values comparable with nil ones.
func normTLV(ts []TLV) []TLV {
	out := make([]TLV, len(ts))
	for i, x := range ts {
		out[i] = TLV{Flags: x.Flags, Type: x.Type, Value: append([]byte(nil), x.Value...)}
	}
	return out
}
