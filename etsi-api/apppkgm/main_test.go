package apppkgm

import (
	"context"
	"os"
	"testing"

	"github.com/mecorch/mecorch/internal/pgtest"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/store/pgstore"
)

// pg is one throwaway Postgres cluster for the package's tests, each test
// getting a database of its own on it (initdb takes seconds).
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// engines are the store engines every test runs on. Without PostgreSQL
// installed the postgres subtests skip, or fail under CI=true (pgtest).
func engines() []engine {
	return []engine{boltEngine(), {name: "postgres", open: func(t *testing.T) mec.Store {
		s, err := pgstore.Open(context.Background(), pg.Database(t), pgstore.Options{})
		if err != nil {
			t.Fatalf("open postgres store: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}}}
}
