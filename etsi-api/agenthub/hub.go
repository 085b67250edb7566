// Package agenthub is mecorch's end of the agent channel: it accepts the
// agents' connections (websocket at /api/v1/agents/connect, SCTP where the
// kernel has it), registers each agent's host from its hello, pushes the
// host's desired state whenever its generation moves, and hands reports and
// heartbeats to the lifecycle service. One session per host: a new
// connection for a host replaces the old one.
package agenthub

import (
	"context"
	"fmt"
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

// Run re-checks every session's generation every Resync until ctx ends.
func (h *Hub) Run(ctx context.Context) error {
	t := time.NewTicker(h.cfg.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.closeAll("mecorch is shutting down")
			return nil
		case <-t.C:
			h.mu.Lock()
			for _, s := range h.sessions {
				s.poke()
			}
			h.mu.Unlock()
		}
	}
}

// ServeSCTP accepts agents on an SCTP listener until ctx ends. Such agents
// authenticate with the token in their hello.
func (h *Hub) ServeSCTP(ctx context.Context, l agentwire.Listener) error {
	go func() { <-ctx.Done(); _ = l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept SCTP agent: %w", err)
		}
		go h.serve(ctx, c, nil)
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
	// lives on the connection instead.
	h.serve(context.WithoutCancel(r.Context()), c, &p)
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

func (h *Hub) detach(s *session) {
	h.mu.Lock()
	if h.sessions[s.hostID] == s {
		delete(h.sessions, s.hostID)
	}
	h.mu.Unlock()
	h.connected.Dec()
}

func (h *Hub) session(hostID string) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[hostID]
}

func (h *Hub) closeAll(why string) {
	h.mu.Lock()
	ss := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		ss = append(ss, s)
	}
	h.mu.Unlock()
	for _, s := range ss {
		_ = s.conn.CloseWith(agentproto.CodeShutdown, why)
	}
}

// refuse logs why a connection is closed and tells the peer.
func (h *Hub) refuse(c agentwire.Conn, hostID, code, detail string) {
	h.refused.WithLabelValues(code).Inc()
	h.log.Warn("agent connection refused", "remote", c.RemoteAddr(), "host", hostID, "code", code, "detail", detail)
	_ = c.CloseWith(code, detail)
}
