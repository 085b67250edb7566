// Package runner realizes a containerlab topology without Docker: every
// node is a named network namespace (clab-<lab>-<node>, so that
// `ip netns exec` reaches it), every link a veth pair, or a pair of pairs
// around a user-space relay when the link delays or drops packets; the
// nodes' exec commands run inside their namespaces and their cmd runs
// there under supervision.
//
// A state file is written before anything is made, so that Down can
// remove a lab whose runner died: a lab is kernel objects (mounted
// namespaces and the processes in them) that outlive the process that
// made them.
package runner
