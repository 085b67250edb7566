// Command mecorch is the edge orchestrator: it serves the ETSI MEC APIs and
// the operator API over its store.
//
//	mecorch serve [--listen 127.0.0.1:8080] [--store DIR | --store postgres://…]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	etsiapi "github.com/mecorch/mecorch/etsi-api"
	"github.com/mecorch/mecorch/etsi-api/agenthub"
	"github.com/mecorch/mecorch/etsi-api/agentwire"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/health"
	"github.com/mecorch/mecorch/mec/rtt"
	"github.com/mecorch/mecorch/mec/slawatch"
	"github.com/mecorch/mecorch/mec/store/boltstore"
	"github.com/mecorch/mecorch/mec/store/pgstore"
)

const usage = `mecorch: ETSI MEC edge orchestrator

usage:
  mecorch serve [flags]    serve the APIs (mecorch serve -h for flags)
  mecorch lab up|status|down <file.clab.yml>
                           run a containerlab topology in network namespaces (mecorch lab help)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		if err := serve(os.Args[2:], os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "mecorch:", err)
			os.Exit(1)
		}
	case "lab":
		if err := labCmd(os.Args[2:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "mecorch:", err)
			os.Exit(1)
		}
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "mecorch: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}

func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve HTTP on")
	storeArg := fs.String("store", "mecorch-data", "embedded store directory, or a postgres:// DSN")
	baseURL := fs.String("base-url", "", "external URL of this server for _links (default http://<listen>)")
	adminToken := fs.String("admin-token", "", "bootstrap operator bearer token; prefer $MECORCH_ADMIN_TOKEN, which ps does not show")
	keyFile := fs.String("token-key-file", "", "file with the token signing key (shared by replicas); default: a random key per start")
	opTimeout := fs.Duration("op-timeout", 10*time.Minute, "how long an LCM operation waits for its host's agent before FAILED_TEMP (0: for ever)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	heartbeat := fs.Duration("heartbeat-interval", health.DefaultHeartbeatInterval, "how often agents heartbeat")
	missed := fs.Int("missed-heartbeats", health.DefaultMissedHeartbeats, "heartbeats a host may miss before it is NotReady and its instances move")
	replaceAfter := fs.Duration("replace-after", 0, "how long a NotReady host waits before its instances are placed elsewhere")
	moveCooldown := fs.Duration("move-cooldown", health.DefaultMoveCooldown, "an instance moved off a failed host stays where it went for at least this long")
	readyHold := fs.Duration("ready-hold", health.DefaultReadyHold, "a host back from NotReady gets no new placements until it has been Ready this long")
	sctpListen := fs.String("agent-sctp-listen", "", "serve agents over multi-homed SCTP too: comma-separated local addresses and a port, e.g. 10.0.0.1,10.1.0.1:38472")
	probeInterval := fs.Duration("probe-interval", 100*time.Millisecond, "time between two STAMP probes of one target by an agent")
	rttWindow := fs.Duration("rtt-window", 10*time.Second, "the window each agent's RTT report sums up (min, percentiles, jitter, loss)")
	rttFresh := fs.Duration("rtt-fresh", 0, "a measurement whose window ended longer ago is stale and not used (default 3 windows)")
	probeTargets := fs.Int("probe-targets", 16, "the most targets one agent probes; the RTT map estimates the pairs nobody probes")
	cellPort := fs.Int("cell-stamp-port", 862, "the STAMP port of cells' RAN addresses")
	radio := fs.String("radio-latency", "NR=1ms,EUTRA=4ms", "one-way radio latency per cell technology, added to half the measured RTT")
	slaInterval := fs.Duration("sla-interval", 30*time.Second, "how often placed instances' latency is checked against their bound (at least --rtt-window)")
	slaBreach := fs.Int("sla-breach-windows", 3, "checks in a row over the bound before an instance is alarmed and moved")
	slaClear := fs.Int("sla-clear-windows", 3, "checks in a row within the bound before the alarm clears")
	slaCooldown := fs.Duration("sla-move-cooldown", 10*time.Minute, "an instance moved for latency stays where it went at least this long")
	slaPerHour := fs.Int("sla-moves-per-hour", 2, "the most latency moves of one instance per hour")
	slaImprove := fs.Bool("sla-improve", false, "also move instances within their bound when another host is much nearer (see docs/latency.md)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	radioLatency, err := parseRadio(*radio)
	if err != nil {
		return err
	}
	if *slaInterval < *rttWindow {
		return fmt.Errorf("--sla-interval %v is shorter than --rtt-window %v: the watch would count one window several times", *slaInterval, *rttWindow)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *adminToken == "" {
		*adminToken = os.Getenv("MECORCH_ADMIN_TOKEN")
	}
	var key []byte
	if *keyFile != "" {
		k, err := os.ReadFile(*keyFile)
		if err != nil {
			return fmt.Errorf("--token-key-file: %w", err)
		}
		key = []byte(strings.TrimSpace(string(k)))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if !isDSN(*storeArg) {
		// A relative directory depends on where mecorch was started from
		// (systemd starts services in /): say which one it is.
		if abs, err := filepath.Abs(*storeArg); err == nil {
			*storeArg = abs
		}
	}
	store, engine, err := openStore(ctx, *storeArg)
	if err != nil {
		return err
	}
	defer store.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if *baseURL == "" {
		*baseURL = "http://" + ln.Addr().String()
		if host, _, _ := net.SplitHostPort(ln.Addr().String()); net.ParseIP(host).IsUnspecified() {
			log.Warn("listening on all addresses without --base-url: _links and notifications will name "+*baseURL+
				", which clients cannot reach; set --base-url to this server's external URL", "listen", *listen)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := etsiapi.New(etsiapi.Config{
		BaseURL: strings.TrimRight(*baseURL, "/"), AdminToken: *adminToken, SigningKey: key,
		OpTimeout: *opTimeout, StoreEngine: engine,
		Health: health.Config{HeartbeatInterval: *heartbeat, MissedHeartbeats: *missed, ReplaceAfter: *replaceAfter,
			MoveCooldown: *moveCooldown, ReadyHold: *readyHold},
		Agents: agenthub.Config{ServerVersion: version},
		Latency: etsiapi.LatencyConfig{
			Probes: rtt.Config{Interval: *probeInterval, Window: *rttWindow, Fresh: *rttFresh, MaxTargets: *probeTargets, CellPort: *cellPort},
			Radio:  radioLatency,
			SLA: slawatch.Config{Interval: *slaInterval, BreachWindows: *slaBreach, ClearWindows: *slaClear,
				MoveCooldown: *slaCooldown, MaxMovesPerHour: *slaPerHour, Improve: *slaImprove},
		},
	}, store, time.Now, log, reg)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}

	// The background work (notification delivery, expiry) outlives the
	// signal until the HTTP server has drained, so that the events of the
	// last requests are still delivered.
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- srv.Run(runCtx) }()
	if *sctpListen != "" {
		l, err := listenSCTP(*sctpListen)
		if err != nil {
			return err
		}
		go func() {
			if err := srv.Hub().ServeSCTP(runCtx, l); err != nil {
				log.Error("SCTP agent listener stopped", "err", err)
			}
		}()
		log.Info("serving agents over SCTP", "listen", *sctpListen)
	}
	serveErr := make(chan error, 1)
	go func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	}()
	log.Info("mecorch serving", "listen", ln.Addr().String(), "store", engine, "storeAt", storeWhere(*storeArg, engine), "baseURL", *baseURL)
	var failed error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case failed = <-serveErr:
	case failed = <-runDone:
		if failed == nil {
			failed = errors.New("background work stopped")
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && failed == nil {
		failed = err
	}
	stopRun()
	select {
	case <-runDone:
	case <-sctx.Done():
	}
	return failed
}

// parseRadio reads --radio-latency: RAT=duration pairs.
func parseRadio(arg string) (map[mec.RAT]time.Duration, error) {
	out := map[mec.RAT]time.Duration{}
	for _, kv := range strings.Split(arg, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		d, err := time.ParseDuration(v)
		switch {
		case !ok || (mec.RAT(k) != mec.RATNR && mec.RAT(k) != mec.RATEUTRA):
			return nil, fmt.Errorf("--radio-latency %q: want NR=<duration>,EUTRA=<duration>", arg)
		case err != nil || d < 0 || d > time.Second:
			return nil, fmt.Errorf("--radio-latency %q: %s needs a duration from 0 to 1s", arg, k)
		}
		out[mec.RAT(k)] = d
	}
	return out, nil
}

// version is mecorch's version, told to agents in their welcome.
const version = "0.3.0"

// listenSCTP opens the multi-homed agent listener of --agent-sctp-listen.
func listenSCTP(arg string) (agentwire.Listener, error) {
	i := strings.LastIndex(arg, ":")
	if i < 0 {
		return nil, fmt.Errorf("--agent-sctp-listen %q: want addresses:port", arg)
	}
	port, err := strconv.Atoi(arg[i+1:])
	if err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("--agent-sctp-listen %q: bad port", arg)
	}
	var ips []netip.Addr
	for _, a := range strings.Split(arg[:i], ",") {
		ip, err := netip.ParseAddr(strings.Trim(strings.TrimSpace(a), "[]"))
		if err != nil {
			return nil, fmt.Errorf("--agent-sctp-listen: %w", err)
		}
		ips = append(ips, ip)
	}
	l, err := agentwire.ListenSCTP(ips, port, agentwire.ServerOptions{})
	if err != nil {
		return nil, fmt.Errorf("--agent-sctp-listen: %w", err)
	}
	return l, nil
}

func isDSN(arg string) bool {
	return strings.HasPrefix(arg, "postgres://") || strings.HasPrefix(arg, "postgresql://")
}

// storeWhere names the store for the log without a DSN's password.
func storeWhere(arg, engine string) string {
	if engine != "postgres" {
		return arg
	}
	if u, err := url.Parse(arg); err == nil {
		return u.Redacted()
	}
	return "(postgres DSN)"
}

// openStore opens the embedded store in a directory, or Postgres for a DSN.
func openStore(ctx context.Context, arg string) (mec.Store, string, error) {
	if isDSN(arg) {
		s, err := pgstore.Open(ctx, arg, pgstore.Options{})
		if err != nil {
			return nil, "", fmt.Errorf("open postgres store: %w", err)
		}
		return s, "postgres", nil
	}
	s, err := boltstore.Open(arg, boltstore.Options{})
	if err != nil {
		return nil, "", fmt.Errorf("open embedded store: %w", err)
	}
	return s, "embedded", nil
}
