package ransim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mecorch/mecorch/lab/ransim/gtpu"
	"github.com/mecorch/mecorch/lab/ransim/ipv4udp"
)

// DefaultRadioPort is where a gNB listens for UEs unless told otherwise.
const DefaultRadioPort = 9000

// GNBConfig configures a gNB simulator.
type GNBConfig struct {
	Name string
	// Cells are the NR CGIs the gNB serves (e.g. 262-01-0000000a1).
	Cells []string
	// RadioAddr is the UDP address UEs send their IP packets to; default
	// ":9000".
	RadioAddr string
	// N3Addr is the local GTP-U address; default ":2152".
	N3Addr string
	// UPFAddr is the UPF's N3 address, host[:port] (port 2152 if none).
	UPFAddr  string
	Sessions []Session
}

// GNBStats counts what a gNB did. Drops are counted by reason.
type GNBStats struct {
	Uplink           int64 `json:"uplink"`
	Downlink         int64 `json:"downlink"`
	EndMarkers       int64 `json:"endMarkers"`
	EchoRequests     int64 `json:"echoRequests"`
	ErrorIndications int64 `json:"errorIndications"` // received
	Malformed        int64 `json:"malformed"`
	UnknownUE        int64 `json:"unknownUe"`    // radio packet from an address without a session
	UnknownTEID      int64 `json:"unknownTeid"`  // downlink G-PDU on a TEID without a session
	BadContainer     int64 `json:"badContainer"` // no DL PDU session container, or another QFI
	BadInner         int64 `json:"badInner"`     // not IPv4, or not for the session's UE
	NoRadio          int64 `json:"noRadio"`      // downlink for a UE that never sent here
}

type gnbCounters struct {
	uplink, downlink, endMarkers, echo, errInd                         atomic.Int64
	malformed, unknownUE, unknownTEID, badContainer, badInner, noRadio atomic.Int64
}

// GNB relays UE packets between its radio socket and GTP-U tunnels.
type GNB struct {
	cfg      GNBConfig
	log      *slog.Logger
	sessions *sessionTable
	radio    *net.UDPConn
	n3       *net.UDPConn
	upf      netip.AddrPort
	n        gnbCounters
	mu       sync.Mutex
	ueRadio  map[netip.Addr]netip.AddrPort // where each UE was last heard
	close    sync.Once
}

// NewGNB checks the configuration and opens the radio and N3 sockets.
func NewGNB(cfg GNBConfig, log *slog.Logger) (*GNB, error) {
	if cfg.RadioAddr == "" {
		cfg.RadioAddr = ":" + strconv.Itoa(DefaultRadioPort)
	}
	if cfg.N3Addr == "" {
		cfg.N3Addr = ":" + strconv.Itoa(gtpu.Port)
	}
	if len(cfg.Cells) == 0 {
		return nil, fmt.Errorf("gnb %s: serves no cell", cfg.Name)
	}
	cells := make([]string, len(cfg.Cells))
	for i, c := range cfg.Cells {
		cgi, err := CanonicalCGI(c)
		if err != nil {
			return nil, fmt.Errorf("gnb %s: %w", cfg.Name, err)
		}
		cells[i] = cgi
	}
	cfg.Cells = cells
	table, err := newSessionTable(cfg.Sessions)
	if err != nil {
		return nil, fmt.Errorf("gnb %s: %w", cfg.Name, err)
	}
	upf, err := resolveUDP(cfg.UPFAddr, gtpu.Port)
	if err != nil {
		return nil, fmt.Errorf("gnb %s: UPF address: %w", cfg.Name, err)
	}
	g := &GNB{cfg: cfg, log: log.With("gnb", cfg.Name), sessions: table, upf: upf, ueRadio: map[netip.Addr]netip.AddrPort{}}
	if g.radio, err = listenUDP(cfg.RadioAddr); err != nil {
		return nil, fmt.Errorf("gnb %s: radio: %w", cfg.Name, err)
	}
	if g.n3, err = listenUDP(cfg.N3Addr); err != nil {
		g.radio.Close()
		return nil, fmt.Errorf("gnb %s: N3: %w", cfg.Name, err)
	}
	return g, nil
}

// resolveUDP resolves host[:port], with a default port.
func resolveUDP(addr string, port int) (netip.AddrPort, error) {
	if addr == "" {
		return netip.AddrPort{}, fmt.Errorf("no address")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, strconv.Itoa(port))
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func listenUDP(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", addr, err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return c, nil
}

// RadioAddr is where UEs send.
func (g *GNB) RadioAddr() netip.AddrPort { return g.radio.LocalAddr().(*net.UDPAddr).AddrPort() }

// N3Addr is the local GTP-U address.
func (g *GNB) N3Addr() netip.AddrPort { return g.n3.LocalAddr().(*net.UDPAddr).AddrPort() }

// Cells are the cells served, canonical.
func (g *GNB) Cells() []string { return append([]string(nil), g.cfg.Cells...) }

// Stats returns the counters.
func (g *GNB) Stats() GNBStats {
	return GNBStats{
		Uplink: g.n.uplink.Load(), Downlink: g.n.downlink.Load(), EndMarkers: g.n.endMarkers.Load(),
		EchoRequests: g.n.echo.Load(), ErrorIndications: g.n.errInd.Load(), Malformed: g.n.malformed.Load(),
		UnknownUE: g.n.unknownUE.Load(), UnknownTEID: g.n.unknownTEID.Load(), BadContainer: g.n.badContainer.Load(),
		BadInner: g.n.badInner.Load(), NoRadio: g.n.noRadio.Load(),
	}
}

// Close closes the sockets; Run returns.
func (g *GNB) Close() error {
	g.close.Do(func() {
		g.radio.Close()
		g.n3.Close()
	})
	return nil
}

// Run relays until ctx ends.
func (g *GNB) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { g.Close() })
	defer stop()
	g.log.Info("gnb: serving", "cells", g.cfg.Cells, "radio", g.RadioAddr(), "n3", g.N3Addr(), "upf", g.upf)
	errc := make(chan error, 2)
	go func() { errc <- g.serveRadio() }()
	go func() { errc <- g.serveN3() }()
	err := <-errc
	g.Close()
	err = errors.Join(err, <-errc)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// serveRadio carries UE packets uplink.
func (g *GNB) serveRadio() error {
	buf := make([]byte, 64<<10)
	var out []byte
	for {
		n, from, err := g.radio.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("gnb %s: read radio: %w", g.cfg.Name, err)
		}
		pkt := buf[:n]
		h, err := ipv4udp.ParseHeader(pkt)
		if err != nil {
			g.n.malformed.Add(1)
			g.log.Debug("gnb: radio packet refused", "from", from, "err", err)
			continue
		}
		s := g.sessions.byUE[h.Src]
		if s == nil {
			g.n.unknownUE.Add(1)
			g.log.Debug("gnb: no session for UE", "ue", h.Src, "from", from)
			continue
		}
		g.mu.Lock()
		prev := g.ueRadio[s.UE]
		g.ueRadio[s.UE] = from
		g.mu.Unlock()
		if prev != from {
			g.log.Info("gnb: UE attached", "ue", s.UE, "radio", from, "ulteid", fmt.Sprintf("%#x", s.ULTEID))
		}
		ul := gtpu.PDUSessionContainer{Type: gtpu.PDUTypeUL, QFI: s.QFI}
		m, err := gtpu.NewGPDU(s.ULTEID, &ul, pkt)
		if err == nil {
			out, err = m.Append(out[:0])
		}
		if err == nil {
			_, err = g.n3.WriteToUDPAddrPort(out, g.upf)
		}
		if err != nil {
			g.log.Debug("gnb: uplink", "ue", s.UE, "err", err)
			continue
		}
		g.n.uplink.Add(1)
	}
}

// serveN3 carries downlink G-PDUs to the UEs and answers path management.
func (g *GNB) serveN3() error {
	return g.n3End().serve(func(m *gtpu.Message, from netip.AddrPort) bool {
		switch m.Type {
		case gtpu.GPDU:
			g.downlink(m, from)
		case gtpu.EndMarker:
			g.n.endMarkers.Add(1)
			g.log.Info("gnb: end marker: the UE's downlink left this gNB", "dlteid", fmt.Sprintf("%#x", m.TEID), "from", from)
		default:
			return false
		}
		return true
	})
}

func (g *GNB) n3End() n3End {
	return n3End{conn: g.n3, who: "gnb " + g.cfg.Name, log: g.log, echo: &g.n.echo, errInd: &g.n.errInd, malformed: &g.n.malformed}
}

func (g *GNB) sendN3(m *gtpu.Message, to netip.AddrPort) { g.n3End().send(m, to) }

func (g *GNB) downlink(m *gtpu.Message, from netip.AddrPort) {
	s := g.sessions.byDL[m.TEID]
	if s == nil {
		g.n.unknownTEID.Add(1)
		self := g.N3Addr().Addr().Unmap()
		if ei, err := gtpu.NewErrorIndication(m.TEID, self); err == nil {
			g.sendN3(ei, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
		}
		return
	}
	psc, ok, err := m.PDUSession()
	if !ok || err != nil || psc.Type != gtpu.PDUTypeDL || psc.QFI != s.QFI {
		g.n.badContainer.Add(1)
		g.log.Debug("gnb: downlink without the session's DL PDU session container", "teid", m.TEID, "container", psc, "present", ok, "err", err)
		return
	}
	h, err := ipv4udp.ParseHeader(m.Payload)
	if err != nil || h.Dst != s.UE {
		g.n.badInner.Add(1)
		g.log.Debug("gnb: inner packet refused", "teid", m.TEID, "dst", h.Dst, "err", err)
		return
	}
	g.mu.Lock()
	to, ok := g.ueRadio[s.UE]
	g.mu.Unlock()
	if !ok {
		g.n.noRadio.Add(1)
		return
	}
	if _, err := g.radio.WriteToUDPAddrPort(m.Payload, to); err != nil {
		g.log.Debug("gnb: radio send", "ue", s.UE, "err", err)
		return
	}
	g.n.downlink.Add(1)
}
