// Command mec-labsim runs the lab's RAN and core simulators (package
// lab/ransim), one per process, so that a lab topology can put each in a
// node of its own:
//
//	mec-labsim dn  [--listen :7] [--name NAME]
//	mec-labsim upf --session ue=10.45.0.2,ulteid=0x100,dlteid=0x200,qfi=9 [--n3 :2152] [--n6-addr IP]
//	mec-labsim gnb --cell 262-01-0000000a1 --upf 10.62.0.2 --session … [--radio :9000] [--n3 :2152]
//	mec-labsim ue  --addr 10.45.0.2 --gnb 10.61.0.11 --dn 10.63.0.3:7 [--handover-to … --handover-cell …]
//	mec-labsim stamp-probe --target 10.61.0.11:862 [--interval 100ms] [--count N] [--mode auto|user] [--json]
//	mec-labsim burn [--threads N]
//
// gnb --stamp-listen ADDR also answers STAMP probes (as RAN nodes with a
// TWAMP-light reflector do).
//
// Logs go to stderr; stdout gets JSON lines (the UE's latency reports,
// the others' counters).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mecorch/mecorch/lab/ransim"
)

const usage = `mec-labsim: RAN and core simulators for the mecorch lab (GTP-U in user space)

usage:
  mec-labsim dn  [flags]   data-network server: UDP (and TCP) echo, answers prefixed "NAME|"
  mec-labsim upf [flags]   UPF: GTP-U on N3, decapsulates towards the DN, encapsulates the answers
  mec-labsim gnb [flags]   gNB: UEs' radio socket ⇄ GTP-U tunnels to the UPF
  mec-labsim ue  [flags]   UE: request/response traffic, latency and loss as JSON lines, handover
  mec-labsim stamp-probe [flags]  STAMP (RFC 8762) sender: RTT samples or a summary
  mec-labsim burn [flags]  keep CPUs busy (for load tests)

mec-labsim <subcommand> -h lists a subcommand's flags.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is main without the process: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"dn": runDN, "upf": runUPF, "gnb": runGNB, "ue": runUE,
		"stamp-probe": runStampProbe, "burn": runBurn,
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mec-labsim: unknown subcommand %q\n%s", args[0], usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := cmd(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "mec-labsim %s: %v\n", args[0], err)
		return 2
	}
	fmt.Fprintf(stderr, "mec-labsim %s: %v\n", args[0], err)
	return 1
}

// errUsage marks a bad command line (exit status 2).
var errUsage = errors.New("usage")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// common are the flags every subcommand has.
type common struct {
	logLevel string
	stats    time.Duration
	// stampListen (gnb only): also answer STAMP probes there.
	stampListen string
}

func newFlagSet(name string, stderr io.Writer, c *common, withStats bool) *flag.FlagSet {
	fs := flag.NewFlagSet("mec-labsim "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	if withStats {
		fs.DurationVar(&c.stats, "stats-interval", 0, "print the counters as a JSON line on stdout this often (0: only when stopping)")
	}
	return fs
}

// parse parses args; anything left over is an error.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	return nil
}

func logger(level string, stderr io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErr("--log-level %q: %v", level, err)
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l})), nil
}

// sessionsFlag collects repeated --session flags.
type sessionsFlag []ransim.Session

func (s *sessionsFlag) String() string {
	parts := make([]string, len(*s))
	for i, x := range *s {
		parts[i] = x.String()
	}
	return strings.Join(parts, " ")
}

func (s *sessionsFlag) Set(v string) error {
	x, err := ransim.ParseSession(v)
	if err != nil {
		return err
	}
	*s = append(*s, x)
	return nil
}

// listFlag collects a repeated flag; commas separate values too.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*l = append(*l, x)
		}
	}
	return nil
}

// statsLine is a counters line: {"type":"upf_stats","time":…,"name":…,…}.
func writeStats(out io.Writer, kind, name string, final bool, counters any) error {
	b, err := json.Marshal(counters)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	head, err := json.Marshal(struct {
		Type  string    `json:"type"`
		Time  time.Time `json:"time"`
		Name  string    `json:"name,omitempty"`
		Final bool      `json:"final,omitempty"`
	}{kind, time.Now().UTC(), name, final})
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	// Merge the two objects: head without its "}", counters without "{".
	line := append(head[:len(head)-1], ',')
	line = append(append(line, b[1:]...), '\n')
	if len(b) == 2 { // no counters
		line = append(head, '\n')
	}
	_, err = out.Write(line)
	return err
}

// serve runs a simulator, printing its counters every interval and once
// when it stops.
func serve(ctx context.Context, r interface{ Run(context.Context) error }, interval time.Duration, out io.Writer,
	kind, name string, counters func() any) error {
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-tick:
			if err := writeStats(out, kind, name, false, counters()); err != nil {
				return err
			}
		case err := <-done:
			return errors.Join(err, writeStats(out, kind, name, true, counters()))
		}
	}
}
