package gtpu

import (
	"bytes"
	"testing"
)

// FuzzDecode: Decode never panics, and what it accepts Encode gives back
// byte for byte; a PDU session container it can parse survives its own
// encoding.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"30 ff 0004 00000001 | deadbeef",
		"34 ff 000a 00000100 | 0000 00 85 | 01 10 09 00 | 4500",
		"34 ff 000d 00000200 | 0000 00 85 | 02 00 c9 a0 000000 00 | 78",
		"34 ff 000c 00000007 | 0000 00 40 | 01 0868 85 | 01 10 05 00",
		"33 ff 0005 00000007 | 002a 07 00 | ff",
		"32 01 0004 00000000 | 1234 00 00",
		"32 1a 0010 00000000 | 0000 00 00 | 10 00000100 | 85 0004 0a3e0002",
		"30 fe 0000 00000200",
	} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("Encode of an accepted message: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("round trip:\n in % x\nout % x", b, enc)
		}
		p, ok, err := m.PDUSession()
		if !ok || err != nil {
			return
		}
		e, err := p.Extension()
		if err != nil {
			t.Fatalf("Extension of parsed %+v: %v", p, err)
		}
		q, err := ParsePDUSessionContainer(e.Content)
		if err != nil || q != p {
			t.Fatalf("container round trip: %+v → %+v, %v", p, q, err)
		}
		if m.Type == ErrorIndication {
			_, _, _ = ParseErrorIndication(m) // must not panic
		}
	})
}
