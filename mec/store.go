package mec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Store keeps mecorch's state durably. Two engines implement it (Postgres
// and the embedded default, under mec/store) and pass one contract suite
// (mec/store/storetest).
//
// The store holds documents by kind and ID, each with a version that grows by
// one on every write, plus opaque blobs (package content). All domain rules
// live above it, written once, in transactions: a reservation and the
// instance that holds it are put in one Update and land together or not at
// all.
type Store interface {
	// View runs fn in a read-only transaction that sees one consistent
	// snapshot.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a serializable read-write transaction. If fn returns
	// an error nothing is written and Update returns that error. When the
	// transaction conflicts with a concurrent one, Update runs fn again (fn
	// must therefore have no effects outside tx); after too many conflicts it
	// returns an error wrapping ErrConflict. An ErrConflict that fn itself
	// returns (a stale ifVersion, e.g. from an HTTP If-Match) is not
	// retried. fn must not call the store: on the embedded engine a nested
	// Update deadlocks.
	Update(ctx context.Context, fn func(Tx) error) error
	// Close releases the store.
	Close() error
}

// Kind names a collection of documents.
type Kind string

// The kinds the domain keeps.
const (
	KindSite         Kind = "site"
	KindHost         Kind = "host"
	KindCell         Kind = "cell"
	KindAppPackage   Kind = "app_package"
	KindAppInstance  Kind = "app_instance"
	KindLcmOpOcc     Kind = "lcm_op_occ"
	KindSubscription Kind = "subscription"
	KindClient       Kind = "oauth_client"
	// KindSpreadGroup counts, per spread key, the placed instances on each
	// site, so that a placement need not read every instance.
	KindSpreadGroup Kind = "spread_group"
	// KindHostLiveness keeps what every agent report refreshes (the last
	// heartbeat), apart from the host document, so that heartbeats neither
	// conflict with placements that read every host nor change the host's
	// ETag under an operator's If-Match.
	KindHostLiveness Kind = "host_liveness"
	// KindHostInstances indexes the instances placed on each host, so that
	// a host's desired state and reports read only its own instances.
	KindHostInstances Kind = "host_instances"
	// KindHostTombstone remembers the last desired generation of a deleted
	// host, so that a host registered again under its ID continues from
	// there and its agent never takes new work for old.
	KindHostTombstone Kind = "host_tombstone"
	// KindAlarm keeps alarms (mec.Alarm). An active alarm is stored under
	// a key derived from its managed object and probable cause, so that
	// raising and clearing find it without a scan; a cleared one is
	// kept under its own ID until it is pruned.
	KindAlarm Kind = "alarm"
	// KindUEContext keeps each UE's serving cell (mec/uectx).
	KindUEContext Kind = "ue_context"
	// KindUETunnel keeps the UE downlink tunnels the operator provisioned
	// (mec/uetunnel), by UE address.
	KindUETunnel Kind = "ue_tunnel"
	// KindUETunnelTable is one document ("all") counting the UE tunnels and
	// their changes, so that the cap and the hosts' data-plane digests
	// need not read every tunnel.
	KindUETunnelTable Kind = "ue_tunnel_table"
	// KindHostDataPlane keeps, per host, the data-plane part of its
	// desired state that depends on other hosts (the remote instances it
	// steers to) as last sent, and a digest of all of it (remote
	// instances, tunnel peers, UE tunnels), so that a change elsewhere
	// bumps the host's generation only when its own part changed.
	KindHostDataPlane Kind = "host_dataplane"
)

// AnyVersion, when passed as ifVersion, writes whatever the current version;
// MustNotExist creates only.
const (
	AnyVersion   int64 = -1
	MustNotExist int64 = 0
)

// Record is one stored document.
type Record struct {
	ID      string
	Version int64 // 1 on creation, +1 per write
	Doc     []byte
}

// Tx is a transaction on a Store.
type Tx interface {
	// Get returns the document, or an error wrapping ErrNotFound.
	Get(kind Kind, id string) (Record, error)
	// List returns every document of kind ordered by ID.
	List(kind Kind) ([]Record, error)
	// Put writes doc and returns its new version. ifVersion is AnyVersion,
	// MustNotExist, or the version the caller read; a mismatch returns an
	// error wrapping ErrConflict (or ErrExists for MustNotExist).
	Put(kind Kind, id string, doc []byte, ifVersion int64) (int64, error)
	// Delete removes a document; ifVersion as for Put. Deleting what is not
	// there returns an error wrapping ErrNotFound.
	Delete(kind Kind, id string, ifVersion int64) error

	// PutBlob stores data under id, replacing what was there.
	PutBlob(id string, data []byte) error
	// GetBlob returns the data, or an error wrapping ErrNotFound.
	GetBlob(id string) ([]byte, error)
	// DeleteBlob removes a blob; a missing blob is not an error.
	DeleteBlob(id string) error
}

// Store errors, matched with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("conflicting concurrent change")
	// ErrInvalid: a document or key the store cannot keep (not JSON, a NUL
	// character that Postgres refuses); the request that carried it is bad.
	ErrInvalid = errors.New("value the store cannot keep")
)

// Load reads and decodes one document of kind into a T.
func Load[T any](tx Tx, kind Kind, id string) (T, int64, error) {
	var v T
	rec, err := tx.Get(kind, id)
	if err != nil {
		return v, 0, err
	}
	if err := json.Unmarshal(rec.Doc, &v); err != nil {
		return v, 0, fmt.Errorf("decode %s %q: %w", kind, id, err)
	}
	return v, rec.Version, nil
}

// LoadOr is Load for documents that may not exist yet: a missing one
// yields def and MustNotExist, the ifVersion that creates it.
func LoadOr[T any](tx Tx, kind Kind, id string, def T) (T, int64, error) {
	v, ver, err := Load[T](tx, kind, id)
	if errors.Is(err, ErrNotFound) {
		return def, MustNotExist, nil
	}
	return v, ver, err
}

// LoadAll reads and decodes every document of kind, ordered by ID.
func LoadAll[T any](tx Tx, kind Kind) ([]T, error) {
	recs, err := tx.List(kind)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(recs))
	for _, rec := range recs {
		var v T
		if err := json.Unmarshal(rec.Doc, &v); err != nil {
			return nil, fmt.Errorf("decode %s %q: %w", kind, rec.ID, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Save encodes v and writes it; ifVersion as for Tx.Put.
func Save(tx Tx, kind Kind, id string, v any, ifVersion int64) (int64, error) {
	doc, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s %q: %w", kind, id, err)
	}
	return tx.Put(kind, id, doc, ifVersion)
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
