package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mecorch/mecorch/internal/agentlab"
)

type alarm struct {
	ID                string `json:"id"`
	ManagedObjectID   string `json:"managedObjectId"`
	ProbableCause     string `json:"probableCause"`
	PerceivedSeverity string `json:"perceivedSeverity"`
}

func alarms(t *testing.T, l *agentlab.Lab, state, object string) []alarm {
	t.Helper()
	var out []alarm
	if err := l.Client.Do(context.Background(), "GET", "/api/v1/alarms?state="+state+"&managedObjectId="+object, nil, &out, 200); err != nil {
		t.Fatal(err)
	}
	return out
}

func threeSites() []agentlab.AgentSpec {
	return []agentlab.AgentSpec{
		{HostID: "h1", SiteID: "s1", MilliCPU: 2000, MemoryMiB: 2048},
		{HostID: "h2", SiteID: "s2", MilliCPU: 2000, MemoryMiB: 2048},
		{HostID: "h3", SiteID: "s3", MilliCPU: 2000, MemoryMiB: 2048},
	}
}

// A host dies with its instances: mecorch marks it NotReady, raises an
// alarm, and the instance runs again on another host; the host comes back
// and nothing runs twice.
func TestHostFailureReplacesInstances(t *testing.T) {
	l := startLab(t, "tf", threeSites(), nil)
	ctx := context.Background()
	inst, h1, _ := deployEcho(t, l)

	l.KillAgent(h1, true)
	if err := l.SetLink(h1, false); err != nil {
		t.Fatal(err)
	}
	waitHostState(t, l, h1, "NotReady")
	if a := alarms(t, l, "active", h1); len(a) != 1 || a[0].ProbableCause != "hostUnreachable" || a[0].PerceivedSeverity != "CRITICAL" {
		t.Fatalf("alarms for %s after its failure: %+v", h1, a)
	}
	newHost, _ := runningOn(t, l, inst, h1, 20*time.Second)
	onlyOne(t, inst, 5*time.Second, 0)

	// The host comes back with its old state on disk, which still lists
	// the instance: it must learn it moved and never start it.
	if err := l.SetLink(h1, true); err != nil {
		t.Fatal(err)
	}
	if err := l.StartAgent(h1); err != nil {
		t.Fatal(err)
	}
	waitHostState(t, l, h1, "Ready")
	onlyOne(t, inst, 10*time.Second, 3*time.Second)
	in, err := l.Instance(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	if in.Mecorch.HostID != newHost {
		t.Errorf("instance moved again, to %s", in.Mecorch.HostID)
	}
	if err := agentlab.Eventually(5*time.Second, func() error {
		if a := alarms(t, l, "active", h1); len(a) != 0 {
			return fmt.Errorf("still active: %+v", a)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if a := alarms(t, l, "cleared", h1); len(a) != 1 {
		t.Errorf("cleared alarms for %s: %+v", h1, a)
	}
}

// The channel is cut for longer than the heartbeat timeout: the instance
// keeps serving where it was, mecorch places it elsewhere meanwhile, and on
// reconnection the old copy goes: one instance, no duplicate.
func TestPartitionConverges(t *testing.T) {
	l := startLab(t, "tp", threeSites()[:2], nil)
	ctx := context.Background()
	inst, h1, oldAddr := deployEcho(t, l)

	if err := l.SetLink(h1, false); err != nil {
		t.Fatal(err)
	}
	waitHostState(t, l, h1, "NotReady")
	runningOn(t, l, inst, h1, 20*time.Second)
	// Cut off, the host keeps serving its copy: UEs behind it still get
	// answers.
	if err := l.Echo(ctx, h1, oldAddr); err != nil {
		t.Fatalf("the partitioned host stopped serving: %v", err)
	}
	if n := len(agentlab.InstanceProcs(inst)); n != 2 {
		t.Fatalf("during the partition %d copies run, want the old and the new", n)
	}

	if err := l.SetLink(h1, true); err != nil {
		t.Fatal(err)
	}
	waitHostState(t, l, h1, "Ready")
	onlyOne(t, inst, 15*time.Second, 2*time.Second)
	if err := l.Echo(ctx, h1, oldAddr); err == nil {
		t.Error("the old copy still answers after reconnection")
	}
}

// kill -9 of the agent leaves its instances serving; the restarted agent
// finds them (same process) and, after terminate, nothing is left.
func TestAgentKill9FindsInstances(t *testing.T) {
	l := startLab(t, "tk", threeSites()[:1], func(o *agentlab.Options) { o.Missed = 1000 })
	ctx := context.Background()
	inst, _, addr := deployEcho(t, l)
	before := agentlab.InstanceProcs(inst)

	l.KillAgent("h1", false)
	if err := l.Echo(ctx, "h1", addr); err != nil {
		t.Fatalf("instance died with its agent: %v", err)
	}
	restarted := time.Now()
	if err := l.StartAgent("h1"); err != nil {
		t.Fatal(err)
	}
	// The restarted agent connects and reports the instance again.
	if err := agentlab.Eventually(10*time.Second, func() error {
		var ag struct {
			ConnectedAt time.Time `json:"connectedAt"`
			LastReport  *struct {
				Instances []struct{ ID, State string } `json:"instances"`
			} `json:"lastReport"`
		}
		if err := l.Client.Do(ctx, "GET", "/api/v1/agents/h1", nil, &ag, 200); err != nil {
			return err
		}
		if ag.ConnectedAt.Before(restarted) || ag.LastReport == nil || len(ag.LastReport.Instances) != 1 ||
			ag.LastReport.Instances[0].State != "Running" {
			return fmt.Errorf("agent session %+v", ag)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if after := agentlab.InstanceProcs(inst); !slices.Equal(before, after) {
		t.Errorf("processes before the agent's restart %v, after %v: it should have adopted the running one", before, after)
	}

	// Offline-first: agent and instance die while mecorch is unreachable;
	// the agent restarts from the desired state on disk and serves again.
	l.KillAgent("h1", true)
	if err := l.SetLink("h1", false); err != nil {
		t.Fatal(err)
	}
	if err := l.StartAgent("h1"); err != nil {
		t.Fatal(err)
	}
	if err := agentlab.Eventually(15*time.Second, func() error { return l.Echo(ctx, "h1", addr) }); err != nil {
		t.Fatalf("agent restarted offline did not bring its instance back: %v", err)
	}
	if err := l.SetLink("h1", true); err != nil {
		t.Fatal(err)
	}
	onlyOne(t, inst, 10*time.Second, time.Second)

	hdr, err := l.Client.Raw(ctx, "POST", "/app_lcm/v1/app_instances/"+inst+"/terminate", "application/json",
		map[string]any{"terminationType": "FORCEFUL"}, nil, 202)
	if err != nil {
		t.Fatal(err)
	}
	waitOp(t, l, lastSegment(hdr.Get("Location")), "COMPLETED")
	if n := len(agentlab.InstanceProcs(inst)); n != 0 {
		t.Errorf("%d processes left after terminate", n)
	}
	if left := agentlab.ProcsInNetnsPrefix("tki1-"); len(left) != 0 {
		t.Errorf("processes left in instance namespaces: %v", left)
	}
	if links := linksIn(t, l, "h1"); len(links) > 3 { // lo, eth0, the app bridge
		t.Errorf("links left on h1 after terminate: %v", links)
	}
}
