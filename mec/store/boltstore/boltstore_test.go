package boltstore_test

import (
	"testing"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/store/boltstore"
	"github.com/mecorch/mecorch/mec/store/storetest"
)

func open(t testing.TB) (mec.Store, func(testing.TB) mec.Store) {
	dir := t.TempDir()
	reopen := func(t testing.TB) mec.Store {
		s, err := boltstore.Open(dir, boltstore.Options{})
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
