// Command failover measures, in a lab of real agents in network
// namespaces, how long mecorch takes to detect a failed host and to have
// its instance running (answering) on another host. Each run kills the
// host's agent and its instances and cuts its link, as a power loss would.
//
//	go run ./bench/failover -runs 10 -heartbeat 1s -missed 3
//
// Detection is the hostUnreachable alarm's alarmRaisedTime less the kill
// time; recovery is the first echo answer from the new host, polled every
// 20 ms. It needs root.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/mecorch/mecorch/internal/agentlab"
)

func main() {
	runs := flag.Int("runs", 10, "failures to measure")
	hb := flag.Duration("heartbeat", time.Second, "mecorch --heartbeat-interval")
	missed := flag.Int("missed", 3, "mecorch --missed-heartbeats")
	flag.Parse()
	if err := run(*runs, *hb, *missed); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

func run(runs int, hb time.Duration, missed int) error {
	dir, err := os.MkdirTemp("", "failover-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The agents run instances as nobody, which must get through it.
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	_, file, _, _ := runtime.Caller(0)
	bins, err := agentlab.Build(filepath.Join(filepath.Dir(file), "..", ".."), dir)
	if err != nil {
		return err
	}
	var detect, recover []time.Duration
	for i := 0; i < runs; i++ {
		d, r, err := once(bins, filepath.Join(dir, fmt.Sprint(i)), hb, missed)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Printf("run %2d: detected after %7.1f ms, running elsewhere after %7.1f ms\n", i+1, ms(d), ms(r))
		detect, recover = append(detect, d), append(recover, r)
	}
	fmt.Printf("heartbeat %s, NotReady after %d missed; %d runs\n", hb, missed, runs)
	fmt.Printf("detect:  median %7.1f ms  worst %7.1f ms\n", ms(median(detect)), ms(slices.Max(detect)))
	fmt.Printf("recover: median %7.1f ms  worst %7.1f ms\n", ms(median(recover)), ms(slices.Max(recover)))
	return nil
}

func once(bins agentlab.Binaries, dir string, hb time.Duration, missed int) (time.Duration, time.Duration, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, 0, err
	}
	ctx := context.Background()
	l, err := agentlab.Start(ctx, agentlab.Options{Prefix: "bf", Dir: dir, Bins: bins, Sites: []string{"s1", "s2"},
		Agents: []agentlab.AgentSpec{
			{HostID: "h1", SiteID: "s1", MilliCPU: 2000, MemoryMiB: 2048},
			{HostID: "h2", SiteID: "s2", MilliCPU: 2000, MemoryMiB: 2048},
		}, Heartbeat: hb, Missed: missed})
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	for _, h := range []string{"h1", "h2"} {
		if err := agentlab.Eventually(20*time.Second, func() error {
			x, err := l.Host(ctx, h)
			if err == nil && x.State != "Ready" {
				err = fmt.Errorf("%s is %s", h, x.State)
			}
			return err
		}); err != nil {
			return 0, 0, err
		}
	}
	appD, err := l.Onboard(ctx)
	if err != nil {
		return 0, 0, err
	}
	// No placement constraint: a site constraint would pin the instance
	// to its dead site.
	inst, _, err := l.Instantiate(ctx, appD, "echo", nil)
	if err != nil {
		return 0, 0, err
	}
	var victim, survivor string
	if err := agentlab.Eventually(20*time.Second, func() error {
		in, err := l.Instance(ctx, inst)
		if err == nil && in.Mecorch.ObservedState != "Running" {
			err = fmt.Errorf("instance is %q", in.Mecorch.ObservedState)
		}
		victim = in.Mecorch.HostID
		return err
	}); err != nil {
		return 0, 0, err
	}
	survivor = "h2"
	if victim == "h2" {
		survivor = "h1"
	}
	// Kill at a random phase of the heartbeat: the lab's timing is
	// otherwise so regular that every run would kill at the same point
	// between two heartbeats.
	time.Sleep(2*hb + time.Duration(rand.Int64N(int64(hb))))

	killed := time.Now()
	l.KillAgent(victim, true)
	if err := l.SetLink(victim, false); err != nil {
		return 0, 0, err
	}
	var recovered time.Time
	deadline := killed.Add(time.Minute)
	for time.Now().Before(deadline) {
		in, err := l.Instance(ctx, inst)
		if err == nil && in.Mecorch.HostID == survivor {
			if addr, err := l.InstanceAddr(ctx, survivor, inst); err == nil && l.Echo(ctx, survivor, addr) == nil {
				recovered = time.Now()
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if recovered.IsZero() {
		return 0, 0, fmt.Errorf("instance never ran on %s", survivor)
	}
	var al []struct {
		AlarmRaisedTime time.Time `json:"alarmRaisedTime"`
	}
	if err := l.Client.Do(ctx, "GET", "/api/v1/alarms?state=all&managedObjectId="+victim, nil, &al, 200); err != nil {
		return 0, 0, err
	}
	if len(al) != 1 {
		return 0, 0, fmt.Errorf("%d alarms for %s", len(al), victim)
	}
	return al[0].AlarmRaisedTime.Sub(killed), recovered.Sub(killed), nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
