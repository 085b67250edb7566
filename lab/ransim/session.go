package ransim

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultQFI is the QFI of a session that names none.
const DefaultQFI = 9

// DLTEIDOffset is added to the uplink TEID to make the downlink TEID of a
// session that names none.
const DLTEIDOffset = 0x1000

// Session is one PDU session as the gNBs and the UPF know it.
type Session struct {
	UE     netip.Addr // the UE's address inside the tunnel
	ULTEID uint32     // the UPF's TEID: uplink G-PDUs carry it
	DLTEID uint32     // the gNB's TEID: downlink G-PDUs carry it
	QFI    uint8
	// GNB, for the UPF, is where downlink goes before the first uplink
	// G-PDU shows it; zero to learn it from the uplink only.
	GNB netip.AddrPort
}

func (s Session) String() string {
	out := fmt.Sprintf("ue=%s,ulteid=%#x,dlteid=%#x,qfi=%d", s.UE, s.ULTEID, s.DLTEID, s.QFI)
	if s.GNB.IsValid() {
		out += ",gnb=" + s.GNB.String()
	}
	return out
}

// ParseSession reads "ue=10.45.0.2,ulteid=0x100[,dlteid=0x200][,qfi=9][,gnb=10.62.0.11:2152]".
// TEIDs take 0x for hex; dlteid defaults to ulteid+DLTEIDOffset, qfi to
// DefaultQFI, gnb's port to 2152.
func ParseSession(spec string) (Session, error) {
	var s Session
	var haveDL, haveQFI bool
	for _, kv := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return Session{}, fmt.Errorf("session %q: %q is not key=value", spec, kv)
		}
		var err error
		switch k {
		case "ue":
			s.UE, err = netip.ParseAddr(v)
			if err == nil && !s.UE.Is4() {
				err = fmt.Errorf("not IPv4")
			}
		case "ulteid":
			s.ULTEID, err = parseTEID(v)
		case "dlteid":
			s.DLTEID, err = parseTEID(v)
			haveDL = true
		case "qfi":
			var q uint64
			q, err = strconv.ParseUint(v, 0, 6)
			s.QFI, haveQFI = uint8(q), true
		case "gnb":
			s.GNB, err = parseAddrPort(v, 2152)
		default:
			err = fmt.Errorf("unknown key")
		}
		if err != nil {
			return Session{}, fmt.Errorf("session %q: %s=%q: %w", spec, k, v, err)
		}
	}
	if !s.UE.IsValid() || s.ULTEID == 0 {
		return Session{}, fmt.Errorf("session %q: ue and ulteid are required", spec)
	}
	if !haveDL {
		s.DLTEID = s.ULTEID + DLTEIDOffset
	}
	if !haveQFI {
		s.QFI = DefaultQFI
	}
	return s, nil
}

func parseTEID(v string) (uint32, error) {
	t, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, err
	}
	if t == 0 {
		return 0, fmt.Errorf("TEID 0 is reserved for path management")
	}
	return uint32(t), nil
}

// parseAddrPort reads ip:port, or a bare ip with the default port.
func parseAddrPort(v string, port uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("want ip or ip:port: %w", err)
	}
	return netip.AddrPortFrom(a, port), nil
}

// sessionTable indexes a static session list.
type sessionTable struct {
	byUE map[netip.Addr]*Session
	byUL map[uint32]*Session
	byDL map[uint32]*Session
}

func newSessionTable(list []Session) (*sessionTable, error) {
	list = append([]Session(nil), list...) // the table must not change under the caller's edits
	t := &sessionTable{byUE: map[netip.Addr]*Session{}, byUL: map[uint32]*Session{}, byDL: map[uint32]*Session{}}
	for i := range list {
		s := &list[i]
		if !s.UE.Is4() || s.ULTEID == 0 || s.DLTEID == 0 || s.QFI > 63 {
			return nil, fmt.Errorf("session %s: needs an IPv4 UE, non-zero TEIDs and a QFI below 64", s)
		}
		if t.byUE[s.UE] != nil || t.byUL[s.ULTEID] != nil || t.byDL[s.DLTEID] != nil {
			return nil, fmt.Errorf("session %s: its UE or a TEID is another session's", s)
		}
		t.byUE[s.UE], t.byUL[s.ULTEID], t.byDL[s.DLTEID] = s, s, s
	}
	return t, nil
}

// CanonicalCGI checks an NR cell global identity as mecorch's inventory
// writes it, MCC-MNC-<36-bit cell identity in 9 hex digits>
// ("262-01-0000000a1"), and returns it in lower case, as mecorch keys
// cells.
func CanonicalCGI(s string) (string, error) {
	parts := strings.Split(s, "-")
	ok := len(parts) == 3 && digits(parts[0], 3, 3, "0123456789") &&
		digits(parts[1], 2, 3, "0123456789") && digits(parts[2], 9, 9, "0123456789abcdefABCDEF")
	if !ok {
		return "", fmt.Errorf("cell %q: want an NR CGI MCC-MNC-<9 hex digits>, e.g. 262-01-0000000a1", s)
	}
	return strings.ToLower(s), nil
}

func digits(s string, lo, hi int, set string) bool {
	if len(s) < lo || len(s) > hi {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune(set, c) {
			return false
		}
	}
	return true
}
