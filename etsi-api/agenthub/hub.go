// Package agenthub is mecorch's end of the agent channel: it accepts the
// agents' connections (websocket at /api/v1/agents/connect, SCTP where the
// kernel has it), registers each agent's host from its hello, pushes the
// host's desired state whenever its generation moves, and hands reports and
// heartbeats to the lifecycle service. One session per host: a new
// connection for a host replaces the old one.
package agenthub

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mecorch/mecorch/etsi-api/agentwire"
	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/health"
	"github.com/mecorch/mecorch/mec/inventory"
	"github.com/mecorch/mecorch/mec/lifecycle"
	"github.com/mecorch/mecorch/mec/rtt"
)

// Config tunes the hub.
type Config struct {
	// HeartbeatInterval is what agents are told to heartbeat at.
	HeartbeatInterval time.Duration
	// HelloTimeout bounds the wait for an agent's first frame.
	HelloTimeout time.Duration
	// Resync is how often every session re-checks its host's generation,
	// in case an event was dropped.
	Resync time.Duration
	// PingInterval and PongWait are the websocket keepalive.
	PingInterval, PongWait time.Duration
	ServerVersion          string
	// RTT, when set, plans the agents' STAMP probes and takes their RTT
	// reports into its map. Agents that advertise no reflector get no
	// plan.
	RTT *rtt.Service
}

// Hub holds the agents' sessions.
type Hub struct {
	cfg    Config
	lc     *lifecycle.Service
	inv    *inventory.Service
	auth   *auth.Authenticator
	alarms *health.Alarms
	clock  mec.Clock
	log    *slog.Logger

	// base is the sessions' context: Run cancels it at shutdown, so that no
	// session outlives the server (they run past their HTTP request).
	base     context.Context
	stop     context.CancelFunc
	live     sync.WaitGroup
	mu       sync.Mutex
	sessions map[string]*session

	connected prometheus.Gauge
	refused   *prometheus.CounterVec
}

// New returns a hub; its collectors are registered on reg.
func New(cfg Config, lc *lifecycle.Service, inv *inventory.Service, a *auth.Authenticator, alarms *health.Alarms,
	clock mec.Clock, log *slog.Logger, reg prometheus.Registerer) *Hub {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 2 * time.Second
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = 10 * time.Second
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Second
	}
	h := &Hub{cfg: cfg, lc: lc, inv: inv, auth: a, alarms: alarms, clock: clock, log: log, sessions: map[string]*session{},
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mecorch_agents_connected", Help: "Agent sessions open now."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mecorch_agent_frames_refused_total",
			Help: "Agent connections closed for a bad frame, by protocol error code."}, []string{"code"}),
	}
	reg.MustRegister(h.connected, h.refused)
	h.base, h.stop = context.WithCancel(context.Background())
	if cfg.RTT != nil {
		// New plans (the rotation moved on, a placement asked for a
		// direct measurement) go out with the next push of each session.
		cfg.RTT.OnChange(func() {
			for _, s := range h.all() {
				s.poke()
			}
		})
	}
	return h
}

// Routes mounts the websocket endpoint and the operator's views of the
// sessions on mux.
func (h *Hub) Routes(mux *http.ServeMux) {
	agents := h.auth.Require(auth.RoleAgent) // operators pass too
	operators := h.auth.Require(auth.RoleOperator)
	mux.Handle("GET /api/v1/agents/connect", agents(http.HandlerFunc(h.connect)))
	mux.Handle("GET /api/v1/agents", operators(http.HandlerFunc(h.list)))
	mux.Handle("GET /api/v1/agents/{hostId}", operators(http.HandlerFunc(h.get)))
	mux.Handle("GET /api/v1/app_instances/{instanceId}/logs", operators(http.HandlerFunc(h.logs)))
}

// Publish is the hub's mec.EventSink: an event about an instance or an
// operation pokes the sessions of the hosts concerned, which then send the
// new desired state. It never blocks.
func (h *Hub) Publish(ev mec.Event) {
	hosts := map[string]bool{}
	if ev.Instance != nil {
		hosts[ev.Instance.HostID] = true
	}
	if ev.OpOcc != nil {
		hosts[ev.OpOcc.HostID] = true
	}
	if ev.PrevHostID != "" {
		hosts[ev.PrevHostID] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range hosts {
		if s := h.sessions[id]; s != nil {
			s.poke()
		}
	}
}

// Poke makes the sessions of the hosts named send their desired state
// now, if its generation moved (the lifecycle's data-plane sync bumps
// hosts without an event). It never blocks.
func (h *Hub) Poke(hostIDs []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range hostIDs {
		if s := h.sessions[id]; s != nil {
			s.poke()
		}
	}
}

// Run re-checks every Resync, until ctx ends, each session's generation
// and credential: a session whose client was deleted, or renamed to another
// host, is closed. At the end it closes every session and waits (a few
// seconds at most) for them to finish.
func (h *Hub) Run(ctx context.Context) error {
	t := time.NewTicker(h.cfg.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.shutdown()
			return nil
		case <-t.C:
			for _, s := range h.all() {
				s.poke()
				h.checkCredential(ctx, s)
			}
		}
	}
}

func (h *Hub) shutdown() {
	h.stop()
	var wg sync.WaitGroup
	for _, s := range h.all() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.conn.CloseWith(agentproto.CodeShutdown, "mecorch is shutting down")
		}()
	}
	wg.Wait()
	done := make(chan struct{})
	go func() { h.live.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		h.log.Warn("agent sessions still ending at shutdown")
	}
}

// checkCredential closes a session whose agent credential is gone or no
// longer this host's: a revoked agent is cut off within one Resync.
func (h *Hub) checkCredential(ctx context.Context, s *session) {
	if s.principal.Role != auth.RoleAgent {
		return
	}
	c, err := h.auth.GetClient(ctx, s.principal.ClientID)
	switch {
	case errors.Is(err, mec.ErrNotFound):
		h.detach(s)
		h.refuse(s.conn, s.hostID, agentproto.CodeForbidden, "the agent's credential was revoked")
	case err != nil:
		if ctx.Err() == nil {
			h.log.Error("check agent credential", "host", s.hostID, "err", err)
		}
	case c.Name != s.hostID || c.Role != auth.RoleAgent:
		h.detach(s)
		h.refuse(s.conn, s.hostID, agentproto.CodeForbidden, "the agent's credential is no longer this host's")
	}
}

func (h *Hub) all() []*session {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		out = append(out, s)
	}
	return out
}

// ServeSCTP accepts agents on an SCTP listener until ctx ends. Such agents
// authenticate with the token in their hello. A failed accept (out of
// file descriptors in a reconnect storm, one bad association) is logged
// and retried with a growing pause; only ctx ends the loop.
func (h *Hub) ServeSCTP(ctx context.Context, l agentwire.Listener) error {
	go func() { <-ctx.Done(); _ = l.Close() }()
	pause := 5 * time.Millisecond
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			h.log.Error("accept SCTP agent", "err", err, "retryIn", pause)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pause):
			}
			pause = min(2*pause, time.Second)
			continue
		}
		pause = 5 * time.Millisecond
		go h.serve(h.base, c, nil)
	}
}

func (h *Hub) connect(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.PrincipalFrom(r.Context())
	c, err := agentwire.Accept(w, r, agentwire.ServerOptions{PingInterval: h.cfg.PingInterval, PongWait: h.cfg.PongWait})
	if err != nil {
		h.log.Warn("agent websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	// The request's context ends when the handler returns; the session
	// lives on the connection, until the hub stops.
	h.serve(h.base, c, &p)
}

// AgentInfo is one open session, for operators.
type AgentInfo struct {
	HostID        string            `json:"hostId"`
	Remote        string            `json:"remote"`
	AgentVersion  string            `json:"agentVersion"`
	ConnectedAt   time.Time         `json:"connectedAt"`
	SentGen       int64             `json:"sentGeneration"`
	Paths         []agentproto.Path `json:"paths,omitempty"`
	LastHeartbeat time.Time         `json:"lastHeartbeat"`
	// LastReport is the agent's last status report (instance states,
	// addresses, restarts, usage); only GET /api/v1/agents/{hostId} has it.
	LastReport *agentproto.Report `json:"lastReport,omitempty"`
	// DataPlane and TrafficRuleCounters are the host data plane's counts
	// from the last report that had them (agents without a data plane
	// send none), and CountersAt when it came.
	DataPlane           *agentproto.DataPlaneStats `json:"dataPlane,omitempty"`
	TrafficRuleCounters []agentproto.RuleCounter   `json:"trafficRuleCounters,omitempty"`
	CountersAt          *time.Time                 `json:"countersAt,omitempty"`
}

func (h *Hub) list(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	out := make([]AgentInfo, 0, len(h.sessions))
	for _, s := range h.sessions {
		out = append(out, s.info())
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].HostID < out[j].HostID })
	writeJSON(w, http.StatusOK, out)
}

func (h *Hub) get(w http.ResponseWriter, r *http.Request) {
	s := h.session(r.PathValue("hostId"))
	if s == nil {
		problem.Write(w, r, problem.Details{Status: http.StatusNotFound, Detail: "no agent session for host " + r.PathValue("hostId")})
		return
	}
	info := s.info()
	s.mu.Lock()
	info.LastReport = s.lastReport
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, info)
}

// attach makes s the session of its host, closing the one it replaces.
func (h *Hub) attach(s *session) {
	h.mu.Lock()
	old := h.sessions[s.hostID]
	h.sessions[s.hostID] = s
	h.mu.Unlock()
	h.connected.Inc()
	if old != nil {
		h.log.Warn("agent reconnected: closing its previous session", "host", s.hostID, "old", old.conn.RemoteAddr(), "new", s.conn.RemoteAddr())
		_ = old.conn.CloseWith(agentproto.CodeReplaced, "replaced by a newer connection of the same host")
	}
}

// detach forgets s; a second call for the same session does nothing.
func (h *Hub) detach(s *session) {
	s.detachOnce.Do(func() {
		h.mu.Lock()
		if h.sessions[s.hostID] == s {
			delete(h.sessions, s.hostID)
		}
		h.mu.Unlock()
		h.connected.Dec()
	})
}

func (h *Hub) session(hostID string) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[hostID]
}

// refuse logs why a connection is closed and tells the peer.
func (h *Hub) refuse(c agentwire.Conn, hostID, code, detail string) {
	h.refused.WithLabelValues(code).Inc()
	h.log.Warn("agent connection refused", "remote", c.RemoteAddr(), "host", hostID, "code", code, "detail", detail)
	_ = c.CloseWith(code, detail)
}
