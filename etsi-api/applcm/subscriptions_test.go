package applcm

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

const callback = "https://subscriber.example.com/notify"

func TestSubscriptionResource(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		tests := []struct {
			name   string
			req    map[string]any
			schema string
			want   map[string]any // attributes of the answer
		}{
			{"instance state", map[string]any{"subscriptionType": subInstanceState, "callbackUri": callback, "appInstanceState": "STARTED",
				"appInstanceSubscriptionFilter": map[string]any{"appInstSelectorType": 3, "appInstances": []any{e.pkg.AppDID}}},
				"AppInstSubscriptionInfo", map[string]any{"appInstanceState": "STARTED"}},
			{"instance state, v2.1.1 names", map[string]any{"subscriptionType": "AppInstanceStateChange", "callbackUri": callback,
				"appInstanceState": []any{"STOPPED"}, "appInstanceSubscriptionFilter": map[string]any{"appInstSelectorType": "APP_NAME", "appInstances": []any{"echo"}}},
				"AppInstSubscriptionInfo", map[string]any{"subscriptionType": subInstanceState, "appInstanceState": "STOPPED"}},
			{"operations", map[string]any{"subscriptionType": subOpOccState, "callbackUri": callback,
				"appLcmOpOccSubscriptionFilter": map[string]any{"notificationTypes": "AppLcmOpOccNotification", "operationTypes": "INSTANTIATE", "operationStates": "COMPLETED"}},
				"AppLcmOpOccSubscriptionInfo", map[string]any{}},
			{"creation", map[string]any{"subscriptionType": subIDCreation, "callbackUri": callback,
				"appInstanceSubscriptionFilter": map[string]any{"appInstSelectorType": 4, "appsFromProviders": []any{map[string]any{"appProvider": e.pkg.AppProvider}}}},
				"AppInstIdCreationSubscriptionInfo", map[string]any{}},
			{"deletion", map[string]any{"subscriptionType": subIDDeletion, "callbackUri": callback}, "AppInstIdDeletionSubscriptionInfo", map[string]any{}},
		}
		var ids []string
		for _, tc := range tests {
			r := e.do("POST", "subscriptions", tc.req)
			wantStatus(t, r, http.StatusCreated)
			e.spec.ValidateSchema(t, tc.schema, r.body)
			info := r.json(t)
			id := info["id"].(string)
			ids = append(ids, id)
			self := e.srv.URL + Prefix + "/subscriptions/" + id
			if r.Header.Get("Location") != self || info["_links"].(map[string]any)["self"].(map[string]any)["href"] != self {
				t.Errorf("%s: Location %q, links %v", tc.name, r.Header.Get("Location"), info["_links"])
			}
			if info["callbackUri"] != callback {
				t.Errorf("%s: callbackUri %v", tc.name, info["callbackUri"])
			}
			for k, v := range tc.want {
				if info[k] != v {
					t.Errorf("%s: %s = %v, want %v", tc.name, k, info[k], v)
				}
			}
			g := e.do("GET", "subscriptions/"+id, nil)
			wantStatus(t, g, http.StatusOK)
			e.spec.ValidateSchema(t, tc.schema, g.body)
			if string(g.body) != string(r.body) {
				t.Errorf("%s: GET answers\n%s\nPOST answered\n%s", tc.name, g.body, r.body)
			}
		}

		l := e.do("GET", "subscriptions", nil)
		wantStatus(t, l, http.StatusOK)
		e.spec.ValidateSchema(t, "AppInstanceSubscriptionLinkList", l.body)
		subs := l.json(t)["_links"].(map[string]any)["subscriptions"].([]any)
		if len(subs) != len(tests) {
			t.Errorf("link list has %d subscriptions, want %d", len(subs), len(tests))
		}
		l = e.do("GET", "subscriptions?subscriptiontype="+subInstanceState, nil)
		if subs := l.json(t)["_links"].(map[string]any)["subscriptions"].([]any); len(subs) != 2 {
			t.Errorf("filtered link list: %s", l.body)
		}
		bad := e.do("GET", "subscriptions?subscriptiontype=Everything", nil)
		wantStatus(t, bad, http.StatusBadRequest)
		wantParams(t, bad, "subscriptiontype")

		// A package management subscription shares the store but is not
		// this API's.
		e.save(mec.KindSubscription, "pkgm-sub", mec.Subscription{ID: "pkgm-sub", API: "app_pkgm", Type: "AppPackageOnBoardingSubscription", CallbackURI: callback})
		wantStatus(t, e.do("GET", "subscriptions/pkgm-sub", nil), http.StatusNotFound)
		wantStatus(t, e.do("DELETE", "subscriptions/pkgm-sub", nil), http.StatusNotFound)

		for _, id := range ids {
			wantStatus(t, e.do("DELETE", "subscriptions/"+id, nil), http.StatusNoContent)
			wantStatus(t, e.do("GET", "subscriptions/"+id, nil), http.StatusNotFound)
		}
		wantStatus(t, e.do("DELETE", "subscriptions/"+ids[0], nil), http.StatusNotFound)
		if subs := e.do("GET", "subscriptions", nil).json(t)["_links"].(map[string]any)["subscriptions"]; subs != nil {
			t.Errorf("subscriptions left: %v", subs)
		}
	})
}

func TestSubscriptionErrors(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		tests := []struct {
			name   string
			body   any
			params []string
		}{
			{"empty", map[string]any{}, []string{"subscriptionType", "callbackUri"}},
			{"unknown type", map[string]any{"subscriptionType": "Everything", "callbackUri": callback}, []string{"subscriptionType"}},
			{"bad callback", map[string]any{"subscriptionType": subIDDeletion, "callbackUri": "ftp://x"}, []string{"callbackUri"}},
			{"bad state", map[string]any{"subscriptionType": subInstanceState, "callbackUri": callback, "appInstanceState": "RUNNING"},
				[]string{"appInstanceState"}},
			{"selector without instances", map[string]any{"subscriptionType": subInstanceState, "callbackUri": callback,
				"appInstanceSubscriptionFilter": map[string]any{"appInstSelectorType": 1}}, []string{"appInstanceSubscriptionFilter.appInstances"}},
			{"bad selector", map[string]any{"subscriptionType": subInstanceState, "callbackUri": callback,
				"appInstanceSubscriptionFilter": map[string]any{"appInstSelectorType": 9, "appInstances": []any{"x"}}},
				[]string{"appInstanceSubscriptionFilter.appInstSelectorType"}},
			{"creation by identity", map[string]any{"subscriptionType": subIDCreation, "callbackUri": callback,
				"appInstanceSubscriptionFilter": map[string]any{"appInstSelectorType": 1, "appInstances": []any{"x"}}},
				[]string{"appInstanceSubscriptionFilter.appInstSelectorType"}},
			{"provider filter", map[string]any{"subscriptionType": subOpOccState, "callbackUri": callback,
				"appLcmOpOccSubscriptionFilter": map[string]any{"operationStates": "DONE", "appInstanceSubscriptionFilter": map[string]any{
					"appInstSelectorType": 4, "appInstances": []any{"x"}, "appsFromProviders": []any{map[string]any{"appProducts": []any{map[string]any{}}}}}}},
				[]string{"appLcmOpOccSubscriptionFilter.operationStates",
					"appLcmOpOccSubscriptionFilter.appInstanceSubscriptionFilter.appInstances",
					"appLcmOpOccSubscriptionFilter.appInstanceSubscriptionFilter.appsFromProviders[0].appProvider",
					"appLcmOpOccSubscriptionFilter.appInstanceSubscriptionFilter.appsFromProviders[0].appProducts[0].appName"}},
			{"attribute of another type", map[string]any{"subscriptionType": subIDDeletion, "callbackUri": callback, "appInstanceState": "STARTED"},
				[]string{"appInstanceState"}},
		}
		for _, tc := range tests {
			r := e.do("POST", "subscriptions", tc.body)
			if r.StatusCode != http.StatusBadRequest {
				t.Errorf("%s: status %d, want 400\n%s", tc.name, r.StatusCode, r.body)
				continue
			}
			wantParams(t, r, tc.params...)
		}
	})
}

// TestNotifications runs an instance through its life with subscriptions
// of every type and turns the events the services published into
// notifications, as the server's dispatcher does, checking who gets what.
func TestNotifications(t *testing.T) {
	onEnginesWith(t, Config{BaseURL: "https://mec.example.com"}, func(t *testing.T, e *env) {
		e.standardSites()
		subscribe := func(req map[string]any) string {
			t.Helper()
			req["callbackUri"] = callback + "/" + req["subscriptionType"].(string)
			r := e.do("POST", "subscriptions", req)
			wantStatus(t, r, http.StatusCreated)
			return r.json(t)["id"].(string)
		}
		started := subscribe(map[string]any{"subscriptionType": subInstanceState, "appInstanceState": "STARTED"})
		anyState := subscribe(map[string]any{"subscriptionType": subInstanceState, "appInstanceSubscriptionFilter": map[string]any{
			"appInstSelectorType": 4, "appsFromProviders": []any{map[string]any{"appProvider": e.pkg.AppProvider,
				"appProducts": []any{map[string]any{"appName": e.pkg.AppName, "versions": []any{map[string]any{"appSoftVersion": e.pkg.AppSoftwareVersion}}}}}}}})
		otherApp := subscribe(map[string]any{"subscriptionType": subInstanceState, "appInstanceSubscriptionFilter": map[string]any{
			"appInstSelectorType": 3, "appInstances": []any{"some-other-app"}}})
		allOps := subscribe(map[string]any{"subscriptionType": subOpOccState})
		completed := subscribe(map[string]any{"subscriptionType": subOpOccState, "appLcmOpOccSubscriptionFilter": map[string]any{
			"operationStates": "COMPLETED", "appInstanceSubscriptionFilter": map[string]any{"appInstSelectorType": 2, "appInstances": []any{"watched"}}}})
		created := subscribe(map[string]any{"subscriptionType": subIDCreation, "appInstanceSubscriptionFilter": map[string]any{
			"appInstSelectorType": 3, "appInstances": []any{e.pkg.AppDID}}})
		deleted := subscribe(map[string]any{"subscriptionType": subIDDeletion})
		e.events.take()

		// The dispatcher turns events into notifications as they come:
		// collect does the same after each step.
		bySub := map[string][]map[string]any{}
		var idsByEvent []map[string]bool
		collect := func() {
			t.Helper()
			for _, ev := range e.events.take() {
				outs, err := e.h.Notifications(context.Background(), ev)
				if err != nil {
					t.Fatalf("notifications of %s: %v", ev.Type, err)
				}
				ids := map[string]bool{}
				for _, o := range outs {
					n := jsonObject(t, o.Body)
					sub := n["subscriptionId"].(string)
					schema := map[string]string{
						subInstanceState: "AppInstNotification", subOpOccState: "AppLcmOpOccNotification",
						subIDCreation: "AppInstanceIdentifierCreationNotification", subIDDeletion: "AppInstanceIdentifierDeletionNotification",
					}[n["notificationType"].(string)]
					e.spec.ValidateSchema(t, schema, o.Body)
					if o.CallbackURI != callback+"/"+n["notificationType"].(string) {
						t.Errorf("notification of type %s sent to %s", n["notificationType"], o.CallbackURI)
					}
					links := n["_links"].(map[string]any)
					if links["subscription"].(map[string]any)["href"] != "https://mec.example.com/app_lcm/v1/subscriptions/"+sub {
						t.Errorf("subscription link %v", links["subscription"])
					}
					bySub[sub] = append(bySub[sub], n)
					ids[n["notificationType"].(string)+"/"+n["id"].(string)] = true
				}
				idsByEvent = append(idsByEvent, ids)
			}
		}

		id := e.createInstance("watched")
		collect()
		instOp := e.instantiate(id, map[string]any{})
		collect()
		host := hostOf(e.instance(id))
		e.agentApply(host)
		collect()
		r := e.do("POST", "app_instances/"+id+"/operate", map[string]any{"changeStateTo": "STOPPED"})
		wantStatus(t, r, http.StatusAccepted)
		collect()
		e.agentApply(host)
		collect()
		r = e.do("POST", "app_instances/"+id+"/terminate", map[string]any{"terminationType": "FORCEFUL"})
		wantStatus(t, r, http.StatusAccepted)
		collect()
		e.agentApply(host)
		collect()
		wantStatus(t, e.do("DELETE", "app_instances/"+id, nil), http.StatusNoContent)
		collect()

		states := func(sub, attr string) []string {
			var out []string
			for _, n := range bySub[sub] {
				out = append(out, n[attr].(string))
			}
			return out
		}
		wantSeq(t, "STARTED subscription", states(started, "appInstanceState"), mec.OpStarted)
		wantSeq(t, "provider subscription", states(anyState, "appInstanceState"), mec.OpStarted, mec.OpStopped, mec.NotInstantiated)
		wantSeq(t, "other app's subscription", states(otherApp, "appInstanceState"))
		wantSeq(t, "operation subscription", states(allOps, "operationState"),
			mec.OpStateProcessing, mec.OpStateCompleted, mec.OpStateProcessing, mec.OpStateCompleted, mec.OpStateProcessing, mec.OpStateCompleted)
		wantSeq(t, "operation subscription", states(allOps, "operationType"),
			mec.OpInstantiate, mec.OpInstantiate, mec.OpOperate, mec.OpOperate, mec.OpTerminate, mec.OpTerminate)
		wantSeq(t, "COMPLETED subscription", states(completed, "operationType"), mec.OpInstantiate, mec.OpOperate, mec.OpTerminate)
		wantSeq(t, "creation subscription", states(created, "appInstanceId"), id)
		wantSeq(t, "deletion subscription", states(deleted, "appInstanceId"), id)

		if loc := bySub[started][0]["appInstLocation"].(map[string]any); loc["countryCode"] == "" {
			t.Errorf("STARTED notification without location: %v", bySub[started][0])
		}
		if bySub[anyState][2]["appInstLocation"] != nil {
			t.Errorf("NOT_INSTANTIATED notification with a location: %v", bySub[anyState][2])
		}
		if bySub[allOps][1]["appLcmOpOccId"] != instOp {
			t.Errorf("instantiation notification names %v, want %s", bySub[allOps][1]["appLcmOpOccId"], instOp)
		}
		// One event, one notification id per type, whoever receives it: the
		// COMPLETED instantiation went to both operation subscriptions.
		if bySub[allOps][1]["id"] != bySub[completed][0]["id"] {
			t.Errorf("one event, two notification ids: %v and %v", bySub[allOps][1]["id"], bySub[completed][0]["id"])
		}
		for i, ids := range idsByEvent {
			perType := map[string]int{}
			for k := range ids {
				perType[k[:len(k)-37]]++ // strip "/<uuid>"
			}
			for typ, n := range perType {
				if n > 1 {
					t.Errorf("event %d: %d different ids for %s notifications", i, n, typ)
				}
			}
		}
	})
}

func jsonObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, b)
	}
	return m
}

func wantSeq(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%s: got %v, want %v", what, got, want)
			return
		}
	}
}
