package ransim

import (
	"net/netip"
	"testing"
)

func TestParseSession(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want Session
	}{
		{"ue=10.45.0.2,ulteid=0x100,dlteid=0x200,qfi=9", Session{UE: netip.MustParseAddr("10.45.0.2"), ULTEID: 0x100, DLTEID: 0x200, QFI: 9}},
		{"ue=10.45.0.3,ulteid=257", Session{UE: netip.MustParseAddr("10.45.0.3"), ULTEID: 257, DLTEID: 257 + DLTEIDOffset, QFI: DefaultQFI}},
		{"ulteid=0x1, ue=10.45.0.4, qfi=63, gnb=10.62.0.11", Session{UE: netip.MustParseAddr("10.45.0.4"), ULTEID: 1, DLTEID: 1 + DLTEIDOffset, QFI: 63, GNB: netip.MustParseAddrPort("10.62.0.11:2152")}},
		{"ue=10.45.0.5,ulteid=0xffffffff,dlteid=7,gnb=10.62.0.12:3000", Session{UE: netip.MustParseAddr("10.45.0.5"), ULTEID: 0xffffffff, DLTEID: 7, QFI: DefaultQFI, GNB: netip.MustParseAddrPort("10.62.0.12:3000")}},
	} {
		got, err := ParseSession(tc.spec)
		if err != nil || got != tc.want {
			t.Errorf("ParseSession(%q) = %v, %v; want %v", tc.spec, got, err, tc.want)
		}
		if back, err := ParseSession(got.String()); err != nil || back != got {
			t.Errorf("ParseSession(String()) = %v, %v", back, err)
		}
	}
	for _, bad := range []string{
		"", "ue=10.45.0.2", "ulteid=0x100", "ue=fd00::2,ulteid=1", "ue=10.45.0.2,ulteid=0",
		"ue=10.45.0.2,ulteid=0x100000000", "ue=10.45.0.2,ulteid=1,qfi=64", "ue=10.45.0.2,ulteid=1,x=1",
		"ue=10.45.0.2,ulteid=1,dlteid=0", "ue=10.45.0.2,ulteid=1,gnb=nowhere", "ue=10.45.0.2;ulteid=1",
	} {
		if s, err := ParseSession(bad); err == nil {
			t.Errorf("ParseSession(%q) = %v, want an error", bad, s)
		}
	}
}

func TestSessionTableRefusesOverlaps(t *testing.T) {
	a := Session{UE: netip.MustParseAddr("10.45.0.2"), ULTEID: 1, DLTEID: 2, QFI: 9}
	for name, b := range map[string]Session{
		"same UE":     {UE: a.UE, ULTEID: 3, DLTEID: 4, QFI: 9},
		"same ULTEID": {UE: netip.MustParseAddr("10.45.0.3"), ULTEID: 1, DLTEID: 4, QFI: 9},
		"same DLTEID": {UE: netip.MustParseAddr("10.45.0.3"), ULTEID: 3, DLTEID: 2, QFI: 9},
	} {
		if _, err := newSessionTable([]Session{a, b}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := newSessionTable([]Session{a, {UE: netip.MustParseAddr("10.45.0.3"), ULTEID: 3, DLTEID: 4, QFI: 9}}); err != nil {
		t.Fatal(err)
	}
}

func TestCanonicalCGI(t *testing.T) {
	for in, want := range map[string]string{"262-01-0000000A1": "262-01-0000000a1", "001-001-fffffffff": "001-001-fffffffff"} {
		if got, err := CanonicalCGI(in); err != nil || got != want {
			t.Errorf("CanonicalCGI(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "262-01-0000000a", "262-01-0000000a12", "26-01-0000000a1", "262-0001-0000000a1", "262-01-0000000g1", "262-01", "262-01-0000000a1-x"} {
		if _, err := CanonicalCGI(bad); err == nil {
			t.Errorf("CanonicalCGI(%q) accepted", bad)
		}
	}
}
