package rtt

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mecorch/mecorch/latency"
	"github.com/mecorch/mecorch/latency/rttmap"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/store/boltstore"
)

func TestResolveProbeAddr(t *testing.T) {
	tests := []struct {
		advertised, remote, want, err string
	}{
		{":862", "10.0.1.2:40000", "10.0.1.2:862", ""},
		{"0.0.0.0:862", "10.0.1.2:40000", "10.0.1.2:862", ""},
		{"[::]:862", "[fd00::7]:40000", "[fd00::7]:862", ""},
		{":862", "[::ffff:10.0.1.2]:40000", "10.0.1.2:862", ""},
		{"10.9.9.9:8620", "10.0.1.2:40000", "10.9.9.9:8620", ""},
		{"127.0.0.1:862", "127.0.0.1:40000", "127.0.0.1:862", ""}, // all on one machine
		{"127.0.0.1:862", "10.0.1.2:40000", "", "loopback"},
		{"[::1]:862", "10.0.1.2:40000", "", "loopback"},
		{"[fe80::1]:862", "10.0.1.2:40000", "", "not an address peers can probe"},
		{"edge1:862", "10.0.1.2:40000", "", "must be an IP"},
		{":862", "[10.0.0.7,10.0.1.7]:38472", "", "--stamp-listen ip:port"}, // multi-homed SCTP
		{"862", "10.0.1.2:40000", "", "probeAddr"},
	}
	for _, tt := range tests {
		got, err := ResolveProbeAddr(tt.advertised, tt.remote)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ResolveProbeAddr(%q, %q) = %q, %v; want %q", tt.advertised, tt.remote, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ResolveProbeAddr(%q, %q) = %q, %v; want an error with %q", tt.advertised, tt.remote, got, err, tt.err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Interval: 5 * time.Millisecond},
		{Window: 20 * time.Minute},
		{Interval: time.Second, Window: 5 * time.Second},
		{MaxTargets: agentproto.MaxProbeTargets + 1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted: agents would refuse its plans", c)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
}

// TestServicePlansReportsAndForgets: hosts whose agents connected probe
// each other and the cells; a window reported with an agent clock an hour
// off still counts, stamped on arrival; a disconnected host leaves the
// others' plans; a placement's "measure directly" request heads the plan
// of a host at that site and wakes the channel.
func TestServicePlansReportsAndForgets(t *testing.T) {
	st, err := boltstore.Open(t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	err = st.Update(ctx, func(tx mec.Tx) error {
		for _, doc := range []struct {
			kind mec.Kind
			id   string
			v    any
		}{
			{mec.KindSite, "s1", mec.Site{ID: "s1", Latitude: 48.1, Longitude: 11.5}},
			{mec.KindSite, "s2", mec.Site{ID: "s2", Latitude: 48.2, Longitude: 11.6}},
			{mec.KindHost, "h1", mec.Host{ID: "h1", SiteID: "s1"}},
			{mec.KindHost, "h2", mec.Host{ID: "h2", SiteID: "s2"}},
			{mec.KindCell, "c2", mec.Cell{ID: "c2", SiteID: "s2", RANAddress: "10.2.0.1"}},
		} {
			if _, err := mec.Save(tx, doc.kind, doc.id, doc.v, mec.MustNotExist); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	svc := New(Config{CellPort: 8620}, st, clock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var notified atomic.Int32
	svc.OnChange(func() { notified.Add(1) })
	if err := svc.Connected(ctx, "h1", ":862", "10.0.1.2:5000"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Connected(ctx, "h2", ":862", "10.0.2.2:5000"); err != nil {
		t.Fatal(err)
	}
	targets := func(host string) map[string]string {
		out := map[string]string{}
		for _, tg := range svc.Plan(host).Targets {
			out[tg.Kind+"/"+tg.ID] = tg.Addr
		}
		return out
	}
	p1 := targets("h1")
	if p1["host/h2"] != "10.0.2.2:862" || p1["cell/c2"] != "10.2.0.1:8620" || p1["host/h1"] != "" {
		t.Fatalf("h1's plan %v", p1)
	}
	if plan := svc.Plan("h1"); plan.IntervalMs != 100 || plan.WindowMs != 10_000 {
		t.Errorf("plan timing %+v", plan)
	}

	ahead := now.Add(time.Hour) // h1's clock
	svc.Report("h1", []agentproto.RTTResult{{Target: "c2", Kind: agentproto.TargetCell, Stats: latency.Stats{
		Sent: 100, P50: 3 * time.Millisecond, P95: 4 * time.Millisecond, P99: 4 * time.Millisecond, Min: 2 * time.Millisecond,
		Source: latency.SourceKernel, From: ahead.Add(-10 * time.Second), To: ahead}}})
	e := svc.Map().CellSite("c2", "s1")
	if e.Quality != rttmap.Measured || e.RTT != 3*time.Millisecond || !e.MeasuredAt.Equal(now) {
		t.Fatalf("a window from a clock an hour ahead: %+v", e)
	}

	before := notified.Load()
	if err := svc.Disconnected(ctx, "h2"); err != nil {
		t.Fatal(err)
	}
	if p1 = targets("h1"); p1["host/h2"] != "" {
		t.Errorf("h1 still probes h2 after it disconnected: %v", p1)
	}
	if notified.Load() == before {
		t.Error("no change announced when h2 left the plans")
	}

	// h2 is back; a placement wants c2 measured from s1. Without the
	// request h1 probes its nearest site's host first.
	if err := svc.Connected(ctx, "h2", ":862", "10.0.2.2:5000"); err != nil {
		t.Fatal(err)
	}
	if plan := svc.Plan("h1"); len(plan.Targets) == 0 || plan.Targets[0].ID != "h2" {
		t.Fatalf("h1's plan before the request: %+v", plan)
	}
	before = notified.Load()
	svc.Measure("s1", []string{"c2"})
	if plan := svc.Plan("h1"); len(plan.Targets) == 0 || plan.Targets[0].ID != "c2" {
		t.Errorf("h1's plan after a direct-measurement request: %+v", plan)
	}
	if notified.Load() == before {
		t.Error("no change announced for the direct measurement")
	}
}
