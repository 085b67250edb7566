package apprun

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// RestartPolicy says what happens when an instance's process exits.
type RestartPolicy string

// Restart policies, as in Kubernetes.
const (
	RestartAlways    RestartPolicy = "Always"    // restart whatever the exit
	RestartOnFailure RestartPolicy = "OnFailure" // restart unless it exited with status 0
	RestartNever     RestartPolicy = "Never"     // exit 0 is Stopped, anything else Failed
)

// Instance states, the strings the agent reports.
const (
	StateRunning = "Running"
	StateStopped = "Stopped"
	StateFailed  = "Failed"
)

// Spec is what an instance runs.
type Spec struct {
	ID        string   // instance id (opaque string, may be a UUID)
	Exec      string   // absolute path of an executable file, already on disk
	Args, Env []string // Env gets MEC_INSTANCE_ID and MEC_ADDRESS added
	MilliCPU  int64    // 0 = no CPU limit
	MemoryMiB int64    // 0 = no memory limit
	Restart   RestartPolicy
}

// Validate checks a spec, including that Exec is an executable file.
func (s Spec) Validate() error {
	switch {
	case s.ID == "":
		return errors.New("spec: empty ID")
	case !filepath.IsAbs(s.Exec):
		return fmt.Errorf("spec %s: Exec %q is not an absolute path", s.ID, s.Exec)
	case s.MilliCPU < 0 || s.MemoryMiB < 0:
		return fmt.Errorf("spec %s: negative limit", s.ID)
	}
	switch s.Restart {
	case "", RestartAlways, RestartOnFailure, RestartNever:
	default:
		return fmt.Errorf("spec %s: unknown restart policy %q", s.ID, s.Restart)
	}
	fi, err := os.Stat(s.Exec)
	if err != nil {
		return fmt.Errorf("spec %s: %w", s.ID, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("spec %s: %s is not an executable file", s.ID, s.Exec)
	}
	return nil
}

func (s Spec) withDefaults() Spec {
	if s.Restart == "" {
		s.Restart = RestartAlways
	}
	return s
}

func (s Spec) equal(o Spec) bool {
	return s.ID == o.ID && s.Exec == o.Exec && slices.Equal(s.Args, o.Args) && slices.Equal(s.Env, o.Env) &&
		s.MilliCPU == o.MilliCPU && s.MemoryMiB == o.MemoryMiB && s.Restart == o.Restart
}

// Status is what the runtime knows of an instance.
type Status struct {
	ID       string
	State    string // StateRunning, StateStopped or StateFailed
	PID      int    // 0 when no process runs
	Address  netip.Addr
	Restarts int
	// Message says why the instance is in its state, e.g. "exit status 1;
	// restarting in 4s".
	Message string
	// Current use, from the instance's cgroup; 0 if unknown or not running.
	MilliCPU    int64
	MemoryBytes int64
}

// Runtime runs app instances.
type Runtime interface {
	// Start runs an instance. It is idempotent: an instance already running
	// (or backing off before a restart) with the same spec is left alone;
	// one running with another spec is stopped and started with the new.
	Start(ctx context.Context, s Spec) error
	// Stop sends SIGTERM, waits up to grace, then SIGKILL (grace 0: kill
	// now). The instance keeps its namespace and address and is not
	// restarted.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Remove kills the instance and deletes everything of it: namespace,
	// link, cgroup, logs, state. A missing instance is not an error.
	Remove(ctx context.Context, id string) error
	Status(id string) (Status, bool)
	List() []Status
	// Logs returns the tail (at most maxBytes) of the instance's stdout and
	// stderr, and whether there was more.
	Logs(id string, maxBytes int) (data []byte, truncated bool, err error)
	// Sweep removes every instance, namespace, link, cgroup and state it
	// finds whose id keep rejects, known or left over from a crash.
	Sweep(ctx context.Context, keep func(id string) bool) error
	// Close stops supervising; the processes keep running, for the next
	// agent to adopt.
	Close() error
}

// Errors.
var (
	ErrNotFound = errors.New("apprun: no such instance")
	ErrClosed   = errors.New("apprun: runtime closed")
)

// Clock is the time source, injected so that backoff and usage sampling
// follow the caller's notion of time.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

var _ Runtime = (*Process)(nil)
