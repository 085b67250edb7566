package inventory

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/mecorch/mecorch/internal/pgtest"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/store/boltstore"
	"github.com/mecorch/mecorch/mec/store/pgstore"
)

// pg is one throwaway Postgres cluster for the test binary; each test that
// uses it gets a database of its own.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// engines are the store engines; the tests whose outcome depends on how an
// engine isolates transactions (concurrency, read-check-write rules) run on
// every one.
func engines() []engine {
	return []engine{
		{"bolt", openBolt},
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

type engine struct {
	name string
	open func(t *testing.T) mec.Store
}

func openBolt(t *testing.T) mec.Store {
	st, err := boltstore.Open(t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatalf("open bolt store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// forEachEngine runs fn with an inventory over each engine.
func forEachEngine(t *testing.T, fn func(t *testing.T, inv *Service, st mec.Store)) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			st := e.open(t)
			fn(t, newService(t, st), st)
		})
	}
}

// testNow is the injected clock's time: every CreatedAt must be it.
var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// newTestService returns an inventory over a fresh embedded store, and the
// store, for tests that write what other services own (allocations,
// instances).
func newTestService(t *testing.T) (*Service, mec.Store) {
	t.Helper()
	st := openBolt(t)
	return newService(t, st), st
}

func newService(t *testing.T, st mec.Store) *Service {
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	return New(st, func() time.Time { return testNow }, log)
}

// statusOf is the problem status of err, 0 if err is not a problem.
func statusOf(err error) int {
	var p *mec.Problem
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}

// wantStatus fails unless err is a problem with status.
func wantStatus(t *testing.T, err error, status int) *mec.Problem {
	t.Helper()
	var p *mec.Problem
	if !errors.As(err, &p) {
		t.Fatalf("err = %v, want a problem with status %d", err, status)
	}
	if p.Status != status {
		t.Fatalf("status = %d (%s), want %d", p.Status, p.Detail, status)
	}
	return p
}
