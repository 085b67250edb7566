package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/mecorch/mecorch/lab/bootstrap"
	"github.com/mecorch/mecorch/lab/runner"
	"github.com/mecorch/mecorch/lab/topology"
)

const labUsage = `usage:
  mecorch lab up <file.clab.yml> [--state-dir DIR] [--netns-dir DIR] [--env K=V]... [--emulate-all]
      bring the lab up in network namespaces, run until SIGINT/SIGTERM, then remove it
  mecorch lab status <file|name|state-dir> [--state-dir DIR] [--json]
  mecorch lab down <file|name|state-dir> [--state-dir DIR] [--netns-dir DIR]
      remove a lab whose runner is gone (or stop the runner that still runs it)
  mecorch lab netem <file.clab.yml>
      print the containerlab tools netem commands that give a Docker deployment the file's link delays
`

// errHelp ends a subcommand whose help was asked for, successfully.
var errHelp = errors.New("help requested")

// labCmd runs `mecorch lab …`: the netns runner of lab/runner.
func labCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, labUsage)
		return errors.New("lab: no subcommand")
	}
	var err error
	switch args[0] {
	case "up":
		err = labUp(args[1:], stdout, stderr)
	case "status":
		err = labStatus(args[1:], stdout, stderr)
	case "down":
		err = labDown(args[1:], stdout, stderr)
	case "netem":
		err = labNetem(args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, labUsage)
		return nil
	default:
		fmt.Fprint(stderr, labUsage)
		return fmt.Errorf("lab: unknown subcommand %q", args[0])
	}
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// envFlag collects repeated --env K=V.
type envFlag map[string]string

func (e envFlag) String() string { return "" }

func (e envFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want K=V, got %q", s)
	}
	e[k] = v
	return nil
}

// labFlags are the flags all lab subcommands share.
type labFlags struct {
	fs       *flag.FlagSet
	stateDir *string
	netnsDir *string
	logLevel *string
}

func newLabFlags(name string, stderr io.Writer) *labFlags {
	fs := flag.NewFlagSet("lab "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &labFlags{
		fs:       fs,
		stateDir: fs.String("state-dir", "", "state directory (default "+runner.DefaultStateRoot+"/<lab>)"),
		netnsDir: fs.String("netns-dir", "", "where namespaces are mounted (default /run/netns)"),
		logLevel: fs.String("log-level", "info", "debug, info, warn or error"),
	}
}

// parse takes flags before and after the one positional argument.
func (f *labFlags) parse(args []string) (string, error) {
	var pos []string
	for {
		if err := f.fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return "", errHelp
		} else if err != nil {
			return "", err
		}
		if f.fs.NArg() == 0 {
			break
		}
		pos = append(pos, f.fs.Arg(0))
		args = f.fs.Args()[1:]
	}
	if len(pos) != 1 {
		return "", fmt.Errorf("lab %s: want one topology file, lab name or state directory, got %d", f.fs.Name(), len(pos))
	}
	return pos[0], nil
}

func (f *labFlags) options(stderr io.Writer) (runner.Options, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(*f.logLevel)); err != nil {
		return runner.Options{}, fmt.Errorf("--log-level: %w", err)
	}
	return runner.Options{
		StateDir: *f.stateDir, NetnsDir: *f.netnsDir,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}, nil
}

// labTarget turns a topology file into its lab's name and a directory
// into a path runner takes as a state directory; anything else is a lab
// name.
func labTarget(arg string) (string, error) {
	st, err := os.Stat(arg)
	switch {
	case err != nil:
		return arg, nil
	case st.IsDir():
		return filepath.Abs(arg)
	}
	t, err := topology.Load(arg)
	if err != nil {
		return "", err
	}
	return t.Name, nil
}

func labUp(args []string, stdout, stderr io.Writer) error {
	f := newLabFlags("up", stderr)
	env := envFlag{}
	f.fs.Var(env, "env", "K=V added to every node's environment (repeatable); a node's own env wins")
	emulateAll := f.fs.Bool("emulate-all", false, "relay every link in user space, so any link's delay can change while the lab runs")
	var publish []string
	f.fs.Func("publish", "LISTEN=NODE:PORT: make a node's TCP port reachable here, e.g. 127.0.0.1:8080=orchestrator:8080 (repeatable)", func(s string) error {
		if _, _, ok := strings.Cut(s, "="); !ok {
			return fmt.Errorf("want LISTEN=NODE:PORT, got %q", s)
		}
		publish = append(publish, s)
		return nil
	})
	bootPkg := f.fs.String("bootstrap", "", "once up, register the lab's sites and cells in mecorch (reached through the first --publish, with $MECORCH_ADMIN_TOKEN), wait for its agents, then onboard and instantiate this app package")
	file, err := f.parse(args)
	if err != nil {
		return err
	}
	opts, err := f.options(stderr)
	if err != nil {
		return err
	}
	t, err := topology.Load(file)
	if err != nil {
		return err
	}
	for _, w := range t.WarningText() {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if _, ok := env["PATH"]; !ok {
		// Node commands name mecorch's binaries (mec-agent, mec-labsim):
		// find those built next to this one first.
		if exe, err := os.Executable(); err == nil {
			env["PATH"] = filepath.Dir(exe) + ":" + runner.DefaultPath
		}
	}
	opts.ExtraEnv, opts.EmulateAll = env, *emulateAll

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lab, err := runner.Up(ctx, t, opts)
	if err != nil {
		return err
	}
	printLab(stdout, t, lab)
	var api string
	for _, p := range publish {
		listen, dst, _ := strings.Cut(p, "=")
		node, port, ok := strings.Cut(dst, ":")
		if !ok {
			_ = lab.Close()
			return fmt.Errorf("--publish %q: want LISTEN=NODE:PORT", p)
		}
		if _, err := lab.Publish(ctx, listen, node, "127.0.0.1:"+port); err != nil {
			_ = lab.Close()
			return err
		}
		fmt.Fprintf(stdout, "%s's port %s is at %s\n", node, port, listen)
		if api == "" {
			api = "http://" + listen
		}
	}
	if *bootPkg != "" {
		if err := labBootstrap(ctx, stdout, t, lab, api, *bootPkg); err != nil {
			if ctx.Err() != nil { // interrupted: a clean teardown, not a failure
				return lab.Wait(ctx)
			}
			_ = lab.Close()
			return err
		}
	}
	return lab.Wait(ctx)
}

// labBootstrap fills the lab's mecorch and says where to look.
func labBootstrap(ctx context.Context, stdout io.Writer, t *topology.Topology, lab *runner.Lab, api, pkg string) error {
	token := os.Getenv("MECORCH_ADMIN_TOKEN")
	if api == "" || token == "" {
		return errors.New("--bootstrap needs a --publish of mecorch's port and $MECORCH_ADMIN_TOKEN")
	}
	fmt.Fprintln(stdout, "bootstrapping: sites, cells, agents, the app package…")
	res, err := bootstrap.Run(ctx, t, bootstrap.Config{API: api, Token: token, Package: pkg})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sites %s; cells %s; hosts %s\n", strings.Join(res.Sites, ","), strings.Join(res.Cells, ","), strings.Join(res.Hosts, ","))
	fmt.Fprintf(stdout, "app %s: instance %s runs on %s\n", res.AppDID, res.InstanceID, res.InstanceHost)
	fmt.Fprintf(stdout, "\nAPI      %s  (Authorization: Bearer $(cat .mecorch/admin-token))\n", api)
	fmt.Fprintf(stdout, "health   %s/healthz\nmetrics  %s/metrics\n", api, api)
	fmt.Fprintf(stdout, "agents   %s/api/v1/agents   alarms %s/api/v1/alarms   UEs %s/api/v1/ues\n", api, api, api)
	fmt.Fprintf(stdout, "logs     %s/logs/<node>.log\n", lab.StateDir())
	fmt.Fprintln(stdout, "Ctrl-C tears the lab down.")
	return nil
}

// printLab lists each node's namespace and addresses.
func printLab(w io.Writer, t *topology.Topology, lab *runner.Lab) {
	addrs := map[string][]string{}
	for _, l := range t.Links {
		for _, e := range []topology.Endpoint{l.A, l.B} {
			a := e.Iface
			for _, p := range []netip.Prefix{e.Addr, e.Addr6} {
				if p.IsValid() {
					a += " " + p.String()
				}
			}
			addrs[e.Node] = append(addrs[e.Node], a)
		}
	}
	fmt.Fprintf(w, "lab %s is up (state and logs in %s); SIGINT or SIGTERM removes it\n", t.Name, lab.StateDir())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNAMESPACE\tINTERFACES")
	for _, n := range t.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Name, t.Namespace(n.Name), strings.Join(addrs[n.Name], ", "))
	}
	tw.Flush()
}

func labStatus(args []string, stdout, stderr io.Writer) error {
	f := newLabFlags("status", stderr)
	asJSON := f.fs.Bool("json", false, "print the status as JSON")
	arg, err := f.parse(args)
	if err != nil {
		return err
	}
	opts, err := f.options(stderr)
	if err != nil {
		return err
	}
	target, err := labTarget(arg)
	if err != nil {
		return err
	}
	st, err := runner.Status(target, opts)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(stdout, st)
	return nil
}

func printStatus(w io.Writer, st *runner.LabStatus) {
	runnerState := "no state file"
	if st.HasState {
		runnerState = fmt.Sprintf("runner pid %d, %s", st.RunnerPID, map[bool]string{true: "running", false: "gone"}[st.RunnerRunning])
	}
	fmt.Fprintf(w, "lab %s (%s; state %s, namespaces in %s)\n", st.Lab, runnerState, st.StateDir, st.NetnsDir)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNAMESPACE\tCMD PID\tRESTARTS\tINTERFACES")
	for _, n := range st.Nodes {
		ns := n.Namespace
		if !n.NamespaceExists {
			ns += " (missing)"
		}
		pid := "-"
		if n.Cmd != "" {
			pid = fmt.Sprintf("%d (%s)", n.PID, map[bool]string{true: "running", false: "not running"}[n.Running])
		}
		var ifs []string
		for _, it := range n.Interfaces {
			if it.Name == "lo" {
				continue
			}
			s := it.Name + " " + it.OperState
			for _, a := range it.Addrs {
				if !a.Addr().IsLinkLocalUnicast() {
					s += " " + a.String()
				}
			}
			ifs = append(ifs, s)
		}
		sort.Strings(ifs)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", n.Name, ns, pid, n.Restarts, strings.Join(ifs, ", "))
	}
	tw.Flush()
	if len(st.Links) == 0 {
		return
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LINK\tA\tB\tA→B\tB→A")
	for _, l := range st.Links {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", l.Index, l.A, l.B, impairment(l.Emulated, l.AtoB), impairment(l.Emulated, l.BtoA))
	}
	tw.Flush()
}

func impairment(emulated bool, i topology.Impairment) string {
	if !emulated {
		return "veth"
	}
	var parts []string
	if i.Delay > 0 || i.IsZero() {
		parts = append(parts, "delay "+i.Delay.String())
	}
	if i.Jitter > 0 {
		parts = append(parts, "jitter "+i.Jitter.String())
	}
	if i.LossPct > 0 {
		parts = append(parts, fmt.Sprintf("loss %g%%", i.LossPct))
	}
	if i.RateKbit > 0 {
		parts = append(parts, fmt.Sprintf("rate %dkbit", i.RateKbit))
	}
	return strings.Join(parts, " ")
}

func labDown(args []string, stdout, stderr io.Writer) error {
	f := newLabFlags("down", stderr)
	arg, err := f.parse(args)
	if err != nil {
		return err
	}
	opts, err := f.options(stderr)
	if err != nil {
		return err
	}
	target, err := labTarget(arg)
	if err != nil {
		return err
	}
	if err := runner.Down(context.Background(), target, opts); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "lab %s removed\n", arg)
	return nil
}

// labNetem prints the `containerlab tools netem set` commands of a file's
// link impairments, for a lab deployed with containerlab on Docker.
func labNetem(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("lab netem: want one topology file")
	}
	t, err := topology.Load(args[0])
	if err != nil {
		return err
	}
	for _, c := range topology.NetemCommands(t) {
		fmt.Fprintln(stdout, c)
	}
	return nil
}
