package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/mecorch/mecorch/lab/ransim"
)

func parseDN(args []string, stderr io.Writer) (ransim.DNConfig, common, error) {
	var c common
	var cfg ransim.DNConfig
	fs := newFlagSet("dn", stderr, &c, true)
	fs.StringVar(&cfg.Addr, "listen", ":7", "UDP (and TCP) address to echo on")
	fs.StringVar(&cfg.Name, "name", "", `prefix answers with NAME + "|" so that the UE can tell who answered`)
	fs.BoolVar(&cfg.TCP, "tcp", true, "echo on TCP too (line by line with --name)")
	return cfg, c, parse(fs, args)
}

func runDN(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, c, err := parseDN(args, stderr)
	if err != nil {
		return err
	}
	log, err := logger(c.logLevel, stderr)
	if err != nil {
		return err
	}
	dn, err := ransim.NewDN(cfg, log)
	if err != nil {
		return err
	}
	log.Info("dn: serving", "udp", dn.UDPAddr(), "tcp", dn.TCPAddr(), "name", cfg.Name)
	return serve(ctx, dn, c.stats, stdout, "dn_stats", cfg.Name, func() any { return dn.Stats() })
}

func parseUPF(args []string, stderr io.Writer) (ransim.UPFConfig, common, error) {
	var c common
	var cfg ransim.UPFConfig
	var sessions sessionsFlag
	fs := newFlagSet("upf", stderr, &c, true)
	fs.StringVar(&cfg.N3Addr, "n3", ":2152", "address GTP-U is received on")
	fs.StringVar(&cfg.N6Addr, "n6-addr", "", "local IP of the sockets towards the DN (default: any)")
	fs.Var(&sessions, "session", "a PDU session, repeatable: ue=IP,ulteid=TEID[,dlteid=TEID][,qfi=N][,gnb=IP[:PORT]]\n"+
		"(dlteid defaults to ulteid+0x1000, qfi to 9; the downlink goes to the gNB the session's uplink last came from, or gnb= before any)")
	fs.DurationVar(&cfg.FlowIdle, "flow-idle", time.Minute, "close a UE flow's DN socket after this long without traffic")
	if err := parse(fs, args); err != nil {
		return cfg, c, err
	}
	if len(sessions) == 0 {
		return cfg, c, usageErr("at least one --session is required")
	}
	cfg.Sessions = sessions
	return cfg, c, nil
}

func runUPF(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, c, err := parseUPF(args, stderr)
	if err != nil {
		return err
	}
	log, err := logger(c.logLevel, stderr)
	if err != nil {
		return err
	}
	upf, err := ransim.NewUPF(cfg, log)
	if err != nil {
		return err
	}
	log.Info("upf: serving", "n3", upf.N3Addr(), "sessions", len(cfg.Sessions))
	return serve(ctx, upf, c.stats, stdout, "upf_stats", "", func() any { return upf.Stats() })
}

func parseGNB(args []string, stderr io.Writer) (ransim.GNBConfig, common, error) {
	var c common
	var cfg ransim.GNBConfig
	var sessions sessionsFlag
	var cells listFlag
	fs := newFlagSet("gnb", stderr, &c, true)
	fs.StringVar(&cfg.Name, "name", "gnb", "the gNB's name, for logs and counters")
	fs.Var(&cells, "cell", "an NR CGI the gNB serves, MCC-MNC-<9 hex digits>; repeatable or comma-separated (required)")
	fs.StringVar(&cfg.RadioAddr, "radio", ":9000", "UDP address the UEs send their IP packets to")
	fs.StringVar(&cfg.N3Addr, "n3", ":2152", "local GTP-U address")
	fs.StringVar(&cfg.UPFAddr, "upf", "", "the UPF's N3 address, host[:port] (port 2152 by default; required)")
	fs.Var(&sessions, "session", "a PDU session, repeatable, as for upf: ue=IP,ulteid=TEID[,dlteid=TEID][,qfi=N]")
	fs.StringVar(&c.stampListen, "stamp-listen", "", "also run a STAMP reflector on this UDP address, e.g. :862")
	if err := parse(fs, args); err != nil {
		return cfg, c, err
	}
	if len(cells) == 0 || cfg.UPFAddr == "" || len(sessions) == 0 {
		return cfg, c, usageErr("--cell, --upf and --session are required")
	}
	cfg.Cells, cfg.Sessions = cells, sessions
	return cfg, c, nil
}

func runGNB(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, c, err := parseGNB(args, stderr)
	if err != nil {
		return err
	}
	log, err := logger(c.logLevel, stderr)
	if err != nil {
		return err
	}
	g, err := ransim.NewGNB(cfg, log)
	if err != nil {
		return err
	}
	if c.stampListen != "" {
		stop, err := startReflector(ctx, c.stampListen, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	return serve(ctx, g, c.stats, stdout, "gnb_stats", cfg.Name, func() any { return g.Stats() })
}

// ueFlags is the UE's command line beyond its configuration.
type ueFlags struct {
	mecorch   string
	tokenFile string
}

func parseUE(args []string, stderr io.Writer) (ransim.UEConfig, ueFlags, common, error) {
	var c common
	var f ueFlags
	var cfg ransim.UEConfig
	var addr, target, hoGNB, hoCell string
	var port uint
	var hoAfter time.Duration
	fs := newFlagSet("ue", stderr, &c, false)
	fs.StringVar(&cfg.ID, "id", "", "the UE's id in mecorch (default: --addr)")
	fs.StringVar(&addr, "addr", "", "the UE's IPv4 address inside the tunnel, e.g. 10.45.0.2 (required; the gNBs and UPF need its session)")
	fs.UintVar(&port, "port", 40000, "inner UDP source port")
	fs.StringVar(&cfg.GNB, "gnb", "", "the serving gNB's radio address, host[:port] (port 9000 by default; required)")
	fs.StringVar(&cfg.Cell, "cell", "", "the serving cell's NR CGI, reported as fromCell on a handover")
	fs.StringVar(&target, "dn", "", "the DN server, IP:port (required)")
	fs.Float64Var(&cfg.Rate, "rate", 10, "requests per second")
	fs.IntVar(&cfg.Size, "size", 64, "request payload octets (at least 12)")
	fs.DurationVar(&cfg.Timeout, "timeout", time.Second, "an unanswered request is lost after this long")
	fs.DurationVar(&cfg.ReportEvery, "report-interval", time.Second, "how often a stats line is printed")
	fs.IntVar(&cfg.Count, "count", 0, "stop after this many requests, once answered or timed out (0: run until SIGINT/SIGTERM)")
	fs.StringVar(&cfg.LocalAddr, "local", ":0", "local address of the UE's radio socket")
	fs.StringVar(&hoGNB, "handover-to", "", "hand over to this gNB radio address, host[:port], after --handover-after")
	fs.StringVar(&hoCell, "handover-cell", "", "the target cell's NR CGI (required with --handover-to)")
	fs.DurationVar(&hoAfter, "handover-after", 5*time.Second, "when to hand over, from the start")
	fs.StringVar(&f.mecorch, "mecorch", "", "mecorch's base URL; the handover's cell change is posted to <URL>/api/v1/ue_cell_changes")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding mecorch's bearer token (or $MECORCH_TOKEN, which ps does not show)")
	if err := parse(fs, args); err != nil {
		return cfg, f, c, err
	}
	var err error
	if cfg.Addr, err = netip.ParseAddr(addr); err != nil || !cfg.Addr.Is4() {
		return cfg, f, c, usageErr("--addr %q: want an IPv4 address", addr)
	}
	if cfg.Target, err = netip.ParseAddrPort(target); err != nil {
		return cfg, f, c, usageErr("--dn %q: want IP:port", target)
	}
	if cfg.GNB == "" {
		return cfg, f, c, usageErr("--gnb is required")
	}
	if port == 0 || port > 65535 {
		return cfg, f, c, usageErr("--port %d: want 1 to 65535", port)
	}
	cfg.Port = uint16(port)
	if (hoGNB == "") != (hoCell == "") {
		return cfg, f, c, usageErr("--handover-to and --handover-cell go together")
	}
	if hoGNB != "" {
		cfg.Handover = &ransim.Handover{After: hoAfter, GNB: hoGNB, Cell: hoCell}
	}
	return cfg, f, c, nil
}

func runUE(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, f, c, err := parseUE(args, stderr)
	if err != nil {
		return err
	}
	log, err := logger(c.logLevel, stderr)
	if err != nil {
		return err
	}
	if f.mecorch != "" {
		token := os.Getenv("MECORCH_TOKEN")
		if f.tokenFile != "" {
			b, err := os.ReadFile(f.tokenFile)
			if err != nil {
				return fmt.Errorf("token: %w", err)
			}
			token = strings.TrimSpace(string(b))
		}
		r, err := ransim.NewHTTPReporter(f.mecorch, token, nil)
		if err != nil {
			return usageErr("--mecorch: %v", err)
		}
		cfg.Reporter = r
	}
	cfg.Out = stdout
	ue, err := ransim.NewUE(cfg, log)
	if err != nil {
		return err
	}
	return ue.Run(ctx)
}
