package ipv4udp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "|", "").Replace(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestChecksumKnownVectors(t *testing.T) {
	// RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2; the
	// checksum is its complement.
	if c := Checksum(unhex(t, "0001 f203 f4f5 f6f7")); c != 0x220d {
		t.Fatalf("RFC 1071 example: %#04x, want 0x220d", c)
	}
	// The header often used to teach the IPv4 checksum (192.168.0.1 →
	// 192.168.0.199, total length 0x73, UDP): checksum b861.
	h := unhex(t, "4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7")
	if c := Checksum(h); c != 0xb861 {
		t.Fatalf("IPv4 header example: %#04x, want 0xb861", c)
	}
	// An odd length pads with a zero octet.
	if c := Checksum([]byte{0x01}); c != ^uint16(0x0100) {
		t.Fatalf("odd length: %#04x", c)
	}
}

// A packet worked out by hand: 10.45.0.2:40000 → 10.63.0.3:7, "hi",
// ID 1, DF, TTL 64.
//
//	IPv4: 4500+001e+0001+4000+4011+0a2d+0002+0a3f+0003 = d9a1 → ~ = 265e
//	UDP pseudo-header: 0a2d+0002+0a3f+0003+0011+000a = 148c
//	UDP: 9c40+0007+000a+6869 = 104ba; + 148c = 11946 → 1947 → ~ = e6b8
const handVector = "45 00 001e 0001 4000 40 11 265e 0a2d0002 0a3f0003 | 9c40 0007 000a e6b8 | 6869"

func TestMarshalHandVector(t *testing.T) {
	d := Datagram{
		Src: netip.MustParseAddrPort("10.45.0.2:40000"), Dst: netip.MustParseAddrPort("10.63.0.3:7"),
		ID: 1, Payload: []byte("hi"),
	}
	got, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, handVector)
	if !bytes.Equal(got, want) {
		t.Fatalf("Marshal = % x\nwant      % x", got, want)
	}
	back, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.Src != d.Src || back.Dst != d.Dst || back.ID != 1 || back.TTL != DefaultTTL || string(back.Payload) != "hi" {
		t.Fatalf("Parse = %+v", back)
	}
	h, err := ParseHeader(got)
	if err != nil || !h.DontFragment || h.Protocol != ProtoUDP || h.TotalLen != 30 {
		t.Fatalf("ParseHeader = %+v, %v", h, err)
	}
}

func TestMarshalRoundTripAndMappedAddresses(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 1400} {
		d := Datagram{
			Src: netip.MustParseAddrPort("[::ffff:10.0.0.1]:1"), Dst: netip.MustParseAddrPort("10.0.0.2:65535"),
			TTL: 3, ID: 0xffff, TOS: 0xb8, Payload: bytes.Repeat([]byte{0xff}, n),
		}
		b, err := d.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("%d octets: %v", n, err)
		}
		if got.Src.Addr() != d.Src.Addr().Unmap() || got.Dst != d.Dst || got.TTL != 3 || got.TOS != 0xb8 || len(got.Payload) != n {
			t.Fatalf("%d octets: %+v", n, got)
		}
	}
	if _, err := (&Datagram{Src: netip.MustParseAddrPort("[fd00::1]:1"), Dst: netip.MustParseAddrPort("10.0.0.2:1")}).Marshal(); err == nil {
		t.Fatal("IPv6 source accepted")
	}
	if _, err := (&Datagram{Src: netip.MustParseAddrPort("10.0.0.1:1"), Dst: netip.MustParseAddrPort("10.0.0.2:1"), Payload: make([]byte, 0x10000)}).Marshal(); err == nil {
		t.Fatal("oversize accepted")
	}
}

func TestParseRefuses(t *testing.T) {
	good := unhex(t, handVector)
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"short", good[:19], ErrTruncated},
		{"IPv6", mod(func(b []byte) []byte { b[0] = 0x65; return b }), ErrMalformed},
		{"IHL 4", mod(func(b []byte) []byte { b[0] = 0x44; return b }), ErrMalformed},
		{"total length beyond", good[:29], ErrTruncated},
		{"trailing octets", append(bytes.Clone(good), 0), ErrMalformed},
		{"header checksum", mod(func(b []byte) []byte { b[11]++; return b }), ErrChecksum},
		{"UDP checksum", mod(func(b []byte) []byte { b[28]++; return b }), ErrChecksum},
		{"UDP length", mod(func(b []byte) []byte { b[25] = 9; return b }), ErrMalformed},
		{"not UDP", fixHeader(mod(func(b []byte) []byte { b[9] = 6; return b })), ErrMalformed},
		{"fragment", fixHeader(mod(func(b []byte) []byte { b[6] = 0x20; return b })), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("Parse: %v, want %v", err, tc.want)
			}
		})
	}
	// A zero UDP checksum means none was computed: accepted.
	b := mod(func(b []byte) []byte { b[26], b[27] = 0, 0; return b })
	if _, err := Parse(b); err != nil {
		t.Fatalf("zero UDP checksum: %v", err)
	}
}

// fixHeader recomputes the header checksum after an edit.
func fixHeader(b []byte) []byte {
	b[10], b[11] = 0, 0
	c := Checksum(b[:HeaderLen])
	b[10], b[11] = byte(c>>8), byte(c)
	return b
}

// FuzzParse: Parse never panics, and what it accepts re-marshals to the
// same packet when it was in the form Marshal writes.
func FuzzParse(f *testing.F) {
	f.Add(unhex(f, handVector))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			return
		}
		out, err := d.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed datagram: %v", err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		h, _ := ParseHeader(b)
		canonical := h.HeaderLen == HeaderLen && h.DontFragment && b[6]&0x80 == 0 && d.TTL != 0 && b[26]|b[27] != 0
		if canonical && !bytes.Equal(out, b) {
			t.Fatalf("round trip:\n in % x\nout % x", b, out)
		}
	})
}
