package applcm

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
)

func TestDecodeInstantiate(t *testing.T) {
	body := `{
		"selectedMECHostInfo": [{"hostId": "h1", "hostName": "one"}, {"hostId": {"id": "h2"}}],
		"locationConstraints": {"countryCode": "FR", "area": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1,5],[0,0]]]}},
		"x-mecorch-placement": {"siteIds": ["s1"], "zones": ["z1", "z2"], "hostLabels": {"gpu": "", "tier": "gold"}, "spreadKey": "k"},
		"vimConnectionInfo": []
	}`
	in, err := decodeInstantiate([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := mec.PlacementConstraints{
		HostIDs: []string{"h1", "h2"}, SiteIDs: []string{"s1"}, Zones: []string{"z1", "z2"}, CountryCode: "FR",
		Area:       [][][2]float64{{{0, 0}, {1, 0}, {1, 1}, {0, 0}}},
		HostLabels: map[string]string{"gpu": "", "tier": "gold"}, SpreadKey: "k",
	}
	if !reflect.DeepEqual(in.Constraints, want) {
		t.Errorf("constraints\n got %+v\nwant %+v", in.Constraints, want)
	}
	if !json.Valid(in.Params) || len(in.Params) >= len(body) {
		t.Errorf("operationParams not the compacted request: %s", in.Params)
	}
	if in.Compute != nil || in.Containers != nil || in.Storage != nil {
		t.Errorf("overrides from nowhere: %+v", in)
	}

	empty, err := decodeInstantiate(nil)
	if err != nil || string(empty.Params) != "{}" || !reflect.DeepEqual(empty.Constraints, mec.PlacementConstraints{}) {
		t.Errorf("empty body: %+v, %v", empty, err)
	}
}

func TestDecodeOperateTerminate(t *testing.T) {
	ops := []struct {
		body  string
		state string
		grace int
	}{
		{`{"changeStateTo":"STARTED"}`, mec.OpStarted, 0},
		{`{"changeStateTo":"STOPPED"}`, mec.OpStopped, 0},
		{`{"changeStateTo":"STOPPED","stopType":"FORCEFUL"}`, mec.OpStopped, 0},
		{`{"changeStateTo":"STOPPED","stopType":"GRACEFUL","gracefulStopTimeout":0}`, mec.OpStopped, 0},
		{`{"changeStateTo":"STOPPED","stopType":"GRACEFUL","gracefulStopTimeout":45}`, mec.OpStopped, 45},
	}
	for _, tc := range ops {
		in, err := decodeOperate([]byte(tc.body))
		if err != nil || in.ChangeStateTo != tc.state || in.GraceSeconds != tc.grace {
			t.Errorf("%s: %+v, %v", tc.body, in, err)
		}
	}
	terms := []struct {
		body  string
		grace int
	}{
		{`{"terminationType":"FORCEFUL"}`, 0},
		{`{"terminationType":"GRACEFUL","gracefulTerminationTimeout":20}`, 20},
		{`{"terminationType":"GRACEFUL"}`, waitForever},
	}
	for _, tc := range terms {
		in, err := decodeTerminate([]byte(tc.body))
		if err != nil || in.GraceSeconds != tc.grace {
			t.Errorf("%s: %+v, %v", tc.body, in, err)
		}
	}
	for _, body := range []string{``, `{}`, `{"cancelMode":"GRACEFUL"}`, `{"CancelMode":"FORCED"}`} {
		if _, err := decodeCancel([]byte(body)); err != nil && body != `` {
			t.Errorf("cancel %s: %v", body, err)
		}
	}
}

// FuzzDecodeInstantiate: any body either decodes into constraints the
// placement engine can take, or is refused with a 400 ProblemDetails that
// names what was wrong; nothing panics.
func FuzzDecodeInstantiate(f *testing.F) {
	seeds := []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"selectedMECHostInfo":[{"hostId":"h"}]}`,
		`{"selectedMECHostInfo":[{"hostId":{"hostId":"h"}},{"hostId":{"id":7}}]}`,
		`{"locationConstraints":{"countryCode":"FR","area":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}}`,
		`{"locationConstraints":{"area":"{\"type\":\"Polygon\",\"coordinates\":[[[0,0],[1,0],[1,1],[0,0]]]}"}}`,
		`{"locationConstraints":{"area":{"type":"Polygon","coordinates":[[[0,0],[1e400,0]]]}}}`,
		`{"x-mecorch-placement":{"siteIds":["a"],"zones":["z"],"hostLabels":{"k":"v"},"spreadKey":"s"}}`,
		`{"virtualComputeDescriptor":{"virtualCpu":{"numVirtualCpu":2}},"osContainerDescriptor":[]}`,
		`{"selectedMECHostInfo":null,"locationConstraints":null}`, `{"a":1,"a":2}`, "{\"\xff\":1}",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	spec := loadSpec(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := decodeInstantiate(body)
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Status != http.StatusBadRequest || len(pe.InvalidParams) == 0 {
				t.Fatalf("refusal is not a 400 naming fields: %#v", err)
			}
			rec := httptest.NewRecorder()
			problem.WriteError(rec, httptest.NewRequest("POST", Prefix+"/app_instances/x/instantiate", nil), err)
			if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != problem.ContentType {
				t.Fatalf("refusal written as %d %s", rec.Code, rec.Header().Get("Content-Type"))
			}
			if err := spec.CheckSchema("ProblemDetails", rec.Body.Bytes()); err != nil {
				t.Fatal(err)
			}
			return
		}
		if !json.Valid(in.Params) {
			t.Fatalf("accepted body keeps invalid operationParams %q", in.Params)
		}
		for _, ring := range in.Constraints.Area {
			if len(ring) < 4 || ring[0] != ring[len(ring)-1] {
				t.Fatalf("accepted an open or short ring: %v", ring)
			}
		}
		for _, id := range in.Constraints.HostIDs {
			if id == "" {
				t.Fatal("accepted an empty host ID")
			}
		}
	})
}
