package pgstore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/store/pgstore"
)

// Replicas starting together on an empty database must not race to create
// the schema: one applies it, the others find it done.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := pg.Database(t)
	const replicas = 8
	stores := make([]*pgstore.Store, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { stores[i], errs[i] = pgstore.Open(context.Background(), dsn, pgstore.Options{}) })
	}
	wg.Wait()
	appliers := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		defer stores[i].Close()
		if len(stores[i].Migrated()) > 0 {
			appliers++
		}
	}
	if appliers != 1 {
		t.Errorf("%d replicas applied migrations, want 1", appliers)
	}
	var rows, distinct int
	err := stores[0].DB().QueryRow(`SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&rows, &distinct)
	if err != nil || rows != distinct || rows == 0 {
		t.Errorf("schema_migrations: %d rows, %d versions, %v", rows, distinct, err)
	}
	// Reopening applies nothing.
	s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m := s.Migrated(); len(m) != 0 {
		t.Errorf("reopen applied %v", m)
	}
}

// Documents are jsonb so that operators can query them.
func TestDocumentsQueryableAsJSON(t *testing.T) {
	s, err := pgstore.Open(context.Background(), pg.Database(t), pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Update(context.Background(), func(tx mec.Tx) error {
		_, err := tx.Put(mec.KindAppInstance, "i1", []byte(`{"hostId":"h7","reserved":{"milliCpu":250}}`), mec.MustNotExist)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var host string
	var cpu int
	err = s.DB().QueryRow(`SELECT doc->>'hostId', (doc->'reserved'->>'milliCpu')::int FROM documents
		WHERE kind = 'app_instance' AND id = 'i1'`).Scan(&host, &cpu)
	if err != nil || host != "h7" || cpu != 250 {
		t.Errorf("query by JSON field: %q %d %v", host, cpu, err)
	}
}

// With one attempt allowed, a transaction overtaken by a concurrent commit
// surfaces as ErrConflict instead of being run again.
func TestConflictAfterMaxAttempts(t *testing.T) {
	dsn := pg.Database(t)
	s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	put := func(tx mec.Tx, ifVersion int64) error {
		_, err := tx.Put(mec.KindSite, "c", []byte(`{}`), ifVersion)
		return err
	}
	if err := s.Update(ctx, func(tx mec.Tx) error { return put(tx, mec.MustNotExist) }); err != nil {
		t.Fatal(err)
	}
	runs := 0
	err = s.Update(ctx, func(tx mec.Tx) error {
		runs++
		rec, err := tx.Get(mec.KindSite, "c")
		if err != nil {
			return err
		}
		if err := s.Update(ctx, func(tx mec.Tx) error { return put(tx, rec.Version) }); err != nil {
			t.Fatalf("overtaking Update: %v", err)
		}
		return put(tx, rec.Version)
	})
	if !errors.Is(err, mec.ErrConflict) || runs != 1 {
		t.Errorf("Update: %v after %d runs; want ErrConflict after 1", err, runs)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := pgstore.Open(ctx, pg.Database(t), pgstore.Options{}); err == nil {
		t.Error("Open with a cancelled context succeeded")
	}
	_, err := pgstore.Open(context.Background(), "postgres://u:s3cret@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", pgstore.Options{})
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error leaks the password: %v", err)
	}
}
