package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

// benchDoc is the size of a typical site document.
var benchDoc = []byte(`{"id":"site-000","name":"Tower 17 rooftop","zone":"paris-north","countryCode":"FR","latitude":48.8566,"longitude":2.3522,"createdAt":"2026-01-02T03:04:05Z"}`)

// BenchmarkUpdatePut measures one durable write: an Update holding one
// Put of a new small document, committed (and synced) before the next.
func BenchmarkUpdatePut(b *testing.B, s mec.Store) {
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("bench-%09d", i)
		err := s.Update(ctx, func(tx mec.Tx) error {
			_, err := tx.Put(mec.KindSite, id, benchDoc, mec.MustNotExist)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdatePutParallel is BenchmarkUpdatePut from 8×GOMAXPROCS
// goroutines on distinct documents: how far an engine lets independent
// writers share the cost of a durable commit. Writers wait on the disk,
// not the CPU, hence more of them than processors, as an API server has.
func BenchmarkUpdatePutParallel(b *testing.B, s mec.Store) {
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("bench-%09d", next.Add(1))
			err := s.Update(ctx, func(tx mec.Tx) error {
				_, err := tx.Put(mec.KindSite, id, benchDoc, mec.MustNotExist)
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
