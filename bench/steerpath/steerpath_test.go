package steerpath

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mecorch/mecorch/traffic/netns"
)

var (
	flagInterval = flag.Duration("steer.interval", time.Second, "timed window of each run")
	flagWarmup   = flag.Duration("steer.warmup", 200*time.Millisecond, "uncounted sending before each window")
	flagRounds   = flag.Int("steer.rounds", 5, "ABAB rounds: each runs every case once")
	flagSizes    = flag.String("steer.sizes", "64,512,1400", "inner IPv4 packet sizes, comma-separated")
	flagRules    = flag.String("steer.rules", "1,100", "classifier rule counts, comma-separated (the match is last)")
	flagModes    = flag.String("steer.modes", "inline,pipeline", "inline (all on the sender's CPU) and/or pipeline (receive side on a second CPU)")
	flagQuiet    = flag.Duration("steer.quietwait", 30*time.Second, "longest wait for an idle machine before each run")
)

// requireRoot skips without root, except under CI=true, where a green run
// must mean the driver ran.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("needs root for network namespaces, tcx and AF_PACKET (CI=true, not skipping)")
	}
	tb.Skip("needs root for network namespaces, tcx and AF_PACKET")
}

func TestFramesAreWellFormed(t *testing.T) {
	for _, size := range []int{minInner, 64, 512, 1400, maxInner} {
		f, err := buildFrames(size)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.inner) != size || len(f.frame) != encapOverhead+size || len(f.decap) != 14+size {
			t.Fatalf("size %d: inner %d, frame %d, decap %d", size, len(f.inner), len(f.frame), len(f.decap))
		}
		outer := f.frame[14:]
		if fold(sum(0, outer[:20])) != 0xffff || fold(sum(0, f.inner[:20])) != 0xffff {
			t.Fatalf("size %d: IPv4 header checksum does not verify", size)
		}
		if binary.BigEndian.Uint16(f.inner[26:]) != 0 || binary.BigEndian.Uint16(outer[26:]) != 0 {
			t.Fatalf("size %d: UDP checksums not 0", size)
		}
		g := outer[28:]
		if g[0] != 0x34 || g[1] != 0xff || int(binary.BigEndian.Uint16(g[2:])) != 8+size || g[11] != 0x85 {
			t.Fatalf("size %d: GTP-U header % x", size, g[:16])
		}
	}
	if _, err := buildFrames(maxInner + 1); err == nil {
		t.Fatal("an inner packet that does not fit the MTU was accepted")
	}
}

// TestDriverSteersDecapsulated runs the driver briefly, inline and (with
// two CPUs) pipelined: every case must pass its checks (byte-exact
// decapsulated frames at the app and in its UDP socket; every frame that
// entered dut counted by the matching rule and delivered at the
// decapsulated length), and the namespaces must be gone afterwards. No rate
// is asserted.
func TestDriverSteersDecapsulated(t *testing.T) {
	requireRoot(t)
	modes := []bool{false}
	if runtime.NumCPU() > 1 {
		modes = append(modes, true)
	}
	for _, pipeline := range modes {
		t.Run(fmt.Sprintf("pipeline=%v", pipeline), func(t *testing.T) {
			cfg := Config{InnerSizes: []int{64}, RuleCounts: []int{1, 100}, Interval: 150 * time.Millisecond,
				Warmup: 20 * time.Millisecond, Rounds: 1, Batch: 16, Pipeline: pipeline}
			d, err := New(cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			t.Cleanup(func() {
				if !closed {
					d.Close()
				}
			})
			names := append([]string(nil), d.topo.names...)
			rep, err := d.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			seen := 0
			for _, res := range rep.Results {
				if len(res.Runs) != 1 {
					t.Fatalf("%s: %d runs", res.Case, len(res.Runs))
				}
				r := res.Runs[0]
				if r.Delivered == 0 {
					t.Errorf("%s: nothing delivered", res.Case)
				}
				if isClassify(res.Case) {
					seen++
					if r.Matched == 0 {
						t.Errorf("%s: the matching rule counted nothing", res.Case)
					}
				}
			}
			if seen != 2 {
				t.Fatalf("%d classifier cases in the report, want 2", seen)
			}
			var b strings.Builder
			if err := rep.WriteTable(&b); err != nil || !strings.Contains(b.String(), "classify-100") {
				t.Fatalf("table: %v\n%s", err, b.String())
			}
			closed = true
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				if netns.IsMounted(netns.Path(netns.DefaultDir, n)) {
					t.Errorf("namespace %s left behind", n)
				}
			}
		})
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func ints(tb testing.TB, name, s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			tb.Fatalf("-%s: %q is not a number", name, f)
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkSteer is `make bench-steer`: every inner size, rule count and
// the two references, ABAB, in each mode, with a table per mode on stdout.
// Run it with -benchtime 1x; ns/op is meaningless and reported as 0.
func BenchmarkSteer(b *testing.B) {
	requireRoot(b)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	for _, mode := range strings.Split(*flagModes, ",") {
		cfg := DefaultConfig()
		cfg.InnerSizes = ints(b, "steer.sizes", *flagSizes)
		cfg.RuleCounts = ints(b, "steer.rules", *flagRules)
		cfg.Interval, cfg.Warmup, cfg.Rounds, cfg.QuietWait = *flagInterval, *flagWarmup, *flagRounds, *flagQuiet
		switch mode {
		case "inline":
		case "pipeline":
			cfg.Pipeline = true
		default:
			b.Fatalf("-steer.modes: unknown mode %q", mode)
		}
		rep := runBench(b, ctx, cfg, log)
		b.ReportMetric(0, "ns/op")
		fmt.Println()
		if err := rep.WriteTable(os.Stdout); err != nil {
			b.Fatal(err)
		}
	}
}

func runBench(b *testing.B, ctx context.Context, cfg Config, log *slog.Logger) *Report {
	d, err := New(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	var rep *Report
	for i := 0; i < b.N; i++ {
		if rep, err = d.Run(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return rep
}
