package appd

import (
	"errors"
	"strings"
	"testing"
)

func TestBandwidthValidation(t *testing.T) {
	bw := func(dir, fixed, ceil string) BandwidthDescriptor {
		return BandwidthDescriptor{AllocationDirection: dir, FixedAllocation: fixed, CeilAllocation: ceil}
	}
	tests := []struct {
		name       string
		bw         []BandwidthDescriptor
		path, want string // "" path: valid
	}{
		{"downlink and uplink", []BandwidthDescriptor{bw("00", "20000000", "50000000"), bw("01", "8000", "")}, "", ""},
		{"symmetrical alone", []BandwidthDescriptor{bw("10", "400000000000", "400000000000")}, "", ""},
		{"ceil equal to fixed", []BandwidthDescriptor{bw("01", "1000000", "1000000")}, "", ""},
		{"three entries", []BandwidthDescriptor{bw("00", "8000", ""), bw("01", "8000", ""), bw("10", "8000", "")}, "x-mecorch-bandwidth", "at most 2"},
		{"unknown direction", []BandwidthDescriptor{bw("11", "8000", "")}, "x-mecorch-bandwidth[0].allocationDirection", "not one of 00, 01, 10"},
		{"direction missing", []BandwidthDescriptor{bw("", "8000", "")}, "x-mecorch-bandwidth[0].allocationDirection", "is required"},
		{"downlink twice", []BandwidthDescriptor{bw("00", "8000", ""), bw("00", "9000", "")}, "x-mecorch-bandwidth[1].allocationDirection", "downlink is given already"},
		{"symmetrical after uplink", []BandwidthDescriptor{bw("01", "8000", ""), bw("10", "9000", "")}, "x-mecorch-bandwidth[1].allocationDirection", "uplink is given already"},
		{"downlink after symmetrical", []BandwidthDescriptor{bw("10", "8000", ""), bw("00", "9000", "")}, "x-mecorch-bandwidth[1].allocationDirection", "downlink is given already"},
		{"fixed missing", []BandwidthDescriptor{bw("00", "", "")}, "x-mecorch-bandwidth[0].fixedAllocation", "is required"},
		{"fixed below the minimum", []BandwidthDescriptor{bw("00", "7999", "")}, "x-mecorch-bandwidth[0].fixedAllocation", "from 8000 to 400000000000"},
		{"fixed above the maximum", []BandwidthDescriptor{bw("00", "400000000001", "")}, "x-mecorch-bandwidth[0].fixedAllocation", "from 8000"},
		{"fixed with a unit", []BandwidthDescriptor{bw("00", "10M", "")}, "x-mecorch-bandwidth[0].fixedAllocation", "decimal digits"},
		{"fixed in exponent form", []BandwidthDescriptor{bw("00", "1e6", "")}, "x-mecorch-bandwidth[0].fixedAllocation", "decimal digits"},
		{"fixed negative", []BandwidthDescriptor{bw("00", "-8000", "")}, "x-mecorch-bandwidth[0].fixedAllocation", "decimal digits"},
		{"fixed overflowing uint64", []BandwidthDescriptor{bw("00", "99999999999999999999", "")}, "x-mecorch-bandwidth[0].fixedAllocation", "decimal digits"},
		{"ceil below fixed", []BandwidthDescriptor{bw("01", "2000000", "1000000")}, "x-mecorch-bandwidth[0].ceilAllocation", "not be below fixedAllocation"},
		{"ceil above the maximum", []BandwidthDescriptor{bw("01", "8000", "500000000000")}, "x-mecorch-bandwidth[0].ceilAllocation", "from 8000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := sampleAppD(t)
			a.Bandwidth = tt.bw
			errs := a.Validate()
			if tt.path == "" {
				if errs != nil {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			for _, e := range errs {
				if e.Path == tt.path && strings.Contains(e.Reason, tt.want) {
					return
				}
			}
			t.Fatalf("want %s: …%s…; got %v", tt.path, tt.want, errs)
		})
	}
}

// TestBandwidthParse: the extension is read from YAML and JSON with the
// rest of the AppD, MEC 015's string rates included (an unquoted YAML
// number is its text), and a JSON number is a type error at its path.
func TestBandwidthParse(t *testing.T) {
	y := string(sampleYAML(t)) + "\nx-mecorch-bandwidth:\n  - allocationDirection: 00\n    fixedAllocation: 20000000\n    ceilAllocation: \"50000000\"\n  - {allocationDirection: \"01\", fixedAllocation: \"1000000\"}\n"
	a, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	want := []BandwidthDescriptor{{"00", "20000000", "50000000"}, {"01", "1000000", ""}}
	if len(a.Bandwidth) != 2 || a.Bandwidth[0] != want[0] || a.Bandwidth[1] != want[1] {
		t.Fatalf("bandwidth %+v", a.Bandwidth)
	}
	down, up, dOK, uOK := Rates(a.Bandwidth)
	if !dOK || !uOK || down != (BandwidthRate{20_000_000, 50_000_000}) || up != (BandwidthRate{1_000_000, 0}) {
		t.Fatalf("rates %+v %+v %v %v", down, up, dOK, uOK)
	}

	// It survives the round trip through the stored canonical JSON.
	b := toJSON(t, a)
	var back AppD
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if len(back.Bandwidth) != 2 || back.Bandwidth[0] != want[0] {
		t.Fatalf("after a JSON round trip: %+v", back.Bandwidth)
	}

	m := sampleMap(t)
	m["x-mecorch-bandwidth"] = []any{map[string]any{"allocationDirection": "10", "fixedAllocation": 20000000}}
	_, err = Parse(toJSON(t, m))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("a JSON number: %v", err)
	}
	found := false
	for _, e := range ve.Errors {
		if e.Path == "x-mecorch-bandwidth[0].fixedAllocation" && strings.Contains(e.Reason, "string") {
			found = true
		}
		if e.Path == "x-mecorch-bandwidth[0].fixedAllocation" && strings.Contains(e.Reason, "required") {
			t.Errorf("the type error is reported twice: %v", ve.Errors)
		}
	}
	if !found {
		t.Fatalf("errors %v", ve.Errors)
	}

	down, up, dOK, uOK = Rates([]BandwidthDescriptor{{"10", "8000", ""}})
	if !dOK || !uOK || down != up || down.FixedBps != 8000 {
		t.Fatalf("symmetrical: %+v %+v", down, up)
	}
	if _, _, dOK, uOK = Rates(nil); dOK || uOK {
		t.Fatal("no extension, yet rates")
	}
}
