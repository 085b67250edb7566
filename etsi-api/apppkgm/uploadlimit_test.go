package apppkgm

import (
	"io"
	"net/http"
	"testing"
	"time"
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
			// A failing check below must not leave the first upload
			// hanging, and the server's close with it.
			defer pw.CloseWithError(io.ErrUnexpectedEOF)
			req, _ := http.NewRequest("PUT", e.srv.URL+Prefix+"/onboarded_app_packages/"+first.ID+"/package_content", pr)
			req.Header.Set("Content-Type", "application/zip")
			// With Expect: 100-continue the client sends no body byte
			// before the handler starts reading it, which it does only
			// once it holds the upload slot: the first write below
			// returns only then, however slow the machine.
			req.Header.Set("Expect", "100-continue")
			client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
			defer client.CloseIdleConnections()
			done := make(chan *http.Response, 1)
			go func() {
				resp, err := client.Do(req)
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
