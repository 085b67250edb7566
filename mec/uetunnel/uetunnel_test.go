package uetunnel

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/mecorch/mecorch/internal/enginetest"
	"github.com/mecorch/mecorch/internal/pgtest"
	"github.com/mecorch/mecorch/mec"
)

var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// forEachEngine runs fn over a fresh store of each engine.
func forEachEngine(t *testing.T, fn func(t *testing.T, st mec.Store)) { enginetest.Each(t, &pg, fn) }

func status(err error) int {
	var p *mec.Problem
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}

func TestProvisioning(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st mec.Store) {
		ctx := context.Background()
		var changes atomic.Int32
		s := New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), func() { changes.Add(1) })
		rev := func() int64 {
			var r int64
			if err := st.View(ctx, func(tx mec.Tx) error { var err error; r, err = Revision(tx); return err }); err != nil {
				t.Fatal(err)
			}
			return r
		}
		if rev() != 0 {
			t.Fatal("revision before any tunnel")
		}

		tun := Tunnel{UEAddress: "::ffff:10.45.0.9", GNBAddress: "10.1.1.2", TEID: 0x1234, QFI: 9, SourceAddress: "10.1.1.1"}
		got, created, err := s.Put(ctx, tun)
		if err != nil || !created || got.UEAddress != "10.45.0.9" {
			t.Fatalf("create: %+v %v %v", got, created, err)
		}
		// The same values again: nothing written, nobody told.
		if _, created, err = s.Put(ctx, got); err != nil || created || rev() != 1 || changes.Load() != 1 {
			t.Fatalf("same again: created %v err %v rev %d changes %d", created, err, rev(), changes.Load())
		}
		got.TEID = 0x9999
		if _, created, err = s.Put(ctx, got); err != nil || created || rev() != 2 || changes.Load() != 2 {
			t.Fatalf("replace: created %v err %v rev %d", created, err, rev())
		}
		for _, ue := range []string{"2001:db8::7", "10.45.0.10", "10.45.0.8"} {
			if _, _, err := s.Put(ctx, Tunnel{UEAddress: ue, GNBAddress: "10.1.1.2", TEID: 1, SourceAddress: "10.1.1.1"}); err != nil {
				t.Fatal(err)
			}
		}
		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, l := range list {
			order = append(order, l.UEAddress)
		}
		if want := []string{"10.45.0.8", "10.45.0.9", "10.45.0.10", "2001:db8::7"}; !slices.Equal(order, want) {
			t.Fatalf("order %v, want %v", order, want)
		}
		if g, err := s.Get(ctx, "::ffff:10.45.0.9"); err != nil || g.TEID != 0x9999 {
			t.Fatalf("get: %+v %v", g, err)
		}
		if err := s.Delete(ctx, "10.45.0.9"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "10.45.0.9"); status(err) != http.StatusNotFound {
			t.Fatalf("delete again: %v", err)
		}
		if _, err := s.Get(ctx, "10.45.0.9"); status(err) != http.StatusNotFound {
			t.Fatalf("get deleted: %v", err)
		}
		if _, err := s.Get(ctx, "not-an-address"); status(err) != http.StatusBadRequest {
			t.Fatalf("get bad address: %v", err)
		}
		var tab Table
		_ = st.View(ctx, func(tx mec.Tx) error { tab, _, _ = mec.Load[Table](tx, mec.KindUETunnelTable, tableID); return nil })
		if tab.Count != 3 || tab.Revision != 6 {
			t.Fatalf("table %+v", tab)
		}
	})
}

func TestValidate(t *testing.T) {
	ok := Tunnel{UEAddress: "10.45.0.9", GNBAddress: "10.1.1.2", TEID: 7, QFI: 63, SourceAddress: "10.1.1.1"}
	if _, bad := Validate(ok); bad != nil {
		t.Fatalf("valid: %v", bad)
	}
	tests := []struct {
		name  string
		edit  func(*Tunnel)
		field string
	}{
		{"UE address zone", func(t *Tunnel) { t.UEAddress = "fe80::1%eth0" }, "ueAddress"},
		{"UE address multicast", func(t *Tunnel) { t.UEAddress = "224.0.0.1" }, "ueAddress"},
		{"UE address unspecified", func(t *Tunnel) { t.UEAddress = "::" }, "ueAddress"},
		{"gNB IPv6", func(t *Tunnel) { t.GNBAddress = "2001:db8::1" }, "gnbAddress"},
		{"gNB missing", func(t *Tunnel) { t.GNBAddress = "" }, "gnbAddress"},
		{"gNB broadcast", func(t *Tunnel) { t.GNBAddress = "255.255.255.255" }, "gnbAddress"},
		{"source multicast", func(t *Tunnel) { t.SourceAddress = "239.1.1.1" }, "sourceAddress"},
		{"QFI 64", func(t *Tunnel) { t.QFI = 64 }, "qfi"},
		{"QFI negative", func(t *Tunnel) { t.QFI = -1 }, "qfi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tun := ok
			tt.edit(&tun)
			_, bad := Validate(tun)
			if len(bad) != 1 || bad[0].Name != tt.field {
				t.Fatalf("problems %v, want one on %s", bad, tt.field)
			}
		})
	}
}

// TestCap: the table holds at most MaxTunnels; replacing one at the cap is
// still allowed.
func TestCap(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st mec.Store) {
		ctx := context.Background()
		s := New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		if _, _, err := s.Put(ctx, Tunnel{UEAddress: "10.0.0.1", GNBAddress: "10.1.1.2", SourceAddress: "10.1.1.1"}); err != nil {
			t.Fatal(err)
		}
		// Filling 65536 documents would only slow the test: the count
		// is what the cap reads.
		if err := st.Update(ctx, func(tx mec.Tx) error {
			_, err := mec.Save(tx, mec.KindUETunnelTable, tableID, Table{Count: MaxTunnels, Revision: 1}, mec.AnyVersion)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.Put(ctx, Tunnel{UEAddress: "10.0.0.2", GNBAddress: "10.1.1.2", SourceAddress: "10.1.1.1"})
		if status(err) != http.StatusConflict {
			t.Fatalf("over the cap: %v", err)
		}
		if _, _, err := s.Put(ctx, Tunnel{UEAddress: "10.0.0.1", GNBAddress: "10.1.1.3", SourceAddress: "10.1.1.1"}); err != nil {
			t.Fatalf("replace at the cap: %v", err)
		}
	})
}
