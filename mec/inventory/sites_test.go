package inventory

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

func TestSiteLifecycle(t *testing.T) {
	ctx := context.Background()
	inv, _ := newTestService(t)

	site, v1, err := inv.CreateSite(ctx, goodSite())
	if err != nil {
		t.Fatal(err)
	}
	if v1 != 1 || !site.CreatedAt.Equal(testNow) || site.ID != "site-1" {
		t.Fatalf("created %+v at version %d", site, v1)
	}
	got, v, err := inv.GetSite(ctx, "site-1")
	if err != nil || v != v1 || got != site {
		t.Fatalf("get = %+v, %d, %v; want %+v, %d", got, v, err, site, v1)
	}

	_, _, err = inv.CreateSite(ctx, goodSite())
	wantStatus(t, err, http.StatusConflict)
	if !errors.Is(err, mec.ErrExists) {
		t.Errorf("duplicate: %v does not match mec.ErrExists", err)
	}

	// Replace: every field an operator owns changes, CreatedAt stays.
	next := mec.Site{Name: "Tower 1 (moved)", Country: "FR", Latitude: 48.85, Longitude: 2.35}
	upd, v2, err := inv.UpdateSite(ctx, "site-1", next, v1)
	if err != nil {
		t.Fatal(err)
	}
	if v2 != v1+1 || upd.Zone != "" || upd.Country != "FR" || !upd.CreatedAt.Equal(testNow) || upd.ID != "site-1" {
		t.Fatalf("updated %+v at version %d", upd, v2)
	}
	// The same content again changes nothing, not even the version.
	if _, v3, err := inv.UpdateSite(ctx, "site-1", next, mec.AnyVersion); err != nil || v3 != v2 {
		t.Fatalf("no-op update: version %d, %v; want %d", v3, err, v2)
	}
	_, _, err = inv.UpdateSite(ctx, "site-1", next, v1)
	wantStatus(t, err, http.StatusPreconditionFailed)
	_, _, err = inv.UpdateSite(ctx, "site-1", mec.Site{ID: "site-2", Name: "x"}, mec.AnyVersion)
	if p := wantStatus(t, err, http.StatusBadRequest); p.InvalidParams[0].Name != "id" {
		t.Errorf("params = %+v, want id", p.InvalidParams)
	}
	_, _, err = inv.UpdateSite(ctx, "nope", next, mec.AnyVersion)
	wantStatus(t, err, http.StatusNotFound)

	wantStatus(t, inv.DeleteSite(ctx, "site-1", v1), http.StatusPreconditionFailed)
	if err := inv.DeleteSite(ctx, "site-1", v2); err != nil {
		t.Fatal(err)
	}
	_, _, err = inv.GetSite(ctx, "site-1")
	wantStatus(t, err, http.StatusNotFound)
	if !errors.Is(err, mec.ErrNotFound) {
		t.Errorf("get after delete: %v does not match mec.ErrNotFound", err)
	}
	wantStatus(t, inv.DeleteSite(ctx, "site-1", mec.AnyVersion), http.StatusNotFound)
}

func TestSiteGeneratedID(t *testing.T) {
	inv, _ := newTestService(t)
	s := goodSite()
	s.ID = ""
	site, _, err := inv.CreateSite(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if checkID(site.ID) != "" || len(site.ID) != 36 {
		t.Errorf("generated ID %q is not a UUID that passes the ID rule", site.ID)
	}
}

func TestSiteInvalidListsEveryField(t *testing.T) {
	inv, _ := newTestService(t)
	_, _, err := inv.CreateSite(context.Background(), mec.Site{ID: "A B", Latitude: -91, Country: "xx"})
	p := wantStatus(t, err, http.StatusBadRequest)
	checkNames(t, p.InvalidParams, []string{"id", "name", "countryCode", "latitude"})
}

func TestListSitesOrdered(t *testing.T) {
	ctx := context.Background()
	inv, _ := newTestService(t)
	for _, id := range []string{"c", "a", "b"} {
		if _, _, err := inv.CreateSite(ctx, mec.Site{ID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	sites, err := inv.ListSites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range sites {
		ids = append(ids, s.ID)
	}
	if strings.Join(ids, ",") != "a,b,c" {
		t.Errorf("sites = %v, want a,b,c", ids)
	}
}

func TestDeleteSiteWithHostsOrCells(t *testing.T) {
	ctx := context.Background()
	inv, _ := newTestService(t)
	mustSite(t, inv, "site-1")
	if _, _, err := inv.CreateHost(ctx, goodHost()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := inv.CreateCell(ctx, goodNR()); err != nil {
		t.Fatal(err)
	}

	p := wantStatus(t, inv.DeleteSite(ctx, "site-1", mec.AnyVersion), http.StatusConflict)
	for _, want := range []string{`"edge1-a"`, `"001-01-00000000a"`, "hosts", "cells"} {
		if !strings.Contains(p.Detail, want) {
			t.Errorf("detail %q does not name %s", p.Detail, want)
		}
	}

	if err := inv.DeleteHost(ctx, "edge1-a", mec.AnyVersion); err != nil {
		t.Fatal(err)
	}
	p = wantStatus(t, inv.DeleteSite(ctx, "site-1", mec.AnyVersion), http.StatusConflict)
	if strings.Contains(p.Detail, "hosts") || !strings.Contains(p.Detail, "001-01-00000000a") {
		t.Errorf("detail %q: want only the cell", p.Detail)
	}
	if err := inv.DeleteCell(ctx, "001-01-00000000A", mec.AnyVersion); err != nil {
		t.Fatal(err)
	}
	if err := inv.DeleteSite(ctx, "site-1", mec.AnyVersion); err != nil {
		t.Fatalf("delete of an empty site: %v", err)
	}
}

func TestIDListCaps(t *testing.T) {
	ids := make([]string, 13)
	for i := range ids {
		ids[i] = string(rune('a' + i))
	}
	got := idList(ids, func(s string) string { return s })
	if !strings.HasSuffix(got, `"j" and 3 more`) {
		t.Errorf("idList = %s", got)
	}
}

// mustSite creates a site with id.
func mustSite(t *testing.T, inv *Service, id string) {
	t.Helper()
	if _, _, err := inv.CreateSite(context.Background(), mec.Site{ID: id, Name: "site " + id}); err != nil {
		t.Fatalf("create site %s: %v", id, err)
	}
}
