package ransim

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecorch/mecorch/lab/ransim/gtpu"
	"github.com/mecorch/mecorch/lab/ransim/ipv4udp"
)

// UPFConfig configures the UPF simulator.
type UPFConfig struct {
	// N3Addr is where GTP-U is received; default ":2152".
	N3Addr string
	// N6Addr is the local IP the sockets towards the DN bind; empty for
	// any.
	N6Addr   string
	Sessions []Session
	// FlowIdle closes a UE flow's DN socket after this long without
	// traffic; default one minute.
	FlowIdle time.Duration
	// ListenPacket opens the per-flow DN sockets; default
	// net.ListenPacket. A test whose UPF lives in a network namespace
	// opens them there through it.
	ListenPacket func(network, address string) (net.PacketConn, error)
}

// UPFStats counts what a UPF did. Drops are counted by reason.
type UPFStats struct {
	Uplink           int64 `json:"uplink"`
	Downlink         int64 `json:"downlink"`
	Flows            int64 `json:"flows"`
	PathSwitches     int64 `json:"pathSwitches"`
	EchoRequests     int64 `json:"echoRequests"`
	ErrorIndications int64 `json:"errorIndications"` // received
	Malformed        int64 `json:"malformed"`
	UnknownTEID      int64 `json:"unknownTeid"`
	BadContainer     int64 `json:"badContainer"` // no UL PDU session container, or another QFI
	BadInner         int64 `json:"badInner"`     // not a valid IPv4/UDP packet from the session's UE
	NoPath           int64 `json:"noPath"`       // a DN answer for a session whose gNB is unknown
}

type upfCounters struct {
	uplink, downlink, flows, pathSwitches, echo, errInd    atomic.Int64
	malformed, unknownTEID, badContainer, badInner, noPath atomic.Int64
}

// upfSession is a session and where its downlink goes. mu is held while
// a downlink G-PDU is sent and while the path switches, so that nothing
// reaches the old gNB after its End Marker.
type upfSession struct {
	Session
	mu   sync.Mutex
	peer netip.AddrPort
}

type flowKey struct {
	ulTEID  uint32
	srcPort uint16
	dst     netip.AddrPort
}

// flow is one UE socket's traffic to one DN address: the UPF's socket
// for it stands in for the UE on N6, as a NAT would.
type flow struct {
	key  flowKey
	sess *upfSession
	conn net.PacketConn
	last atomic.Int64 // unix nanoseconds of the last packet either way
}

// UPF decapsulates uplink G-PDUs towards the DN and encapsulates the
// answers back to the gNB.
type UPF struct {
	cfg      UPFConfig
	log      *slog.Logger
	n3       *net.UDPConn
	self     netip.Addr
	sessions map[uint32]*upfSession // by uplink TEID; the map is never written after New
	n        upfCounters
	ipID     atomic.Uint32
	mu       sync.Mutex
	flows    map[flowKey]*flow
	closed   bool
	done     chan struct{} // closed by Close
	wg       sync.WaitGroup
	close    sync.Once
}

// NewUPF opens the N3 socket.
func NewUPF(cfg UPFConfig, log *slog.Logger) (*UPF, error) {
	if cfg.N3Addr == "" {
		cfg.N3Addr = ":" + strconv.Itoa(gtpu.Port)
	}
	if cfg.FlowIdle <= 0 {
		cfg.FlowIdle = time.Minute
	}
	if cfg.ListenPacket == nil {
		cfg.ListenPacket = net.ListenPacket
	}
	if cfg.N6Addr != "" {
		if _, err := netip.ParseAddr(cfg.N6Addr); err != nil {
			return nil, fmt.Errorf("upf: N6 address: %w", err)
		}
	}
	table, err := newSessionTable(cfg.Sessions)
	if err != nil {
		return nil, fmt.Errorf("upf: %w", err)
	}
	u := &UPF{cfg: cfg, log: log, sessions: map[uint32]*upfSession{}, flows: map[flowKey]*flow{}, done: make(chan struct{})}
	for teid, s := range table.byUL {
		u.sessions[teid] = &upfSession{Session: *s, peer: s.GNB}
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.N3Addr)
	if err != nil {
		return nil, fmt.Errorf("upf: N3 address %q: %w", cfg.N3Addr, err)
	}
	if u.n3, err = net.ListenUDP("udp", ua); err != nil {
		return nil, fmt.Errorf("upf: listen on N3 %s: %w", cfg.N3Addr, err)
	}
	u.self = u.N3Addr().Addr().Unmap()
	return u, nil
}

// N3Addr is the address GTP-U is received on.
func (u *UPF) N3Addr() netip.AddrPort { return u.n3.LocalAddr().(*net.UDPAddr).AddrPort() }

// Stats returns the counters.
func (u *UPF) Stats() UPFStats {
	u.mu.Lock()
	flows := int64(len(u.flows))
	u.mu.Unlock()
	return UPFStats{
		Uplink: u.n.uplink.Load(), Downlink: u.n.downlink.Load(), Flows: flows,
		PathSwitches: u.n.pathSwitches.Load(), EchoRequests: u.n.echo.Load(), ErrorIndications: u.n.errInd.Load(),
		Malformed: u.n.malformed.Load(), UnknownTEID: u.n.unknownTEID.Load(), BadContainer: u.n.badContainer.Load(),
		BadInner: u.n.badInner.Load(), NoPath: u.n.noPath.Load(),
	}
}

// Close closes every socket; Run returns.
func (u *UPF) Close() error {
	u.close.Do(func() {
		close(u.done)
		u.n3.Close()
		u.mu.Lock()
		u.closed = true
		for k, f := range u.flows {
			f.conn.Close()
			delete(u.flows, k)
		}
		u.mu.Unlock()
	})
	return nil
}

// Run serves N3 until ctx ends.
func (u *UPF) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { u.Close() })
	defer stop()
	u.wg.Go(u.expireFlows)
	err := u.serveN3()
	u.Close()
	u.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (u *UPF) serveN3() error {
	return u.n3End().serve(func(m *gtpu.Message, from netip.AddrPort) bool {
		if m.Type != gtpu.GPDU {
			return false
		}
		u.uplink(m, from)
		return true
	})
}

func (u *UPF) n3End() n3End {
	return n3End{conn: u.n3, who: "upf", log: u.log, echo: &u.n.echo, errInd: &u.n.errInd, malformed: &u.n.malformed}
}

func (u *UPF) send(m *gtpu.Message, to netip.AddrPort) { u.n3End().send(m, to) }

func (u *UPF) uplink(m *gtpu.Message, from netip.AddrPort) {
	s := u.sessions[m.TEID]
	if s == nil {
		u.n.unknownTEID.Add(1)
		if ei, err := gtpu.NewErrorIndication(m.TEID, u.self); err == nil {
			u.send(ei, from)
		}
		return
	}
	psc, ok, err := m.PDUSession()
	if !ok || err != nil || psc.Type != gtpu.PDUTypeUL || psc.QFI != s.QFI {
		u.n.badContainer.Add(1)
		u.log.Debug("upf: uplink without the session's UL PDU session container", "teid", m.TEID, "container", psc, "present", ok, "err", err)
		return
	}
	d, err := ipv4udp.Parse(m.Payload)
	if err != nil || d.Src.Addr() != s.UE {
		u.n.badInner.Add(1)
		u.log.Debug("upf: inner packet refused", "teid", m.TEID, "src", d.Src, "err", err)
		return
	}
	u.learnPath(s, from)
	f, err := u.flow(s, d)
	if err != nil {
		u.log.Warn("upf: open flow towards the DN", "ue", s.UE, "dst", d.Dst, "err", err)
		return
	}
	f.last.Store(time.Now().UnixNano())
	if _, err := f.conn.WriteTo(d.Payload, net.UDPAddrFromAddrPort(d.Dst)); err != nil {
		u.log.Debug("upf: send to DN", "dst", d.Dst, "err", err)
		return
	}
	u.n.uplink.Add(1)
}

// learnPath points the session's downlink at the gNB an uplink G-PDU came
// from; if it pointed elsewhere, the old gNB gets an End Marker.
func (u *UPF) learnPath(s *upfSession, from netip.AddrPort) {
	s.mu.Lock()
	old := s.peer
	if old == from {
		s.mu.Unlock()
		return
	}
	s.peer = from
	if old.IsValid() {
		u.n.pathSwitches.Add(1)
		u.send(gtpu.NewEndMarker(s.DLTEID), old)
	}
	s.mu.Unlock()
	u.log.Info("upf: downlink path", "ue", s.UE, "gnb", from, "was", old, "dlteid", fmt.Sprintf("%#x", s.DLTEID))
}

func (u *UPF) flow(s *upfSession, d ipv4udp.Datagram) (*flow, error) {
	k := flowKey{ulTEID: s.ULTEID, srcPort: d.Src.Port(), dst: d.Dst}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, net.ErrClosed
	}
	if f := u.flows[k]; f != nil {
		return f, nil
	}
	conn, err := u.cfg.ListenPacket("udp4", net.JoinHostPort(u.cfg.N6Addr, "0"))
	if err != nil {
		return nil, fmt.Errorf("listen on N6: %w", err)
	}
	f := &flow{key: k, sess: s, conn: conn}
	// Fresh, not idle since 1970: the expiry must not take it before its
	// first packet.
	f.last.Store(time.Now().UnixNano())
	u.flows[k] = f
	u.wg.Go(func() { u.downlink(f) })
	return f, nil
}

// downlink carries one flow's DN answers back to the UE.
func (u *UPF) downlink(f *flow) {
	buf := make([]byte, 64<<10)
	var pkt, out []byte
	dl := gtpu.PDUSessionContainer{Type: gtpu.PDUTypeDL, QFI: f.sess.QFI}
	for {
		n, from, err := f.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		src, ok := from.(*net.UDPAddr)
		if !ok || netip.AddrPortFrom(src.AddrPort().Addr().Unmap(), src.AddrPort().Port()) != f.key.dst {
			continue // only the DN address this flow talks to answers
		}
		f.last.Store(time.Now().UnixNano())
		d := ipv4udp.Datagram{
			Src: f.key.dst, Dst: netip.AddrPortFrom(f.sess.UE, f.key.srcPort),
			ID: uint16(u.ipID.Add(1)), Payload: buf[:n],
		}
		if pkt, err = d.Append(pkt[:0]); err != nil {
			u.log.Debug("upf: build downlink packet", "err", err)
			continue
		}
		m, err := gtpu.NewGPDU(f.sess.DLTEID, &dl, pkt)
		if err == nil {
			out, err = m.Append(out[:0])
		}
		if err != nil {
			u.log.Debug("upf: build downlink G-PDU", "err", err)
			continue
		}
		u.sendDownlink(f.sess, out)
	}
}

func (u *UPF) sendDownlink(s *upfSession, g []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.peer.IsValid() {
		u.n.noPath.Add(1)
		return
	}
	if _, err := u.n3.WriteToUDPAddrPort(g, s.peer); err != nil {
		u.log.Debug("upf: send downlink", "to", s.peer, "err", err)
		return
	}
	u.n.downlink.Add(1)
}

// expireFlows closes the DN sockets of flows idle for FlowIdle.
func (u *UPF) expireFlows() {
	t := time.NewTicker(u.cfg.FlowIdle / 2)
	defer t.Stop()
	for {
		select {
		case <-u.done:
			return
		case now := <-t.C:
			u.mu.Lock()
			for k, f := range u.flows {
				if now.Sub(time.Unix(0, f.last.Load())) > u.cfg.FlowIdle {
					f.conn.Close()
					delete(u.flows, k)
				}
			}
			u.mu.Unlock()
		}
	}
}
