package lifecycle_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/lifecycle"
)

// An instance and its operations carry the owner they were created for;
// OwnPackageOnly finds only that owner's packages, as if no other existed.
func TestOwnership(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	create := func(owner string, ownOnly bool) (mec.AppInstance, error) {
		return f.lc.Create(ctx, lifecycle.CreateRequest{AppDID: "app-1", Owner: owner, OwnPackageOnly: ownOnly})
	}

	// pkg-1 has no owner: only an unrestricted caller may use it.
	if _, err := create("alice", true); !isStatus(err, http.StatusUnprocessableEntity) {
		t.Fatalf("alice, restricted, on a package with no owner: %v, want 422", err)
	}
	f.update(func(tx mec.Tx) error {
		p, v, err := mec.Load[mec.AppPackage](tx, mec.KindAppPackage, "pkg-1")
		if err != nil {
			return err
		}
		p.Owner = "alice"
		_, err = mec.Save(tx, mec.KindAppPackage, p.ID, p, v)
		return err
	})
	if _, err := create("bob", true); !isStatus(err, http.StatusUnprocessableEntity) {
		t.Fatalf("bob, restricted, on alice's package: %v, want 422", err)
	}
	in, err := create("alice", true)
	if err != nil || in.Owner != "alice" {
		t.Fatalf("alice on her package: %+v, %v", in, err)
	}
	if op, err := f.lc.Instantiate(ctx, in.ID, lifecycle.InstantiateRequest{}); err != nil || op.Owner != "alice" {
		t.Fatalf("instantiate: operation %+v, %v; want it owned by alice", op, err)
	}
	if got, err := create("noc", false); err != nil || got.Owner != "noc" {
		t.Fatalf("an unrestricted caller on alice's package: %+v, %v", got, err)
	}
}

func isStatus(err error, status int) bool {
	var p *mec.Problem
	return errors.As(err, &p) && p.Status == status
}
