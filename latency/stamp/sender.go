package stamp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecorch/mecorch/latency"
)

// Sender modes.
const (
	ModeAuto = "auto" // kernel stamps where the kernel gives them
	ModeUser = "user" // user-space clock reads only (to compare)
)

// Target is one reflector to probe.
type Target struct {
	ID   string
	Addr string // host:port
}

// SenderConfig configures a Sender.
type SenderConfig struct {
	// Local is the address to bind; default ":0" (dual-stack).
	Local string
	// Interval between two probes to one target; default 100ms. The
	// targets' probes are spread across it.
	Interval time.Duration
	// Timeout after which an unanswered probe is lost; default 1s.
	Timeout time.Duration
	// Mode is ModeAuto (default) or ModeUser.
	Mode   string
	Logger *slog.Logger
}

// SenderCounters count what the sender saw.
type SenderCounters struct {
	Sent       uint64 `json:"sent"`
	Received   uint64 `json:"received"`
	Lost       uint64 `json:"lost"`
	Late       uint64 `json:"late"`      // answers after their probe was declared lost
	Duplicate  uint64 `json:"duplicate"` // second answers to one probe
	Unmatched  uint64 `json:"unmatched"` // answers to no probe of ours
	Malformed  uint64 `json:"malformed"`
	SendErrors uint64 `json:"sendErrors"`
	// KernelTX counts probes whose send stamp came from the kernel;
	// TXMismatch those whose error-queue stamp did not fit the send.
	KernelTX   uint64 `json:"kernelTx"`
	TXMismatch uint64 `json:"txMismatch"`
	// TXResync counts the times the count of the kernel's send IDs was
	// found off and set right again.
	TXResync uint64 `json:"txResync"`
	// BadStamps counts answers dropped because their timestamps cannot
	// be right: the reflector answered before it received, or the RTT
	// comes out negative or longer than the wait itself (a clock stepped
	// on either side, an odd reflector).
	BadStamps uint64 `json:"badStamps"`
}

type probeKey struct {
	addr netip.AddrPort
	ssid uint16
	seq  uint32
}

type session struct {
	target Target
	addr   netip.AddrPort
	ssid   uint16
	seq    uint32
	next   time.Time
}

type probe struct {
	key      probeKey
	target   string
	before   time.Time // user clock before sendmsg
	after    time.Time // and after
	kernelT1 time.Time
	txID     uint32
	deadline time.Time
	// An answer that came before the kernel's send stamp waits here.
	answered bool
	t2, t3   time.Time
	t4       stamp
}

// Sender probes targets from one UDP socket and reports a latency.Sample
// per probe.
type Sender struct {
	cfg      SenderConfig
	log      *slog.Logger
	sock     *udpSock
	onSample func(latency.Sample)

	changed chan struct{}
	sendMu  sync.Mutex // orders sends with the kernel's OPT_ID counter

	mu       sync.Mutex
	txNext   uint32 // the kernel's OPT_ID of the next send, as we count
	sessions map[string]*session
	nextSSID uint16
	pending  map[probeKey]*probe
	byTxID   map[uint32]*probe
	done     map[probeKey]doneEntry

	deliverMu sync.Mutex // onSample is called by one goroutine at a time
	last      atomic.Value
	c         struct {
		sent, received, lost, late, duplicate, unmatched, malformed, sendErrors, kernelTX, txMismatch, txResync, badStamps atomic.Uint64
	}
}

type doneEntry struct {
	answered bool
	until    time.Time
}

// txWait is how long an answered probe waits for its kernel send stamp
// before it is reported with the user-space one.
const txWait = 50 * time.Millisecond

// NewSender opens the sender's socket. onSample gets every probe's
// outcome, from one goroutine at a time.
func NewSender(cfg SenderConfig, onSample func(latency.Sample)) (*Sender, error) {
	if cfg.Local == "" {
		cfg.Local = ":0"
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeAuto
	case ModeAuto, ModeUser:
	default:
		return nil, fmt.Errorf("stamp sender: mode %q, want %q or %q", cfg.Mode, ModeAuto, ModeUser)
	}
	if onSample == nil {
		onSample = func(latency.Sample) {}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sock, err := listenUDP(cfg.Local, cfg.Mode == ModeAuto, true)
	if err != nil {
		return nil, fmt.Errorf("stamp sender: %w", err)
	}
	s := &Sender{
		cfg: cfg, log: log.With("component", "stamp-sender"), sock: sock, onSample: onSample,
		changed: make(chan struct{}, 1), sessions: map[string]*session{},
		pending: map[probeKey]*probe{}, byTxID: map[uint32]*probe{}, done: map[probeKey]doneEntry{},
	}
	return s, nil
}

// Addr is the sender's local address.
func (s *Sender) Addr() net.Addr { return s.sock.conn.LocalAddr() }

// Source is the stamp source the sender achieves: that of its latest
// answered probe, or before any, the best its socket was set up for.
func (s *Sender) Source() latency.Source {
	if v, ok := s.last.Load().(latency.Source); ok {
		return v
	}
	if s.sock.tx {
		return s.sock.rx
	}
	return latency.SourceUser
}

// Counters returns a snapshot of the counters.
func (s *Sender) Counters() SenderCounters {
	return SenderCounters{
		Sent: s.c.sent.Load(), Received: s.c.received.Load(), Lost: s.c.lost.Load(), Late: s.c.late.Load(),
		Duplicate: s.c.duplicate.Load(), Unmatched: s.c.unmatched.Load(), Malformed: s.c.malformed.Load(),
		SendErrors: s.c.sendErrors.Load(), KernelTX: s.c.kernelTX.Load(), TXMismatch: s.c.txMismatch.Load(), TXResync: s.c.txResync.Load(), BadStamps: s.c.badStamps.Load(),
	}
}

// SetTargets replaces the probe set. A target whose ID and address are
// unchanged keeps its session (SSID and sequence numbers); new ones are
// spread across the interval. Addresses are resolved here; a target that
// does not resolve is logged and left out.
func (s *Sender) SetTargets(targets []Target) {
	now := time.Now()
	s.mu.Lock()
	keep := map[string]*session{}
	ids := make([]string, 0, len(targets))
	for _, t := range targets {
		ids = append(ids, t.ID)
	}
	slices.Sort(ids)
	for _, t := range targets {
		if old, ok := s.sessions[t.ID]; ok && old.target == t {
			keep[t.ID] = old
			continue
		}
		ap, err := resolve(t.Addr)
		if err != nil {
			s.log.Warn("target left out", "target", t.ID, "addr", t.Addr, "err", err)
			continue
		}
		s.nextSSID++
		if s.nextSSID == 0 {
			s.nextSSID = 1
		}
		i, _ := slices.BinarySearch(ids, t.ID)
		offset := s.cfg.Interval * time.Duration(i) / time.Duration(len(ids))
		keep[t.ID] = &session{target: t, addr: ap, ssid: s.nextSSID, next: now.Add(offset)}
	}
	s.sessions = keep
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func resolve(hostport string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	ua, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve %q: %w", hostport, err)
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// Run probes until ctx ends, then closes the socket. Probes still out
// when it ends are not reported.
func (s *Sender) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.sock.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.sendLoop(ctx) }()
	go func() { defer wg.Done(); s.expireLoop(ctx) }()
	err := s.readLoop(ctx)
	cancel()
	wg.Wait()
	return err
}

func (s *Sender) sendLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		var due *session
		for _, x := range s.sessions {
			if due == nil || x.next.Before(due.next) {
				due = x
			}
		}
		var wait time.Duration = time.Hour
		if due != nil {
			wait = time.Until(due.next)
		}
		s.mu.Unlock()
		if wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-s.changed:
				continue
			case <-timer.C:
				continue // re-pick: the set may have changed meanwhile
			}
		}
		s.probe(due)
	}
}

// probe sends the session's next probe and schedules the one after.
func (s *Sender) probe(x *session) {
	s.mu.Lock()
	if s.sessions[x.target.ID] != x { // replaced meanwhile
		s.mu.Unlock()
		return
	}
	seq := x.seq
	x.seq++
	now := time.Now()
	x.next = x.next.Add(s.cfg.Interval)
	if x.next.Before(now) { // fell behind (a stall): don't burst to catch up
		x.next = now.Add(s.cfg.Interval)
	}
	key := probeKey{addr: x.addr, ssid: x.ssid, seq: seq}
	target := x.target.ID
	s.mu.Unlock()

	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	p := &probe{key: key, target: target}
	pkt := SenderPacket{Seq: seq, SSID: key.ssid, ErrorEstimate: reflectorErrEst()}
	p.before = time.Now()
	pkt.Timestamp = NTPTimestamp(p.before)
	b, err := pkt.MarshalBinary()
	if err != nil {
		s.log.Error("encode probe", "err", err) // cannot happen: a base packet
		return
	}
	p.deadline = p.before.Add(s.cfg.Timeout)
	s.mu.Lock()
	// Numbered under mu: a resync (txStamp) renumbers under it too.
	p.txID = s.txNext
	s.pending[key] = p
	if s.sock.tx {
		s.byTxID[p.txID] = p
	}
	s.mu.Unlock()
	err = s.sock.send(b, key.addr, netip.Addr{})
	after := time.Now()
	s.mu.Lock()
	p.after = after
	s.mu.Unlock()
	if err != nil {
		s.c.sendErrors.Add(1)
		s.log.Debug("send", "target", target, "err", err)
		// A failed send may or may not have used an OPT_ID (the kernel
		// numbers a datagram once it starts building it); assume it did
		// not. A wrong guess is caught by the stamp's sanity window and
		// set right by resync.
		s.mu.Lock()
		delete(s.pending, key)
		delete(s.byTxID, p.txID)
		s.done[key] = doneEntry{until: p.before.Add(10 * s.cfg.Timeout)}
		s.mu.Unlock()
		return
	}
	s.c.sent.Add(1)
	if s.sock.tx {
		s.mu.Lock()
		s.txNext++
		s.mu.Unlock()
	}
}

func (s *Sender) readLoop(ctx context.Context) error {
	buf := make([]byte, 65536)
	oob := make([]byte, 1024)
	for {
		info, err := s.sock.recvAny(buf, oob)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("stamp sender: socket closed: %w", err)
			}
			s.log.Debug("receive", "err", err)
			continue
		}
		now := time.Now()
		if info.isTX {
			s.txStamp(info)
			continue
		}
		rep, err := DecodeReflector(buf[:info.n])
		if err != nil {
			s.c.malformed.Add(1)
			s.log.Debug("malformed answer", "from", info.from, "err", err)
			continue
		}
		t4 := stamp{now, latency.SourceUser}
		if s.cfg.Mode == ModeAuto {
			t4 = info.best(false, now)
		}
		s.answer(info.from, rep, t4)
	}
}

// fits tells whether a kernel send stamp can be p's: taken inside sendmsg,
// or later when a queue or an ARP resolution holds the packet, but never
// before the send, after the timeout, nor after the answer came.
func fits(p *probe, sw time.Time, timeout time.Duration) bool {
	return !sw.Before(p.before) && !sw.After(p.before.Add(timeout)) && !(p.answered && sw.After(p.t4.t))
}

// resync finds the probe a send stamp numbered info.txID belongs to when
// our count of the kernel's IDs slipped: among the probes still without a
// kernel stamp, the one whose sendmsg call the stamp falls inside, else the
// one sent last before it. It renumbers every waiting probe and the next
// send by the slip, and returns the probe (removed from byTxID), or nil
// when none fits. s.mu is held.
func (s *Sender) resync(info rxInfo) *probe {
	var q *probe
	inside := func(p *probe) bool { return !p.after.IsZero() && !info.sw.After(p.after) }
	for _, p := range s.byTxID {
		if !p.kernelT1.IsZero() || !fits(p, info.sw, s.cfg.Timeout) {
			continue
		}
		switch {
		case q == nil,
			inside(p) && !inside(q),
			inside(p) == inside(q) && p.before.After(q.before):
			q = p
		}
	}
	if q == nil {
		return nil
	}
	slip := info.txID - q.txID
	if slip == 0 {
		return nil
	}
	moved := make(map[uint32]*probe, len(s.byTxID))
	for _, p := range s.byTxID {
		p.txID += slip
		moved[p.txID] = p
	}
	s.byTxID = moved
	s.txNext += slip
	delete(s.byTxID, q.txID)
	s.c.txResync.Add(1)
	return q
}

// txStamp takes a kernel send stamp off the error queue.
func (s *Sender) txStamp(info rxInfo) {
	if info.sw.IsZero() {
		return
	}
	s.mu.Lock()
	p := s.byTxID[info.txID]
	delete(s.byTxID, info.txID)
	if p == nil {
		p = s.resync(info)
	}
	var out []latency.Sample
	if p != nil {
		// The stamp is taken inside sendmsg, or later when a queue or an
		// ARP resolution holds the packet, but never before the send nor
		// after the answer came: anything else means the OPT_ID count
		// slipped.
		if !fits(p, info.sw, s.cfg.Timeout) {
			s.c.txMismatch.Add(1)
			s.byTxID[p.txID] = p // its own stamp is still to come
			// Our count slipped (a failed send did use an ID, say): find
			// the probe this stamp belongs to and number the others
			// from it, so that one slip does not cost every later probe
			// its kernel stamp.
			if q := s.resync(info); q != nil {
				p = q
			}
		}
		if fits(p, info.sw, s.cfg.Timeout) {
			p.kernelT1 = info.sw
			s.c.kernelTX.Add(1)
		}
		if p.answered {
			if smp, ok := s.finish(p); ok {
				out = append(out, smp)
			}
		}
	}
	s.mu.Unlock()
	s.deliver(out)
}

func (s *Sender) answer(from netip.AddrPort, rep ReflectorPacket, t4 stamp) {
	key := probeKey{addr: from, ssid: rep.SSID, seq: rep.SenderSeq}
	s.mu.Lock()
	p := s.pending[key]
	var out []latency.Sample
	switch {
	case p != nil && !p.answered:
		s.c.received.Add(1)
		p.answered = true
		p.t2 = rep.ReceiveTimestamp.Time(rep.ErrorEstimate.PTP)
		p.t3 = rep.Timestamp.Time(rep.ErrorEstimate.PTP)
		p.t4 = t4
		if !p.kernelT1.IsZero() || !s.sock.tx {
			if smp, ok := s.finish(p); ok {
				out = append(out, smp)
			}
		} else {
			p.deadline = t4.t.Add(txWait) // wait a little for the send stamp
		}
	case p != nil:
		s.c.duplicate.Add(1)
	default:
		if d, ok := s.done[key]; ok && d.answered {
			s.c.duplicate.Add(1)
		} else if ok {
			s.c.late.Add(1)
		} else {
			s.c.unmatched.Add(1)
		}
	}
	s.mu.Unlock()
	s.deliver(out)
}

// finish turns an answered probe into its sample; s.mu is held. A sample
// whose stamps cannot be right is counted and dropped (ok false): one
// nonsense RTT would poison its whole window.
func (s *Sender) finish(p *probe) (smp latency.Sample, ok bool) {
	delete(s.pending, p.key)
	delete(s.byTxID, p.txID)
	s.done[p.key] = doneEntry{answered: true, until: p.before.Add(10 * s.cfg.Timeout)}
	t1 := stamp{p.before, latency.SourceUser}
	if !p.kernelT1.IsZero() {
		t1 = stamp{p.kernelT1, latency.SourceKernel}
	}
	wait := p.t4.t.Sub(t1.t)
	residence := p.t3.Sub(p.t2)
	rtt := wait - residence
	if residence < 0 || rtt < 0 || rtt > wait {
		s.c.badStamps.Add(1)
		return latency.Sample{}, false
	}
	src := latency.Worse(t1.src, p.t4.src)
	s.last.Store(src)
	return latency.Sample{Target: p.target, Seq: p.key.seq, SentAt: t1.t, RTT: rtt, Source: src}, true
}

func (s *Sender) expireLoop(ctx context.Context) {
	tick := min(max(s.cfg.Timeout/10, 5*time.Millisecond), 100*time.Millisecond, txWait/2)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.deliver(s.expire(now))
		}
	}
}

// expire reports probes past their deadline: lost, or answered but
// without a kernel send stamp.
func (s *Sender) expire(now time.Time) []latency.Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []latency.Sample
	for _, p := range s.pending {
		if now.Before(p.deadline) {
			continue
		}
		if p.answered {
			if smp, ok := s.finish(p); ok {
				out = append(out, smp)
			}
			continue
		}
		delete(s.pending, p.key)
		delete(s.byTxID, p.txID)
		s.done[p.key] = doneEntry{until: now.Add(10 * s.cfg.Timeout)}
		s.c.lost.Add(1)
		t1 := stamp{p.before, latency.SourceUser}
		if !p.kernelT1.IsZero() {
			t1 = stamp{p.kernelT1, latency.SourceKernel}
		}
		out = append(out, latency.Sample{Target: p.target, Seq: p.key.seq, SentAt: t1.t, Lost: true, Source: t1.src})
	}
	for k, d := range s.done {
		if now.After(d.until) {
			delete(s.done, k)
		}
	}
	slices.SortFunc(out, func(a, b latency.Sample) int { return a.SentAt.Compare(b.SentAt) })
	return out
}

func (s *Sender) deliver(samples []latency.Sample) {
	if len(samples) == 0 {
		return
	}
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	for _, x := range samples {
		s.onSample(x)
	}
}
