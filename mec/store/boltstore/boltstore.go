// Package boltstore is mecorch's embedded store: one bbolt file in a
// directory, for a single box where installing Postgres is not worth it.
//
// Documents live in one bucket per kind (under a top-level "documents"
// bucket, so that no kind name can collide with the "blobs" bucket); each
// value is the version as 8 bytes big-endian followed by the document.
// bbolt runs one writer at a time, so an Update never conflicts with another
// and fn runs exactly once; every commit is fsynced before Update returns.
package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mecorch/mecorch/mec"
)

// FileName is the database file inside the store's directory.
const FileName = "mecorch.db"

var (
	bucketDocs  = []byte("documents")
	bucketBlobs = []byte("blobs")
)

// Options tune the embedded store; the zero value is what production uses.
type Options struct {
	// LockTimeout is how long Open waits for the file lock another process
	// holds before it gives up (default 2s). bbolt's own default is to wait
	// forever, which turns a second mecorch on the same directory into a
	// silent hang.
	LockTimeout time.Duration
	// InitialMmapSize is the address space mapped at open (default 1 GiB).
	// bbolt must remap to grow the file and cannot while a View is open, so
	// a writer would wait for every reader; mapping ahead (virtual memory
	// only, the file still grows on demand) avoids that until the file
	// outgrows it.
	InitialMmapSize int
}

func (o Options) withDefaults() Options {
	if o.LockTimeout <= 0 {
		o.LockTimeout = 2 * time.Second
	}
	if o.InitialMmapSize <= 0 {
		o.InitialMmapSize = 1 << 30
	}
	return o
}

// Store is the embedded mec.Store.
type Store struct {
	db   *bolt.DB
	path string
}

var _ mec.Store = (*Store)(nil)

// Open opens (creating if needed) the store in dir. It fails with a clear
// error, rather than waiting, when another process has the store open.
func Open(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	// 0700/0600: the store holds OAuth client secrets.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create store directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         opts.LockTimeout,
		InitialMmapSize: opts.InitialMmapSize,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("store %s is in use by another process (waited %s for its lock): %w", path, opts.LockTimeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(btx *bolt.Tx) error {
		for _, name := range [][]byte{bucketDocs, bucketBlobs} {
			if _, err := btx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("initialise store %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// View runs fn in a read-only bbolt transaction: a consistent snapshot that
// does not block writers.
func (s *Store) View(ctx context.Context, fn func(mec.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("view: %w", err)
	}
	return s.db.View(func(btx *bolt.Tx) error {
		return fn(&tx{btx: btx})
	})
}

// Update runs fn in a read-write bbolt transaction. Writers are serialised,
// so fn runs once and never meets a concurrent change: an ErrConflict out
// of Update is one that fn itself met, from a stale ifVersion the caller
// brought from an earlier transaction, and running fn again would not cure
// it. The commit is fsynced before Update returns.
func (s *Store) Update(ctx context.Context, fn func(mec.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return s.db.Update(func(btx *bolt.Tx) error {
		// The wait for the writer lock may have outlasted the caller.
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("update: %w", err)
		}
		return fn(&tx{btx: btx})
	})
}

// Close releases the file and its lock. Closing twice is harmless.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}
