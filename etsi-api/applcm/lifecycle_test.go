package applcm

import (
	"context"
	"net/http"
	"testing"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/lifecycle"
)

// TestLifecycle takes one instance through instantiate, stop, start and
// terminate, with the host's agent played by agentApply, and checks each
// step as an ETSI client sees it.
func TestLifecycle(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		e.standardSites()
		id := e.createInstance("echo")

		opID := e.instantiate(id, map[string]any{"selectedMECHostInfo": []any{map[string]any{"hostId": "h-b1", "hostName": "b1"}}})
		op := e.opOcc(opID)
		if op["operationState"] != mec.OpStateProcessing || op["lcmOperation"] != mec.OpInstantiate || op["isCancelPending"] != false {
			t.Errorf("new operation: %v", op)
		}
		if op["_links"].(map[string]any)["appInstance"].(map[string]any)["href"] != e.srv.URL+Prefix+"/app_instances/"+id {
			t.Errorf("operation links: %v", op["_links"])
		}
		if op["operationParams"].(map[string]any)["selectedMECHostInfo"] == nil {
			t.Errorf("operationParams do not echo the request: %v", op["operationParams"])
		}
		info := e.instance(id)
		if info["instantiationState"] != mec.NotInstantiated || hostOf(info) != "h-b1" {
			t.Errorf("instance while instantiating: %v", info)
		}
		lnk := info["_links"].(map[string]any)
		if lnk["instantiate"] != nil || lnk["terminate"] != nil {
			t.Errorf("an instance with an operation in progress offers tasks: %v", lnk)
		}
		if got := e.host("h-b1").Allocated; got != e.need {
			t.Errorf("h-b1 allocated %+v, want %+v", got, e.need)
		}
		// A second instantiation while the first is in progress.
		wantStatus(t, e.do("POST", "app_instances/"+id+"/instantiate", map[string]any{}), http.StatusConflict)
		// Nothing to operate yet.
		wantStatus(t, e.do("POST", "app_instances/"+id+"/operate", map[string]any{"changeStateTo": "STOPPED"}), http.StatusConflict)

		e.agentApply("h-b1")
		if op := e.opOcc(opID); op["operationState"] != mec.OpStateCompleted {
			t.Fatalf("after the agent's report the operation is %v", op["operationState"])
		}
		info = e.instance(id)
		state := info["instantiatedAppState"].(map[string]any)
		if info["instantiationState"] != mec.Instantiated || state["operationalState"] != mec.OpStarted {
			t.Fatalf("instance after instantiation: %v", info)
		}
		loc := state["appInstLocation"].(map[string]any)
		if loc["countryCode"] != "FR" || loc["geographicalPosition"] != `{"type":"Point","coordinates":[5.37,43.3]}` {
			t.Errorf("appInstLocation %v", loc)
		}
		lnk = info["_links"].(map[string]any)
		if lnk["terminate"] == nil || lnk["operate"] == nil || lnk["instantiate"] != nil {
			t.Errorf("links of an instantiated instance: %v", lnk)
		}
		wantStatus(t, e.do("POST", "app_instances/"+id+"/instantiate", map[string]any{}), http.StatusConflict)
		wantStatus(t, e.do("DELETE", "app_instances/"+id, nil), http.StatusConflict)
		wantStatus(t, e.do("POST", "app_instances/"+id+"/operate", map[string]any{"changeStateTo": "STARTED"}), http.StatusConflict)

		// Stop gracefully, then start.
		r := e.do("POST", "app_instances/"+id+"/operate", map[string]any{"changeStateTo": "STOPPED", "stopType": "GRACEFUL", "gracefulStopTimeout": 30})
		wantStatus(t, r, http.StatusAccepted)
		stopID := opIDFrom(t, r)
		ds, err := e.lc.DesiredState(context.Background(), "h-b1")
		if err != nil || len(ds.Instances) != 1 || ds.Instances[0].State != mec.DesiredStopped || ds.Instances[0].StopGraceSeconds != 30 {
			t.Fatalf("desired state after a graceful stop: %+v, %v", ds, err)
		}
		e.agentApply("h-b1")
		if op := e.opOcc(stopID); op["operationState"] != mec.OpStateCompleted || op["lcmOperation"] != mec.OpOperate {
			t.Fatalf("stop operation: %v", op)
		}
		if s := e.instance(id)["instantiatedAppState"].(map[string]any)["operationalState"]; s != mec.OpStopped {
			t.Fatalf("after stop: %v", s)
		}
		r = e.do("POST", "app_instances/"+id+"/operate", map[string]any{"changeStateTo": "STARTED"})
		wantStatus(t, r, http.StatusAccepted)
		e.agentApply("h-b1")
		if s := e.instance(id)["instantiatedAppState"].(map[string]any)["operationalState"]; s != mec.OpStarted {
			t.Fatalf("after start: %v", s)
		}

		// Terminate: the reservation is released once the agent reports the
		// instance gone.
		r = e.do("POST", "app_instances/"+id+"/terminate", map[string]any{"terminationType": "GRACEFUL", "gracefulTerminationTimeout": 10})
		wantStatus(t, r, http.StatusAccepted)
		termID := opIDFrom(t, r)
		if e.host("h-b1").Allocated != e.need {
			t.Errorf("terminating released the reservation before the agent reported")
		}
		e.agentApply("h-b1")
		if op := e.opOcc(termID); op["operationState"] != mec.OpStateCompleted || op["lcmOperation"] != mec.OpTerminate {
			t.Fatalf("terminate operation: %v", op)
		}
		info = e.instance(id)
		if info["instantiationState"] != mec.NotInstantiated || info["instantiatedAppState"] != nil || hostOf(info) != "" {
			t.Fatalf("after termination: %v", info)
		}
		if got := e.host("h-b1").Allocated; got != (mec.Resources{}) {
			t.Errorf("h-b1 still has %+v allocated", got)
		}

		// Four operations, listed; the list leaves operationParams out by
		// default.
		l := e.do("GET", "app_lcm_op_occs", nil)
		wantStatus(t, l, http.StatusOK)
		ops := l.list(t)
		if len(ops) != 4 {
			t.Fatalf("%d operations listed, want 4", len(ops))
		}
		for _, op := range ops {
			if op["operationParams"] != nil || op["_links"] == nil {
				t.Errorf("default list item: %v", op)
			}
		}
		f := e.do("GET", "app_lcm_op_occs?filter=(eq,lcmOperation,OPERATE)&fields=operationParams", nil)
		wantStatus(t, f, http.StatusOK)
		if got := f.list(t); len(got) != 2 || got[0]["operationParams"] == nil {
			t.Errorf("filtered list: %s", f.body)
		}
		f1 := e.do("GET", "app_lcm_op_occs?filter1=(eq,lcmOperation,TERMINATE)", nil)
		if got := f1.list(t); len(got) != 1 {
			t.Errorf("filter1 (the v3 file's name) list: %s", f1.body)
		}

		wantStatus(t, e.do("DELETE", "app_instances/"+id, nil), http.StatusNoContent)
	})
}

// TestCancelFailRetry covers the three operations on operation occurrences
// and their 409s.
func TestCancelFailRetry(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		e.standardSites()
		id := e.createInstance("echo")
		opID := e.instantiate(id, map[string]any{"selectedMECHostInfo": []any{map[string]any{"hostId": "h-a1"}}})

		// fail and retry need FAILED_TEMP.
		wantStatus(t, e.do("POST", "app_lcm_op_occs/"+opID+"/fail", nil), http.StatusConflict)
		wantStatus(t, e.do("POST", "app_lcm_op_occs/"+opID+"/retry", nil), http.StatusConflict)
		bad := e.do("POST", "app_lcm_op_occs/"+opID+"/cancel", map[string]any{"cancelMode": "SOFTLY"})
		wantStatus(t, bad, http.StatusBadRequest)
		wantParams(t, bad, "cancelMode")

		r := e.do("POST", "app_lcm_op_occs/"+opID+"/cancel", map[string]any{"cancelMode": "GRACEFUL"})
		wantStatus(t, r, http.StatusAccepted)
		if len(r.body) != 0 {
			t.Errorf("cancel answered a body: %s", r.body)
		}
		op := e.opOcc(opID)
		if op["operationState"] != mec.OpStateFailedTemp || op["error"] == nil {
			t.Fatalf("cancelled operation: %v", op)
		}
		if got := e.host("h-a1").Allocated; got != (mec.Resources{}) {
			t.Errorf("a cancelled instantiation keeps %+v on h-a1", got)
		}
		wantStatus(t, e.do("POST", "app_lcm_op_occs/"+opID+"/cancel", nil), http.StatusConflict)
		// The instance stays bound to the FAILED_TEMP operation.
		wantStatus(t, e.do("POST", "app_instances/"+id+"/instantiate", map[string]any{}), http.StatusConflict)

		// Retry places again: PROCESSING, same URI; then the agent reports
		// the instance failed, and it is FAILED_TEMP once more.
		r = e.do("POST", "app_lcm_op_occs/"+opID+"/retry", nil)
		wantStatus(t, r, http.StatusAccepted)
		if got := opIDFrom(t, r); got != opID {
			t.Errorf("retry Location names %s, want %s", got, opID)
		}
		if op := e.opOcc(opID); op["operationState"] != mec.OpStateProcessing || op["error"] != nil {
			t.Fatalf("retried operation: %v", op)
		}
		ds, _ := e.lc.DesiredState(context.Background(), "h-a1")
		err := e.lc.ReportStatus(context.Background(), lifecycle.HostReport{HostID: "h-a1", Generation: ds.Generation,
			Instances: []lifecycle.InstanceStatus{{ID: id, State: lifecycle.ObservedFailed, Message: "image pull failed"}}})
		if err != nil {
			t.Fatal(err)
		}
		if op := e.opOcc(opID); op["operationState"] != mec.OpStateFailedTemp {
			t.Fatalf("after the agent reported a failure: %v", op)
		}

		// fail closes it for good (200 with the operation) and frees the
		// instance.
		r = e.do("POST", "app_lcm_op_occs/"+opID+"/fail", nil)
		wantStatus(t, r, http.StatusOK)
		if got := r.json(t); got["operationState"] != mec.OpStateFailed || got["error"] == nil {
			t.Fatalf("failed operation: %s", r.body)
		}
		wantStatus(t, e.do("POST", "app_lcm_op_occs/"+opID+"/fail", nil), http.StatusConflict)
		wantStatus(t, e.do("POST", "app_lcm_op_occs/"+opID+"/retry", nil), http.StatusConflict)
		wantStatus(t, e.do("POST", "app_lcm_op_occs/"+opID+"/cancel", nil), http.StatusConflict)
		if info := e.instance(id); info["instantiationState"] != mec.NotInstantiated || hostOf(info) != "" {
			t.Fatalf("instance after a failed instantiation: %v", info)
		}
		e.instantiate(id, map[string]any{})
	})
}

// TestCancelOperate: cancelling a stop rolls the desired state back.
func TestCancelOperate(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		e.standardSites()
		id := e.createInstance("echo")
		e.instantiate(id, map[string]any{"selectedMECHostInfo": []any{map[string]any{"hostId": "h-c1"}}})
		e.agentApply("h-c1")
		r := e.do("POST", "app_instances/"+id+"/operate", map[string]any{"changeStateTo": "STOPPED", "stopType": "FORCEFUL"})
		wantStatus(t, r, http.StatusAccepted)
		stopID := opIDFrom(t, r)
		// The v3 file's own spelling of the cancel body.
		wantStatus(t, e.do("POST", "app_lcm_op_occs/"+stopID+"/cancel", map[string]any{"CancelMode": "FORCEFUL"}), http.StatusAccepted)
		ds, err := e.lc.DesiredState(context.Background(), "h-c1")
		if err != nil || ds.Instances[0].State != mec.DesiredRunning {
			t.Fatalf("desired state after cancelling a stop: %+v %v", ds, err)
		}
		wantStatus(t, e.do("POST", "app_lcm_op_occs/"+stopID+"/fail", nil), http.StatusOK)
		if s := e.instance(id)["instantiatedAppState"].(map[string]any)["operationalState"]; s != mec.OpStarted {
			t.Fatalf("after a cancelled stop the instance is %v", s)
		}
		wantStatus(t, e.do("POST", "app_instances/"+id+"/terminate", map[string]any{"terminationType": "FORCEFUL"}), http.StatusAccepted)
	})
}

// TestTaskBodies: every wrong field of operate, terminate and instantiate
// comes back in one 400, by its path.
func TestTaskBodies(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		e.standardSites()
		id := e.createInstance("echo")
		tests := []struct {
			task   string
			body   any
			params []string
		}{
			{"operate", nil, []string{"changeStateTo"}},
			{"operate", map[string]any{"changeStateTo": "PAUSED"}, []string{"changeStateTo"}},
			{"operate", map[string]any{"changeStateTo": "STARTED", "stopType": "GRACEFUL", "gracefulStopTimeout": 5},
				[]string{"stopType", "gracefulStopTimeout"}},
			{"operate", map[string]any{"changeStateTo": "STOPPED", "stopType": "GRACEFUL"}, []string{"gracefulStopTimeout"}},
			{"operate", map[string]any{"changeStateTo": "STOPPED", "stopType": "FORCEFUL", "gracefulStopTimeout": 5}, []string{"gracefulStopTimeout"}},
			{"operate", map[string]any{"changeStateTo": "STOPPED", "gracefulStopTimeout": 5}, []string{"gracefulStopTimeout"}},
			{"operate", map[string]any{"changeStateTo": "STOPPED", "stopType": "NICELY", "gracefulStopTimeout": -1, "extra": 1},
				[]string{"stopType", "gracefulStopTimeout", "extra"}},
			{"operate", `{"changeStateTo": "STOPPED", "stopType": "GRACEFUL", "gracefulStopTimeout": 1.5}`, []string{"gracefulStopTimeout"}},
			{"terminate", map[string]any{}, []string{"terminationType"}},
			{"terminate", map[string]any{"terminationType": "FORCEFUL", "gracefulTerminationTimeout": 3}, []string{"gracefulTerminationTimeout"}},
			{"terminate", map[string]any{"terminationType": "SOON", "gracefulTerminationTimeout": "3"},
				[]string{"terminationType", "gracefulTerminationTimeout"}},
			{"instantiate", `[]`, []string{"body"}},
			{"instantiate", map[string]any{"selectedMECHostInfo": []any{}}, []string{"selectedMECHostInfo"}},
			{"instantiate", map[string]any{"selectedMECHostInfo": []any{map[string]any{"hostName": "x"}, "h-a1", map[string]any{"hostId": map[string]any{"uuid": "x"}}}},
				[]string{"selectedMECHostInfo[0].hostId", "selectedMECHostInfo[1]", "selectedMECHostInfo[2].hostId", "selectedMECHostInfo[2].hostId.uuid"}},
			{"instantiate", map[string]any{"locationConstraints": map[string]any{"countryCode": "france", "civicAddressElement": []any{}}},
				[]string{"locationConstraints.countryCode", "locationConstraints.civicAddressElement"}},
			{"instantiate", map[string]any{"locationConstraints": map[string]any{}}, []string{"locationConstraints.countryCode"}},
			{"instantiate", map[string]any{"locationConstraints": map[string]any{"area": map[string]any{"type": "Point", "coordinates": []any{[]any{[]any{0, 0}, []any{1, 0}, []any{0, 200}}}}}},
				[]string{"locationConstraints.area.type", "locationConstraints.area.coordinates[0]", "locationConstraints.area.coordinates[0][2]"}},
			{"instantiate", map[string]any{placementExt: map[string]any{"zones": []any{"north", 3}, "hostLabels": map[string]any{"tier": 1}, "spread": "x"}},
				[]string{placementExt + ".zones[1]", placementExt + ".hostLabels.tier", placementExt + ".spread"}},
			{"instantiate", map[string]any{"virtualComputeDescriptor": map[string]any{}, "osContainerDescriptor": []any{}},
				[]string{"virtualComputeDescriptor", "osContainerDescriptor"}},
			{"instantiate", map[string]any{"selectedMecHostInfo": []any{}}, []string{"selectedMecHostInfo"}},
		}
		for _, tc := range tests {
			r := e.do("POST", "app_instances/"+id+"/"+tc.task, tc.body)
			if r.StatusCode != http.StatusBadRequest {
				t.Errorf("%s %v: status %d, want 400\n%s", tc.task, tc.body, r.StatusCode, r.body)
				continue
			}
			wantParams(t, r, tc.params...)
		}
		// Nothing was started by any of them.
		if ops, _ := e.lc.OpOccs(context.Background()); len(ops) != 0 {
			t.Errorf("refused requests opened %d operations", len(ops))
		}
	})
}
