package apprun

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/mecorch/mecorch/traffic/netns"
)

// Config shapes a Process.
type Config struct {
	// StateDir holds a directory per instance: spec, address, pid and start
	// time, logs, and the process's working directory. Required.
	StateDir string
	// NetnsDir is where instance namespaces are mounted; /run/netns, so
	// that `ip netns exec` reaches them, unless set.
	NetnsDir string
	// NetnsPrefix starts the name of every namespace this runtime makes
	// ("mec-" unless set); Sweep only looks at names with it.
	NetnsPrefix string
	// HostNetns is the path of the namespace holding the app bridge; empty
	// for the agent's own.
	HostNetns string
	// Bridge is the app bridge ("mec0" unless set), created if missing.
	Bridge string
	// VethPrefix starts the bridge-side link name of every instance
	// ("mecv" unless set; at most 7 bytes, the rest is a hash of the id).
	VethPrefix string
	// Subnet is the instances' subnet. Its first address is the bridge's
	// (the gateway); instances get the following ones, kept for as long as
	// the instance exists. Required.
	Subnet netip.Prefix
	// Cgroup is the cgroup, relative to the root of each hierarchy, under
	// which every instance gets its own ("mecorch" unless set).
	Cgroup string
	// LogMaxBytes bounds an instance's log: past it, the current file's
	// tail moves to a .1 file and the current one starts over, so that at
	// most about twice this is on disk. 10 MiB unless set.
	LogMaxBytes int64
	// LogCheckInterval is how often log sizes are checked (1s unless set).
	LogCheckInterval time.Duration
	// Backoff spaces the restarts of a crashing instance.
	Backoff Backoff
	// RunAs, when set, is the user every instance's process runs as: its
	// uid and gid, no supplementary groups and no capabilities (nor any
	// way to gain one: no_new_privs), so that an app cannot read the
	// agent's secrets and state (root's 0600 files, /proc/<agent>/environ).
	// Unset, instances run as root, as the agent does. LookupUser turns a
	// user name into it; a dedicated user is better than nobody, which
	// other daemons may share. Instances that share a user can signal and
	// trace one another and reach one another's working directories.
	//
	// The user must be able to reach what the process opens as itself: the
	// runtime makes StateDir and the instance directories searchable
	// (0711; records and logs stay root's, and logs reach the process as
	// open descriptors) and the working directory the user's, and
	// NewProcess fails if a directory above StateDir is not searchable.
	// Spec.Exec is run where it is: every directory above it must be
	// searchable by the user and the file executable (and readable, for a
	// script): an image directory mode 0755, its files 0755 or 0644. Start
	// checks this, as the kernel will, and names the directory in the way.
	//
	// Each instance's namespace gets net.ipv4.ip_unprivileged_port_start
	// 0, so that the app can bind ports below 1024 there, and only there.
	RunAs *Credential
	// StopGrace is the grace period of an instance stopped because Start
	// was given a new spec for it (10s unless set).
	StopGrace time.Duration
	Logger    *slog.Logger
	Clock     Clock
	// Mountinfo is read to find the cgroup hierarchies
	// (/proc/self/mountinfo unless set).
	Mountinfo string
}

// Backoff is an exponential backoff: Initial after the first failure,
// doubling up to Max, and back to Initial once a process has run for
// ResetAfter.
type Backoff struct {
	Initial, Max, ResetAfter time.Duration
}

// Delay is the wait before restart number n (1 for the first) of a run of
// consecutive failures.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

func (c Config) withDefaults() (Config, error) {
	if c.StateDir == "" {
		return c, errors.New("apprun: StateDir is required")
	}
	if !c.Subnet.IsValid() {
		return c, errors.New("apprun: Subnet is required")
	}
	c.Subnet = c.Subnet.Masked()
	if c.Subnet.Addr().Is4() && c.Subnet.Bits() > 29 || c.Subnet.Addr().Is6() && c.Subnet.Bits() > 125 {
		return c, fmt.Errorf("apprun: subnet %s leaves no room for instances", c.Subnet)
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.NetnsDir, netns.DefaultDir)
	def(&c.NetnsPrefix, "mec-")
	def(&c.Bridge, "mec0")
	def(&c.VethPrefix, "mecv")
	def(&c.Cgroup, "mecorch")
	def(&c.Mountinfo, "/proc/self/mountinfo")
	if len(c.VethPrefix) > 7 || len(c.Bridge) > netns.MaxLinkName {
		return c, errors.New("apprun: VethPrefix must have at most 7 bytes and Bridge at most 15")
	}
	if strings.HasPrefix(c.Bridge, c.VethPrefix) {
		return c, fmt.Errorf("apprun: bridge name %q starts with VethPrefix %q", c.Bridge, c.VethPrefix)
	}
	if strings.Contains(c.NetnsPrefix, "/") || strings.Trim(c.Cgroup, "/") == "" || strings.Contains(c.Cgroup, "..") {
		return c, errors.New("apprun: invalid NetnsPrefix or Cgroup")
	}
	c.Cgroup = strings.Trim(c.Cgroup, "/")
	if c.RunAs != nil {
		if err := c.RunAs.validate(); err != nil {
			return c, err
		}
		cred := *c.RunAs // not the caller's to change later
		c.RunAs = &cred
	}
	if c.LogMaxBytes <= 0 {
		c.LogMaxBytes = 10 << 20
	}
	if c.LogCheckInterval <= 0 {
		c.LogCheckInterval = time.Second
	}
	if c.Backoff.Initial <= 0 {
		c.Backoff.Initial = time.Second
	}
	if c.Backoff.Max <= 0 {
		c.Backoff.Max = 5 * time.Minute
	}
	c.Backoff.Max = max(c.Backoff.Max, c.Backoff.Initial)
	if c.Backoff.ResetAfter <= 0 {
		c.Backoff.ResetAfter = 10 * time.Minute
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	return c, nil
}
