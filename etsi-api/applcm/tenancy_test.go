package applcm

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"testing"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/mec"
)

// pkgOf stores an onboarded copy of the sample package, with an appDId of
// its own, as owner would have onboarded it.
func (e *env) pkgOf(owner string) mec.AppPackage {
	e.t.Helper()
	p := e.pkg
	p.ID, p.AppDID, p.Owner = mec.NewID(), mec.NewID(), owner
	e.save(mec.KindAppPackage, p.ID, p)
	return p
}

// ids lists the "id" of every item of a collection answer.
func ids(t *testing.T, r response) map[string]bool {
	t.Helper()
	wantStatus(t, r, http.StatusOK)
	out := map[string]bool{}
	for _, it := range r.list(t) {
		out[it["id"].(string)] = true
	}
	return out
}

// sameSet reports whether got holds exactly want.
func sameSet(got map[string]bool, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !got[w] {
			return false
		}
	}
	return true
}

func TestInstancesBelongToTheirCreator(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		e.standardSites()
		alice := e.as(auth.Principal{ClientID: "alice", Role: auth.RoleAppProvider})
		bob := e.as(auth.Principal{ClientID: "bob", Role: auth.RoleAppProvider})
		operator := e.as(auth.Principal{ClientID: "noc", Role: auth.RoleOperator})
		pa, pb := e.pkgOf("alice"), e.pkgOf("bob")
		create := func(do func(string, string, any) response, appDID string) string {
			t.Helper()
			r := do("POST", "app_instances", map[string]any{"appDId": appDID, "appInstanceName": "tenant"})
			wantStatus(t, r, http.StatusCreated)
			return r.json(t)["id"].(string)
		}

		// Another's package, and one with no owner, are as absent as a
		// missing one when creating an instance.
		missing := bob("POST", "app_instances", map[string]any{"appDId": "no-such-appd"})
		wantStatus(t, missing, http.StatusUnprocessableEntity)
		for _, appDID := range []string{pa.AppDID, e.pkg.AppDID} {
			r := bob("POST", "app_instances", map[string]any{"appDId": appDID})
			wantStatus(t, r, http.StatusUnprocessableEntity)
			wantParams(t, r, "appDId")
			if got, want := r.json(t)["detail"], fmt.Sprintf("no onboarded app package with appDId %q", appDID); got != want {
				t.Errorf("bob creating from %s: detail %q, want %q", appDID, got, want)
			}
		}

		ia, ib := create(alice, pa.AppDID), create(bob, pb.AppDID)
		// An operator may instantiate any package; the instance is its own.
		io := create(operator, pa.AppDID)
		legacy := e.createInstance("no owner") // no principal: no owner
		r := alice("POST", "app_instances/"+ia+"/instantiate", map[string]any{})
		wantStatus(t, r, http.StatusAccepted)
		opA := opIDFrom(t, r)
		host := hostOf(e.instance(ia))
		e.agentApply(host)
		before := alice("GET", "app_instances/"+ia, nil)
		wantStatus(t, before, http.StatusOK)

		// Everything bob tries on alice's instance and operation is a 404
		// worded as for a missing one.
		for _, c := range []struct{ method, path, noun, id string }{
			{"GET", "app_instances/" + ia, "app instance", ia},
			{"DELETE", "app_instances/" + ia, "app instance", ia},
			{"POST", "app_instances/" + ia + "/instantiate", "app instance", ia},
			{"POST", "app_instances/" + ia + "/operate", "app instance", ia},
			{"POST", "app_instances/" + ia + "/terminate", "app instance", ia},
			{"GET", "app_instances/" + legacy, "app instance", legacy},
			{"GET", "app_lcm_op_occs/" + opA, "app LCM operation occurrence", opA},
			{"POST", "app_lcm_op_occs/" + opA + "/cancel", "app LCM operation occurrence", opA},
			{"POST", "app_lcm_op_occs/" + opA + "/fail", "app LCM operation occurrence", opA},
			{"POST", "app_lcm_op_occs/" + opA + "/retry", "app LCM operation occurrence", opA},
		} {
			var body any
			if c.method == "POST" {
				body = taskBody(path.Base(c.path))
			}
			r := bob(c.method, c.path, body)
			wantStatus(t, r, http.StatusNotFound)
			if got, want := r.json(t)["detail"], fmt.Sprintf("%s %q not found", c.noun, c.id); got != want {
				t.Errorf("bob %s %s: detail %q, want %q", c.method, c.path, got, want)
			}
		}
		// ... and changed nothing.
		if after := alice("GET", "app_instances/"+ia, nil); string(after.body) != string(before.body) {
			t.Errorf("alice's instance changed under bob's requests:\nbefore %s\nafter  %s", before.body, after.body)
		}
		if st := e.opOcc(opA)["operationState"]; st != mec.OpStateCompleted {
			t.Errorf("alice's operation is %v, want COMPLETED", st)
		}

		// Lists are per owner; the operator sees everything.
		if got := ids(t, alice("GET", "app_instances", nil)); !sameSet(got, ia) {
			t.Errorf("alice lists instances %v, want only %s", got, ia)
		}
		if got := ids(t, bob("GET", "app_instances", nil)); !sameSet(got, ib) {
			t.Errorf("bob lists instances %v, want only %s", got, ib)
		}
		if got := ids(t, operator("GET", "app_instances", nil)); !sameSet(got, ia, ib, io, legacy) {
			t.Errorf("the operator lists instances %v, want %s, %s, %s and %s", got, ia, ib, io, legacy)
		}
		if got := ids(t, alice("GET", "app_lcm_op_occs", nil)); !sameSet(got, opA) {
			t.Errorf("alice lists operations %v, want only %s", got, opA)
		}
		if got := ids(t, bob("GET", "app_lcm_op_occs", nil)); len(got) != 0 {
			t.Errorf("bob lists operations %v, want none", got)
		}
		if got := ids(t, operator("GET", "app_lcm_op_occs", nil)); !sameSet(got, opA) {
			t.Errorf("the operator lists operations %v, want %s", got, opA)
		}
		wantStatus(t, operator("GET", "app_instances/"+ia, nil), http.StatusOK)
		wantStatus(t, operator("GET", "app_instances/"+legacy, nil), http.StatusOK)
		wantStatus(t, operator("GET", "app_lcm_op_occs/"+opA, nil), http.StatusOK)

		// Alice terminates and deletes her instance; its operations stay
		// hers to read.
		r = alice("POST", "app_instances/"+ia+"/terminate", map[string]any{"terminationType": "FORCEFUL"})
		wantStatus(t, r, http.StatusAccepted)
		opT := opIDFrom(t, r)
		e.agentApply(host)
		wantStatus(t, alice("DELETE", "app_instances/"+ia, nil), http.StatusNoContent)
		wantStatus(t, alice("GET", "app_lcm_op_occs/"+opT, nil), http.StatusOK)
		wantStatus(t, bob("GET", "app_lcm_op_occs/"+opT, nil), http.StatusNotFound)
		if got := ids(t, alice("GET", "app_lcm_op_occs", nil)); !sameSet(got, opA, opT) {
			t.Errorf("after the delete alice lists operations %v, want %s and %s", got, opA, opT)
		}
	})
}

func TestInstanceNotificationsGoToTheirOwner(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		e.standardSites()
		alice := e.as(auth.Principal{ClientID: "alice", Role: auth.RoleAppProvider})
		bob := e.as(auth.Principal{ClientID: "bob", Role: auth.RoleAppProvider})
		operator := e.as(auth.Principal{ClientID: "noc", Role: auth.RoleOperator})
		pa := e.pkgOf("alice")
		sub := func(do func(string, string, any) response, typ string) string {
			t.Helper()
			r := do("POST", "subscriptions", map[string]any{"subscriptionType": typ, "callbackUri": callback})
			wantStatus(t, r, http.StatusCreated)
			return r.json(t)["id"].(string)
		}
		aCreate, aOps, aState := sub(alice, subIDCreation), sub(alice, subOpOccState), sub(alice, subInstanceState)
		bCreate, bOps, bState := sub(bob, subIDCreation), sub(bob, subOpOccState), sub(bob, subInstanceState)
		oCreate, oOps := sub(operator, subIDCreation), sub(operator, subOpOccState)
		_, _, _ = bCreate, bOps, bState

		// notified feeds the events published since the last call to
		// Notifications, as the dispatcher does, and returns the
		// subscriptions told of instance id.
		notified := func(id string) map[string]bool {
			t.Helper()
			got := map[string]bool{}
			for _, ev := range e.events.take() {
				outs, err := e.h.Notifications(context.Background(), ev)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range outs {
					if n := jsonObject(t, o.Body); n["appInstanceId"] == id {
						got[n["subscriptionId"].(string)] = true
					}
				}
			}
			return got
		}

		e.events.take()
		r := alice("POST", "app_instances", map[string]any{"appDId": pa.AppDID})
		wantStatus(t, r, http.StatusCreated)
		ia := r.json(t)["id"].(string)
		if got := notified(ia); !sameSet(got, aCreate, oCreate) {
			t.Errorf("creation of alice's instance notified %v, want alice's %s and the operator's %s", got, aCreate, oCreate)
		}
		wantStatus(t, alice("POST", "app_instances/"+ia+"/instantiate", map[string]any{}), http.StatusAccepted)
		e.agentApply(hostOf(e.instance(ia)))
		if got := notified(ia); !sameSet(got, aOps, aState, oOps) {
			t.Errorf("instantiation of alice's instance notified %v, want alice's %s and %s and the operator's %s", got, aOps, aState, oOps)
		}

		// A subscription stored before roles were recorded is held to
		// its owner's resources, unless the bootstrap admin made it.
		legacy := func(owner string) string {
			t.Helper()
			id := mec.NewID()
			e.save(mec.KindSubscription, id, mec.Subscription{ID: id, API: apiName, Type: subIDCreation,
				CallbackURI: callback, Owner: owner, CreatedAt: e.clock.Now()})
			return id
		}
		oldBob, oldAdmin := legacy("bob"), legacy(auth.AdminClientID)
		r = alice("POST", "app_instances", map[string]any{"appDId": pa.AppDID})
		wantStatus(t, r, http.StatusCreated)
		if got := notified(r.json(t)["id"].(string)); !sameSet(got, aCreate, oCreate, oldAdmin) || got[oldBob] {
			t.Errorf("creation of alice's second instance notified %v, want %s, %s and %s", got, aCreate, oCreate, oldAdmin)
		}
	})
}
