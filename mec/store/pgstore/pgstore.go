// Package pgstore is the mec.Store on PostgreSQL, for deployments where
// several mecorch replicas share one database (or where operators want
// SQL on the state).
//
// Documents are rows of one table keyed by (kind, id), with the document
// as jsonb; blobs are bytea rows of another. The schema is embedded and
// migrated at Open. Update runs fn in a SERIALIZABLE transaction and, when
// Postgres reports a serialization failure or a deadlock, runs it again:
// the database, not the caller, detects that two read-modify-writes
// overlapped.
package pgstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/lib/pq"

	"github.com/mecorch/mecorch/mec"
)

// Options tune the Postgres store; the zero value is sensible.
type Options struct {
	// MaxOpenConns bounds the connections to the server (default 16).
	// Each concurrent Update or View holds one for its duration.
	MaxOpenConns int
	// MaxIdleConns is how many stay open between uses (default
	// MaxOpenConns: reconnecting costs more than an idle connection).
	MaxIdleConns int
	// ConnMaxLifetime recycles connections (default 30 min), so that a
	// failover or a pooler rebalancing is picked up.
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes connections idle that long (default 5 min).
	ConnMaxIdleTime time.Duration
	// MaxAttempts is how many times Update runs fn before it gives up on
	// conflicts with an error wrapping mec.ErrConflict (default 20).
	MaxAttempts int
}

func (o Options) withDefaults() Options {
	if o.MaxOpenConns <= 0 {
		o.MaxOpenConns = 16
	}
	if o.MaxIdleConns <= 0 || o.MaxIdleConns > o.MaxOpenConns {
		o.MaxIdleConns = o.MaxOpenConns
	}
	if o.ConnMaxLifetime <= 0 {
		o.ConnMaxLifetime = 30 * time.Minute
	}
	if o.ConnMaxIdleTime <= 0 {
		o.ConnMaxIdleTime = 5 * time.Minute
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 20
	}
	return o
}

// Store is the Postgres mec.Store.
type Store struct {
	db          *sql.DB
	maxAttempts int
	migrated    []string
}

var _ mec.Store = (*Store)(nil)

// Open connects to the database at dsn (a postgres:// URL or key=value
// string, as lib/pq takes) and applies the pending schema migrations.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	conn, err := pq.NewConnector(dsn)
	if err != nil {
		// lib/pq's errors here do not echo the DSN, which may hold a
		// password; neither does this.
		return nil, fmt.Errorf("postgres store: parse DSN: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(opts.MaxOpenConns)
	db.SetMaxIdleConns(opts.MaxIdleConns)
	db.SetConnMaxLifetime(opts.ConnMaxLifetime)
	db.SetConnMaxIdleTime(opts.ConnMaxIdleTime)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("postgres store: connect: %w", err)
	}
	applied, err := migrate(ctx, db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("postgres store: migrate schema: %w", err)
	}
	return &Store{db: db, maxAttempts: opts.MaxAttempts, migrated: applied}, nil
}

// Migrated lists the migrations this Open applied (empty when the schema
// was already current), for the caller to log.
func (s *Store) Migrated() []string { return s.migrated }

// DB is the connection pool, for what the store interface does not cover
// (LISTEN/NOTIFY, leases, health checks).
func (s *Store) DB() *sql.DB { return s.db }

// View runs fn in a READ ONLY REPEATABLE READ transaction: one snapshot,
// taken at its first statement, and no locks that hold writers up.
func (s *Store) View(ctx context.Context, fn func(mec.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("view: %w", err)
	}
	return s.run(ctx, true, fn)
}

// Update runs fn in a SERIALIZABLE transaction. When Postgres aborts it for
// a serialization failure (40001) or a deadlock (40P01), whether in one of
// fn's statements or at commit, fn runs again in a new transaction after a
// short jittered pause; after MaxAttempts runs Update returns an error
// wrapping mec.ErrConflict. Any other error of fn is returned as is and
// nothing is written.
func (s *Store) Update(ctx context.Context, fn func(mec.Tx) error) error {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("update: %w", err)
		}
		err := s.run(ctx, false, fn)
		if !retryable(err) {
			return err
		}
		if attempt >= s.maxAttempts {
			return fmt.Errorf("update: %d attempts conflicted with concurrent transactions: %w (last: %w)",
				attempt, mec.ErrConflict, err)
		}
		if err := pause(ctx, attempt); err != nil {
			return fmt.Errorf("update: %w", err)
		}
	}
}

// run runs fn once in a transaction and commits it if fn succeeds.
func (s *Store) run(ctx context.Context, readOnly bool, fn func(mec.Tx) error) error {
	level := sql.LevelSerializable
	if readOnly {
		level = sql.LevelRepeatableRead
	}
	stx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: level, ReadOnly: readOnly})
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	committed := false
	defer func() {
		// Also when fn panics: the connection goes back to the pool
		// clean instead of stuck in an open transaction.
		if !committed {
			_ = stx.Rollback()
		}
	}()
	t := &tx{ctx: ctx, stx: stx, readOnly: readOnly}
	fnErr := fn(t)
	// A statement that failed aborted the transaction. A serialization
	// failure is reported as such, whatever fn made of it, so that Update
	// runs fn again.
	if retryable(t.failed) {
		return t.failed
	}
	if fnErr != nil {
		return fnErr
	}
	if t.failed != nil {
		// Committing would silently roll back; say why instead.
		return fmt.Errorf("transaction aborted by an earlier error that fn ignored: %w", t.failed)
	}
	if readOnly {
		return nil // nothing to commit; the deferred rollback ends it
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	committed = true
	return nil
}

// retryable reports a failure that running the transaction again can cure.
func retryable(err error) bool {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", // serialization_failure
		"40P01": // deadlock_detected
		return true
	}
	return false
}

// pause sleeps before attempt+1: full jitter over an exponentially growing
// window (1 ms, 2 ms, ... capped at 64 ms), so that transactions that
// collided once do not collide again in lockstep.
func pause(ctx context.Context, attempt int) error {
	window := time.Millisecond << min(attempt-1, 6)
	d := time.Duration(rand.Int64N(int64(window))) + 100*time.Microsecond
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the connection pool. Closing twice is harmless.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close postgres store: %w", err)
	}
	return nil
}
