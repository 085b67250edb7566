// Package enginetest runs a test over a fresh store of each engine: the
// embedded one (bbolt) and PostgreSQL (a database of the test binary's
// shared throwaway cluster, internal/pgtest).
package enginetest

import (
	"context"
	"testing"

	"github.com/mecorch/mecorch/internal/pgtest"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/store/boltstore"
	"github.com/mecorch/mecorch/mec/store/pgstore"
)

// Each runs fn as the subtests "bolt" and "postgres", each with a fresh
// store closed at the subtest's end. pg is the package's shared cluster
// (its TestMain runs pg.Main).
func Each(t *testing.T, pg *pgtest.Shared, fn func(t *testing.T, st mec.Store)) {
	t.Run("bolt", func(t *testing.T) {
		st, err := boltstore.Open(t.TempDir(), boltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		fn(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		st, err := pgstore.Open(context.Background(), pg.Database(t), pgstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		fn(t, st)
	})
}
