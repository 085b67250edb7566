package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/mecorch/mecorch/latency"
	"github.com/mecorch/mecorch/mec/agentproto"
)

// TestProberMeasuresAndReports: the prober's sender probes the plan's
// targets (here its own reflector, and a port where nothing answers), and
// every window comes out as one batch of results: kernel-stamped RTTs for
// the live target, total loss for the dead one.
func TestProberMeasuresAndReports(t *testing.T) {
	p, err := NewProber(ProberConfig{Listen: "127.0.0.1:0", Timeout: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	self := p.Addr()
	if _, port, err := net.SplitHostPort(self); err != nil || port == "0" || port == "" {
		t.Fatalf("probe address %q", self)
	}
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.LocalAddr().String()
	dead.Close() // nothing answers there now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	p.SetPlan(agentproto.ProbePlan{IntervalMs: 10, WindowMs: 1000, Targets: []agentproto.ProbeTarget{
		{ID: "self", Kind: agentproto.TargetHost, Addr: self},
		{ID: "gone", Kind: agentproto.TargetCell, Addr: deadAddr},
	}})
	var got map[string]agentproto.RTTResult
	deadline := time.After(10 * time.Second)
	for got == nil || got["self"].Stats.Sent == 0 || got["gone"].Stats.Sent == 0 {
		select {
		case batch := <-p.Results():
			got = map[string]agentproto.RTTResult{}
			for _, r := range batch {
				got[r.Target] = r
			}
		case <-deadline:
			t.Fatalf("no window with both targets: %+v", got)
		}
	}
	live, gone := got["self"], got["gone"]
	if live.Kind != agentproto.TargetHost || gone.Kind != agentproto.TargetCell {
		t.Errorf("kinds %q %q", live.Kind, gone.Kind)
	}
	if live.Stats.Received() == 0 || live.Stats.P50 <= 0 || live.Stats.P50 > 50*time.Millisecond {
		t.Errorf("loopback window %+v", live.Stats)
	}
	// This kernel stamps sends and receives; user-space stamps here would
	// mean the sender lost them.
	if live.Stats.Source != latency.SourceKernel {
		t.Errorf("loopback stamps from %q, want the kernel's", live.Stats.Source)
	}
	if gone.Stats.Received() != 0 || gone.Stats.Loss != 1 {
		t.Errorf("dead target's window %+v: want all lost", gone.Stats)
	}
	// An empty plan stops probing: the reflector, which was the live
	// target, hears no more probes, and no window is reported.
	p.SetPlan(agentproto.ProbePlan{})
	time.Sleep(300 * time.Millisecond) // a probe in flight lands
	before := p.Reflected()
	if before == 0 {
		t.Fatal("the reflector answered nothing")
	}
	drain := time.After(1500 * time.Millisecond)
	for done := false; !done; {
		select {
		case <-p.Results():
		case <-drain:
			done = true
		}
	}
	if after := p.Reflected(); after != before {
		t.Errorf("probes went on after the plan was emptied: %d answered, then %d", before, after)
	}
	select {
	case batch := <-p.Results():
		t.Errorf("a window after the plan was emptied: %+v", batch)
	default:
	}
}

// TestProberRefusesAnUnknownMode: a typo in --stamp-mode fails the start,
// rather than leaving a reflector whose host never probes.
func TestProberRefusesAnUnknownMode(t *testing.T) {
	if _, err := NewProber(ProberConfig{Listen: "127.0.0.1:0", Mode: "kernal"}); err == nil {
		t.Fatal("mode \"kernal\" accepted")
	}
}
