package appd

import (
	"encoding/json"
	"io/fs"
	"testing"
)

// FuzzParse: Parse never panics, and whatever it accepts is valid and
// survives a trip through json.Marshal.
func FuzzParse(f *testing.F) {
	y := sampleYAML(f)
	f.Add(y)
	f.Add(toJSON(f, sampleMap(f)))
	for _, s := range []string{
		"", "{", "[]", "null", "appDId: &a [*a]", laughsSeed(),
		`{"appDId": 1, "mecVersion": "3.1.1,", "appLatency": {"maxLatency": 1e99}}`,
		"appLatency: {latency: 1, timeUnit: ms}\n",
		"swImageDescriptor: {id: x, swImage: {path: a}}\n",
		"a: !!binary aGVsbG8=\nb: 2001-12-14\nc: .inf\n<<: {d: 1}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse(data)
		if err != nil {
			if a != nil {
				t.Fatal("error with a result")
			}
			return
		}
		if a == nil {
			t.Fatal("nil AppD without error")
		}
		if errs := a.Validate(); errs != nil {
			t.Fatalf("accepted an invalid AppD: %v", errs)
		}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if _, err := Parse(b); err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		a.ComputeNeeds()
	})
}

// FuzzReadPackage: ReadPackage never panics, and a package it accepts has
// a valid AppD and a readable file list.
func FuzzReadPackage(f *testing.F) {
	f.Add(readFile(f, sampleZipPath))
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))
	f.Add([]byte("not a zip"))
	f.Add([]byte{})
	f.Add(sampleEntries(f, zipEntry{name: "Artifacts/../../x"}))
	f.Add(sampleEntries(f, zipEntry{name: "Artifacts/link", body: []byte("/etc"), mode: fs.ModeSymlink | 0o777}))
	f.Add(sampleEntries(f, zipEntry{name: "Artifacts/edge-echo.sh", body: []byte("again")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxEntries: 50, MaxInflated: 4 << 20, MaxFileSize: 2 << 20, MaxDescriptorSize: 1 << 20}
		p, err := ReadPackage(data, lim)
		if err != nil {
			if p != nil {
				t.Fatal("error with a result")
			}
			return
		}
		if p == nil || p.AppD == nil {
			t.Fatal("nil package or AppD without error")
		}
		if errs := p.AppD.Validate(); errs != nil {
			t.Fatalf("accepted an invalid AppD: %v", errs)
		}
		for _, file := range p.Files {
			if _, err := p.Open(file.Path); err != nil {
				t.Fatalf("Open(%s): %v", file.Path, err)
			}
		}
	})
}

func laughsSeed() string { return laughs() }
