package ransim

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/mecorch/mecorch/lab/ransim/gtpu"
)

// n3End is what the gNB and the UPF share at their GTP-U end: the socket,
// decoding, path management (echo, error indications) and its counters.
// Each passes its own handler for the messages that are its business.
type n3End struct {
	conn                    *net.UDPConn
	who                     string // "gnb" or "upf", for logs
	log                     *slog.Logger
	echo, errInd, malformed *atomic.Int64
}

// serve reads N3 until the socket closes. handle takes a decoded message
// and reports whether it dealt with it; echo requests, error indications
// and anything else are dealt with here.
func (e n3End) serve(handle func(m *gtpu.Message, from netip.AddrPort) bool) error {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("%s: read N3: %w", e.who, err)
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		m, err := gtpu.Decode(buf[:n])
		if err != nil {
			e.malformed.Add(1)
			e.log.Debug(e.who+": malformed GTP-U", "from", from, "err", err)
			continue
		}
		if handle(m, from) {
			continue
		}
		switch m.Type {
		case gtpu.EchoRequest:
			e.echo.Add(1)
			e.send(gtpu.NewEchoResponse(m), from)
		case gtpu.ErrorIndication:
			e.errInd.Add(1)
			teid, peer, err := gtpu.ParseErrorIndication(m)
			e.log.Warn(e.who+": error indication", "from", from, "teid", fmt.Sprintf("%#x", teid), "peer", peer, "err", err)
		default:
			e.log.Debug(e.who+": ignored", "type", m.Type, "from", from)
		}
	}
}

// send writes m to a peer; a failure is only logged (a tunnel end keeps
// going, as a real one would).
func (e n3End) send(m *gtpu.Message, to netip.AddrPort) {
	b, err := m.Encode()
	if err == nil {
		_, err = e.conn.WriteToUDPAddrPort(b, to)
	}
	if err != nil {
		e.log.Debug(e.who+": send", "type", m.Type, "to", to, "err", err)
	}
}
