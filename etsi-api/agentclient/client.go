// Package agentclient is mec-agent's end of the agent channel: it dials
// mecorch (websocket, or SCTP when the URL says sctp://), says hello, feeds
// the desired states it receives to the agent's reconcile loop, and sends
// the agent's reports, heartbeats and log tails back. It reconnects with
// jittered backoff for as long as it runs; the agent keeps its instances
// serving meanwhile. It also fetches software images over HTTP.
package agentclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"crypto/tls"

	"github.com/mecorch/mecorch/etsi-api/agentwire"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/agent"
	"github.com/mecorch/mecorch/mec/agentproto"
)

// Config is what the channel needs.
type Config struct {
	// URL is mecorch's agent endpoint: ws(s)://host:port/api/v1/agents/connect
	// or sctp://host:port.
	URL          string
	HostID       string
	SiteID       string
	AgentVersion string
	Capacity     mec.Resources
	Labels       map[string]string
	TLS          *tls.Config
	// SCTPLocal are the addresses an SCTP association binds (all of the
	// agent's backhaul addresses).
	SCTPLocal []netip.Addr
	Backoff   agentwire.Backoff
	// PathsEvery is how often SCTP path measurements are reported.
	PathsEvery time.Duration
	// StatusEvery re-sends the report even when unchanged, carrying usage.
	StatusEvery time.Duration
	// Prober, when set, runs the host's STAMP probes: the hello
	// advertises its reflector, mecorch's probe plans go to it, and its
	// windows are sent as RTT reports. Nil: the host is not probed and
	// mecorch sends it no plan.
	Prober Prober
	// VTEP is the host's VXLAN underlay address for the hello (empty:
	// no overlay here).
	VTEP   string
	Logger *slog.Logger
}

// Prober is the agent's latency probing as the channel sees it
// (mec/agent.Prober).
type Prober interface {
	// Addr is the reflector's address for the hello's probeAddr.
	Addr() string
	SetPlan(agentproto.ProbePlan)
	// Results delivers the windows to report.
	Results() <-chan []agentproto.RTTResult
}

// Client runs the channel.
type Client struct {
	cfg    Config
	ag     *agent.Agent
	tokens *Tokens
	log    *slog.Logger

	mu        sync.Mutex
	connected bool
}

// New returns a channel for ag.
func New(cfg Config, ag *agent.Agent, tokens *Tokens) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("orchestrator URL: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss", "sctp":
	default:
		return nil, fmt.Errorf("orchestrator URL %q: the scheme must be ws, wss or sctp", cfg.URL)
	}
	if cfg.Backoff.Initial <= 0 {
		cfg.Backoff = agentwire.Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.5}
	}
	if cfg.PathsEvery <= 0 {
		cfg.PathsEvery = 5 * time.Second
	}
	if cfg.StatusEvery <= 0 {
		cfg.StatusEvery = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Client{cfg: cfg, ag: ag, tokens: tokens, log: cfg.Logger}, nil
}

// APIBase derives mecorch's HTTP base URL from a websocket URL.
func APIBase(wsURL string) (string, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("no HTTP base can be derived from %q: give it explicitly", wsURL)
	}
	u.Path, u.RawQuery = "", ""
	return strings.TrimRight(u.String(), "/"), nil
}

// Connected tells whether a session is up.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// Run keeps a session up until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	attempt := 0
	for ctx.Err() == nil {
		start := time.Now()
		err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > time.Minute {
			attempt = 0 // the session held: start the backoff over
		}
		wait := c.cfg.Backoff.Next(attempt, rand.Float64)
		attempt++
		c.log.Warn("orchestrator channel down; instances keep running", "err", err, "retryIn", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	return nil
}

func (c *Client) dial(ctx context.Context, token string) (agentwire.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if strings.HasPrefix(c.cfg.URL, "sctp://") {
		return agentwire.DialSCTP(dctx, c.cfg.URL, c.cfg.SCTPLocal, agentwire.DialOptions{})
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	return agentwire.Dial(dctx, c.cfg.URL, agentwire.DialOptions{Header: h, TLSConfig: c.cfg.TLS})
}

// session runs one connection to its end.
func (c *Client) session(ctx context.Context) error {
	token, err := c.tokens.Get(ctx)
	if err != nil {
		return err
	}
	conn, err := c.dial(ctx, token)
	if err != nil {
		// A refused token (expired early, signing key rotated, client
		// re-created) would be refused again: fetch a new one next time.
		var he *agentwire.HandshakeError
		if errors.As(err, &he) && (he.StatusCode == http.StatusUnauthorized || he.StatusCode == http.StatusForbidden) {
			c.tokens.Forget()
		}
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var seq uint64
	var smu sync.Mutex
	send := func(typ string, replyTo uint64, body any) error {
		smu.Lock()
		seq++
		s := seq
		smu.Unlock()
		f, err := agentproto.NewFrame(typ, s, replyTo, body)
		if err != nil {
			return err
		}
		return conn.Send(ctx, f)
	}
	hello := agentproto.Hello{HostID: c.cfg.HostID, SiteID: c.cfg.SiteID, AgentVersion: c.cfg.AgentVersion,
		Capacity: c.cfg.Capacity, Labels: c.cfg.Labels, Generation: c.ag.Generation(), VTEP: c.cfg.VTEP}
	if strings.HasPrefix(c.cfg.URL, "sctp://") {
		hello.Token = token
	}
	var rtt <-chan []agentproto.RTTResult
	if c.cfg.Prober != nil {
		hello.ProbeAddr = c.cfg.Prober.Addr()
		rtt = c.cfg.Prober.Results()
	}
	if err := send(agentproto.TypeHello, 0, hello); err != nil {
		return err
	}
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	f, err := conn.Recv(wctx)
	wcancel()
	if err != nil {
		return fmt.Errorf("waiting for welcome: %w", err)
	}
	if f.Type == agentproto.TypeError {
		var e agentproto.Error
		_ = agentproto.DecodeBody(f, &e)
		if e.Code == agentproto.CodeForbidden {
			c.tokens.Forget()
		}
		return fmt.Errorf("mecorch refused the agent: %s: %s", e.Code, e.Detail)
	}
	var w agentproto.Welcome
	if f.Type != agentproto.TypeWelcome {
		return fmt.Errorf("expected welcome, got %s", f.Type)
	}
	if err := agentproto.DecodeBody(f, &w); err != nil {
		return err
	}
	beat := time.Duration(w.HeartbeatIntervalMs) * time.Millisecond
	if beat <= 0 {
		beat = 2 * time.Second
	}
	c.setConnected(true)
	defer c.setConnected(false)
	c.log.Info("connected to the orchestrator", "url", c.cfg.URL, "heartbeat", beat)

	errc := make(chan error, 1)
	go func() { errc <- c.read(ctx, conn, send) }()
	hb := time.NewTicker(beat)
	defer hb.Stop()
	full := time.NewTicker(c.cfg.StatusEvery)
	defer full.Stop()
	paths := time.NewTicker(c.cfg.PathsEvery)
	defer paths.Stop()
	// A report right away: after a reconnect mecorch learns at once what
	// ran meanwhile (resending an old report changes nothing there).
	if err := send(agentproto.TypeStatus, 0, c.ag.Report()); err != nil {
		return err
	}
	for {
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			_ = conn.CloseWith(agentproto.CodeShutdown, "agent stopping")
			return nil
		case <-c.ag.Changed():
			err = send(agentproto.TypeStatus, 0, c.ag.Report())
		case <-full.C:
			err = send(agentproto.TypeStatus, 0, c.ag.Report())
		case <-hb.C:
			err = send(agentproto.TypeHeartbeat, 0, agentproto.Heartbeat{Time: time.Now().UTC(), Generation: c.ag.Generation()})
		case <-paths.C:
			if ps := conn.Paths(); ps != nil {
				err = send(agentproto.TypePaths, 0, agentproto.Paths{Paths: ps})
			}
		case res := <-rtt:
			err = send(agentproto.TypeRTT, 0, agentproto.RTTReport{Results: res})
		}
		if err != nil {
			return err
		}
	}
}

// read handles mecorch's frames.
func (c *Client) read(ctx context.Context, conn agentwire.Conn, send func(string, uint64, any) error) error {
	for {
		f, err := conn.Recv(ctx)
		if err != nil {
			var pe *agentproto.ProtocolError
			if errors.As(err, &pe) {
				c.log.Error("mecorch sent a bad frame", "code", pe.Code, "detail", pe.Detail)
				_ = conn.CloseWith(pe.Code, pe.Detail)
			}
			return err
		}
		switch f.Type {
		case agentproto.TypeDesired:
			var ds agentproto.DesiredState
			if err := agentproto.DecodeBody(f, &ds); err != nil {
				return err
			}
			if err := c.ag.Apply(ds); err != nil {
				c.log.Error("apply desired state", "generation", ds.Generation, "err", err)
			}
		case agentproto.TypeLogsRequest:
			var lr agentproto.LogsRequest
			if err := agentproto.DecodeBody(f, &lr); err != nil {
				return err
			}
			data, trunc, err := c.ag.Logs(lr.InstanceID, lr.MaxBytes)
			out := agentproto.Logs{InstanceID: lr.InstanceID, Error: ""}
			if err != nil {
				out.Error = err.Error()
			} else {
				out.Data, out.Truncated = fitLogs(data, trunc)
			}
			if err := send(agentproto.TypeLogs, f.Seq, out); err != nil {
				return err
			}
		case agentproto.TypeProbePlan:
			// A plan this agent cannot take is not worth its session:
			// the desired state matters more than the probes, which
			// keep to the last plan taken.
			var plan agentproto.ProbePlan
			if err := agentproto.DecodeBody(f, &plan); err != nil {
				c.log.Error("ignoring a probe plan from mecorch", "err", err)
				continue
			}
			if c.cfg.Prober != nil {
				c.cfg.Prober.SetPlan(plan)
			}
		case agentproto.TypeError:
			var e agentproto.Error
			_ = agentproto.DecodeBody(f, &e)
			return fmt.Errorf("mecorch closed the session: %s: %s", e.Code, e.Detail)
		default:
			c.log.Warn("ignoring an unexpected frame from mecorch", "type", f.Type)
		}
	}
}

func (c *Client) setConnected(v bool) {
	c.mu.Lock()
	c.connected = v
	c.mu.Unlock()
}

// logsRoom is how much of a frame a log tail may take once JSON-encoded;
// the rest is for the frame's other fields.
const logsRoom = agentproto.MaxFrameBytes - 4096

// fitLogs makes a log tail fit one frame: JSON escapes control bytes and
// invalid UTF-8 up to six times their size, so a tail of binary output
// could otherwise break the session. Invalid UTF-8 becomes U+FFFD, and the
// oldest half is dropped until the rest fits.
func fitLogs(data []byte, truncated bool) (string, bool) {
	text := strings.ToValidUTF8(string(data), "\uFFFD")
	for {
		enc, err := json.Marshal(text)
		if err == nil && len(enc) <= logsRoom {
			return text, truncated
		}
		cut := len(text) / 2
		for cut < len(text) && !utf8.RuneStart(text[cut]) {
			cut++
		}
		text, truncated = text[cut:], true
	}
}
