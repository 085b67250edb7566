package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mecorch/mecorch/lab/topology"
	"github.com/mecorch/mecorch/traffic/netns"
)

// DefaultPath is the PATH of the minimal environment node commands start
// from (Options.ExtraEnv may replace it): they are the user's commands
// and expect the usual tools.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// nodeEnv is the environment of a node's exec and cmd: a minimal one with
// the variables containerlab sets, then extra, then the node's env.
func nodeEnv(t *topology.Topology, n *topology.Node, extra map[string]string) []string {
	home := os.Getenv("HOME")
	if home == "" {
		home = "/"
	}
	intfs := 0
	for _, l := range t.Links {
		if l.A.Node == n.Name {
			intfs++
		}
		if l.B.Node == n.Name {
			intfs++
		}
	}
	env := map[string]string{
		"PATH": DefaultPath, "HOME": home,
		"CLAB_INTFS":                strconv.Itoa(intfs),
		"CLAB_LABEL_CONTAINERLAB":   t.Name,
		"CLAB_LABEL_CLAB_NODE_NAME": n.Name,
		"CLAB_LABEL_CLAB_NODE_KIND": n.Kind,
	}
	for k, v := range n.Labels {
		env["CLAB_LABEL_"+envName(k)] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	for k, v := range n.Env {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// envName is a label key as a variable name: upper case, anything but
// letters and digits an underscore.
func envName(k string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, k)
}

// shellCmd is cmdline run by /bin/sh in its own process group, with
// output appended to log. The commands are the topology author's, so a
// shell is what they expect (pipes, redirections, &&).
func shellCmd(ctx context.Context, cmdline string, env []string, log *os.File) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", cmdline)
	cmd.Env = env
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return f, nil
}

// runExec runs one exec command of a node to its end. Its output goes to
// the node's log; on failure the end of it goes into the error too.
func runExec(ctx context.Context, nsPath, node, cmdline string, env []string, logPath string) error {
	f, err := openLog(logPath)
	if err != nil {
		return fmt.Errorf("node %s: exec %q: %w", node, cmdline, err)
	}
	defer f.Close()
	fmt.Fprintf(f, "--- %s exec: %s\n", time.Now().Format(time.RFC3339), cmdline)
	start, _ := f.Seek(0, io.SeekEnd)
	cmd := shellCmd(ctx, cmdline, env, f)
	if err := netns.StartCmd(nsPath, cmd); err != nil {
		return fmt.Errorf("node %s: exec %q: %w", node, cmdline, err)
	}
	if err := cmd.Wait(); err != nil {
		out := tail(logPath, start, 1024)
		if out != "" {
			return fmt.Errorf("node %s: exec %q: %w: %s", node, cmdline, err, out)
		}
		return fmt.Errorf("node %s: exec %q: %w", node, cmdline, err)
	}
	return nil
}

// tail returns at most n bytes of the file from offset on, the last ones.
func tail(path string, offset int64, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	offset = max(offset, st.Size()-n)
	b := make([]byte, max(st.Size()-offset, 0))
	k, _ := f.ReadAt(b, offset)
	return strings.TrimSpace(string(b[:k]))
}

// supervisor keeps a node's cmd running: restarted, after a backoff that
// grows while it keeps failing, whenever it exits, until ctx ends.
type supervisor struct {
	node, nsPath, cmdline, logPath string
	env                            []string
	minBackoff, maxBackoff         time.Duration
	log                            *slog.Logger
	// started is called with each new pid.
	started func(pid int, restarts int)

	mu   sync.Mutex
	pid  int // of the process group too; 0 while none runs
	done chan struct{}
}

// run is the supervision loop; it returns once ctx has ended and the
// process it started last has been reaped.
func (s *supervisor) run(ctx context.Context) {
	defer close(s.done)
	backoff := s.minBackoff
	for n := 0; ; n++ {
		if ctx.Err() != nil {
			return
		}
		began := time.Now()
		err := s.once(ctx, n)
		if ctx.Err() != nil {
			return
		}
		// A process that ran a while was healthy: its exit is news, not
		// a crash loop.
		if time.Since(began) > 10*s.maxBackoff {
			backoff = s.minBackoff
		}
		s.log.Warn("node cmd exited; restarting", "node", s.node, "err", err, "in", backoff, "log", s.logPath)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.maxBackoff)
	}
}

// once starts the cmd and waits for it to exit.
func (s *supervisor) once(ctx context.Context, n int) error {
	f, err := openLog(s.logPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "--- %s cmd: %s\n", time.Now().Format(time.RFC3339), s.cmdline)
	// Stopping is stop's job (SIGTERM first), not a context's.
	cmd := shellCmd(context.Background(), s.cmdline, s.env, f)
	err = netns.StartCmd(s.nsPath, cmd)
	f.Close() // the child has its own copy
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.pid = cmd.Process.Pid
	if ctx.Err() != nil {
		// stop may have looked before this pid was set.
		_ = syscall.Kill(-s.pid, syscall.SIGKILL)
	}
	s.mu.Unlock()
	s.log.Info("node cmd started", "node", s.node, "pid", cmd.Process.Pid, "restarts", n)
	if s.started != nil {
		s.started(cmd.Process.Pid, n)
	}
	err = cmd.Wait()
	s.mu.Lock()
	s.pid = 0
	s.mu.Unlock()
	return err
}

// signal sends sig to the running process's group.
func (s *supervisor) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pid > 0 {
		_ = syscall.Kill(-s.pid, sig)
	}
}

// stop ends the process once ctx of run has been cancelled: SIGTERM,
// SIGKILL after grace.
func (s *supervisor) stop(grace time.Duration) {
	s.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-s.done:
		return
	case <-t.C:
	}
	s.signal(syscall.SIGKILL)
	<-s.done
}

// killProcs ends the processes found in the namespaces on paths:
// SIGTERM, and SIGKILL for those still there after grace. It never
// signals itself.
func killProcs(ctx context.Context, paths []string, grace time.Duration) error {
	scan := func() ([]int, error) {
		var all []int
		var errs []error
		for _, p := range paths {
			pids, err := netns.Procs(p)
			errs = append(errs, err)
			for _, pid := range pids {
				if pid != os.Getpid() && procStartTicks(pid) != 0 {
					all = append(all, pid)
				}
			}
		}
		return all, errors.Join(errs...)
	}
	pids, err := scan()
	if err != nil || len(pids) == 0 {
		return err
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		if pids, err = scan(); err != nil || len(pids) == 0 {
			return err
		}
	}
	for range 50 {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
		if pids, err = scan(); err != nil || len(pids) == 0 {
			return err
		}
	}
	return fmt.Errorf("processes %v survive SIGKILL", pids)
}
