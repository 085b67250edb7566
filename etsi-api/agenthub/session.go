package agenthub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/mecorch/mecorch/etsi-api/agentwire"
	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/health"
)

// session is one agent's connection.
type session struct {
	hub    *Hub
	conn   agentwire.Conn
	hostID string
	hello  agentproto.Hello
	// principal is who opened the session; the hub checks on every resync
	// that its credential still exists and is still this host's.
	principal auth.Principal
	since     time.Time
	kick      chan struct{}

	mu         sync.Mutex
	seq        uint64
	sentGen    int64
	sentPlan   *agentproto.ProbePlan
	lastBeat   time.Time
	paths      []agentproto.Path
	lastReport *agentproto.Report
	// counters is the last report that carried data-plane counts.
	counters   *agentproto.Report
	countersAt time.Time
	pending    map[uint64]chan agentproto.Logs
	// pathAlarms are the transport paths this session raised an alarm
	// for; they are cleared when the path is back, gone, or the session ends.
	pathAlarms map[string]bool
	detachOnce sync.Once
}

func (s *session) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *session) info() AgentInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := AgentInfo{HostID: s.hostID, Remote: s.conn.RemoteAddr(), AgentVersion: s.hello.AgentVersion,
		ConnectedAt: s.since, SentGen: s.sentGen, Paths: s.paths, LastHeartbeat: s.lastBeat}
	if c := s.counters; c != nil {
		at := s.countersAt
		info.DataPlane, info.TrafficRuleCounters, info.CountersAt = c.DataPlane, c.TrafficRuleCounters, &at
	}
	return info
}

func (s *session) nextSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq
}

func (s *session) send(ctx context.Context, typ string, replyTo uint64, body any) error {
	f, err := agentproto.NewFrame(typ, s.nextSeq(), replyTo, body)
	if err != nil {
		return err
	}
	return s.conn.Send(ctx, f)
}

// serve runs one connection: hello, registration, then the reader and the
// desired-state pusher until either ends. p is the principal of the HTTP
// upgrade; nil on transports that authenticate in the hello (SCTP).
func (h *Hub) serve(ctx context.Context, c agentwire.Conn, p *auth.Principal) {
	h.live.Add(1)
	defer h.live.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer c.Close()

	hctx, hcancel := context.WithTimeout(ctx, h.cfg.HelloTimeout)
	f, err := c.Recv(hctx)
	hcancel()
	if err != nil {
		h.refuseErr(c, "", err, "no hello")
		return
	}
	if f.Type != agentproto.TypeHello {
		h.refuse(c, "", agentproto.CodeUnexpected, "the first frame must be hello, not "+f.Type)
		return
	}
	var hello agentproto.Hello
	if err := agentproto.DecodeBody(f, &hello); err != nil {
		h.refuseErr(c, "", err, "bad hello")
		return
	}
	if p == nil {
		pr, err := h.auth.Authenticate(ctx, hello.Token)
		if err != nil {
			if !auth.IsDenied(err) {
				h.log.Error("authenticate agent", "host", hello.HostID, "err", err)
				_ = c.CloseWith(agentproto.CodeUnavailable, "mecorch could not check the token; retry later")
				return
			}
			h.refuse(c, hello.HostID, agentproto.CodeForbidden, "authentication failed")
			return
		}
		p = &pr
	}
	hello.Token = "" // never kept, never logged
	if err := h.mayActFor(ctx, *p, hello.HostID); err != nil {
		h.refuse(c, hello.HostID, agentproto.CodeForbidden, err.Error())
		return
	}
	if err := h.register(ctx, hello); err != nil {
		var prob *mec.Problem
		if errors.As(err, &prob) && prob.Status < 500 {
			h.refuse(c, hello.HostID, agentproto.CodeRefused, prob.Detail)
			return
		}
		h.log.Error("register agent's host", "host", hello.HostID, "err", err)
		_ = c.CloseWith(agentproto.CodeUnavailable, "mecorch could not register the host; retry later")
		return
	}
	s := &session{hub: h, conn: c, hostID: hello.HostID, hello: hello, principal: *p, since: h.clock(), kick: make(chan struct{}, 1),
		sentGen: -1, pending: map[uint64]chan agentproto.Logs{}, pathAlarms: map[string]bool{}}
	h.attach(s)
	defer h.detach(s)
	h.log.Info("agent connected", "host", s.hostID, "remote", c.RemoteAddr(), "agentVersion", hello.AgentVersion, "generation", hello.Generation)
	defer h.log.Info("agent disconnected", "host", s.hostID, "remote", c.RemoteAddr())

	if err := s.send(ctx, agentproto.TypeWelcome, f.Seq, agentproto.Welcome{
		HeartbeatIntervalMs: h.cfg.HeartbeatInterval.Milliseconds(), ServerVersion: h.cfg.ServerVersion}); err != nil {
		return
	}
	if err := h.lc.Heartbeat(ctx, s.hostID); err != nil {
		h.log.Error("record agent heartbeat", "host", s.hostID, "err", err)
	}
	if s.probes() {
		// Its plan comes with the first push; its peers' plans take it
		// in now, and drop it when the session ends.
		if err := h.cfg.RTT.Connected(ctx, s.hostID, hello.ProbeAddr, c.RemoteAddr()); err != nil {
			h.log.Warn("the agent's STAMP reflector cannot be probed", "host", s.hostID, "probeAddr", hello.ProbeAddr, "err", err)
		}
		defer func() {
			if cur := h.session(s.hostID); cur != nil && cur != s {
				return // a newer session of the host said where it is
			}
			cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer ccancel()
			if err := h.cfg.RTT.Disconnected(cctx, s.hostID); err != nil {
				h.log.Warn("forget the agent's STAMP reflector", "host", s.hostID, "err", err)
			}
		}()
	}
	s.poke()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.read(ctx)
		cancel()
	}()
	s.push(ctx)
	<-done
	// The session is over: whether the host is up is the health monitor's
	// call now, and its paths are unknown.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer ccancel()
	s.clearPathAlarms(cctx, func(string) bool { return true })
}

// mayActFor refuses an agent whose credential is another host's. Operators
// may connect as any host (a bench or a debugging session).
func (h *Hub) mayActFor(ctx context.Context, p auth.Principal, hostID string) error {
	switch p.Role {
	case auth.RoleOperator:
		return nil
	case auth.RoleAgent:
		c, err := h.auth.GetClient(ctx, p.ClientID)
		if err != nil {
			return fmt.Errorf("the agent's client is unknown")
		}
		if c.Name != hostID {
			return fmt.Errorf("this credential is for host %q, not %q", c.Name, hostID)
		}
		return nil
	}
	return fmt.Errorf("role %s may not connect as an agent", p.Role)
}

// register creates the host from the hello, or brings its capacity,
// labels and agent version up to date. A host registered at another site
// is refused: moving it is the operator's call.
func (h *Hub) register(ctx context.Context, hello agentproto.Hello) error {
	cur, _, err := h.inv.GetHost(ctx, hello.HostID)
	if errors.Is(err, mec.ErrNotFound) {
		gone, gerr := h.inv.WasDeleted(ctx, hello.HostID)
		if gerr != nil {
			return gerr
		}
		if gone {
			return mec.Errorf(http.StatusConflict, nil, "host %s was deleted by an operator; only an operator can register it again", hello.HostID)
		}
		_, _, err = h.inv.CreateHost(ctx, mec.Host{ID: hello.HostID, SiteID: hello.SiteID, Capacity: hello.Capacity, Labels: hello.Labels})
		if err == nil {
			return h.lc.RecordVTEP(ctx, hello.HostID, hello.VTEP)
		}
		if !errors.Is(err, mec.ErrExists) {
			return err
		}
		cur, _, err = h.inv.GetHost(ctx, hello.HostID)
	}
	if err != nil {
		return err
	}
	if cur.SiteID != hello.SiteID {
		return mec.Errorf(http.StatusConflict, nil, "host %s is registered at site %s, not %s", cur.ID, cur.SiteID, hello.SiteID)
	}
	// UpdateHost takes the host's spec only; state and generations are
	// not the agent's to write.
	next := mec.Host{SiteID: cur.SiteID, Name: cur.Name, Capacity: hello.Capacity, Labels: cur.Labels, Addresses: cur.Addresses}
	if len(hello.Labels) > 0 {
		next.Labels = map[string]string{}
		for k, v := range cur.Labels {
			next.Labels[k] = v
		}
		for k, v := range hello.Labels {
			next.Labels[k] = v
		}
	}
	if _, _, err := h.inv.UpdateHost(ctx, cur.ID, next, mec.AnyVersion); err != nil {
		var prob *mec.Problem
		if !errors.As(err, &prob) || prob.Status != http.StatusConflict {
			return err
		}
		// The machine shrank below what its instances hold: keep the
		// old capacity so nothing is evicted behind the operator's back.
		h.log.Warn("agent's capacity is below what the host's instances hold; keeping the registered capacity",
			"host", cur.ID, "agentCapacity", hello.Capacity, "err", err)
	}
	// The VTEP is the agent's to say, and other hosts' data planes follow
	// it: an agent that lost --vtep stops being anyone's tunnel peer.
	return h.lc.RecordVTEP(ctx, cur.ID, hello.VTEP)
}

// push sends the host's desired state whenever its generation moves.
func (s *session) push(ctx context.Context) {
	h := s.hub
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		ds, err := h.lc.DesiredState(ctx, s.hostID)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Error("read desired state", "host", s.hostID, "err", err)
			}
			if errors.Is(err, mec.ErrNotFound) {
				_ = s.conn.CloseWith(agentproto.CodeRefused, "host "+s.hostID+" was deleted")
				return
			}
			continue
		}
		s.mu.Lock()
		same := ds.Generation == s.sentGen
		s.mu.Unlock()
		if !same {
			if err := s.send(ctx, agentproto.TypeDesired, 0, ds); err != nil {
				return
			}
			s.mu.Lock()
			s.sentGen = ds.Generation
			s.mu.Unlock()
		}
		// The plan goes after the desired state: probes must never stand
		// between a host and its work.
		if err := s.pushPlan(ctx); err != nil {
			return
		}
	}
}

// probes tells whether the session's agent takes probe plans: mecorch
// plans probes and the agent advertised a reflector (an older agent, which
// would not know the frame, does not).
func (s *session) probes() bool { return s.hub.cfg.RTT != nil && s.hello.ProbeAddr != "" }

// pushPlan sends the host's probe plan when it differs from the last one
// sent.
func (s *session) pushPlan(ctx context.Context) error {
	if !s.probes() {
		return nil
	}
	plan := s.hub.cfg.RTT.Plan(s.hostID)
	s.mu.Lock()
	same := s.sentPlan != nil && samePlan(*s.sentPlan, plan)
	s.mu.Unlock()
	if same {
		return nil
	}
	if err := s.send(ctx, agentproto.TypeProbePlan, 0, plan); err != nil {
		return err
	}
	s.mu.Lock()
	s.sentPlan = &plan
	s.mu.Unlock()
	return nil
}

func samePlan(a, b agentproto.ProbePlan) bool {
	return a.IntervalMs == b.IntervalMs && a.WindowMs == b.WindowMs && slices.Equal(a.Targets, b.Targets)
}

// read handles the agent's frames until the connection fails or the agent
// breaks the protocol.
func (s *session) read(ctx context.Context) {
	h := s.hub
	for {
		f, err := s.conn.Recv(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.refuseErr(err, "")
			}
			return
		}
		if !agentproto.FromAgent(f.Type) || f.Type == agentproto.TypeHello {
			s.refuse(agentproto.CodeUnexpected, "an agent may not send "+f.Type+" here")
			return
		}
		switch f.Type {
		case agentproto.TypeStatus:
			var r agentproto.Report
			if err := agentproto.DecodeBody(f, &r); err != nil {
				s.refuseErr(err, "bad status")
				return
			}
			if r.HostID != s.hostID {
				s.refuse(agentproto.CodeForbidden, "status for host "+r.HostID+" on the session of "+s.hostID)
				return
			}
			s.mu.Lock()
			s.lastReport = &r
			if r.DataPlane != nil || len(r.TrafficRuleCounters) > 0 {
				s.counters, s.countersAt = &r, h.clock()
			}
			s.mu.Unlock()
			if err := h.lc.ReportStatus(ctx, r); err != nil && ctx.Err() == nil {
				// A report ahead of the desired generation (a restored
				// backup) or a store failure: logged, the session goes on.
				h.log.Warn("agent report not recorded", "host", s.hostID, "generation", r.Generation, "err", err)
			}
			s.beat()
		case agentproto.TypeHeartbeat:
			var hb agentproto.Heartbeat
			if err := agentproto.DecodeBody(f, &hb); err != nil {
				s.refuseErr(err, "bad heartbeat")
				return
			}
			if err := h.lc.Heartbeat(ctx, s.hostID); err != nil && ctx.Err() == nil {
				h.log.Error("record agent heartbeat", "host", s.hostID, "err", err)
			}
			s.beat()
		case agentproto.TypeLogs:
			var l agentproto.Logs
			if err := agentproto.DecodeBody(f, &l); err != nil {
				s.refuseErr(err, "bad logs")
				return
			}
			s.mu.Lock()
			ch := s.pending[f.ReplyTo]
			delete(s.pending, f.ReplyTo)
			s.mu.Unlock()
			if ch != nil {
				ch <- l
			}
		case agentproto.TypePaths:
			var ps agentproto.Paths
			if err := agentproto.DecodeBody(f, &ps); err != nil {
				s.refuseErr(err, "bad paths")
				return
			}
			s.notePaths(ctx, ps.Paths)
		case agentproto.TypeRTT:
			// Measurements are dropped when wrong (a stepped clock, an
			// odd reflector), never worth the session that carries the
			// host's desired state.
			var r agentproto.RTTReport
			if err := agentproto.DecodeBody(f, &r); err != nil {
				h.log.Warn("dropping an RTT report", "host", s.hostID, "err", err)
				continue
			}
			if h.cfg.RTT != nil {
				h.cfg.RTT.Report(s.hostID, r.Results)
			}
		case agentproto.TypeError:
			var e agentproto.Error
			_ = agentproto.DecodeBody(f, &e)
			h.log.Warn("agent closes its session", "host", s.hostID, "code", e.Code, "detail", e.Detail)
			return
		}
	}
}

// refuse and refuseErr end the session for a protocol breach: it is
// detached first, so that it is gone from the hub by the time the peer
// learns why.
func (s *session) refuse(code, detail string) {
	s.hub.detach(s)
	s.hub.refuse(s.conn, s.hostID, code, detail)
}

func (s *session) refuseErr(err error, what string) {
	s.hub.detach(s)
	s.hub.refuseErr(s.conn, s.hostID, err, what)
}

func (s *session) beat() {
	s.mu.Lock()
	s.lastBeat = s.hub.clock()
	s.mu.Unlock()
}

// notePaths keeps the transport's paths and raises an alarm for each path
// that went down; a path back up, or no longer reported, is cleared.
func (s *session) notePaths(ctx context.Context, paths []agentproto.Path) {
	h := s.hub
	s.mu.Lock()
	s.paths = paths
	s.mu.Unlock()
	down := map[string]agentproto.Path{}
	for _, p := range paths {
		if p.State == agentproto.PathInactive {
			down[s.hostID+"/path/"+p.Local+"-"+p.Remote] = p
		}
	}
	for obj, p := range down {
		_, err := h.alarms.Raise(ctx, health.AlarmSpec{
			ManagedObjectID: obj, ProbableCause: health.CauseTransportPathDown,
			PerceivedSeverity: health.SeverityMajor, EventType: health.EventCommunications,
			FaultType:    "SCTP path down",
			FaultDetails: []string{"host " + s.hostID, "local " + p.Local, "remote " + p.Remote},
		})
		if err != nil {
			if ctx.Err() == nil {
				h.log.Error("raise path alarm", "host", s.hostID, "path", obj, "err", err)
			}
			continue
		}
		s.mu.Lock()
		s.pathAlarms[obj] = true
		s.mu.Unlock()
	}
	s.clearPathAlarms(ctx, func(obj string) bool { _, still := down[obj]; return !still })
}

// clearPathAlarms clears the path alarms this session raised that which
// selects.
func (s *session) clearPathAlarms(ctx context.Context, which func(string) bool) {
	s.mu.Lock()
	var objs []string
	for obj := range s.pathAlarms {
		if which(obj) {
			objs = append(objs, obj)
		}
	}
	s.mu.Unlock()
	for _, obj := range objs {
		if err := s.hub.alarms.Clear(ctx, obj, health.CauseTransportPathDown); err != nil {
			s.hub.log.Error("clear path alarm", "host", s.hostID, "path", obj, "err", err)
			continue
		}
		s.mu.Lock()
		delete(s.pathAlarms, obj)
		s.mu.Unlock()
	}
}

// refuseErr closes the connection after a receive or decode error: a
// protocol error is refused with its code; a connection that just ended is
// only noted.
func (h *Hub) refuseErr(c agentwire.Conn, hostID string, err error, what string) {
	var pe *agentproto.ProtocolError
	if errors.As(err, &pe) {
		detail := pe.Detail
		if what != "" {
			detail = what + ": " + detail
		}
		h.refuse(c, hostID, pe.Code, detail)
		return
	}
	h.log.Debug("agent connection ended", "remote", c.RemoteAddr(), "host", hostID, "err", err)
}
