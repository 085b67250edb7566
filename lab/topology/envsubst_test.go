package topology

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	env := map[string]string{"LAB": "edge", "IMG": "img:1", "B": "bee"}
	look := func(k string) string { return env[k] }
	tests := []struct{ in, want, warn string }{
		{"name: ${LAB}", "name: edge", ""},
		{"name: $LAB-x", "name: edge-x", ""},
		{"name: ${NOPE:=dflt}", "name: dflt", ""},
		{"name: ${NOPE:-dflt}", "name: dflt", ""},
		{"name: ${LAB:=dflt}", "name: edge", ""},
		{"x: ${NOPE:=${B}-c}", "x: bee-c", ""},
		{"x: ${NOPE:=}", "x: ", ""},
		{"x: ${NOPE}", "x: ${NOPE}", "${NOPE} is not set"},
		{"x: $NOPE and $1 and ${1} and $$LAB and 5$", "x: $NOPE and $1 and ${1} and $LAB and 5$", ""},
		{"a: ${LAB}\nb: ${IMG}\n", "a: edge\nb: img:1\n", ""},
	}
	for _, tc := range tests {
		out, problems, warnings := render([]byte(tc.in), look)
		if len(problems) > 0 || string(out) != tc.want {
			t.Errorf("render(%q) = %q %v, want %q", tc.in, out, problems, tc.want)
		}
		if tc.warn == "" && len(warnings) > 0 || tc.warn != "" && (len(warnings) != 1 || !strings.Contains(warnings[0].Msg, tc.warn)) {
			t.Errorf("render(%q) warnings %v, want %q", tc.in, warnings, tc.warn)
		}
	}
}

func TestParseExpandsEnvironment(t *testing.T) {
	src := `name: ${LAB:=lab}
topology:
  nodes:
    a:
      kind: linux
      image: ${IMG}
      cmd: run --peer ${PEER}
  links:
    - endpoints: [a:eth1, a:eth2]
      vars: {delay: "${DELAY:=3ms}"}
`
	env := map[string]string{"IMG": "img:2", "DELAY": "7ms"}
	top, err := Parse("e.clab.yml", []byte(src), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	a := top.Node("a")
	if top.Name != "lab" || a.Image != "img:2" || a.Cmd != "run --peer ${PEER}" || top.Links[0].AtoB.Delay.String() != "7ms" {
		t.Errorf("got name %q image %q cmd %q delay %s", top.Name, a.Image, a.Cmd, top.Links[0].AtoB.Delay)
	}
	if w := top.WarningText(); len(w) != 1 || !strings.HasPrefix(w[0], "e.clab.yml:7:23: ${PEER} is not set") {
		t.Errorf("warnings %q", w)
	}
	// With nothing set, the defaults apply.
	top, err = Parse("e.clab.yml", []byte(strings.Replace(src, "${IMG}", "x", 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if top.Links[0].AtoB.Delay.String() != "3ms" {
		t.Errorf("delay %s", top.Links[0].AtoB.Delay)
	}
}
