package classify

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
)

// Counter is what a rule has matched since it was first installed.
type Counter struct {
	Packets uint64
	Bytes   uint64
}

// Classifier owns the loaded program and its maps. The zero rule set (no
// rules) matches nothing: every packet passes with mark 0.
type Classifier struct {
	mu    sync.Mutex
	objs  classifyObjects
	ncpu  int
	slot  uint32             // active slot
	rules []Rule             // active rules in priority order
	carry map[string]Counter // counts from earlier sets, per rule ID
}

// New loads the classifier program and its maps into the kernel.
func New() (*Classifier, error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("classify: possible CPUs: %w", err)
	}
	c := &Classifier{ncpu: ncpu, carry: map[string]Counter{}}
	if err := loadClassifyObjects(&c.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("classify: load: %+v", ve)
		}
		return nil, fmt.Errorf("classify: load: %w", err)
	}
	return c, nil
}

// Program is the tc program, for attaching (tcx) or test runs.
func (c *Classifier) Program() *ebpf.Program { return c.objs.Classify }

// Close releases the program and maps.
func (c *Classifier) Close() error { return c.objs.Close() }

// Apply compiles rules and installs them. The new set is written into the
// idle slot and becomes visible with one 4-byte store, so a packet sees the
// old set or the new one, never a mix. An invalid set changes nothing.
func (c *Classifier) Apply(rules []Rule) error {
	comp, err := Compile(rules)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
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
