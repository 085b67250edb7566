package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/mec/agent"
	"github.com/mecorch/mecorch/traffic/classify"
)

// dpFlags are the data plane's flags (see mec/agent/DATAPLANE.md).
type dpFlags struct {
	steerIface, coreIface string
	uePrefixes            []netip.Prefix
	pinDir                string
	vtep                  string
	vni                   uint
	ueDNS                 string
	dnsUpstream           []string
	metricsListen         string
}

// bpffs is where pinned programs and maps live.
const bpffs = "/sys/fs/bpf"

func (f *dpFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.steerIface, "steer-iface", "", "interface where the RAN's GTP-U uplink arrives: enforce instances' traffic rules there (eBPF, tcx); empty: no steering")
	fs.StringVar(&f.coreIface, "core-iface", "", "interface where downlink GTP-U from the core arrives: learn UE tunnels there (learn-only, changes nothing; needs --steer-iface)")
	fs.Func("ue-prefix", "a UE address pool, e.g. 10.45.0.0/16 (repeatable): replies of apps to other destinations are not tunnelled", func(v string) error {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return err
		}
		f.uePrefixes = append(f.uePrefixes, p)
		return nil
	})
	fs.StringVar(&f.pinDir, "bpf-pin-dir", "", "bpffs directory where the steering programs and maps are pinned so a restart has no gap (default "+bpffs+"/mecorch/<host-id>; \"off\": not pinned)")
	fs.StringVar(&f.vtep, "vtep", "", "this host's VXLAN underlay address: steer to instances at other sites and take theirs (needs --steer-iface)")
	fs.UintVar(&f.vni, "vni", agent.DefaultVNI, "the overlay's VXLAN network identifier")
	fs.StringVar(&f.ueDNS, "ue-dns", "", "the resolver address UEs use: their DNS is steered to the agent's responder, which answers the apps' DNS rules (needs --steer-iface and --dns-upstream)")
	fs.Func("dns-upstream", "resolver host:port the edge DNS responder forwards other names to (repeatable)", func(v string) error {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return err
		}
		f.dnsUpstream = append(f.dnsUpstream, v)
		return nil
	})
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "address for Prometheus /metrics (e.g. :9470); empty: none")
}

func (f *dpFlags) check(hostID string) error {
	if f.steerIface == "" && (f.coreIface != "" || len(f.uePrefixes) > 0 || f.vtep != "" || f.ueDNS != "") {
		return errors.New("--core-iface, --ue-prefix, --vtep and --ue-dns need --steer-iface")
	}
	// Without UE pools the return path would drop every reply that is
	// not to a known UE: the apps' DNS, the core, mecorch itself.
	if f.steerIface != "" && len(f.uePrefixes) == 0 {
		return errors.New("--steer-iface needs at least one --ue-prefix (the UE pools), or apps lose all their other traffic")
	}
	if f.coreIface != "" && f.coreIface == f.steerIface {
		return errors.New("--core-iface must differ from --steer-iface")
	}
	if f.vtep != "" {
		if a, err := netip.ParseAddr(f.vtep); err != nil || a.IsUnspecified() || a.IsMulticast() {
			return fmt.Errorf("--vtep %q: want a unicast address", f.vtep)
		}
	}
	if f.vni == 0 || f.vni > 1<<24-1 {
		return fmt.Errorf("--vni %d: want 1 to %d", f.vni, 1<<24-1)
	}
	if f.ueDNS != "" {
		if _, err := netip.ParseAddr(f.ueDNS); err != nil {
			return fmt.Errorf("--ue-dns: %w", err)
		}
		if len(f.dnsUpstream) == 0 {
			return errors.New("--ue-dns needs at least one --dns-upstream")
		}
	}
	switch f.pinDir {
	case "off":
	case "":
		// The host ID becomes a path element: one that is not a plain
		// name could point the pins (and their removal) anywhere.
		if hostID == "." || hostID == ".." || strings.ContainsAny(hostID, "/\x00") {
			return fmt.Errorf("--host-id %q cannot name a pin directory: give --bpf-pin-dir", hostID)
		}
		f.pinDir = filepath.Join(bpffs, "mecorch", hostID)
	default:
		if !filepath.IsAbs(f.pinDir) {
			return fmt.Errorf("--bpf-pin-dir %q: want an absolute path", f.pinDir)
		}
	}
	return nil
}

// pins is the pin directory, or "" when pinning is off.
func (f *dpFlags) pins() string {
	if f.pinDir == "off" {
		return ""
	}
	return f.pinDir
}

// ensureBPFFS mounts bpffs on /sys/fs/bpf when it is not there yet.
func ensureBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(bpffs, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := os.MkdirAll(bpffs, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("bpffs", bpffs, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs on %s (for --bpf-pin-dir %s): %w", bpffs, dir, err)
	}
	return nil
}

// newDataplane builds the steering data plane from the flags, or, without
// --steer-iface, removes what a previous run pinned (steering was turned
// off: nothing of it may stay attached). Nil without --steer-iface.
func newDataplane(f dpFlags, nets agent.Networks, bridge, netnsDir, nsPrefix string, log *slog.Logger) (*agent.Steering, error) {
	if f.steerIface == "" {
		if dir := f.pins(); dir != "" {
			if _, err := os.Stat(dir); err == nil {
				log.Info("steering off: removing what an earlier run pinned", "dir", dir)
				if err := classify.RemovePins(dir); err != nil {
					return nil, fmt.Errorf("remove pinned steering in %s: %w", dir, err)
				}
			}
		}
		if err := removeDNSLeftover(netnsDir, nsPrefix); err != nil {
			return nil, err
		}
		return nil, nil
	}
	cfg := agent.SteeringConfig{SteerIface: f.steerIface, CoreIface: f.coreIface, UEPrefixes: f.uePrefixes,
		Networks: nets, PinDir: f.pins(), Bridge: bridge, VNI: uint32(f.vni), Logger: log}
	if cfg.PinDir != "" {
		if err := ensureBPFFS(cfg.PinDir); err != nil {
			return nil, err
		}
	}
	if f.vtep != "" {
		cfg.VTEP = netip.MustParseAddr(f.vtep)
	}
	if f.ueDNS != "" {
		cfg.DNS = &agent.DNSConfig{Resolver: netip.MustParseAddr(f.ueDNS), Upstream: f.dnsUpstream,
			NetnsDir: netnsDir, NetnsName: dnsNetns(nsPrefix)}
	} else if err := removeDNSLeftover(netnsDir, nsPrefix); err != nil {
		return nil, err
	}
	return agent.NewSteering(cfg)
}

// dnsKey follows the instances' prefix in the DNS responder's namespace
// name. No instance has it (their keys start with a letter or digit), and
// the runtime's sweep of leftover instances is told to keep it.
const dnsKey = "_dns"

// dnsNetns names the DNS responder's namespace, beside the instances'.
func dnsNetns(nsPrefix string) string { return nsPrefix + dnsKey }

// removeDNSLeftover removes the DNS responder an earlier run kept for a
// restart (its namespace and veth), when this run has none.
func removeDNSLeftover(netnsDir, nsPrefix string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, dnsNetns(nsPrefix))); err != nil {
		return nil
	}
	if err := agent.RemoveDNSEdge("", netnsDir, dnsNetns(nsPrefix)); err != nil {
		return fmt.Errorf("remove the DNS responder an earlier run left: %w", err)
	}
	return nil
}

// serveMetrics serves /metrics until ctx ends.
func serveMetrics(ctx context.Context, addr string, st *agent.Steering, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if st != nil {
		reg.MustRegister(st.Collector())
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("metrics", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
