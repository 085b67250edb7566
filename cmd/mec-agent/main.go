// Command mec-agent runs on every edge server: it dials mecorch, registers
// its host, runs the app instances of the host's desired state (each a
// process in its own network namespace and cgroup) and reports back. It
// keeps serving its instances while mecorch is unreachable.
//
//	mec-agent --orchestrator ws://mecorch:8080/api/v1/agents/connect \
//	    --host-id munich-1-a --site munich-1 \
//	    --client-id … --client-secret-file /etc/mec-agent/secret
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mecorch/mecorch/etsi-api/agentclient"
	"github.com/mecorch/mecorch/mec/agent"
	"github.com/mecorch/mecorch/mec/apprun"
)

// version is the agent's version, reported to mecorch.
const version = "0.3.0"

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "mec-agent:", err)
		os.Exit(1)
	}
}

type flags struct {
	orchestrator, api, hostID, site             string
	clientID, secretFile, tokenFile, caFile     string
	stateDir, bridge, subnet, netnsDir, nsPrefx string
	cgroup, restart, labels, sctpLocal, level   string
	runAs, stampListen, stampMode               string
	cpu, memory, storage                        int64
	offlineGrace, resync                        time.Duration
	logMax                                      int64
	dp                                          dpFlags
}

func parse(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("mec-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.orchestrator, "orchestrator", "", "mecorch's agent endpoint: ws(s)://host:port[/api/v1/agents/connect], http(s)://host:port, or sctp://host:port")
	fs.StringVar(&f.api, "api", "", "mecorch's HTTP base URL for tokens and images (default: derived from --orchestrator)")
	fs.StringVar(&f.hostID, "host-id", "", "this host's id in mecorch's inventory (required)")
	fs.StringVar(&f.site, "site", "", "the site this host is at (required)")
	fs.StringVar(&f.clientID, "client-id", "", "the agent's OAuth client id (a client of role agent named after the host)")
	fs.StringVar(&f.secretFile, "client-secret-file", "", "file holding the client secret (or $MEC_AGENT_CLIENT_SECRET)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding a bearer token to use instead of client credentials (development)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM CA bundle to verify mecorch's certificate on wss/https (default: the system's)")
	fs.StringVar(&f.stateDir, "state-dir", "/var/lib/mec-agent", "where the desired state, images, instance state and logs are kept")
	fs.StringVar(&f.bridge, "bridge", "mecbr0", "the host's app bridge")
	fs.StringVar(&f.subnet, "app-subnet", "10.200.0.0/24", "the app bridge's subnet; the bridge takes its first address, instances the next ones")
	fs.StringVar(&f.netnsDir, "netns-dir", "/run/netns", "where instance network namespaces are named (ip netns sees /run/netns)")
	fs.StringVar(&f.nsPrefx, "netns-prefix", "mec-", "prefix of the instances' namespace names")
	fs.StringVar(&f.cgroup, "cgroup", "mecorch", "the cgroup under which instances' cgroups are made")
	fs.StringVar(&f.restart, "restart", "Always", "instances' restart policy: Always, OnFailure or Never")
	fs.StringVar(&f.runAs, "run-as", "nobody", "the user instances run as (no capabilities; they may bind low ports in their own namespace only); root runs them as root")
	fs.StringVar(&f.labels, "labels", "", "host labels, k=v,k=v")
	fs.StringVar(&f.sctpLocal, "sctp-local", "", "comma-separated local addresses an sctp:// association binds (multi-homing)")
	fs.StringVar(&f.stampListen, "stamp-listen", ":862", "where the STAMP reflector answers mecorch's latency probes (RFC 8762); \"off\" disables probing")
	fs.StringVar(&f.stampMode, "stamp-mode", "auto", "probe timestamps: auto (kernel stamps, user space only where the kernel has none) or user")
	fs.StringVar(&f.level, "log-level", "info", "debug, info, warn or error")
	fs.Int64Var(&f.cpu, "capacity-cpu", 0, "milli-CPUs offered to instances (default: every CPU of the machine)")
	fs.Int64Var(&f.memory, "capacity-memory", 0, "MiB of memory offered (default: the machine's total less 10%)")
	fs.Int64Var(&f.storage, "capacity-storage", 0, "GB of storage offered (default: the free space under --state-dir)")
	fs.DurationVar(&f.offlineGrace, "offline-grace", 5*time.Second, "how long a starting agent waits for mecorch before it runs the desired state kept on disk")
	fs.DurationVar(&f.resync, "resync", 5*time.Second, "how often instances are checked against the desired state")
	fs.Int64Var(&f.logMax, "log-max-bytes", 4<<20, "bound of each instance's log file (one older file is kept)")
	f.dp.register(fs)
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	var missing []string
	for name, v := range map[string]string{"--orchestrator": f.orchestrator, "--host-id": f.hostID, "--site": f.site} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if err := f.dp.check(f.hostID); err != nil {
		return f, err
	}
	if f.stampMode != "auto" && f.stampMode != "user" {
		return f, fmt.Errorf("--stamp-mode %q: want auto or user", f.stampMode)
	}
	if f.clientID == "" && f.tokenFile == "" {
		missing = append(missing, "--client-id (or --token-file)")
	}
	if len(missing) > 0 {
		return f, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return f, nil
}

func run(args []string, stderr io.Writer) error {
	f, err := parse(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})).With("host", f.hostID)

	wsURL, api, err := endpoints(f.orchestrator, f.api)
	if err != nil {
		return err
	}
	subnet, err := netip.ParsePrefix(f.subnet)
	if err != nil {
		return fmt.Errorf("--app-subnet: %w", err)
	}
	capacity, err := detectCapacity(f)
	if err != nil {
		return err
	}
	labels, err := parseLabels(f.labels)
	if err != nil {
		return err
	}
	tlsCfg, err := tlsConfig(f.caFile)
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment}}
	tokens, err := newTokens(f, api, hc)
	if err != nil {
		return err
	}
	runAs, err := runAsUser(f.runAs, f.stateDir)
	if err != nil {
		return err
	}
	rt, err := apprun.NewProcess(apprun.Config{
		RunAs:       runAs,
		StateDir:    filepath.Join(f.stateDir, "instances"),
		NetnsDir:    f.netnsDir,
		NetnsPrefix: f.nsPrefx,
		Bridge:      f.bridge,
		Subnet:      subnet,
		Cgroup:      f.cgroup,
		LogMaxBytes: f.logMax,
		Logger:      log,
	})
	if err != nil {
		return fmt.Errorf("instance runtime: %w", err)
	}
	defer rt.Close()
	// What a crash left without a record (a namespace made but never
	// written down, a cgroup whose instance is gone) is removed now; the
	// instances with a record are the reconcile's to judge.
	known := map[string]bool{}
	for _, st := range rt.List() {
		known[st.ID] = true
	}
	sweepCtx, cancelSweep := context.WithTimeout(context.Background(), time.Minute)
	if err := rt.Sweep(sweepCtx, func(id string) bool { return known[id] || id == dnsKey }); err != nil {
		log.Warn("sweeping leftovers of earlier runs", "err", err)
	}
	cancelSweep()
	var dp agent.Dataplane
	steering, err := newDataplane(f.dp, rt, f.bridge, f.netnsDir, f.nsPrefx, log)
	if err != nil {
		return fmt.Errorf("data plane: %w", err)
	}
	if steering != nil {
		// With pinning, Close lets go without detaching: a restarted agent
		// takes the programs and maps over (mec/agent/DATAPLANE.md).
		defer steering.Close()
		dp = steering
	}
	images := agentclient.NewImages(api, f.hostID, filepath.Join(f.stateDir, "images"), tokens, hc)
	ag, err := agent.New(agent.Config{HostID: f.hostID, AgentVersion: version, StateDir: f.stateDir,
		Resync: f.resync, OfflineGrace: f.offlineGrace, Restart: apprun.RestartPolicy(f.restart), Dataplane: dp, Logger: log}, rt, images)
	if err != nil {
		return err
	}
	var local []netip.Addr
	for _, s := range strings.FieldsFunc(f.sctpLocal, func(r rune) bool { return r == ',' }) {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("--sctp-local: %w", err)
		}
		local = append(local, a)
	}
	chCfg := agentclient.Config{URL: wsURL, HostID: f.hostID, SiteID: f.site, AgentVersion: version,
		Capacity: capacity, Labels: labels, TLS: tlsCfg, SCTPLocal: local, VTEP: f.dp.vtep, Logger: log}
	var prober *agent.Prober
	if f.stampListen != "off" {
		// Probing is an extra: an agent that cannot bind its reflector
		// still runs its instances, and mecorch simply does not probe it.
		prober, err = agent.NewProber(agent.ProberConfig{Listen: f.stampListen, Mode: f.stampMode, Logger: log})
		if err != nil {
			log.Error("latency probing disabled", "err", err)
		} else {
			chCfg.Prober = prober
		}
	}
	ch, err := agentclient.New(chCfg, ag, tokens)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("mec-agent starting", "version", version, "orchestrator", wsURL, "site", f.site,
		"capacity", capacity, "bridge", f.bridge, "subnet", subnet.String())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = ag.Run(ctx) }()
	go func() { defer wg.Done(); _ = ch.Run(ctx) }()
	if prober != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = prober.Run(ctx) }()
	}
	if f.dp.metricsListen != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serveMetrics(ctx, f.dp.metricsListen, steering, log); err != nil {
				log.Error("metrics", "err", err)
			}
		}()
	}
	wg.Wait()
	// The instances keep running: an agent stopped for an upgrade must not
	// take its apps down with it.
	log.Info("mec-agent stopped; instances left running")
	return nil
}

// endpoints returns the channel URL and the HTTP API base from the flags;
// an http(s) URL stands for the websocket endpoint on that server.
func endpoints(orch, api string) (string, string, error) {
	switch {
	case strings.HasPrefix(orch, "http://"), strings.HasPrefix(orch, "https://"):
		base := strings.TrimRight(orch, "/")
		ws := "ws" + strings.TrimPrefix(base, "http") + "/api/v1/agents/connect"
		if api == "" {
			api = base
		}
		return ws, api, nil
	case strings.HasPrefix(orch, "ws://"), strings.HasPrefix(orch, "wss://"):
		u, err := url.Parse(orch)
		if err != nil {
			return "", "", fmt.Errorf("--orchestrator: %w", err)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/api/v1/agents/connect"
			orch = u.String()
		}
		if api == "" {
			b, err := agentclient.APIBase(orch)
			if err != nil {
				return "", "", err
			}
			api = b
		}
		return orch, api, nil
	case strings.HasPrefix(orch, "sctp://"):
		if api == "" {
			return "", "", errors.New("--api is required with an sctp:// orchestrator (images and tokens come over HTTP)")
		}
		return orch, api, nil
	}
	return "", "", fmt.Errorf("--orchestrator %q: the scheme must be ws, wss, http, https or sctp", orch)
}

func newTokens(f flags, api string, hc *http.Client) (*agentclient.Tokens, error) {
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		return agentclient.NewTokens(api, "", "", strings.TrimSpace(string(b)), hc, time.Now), nil
	}
	secret := os.Getenv("MEC_AGENT_CLIENT_SECRET")
	if f.secretFile != "" {
		b, err := os.ReadFile(f.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--client-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		return nil, errors.New("no client secret: give --client-secret-file or $MEC_AGENT_CLIENT_SECRET")
	}
	return agentclient.NewTokens(api, f.clientID, secret, "", hc, time.Now), nil
}

func tlsConfig(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// runAsUser resolves --run-as. Instances running as another user than
// root must reach their executables: the state directory is made
// traversable (0711: nothing in it can be listed, and what is secret in it
// stays 0600) and the image cache readable (0755).
func runAsUser(name, stateDir string) (*apprun.Credential, error) {
	if name == "root" || name == "0" {
		return nil, nil
	}
	uid, gid, err := apprun.LookupUser(name)
	if err != nil {
		return nil, fmt.Errorf("--run-as: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(stateDir, "images"), 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(stateDir, 0o711); err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Join(stateDir, "images"), 0o755); err != nil {
		return nil, err
	}
	return &apprun.Credential{UID: uid, GID: gid}, nil
}

func parseLabels(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--labels: %q is not k=v", kv)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}
