package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/mecorch/mecorch/latency"
	"github.com/mecorch/mecorch/latency/stamp"
)

// startReflector runs a STAMP reflector beside another simulator; stop
// ends it and waits for it.
func startReflector(ctx context.Context, addr string, log *slog.Logger) (stop func(), err error) {
	r, err := stamp.NewReflector(stamp.ReflectorConfig{Listen: addr, Logger: log})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(ctx); err != nil {
			log.Error("stamp reflector", "err", err)
		}
	}()
	return func() { cancel(); <-done; log.Info("stamp reflector stopped", "counters", r.Counters()) }, nil
}

// probeSample is one JSON line of stamp-probe --json.
type probeSample struct {
	Type   string         `json:"type"` // "stamp_sample"
	Target string         `json:"target"`
	Seq    uint32         `json:"seq"`
	SentAt time.Time      `json:"sentAt"`
	RTTNs  int64          `json:"rttNs"`
	Lost   bool           `json:"lost,omitempty"`
	Source latency.Source `json:"source"`
}

// probeSummary is stamp-probe's last line.
type probeSummary struct {
	Type    string                 `json:"type"` // "stamp_summary"
	Target  string                 `json:"target"`
	Mode    string                 `json:"mode"`
	Stats   latency.Stats          `json:"stats"`
	Sources map[latency.Source]int `json:"sources"`
	Sender  stamp.SenderCounters   `json:"counters"`
}

func runStampProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var target, mode string
	var interval, timeout time.Duration
	var count int
	var jsonOut bool
	fs := newFlagSet("stamp-probe", stderr, &c, false)
	fs.StringVar(&target, "target", "", "the reflector, host:port (required)")
	fs.DurationVar(&interval, "interval", 100*time.Millisecond, "time between probes")
	fs.DurationVar(&timeout, "timeout", time.Second, "an unanswered probe is lost after this long")
	fs.IntVar(&count, "count", 10, "stop after this many samples (0: until SIGINT/SIGTERM)")
	fs.StringVar(&mode, "mode", stamp.ModeAuto, "auto (kernel stamps where there are) or user")
	fs.BoolVar(&jsonOut, "json", false, "print every sample as a JSON line, then the summary as one")
	if err := parse(fs, args); err != nil {
		return err
	}
	if target == "" {
		return usageErr("--target is required")
	}
	if mode != stamp.ModeAuto && mode != stamp.ModeUser {
		return usageErr("--mode %q: want auto or user", mode)
	}
	log, err := logger(c.logLevel, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var samples []latency.Sample
	var writeErr error
	enc := json.NewEncoder(stdout)
	s, err := stamp.NewSender(stamp.SenderConfig{Interval: interval, Timeout: timeout, Mode: mode, Logger: log},
		func(x latency.Sample) {
			mu.Lock()
			defer mu.Unlock()
			if count > 0 && len(samples) >= count {
				return
			}
			samples = append(samples, x)
			if jsonOut && writeErr == nil {
				writeErr = enc.Encode(probeSample{"stamp_sample", x.Target, x.Seq, x.SentAt, int64(x.RTT), x.Lost, x.Source})
			}
			if count > 0 && len(samples) >= count {
				cancel()
			}
		})
	if err != nil {
		return err
	}
	s.SetTargets([]stamp.Target{{ID: target, Addr: target}})
	if err := s.Run(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if writeErr != nil {
		return fmt.Errorf("write samples: %w", writeErr)
	}
	sum := probeSummary{Type: "stamp_summary", Target: target, Mode: mode, Stats: summarize(samples),
		Sources: map[latency.Source]int{}, Sender: s.Counters()}
	for _, x := range samples {
		sum.Sources[x.Source]++
	}
	if jsonOut {
		return enc.Encode(sum)
	}
	st := sum.Stats
	_, err = fmt.Fprintf(stdout, "%s: sent %d lost %d  min %v p50 %v p95 %v p99 %v jitter %v  sources %v\n",
		target, st.Sent, st.Lost, st.Min, st.P50, st.P95, st.P99, st.Jitter, sum.Sources)
	return err
}

// summarize computes the window's Stats (nearest-rank percentiles).
func summarize(samples []latency.Sample) latency.Stats {
	var st latency.Stats
	var rtts []time.Duration
	var prev time.Duration
	for i, x := range samples {
		if i == 0 || x.SentAt.Before(st.From) {
			st.From = x.SentAt
		}
		if x.SentAt.After(st.To) {
			st.To = x.SentAt
		}
		st.Sent++
		st.Source = worseSource(st.Source, x.Source, i == 0)
		if x.Lost {
			st.Lost++
			continue
		}
		if len(rtts) > 0 {
			d := (x.RTT - prev).Abs()
			st.Jitter += (d - st.Jitter) / 16
		}
		prev = x.RTT
		rtts = append(rtts, x.RTT)
	}
	if st.Sent > 0 {
		st.Loss = float64(st.Lost) / float64(st.Sent)
	}
	if len(rtts) == 0 {
		return st
	}
	slices.Sort(rtts)
	pct := func(p float64) time.Duration {
		i := int(p*float64(len(rtts))+0.999999) - 1
		return rtts[min(max(i, 0), len(rtts)-1)]
	}
	st.Min, st.P50, st.P95, st.P99 = rtts[0], pct(0.50), pct(0.95), pct(0.99)
	return st
}

func worseSource(acc, s latency.Source, first bool) latency.Source {
	if first {
		return s
	}
	return latency.Worse(acc, s)
}

// runBurn keeps threads busy until stopped: load for CPU-load tests.
func runBurn(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var threads int
	fs := newFlagSet("burn", stderr, &c, false)
	fs.IntVar(&threads, "threads", runtime.NumCPU(), "busy threads")
	if err := parse(fs, args); err != nil {
		return err
	}
	if threads < 1 {
		return usageErr("--threads %d: want at least 1", threads)
	}
	var wg sync.WaitGroup
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // one busy OS thread each
			x := uint64(1)
			for i := 0; ; i++ {
				x = x*6364136223846793005 + 1442695040888963407
				if i&0xfffff == 0 && ctx.Err() != nil {
					sink(x)
					return
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

//go:noinline
func sink(uint64) {}
