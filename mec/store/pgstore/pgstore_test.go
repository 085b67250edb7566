package pgstore_test

import (
	"context"
	"os"
	"testing"

	"github.com/mecorch/mecorch/internal/pgtest"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/store/pgstore"
	"github.com/mecorch/mecorch/mec/store/storetest"
)

// pg is one throwaway cluster for the package's tests; each test gets its
// own database on it.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

func open(t testing.TB) (mec.Store, func(testing.TB) mec.Store) {
	dsn := pg.Database(t)
	reopen := func(t testing.TB) mec.Store {
		s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{})
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		return s
	}
	return reopen(t), reopen
}

func TestContract(t *testing.T) { storetest.Run(t, open) }

func BenchmarkUpdatePut(b *testing.B) {
	s, _ := open(b)
	defer s.Close()
	storetest.BenchmarkUpdatePut(b, s)
}

func BenchmarkUpdatePutParallel(b *testing.B) {
	s, _ := open(b)
	defer s.Close()
	storetest.BenchmarkUpdatePutParallel(b, s)
}
