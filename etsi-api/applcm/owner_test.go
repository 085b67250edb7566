package applcm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mecorch/mecorch/etsi-api/auth"
)

// as returns a function sending requests to the API as p, through a server
// that puts p in every request's context as the assembled server's
// authentication does.
func (e *env) as(p auth.Principal) func(method, path string, body any) response {
	e.t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.h.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	}))
	e.t.Cleanup(srv.Close)
	return func(method, path string, body any) response {
		e.t.Helper()
		return doOn(e.t, srv.Client(), e.spec, srv.URL, method, path, body, nil)
	}
}

func TestSubscriptionsBelongToTheirCreator(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		alice := e.as(auth.Principal{ClientID: "alice", Role: auth.RoleAppProvider})
		bob := e.as(auth.Principal{ClientID: "bob", Role: auth.RoleAppProvider})
		operator := e.as(auth.Principal{ClientID: "noc", Role: auth.RoleOperator})
		create := func(do func(string, string, any) response) string {
			t.Helper()
			r := do("POST", "subscriptions", map[string]any{"subscriptionType": subIDCreation, "callbackUri": callback})
			wantStatus(t, r, http.StatusCreated)
			return r.json(t)["id"].(string)
		}
		listed := func(do func(string, string, any) response, query string) map[string]bool {
			t.Helper()
			r := do("GET", "subscriptions"+query, nil)
			wantStatus(t, r, http.StatusOK)
			ids := map[string]bool{}
			subs, _ := r.json(t)["_links"].(map[string]any)["subscriptions"].([]any)
			for _, s := range subs {
				href := s.(map[string]any)["href"].(string)
				ids[href[strings.LastIndex(href, "/")+1:]] = true
			}
			return ids
		}
		a, b := create(alice), create(bob)

		for _, q := range []string{"", "?subscriptiontype=" + subIDCreation} {
			if got := listed(alice, q); len(got) != 1 || !got[a] {
				t.Errorf("alice lists %v, want only %s", got, a)
			}
			if got := listed(bob, q); len(got) != 1 || !got[b] {
				t.Errorf("bob lists %v, want only %s", got, b)
			}
			if got := listed(operator, q); len(got) != 2 || !got[a] || !got[b] {
				t.Errorf("the operator lists %v, want %s and %s", got, a, b)
			}
		}

		// Someone else's subscription is as absent as a missing one.
		wantStatus(t, alice("GET", "subscriptions/"+b, nil), http.StatusNotFound)
		wantStatus(t, alice("DELETE", "subscriptions/"+b, nil), http.StatusNotFound)
		wantStatus(t, bob("GET", "subscriptions/"+b, nil), http.StatusOK)
		wantStatus(t, operator("GET", "subscriptions/"+a, nil), http.StatusOK)

		// Each is notified only of its own instances.
		pkg := e.pkgOf("alice")
		e.events.take()
		r := alice("POST", "app_instances", map[string]any{"appDId": pkg.AppDID, "appInstanceName": "owned"})
		wantStatus(t, r, http.StatusCreated)
		id := r.json(t)["id"].(string)
		notified := map[string]bool{}
		for _, ev := range e.events.take() {
			outs, err := e.h.Notifications(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range outs {
				if n := jsonObject(t, o.Body); n["appInstanceId"] == id {
					notified[n["subscriptionId"].(string)] = true
				}
			}
		}
		if len(notified) != 1 || !notified[a] {
			t.Errorf("notified %v, want only alice's %s", notified, a)
		}

		wantStatus(t, alice("DELETE", "subscriptions/"+a, nil), http.StatusNoContent)
		if got := listed(operator, ""); len(got) != 1 || !got[b] {
			t.Errorf("after alice's delete the operator lists %v, want only %s", got, b)
		}
		wantStatus(t, operator("DELETE", "subscriptions/"+b, nil), http.StatusNoContent)
	})
}
