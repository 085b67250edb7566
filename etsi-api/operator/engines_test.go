package operator

import (
	"context"
	"os"
	"testing"

	"github.com/mecorch/mecorch/internal/pgtest"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/store/boltstore"
	"github.com/mecorch/mecorch/mec/store/pgstore"
)

// pg is one throwaway Postgres cluster for the test binary; each test gets
// a database of its own on it.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// engines lists the store engines every API test runs against.
func engines(t *testing.T) []engine {
	return []engine{
		{"bolt", func(t *testing.T) mec.Store {
			st, err := boltstore.Open(t.TempDir(), boltstore.Options{})
			if err != nil {
				t.Fatalf("open bolt store: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}},
		{"postgres", func(t *testing.T) mec.Store {
			st, err := pgstore.Open(context.Background(), pg.Database(t), pgstore.Options{})
			if err != nil {
				t.Fatalf("open postgres store: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}},
	}
}
