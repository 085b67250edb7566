package applcm

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

// TestConcurrentInstantiation: 40 instantiations race over HTTP for the room
// of 12 (three hosts with room for four each). Exactly 12 are accepted, the
// other 28 get a 409 ProblemDetails, and no host is ever promised more than
// it has: the store's serializable transactions make the placement and the
// reservation one step.
func TestConcurrentInstantiation(t *testing.T) {
	onEngines(t, func(t *testing.T, e *env) {
		e.addSite(mec.Site{ID: "s1", Name: "one", Zone: "z"})
		e.addSite(mec.Site{ID: "s2", Name: "two", Zone: "z"})
		e.addSite(mec.Site{ID: "s3", Name: "three", Zone: "z"})
		for i, s := range []string{"s1", "s2", "s3"} {
			e.addHost("host-"+string(rune('1'+i)), s, 4, nil)
		}
		const n = 40
		ids := make([]string, n)
		for i := range ids {
			ids[i] = e.createInstance("racer")
		}

		type result struct {
			resp *http.Response
			body []byte
			err  error
		}
		results := make([]result, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		client := e.srv.Client()
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				req, err := http.NewRequest("POST", e.srv.URL+Prefix+"/app_instances/"+ids[i]+"/instantiate", strings.NewReader("{}"))
				if err != nil {
					results[i].err = err
					return
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					results[i].err = err
					return
				}
				defer resp.Body.Close()
				results[i].resp = resp
				results[i].body, results[i].err = io.ReadAll(resp.Body)
			}()
		}
		close(start)
		wg.Wait()

		accepted, refused := 0, 0
		for i, res := range results {
			if res.err != nil {
				t.Fatalf("request %d: %v", i, res.err)
			}
			r := response{Response: res.resp, body: res.body}
			checkSpec(t, e.spec, r)
			switch res.resp.StatusCode {
			case http.StatusAccepted:
				accepted++
			case http.StatusConflict:
				refused++
			default:
				t.Errorf("request %d: status %d\n%s", i, res.resp.StatusCode, res.body)
			}
		}
		if accepted != 12 || refused != n-12 {
			t.Errorf("%d accepted and %d refused, want 12 and %d", accepted, refused, n-12)
		}

		// Read back what the store holds: each host's allocation is the sum
		// of the reservations of its instances and within its capacity.
		var hosts []mec.Host
		var insts []mec.AppInstance
		err := e.store.View(context.Background(), func(tx mec.Tx) error {
			var err error
			if hosts, err = mec.LoadAll[mec.Host](tx, mec.KindHost); err != nil {
				return err
			}
			insts, err = mec.LoadAll[mec.AppInstance](tx, mec.KindAppInstance)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		held := map[string]mec.Resources{}
		placed := 0
		for _, in := range insts {
			if in.HostID != "" {
				held[in.HostID] = held[in.HostID].Add(in.Reserved)
				placed++
			}
		}
		if placed != 12 {
			t.Errorf("%d instances hold a reservation, want 12", placed)
		}
		for _, h := range hosts {
			if !h.Capacity.Fits(h.Allocated) {
				t.Errorf("host %s: allocated %+v exceeds capacity %+v", h.ID, h.Allocated, h.Capacity)
			}
			if h.Allocated != held[h.ID] {
				t.Errorf("host %s: allocated %+v, but its instances hold %+v", h.ID, h.Allocated, held[h.ID])
			}
			if h.Allocated.MilliCPU != 4*e.need.MilliCPU {
				t.Errorf("host %s holds %d mCPU, want it full (%d)", h.ID, h.Allocated.MilliCPU, 4*e.need.MilliCPU)
			}
		}
	})
}
