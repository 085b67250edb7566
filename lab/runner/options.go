package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mecorch/mecorch/lab/topology"
	"github.com/mecorch/mecorch/traffic/netns"
)

// DefaultStateRoot holds one state directory per lab unless Options.StateDir
// says otherwise.
const DefaultStateRoot = "/var/lib/mecorch-lab"

// Options tune Up, Down and Status. The zero value is usable.
type Options struct {
	// StateDir holds state.json and logs/; default DefaultStateRoot/<lab>.
	StateDir string
	// NetnsDir is where the namespaces are mounted; default /run/netns,
	// where `ip netns` looks.
	NetnsDir string
	// Emulator realizes links with an impairment; default: lab/linkemu.
	Emulator Emulator
	// EmulateAll puts every link through the emulator, so that a link
	// declared without impairment can be given one while the lab runs.
	EmulateAll bool
	Logger     *slog.Logger
	// ExtraEnv is added to every exec and cmd environment; a node's own
	// env wins over it.
	ExtraEnv map[string]string
	// StopGrace is how long a process has between SIGTERM and SIGKILL;
	// default 3s.
	StopGrace time.Duration
	// RestartMin and RestartMax bound the backoff between restarts of a
	// node's cmd; defaults 200ms and 10s.
	RestartMin, RestartMax time.Duration
}

func (o Options) withDefaults(lab string) Options {
	if o.StateDir == "" {
		o.StateDir = filepath.Join(DefaultStateRoot, lab)
	}
	if o.NetnsDir == "" {
		o.NetnsDir = netns.DefaultDir
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 3 * time.Second
	}
	if o.RestartMin <= 0 {
		o.RestartMin = 200 * time.Millisecond
	}
	if o.RestartMax < o.RestartMin {
		o.RestartMax = max(10*time.Second, o.RestartMin)
	}
	return o
}

// Side is one node-side end of an emulated link.
type Side struct {
	Netns string // path of the node's namespace
	Iface string // the interface name the topology gives it
}

// LinkSpec is what an Emulator realizes: the two node-side interfaces,
// created in their namespaces, and whatever carries frames between them
// kept in RelayNetns, a namespace made for this link alone.
type LinkSpec struct {
	Index      int // in Topology.Links
	A, B       Side
	RelayNetns string
	MTU        int // 0: the kernel's default
	AtoB, BtoA topology.Impairment
	Seed       int64
}

// EmulatedLink is a running emulated link.
type EmulatedLink interface {
	// Set changes the impairment of both directions at once.
	Set(aToB, bToA topology.Impairment) error
	Close() error
}

// Emulator starts emulated links: it creates the node-side interfaces
// (with the MTU) and whatever carries frames between them; the runner
// then gives them their MAC and addresses and brings them up.
type Emulator interface {
	Start(ctx context.Context, spec LinkSpec) (EmulatedLink, error)
}

// Capability numbers from linux/capability.h.
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// checkPrivileges reads the effective capabilities of this process: a
// lab mounts namespaces (CAP_SYS_ADMIN) and makes links (CAP_NET_ADMIN).
func checkPrivileges() error {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	return missingCaps(string(b))
}

func missingCaps(status string) error {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return fmt.Errorf("parse CapEff %q: %w", v, err)
		}
		var miss []string
		if caps&(1<<capSysAdmin) == 0 {
			miss = append(miss, "CAP_SYS_ADMIN (to mount network namespaces)")
		}
		if caps&(1<<capNetAdmin) == 0 {
			miss = append(miss, "CAP_NET_ADMIN (to make links and addresses)")
		}
		if len(miss) > 0 {
			return fmt.Errorf("the lab runner needs %s: run it as root", strings.Join(miss, " and "))
		}
		return nil
	}
	return errors.New("the lab runner needs CAP_SYS_ADMIN and CAP_NET_ADMIN (root); no CapEff in /proc/self/status")
}

// relayName is the namespace of link i's relay. Containerlab node names
// start with a letter or digit, so the underscore keeps it apart from
// every node's namespace while the clab-<lab>- prefix keeps it findable.
func relayName(t *topology.Topology, i int) string {
	return t.Namespace("_link" + strconv.Itoa(i))
}

// bridgeName is the bridge a bridge-kind node holds in its namespace.
func bridgeName(node string) string {
	if len(node) <= netns.MaxLinkName {
		return node
	}
	return "bridge"
}

func isBridge(n *topology.Node) bool { return n.Kind == topology.KindBridge }

// emulated tells whether link l goes through the emulator.
func (o Options) emulated(l *topology.Link) bool {
	return o.EmulateAll || !l.AtoB.IsZero() || !l.BtoA.IsZero()
}

// validate refuses what the runner cannot realize, before anything is made.
func validate(t *topology.Topology) error {
	if t.Name == "" || strings.ContainsAny(t.Name, "/\x00") {
		return fmt.Errorf("lab name %q: not usable in a namespace name", t.Name)
	}
	nodes := map[string]*topology.Node{}
	for _, n := range t.Nodes {
		if n.Name == "" || strings.ContainsAny(n.Name, "/\x00") || strings.HasPrefix(n.Name, "_") {
			return fmt.Errorf("node %q: not usable in a namespace name", n.Name)
		}
		if nodes[n.Name] != nil {
			return fmt.Errorf("node %s defined twice", n.Name)
		}
		switch n.Kind {
		case "", topology.KindLinux, topology.KindBridge:
		default:
			return fmt.Errorf("node %s: kind %q is not realized by the netns runner (linux, bridge)", n.Name, n.Kind)
		}
		nodes[n.Name] = n
	}
	ifaces := map[string]bool{}
	for i, l := range t.Links {
		for _, e := range []topology.Endpoint{l.A, l.B} {
			if nodes[e.Node] == nil {
				return fmt.Errorf("link %d (line %d): unknown node %q", i, l.Line, e.Node)
			}
			if len(e.Iface) == 0 || len(e.Iface) > netns.MaxLinkName || strings.ContainsAny(e.Iface, "/: \x00") || e.Iface == "lo" {
				return fmt.Errorf("link %d (line %d): interface name %q on %s must be 1 to %d bytes, not lo", i, l.Line, e.Iface, e.Node, netns.MaxLinkName)
			}
			if isBridge(nodes[e.Node]) && e.Iface == bridgeName(e.Node) {
				return fmt.Errorf("link %d (line %d): interface %s on %s is the bridge's own name", i, l.Line, e.Iface, e.Node)
			}
			key := e.Node + ":" + e.Iface
			if ifaces[key] {
				return fmt.Errorf("link %d (line %d): interface %s used twice", i, l.Line, key)
			}
			ifaces[key] = true
			if e.MAC != "" {
				if _, err := net.ParseMAC(e.MAC); err != nil {
					return fmt.Errorf("link %d (line %d): mac of %s: %w", i, l.Line, key, err)
				}
			}
		}
		if l.MTU < 0 || l.MTU > 65535 {
			return fmt.Errorf("link %d (line %d): mtu %d out of range", i, l.Line, l.MTU)
		}
	}
	return nil
}
