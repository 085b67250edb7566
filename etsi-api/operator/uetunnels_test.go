package operator

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec/inventory"
	"github.com/mecorch/mecorch/mec/uetunnel"
)

// TestUETunnels: provisioning, replacing, listing (by address), reading and
// removing UE tunnels over HTTP, and the refusals with their field paths.
func TestUETunnels(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			st := e.open(t)
			log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			var changes atomic.Int32
			srv := httptest.NewServer(NewHandler(inventory.New(st, func() time.Time { return testNow }, log), log,
				WithUETunnels(uetunnel.New(st, log, func() { changes.Add(1) }))))
			t.Cleanup(srv.Close)
			a := &api{t: t, url: srv.URL, store: st}

			var list []uetunnel.Tunnel
			if a.do("GET", "/api/v1/ue_tunnels", nil).ok(http.StatusOK, &list); list == nil || len(list) != 0 {
				t.Fatalf("empty list %s", "is not []")
			}
			body := map[string]any{"gnbAddress": "10.1.1.2", "teid": 4294967295, "qfi": 9, "sourceAddress": "10.1.1.1"}
			var got uetunnel.Tunnel
			a.do("PUT", "/api/v1/ue_tunnels/10.45.0.9", body).ok(http.StatusCreated, &got).wantHeader("Location", "/api/v1/ue_tunnels/10.45.0.9")
			if got != (uetunnel.Tunnel{UEAddress: "10.45.0.9", GNBAddress: "10.1.1.2", TEID: 4294967295, QFI: 9, SourceAddress: "10.1.1.1"}) {
				t.Fatalf("created %+v", got)
			}
			// Read back and sent again (ueAddress included): replaced,
			// and nothing changed, so no one is told.
			a.do("PUT", "/api/v1/ue_tunnels/10.45.0.9", got).ok(http.StatusOK, &got)
			if changes.Load() != 1 {
				t.Fatalf("%d changes told after an identical PUT", changes.Load())
			}
			body["teid"] = 77
			a.do("PUT", "/api/v1/ue_tunnels/::ffff:10.45.0.9", body).ok(http.StatusOK, &got)
			if got.TEID != 77 || got.UEAddress != "10.45.0.9" || changes.Load() != 2 {
				t.Fatalf("replaced %+v (%d changes)", got, changes.Load())
			}
			a.do("PUT", "/api/v1/ue_tunnels/2001:DB8::5", body).ok(http.StatusCreated, nil).wantHeader("Location", "/api/v1/ue_tunnels/2001:db8::5")
			a.do("PUT", "/api/v1/ue_tunnels/10.45.0.10", body).ok(http.StatusCreated, nil)
			a.do("GET", "/api/v1/ue_tunnels", nil).ok(http.StatusOK, &list)
			if len(list) != 3 || list[0].UEAddress != "10.45.0.9" || list[1].UEAddress != "10.45.0.10" || list[2].UEAddress != "2001:db8::5" {
				t.Fatalf("list %+v", list)
			}
			a.do("GET", "/api/v1/ue_tunnels/2001:db8:0::5", nil).ok(http.StatusOK, &got)
			if got.UEAddress != "2001:db8::5" {
				t.Fatalf("get %+v", got)
			}

			// Refusals.
			params(t, a.do("PUT", "/api/v1/ue_tunnels/10.45.0.1", map[string]any{}).problem(http.StatusBadRequest),
				"gnbAddress", "sourceAddress", "teid", "qfi")
			params(t, a.do("PUT", "/api/v1/ue_tunnels/10.45.0.1", map[string]any{"gnbAddress": "2001:db8::1", "teid": -1, "qfi": 64,
				"sourceAddress": "224.0.0.1"}).problem(http.StatusBadRequest), "teid", "qfi", "gnbAddress", "sourceAddress")
			params(t, a.do("PUT", "/api/v1/ue_tunnels/10.45.0.1", map[string]any{"ueAddress": "10.45.0.2", "gnbAddress": "10.1.1.2", "teid": 1,
				"qfi": 1, "sourceAddress": "10.1.1.1"}).problem(http.StatusBadRequest), "ueAddress")
			params(t, a.do("PUT", "/api/v1/ue_tunnels/10.45.0.1", map[string]any{"gnbAddress": "10.1.1.2", "teid": 4294967296, "qfi": 1,
				"sourceAddress": "10.1.1.1"}).problem(http.StatusBadRequest), "teid")
			params(t, a.do("PUT", "/api/v1/ue_tunnels/10.45.0.1", `{"gnbAddress":"10.1.1.2","teid":1,"qfi":1,"sourceAddress":"10.1.1.1","ttl":5}`).
				problem(http.StatusBadRequest), "ttl")
			params(t, a.do("PUT", "/api/v1/ue_tunnels/10.45.0.1", `{"gnbAddress":10,"teid":1,"qfi":1,"sourceAddress":"10.1.1.1"}`).
				problem(http.StatusBadRequest), "gnbAddress")
			params(t, a.do("PUT", "/api/v1/ue_tunnels/not-an-ip", body).problem(http.StatusBadRequest), "ueAddress")
			params(t, a.do("PUT", "/api/v1/ue_tunnels/224.0.0.1", body).problem(http.StatusBadRequest), "ueAddress")
			params(t, a.do("GET", "/api/v1/ue_tunnels/fe80::1%25eth0", nil).problem(http.StatusBadRequest), "ueAddress")
			a.do("PUT", "/api/v1/ue_tunnels/10.45.0.1", body, "Content-Type", "text/plain").problem(http.StatusUnsupportedMediaType)
			a.do("POST", "/api/v1/ue_tunnels", body).problem(http.StatusMethodNotAllowed)

			a.do("DELETE", "/api/v1/ue_tunnels/10.45.0.9", nil).ok(http.StatusNoContent, nil)
			a.do("DELETE", "/api/v1/ue_tunnels/10.45.0.9", nil).problem(http.StatusNotFound)
			a.do("GET", "/api/v1/ue_tunnels/10.45.0.9", nil).problem(http.StatusNotFound)
			a.do("GET", "/api/v1/ue_tunnels", nil).ok(http.StatusOK, &list)
			if len(list) != 2 {
				t.Fatalf("after delete: %+v", list)
			}
		})
	}
}
