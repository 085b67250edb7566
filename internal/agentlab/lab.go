// Package agentlab runs mecorch and several mec-agents on one machine, each
// in its own network namespace joined by a bridge, for the agent's
// integration tests and the failover bench (bench/failover). Everything it
// makes carries the lab's prefix, and Close removes it all: processes,
// namespaces, links, cgroups and files.
package agentlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// AgentSpec is one edge host of the lab.
type AgentSpec struct {
	HostID, SiteID string
	MilliCPU       int64
	MemoryMiB      int64
}

// Options shape a lab.
type Options struct {
	// Prefix names everything the lab makes (namespaces, links, cgroups).
	Prefix string
	// Dir holds binaries, state and logs.
	Dir    string
	Bins   Binaries
	Sites  []string
	Agents []AgentSpec
	// Heartbeat and Missed are mecorch's --heartbeat-interval and
	// --missed-heartbeats.
	Heartbeat time.Duration
	Missed    int
	// MecorchArgs and AgentArgs are added to the commands.
	MecorchArgs, AgentArgs []string
}

// Lab is a running lab.
type Lab struct {
	opts   Options
	core   netns.NsHandle
	coreNS string // its path
	coreH  *netlink.Handle
	API    string // mecorch's base URL, reachable from the core namespace
	Token  string // operator token
	Client *Client

	mu      sync.Mutex
	mecorch *exec.Cmd
	agents  map[string]*Agent
}

// Agent is one host's agent process and namespace.
type Agent struct {
	Spec     AgentSpec
	Index    int
	NS       netns.NsHandle
	NSPath   string
	NSName   string
	Addr     string // on the backhaul bridge
	Subnet   string // the host's app subnet
	StateDir string
	LogPath  string
	secret   string // client id:secret, in a file the agent reads
	cmd      *exec.Cmd
	done     chan struct{}
}

const (
	corePort   = 18080
	coreAddr   = "10.99.0.1"
	bridgeName = "bh0"
)

// Start brings the lab up: the core namespace with mecorch, one namespace
// per agent joined to the core's bridge, sites registered and the agents
// started. On error it tears down what it made.
func Start(ctx context.Context, opts Options) (l *Lab, err error) {
	if opts.Prefix == "" || len(opts.Prefix) > 6 {
		return nil, errors.New("agentlab: Prefix must be 1 to 6 characters")
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = 500 * time.Millisecond
	}
	if opts.Missed == 0 {
		opts.Missed = 3
	}
	l = &Lab{opts: opts, agents: map[string]*Agent{}, Token: "agentlab-admin-token-" + opts.Prefix}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	Cleanup(opts.Prefix) // what a crashed earlier run left
	// The agents run their instances as nobody, which must reach the
	// executables under each agent's state directory inside Dir.
	if err := os.Chmod(opts.Dir, 0o711); err != nil {
		return l, err
	}
	if l.core, l.coreNS, err = newNS(opts.Prefix + "core"); err != nil {
		return l, err
	}
	if l.coreH, err = netlink.NewHandleAt(l.core); err != nil {
		return l, err
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName}}
	if err := l.coreH.LinkAdd(br); err != nil {
		return l, fmt.Errorf("bridge: %w", err)
	}
	if err := addAddr(l.coreH, bridgeName, coreAddr+"/24"); err != nil {
		return l, err
	}
	if err := linkUp(l.coreH, bridgeName); err != nil {
		return l, err
	}
	l.API = fmt.Sprintf("http://%s:%d", coreAddr, corePort)
	l.Client = newClient(l.coreNS, l.API, l.Token)
	if err := l.startMecorch(ctx); err != nil {
		return l, err
	}
	for _, s := range opts.Sites {
		if err := l.Client.Do(ctx, "POST", "/api/v1/sites", map[string]any{"id": s, "name": s, "zone": "lab", "countryCode": "DE"}, nil, 201); err != nil {
			return l, err
		}
	}
	for i, spec := range opts.Agents {
		if err := l.addAgent(ctx, i+1, spec); err != nil {
			return l, err
		}
	}
	return l, nil
}

func (l *Lab) startMecorch(ctx context.Context) error {
	args := []string{"serve", "--listen", fmt.Sprintf("%s:%d", coreAddr, corePort),
		"--store", filepath.Join(l.opts.Dir, "store"), "--admin-token", l.Token,
		"--base-url", l.API,
		"--heartbeat-interval", l.opts.Heartbeat.String(), "--missed-heartbeats", strconv.Itoa(l.opts.Missed)}
	args = append(args, l.opts.MecorchArgs...)
	cmd := exec.Command(l.opts.Bins.Mecorch, args...)
	logf, err := os.Create(filepath.Join(l.opts.Dir, "mecorch.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := startIn(l.coreNS, cmd); err != nil {
		return fmt.Errorf("start mecorch: %w", err)
	}
	l.mecorch = cmd
	go func() { _ = cmd.Wait() }()
	return l.Client.WaitHealthy(ctx, 30*time.Second)
}

func (l *Lab) addAgent(ctx context.Context, i int, spec AgentSpec) error {
	a := &Agent{Spec: spec, Index: i, NSName: fmt.Sprintf("%sa%d", l.opts.Prefix, i),
		Addr:     fmt.Sprintf("10.99.0.%d", 10+i),
		Subnet:   fmt.Sprintf("10.200.%d.0/24", i),
		StateDir: filepath.Join(l.opts.Dir, spec.HostID),
		LogPath:  filepath.Join(l.opts.Dir, spec.HostID+".log"),
	}
	var err error
	if a.NS, a.NSPath, err = newNS(a.NSName); err != nil {
		return err
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: l.vethName(a)}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(a.NS))}
	if err := l.coreH.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth for %s: %w", spec.HostID, err)
	}
	brl, err := l.coreH.LinkByName(bridgeName)
	if err != nil {
		return err
	}
	vl, err := l.coreH.LinkByName(veth.Name)
	if err != nil {
		return err
	}
	if err := l.coreH.LinkSetMaster(vl, brl); err != nil {
		return err
	}
	if err := l.coreH.LinkSetUp(vl); err != nil {
		return err
	}
	ah, err := netlink.NewHandleAt(a.NS)
	if err != nil {
		return err
	}
	defer ah.Close()
	if err := addAddr(ah, "eth0", a.Addr+"/24"); err != nil {
		return err
	}
	if err := linkUp(ah, "eth0"); err != nil {
		return err
	}
	var cred struct {
		ClientID     string `json:"clientId"`
		ClientSecret string `json:"clientSecret"`
	}
	if err := l.Client.Do(ctx, "POST", "/api/v1/clients", map[string]string{"name": spec.HostID, "role": "agent"}, &cred, 201); err != nil {
		return err
	}
	if err := os.MkdirAll(a.StateDir, 0o700); err != nil {
		return err
	}
	a.secret = filepath.Join(l.opts.Dir, spec.HostID+".secret")
	if err := os.WriteFile(a.secret, []byte(cred.ClientSecret+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(a.secret+".id", []byte(cred.ClientID), 0o600); err != nil {
		return err
	}
	l.mu.Lock()
	l.agents[spec.HostID] = a
	l.mu.Unlock()
	return l.StartAgent(spec.HostID)
}

func (l *Lab) vethName(a *Agent) string { return fmt.Sprintf("%sv%d", l.opts.Prefix, a.Index) }

// Agent returns the agent of a host.
func (l *Lab) Agent(hostID string) *Agent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.agents[hostID]
}

// Agents returns every agent.
func (l *Lab) Agents() []*Agent {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Agent, 0, len(l.agents))
	for _, a := range l.agents {
		out = append(out, a)
	}
	return out
}

// StartAgent (re)starts a host's agent process.
func (l *Lab) StartAgent(hostID string) error {
	a := l.Agent(hostID)
	id, err := os.ReadFile(a.secret + ".id")
	if err != nil {
		return err
	}
	args := []string{
		"--orchestrator", fmt.Sprintf("ws://%s:%d/api/v1/agents/connect", coreAddr, corePort),
		"--host-id", a.Spec.HostID, "--site", a.Spec.SiteID,
		"--client-id", string(id), "--client-secret-file", a.secret,
		"--state-dir", a.StateDir,
		"--app-subnet", a.Subnet,
		"--netns-prefix", fmt.Sprintf("%si%d-", l.opts.Prefix, a.Index),
		"--cgroup", fmt.Sprintf("mecorch-%s-%s", l.opts.Prefix, a.Spec.HostID),
		"--capacity-cpu", strconv.FormatInt(a.Spec.MilliCPU, 10),
		"--capacity-memory", strconv.FormatInt(a.Spec.MemoryMiB, 10),
	}
	args = append(args, l.opts.AgentArgs...)
	cmd := exec.Command(l.opts.Bins.Agent, args...)
	logf, err := os.OpenFile(a.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := startIn(a.NSPath, cmd); err != nil {
		return fmt.Errorf("start agent %s: %w", hostID, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	l.mu.Lock()
	a.cmd, a.done = cmd, done
	l.mu.Unlock()
	return nil
}

// KillAgent kills a host's agent with SIGKILL; with instances, also every
// process of its app instances, as if the machine had died.
func (l *Lab) KillAgent(hostID string, instances bool) {
	a := l.Agent(hostID)
	l.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd = nil
	l.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-done
	}
	if instances {
		for _, pid := range ProcsInNetnsPrefix(fmt.Sprintf("%si%d-", l.opts.Prefix, a.Index)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// SetLink cuts (up=false) or restores a host's backhaul link.
func (l *Lab) SetLink(hostID string, up bool) error {
	a := l.Agent(hostID)
	vl, err := l.coreH.LinkByName(l.vethName(a))
	if err != nil {
		return err
	}
	if up {
		return l.coreH.LinkSetUp(vl)
	}
	return l.coreH.LinkSetDown(vl)
}

// DialFrom connects from inside a host's namespace (where its app bridge
// is) to addr.
func (l *Lab) DialFrom(ctx context.Context, hostID, network, addr string) (net.Conn, error) {
	return dialIn(ctx, l.Agent(hostID).NSPath, network, addr)
}

// Close stops every process and removes everything the lab made.
func (l *Lab) Close() {
	for _, a := range l.Agents() {
		l.KillAgent(a.Spec.HostID, true)
	}
	if l.mecorch != nil && l.mecorch.Process != nil {
		_ = l.mecorch.Process.Signal(syscall.SIGTERM)
		time.Sleep(200 * time.Millisecond)
		_ = l.mecorch.Process.Kill()
	}
	if l.coreH != nil {
		l.coreH.Close()
	}
	for _, a := range l.Agents() {
		a.NS.Close()
	}
	l.core.Close()
	Cleanup(l.opts.Prefix)
}

// Cleanup removes whatever carries prefix: processes in its namespaces, the
// namespaces (and with them their links) and the agents' cgroups.
func Cleanup(prefix string) {
	for _, pid := range ProcsInNetnsPrefix(prefix) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, p := range namespacesWithPrefix(prefix) {
		_ = deleteNS(filepath.Base(p))
	}
	for _, root := range cgroupRoots() {
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "mecorch-"+prefix+"-") {
				removeCgroupTree(filepath.Join(root, e.Name()))
			}
		}
	}
}
