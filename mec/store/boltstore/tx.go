package boltstore

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/store/internal/rules"
)

// tx adapts a bbolt transaction to mec.Tx. Slices bbolt returns are valid
// only until the transaction ends, so everything handed out is copied.
type tx struct {
	btx *bolt.Tx
}

var _ mec.Tx = (*tx)(nil)

// kindBucket returns the bucket of kind, creating it when create is set; nil
// when it does not exist (nothing of that kind was ever written).
func (t *tx) kindBucket(kind mec.Kind, create bool) (*bolt.Bucket, error) {
	docs := t.btx.Bucket(bucketDocs)
	if docs == nil {
		return nil, fmt.Errorf("store is missing its %s bucket", bucketDocs)
	}
	if !create {
		return docs.Bucket([]byte(kind)), nil
	}
	b, err := docs.CreateBucketIfNotExists([]byte(kind))
	if err != nil {
		return nil, fmt.Errorf("create bucket for %s: %w", kind, err)
	}
	return b, nil
}

func (t *tx) Get(kind mec.Kind, id string) (mec.Record, error) {
	if err := rules.CheckKey(kind, id); err != nil {
		return mec.Record{}, err
	}
	b, err := t.kindBucket(kind, false)
	if err != nil {
		return mec.Record{}, err
	}
	if b == nil {
		return mec.Record{}, rules.NotFound(kind, id)
	}
	v := b.Get([]byte(id))
	if v == nil {
		return mec.Record{}, rules.NotFound(kind, id)
	}
	return decode(kind, []byte(id), v)
}

func (t *tx) List(kind mec.Kind) ([]mec.Record, error) {
	if err := rules.CheckKind(kind); err != nil {
		return nil, err
	}
	b, err := t.kindBucket(kind, false)
	if err != nil || b == nil {
		return nil, err
	}
	var out []mec.Record
	// bbolt keys are sorted bytewise, which is the order the contract asks
	// for (Postgres matches it with COLLATE "C").
	err = b.ForEach(func(k, v []byte) error {
		rec, err := decode(kind, k, v)
		if err != nil {
			return err
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *tx) Put(kind mec.Kind, id string, doc []byte, ifVersion int64) (int64, error) {
	if err := t.writable(); err != nil {
		return 0, err
	}
	if err := rules.CheckKey(kind, id); err != nil {
		return 0, err
	}
	if err := rules.CheckPutVersion(ifVersion); err != nil {
		return 0, fmt.Errorf("put %s %q: %w", kind, id, err)
	}
	if err := rules.CheckDoc(kind, id, doc); err != nil {
		return 0, err
	}
	b, err := t.kindBucket(kind, true)
	if err != nil {
		return 0, err
	}
	have, err := version(kind, id, b.Get([]byte(id)))
	if err != nil {
		return 0, err
	}
	switch {
	case ifVersion == mec.MustNotExist && have != 0:
		return 0, rules.Exists(kind, id)
	case ifVersion > 0 && have != ifVersion:
		return 0, rules.Conflict(kind, id, ifVersion, have)
	}
	next := have + 1
	// A fresh slice: bbolt keeps a reference until commit, and the
	// caller's doc may be reused before then.
	v := make([]byte, 8+len(doc))
	binary.BigEndian.PutUint64(v, uint64(next))
	copy(v[8:], doc)
	if err := b.Put([]byte(id), v); err != nil {
		return 0, fmt.Errorf("put %s %q: %w", kind, id, err)
	}
	return next, nil
}

func (t *tx) Delete(kind mec.Kind, id string, ifVersion int64) error {
	if err := t.writable(); err != nil {
		return err
	}
	if err := rules.CheckKey(kind, id); err != nil {
		return err
	}
	if err := rules.CheckDeleteVersion(ifVersion); err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, id, err)
	}
	b, err := t.kindBucket(kind, false)
	if err != nil {
		return err
	}
	if b == nil {
		return rules.NotFound(kind, id)
	}
	have, err := version(kind, id, b.Get([]byte(id)))
	if err != nil {
		return err
	}
	switch {
	case have == 0:
		return rules.NotFound(kind, id)
	case ifVersion > 0 && have != ifVersion:
		return rules.Conflict(kind, id, ifVersion, have)
	}
	if err := b.Delete([]byte(id)); err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, id, err)
	}
	return nil
}

func (t *tx) PutBlob(id string, data []byte) error {
	if err := t.writable(); err != nil {
		return err
	}
	if err := rules.CheckBlobID(id); err != nil {
		return err
	}
	// Copied for the same reason as documents: bbolt reads it at commit.
	v := make([]byte, len(data))
	copy(v, data)
	if err := t.btx.Bucket(bucketBlobs).Put([]byte(id), v); err != nil {
		return fmt.Errorf("put blob %q (%d bytes): %w", id, len(data), err)
	}
	return nil
}

func (t *tx) GetBlob(id string) ([]byte, error) {
	if err := rules.CheckBlobID(id); err != nil {
		return nil, err
	}
	v := t.btx.Bucket(bucketBlobs).Get([]byte(id))
	if v == nil {
		return nil, rules.BlobNotFound(id)
	}
	out := make([]byte, len(v))
	copy(out, v)
	return out, nil
}

func (t *tx) DeleteBlob(id string) error {
	if err := t.writable(); err != nil {
		return err
	}
	if err := rules.CheckBlobID(id); err != nil {
		return err
	}
	if err := t.btx.Bucket(bucketBlobs).Delete([]byte(id)); err != nil {
		return fmt.Errorf("delete blob %q: %w", id, err)
	}
	return nil
}

// writable turns bbolt's "tx not writable" into the error both engines
// return for a write inside View.
func (t *tx) writable() error {
	if !t.btx.Writable() {
		return rules.ErrReadOnly
	}
	return nil
}

// version returns the version stored in v, 0 when v is nil (no document).
func version(kind mec.Kind, id string, v []byte) (int64, error) {
	if v == nil {
		return 0, nil
	}
	if len(v) < 8 {
		return 0, fmt.Errorf("%s %q: stored value is %d bytes, shorter than its version header", kind, id, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

func decode(kind mec.Kind, k, v []byte) (mec.Record, error) {
	ver, err := version(kind, string(k), v)
	if err != nil {
		return mec.Record{}, err
	}
	doc := make([]byte, len(v)-8)
	copy(doc, v[8:])
	return mec.Record{ID: string(k), Version: ver, Doc: doc}, nil
}
