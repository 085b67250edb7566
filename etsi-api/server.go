// Package etsiapi assembles mecorch's HTTP surface: the ETSI MEC APIs at the
// base paths of their OpenAPI files (/app_pkgm/v1, /app_lcm/v1), the
// operator API under /api/v1/, the OAuth 2.0 token endpoint, /healthz and
// /metrics. Each API lives in its own sub-package; this one wires them to
// the domain services, authentication, metrics and notification delivery.
package etsiapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mecorch/mecorch/etsi-api/agenthub"
	"github.com/mecorch/mecorch/etsi-api/applcm"
	"github.com/mecorch/mecorch/etsi-api/apppkgm"
	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/etsi-api/httpmw"
	"github.com/mecorch/mecorch/etsi-api/notify"
	"github.com/mecorch/mecorch/etsi-api/operator"
	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/etsi-api/rttapi"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/catalog"
	"github.com/mecorch/mecorch/mec/health"
	"github.com/mecorch/mecorch/mec/inventory"
	"github.com/mecorch/mecorch/mec/lifecycle"
	"github.com/mecorch/mecorch/mec/placement"
	"github.com/mecorch/mecorch/mec/rtt"
	"github.com/mecorch/mecorch/mec/slawatch"
	"github.com/mecorch/mecorch/mec/uectx"
	"github.com/mecorch/mecorch/mec/uetunnel"
)

// Config is what the server needs beyond its store.
type Config struct {
	// BaseURL is this server's external URL, for absolute _links.
	BaseURL string
	// AdminToken, when set, is a bearer token with the operator role.
	AdminToken string
	// SigningKey signs access tokens; empty means a random key per start.
	SigningKey []byte
	TokenTTL   time.Duration
	// OpTimeout: see lifecycle.Config.
	OpTimeout time.Duration
	// StoreEngine names the store for /healthz ("embedded", "postgres").
	StoreEngine string
	Notify      notify.Config
	// Health tunes host failure handling (heartbeats, NotReady,
	// evacuation, flap guards); zero fields take health's defaults.
	Health health.Config
	// Agents tunes the agent channel; its HeartbeatInterval is Health's.
	Agents agenthub.Config
	// Latency tunes latency measurement, latency-aware placement and the
	// SLA watch; zero fields take their packages' defaults.
	Latency LatencyConfig
}

// LatencyConfig gathers the latency parts of Config.
type LatencyConfig struct {
	// Probes plans the agents' STAMP probes and keeps the RTT map.
	Probes rtt.Config
	// Radio is the radio latency per cell technology that placement adds
	// to half the measured RTT (placement.DefaultRadioNR, …EUTRA when
	// absent).
	Radio map[mec.RAT]time.Duration
	// SLA tunes the watch that re-places instances whose latency breaks
	// their bound.
	SLA slawatch.Config
}

// Server is mecorch's API server.
type Server struct {
	cfg        Config
	store      mec.Store
	clock      mec.Clock
	log        *slog.Logger
	handler    http.Handler
	sender     *notify.Sender
	dispatcher *dispatcher
	catalog    *catalog.Service
	lifecycle  *lifecycle.Service
	alarms     *health.Alarms
	monitor    *health.Monitor
	hub        *agenthub.Hub
	rtt        *rtt.Service
	sla        *slawatch.Watch
}

// New wires the services and the HTTP handlers over store. Metrics are
// registered on reg.
func New(cfg Config, store mec.Store, clock mec.Clock, log *slog.Logger, reg *prometheus.Registry) (*Server, error) {
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.Notify.DrainTimeout == 0 {
		// At shutdown, queued notifications get a few seconds to go out.
		cfg.Notify.DrainTimeout = 5 * time.Second
	}
	s := &Server{cfg: cfg, store: store, clock: clock, log: log}
	s.sender = notify.New(cfg.Notify, &http.Client{Timeout: 10 * time.Second}, log)
	reg.MustRegister(s.sender.Collectors()...)

	a, err := auth.New(auth.Config{AdminToken: cfg.AdminToken, SigningKey: cfg.SigningKey, TokenTTL: cfg.TokenTTL}, store, clock, log)
	if err != nil {
		return nil, err
	}
	// Placement ranks by the latency the agents measure: the RTT map is
	// the engine's, and a winner that rests on estimates is measured
	// directly next.
	if err := cfg.Latency.Probes.Validate(); err != nil {
		return nil, err
	}
	s.rtt = rtt.New(cfg.Latency.Probes, store, clock, log)
	latency := placement.LatencyConfig{Map: s.rtt.Map(), Radio: cfg.Latency.Radio, Measure: s.rtt.Measure}
	filters, scores := placement.WithLatency(placement.WithReadyHold(placement.DefaultFilters(), cfg.Health.PlacementHold(), clock),
		placement.DefaultScores(), latency)
	engine, err := placement.New(filters, scores, placement.Options{Clock: clock})
	if err != nil {
		return nil, err
	}
	inv := inventory.New(store, clock, log)

	// The services publish to the dispatcher, which needs the API
	// handlers to match subscriptions: build it first, fill it after.
	s.dispatcher = newDispatcher(4096, s.sender, log)
	s.catalog = catalog.New(store, s.dispatcher, clock, log, catalog.DefaultOptions())
	// Lifecycle events also reach the agent hub, which pushes the desired
	// state of the hosts they concern; it is added once it exists.
	events := &fanout{sinks: []mec.EventSink{s.dispatcher}}
	placements := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mecorch_placement_decision_seconds",
		Help:    "Time the placement engine took per decision, by outcome (placed, nofit, error).",
		Buckets: prometheus.ExponentialBuckets(10e-6, 2, 16),
	}, []string{"outcome"})
	reg.MustRegister(placements)
	s.lifecycle = lifecycle.New(lifecycle.Config{
		OpTimeout: cfg.OpTimeout,
		ObservePlacement: func(outcome string, took time.Duration) {
			placements.WithLabelValues(outcome).Observe(took.Seconds())
		},
		// A host steering to an app's instance elsewhere picks the
		// nearest by the same map placement reads.
		Distance: func(a, b string) (time.Duration, bool) {
			e := s.rtt.Map().SiteSite(a, b)
			return e.RTT, e.Quality.Usable()
		},
		// The hub exists by the time Run starts the data-plane sync.
		DesiredChanged: func(hostIDs []string) { s.hub.Poke(hostIDs) },
	}, store, engine, events, clock, log)
	s.alarms = health.NewAlarms(store, s.dispatcher, clock, log)
	if s.monitor, err = health.New(cfg.Health, store, s.lifecycle, s.alarms, clock, log); err != nil {
		return nil, err
	}
	if s.sla, err = slawatch.New(cfg.Latency.SLA, slawatch.Deps{Store: store, Lifecycle: s.lifecycle, Alarms: s.alarms,
		Latency: latency, Clock: clock, Log: log}); err != nil {
		return nil, err
	}
	pkgm := apppkgm.New(apppkgm.Config{BaseURL: cfg.BaseURL}, s.catalog, store, clock, log)
	lcm := applcm.New(applcm.Config{BaseURL: cfg.BaseURL}, s.lifecycle, store, clock, log)
	agentsCfg := cfg.Agents
	agentsCfg.HeartbeatInterval = s.monitor.Config().HeartbeatInterval
	agentsCfg.RTT = s.rtt
	s.hub = agenthub.New(agentsCfg, s.lifecycle, inv, a, s.alarms, clock, log, reg)
	events.sinks = append(events.sinks, s.hub)
	s.dispatcher.notifiers = []notifier{notifierOf(pkgm.Notifications), notifierOf(lcm.Notifications)}

	operatorOnly := a.Require(auth.RoleOperator)
	providers := a.Require(auth.RoleAppProvider) // operators always pass
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	// /healthz stays open for liveness probes; it tells nothing but "ok".
	// Metrics need a token like everything else (Prometheus sends one
	// with authorization.credentials in its scrape config).
	mux.Handle("GET /metrics", operatorOnly(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	mux.Handle(auth.TokenPath, a.TokenHandler())
	mux.Handle(auth.ClientsPath, a.ClientsHandler()) // operator-only inside
	mux.Handle(auth.ClientsPath+"/", a.ClientsHandler())
	ueTunnels := uetunnel.New(store, log, s.lifecycle.KickDataPlane)
	mux.Handle("/api/v1/", operatorOnly(kickOnHostWrite(s.lifecycle, operator.NewHandler(inv, log, operator.WithAlarms(s.alarms),
		operator.WithUEs(uectx.New(store, clock, log)), operator.WithUETunnels(ueTunnels)))))
	agentAPI{lc: s.lifecycle, catalog: s.catalog, auth: a, imageSlots: make(chan struct{}, maxImageDownloads)}.routes(mux)
	s.hub.Routes(mux)
	rttapi.New(s.rtt).Routes(mux, operatorOnly)
	mux.Handle("GET /api/v1/app_instances/{instanceId}/placement", operatorOnly(placementHandler(s.lifecycle)))
	mux.Handle("/app_pkgm/v1/", providers(pkgm))
	mux.Handle("/app_lcm/v1/", providers(lcm))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.Details{Status: http.StatusNotFound, Detail: "no API at " + r.URL.Path})
	})

	metrics, err := httpmw.NewMetrics(reg, clock)
	if err != nil {
		return nil, err
	}
	// ETSI filters join expressions with ';', which Go's server otherwise
	// refuses to split on.
	s.handler = http.AllowQuerySemicolons(httpmw.Chain(mux, httpmw.Log(log, clock), metrics.Wrap, httpmw.Recover(log)))
	return s, nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Run runs the background work (notification delivery, expiry of
// operations whose agent never answered, the host health monitor) until ctx
// ends. It first repairs what a crash may have left half done.
func (s *Server) Run(ctx context.Context) error {
	// The embedded store is locked to this one process, so whatever is
	// PROCESSING at start was abandoned by its crash; with Postgres another
	// replica may be checking it, so only stale ones are reset.
	if s.cfg.StoreEngine == "embedded" {
		s.recoverUploadsOlderThan(ctx, 0)
	}
	s.recoverUploads(ctx)
	var wg sync.WaitGroup
	wg.Add(7)
	go func() { defer wg.Done(); _ = s.rtt.Run(ctx) }()
	go func() { defer wg.Done(); _ = s.lifecycle.RunDataPlane(ctx) }()
	go func() { defer wg.Done(); _ = s.sla.Run(ctx) }()
	go func() { defer wg.Done(); _ = s.sender.Run(ctx) }()
	go func() { defer wg.Done(); _ = s.dispatcher.Run(ctx) }()
	go func() { defer wg.Done(); _ = s.monitor.Run(ctx) }()
	go func() { defer wg.Done(); _ = s.hub.Run(ctx) }()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
			if _, err := s.lifecycle.ExpireOps(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("expire LCM operations", "err", err)
			}
			s.recoverUploads(ctx)
		}
	}
}

// abandonedUpload is how long a package may stay PROCESSING before it is
// taken for the leftover of a crashed server. Checking even a 256 MiB
// package takes seconds.
const abandonedUpload = 10 * time.Minute

// recoverUploads resets packages whose upload a crashed server abandoned.
func (s *Server) recoverUploads(ctx context.Context) { s.recoverUploadsOlderThan(ctx, abandonedUpload) }

func (s *Server) recoverUploadsOlderThan(ctx context.Context, age time.Duration) {
	n, err := s.catalog.Recover(ctx, age)
	if err != nil && ctx.Err() == nil {
		s.log.Error("recover abandoned uploads", "err", err)
	}
	if n > 0 {
		s.log.Warn("app packages left PROCESSING by a crashed server reset to CREATED", "count", n)
	}
}

// healthz answers 200 when the store answers.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.View(ctx, func(mec.Tx) error { return nil }); err != nil {
		problem.Write(w, r, problem.Details{Status: http.StatusServiceUnavailable, Detail: "store unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "store": s.cfg.StoreEngine})
}

// Hub is the agent channel's hub, for the caller to serve an SCTP listener.
func (s *Server) Hub() *agenthub.Hub { return s.hub }

// kickOnHostWrite kicks the data-plane sync after an operator writes a
// host (deleting one takes it out of every other host's tunnel peers): the
// inventory tells no one of its changes.
func kickOnHostWrite(lc *lifecycle.Service, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		if r.Method != http.MethodGet && r.Method != http.MethodHead && strings.HasPrefix(r.URL.Path, "/api/v1/hosts") {
			lc.KickDataPlane()
		}
	})
}

// fanout hands each event to several sinks.
type fanout struct{ sinks []mec.EventSink }

func (f *fanout) Publish(ev mec.Event) {
	for _, s := range f.sinks {
		s.Publish(ev)
	}
}
