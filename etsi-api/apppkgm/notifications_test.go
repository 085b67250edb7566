package apppkgm

import (
	"encoding/json"
	"net/http"
	"sort"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

// notified runs Notifications on ev and returns the bodies by subscription.
func (e *env) notified(ev mec.Event) map[string]AppPkgNotification {
	e.t.Helper()
	outs, err := e.h.Notifications(e.t.Context(), ev)
	if err != nil {
		e.t.Fatalf("Notifications(%s): %v", ev.Type, err)
	}
	got := map[string]AppPkgNotification{}
	ids := map[string]bool{}
	for _, o := range outs {
		e.spec.ValidateSchema(e.t, "AppPkgNotification", o.Body)
		var n AppPkgNotification
		if err := json.Unmarshal(o.Body, &n); err != nil {
			e.t.Fatalf("notification body: %v", err)
		}
		if o.CallbackURI != callback+"/"+n.SubscriptionID {
			e.t.Errorf("notification for %s goes to %s", n.SubscriptionID, o.CallbackURI)
		}
		if n.Links.Subscription.Href != e.srv.URL+Prefix+"/subscriptions/"+n.SubscriptionID {
			e.t.Errorf("subscription link %q", n.Links.Subscription.Href)
		}
		got[n.SubscriptionID] = n
		ids[n.ID] = true
	}
	if len(ids) > 1 {
		e.t.Errorf("one event, several notification ids: %v", ids)
	}
	return got
}

func keys(m map[string]AppPkgNotification) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sameSet(got map[string]AppPkgNotification, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if _, ok := got[w]; !ok {
			return false
		}
	}
	return true
}

func TestNotifications(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		// Each subscription gets its own callback path, so the test can
		// tell the deliveries apart by URI as well as by body.
		sub := func(typ string, filter ...map[string]any) string {
			t.Helper()
			body := map[string]any{"callbackUri": callback, "subscriptionType": typ}
			if filter != nil {
				body["appPkgFilter"] = filter
			}
			r := e.doJSON("POST", "/subscriptions", body).wantStatus(t, http.StatusCreated)
			var info AppPkgSubscriptionInfo
			r.decode(t, &info)
			// Point the stored callback at a per-subscription path.
			err := e.store.Update(t.Context(), func(tx mec.Tx) error {
				s, v, err := mec.Load[mec.Subscription](tx, mec.KindSubscription, info.ID)
				if err != nil {
					return err
				}
				s.CallbackURI = callback + "/" + s.ID
				_, err = mec.Save(tx, mec.KindSubscription, s.ID, s, v)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return info.ID
		}
		onbAll := sub(SubOnboarding)
		onbMatch := sub(SubOnboarding, map[string]any{"appDId": "no-such-app"}, map[string]any{"appName": sampleApp, "appProvider": "mecorch-examples"})
		onbOther := sub(SubOnboarding, map[string]any{"appName": "other-app"})
		chgAll := sub(SubChange)
		chgDisabled := sub(SubChange, map[string]any{"operationalState": "DISABLED"})
		chgInUse := sub(SubChange, map[string]any{"usageState": "IN_USE"})
		del := sub(SubDeletion)
		_ = onbOther

		info := e.onboard()
		ev := e.events.last(t, mec.EventPkgOnboarded)
		got := e.notified(ev)
		if !sameSet(got, onbAll, onbMatch) {
			t.Errorf("onboarded: notified %v, want %v", keys(got), []string{onbAll, onbMatch})
		}
		n := got[onbAll]
		if n.NotificationType != "AppPackageOnBoarded" || n.AppPkgID != info.ID || n.AppDID != sampleAppDID ||
			n.OperationalState != mec.PkgEnabled || n.SubscriptionID != onbAll {
			t.Errorf("onboarded notification %+v", n)
		}
		if n.TimeStamp.Seconds != ev.At.Unix() || n.TimeStamp.NanoSeconds != ev.At.Nanosecond() {
			t.Errorf("timeStamp %+v, event at %v", n.TimeStamp, ev.At)
		}

		e.do("PATCH", "/onboarded_app_packages/"+info.ID, jsonCT, []byte(`{"operationalState":"DISABLED"}`)).wantStatus(t, http.StatusOK)
		got = e.notified(e.events.last(t, mec.EventPkgDisabled))
		if !sameSet(got, chgAll, chgDisabled) || got[chgAll].NotificationType != "AppPackageDisabled" || got[chgAll].OperationalState != mec.PkgDisabled {
			t.Errorf("disabled: %v %+v", keys(got), got[chgAll])
		}

		e.putInstance(info)
		e.do("PATCH", "/onboarded_app_packages/"+info.ID, jsonCT, []byte(`{"operationalState":"ENABLED"}`)).wantStatus(t, http.StatusOK)
		got = e.notified(e.events.last(t, mec.EventPkgEnabled))
		if !sameSet(got, chgAll, chgInUse) || got[chgInUse].NotificationType != "AppPackageEnabled" {
			t.Errorf("enabled while in use: %v", keys(got))
		}

		other := e.onboardAnother(t)
		e.do("DELETE", "/onboarded_app_packages/"+other.ID, nil, nil).wantStatus(t, http.StatusNoContent)
		got = e.notified(e.events.last(t, mec.EventPkgDeleted))
		if !sameSet(got, chgAll, del) || got[del].NotificationType != "AppPackageDeleted" || got[del].AppPkgID != other.ID {
			t.Errorf("deleted: %v %+v", keys(got), got[del])
		}

		// A package deleted before it had content was never announced.
		created := e.createPkg("00" + info.Checksum.Hash[2:])
		e.do("DELETE", "/onboarded_app_packages/"+created.ID, nil, nil).wantStatus(t, http.StatusNoContent)
		if got := e.notified(e.events.last(t, mec.EventPkgDeleted)); len(got) != 0 {
			t.Errorf("deletion of a never-onboarded package notified %v", keys(got))
		}

		// Other APIs' events are not this API's business.
		outs, err := e.h.Notifications(t.Context(), mec.Event{Type: mec.EventInstanceState, Instance: &mec.AppInstance{ID: "x"}})
		if err != nil || len(outs) != 0 {
			t.Errorf("instance event: %v, %v", outs, err)
		}
		if _, err := e.h.Notifications(t.Context(), mec.Event{Type: mec.EventPkgEnabled}); err == nil {
			t.Errorf("package event without a package: no error")
		}
	})
}
