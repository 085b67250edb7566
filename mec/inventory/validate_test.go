package inventory

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// names returns the field paths of ps in order.
func names(ps []mec.InvalidParam) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func checkNames(t *testing.T, got []mec.InvalidParam, want []string) {
	t.Helper()
	if !slices.Equal(names(got), want) {
		t.Errorf("invalid params = %v, want %v (all: %+v)", names(got), want, got)
	}
	for _, p := range got {
		if p.Reason == "" {
			t.Errorf("param %s has no reason", p.Name)
		}
	}
}

func goodSite() mec.Site {
	return mec.Site{ID: "site-1", Name: "Tower 1", Zone: "north", Country: "DE", Latitude: 52.52, Longitude: 13.40}
}

func TestValidateSite(t *testing.T) {
	tests := []struct {
		name string
		edit func(*mec.Site)
		want []string
	}{
		{"valid", func(*mec.Site) {}, nil},
		{"no id is fine", func(s *mec.Site) { s.ID = "" }, nil},
		{"id upper case", func(s *mec.Site) { s.ID = "Site-1" }, []string{"id"}},
		{"id starts with dash", func(s *mec.Site) { s.ID = "-site" }, []string{"id"}},
		{"id with dot", func(s *mec.Site) { s.ID = "site.1" }, []string{"id"}},
		{"id 63 chars", func(s *mec.Site) { s.ID = strings.Repeat("a", 63) }, nil},
		{"id 64 chars", func(s *mec.Site) { s.ID = strings.Repeat("a", 64) }, []string{"id"}},
		{"name missing", func(s *mec.Site) { s.Name = "" }, []string{"name"}},
		{"name blank", func(s *mec.Site) { s.Name = "  " }, []string{"name"}},
		{"name too long", func(s *mec.Site) { s.Name = strings.Repeat("n", maxText+1) }, []string{"name"}},
		{"zone too long", func(s *mec.Site) { s.Zone = strings.Repeat("z", maxText+1) }, []string{"zone"}},
		{"country lower case", func(s *mec.Site) { s.Country = "de" }, []string{"countryCode"}},
		{"country unassigned", func(s *mec.Site) { s.Country = "UK" }, []string{"countryCode"}},
		{"country alpha-3", func(s *mec.Site) { s.Country = "DEU" }, []string{"countryCode"}},
		{"country absent", func(s *mec.Site) { s.Country = "" }, nil},
		{"latitude edges", func(s *mec.Site) { s.Latitude, s.Longitude = -90, 180 }, nil},
		{"latitude over", func(s *mec.Site) { s.Latitude = 90.0001 }, []string{"latitude"}},
		{"latitude NaN", func(s *mec.Site) { s.Latitude = math.NaN() }, []string{"latitude"}},
		{"longitude under", func(s *mec.Site) { s.Longitude = -180.5 }, []string{"longitude"}},
		{"createdAt is the server's", func(s *mec.Site) { s.CreatedAt = time.Unix(1, 0) }, []string{"createdAt"}},
		{"every error at once", func(s *mec.Site) {
			*s = mec.Site{ID: "X", Country: "xx", Latitude: 91, Longitude: 181}
		}, []string{"id", "name", "countryCode", "latitude", "longitude"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := goodSite()
			tt.edit(&s)
			checkNames(t, ValidateSite(s), tt.want)
		})
	}
}

func goodHost() mec.Host {
	return mec.Host{
		ID: "edge1-a", SiteID: "site-1", Name: "edge 1 a",
		Capacity:  mec.Resources{MilliCPU: 16000, MemoryMiB: 65536, StorageGB: 500, GPUs: 1},
		Labels:    map[string]string{"gpu": "a100", "example.com/rack": "r1", "empty": ""},
		Addresses: []string{"10.1.0.10", "2001:db8::10"},
	}
}

func TestValidateHost(t *testing.T) {
	beat := time.Unix(100, 0)
	tests := []struct {
		name string
		edit func(*mec.Host)
		want []string
	}{
		{"valid", func(*mec.Host) {}, nil},
		{"no id, no name, no labels, no addresses", func(h *mec.Host) {
			h.ID, h.Name, h.Labels, h.Addresses = "", "", nil, nil
		}, nil},
		{"bad id", func(h *mec.Host) { h.ID = "Edge_1" }, []string{"id"}},
		{"site missing", func(h *mec.Host) { h.SiteID = "" }, []string{"siteId"}},
		{"name too long", func(h *mec.Host) { h.Name = strings.Repeat("n", maxText+1) }, []string{"name"}},
		{"cpu zero", func(h *mec.Host) { h.Capacity.MilliCPU = 0 }, []string{"capacity.milliCpu"}},
		{"memory negative", func(h *mec.Host) { h.Capacity.MemoryMiB = -1 }, []string{"capacity.memoryMiB"}},
		{"storage and gpus zero are fine", func(h *mec.Host) { h.Capacity.StorageGB, h.Capacity.GPUs = 0, 0 }, nil},
		{"storage negative", func(h *mec.Host) { h.Capacity.StorageGB = -5 }, []string{"capacity.storageGB"}},
		{"gpus negative", func(h *mec.Host) { h.Capacity.GPUs = -1 }, []string{"capacity.gpus"}},
		{"label key with space", func(h *mec.Host) { h.Labels["bad key"] = "v" }, []string{"labels.bad key"}},
		{"label key prefix upper case", func(h *mec.Host) { h.Labels["Example.com/x"] = "v" }, []string{"labels.Example.com/x"}},
		{"label key empty prefix", func(h *mec.Host) { h.Labels["/x"] = "v" }, []string{"labels./x"}},
		{"label key empty name", func(h *mec.Host) { h.Labels["example.com/"] = "v" }, []string{"labels.example.com/"}},
		{"label key too long", func(h *mec.Host) { h.Labels[strings.Repeat("k", 64)] = "v" }, []string{"labels." + strings.Repeat("k", 64)}},
		{"label key ends with dot", func(h *mec.Host) { h.Labels["rack."] = "v" }, []string{"labels.rack."}},
		{"label value with slash", func(h *mec.Host) { h.Labels["foo"] = "a/b" }, []string{"labels.foo"}},
		{"label value too long", func(h *mec.Host) { h.Labels["foo"] = strings.Repeat("v", 64) }, []string{"labels.foo"}},
		{"label value inner punctuation", func(h *mec.Host) { h.Labels["foo"] = "A-b_c.9" }, nil},
		{"address not an IP", func(h *mec.Host) { h.Addresses = []string{"10.0.0.1", "edge1.example"} }, []string{"addresses[1]"}},
		{"address with prefix", func(h *mec.Host) { h.Addresses = []string{"10.0.0.0/24"} }, []string{"addresses[0]"}},
		{"address with zone", func(h *mec.Host) { h.Addresses = []string{"fe80::1%eth0"} }, []string{"addresses[0]"}},
		{"address duplicated", func(h *mec.Host) { h.Addresses = []string{"10.0.0.1", "::ffff:10.0.0.1"} }, []string{"addresses[1]"}},
		{"allocated", func(h *mec.Host) { h.Allocated.MilliCPU = 1 }, []string{"allocated"}},
		{"state", func(h *mec.Host) { h.State = mec.HostReady }, []string{"state"}},
		{"generations", func(h *mec.Host) { h.DesiredGeneration, h.ReportedGeneration = 1, 1 }, []string{"desiredGeneration", "reportedGeneration"}},
		{"agent reports", func(h *mec.Host) { h.AgentVersion, h.LastHeartbeat = "1.0", &beat }, []string{"agentVersion", "lastHeartbeat"}},
		{"createdAt", func(h *mec.Host) { h.CreatedAt = beat }, []string{"createdAt"}},
		{"every error at once", func(h *mec.Host) {
			h.SiteID = ""
			h.Capacity = mec.Resources{MilliCPU: -1, MemoryMiB: 0, StorageGB: -1, GPUs: -1}
			h.Labels = map[string]string{"ok": "ok", "foo": "-bad-"}
			h.Addresses = []string{"10.0.0.1", "nope"}
			h.State = mec.HostDraining
		}, []string{"siteId", "capacity.milliCpu", "capacity.memoryMiB", "capacity.storageGB", "capacity.gpus", "labels.foo", "addresses[1]", "state"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := goodHost()
			tt.edit(&h)
			checkNames(t, ValidateHost(h), tt.want)
		})
	}
}

func goodNR() CellSpec {
	return CellSpec{NRCGI: &NRCGI{PLMN: PLMN{MCC: "001", MNC: "01"}, NRCellID: "00000000A"}, SiteID: "site-1", RANAddress: "10.2.0.1"}
}

func goodLTE() CellSpec {
	return CellSpec{ECGI: &ECGI{PLMN: PLMN{MCC: "310", MNC: "410"}, CellID: "00000b1"}, SiteID: "site-1"}
}

func TestValidateCell(t *testing.T) {
	tests := []struct {
		name string
		spec func() CellSpec
		want []string
	}{
		{"NR", goodNR, nil},
		{"LTE", goodLTE, nil},
		{"neither identity", func() CellSpec { return CellSpec{SiteID: "site-1"} }, []string{"nrcgi", "ecgi"}},
		{"both identities", func() CellSpec { c := goodNR(); c.ECGI = goodLTE().ECGI; return c }, []string{"ecgi"}},
		{"mcc two digits", func() CellSpec { c := goodNR(); c.NRCGI.PLMN.MCC = "01"; return c }, []string{"nrcgi.plmn.mcc"}},
		{"mcc letters", func() CellSpec { c := goodLTE(); c.ECGI.PLMN.MCC = "abc"; return c }, []string{"ecgi.plmn.mcc"}},
		{"mnc one digit", func() CellSpec { c := goodNR(); c.NRCGI.PLMN.MNC = "1"; return c }, []string{"nrcgi.plmn.mnc"}},
		{"mnc four digits", func() CellSpec { c := goodLTE(); c.ECGI.PLMN.MNC = "0001"; return c }, []string{"ecgi.plmn.mnc"}},
		{"nr cell id 8 digits", func() CellSpec { c := goodNR(); c.NRCGI.NRCellID = "0000000a"; return c }, []string{"nrcgi.nrcellId"}},
		{"nr cell id not hex", func() CellSpec { c := goodNR(); c.NRCGI.NRCellID = "00000000g"; return c }, []string{"nrcgi.nrcellId"}},
		{"e-utra cell id 9 digits", func() CellSpec { c := goodLTE(); c.ECGI.CellID = "000000001"; return c }, []string{"ecgi.cellId"}},
		{"site missing", func() CellSpec { c := goodNR(); c.SiteID = ""; return c }, []string{"siteId"}},
		{"ran address not an IP", func() CellSpec { c := goodNR(); c.RANAddress = "gnb-1"; return c }, []string{"ranAddress"}},
		{"id matches, any case", func() CellSpec { c := goodNR(); c.ID = "001-01-00000000A"; return c }, nil},
		{"id differs", func() CellSpec { c := goodNR(); c.ID = "001-01-00000000b"; return c }, []string{"id"}},
		{"every error at once", func() CellSpec {
			return CellSpec{NRCGI: &NRCGI{PLMN: PLMN{MCC: "1", MNC: "x"}, NRCellID: "z"}, RANAddress: "?"}
		}, []string{"nrcgi.plmn.mcc", "nrcgi.plmn.mnc", "nrcgi.nrcellId", "siteId", "ranAddress"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNames(t, ValidateCell(tt.spec()), tt.want)
		})
	}
}

func TestCellID(t *testing.T) {
	if got, want := CellID(goodNR()), "001-01-00000000a"; got != want {
		t.Errorf("NR cell ID = %q, want %q", got, want)
	}
	if got, want := CellID(goodLTE()), "310-410-00000b1"; got != want {
		t.Errorf("E-UTRA cell ID = %q, want %q", got, want)
	}
}

func TestCountryCodes(t *testing.T) {
	for _, c := range []string{"DE", "FR", "US", "JP", "GB", "AD", "ZW", "XK"} {
		if !isCountryCode(c) {
			t.Errorf("%s refused", c)
		}
	}
	for _, c := range []string{"", "D", "de", "De", "UK", "EU", "ZZ", "AA", " D", "DE "} {
		if isCountryCode(c) {
			t.Errorf("%q accepted", c)
		}
	}
	if n := len(strings.Fields(countryCodes)); n != 250 {
		t.Errorf("%d codes, want the 249 assigned ones and XK", n)
	}
}
