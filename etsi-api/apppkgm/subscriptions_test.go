package apppkgm

import (
	"net/http"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

const callback = "https://subscriber.example.com/mec/notify"

// subscribe creates a subscription and checks the answer.
func (e *env) subscribe(body map[string]any) AppPkgSubscriptionInfo {
	e.t.Helper()
	r := e.valid(e.doJSON("POST", "/subscriptions", body).wantStatus(e.t, http.StatusCreated))
	e.spec.ValidateSchema(e.t, "AppPkgSubscriptionInfo", r.body)
	var info AppPkgSubscriptionInfo
	r.decode(e.t, &info)
	if r.Header.Get("Location") != info.Links.Self.Href || info.Links.Self.Href != e.srv.URL+Prefix+"/subscriptions/"+info.ID {
		e.t.Errorf("Location %q, self %q", r.Header.Get("Location"), info.Links.Self.Href)
	}
	return info
}

func TestSubscriptionsCRUD(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		r := e.valid(e.do("GET", "/subscriptions", nil, nil).wantStatus(t, http.StatusOK))
		var list AppPkgSubscriptionLinkList
		r.decode(t, &list)
		if list.Links.Self.Href != e.srv.URL+Prefix+"/subscriptions" || list.Links.Subscriptions == nil || len(list.Links.Subscriptions) != 0 {
			t.Errorf("empty list %s", r.body)
		}

		onb := e.subscribe(map[string]any{"callbackUri": callback, "subscriptionType": SubOnboarding})
		chg := e.subscribe(map[string]any{"callbackUri": callback, "subscriptionType": SubChange,
			"appPkgFilter": []any{map[string]any{"appName": sampleApp, "operationalState": "DISABLED"}}})
		if onb.SubscriptionType != SubOnboarding || onb.CallbackURI != callback || onb.AppPkgFilter != nil {
			t.Errorf("onboarding subscription %+v", onb)
		}
		if len(chg.AppPkgFilter) != 1 || chg.AppPkgFilter[0].OperationalState != "DISABLED" {
			t.Errorf("change subscription filter %+v", chg.AppPkgFilter)
		}
		// Another API's subscription shares the store but not the list.
		err := e.store.Update(t.Context(), func(tx mec.Tx) error {
			_, err := mec.Save(tx, mec.KindSubscription, "lcm-sub", mec.Subscription{ID: "lcm-sub", API: "app_lcm",
				Type: "AppInstanceStateChangeSubscription", CallbackURI: callback}, mec.MustNotExist)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}

		r = e.valid(e.do("GET", "/subscriptions", nil, nil).wantStatus(t, http.StatusOK))
		r.decode(t, &list)
		got := map[string]string{}
		for _, s := range list.Links.Subscriptions {
			got[s.Href] = s.SubscriptionType
		}
		if len(got) != 2 || got[onb.Links.Self.Href] != SubOnboarding || got[chg.Links.Self.Href] != SubChange {
			t.Errorf("list %s", r.body)
		}

		r = e.valid(e.do("GET", "/subscriptions/"+chg.ID, nil, nil).wantStatus(t, http.StatusOK))
		var one AppPkgSubscriptionInfo
		r.decode(t, &one)
		if one.ID != chg.ID || one.SubscriptionType != SubChange || len(one.AppPkgFilter) != 1 {
			t.Errorf("GET one: %+v", one)
		}
		e.wantProblem(e.do("GET", "/subscriptions/lcm-sub", nil, nil), http.StatusNotFound)
		e.wantProblem(e.do("DELETE", "/subscriptions/lcm-sub", nil, nil), http.StatusNotFound)

		e.valid(e.do("DELETE", "/subscriptions/"+onb.ID, nil, nil).wantStatus(t, http.StatusNoContent))
		e.wantProblem(e.do("GET", "/subscriptions/"+onb.ID, nil, nil), http.StatusNotFound)
		e.wantProblem(e.do("DELETE", "/subscriptions/"+onb.ID, nil, nil), http.StatusNotFound)

		// The stored subscription is what the dispatcher will read.
		err = e.store.View(t.Context(), func(tx mec.Tx) error {
			s, _, err := mec.Load[mec.Subscription](tx, mec.KindSubscription, chg.ID)
			if err != nil {
				return err
			}
			if s.API != "app_pkgm" || s.Type != SubChange || s.CallbackURI != callback || len(s.Filter) == 0 || len(s.Request) == 0 {
				t.Errorf("stored %+v", s)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestSubscriptionInvalid(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		cases := []struct {
			name   string
			body   string
			params []string
		}{
			{"missing", `{}`, []string{"callbackUri", "subscriptionType"}},
			{"wrong types", `{"callbackUri": 1, "subscriptionType": {}, "appPkgFilter": {}}`,
				[]string{"callbackUri", "subscriptionType", "appPkgFilter"}},
			{"unknown type", `{"callbackUri": "` + callback + `", "subscriptionType": "AppPackageEverything"}`, []string{"subscriptionType"}},
			{"callback not http", `{"callbackUri": "ftp://subscriber.example.com/n", "subscriptionType": "` + SubChange + `"}`, []string{"callbackUri"}},
			{"relative callback", `{"callbackUri": "/notify", "subscriptionType": "` + SubOnboarding + `"}`, []string{"callbackUri"}},
			{"bad filter", `{"callbackUri": "` + callback + `", "subscriptionType": "` + SubChange + `",
				"appPkgFilter": [{"appName": 3}, "x", {"operationalState": "ON", "usageState": "BUSY"}]}`,
				[]string{"appPkgFilter[0].appName", "appPkgFilter[1]", "appPkgFilter[2].operationalState", "appPkgFilter[2].usageState"}},
			{"state filter on onboarding", `{"callbackUri": "` + callback + `", "subscriptionType": "` + SubOnboarding + `",
				"appPkgFilter": [{"operationalState": "ENABLED"}]}`, []string{"appPkgFilter[0].operationalState"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				p := e.wantProblem(e.doJSON("POST", "/subscriptions", c.body), http.StatusBadRequest)
				wantParams(t, p, c.params...)
			})
		}
		e.wantProblem(e.do("POST", "/subscriptions", map[string]string{"Content-Type": "application/xml"}, []byte("<x/>")),
			http.StatusUnsupportedMediaType)
	})
}
