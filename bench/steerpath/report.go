package steerpath

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// userHZ is the unit of /proc/stat (USER_HZ is 100 on Linux/x86).
const userHZ = 100

// CPUUse is a CPU's time during a timed window, as fractions of it. In
// pipeline mode all of the receive side runs in softirq on the DUT's CPU,
// so Busy minus Softirq there is someone else's load.
type CPUUse struct{ Busy, Softirq, Steal float64 }

func cpuUse(a, b cpuTimes) CPUUse {
	total := float64(b.total - a.total)
	if total == 0 {
		return CPUUse{}
	}
	return CPUUse{float64(b.busy-a.busy) / total, float64(b.softirq-a.softirq) / total, float64(b.steal-a.steal) / total}
}

// Run is one timed run of one case.
type Run struct {
	Wall time.Duration
	// Sent is what the sender handed to the kernel in the window, refused
	// frames included (see window); Delivered what reached the app's veth
	// (for the sender-only case: what entered dut's veth).
	Sent, Delivered uint64
	// Matched is what the classifier's matching rule counted in the
	// window (0 for the other cases).
	Matched uint64
	// Lost is how many of the frames sent during the whole run (warmup
	// and drain included) never reached their end, of SentAll.
	Lost, SentAll uint64
	// Preempted counts the sender thread's involuntary context switches
	// in the window: other load on its CPU.
	Preempted int64
	// Thread is the sender thread's CPU time in the window; inline, it
	// includes the whole receive path.
	Thread            time.Duration
	SenderCPU, DUTCPU CPUUse
	// DUTSoftirq is the DUT CPU's softirq time in the window
	// (tick-sampled).
	DUTSoftirq time.Duration
}

func newRun(senderOnly bool, w window, idle0, idle1 snapshot) Run {
	r := Run{Wall: w.wall, Sent: w.sent + w.refused, SentAll: w.sentAll + w.refusedAll, Thread: w.thread,
		Preempted:  w.preempted,
		Delivered:  w.after.app.rxPackets - w.before.app.rxPackets,
		Matched:    w.after.matched - w.before.matched,
		SenderCPU:  cpuUse(w.before.cpu[0], w.after.cpu[0]),
		DUTCPU:     cpuUse(w.before.cpu[1], w.after.cpu[1]),
		DUTSoftirq: time.Duration(w.after.cpu[1].softirq-w.before.cpu[1].softirq) * (time.Second / userHZ),
	}
	end := idle1.app.rxPackets - idle0.app.rxPackets
	if senderOnly { // nothing goes past dut
		r.Delivered = w.after.dutG.rxPackets - w.before.dutG.rxPackets
		end = idle1.dutG.rxPackets - idle0.dutG.rxPackets
	}
	if end < r.SentAll {
		r.Lost = r.SentAll - end
	}
	return r
}

// PPS is the delivered frames per second.
func (r Run) PPS() float64 { return float64(r.Delivered) / r.Wall.Seconds() }

// SenderPPS is the sender's rate.
func (r Run) SenderPPS() float64 { return float64(r.Sent) / r.Wall.Seconds() }

// ThreadNsPerFrame is the sender thread's CPU time per frame sent.
func (r Run) ThreadNsPerFrame() float64 { return float64(r.Thread.Nanoseconds()) / float64(r.Sent) }

// DUTNsPerFrame is the DUT CPU's softirq time per delivered frame: in
// pipeline mode, the receive side's cost, whatever else runs on that CPU.
// /proc/stat samples it at the tick (no IRQ time accounting here), so it is
// coarse.
func (r Run) DUTNsPerFrame() float64 {
	return float64(r.DUTSoftirq.Nanoseconds()) / float64(r.Delivered)
}

// Result is every run of one case at one inner size.
type Result struct {
	Inner, Frame, Wire int // inner packet, sent frame, sent frame on the wire (bytes)
	Case               string
	Runs               []Run
}

// Report is what Run measured.
type Report struct {
	Config            Config
	SenderCPU, DUTCPU int
	Pipeline          bool
	Results           []Result
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func each(runs []Run, f func(Run) float64) []float64 {
	out := make([]float64, len(runs))
	for i, r := range runs {
		out[i] = f(r)
	}
	return out
}

// bottleneck names the stage that limits a pipeline-mode case: the
// receive side when it dropped frames or had no idle time left, the sender
// when it used its whole CPU while the receive side kept up.
func bottleneck(lost, snd, dut float64) string {
	switch {
	case lost >= 0.01 || dut >= 0.95:
		return "receive side (DUT CPU)"
	case snd >= 0.95:
		return "sender"
	}
	return "neither CPU saturated"
}

// WriteTable writes the report as a Markdown table, one row per inner size
// and case, medians with min–max across rounds.
func (rep *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	mode := fmt.Sprintf("pipeline: sender on CPU %d, receive side (RPS) on CPU %d", rep.SenderCPU, rep.DUTCPU)
	if !rep.Pipeline {
		mode = fmt.Sprintf("inline: sender and receive side on CPU %d", rep.SenderCPU)
	}
	fmt.Fprintf(&b, "%s; %d rounds of %v per case (after %v warm-up), %d frames per sendmmsg\n\n",
		mode, rep.Config.Rounds, rep.Config.Interval, rep.Config.Warmup, rep.Config.Batch)
	b.WriteString("| inner B (frame B) | case | Mpps delivered, median (min–max) | inner Gbit/s | on-wire Gbit/s | vs baseline, per round | sender Mpps | lost | sender thread ns/frame | sender CPU busy | sender preempted | DUT CPU busy (softirq) | DUT softirq ns/frame | bottleneck |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	base := map[int][]float64{} // baseline rates by inner size
	for _, res := range rep.Results {
		if res.Case == CaseBaseline {
			base[res.Inner] = each(res.Runs, Run.PPS)
		}
	}
	for _, res := range rep.Results {
		if len(res.Runs) == 0 {
			continue
		}
		pps := each(res.Runs, Run.PPS)
		ratio := "—"
		if base := base[res.Inner]; res.Case != CaseBaseline && len(base) == len(pps) {
			r := make([]float64, len(pps))
			for i := range pps {
				r[i] = pps[i] / base[i]
			}
			ratio = fmt.Sprintf("%.2f (%.2f–%.2f)", median(r), slices.Min(r), slices.Max(r))
		}
		m := median(pps)
		var lost, all uint64
		for _, r := range res.Runs {
			lost, all = lost+r.Lost, all+r.SentAll
		}
		lostFrac := 0.0
		if all > 0 {
			lostFrac = float64(lost) / float64(all)
		}
		snd := median(each(res.Runs, func(r Run) float64 { return r.SenderCPU.Busy }))
		dutCols, neck := "same CPU | same CPU", "one CPU for both"
		if rep.Pipeline {
			dut := median(each(res.Runs, func(r Run) float64 { return r.DUTCPU.Busy }))
			soft := median(each(res.Runs, func(r Run) float64 { return r.DUTCPU.Softirq }))
			dutCols = fmt.Sprintf("%.0f %% (%.0f %%) | %.0f", 100*dut, 100*soft,
				median(each(res.Runs, Run.DUTNsPerFrame)))
			neck = bottleneck(lostFrac, snd, dut)
		}
		fmt.Fprintf(&b, "| %d (%d) | %s | %.3f (%.3f–%.3f) | %.2f | %.2f | %s | %.3f | %.2f %% | %.0f | %.0f %% | %.0f | %s | %s |\n",
			res.Inner, res.Frame, res.Case, m/1e6, slices.Min(pps)/1e6, slices.Max(pps)/1e6,
			m*float64(res.Inner)*8/1e9, m*float64(res.Wire)*8/1e9, ratio,
			median(each(res.Runs, Run.SenderPPS))/1e6, 100*lostFrac,
			median(each(res.Runs, Run.ThreadNsPerFrame)), 100*snd,
			median(each(res.Runs, func(r Run) float64 { return float64(r.Preempted) })), dutCols, neck)
	}
	var steal float64
	for _, res := range rep.Results {
		for _, r := range res.Runs {
			steal = math.Max(steal, math.Max(r.SenderCPU.Steal, r.DUTCPU.Steal))
		}
	}
	fmt.Fprintf(&b, "\nhighest steal time in a window: %.1f %%\n", 100*steal)
	_, err := io.WriteString(w, b.String())
	return err
}
