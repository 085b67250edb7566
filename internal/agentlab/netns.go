package agentlab

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/mecorch/mecorch/traffic/netns"
)

// newNS makes a named network namespace (as `ip netns add` would, so that
// the agents' own namespaces under the same directory stay visible) and
// opens it.
func newNS(name string) (vnetns.NsHandle, string, error) {
	p, err := netns.Create(netns.DefaultDir, name)
	if err != nil {
		return 0, "", err
	}
	h, err := netns.Open(p)
	if err != nil {
		return 0, "", err
	}
	return h, p, nil
}

// startIn starts cmd inside the namespace at path.
func startIn(path string, cmd *exec.Cmd) error { return netns.StartCmd(path, cmd) }

// dialIn connects from inside the namespace at path; the socket keeps its
// namespace after.
func dialIn(ctx context.Context, path, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(path, func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// linkUp brings up lo and the named links.
func linkUp(h *netlink.Handle, names ...string) error {
	for _, n := range append([]string{"lo"}, names...) {
		l, err := h.LinkByName(n)
		if err != nil {
			return err
		}
		if err := h.LinkSetUp(l); err != nil {
			return err
		}
	}
	return nil
}

func addAddr(h *netlink.Handle, link, cidr string) error {
	l, err := h.LinkByName(link)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	return h.AddrAdd(l, a)
}

// namespacesWithPrefix lists the paths of the named namespaces whose name
// starts with p.
func namespacesWithPrefix(p string) []string {
	ents, _ := os.ReadDir(netns.DefaultDir)
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), p) {
			out = append(out, filepath.Join(netns.DefaultDir, e.Name()))
		}
	}
	return out
}

func deleteNS(name string) error { return netns.Delete(netns.DefaultDir, name) }
