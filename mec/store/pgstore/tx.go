package pgstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/store/internal/rules"
)

// tx adapts a database/sql transaction to mec.Tx.
//
// Postgres aborts a transaction at its first failed statement, so the
// outcomes the contract expects (a document missing, already there, at
// another version) are reached without a failing statement: ON CONFLICT DO
// NOTHING, UPDATE ... WHERE version = $n, RETURNING, and a look at the
// current version only to explain a mismatch. A statement that does fail
// is remembered in failed, so that later calls and Update know.
type tx struct {
	ctx      context.Context
	stx      *sql.Tx
	readOnly bool
	failed   error
}

var _ mec.Tx = (*tx)(nil)

// check records err if it is the failure of a statement.
func (t *tx) check(err error) error {
	if err != nil && !errors.Is(err, sql.ErrNoRows) && t.failed == nil {
		t.failed = err
	}
	return err
}

// usable refuses work in a transaction Postgres has already aborted.
func (t *tx) usable() error {
	if t.failed != nil {
		return fmt.Errorf("transaction already failed: %w", t.failed)
	}
	return nil
}

func (t *tx) writable() error {
	if t.readOnly {
		return rules.ErrReadOnly
	}
	return t.usable()
}

func (t *tx) Get(kind mec.Kind, id string) (mec.Record, error) {
	if err := rules.CheckKey(kind, id); err != nil {
		return mec.Record{}, err
	}
	if err := t.usable(); err != nil {
		return mec.Record{}, err
	}
	rec := mec.Record{ID: id}
	err := t.check(t.stx.QueryRowContext(t.ctx,
		`SELECT version, doc FROM documents WHERE kind = $1 AND id = $2`, kind, id).Scan(&rec.Version, &rec.Doc))
	if errors.Is(err, sql.ErrNoRows) {
		return mec.Record{}, rules.NotFound(kind, id)
	}
	if err != nil {
		return mec.Record{}, fmt.Errorf("get %s %q: %w", kind, id, err)
	}
	return rec, nil
}

func (t *tx) List(kind mec.Kind) ([]mec.Record, error) {
	if err := rules.CheckKind(kind); err != nil {
		return nil, err
	}
	if err := t.usable(); err != nil {
		return nil, err
	}
	rows, err := t.stx.QueryContext(t.ctx,
		`SELECT id, version, doc FROM documents WHERE kind = $1 ORDER BY id`, kind)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, t.check(err))
	}
	defer rows.Close()
	var out []mec.Record
	for rows.Next() {
		var rec mec.Record
		if err := rows.Scan(&rec.ID, &rec.Version, &rec.Doc); err != nil {
			return nil, fmt.Errorf("list %s: %w", kind, t.check(err))
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, t.check(err))
	}
	return out, nil
}

func (t *tx) Put(kind mec.Kind, id string, doc []byte, ifVersion int64) (int64, error) {
	if err := rules.CheckKey(kind, id); err != nil {
		return 0, err
	}
	if err := rules.CheckPutVersion(ifVersion); err != nil {
		return 0, fmt.Errorf("put %s %q: %w", kind, id, err)
	}
	if err := rules.CheckDoc(kind, id, doc); err != nil {
		return 0, err
	}
	if err := t.writable(); err != nil {
		return 0, err
	}
	var q string
	args := []any{kind, id, doc}
	switch {
	case ifVersion == mec.AnyVersion:
		q = `INSERT INTO documents (kind, id, version, doc) VALUES ($1, $2, 1, $3)
			ON CONFLICT (kind, id) DO UPDATE
			SET version = documents.version + 1, doc = EXCLUDED.doc, updated_at = now()
			RETURNING version`
	case ifVersion == mec.MustNotExist:
		q = `INSERT INTO documents (kind, id, version, doc) VALUES ($1, $2, 1, $3)
			ON CONFLICT (kind, id) DO NOTHING
			RETURNING version`
	default:
		q = `UPDATE documents SET version = version + 1, doc = $3, updated_at = now()
			WHERE kind = $1 AND id = $2 AND version = $4
			RETURNING version`
		args = append(args, ifVersion)
	}
	var v int64
	err := t.check(t.stx.QueryRowContext(t.ctx, q, args...).Scan(&v))
	switch {
	case err == nil:
		return v, nil
	case !errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("put %s %q: %w", kind, id, err)
	case ifVersion == mec.MustNotExist:
		return 0, rules.Exists(kind, id)
	}
	have, err := t.currentVersion(kind, id)
	if err != nil {
		return 0, err
	}
	return 0, rules.Conflict(kind, id, ifVersion, have)
}

func (t *tx) Delete(kind mec.Kind, id string, ifVersion int64) error {
	if err := rules.CheckKey(kind, id); err != nil {
		return err
	}
	if err := rules.CheckDeleteVersion(ifVersion); err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, id, err)
	}
	if err := t.writable(); err != nil {
		return err
	}
	var v int64
	var err error
	if ifVersion == mec.AnyVersion {
		err = t.stx.QueryRowContext(t.ctx,
			`DELETE FROM documents WHERE kind = $1 AND id = $2 RETURNING version`, kind, id).Scan(&v)
	} else {
		err = t.stx.QueryRowContext(t.ctx,
			`DELETE FROM documents WHERE kind = $1 AND id = $2 AND version = $3 RETURNING version`,
			kind, id, ifVersion).Scan(&v)
	}
	switch err = t.check(err); {
	case err == nil:
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("delete %s %q: %w", kind, id, err)
	}
	have, err := t.currentVersion(kind, id)
	switch {
	case err != nil:
		return err
	case have == 0:
		return rules.NotFound(kind, id)
	}
	return rules.Conflict(kind, id, ifVersion, have)
}

// currentVersion returns the version of a document, 0 when there is none.
// It runs only after a write matched no row, to say why.
func (t *tx) currentVersion(kind mec.Kind, id string) (int64, error) {
	var have int64
	err := t.check(t.stx.QueryRowContext(t.ctx,
		`SELECT version FROM documents WHERE kind = $1 AND id = $2`, kind, id).Scan(&have))
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%s %q: read version after a mismatch: %w", kind, id, err)
	}
	return have, nil
}

func (t *tx) PutBlob(id string, data []byte) error {
	if err := rules.CheckBlobID(id); err != nil {
		return err
	}
	if err := t.writable(); err != nil {
		return err
	}
	if data == nil {
		data = []byte{} // lib/pq sends nil as NULL
	}
	_, err := t.stx.ExecContext(t.ctx,
		`INSERT INTO blobs (id, data) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, updated_at = now()`, id, data)
	if err != nil {
		return fmt.Errorf("put blob %q (%d bytes): %w", id, len(data), t.check(err))
	}
	return nil
}

func (t *tx) GetBlob(id string) ([]byte, error) {
	if err := rules.CheckBlobID(id); err != nil {
		return nil, err
	}
	if err := t.usable(); err != nil {
		return nil, err
	}
	var data []byte
	err := t.check(t.stx.QueryRowContext(t.ctx, `SELECT data FROM blobs WHERE id = $1`, id).Scan(&data))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, rules.BlobNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("get blob %q: %w", id, err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

func (t *tx) DeleteBlob(id string) error {
	if err := rules.CheckBlobID(id); err != nil {
		return err
	}
	if err := t.writable(); err != nil {
		return err
	}
	if _, err := t.stx.ExecContext(t.ctx, `DELETE FROM blobs WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete blob %q: %w", id, t.check(err))
	}
	return nil
}
