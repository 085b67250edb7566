package topology

import (
	"regexp"

	"gopkg.in/yaml.v3"
)

// nodeDef is one node-config block: topology.defaults, a topology.kinds
// entry, or a node. Empty strings mean unset, as in containerlab.
type nodeDef struct {
	kind, image, cmd, group string
	kindKey                 *yaml.Node
	exec                    []string
	execKey, cmdKey         *yaml.Node
	env, labels             map[string]string
}

var nodeKeys = []string{"kind", "image", "cmd", "exec", "env", "labels", "binds", "group", "startup-delay"}

// clabNodeKeys are the node-config fields of containerlab's schema that
// the netns runner does not realize.
var clabNodeKeys = set("image-pull-policy", "restart-policy", "license", "type", "startup-config",
	"enforce-startup-config", "suppress-startup-config", "auto-remove", "volumes", "ports", "credentials",
	"env-files", "user", "hostname", "entrypoint", "runtime", "mgmt-ipv4", "mgmt-ipv6", "network-mode",
	"link-apply-mode", "cpu", "memory", "cpu-set", "extras", "config", "stages", "dns", "certificate",
	"healthcheck", "components", "aliases", "shm-size", "cap-add", "privileged", "cgroupns-mode",
	"cgroup-parent", "pid-mode", "tmpfs", "security-opts", "sysctls", "devices", "publish", "wait-for")

func (p *parser) nodeDef(n *yaml.Node, path string) *nodeDef {
	d := &nodeDef{}
	entries, _ := p.mapping(n, path)
	for _, e := range entries {
		fp := join(path, e.name)
		switch e.name {
		case "kind":
			d.kind, _ = p.str(e.val, fp)
			d.kindKey = e.key
		case "image":
			d.image, _ = p.str(e.val, fp)
		case "cmd":
			d.cmd, _ = p.str(e.val, fp)
			d.cmdKey = e.key
		case "group":
			d.group, _ = p.str(e.val, fp)
		case "exec":
			if v := deref(e.val); !isNull(v) && v.Kind != yaml.SequenceNode {
				p.add(e.key, fp, "exec must be a list of strings (one command each), got %s", describe(v))
				continue
			}
			d.exec, _ = p.strList(e.val, fp)
			d.execKey = e.key
		case "env":
			d.env, _ = p.strMap(e.val, fp)
		case "labels":
			d.labels, _ = p.strMap(e.val, fp)
			for k, v := range d.labels {
				if v == "" {
					p.add(e.key, join(fp, k), "a label needs a value")
				}
			}
		case "binds":
			if _, ok := p.strList(e.val, fp); ok {
				p.warn(e.key, fp, "binds are ignored by the netns runner: nodes see the host's filesystem")
			}
		case "startup-delay":
			if v, ok := p.integer(e.val, fp); ok && v < 0 {
				p.add(e.key, fp, "startup-delay must not be negative")
			}
		default:
			p.unknown(e, path, clabNodeKeys, nodeKeys)
		}
	}
	return d
}

// Kinds the netns runner realizes: a linux node is a namespace with its
// processes, a bridge a Linux bridge.
const (
	KindLinux  = "linux"
	KindBridge = "bridge"
)

var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// node merges a node's definition over its kind's and the defaults, as
// containerlab does: scalars from the first that sets them (node, kind,
// defaults), env and labels merged key by key in that order of
// precedence, exec concatenated defaults first.
func (p *parser) node(t *Topology, e entry, defaults *nodeDef, kinds map[string]*nodeDef) *Node {
	path := "topology.nodes." + e.name
	d := p.nodeDef(e.val, path)
	if !nodeName.MatchString(e.name) {
		p.add(e.key, path, "%q is not a node name: letters, digits, '.', '_' and '-', starting with a letter or digit", e.name)
	}
	n := &Node{Name: e.name, Line: e.key.Line}
	p.nodeKey[e.name] = e.key
	n.Kind = first(d.kind, defaults.kind)
	k := kinds[n.Kind]
	if k == nil {
		k = &nodeDef{}
	}
	switch n.Kind {
	case KindLinux, KindBridge:
	case "":
		p.add(e.key, path, "the node has no kind, and topology.defaults sets none")
	default:
		where := d.kindKey
		if where == nil {
			where = e.key
		}
		p.add(where, join(path, "kind"), "kind %q is not supported by the netns runner (only %s and %s)", n.Kind, KindLinux, KindBridge)
	}
	n.Image = first(d.image, k.image, defaults.image)
	n.Group = first(d.group, k.group, defaults.group)
	n.Env = merge(defaults.env, k.env, d.env)
	n.Labels = merge(defaults.labels, k.labels, d.labels)
	if n.Kind == KindBridge {
		// A bridge runs nothing; inherited commands do not apply to it.
		if d.cmdKey != nil {
			p.add(d.cmdKey, join(path, "cmd"), "a bridge runs no process")
		}
		if d.execKey != nil {
			p.add(d.execKey, join(path, "exec"), "a bridge runs no commands")
		}
		if msg := ifaceProblem(e.name); msg != "" {
			p.add(e.key, path, "a bridge's name is its interface name: %s", msg)
		}
		return n
	}
	n.Cmd = first(d.cmd, k.cmd, defaults.cmd)
	n.Exec = append(append(append([]string(nil), defaults.exec...), k.exec...), d.exec...)
	return n
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func merge(maps ...map[string]string) map[string]string {
	var out map[string]string
	for _, m := range maps {
		for k, v := range m {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// maxNamespace bounds clab-<lab>-<node>: namespace names become file names
// under /run/netns and show in every listing and message; 64 is also the
// host name limit a Docker user meets.
const maxNamespace = 64

func (p *parser) checkNames(t *Topology) {
	if !labName.MatchString(t.Name) {
		return // reported already
	}
	for _, n := range t.Nodes {
		if ns := t.Namespace(n.Name); len(ns) > maxNamespace {
			p.add(p.nodeKey[n.Name], "topology.nodes."+n.Name,
				"namespace name %s is %d bytes, more than %d: shorten the lab or node name", ns, len(ns), maxNamespace)
		}
	}
}
