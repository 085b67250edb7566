package classify

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// fakeClock stands in for the wall clock in Apply: sleeps are recorded and
// advance it, so the grace logic is checked without waiting.
type fakeClock struct {
	t      time.Time
	sleeps []time.Duration
}

func (f *fakeClock) now() time.Time { return f.t }
func (f *fakeClock) sleep(d time.Duration) {
	f.sleeps = append(f.sleeps, d)
	f.t = f.t.Add(d)
}

// TestApplyWaitsOutSlotGrace: Apply rewrites the idle slot only once it has
// been idle for slotGrace, sleeping just the remainder; back-to-back Applies
// still each put their set in force.
func TestApplyWaitsOutSlotGrace(t *testing.T) {
	c := newClassifier(t)
	clk := &fakeClock{t: time.Unix(1000, 0)}
	c.now, c.sleep = clk.now, clk.sleep
	set := func(port string) []Rule {
		return []Rule{{ID: "r" + port, Action: ActionDrop, Filters: []Filter{{DstPort: []string{port}}}}}
	}
	frame := func(port uint16) []byte {
		return eth(0x0800, ip4{src: "10.0.0.1", dst: "192.0.2.10", proto: 17}.build(udp(5000, port, nil)))
	}
	steps := []struct {
		advance time.Duration
		port    uint16
		sleep   time.Duration // 0: must not sleep
	}{
		{0, 53, 0},         // first Apply since load: nothing in flight on the idle slot
		{0, 54, slotGrace}, // back to back: the whole grace
		{3 * time.Millisecond, 55, slotGrace - 3*time.Millisecond}, // the rest of it
		{slotGrace, 56, 0}, // idle long enough already
		{slotGrace + time.Second, 57, 0},
	}
	for i, s := range steps {
		clk.t = clk.t.Add(s.advance)
		clk.sleeps = nil
		if err := c.Apply(set(fmt.Sprint(s.port))); err != nil {
			t.Fatal(err)
		}
		var want []time.Duration
		if s.sleep != 0 {
			want = []time.Duration{s.sleep}
		}
		if fmt.Sprint(clk.sleeps) != fmt.Sprint(want) {
			t.Errorf("step %d: slept %v, want %v", i, clk.sleeps, want)
		}
		// The new set is in force and the previous one gone.
		if rc, mark := run(t, c.Program(), frame(s.port)); rc != tcActShot || mark != 1 {
			t.Errorf("step %d: port %d rc=%d mark=%#x, want dropped, mark 1", i, s.port, rc, mark)
		}
		if i > 0 {
			if rc, mark := run(t, c.Program(), frame(steps[i-1].port)); rc != tcxNext || mark != staleMark {
				t.Errorf("step %d: old port %d rc=%#x mark=%#x, want no match", i, steps[i-1].port, rc, mark)
			}
		}
	}
	// A refused set does not count as a switch: no sleep owed afterwards
	// beyond what the last real switch left.
	clk.t = clk.t.Add(slotGrace)
	clk.sleeps = nil
	if err := c.Apply([]Rule{{ID: "bad", Action: "BOUNCE", Filters: []Filter{{DstPort: []string{"1"}}}}}); err == nil {
		t.Fatal("bad set applied")
	}
	if err := c.Apply(set("58")); err != nil || len(clk.sleeps) != 0 {
		t.Fatalf("after refused set: err %v, slept %v", err, clk.sleeps)
	}
}

// TestApplyChurnKeepsUntouchedRule: while rule sets are swapped as fast as
// Apply allows, a rule present in every set matches every packet meant for
// it. The sets put that rule at different entry positions (behind 1,000,
// 2,000 or 3,000 filler entries) and cycle through three, so each rewrite of
// a slot changes it: a packet still walking a slot while it is rewritten
// could run off its old count past entries that no longer hold the rule.
func TestApplyChurnKeepsUntouchedRule(t *testing.T) {
	c := newClassifier(t)
	keep := Rule{ID: "keep", Priority: 5, Action: ActionDrop, Filters: []Filter{{DstPort: []string{"53"}}}}
	sets := make([][]Rule, 3)
	for i := range sets {
		ports := make([]string, 1000*(i+1))
		for j := range ports {
			ports[j] = fmt.Sprint(10000 + j)
		}
		filler := Rule{ID: fmt.Sprint("filler", i), Priority: 1, Action: ActionPassthrough,
			Filters: []Filter{{Protocol: []string{"UDP"}, SrcPort: ports}}}
		sets[i] = []Rule{keep, filler} // listed after, but filler's priority puts it first: keep is rule 1, mark 2
	}
	if err := c.Apply(sets[0]); err != nil {
		t.Fatal(err)
	}
	frame := v4udp() // UDP 5000 -> 53: no filler entry matches
	var (
		stop  atomic.Bool
		runs  atomic.Int64
		bad   atomic.Int64
		first atomic.Value
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		in := skbCtx{2: staleMark}
		for !stop.Load() {
			var out skbCtx
			rc, err := c.Program().Run(&ebpf.RunOptions{Data: frame, Context: in[:], ContextOut: out[:]})
			runs.Add(1)
			if err != nil || rc != tcActShot || out[2] != 2 {
				if bad.Add(1) == 1 {
					first.Store(fmt.Sprintf("rc=%d mark=%#x err=%v", rc, out[2], err))
				}
			}
		}
	}()
	const applies = 30
	start := runs.Load()
	for i := 1; i <= applies; i++ {
		if err := c.Apply(sets[i%3]); err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatal(err)
		}
	}
	during := runs.Load() - start
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d runs lost the untouched rule during %d Applies; first: %v", bad.Load(), runs.Load(), applies, first.Load())
	}
	if during < applies {
		t.Fatalf("only %d runs overlapped %d Applies: the churn was not exercised", during, applies)
	}
	cnt, err := c.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if got := cnt["keep"].Packets; got == 0 || got > uint64(runs.Load()) {
		t.Fatalf("keep counted %d packets of %d runs", got, runs.Load())
	}
}
