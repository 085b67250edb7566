// Package dns is the agent's edge DNS responder for MEC 011 DNS rules: UEs steered to it get the local
// app instance's address for a rule's domain name, and every other query is relayed to the operator's
// resolvers, so a UE sees one ordinary recursive resolver.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
)

// DefaultTimeout bounds forwarding when Config.Timeout is zero. Stub resolvers (glibc, Android) retry
// after about 5 s, so answering SERVFAIL after 2 s lets them try their next server before they would
// have given up on us.
const DefaultTimeout = 2 * time.Second

// ednsSize is the UDP payload size advertised in local answers: the DNS Flag Day 2020 value, which
// avoids IP fragmentation on common paths (GTP-U adds its own overhead on the way to the UE).
const ednsSize = 1232

// Config configures a Responder.
type Config struct {
	// Listen is the address for both UDP and TCP, e.g. "10.45.255.53:53" or ":53". With port 0 both
	// transports get the same free port, see Responder.Addr.
	Listen string
	// Upstream are the operator's resolvers (host:port), tried in order. With none, names without a
	// rule are REFUSED.
	Upstream []string
	// Timeout bounds the whole forwarding of one query, across all upstreams; zero means DefaultTimeout.
	Timeout time.Duration
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
}

// Counters is a snapshot of what the responder did with the queries it received.
type Counters struct {
	Local            uint64 // answered from the rules (addresses and NODATA)
	Forwarded        uint64 // relayed from an upstream
	UpstreamFailures uint64 // no upstream answered in time: SERVFAIL
	Refused          uint64 // declined: REFUSED (no upstream), FORMERR, NOTIMP, BADVERS
}

// Responder answers DNS queries from the current rule table and forwards the rest.
type Responder struct {
	cfg       Config
	log       *slog.Logger
	udp       net.PacketConn
	tcp       net.Listener
	rules     atomic.Pointer[table]
	closeOnce sync.Once
	closeErr  error

	local, forwarded, upstreamFailures, refused atomic.Uint64
}

// New binds the UDP and TCP sockets; the responder answers nothing until Run. Binding here, not in
// Run, makes a port clash an error the caller sees at start-up.
func New(cfg Config) (*Responder, error) {
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("dns responder: negative timeout %s", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	for i, u := range cfg.Upstream {
		if _, _, err := net.SplitHostPort(u); err != nil {
			return nil, fmt.Errorf("dns responder: upstream[%d] %q: %w", i, u, err)
		}
	}
	cfg.Upstream = append([]string(nil), cfg.Upstream...)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	udp, tcp, err := listenBoth(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("dns responder: %w", err)
	}
	r := &Responder{cfg: cfg, log: log, udp: udp, tcp: tcp}
	r.rules.Store(&table{names: map[string]entry{}})
	return r, nil
}

// listenBoth binds UDP and TCP on one address. With port 0, TCP is bound to the port the kernel chose
// for UDP, retrying when that port is already taken for TCP, so one address serves both as DNS needs.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	const attempts = 20
	for range attempts {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		tcpAddr := addr
		if port == "0" {
			tcpAddr = net.JoinHostPort(host, strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port))
		}
		tcp, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if port != "0" || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("listen tcp %s: %w", tcpAddr, err)
		}
	}
	return nil, nil, fmt.Errorf("listen %s: no port free for both udp and tcp after %d attempts", addr, attempts)
}

// Addr is the address the responder serves on, for UDP and TCP alike.
func (r *Responder) Addr() string { return r.udp.LocalAddr().String() }

// SetRules validates rules as a whole and, only if all are valid, replaces the rules in force in one
// step: a query sees the old set or the new one, never a mix. On error the running set stays.
func (r *Responder) SetRules(rules []Rule) error {
	t, err := buildTable(rules)
	if err != nil {
		return err
	}
	r.rules.Store(t)
	r.log.Info("dns rules set", "names", len(t.names), "rules", len(rules))
	return nil
}

// Counters returns a snapshot of the counters.
func (r *Responder) Counters() Counters {
	return Counters{
		Local:            r.local.Load(),
		Forwarded:        r.forwarded.Load(),
		UpstreamFailures: r.upstreamFailures.Load(),
		Refused:          r.refused.Load(),
	}
}

// Close releases the sockets; Run calls it on return, a caller that never runs the responder calls it
// itself. It is safe to call more than once.
func (r *Responder) Close() error {
	r.closeOnce.Do(func() {
		r.closeErr = errors.Join(r.udp.Close(), r.tcp.Close())
	})
	return r.closeErr
}

// Run serves until ctx is done, then shuts both servers down and closes the sockets. It returns nil
// after ctx ends, or the error that stopped a server early.
func (r *Responder) Run(ctx context.Context) error {
	defer r.Close()
	servers := []*mdns.Server{
		r.server(ctx, "udp", func(s *mdns.Server) { s.PacketConn = r.udp }),
		r.server(ctx, "tcp", func(s *mdns.Server) { s.Listener = r.tcp }),
	}
	started := make(chan struct{}, len(servers))
	errs := make(chan error, len(servers))
	for _, s := range servers {
		s.NotifyStartedFunc = func() { started <- struct{}{} }
		go func() { errs <- s.ActivateAndServe() }()
	}
	// Shutdown fails on a server that has not started yet, so wait for both before watching ctx.
	for range servers {
		select {
		case <-started:
		case err := <-errs:
			r.shutdown(servers)
			return fmt.Errorf("dns responder: serve: %w", err)
		}
	}
	r.log.Info("dns responder serving", "addr", r.Addr(), "upstreams", r.cfg.Upstream)
	select {
	case <-ctx.Done():
		r.shutdown(servers)
		return nil
	case err := <-errs:
		r.shutdown(servers)
		return fmt.Errorf("dns responder: serve: %w", err)
	}
}

func (r *Responder) shutdown(servers []*mdns.Server) {
	// A fresh context: ctx is already done, and in-flight queries deserve the forwarding budget to finish.
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	defer cancel()
	for _, s := range servers {
		if err := s.ShutdownContext(ctx); err != nil {
			r.log.Debug("dns responder shutdown", "net", s.Net, "err", err)
		}
	}
}

func (r *Responder) server(ctx context.Context, network string, set func(*mdns.Server)) *mdns.Server {
	s := &mdns.Server{
		Net:     network,
		Handler: &handler{r: r, ctx: ctx, tcp: network == "tcp"},
		// Count what the library declines before our handler sees it, so Counters adds up.
		MsgAcceptFunc: func(h mdns.Header) mdns.MsgAcceptAction {
			a := mdns.DefaultMsgAcceptFunc(h)
			if a == mdns.MsgReject || a == mdns.MsgRejectNotImplemented {
				r.refused.Add(1)
			}
			return a
		},
	}
	set(s)
	return s
}
