package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mecorch/mecorch/lab/topology"
)

// StateFile is the name of the state file in a lab's state directory.
const StateFile = "state.json"

// State is what a runner records of its lab, written before anything is
// made and rewritten as processes start, so that another process can
// report on the lab or remove it.
type State struct {
	Lab      string `json:"lab"`
	File     string `json:"file,omitempty"`
	NetnsDir string `json:"netnsDir"`
	StateDir string `json:"stateDir"`
	// Runner is the process that runs the lab; StartTicks tells it from
	// a later process that got the same pid.
	RunnerPID        int       `json:"runnerPid"`
	RunnerStartTicks uint64    `json:"runnerStartTicks"`
	Created          time.Time `json:"created"`
	// Namespaces and RelayNamespaces are every namespace the runner will
	// make (names in NetnsDir), listed before it makes them.
	Namespaces      []string    `json:"namespaces"`
	RelayNamespaces []string    `json:"relayNamespaces,omitempty"`
	Nodes           []NodeState `json:"nodes"`
	Links           []LinkState `json:"links"`
}

// NodeState is one node of a State.
type NodeState struct {
	Name      string `json:"name"`
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace"`
	Cmd       string `json:"cmd,omitempty"`
	// PID is the node's cmd as last started (0: none yet); Restarts
	// counts the starts after the first.
	PID      int       `json:"pid,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Restarts int       `json:"restarts,omitempty"`
}

// LinkState is one link of a State. A and B are node:iface.
type LinkState struct {
	Index      int                 `json:"index"`
	A          string              `json:"a"`
	B          string              `json:"b"`
	MTU        int                 `json:"mtu,omitempty"`
	Emulated   bool                `json:"emulated,omitempty"`
	RelayNetns string              `json:"relayNetns,omitempty"`
	AtoB       topology.Impairment `json:"aToB"`
	BtoA       topology.Impairment `json:"bToA"`
}

// planState is the state of a lab about to be made.
func planState(t *topology.Topology, o Options) *State {
	st := &State{
		Lab: t.Name, File: t.File, NetnsDir: o.NetnsDir, StateDir: o.StateDir,
		RunnerPID: os.Getpid(), RunnerStartTicks: procStartTicks(os.Getpid()),
		Created: time.Now().UTC(),
	}
	for _, n := range t.Nodes {
		st.Namespaces = append(st.Namespaces, t.Namespace(n.Name))
		st.Nodes = append(st.Nodes, NodeState{Name: n.Name, Kind: n.Kind, Namespace: t.Namespace(n.Name), Cmd: n.Cmd})
	}
	for i, l := range t.Links {
		ls := LinkState{
			Index: i, A: l.A.Node + ":" + l.A.Iface, B: l.B.Node + ":" + l.B.Iface,
			MTU: l.MTU, AtoB: l.AtoB, BtoA: l.BtoA,
		}
		if o.emulated(l) {
			ls.Emulated = true
			ls.RelayNetns = relayName(t, i)
			st.RelayNamespaces = append(st.RelayNamespaces, ls.RelayNetns)
		}
		st.Links = append(st.Links, ls)
	}
	return st
}

// stateStore keeps a State and its file in step.
type stateStore struct {
	path string
	mu   sync.Mutex
	st   *State
}

// update changes the state and rewrites the file.
func (s *stateStore) update(fn func(*State)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.st)
	return writeState(s.path, s.st)
}

// snapshot returns a deep enough copy to read without the lock.
func (s *stateStore) snapshot() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *s.st
	c.Nodes = append([]NodeState(nil), s.st.Nodes...)
	c.Links = append([]LinkState(nil), s.st.Links...)
	return c
}

// writeState replaces the file atomically: a reader, or a runner that
// crashed mid-write, never sees half a state.
func writeState(path string, st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// ReadState reads the state file in dir. A missing one is an error that
// matches fs.ErrNotExist.
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, fmt.Errorf("lab state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("lab state %s: %w", filepath.Join(dir, StateFile), err)
	}
	if st.Lab == "" || st.NetnsDir == "" {
		return nil, fmt.Errorf("lab state %s: no lab name or netns dir", filepath.Join(dir, StateFile))
	}
	return &st, nil
}

// removeState removes the runtime part of a state directory, leaving
// logs/.
func removeState(dir string) error {
	for _, f := range []string{StateFile, StateFile + ".tmp"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove lab state: %w", err)
		}
	}
	return nil
}

// procStartTicks is when pid started, in clock ticks since boot (field 22
// of /proc/pid/stat), or 0 if it is not running. The command name in
// field 2 may hold spaces and parentheses, so fields count from the last
// ')'.
func procStartTicks(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); a zombie has exited.
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// runnerAlive tells whether the runner recorded in st still runs.
func (st *State) runnerAlive() bool {
	return st.RunnerPID > 0 && st.RunnerStartTicks != 0 && procStartTicks(st.RunnerPID) == st.RunnerStartTicks
}
