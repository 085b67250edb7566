package apppkgm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/mec"
)

var zipCT = map[string]string{"Content-Type": "application/zip"}

// onboardAs creates and uploads data through base (see as) and returns the
// package as its creator reads it.
func (e *env) onboardAs(base string, data []byte) AppPkgInfo {
	e.t.Helper()
	var info AppPkgInfo
	e.doJSON("POST", base+"/onboarded_app_packages", createBody(sha256Hex(data))).wantStatus(e.t, http.StatusCreated).decode(e.t, &info)
	e.do("PUT", base+"/onboarded_app_packages/"+info.ID+"/package_content", zipCT, data).wantStatus(e.t, http.StatusAccepted)
	var got AppPkgInfo
	e.do("GET", base+"/onboarded_app_packages/"+info.ID, nil, nil).wantStatus(e.t, http.StatusOK).decode(e.t, &got)
	return got
}

// listedPkgs returns the IDs in base's package list.
func (e *env) listedPkgs(base string) map[string]bool {
	e.t.Helper()
	var list []AppPkgInfo
	e.do("GET", base+"/onboarded_app_packages", nil, nil).wantStatus(e.t, http.StatusOK).decode(e.t, &list)
	ids := map[string]bool{}
	for _, p := range list {
		ids[p.ID] = true
	}
	return ids
}

func sameIDs(got map[string]bool, want ...string) bool {
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

// anotherAppD is the sample package with an appDId of its own.
func anotherAppD(t *testing.T) []byte {
	return buildPkg(t, editAppD(t, "appDId: "+sampleAppDID, "appDId: "+mec.NewID()))
}

func TestPackagesBelongToTheirCreator(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		alice := e.as(auth.Principal{ClientID: "alice", Role: auth.RoleAppProvider})
		bob := e.as(auth.Principal{ClientID: "bob", Role: auth.RoleAppProvider})
		operator := e.as(auth.Principal{ClientID: "noc", Role: auth.RoleOperator})
		sample, _ := samplePkg(t)
		pa := e.onboardAs(alice, sample)
		pb := e.onboardAs(bob, anotherAppD(t))
		var created AppPkgInfo // alice's, waiting for content
		e.doJSON("POST", alice+"/onboarded_app_packages", createBody(sha256Hex(anotherAppD(t)))).
			wantStatus(t, http.StatusCreated).decode(t, &created)
		legacy := e.createPkg(strings.Repeat("1", 64)) // no principal: no owner

		before := e.do("GET", alice+"/onboarded_app_packages/"+pa.ID, nil, nil).wantStatus(t, http.StatusOK)
		etag := before.Header.Get("ETag")

		// Whatever bob asks of alice's packages (or of one with no owner)
		// is answered as for a missing package.
		patch := map[string]string{"Content-Type": "application/merge-patch+json"}
		ifMatch := map[string]string{"Content-Type": "application/merge-patch+json", "If-Match": etag}
		disable := []byte(`{"operationalState":"DISABLED"}`)
		for _, c := range []struct {
			method, ref, sub string
			header           map[string]string
			body             []byte
		}{
			{"GET", pa.ID, "", nil, nil},
			{"GET", pa.AppDID, "", nil, nil},
			{"GET", pa.ID, "", map[string]string{"If-None-Match": etag}, nil},
			{"GET", legacy.ID, "", nil, nil},
			{"PATCH", pa.ID, "", patch, disable},
			{"PATCH", pa.AppDID, "", ifMatch, disable},
			{"DELETE", pa.ID, "", nil, nil},
			{"DELETE", pa.AppDID, "", map[string]string{"If-Match": "*"}, nil},
			{"DELETE", pa.ID, "", map[string]string{"If-Match": etag}, nil},
			{"GET", pa.ID, "/appd", nil, nil},
			{"GET", pa.AppDID, "/package_content", nil, nil},
			{"GET", pa.ID, "/package_content", map[string]string{"Range": "bytes=0-9"}, nil},
			{"PUT", created.ID, "/package_content", zipCT, sample},
		} {
			r := e.do(c.method, bob+"/onboarded_app_packages/"+c.ref+c.sub, c.header, c.body)
			p := e.wantProblem(r, http.StatusNotFound)
			if want := fmt.Sprintf("app package %q not found", c.ref); p.Detail != want {
				t.Errorf("bob %s %s%s: detail %q, want %q", c.method, c.ref, c.sub, p.Detail, want)
			}
		}
		after := e.do("GET", alice+"/onboarded_app_packages/"+pa.ID, nil, nil).wantStatus(t, http.StatusOK)
		if string(after.body) != string(before.body) || after.Header.Get("ETag") != etag {
			t.Errorf("alice's package changed under bob's requests:\nbefore %s %s\nafter  %s %s", etag, before.body, after.Header.Get("ETag"), after.body)
		}
		var c AppPkgInfo
		e.do("GET", alice+"/onboarded_app_packages/"+created.ID, nil, nil).wantStatus(t, http.StatusOK).decode(t, &c)
		if c.OnboardingState != mec.PkgCreated {
			t.Errorf("alice's package without content is %s after bob's upload, want CREATED", c.OnboardingState)
		}

		// Lists are per owner; the operator's has everything.
		if got := e.listedPkgs(alice); !sameIDs(got, pa.ID, created.ID) {
			t.Errorf("alice lists %v, want %s and %s", got, pa.ID, created.ID)
		}
		if got := e.listedPkgs(bob); !sameIDs(got, pb.ID) {
			t.Errorf("bob lists %v, want only %s", got, pb.ID)
		}
		if got := e.listedPkgs(operator); !sameIDs(got, pa.ID, pb.ID, created.ID, legacy.ID) {
			t.Errorf("the operator lists %v, want %s, %s, %s and %s", got, pa.ID, pb.ID, created.ID, legacy.ID)
		}

		// An appDId is onboarded once whoever owns it, so bob learns of
		// the clash, but not which package it is.
		var dup AppPkgInfo
		e.doJSON("POST", bob+"/onboarded_app_packages", createBody(sha256Hex(sample))).wantStatus(t, http.StatusCreated).decode(t, &dup)
		r := e.do("PUT", bob+"/onboarded_app_packages/"+dup.ID+"/package_content", zipCT, sample)
		e.wantProblem(r, http.StatusConflict)
		if strings.Contains(string(r.body), pa.ID) {
			t.Errorf("the appDId clash names alice's package: %s", r.body)
		}

		// The operator acts on anyone's package; the owner sees the change.
		e.do("GET", operator+"/onboarded_app_packages/"+pa.ID+"/appd", nil, nil).wantStatus(t, http.StatusOK)
		e.do("PATCH", operator+"/onboarded_app_packages/"+pa.ID, patch, disable).wantStatus(t, http.StatusOK)
		if got := e.getPkgAs(alice, pa.ID); got.OperationalState != mec.PkgDisabled {
			t.Errorf("after the operator's PATCH alice's package is %s", got.OperationalState)
		}
		e.do("PATCH", alice+"/onboarded_app_packages/"+pa.AppDID, patch, []byte(`{"operationalState":"ENABLED"}`)).wantStatus(t, http.StatusOK)
		e.do("DELETE", alice+"/onboarded_app_packages/"+created.ID, nil, nil).wantStatus(t, http.StatusNoContent)
		e.do("DELETE", operator+"/onboarded_app_packages/"+pb.ID, nil, nil).wantStatus(t, http.StatusNoContent)
		if got := e.listedPkgs(operator); !sameIDs(got, pa.ID, legacy.ID, dup.ID) {
			t.Errorf("after the deletes the operator lists %v", got)
		}
	})
}

func (e *env) getPkgAs(base, ref string) AppPkgInfo {
	e.t.Helper()
	var p AppPkgInfo
	e.do("GET", base+"/onboarded_app_packages/"+ref, nil, nil).wantStatus(e.t, http.StatusOK).decode(e.t, &p)
	return p
}

func TestPackageNotificationsGoToTheirOwner(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		alice := e.as(auth.Principal{ClientID: "alice", Role: auth.RoleAppProvider})
		bob := e.as(auth.Principal{ClientID: "bob", Role: auth.RoleAppProvider})
		operator := e.as(auth.Principal{ClientID: "noc", Role: auth.RoleOperator})
		sub := func(base, typ string) string {
			t.Helper()
			var info AppPkgSubscriptionInfo
			e.doJSON("POST", base+"/subscriptions", map[string]any{"callbackUri": callback, "subscriptionType": typ}).
				wantStatus(t, http.StatusCreated).decode(t, &info)
			return info.ID
		}
		aOnb, aChg := sub(alice, SubOnboarding), sub(alice, SubChange)
		bOnb, bChg := sub(bob, SubOnboarding), sub(bob, SubChange)
		oOnb, oChg := sub(operator, SubOnboarding), sub(operator, SubChange)
		notified := func(typ mec.EventType) map[string]bool {
			t.Helper()
			outs, err := e.h.Notifications(t.Context(), e.events.last(t, typ))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, o := range outs {
				var n AppPkgNotification
				if err := json.Unmarshal(o.Body, &n); err != nil {
					t.Fatal(err)
				}
				got[n.SubscriptionID] = true
			}
			return got
		}

		sample, _ := samplePkg(t)
		pa := e.onboardAs(alice, sample)
		if got := notified(mec.EventPkgOnboarded); !sameIDs(got, aOnb, oOnb) {
			t.Errorf("alice's onboarding notified %v, want alice's %s and the operator's %s", got, aOnb, oOnb)
		}
		e.do("PATCH", alice+"/onboarded_app_packages/"+pa.ID, jsonCT, []byte(`{"operationalState":"DISABLED"}`)).wantStatus(t, http.StatusOK)
		if got := notified(mec.EventPkgDisabled); !sameIDs(got, aChg, oChg) {
			t.Errorf("alice's disabling notified %v, want alice's %s and the operator's %s", got, aChg, oChg)
		}
		pb := e.onboardAs(bob, anotherAppD(t))
		if got := notified(mec.EventPkgOnboarded); !sameIDs(got, bOnb, oOnb) {
			t.Errorf("bob's onboarding notified %v, want bob's %s and the operator's %s", got, bOnb, oOnb)
		}
		e.do("DELETE", bob+"/onboarded_app_packages/"+pb.ID, nil, nil).wantStatus(t, http.StatusNoContent)
		if got := notified(mec.EventPkgDeleted); !sameIDs(got, bChg, oChg) {
			t.Errorf("bob's deletion notified %v, want bob's %s and the operator's %s", got, bChg, oChg)
		}

		// A package with no owner is news to operators only.
		legacy := e.onboardAnother(t)
		if got := notified(mec.EventPkgOnboarded); !sameIDs(got, oOnb) {
			t.Errorf("onboarding of %s, with no owner, notified %v, want only the operator's %s", legacy.ID, got, oOnb)
		}
	})
}
