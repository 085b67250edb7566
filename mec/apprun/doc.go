// Package apprun runs MEC app instances on an edge server for mec-agent.
//
// An instance is a process in its own network namespace, wired to the
// host's app bridge with an address of its own (so that traffic rules and
// DNS answers can name it), inside a cgroup that enforces its CPU and
// memory share, with its output in bounded log files and a restart policy.
//
// The agent may die and be restarted at any time, and an edge site must
// keep serving meanwhile. So instances are not the agent's children in any
// way that ties their lives to it: they get their own session, no parent
// death signal, and log files instead of pipes; and everything needed to
// find them again (spec, address, pid and the pid's start time) is kept in
// a state directory. A new Process adopts the instances still running and
// reports the others as not running, for the agent's reconcile to decide.
//
// An app runs in the foreground: its process is the instance. Whatever it
// leaves behind in its cgroup is killed when it is stopped or restarted.
//
// Instances run as root unless Config.RunAs names an unprivileged user:
// then as that user, without capabilities, with only their working
// directory theirs, and free to bind low ports in their own namespace.
//
// Runtime is the interface the agent uses; Process is its implementation
// with plain processes, so that a container runtime can be added later
// without touching the agent.
package apprun
