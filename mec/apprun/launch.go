package apprun

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/traffic/netns"
)

// run is one process of an instance: a child of this agent, or one
// adopted from an earlier agent (then only a pidfd tells when it ends, and
// not how).
type run struct {
	pid     int
	started time.Time
	cmd     *exec.Cmd // nil when adopted

	mu    sync.Mutex
	pidfd int // adopted: open until the process ends; -1 otherwise
	done  chan struct{}
	desc  string // how it ended, once done is closed
	ok    bool   // exit status 0
}

func (r *run) finish(desc string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pidfd >= 0 {
		unix.Close(r.pidfd)
		r.pidfd = -1
	}
	select {
	case <-r.done:
	default:
		r.desc, r.ok = desc, ok
		close(r.done)
	}
}

// signal sends sig to the process's group (its session, from Setsid) and
// to the process itself, unless it is known to have ended: its pid may
// belong to another process by then.
func (r *run) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.done:
		return
	default:
	}
	_ = syscall.Kill(-r.pid, sig)
	if r.cmd != nil {
		_ = r.cmd.Process.Signal(sig)
	} else if r.pidfd >= 0 {
		_ = unix.PidfdSendSignal(r.pidfd, sig, nil, 0)
	}
}

// defaultPath is given to instances whose spec sets no PATH.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func (p *Process) env(in *instance) []string {
	var env []string
	if !slices.ContainsFunc(in.spec.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		env = append(env, defaultPath)
	}
	env = append(env, in.spec.Env...)
	return append(env, "MEC_INSTANCE_ID="+in.id, "MEC_ADDRESS="+in.addr.String())
}

// launch prepares the instance's namespace, link, cgroup and log, and
// starts its process; in.mu is held. What exists already is reused, so
// that a restart changes nothing the process's peers can see.
func (p *Process) launch(in *instance) (*run, error) {
	nsPath, err := netns.Create(p.cfg.NetnsDir, in.nsName)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	if err := netns.EnsureBridge(p.cfg.HostNetns, p.cfg.Bridge, p.gw); err != nil {
		return nil, err
	}
	err = netns.AddVeth(netns.Veth{
		HostNetns: p.cfg.HostNetns, Bridge: p.cfg.Bridge, HostName: in.veth,
		PeerNetns: nsPath, Address: netip.PrefixFrom(in.addr, p.cfg.Subnet.Bits()), Gateway: p.gw.Addr(),
	})
	if err != nil {
		return nil, err
	}
	if p.cfg.RunAs != nil {
		if err := unprivilegedPorts(nsPath); err != nil {
			return nil, err
		}
	}
	if err := p.cg.ensure(in.key, in.spec.MilliCPU, in.spec.MemoryMiB); err != nil {
		return nil, err
	}
	if err := p.killStrays(in.key); err != nil {
		return nil, err
	}
	logPath := filepath.Join(in.dir, logFile)
	if err := rotateLog(logPath, p.cfg.LogMaxBytes); err != nil {
		p.log.Warn("rotate log", "instance", in.id, "err", err)
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	work := filepath.Join(in.dir, workDir)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	if p.cfg.RunAs != nil {
		if err := prepareRunAs(*p.cfg.RunAs, in.dir, work); err != nil {
			return nil, err
		}
	}

	cmd := exec.Command(in.spec.Exec, in.spec.Args...)
	cmd.Env, cmd.Dir = p.env(in), work
	// Files, not pipes: the output must not depend on the agent living.
	cmd.Stdout, cmd.Stderr = logf, logf
	// A session of its own (no signals from the agent's terminal or group)
	// and deliberately no Pdeathsig: the instance outlives the agent.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Counted before the start: an OOM kill of a process that dies at once
	// must still show.
	oomBase := p.cg.oomKills(in.key)
	release, err := p.cg.prepare(in.key, cmd.SysProcAttr)
	if err != nil {
		return nil, err
	}
	if p.cfg.RunAs != nil {
		err = startAs(*p.cfg.RunAs, nsPath, cmd)
	} else {
		err = netns.StartCmd(nsPath, cmd)
	}
	release()
	if err != nil {
		if cmd.Process != nil { // started, but the thread could not switch back
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		return nil, err
	}
	pid := cmd.Process.Pid
	fail := func(err error) (*run, error) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	// Nothing reaps the child before cmd.Wait below, so its pid and /proc
	// entry stay valid until then, if only as a zombie.
	if err := p.cg.attach(in.key, pid); err != nil {
		if _, zombie, serr := procStartTicks(pid); serr != nil || !zombie {
			return fail(fmt.Errorf("put pid %d in its cgroup: %w", pid, err))
		}
		// It has exited already: its supervisor will say how.
	}
	ticks, _, err := procStartTicks(pid)
	if err != nil {
		return fail(err)
	}
	now := p.clock.Now()
	rr := runRecord{PID: pid, StartTicks: ticks, BootID: p.boot, StartedAt: now}
	if err := writeJSON(filepath.Join(in.dir, runFile), rr); err != nil {
		// Without it a restarted agent could not find the process again.
		return fail(err)
	}
	r := &run{pid: pid, started: now, cmd: cmd, pidfd: -1, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			r.finish("exit status 0", true)
		case errors.As(err, &ee):
			r.finish(ee.ProcessState.String(), false)
		default:
			r.finish(err.Error(), false)
		}
	}()
	in.cur = r
	in.oomBase = oomBase
	in.cpuNanos, _ = p.cg.usage(in.key)
	in.cpuAt = now
	p.log.Info("instance started", "instance", in.id, "pid", pid, "address", in.addr, "netns", in.nsName)
	return r, nil
}

// killStrays kills what runs in an instance's cgroup while it has no
// process: a daemon its last process left behind, or a process started
// just before an agent crashed, before it could be recorded. Either would
// hold the app's ports.
func (p *Process) killStrays(key string) error {
	for i := 0; ; i++ {
		pids := p.cg.procs(key)
		if len(pids) == 0 {
			return nil
		}
		if i == 0 {
			p.log.Warn("killing stray processes of instance", "key", key, "pids", pids)
		}
		if i == 500 {
			return fmt.Errorf("stray processes %v survive SIGKILL", pids)
		}
		killProcs(pids)
		time.Sleep(10 * time.Millisecond)
	}
}

// adopt finds the process of a run record again, if it is still the same
// process: same boot, and the pid's start time unchanged (pids are
// reused). The pidfd is opened before the check, so that it cannot end up
// referring to a process that took the pid after the check.
func (p *Process) adopt(rr runRecord) (*run, error) {
	if rr.BootID != p.boot {
		return nil, errors.New("recorded in an earlier boot")
	}
	fd, err := unix.PidfdOpen(rr.PID, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open: %w", err)
	}
	ticks, zombie, err := procStartTicks(rr.PID)
	switch {
	case err != nil:
	case zombie:
		err = errors.New("exited")
	case ticks != rr.StartTicks:
		err = fmt.Errorf("pid reused (start time %d, recorded %d)", ticks, rr.StartTicks)
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	r := &run{pid: rr.PID, started: rr.StartedAt, pidfd: fd, done: make(chan struct{})}
	go p.pollExit(r, fd)
	return r, nil
}

// pollExit waits for an adopted process to end: its pidfd becomes
// readable. It gives up when the runtime closes.
func (p *Process) pollExit(r *run, fd int) {
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 200)
		switch {
		case n > 0:
			r.finish("exited (status unknown: adopted from an earlier agent)", false)
			return
		case err != nil && !errors.Is(err, unix.EINTR):
			r.finish("lost track of the process: "+err.Error(), false)
			return
		}
		if p.isClosed() {
			r.mu.Lock()
			if r.pidfd >= 0 {
				unix.Close(r.pidfd)
				r.pidfd = -1
			}
			r.mu.Unlock()
			return
		}
	}
}

// terminate sends SIGTERM, waits up to grace, then SIGKILL, and returns
// how the process ended.
func (p *Process) terminate(ctx context.Context, r *run, grace time.Duration) (string, error) {
	if grace > 0 {
		r.signal(syscall.SIGTERM)
		select {
		case <-r.done:
			return r.desc, nil
		case <-p.clock.After(grace):
		case <-ctx.Done():
		}
	}
	r.signal(syscall.SIGKILL)
	select {
	case <-r.done:
		return r.desc, nil
	case <-ctx.Done():
		return "", fmt.Errorf("pid %d: %w", r.pid, ctx.Err())
	case <-p.clock.After(30 * time.Second):
		return "", fmt.Errorf("pid %d still there 30s after SIGKILL", r.pid)
	}
}
