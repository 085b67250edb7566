package catalog_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/catalog"
)

// TestPreconditionIsCheckedInTheChange plays the If-Match races: a client
// reads the package, something changes it (or its instances) and the
// client's conditional change must then answer 412, leaving the package as
// it is, on both store engines.
func TestPreconditionIsCheckedInTheChange(t *testing.T) {
	for name, open := range engines() {
		t.Run(name, func(t *testing.T) {
			c, st, sk, zip, sum := setupOn(t, open(t))
			ctx := context.Background()
			p, err := c.Create(ctx, catalog.CreateRequest{PkgName: "echo", PkgVersion: "1", Checksum: mec.Checksum{Algorithm: "SHA-256", Hash: sum}})
			if err != nil {
				t.Fatal(err)
			}
			if p, err = c.Upload(ctx, p.ID, zip, "application/zip"); err != nil {
				t.Fatal(err)
			}
			version := func() int64 {
				t.Helper()
				var v int64
				err := st.View(ctx, func(tx mec.Tx) error {
					rec, err := tx.Get(mec.KindAppPackage, p.ID)
					v = rec.Version
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			want412 := func(what string, err error) {
				t.Helper()
				if pr := problemOf(t, err); pr.Status != http.StatusPreconditionFailed || pr.Detail == "" {
					t.Fatalf("%s: %+v, want 412 with a detail", what, pr)
				}
				// A store retries a transaction that failed with ErrConflict;
				// a stale precondition must not be one.
				if errors.Is(err, mec.ErrConflict) {
					t.Fatalf("%s: %v wraps ErrConflict", what, err)
				}
			}
			read := catalog.Precondition{Version: version(), Usage: mec.PkgNotInUse}

			// Someone else disables and re-enables the package after the
			// client read it: the version moved on.
			if _, err := c.SetOperationalState(ctx, p.ID, mec.PkgDisabled, read); err != nil {
				t.Fatal(err)
			}
			if _, err := c.SetOperationalState(ctx, p.ID, mec.PkgEnabled, catalog.Unconditional()); err != nil {
				t.Fatal(err)
			}
			_, err = c.SetOperationalState(ctx, p.ID, mec.PkgDisabled, read)
			want412("disable at a stale version", err)
			want412("delete at a stale version", c.Delete(ctx, p.AppDID, read))
			_, err = c.SetOperationalState(ctx, p.ID, mec.PkgDisabled, catalog.Precondition{})
			want412("the zero precondition", err)
			if got, err := c.Get(ctx, p.ID); err != nil || got.OperationalState != mec.PkgEnabled {
				t.Fatalf("after refused changes: %s %v, want ENABLED", got.OperationalState, err)
			}

			// An instance appears after the client read the package: the
			// document's version is the same, its usage state is not, and
			// the delete answers 412 (the client's view is stale) rather
			// than 409.
			read = catalog.Precondition{Version: version(), Usage: mec.PkgNotInUse}
			err = st.Update(ctx, func(tx mec.Tx) error {
				_, err := mec.Save(tx, mec.KindAppInstance, "i1", mec.AppInstance{ID: "i1", AppPkgID: p.ID}, mec.MustNotExist)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if read.Version != version() {
				t.Fatalf("an instance changed the package document's version")
			}
			want412("delete of a package that became IN_USE", c.Delete(ctx, p.ID, read))
			_, err = c.SetOperationalState(ctx, p.ID, mec.PkgDisabled, read)
			want412("disable of a package that became IN_USE", err)
			// With the usage the client now sees, the change is judged on
			// its merits: an IN_USE package cannot go.
			inUse := catalog.Precondition{Version: read.Version, Usage: mec.PkgInUse}
			if err := c.Delete(ctx, p.ID, inUse); problemOf(t, err).Status != http.StatusConflict {
				t.Fatalf("delete in use, precondition met: %v, want 409", err)
			}

			err = st.Update(ctx, func(tx mec.Tx) error { return tx.Delete(mec.KindAppInstance, "i1", mec.AnyVersion) })
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Delete(ctx, p.ID, read); err != nil {
				t.Fatalf("delete with a current precondition: %v", err)
			}
			if _, err := c.Get(ctx, p.ID); problemOf(t, err).Status != http.StatusNotFound {
				t.Fatalf("get after delete: %v", err)
			}
			want := []mec.EventType{mec.EventPkgOnboarded, mec.EventPkgDisabled, mec.EventPkgEnabled, mec.EventPkgDeleted}
			if len(sk.types) != len(want) {
				t.Fatalf("events %v, want %v: a refused change published", sk.types, want)
			}
			for i := range want {
				if sk.types[i] != want[i] {
					t.Fatalf("events %v, want %v", sk.types, want)
				}
			}
		})
	}
}
