package agentwire

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// SCTP carries the same frames as the websocket, over one association
// between all of the agent's backhaul addresses and all of mecorch's: when
// one path fails the kernel moves the traffic to another within its
// heartbeat interval, and the paths' round-trip times are read from the
// kernel for the orchestrator (Conn.Paths).
//
// Framing: the association's stream 0 is used as a byte stream in which
// every frame is a 4-byte big-endian length followed by that many bytes of
// JSON (at most agentproto.MaxFrameBytes). A frame is written in SCTP
// messages of at most sctpChunk bytes, so a 1 MiB frame needs no send
// buffer of that size and message boundaries mean nothing to the reader.
//
// Authentication: SCTP has no HTTP headers, so the agent's first frame is
// its hello with the bearer token in Hello.Token; the hub verifies it
// before anything else and answers forbidden otherwise.
//
// Liveness is the kernel's: heartbeats on every path every PathHeartbeat
// (SCTP_PEER_ADDR_PARAMS), and an association whose paths all fail is
// aborted, which ends Recv. There are no application pings.

// Listener accepts agents' SCTP associations.
type Listener interface {
	// Accept waits for the next association. After Close it fails.
	Accept() (Conn, error)
	Close() error
	// Port is the SCTP port the listener is bound to (useful with port 0).
	Port() int
}

// sctpChunk is the largest SCTP message a frame is written in.
const sctpChunk = 64 << 10

// parseSCTPURL reads mecorch's SCTP address. Accepted forms:
//
//	sctp://host:port                 one address, or a name whose every address is used
//	sctp://[a,b,...]:port            several addresses (IPv4, IPv6 or names), comma-separated in brackets
//	sctp://[fd00::1]:port            an IPv6 address
//	sctp://a:port?addr=b&addr=c      more addresses as query parameters
//
// A path is ignored. The hosts come back deduplicated, in order.
func parseSCTPURL(raw string) (hosts []string, port int, err error) {
	rest, ok := strings.CutPrefix(raw, "sctp://")
	if !ok {
		return nil, 0, fmt.Errorf("SCTP URL %q: must start with sctp://", raw)
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if strings.Contains(authority, "@") {
		return nil, 0, fmt.Errorf("SCTP URL: credentials do not belong in the URL; the token goes in the hello")
	}
	var portStr string
	if strings.HasPrefix(authority, "[") {
		end := strings.LastIndex(authority, "]")
		if end < 0 || !strings.HasPrefix(authority[end:], "]:") {
			return nil, 0, fmt.Errorf("SCTP URL %q: expected [addresses]:port", raw)
		}
		hosts = strings.Split(authority[1:end], ",")
		portStr = authority[end+2:]
	} else {
		h, p, err := net.SplitHostPort(authority)
		if err != nil {
			return nil, 0, fmt.Errorf("SCTP URL %q: %w", raw, err)
		}
		hosts, portStr = []string{h}, p
	}
	port, err = strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return nil, 0, fmt.Errorf("SCTP URL %q: the port must be from 1 to 65535", raw)
	}
	query := ""
	if i := strings.IndexByte(tail, '?'); i >= 0 {
		query, _, _ = strings.Cut(tail[i+1:], "#")
	}
	if q := query; q != "" {
		vals, err := url.ParseQuery(q)
		if err != nil {
			return nil, 0, fmt.Errorf("SCTP URL %q: %w", raw, err)
		}
		for k := range vals {
			if k != "addr" {
				return nil, 0, fmt.Errorf("SCTP URL %q: unknown parameter %q (only addr)", raw, k)
			}
		}
		hosts = append(hosts, vals["addr"]...)
	}
	out := hosts[:0:0]
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, 0, fmt.Errorf("SCTP URL %q: an empty address", raw)
		}
		if strings.Contains(h, ":") {
			if _, err := netip.ParseAddr(h); err != nil {
				return nil, 0, fmt.Errorf("SCTP URL %q: %q is neither an IPv4 or IPv6 address nor a name", raw, h)
			}
		}
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out, port, nil
}

// formatSCTPAddrs writes a list of addresses and a port the way the URL
// takes them.
func formatSCTPAddrs(addrs []netip.Addr, port int) string {
	if len(addrs) == 1 {
		return netip.AddrPortFrom(addrs[0], uint16(port)).String()
	}
	parts := make([]string, len(addrs))
	for i, a := range addrs {
		parts[i] = a.String()
	}
	return "[" + strings.Join(parts, ",") + "]:" + strconv.Itoa(port)
}
