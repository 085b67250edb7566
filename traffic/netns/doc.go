// Package netns creates and removes named network namespaces, runs code
// and starts processes inside them, sets their network sysctls, and wires
// them to a bridge with veth pairs. It exists so that the agent's app runtime and the lab share one
// careful implementation of the kernel's sharp edges: a namespace switch
// belongs to an OS thread, not to a goroutine, so a thread that cannot be
// switched back must die with its goroutine; a namespace outlives its
// processes only while it is bind-mounted; and a link name has 15 bytes.
//
// Everything goes through netlink and raw system calls; nothing shells
// out to ip(8). Namespaces are bind-mounted the way `ip netns add` does
// it, so that `ip netns exec NAME` works on the ones made in /run/netns.
//
// The package knows nothing of apps: it takes paths, names and prefixes.
package netns
