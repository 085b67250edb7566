package ransim

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mecorch/mecorch/lab/ransim/ipv4udp"
)

// A UE request's payload: this magic, the sequence number (8 octets, big
// endian), zero padding to the configured size. The answer is the same
// payload, perhaps after a "name|" prefix.
const (
	payloadMagic   = "RSIM"
	minPayloadSize = len(payloadMagic) + 8
)

// Handover moves the UE to another gNB's radio address and cell.
type Handover struct {
	After time.Duration // after the UE starts
	GNB   string        // the target gNB's radio address, host:port
	Cell  string        // the target cell's NR CGI
}

// UEConfig configures a UE simulator.
type UEConfig struct {
	// ID identifies the UE to mecorch; default: its address.
	ID string
	// Addr is the UE's IPv4 address, which exists only inside the
	// packets it sends over the radio.
	Addr netip.Addr
	// Port is the inner UDP source port; default 40000.
	Port uint16
	// GNB is the serving gNB's radio address, host:port (port 9000 if
	// none); Cell its serving cell's NR CGI (optional).
	GNB  string
	Cell string
	// Target is the DN server the requests go to.
	Target netip.AddrPort
	// Rate is requests per second; default 10.
	Rate float64
	// Size is the request payload in octets; default 64, at least 12.
	Size int
	// Timeout is how long an answer may take before its request counts
	// as lost; default one second.
	Timeout time.Duration
	// ReportEvery is the interval of the "stats" lines; default 1s.
	ReportEvery time.Duration
	// Count stops the UE after that many requests (once they are
	// answered or timed out); 0 runs until the context ends.
	Count    int
	Handover *Handover
	// Reporter is told of the handover's cell change; nil for none.
	Reporter CellChangeReporter
	// Out receives the JSON lines; nil discards them.
	Out io.Writer
	// LocalAddr is the radio socket's local address; default ":0".
	LocalAddr string
	// Now is the clock of timestamps and latencies; default time.Now.
	Now func() time.Time
}

// UE sends request/response UDP traffic through a gNB and measures it.
type UE struct {
	cfg   UEConfig
	log   *slog.Logger
	conn  *net.UDPConn
	self  netip.AddrPort // inner source
	hoGNB netip.AddrPort

	mu          sync.Mutex
	gnb         netip.AddrPort
	cell        string
	pending     map[uint64]time.Time
	win, total  *tally
	sendingDone bool
	drained     chan struct{} // closed once sending is done and nothing is pending
	drainOnce   sync.Once

	outMu sync.Mutex
	wg    sync.WaitGroup
	close sync.Once
}

// NewUE checks the configuration and opens the radio socket.
func NewUE(cfg UEConfig, log *slog.Logger) (*UE, error) {
	if !cfg.Addr.Is4() || !cfg.Target.IsValid() {
		return nil, fmt.Errorf("ue: needs an IPv4 address and a target, have %v and %v", cfg.Addr, cfg.Target)
	}
	if cfg.ID == "" {
		cfg.ID = cfg.Addr.String()
	}
	if cfg.Port == 0 {
		cfg.Port = 40000
	}
	if math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) || cfg.Rate > 1e6 {
		return nil, fmt.Errorf("ue: rate %v requests/s is not in (0, 1e6]", cfg.Rate)
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 10
	}
	if cfg.Size == 0 {
		cfg.Size = 64
	}
	if cfg.Size < minPayloadSize || cfg.Size > 65000 {
		return nil, fmt.Errorf("ue %s: size %d, want %d to 65000", cfg.ID, cfg.Size, minPayloadSize)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.ReportEvery <= 0 {
		cfg.ReportEvery = time.Second
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LocalAddr == "" {
		cfg.LocalAddr = ":0"
	}
	u := &UE{cfg: cfg, log: log.With("ue", cfg.ID), self: netip.AddrPortFrom(cfg.Addr, cfg.Port),
		pending: map[uint64]time.Time{}, drained: make(chan struct{})}
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	u.win, u.total = newTally(rng), newTally(rng)
	var err error
	if cfg.Cell != "" {
		if u.cell, err = CanonicalCGI(cfg.Cell); err != nil {
			return nil, fmt.Errorf("ue %s: %w", cfg.ID, err)
		}
	}
	if u.gnb, err = resolveUDP(cfg.GNB, DefaultRadioPort); err != nil {
		return nil, fmt.Errorf("ue %s: gNB address: %w", cfg.ID, err)
	}
	if h := cfg.Handover; h != nil {
		if u.hoGNB, err = resolveUDP(h.GNB, DefaultRadioPort); err != nil {
			return nil, fmt.Errorf("ue %s: handover gNB address: %w", cfg.ID, err)
		}
		c, err := CanonicalCGI(h.Cell)
		if err != nil {
			return nil, fmt.Errorf("ue %s: handover: %w", cfg.ID, err)
		}
		u.cfg.Handover = &Handover{After: h.After, GNB: h.GNB, Cell: c}
	}
	if u.conn, err = listenUDP(cfg.LocalAddr); err != nil {
		return nil, fmt.Errorf("ue %s: radio: %w", cfg.ID, err)
	}
	return u, nil
}

// Close closes the radio socket.
func (u *UE) Close() error {
	u.close.Do(func() { u.conn.Close() })
	return nil
}

// Totals is what the UE saw since it started.
func (u *UE) Totals() UEStats {
	u.mu.Lock()
	defer u.mu.Unlock()
	return *u.total.stats()
}

// Run sends until ctx ends or Count requests are done, then writes a
// "final" line.
func (u *UE) Run(ctx context.Context) error {
	defer u.Close()
	recv := make(chan error, 1)
	go func() { recv <- u.receive() }()
	send := time.NewTicker(time.Duration(float64(time.Second) / u.cfg.Rate))
	defer send.Stop()
	report := time.NewTicker(u.cfg.ReportEvery)
	defer report.Stop()
	var handover, drainTimeout <-chan time.Time
	if u.cfg.Handover != nil {
		t := time.NewTimer(u.cfg.Handover.After)
		defer t.Stop()
		handover = t.C
	}
	var seq uint64
	var pkt []byte
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-recv:
			runErr = err
			recv = nil
			break loop
		case <-send.C:
			seq++
			pkt = u.send(seq, pkt)
			if u.cfg.Count > 0 && seq >= uint64(u.cfg.Count) {
				send.Stop()
				u.doneSending()
				drainTimeout = time.After(u.cfg.Timeout)
			}
		case <-report.C:
			u.report("stats", false)
		case <-handover:
			u.handover(ctx)
		case <-u.drained:
			break loop
		case <-drainTimeout:
			break loop
		}
	}
	u.Close()
	if recv != nil {
		runErr = <-recv
	}
	u.wg.Wait()
	u.report("final", true)
	return runErr
}

func (u *UE) send(seq uint64, buf []byte) []byte {
	payload := make([]byte, u.cfg.Size)
	copy(payload, payloadMagic)
	binary.BigEndian.PutUint64(payload[len(payloadMagic):], seq)
	d := ipv4udp.Datagram{Src: u.self, Dst: u.cfg.Target, ID: uint16(seq), Payload: payload}
	buf, err := d.Append(buf[:0])
	if err != nil {
		u.log.Warn("ue: build request", "err", err)
		return buf
	}
	u.mu.Lock()
	to := u.gnb
	u.pending[seq] = u.cfg.Now()
	u.win.sent++
	u.total.sent++
	u.mu.Unlock()
	if _, err := u.conn.WriteToUDPAddrPort(buf, to); err != nil {
		u.log.Debug("ue: send", "to", to, "err", err) // counts as lost at its timeout
	}
	return buf
}

func (u *UE) doneSending() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.sendingDone = true
	u.checkDrained()
}

// checkDrained closes drained when the run's work is done; u.mu held.
func (u *UE) checkDrained() {
	if u.sendingDone && len(u.pending) == 0 {
		u.drainOnce.Do(func() { close(u.drained) })
	}
}

// receive matches answers to requests until the socket closes.
func (u *UE) receive() error {
	buf := make([]byte, 64<<10)
	for {
		n, _, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("ue %s: read radio: %w", u.cfg.ID, err)
		}
		now := u.cfg.Now()
		d, err := ipv4udp.Parse(buf[:n])
		if err != nil || d.Dst != u.self {
			u.log.Debug("ue: packet refused", "dst", d.Dst, "err", err)
			continue
		}
		name, seq, ok := parseAnswer(d.Payload)
		if !ok {
			u.log.Debug("ue: answer not to a request of ours", "from", d.Src)
			continue
		}
		if name == "" {
			name = d.Src.String()
		}
		u.mu.Lock()
		if sent, ok := u.pending[seq]; ok {
			delete(u.pending, seq)
			rtt := now.Sub(sent)
			u.win.answer(rtt, name)
			u.total.answer(rtt, name)
			u.checkDrained()
		} else {
			u.win.late++
			u.total.late++
		}
		u.mu.Unlock()
	}
}

// parseAnswer finds the sequence number of an answer, and the name the
// server put before it.
func parseAnswer(p []byte) (name string, seq uint64, ok bool) {
	if !bytes.HasPrefix(p, []byte(payloadMagic)) {
		i := bytes.IndexByte(p, NameSeparator)
		if i < 0 {
			return "", 0, false
		}
		name, p = string(p[:i]), p[i+1:]
		if !bytes.HasPrefix(p, []byte(payloadMagic)) {
			return "", 0, false
		}
	}
	if len(p) < minPayloadSize {
		return "", 0, false
	}
	return name, binary.BigEndian.Uint64(p[len(payloadMagic):]), true
}

// report writes a stats line over the interval, or with final over the
// run. Requests older than the timeout count as lost first.
func (u *UE) report(kind string, final bool) {
	now := u.cfg.Now()
	u.mu.Lock()
	for seq, sent := range u.pending {
		if now.Sub(sent) > u.cfg.Timeout {
			delete(u.pending, seq)
			u.win.lost++
			u.total.lost++
		}
	}
	var s *UEStats
	if final {
		s = u.total.stats()
		s.InFlight = int64(len(u.pending))
	} else {
		s = u.win.stats()
		u.win = newTally(u.win.rng)
	}
	r := UEReport{Type: kind, Time: now.UTC(), UE: u.cfg.ID, Cell: u.cell, GNB: u.gnb.String(), UEStats: s}
	u.checkDrained()
	u.mu.Unlock()
	u.emit(r)
}

func (u *UE) emit(r UEReport) {
	b, err := json.Marshal(r)
	if err != nil {
		u.log.Error("ue: report", "err", err)
		return
	}
	u.outMu.Lock()
	defer u.outMu.Unlock()
	if _, err := u.cfg.Out.Write(append(b, '\n')); err != nil {
		u.log.Warn("ue: write report", "err", err)
	}
}

// handover moves the UE to the target gNB at once, and reports the cell
// change in the background so that traffic does not wait for mecorch.
func (u *UE) handover(ctx context.Context) {
	h := u.cfg.Handover
	now := u.cfg.Now().UTC()
	u.mu.Lock()
	from, fromGNB := u.cell, u.gnb
	u.gnb, u.cell = u.hoGNB, h.Cell
	u.mu.Unlock()
	base := UEReport{Time: now, UE: u.cfg.ID, Cell: h.Cell, GNB: u.hoGNB.String()}
	ho := UEHandover{FromCell: from, ToCell: h.Cell, FromGNB: fromGNB.String()}
	r := base
	r.Type, r.UEHandover = "handover", &ho
	u.emit(r)
	u.log.Info("ue: handover", "fromCell", from, "toCell", h.Cell, "fromGnb", fromGNB, "toGnb", u.hoGNB)
	if u.cfg.Reporter == nil {
		return
	}
	c := CellChange{UEID: u.cfg.ID, FromCell: from, ToCell: h.Cell, Time: now}
	u.wg.Go(func() {
		r, ho := base, ho
		r.Type, r.UEHandover = "cell_change_reported", &ho
		if err := u.cfg.Reporter.ReportCellChange(ctx, c); err != nil {
			u.log.Warn("ue: cell change not reported", "err", err)
			r.Type, ho.Error = "cell_change_report_failed", err.Error()
		}
		u.emit(r)
	})
}
