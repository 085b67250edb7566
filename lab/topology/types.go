// Package topology reads containerlab topology files (*.clab.yml) as our
// netns runner realizes them: the nodes, their exec commands and env, the
// veth links with their addresses, and the link impairments our runner
// applies (declared in link vars, which containerlab accepts and ignores).
// Every refusal names the file, line and problem.
package topology

import (
	"net/netip"
	"time"
)

// Topology is one parsed and checked lab.
type Topology struct {
	// Name is the lab's name: namespaces are clab-<Name>-<node>.
	Name string
	File string
	// Nodes in file order.
	Nodes []*Node
	Links []*Link
	// Prefix is containerlab's container name prefix: "clab" (the default)
	// or "" (containers named after their nodes). It changes the Docker
	// container names only: our namespaces are always Namespace(node).
	Prefix string
	// Warnings are what was accepted but is ignored by the netns runner
	// (binds, unset variables left as is).
	Warnings []Problem
}

// Node is one node of the lab.
type Node struct {
	Name  string
	Kind  string // linux, bridge, …: the runner realizes linux (a namespace and a process) and bridge
	Image string // for Docker users; the runner ignores it
	// Cmd is the node's long-running process (containerlab "cmd"),
	// started in the node's namespace and supervised; empty for none.
	Cmd string
	// Exec are one-shot commands run in the node's namespace after its
	// links are up, in order (containerlab "exec").
	Exec   []string
	Env    map[string]string
	Labels map[string]string
	Group  string // containerlab's graphing group; informational
	Line   int    // where the node is defined
}

// Endpoint is one end of a link.
type Endpoint struct {
	Node  string
	Iface string       // at most 15 bytes (the kernel's limit)
	Addr  netip.Prefix // from the link's ipv4/ipv6 list; zero if none
	Addr6 netip.Prefix
	MAC   string
}

// Impairment is what a link does to packets in one direction.
type Impairment struct {
	Delay    time.Duration
	Jitter   time.Duration
	LossPct  float64 // 0–100
	RateKbit int64   // 0: unlimited
}

// IsZero reports whether the impairment does nothing.
func (i Impairment) IsZero() bool { return i == Impairment{} }

// Link is a veth link between two endpoints.
type Link struct {
	A, B Endpoint
	MTU  int
	// AtoB applies to packets sent by A towards B, BtoA the other way.
	AtoB, BtoA Impairment
	Labels     map[string]string // extended form only
	Line       int
}

// Namespace is the network namespace name of a node, as containerlab names
// the node's container.
func (t *Topology) Namespace(node string) string { return "clab-" + t.Name + "-" + node }

// ContainerName is the node's container name under Docker, which
// `containerlab tools` commands take.
func (t *Topology) ContainerName(node string) string {
	if t.Prefix == "" {
		return node
	}
	return t.Prefix + "-" + t.Name + "-" + node
}

// Node returns the node called name, or nil.
func (t *Topology) Node(name string) *Node {
	for _, n := range t.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}
