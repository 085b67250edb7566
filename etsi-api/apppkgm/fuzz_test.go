package apppkgm

import (
	"errors"
	"net/http"
	"testing"

	"github.com/mecorch/mecorch/etsi-api/problem"
)

// FuzzDecodeCreateAppPkg feeds arbitrary bodies to the CreateAppPkg
// decoder: it must not panic, and every refusal must be a 400
// ProblemDetails whose invalidParams, if any, are named.
func FuzzDecodeCreateAppPkg(f *testing.F) {
	for _, seed := range []string{
		`{"appPkgName":"a","appPkgVersion":"1","checksum":{"algorithm":"SHA-256","hash":"00"}}`,
		`{"appPkgName":7,"checksum":{"algorithm":[],"hash":null},"userDefinedData":"x","appPkgPath":"::"}`,
		`{}`, `[]`, `null`, `"x"`, `{"a":`, `{} {}`, `{"checksum":{"checksum":{}}}`,
		`{"appPkgName":"\u0000","appPkgVersion":"` + "\xff" + `","checksum":{"algorithm":"SHA-512","hash":"zz"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeCreateAppPkg(body)
		if err == nil {
			if req.PkgName == "" || req.PkgVersion == "" || req.Checksum.Algorithm == "" || req.Checksum.Hash == "" {
				t.Fatalf("accepted %q without a required field: %+v", body, req)
			}
			return
		}
		var pe *problem.Error
		if !errors.As(err, &pe) || pe.Status != http.StatusBadRequest || pe.Detail == "" {
			t.Fatalf("%q: error %T %v is not a 400 problem", body, err, err)
		}
		for _, ip := range pe.InvalidParams {
			if ip.Name == "" || ip.Reason == "" {
				t.Fatalf("%q: unnamed invalid param %+v", body, ip)
			}
		}
	})
}
