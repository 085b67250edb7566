package operator

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

const nrBody = `{"nrcgi":{"plmn":{"mcc":"001","mnc":"01"},"nrcellId":"00000000A"},"siteId":"site-1","ranAddress":"10.2.0.1"}`

func TestCellsCRUD(t *testing.T) {
	forEachEngine(t, func(t *testing.T, a *api) {
		a.mustSite("site-1")
		a.mustSite("site-2")

		var c cellResponse
		a.do("POST", "/api/v1/cells", nrBody).ok(http.StatusCreated, &c).
			wantHeader("Location", "/api/v1/cells/001-01-00000000a").wantHeader("ETag", `"1"`)
		if c.ID != "001-01-00000000a" || c.RAT != mec.RATNR || c.NRCGI == nil || c.NRCGI.NRCellID != "00000000a" ||
			c.NRCGI.PLMN.MNC != "01" || c.ECGI != nil || c.SiteID != "site-1" || c.RANAddress != "10.2.0.1" || !c.CreatedAt.Equal(testNow) {
			t.Errorf("created %+v", c)
		}
		lte := `{"ecgi":{"plmn":{"mcc":"310","mnc":"410"},"cellId":"00000B1"},"siteId":"site-2"}`
		c = cellResponse{} // decoding into c would keep fields the body lacks
		a.do("POST", "/api/v1/cells", lte).ok(http.StatusCreated, &c)
		if c.ID != "310-410-00000b1" || c.RAT != mec.RATEUTRA || c.ECGI == nil || c.NRCGI != nil {
			t.Errorf("created %+v", c)
		}
		raw := a.do("GET", "/api/v1/cells/310-410-00000B1", nil).ok(http.StatusOK, nil).wantHeader("ETag", `"1"`).body
		want := `{"id":"310-410-00000b1","rat":"EUTRA","ecgi":{"plmn":{"mcc":"310","mnc":"410"},"cellId":"00000b1"},"siteId":"site-2","createdAt":"2025-03-01T12:00:00Z"}`
		if strings.TrimSpace(string(raw)) != want {
			t.Errorf("GET body\n %s\nwant\n %s", raw, want)
		}

		for query, n := range map[string]int{"": 2, "?siteId=site-1": 1, "?siteId=site-3": 0} {
			var list []cellResponse
			if a.do("GET", "/api/v1/cells"+query, nil).ok(http.StatusOK, &list); len(list) != n {
				t.Errorf("GET /api/v1/cells%s: %d cells, want %d", query, len(list), n)
			}
		}

		moved := `{"id":"001-01-00000000a","nrcgi":{"plmn":{"mcc":"001","mnc":"01"},"nrcellId":"00000000a"},"siteId":"site-2"}`
		c = cellResponse{}
		a.do("PUT", "/api/v1/cells/001-01-00000000a", moved, "If-Match", `"1"`).ok(http.StatusOK, &c).wantHeader("ETag", `"2"`)
		if c.SiteID != "site-2" || c.RANAddress != "" {
			t.Errorf("updated %+v", c)
		}
		a.do("PUT", "/api/v1/cells/001-01-00000000a", moved, "If-Match", `"1"`).problem(http.StatusPreconditionFailed)
		a.do("PUT", "/api/v1/cells/001-01-00000000b", strings.Replace(moved, `"id":"001-01-00000000a",`, "", 1)).problem(http.StatusBadRequest)
		a.do("DELETE", "/api/v1/cells/001-01-00000000a", nil, "If-Match", `"1"`).problem(http.StatusPreconditionFailed)
		a.do("DELETE", "/api/v1/cells/001-01-00000000A", nil, "If-Match", `"2"`).ok(http.StatusNoContent, nil)
		a.do("GET", "/api/v1/cells/001-01-00000000a", nil).problem(http.StatusNotFound)
		a.do("DELETE", "/api/v1/cells/001-01-00000000a", nil).problem(http.StatusNotFound)
	})
}

func TestCellBodyErrors(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
		params []string
	}{
		{"neither identity", `{"siteId":"site-1"}`, 400, []string{"nrcgi", "ecgi"}},
		{"both identities", `{"nrcgi":{"plmn":{"mcc":"001","mnc":"01"},"nrcellId":"000000001"},"ecgi":{"plmn":{"mcc":"001","mnc":"01"},"cellId":"0000001"},"siteId":"site-1"}`,
			400, []string{"ecgi"}},
		{"every field of an NR CGI", `{"nrcgi":{"plmn":{"mcc":"1","mnc":"1234"},"nrcellId":"123"},"ranAddress":"gnb"}`,
			400, []string{"nrcgi.plmn.mcc", "nrcgi.plmn.mnc", "nrcgi.nrcellId", "siteId", "ranAddress"}},
		{"E-UTRA cell id too long", `{"ecgi":{"plmn":{"mcc":"001","mnc":"01"},"cellId":"000000001"},"siteId":"site-1"}`,
			400, []string{"ecgi.cellId"}},
		{"read-only rat", `{"rat":"NR","nrcgi":{"plmn":{"mcc":"001","mnc":"01"},"nrcellId":"000000001"},"siteId":""}`,
			400, []string{"rat", "siteId"}},
		{"wrong type deep down", `{"nrcgi":{"plmn":{"mcc":1,"mnc":"01"},"nrcellId":"000000001"},"siteId":"site-1"}`,
			400, []string{"nrcgi.plmn.mcc"}},
		{"unknown field", `{"nrcgi":{"plmn":{"mcc":"001","mnc":"01"},"nrcellId":"000000001","tac":1},"siteId":"site-1"}`,
			400, []string{"tac"}},
		{"id not the identity's", `{"id":"001-01-000000002","nrcgi":{"plmn":{"mcc":"001","mnc":"01"},"nrcellId":"000000001"},"siteId":"site-1"}`,
			400, []string{"id"}},
		{"missing site", `{"nrcgi":{"plmn":{"mcc":"001","mnc":"01"},"nrcellId":"000000001"},"siteId":"site-9"}`,
			422, []string{"siteId"}},
		{"duplicate", nrBody, 409, nil},
	}
	forEachEngine(t, func(t *testing.T, a *api) {
		a.mustSite("site-1")
		a.do("POST", "/api/v1/cells", nrBody).ok(http.StatusCreated, nil)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				params(t, a.do("POST", "/api/v1/cells", tt.body).problem(tt.status), tt.params...)
			})
		}
		// A site with a cell stays.
		p := a.do("DELETE", "/api/v1/sites/site-1", nil).problem(http.StatusConflict)
		if !strings.Contains(p.Detail, "001-01-00000000a") {
			t.Errorf("detail %q does not name the cell", p.Detail)
		}
	})
}
