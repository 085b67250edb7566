package appd

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestParseSampleYAML(t *testing.T) {
	a := sampleAppD(t)
	if a.AppName != "edge-echo" || a.AppProvider != "mecorch-examples" {
		t.Errorf("name/provider = %q/%q", a.AppName, a.AppProvider)
	}
	if !reflect.DeepEqual([]string(a.MecVersion), []string{"3.1.1"}) {
		t.Errorf("mecVersion = %q", a.MecVersion)
	}
	if got := a.VirtualComputeDescriptor.VirtualCPU.NumVirtualCPU; got != 1 {
		t.Errorf("numVirtualCpu = %d", got)
	}
	if got := a.AppLatency.MaxLatencyDuration().String(); got != "10ms" {
		t.Errorf("maxLatency = %s", got)
	}
	r := a.AppTrafficRule[0]
	if r.Action != ActionForwardDecapsulated || *r.Priority != 10 || len(r.DstInterface) != 1 || r.DstInterface[0].DstIPAddress != "10.0.0.7" {
		t.Errorf("traffic rule = %+v", r)
	}
	if got := a.SwImageDescriptor[0].SwImage; got.Ref != "Artifacts/edge-echo.sh" || got.Object != nil {
		t.Errorf("swImage = %+v", got)
	}
	if d := a.AppDNSRule[0]; d.DomainName != "echo.mec.example" || d.IPAddress != "10.0.0.7" || *d.TTL != 60 {
		t.Errorf("dns rule = %+v", d)
	}
}

// The same AppD in JSON decodes to the same value, and so does whatever
// json.Marshal and yaml.Marshal make of it.
func TestParseJSONAndRoundTrips(t *testing.T) {
	want := sampleAppD(t)
	fromJSON, err := Parse(toJSON(t, sampleMap(t)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, want) {
		t.Errorf("JSON form differs:\n%+v\n%+v", fromJSON, want)
	}
	again, err := Parse(toJSON(t, want))
	if err != nil || !reflect.DeepEqual(again, want) {
		t.Errorf("json.Marshal round trip: %v", err)
	}
	y, err := yaml.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	again, err = Parse(y)
	if err != nil || !reflect.DeepEqual(again, want) {
		t.Errorf("yaml.Marshal round trip: %v\n%s", err, y)
	}
	// encoding/json and yaml.v3 go through the same decoder.
	var viaJSON, viaYAML AppD
	if err := json.Unmarshal(toJSON(t, want), &viaJSON); err != nil || !reflect.DeepEqual(&viaJSON, want) {
		t.Errorf("json.Unmarshal: %v", err)
	}
	if err := yaml.Unmarshal(y, &viaYAML); err != nil || !reflect.DeepEqual(&viaYAML, want) {
		t.Errorf("yaml.Unmarshal: %v", err)
	}
}

// variant returns the sample as JSON with edit applied to its generic form.
func variant(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	m := sampleMap(t)
	edit(m)
	return toJSON(t, m)
}

func rule0(m map[string]any) map[string]any {
	return m["appTrafficRule"].([]any)[0].(map[string]any)
}

func TestParseQuirkForms(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(m map[string]any)
		check func(t *testing.T, a *AppD)
	}{{
		name: "mecVersion as comma-separated string",
		edit: func(m map[string]any) { m["mecVersion"] = " 3.1.1 ,2.2.1" },
		check: func(t *testing.T, a *AppD) {
			if !reflect.DeepEqual([]string(a.MecVersion), []string{"3.1.1", "2.2.1"}) {
				t.Errorf("mecVersion = %q", a.MecVersion)
			}
		},
	}, {
		name: "mecVersion as array",
		edit: func(m map[string]any) { m["mecVersion"] = []any{"3.1.1", " 2.1.1"} },
		check: func(t *testing.T, a *AppD) {
			if !reflect.DeepEqual([]string(a.MecVersion), []string{"3.1.1", "2.1.1"}) {
				t.Errorf("mecVersion = %q", a.MecVersion)
			}
		},
	}, {
		name: "swImage as object kept as sent",
		edit: func(m map[string]any) {
			m["swImageDescriptor"].([]any)[0].(map[string]any)["swImage"] = map[string]any{"path": "Artifacts/edge-echo.sh", "x": 1}
		},
		check: func(t *testing.T, a *AppD) {
			r := a.SwImageDescriptor[0].SwImage
			if r.Ref != "" || r.Reference() != "Artifacts/edge-echo.sh" || r.Object["x"] != int64(1) {
				t.Errorf("swImage = %+v", r)
			}
			if got := string(toJSON(t, r)); got != `{"path":"Artifacts/edge-echo.sh","x":1}` {
				t.Errorf("marshalled as %s", got)
			}
		},
	}, {
		name: "swImage as string kept as sent",
		edit: func(m map[string]any) {},
		check: func(t *testing.T, a *AppD) {
			if got := string(toJSON(t, a.SwImageDescriptor[0].SwImage)); got != `"Artifacts/edge-echo.sh"` {
				t.Errorf("marshalled as %s", got)
			}
		},
	}, {
		name: "swImageDescriptor as a single object",
		edit: func(m map[string]any) { m["swImageDescriptor"] = m["swImageDescriptor"].([]any)[0] },
		check: func(t *testing.T, a *AppD) {
			if len(a.SwImageDescriptor) != 1 || a.SwImageDescriptor[0].ID != "edge-echo-image" {
				t.Errorf("swImageDescriptor = %+v", a.SwImageDescriptor)
			}
		},
	}, {
		name: "dstInterface as a v2 array, action with v2 name",
		edit: func(m map[string]any) {
			r := rule0(m)
			r["action"] = "DUPLICATED_DECAPSULATED"
			r["dstInterface"] = []any{
				map[string]any{"interfaceType": "IP", "dstIPAddress": "10.0.0.7"},
				map[string]any{"interfaceType": "TUNNEL", "tunnelInfo": map[string]any{"tunnelType": "GTP-U", "tunnelDstAddress": "192.0.2.1", "tunnelSrcAddress": "192.0.2.2"}},
			}
		},
		check: func(t *testing.T, a *AppD) {
			r := a.AppTrafficRule[0]
			if r.Action != ActionDuplicateDecapsulated || len(r.DstInterface) != 2 || r.DstInterface[1].TunnelInfo.TunnelType != TunnelGTPU {
				t.Errorf("rule = %+v", r)
			}
			if got := string(toJSON(t, r.DstInterface)); !strings.HasPrefix(got, "[") {
				t.Errorf("two interfaces marshalled as %s", got)
			}
		},
	}, {
		name: "legacy actions FORWARD_AS_IS and DUPLICATE_AS_IS",
		edit: func(m map[string]any) {
			r := rule0(m)
			r["action"] = "FORWARD_AS_IS"
			r2 := map[string]any{}
			for k, v := range r {
				r2[k] = v
			}
			r2["trafficRuleId"], r2["action"], r2["dstInterface"] = "r2", "DUPLICATE_AS_IS", nil
			m["appTrafficRule"] = append(m["appTrafficRule"].([]any), r2)
		},
		check: func(t *testing.T, a *AppD) {
			if a.AppTrafficRule[0].Action != ActionForwardEncapsulated || a.AppTrafficRule[1].Action != ActionDuplicateEncapsulated {
				t.Errorf("actions = %s, %s", a.AppTrafficRule[0].Action, a.AppTrafficRule[1].Action)
			}
		},
	}, {
		name: "transportsSupported as a single object",
		edit: func(m map[string]any) {
			m["appServiceProduced"].([]any)[0].(map[string]any)["transportsSupported"] = map[string]any{
				"transport":   map[string]any{"name": "rest", "type": "REST_HTTP", "protocol": "HTTP", "version": "1.1", "security": map[string]any{}},
				"serializers": []any{"JSON"},
			}
		},
		check: func(t *testing.T, a *AppD) {
			if ts := a.AppServiceProduced[0].TransportsSupported; len(ts) != 1 || ts[0].Transport.Type != "REST_HTTP" {
				t.Errorf("transportsSupported = %+v", ts)
			}
		},
	}, {
		name: "latency as value and time unit",
		edit: func(m map[string]any) { m["appLatency"] = map[string]any{"latency": 2.5, "timeUnit": "ms"} },
		check: func(t *testing.T, a *AppD) {
			if a.AppLatency.MaxLatency != 2_500_000 {
				t.Errorf("maxLatency = %d", a.AppLatency.MaxLatency)
			}
		},
	}, {
		name: "unknown fields are ignored",
		edit: func(m map[string]any) {
			m["appFutureThing"] = map[string]any{"a": []any{1, 2}}
			rule0(m)["newAttr"] = true
		},
		check: func(t *testing.T, a *AppD) {},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Parse(variant(t, tt.edit))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, a)
		})
	}
}

// YAML authors write versions unquoted; a plain YAML number or boolean is
// read as its text where the spec wants a string. JSON gets no leniency.
func TestParseYAMLPlainScalarsAsStrings(t *testing.T) {
	y := strings.Replace(string(sampleYAML(t)), `appDVersion: "1.0"`, "appDVersion: 1.0", 1)
	y = strings.Replace(y, `dstPort: ["7"]`, "dstPort: [7]", 1)
	a, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if a.AppDVersion != "1.0" || a.AppTrafficRule[0].TrafficFilter[0].DstPort[0] != "7" {
		t.Errorf("appDVersion = %q, dstPort = %q", a.AppDVersion, a.AppTrafficRule[0].TrafficFilter[0].DstPort)
	}
	_, err = Parse(variant(t, func(m map[string]any) { m["appDVersion"] = 1.5 }))
	wantOnly(t, fieldErrors(t, err), "appDVersion", "must be a string, not a number")
}

func TestParseYAMLFeatures(t *testing.T) {
	base := string(sampleYAML(t))
	t.Run("anchors and merge keys", func(t *testing.T) {
		y := base + `
appServiceRequired:
  - &rnis {serName: RNIS, version: "2.2.1"}
appServiceOptional:
  - <<: *rnis
    serName: LocationService
`
		a, err := Parse([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		if got := a.AppServiceOptional[0]; got.SerName != "LocationService" || got.Version != "2.2.1" {
			t.Errorf("merged = %+v", got)
		}
	})
	for name, tt := range map[string]struct{ doc, want string }{
		"second document":  {base + "---\nappName: x\n", "more than one document"},
		"self alias":       {"a: &x [*x]\n", ""},
		"billion laughs":   {laughs(), "more than"},
		"syntax error":     {"appName: [\n", "invalid YAML"},
		"JSON syntax":      {`{"appName": }`, "invalid JSON at line 1"},
		"JSON trailing":    {"{}\n{}", "after the top-level value"},
		"empty":            {"  \n", "empty document"},
		"not an object":    {"[1, 2]", "must be an object"},
		"comment only":     {"# nothing\n", ""},
		"deep nesting":     {strings.Repeat("[", 500) + strings.Repeat("]", 500), ""},
		"deep JSON object": {"{" + strings.Repeat(`"a":{`, 200) + strings.Repeat("}", 201), "deeper than"},
	} {
		t.Run(name, func(t *testing.T) {
			a, err := Parse([]byte(tt.doc))
			if err == nil || a != nil {
				t.Fatalf("want error, got %v", a)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func laughs() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func TestParseTypeErrorsHaveFullPaths(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(m map[string]any)
		path, want string
	}{
		{"string given a number", func(m map[string]any) { m["appDId"] = 3 }, "appDId", "must be a string, not a number"},
		{"uint32 overflow", func(m map[string]any) { m["appLatency"] = map[string]any{"maxLatency": 5_000_000_000} }, "appLatency.maxLatency", "out of range for uint32"},
		{"negative uint32", func(m map[string]any) { m["appLatency"] = map[string]any{"maxLatency": -1} }, "appLatency.maxLatency", "out of range"},
		{"integer given a fraction", func(m map[string]any) {
			m["virtualComputeDescriptor"].(map[string]any)["virtualCpu"] = map[string]any{"numVirtualCpu": 1.5}
		}, "virtualComputeDescriptor.virtualCpu.numVirtualCpu", "must be an integer"},
		{"indexed element", func(m map[string]any) {
			rule0(m)["trafficFilter"] = []any{map[string]any{"srcAddress": []any{"10.0.0.1", true}}}
		}, "appTrafficRule[0].trafficFilter[0].srcAddress[1]", "must be a string, not a boolean"},
		{"object given an array", func(m map[string]any) { m["appLatency"] = []any{} }, "appLatency", "must be an object, not an array"},
		{"array given a string", func(m map[string]any) { m["appDNSRule"] = "x" }, "appDNSRule", "must be an array, not a string"},
		{"swImage given a number", func(m map[string]any) {
			m["swImageDescriptor"].([]any)[0].(map[string]any)["swImage"] = 7
		}, "swImageDescriptor[0].swImage", "must be a string (a path in the package or a URL) or an object"},
		{"boolean given a string", func(m map[string]any) {
			m["userContextTransferCapability"] = map[string]any{"statefulApplication": "no"}
		}, "userContextTransferCapability.statefulApplication", "must be a boolean"},
		{"mecVersion given a number", func(m map[string]any) { m["mecVersion"] = 3 }, "mecVersion", "must be a string"},
		{"free-form key path", func(m map[string]any) {
			m["appExtCpd"].([]any)[0].(map[string]any)["inherited_attributes"] = 5
		}, "appExtCpd[0].inherited_attributes", "must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(variant(t, tt.edit))
			// The field that failed to decode is reported once, as a type
			// error, not again as missing.
			wantOnly(t, fieldErrors(t, err), tt.path, tt.want)
		})
	}
}

func TestParseNonFiniteYAMLNumber(t *testing.T) {
	y := strings.Replace(string(sampleYAML(t)), "virtualMemSize: 512", "virtualMemSize: .nan", 1)
	_, err := Parse([]byte(y))
	wantOnly(t, fieldErrors(t, err), "virtualComputeDescriptor.virtualMemory.virtualMemSize", "finite")
}

func TestParseDuplicateKeys(t *testing.T) {
	j := strings.Replace(string(toJSON(t, sampleMap(t))), `"appName":"edge-echo"`, `"appName":"edge-echo","appName":"other"`, 1)
	_, err := Parse([]byte(j))
	wantOnly(t, fieldErrors(t, err), "appName", "duplicate key")
	_, err = Parse([]byte(string(sampleYAML(t)) + "\nappName: again\n"))
	if err == nil {
		t.Fatal("YAML duplicate key accepted")
	}
}

func TestParseReportsAllErrorsTogether(t *testing.T) {
	doc := variant(t, func(m map[string]any) {
		delete(m, "appDId")
		m["appProvider"] = 42
		m["mecVersion"] = "3.1.1, 3.x"
		r := rule0(m)
		r["priority"] = 300
		r["trafficFilter"] = []any{map[string]any{"srcAddress": []any{"10.0.0.0/8", "10.0.0.1", "999.1.1.1"}, "dstPort": []any{"70000"}}}
		m["appDNSRule"].([]any)[0].(map[string]any)["ipAddress"] = "2001:db8::1"
		m["appLatency"] = map[string]any{"maxLatency": 0}
	})
	_, err := Parse(doc)
	errs := fieldErrors(t, err)
	want := map[string]string{
		"appProvider":                "must be a string",
		"appDId":                     "is required",
		"mecVersion[1]":              "not a version",
		"appLatency.maxLatency":      "greater than 0",
		"appTrafficRule[0].priority": "outside 0..255",
		"appTrafficRule[0].trafficFilter[0].srcAddress[2]": "not an IP address",
		"appTrafficRule[0].trafficFilter[0].dstPort[0]":    "not a port",
		"appDNSRule[0].ipAddress":                          "does not match ipAddressType IP_V4",
	}
	if len(errs) != len(want) {
		t.Errorf("got %d errors, want %d: %v", len(errs), len(want), errs)
	}
	for path, reason := range want {
		wantHas(t, errs, path, reason)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "8 invalid fields: ") || !strings.Contains(msg, "and 3 more") {
		t.Errorf("message = %q", msg)
	}
}

// Code that decodes parts of an AppD with encoding/json or yaml.v3 gets the
// same quirk handling as Parse.
func TestQuirkTypesWithStandardDecoders(t *testing.T) {
	var r TrafficRuleDescriptor
	if err := json.Unmarshal([]byte(`{"dstInterface": {"interfaceType": "IP", "dstIPAddress": "10.0.0.7"}}`), &r); err != nil || len(r.DstInterface) != 1 {
		t.Errorf("json dstInterface object: %v, %+v", err, r)
	}
	var s SwImageDescriptor
	if err := yaml.Unmarshal([]byte("swImage: {href: 'https://example.com/img'}"), &s); err != nil || s.SwImage.Reference() != "https://example.com/img" {
		t.Errorf("yaml swImage object: %v, %+v", err, s)
	}
	var v struct {
		MecVersion StringList `json:"mecVersion"`
	}
	if err := json.Unmarshal([]byte(`{"mecVersion": "2.2.1,3.1.1"}`), &v); err != nil || len(v.MecVersion) != 2 {
		t.Errorf("json mecVersion string: %v, %q", err, v.MecVersion)
	}
	var bad SwImageDescriptor
	err := json.Unmarshal([]byte(`{"swImage": 5}`), &bad)
	if err == nil || !strings.Contains(err.Error(), "must be a string (a path in the package or a URL) or an object") {
		t.Errorf("json swImage number: %v", err)
	}
}

func TestParseSkipsByteOrderMark(t *testing.T) {
	if _, err := Parse(append([]byte("\ufeff"), toJSON(t, sampleMap(t))...)); err != nil {
		t.Error(err)
	}
}

// The v3 OpenAPI file shows bodies wrapped in their type name.
func TestParseAcceptsAppDWrapper(t *testing.T) {
	a, err := Parse(toJSON(t, map[string]any{"AppD": sampleMap(t)}))
	if err != nil || a.AppName != "edge-echo" {
		t.Fatalf("wrapped AppD: %v", err)
	}
}
