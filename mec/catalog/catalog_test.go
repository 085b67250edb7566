package catalog_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/mecorch/mecorch/internal/pgtest"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/catalog"
	"github.com/mecorch/mecorch/mec/store/boltstore"
	"github.com/mecorch/mecorch/mec/store/pgstore"
)

// pg is one throwaway Postgres cluster for the package's tests, started by
// the first test that asks for a database.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// engines open a fresh store of each kind. Without PostgreSQL installed
// the postgres subtests skip, or fail under CI=true (pgtest).
func engines() map[string]func(t *testing.T) mec.Store {
	return map[string]func(t *testing.T) mec.Store{
		"embedded": func(t *testing.T) mec.Store {
			st, err := boltstore.Open(t.TempDir(), boltstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		},
		"postgres": func(t *testing.T) mec.Store {
			st, err := pgstore.Open(context.Background(), pg.Database(t), pgstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		},
	}
}

type sink struct{ types []mec.EventType }

func (s *sink) Publish(ev mec.Event) { s.types = append(s.types, ev.Type) }

// setup returns a catalogue over the embedded store, the sample package
// and its SHA-256.
func setup(t *testing.T) (*catalog.Service, mec.Store, *sink, []byte, string) {
	t.Helper()
	return setupOn(t, engines()["embedded"](t))
}

func setupOn(t *testing.T, st mec.Store) (*catalog.Service, mec.Store, *sink, []byte, string) {
	t.Helper()
	zip, err := os.ReadFile("../../examples/edge-echo.zip")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(zip)
	sk := &sink{}
	clock := func() time.Time { return time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC) }
	return catalog.New(st, sk, clock, slog.New(slog.NewTextHandler(io.Discard, nil)), catalog.DefaultOptions()), st, sk, zip, hex.EncodeToString(sum[:])
}

func problemOf(t *testing.T, err error) *mec.Problem {
	t.Helper()
	var p *mec.Problem
	if !errors.As(err, &p) {
		t.Fatalf("error %v is not a problem", err)
	}
	return p
}

func TestCreateValidatesEveryField(t *testing.T) {
	c, _, _, _, _ := setup(t)
	_, err := c.Create(context.Background(), catalog.CreateRequest{Checksum: mec.Checksum{Algorithm: "MD5", Hash: "zz"}})
	p := problemOf(t, err)
	got := map[string]bool{}
	for _, ip := range p.InvalidParams {
		got[ip.Name] = true
	}
	for _, want := range []string{"appPkgName", "appPkgVersion", "checksum.algorithm", "checksum.hash"} {
		if !got[want] {
			t.Errorf("missing invalid param %q in %+v", want, p.InvalidParams)
		}
	}
	if p.Status != http.StatusBadRequest {
		t.Errorf("status %d", p.Status)
	}
}

func TestOnboardLifecycle(t *testing.T) {
	c, _, sk, zip, sum := setup(t)
	ctx := context.Background()
	p, err := c.Create(ctx, catalog.CreateRequest{PkgName: "echo", PkgVersion: "1", Checksum: mec.Checksum{Algorithm: "SHA-256", Hash: sum}})
	if err != nil {
		t.Fatal(err)
	}
	// A wrong checksum is refused, and the package stays CREATED with the reason.
	bad := append([]byte(nil), zip...)
	bad[len(bad)/2] ^= 0xff
	_, err = c.Upload(ctx, p.ID, bad, "application/zip")
	if pr := problemOf(t, err); pr.Status != http.StatusUnprocessableEntity || pr.InvalidParams[0].Name != "checksum" {
		t.Fatalf("bad checksum: %+v", pr)
	}
	got, _ := c.Get(ctx, p.ID)
	if got.OnboardingState != mec.PkgCreated || got.OnboardingFailure == nil {
		t.Fatalf("after refused upload: %s %+v", got.OnboardingState, got.OnboardingFailure)
	}
	on, err := c.Upload(ctx, p.ID, zip, "application/zip")
	if err != nil {
		t.Fatal(err)
	}
	if on.OnboardingState != mec.PkgOnboarded || on.OperationalState != mec.PkgEnabled || on.AppDID == "" || len(on.AppD) == 0 {
		t.Fatalf("onboarded package: %+v", on)
	}
	// The appDId resolves too, and a second upload is refused.
	if byAppD, err := c.Get(ctx, on.AppDID); err != nil || byAppD.ID != p.ID {
		t.Fatalf("get by appDId: %v %v", byAppD.ID, err)
	}
	if _, err := c.Upload(ctx, p.ID, zip, "application/zip"); problemOf(t, err).Status != http.StatusConflict {
		t.Fatalf("second upload: %v", err)
	}
	// Another package with the same appDId cannot be onboarded.
	p2, _ := c.Create(ctx, catalog.CreateRequest{PkgName: "echo", PkgVersion: "2", Checksum: mec.Checksum{Algorithm: "SHA-256", Hash: sum}})
	if _, err := c.Upload(ctx, p2.ID, zip, "application/zip"); problemOf(t, err).Status != http.StatusConflict {
		t.Fatalf("duplicate appDId: %v", err)
	}
	if _, data, err := c.Content(ctx, p.ID); err != nil || len(data) != len(zip) {
		t.Fatalf("content: %d bytes, %v", len(data), err)
	}
	if _, err := c.SetOperationalState(ctx, p.ID, mec.PkgDisabled, catalog.Unconditional()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetOperationalState(ctx, p.ID, mec.PkgDisabled, catalog.Unconditional()); problemOf(t, err).Status != http.StatusConflict {
		t.Fatalf("disable twice: %v", err)
	}
	if err := c.Delete(ctx, p.ID, catalog.Unconditional()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, p.ID); problemOf(t, err).Status != http.StatusNotFound {
		t.Fatalf("get after delete: %v", err)
	}
	want := []mec.EventType{mec.EventPkgOnboarded, mec.EventPkgDisabled, mec.EventPkgDeleted}
	if len(sk.types) != len(want) {
		t.Fatalf("events %v, want %v", sk.types, want)
	}
	for i := range want {
		if sk.types[i] != want[i] {
			t.Fatalf("events %v, want %v", sk.types, want)
		}
	}
}

func TestDeleteInUseAndRecover(t *testing.T) {
	c, st, _, zip, sum := setup(t)
	ctx := context.Background()
	p, _ := c.Create(ctx, catalog.CreateRequest{PkgName: "echo", PkgVersion: "1", Checksum: mec.Checksum{Algorithm: "SHA-256", Hash: sum}})
	if _, err := c.Upload(ctx, p.ID, zip, "application/zip"); err != nil {
		t.Fatal(err)
	}
	err := st.Update(ctx, func(tx mec.Tx) error {
		_, err := mec.Save(tx, mec.KindAppInstance, "i1", mec.AppInstance{ID: "i1", AppPkgID: p.ID}, mec.MustNotExist)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := c.UsageState(ctx, p.ID); u != mec.PkgInUse {
		t.Fatalf("usage %s", u)
	}
	if err := c.Delete(ctx, p.ID, catalog.Unconditional()); problemOf(t, err).Status != http.StatusConflict {
		t.Fatalf("delete in use: %v", err)
	}
	// A package left PROCESSING by a crash is reset by Recover.
	stuck, _ := c.Create(ctx, catalog.CreateRequest{PkgName: "x", PkgVersion: "1", Checksum: mec.Checksum{Algorithm: "SHA-256", Hash: sum}})
	err = st.Update(ctx, func(tx mec.Tx) error {
		stuck.OnboardingState = mec.PkgProcessing
		_, err := mec.Save(tx, mec.KindAppPackage, stuck.ID, stuck, mec.AnyVersion)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Recover(ctx, time.Hour); err != nil || n != 1 { // no ProcessingSince: always stale
		t.Fatalf("recover: %d %v", n, err)
	}
	got, _ := c.Get(ctx, stuck.ID)
	if got.OnboardingState != mec.PkgCreated || got.OnboardingFailure == nil {
		t.Fatalf("recovered package: %+v", got)
	}
	// One being checked right now (by another replica) is left alone
	// until it is older than the bound.
	since := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC) // the test clock
	err = st.Update(ctx, func(tx mec.Tx) error {
		stuck.OnboardingState, stuck.ProcessingSince = mec.PkgProcessing, &since
		_, err := mec.Save(tx, mec.KindAppPackage, stuck.ID, stuck, mec.AnyVersion)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Recover(ctx, time.Minute); err != nil || n != 0 {
		t.Fatalf("recover of a fresh upload: %d %v", n, err)
	}
	if n, err := c.Recover(ctx, 0); err != nil || n != 1 {
		t.Fatalf("recover with no bound: %d %v", n, err)
	}
}
