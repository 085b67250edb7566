package classify

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cilium/ebpf"
)

// Counter is what a rule has matched since it was first installed.
type Counter struct {
	Packets uint64
	Bytes   uint64
}

// Classifier owns the loaded programs and their maps. The zero rule set (no
// rules) matches nothing: every packet goes on to the next tcx program (or
// the stack) with its mark untouched.
type Classifier struct {
	mu       sync.Mutex
	objs     classifyObjects
	ncpu     int
	slot     uint32             // active slot
	rules    []Rule             // active rules in priority order
	carry    map[string]Counter // counts from earlier sets, per rule ID
	switched time.Time          // when active last changed; zero: not since load
	now      func() time.Time
	sleep    func(time.Duration)
}

// slotGrace is how long a slot must have been idle before Apply rewrites it.
// A packet reads `active` once and then walks that slot's entries, so one
// that read it just before a switch may still be walking the slot the switch
// made idle; rewriting it under that packet would show it a mix of two sets.
// The walk runs in one tc (softirq) invocation: BenchmarkClassify measures
// about 5 ns per entry, ~50 µs for a full slot of 10,000 entries, on the
// 2-core build VM. 10 ms is 200 times that: room for interrupts, a slower or
// busier CPU, and a test run (BPF_PROG_TEST_RUN can be preempted mid-walk).
// It is a bound, not a proof: a kernel that can preempt tc programs for
// longer (PREEMPT_RT) could exceed it. Apply sleeps only for what is left of
// it since the last switch, so rule updates a human or the orchestrator
// makes never wait.
const slotGrace = 10 * time.Millisecond

// Options tune Open.
type Options struct {
	// PinDir, when set, is a directory on a bpffs (created if missing)
	// where the maps are pinned by name, so the rules, UE paths, settings,
	// counters and stats outlive the process: an agent that restarts
	// reopens them (with AttachPinned for the links) and traffic is
	// classified throughout.
	PinDir string
}

// New loads the classifier programs and their maps into the kernel, unpinned:
// they go away with the last reference (the process, or an unpinned link).
func New() (*Classifier, error) {
	c, _, err := Open(Options{})
	return c, err
}

// Open loads the programs and their maps. With opts.PinDir, maps already
// pinned there are reused (the bool is true) when all of them are present
// and each still fits its spec (type, key and value size, entries, flags);
// otherwise the pins are removed and fresh maps are created and pinned (the
// bool is false: nothing of the previous state is kept, so configure, set
// UEs and apply rules again). On reuse the rules in force keep matching and
// the next Apply writes the idle slot; per-rule counters restart with that
// Apply (rule IDs are not kept in the kernel).
func Open(opts Options) (*Classifier, bool, error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, false, fmt.Errorf("classify: possible CPUs: %w", err)
	}
	spec, err := loadClassify()
	if err != nil {
		return nil, false, fmt.Errorf("classify: %w", err)
	}
	c := &Classifier{ncpu: ncpu, carry: map[string]Counter{}, now: time.Now, sleep: time.Sleep}
	reused := false
	var lopts ebpf.CollectionOptions
	if opts.PinDir != "" {
		if reused, err = preparePins(spec, opts.PinDir); err != nil {
			return nil, false, err
		}
		lopts.Maps.PinPath = opts.PinDir
	}
	err = spec.LoadAndAssign(&c.objs, &lopts)
	if opts.PinDir != "" && errors.Is(err, ebpf.ErrMapIncompatible) {
		// A layout change since the maps were pinned: the old state cannot
		// be read by these programs. Start afresh.
		if err := removeMapPins(spec, opts.PinDir); err != nil {
			return nil, false, err
		}
		reused = false
		err = spec.LoadAndAssign(&c.objs, &lopts)
	}
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, false, fmt.Errorf("classify: load: %+v", ve)
		}
		return nil, false, fmt.Errorf("classify: load: %w", err)
	}
	if reused {
		var st uint32
		if err := c.objs.Active.Lookup(uint32(0), &st); err != nil {
			c.objs.Close()
			return nil, false, fmt.Errorf("classify: read active slot: %w", err)
		}
		c.slot = st >> 31
		// When the previous process last switched is unknown: assume just
		// now, so the first Apply waits out the grace.
		c.switched = c.now()
	}
	return c, reused, nil
}

// Program is the classifying tc program, for attaching (tcx) or test runs.
func (c *Classifier) Program() *ebpf.Program { return c.objs.Classify }

// LearnProgram is the tc program that records UE paths from downlink G-PDUs
// (with ReturnConfig.Learn) and otherwise does nothing: it never changes a
// packet and always returns TCX_NEXT. Attach it where downlink arrives from
// the core, ahead of any program that may end the tcx chain.
func (c *Classifier) LearnProgram() *ebpf.Program { return c.objs.Learn }

// Close releases the programs and maps (pinned ones stay in the kernel).
func (c *Classifier) Close() error { return c.objs.Close() }

// Apply compiles rules and installs them. The new set is written into the
// idle slot and becomes visible with one 4-byte store, so a packet sees the
// old set or the new one, never a mix; the idle slot is not rewritten until
// it has been idle for slotGrace. An invalid set changes nothing.
func (c *Classifier) Apply(rules []Rule) error {
	comp, err := Compile(rules)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.switched.IsZero() {
		if wait := slotGrace - c.now().Sub(c.switched); wait > 0 {
			c.sleep(wait)
		}
	}
	next := c.slot ^ 1
	base := next * MaxEntries
	for i := range comp.entries {
		if err := c.objs.Rules.Put(base+uint32(i), &comp.entries[i]); err != nil {
			return fmt.Errorf("classify: write rule entry %d: %w", i, err)
		}
	}
	zero := make([]classifyCounter, c.ncpu)
	for i := range comp.rules {
		if err := c.objs.Counters.Put(base+uint32(i), zero); err != nil {
			return fmt.Errorf("classify: reset counter %d: %w", i, err)
		}
	}
	if err := c.objs.Active.Put(uint32(0), next<<31|uint32(len(comp.entries))); err != nil {
		return fmt.Errorf("classify: switch rule set: %w", err)
	}
	c.switched = c.now()
	// Fold the old set's counts into carry so a rule kept across Apply keeps
	// counting; packets still in flight on the old slot may be missed.
	old, err := c.readCounters()
	c.slot, c.rules = next, comp.rules
	if err != nil {
		return err
	}
	keep := map[string]Counter{}
	for _, r := range comp.rules {
		keep[r.ID] = old[r.ID]
	}
	c.carry = keep
	return nil
}

// Counters returns per-rule counts for the active rules, keyed by rule ID.
func (c *Classifier) Counters() (map[string]Counter, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readCounters()
}

func (c *Classifier) readCounters() (map[string]Counter, error) {
	out := make(map[string]Counter, len(c.rules))
	vals := make([]classifyCounter, c.ncpu)
	for i, r := range c.rules {
		if err := c.objs.Counters.Lookup(c.slot*MaxEntries+uint32(i), &vals); err != nil {
			return nil, fmt.Errorf("classify: read counter of %s: %w", r.ID, err)
		}
		sum := c.carry[r.ID]
		for _, v := range vals {
			sum.Packets += v.Packets
			sum.Bytes += v.Bytes
		}
		out[r.ID] = sum
	}
	return out, nil
}
