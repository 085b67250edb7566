package apppkgm

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/mec"
)

// as returns the base URL of a server that hands every request to the API
// as p, which is what the assembled server's authentication does.
func (e *env) as(p auth.Principal) string {
	e.t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.h.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	}))
	e.t.Cleanup(srv.Close)
	return srv.URL + Prefix
}

// listedSubs returns the IDs in base's subscription list.
func (e *env) listedSubs(base string) map[string]bool {
	e.t.Helper()
	var list AppPkgSubscriptionLinkList
	e.valid(e.do("GET", base+"/subscriptions", nil, nil).wantStatus(e.t, http.StatusOK)).decode(e.t, &list)
	ids := map[string]bool{}
	for _, s := range list.Links.Subscriptions {
		ids[s.Href[len(e.srv.URL+Prefix+"/subscriptions/"):]] = true
	}
	return ids
}

func TestSubscriptionsBelongToTheirCreator(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		alice := e.as(auth.Principal{ClientID: "alice", Role: auth.RoleAppProvider})
		bob := e.as(auth.Principal{ClientID: "bob", Role: auth.RoleAppProvider})
		operator := e.as(auth.Principal{ClientID: "noc", Role: auth.RoleOperator})
		create := func(base string) string {
			t.Helper()
			var info AppPkgSubscriptionInfo
			e.valid(e.doJSON("POST", base+"/subscriptions", map[string]any{"callbackUri": callback, "subscriptionType": SubOnboarding}).
				wantStatus(t, http.StatusCreated)).decode(t, &info)
			return info.ID
		}
		a, b := create(alice), create(bob)

		if got := e.listedSubs(alice); len(got) != 1 || !got[a] {
			t.Errorf("alice lists %v, want only %s", got, a)
		}
		if got := e.listedSubs(bob); len(got) != 1 || !got[b] {
			t.Errorf("bob lists %v, want only %s", got, b)
		}
		if got := e.listedSubs(operator); len(got) != 2 || !got[a] || !got[b] {
			t.Errorf("the operator lists %v, want %s and %s", got, a, b)
		}

		// Someone else's subscription is as absent as a missing one.
		e.wantProblem(e.do("GET", alice+"/subscriptions/"+b, nil, nil), http.StatusNotFound)
		e.wantProblem(e.do("DELETE", alice+"/subscriptions/"+b, nil, nil), http.StatusNotFound)
		e.valid(e.do("GET", bob+"/subscriptions/"+b, nil, nil).wantStatus(t, http.StatusOK))
		e.valid(e.do("GET", operator+"/subscriptions/"+a, nil, nil).wantStatus(t, http.StatusOK))

		// Each is notified only of its own packages.
		sample, _ := samplePkg(t)
		e.onboardAs(alice, sample)
		outs, err := e.h.Notifications(t.Context(), e.events.last(t, mec.EventPkgOnboarded))
		if err != nil {
			t.Fatal(err)
		}
		notified := map[string]bool{}
		for _, o := range outs {
			var n AppPkgNotification
			if err := json.Unmarshal(o.Body, &n); err != nil {
				t.Fatal(err)
			}
			notified[n.SubscriptionID] = true
		}
		if len(notified) != 1 || !notified[a] {
			t.Errorf("notified %v, want only alice's %s", notified, a)
		}

		e.valid(e.do("DELETE", alice+"/subscriptions/"+a, nil, nil).wantStatus(t, http.StatusNoContent))
		if got := e.listedSubs(operator); len(got) != 1 || !got[b] {
			t.Errorf("after alice's delete the operator lists %v, want only %s", got, b)
		}
		e.valid(e.do("DELETE", operator+"/subscriptions/"+b, nil, nil).wantStatus(t, http.StatusNoContent))
	})
}
