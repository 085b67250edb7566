package apppkgm

import (
	"io"
	"net/http"
	"testing"
)

// TestConcurrentUploadsBounded: while the one upload slot is taken by a
// client still sending its body, a second upload is refused at once with
// 503 and Retry-After, and is taken once the first is done.
func TestConcurrentUploadsBounded(t *testing.T) {
	for _, eng := range engines() {
		t.Run(eng.name, func(t *testing.T) {
			e := newEnv(t, eng, Config{MaxConcurrentUploads: 1})
			data, hash := samplePkg(t)
			first, second := e.createPkg(hash), e.createPkg(hash)

			pr, pw := io.Pipe()
			req, _ := http.NewRequest("PUT", e.srv.URL+Prefix+"/onboarded_app_packages/"+first.ID+"/package_content", pr)
			req.Header.Set("Content-Type", "application/zip")
			done := make(chan *http.Response, 1)
			go func() {
				resp, err := e.srv.Client().Do(req)
				if err != nil {
					t.Error(err)
					done <- nil
					return
				}
				done <- resp
			}()
			// Once the first bytes are taken, the handler holds the slot.
			if _, err := pw.Write(data[:10]); err != nil {
				t.Fatal(err)
			}
			r := e.upload(second.ID, data)
			p := e.wantProblem(r, http.StatusServiceUnavailable)
			if r.Header.Get("Retry-After") == "" || p.Detail == "" {
				t.Fatalf("busy upload: Retry-After %q, problem %+v", r.Header.Get("Retry-After"), p)
			}
			if _, err := pw.Write(data[10:]); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			if resp := <-done; resp == nil || resp.StatusCode != http.StatusAccepted {
				t.Fatalf("first upload: %v", resp)
			} else {
				resp.Body.Close()
			}
			// The slot is free again: the second upload is taken and
			// checked (and refused for its appDId, now onboarded by the
			// first, not for being busy).
			p = e.wantProblem(e.upload(second.ID, data), http.StatusConflict)
			if len(p.InvalidParams) == 0 || p.InvalidParams[0].Name != "appD.appDId" {
				t.Fatalf("second upload after the first: %+v", p)
			}
		})
	}
}
