package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CheckHost refuses the lab when a namespace it would create already
// exists in netnsDir (usually /run/netns): a lab of the same name still
// running or left behind, or something else's namespace. It only looks.
func (t *Topology) CheckHost(netnsDir string) error {
	var ps []Problem
	for _, n := range t.Nodes {
		ns := t.Namespace(n.Name)
		_, err := os.Lstat(filepath.Join(netnsDir, ns))
		switch {
		case err == nil:
			ps = append(ps, Problem{Line: n.Line, Path: "topology.nodes." + n.Name,
				Msg: fmt.Sprintf("namespace %s already exists in %s (a lab still running or left behind? ip netns del %s)", ns, netnsDir, ns)})
		case errors.Is(err, fs.ErrNotExist):
		default:
			return fmt.Errorf("check namespace %s: %w", ns, err)
		}
	}
	if len(ps) > 0 {
		return &Error{File: t.File, Problems: ps}
	}
	return nil
}

// NetemCommands are the commands that give a Docker user of the lab the
// impairments our runner applies: netem on the sending side, so a link's
// a-to-b impairment goes on A's interface. A bridge's port is on the
// host, out of reach of containerlab's tool: it gets the tc command.
func NetemCommands(t *Topology) []string {
	var out []string
	for _, l := range t.Links {
		for _, d := range []struct {
			ep Endpoint
			im Impairment
		}{{l.A, l.AtoB}, {l.B, l.BtoA}} {
			if d.im.IsZero() {
				continue
			}
			if n := t.Node(d.ep.Node); n != nil && n.Kind == KindBridge {
				out = append(out, tcCommand(d.ep.Iface, d.im))
				continue
			}
			out = append(out, netemCommand(t.ContainerName(d.ep.Node), d.ep.Iface, d.im))
		}
	}
	return out
}

func netemCommand(container, iface string, im Impairment) string {
	args := []string{"containerlab tools netem set -n", container, "-i", iface}
	if im.Delay > 0 {
		args = append(args, "--delay", ms(im.Delay.Nanoseconds()))
	}
	if im.Jitter > 0 {
		args = append(args, "--jitter", ms(im.Jitter.Nanoseconds()))
	}
	if im.LossPct > 0 {
		args = append(args, "--loss", strconv.FormatFloat(im.LossPct, 'f', -1, 64))
	}
	if im.RateKbit > 0 {
		args = append(args, "--rate", strconv.FormatInt(im.RateKbit, 10))
	}
	return strings.Join(args, " ")
}

func tcCommand(iface string, im Impairment) string {
	args := []string{"tc qdisc replace dev", iface, "root netem"}
	if im.Delay > 0 {
		args = append(args, "delay", ms(im.Delay.Nanoseconds()))
		if im.Jitter > 0 {
			args = append(args, ms(im.Jitter.Nanoseconds()))
		}
	}
	if im.LossPct > 0 {
		args = append(args, "loss", strconv.FormatFloat(im.LossPct, 'f', -1, 64)+"%")
	}
	if im.RateKbit > 0 {
		args = append(args, "rate", strconv.FormatInt(im.RateKbit, 10)+"kbit")
	}
	return strings.Join(args, " ")
}

// ms renders a duration in milliseconds, which both containerlab (Go
// durations) and tc read, without Go's "µs".
func ms(ns int64) string {
	return strconv.FormatFloat(float64(ns)/1e6, 'f', -1, 64) + "ms"
}
