package agent

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/apprun"
)

// recordingPlane is a stand-in Dataplane that records what it is given.
type recordingPlane struct {
	got [][]string
	err error
}

func (r *recordingPlane) Sync(st DataplaneState) error {
	var ids []string
	for _, in := range st.Running {
		ids = append(ids, in.ID)
	}
	r.got = append(r.got, ids)
	return r.err
}

func (r *recordingPlane) Report() ([]agentproto.RuleCounter, *agentproto.DataPlaneStats) {
	return nil, nil
}

func (r *recordingPlane) MACs() map[string]net.HardwareAddr { return nil }

// TestSyncDataplaneRunningOnly: only instances wanted Running and observed
// running reach the data plane, and a repeated error is logged once.
func TestSyncDataplaneRunningOnly(t *testing.T) {
	dp := &recordingPlane{}
	var logs bytes.Buffer
	a := &Agent{cfg: Config{Dataplane: dp}, log: slog.New(slog.NewTextHandler(&logs, nil))}
	ds := &agentproto.DesiredState{Instances: []agentproto.DesiredInstance{
		{ID: "run", State: agentproto.ObservedRunning},
		{ID: "starting", State: agentproto.ObservedRunning},
		{ID: "crashed", State: agentproto.ObservedRunning},
		{ID: "stopping", State: agentproto.ObservedStopped},
	}}
	have := map[string]apprun.Status{
		"run":      {ID: "run", State: apprun.StateRunning},
		"crashed":  {ID: "crashed", State: apprun.StateFailed},
		"stopping": {ID: "stopping", State: apprun.StateRunning},
	}
	a.syncDataplane(ds, have)
	if len(dp.got) != 1 || strings.Join(dp.got[0], ",") != "run" {
		t.Fatalf("synced %v; want [[run]]", dp.got)
	}
	dp.err = errors.New("traffic rules refused")
	a.syncDataplane(ds, have)
	a.syncDataplane(ds, have)
	if n := strings.Count(logs.String(), "traffic rules refused"); n != 1 {
		t.Fatalf("error logged %d times; want once:\n%s", n, logs.String())
	}
	dp.err = nil
	a.syncDataplane(ds, have)
	if !strings.Contains(logs.String(), "data plane in sync") {
		t.Fatalf("recovery not logged:\n%s", logs.String())
	}
}
